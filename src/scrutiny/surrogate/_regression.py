"""Full conditionals of each component's regression (spec section 2.1, steps 4-6).

The coefficients ``[b0, beta]`` (step 4: a Cholesky draw, compiled for small designs, or the
Bhattacharya et al. sampler when there are more coefficients than samples), the scale-mixture
variables ``xi = tau / (1 - tau)`` (5, and their truncated prior draw) and the noise variances
``sigma2`` (6, a collapsed slice sampler). Pure functions; the order of the sweep lives in
:mod:`scrutiny.surrogate.mcmc`.

References: the sampler's full list is in :mod:`scrutiny.surrogate.conditionals`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.linalg import lapack
from scipy.special import log_ndtr, ndtri_exp

from ._math import (
    XI_MAX,
    XI_MIN,
    en_logpdf_sum1,
    jit,
    rinvgauss,
    rng_state,
    slice_loop,
    slice_seed,
)
from .state import Data, Priors, Settings, State

__all__ = ["prior_xi", "sample_beta", "sample_xi", "sample_sigma2", "sigma2_log_target"]


def prior_xi(rng: np.random.Generator, theta: np.ndarray) -> np.ndarray:
    """``xi = tau / (1 - tau)`` with ``tau ~ InvGamma(1/2, theta)`` truncated to (0, 1).

    ``tau = theta / G`` with ``G = V^2 / 2``, ``|V| > x = sqrt(2 theta)``; ``|V|`` is drawn by
    inversion of the normal tail in log space, and ``xi = theta / (G - theta)`` with
    ``G - theta = (|V| - x)(|V| + x) / 2``.
    """
    x = np.sqrt(2.0 * theta)
    logp = log_ndtr(-x) + np.log(rng.random(theta.shape))
    v = -ndtri_exp(logp)
    v = np.maximum(v, x)
    with np.errstate(divide="ignore"):
        xi = theta / ((v - x) * (v + x) / 2.0)
    return np.clip(np.nan_to_num(xi, nan=XI_MAX, posinf=XI_MAX), XI_MIN, XI_MAX)


# --------------------------------------------------------------------------- (4) beta


def _prior_precision(state: State, data: Data, priors: Priors, sigma2: np.ndarray) -> np.ndarray:
    """Diagonal prior precision of ``[b0, beta]`` in units of ``1 / sigma2``: shape (J, d)."""
    pen = state.lam2[state.c][:, None] * (1.0 + state.xi)
    if data.intercept:
        pen = np.column_stack([sigma2 / priors.intercept_scale**2, pen])
    return pen


def _draw_cholesky(rng, G, h, pen, sigma2):
    """``theta ~ N(A^-1 h, sigma2 A^-1)`` with ``A = G + diag(pen)``."""
    d = h.shape[0]
    diag = np.diag_indices(d)

    def factor(extra):
        # Fortran order is LAPACK's layout: dpotrf then works in place instead of copying;
        # dtrtrs reads only the lower triangle. G is symmetric, so its transpose is already a
        # Fortran-ordered copy of it: a plain memcpy instead of a transposing copy (both choices
        # timed by benchmarks/dmm_men.py, section 5)
        A = G.T.copy(order="K")
        A[diag] += pen + extra
        return lapack.dpotrf(A, lower=1, clean=0, overwrite_a=1)

    L, info = factor(0.0)
    if info != 0:  # the jitter's scale is only needed when the plain factorisation fails
        jitter = 1e-10 * max(float(np.trace(G) + np.sum(pen)) / d, 1e-300)
    extra = 0.0
    while info != 0:
        extra += jitter
        jitter *= 100.0
        L, info = factor(extra)
        if jitter > 1e10:
            raise FloatingPointError("DMM-MEN: the beta posterior precision is not positive definite.")
    # theta = L^-T (L^-1 h + sqrt(sigma2) eps)
    v, _ = lapack.dtrtrs(L, h[:, None], lower=1, trans=0)
    v = v[:, 0] + np.sqrt(sigma2) * rng.standard_normal(d)
    theta, _ = lapack.dtrtrs(L, v[:, None], lower=1, trans=1)
    return theta[:, 0]


#: Largest ``d`` (coefficients plus intercept) whose ``beta`` draws use the compiled Cholesky
#: (:func:`_draw_cholesky_small`); LAPACK's blocked factorisation wins beyond a few dozen.
SMALL_CHOLESKY_DIM = 64


@jit
def _draw_cholesky_small(G, h, pen, sigma2, eps, which, theta):
    """:func:`_draw_cholesky` for the components ``j`` with ``which[j]``, compiled, into
    ``theta[j]``, with standard normal ``eps[j]``: ``A = G_j + diag(pen_j) = L L'``, ``theta =
    L^-T (L^-1 h_j + sigma_j eps_j)``. Returns which components were drawn: a factorisation that
    meets a non-positive pivot is left to the caller (the jittered path)."""
    J, d = h.shape
    done = np.zeros(J, dtype=np.bool_)
    L = np.zeros((d, d))
    v = np.empty(d)
    for j in range(J):
        if not which[j]:
            continue
        ok = True
        for a in range(d):  # Cholesky-Banachiewicz, row by row
            for b in range(a + 1):
                acc = G[j, a, b] + (pen[j, a] if a == b else 0.0)
                for q in range(b):
                    acc -= L[a, q] * L[b, q]
                if a == b:
                    if not acc > 0.0:  # also catches NaN
                        ok = False
                        break
                    L[a, a] = math.sqrt(acc)
                else:
                    L[a, b] = acc / L[b, b]
            if not ok:
                break
        if not ok:
            continue
        sd = math.sqrt(sigma2[j])
        for a in range(d):  # v = L^-1 h + sd eps
            acc = h[j, a]
            for q in range(a):
                acc -= L[a, q] * v[q]
            v[a] = acc / L[a, a]
        for a in range(d):
            v[a] += sd * eps[j, a]
        for a in range(d - 1, -1, -1):  # theta = L^-T v
            acc = v[a]
            for q in range(a + 1, d):
                acc -= L[q, a] * theta[j, q]
            theta[j, a] = acc / L[a, a]
        done[j] = True
    return done


def _draw_bhattacharya(rng, Dj, yj, pen, sigma2):
    """The ``O(n_j^2 d)`` sampler of Bhattacharya et al. (2016) for the same Gaussian.

    Prior ``theta ~ N(0, S)`` with ``S = sigma2 / pen`` (diagonal), likelihood ``y ~ N(D theta,
    sigma2 I)``: with ``Phi = D / sigma``, draw ``u ~ N(0, S)``, ``delta ~ N(0, I)``, solve
    ``(Phi S Phi' + I) w = y / sigma - (Phi u + delta)`` and return ``u + S Phi' w``.

    Returns None when ``Phi S Phi' + I`` is not positive definite in floating point: with a
    nearly flat prior (``S`` of order 1e16 and more) the ``+ I`` is lost to rounding, and two
    identical rows of ``D`` (repeated masks: a per-image fit draws 1,000 masks over a dozen
    superpixels) then make it singular. The caller draws from the same Gaussian by Cholesky.
    """
    sd = np.sqrt(sigma2)
    S = sigma2 / pen
    u = np.sqrt(S) * rng.standard_normal(S.shape[0])
    nj = yj.shape[0]
    if nj == 0:
        return u
    Phi = Dj / sd
    v = Phi @ u + rng.standard_normal(nj)
    PS = Phi * S
    M = PS @ Phi.T
    M[np.diag_indices(nj)] += 1.0
    L, info = lapack.dpotrf(M, lower=1, clean=1)
    if info != 0:  # M >= I in exact arithmetic: rounding (see above) or non-finite input
        return None
    wv, _ = lapack.dpotrs(L, (yj / sd - v)[:, None], lower=1)
    theta = u + PS.T @ wv[:, 0]
    return theta if np.isfinite(theta).all() else None


def sample_beta(
    rng: np.random.Generator, state: State, data: Data, priors: Priors, settings: Settings
) -> tuple[np.ndarray, np.ndarray]:
    """``[b0_j, beta_j] ~ N(mu_j, sigma2_j A_j^-1)``, ``A_j = G_j + diag(prior precision)``.

    Components with ``n_j < d`` use the Bhattacharya et al. (2016) sampler (with
    ``settings.beta_solver == "auto"``); empty components draw from the prior.

    Returns
    -------
    beta : ndarray of shape (J, p)
    intercept : ndarray of shape (J,)
    """
    J, d = state.xty.shape
    pen = _prior_precision(state, data, priors, state.sigma2)
    solver = settings.beta_solver
    if solver == "auto":
        cholesky = state.counts >= d
    else:
        cholesky = np.full(J, solver == "cholesky")
    theta = np.empty((J, d))
    if d <= SMALL_CHOLESKY_DIM and cholesky.any():
        # small d: one compiled call factors and solves every such component; a failed
        # factorisation (not positive definite in round-off) falls back to the jittered LAPACK path
        eps = rng.standard_normal((J, d))
        done = _draw_cholesky_small(state.gram, state.xty, pen, state.sigma2, eps, cholesky, theta)
    else:
        done = np.zeros(J, dtype=bool)
    for j in range(J):
        if done[j]:
            continue
        if cholesky[j]:
            theta[j] = _draw_cholesky(rng, state.gram[j], state.xty[j], pen[j], state.sigma2[j])
        else:
            nj = int(state.counts[j])
            rows = np.flatnonzero(state.z == j) if nj else np.empty(0, dtype=np.int64)
            draw = _draw_bhattacharya(rng, data.design[rows], data.y[rows], pen[j], state.sigma2[j])
            if draw is None:  # the same Gaussian by Cholesky (jittered if need be; raises if non-finite)
                draw = _draw_cholesky(rng, state.gram[j], state.xty[j], pen[j], state.sigma2[j])
            theta[j] = draw
    if data.intercept:
        return theta[:, 1:].copy(), theta[:, 0].copy()
    return theta, np.zeros(J)


# --------------------------------------------------------------------------- (6) sigma2


@jit
def sigma2_log_target(log_s2, n, rss, l1, l2, p, lam1, lam2, a, b) -> float:
    """Collapsed log target of one ``log sigma2_j`` (Jacobian included); compiled, scalars.

    ``(sigma2)^-(a + 1 + n_j/2) exp(-(b + RSS_j/2) / sigma2) prod_l EN(beta_jl | lam, sigma2)``
    times ``sigma2`` for the log transform (``a``, ``b``: the inverse-gamma prior's shape and
    scale). Equal, up to a constant, to the spec's
    ``(sigma2)^-(a + n_j/2 + p/2) - 1 exp(-B~_j / sigma2) Phi(-lam1 / (2 sigma sqrt(lam2)))^-p``.
    """
    s2 = math.exp(log_s2)
    return -(a + n / 2.0) * log_s2 - (b + rss / 2.0) / s2 + en_logpdf_sum1(l1, l2, p, lam1, lam2, s2)


@jit
def _sigma2_element(j, x, args):
    n, rss, l1, l2, p, lam1, lam2, a, b = args
    return sigma2_log_target(x, n[j], rss[j], l1[j], l2[j], p, lam1[j], lam2[j], a, b)


@jit
def _sigma2_kernel(seed, x0, width, max_steps, args):
    x = x0.copy()
    n_evals = slice_loop(_sigma2_element, args, rng_state(seed), x, width, max_steps)
    return x, n_evals


def sample_sigma2(
    rng: np.random.Generator, state: State, beta, rss, c, lam1, lam2, priors: Priors, settings: Settings
) -> tuple[np.ndarray, int]:
    """Slice-sample every ``log sigma2_j`` from its collapsed conditional (``tau`` integrated out).

    Parameters
    ----------
    rss : ndarray of shape (J,)
        Residual sums of squares at the current ``beta`` and allocations.
    """
    p = beta.shape[1]
    n = state.counts.astype(float)
    l1 = np.abs(beta).sum(axis=1)
    l2 = (beta * beta).sum(axis=1)
    # log sigma2 has posterior sd about sqrt(2 / (n_j + p)): initial widths of three times that
    width = settings.sigma2_width * 3.0 * np.sqrt(2.0 / (n + p + 2.0 * priors.sigma2_shape))
    args = (n, np.asarray(rss, dtype=float), l1, l2, p, lam1[c], lam2[c],
            float(priors.sigma2_shape), float(priors.sigma2_scale))
    out, n_evals = _sigma2_kernel(slice_seed(rng), np.log(state.sigma2), width, settings.slice_max_steps, args)
    return np.exp(out), n_evals


# --------------------------------------------------------------------------- (5) tau


def sample_xi(rng: np.random.Generator, beta, sigma2, c, lam1, lam2) -> np.ndarray:
    """``xi_jl = tau_jl / (1 - tau_jl) ~ InvGauss(lam1 / (2 lam2 |beta_jl|), lam1^2 / (4 lam2 sigma2_j))``.

    (Li & Lin 2010, in the ``tau in (0, 1)`` parametrisation.) A coefficient at exactly 0 gets
    the Levy limit of the inverse Gaussian.
    """
    L1 = lam1[c][:, None]
    L2 = lam2[c][:, None]
    absb = np.abs(beta)
    with np.errstate(divide="ignore"):
        mean = np.where(absb > 0, L1 / (2.0 * L2 * absb), np.inf)
    shape = np.broadcast_to(L1 * L1 / (4.0 * L2 * sigma2[:, None]), beta.shape)
    return rinvgauss(rng, mean, shape)
