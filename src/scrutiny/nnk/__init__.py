"""Non-Negative Kernel regression (NNK) and the DeepNNK generalisation estimates.

* :class:`NNK` (:mod:`.estimator`): NNK interpolation over training features; the data-attribution
  protocol ``NNK(model_or_none, **params).fit(X_train, y_train).attribute(X) -> DataAttribution``
  (the sparse polytope weights theta), ``predict`` / ``predict_proba``, ``solve`` (sparse form,
  :class:`NNKSolution`), ``loo_error`` (:class:`NNKLeaveOneOut`);
* :mod:`.results`: the result types (:class:`NNKLeaveOneOut`, :class:`GeneralizationResult`,
  :class:`OutOfSupport`), each saved and reloaded by ``save`` / :func:`scrutiny.load_result`;
* :func:`nnk_graph` (:mod:`.graph`): the NNK graph of a point set (scipy.sparse);
* DeepNNK (:mod:`.generalization`): :class:`GeneralizationMonitor` (a training callback),
  :func:`nnk_generalization` (over checkpoints), :class:`GeneralizationResult`;
  :func:`channelwise_loo_error` (CW-DeepNNK: the LOO error of each channel of a layer);
  :func:`out_of_support` / :class:`OutOfSupport` (NNK residual and polytope disagreement of queries).

The solver (:mod:`._nnls`, batched active set and FISTA), the exact kNN search (:mod:`._knn`) and
the kernels (:mod:`._kernels`) are private to this package. Dependencies point one way:
``_nnls``, ``_knn``, ``_kernels``, ``results`` <- ``estimator`` <- ``graph``, ``generalization``.

Names are loaded lazily, so importing this package imports neither torch nor scipy.

References
----------
.. [1] S. Shekkizhar & A. Ortega (2020). Graph construction from data by non-negative kernel
   regression. ICASSP.
.. [2] S. Shekkizhar & A. Ortega (2020). DeepNNK: Explaining deep models and their generalization
   using polytope interpolation. arXiv:2007.10505.
"""

from __future__ import annotations

from .._lazy import lazy_module

_LAZY = {
    "NNK": "estimator",
    "NNKSolution": "results",
    "NNKLeaveOneOut": "results",
    "CONVENTION": "estimator",
    "NNK_CONVENTION": "estimator",
    "nnk_graph": "graph",
    "GeneralizationMonitor": "generalization",
    "GeneralizationResult": "results",
    "nnk_generalization": "generalization",
    "channelwise_loo_error": "generalization",
    "OutOfSupport": "results",
    "out_of_support": "generalization",
}

__all__ = [
    "CONVENTION",
    "NNK",
    "NNK_CONVENTION",
    "GeneralizationMonitor",
    "GeneralizationResult",
    "NNKLeaveOneOut",
    "NNKSolution",
    "OutOfSupport",
    "channelwise_loo_error",
    "nnk_generalization",
    "nnk_graph",
    "out_of_support",
]


__getattr__, __dir__ = lazy_module(__name__, _LAZY, __all__)
