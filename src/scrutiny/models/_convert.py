"""Output conversions and batch-size defaults shared by every adapter.

For a classifier with outputs ``z`` (logits) or ``p`` (probabilities):

* probabilities: ``softmax(z)`` for several logits, ``[1 - sigmoid(z), sigmoid(z)]`` for a
  single logit, ``p`` itself for probabilities;
* log-odds: the one-vs-rest ``log(p_c / (1 - p_c))`` per class, computed stably from logits
  (``z_c - logsumexp_{j != c} z_j``) or from probabilities, and in both cases clipped to
  ``±log((1 - eps) / eps)`` (``p`` clipped to ``[eps, 1 - eps]``, eps = 1e-6), so that a
  classifier gives the same numbers whether it reports logits or probabilities.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, logsumexp, softmax

__all__ = [
    "OUTPUT_KINDS",
    "PROBA_EPS",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_BATCH_SIZE_ARRAY",
    "AUTO_BATCH_ELEMENTS",
    "MAX_AUTO_BATCH_SIZE",
    "auto_batch_size",
    "log_odds_from_proba",
    "log_odds_from_logits",
    "proba_from_logits",
]

#: What a wrapped model returns (the adapter's ``output``).
OUTPUT_KINDS = ("probability", "logit", "regression", "decision")
PROBA_EPS = 1e-6

#: Smallest default rows per call of a torch module (activations of 256 images fit in memory).
DEFAULT_BATCH_SIZE = 256
#: A torch module without an explicit ``batch_size`` gets about this many input values per call
#: (a power of two of rows between DEFAULT_BATCH_SIZE and MAX_AUTO_BATCH_SIZE): small rows
#: (tabular data, 8x8 images) need big batches to amortise the per-call cost, large images do
#: best near 256, and beyond 2048 rows the activations leave the cache. benchmarks/
#: local_attribution.py runs every method with these defaults (its "model batch" column) and
#: compares KernelSHAP at the default with 8192 rows per call.
AUTO_BATCH_ELEMENTS = 2**16
MAX_AUTO_BATCH_SIZE = 2048
#: scikit-learn estimators and callables: the per-call overhead dominates small batches.
DEFAULT_BATCH_SIZE_ARRAY = 4096


def auto_batch_size(row_size: int) -> int:
    """Default rows per call of a torch module whose samples have ``row_size`` values."""
    rows = AUTO_BATCH_ELEMENTS // max(int(row_size), 1)
    rows = 1 << (rows.bit_length() - 1) if rows > 0 else 1
    return int(min(MAX_AUTO_BATCH_SIZE, max(DEFAULT_BATCH_SIZE, rows)))


def log_odds_from_proba(P: np.ndarray, eps: float = PROBA_EPS) -> np.ndarray:
    """Per-class log-odds ``log(p / (1 - p))`` with ``p`` clipped to ``[eps, 1 - eps]``."""
    P = np.clip(np.asarray(P, dtype=np.float64), eps, 1.0 - eps)
    return np.log(P) - np.log1p(-P)


def proba_from_logits(Z: np.ndarray) -> np.ndarray:
    """Class probabilities from logits: softmax, or ``[1 - sigmoid, sigmoid]`` for one logit."""
    if Z.shape[1] == 1:
        p = expit(Z[:, 0])
        return np.stack([1.0 - p, p], axis=1)
    return softmax(Z, axis=1)


def log_odds_from_logits(Z: np.ndarray, eps: float = PROBA_EPS) -> np.ndarray:
    """Stable one-vs-rest log-odds, clipped like :func:`log_odds_from_proba`."""
    if Z.shape[1] == 1:
        out = np.concatenate([-Z, Z], axis=1)
    else:
        out = np.empty_like(Z)
        for c in range(Z.shape[1]):  # the number of classes is small; rows are vectorised
            out[:, c] = Z[:, c] - logsumexp(np.delete(Z, c, axis=1), axis=1)
    bound = np.log1p(-eps) - np.log(eps)
    return np.clip(out, -bound, bound)
