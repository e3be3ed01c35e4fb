"""GradientSHAP (expected gradients), with captum's ``GradientShap`` semantics.

References
----------
.. [1] Lundberg, Lee (2017). A unified approach to interpreting model predictions. NeurIPS
   (GradientExplainer in the shap package).
.. [2] Erion, Janizek, Sturmfels, Lundberg, Lee (2021). Improving performance of deep learning
   models with axiomatic attribution priors and expected gradients. Nature Machine
   Intelligence.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import numpy as np

from .._validation import Interval, Options, check_array
from ..exceptions import InvalidParameterError
from ._base import Explainer, RawAttribution
from ._gradient import BATCH_HINT, FEATURE_NAMES_CONSTRAINT, SPACE_HINT, SPACES, block_rows, expand, resolve_space

__all__ = ["GradientSHAP", "GradientSHAPDesign"]


class GradientSHAPDesign(NamedTuple):
    """The random draws of one ``explain`` call, shared by every input (common random numbers)."""

    index: np.ndarray  # (n_samples,) rows of the background used as baselines
    alpha: np.ndarray  # (n_samples,) path positions in [0, 1)
    noise: np.ndarray | None  # (n_samples, *sample_shape) Gaussian noise added to the input, or None


class GradientSHAP(Explainer):
    """GradientSHAP: ``phi = mean_s (x + e_s - b_s) * grad f(a_s (x + e_s) + (1 - a_s) b_s)``.

    Each of ``n_samples`` terms takes a baseline ``b_s`` drawn uniformly (with replacement)
    from ``background``, a path position ``a_s ~ U(0, 1)`` and Gaussian noise
    ``e_s ~ N(0, stdevs^2)`` added to the input (captum's ``GradientShap``: SmoothGrad noise
    over an input-baseline-times-gradient at a random point of the path). With
    ``stdevs=0`` this is expected gradients, an unbiased estimate of Integrated Gradients
    averaged over the background, whose expectation sums to ``f(x) - E_b f(b)``.

    Parameters
    ----------
    model : torch.nn.Module or TorchModel
        A differentiable model.
    background : array-like of shape (n_background, *sample_shape) or sample_shape
        The reference distribution baselines are drawn from (e.g. 50-200 training rows).
    n_samples : int, default 50
        Number of (baseline, position, noise) draws per input; the error of the mean shrinks
        like ``1/sqrt(n_samples)`` (``stderr``). captum's default is 5.
    stdevs : float, default 0.0
        Standard deviation of the noise added to the input (captum's ``stdevs``).
    space : {"auto", "raw", "probability", "log_odds"}, default "auto"
        The differentiated output (``"auto"``: the module's own output, e.g. logits).
    batch_size : int or None, default None
        Largest number of path points sent to ``model.gradient`` at once (memory only).
    random_state : int, numpy.random.Generator or None, default None
        Seed of the draws.
    feature_names : sequence of str, optional
        One name per input value, recorded on the Explanation.

    Notes
    -----
    One design (baseline rows, positions, noise) is drawn per call and used for every input,
    so the same seed gives the same result and rows explained together equal rows explained
    one by one (captum draws a design per input). ``values`` have the shape of ``X``;
    ``stderr`` is the standard error of the mean over the draws; ``base_values`` is
    ``E_b f(b)`` over the whole background; ``extras["completeness_gap"]`` is
    ``sum(phi) - (f(x) - E_b f(b))``, a Monte Carlo error with mean zero when ``stdevs=0``.

    References
    ----------
    .. [1] Lundberg, Lee (2017). A unified approach to interpreting model predictions. NeurIPS.
    .. [2] Erion, Janizek, Sturmfels, Lundberg, Lee (2021). Improving performance of deep
       learning models with axiomatic attribution priors and expected gradients. Nature
       Machine Intelligence.

    Examples
    --------
    >>> import torch
    >>> from scrutiny.attribution import GradientSHAP
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    >>> e = GradientSHAP(net, torch.zeros(10, 3), n_samples=20, random_state=0).explain(torch.ones(4, 3))
    >>> e.values.shape, e.stderr.shape
    ((4, 3), (4, 3))
    """

    requires: ClassVar[tuple[str, ...]] = ("gradient",)
    _constraints: ClassVar[dict[str, list]] = {
        "background": ["array-like"],
        "n_samples": [Interval(int, 1, None)],
        "stdevs": [Interval(float, 0, None)],
        "space": [Options(*SPACES)],
        "batch_size": [Interval(int, 1, None), None],
        "random_state": ["random_state"],
        "feature_names": FEATURE_NAMES_CONSTRAINT,
    }
    _hints: ClassVar[dict[str, str]] = {
        "background": "Pass training rows, e.g. X_train[:100] (GradientSHAP draws its baselines from them).",
        "n_samples": "GradientSHAP needs at least 1 draw per input (50 is typical).",
        "stdevs": "0.0 gives expected gradients; captum's examples use 0.09 for images in [0, 1].",
        "space": SPACE_HINT,
        "batch_size": BATCH_HINT,
    }

    def __init__(
        self,
        model: Any,
        background: Any = None,
        *,
        n_samples: int = 50,
        stdevs: float = 0.0,
        space: str = "auto",
        batch_size: int | None = None,
        random_state: Any = None,
        feature_names: Any = None,
    ):
        super().__init__(model)
        self.background = background
        self.n_samples = n_samples
        self.stdevs = stdevs
        self.space = space
        self.batch_size = batch_size
        self.random_state = random_state
        self.feature_names = feature_names

    def _background(self, X: np.ndarray) -> np.ndarray:
        if hasattr(self.background, "detach") and hasattr(self.background, "cpu"):
            bg = check_array(self.background.detach().cpu().numpy(), "background", min_samples=1)
        else:
            bg = check_array(self.background, "background", min_samples=1)
        shape = X.shape[1:]
        if bg.shape == shape:
            return bg[None]
        if bg.shape[1:] != shape:
            raise InvalidParameterError(
                f"GradientSHAP: background must have shape (n_background, *{shape}) or {shape} to match X; "
                f"got {bg.shape}. Pass rows of the training data, e.g. X_train[:100]."
            )
        return bg

    def _check(self, X: np.ndarray) -> None:
        self._background(X)

    def _design(self, rng: np.random.Generator, n_background: int, sample_shape: tuple) -> GradientSHAPDesign:
        """Draw the baselines' rows, the path positions and the noise (in this order)."""
        index = rng.integers(0, n_background, size=self.n_samples)
        alpha = rng.uniform(0.0, 1.0, size=self.n_samples)
        noise = None
        if self.stdevs > 0:
            noise = float(self.stdevs) * rng.standard_normal((self.n_samples,) + tuple(sample_shape))
        return GradientSHAPDesign(index=index, alpha=alpha, noise=noise)

    def _explain(self, X: np.ndarray, target: np.ndarray, rng: Any) -> RawAttribution:
        bg = self._background(X)
        design = self._design(rng, bg.shape[0], X.shape[1:])
        space = resolve_space(self.space)
        n, S, nd = X.shape[0], self.n_samples, X.ndim
        total_sum = np.zeros(X.shape, dtype=np.float64)
        total_sq = np.zeros(X.shape, dtype=np.float64)
        shift = np.zeros(X.shape, dtype=np.float64)
        rows = block_rows(self.batch_size, int(np.prod(X.shape[1:])))
        # Flattened (input, draw) index, input-major; each block is a contiguous range of it.
        for start in range(0, n * S, rows):
            idx = np.arange(start, min(start + rows, n * S))
            i, s = np.divmod(idx, S)
            x = X[i] if design.noise is None else X[i] + design.noise[s]
            b = bg[design.index[s]]
            a = expand(design.alpha[s], nd)
            grad = self.model.gradient(a * x + (1.0 - a) * b, target[i], space=space)
            term = (x - b) * grad
            first = s == 0  # input-major order: an input's first draw comes before its others
            shift[i[first]] = term[first]
            term -= shift[i]  # shifted sums: the variance of equal terms is exactly zero
            starts = np.flatnonzero(np.r_[True, i[1:] != i[:-1]])
            total_sum[i[starts]] += np.add.reduceat(term, starts, axis=0)
            total_sq[i[starts]] += np.add.reduceat(term * term, starts, axis=0)
        mean_shifted = total_sum / S
        values = shift + mean_shifted
        stderr = None
        if S > 1:
            var = np.maximum(total_sq - S * mean_shifted * mean_shifted, 0.0) / (S - 1)
            stderr = np.sqrt(var / S)
        f_x = _outputs(self.model, X, space)[np.arange(n), target]
        base = _outputs(self.model, bg, space).mean(axis=0)[target]
        gap = values.reshape(n, -1).sum(axis=1) - (f_x - base)
        return RawAttribution(values=values, base_values=base, stderr=stderr, extras={"completeness_gap": gap})


def _outputs(model: Any, X: np.ndarray, space: str) -> np.ndarray:
    """All outputs of ``X`` in the differentiated ``space``, shape (n, n_outputs)."""
    if space == "raw":
        return model.predict(X)
    if space == "probability":
        return model.predict_proba(X)
    return model.predict_log_odds(X)
