"""Full conditionals of the allocations and mixture weights (spec section 2.1, steps 1-3).

The sufficient statistics of every component (Gram matrices, cross-products, counts) and their
incremental update, the allocations ``z`` (step 1), the label-swap moves (1'), the stick-breaking
weights and the DP concentration ``alpha`` (2-3), and the component log densities they share.
Pure functions; the order of the sweep lives in :mod:`scrutiny.surrogate.mcmc`, the gathered
conditionals in :mod:`scrutiny.surrogate.conditionals`.

References: the sampler's full list is in :mod:`scrutiny.surrogate.conditionals`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.linalg import blas

from ._math import (
    LOG_2PI,
    categorical_from_logits,
    jit,
    log_beta_pair_rvs,
)
from .state import Data, Priors, State

__all__ = [
    "fitted_values",
    "component_stats",
    "update_stats",
    "sample_z",
    "component_log_densities",
    "responsibilities",
    "log_likelihood",
    "mixture_log_likelihood",
    "swap_labels",
    "sample_sticks",
    "sample_alpha",
]


def fitted_values(data: Data, beta: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """``b0_j + x_i' beta_j`` for every sample and component, shape (n, J) (float64; the product
    runs in float32 for large problems, see :class:`~scrutiny.surrogate.state.Data`)."""
    if data.design32 is None:
        return data.X @ beta.T + intercept[None, :]
    X32 = data.design32[:, 1:] if data.intercept else data.design32
    return (X32 @ beta.T.astype(np.float32)).astype(np.float64) + intercept[None, :]



# --------------------------------------------------------------------------- sufficient statistics


def component_stats(z: np.ndarray, data: Data, n_components: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact per-component Gram matrices, cross-products and counts.

    Sorts the samples by component once and multiplies contiguous blocks (in float32 when
    ``data.design32`` is set: large problems; the results are float64). Large problems take the
    largest component's statistics as ``data.gram_total`` / ``data.xty_total`` minus the others';
    the others (neither set) do everything in one compiled call (:func:`_component_stats_small`).

    Returns
    -------
    gram : ndarray of shape (J, d, d)
    xty : ndarray of shape (J, d)
    counts : ndarray of shape (J,), int64
    """
    if data.gram_total is None and data.design32 is None:  # small problems: one compiled call
        return _component_stats_small(np.asarray(z, dtype=np.int64), data.design, data.y, n_components)
    d = data.design.shape[1]
    counts = np.bincount(z, minlength=n_components).astype(np.int64)
    # with the totals at hand, the largest component's statistics are the totals minus the rest
    by_difference = int(np.argmax(counts)) if data.gram_total is not None else -1
    keep = z != by_difference
    order = np.flatnonzero(keep)[np.argsort(z[keep], kind="stable")]
    Ds = (data.design if data.design32 is None else data.design32)[order]
    ys = data.y[order].astype(Ds.dtype)
    gram = np.zeros((n_components, d, d))
    xty = np.zeros((n_components, d))
    start = 0
    for j in range(n_components):
        if j == by_difference:
            continue
        stop = start + int(counts[j])
        if stop > start:
            block = Ds[start:stop]
            gram[j] = block.T @ block
            xty[j] = block.T @ ys[start:stop]
        start = stop
    if by_difference >= 0:
        gram[by_difference] = data.gram_total - gram.sum(axis=0)
        xty[by_difference] = data.xty_total - xty.sum(axis=0)
    return gram, xty, counts


@jit
def _component_stats_small(z, D, y, J):
    """:func:`component_stats` without the totals or float32 products (compiled): the samples
    sorted by component, then one BLAS product per contiguous block."""
    n, d = D.shape
    counts = np.zeros(J, dtype=np.int64)
    for i in range(n):
        counts[z[i]] += 1
    nxt = np.zeros(J, dtype=np.int64)  # counting sort (stable)
    for j in range(1, J):
        nxt[j] = nxt[j - 1] + counts[j - 1]
    Ds = np.empty((n, d))
    ys = np.empty(n)
    for i in range(n):
        r = nxt[z[i]]
        nxt[z[i]] += 1
        Ds[r] = D[i]
        ys[r] = y[i]
    gram = np.zeros((J, d, d))
    xty = np.zeros((J, d))
    start = 0
    for j in range(J):
        stop = start + counts[j]
        if stop > start:
            block = Ds[start:stop]
            gram[j] = np.dot(block.T, block)
            xty[j] = np.dot(block.T, ys[start:stop])
        start = stop
    return gram, xty, counts


