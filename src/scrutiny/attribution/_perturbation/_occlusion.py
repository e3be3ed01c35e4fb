"""Occlusion (Zeiler & Fergus 2014): slide a window, replace it by a baseline, record the drop.

The attribution of each element is the average, over all windows covering it, of
``f(x) - f(x with the window replaced)``. Windows are products of per-axis intervals, so both
the occluded inputs and the averaging are built from per-axis membership matrices
``A_d[p, l] = start_p <= l < start_p + window_d``: masks by broadcasting, sums and counts by
one ``einsum`` per axis -- no per-window Python loop.
"""

from __future__ import annotations

import string
from typing import Any

import numpy as np

from ..._validation import Interval, check_array
from ...exceptions import InvalidParameterError
from .._base import Explainer, RawAttribution, native_dtype
from ._common import COMMON_HINTS, SPACES, add_all_outputs, check_space
from ._compose import chunk_rows, model_outputs


def axis_windows(length: int, window: int, stride: int) -> np.ndarray:
    """Membership matrix (n_windows, length) of the windows along one axis (captum's layout:
    ``ceil((length - window) / stride) + 1`` windows; the last may be cut at the edge)."""
    n = int(np.ceil((length - window) / stride)) + 1
    starts = np.arange(n) * stride
    pos = np.arange(length)
    return (pos[None, :] >= starts[:, None]) & (pos[None, :] < starts[:, None] + window)


def occlude(
    model: Any, space: str, X: np.ndarray, baseline: np.ndarray, windows: list[np.ndarray], rows_per_chunk: int
):
    """Attributions of every space, shape (n, *sample_shape, K), and the number of windows."""
    n, shape = X.shape[0], X.shape[1:]
    counts = [A.shape[0] for A in windows]
    n_win = int(np.prod(counts))
    fx = model_outputs(model, X, space)
    dt = native_dtype(model)  # occluded rows are built directly in the model's dtype
    Xn, bn = X.astype(dt, copy=False), baseline.astype(dt, copy=False)
    total = n * n_win
    drops = []
    for s in range(0, total, rows_per_chunk):
        e = min(total, s + rows_per_chunk)
        r = np.arange(s, e)
        i, t = r // n_win, r % n_win
        pos = np.unravel_index(t, counts)
        mask = np.ones((e - s,) + shape, dtype=bool)
        for d, (A, p) in enumerate(zip(windows, pos)):
            view = [e - s] + [1] * len(shape)
            view[d + 1] = shape[d]
            mask &= A[p].reshape(view)
        rows = np.where(mask, bn[None], Xn[i])
        drops.append(fx[i] - model_outputs(model, rows, space))
    delta = np.concatenate(drops).reshape((n, *counts, -1))
    letters = string.ascii_letters
    q = len(shape)
    p_l, l_l = letters[:q], letters[q : 2 * q]
    spec = "Z" + p_l + "Y," + ",".join(p_l[d] + l_l[d] for d in range(q)) + "->Z" + l_l + "Y"
    sums = np.einsum(spec, delta, *[A.astype(np.float64) for A in windows], optimize=True)
    cover = np.ones(shape)
    for d, A in enumerate(windows):
        view = [1] * q
        view[d] = shape[d]
        cover = cover * A.sum(axis=0).reshape(view)
    with np.errstate(invalid="ignore", divide="ignore"):
        attr = np.where(cover[None, ..., None] > 0, sums / cover[None, ..., None], 0.0)
    return attr, n_win, fx


def _window_tuple(value: Any, shape: tuple[int, ...], name: str) -> tuple[int, ...]:
    q = len(shape)

    def ok(v: Any) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1

    if ok(value):
        v = int(value)
        return (shape[0],) + (v,) * (q - 1) if q >= 3 else (v,) * q
    if isinstance(value, (tuple, list)) and all(ok(v) for v in value):
        t = tuple(int(v) for v in value)
        if len(t) == q:
            return t
        if q >= 3 and len(t) == q - 1:
            return (shape[0],) + t
    raise InvalidParameterError(
        f"Occlusion: {name} must be a positive int or a tuple of {q} positive ints (or {q - 1} for channel-first "
        f"images, all channels together) for samples of shape {shape}; got {value!r}."
    )


