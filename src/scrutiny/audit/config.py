"""What an audit runs and on how many rows: ``audit.toml`` plus ``--budget``.

Every key, its default and its meaning is in :data:`DEFAULTS` (the documented first-run
defaults); ``--budget`` scales the sample counts (:data:`BUDGETS`), and keys in the file win
over the budget. Unknown keys, sections and methods are errors that list the valid names.

Example ``audit.toml``::

    sections = ["performance", "local", "dmm_men", "training_data", "generalisation", "glassbox"]
    [local]
    rows = [0, 5]            # rows of --data always explained (plus misclassified ones)
    n_misclassified = 2
    methods = ["kernelshap", "lime"]
"""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

from ..exceptions import InvalidParameterError

__all__ = ["SECTIONS", "METHODS", "DEFAULTS", "BUDGETS", "load_config"]

SECTIONS = ("performance", "local", "dmm_men", "training_data", "generalisation", "glassbox")
METHODS = ("saliency", "integrated_gradients", "smoothgrad", "gradient_shap", "deeplift", "gradcam", "occlusion",
           "kernelshap", "lime", "treeshap")
GRADIENT_METHODS = ("saliency", "integrated_gradients", "smoothgrad", "gradient_shap", "deeplift", "gradcam")

DEFAULTS: dict[str, Any] = {
    "sections": list(SECTIONS),
    "local": {
        "rows": [],                 # always explained; default: the first row of each class
        "n_misclassified": 2,       # plus up to this many misclassified rows
        "methods": [],              # empty: every method the model supports
        "n_samples": 500,           # KernelSHAP/LIME perturbations, SmoothGrad noise draws
        "n_steps": 32,              # Integrated Gradients steps
        "faithfulness_runs": 50,    # random subsets of faithfulness_correlation
        "sanity": True,             # cascading parameter randomisation (Adebayo et al. 2018)
    },
    "dmm_men": {"max_classes": 3, "max_rows": 150, "n_features": 30, "n_iter": 300, "n_burnin": 150,
                "n_chains": 2, "k": 10},
    "training_data": {"max_train": 400, "n_test": 4, "top_k": 5, "nnk_k": 15},
    "generalisation": {"max_train": 600, "nnk_k": 15, "n_candidates": 8},
    "glassbox": {"cv": 3, "time_limit": 10.0},  # seconds per rule-list / risk-score fit
    "report": {"max_gallery": 12, "max_bytes": 6_000_000},
}

BUDGETS: dict[str, dict[str, dict[str, Any]]] = {
    "fast": {"local": {"n_samples": 200, "n_steps": 16, "faithfulness_runs": 20},
             "dmm_men": {"max_classes": 2, "max_rows": 80, "n_iter": 120, "n_burnin": 60},
             "training_data": {"max_train": 200, "n_test": 3},
             "generalisation": {"max_train": 300}, "glassbox": {"cv": 2, "time_limit": 1.0}},
    "standard": {},
    "thorough": {"local": {"n_samples": 2000, "n_steps": 64, "faithfulness_runs": 200, "n_misclassified": 4},
                 "dmm_men": {"max_classes": 10, "max_rows": 400, "n_iter": 2000, "n_burnin": 1000, "n_chains": 4,
                             "n_features": 100},
                 "training_data": {"max_train": 2000, "n_test": 8},
                 "generalisation": {"max_train": 5000}, "glassbox": {"cv": 5, "time_limit": 60.0}},
}


def _merge(base: dict, extra: dict, where: str) -> None:
    for key, value in extra.items():
        if key not in base:
            raise InvalidParameterError(f"unknown key {where}{key!r} in the audit configuration; valid keys: "
                                        f"{', '.join(sorted(base))}.")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise InvalidParameterError(f"{where}{key} must be a table; got {value!r}.")
            _merge(base[key], value, f"{where}{key}.")
        else:
            base[key] = value


def load_config(path: str | Path | None = None, budget: str = "standard") -> dict[str, Any]:
    """Defaults, scaled by ``budget``, overridden by the TOML file at ``path``."""
    if budget not in BUDGETS:
        raise InvalidParameterError(f"--budget must be one of {', '.join(BUDGETS)}; got {budget!r}.")
    config = copy.deepcopy(DEFAULTS)
    _merge(config, copy.deepcopy(BUDGETS[budget]), "")
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise InvalidParameterError(f"--config file {str(p)!r} does not exist; check the path.")
        try:
            data = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise InvalidParameterError(f"--config {str(p)!r} is not valid TOML: {exc}.") from exc
        _merge(config, data, "")
    bad = [s for s in config["sections"] if s not in SECTIONS]
    if bad:
        raise InvalidParameterError(f"unknown section {bad[0]!r} in sections; valid sections: {', '.join(SECTIONS)}.")
    bad = [m for m in config["local"]["methods"] if m not in METHODS]
    if bad:
        raise InvalidParameterError(f"unknown method {bad[0]!r} in local.methods; valid methods: {', '.join(METHODS)}.")
    config["budget"] = budget
    return config
