"""Perturbation designs, proximity kernels and the sampling schedule.

Every design is drawn from a stream that depends only on the call's root seed, a tag, the
number of interpretable features and the block number -- never on the inputs being
explained. So the same seed gives the same design, rows explained together see exactly the
design they would see one by one (common random numbers), and inputs with the same number
of features (tabular rows, images with as many superpixels) share one design and one Gram
matrix.
"""

from __future__ import annotations

import itertools
from math import comb
from typing import NamedTuple

import numpy as np

# stream tags (part of the seed of each stream)
TAG_BERNOULLI = 1
TAG_GAUSSIAN = 2
TAG_SHAPLEY = 3
TAG_TABULAR = 4
TAG_UNIFORM_SIZE = 11  # DMMMENExplainer's uniform-size mask design
TAG_SAMPLER = 12  # DMMMENExplainer's per-call DMM-MEN seed

#: growth of the ``n_samples="auto"`` schedule: the budget doubles each round after the
#: second, up to ``AUTO_CAP_FACTOR`` times the initial block.
AUTO_CAP_FACTOR = 16


def root_seed(rng: np.random.Generator) -> int:
    """One draw from the call's Generator; every design stream of the call derives from it."""
    return int(rng.integers(0, 2**63 - 1))


def stream(seed: int, *keys: int) -> np.random.Generator:
    """An independent Generator for ``(seed, *keys)``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), *(int(k) for k in keys)]))


def schedule(n_samples: int | str, n0: int) -> list[int]:
    """Block sizes: ``[n]`` for a fixed budget; for ``"auto"`` an initial block of ``n0`` then
    blocks that double the total each round, up to ``AUTO_CAP_FACTOR * n0`` samples."""
    if n_samples != "auto":
        return [int(n_samples)]
    sizes, total = [n0], n0
    while total < AUTO_CAP_FACTOR * n0:
        sizes.append(total)
        total *= 2
    return sizes


def converged(coef_target: np.ndarray, stderr: np.ndarray, tol: float) -> np.ndarray:
    """Covert & Lee's stopping rule: ``max_j se_j <= tol * (max_j phi_j - min_j phi_j)``
    (or below ``1e-10`` of the attributions' scale, for a model that does not react at all).

    Parameters
    ----------
    coef_target, stderr : arrays of shape (n_inputs, n_features)

    Returns
    -------
    bool array of shape (n_inputs,)
    """
    if coef_target.shape[1] == 0:
        return np.ones(coef_target.shape[0], dtype=bool)
    spread = coef_target.max(axis=1) - coef_target.min(axis=1)
    # a floor for constant responses (all attributions 0 up to rounding)
    floor = 1e-10 * np.maximum(1.0, np.abs(coef_target).max(axis=1))
    return stderr.max(axis=1) <= np.maximum(tol * spread, floor)


# --------------------------------------------------------------------------- kernels


def exponential_kernel(distance: np.ndarray, width: float) -> np.ndarray:
    """lime's kernel ``sqrt(exp(-d**2 / width**2)) = exp(-d**2 / (2 width**2))``."""
    return np.exp(-(np.asarray(distance, dtype=np.float64) ** 2) / (2.0 * width**2))


def cosine_distance_to_ones(Z: np.ndarray) -> np.ndarray:
    """Cosine distance between binary rows ``z`` and the all-ones vector: ``1 - sqrt(|z| / S)``
    (1 for the empty mask, as in scikit-learn's ``pairwise_distances(metric="cosine")``)."""
    S = Z.shape[-1]
    if S == 0:
        return np.zeros(Z.shape[:-1])
    return 1.0 - np.sqrt(Z.sum(axis=-1) / S)


# --------------------------------------------------------------------------- simple designs


def bernoulli_masks(seed: int, n_features: int, block: int, m: int, include_ones: bool,
                    antithetic: bool = False) -> np.ndarray:
    """Binary masks with Bernoulli(1/2) entries, shape (m, n_features), float64.

    Drawn feature-major, so the first ``S`` columns of a draw with more features equal a draw
    with ``S`` features from the same stream. With ``include_ones`` the first row is all ones
    (the explained input itself, as lime does). With ``antithetic`` the rows come in
    complementary pairs ``(z, 1 - z)`` (the all-ones row is paired with the all-zeros row; an
    odd ``m`` leaves the last row unpaired): every row is still Bernoulli(1/2), so a
    regression on the masks estimates the same quantity, with less variance when the
    response is close to additive in the masks (image LIME on MNIST at 1,000 samples: mean
    relative error 0.095 against 0.117 for independent rows and lime's 0.118;
    ``python benchmarks/local_attribution.py --tasks lime --datasets mnist``).
    """
    rng = stream(seed, TAG_BERNOULLI, n_features, block)
    if not antithetic:
        Z = (rng.random((n_features, m)) < 0.5).T.astype(np.float64)
        if include_ones and m:
            Z[0] = 1.0
        return Z
    half = (m + 1) // 2
    base = (rng.random((n_features, half)) < 0.5).T.astype(np.float64)
    if include_ones and half:
        base[0] = 1.0
    Z = np.empty((2 * half, n_features))
    Z[0::2] = base
    Z[1::2] = 1.0 - base
    return Z[:m]


class Noise(NamedTuple):
    """A Gaussian design block: ``eps`` of shape (m, n_features) and the unit (pair) of each row."""

    eps: np.ndarray
    units: np.ndarray


def gaussian_noise(seed: int, n_features: int, block: int, m: int, antithetic: bool, tag: int = TAG_GAUSSIAN) -> Noise:
    """Standard normal rows ``(m, n_features)``; with ``antithetic`` as pairs ``(e, -e)``
    (one unpaired row when ``m`` is odd). Units number the pairs (rows otherwise)."""
    rng = stream(seed, tag, n_features, block)
    if not antithetic:
        return Noise(rng.standard_normal((m, n_features)), np.arange(m))
    half, odd = divmod(m, 2)
    base = rng.standard_normal((half + odd, n_features))
    eps = np.empty((m, n_features))
    eps[0 : 2 * half : 2] = base[:half]
    eps[1 : 2 * half : 2] = -base[:half]
    if odd:
        eps[-1] = base[-1]
    units = np.arange(m) // 2
    return Noise(eps, units)


# --------------------------------------------------------------------------- Shapley coalitions


class Coalitions(NamedTuple):
    """A block of coalitions: ``Z`` (m, M) float 0/1, kernel ``weights`` (m,) and ``units``
    (m,): -1 for deterministic (enumerated) rows, otherwise the id of the sampled pair."""

    Z: np.ndarray
    weights: np.ndarray
    units: np.ndarray


class ShapleyPlan(NamedTuple):
    """How a Shapley-kernel budget is spent: exact enumeration of all ``2**M - 2`` coalitions,
    or the sizes ``1..k0`` and ``M-k0..M-1`` enumerated and the rest sampled."""

    exact: bool
    enumerated: Coalitions
    sizes: np.ndarray  # remaining sizes to sample
    probs: np.ndarray  # their probabilities (proportional to the Shapley kernel mass)
    remaining_mass: float  # total (normalised) kernel mass of the remaining sizes


#: coalitions sampled at least when the plan is not exact (two complementary pairs)
MIN_SAMPLED = 4


def min_budget(M: int) -> int:
    """The smallest KernelSHAP budget: sizes 1 and M-1 (``2 M``) plus ``MIN_SAMPLED``, or all
    ``2**M - 2`` coalitions when that is fewer."""
    return max(1, min(2 * M + MIN_SAMPLED, 2**M - 2)) if M < 64 else 2 * M + MIN_SAMPLED


def _size_mass(M: int) -> np.ndarray:
    """Normalised Shapley-kernel mass of each coalition size ``k = 0..M`` (0 at k = 0, M):
    ``(M - 1) / (k (M - k))`` summed over the ``C(M, k)`` coalitions of size ``k``."""
    k = np.arange(M + 1, dtype=np.float64)
    mass = np.zeros(M + 1)
    inner = slice(1, M)
    mass[inner] = (M - 1) / (k[inner] * (M - k[inner]))
    return mass / mass.sum()


def all_coalitions(M: int) -> Coalitions:
    """Every coalition except the empty and the full one, with Shapley kernel weights."""
    codes = np.arange(1, 2**M - 1, dtype=np.int64)
    Z = ((codes[:, None] >> np.arange(M)) & 1).astype(np.float64)
    size = Z.sum(axis=1).astype(np.int64)
    mass = _size_mass(M)
    counts = np.array([comb(M, k) for k in range(M + 1)], dtype=np.float64)
    return Coalitions(Z, mass[size] / counts[size], np.full(len(Z), -1))


def shapley_plan(M: int, budget: int) -> ShapleyPlan:
    """Decide which coalition sizes to enumerate for ``budget`` coalitions (shap's rule).

    Sizes are visited from the outside in (``k`` and ``M - k`` together). Sizes 1 and ``M - 1``
    are always enumerated when the budget leaves ``MIN_SAMPLED`` coalitions for the other
    sizes (``2 M`` coalitions; the singletons make the design full rank, so the regression is
    well posed for any budget ``>= min_budget(M)``); a further
    size is enumerated completely when the budget it would receive under proportional sampling
    covers all its coalitions. ``budget >= 2**M - 2`` enumerates everything (exact Shapley
    values).
    """
    if M <= 1 or budget >= 2**M - 2:
        enum = all_coalitions(M) if M >= 2 else Coalitions(np.zeros((0, M)), np.zeros(0), np.zeros(0, int))
        return ShapleyPlan(True, enum, np.zeros(0, int), np.zeros(0), 0.0)
    mass = _size_mass(M)
    n_sizes = (M - 1 + 1) // 2  # ceil((M - 1) / 2)
    pair_mass = np.array([mass[k] + (mass[M - k] if k != M - k else 0.0) for k in range(1, n_sizes + 1)])
    remaining = pair_mass / pair_mass.sum()
    left = float(budget)
    enumerated: list[int] = []
    for k in range(1, n_sizes + 1):
        n_sub = comb(M, k) * (2 if k != M - k else 1)
        # sizes 1 and M-1 always (the singletons make the design full rank) if two sampled
        # pairs remain for the other sizes and their standard errors; then shap's rule
        if (k == 1 and left - n_sub >= MIN_SAMPLED) or left * remaining[k - 1] / n_sub >= 1.0 - 1e-8:
            enumerated.append(k)
            left -= n_sub
            if remaining[k - 1] < 1.0:
                remaining = remaining / (1.0 - remaining[k - 1])
            remaining[k - 1] = 0.0
        else:
            break
    rows, weights = [], []
    counts = [comb(M, k) for k in range(M + 1)]
    for k in enumerated:
        for size in sorted({k, M - k}):
            idx = np.array(list(itertools.combinations(range(M), size)), dtype=np.int64)
            Z = np.zeros((len(idx), M))
            np.put_along_axis(Z, idx, 1.0, axis=1)
            rows.append(Z)
            weights.append(np.full(len(idx), mass[size] / counts[size]))
    k0 = len(enumerated)
    sizes = np.arange(k0 + 1, M - k0, dtype=np.int64)
    if sizes.size == 0:  # everything enumerated after all
        return ShapleyPlan(True, all_coalitions(M), sizes, np.zeros(0), 0.0)
    probs = mass[sizes] / mass[sizes].sum()
    Z = np.concatenate(rows) if rows else np.zeros((0, M))
    w = np.concatenate(weights) if weights else np.zeros(0)
    return ShapleyPlan(False, Coalitions(Z, w, np.full(len(Z), -1)), sizes, probs, float(mass[sizes].sum()))


def sample_coalitions(seed: int, M: int, block: int, m: int, plan: ShapleyPlan, unit_offset: int) -> Coalitions:
    """``m`` distinct coalitions from the plan's remaining sizes in complementary pairs ``(z, 1 - z)``.

    Sizes are drawn proportionally to the Shapley kernel mass and members uniformly within a
    size. A pair drawn again is not evaluated again: its weight (``weights``, the number of
    times it was drawn) goes up by one, and drawing continues until ``m`` distinct coalitions
    are in hand (shap's rule; the caller scales the weights to the remaining kernel mass).
    At equal model evaluations this sees more distinct coalitions than sampling with
    repeats: for 13 features and 1,024 coalitions ~10% of the sampled pairs are repeats
    (``python benchmarks/_local_lowdim.py`` measures the error against shap). Fewer than
    ``m`` rows come back only if ``20 m`` draws did not find ``m`` distinct coalitions.
    """
    rng = stream(seed, TAG_SHAPLEY, M, block)
    half, odd = divmod(m, 2)
    need = half + odd
    seen: dict[bytes, int] = {}
    bases: list[np.ndarray] = []
    counts: list[int] = []
    drawn, cap = 0, max(100, 20 * need)
    while len(bases) < need and drawn < cap:
        n_draw = min(max(need - len(bases), 8), cap - drawn)
        sizes = rng.choice(plan.sizes, size=n_draw, p=plan.probs)
        ranks = np.argsort(np.argsort(rng.random((n_draw, M)), axis=1), axis=1)
        base = ranks < sizes[:, None]  # bool (n_draw, M)
        # a pair's key: its member with the fewer features (the lower bytes on ties)
        small = np.where((2 * sizes < M)[:, None], base, ~base)
        tie = 2 * sizes == M
        for r in range(n_draw):
            drawn += 1
            key = small[r].tobytes()
            if tie[r]:
                key = min(key, (~small[r]).tobytes())
            j = seen.get(key)
            if j is None:
                seen[key] = len(bases)
                bases.append(base[r])
                counts.append(1)
                if len(bases) == need:
                    break
            else:
                counts[j] += 1
    B = np.array(bases, dtype=np.float64).reshape(-1, M)
    c = np.asarray(counts, dtype=np.float64)
    n_pairs = min(half, len(B))
    m_out = 2 * n_pairs + (1 if odd and len(B) == need else 0)
    Z = np.empty((m_out, M))
    Z[0 : 2 * n_pairs : 2] = B[:n_pairs]
    Z[1 : 2 * n_pairs : 2] = 1.0 - B[:n_pairs]
    w = np.repeat(c[:n_pairs], 2)
    if m_out > 2 * n_pairs:
        Z[-1] = B[-1]
        w = np.r_[w, c[-1]]
    units = unit_offset + np.arange(m_out) // 2
    return Coalitions(Z, w, units)
