"""``DMMMEN``: the Dirichlet-process mixture of regressions with multiple elastic nets.

A scikit-learn style estimator around the sampler in :mod:`scrutiny.surrogate.mcmc`: ``fit``
runs ``n_chains`` independent chains (own random streams), relabels every draw to one common
reference (Cron & West 2011), and stores posterior summaries and convergence diagnostics.

From a fitted surrogate to explanations (Guo et al. 2018, section 3.3 and 4):

* :meth:`DMMMEN.from_model` builds the paper's per-class problem from a black box: ``y`` is
  the clipped logit of the class probability, ``X`` the flattened inputs, optionally screened
  to the highest-variance features (mapped back to input positions);
* :meth:`DMMMEN.explain` explains samples by the coefficients of their most probable
  component, ``h* = argmax_h pi_h N(y | x' beta_h, sigma2_h)``;
* :meth:`DMMMEN.explain_global` returns one :class:`GlobalInsight` per occupied component:
  the top-k features ("generalizable insight"), their credible intervals and a heat map.

References
----------
Guo, W., Huang, S., Tao, Y., Xing, X. & Lin, L. (2018). Explaining deep learning models - a
Bayesian non-parametric approach. NeurIPS 31.
Ishwaran, H. & James, L. F. (2001). Gibbs sampling methods for stick-breaking priors. JASA 96.
Li, Q. & Lin, N. (2010). The Bayesian elastic net. Bayesian Analysis 5(1).
Hans, C. (2011). Elastic net regression modeling with the orthant normal prior. JASA 106.
Cron, A. J. & West, M. (2011). Efficient classification-based relabeling in mixture models.
The American Statistician 65(1).
Vehtari, A. et al. (2021). Rank-normalization, folding, and localization: an improved R-hat.
Bayesian Analysis 16(2).
"""

from __future__ import annotations

import contextlib
import time
import warnings
from typing import Any, ClassVar, Iterator

import numpy as np

from .._validation import (
    Interval,
    Options,
    check_array,
    check_is_fitted,
    spawn_generators,
    validate_params,
)
from ..exceptions import ConvergenceWarning, InvalidParameterError
from .conditionals import Priors, Settings
from .convergence import chain_diagnostics
from .._threads import blas_limits
from .mcmc import DEFAULT_STORE, init, load_kernels, run_chain
from .relabel import canonical_penalty_order, relabel_chains

__all__ = ["DMMMEN", "chain_pool"]

#: The process pool of an active :func:`chain_pool` block and its size.
_SHARED_POOL: tuple[Any, int] | None = None


@contextlib.contextmanager
def chain_pool(n_jobs: int) -> Iterator[None]:
    """Share one process pool among the fits inside the block.

    Every :class:`DMMMEN` fit with ``n_jobs`` equal to this ``n_jobs`` runs its chains in the
    block's pool instead of starting (and stopping) processes of its own: about 0.05 s saved per
    fit, a twentieth of a local explanation (:class:`DMMMENExplainer` wraps its images in one
    block). The compiled kernels are loaded before the workers start, so they inherit them.
    ``n_jobs <= 1`` and nested blocks change nothing.
    """
    global _SHARED_POOL
    if n_jobs <= 1 or _SHARED_POOL is not None:
        yield
        return
    from concurrent.futures import ProcessPoolExecutor

    load_kernels()
    with ProcessPoolExecutor(max_workers=n_jobs) as pool:
        _SHARED_POOL = (pool, n_jobs)
        try:
            yield
        finally:
            _SHARED_POOL = None

_POSITIVE = [Interval(float, 0, None, closed="neither")]
_ALTERNATE = ("kmeans", "one")  # the starts alternated by init="mixed"
#: Sweeps of each pilot chain (``init="pilot"``) at most: the log-likelihood of a k-means start
#: reaches its stationary level in 50-150 sweeps on CNN logits (n = 7,000, p = 300).
PILOT_SWEEPS = 100
#: Classification-EM iterations after k-means in every ``"kmeans"`` start (no merging, all
#: components kept): deterministic uphill moves of the partition that the sweep makes only by a
#: slow drift. On Trouser logits (n = 7,000, p = 300, 2 x 1,500 kept draws, 4 seeds) the log
#: joint, which had climbed by 300-500 nats over the kept draws of some chains, starts nearer its
#: stationary level: its R-hat went from 1.05-1.27 to 1.00-1.06, the log-likelihood's from
#: 1.03-1.15 to 1.03-1.11. The chains still drift: one 2,500-sweep benchmark run ended at 1.47.
#: The trade-off (single chains, 4 seeds each): without EM the log-likelihood is stationary
#: after 100-150 sweeps, against 400-700 with it (the EM's in-sample variances shrink the
#: smallest components to 16-90 samples, which the sweep regrows slowly), but the log joint,
#: dominated by sum_i log pi_{z_i}, then drifts for about 1,000 sweeps away from k-means's too
#: even sizes. Converged 1,500-sweep pilot fits: 4 of 10 seeds without EM, 3 of 7 with it.
KMEANS_EM_STEPS = 30


