"""Diagnostics of models and explanations.

* :class:`GeneralizationMonitor` / :func:`nnk_generalization` (DeepNNK): leave-one-out NNK and
  kNN error on the training features per epoch, beside the network's test error;
  :class:`GeneralizationResult` holds the per-epoch arrays and their correlations;
* :func:`out_of_support` / :class:`OutOfSupport`: NNK residual and polytope class disagreement
  of queries (adversarial, generated or shifted inputs).

Names are loaded lazily, so importing this package imports neither torch nor scipy.
"""

from __future__ import annotations

from .._lazy import lazy_module

_LAZY = {
    "GeneralizationMonitor": "generalization",
    "GeneralizationResult": "generalization",
    "nnk_generalization": "generalization",
    "OutOfSupport": "generalization",
    "out_of_support": "generalization",
}

__all__ = ["GeneralizationMonitor", "GeneralizationResult", "OutOfSupport", "nnk_generalization", "out_of_support"]


__getattr__, __dir__ = lazy_module(__name__, _LAZY, __all__)
