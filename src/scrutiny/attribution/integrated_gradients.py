"""Integrated Gradients and its quadrature rules.

All path points of all inputs are built in memory-bounded blocks and differentiated together
in large chunks; there is no per-sample Python loop.

References
----------
.. [1] Sundararajan, Taly, Yan (2017). Axiomatic attribution for deep networks. ICML.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np

from .._validation import Interval, Options
from ..exceptions import ConvergenceWarning, InvalidParameterError
from ._base import Explainer, RawAttribution
from ._gauss_legendre import MAX_NODES, unit_interval  # quadrature() enforces the cap
from ._gradient import (
    BASELINE_CONSTRAINT,
    BATCH_HINT,
    FEATURE_NAMES_CONSTRAINT,
    SPACE_HINT,
    SPACES,
    block_rows,
    expand,
    resolve_baseline,
    resolve_space,
    target_outputs,
)

__all__ = ["IntegratedGradients", "quadrature"]

_IG_METHODS = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid")


@lru_cache(maxsize=16)
def _quadrature_cached(method: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    if method == "gausslegendre":
        # linear time and memory in n (Stieltjes-series Newton), not leggauss' cubic cost
        alphas, weights = unit_interval(n)
    elif method == "riemann_trapezoid":
        alphas = np.linspace(0.0, 1.0, n)
        weights = np.full(n, 1.0 / (n - 1))
        weights[[0, -1]] *= 0.5
    else:
        offset = {"riemann_left": 0.0, "riemann_middle": 0.5, "riemann_right": 1.0}[method]
        alphas = (np.arange(n) + offset) / n
        weights = np.full(n, 1.0 / n)
    alphas.setflags(write=False)
    weights.setflags(write=False)
    return alphas, weights


def quadrature(method: str, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``alpha_k`` in [0, 1] and weights ``w_k`` (summing to 1) of an IG path rule.

    Parameters
    ----------
    method : {"gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"}
    n_steps : int
        Number of nodes (at least 2 for the trapezoid rule).

    Returns
    -------
    alphas, weights : ndarray of shape (n_steps,)

    Notes
    -----
    ``riemann_trapezoid`` is the composite trapezoid rule on ``n_steps`` equally spaced nodes
    including both ends (weights ``1/(n-1)``, halved at the ends), which integrates linear
    functions exactly. captum's rule of the same name uses the same nodes with weights ``1/n``
    (halved at the ends), which sum to ``1 - 1/n``; its attributions are ours times
    ``(n - 1)/n``. The other rules match captum's.
    """
    method = str(method)
    if method not in _IG_METHODS:
        raise InvalidParameterError(f"method must be one of {_IG_METHODS}; got {method!r}.")
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise InvalidParameterError(f"n_steps must be a positive int; got {n_steps!r} (50 is typical).")
    n = int(n_steps)
    if method == "riemann_trapezoid" and n < 2:
        raise InvalidParameterError("n_steps must be at least 2 for method='riemann_trapezoid'; got 1.")
    if n > MAX_NODES:
        raise InvalidParameterError(
            f"n_steps={n} exceeds {MAX_NODES}, where float64 nodes near the ends of the path stop "
            "resolving the quadrature rule (see scrutiny.attribution._gauss_legendre). Gauss-Legendre "
            "converges long before that: use n_steps <= 1000 (50 is typical)."
        )
    a, w = _quadrature_cached(method, n)
    return a.copy(), w.copy()