def _run_one(args):
    """Process-pool worker: one chain (module level so that it pickles).

    ``start`` is ``"kmeans"`` (the warm start of :func:`init`), ``"one"`` (every sample in one
    component; the sampler splits it as needed) or a :class:`State` to continue from."""
    rng, X, y, priors, n_iter, n_burnin, thin, settings, start, store = args
    state = start
    if isinstance(start, str):
        with blas_limits(1):  # as the chain: with two processes, multi-threaded BLAS oversubscribes
            if start == "one":
                state = init(rng, X, y, priors, z=np.zeros(X.shape[0], dtype=np.int64))
            else:  # "kmeans"
                state = init(rng, X, y, priors, n_em_steps=KMEANS_EM_STEPS)
    return run_chain(rng, X, y, priors, n_iter, n_burnin, thin, settings=settings, init_state=state,
                     store=store, blas_threads=1)


def _occupied_summary(x: np.ndarray, occupied: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and 95 % equal-tailed interval of every component's draws ``x`` (draws, J, ...) over
    the draws in which it is occupied (``occupied``, (draws, J)); over all draws for a component
    that never is. Returns arrays of shape (J, ...) and (J, ..., 2)."""
    mean = np.empty(x.shape[1:])
    ci = np.empty(x.shape[1:] + (2,))
    for h in range(x.shape[1]):
        xs = x[occupied[:, h], h] if occupied[:, h].any() else x[:, h]
        mean[h] = xs.mean(axis=0)
        ci[h] = np.moveaxis(np.percentile(xs, [2.5, 97.5], axis=0), 0, -1)
    return mean, ci


class DMMMEN:
    """Dirichlet-process regression mixture with multiple elastic nets (Guo et al. 2018).

    Approximates responses ``y`` (typically the logit of a black box's predicted probability)
    by a mixture of at most ``n_components`` linear regressions whose coefficients get one of
    ``n_priors`` Bayesian elastic-net priors; fitted by the corrected partially collapsed Gibbs
    sampler (see :mod:`scrutiny.surrogate.mcmc`).

    Parameters
    ----------
    n_components : int, default=6
        Truncation level ``J`` of the stick-breaking prior (upper bound on the number of regimes).
    n_priors : int, default=3
        Number ``K`` of elastic-net priors.
    n_iter : int, default=2000
        Sweeps per chain, burn-in included.
    n_burnin : int, default=1000
        Sweeps discarded at the start of each chain.
    n_chains : int, default=2
        Independent chains (each with its own random stream).
    thin : int, default=1
        Keep every ``thin``-th post-burn-in draw (diagnostics of label-invariant quantities
        always use every sweep).
    fit_intercept : bool, default=True
        Add an unpenalised intercept per component with prior ``N(0, intercept_scale^2)``.
    intercept_scale : float, default=10.0
    alpha_shape, alpha_rate : float, default=5.0, 1.0
        ``alpha ~ Gamma(e, rate f)``.
    sigma2_shape, sigma2_scale : float, default=0.5, 0.5
        ``sigma2_j ~ InvGamma(a, b)``.
    lambda1_shape, lambda2_shape : float, default=1.0, 4.0
        Shapes of the lasso and ridge penalty priors ``Gamma(shape, rate V/2)``.
    lambda_v : float, default=1.0
        ``V``.
    concentration : float or None, default=None
        ``alpha_e`` of ``w ~ Dir(alpha_e)``; ``None`` means ``1 / n_priors``.
    rhat_threshold : float, default=1.05
        A :class:`~scrutiny.exceptions.ConvergenceWarning` is issued when the R-hat of a
        label-invariant quantity exceeds it.
    init : {"pilot", "kmeans", "one", "mixed"}, default="pilot"
        Starting state of each chain. ``"kmeans"``: the warm start of
        :func:`~scrutiny.surrogate.mcmc.init`, ``n_components`` k-means clusters on ``(x, y)``
        with every component occupied, refined by ``KMEANS_EM_STEPS`` (30) classification-EM
        iterations, drawn independently for every chain. The sweep empties
        superfluous components within a few hundred sweeps but grows a missing one slowly, so
        starting full is faster: on a CNN's logits on Fashion-MNIST (n = 7,000, p = 300) the
        log-likelihood reaches its stationary level in about 150 sweeps. Some k-means starts
        land in a worse local mode, though (there, one of two chains stayed 300 log-likelihood
        units below the other for 1,800 sweeps). ``"pilot"``: ``n_pilots`` short pilot chains
        (``min(100, n_burnin // 2)`` sweeps, at least 10), each from its own k-means start; every
        chain continues from the final state of the pilot with the highest mean log-likelihood
        over its second half (``pilot_loglik_``), with its own stream. The chains then agree on
        the best mode found, and R-hat measures the mixing within it. ``"one"``: every sample in
        one component. ``"mixed"``: chains 0, 2, ... k-means, chains 1, 3, ... one component.
    n_pilots : int, default=4
        Pilot chains for ``init="pilot"`` (they run ``n_jobs`` at a time).
    chain_selection : {"all", "best"}, default="all"
        ``"all"`` pools every chain. ``"best"`` pools only the chains whose mean post-burn-in
        log-likelihood is within one within-chain standard deviation of the best chain's: chains
        in the same mode pass, a chain stuck in a clearly worse mode (e.g. one that explains a
        strong feature by two intercepts instead of a slope) is dropped rather than averaged in.
        (The log joint is a worse criterion here: the prior draws of empty components make it
        noisy.)
        Relabelling across modes gives meaningless averages; "best" is a restart strategy, not
        a cure for poor mixing (R-hat is then computed from the kept chains only).
    n_jobs : int, default=1
        Chains run in this many processes (1: sequentially in this process).
    random_state : int, numpy.random.Generator or None
        Seed; chains get independent streams spawned from it.

    Attributes
    ----------
    weights_ : ndarray of shape (J,)
        Posterior mean mixture weights ``pi``.
    occupancy_ : ndarray of shape (J,)
        Fraction of the kept draws in which each (relabelled) component has at least one sample.
    coef_ : ndarray of shape (J, p)
        Posterior mean coefficients of each (relabelled) component, given that it is occupied:
        over the draws in which it has samples. (In the others its parameters are draws from
        their prior, whose ``sigma2 ~ IG(0.5, 0.5)`` has no finite mean; averaging them in would
        blur the regression the component stands for.) A component never occupied
        (``occupancy_ == 0``) is summarised over all draws, i.e. its prior.
    coef_ci_ : ndarray of shape (J, p, 2)
        95 % equal-tailed credible intervals of the coefficients, over the same draws.
    intercept_, sigma2_ : ndarray of shape (J,)
        Posterior means over the same draws (``intercept_`` is zero without an intercept).
    intercept_ci_, sigma2_ci_ : ndarray of shape (J, 2)
    allocation_proba_ : ndarray of shape (n_samples, J)
        ``P(z_i = h | data)``: relabelled allocations averaged over draws.
    responsibilities_ : ndarray of shape (n_samples, J)
        Plug-in responsibilities ``prop. to weights_h N(y_i | x_i' coef_h + intercept_h, sigma2_h)``
        (the paper's assignment rule); 0 for a component never occupied.
    labels_ : ndarray of shape (n_samples,)
        ``argmax`` of ``allocation_proba_``.
    alpha_ : float
        Posterior mean DP concentration.
    lambda1_, lambda2_, penalty_weights_ : ndarray of shape (K,)
        Posterior means of the penalties and their weights, priors ordered by ``lam1 / lam2``.
    penalty_proba_ : ndarray of shape (J, K)
        ``P(c_h = k | data)``.
    coef_mixture_ : ndarray of shape (p,), intercept_mixture_ : float
        Posterior mean of ``sum_h pi_h beta_h`` (``sum_h pi_h b0_h``), used by :meth:`predict`;
        Rao-Blackwellised: a component left empty by a draw's allocations contributes its prior
        mean, 0, instead of its prior draw (same posterior mean, finite Monte Carlo variance).
    rhat_, ess_ : dict
        Rank-normalised split R-hat and bulk ESS of ``loglik``, ``logjoint``, ``alpha``,
        ``n_occupied`` (label-invariant) and of relabelled ``pi`` and ``sigma2``.
    diagnostics_ : dict
        Everything from :func:`~scrutiny.surrogate.convergence.chain_diagnostics`.
    converged_ : bool
        Whether every label-invariant R-hat is below ``rhat_threshold``.
    chain_loglik_ : ndarray of shape (n_chains,)
        Mean post-burn-in log-likelihood of every chain.
    pilot_loglik_ : ndarray of shape (n_pilots,) or None
        ``init="pilot"``: mean log-likelihood of every pilot over its second half (the chains
        start from the best); None otherwise.
    chains_used_ : ndarray of int
        The chains pooled in the summaries (all unless ``chain_selection="best"``).
    draws_ : list of dict
        Relabelled draws of each chain (see :class:`~scrutiny.surrogate.mcmc.ChainResult`).
    trace_ : list of dict
        Per-sweep traces of each chain.
    reference_ : tuple
        ``(chain, draw)`` used as the relabelling reference.
    n_features_in_ : int
    fit_time_ : float
        Seconds spent in ``fit``.
    model_ : Model or None
        The wrapped black box (set by :meth:`from_model`; ``None`` after a plain ``fit``).
    target_class_ : int or None
        The explained class (:meth:`from_model`).
    clip_ : float or None
        Probability clipping used for the logits (:meth:`from_model`).
    input_shape_ : tuple of int or None
        Per-sample shape of the model's input (:meth:`from_model`).
    feature_indices_ : ndarray of shape (n_features_in_,), int, or None
        Flat input position of each column of ``coef_`` (:meth:`from_model`; ascending).
    n_input_features_ : int or None
        ``prod(input_shape_)`` (:meth:`from_model`).

    Notes
    -----
    After :meth:`from_model`, ``predict``, ``component_proba``, ``predict_component`` and
    ``explain`` take inputs in the model's input shape ``(n, *input_shape_)`` (or flattened,
    ``(n, prod(input_shape_))``, or already screened, ``(n, n_features_in_)``): they are
    flattened and mapped through ``feature_indices_``.

    References
    ----------
    Guo et al. (2018), NeurIPS; Li & Lin (2010); Hans (2011); Ishwaran & James (2001);
    Cron & West (2011); Bhattacharya et al. (2016); van Dyk & Park (2008); Neal (2003);
    Vehtari et al. (2021).

    Examples
    --------
    >>> import numpy as np
    >>> from scrutiny.surrogate import DMMMEN
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 4))
    >>> y = np.where(rng.random(300) < 0.5, X @ [2, 0, 0, 1] - 4, X @ [0, -1, 1, 0] + 4)
    >>> model = DMMMEN(n_iter=300, n_burnin=150, random_state=0).fit(X, y)  # doctest: +SKIP
    >>> model.coef_.shape                                                     # doctest: +SKIP
    (6, 4)
    """

    def __init__(
        self,
        n_components: int = 6,
        n_priors: int = 3,
        *,
        n_iter: int = 2000,
        n_burnin: int = 1000,
        n_chains: int = 2,
        thin: int = 1,
        fit_intercept: bool = True,
        intercept_scale: float = 10.0,
        alpha_shape: float = 5.0,
        alpha_rate: float = 1.0,
        sigma2_shape: float = 0.5,
        sigma2_scale: float = 0.5,
        lambda1_shape: float = 1.0,
        lambda2_shape: float = 4.0,
        lambda_v: float = 1.0,
        concentration: float | None = None,
        rhat_threshold: float = 1.05,
        init: str = "pilot",
        n_pilots: int = 4,
        chain_selection: str = "all",
        n_jobs: int = 1,
        random_state: Any = None,
    ) -> None:
        self.n_components = n_components
        self.n_priors = n_priors
        self.n_iter = n_iter
        self.n_burnin = n_burnin
        self.n_chains = n_chains
        self.thin = thin
        self.fit_intercept = fit_intercept
        self.intercept_scale = intercept_scale
        self.alpha_shape = alpha_shape
        self.alpha_rate = alpha_rate
        self.sigma2_shape = sigma2_shape
        self.sigma2_scale = sigma2_scale
        self.lambda1_shape = lambda1_shape
        self.lambda2_shape = lambda2_shape
        self.lambda_v = lambda_v
        self.concentration = concentration
        self.rhat_threshold = rhat_threshold
        self.init = init
        self.n_pilots = n_pilots
        self.chain_selection = chain_selection
        self.n_jobs = n_jobs
        self.random_state = random_state

    # ------------------------------------------------------------------ parameters

    _constraints: ClassVar[dict[str, list]] = {
        "n_components": [Interval(int, 1, None)],
        "n_priors": [Interval(int, 1, None)],
        "n_iter": [Interval(int, 1, None)],
        "n_burnin": [Interval(int, 0, None)],
        "n_chains": [Interval(int, 1, None)],
        "thin": [Interval(int, 1, None)],
        "fit_intercept": ["boolean"],
        "intercept_scale": _POSITIVE,
        "alpha_shape": _POSITIVE,
        "alpha_rate": _POSITIVE,
        "sigma2_shape": _POSITIVE,
        "sigma2_scale": _POSITIVE,
        "lambda1_shape": _POSITIVE,
        "lambda2_shape": _POSITIVE,
        "lambda_v": _POSITIVE,
        "concentration": _POSITIVE + [None],
        "rhat_threshold": [Interval(float, 1, None, closed="neither")],
        "init": [Options("pilot", "kmeans", "one", "mixed")],
        "n_pilots": [Interval(int, 1, None)],
        "chain_selection": [Options("all", "best")],
        "n_jobs": [Interval(int, 1, None)],
        "random_state": ["random_state"],
    }
    _hints: ClassVar[dict[str, str]] = {
        "n_components": "It is the truncation level J (6 in the paper).",
        "n_iter": "n_iter counts all sweeps, burn-in included (e.g. 2000).",
        "n_chains": "Use at least 2 chains for R-hat.",
        "rhat_threshold": "1.01 is strict, 1.05 tolerable.",
    }

    def get_params(self, deep: bool = True) -> dict:
        """Constructor parameters by name (scikit-learn protocol)."""
        return {name: getattr(self, name) for name in self._constraints}

    def set_params(self, **params) -> DMMMEN:
        """Set constructor parameters (scikit-learn protocol)."""
        for name, value in params.items():
            if name not in self._constraints:
                raise InvalidParameterError(
                    f"DMMMEN has no parameter {name!r}; valid parameters are {sorted(self._constraints)}."
                )
            setattr(self, name, value)
        return self

    def _priors(self) -> Priors:
        return Priors(
            n_components=int(self.n_components),
            n_priors=int(self.n_priors),
            alpha_shape=float(self.alpha_shape),
            alpha_rate=float(self.alpha_rate),
            sigma2_shape=float(self.sigma2_shape),
            sigma2_scale=float(self.sigma2_scale),
            concentration=None if self.concentration is None else float(self.concentration),
            lam1_shape=float(self.lambda1_shape),
            lam2_shape=float(self.lambda2_shape),
            lam_v=float(self.lambda_v),
            intercept_scale=float(self.intercept_scale) if self.fit_intercept else None,
        )

    # ------------------------------------------------------------------ validation

    @staticmethod
    def _check_y(y: Any, n: int) -> np.ndarray:
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
        spread = float(np.ptp(y))
        if spread <= 1e-12 * max(1.0, float(np.max(np.abs(y)))):
            raise InvalidParameterError(
                f"y is constant (every response equals {y[0]:.6g}); there is nothing to explain, since no "
                "feature changes the output. Check that y holds the model's outputs for varied inputs "
                "(e.g. the logit of the explained class, not the predicted label)."
            )
        return y

    # ------------------------------------------------------------------ fit

    def fit(self, X: Any, y: Any) -> DMMMEN:
        """Run the chains on ``(X, y)`` and store posterior summaries.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs (``n_features > n_samples`` is fine: small components use the
            Bhattacharya et al. sampler).
        y : array-like of shape (n_samples,)
            Responses, e.g. ``logit g_c(X)``; must be finite and not constant.

        Returns
        -------
        self
        """
        validate_params("DMMMEN", self.get_params(), self._constraints, self._hints)
        if self.n_burnin >= self.n_iter:
            raise InvalidParameterError(
                f"DMMMEN: n_burnin must be smaller than n_iter; got n_burnin={self.n_burnin}, "
                f"n_iter={self.n_iter}. n_iter counts all sweeps, burn-in included."
            )
        if (self.n_iter - self.n_burnin) // self.thin < 4:
            raise InvalidParameterError(
                f"DMMMEN: (n_iter - n_burnin) / thin must leave at least 4 stored draws per chain; got "
                f"n_iter={self.n_iter}, n_burnin={self.n_burnin}, thin={self.thin}."
            )
        for name in self._FROM_MODEL_ATTRS:  # a plain fit forgets the black box of from_model
            setattr(self, name, None)
        X = check_array(X, "X", ndim=2, min_samples=2)
        if X.shape[1] == 0:
            raise InvalidParameterError(f"X must have at least one feature; got shape {X.shape}.")
        y = self._check_y(y, X.shape[0])
        start = time.perf_counter()
        priors = self._priors()
        settings = Settings()
        n_pilots = int(self.n_pilots) if self.init == "pilot" else 0
        rngs = spawn_generators(self.random_state, self.n_chains + n_pilots)
        rngs, pilot_rngs = rngs[: self.n_chains], rngs[self.n_chains :]
        self.pilot_loglik_ = None
        if self.init == "pilot":
            starts = [self._best_pilot(pilot_rngs, X, y, priors, settings)] * len(rngs)
        else:
            starts = [_ALTERNATE[c % 2] if self.init == "mixed" else self.init for c in range(len(rngs))]
        results = self._map_chains([
            (g, X, y, priors, int(self.n_iter), int(self.n_burnin), int(self.thin), settings, st, DEFAULT_STORE)
            for g, st in zip(rngs, starts)
        ])
        traces = [np.asarray(r.trace["loglik"][self.n_burnin :], dtype=float) for r in results]
        self.chain_loglik_ = np.array([t.mean() for t in traces])
        keep = np.arange(len(results))
        if self.chain_selection == "best" and len(results) > 1:
            best = int(np.argmax(self.chain_loglik_))
            keep = np.flatnonzero(self.chain_loglik_ >= self.chain_loglik_[best] - traces[best].std())
        self.chains_used_ = keep
        self._summarise([results[c] for c in keep], X, y, priors)
        self.n_features_in_ = X.shape[1]
        self.fit_time_ = time.perf_counter() - start
        return self

    def _best_pilot(self, rngs, X, y, priors, settings):
        """Run one short pilot chain per generator, each from its own k-means start, record
        their mean log-likelihood over the second half in ``pilot_loglik_`` and return the final
        state of the best."""
        sweeps = max(10, min(PILOT_SWEEPS, int(self.n_burnin) // 2))
        pilots = self._map_chains([
            (g, X, y, priors, sweeps, sweeps - 1, 1, settings, "kmeans", ("alpha",)) for g in rngs
        ])
        self.pilot_loglik_ = np.array([r.trace["loglik"][sweeps // 2 :].mean() for r in pilots])
        return pilots[int(np.argmax(self.pilot_loglik_))].state

    def _map_chains(self, args: list) -> list:
        """Run :func:`_run_one` over ``args``, in ``n_jobs`` processes when asked."""
        if self.n_jobs > 1 and len(args) > 1:
            from concurrent.futures import ProcessPoolExecutor

            if _SHARED_POOL is not None and _SHARED_POOL[1] == self.n_jobs:
                return list(_SHARED_POOL[0].map(_run_one, args))
            load_kernels()  # forked workers inherit the compiled kernels instead of each loading them
            with ProcessPoolExecutor(max_workers=min(self.n_jobs, len(args))) as pool:
                return list(pool.map(_run_one, args))
        return [_run_one(a) for a in args]

    def _summarise(self, results, X, y, priors) -> None:
        J = priors.n_components
        rel = relabel_chains([r.draws for r in results], X, y)
        draws = [canonical_penalty_order(d) for d in rel.draws]
        pooled = {k: np.concatenate([d[k] for d in draws], axis=0) for k in draws[0]}
        self.draws_ = draws
        self.trace_ = [r.trace for r in results]
        self.reference_ = rel.reference
        self.weights_ = pooled["pi"].mean(axis=0)
        z = pooled["z"].astype(np.int64)
        occupied = pooled["counts"] > 0  # (draws, J), relabelled with z
        self.occupancy_ = occupied.mean(axis=0)
        # a component's parameters are summarised over the draws in which it has samples: in the
        # others they are prior draws (sigma2 ~ IG(0.5, 0.5) has no finite mean), which would
        # swamp the regression the component stands for whenever it is occupied
        self.coef_, self.coef_ci_ = _occupied_summary(pooled["beta"], occupied)
        self.intercept_, self.intercept_ci_ = _occupied_summary(pooled["intercept"], occupied)
        self.sigma2_, self.sigma2_ci_ = _occupied_summary(pooled["sigma2"], occupied)
        self.alpha_ = float(pooled["alpha"].mean())
        self.allocation_proba_ = np.stack([(z == h).mean(axis=0) for h in range(J)], axis=1)
        self.labels_ = np.argmax(self.allocation_proba_, axis=1)
        self.lambda1_ = pooled["lam1"].mean(axis=0)
        self.lambda2_ = pooled["lam2"].mean(axis=0)
        self.penalty_weights_ = pooled["w"].mean(axis=0)
        c = pooled["c"].astype(np.int64)
        self.penalty_proba_ = np.stack([(c == k).mean(axis=0) for k in range(priors.n_priors)], axis=1)
        # Rao-Blackwellised over empty components: given an allocation that leaves h empty, b0_h
        # and beta_h follow their prior, whose mean is 0, so their term's conditional mean is 0.
        # The raw draws would average prior draws whose scale has no finite variance (sigma2 ~
        # IG(0.5, 0.5)): one empty component with pi = 1e-3 and coefficients of 1e4 moved the
        # predictions of a 400-sample fit far off (correlation with the truth 0.53)
        pi_occ = pooled["pi"] * occupied
        self.coef_mixture_ = np.einsum("tj,tjp->p", pi_occ, pooled["beta"]) / pi_occ.shape[0]
        self.intercept_mixture_ = float(np.einsum("tj,tj->", pi_occ, pooled["intercept"]) / pi_occ.shape[0])
        self.responsibilities_ = self._component_proba(X, y)
        diag = chain_diagnostics(self.trace_, draws, int(self.n_burnin))
        self.diagnostics_ = diag
        self.rhat_ = diag["rhat"]
        self.ess_ = diag["ess_bulk"]
        invariant = [diag["rhat"][k] for k in ("loglik", "logjoint", "alpha", "n_occupied") if k in diag["rhat"]]
        worst = float(np.nanmax(invariant)) if invariant else np.nan
        self.converged_ = bool(np.isfinite(worst) and worst < self.rhat_threshold)
        if not self.converged_:
            warnings.warn(
                f"DMMMEN: the chains have not converged (max R-hat of the label-invariant quantities "
                f"{worst:.3f} >= {self.rhat_threshold}); see rhat_ and trace_. Increase n_iter and n_burnin, "
                "or run more chains.",
                ConvergenceWarning,
                stacklevel=3,
            )

    # ------------------------------------------------------------------ prediction

    _FROM_MODEL_ATTRS = ("model_", "target_class_", "clip_", "input_shape_", "feature_indices_", "n_input_features_")

    def _check_X(self, X: Any) -> np.ndarray:
        return self._map_input(X)[0]

    def _map_input(self, X: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """``(screened features (n, p), flattened model input (n, d) or None)``.

        Without :meth:`from_model`, X must be (n, n_features_in_) and the second item is None.
        """
        check_is_fitted(self, "coef_")
        idx = getattr(self, "feature_indices_", None)
        if idx is None:
            X = check_array(X, "X", ndim=2)
            if X.shape[1] != self.n_features_in_:
                raise InvalidParameterError(
                    f"X has {X.shape[1]} features, but this DMMMEN was fitted with {self.n_features_in_}."
                )
            return X, None
        shape, d, p = tuple(self.input_shape_), int(self.n_input_features_), int(self.n_features_in_)
        X = check_array(X, "X")
        if X.ndim >= 2 and tuple(X.shape[1:]) == shape:
            flat = X.reshape(X.shape[0], d)
        elif X.ndim == 2 and X.shape[1] == d:
            flat = X
        elif X.ndim == 2 and X.shape[1] == p:
            return X, None
        else:
            hint = " For one sample use X[None]." if X.ndim == len(shape) else ""
            raise InvalidParameterError(
                f"X must be a batch of the model's inputs, shape (n_samples, *{shape}) (or flattened "
                f"(n_samples, {d}), or the {p} screened features (n_samples, {p})); got shape {X.shape}.{hint}"
            )
        return flat[:, idx], flat

    def predict(self, X: Any) -> np.ndarray:
        """Posterior-mean mixture prediction ``E[y | x] = E[sum_h pi_h (b0_h + x' beta_h)]``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        X = self._check_X(X)
        return X @ self.coef_mixture_ + self.intercept_mixture_

    def component_proba(self, X: Any, y: Any) -> np.ndarray:
        """Plug-in ``P(component h | x, y)`` prop. to ``weights_h N(y | x' coef_h + intercept_h, sigma2_h)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            The black box's responses at ``X``.

        Returns
        -------
        ndarray of shape (n_samples, J)
        """
        X = self._check_X(X)
        y = check_array(y, "y", ndim=1, shape=(X.shape[0],))
        return self._component_proba(X, y)

    def _component_proba(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        mean = X @ self.coef_.T + self.intercept_[None, :]
        with np.errstate(divide="ignore"):
            logd = np.log(self.weights_) - 0.5 * np.log(self.sigma2_) - 0.5 * (y[:, None] - mean) ** 2 / self.sigma2_
        logd[:, self.occupancy_ == 0] = -np.inf  # never given a sample: no regression to assign to
        logd -= np.logaddexp.reduce(logd, axis=1, keepdims=True)
        return np.exp(logd)

    def predict_component(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """Most probable component of new ``(x, y)`` pairs and its probability.

        ``h* = argmax_h weights_h N(y | x' coef_h + intercept_h, sigma2_h)`` (Guo et al. 2018).

        Returns
        -------
        labels : ndarray of shape (n_samples,), int
        proba : ndarray of shape (n_samples,)
        """
        P = self.component_proba(X, y)
        labels = np.argmax(P, axis=1)
        return labels, P[np.arange(P.shape[0]), labels]


    # ------------------------------------------------------------------ explaining a black box
    # (the bodies live in :mod:`scrutiny.surrogate.explainer`, which turns fits into explanations)

    @classmethod
    def from_model(
        cls,
        model: Any,
        X: Any,
        target_class: int,
        *,
        y_true: Any = None,
        n_features: int | None = None,
        clip: float = 1e-6,
        **dmm_params: Any,
    ) -> DMMMEN:
        """Fit DMM-MEN to one class of a black box, as in Guo et al. (2018).

        The response is the model's one-vs-rest logit of ``target_class``, ``log(p / (1 - p))``
        with ``p`` clipped to ``[clip, 1 - clip]`` (``Model.predict_log_odds``); the features
        are the flattened inputs, optionally screened to the ``n_features`` of highest variance
        over the fitted rows (the authors keep 300 of 784 pixels).

        The paper fits each class on the samples *of that class*. Selecting them is the
        caller's job: pass only class-``c`` rows as ``X``, or pass every row with its true labels
        as ``y_true`` and only the rows with ``y_true == target_class`` are fitted.

        Parameters
        ----------
        model : torch.nn.Module, fitted scikit-learn estimator, callable or Model
            A classifier (wrap a callable with ``as_model(f, output="logit")`` or
            ``output="probability"``).
        X : array-like of shape (n_samples, *input_shape)
            Inputs in the model's input shape.
        target_class : int
            The explained class ``c``.
        y_true : array-like of shape (n_samples,), optional
            True labels used to select the class-``c`` rows.
        n_features : int, optional
            Keep the ``n_features`` highest-variance input features; None keeps all.
        clip : float in (0, 0.5), default=1e-6
            Probability clipping before the logit.
        **dmm_params
            :class:`DMMMEN` constructor parameters (``n_components``, ``n_iter``, ``random_state``...).

        Returns
        -------
        DMMMEN
            Fitted, with ``model_``, ``target_class_``, ``clip_``, ``input_shape_``,
            ``feature_indices_`` (flat input position of each column of ``coef_``, ascending)
            and ``n_input_features_``.

        Examples
        --------
        >>> from scrutiny.zoo import reference_model                          # doctest: +SKIP
        >>> from scrutiny.data import load_digits                             # doctest: +SKIP
        >>> net, _ = reference_model("cnn", "digits")                         # doctest: +SKIP
        >>> d = load_digits()                                                 # doctest: +SKIP
        >>> sur = DMMMEN.from_model(net, d.X, 3, y_true=d.y, n_features=40,
        ...                         n_iter=400, n_burnin=200, random_state=0)  # doctest: +SKIP
        >>> sur.explain_global(k=10)[0].heatmap.shape                         # doctest: +SKIP
        (1, 8, 8)
        """
        from .explainer import fit_from_model

        return fit_from_model(cls, model, X, target_class, y_true, n_features, clip, dmm_params)

    def explain(self, X: Any, y: Any = None):
        """Explain samples by the coefficients of their most probable component.

        Each sample goes to ``h* = argmax_h weights_h N(y | intercept_h + x' coef_h, sigma2_h)``
        (Guo et al. 2018, section 3.3) and is explained by ``coef_[h*]``.

        Parameters
        ----------
        X : array-like
            ``(n_samples, n_features_in_)`` after a plain ``fit``; after :meth:`from_model`,
            inputs in the model's input shape (or flattened, or the screened features).
        y : array-like of shape (n_samples,), optional
            The black box's responses at ``X`` (what the surrogate approximates). Required after
            a plain ``fit``; after :meth:`from_model` it defaults to the stored model's clipped
            logits of ``target_class_``.

        Returns
        -------
        Explanation
            ``values``: ``coef_[h*]`` per sample, shape ``(n, n_features_in_)`` after a plain fit
            or the model's input shape after :meth:`from_model` (screened-out features get 0);
            ``base_values``: ``intercept_[h*]``; ``target``: ``target_class_`` (0 after a plain
            fit); ``extras``: ``component`` (n,), ``component_proba`` (n,), ``responsibilities``
            (n, J), ``response`` (n,) the ``y`` used, ``fitted`` (n,) ``intercept + x' coef``,
            ``contributions`` (``coef * x``, like ``values``) and ``values_ci`` (``values`` shape
            plus a trailing 2: 95 % credible intervals, 0 for screened-out features).
        """
        from .explainer import explain_fitted

        return explain_fitted(self, X, y)

    def explain_global(
        self, k: int = 150, *, absolute: bool = False, min_weight: float = 0.01, credible_only: bool = False
    ) -> list:
        """The paper's "generalizable insights": the top-k features of each occupied component.

        Parameters
        ----------
        k : int, default=150
            Features kept per component (the paper keeps 150 of 784 pixels); at most
            ``n_features_in_``.
        absolute : bool, default=False
            Rank by ``|coef|`` (the authors' code) instead of signed ``coef`` (evidence *for* the
            class).
        min_weight : float in [0, 1), default=0.01
            Components whose posterior mean weight is below this are ignored, and so are
            components never occupied (``occupancy_ == 0``: their summaries are prior draws).
        credible_only : bool, default=False
            Rank only features whose 95 % credible interval excludes 0 (the list may be shorter
            than ``k``); the elastic-net posterior means are never exactly sparse.

        Returns
        -------
        list of GlobalInsight
            One per component with ``weights_ >= min_weight``, heaviest first (see
            :class:`~scrutiny.surrogate.GlobalInsight`).
        """
        from .explainer import global_insights

        return global_insights(self, k, absolute, min_weight, credible_only)
