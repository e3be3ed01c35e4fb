"""Numerical building blocks of the DMM-MEN sampler (private).

Everything here works in log space and is vectorised over components, except the scalar
forms that the slice samplers evaluate one component at a time:

* :func:`en_log_norm` / :func:`en_logpdf_sum`: the Bayesian elastic-net prior (Li & Lin 2010;
  Hans 2011) and its normaliser, written with ``erfcx`` so that the ``exp(theta)`` and
  ``Phi(-sqrt(2 theta))`` factors cancel analytically instead of numerically
  (:func:`en_log_norm1` / :func:`en_logpdf_sum1`: the same for scalars, compiled);
* :func:`log_gamma_rvs`: ``log`` of Gamma draws that never underflow, even for tiny shapes
  (the ``Dir(1/K)`` weights and the stick-breaking variables);
* :func:`rinvgauss`: inverse-Gaussian draws in a cancellation-free form of Michael, Schucany &
  Haas (1976), with the exact Levy limit for an infinite mean (a coefficient at exactly 0);
* :func:`slice_sample` / :func:`slice_loop`: Neal's (2003) stepping-out and shrinkage slice
  sampler on many independent scalar one-dimensional targets, compiled with numba;
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

import math

import numba
import numpy as np
from scipy.special import erfcx

LOG_2PI = float(np.log(2.0 * np.pi))
_SQRT_PI = math.sqrt(math.pi)

#: Compiled scalar code: numpy's error model (inf / NaN instead of ZeroDivisionError, like the
#: vectorised forms) and numba's on-disk cache, so a new process loads the machine code instead
#: of compiling it (the load time: benchmarks/dmm_men.py, section 5).
jit = numba.njit(error_model="numpy", cache=True)

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


@jit
def log_erfcx(x: float) -> float:
    """``log erfcx(x) = x^2 + log erfc(x)``, compiled; accurate to about 1e-13 relative.

    ``erfc`` keeps its relative accuracy in the tail, so the sum is exact up to round-off while
    ``erfc(x)`` is a normal number (``x < 26``); from ``x = 25`` the asymptotic series
    ``erfcx(x) = (1 - r + 3 r^2 - 15 r^3 + 105 r^4 - ...) / (x sqrt(pi))``, ``r = 1 / (2 x^2)``,
    is used, whose first omitted term is below 4e-13.
    """
    if x < 25.0:
        return x * x + math.log(math.erfc(x))
    r = 1.0 / (2.0 * x * x)
    return math.log((1.0 - r * (1.0 - 3.0 * r * (1.0 - 5.0 * r * (1.0 - 7.0 * r)))) / (x * _SQRT_PI))


@jit
def en_log_norm1(lam1: float, lam2: float, sigma2: float) -> float:
    """:func:`en_log_norm` for scalars, compiled: the form evaluated inside the slice-sampling
    targets (callable from Python too)."""
    return 0.5 * (LOG_2PI + math.log(sigma2) - math.log(lam2)) + log_erfcx(lam1 / math.sqrt(8.0 * lam2 * sigma2))


@jit
def en_logpdf_sum1(l1: float, l2sq: float, p: int, lam1: float, lam2: float, sigma2: float) -> float:
    """:func:`en_logpdf_sum` for scalars, compiled (see :func:`en_log_norm1`)."""
    return -(lam1 * l1 + lam2 * l2sq) / (2.0 * sigma2) - p * en_log_norm1(lam1, lam2, sigma2)


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
    # reductions over the short axis run on the contiguous transpose (faster for m of about 6:
    # benchmarks/dmm_men.py, section 5)
    lt = np.ascontiguousarray(logits.T)
    mx = np.maximum.reduce(lt, axis=0)
    cum = np.add.accumulate(np.exp(lt - mx), axis=0)
    tot = cum[-1]
    u = rng.random(logits.shape[0]) * tot
    draws = np.minimum(np.add.reduce(cum < u, axis=0, dtype=np.int64), logits.shape[1] - 1)
    return draws, mx + np.log(tot)


# --------------------------------------------------------------------------- slice sampling
# The slice samplers run compiled: their targets (one per component or per prior, J of about 6)
# are a few floating-point operations each, evaluated 6-12 times per update, so in Python the
# interpreter's overhead dominated a local explainer's short sweeps (the time per explanation:
# benchmarks/dmm_men.py, section 4).
# Randomness inside a compiled loop comes from a xoshiro256** stream seeded from the caller's
# numpy Generator (one 64-bit draw per call), so results stay a function of ``random_state``.

_U64 = np.uint64
_SPLITMIX_INC, _SPLITMIX_M1, _SPLITMIX_M2 = _U64(0x9E3779B97F4A7C15), _U64(0xBF58476D1CE4E5B9), _U64(0x94D049BB133111EB)


@jit
def _splitmix64(x):
    """One step of splitmix64 (Steele, Lea & Flood 2014): ``(next state, output)``."""
    x = x + _SPLITMIX_INC
    z = x
    z = (z ^ (z >> _U64(30))) * _SPLITMIX_M1
    z = (z ^ (z >> _U64(27))) * _SPLITMIX_M2
    return x, z ^ (z >> _U64(31))


@jit
def rng_state(seed):
    """xoshiro256** state (4 uint64) from a 64-bit seed, expanded by splitmix64 as its authors
    recommend (Blackman & Vigna 2021)."""
    s = np.empty(4, dtype=np.uint64)
    x = _U64(seed)
    for k in range(4):
        x, s[k] = _splitmix64(x)
    return s


@jit
def _rotl(x, k):
    return (x << _U64(k)) | (x >> _U64(64 - k))


@jit
def rng_random(s):
    """A uniform double in [0, 1) from the xoshiro256** state ``s`` (advanced in place)."""
    result = _rotl(s[1] * _U64(5), 7) * _U64(9)
    t = s[1] << _U64(17)
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = _rotl(s[3], 45)
    return float(result >> _U64(11)) * 1.1102230246251565e-16  # 2^-53


@jit
def _inside(v: float, logy: float) -> bool:
    """``v > logy`` for a finite ``v``: NaN and infinities are outside the support (``math``
    outside its domain gives them, e.g. ``log`` of 0)."""
    return v > logy and v < math.inf


@numba.njit(error_model="numpy", cache=True, inline="always")
def slice_loop(logf, args, s, x, width, max_steps):
    """Compiled core of :func:`slice_sample`: one update, in place, of every element of ``x``
    with target ``logf(i, x, args)`` (a compiled function), widths ``width`` (array) and
    stepping-out limit ``max_steps``, drawing from the xoshiro256** state ``s``
    (:func:`rng_state`). Returns the number of evaluations.

    It is inlined into its callers (numba IR inlining): the callers (``conditionals``) are
    kernels cached on disk, and numba does not cache a function that calls a specialisation of
    this loop on a function argument."""
    n_evals = 0
    for i in range(x.shape[0]):
        x0, w = x[i], width[i]
        logy = logf(i, x0, args) + math.log(1.0 - rng_random(s))  # minus a standard exponential
        left = x0 - w * rng_random(s)
        right = left + w
        j = int(max_steps * rng_random(s))
        k = (max_steps - 1) - j
        n_evals += 1
        while j > 0:
            n_evals += 1
            if not _inside(logf(i, left, args), logy):
                break
            left -= w
            j -= 1
        while k > 0:
            n_evals += 1
            if not _inside(logf(i, right, args), logy):
                break
            right += w
            k -= 1
        for _ in range(200):
            prop = left + rng_random(s) * (right - left)
            n_evals += 1
            if _inside(logf(i, prop, args), logy):
                x[i] = prop
                break
            if prop < x0:
                left = prop
            else:
                right = prop
        # an interval that shrank to x0 without acceptance (only through round-off) keeps x0
    return n_evals


def slice_seed(rng: np.random.Generator) -> np.uint64:
    """The 64-bit seed of one compiled slice update, drawn from the caller's stream."""
    return rng.integers(0, 2**64, dtype=np.uint64, endpoint=False)


