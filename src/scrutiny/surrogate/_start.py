"""Starting states of the DMM-MEN chain: a warm start (:func:`init`) and prior simulation.

References
----------
Guo, W. et al. (2018). Explaining deep learning models - a Bayesian non-parametric approach. NeurIPS.
Ishwaran, H. & James, L. F. (2001). Gibbs sampling methods for stick-breaking priors. JASA 96.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from scipy.linalg import lapack

from ..exceptions import InvalidParameterError
from ._math import kmeans, log_dirichlet_rvs
from .conditionals import (
    component_stats,
    fitted_values,
    prior_xi,
    sample_c,
    sample_sticks,
    sample_xi,
    update_stats,
)
from .state import Data, Priors, State, check_priors, make_data

__all__ = ["init", "sample_prior", "sample_y"]


# --------------------------------------------------------------------------- prior simulation


def sample_prior(rng: np.random.Generator, X: np.ndarray, priors: Priors) -> State:
    """Draw every parameter and the allocations from the prior (for simulation and tests).

    The returned state has ``y``-dependent caches (``xty``) computed for ``y = 0``; call
    :func:`sample_y` and then :func:`with_data` before stepping.

    Parameters
    ----------
    X : ndarray of shape (n, p)
    priors : Priors

    Returns
    -------
    State
    """
    check_priors(priors)
    J, K = priors.n_components, priors.n_priors
    n, p = X.shape
    alpha = float(rng.gamma(priors.alpha_shape) / priors.alpha_rate)
    log_pi, log1m_u = sample_sticks(rng, np.zeros(J, dtype=np.int64), alpha)
    w = np.exp(log_dirichlet_rvs(rng, np.full(K, priors.alpha_e)))
    w = np.maximum(w, np.finfo(float).tiny)
    w /= w.sum()
    rate = priors.lam_rate
    lam1 = rng.gamma(priors.lam1_shape, 1.0 / rate, K)
    lam2 = rng.gamma(priors.lam2_shape, 1.0 / rate, K)
    c = rng.choice(K, size=J, p=w)
    sigma2 = priors.sigma2_scale / rng.gamma(priors.sigma2_shape, 1.0, J)
    L1, L2 = lam1[c][:, None], lam2[c][:, None]
    theta = np.broadcast_to(L1 * L1 / (8.0 * L2 * sigma2[:, None]), (J, p))
    xi = prior_xi(rng, np.ascontiguousarray(theta))
    beta = rng.standard_normal((J, p)) * np.sqrt(sigma2[:, None] / (L2 * (1.0 + xi)))
    if priors.intercept_scale is not None:
        intercept = priors.intercept_scale * rng.standard_normal(J)
    else:
        intercept = np.zeros(J)
    z = rng.choice(J, size=n, p=np.exp(log_pi) / np.exp(log_pi).sum())
    data = make_data(X, np.zeros(n), priors)
    gram, xty, counts = component_stats(z, data, J)
    return State(
        z=z.astype(np.int64), log_pi=log_pi, log1m_u=log1m_u, alpha=alpha, beta=beta, intercept=intercept,
        sigma2=sigma2, xi=xi, c=c.astype(np.int64), w=w, lam1=lam1, lam2=lam2, gram=gram, xty=xty,
        counts=counts, fitted=fitted_values(data, beta, intercept), iteration=0,
    )


def sample_y(rng: np.random.Generator, state: State, X: np.ndarray) -> np.ndarray:
    """``y_i ~ N(b0_{z_i} + x_i' beta_{z_i}, sigma2_{z_i})``, shape (n,)."""
    z = state.z
    mean = np.einsum("ij,ij->i", X, state.beta[z]) + state.intercept[z]
    return mean + np.sqrt(state.sigma2[z]) * rng.standard_normal(z.shape[0])


# --------------------------------------------------------------------------- init


def _ridge_fit(gram, xty, ridge, intercept):
    """Ridge solutions of every component, shape (J, d) (zeros for empty components)."""
    J, d = xty.shape
    pen = np.full(d, ridge)
    if intercept:
        pen[0] = 1e-8
    theta = np.zeros((J, d))
    for j in range(J):
        if gram[j, 0, 0] == 0 and intercept:
            continue
        A = gram[j] + np.diag(pen * max(1.0, float(np.trace(gram[j])) / d * 1e-6))
        L, info = lapack.dpotrf(A, lower=1, clean=1)
        if info == 0:
            theta[j] = lapack.dpotrs(L, xty[j][:, None], lower=1)[0][:, 0]
    return theta


def _hard_em(
    data: Data, z: np.ndarray, J: int, n_steps: int, ridge: float, min_size: int, merge: bool = True
) -> np.ndarray:
    """Classification EM for a mixture of ridge regressions, optionally merging redundant components.

    Each iteration fits a ridge regression per component, then (with ``merge``) either merges the
    pair of components whose single joint regression wins a BIC comparison (at most one merge per
    iteration) or re-allocates every sample to its most likely component. Components with fewer
    than ``min_size`` samples are dropped. Returns the final allocations.
    """
    n, d = data.design.shape
    gram, xty, counts = component_stats(z, data, J)
    yy = np.bincount(z, weights=data.y**2, minlength=J)
    floor = 1e-6 * max(float(np.var(data.y)), 1e-12)
    rows = np.arange(n)
    for _ in range(n_steps + J):
        active = counts >= min_size
        if not active.any():
            active[np.argmax(counts)] = True
        theta = _ridge_fit(gram, xty, ridge, data.intercept)
        fitted = (theta @ data.design.T).T  # OpenBLAS: twice as fast as design @ theta.T
        resid = data.y[:, None] - fitted
        rss = np.bincount(z, weights=resid[rows, z] ** 2, minlength=J)
        sig2 = np.maximum(rss / np.maximum(counts, 1), floor)
        act = np.flatnonzero(active) if merge else np.empty(0, dtype=np.int64)
        best, pair = 0.0, None
        for a_i, j in enumerate(act):
            for l in act[a_i + 1:]:
                G, h, nn = gram[j] + gram[l], xty[j] + xty[l], counts[j] + counts[l]
                th = _ridge_fit(G[None], h[None], ridge, data.intercept)[0]
                rss_m = max(yy[j] + yy[l] - 2.0 * th @ h + th @ G @ th, floor * nn)
                bic_sep = counts[j] * np.log(sig2[j]) + counts[l] * np.log(sig2[l]) + 2 * (d + 1) * np.log(n)
                bic_m = nn * np.log(rss_m / nn) + (d + 1) * np.log(n)
                if bic_m - bic_sep < best:
                    best, pair = bic_m - bic_sep, (j, l)
        if pair is not None:  # exact merge of the statistics, then refit
            j, l = pair
            z = np.where(z == l, j, z)
            gram, xty = gram.copy(), xty.copy()
            gram[j] += gram[l]
            xty[j] += xty[l]
            counts[j] += counts[l]
            yy[j] += yy[l]
            gram[l], xty[l], counts[l], yy[l] = 0.0, 0.0, 0, 0.0
            continue
        n_steps -= 1
        if n_steps < 0:
            break
        logd = np.log(np.maximum(counts, 1) / n) - 0.5 * np.log(sig2) - 0.5 * resid**2 / sig2
        logd[:, ~active] = -np.inf
        z_new = np.argmax(logd, axis=1)
        if np.array_equal(z_new, z):
            break
        gram, xty, counts, _ = update_stats(z, z_new, gram, xty, data)
        yy = np.bincount(z_new, weights=data.y**2, minlength=J)
        z = z_new
    return z


def init(
    rng: np.random.Generator,
    X: np.ndarray,
    y: np.ndarray,
    priors: Priors,
    *,
    z: Optional[np.ndarray] = None,
    n_em_steps: int = 0,
    merge: bool = False,
) -> State:
    """A warm start: ``J`` k-means clusters on ``(x, y)``, every component occupied.

    k-means (``J`` clusters) runs on standardised features with ``y`` weighted as much as all
    of ``x`` together. Optionally, classification EM then alternates ridge fits and hard
    re-allocation (``n_em_steps``), merging pairs of components whenever a BIC comparison prefers
    one regression for both (``merge``) and dropping components with fewer than ``min(d, 10)``
    samples. Unused components get prior draws, ``alpha`` starts at its prior mean, the penalties
    at their prior means, ``c`` and ``tau`` from their conditionals.

    Starting with all ``J`` components occupied is the default because the Gibbs sweep empties
    a superfluous component quickly, but grows a missing one very slowly (on the paper's
    Trouser problem, a start with BIC merges left one component out for far longer than the
    k-means start takes to reach its stationary log-likelihood; ``benchmarks/dmm_men.py``,
    section 1, prints how the default starts converge).

    Parameters
    ----------
    X : ndarray of shape (n, p)
    y : ndarray of shape (n,)
    priors : Priors
    z : ndarray of shape (n,), optional
        Start from these allocations instead (EM is skipped).
    n_em_steps : int
        Classification-EM iterations (0 keeps the k-means partition).
    merge : bool
        Let classification EM merge components by BIC (used only when ``n_em_steps > 0``).

    Returns
    -------
    State
    """
    check_priors(priors)
    data = make_data(X, y, priors)
    n, p = X.shape
    d = data.design.shape[1]
    J, K = priors.n_components, priors.n_priors
    ridge = priors.lam2_shape / priors.lam_rate  # prior mean of lam2
    if z is None:
        if J == 1:
            z = np.zeros(n, dtype=np.int64)
        else:
            sd = X.std(axis=0)
            Xs = (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
            ysd = float(np.std(y)) or 1.0
            feats = np.column_stack([Xs, np.sqrt(p) * (y - np.mean(y)) / ysd])
            z = kmeans(rng, feats, J).astype(np.int64)
            if n_em_steps > 0:
                z = _hard_em(data, z, J, n_em_steps, ridge, max(2, min(d, 10)), merge)
    else:
        z = np.asarray(z, dtype=np.int64)
        if z.shape != (n,) or z.min() < 0 or z.max() >= J:
            raise InvalidParameterError(
                f"z must hold one component index in [0, {J - 1}] per sample; got shape {z.shape}."
            )
    # relabel occupied components to the front, largest first (stick-breaking favours early labels)
    counts = np.bincount(z, minlength=J)
    order = np.argsort(-counts, kind="stable")
    z = np.argsort(order)[z]
    gram, xty, counts = component_stats(z, data, J)
    theta = _ridge_fit(gram, xty, ridge, data.intercept)
    occupied = counts > 0
    fitted0 = (theta @ data.design.T).T
    rss = np.bincount(z, weights=(y - fitted0[np.arange(n), z]) ** 2, minlength=J)
    var_y = max(float(np.var(y)), 1e-12)
    sigma2 = np.where(occupied, np.maximum(rss / np.maximum(counts, 1), 1e-4 * var_y), var_y)

    rate = priors.lam_rate
    lam1 = np.full(K, priors.lam1_shape / rate)
    lam2 = np.full(K, priors.lam2_shape / rate)
    w = np.full(K, 1.0 / K)
    if data.intercept:
        beta, intercept = theta[:, 1:].copy(), theta[:, 0].copy()
    else:
        beta, intercept = theta.copy(), np.zeros(J)
    # empty components: prior draws given sigma2 = var(y)
    c = rng.integers(K, size=J)
    if (~occupied).any():
        idle = np.flatnonzero(~occupied)
        L1, L2 = lam1[c[idle]][:, None], lam2[c[idle]][:, None]
        th = np.ascontiguousarray(np.broadcast_to(L1 * L1 / (8.0 * L2 * sigma2[idle, None]), (idle.size, p)))
        xi_idle = prior_xi(rng, th)
        beta[idle] = rng.standard_normal((idle.size, p)) * np.sqrt(sigma2[idle, None] / (L2 * (1.0 + xi_idle)))
        if data.intercept:
            intercept[idle] = priors.intercept_scale * rng.standard_normal(idle.size)
    c = sample_c(rng, beta, sigma2, lam1, lam2, w)
    xi = sample_xi(rng, beta, sigma2, c, lam1, lam2)
    alpha = priors.alpha_shape / priors.alpha_rate
    log_pi, log1m_u = sample_sticks(rng, counts, alpha)
    return State(
        z=z, log_pi=log_pi, log1m_u=log1m_u, alpha=float(alpha), beta=beta, intercept=intercept,
        sigma2=sigma2, xi=xi, c=c.astype(np.int64), w=w, lam1=lam1, lam2=lam2, gram=gram, xty=xty,
        counts=counts, fitted=fitted_values(data, beta, intercept), iteration=0,
    )

