"""Numerical building blocks of the DMM-MEN sampler (private).

Everything here works in log space and is vectorised over components:

* :func:`en_log_norm` / :func:`en_logpdf_sum`: the Bayesian elastic-net prior (Li & Lin 2010;
  Hans 2011) and its normaliser, written with ``erfcx`` so that the ``exp(theta)`` and
  ``Phi(-sqrt(2 theta))`` factors cancel analytically instead of numerically;
* :func:`log_gamma_rvs`: ``log`` of Gamma draws that never underflow, even for tiny shapes
  (the ``Dir(1/K)`` weights and the stick-breaking variables);
* :func:`rinvgauss`: inverse-Gaussian draws in a cancellation-free form of Michael, Schucany &
  Haas (1976), with the exact Levy limit for an infinite mean (a coefficient at exactly 0);
* :func:`slice_sample`: Neal's (2003) stepping-out and shrinkage slice sampler, run on many
  independent one-dimensional targets at once;
* :func:`categorical_from_logits`: one categorical draw per row of a log-probability matrix.

References
----------
Li, Q. & Lin, N. (2010). The Bayesian elastic net. Bayesian Analysis 5(1), 151-170.
Hans, C. (2011). Elastic net regression modeling with the orthant normal prior. JASA 106, 1383-1393.
Neal, R. M. (2003). Slice sampling. Annals of Statistics 31(3), 705-767.
Michael, J. R., Schucany, W. R. & Haas, R. W. (1976). Generating random variates using
transformations with multiple roots. The American Statistician 30(2), 88-90.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.special import erfcx, gammaln

LOG_2PI = float(np.log(2.0 * np.pi))

#: Bounds on xi = tau / (1 - tau). The upper bound keeps the prior precision
#: lambda2 * (1 + xi) finite; it is reached with probability ~ 1e-100 per draw.
XI_MIN, XI_MAX = 1e-300, 1e200


def en_log_norm(lam1, lam2, sigma2):
    """Log normaliser of one coordinate of the elastic-net prior.

    ``Z = integral exp{-(lam1 |b| + lam2 b^2) / (2 sigma2)} db
    = 2 sqrt(2 pi sigma2 / lam2) exp(theta) Phi(-sqrt(2 theta))`` with
    ``theta = lam1^2 / (8 lam2 sigma2)``. Since ``Phi(-x) = erfcx(x / sqrt 2) exp(-x^2 / 2) / 2``
    and ``x^2 / 2 = theta``, ``log Z = log(2 pi sigma2 / lam2) / 2 + log erfcx(sqrt(theta))``,
    which stays accurate when ``theta`` is huge (where ``theta + log_ndtr(-x)`` would cancel).

    Parameters
    ----------
    lam1, lam2, sigma2 : array-like, broadcastable, all > 0

    Returns
    -------
    ndarray
        ``log Z`` with the broadcast shape.
    """
    lam1 = np.asarray(lam1, dtype=float)
    lam2 = np.asarray(lam2, dtype=float)
    sigma2 = np.asarray(sigma2, dtype=float)
    root_theta = lam1 / np.sqrt(8.0 * lam2 * sigma2)
    return 0.5 * (LOG_2PI + np.log(sigma2) - np.log(lam2)) + np.log(erfcx(root_theta))


def en_logpdf_sum(l1, l2sq, p, lam1, lam2, sigma2):
    """Sum over ``p`` coordinates of the elastic-net log prior density.

    ``sum_l log EN(b_l | lam1, lam2, sigma2) = -(lam1 ||b||_1 + lam2 ||b||^2) / (2 sigma2) - p log Z``.

    Parameters
    ----------
    l1, l2sq : array-like
        ``||b||_1`` and ``||b||_2^2`` of the coefficient vector(s).
    p : int
        Number of penalised coordinates.
    lam1, lam2, sigma2 : array-like
        Penalties and noise variance (broadcast against ``l1``).
    """
    sigma2 = np.asarray(sigma2, dtype=float)
    return -(lam1 * l1 + lam2 * l2sq) / (2.0 * sigma2) - p * en_log_norm(lam1, lam2, sigma2)


def log_gamma_rvs(rng: np.random.Generator, shape, size=None) -> np.ndarray:
    """``log G`` with ``G ~ Gamma(shape, 1)``, accurate for tiny shapes.

    For ``shape < 1`` uses ``G = G' U^(1/shape)`` with ``G' ~ Gamma(shape + 1)`` so that the
    log never underflows (``Gamma(1/3)`` draws below 1e-308 happen).
    """
    shape = np.asarray(shape, dtype=float)
    if size is None:
        size = shape.shape
    small = shape < 1.0
    g = rng.standard_gamma(np.where(small, shape + 1.0, shape), size=size)
    out = np.log(g)
    if np.any(small):
        log_u = np.log(rng.random(size=size))
        out = np.where(small, out + log_u / np.where(small, shape, 1.0), out)
    return out


def log_dirichlet_rvs(rng: np.random.Generator, concentration) -> np.ndarray:
    """``log w`` for ``w ~ Dirichlet(concentration)`` (last axis), without underflow."""
    lg = log_gamma_rvs(rng, concentration)
    return lg - np.logaddexp.reduce(lg, axis=-1, keepdims=True)


def log_beta_pair_rvs(rng: np.random.Generator, a, b) -> tuple[np.ndarray, np.ndarray]:
    """``(log u, log(1 - u))`` for ``u ~ Beta(a, b)``, both accurate when ``u`` is near 0 or 1."""
    la = log_gamma_rvs(rng, a)
    lb = log_gamma_rvs(rng, b)
    tot = np.logaddexp(la, lb)
    return la - tot, lb - tot


def rinvgauss(rng: np.random.Generator, mean, shape) -> np.ndarray:
    """Inverse-Gaussian draws ``IG(mean, shape)`` (numpy's ``wald``), numerically stable.

    The smaller root of Michael, Schucany & Haas (1976),
    ``x1 = mean + mean^2 y / (2 shape) - mean / (2 shape) sqrt(4 mean shape y + mean^2 y^2)``
    with ``y = N(0,1)^2``, is evaluated as ``mean / (1 + r + sqrt(r^2 + 2 r))``, ``r = mean y /
    (2 shape)``, which has no cancellation; ``x1`` is kept with probability ``mean / (mean + x1)``
    and replaced by ``mean^2 / x1`` otherwise. ``mean = inf`` gives the Levy limit
    ``shape / y`` exactly.

    Parameters
    ----------
    mean : array-like, > 0, may be ``inf``
    shape : array-like, > 0

    Returns
    -------
    ndarray, clipped to ``[XI_MIN, XI_MAX]``.
    """
    mean, shape = np.broadcast_arrays(np.asarray(mean, dtype=float), np.asarray(shape, dtype=float))
    y = rng.standard_normal(mean.shape) ** 2
    u = rng.random(mean.shape)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        finite = np.isfinite(mean)
        r = mean * y / (2.0 * shape)
        x1 = mean / (1.0 + r + np.sqrt(r * r + 2.0 * r))
        keep = u * (1.0 + x1 / mean) <= 1.0
        x = np.where(keep, x1, mean * (mean / x1))
        x = np.where(finite, x, shape / y)
    x = np.where(np.isnan(x), XI_MAX, x)
    return np.clip(x, XI_MIN, XI_MAX)


def categorical_from_logits(rng: np.random.Generator, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One draw per row of ``softmax(logits)``; also returns the row log-normalisers.

    Parameters
    ----------
    logits : ndarray of shape (n, m)
        Unnormalised log-probabilities; ``-inf`` entries have probability 0. Each row needs
        at least one finite entry.

    Returns
    -------
    draws : ndarray of shape (n,), int64
    log_norm : ndarray of shape (n,)
        ``logsumexp`` of each row.
    """
    mx = np.max(logits, axis=1, keepdims=True)
    prob = np.exp(logits - mx)
    cum = np.cumsum(prob, axis=1)
    tot = cum[:, -1]
    u = rng.random(logits.shape[0]) * tot
    draws = np.minimum((cum < u[:, None]).sum(axis=1), logits.shape[1] - 1)
    return draws, mx[:, 0] + np.log(tot)


def slice_sample(
    rng: np.random.Generator,
    x0: np.ndarray,
    logf: Callable[[np.ndarray], np.ndarray],
    width,
    max_steps: int = 50,
) -> tuple[np.ndarray, int]:
    """One stepping-out / shrinkage slice-sampling update of many independent 1-D targets.

    Element ``i`` of ``x0`` is updated with target ``exp(logf(x)[i])``, where ``logf`` maps a
    vector of the same length to the vector of log densities (element ``i`` may only depend on
    ``x[i]``). All elements step out and shrink together, so the Python loop runs only as
    many times as the slowest element needs (Neal 2003, Figs. 3 and 5).

    Parameters
    ----------
    x0 : ndarray of shape (m,)
        Current points (their log densities must be finite).
    logf : callable
        Vectorised log density, ``(m,) -> (m,)``; ``-inf``/NaN outside the support.
    width : float or ndarray of shape (m,)
        Initial interval widths.
    max_steps : int
        Limit ``m`` on stepping out (Neal's ``m``), split randomly between the two sides.

    Returns
    -------
    x1 : ndarray of shape (m,)
    n_evals : int
        Number of calls of ``logf`` (each on the whole vector).
    """
    x0 = np.asarray(x0, dtype=float)
    m = x0.shape[0]
    w = np.broadcast_to(np.asarray(width, dtype=float), (m,))
    f0 = logf(x0)
    n_evals = 1
    logy = f0 - rng.standard_exponential(m)
    left = x0 - w * rng.random(m)
    right = left + w
    j = np.floor(max_steps * rng.random(m)).astype(np.int64)
    k = (max_steps - 1) - j
    active = j > 0
    while active.any():
        n_evals += 1
        active &= logf(left) > logy  # NaN compares False: outside the support
        left = np.where(active, left - w, left)
        j -= active
        active &= j > 0
    active = k > 0
    while active.any():
        n_evals += 1
        active &= logf(right) > logy
        right = np.where(active, right + w, right)
        k -= active
        active &= k > 0
    x1 = x0.copy()
    todo = np.ones(m, dtype=bool)
    for _ in range(200):
        prop = left + rng.random(m) * (right - left)
        fp = logf(np.where(todo, prop, x1))
        n_evals += 1
        ok = todo & (fp > logy)
        x1 = np.where(ok, prop, x1)
        todo &= ~ok
        if not todo.any():
            break
        shrink_left = todo & (prop < x0)
        shrink_right = todo & (prop >= x0)
        left = np.where(shrink_left, prop, left)
        right = np.where(shrink_right, prop, right)
    # an interval that shrank to x0 without acceptance (only through round-off) keeps x0
    return x1, n_evals


def kmeans(rng: np.random.Generator, F: np.ndarray, k: int, n_iter: int = 30) -> np.ndarray:
    """Lloyd's k-means with k-means++ seeding; returns labels of shape (n,) in ``[0, k)``."""
    n = F.shape[0]
    k = min(k, n)
    sq = np.einsum("ij,ij->i", F, F)
    centers = [F[rng.integers(n)]]
    d2 = np.maximum(sq - 2.0 * F @ centers[0] + centers[0] @ centers[0], 0.0)
    for _ in range(1, k):
        tot = d2.sum()
        idx = rng.choice(n, p=d2 / tot) if tot > 0 else rng.integers(n)
        centers.append(F[idx])
        d2 = np.minimum(d2, np.maximum(sq - 2.0 * F @ F[idx] + F[idx] @ F[idx], 0.0))
    C = np.array(centers)
    labels = np.full(n, -1)
    for _ in range(n_iter):
        dist = sq[:, None] - 2.0 * F @ C.T + np.einsum("ij,ij->i", C, C)[None, :]
        new = np.argmin(dist, axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
        for j in range(k):
            members = labels == j
            if members.any():
                C[j] = F[members].mean(axis=0)
    return labels


def gamma_logpdf(x, shape, rate):
    """``log Gamma(x | shape, rate)``."""
    x = np.asarray(x, dtype=float)
    return shape * np.log(rate) - gammaln(shape) + (shape - 1.0) * np.log(x) - rate * x


def invgamma_logpdf(x, shape, scale):
    """``log InvGamma(x | shape, scale)``, density ``prop. to x^(-shape-1) exp(-scale/x)``."""
    x = np.asarray(x, dtype=float)
    return shape * np.log(scale) - gammaln(shape) - (shape + 1.0) * np.log(x) - scale / x
