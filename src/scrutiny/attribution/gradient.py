"""Gradient attributions: Saliency, Gradient x Input, Integrated Gradients and SmoothGrad.

All four need a differentiable model (``as_model(torch_module)``) and return attributions of
the input's shape, one row per explained sample. They share parameter names:

* ``output`` -- which scalar is differentiated: the raw output (``"raw"``: the logit of a
  logit model), ``"probability"`` or ``"log_odds"`` (see :mod:`scrutiny.models`);
* ``baseline`` -- the reference input of Integrated Gradients and Gradient x Input: None
  (zeros), a scalar, an array of one sample's shape, or one baseline per sample;
* ``batch_size`` -- the largest number of model-input rows (path points, noisy copies) built
  and sent to ``model.gradient`` at once; None chooses it from a 64 MB memory budget. The
  model further splits each call into chunks of its own ``batch_size``;
* ``n_steps`` (IG), ``n_samples``, ``noise_level`` and ``random_state`` (SmoothGrad).

Speed by design: all path points or noisy copies of all inputs are built as one array (in
memory-bounded blocks) and differentiated in large chunks; there is no per-sample Python
loop. SmoothGrad draws **one** noise matrix per call and applies it to every input (common
random numbers), so rows explained together equal rows explained one by one.

References
----------
.. [1] Simonyan, Vedaldi, Zisserman (2014). Deep inside convolutional networks: visualising
   image classification models and saliency maps. ICLR workshop, arXiv:1312.6034.
.. [2] Shrikumar, Greenside, Shcherbina, Kundaje (2016). Not just a black box: learning
   important features through propagating activation differences. arXiv:1605.01713.
.. [3] Sundararajan, Taly, Yan (2017). Axiomatic attribution for deep networks. ICML.
.. [4] Smilkov, Thorat, Kim, Viegas, Wattenberg (2017). SmoothGrad: removing noise by adding
   noise. arXiv:1706.03825.
.. [5] Agarwal, Jabbari, Agarwal, Upadhyay, Wu, Lakkaraju (2021). Towards the unification
   and robustness of perturbation and gradient based explanations. ICML.
"""

from __future__ import annotations

import numbers
import warnings
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np

from .._validation import Interval, Options, check_array
from ..exceptions import ConvergenceWarning, InvalidParameterError
from ._base import Explainer, RawAttribution, native_dtype

__all__ = ["Saliency", "GradientXInput", "IntegratedGradients", "SmoothGrad"]

#: Memory budget (bytes of float64 model input) of one block of path points / noisy copies.
_BLOCK_BYTES = 64 * 2**20

_OUTPUTS = ("raw", "probability", "log_odds")
_IG_METHODS = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid")

_OUTPUT_HINT = (
    "Use 'raw' for the model's own outputs (logits of a logit model), 'probability' or 'log_odds' "
    "for a classifier's converted outputs."
)
_BATCH_HINT = "It caps the rows sent to model.gradient at once; None picks it from a 64 MB memory budget."
_BASELINE_CONSTRAINT: list = [None, numbers.Real, "array-like"]


# --------------------------------------------------------------------------- shared helpers


