"""The two NNK kernels on feature arrays (used by :mod:`.estimator`).

* ``"cosine"``: ``K(x, x') = 1/2 + 1/2 cos(x, x')`` on L2-normalised rows (DeepNNK). All-zero
  rows get an indicator column, so they are identical to each other and orthogonal to every
  non-zero row (unit self-similarity is kept);
* ``"gaussian"``: ``K(x, x') = exp(-||x - x'||^2 / (2 sigma^2))``.

Both have a unit diagonal, which :func:`gram` sets exactly.
"""

from __future__ import annotations

import numpy as np

__all__ = ["gram", "kernel_values", "normalise"]


def normalise(F: np.ndarray) -> np.ndarray:
    """L2-normalised rows plus an indicator column of all-zero rows (see the module docstring)."""
    norms = np.linalg.norm(F, axis=1)
    zero = norms == 0
    out = np.empty((F.shape[0], F.shape[1] + 1))
    out[:, :-1] = F / np.where(zero, 1.0, norms)[:, None]
    out[:, -1] = zero
    return out


def gram(G: np.ndarray, kernel: str, sigma: float | None) -> np.ndarray:
    """Kernel matrices of gathered neighbour features ``G`` (n, k, d) -> (n, k, k)."""
    S = np.matmul(G, np.swapaxes(G, 1, 2))
    k = G.shape[1]
    if kernel == "cosine":
        K = 0.5 + 0.5 * np.clip(S, -1.0, 1.0)
    else:
        sq = np.einsum("nkd,nkd->nk", G, G)
        D2 = np.maximum(sq[:, :, None] + sq[:, None, :] - 2.0 * S, 0.0)
        K = np.exp(-D2 / (2.0 * sigma * sigma))
    K[:, np.arange(k), np.arange(k)] = 1.0
    return K


def kernel_values(scores: np.ndarray, kernel: str, sigma: float | None) -> np.ndarray:
    """Kernel values from k-NN scores: cosine similarities (cosine) or squared distances (gaussian)."""
    if kernel == "cosine":
        return 0.5 + 0.5 * np.clip(scores, -1.0, 1.0)
    return np.exp(-np.maximum(scores, 0.0) / (2.0 * sigma * sigma))
