"""The sampler's state types: hyper-parameters, sampler settings, data and the Markov-chain state.

(``state.py``: the name ``model.py`` would clash with :mod:`scrutiny.models`, the black-box adapters.)

The model (Guo et al. 2018, corrected as in the scrutiny DMM-MEN specification): a truncated
stick-breaking mixture of ``J`` linear regressions whose coefficient vectors get one of ``K``
Bayesian elastic-net priors,

.. code-block:: text

    z_i | pi           ~ Cat(pi),               pi_j = u_j prod_{l<j} (1 - u_l), u_j ~ Beta(1, alpha), u_J = 1
    y_i | z_i = j      ~ N(b0_j + x_i' beta_j, sigma2_j)
    alpha              ~ Gamma(e, rate f)
    sigma2_j           ~ InvGamma(a, b)
    b0_j               ~ N(0, s0^2)                             (unpenalised intercept)
    c_j | w            ~ Cat(w),                w ~ Dir(alpha_e, ..., alpha_e)
    beta_jl | c_j = k  ~ EN(lam1_k, lam2_k, sigma2_j)          (Li & Lin 2010; Hans 2011)
    lam1_k ~ Gamma(L, rate V/2),  lam2_k ~ Gamma(R, rate V/2)

with the scale-mixture augmentation ``beta_jl | tau_jl ~ N(0, sigma2_j (1 - tau_jl) / lam2)``,
``tau_jl ~ InvGamma(1/2, lam1^2 / (8 lam2 sigma2_j))`` truncated to ``(0, 1)``. The sampler stores
``xi = tau / (1 - tau)`` instead of ``tau`` (``1 / (1 - tau) = 1 + xi`` keeps full precision when
``tau`` is close to 1).

The full conditionals are in :mod:`scrutiny.surrogate.conditionals`, the sweep and the driver
in :mod:`scrutiny.surrogate.mcmc`.

References
----------
Guo, W., Huang, S., Tao, Y., Xing, X. & Lin, L. (2018). Explaining deep learning models - a
Bayesian non-parametric approach. NeurIPS 31.
Ishwaran, H. & James, L. F. (2001). Gibbs sampling methods for stick-breaking priors. JASA 96.
Li, Q. & Lin, N. (2010). The Bayesian elastic net. Bayesian Analysis 5(1), 151-170.
Hans, C. (2011). Elastic net regression modeling with the orthant normal prior. JASA 106.
Bhattacharya, A., Chakraborty, A. & Mallick, B. K. (2016). Fast sampling with Gaussian scale
mixture priors in high-dimensional regression. Biometrika 103(4), 985-991.
van Dyk, D. A. & Park, T. (2008). Partially collapsed Gibbs samplers. JASA 103, 790-796.
Neal, R. M. (2003). Slice sampling. Annals of Statistics 31(3), 705-767.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import numpy as np

from .._validation import check_array
from ..exceptions import InvalidParameterError

__all__ = ["Priors", "Settings", "Data", "State", "make_data", "check_priors", "check_response"]


# --------------------------------------------------------------------------- containers


class Priors(NamedTuple):
    """Hyper-parameters of DMM-MEN (defaults: the authors' final code, spec section 1.3).

    Attributes
    ----------
    n_components : int
        ``J``, the stick-breaking truncation level (6).
    n_priors : int
        ``K``, the number of elastic-net priors (3).
    alpha_shape, alpha_rate : float
        ``alpha ~ Gamma(e, rate f)`` with ``e = 5``, ``f = 1``.
    sigma2_shape, sigma2_scale : float
        ``sigma2_j ~ InvGamma(a, b)`` with ``a = b = 1/2``.
    concentration : float or None
        ``alpha_e`` of ``w ~ Dir(alpha_e)``; ``None`` means ``1 / K``.
    lam1_shape, lam2_shape : float
        Shapes of ``lam1_k ~ Gamma(1, rate V/2)`` and ``lam2_k ~ Gamma(4, rate V/2)`` (by meaning:
        the paper swaps the letters ``L`` and ``R``).
    lam_v : float
        ``V`` (1); both penalties have rate ``V / 2``.
    intercept_scale : float or None
        Prior standard deviation ``s0`` of the unpenalised per-component intercept
        ``b0_j ~ N(0, s0^2)`` (10). ``None`` fits no intercept (the authors' code).
    """

    n_components: int = 6
    n_priors: int = 3
    alpha_shape: float = 5.0
    alpha_rate: float = 1.0
    sigma2_shape: float = 0.5
    sigma2_scale: float = 0.5
    concentration: Optional[float] = None
    lam1_shape: float = 1.0
    lam2_shape: float = 4.0
    lam_v: float = 1.0
    intercept_scale: Optional[float] = 10.0

    @property
    def alpha_e(self) -> float:
        """The Dirichlet concentration of ``w`` (``1 / K`` unless set)."""
        return 1.0 / self.n_priors if self.concentration is None else float(self.concentration)

    @property
    def lam_rate(self) -> float:
        """The common rate ``V / 2`` of the two penalty priors."""
        return self.lam_v / 2.0


class Settings(NamedTuple):
    """Tuning of the sampler (not part of the model).

    Attributes
    ----------
    beta_solver : {"auto", "cholesky", "bhattacharya"}
        How ``beta_j`` is drawn: ``"cholesky"`` factors the ``d x d`` posterior precision
        (``O(d^3)``); ``"bhattacharya"`` uses the ``O(n_j^2 d)`` sampler of Bhattacharya et al.
        (2016); ``"auto"`` picks the latter for components with ``n_j < d``.
    recompute_every : int
        The incrementally updated Gram matrices are recomputed exactly every this many sweeps.
    sigma2_width, lambda_width : float
        Multipliers of the initial slice widths on ``log sigma2`` and ``log lambda`` (the widths
        are scaled to the expected posterior spread, ``3 sqrt(2 / (n_j + p))`` and
        ``6 / sqrt(1 + p m_k)`` at the default 1: 5.8-6.6 evaluations per update on MNIST
        superpixel and Fashion-MNIST logit problems, against 6.3-8.1 at half these widths).
    lambda_steps : int
        Slice updates of each ``log lambda`` per sweep.
    slice_max_steps : int
        Stepping-out limit of the slice sampler.
    prior_switch_every : int
        Every this many sweeps, add the Metropolis-Hastings moves of components to and from
        priors of their own (:func:`~scrutiny.surrogate.conditionals.switch_priors`) after the
        ``c`` update (their cost: ``benchmarks/dmm_men.py``, section 5); 0 turns them off.
    label_swaps : int
        Label-swap proposals per component and sweep
        (:func:`~scrutiny.surrogate.conditionals.swap_labels`); 0 turns them off.
    penalty_rescales : int
        Joint rescalings of ``(lam1_k, beta_j : c_j = k)`` per sweep, right after the ``beta``
        draw (:func:`~scrutiny.surrogate.conditionals.rescale_penalties`); 0 turns them off.
    """

    beta_solver: str = "auto"
    recompute_every: int = 100
    sigma2_width: float = 1.0
    lambda_width: float = 1.0
    lambda_steps: int = 1
    slice_max_steps: int = 50
    prior_switch_every: int = 5
    label_swaps: int = 1
    penalty_rescales: int = 1


#: Problems with at least this many multiply-adds in one Gram recomputation (n d^2) recompute it
#: in float32, which halves the BLAS time at the paper's size (n = 7,000, d = 301: 6.3e8; timed by
#: benchmarks/dmm_men.py, section 5).
GRAM32_WORK = 10**8
#: Problems with fewer multiply-adds than this in one Gram recomputation (n d^2) recompute the
#: Gram matrices every sweep instead of updating them: the update's per-component BLAS calls
#: then cost more than the products (n = 1,000, d = 41: both timed by benchmarks/dmm_men.py, section 5).
SMALL_GRAM_WORK = 5 * 10**6


class Data(NamedTuple):
    """The data seen by the sampler.

    Attributes
    ----------
    X : ndarray of shape (n, p)
        Penalised features.
    y : ndarray of shape (n,)
        Responses (e.g. logits of a black box).
    design : ndarray of shape (n, d)
        ``[1, X]`` when an intercept is fitted (``d = p + 1``), else ``X`` (``d = p``).
    intercept : bool
        Whether column 0 of ``design`` is the unpenalised intercept.
    design32 : ndarray of shape (n, d), float32, or None
        A float32 copy of ``design`` for large problems (``n d^2 >= GRAM32_WORK``): the exact
        Gram recomputation then runs in float32 (half the time; relative error ~1e-6, far
        below the Monte Carlo error, and the Cholesky factorisations stay in float64 with
        adaptive jitter, as the specification allows). None: everything in float64.
    gram_total, xty_total : ndarray of shape (d, d) and (d,), or None
        ``design' design`` and ``design' y`` in float64, set with ``design32``: the largest
        component's statistics are then the totals minus the others' (a quarter or more of
        the recomputation saved).
    """

    X: np.ndarray
    y: np.ndarray
    design: np.ndarray
    intercept: bool
    design32: Optional[np.ndarray] = None
    gram_total: Optional[np.ndarray] = None
    xty_total: Optional[np.ndarray] = None

    @property
    def n(self) -> int:
        return int(self.X.shape[0])

    @property
    def p(self) -> int:
        return int(self.X.shape[1])


class State(NamedTuple):
    """One state of the DMM-MEN Markov chain (all arrays float64 unless noted).

    Attributes
    ----------
    z : ndarray of shape (n,), int64
        Component of each sample.
    log_pi : ndarray of shape (J,)
        ``log pi_j`` (the stick-breaking weights).
    log1m_u : ndarray of shape (J,)
        ``log(1 - u_j)``; the last entry is ``-inf`` (``u_J = 1``).
    alpha : float
        DP concentration.
    beta : ndarray of shape (J, p)
        Penalised coefficients.
    intercept : ndarray of shape (J,)
        Intercepts (zeros and never updated when the model has none).
    sigma2 : ndarray of shape (J,)
        Noise variances.
    xi : ndarray of shape (J, p)
        ``xi = tau / (1 - tau)``, the scale-mixture variables (``tau = xi / (1 + xi)``).
    c : ndarray of shape (J,), int64
        Elastic-net prior used by each component.
    w : ndarray of shape (K,)
        Weights of the elastic-net priors.
    lam1, lam2 : ndarray of shape (K,)
        Lasso and ridge penalties of each prior.
    gram : ndarray of shape (J, d, d)
        ``G_j = D_j' D_j`` over the samples in component ``j`` (``D`` the design).
    xty : ndarray of shape (J, d)
        ``D_j' y_j``.
    counts : ndarray of shape (J,), int64
        ``n_j``.
    fitted : ndarray of shape (n, J)
        ``b0_j + x_i' beta_j`` for every sample and component (cache of the current ``beta``).
    iteration : int
        Number of sweeps done.
    logdens : ndarray of shape (n, J) or None
        ``log pi_j + log N(y_i | fitted_ij, sigma2_j)`` at this state, left by
        :func:`~scrutiny.surrogate.mcmc.step` for the next sweep's allocation step (which would
        otherwise recompute what the sweep's log-likelihood just did); None when unknown.
        :func:`~scrutiny.surrogate.mcmc.with_data` clears it with the other caches.
    """

    z: np.ndarray
    log_pi: np.ndarray
    log1m_u: np.ndarray
    alpha: float
    beta: np.ndarray
    intercept: np.ndarray
    sigma2: np.ndarray
    xi: np.ndarray
    c: np.ndarray
    w: np.ndarray
    lam1: np.ndarray
    lam2: np.ndarray
    gram: np.ndarray
    xty: np.ndarray
    counts: np.ndarray
    fitted: np.ndarray
    iteration: int = 0
    logdens: Optional[np.ndarray] = None

    @property
    def pi(self) -> np.ndarray:
        """Mixture weights ``pi`` of shape (J,)."""
        return np.exp(self.log_pi)

    @property
    def tau(self) -> np.ndarray:
        """``tau = xi / (1 + xi)`` of shape (J, p)."""
        return self.xi / (1.0 + self.xi)

    @property
    def theta(self) -> np.ndarray:
        """Stacked ``[intercept, beta]`` (or ``beta``) of shape (J, d) matching the design."""
        return np.column_stack([self.intercept, self.beta]) if self.gram.shape[1] > self.beta.shape[1] else self.beta


def make_data(X: np.ndarray, y: np.ndarray, priors: Priors) -> Data:
    """Bundle validated ``X`` (n, p) and ``y`` (n,) with the design matrix the priors imply."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    intercept = priors.intercept_scale is not None
    design = np.ascontiguousarray(np.column_stack([np.ones(X.shape[0]), X]) if intercept else X)
    n, d = design.shape
    if n * d * d < GRAM32_WORK:
        return Data(X=X, y=y, design=design, intercept=intercept)
    return Data(X=X, y=y, design=design, intercept=intercept, design32=design.astype(np.float32),
                gram_total=design.T @ design, xty_total=design.T @ y)


def check_priors(priors: Priors) -> Priors:
    """Validate a :class:`Priors`; raise :class:`InvalidParameterError` naming the bad field."""
    if not isinstance(priors, Priors):
        raise InvalidParameterError(
            f"priors must be a scrutiny.surrogate.Priors; got {type(priors).__name__}. Use Priors(...)."
        )
    for name in ("n_components", "n_priors"):
        value = getattr(priors, name)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise InvalidParameterError(
                f"priors.{name} must be an int >= 1; got {value!r}. The defaults are J = 6 components, K = 3 priors."
            )
    positive = ["alpha_shape", "alpha_rate", "sigma2_shape", "sigma2_scale", "lam1_shape", "lam2_shape", "lam_v"]
    for name in positive + ["concentration", "intercept_scale"]:
        value = getattr(priors, name)
        if value is None and name in ("concentration", "intercept_scale"):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not (
            np.isfinite(value) and value > 0
        ):
            raise InvalidParameterError(
                f"priors.{name} must be a finite float > 0; got {value!r}. Every prior must be proper."
            )
    return priors


#: the largest |response| accepted: squared residuals summed over samples and chains stay finite
MAX_RESPONSE = 1e100


def check_response(y: Any, n: int) -> np.ndarray:
    """The responses ``y`` of a DMM-MEN fit as a float64 vector of ``n`` finite, non-constant values."""
    y = check_array(y, "y", ndim=(1, 2), allow_nan=True)
    if y.ndim == 2:
        if y.shape[1] != 1:
            raise InvalidParameterError(
                f"y must be one response per sample, shape (n_samples,); got shape {y.shape}. "
                "DMM-MEN explains one output at a time: pass the logit of one class, e.g. logits[:, c]."
            )
        y = y[:, 0]
    if y.shape[0] != n:
        raise InvalidParameterError(
            f"X and y must have the same number of samples; got X with {n} rows and y with {y.shape[0]}."
        )
    bad = ~np.isfinite(y)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        kind = "NaN" if np.isnan(y[first]) else "inf"
        raise InvalidParameterError(
            f"y contains {int(bad.sum())} non-finite response(s) (first: {kind} at index {first}). "
            "DMM-MEN needs finite responses; if y is the logit of a predicted probability, clip the "
            "probability to [1e-6, 1 - 1e-6] before taking the logit (p = 0 or 1 gives -inf/inf)."
        )
    peak = float(np.max(np.abs(y)))
    if peak > MAX_RESPONSE:
        raise InvalidParameterError(
            f"y holds responses as large as {peak:.3g}; DMM-MEN squares residuals and sums them, which overflows "
            f"float64 beyond about {MAX_RESPONSE:.0e} (NaN likelihoods and convergence diagnostics). Rescale y "
            f"(e.g. y / {10 ** np.floor(np.log10(peak)):.0e}) and scale the coefficients back: the mixture is "
            "linear in y."
        )
    spread = float(np.ptp(y))
    if spread <= 1e-12 * max(1.0, float(np.max(np.abs(y)))):
        raise InvalidParameterError(
            f"y is constant (every response equals {y[0]:.6g}); there is nothing to explain, since no "
            "feature changes the output. Check that y holds the model's outputs for varied inputs "
            "(e.g. the logit of the explained class, not the predicted label)."
        )
    return y