class IntegratedGradients(Explainer):
    """Integrated Gradients: ``phi_i = (x_i - x'_i) * int_0^1 d_i f(x' + a (x - x')) da``.

    The integral is approximated by a quadrature rule with ``n_steps`` nodes ``a_k`` and
    weights ``w_k``: ``phi = (x - x') * sum_k w_k grad f(x' + a_k (x - x'))``. All path points of
    all inputs are differentiated together in large chunks.

    Parameters
    ----------
    model : torch.nn.Module or TorchModel
        A differentiable model.
    baseline : None, float, array of shape sample_shape or (n_samples, *sample_shape)
        The reference input ``x'``: None means zeros (a black image, a zero embedding); for
        tabular data a training mean is usual.
    n_steps : int, default 50
        Number of quadrature nodes (gradient evaluations per input).
    method : {"gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"}, default "gausslegendre"
        Quadrature rule (see :func:`quadrature`). Gauss--Legendre (captum's default) is far
        more accurate per step on smooth models; Riemann rules converge like 1/n_steps
        (left/right) or 1/n_steps**2 (middle/trapezoid).
    space : {"auto", "raw", "probability", "log_odds"}, default "auto"
        The integrated space; ``"auto"`` is ``"raw"``, the model's own output (the logit of a
        logit model).
    batch_size : int or None, default None
        Largest number of path points sent to ``model.gradient`` at once (memory only).
    feature_names : sequence of str, optional
        One name per input value, recorded on the Explanation.

    Notes
    -----
    ``explain`` returns an :class:`~scrutiny.explanation.Explanation` with ``values`` of the
    shape of ``X``, ``base_values = f(baseline)`` (the target output) and ``extras``:

    * ``"completeness_gap"``, shape (n_samples,): ``sum(phi) - (f(x) - f(x'))``, zero for the
      exact integral (completeness axiom);
    * ``"relative_gap"``, shape (n_samples,): ``|gap| / max(|f(x) - f(x')|, floor)`` with
      ``floor = 1e-6 * max(1, |f(x)|, |f(x')|)``, so inputs indistinguishable from the
      baseline do not divide by zero.

    A :class:`~scrutiny.exceptions.ConvergenceWarning` is issued when a relative gap exceeds
    5% (increase ``n_steps`` or use ``method="gausslegendre"``). On ReLU networks the
    integrand is discontinuous and the gap shrinks only slowly with ``n_steps``.

    References
    ----------
    .. [1] Sundararajan, Taly, Yan (2017). Axiomatic attribution for deep networks. ICML.

    Examples
    --------
    >>> import torch
    >>> from scrutiny.attribution import IntegratedGradients
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    >>> e = IntegratedGradients(net, n_steps=32).explain(torch.ones(4, 3))
    >>> e.values.shape, e.extras["completeness_gap"].shape
    ((4, 3), (4,))
    """

    requires: ClassVar[tuple[str, ...]] = ("gradient",)
    _constraints: ClassVar[dict[str, list]] = {
        "baseline": BASELINE_CONSTRAINT,
        "n_steps": [Interval(int, 1, None)],
        "method": [Options(*_IG_METHODS)],
        "space": [Options(*SPACES)],
        "batch_size": [Interval(int, 1, None), None],
        "feature_names": FEATURE_NAMES_CONSTRAINT,
    }
    _hints: ClassVar[dict[str, str]] = {
        "n_steps": "IntegratedGradients needs at least 1 step (50 is typical).",
        "method": "'gausslegendre' (the default) is the most accurate per step.",
        "space": SPACE_HINT,
        "batch_size": BATCH_HINT,
    }
    #: relative completeness gap above which a ConvergenceWarning is issued
    gap_warning: ClassVar[float] = 0.05

    def __init__(
        self,
        model: Any,
        *,
        baseline: Any = None,
        n_steps: int = 50,
        method: str = "gausslegendre",
        space: str = "auto",
        batch_size: int | None = None,
        feature_names: Any = None,
    ):
        super().__init__(model)
        self.baseline = baseline
        self.n_steps = n_steps
        self.method = method
        self.space = space
        self.batch_size = batch_size
        self.feature_names = feature_names

    def _check(self, X: np.ndarray) -> None:
        if self.method == "riemann_trapezoid" and self.n_steps < 2:
            raise InvalidParameterError(
                f"IntegratedGradients: n_steps must be an int in [2, inf] with method='riemann_trapezoid'; "
                f"got {self.n_steps}. The trapezoid rule needs both end points (50 is typical)."
            )
        resolve_baseline(self.baseline, X, type(self).__name__)

    def _resolve_baseline(self, X: np.ndarray) -> np.ndarray:
        return resolve_baseline(self.baseline, X, type(self).__name__)

    def _attribute(self, X: np.ndarray, target: np.ndarray, baseline: np.ndarray) -> np.ndarray:
        """IG of each row of X against ``baseline`` (1 row or one per row of X)."""
        alphas, weights = quadrature(self.method, self.n_steps)
        space = resolve_space(self.space)
        n, steps, nd = X.shape[0], len(alphas), X.ndim
        diff = X - baseline
        integral = np.zeros(X.shape, dtype=np.float64)
        total = n * steps
        rows = block_rows(self.batch_size, int(np.prod(X.shape[1:])))
        shared = baseline.shape[0] == 1
        # Flattened (input, step) index, input-major; each block is a contiguous range of it.
        for start in range(0, total, rows):
            idx = np.arange(start, min(start + rows, total))
            i, k = np.divmod(idx, steps)
            base = baseline[0] if shared else baseline[i]
            points = base + expand(alphas[k], nd) * diff[i]
            grad = self.model.gradient(points, target[i], space=space)
            grad *= expand(weights[k], nd)
            starts = np.flatnonzero(np.r_[True, i[1:] != i[:-1]])
            integral[i[starts]] += np.add.reduceat(grad, starts, axis=0)
        return integral * diff

    def _explain(self, X: np.ndarray, target: np.ndarray, rng: Any) -> RawAttribution:
        baseline = self._resolve_baseline(X)
        values = self._attribute(X, target, baseline)
        f_x = target_outputs(self.model, X, target, self.space)
        f_base = target_outputs(self.model, baseline, target, self.space)
        delta = f_x - f_base
        gap = values.reshape(len(X), -1).sum(axis=1) - delta
        floor = 1e-6 * np.maximum(1.0, np.maximum(np.abs(f_x), np.abs(f_base)))
        relative = np.abs(gap) / np.maximum(np.abs(delta), floor)
        bad = relative > self.gap_warning
        if bad.any():
            advice = "Increase n_steps (e.g. 4x)" + (
                "." if self.method == "gausslegendre" else " or use method='gausslegendre'."
            )
            warnings.warn(
                f"IntegratedGradients: the completeness gap exceeds {self.gap_warning:.0%} of "
                f"f(x) - f(baseline) for {int(bad.sum())} of {len(X)} input(s) (largest relative gap "
                f"{relative.max():.3g}) with n_steps={self.n_steps}, method={self.method!r}. {advice} "
                "See extras['relative_gap'].",
                ConvergenceWarning,
                stacklevel=3,
            )
        return RawAttribution(
            values=values,
            base_values=f_base,
            extras={"completeness_gap": gap, "relative_gap": relative},
        )
