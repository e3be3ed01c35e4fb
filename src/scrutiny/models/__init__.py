"""One contract for every model scrutiny explains.

Explainers never talk to torch or scikit-learn directly: they talk to a :class:`Model`, the
protocol that declares everything they (and the data-attribution, surrogate and diagnostics
packages) call on a model. :func:`as_model` wraps a ``torch.nn.Module``, a fitted
scikit-learn estimator or a plain callable into a :class:`ModelAdapter` -- a
:class:`TorchModel`, :class:`SklearnModel` or :class:`CallableModel` -- with the same
behaviour:

* ``predict(X)`` returns a float64 array of shape ``(n_samples, n_outputs)``, computed in
  chunks of ``rows_per_call(row_size)`` rows -- never one call per sample -- and checked for
  NaN/inf. The rows per call are resolved per call from ``batch_size`` (None: the adapter's
  default for the row size) and never stored back, so no call changes a later default;
* ``output`` says what the wrapped model returns: ``"probability"``, ``"logit"``,
  ``"regression"`` or ``"decision"`` (scikit-learn's ``decision_function``). It is the only
  meaning of ``output`` in scrutiny; explainers name the space they explain ``space``;
* ``predict_proba(X)`` and ``predict_log_odds(X)`` convert consistently between them (see
  :mod:`scrutiny.models._convert`), so the same classifier gives the same numbers whichever
  way it was wrapped; ``predict_class`` and ``default_target`` give the explained class.

Differentiable models (:class:`TorchModel`, the :class:`DifferentiableModel` protocol) add
``gradient(X, target, space=...)`` (input gradients of a chosen output), ``features``
(penultimate-layer activations) and the ``trainable`` capability (named parameters that
:class:`scrutiny.data_attribution.TrainingObjective` differentiates per sample). A torch module is fed in its own parameter
dtype (float64, float32, float16, bfloat16) unless ``dtype=`` says otherwise. Methods that
need a capability the model lacks raise :class:`~scrutiny.exceptions.CapabilityError` at
construction (see :func:`require_capability`).
"""

from __future__ import annotations

import sys
from typing import Any

from ..exceptions import InvalidParameterError
from ._adapter import _SK_METHODS, CallableModel, ModelAdapter, SklearnModel
from ._convert import (
    AUTO_BATCH_ELEMENTS,
    DEFAULT_BATCH_SIZE,
    DEFAULT_BATCH_SIZE_ARRAY,
    MAX_AUTO_BATCH_SIZE,
    OUTPUT_KINDS,
    PROBA_EPS,
    auto_batch_size,
    log_odds_from_logits,
    log_odds_from_proba,
    proba_from_logits,
)
from ._protocol import CAPABILITIES, DifferentiableModel, Model, require_capability
from ._torch import SPACES, TorchModel

__all__ = [
    "Model",
    "DifferentiableModel",
    "ModelAdapter",
    "TorchModel",
    "SklearnModel",
    "CallableModel",
    "as_model",
    "require_capability",
    "CAPABILITIES",
    "SPACES",
    "OUTPUT_KINDS",
    "PROBA_EPS",
    "log_odds_from_proba",
    "log_odds_from_logits",
    "proba_from_logits",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_BATCH_SIZE_ARRAY",
    "AUTO_BATCH_ELEMENTS",
    "MAX_AUTO_BATCH_SIZE",
    "auto_batch_size",
]

for _cls in (Model, DifferentiableModel, ModelAdapter, TorchModel, SklearnModel, CallableModel):
    _cls.__module__ = __name__  # documented and shown under their public home
del _cls


def _is_torch_module(obj: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def _is_sklearn_estimator(obj: Any) -> bool:
    return hasattr(obj, "fit") and hasattr(obj, "get_params") and any(hasattr(obj, m) for m in _SK_METHODS)


def as_model(obj: Any, *, output: str | None = None, batch_size: int | None = None, **kwargs: Any) -> ModelAdapter:
    """Wrap ``obj`` into a :class:`ModelAdapter` (which implements :class:`Model`).

    Parameters
    ----------
    obj : torch.nn.Module, fitted scikit-learn estimator, callable, or Model
        A Model is returned unchanged (with ``batch_size``/``output`` overrides refused).
    output : str, optional
        What the raw outputs are. Defaults: ``"logit"`` for torch modules, decided by the
        method for scikit-learn, ``"regression"`` for callables.
    batch_size : int, optional
        Rows per call to the underlying model. None (default): chosen per call, from the
        sample size for torch modules (:func:`auto_batch_size`), 4096 for scikit-learn
        estimators and callables, whose per-call overhead dominates.
    **kwargs
        Passed to the adapter: ``features``, ``device``, ``dtype`` (default: the module's
        parameter dtype), ``memory_format`` (torch); ``method`` (scikit-learn).

    Returns
    -------
    TorchModel, SklearnModel or CallableModel

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression          # doctest: +SKIP
    >>> model = as_model(LogisticRegression().fit(X, y))              # doctest: +SKIP
    >>> model.predict(X[:5]).shape                                    # doctest: +SKIP
    (5, n_classes)
    """
    if isinstance(obj, ModelAdapter):
        if output is not None or batch_size is not None or kwargs:
            raise InvalidParameterError(
                "as_model got an already wrapped model together with options; wrap the raw model "
                "instead, or construct the adapter directly."
            )
        return obj
    if _is_torch_module(obj):
        return TorchModel(obj, output=output or "logit", batch_size=batch_size, **kwargs)
    if _is_sklearn_estimator(obj):
        if output is not None:
            raise InvalidParameterError(
                "output is decided by the scikit-learn method; pass method='predict_proba', "
                "'decision_function' or 'predict' instead of output."
            )
        return SklearnModel(obj, batch_size=batch_size, **kwargs)
    if callable(obj):
        if kwargs:
            raise InvalidParameterError(f"Unexpected options for a callable model: {sorted(kwargs)}.")
        return CallableModel(obj, output=output or "regression", batch_size=batch_size)
    raise InvalidParameterError(
        f"as_model cannot wrap a {type(obj).__name__}: expected a torch.nn.Module, a fitted "
        "scikit-learn estimator or a callable f(X) -> outputs."
    )
