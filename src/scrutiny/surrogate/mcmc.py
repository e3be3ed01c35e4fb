"""The DMM-MEN Markov chain: ``init``, one ``step`` (the corrected sweep) and ``run_chain``.

The sweep is the partially collapsed Gibbs sampler of the scrutiny DMM-MEN specification
(section 2.3), valid by van Dyk & Park (2008):

1. ``z`` for all samples (vectorised), then the Gram matrices are updated incrementally
   (``O(m d^2)`` for ``m`` moved samples; exact recompute every ``settings.recompute_every``
   sweeps or when many samples moved);
1'. Metropolis-Hastings label swaps (exact moves added to the spec's sweep, Papaspiliopoulos &
   Roberts 2008; Hastie et al. 2015): the truncated stick-breaking prior is not exchangeable,
   and without them the label order, hence ``alpha``, mixes slowly when a chain starts with
   more occupied components than it keeps;
2. the sticks ``u`` (hence ``pi``), then ``alpha``;
3'. components left empty by step 1 get ``(sigma2_j, tau_j, b0_j, beta_j)`` jointly from their
   conditional given ``(c_j, lam)``, which is the prior: an exact block update added to the
   spec's sweep because the ``beta <-> sigma2`` coupling of the elastic-net prior makes the
   one-at-a-time updates of an empty component mix very slowly;
3. ``[b0_j, beta_j]`` for every component (Cholesky, or the Bhattacharya et al. 2016 sampler
   when ``n_j < d``);
3''. each used prior's ``lam1_k`` rescaled jointly with the coefficients of its components
   (a generalised Gibbs step on the scaling group, Liu & Sabatti 2000, on the ``tau``-marginal
   target; an exact move added to the spec's sweep: ``lam1_k`` and ``beta`` pin each other when
   ``p`` coefficients inform one penalty, and the log joint crawled with them on real logits);
4. ``c_j`` collapsed over ``tau``;
4'. every ``settings.prior_switch_every`` sweeps, Metropolis-Hastings switches of single
   components to and from priors of their own, collapsed over ``tau`` and ``w`` (an exact
   move added to the spec's sweep: Gibbs updates of ``c`` alone almost never open an unused
   prior, whose weight is near 0 and whose penalties are a prior draw that a high-dimensional
   ``beta_j`` does not fit);
5. ``w``;
6. ``(lam1_k, lam2_k)`` collapsed over ``tau`` (slice sampling on the log scale);
7. ``sigma2_j`` collapsed over ``tau`` (slice sampling on ``log sigma2``);
8. ``tau`` (stored as ``xi = tau / (1 - tau)``) from its exact inverse-Gaussian conditional.

Every function is pure and takes its own :class:`numpy.random.Generator`; independent chains
get independent streams from ``Generator.spawn`` / ``SeedSequence.spawn``.

Examples
--------
>>> import numpy as np
>>> from scrutiny.surrogate.mcmc import Priors, run_chain
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(200, 3)); y = X @ [1.0, -2.0, 0.0] + 0.1 * rng.normal(size=200)
>>> out = run_chain(rng, X, y, Priors(n_components=2), n_iter=200, n_burnin=100)
>>> out.draws["beta"].shape
(100, 2, 3)

References
----------
Guo, W. et al. (2018). Explaining deep learning models - a Bayesian non-parametric approach. NeurIPS.
van Dyk, D. A. & Park, T. (2008). Partially collapsed Gibbs samplers. JASA 103, 790-796.
Ishwaran, H. & James, L. F. (2001). Gibbs sampling methods for stick-breaking priors. JASA 96.
Li, Q. & Lin, N. (2010). The Bayesian elastic net. Bayesian Analysis 5(1).
Bhattacharya, A., Chakraborty, A. & Mallick, B. K. (2016). Biometrika 103(4).
Neal, R. M. (2003). Slice sampling. Annals of Statistics 31(3).
Liu, J. S. & Sabatti, C. (2000). Generalised Gibbs sampler and multigrid Monte Carlo for
Bayesian computation. Biometrika 87(2), 353-369.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Callable, NamedTuple, Optional, Sequence

import numpy as np

from .._threads import blas_limits
from ..exceptions import InvalidParameterError
from ._start import init, sample_prior, sample_y
from .conditionals import (
    component_log_densities,
    component_stats,
    fitted_values,
    log_joint_parts,
    mixture_log_likelihood,
    prior_xi,
    rescale_penalties,
    sample_alpha,
    sample_beta,
    sample_c,
    sample_lambda,
    sample_sigma2,
    sample_sticks,
    sample_w,
    sample_xi,
    sample_z,
    swap_labels,
    switch_priors,
    update_stats,
)
from .state import SMALL_GRAM_WORK, Data, Priors, Settings, State, check_priors, make_data

__all__ = [
    "Info",
    "ChainResult",
    "init",
    "step",
    "run_chain",
    "sample_prior",
    "sample_y",
    "with_data",
    "DEFAULT_STORE",
    "load_kernels",
]

#: Quantities stored per kept draw by :func:`run_chain` unless told otherwise.
DEFAULT_STORE = ("alpha", "pi", "beta", "intercept", "sigma2", "c", "w", "lam1", "lam2", "z", "counts")
_ALL_STORE = DEFAULT_STORE + ("xi",)


class Info(NamedTuple):
    """Per-sweep diagnostics returned by :func:`step`.

    Attributes
    ----------
    loglik : float
        Mixture log-likelihood ``sum_i log sum_j pi_j N(y_i | ...)`` after the sweep (label-invariant).
    logjoint : float
        Complete-data log joint with ``tau`` integrated out (label-invariant).
    logjoint_occupied : float
        The same without the prior terms of empty components (the convergence criterion).
    n_occupied : int
        Number of components with at least one sample.
    n_moved : int
        Samples whose component changed in the ``z`` step.
    sigma2_evals, lambda_evals : int
        Slice-sampler target evaluations (vectorised calls) for ``sigma2`` and ``lambda``.
    recomputed : bool
        Whether the Gram matrices were recomputed exactly in this sweep.
    n_switched : int
        Accepted prior switches (:func:`~scrutiny.surrogate.conditionals.switch_priors`).
    n_swapped : int
        Accepted label swaps (:func:`~scrutiny.surrogate.conditionals.swap_labels`).
    """

    loglik: float
    logjoint: float
    logjoint_occupied: float
    n_occupied: int
    n_moved: int
    sigma2_evals: int
    lambda_evals: int
    recomputed: bool
    n_switched: int
    n_swapped: int


class ChainResult(NamedTuple):
    """Output of :func:`run_chain`.

    Attributes
    ----------
    draws : dict of str to ndarray
        Kept draws, first axis = draw: ``alpha`` (T,), ``pi`` (T, J), ``beta`` (T, J, p),
        ``intercept`` (T, J), ``sigma2`` (T, J), ``c`` (T, J), ``w`` (T, K), ``lam1``/``lam2`` (T, K),
        ``z`` (T, n) (small int dtype), ``counts`` (T, J), optionally ``xi`` (T, J, p); plus
        ``loglik``, ``logjoint`` (T,) and ``iteration`` (T,), the sweep index of each draw.
    trace : dict of str to ndarray
        One entry per sweep (burn-in included): every :class:`Info` field and ``time``
        (cumulative seconds).
    state : State
        The final state (to continue the chain).
    """

    draws: dict
    trace: dict
    state: State


# --------------------------------------------------------------------------- helpers


def _rss(data: Data, z: np.ndarray, fitted: np.ndarray, J: int) -> np.ndarray:
    r = data.y - fitted[np.arange(data.n), z]
    return np.bincount(z, weights=r * r, minlength=J)


def with_data(state: State, data: Data) -> State:
    """The state with every cached quantity (Gram matrices, counts, fitted values) recomputed for ``data``."""
    J = state.beta.shape[0]
    gram, xty, counts = component_stats(state.z, data, J)
    return state._replace(gram=gram, xty=xty, counts=counts, fitted=fitted_values(data, state.beta, state.intercept),
                          logdens=None)


# --------------------------------------------------------------------------- step


def _refresh_empty(rng: np.random.Generator, state: State, empty: np.ndarray, priors: Priors) -> State:
    """Draw ``sigma2_j ~ IG(a, b)``, ``tau_j | sigma2_j, lam_{c_j}`` (truncated IG) and
    ``b0_j``, ``beta_j`` from their priors for every component in ``empty`` (no samples)."""
    idx = np.flatnonzero(empty)
    m, p = idx.size, state.beta.shape[1]
    sigma2 = state.sigma2.copy()
    sigma2[idx] = priors.sigma2_scale / rng.gamma(priors.sigma2_shape, 1.0, m)
    c = state.c[idx]
    L1, L2 = state.lam1[c][:, None], state.lam2[c][:, None]
    theta = np.ascontiguousarray(np.broadcast_to(L1 * L1 / (8.0 * L2 * sigma2[idx, None]), (m, p)))
    xi = state.xi.copy()
    xi[idx] = prior_xi(rng, theta)
    beta = state.beta.copy()
    beta[idx] = rng.standard_normal((m, p)) * np.sqrt(sigma2[idx, None] / (L2 * (1.0 + xi[idx])))
    intercept = state.intercept.copy()
    if priors.intercept_scale is not None:
        intercept[idx] = priors.intercept_scale * rng.standard_normal(m)
    return state._replace(sigma2=sigma2, xi=xi, beta=beta, intercept=intercept)



def step(
    rng: np.random.Generator, state: State, data: Data, priors: Priors, settings: Settings = Settings()
) -> tuple[State, Info]:
    """One sweep of the corrected DMM-MEN sampler (spec section 2.3).

    Parameters
    ----------
    rng : numpy.random.Generator
    state : State
        Current state (not modified).
    data : Data
        From :func:`scrutiny.surrogate.conditionals.make_data`.
    priors : Priors
    settings : Settings

    Returns
    -------
    state : State
    info : Info
    """
    J = priors.n_components
    it = state.iteration + 1
    # (1) allocations and sufficient statistics
    z, _ = sample_z(rng, state, data)
    n_moved = int(np.count_nonzero(z != state.z))
    # exact recomputation: periodically, when many samples moved, and always for small problems
    # (n d^2 < SMALL_GRAM_WORK), where the per-component calls of the update cost more than it
    small = data.n * data.design.shape[1] ** 2 < SMALL_GRAM_WORK
    recompute = small or it % settings.recompute_every == 0 or 4 * n_moved > data.n
    if recompute:
        gram, xty, counts = component_stats(z, data, J)
    else:
        gram, xty, counts, _ = update_stats(state.z, z, state.gram, state.xty, data)
    # (1') label swaps: permute every component-indexed quantity
    perm, alpha, n_swapped = swap_labels(
        rng, state.log_pi, state.log1m_u, counts, state.alpha, priors, settings.label_swaps * J
    )
    if n_swapped:
        inv = np.argsort(perm)
        z, gram, xty, counts = inv[z], gram[perm], xty[perm], counts[perm]
        state = state._replace(
            beta=state.beta[perm], intercept=state.intercept[perm], sigma2=state.sigma2[perm], xi=state.xi[perm],
            c=state.c[perm], fitted=state.fitted[:, perm], alpha=alpha,
        )
    # (2) sticks and alpha
    log_pi, log1m_u = sample_sticks(rng, counts, state.alpha)
    alpha = sample_alpha(rng, log1m_u, priors)
    st = state._replace(z=z, gram=gram, xty=xty, counts=counts, log_pi=log_pi, log1m_u=log1m_u, alpha=alpha)
    # (3') empty components: (sigma2, tau, b0, beta) jointly from their prior conditional given
    # (c, lam); an exact block update that removes the slow sigma2 <-> beta coupling there
    empty = counts == 0
    if empty.any():
        st = _refresh_empty(rng, st, empty, priors)
    # (3) coefficients given tau, sigma2, c (empty components: a second, harmless prior draw)
    beta, intercept = sample_beta(rng, st, data, priors, settings)
    fitted = fitted_values(data, beta, intercept)
    # (3'') each used prior's lam1 and its components' beta rescaled jointly (tau-marginal target)
    lam1 = st.lam1
    for _ in range(settings.penalty_rescales):
        beta, fitted, lam1, _ = rescale_penalties(
            rng, beta, intercept, fitted, z, data.y, st.sigma2, st.c, lam1, st.lam2, priors,
            max_steps=settings.slice_max_steps,
        )
    # (4)-(7) collapsed over tau
    c = sample_c(rng, beta, st.sigma2, lam1, st.lam2, st.w)
    lam2, n_switched = st.lam2, 0
    if settings.prior_switch_every and it % settings.prior_switch_every == 0:
        c, lam1, lam2, n_switched = switch_priors(rng, beta, st.sigma2, c, lam1, lam2, priors)
    w = sample_w(rng, c, priors)
    lam1, lam2, lam_evals = sample_lambda(rng, st._replace(lam1=lam1, lam2=lam2), beta, st.sigma2, c, priors, settings)
    rss = _rss(data, z, fitted, J)
    sigma2, s2_evals = sample_sigma2(rng, st, beta, rss, c, lam1, lam2, priors, settings)
    # (8) tau from its exact conditional
    xi = sample_xi(rng, beta, sigma2, c, lam1, lam2)
    new = st._replace(
        beta=beta, intercept=intercept, fitted=fitted, c=c, w=w, lam1=lam1, lam2=lam2, sigma2=sigma2, xi=xi,
        iteration=it,
    )
    # kept in the state for the next sweep's z step, which needs exactly these densities
    logdens = component_log_densities(new, data.y)
    new = new._replace(logdens=logdens)
    logjoint, logjoint_occupied = log_joint_parts(new, data, priors, logdens)
    info = Info(
        loglik=mixture_log_likelihood(logdens),
        logjoint=logjoint,
        logjoint_occupied=logjoint_occupied,
        n_occupied=int(np.count_nonzero(counts)),
        n_moved=n_moved,
        sigma2_evals=int(s2_evals),
        lambda_evals=int(lam_evals),
        recomputed=bool(recompute),
        n_switched=int(n_switched),
        n_swapped=int(n_swapped),
    )
    return new, info


# --------------------------------------------------------------------------- driver


def _check_run_args(n_iter, n_burnin, thin, store, settings):
    for name, value, lo in (("n_iter", n_iter, 1), ("n_burnin", n_burnin, 0), ("thin", thin, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
            raise InvalidParameterError(f"{name} must be an int >= {lo}; got {value!r}.")
    if n_burnin >= n_iter:
        raise InvalidParameterError(
            f"n_burnin must be smaller than n_iter; got n_burnin={n_burnin}, n_iter={n_iter}. "
            "n_iter counts all sweeps, burn-in included (e.g. n_iter=2000, n_burnin=1000)."
        )
    if settings.beta_solver not in ("auto", "cholesky", "bhattacharya"):
        raise InvalidParameterError(
            f"settings.beta_solver must be 'auto', 'cholesky' or 'bhattacharya'; got {settings.beta_solver!r}."
        )
    for name in ("recompute_every", "lambda_steps", "slice_max_steps"):
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise InvalidParameterError(f"settings.{name} must be an int >= 1; got {value!r}.")
    for name in ("label_swaps", "prior_switch_every", "penalty_rescales"):
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise InvalidParameterError(f"settings.{name} must be an int >= 0; got {value!r}.")
    bad = [s for s in store if s not in _ALL_STORE]
    if bad:
        raise InvalidParameterError(f"store must name quantities among {_ALL_STORE}; got unknown {bad}.")


def _extract(state: State, name: str, z_dtype) -> Any:
    if name == "pi":
        return state.pi
    if name == "z":
        return state.z.astype(z_dtype)
    return getattr(state, name)


def run_chain(
    rng: np.random.Generator,
    X: np.ndarray,
    y: np.ndarray,
    priors: Priors = Priors(),
    n_iter: int = 2000,
    n_burnin: int = 1000,
    thin: int = 1,
    callback: Optional[Callable[[int, State, Info], Any]] = None,
    *,
    settings: Settings = Settings(),
    init_state: Optional[State] = None,
    store: Sequence[str] = DEFAULT_STORE,
    blas_threads: Optional[int] = 1,
) -> ChainResult:
    """Run one DMM-MEN chain and keep the post-burn-in draws.

    Parameters
    ----------
    rng : numpy.random.Generator
        This chain's stream (use ``Generator.spawn`` for several chains).
    X : ndarray of shape (n, p)
    y : ndarray of shape (n,)
    priors : Priors
    n_iter : int
        Total number of sweeps, burn-in included.
    n_burnin : int
        Sweeps discarded before the first kept draw.
    thin : int
        Keep every ``thin``-th post-burn-in draw (the trace keeps every sweep).
    callback : callable, optional
        ``callback(iteration, state, info)`` after every sweep, e.g. for running summaries.
    settings : Settings
    init_state : State, optional
        Start here instead of :func:`init` (its caches are recomputed for ``X``, ``y``).
    store : sequence of str
        Quantities kept per draw (see :data:`DEFAULT_STORE`; ``"xi"`` adds the ``tau`` odds).
    blas_threads : int or None
        BLAS threads used by this chain (1 by default: the ``d x d`` factorisations are small,
        and multi-threaded OpenBLAS slows them down by orders of magnitude when the cores are
        busy; run chains in separate processes instead). ``None`` leaves the setting alone.

    Returns
    -------
    ChainResult
    """
    check_priors(priors)
    _check_run_args(n_iter, n_burnin, thin, store, settings)
    with blas_limits(blas_threads):
        return _run_chain(rng, X, y, priors, n_iter, n_burnin, thin, callback, settings, init_state, store)


def _run_chain(rng, X, y, priors, n_iter, n_burnin, thin, callback, settings, init_state, store):
    data = make_data(X, y, priors)
    state = init(rng, data.X, data.y, priors) if init_state is None else with_data(init_state, data)
    J = priors.n_components
    z_dtype = np.int8 if J <= 127 else np.int16
    keep = np.arange(n_burnin, n_iter, thin)
    T = keep.size
    draws: dict = {}
    for name in store:
        value = np.asarray(_extract(state, name, z_dtype))
        draws[name] = np.empty((T,) + value.shape, dtype=value.dtype)
    for name in ("loglik", "logjoint"):
        draws[name] = np.empty(T)
    draws["iteration"] = keep.copy()
    trace = {f: np.empty(n_iter, dtype=float if f.startswith(("loglik", "logjoint")) else np.int64)
             for f in Info._fields}
    trace["time"] = np.empty(n_iter)
    t0 = time.perf_counter()
    slot = 0
    for t in range(n_iter):
        state, info = step(rng, state, data, priors, settings)
        for f, v in zip(Info._fields, info):
            trace[f][t] = v
        trace["time"][t] = time.perf_counter() - t0
        if slot < T and t == keep[slot]:
            for name in store:
                draws[name][slot] = _extract(state, name, z_dtype)
            draws["loglik"][slot] = info.loglik
            draws["logjoint"][slot] = info.logjoint
            slot += 1
        if callback is not None:
            callback(t, state, info)
    return ChainResult(draws=draws, trace=trace, state=state)


@functools.cache
def load_kernels() -> None:
    """Load the sampler's compiled kernels into this process (numba compiles them the first time
    on a machine and caches them on disk; later processes load them from the cache, in the time
    ``benchmarks/dmm_men.py``, section 5, prints).

    Runs a few sweeps of a tiny problem, so every kernel is loaded with the argument types that
    real problems pass. :class:`~scrutiny.surrogate.DMMMEN` calls it before forking chain
    workers, which then inherit the loaded kernels instead of each loading them again."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = X @ np.array([1.0, -1.0, 0.5]) + 0.1 * rng.normal(size=40)
    run_chain(rng, X, y, Priors(n_components=3, n_priors=2), n_iter=6, n_burnin=3,
              settings=Settings(prior_switch_every=1))