class Occlusion(Explainer):
    """Occlusion: the drop of the output when a sliding window is replaced by a baseline.

    The attribution of each input element is the average, over all windows covering it, of
    ``f(x) - f(x with the window set to the baseline)`` (Zeiler & Fergus 2014; captum's
    ``Occlusion`` layout). With ``window=1`` on tabular data this is feature ablation, and
    for a linear model ``f(x) = w'x`` with a zero baseline it is exactly ``w * x``.

    Parameters
    ----------
    model : torch.nn.Module, fitted scikit-learn estimator, callable or Model
    window : int or tuple of int, default 1
        Window shape. An int applies to every axis of 1-D and 2-D samples, and to the spatial
        axes of channel-first (C, H, W) samples (all channels occluded together); a tuple gives
        every axis (or every axis but the channels).
    stride : int, tuple of int or None, default None
        Step between windows, same conventions; None = the window (non-overlapping). The last
        window along an axis is cut at the edge; elements covered by no window (stride >
        window) get 0.
    baseline : float or array-like, default 0.0
        Replacement values, broadcastable to one sample's shape (e.g. the training mean).
    space : {"auto", "raw", "probability", "log_odds"}, default "auto"
        The explained space: ``"auto"`` is probabilities for classifiers and raw outputs for
        regression models.
    batch_size : int, optional
        Occluded rows built and passed to ``model.predict`` at once (memory only).
    feature_names : sequence of str, optional
        One name per input value, recorded on the Explanation.

    Notes
    -----
    Deterministic: no ``random_state``, no ``stderr``. ``extras``: ``prediction`` (n,) the
    explained output of x, ``n_windows``, ``all_outputs`` (n, *input_shape, K) when small.

    References
    ----------
    M. D. Zeiler, R. Fergus, "Visualizing and understanding convolutional networks", ECCV 2014.

    Examples
    --------
    >>> import numpy as np
    >>> w = np.array([1.0, -2.0, 0.5])
    >>> e = Occlusion(lambda X: X @ w).explain(np.array([[1.0, 2.0, 3.0]]))
    >>> e.values
    array([[ 1. , -4. ,  1.5]])
    """

    _constraints = {
        "window": [Interval(int, 1, None), tuple, list],
        "stride": [Interval(int, 1, None), tuple, list, None],
        "baseline": [Interval(float), "array-like"],
        "space": [SPACES],
        "batch_size": [Interval(int, 1, None), None],
        "feature_names": ["array-like", None],
    }
    _hints = {**COMMON_HINTS, "window": "E.g. window=1 for tabular features, window=(4, 4) for images."}

    def __init__(
        self,
        model: Any,
        *,
        window: Any = 1,
        stride: Any = None,
        baseline: Any = 0.0,
        space: str = "auto",
        batch_size: int | None = None,
        feature_names: Any = None,
    ) -> None:
        super().__init__(model)
        self.window = window
        self.stride = stride
        self.baseline = baseline
        self.space = space
        self.batch_size = batch_size
        self.feature_names = feature_names

    def _layout(self, shape: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        window = _window_tuple(self.window, shape, "window")
        stride = window if self.stride is None else _window_tuple(self.stride, shape, "stride")
        if len(shape) >= 3 and isinstance(self.stride, (int, np.integer)):
            stride = (shape[0],) + stride[1:]
        big = [(w, s) for w, s in zip(window, shape) if w > s]
        if big:
            raise InvalidParameterError(
                f"Occlusion: window {window} must fit in a sample of shape {shape}; got a window larger than "
                "the input along some axis. Use a smaller window."
            )
        return window, stride

    def _baseline(self, shape: tuple[int, ...]) -> np.ndarray:
        arr = check_array(self.baseline, "baseline", min_samples=0) if np.ndim(self.baseline) else np.asarray(
            float(self.baseline)
        )
        try:
            return np.broadcast_to(arr, shape)
        except ValueError:
            raise InvalidParameterError(
                f"Occlusion: baseline must be a number or an array broadcastable to one sample {shape}; got "
                f"shape {arr.shape}. For tabular data pass e.g. X_train.mean(axis=0)."
            ) from None

    def _check(self, X: np.ndarray) -> None:
        check_space("Occlusion", self.model, self.space)
        self._layout(X.shape[1:])
        self._baseline(X.shape[1:])

    def _explain(self, X: np.ndarray, target: np.ndarray, rng: Any) -> RawAttribution:
        space = check_space("Occlusion", self.model, self.space)
        shape = X.shape[1:]
        window, stride = self._layout(shape)
        windows = [axis_windows(L, w, s) for L, w, s in zip(shape, window, stride)]
        rows_per_chunk = chunk_rows(self.model, int(np.prod(shape)), self.batch_size)
        attr, n_win, fx = occlude(self.model, space, X, self._baseline(shape), windows, rows_per_chunk)
        rows = np.arange(X.shape[0])
        values = np.moveaxis(attr, -1, 1)[rows, target]
        extras = {"prediction": fx[rows, target], "n_windows": n_win}
        add_all_outputs(extras, "all_outputs", attr)
        return RawAttribution(values, None, None, extras)
