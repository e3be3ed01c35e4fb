"""Training-data attribution: influence functions, representer points and their Hessian machinery.

One protocol: ``Method(model, **params).fit(X_train, y_train) -> self``, then
``attribute(X, target=None) -> DataAttribution``; ``target`` is the label at which the test
loss is taken (None: the model's predicted class). Hyper-parameters live in ``__init__``
(``get_params`` / ``set_params`` / ``sklearn.base.clone`` work), fitted state ends in ``_``.
The old form with the training data in the constructor and ``fit()`` without arguments still
works for one release and raises a ``DeprecationWarning``.

* :class:`InfluenceFunctions` (Koh & Liang 2017): ``attribute(X, target)`` gives
  ``(1/n) g_t^T (H + damping I)^{-1} g_i``, the predicted change of the test loss when a
  training point is removed (positive = helpful); self-influence, ``I_up,params``,
  ``I_up,loss``, ``I_pert,loss``; exact (Cholesky, closed-form GLM Hessians), block-CG and
  LiSSA solvers; diagnostics of the optimum and of the Hessian's spectrum.
* :class:`RepresenterPoints` (Yeh et al. 2018): fine-tunes the last layer to a verified
  stationary point and decomposes its pre-activations over the training set.
* :class:`TrainingObjective`: per-sample gradients, Hessian-vector products and explicit
  Hessians of ``(1/n) sum L_i + (l2/2)||theta||^2`` over chosen parameters (float64,
  ``torch.func``); :func:`fit_to_optimum` brings a model to its minimum.
* :mod:`~scrutiny.data_attribution.hessian`: numpy linear algebra (:func:`factorize`,
  :func:`block_cg`, :func:`lissa`, :func:`lanczos_extremes`); :mod:`~.solvers`: the solver
  strategies (:class:`ExactSolver`, :class:`CGSolver`, :class:`LiSSASolver`).
* :func:`detect_mislabeled` / :func:`mislabel_detection_curve`: the label-noise use case.
* :func:`training_set_attack` (Koh & Liang 2017, Sec. 5.2): perturb training inputs along
  ``sign(I_pert,loss)`` to raise a test loss; :class:`AttackResult`.

Importing this package imports torch only when a torch-backed name is first used.
"""

from __future__ import annotations

import importlib

from .._lazy import lazy_module

_LAZY = {
    "InfluenceFunctions": "influence",
    "CONVENTION": "influence",
    "RepresenterPoints": "representer",
    "SensitivityDecomposition": "representer",
    "Decomposition": "representer",
    "TrainingObjective": "objective",
    "fit_to_optimum": "optimum",
    "resolve_loss": "objective",
    "IndefiniteHessianError": "hessian",
    "NotAtOptimumError": "hessian",
    "LiSSADivergenceError": "hessian",
    "Factorization": "hessian",
    "factorize": "hessian",
    "block_cg": "hessian",
    "lissa": "hessian",
    "power_iteration": "hessian",
    "lanczos_extremes": "hessian",
    "lissa_damping_from_reference": "hessian",
    "ExactSolver": "solvers",
    "CGSolver": "solvers",
    "LiSSASolver": "solvers",
    "make_solver": "solvers",
    "MislabelDetectionResult": "debugging",
    "mislabel_detection_curve": "debugging",
    "detect_mislabeled": "debugging",
    "AttackResult": "attack",
    "training_set_attack": "attack",
}

__all__ = [
    "CONVENTION",
    "AttackResult",
    "CGSolver",
    "Decomposition",
    "ExactSolver",
    "Factorization",
    "IndefiniteHessianError",
    "InfluenceFunctions",
    "LiSSADivergenceError",
    "LiSSASolver",
    "MislabelDetectionResult",
    "NotAtOptimumError",
    "RepresenterPoints",
    "SensitivityDecomposition",
    "TrainingObjective",
    "block_cg",
    "detect_mislabeled",
    "factorize",
    "fit_to_optimum",
    "lanczos_extremes",
    "lissa",
    "lissa_damping_from_reference",
    "make_solver",
    "mislabel_detection_curve",
    "power_iteration",
    "resolve_loss",
    "training_set_attack",
]


__getattr__, __dir__ = lazy_module(__name__, _LAZY, __all__)

#: NNK names that moved to :mod:`scrutiny.nnk` (kept here one release, with a DeprecationWarning)
_NNK_MOVED = ("NNK", "NNKSolution", "NNKLeaveOneOut", "NNK_CONVENTION", "nnk_graph")
_lazy_getattr = __getattr__


def __getattr__(name: str):  # noqa: F811 - wraps the lazy loader for the moved NNK names
    if name in _NNK_MOVED:
        import warnings

        warnings.warn(f"scrutiny.data_attribution.{name} is deprecated and will be removed in the next release: "
                      f"use `from scrutiny.nnk import {name}`.", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module("scrutiny.nnk"), name)
    return _lazy_getattr(name)
