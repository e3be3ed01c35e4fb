"""Shared pieces of the public perturbation explainers: parameter constraints and checks."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..._validation import Options
from ...exceptions import InvalidParameterError
from ._compose import resolve_space

#: ``extras["all_outputs"]`` is stored only when it holds at most this many numbers per sample
ALL_OUTPUTS_LIMIT = 200_000

SPACES = Options("auto", "raw", "probability", "log_odds")
COMMON_HINTS = {
    "space": "'auto' explains probabilities of classifiers and raw outputs of regression models.",
    "batch_size": "It bounds the perturbed rows built at once; None sizes chunks from a 64 MB budget.",
    "tol": "Used by n_samples='auto'; 0.01 (1% of the attribution range) is Covert & Lee's default.",
}


def check_space(owner: str, model: Any, space: str) -> str:
    """The explained space (``"auto"`` resolved); probabilities and log-odds need a classifier."""
    resolved = resolve_space(model, space)
    if resolved != "raw" and model.output == "regression":
        raise InvalidParameterError(
            f"{owner}: space={space!r} needs a classifier, but the model's output is 'regression'. "
            "Use space='raw' (or 'auto'), or wrap the model with as_model(..., output='logit')."
        )
    return resolved


#: the most memory a fixed ``n_samples`` may imply for its design (see :func:`check_budget`)
MAX_DESIGN_BYTES = 2 * 2**30
#: bytes per sample and feature: the float64 design row and its weighted copy in the regression
_BYTES_PER_CELL = 16


def check_budget(owner: str, n_samples: Any, minimum: int, what: str, n_features: int | None = None) -> None:
    """Refuse a fixed ``n_samples`` below what the regression needs, or one whose design
    (``n_samples x n_features`` float64, plus its weighted copy) would exceed ``MAX_DESIGN_BYTES``."""
    if n_samples == "auto" or n_samples is None:
        return
    if int(n_samples) < minimum:
        raise InvalidParameterError(
            f"{owner}: n_samples must be at least {minimum} {what}; got {n_samples}. "
            f"Use n_samples='auto' or a larger budget."
        )
    if n_features is not None:
        need = int(n_samples) * max(int(n_features), 1) * _BYTES_PER_CELL
        if need > MAX_DESIGN_BYTES:
            most = MAX_DESIGN_BYTES // (max(int(n_features), 1) * _BYTES_PER_CELL)
            raise InvalidParameterError(
                f"{owner}: n_samples={int(n_samples)} with {int(n_features)} features implies a "
                f"{need / 2**30:.1f} GiB design (n_samples x n_features float64 and its weighted copy), over the "
                f"{MAX_DESIGN_BYTES / 2**30:.0f} GiB bound. Use n_samples='auto' (it stops once the estimates "
                f"converge), at most {most} samples, or fewer features (groups / superpixels)."
            )


def add_all_outputs(extras: dict, name: str, arr: np.ndarray) -> None:
    """Store the attributions of every output unless they are too large (see ALL_OUTPUTS_LIMIT)."""
    if arr[0].size <= ALL_OUTPUTS_LIMIT:
        extras[name] = arr
