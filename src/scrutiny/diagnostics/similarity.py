"""Similarity of two explanations of the same inputs, sample by sample (Adebayo et al. 2018, Sec. 3).

Every function takes two arrays of attributions of shape ``(n_samples, ...)`` and returns one
similarity per pair of rows; :func:`pairwise` returns the ``(n, n)`` matrix of every row of ``a``
against every row of ``b`` (the permutation test of :func:`permutation_pvalue` reads it).

* ``"spearman"`` -- Spearman rank correlation of the signed values;
* ``"spearman_abs"`` -- the same on absolute values (the paper's main measure);
* ``"ssim"`` -- structural similarity of the two maps, each summed over channels in absolute value
  and scaled to [0, 1] by its maximum (images only, ``(n, C, H, W)`` or ``(n, H, W)``);
* ``"hog"`` -- Pearson correlation of the histograms of oriented gradients of those maps (images only).

Similarities of unrelated maps are not 0 for every measure (two maps of centred digits share their
blank border): read them against a baseline such as a random attribution's similarity (the noise
floor :func:`scrutiny.diagnostics.sanity_check` reports beside every value).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from ..exceptions import InvalidParameterError

__all__ = ["METRICS", "IMAGE_METRICS", "similarity", "pairwise", "permutation_pvalue", "image_map"]

METRICS = ("spearman_abs", "spearman", "ssim", "hog")
IMAGE_METRICS = ("ssim", "hog")


def _rank_rows(a: np.ndarray) -> np.ndarray:
    r = rankdata(a.reshape(a.shape[0], -1), axis=1)
    r = r - r.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(r, axis=1, keepdims=True)
    return np.divide(r, norm, out=np.zeros_like(r), where=norm > 0)


def image_map(a: np.ndarray) -> np.ndarray:
    """(n, C, H, W) or (n, H, W) attributions -> (n, H, W) absolute maps scaled to [0, 1] per sample."""
    a = np.abs(np.asarray(a, dtype=np.float64))
    if a.ndim == 4:
        a = a.sum(axis=1)
    if a.ndim != 3:
        raise InvalidParameterError(
            f"SSIM and HOG similarity need image attributions (n, C, H, W) or (n, H, W); got shape {a.shape}. "
            "Use metrics=('spearman_abs', 'spearman') for tabular inputs."
        )
    top = a.reshape(a.shape[0], -1).max(axis=1)
    return a / np.where(top > 0, top, 1.0)[:, None, None]


def _ssim_one(x: np.ndarray, y: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    side = min(x.shape)
    win = min(7, side if side % 2 else side - 1)
    return float(structural_similarity(x, y, data_range=1.0, win_size=win))


def _hog(m: np.ndarray) -> np.ndarray:
    from skimage.feature import hog

    cell = max(2, min(m.shape) // 4)
    return hog(m, orientations=9, pixels_per_cell=(cell, cell), cells_per_block=(2, 2), feature_vector=True)


def _corr_rows(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Pearson correlation of every row of u with every row of v, (n, m); 0 for a constant row."""
    def unit(w: np.ndarray) -> np.ndarray:
        w = w - w.mean(axis=1, keepdims=True)
        norm = np.linalg.norm(w, axis=1, keepdims=True)
        return np.divide(w, norm, out=np.zeros_like(w), where=norm > 1e-12)

    return unit(u) @ unit(v).T


def pairwise(metric: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Similarity of every row of ``a`` with every row of ``b``: shape (n_a, n_b)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if metric == "spearman":
        return _rank_rows(a) @ _rank_rows(b).T
    if metric == "spearman_abs":
        return _rank_rows(np.abs(a)) @ _rank_rows(np.abs(b)).T
    if metric == "hog":
        ha = np.stack([_hog(m) for m in image_map(a)])
        hb = np.stack([_hog(m) for m in image_map(b)])
        return _corr_rows(ha, hb)
    if metric == "ssim":
        ma, mb = image_map(a), image_map(b)
        return np.array([[_ssim_one(x, y) for y in mb] for x in ma])
    raise InvalidParameterError(f"metric must be one of {METRICS}; got {metric!r}.")


def similarity(metric: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Similarity of row i of ``a`` with row i of ``b``: shape (n,)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise InvalidParameterError(f"the two explanations must have the same shape; got {a.shape} and {b.shape}.")
    if metric == "spearman":
        return np.sum(_rank_rows(a) * _rank_rows(b), axis=1)
    if metric == "spearman_abs":
        return np.sum(_rank_rows(np.abs(a)) * _rank_rows(np.abs(b)), axis=1)
    if metric == "hog":
        ha = np.stack([_hog(m) for m in image_map(a)])
        hb = np.stack([_hog(m) for m in image_map(b)])
        return np.array([_corr_rows(x[None], y[None])[0, 0] for x, y in zip(ha, hb)])
    if metric == "ssim":
        return np.array([_ssim_one(x, y) for x, y in zip(image_map(a), image_map(b))])
    raise InvalidParameterError(f"metric must be one of {METRICS}; got {metric!r}.")


def permutation_pvalue(matrix: np.ndarray, permutations: np.ndarray) -> float:
    """One-sided p-value of the mean diagonal of ``matrix`` against re-paired rows.

    ``matrix[i, j]`` is the similarity of original explanation i with randomised explanation j;
    the statistic is the mean of the diagonal (each sample with itself) and the null distribution
    the means ``matrix[i, perm[i]]`` over the given permutations (shape (B, n)). A small value says
    the randomised explanation of a sample is closer to that sample's original explanation than to
    other samples' ones: it still carries input-specific structure. ``(1 + #null >= observed) / (1 + B)``.
    """
    n = matrix.shape[0]
    observed = float(np.trace(matrix)) / n
    null = matrix[np.arange(n)[None, :], permutations].mean(axis=1)
    return float((1 + np.sum(null >= observed - 1e-12)) / (1 + permutations.shape[0]))

