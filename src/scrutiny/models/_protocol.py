"""The model contract: what explainers and the other packages may call on an adapter.

:class:`Model` is what every adapter provides (``as_model`` returns one); a
:class:`DifferentiableModel` (``TorchModel``) adds input gradients, penultimate features and
per-sample parameter gradients. A method that needs one of these optional capabilities checks
for it at construction with :func:`require_capability`, which names an alternative.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from ..exceptions import CapabilityError

__all__ = ["Model", "DifferentiableModel", "CAPABILITIES", "require_capability"]

#: The optional capabilities an adapter may declare in ``capabilities``.
CAPABILITIES = ("predict", "gradient", "features", "trainable")


@runtime_checkable
class Model(Protocol):
    """What explainers may rely on (every adapter returned by :func:`scrutiny.as_model`).

    Attributes
    ----------
    output : {"probability", "logit", "regression", "decision"}
        What the wrapped model returns.
    batch_size : int or None
        Rows per call to the wrapped model as given; None lets the adapter choose per call
        (see :meth:`rows_per_call`). Never changed by a call.
    capabilities : frozenset of str
        Subset of :data:`CAPABILITIES`.
    input_dtype : numpy dtype
        The dtype the wrapped model consumes without a conversion (explainers build perturbed
        rows in it).
    input_shape_ : tuple of int or None
        Per-sample input shape, when known (given by the estimator or learnt from the first
        prediction); inputs of another shape are refused.
    n_outputs : int or None
        Number of raw outputs, known after the first prediction (or from the estimator).
    """

    output: str
    batch_size: int | None
    capabilities: frozenset
    input_dtype: Any
    input_shape_: tuple[int, ...] | None

    @property
    def n_outputs(self) -> int | None: ...

    def check_input(self, X: Any) -> np.ndarray:
        """``X`` validated as this model's input (numeric, finite, (n, ...), known sample shape)."""
        ...

    def rows_per_call(self, row_size: int) -> int:
        """Rows sent per call for samples of ``row_size`` values (resolved per call)."""
        ...

    def predict(self, X: Any) -> np.ndarray:
        """Raw outputs, float64 of shape (n_samples, n_outputs)."""
        ...

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes) (classifiers only)."""
        ...

    def predict_log_odds(self, X: Any, eps: float = ...) -> np.ndarray:
        """One-vs-rest log-odds per class, shape (n_samples, n_classes) (classifiers only)."""
        ...

    def predict_class(self, X: Any) -> np.ndarray:
        """Index of the predicted class per sample, int64."""
        ...

    def default_target(self, X: Any) -> np.ndarray:
        """The output explained when ``target=None``: the predicted class (output 0 for a
        single-output model)."""
        ...


@runtime_checkable
class DifferentiableModel(Model, Protocol):
    """A :class:`Model` with the ``gradient``, ``features`` and ``trainable`` capabilities
    (:class:`~scrutiny.models.TorchModel`). ``trainable`` means the parameters can be named
    and selected (``parameter_names``) and the module evaluated functionally, which is what
    :class:`scrutiny.data_attribution.TrainingObjective` needs for per-sample gradients."""

    module: Any
    device: Any
    dtype: Any

    def gradient(self, X: Any, target: Any, space: str = "raw") -> np.ndarray:
        """Input gradient of one output per sample in ``space``; shape of ``X``, float64."""
        ...

    def features(self, X: Any) -> np.ndarray:
        """Penultimate-layer features, shape (n_samples, n_features), float64."""
        ...

    def parameter_names(self, params: Sequence[str] | str | None = None) -> list[str]:
        """Names of the selected parameters (None: all trainable; "last": the last linear layer)."""
        ...


def require_capability(model: Any, capability: str, who: str) -> None:
    """Raise :class:`CapabilityError` at construction time if ``model`` lacks ``capability``.

    Parameters
    ----------
    model : Model
    capability : {"gradient", "features", "trainable"}
    who : str
        The method asking (used in the message).
    """
    caps = getattr(model, "capabilities", frozenset({"predict"}))
    if capability in caps:
        return
    advice = {
        "gradient": "Wrap a differentiable torch.nn.Module, or use a model-agnostic method "
        "(Occlusion, LIME, KernelSHAP) for this model.",
        "features": "Wrap a torch.nn.Module and name its penultimate layer with "
        "as_model(module, features='layer_name') or give the module a features(x) method.",
        "trainable": "Wrap a torch.nn.Module whose parameters require gradients.",
    }.get(capability, "")
    raise CapabilityError(
        f"{who} needs a model with {capability!r} capability; {type(model).__name__} provides "
        f"{sorted(caps)}. {advice}"
    )