def _block_rows(batch_size: int | None, row_size: int) -> int:
    """Rows of float64 model input per block: ``batch_size`` or the memory budget."""
    if batch_size is not None:
        return int(batch_size)
    return max(1, _BLOCK_BYTES // (8 * max(1, row_size)))


def _gradient(model: Any, X: np.ndarray, target: np.ndarray, output: str, batch_size: int | None) -> np.ndarray:
    """``model.gradient`` over at most ``_block_rows`` rows per call (the model chunks further)."""
    rows = _block_rows(batch_size, int(np.prod(X.shape[1:])))
    if X.shape[0] <= rows:
        return model.gradient(X, target, output=output)
    out = np.empty(X.shape, dtype=np.float64)
    for start in range(0, X.shape[0], rows):  # chunks of rows, never one call per sample
        sl = slice(start, start + rows)
        out[sl] = model.gradient(X[sl], target[sl], output=output)
    return out


def _target_outputs(model: Any, X: np.ndarray, target: np.ndarray, output: str) -> np.ndarray:
    """f_target(X) in the same output space as the gradients, shape (len(target),).

    ``X`` has one row per target, or a single row shared by all targets.
    """
    if output == "raw":
        P = model.predict(X)
    elif output == "probability":
        P = model.predict_proba(X)
    else:
        P = model.predict_log_odds(X)
    rows = np.arange(len(target)) if P.shape[0] > 1 else np.zeros(len(target), dtype=np.int64)
    return P[rows, target]


def _resolve_baseline(baseline: Any, X: np.ndarray, owner: str) -> np.ndarray:
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
        return _resolve_baseline(baseline.item(), X, owner)
    arr = check_array(baseline, "baseline", min_samples=1)
    if arr.shape == shape:
        return arr[None]
    if arr.shape == X.shape or arr.shape == (1,) + shape:
        return arr
    raise InvalidParameterError(
        f"{want}; got an array of shape {arr.shape}. For a mean baseline pass X_train.mean(axis=0)."
    )


def _expand(a: np.ndarray, ndim: int) -> np.ndarray:
    """Reshape a 1-d array to broadcast against (len(a), ...) with ``ndim`` dimensions in total."""
    return a.reshape(a.shape + (1,) * (ndim - 1))


@lru_cache(maxsize=64)
def _quadrature_cached(method: str, n_steps: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    n = n_steps
    if method == "gausslegendre":
        t, w = np.polynomial.legendre.leggauss(n)
        alphas, weights = 0.5 * (t + 1.0), 0.5 * w
    elif method == "riemann_trapezoid":
        alphas = np.linspace(0.0, 1.0, n)
        weights = np.full(n, 1.0 / (n - 1))
        weights[[0, -1]] *= 0.5
    else:
        offset = {"riemann_left": 0.0, "riemann_middle": 0.5, "riemann_right": 1.0}[method]
        alphas = (np.arange(n) + offset) / n
        weights = np.full(n, 1.0 / n)
    return tuple(alphas.tolist()), tuple(weights.tolist())


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
    a, w = _quadrature_cached(str(method), int(n_steps))
    return np.array(a), np.array(w)


# --------------------------------------------------------------------------- Saliency


class Saliency(Explainer):
    """Vanilla gradient (saliency map): ``phi = d f_target / d x``.

    Parameters
    ----------
    model : torch.nn.Module or TorchModel
        A differentiable model (see :func:`scrutiny.as_model`).
    abs : bool, default False
        Return ``|d f / d x|`` (Simonyan et al.; captum's default) instead of the signed gradient.
    output : {"raw", "probability", "log_odds"}, default "raw"
        The differentiated output (see :meth:`scrutiny.models.TorchModel.gradient`).
    batch_size : int or None, default None
        Largest number of rows sent to ``model.gradient`` at once.

    Notes
    -----
    One forward and one backward pass per chunk of inputs. ``explain(X, target)`` returns an
    :class:`~scrutiny.explanation.Explanation` whose ``values`` have the shape of ``X``
    (n_samples, ...). For images, reduce channels afterwards if needed
    (``values.abs().max(axis=1)`` as in Simonyan et al.).

    References
    ----------
    .. [1] Simonyan, Vedaldi, Zisserman (2014). Deep inside convolutional networks:
       visualising image classification models and saliency maps. arXiv:1312.6034.

    Examples
    --------
    >>> import torch
    >>> from scrutiny.attribution.gradient import Saliency
    >>> net = torch.nn.Linear(3, 2)
    >>> e = Saliency(net).explain(torch.ones(4, 3), target=1)
    >>> e.values.shape
    (4, 3)
    """

    requires: ClassVar[tuple[str, ...]] = ("gradient",)
    _constraints: ClassVar[dict[str, list]] = {
        "abs": ["boolean"],
        "output": [Options(*_OUTPUTS)],
        "batch_size": [Interval(int, 1, None), None],
    }
    _hints: ClassVar[dict[str, str]] = {"output": _OUTPUT_HINT, "batch_size": _BATCH_HINT}

    def __init__(self, model: Any, *, abs: bool = False, output: str = "raw", batch_size: int | None = None):
        super().__init__(model)
        self.abs = abs
        self.output = output
        self.batch_size = batch_size

    def _resolve_baseline(self, X: np.ndarray) -> np.ndarray | None:
        return None

    def _attribute(self, X: np.ndarray, target: np.ndarray, baseline: np.ndarray | None) -> np.ndarray:
        grad = _gradient(self.model, X, target, self.output, self.batch_size)
        return np.abs(grad) if self.abs else grad

    def _explain(self, X: np.ndarray, target: np.ndarray, rng: Any) -> RawAttribution:
        return RawAttribution(values=self._attribute(X, target, None))


# --------------------------------------------------------------------------- Gradient x Input


class GradientXInput(Explainer):
    """Gradient times input: ``phi = (x - baseline) * d f_target / d x``.

    Parameters
    ----------
    model : torch.nn.Module or TorchModel
        A differentiable model.
    baseline : None, float, array of shape sample_shape or (n_samples, *sample_shape)
        Reference input; None means zeros, i.e. the classic ``x * grad``. A baseline removes
        the dependence on the input's units (``(x - x') * grad``).
    output : {"raw", "probability", "log_odds"}, default "raw"
    batch_size : int or None, default None

    Notes
    -----
    For a piecewise-linear network without biases this equals DeepLIFT/epsilon-LRP; it is
    the limit of Integrated Gradients as the path shrinks to the input. ``values`` have the
    shape of ``X``.

    References
    ----------
    .. [1] Shrikumar, Greenside, Shcherbina, Kundaje (2016). Not just a black box: learning
       important features through propagating activation differences. arXiv:1605.01713.

    Examples
    --------
    >>> import torch
    >>> from scrutiny.attribution.gradient import GradientXInput
    >>> net = torch.nn.Linear(3, 1)
    >>> GradientXInput(net, output="raw").explain(torch.ones(2, 3)).values.shape
    (2, 3)
    """

    requires: ClassVar[tuple[str, ...]] = ("gradient",)
    _constraints: ClassVar[dict[str, list]] = {
        "baseline": _BASELINE_CONSTRAINT,
        "output": [Options(*_OUTPUTS)],
        "batch_size": [Interval(int, 1, None), None],
    }
    _hints: ClassVar[dict[str, str]] = {"output": _OUTPUT_HINT, "batch_size": _BATCH_HINT}

    def __init__(self, model: Any, *, baseline: Any = None, output: str = "raw", batch_size: int | None = None):
        super().__init__(model)
        self.baseline = baseline
        self.output = output
        self.batch_size = batch_size

    def _check(self, X: np.ndarray) -> None:
        _resolve_baseline(self.baseline, X, type(self).__name__)

    def _resolve_baseline(self, X: np.ndarray) -> np.ndarray:
        return _resolve_baseline(self.baseline, X, type(self).__name__)

    def _attribute(self, X: np.ndarray, target: np.ndarray, baseline: np.ndarray) -> np.ndarray:
        grad = _gradient(self.model, X, target, self.output, self.batch_size)
        return (X - baseline) * grad

    def _explain(self, X: np.ndarray, target: np.ndarray, rng: Any) -> RawAttribution:
        return RawAttribution(values=self._attribute(X, target, self._resolve_baseline(X)))


# --------------------------------------------------------------------------- Integrated Gradients


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
    output : {"raw", "probability", "log_odds"}, default "raw"
        The integrated output.
    batch_size : int or None, default None
        Largest number of path points sent to ``model.gradient`` at once.

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
    >>> from scrutiny.attribution.gradient import IntegratedGradients
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    >>> e = IntegratedGradients(net, n_steps=32).explain(torch.ones(4, 3))
    >>> e.values.shape, e.extras["completeness_gap"].shape
    ((4, 3), (4,))
    """

    requires: ClassVar[tuple[str, ...]] = ("gradient",)
    _constraints: ClassVar[dict[str, list]] = {
        "baseline": _BASELINE_CONSTRAINT,
        "n_steps": [Interval(int, 1, None)],
        "method": [Options(*_IG_METHODS)],
        "output": [Options(*_OUTPUTS)],
        "batch_size": [Interval(int, 1, None), None],
    }
    _hints: ClassVar[dict[str, str]] = {
        "n_steps": "IntegratedGradients needs at least 1 step (50 is typical).",
        "method": "'gausslegendre' (the default) is the most accurate per step.",
        "output": _OUTPUT_HINT,
        "batch_size": _BATCH_HINT,
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
        output: str = "raw",
        batch_size: int | None = None,
    ):
        super().__init__(model)
        self.baseline = baseline
        self.n_steps = n_steps
        self.method = method
        self.output = output
        self.batch_size = batch_size

    def _check(self, X: np.ndarray) -> None:
        if self.method == "riemann_trapezoid" and self.n_steps < 2:
            raise InvalidParameterError(
                f"IntegratedGradients: n_steps must be an int in [2, inf] with method='riemann_trapezoid'; "
                f"got {self.n_steps}. The trapezoid rule needs both end points (50 is typical)."
            )
        _resolve_baseline(self.baseline, X, type(self).__name__)

    def _resolve_baseline(self, X: np.ndarray) -> np.ndarray:
        return _resolve_baseline(self.baseline, X, type(self).__name__)

    def _attribute(self, X: np.ndarray, target: np.ndarray, baseline: np.ndarray) -> np.ndarray:
        """IG of each row of X against ``baseline`` (1 row or one per row of X)."""
        alphas, weights = quadrature(self.method, self.n_steps)
        n, steps, nd = X.shape[0], len(alphas), X.ndim
        diff = X - baseline
        integral = np.zeros(X.shape, dtype=np.float64)
        total = n * steps
        rows = _block_rows(self.batch_size, int(np.prod(X.shape[1:])))
        shared = baseline.shape[0] == 1
        # Flattened (input, step) index, input-major; each block is a contiguous range of it.
        for start in range(0, total, rows):
            idx = np.arange(start, min(start + rows, total))
            i, k = np.divmod(idx, steps)
            base = baseline[0] if shared else baseline[i]
            points = base + _expand(alphas[k], nd) * diff[i]
            grad = self.model.gradient(points, target[i], output=self.output)
            grad *= _expand(weights[k], nd)
            starts = np.flatnonzero(np.r_[True, i[1:] != i[:-1]])
            integral[i[starts]] += np.add.reduceat(grad, starts, axis=0)
        return integral * diff

    def _explain(self, X: np.ndarray, target: np.ndarray, rng: Any) -> RawAttribution:
        baseline = self._resolve_baseline(X)
        values = self._attribute(X, target, baseline)
        f_x = _target_outputs(self.model, X, target, self.output)
        f_base = _target_outputs(self.model, baseline, target, self.output)
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


# --------------------------------------------------------------------------- SmoothGrad


_WRAPPABLE = (Saliency, GradientXInput, IntegratedGradients)


class SmoothGrad(Explainer):
    """SmoothGrad: average a gradient explanation over Gaussian-perturbed copies of the input.

    ``phi(x) = mean_k A(x + eps_k)`` with ``eps_k ~ N(0, sigma^2 I)`` and ``A`` a gradient
    explainer (Saliency by default; also GradientXInput or IntegratedGradients -- a "noise
    tunnel"). For ``A = Saliency`` the expectation is ``E[grad f(x + eps)]``, which equals
    the population slope of continuous LIME (C-LIME) with the same Gaussian (Agarwal et al.
    2021, via Stein's lemma).

    Parameters
    ----------
    model : torch.nn.Module or TorchModel
        A differentiable model.
    explainer : None, Saliency, GradientXInput or IntegratedGradients (class or instance), default None
        The smoothed explainer; None means ``Saliency``. A class is used with its defaults;
        from an instance only the hyper-parameters are taken (the model is SmoothGrad's).
    n_samples : int or "auto", default 50
        Number of noisy copies per input. With ``antithetic=True`` copies come in pairs
        ``(x + eps, x - eps)`` and an odd number is rounded up. ``"auto"`` applies the rule
        below.
    noise_level : float, default 0.15
        Standard deviation of the noise, in the units set by ``noise_scale``. Smilkov et al.
        recommend 10-20% of the input range.
    noise_scale : {"range", "absolute"}, default "range"
        ``"range"``: ``sigma = noise_level * (x.max() - x.min())``, computed per input over all
        its features (Smilkov et al.); ``"absolute"``: ``sigma = noise_level`` for every input
        and feature (the parametrisation of Agarwal et al. and of captum's ``stdevs``).
    antithetic : bool, default True
        Use antithetic pairs ``+eps, -eps``: odd-order terms of the noise cancel exactly within a
        pair (SmoothGrad of a linear or quadratic model is exact for any sample count), which
        lowers the variance for nearly linear models.
    random_state : int, numpy.random.Generator or None, default None
        Seed of the noise; the same int gives the same result.
    batch_size : int or None, default None
        Largest number of model-input rows (noisy copies, or path points for IG) built and
        sent to ``model.gradient`` at once; overrides the wrapped explainer's ``batch_size``.

    Notes
    -----
    *Noise.* One standard normal matrix ``Z`` of shape (n_draws, *sample_shape) is drawn per
    call and shared by all inputs (common random numbers): input ``i`` uses
    ``x_i + sigma_i * Z_k`` (and ``x_i - sigma_i * Z_k``). So rows explained together equal rows
    explained one by one, and differences between inputs are not blurred by independent noise.

    *Standard errors.* ``Explanation.stderr`` is the standard error of the mean over the
    independent draws, ``std(d_k, ddof=1) / sqrt(m)``, where ``d_k`` is the attribution of
    one draw -- the average over an antithetic pair counts as one draw -- and ``m`` the number
    of draws (stderr is None when ``m < 2``).

    *n_samples="auto".* Starting from 32 copies, the number of draws is doubled until, for
    each input separately, ``max_j stderr_j <= 0.05 * max_j |phi_j|`` (the largest standard
    error is at most 5% of the largest attribution), with a cap of 4096 copies per input;
    inputs that hit the cap without meeting the rule trigger a
    :class:`~scrutiny.exceptions.ConvergenceWarning`. Every input uses a prefix of the same
    draw sequence, so the result of an input does not depend on the other inputs.
    (Constants: ``auto_start``, ``auto_rtol``, ``auto_max_samples``.)

    ``extras`` holds ``"noise_std"`` (sigma per input, shape (n_samples,)) and
    ``"n_samples_used"`` (copies per input, shape (n_samples,)); with ``"auto"`` also
    ``"converged"`` (bool, shape (n_samples,)).

    References
    ----------
    .. [1] Smilkov, Thorat, Kim, Viegas, Wattenberg (2017). SmoothGrad: removing noise by
       adding noise. arXiv:1706.03825.
    .. [2] Agarwal, Jabbari, Agarwal, Upadhyay, Wu, Lakkaraju (2021). Towards the unification
       and robustness of perturbation and gradient based explanations. ICML.

    Examples
    --------
    >>> import torch
    >>> from scrutiny.attribution.gradient import SmoothGrad, IntegratedGradients
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    >>> e = SmoothGrad(net, n_samples=64, random_state=0).explain(torch.ones(4, 3))
    >>> e.values.shape == e.stderr.shape == (4, 3)
    True
    >>> tunnel = SmoothGrad(net, explainer=IntegratedGradients, n_samples=8, random_state=0)
    >>> tunnel.explain(torch.ones(4, 3)).values.shape
    (4, 3)
    """

    requires: ClassVar[tuple[str, ...]] = ("gradient",)
    _constraints: ClassVar[dict[str, list]] = {
        "n_samples": [Interval(int, 1, None), Options("auto")],
        "noise_level": [Interval(float, 0, None)],
        "noise_scale": [Options("range", "absolute")],
        "antithetic": ["boolean"],
        "random_state": ["random_state"],
        "batch_size": [Interval(int, 1, None), None],
    }
    _hints: ClassVar[dict[str, str]] = {
        "n_samples": "SmoothGrad averages over at least 1 noisy copy (50 is typical; 'auto' picks it).",
        "noise_level": "Smilkov et al. recommend 0.1-0.2 of the input range (noise_scale='range').",
        "noise_scale": "'range' scales noise_level by each input's max - min; 'absolute' uses it as sigma.",
        "batch_size": _BATCH_HINT,
    }
    auto_start: ClassVar[int] = 32
    auto_rtol: ClassVar[float] = 0.05
    auto_max_samples: ClassVar[int] = 4096

    def __init__(
        self,
        model: Any,
        explainer: Any = None,
        *,
        n_samples: int | str = 50,
        noise_level: float = 0.15,
        noise_scale: str = "range",
        antithetic: bool = True,
        random_state: Any = None,
        batch_size: int | None = None,
    ):
        super().__init__(model)
        self.explainer = explainer
        self.n_samples = n_samples
        self.noise_level = noise_level
        self.noise_scale = noise_scale
        self.antithetic = antithetic
        self.random_state = random_state
        self.batch_size = batch_size

    # -- the wrapped explainer ---------------------------------------------------------------
    def _inner(self) -> Explainer:
        spec = Saliency if self.explainer is None else self.explainer
        if isinstance(spec, type) and issubclass(spec, _WRAPPABLE):
            cls, params = spec, {}
        elif isinstance(spec, _WRAPPABLE):
            cls, params = type(spec), spec.get_params()
            params.pop("model")
        else:
            raise InvalidParameterError(
                f"SmoothGrad: explainer must be None, Saliency, GradientXInput or IntegratedGradients "
                f"(a class or an instance); got {spec!r}. For a perturbation method, smooth its "
                "inputs yourself or use C-LIME, which targets the same expectation."
            )
        if self.batch_size is not None:
            params["batch_size"] = self.batch_size
        inner = cls(self.model, **params)
        inner._validate_params()
        return inner

    def _check(self, X: np.ndarray) -> None:
        self._inner()._check(X)

    # -- the estimator ---------------------------------------------------------------------
    def _sigma(self, X: np.ndarray) -> np.ndarray:
        if self.noise_scale == "absolute":
            return np.full(X.shape[0], float(self.noise_level))
        flat = X.reshape(X.shape[0], -1)
        return float(self.noise_level) * (flat.max(axis=1) - flat.min(axis=1))

    def _accumulate(
        self,
        inner: Explainer,
        X: np.ndarray,
        target: np.ndarray,
        baseline: np.ndarray | None,
        sigma: np.ndarray,
        rows: np.ndarray,
        n_draws: int,
        rng: np.random.Generator,
        stats: tuple[np.ndarray, np.ndarray, np.ndarray],
    ) -> None:
        """Draw ``n_draws`` new noise vectors, apply them to inputs ``rows`` and merge the
        per-draw attributions into the running (count, mean, M2) statistics (Chan et al.)."""
        count, mean, m2 = stats
        copies = 2 if self.antithetic else 1
        shape, nd = X.shape[1:], X.ndim
        expansion = inner.n_steps if isinstance(inner, IntegratedGradients) else 1
        capacity = max(1, _block_rows(self.batch_size, int(np.prod(shape))) // (copies * expansion))
        chunk = min(n_draws, capacity)  # draws per noise block: independent of the inputs
        group = max(1, capacity // chunk)  # inputs per block
        signs = np.array([1.0, -1.0][:copies])
        # noisy copies are drawn and built in the model's own dtype (float32 for torch: half
        # the memory traffic, no conversion before the model call)
        dt = np.float32 if native_dtype(self.model) == np.float32 else np.float64
        Xd = X.astype(dt, copy=False)
        for d0 in range(0, n_draws, chunk):
            Z = rng.standard_normal((min(chunk, n_draws - d0),) + shape, dtype=dt)
            kb = Z.shape[0]
            for g0 in range(0, len(rows), group):
                sel = rows[g0 : g0 + group]
                g = len(sel)
                # (g, kb, copies, *shape): x_i + s * sigma_i * Z_k
                ones = (1,) * len(shape)
                scale = (sigma[sel].reshape((g, 1, 1) + ones) * signs.reshape((1, 1, copies) + ones)).astype(dt)
                noisy = (Xd[sel][:, None, None] + scale * Z[None, :, None]).reshape((g * kb * copies,) + shape)
                reps = kb * copies
                base = None
                if baseline is not None:
                    base = baseline if baseline.shape[0] == 1 else np.repeat(baseline[sel], reps, axis=0)
                values = inner._attribute(noisy, np.repeat(target[sel], reps), base)
                draws = values.reshape((g, kb, copies) + shape).mean(axis=2)  # one value per draw
                block_mean = draws.mean(axis=1)
                block_m2 = ((draws - block_mean[:, None]) ** 2).sum(axis=1)
                n_a = _expand(count[sel].astype(np.float64), nd)
                n_ab = n_a + kb
                delta = block_mean - mean[sel]
                mean[sel] += delta * (kb / n_ab)
                m2[sel] += block_m2 + delta**2 * (n_a * kb / n_ab)
                count[sel] += kb

    def _explain(self, X: np.ndarray, target: np.ndarray, rng: np.random.Generator) -> RawAttribution:
        inner = self._inner()
        baseline = inner._resolve_baseline(X)
        sigma = self._sigma(X)
        copies = 2 if self.antithetic else 1
        n = X.shape[0]
        stats = (np.zeros(n, dtype=np.int64), np.zeros(X.shape), np.zeros(X.shape))
        count, mean, m2 = stats
        extras: dict[str, Any] = {"noise_std": sigma}
        every = np.arange(n)
        if self.n_samples != "auto":
            n_draws = -(-int(self.n_samples) // copies)
            self._accumulate(inner, X, target, baseline, sigma, every, n_draws, rng, stats)
        else:
            done, todo = 0, max(1, self.auto_start // copies)
            cap = max(1, self.auto_max_samples // copies)
            active = every
            converged = np.zeros(n, dtype=bool)
            while active.size:
                self._accumulate(inner, X, target, baseline, sigma, active, todo - done, rng, stats)
                done = todo
                se = np.sqrt(m2[active] / (done - 1) / done).reshape(len(active), -1)
                scale = np.abs(mean[active]).reshape(len(active), -1).max(axis=1)
                ok = se.max(axis=1) <= self.auto_rtol * scale
                converged[active[ok]] = True
                active = active[~ok]
                if done >= cap:
                    break
                todo = min(2 * done, cap)
            if active.size:
                warnings.warn(
                    f"SmoothGrad: n_samples='auto' reached the cap of {self.auto_max_samples} noisy "
                    f"copies for {active.size} of {n} input(s) without the largest standard error "
                    f"falling below {self.auto_rtol:.0%} of the largest attribution. Their attributions "
                    "are close to zero relative to the noise; see stderr, or lower noise_level.",
                    ConvergenceWarning,
                    stacklevel=3,
                )
            extras["converged"] = converged
        extras["n_samples_used"] = count * copies
        stderr = None
        if count.min() >= 2:
            stderr = np.sqrt(m2 / _expand((count - 1) * count, X.ndim).astype(np.float64))
        return RawAttribution(values=mean, stderr=stderr, extras=extras)
