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
    [distributed]            # where the per-row work runs (never changes a result)
    backend = "dask"         # serial (default), process or dask
    scheduler = "tcp://10.0.0.5:8786"   # connect to this Dask scheduler (else a local cluster)
    workers = 0              # workers of a pool or local cluster scrutiny starts (0: one per core)
"""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

from ..exceptions import InvalidParameterError

__all__ = ["SECTIONS", "METHODS", "BACKENDS", "DEFAULTS", "BUDGETS", "load_config", "resolve_execution"]

SECTIONS = ("performance", "local", "dmm_men", "training_data", "generalisation", "glassbox")
METHODS = ("saliency", "integrated_gradients", "smoothgrad", "gradient_shap", "deeplift", "gradcam",
           "guided_backprop", "occlusion", "kernelshap", "lime", "treeshap")
BACKENDS = ("serial", "process", "dask")
_SCHEDULER_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")
GRADIENT_METHODS = ("saliency", "integrated_gradients", "smoothgrad", "gradient_shap", "deeplift", "gradcam",
                    "guided_backprop")

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
    # where the local explanations, their deletion curves and sanity checks run (scrutiny.distributed);
    # kept out of the trail's config (audit.json records it as "execution")
    "distributed": {"backend": "serial", "scheduler": "", "workers": 0},
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


def _valid_address(address: str) -> bool:
    from urllib.parse import urlsplit

    try:
        u = urlsplit(address)
        port = u.port
    except ValueError:
        return False
    return u.scheme in _SCHEDULER_SCHEMES and bool(u.hostname) and port is not None and 0 < port and \
        u.path in ("", "/") and not u.query and not u.fragment


def resolve_execution(config: dict, backend: str | None = None, scheduler: str | None = None,
                      workers: int | None = None) -> dict[str, Any]:
    """The backend, scheduler address and worker count of an audit: the command line's
    (``--backend``, ``--scheduler``, ``--workers``; None: not given) over ``config["distributed"]``.

    Returns ``{"backend", "scheduler" (None: none), "workers" (None: one per core)}``; a scheduler
    without the dask backend, a malformed address or a bad worker count is an
    :class:`InvalidParameterError` naming the option, the value and the fix.
    """
    cfg = config.get("distributed", DEFAULTS["distributed"])
    b_name = "--backend" if backend is not None else "distributed.backend"
    s_name = "--scheduler" if scheduler is not None else "distributed.scheduler"
    w_name = "--workers" if workers is not None else "distributed.workers"
    backend = cfg.get("backend", "serial") if backend is None else backend
    scheduler = (cfg.get("scheduler") or None) if scheduler is None else scheduler
    workers = (cfg.get("workers") or None) if workers is None else workers
    if backend not in BACKENDS:
        raise InvalidParameterError(f"{b_name} must be one of {', '.join(BACKENDS)}; got {backend!r}.")
    if scheduler is not None:
        if not isinstance(scheduler, str) or not _valid_address(scheduler):
            raise InvalidParameterError(f"{s_name} {scheduler!r} is not a Dask scheduler address; give one like "
                                        "tcp://127.0.0.1:8786 (scheme://host:port).")
        if backend != "dask":
            raise InvalidParameterError(f"{s_name} {scheduler!r} needs --backend dask (the backend is {backend!r}); "
                                        f"add --backend dask, or drop {s_name}.")
    if workers is not None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise InvalidParameterError(f"{w_name} must be a positive number of workers; got {workers!r}.")
        if backend == "serial":
            raise InvalidParameterError(f"{w_name} {workers} sizes a process pool or a local Dask cluster, but the "
                                        f"backend is serial; add --backend process or --backend dask, or drop {w_name}.")
        if scheduler is not None:
            raise InvalidParameterError(f"{w_name} {workers} sizes a cluster scrutiny starts, but {s_name} connects "
                                        f"to a running one (its own workers are used); drop {w_name}.")
    return {"backend": backend, "scheduler": scheduler, "workers": workers}
