"""Helpers shared by the gradient explainers (Saliency, GradientXInput, IntegratedGradients,
SmoothGrad): the explained space, memory-bounded calls to ``model.gradient``, baselines."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .._validation import check_array
from ..exceptions import InvalidParameterError

#: Memory budget (bytes of float64 model input) of one block of path points / noisy copies.
_BLOCK_BYTES = 64 * 2**20

SPACES = ("auto", "raw", "probability", "log_odds")

SPACE_HINT = (
    "'auto' (the default) and 'raw' differentiate the model's own output (logits of a logit model); "
    "'probability' or 'log_odds' a classifier's converted outputs."
)
BATCH_HINT = "It caps the rows sent to model.gradient at once; None picks it from a 64 MB memory budget."
BASELINE_CONSTRAINT: list = [None, numbers.Real, "array-like"]
FEATURE_NAMES_CONSTRAINT: list = ["array-like", None]


def resolve_space(space: str) -> str:
    """The differentiated space: ``"auto"`` is the model's own output (``"raw"``).

    Gradient methods differentiate the raw output by default -- the logit of a logit model,
    as captum does -- because the gradients of a saturated softmax vanish; perturbation
    methods resolve ``"auto"`` differently (probabilities of classifiers).
    """
    return "raw" if space == "auto" else space


def block_rows(batch_size: int | None, row_size: int) -> int:
    """Rows of float64 model input per block: ``batch_size`` or the memory budget."""
    if batch_size is not None:
        return int(batch_size)
    return max(1, _BLOCK_BYTES // (8 * max(1, row_size)))


def gradient(model: Any, X: np.ndarray, target: np.ndarray, space: str, batch_size: int | None) -> np.ndarray:
    """``model.gradient`` in ``space`` over at most ``block_rows`` rows per call (the model
    chunks further)."""
    space = resolve_space(space)
    rows = block_rows(batch_size, int(np.prod(X.shape[1:])))
    if X.shape[0] <= rows:
        return model.gradient(X, target, space=space)
    out = np.empty(X.shape, dtype=np.float64)
    for start in range(0, X.shape[0], rows):  # chunks of rows, never one call per sample
        sl = slice(start, start + rows)
        out[sl] = model.gradient(X[sl], target[sl], space=space)
    return out


def target_outputs(model: Any, X: np.ndarray, target: np.ndarray, space: str) -> np.ndarray:
    """f_target(X) in the same space as the gradients, shape (len(target),).

    ``X`` has one row per target, or a single row shared by all targets.
    """
    space = resolve_space(space)
    if space == "raw":
        P = model.predict(X)
    elif space == "probability":
        P = model.predict_proba(X)
    else:
        P = model.predict_log_odds(X)
    rows = np.arange(len(target)) if P.shape[0] > 1 else np.zeros(len(target), dtype=np.int64)
    return P[rows, target]


def resolve_baseline(baseline: Any, X: np.ndarray, owner: str) -> np.ndarray:
    """The baseline as an array of shape (1, *sample_shape) or (n_samples, *sample_shape)."""
    shape = X.shape[1:]
    if baseline is None:
        return np.zeros((1,) + shape)
    if isinstance(baseline, (numbers.Real, np.number)) and not isinstance(baseline, (bool, np.bool_)):
        value = float(baseline)
        if not np.isfinite(value):
            raise InvalidParameterError(f"{owner}: baseline must be finite; got {value}. Use 0.0 or a data mean.")
        return np.full((1,) + shape, value)
    want = (
        f"{owner}: baseline must be None, a scalar, an array of one sample's shape {shape} or one "
        f"baseline per sample of shape {X.shape}"
    )
    if isinstance(baseline, (str, bytes, bool, np.bool_)):
        raise InvalidParameterError(f"{want}; got {baseline!r}. For a zero baseline pass None or 0.0.")
    if hasattr(baseline, "detach") and hasattr(baseline, "cpu"):  # a torch tensor
        baseline = baseline.detach().cpu().numpy()
    if isinstance(baseline, np.ndarray) and baseline.ndim == 0 and np.issubdtype(baseline.dtype, np.number):
        return resolve_baseline(baseline.item(), X, owner)
    arr = check_array(baseline, "baseline", min_samples=1)
    if arr.shape == shape:
        return arr[None]
    if arr.shape == X.shape or arr.shape == (1,) + shape:
        return arr
    raise InvalidParameterError(
        f"{want}; got an array of shape {arr.shape}. For a mean baseline pass X_train.mean(axis=0)."
    )


def expand(a: np.ndarray, ndim: int) -> np.ndarray:
    """Reshape a 1-d array to broadcast against (len(a), ...) with ``ndim`` dimensions in total."""
    return a.reshape(a.shape + (1,) * (ndim - 1))