def update_stats(
    z_old: np.ndarray, z_new: np.ndarray, gram: np.ndarray, xty: np.ndarray, data: Data
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Gram matrices after the moves ``z_old -> z_new``: ``O(m d^2)`` for ``m`` moved samples.

    ``gram`` (J, d, d) and ``xty`` (J, d) must be the statistics of ``z_old``. Returns new arrays
    (the inputs are not modified), the counts of ``z_new`` and the number of moved samples.
    """
    moved = np.flatnonzero(z_old != z_new)
    m = int(moved.size)
    gram, xty = gram.copy(), xty.copy()
    counts = np.bincount(z_new, minlength=gram.shape[0]).astype(np.int64)
    if m == 0:
        return gram, xty, counts, 0
    rows = data.design[moved]
    ym = data.y[moved]
    src, dst = z_old[moved], z_new[moved]
    for j in np.union1d(src, dst):
        inn = dst == j
        out = src == j
        # symmetric rank-k updates (half the flops of a general product), lower triangle only
        # (R.T is Fortran-ordered, so BLAS gets it without a copy)
        delta = None
        if inn.any():
            R = rows[inn]
            delta = blas.dsyrk(1.0, R.T, trans=0, lower=1)
            xty[j] += R.T @ ym[inn]
        if out.any():
            R = rows[out]
            if delta is None:
                delta = blas.dsyrk(-1.0, R.T, trans=0, lower=1)
            else:
                delta = blas.dsyrk(-1.0, R.T, beta=1.0, c=delta, trans=0, lower=1, overwrite_c=1)
            xty[j] -= R.T @ ym[out]
        gram[j] += delta + np.tril(delta, -1).T
    return gram, xty, counts, m


# --------------------------------------------------------------------------- (1) z


def sample_z(rng: np.random.Generator, state: State, data: Data) -> tuple[np.ndarray, np.ndarray]:
    """Allocations ``P(z_i = j) prop. to pi_j N(y_i | b0_j + x_i' beta_j, sigma2_j)``, all ``i`` at once.

    Returns
    -------
    z : ndarray of shape (n,), int64
    loglik : ndarray of shape (n,)
        Mixture log density ``log sum_j pi_j N(y_i | ...)`` at the current parameters.
    """
    logd = state.logdens if state.logdens is not None else component_log_densities(state, data.y)
    return categorical_from_logits(rng, logd)


def component_log_densities(state: State, y: np.ndarray) -> np.ndarray:
    """``log pi_j + log N(y_i | fitted_ij, sigma2_j)``, shape (n, J)."""
    return _log_densities(y, state.fitted, state.log_pi, np.asarray(state.sigma2, dtype=float))


@jit
def _log_densities(y, fitted, log_pi, sigma2):
    n, J = fitted.shape
    const = log_pi - 0.5 * (LOG_2PI + np.log(sigma2))
    half_prec = 0.5 / sigma2
    out = np.empty((n, J))
    for i in range(n):
        for j in range(J):
            r = y[i] - fitted[i, j]
            out[i, j] = const[j] - half_prec[j] * r * r
    return out


def responsibilities(state: State, y: np.ndarray) -> np.ndarray:
    """``P(z_i = j | y_i, params)`` of shape (n, J) at the state's parameters."""
    logd = component_log_densities(state, y)
    logd -= np.logaddexp.reduce(logd, axis=1, keepdims=True)
    return np.exp(logd)


def log_likelihood(state: State, y: np.ndarray) -> float:
    """Mixture log-likelihood ``sum_i log sum_j pi_j N(y_i | ...)`` (label-invariant)."""
    return mixture_log_likelihood(component_log_densities(state, y))


def mixture_log_likelihood(logd: np.ndarray) -> float:
    """``sum_i logsumexp_j logd_ij`` for the (n, J) matrix of :func:`component_log_densities`."""
    # max-shifted log-sum-exp (cheaper than logaddexp.reduce) over the contiguous transpose
    # (reductions over the short axis; both forms timed by benchmarks/dmm_men.py, section 5)
    lt = np.ascontiguousarray(logd.T)
    mx = np.maximum.reduce(lt, axis=0)
    return float(np.sum(mx + np.log(np.add.reduce(np.exp(lt - mx), axis=0))))


# --------------------------------------------------------------------------- (1') label swaps


def swap_labels(
    rng: np.random.Generator,
    log_pi: np.ndarray,
    log1m_u: np.ndarray,
    counts: np.ndarray,
    alpha: float,
    priors: Priors,
    n_proposals: int,
) -> tuple[np.ndarray, float, int]:
    """Metropolis-Hastings label swaps for the truncated stick-breaking mixture
    (Papaspiliopoulos & Roberts 2008; Hastie, Liverani & Richardson 2015).

    The stick-breaking prior is not exchangeable in the labels, and the Gibbs sweep changes the
    label order, hence ``alpha`` (whose conditional depends on it), very slowly: chains that
    started with more occupied components than they keep settled with ``alpha`` near 1 or near
    5 depending on whether the last label stayed occupied. Allocations and component parameters
    move with their labels; proposals cycle through

    1. two labels ``a``, ``b`` (uniform) at fixed weights: ratio ``(pi_b / pi_a)^(n_a - n_b)``;
    2. two adjacent labels ``j``, ``j + 1`` before the last, with their sticks (a
       volume-preserving involution that keeps the i.i.d. ``Beta(1, alpha)`` prior): ratio
       ``(1 - u_{j+1})^(n_j) / (1 - u_j)^(n_{j+1})``;
    3. two labels ``a``, ``b`` (uniform) with their weights, ``alpha`` integrated out: the
       likelihood is unchanged and the ratio is that of the weights' prior density,
       ``p(pi) = Gamma(e + J - 1) / (f - log pi_J)^(e + J - 1) / pi_J * prod_{j < J} 1 / R_j``
       (``R_j`` the stick left before label ``j``); an accepted swap redraws ``alpha`` from
       ``Gamma(e + J - 1, f - log pi'_J)``, its conditional given the new weights.

    Returns
    -------
    perm : ndarray of shape (J,)
        New component ``a`` is old component ``perm[a]``.
    alpha : float
    n_accepted : int
    """
    J = counts.shape[0]
    if J < 2 or n_proposals < 1:
        return np.arange(J), alpha, 0
    # a short sequential loop: plain Python floats are several times faster than numpy scalars
    perm = list(range(J))
    n = [float(v) for v in counts]
    lpi = [float(v) for v in log_pi]
    l1m = [float(v) for v in log1m_u]
    shape, rate = priors.alpha_shape + J - 1, priors.alpha_rate

    def log_remaining(lp):  # log R_j = log sum_{l >= j} pi_l, j = 0..J-1
        out, acc = [0.0] * J, -math.inf
        for q in range(J - 1, -1, -1):
            v = lp[q]
            acc = max(acc, v) + math.log1p(math.exp(-abs(acc - v))) if acc > -math.inf else v
            out[q] = acc
        return out

    def log_weight_density(lp):  # log p(pi) with alpha integrated out (constants dropped)
        return -sum(log_remaining(lp)[:-1]) - lp[-1] - shape * math.log(rate - lp[-1])

    kinds = (0, 1, 2) if J >= 3 else (0, 2)
    logv = np.log(rng.random(n_proposals)).tolist()
    pairs = rng.integers(0, J, size=(n_proposals, 2)).tolist()
    adjacent = rng.integers(0, max(J - 2, 1), size=n_proposals).tolist()
    n_acc = 0
    for t in range(n_proposals):
        kind = kinds[t % len(kinds)]
        a, b = pairs[t]
        if kind == 1:  # 2. adjacent labels a, a + 1 (a uniform below J - 2), with their sticks
            a = adjacent[t]
            b = a + 1
            if not logv[t] < n[a] * l1m[b] - n[b] * l1m[a]:
                continue
            # swapping u_a and u_b leaves pi_a * ... unchanged except for the two labels
            log_r = sum(l1m[:a])
            log_ua, log_ub = lpi[a] - log_r, lpi[b] - log_r - l1m[a]
            l1m[a], l1m[b] = l1m[b], l1m[a]
            lpi[a] = log_ub + log_r
            lpi[b] = log_ua + log_r + l1m[a]
        else:
            if a == b:
                continue
            if kind == 0:  # 1. at fixed weights
                if not logv[t] < (n[a] - n[b]) * (lpi[b] - lpi[a]):
                    continue
            else:  # 3. with the weights, alpha integrated out
                new = lpi.copy()
                new[a], new[b] = new[b], new[a]
                if not logv[t] < log_weight_density(new) - log_weight_density(lpi):
                    continue
                lpi = new
                logR = log_remaining(lpi)
                l1m = [logR[q + 1] - logR[q] for q in range(J - 1)] + [-math.inf]
                alpha = float(rng.gamma(shape) / (rate - lpi[-1]))
        perm[a], perm[b] = perm[b], perm[a]
        n[a], n[b] = n[b], n[a]
        n_acc += 1
    return np.array(perm), alpha, n_acc


# --------------------------------------------------------------------------- (2)-(3) sticks, alpha


def sample_sticks(rng: np.random.Generator, counts: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Stick-breaking ``u_j ~ Beta(1 + n_j, alpha + sum_{l>j} n_l)`` (Ishwaran & James 2001).

    Returns
    -------
    log_pi : ndarray of shape (J,)
    log1m_u : ndarray of shape (J,)
        ``log(1 - u_j)``, last entry ``-inf``.
    """
    J = counts.shape[0]
    tail = np.concatenate([np.cumsum(counts[::-1])[::-1][1:], [0]]).astype(float)
    log_u, log1m_u = log_beta_pair_rvs(rng, 1.0 + counts[:-1], alpha + tail[:-1])
    log_u = np.append(log_u, 0.0)
    log1m_u = np.append(log1m_u, -np.inf)
    log_pi = log_u + np.concatenate([[0.0], np.cumsum(log1m_u[:-1])]) if J > 1 else np.zeros(1)
    return log_pi, log1m_u


def sample_alpha(rng: np.random.Generator, log1m_u: np.ndarray, priors: Priors) -> float:
    """``alpha ~ Gamma(e + J - 1, rate f - sum_{j<J} log(1 - u_j))``."""
    J = log1m_u.shape[0]
    rate = priors.alpha_rate - float(np.sum(log1m_u[:-1]))
    return float(rng.gamma(priors.alpha_shape + J - 1) / rate)