def slice_sample(rng: np.random.Generator, x0, logf, width, max_steps: int = 50, args=()) -> tuple[np.ndarray, int]:
    """One stepping-out / shrinkage slice-sampling update of each of many independent 1-D targets.

    Element ``i`` of ``x0`` is updated with target ``exp(logf(i, x, args))`` (Neal 2003, Figs. 3
    and 5). ``logf`` must be a compiled (``numba.njit``) function; the sampler's own conditionals
    call :func:`slice_loop` from compiled kernels of their own (``conditionals``), which numba
    caches on disk, while this entry point compiles a new specialisation for every ``logf``.

    Parameters
    ----------
    x0 : array-like of shape (m,)
        Current points (their log densities must be finite).
    logf : numba dispatcher
        ``logf(i, x, args) -> float``; ``-inf``, ``+inf`` and NaN mean "outside the support".
    width : float or array-like of shape (m,)
        Initial interval widths.
    max_steps : int
        Limit ``m`` on stepping out (Neal's ``m``), split randomly between the two sides.
    args : tuple
        Passed to ``logf``.

    Returns
    -------
    x1 : ndarray of shape (m,)
    n_evals : int
        Evaluations of ``logf``, summed over the elements.
    """
    x = np.array(x0, dtype=float)
    width = np.ascontiguousarray(np.broadcast_to(np.asarray(width, dtype=float), x.shape))
    n_evals = slice_loop(logf, args, rng_state(slice_seed(rng)), x, width, int(max_steps))
    return x, n_evals


def kmeans(rng: np.random.Generator, F: np.ndarray, k: int, n_iter: int = 30) -> np.ndarray:
    """Lloyd's k-means with k-means++ seeding; returns labels of shape (n,) in ``[0, k)``.

    The distances are ``(C F')'`` and the centroids one-hot products ``onehot' F``: OpenBLAS
    multiplies a tall matrix by a skinny one (``F C'``, boolean-mask means) more slowly, for the
    same partition (both forms timed by ``benchmarks/dmm_men.py``, section 5).
    """
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
        dist = sq[:, None] - 2.0 * (C @ F.T).T + np.einsum("ij,ij->i", C, C)[None, :]
        new = np.argmin(dist, axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
        onehot = (labels[:, None] == np.arange(k)).astype(F.dtype)
        counts = onehot.sum(axis=0)
        filled = counts > 0  # an empty cluster keeps its centre
        C[filled] = (onehot.T @ F)[filled] / counts[filled, None]
    return labels
