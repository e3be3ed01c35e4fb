"""The template every local explainer follows.

A method is a class deriving from :class:`Explainer` that

* in ``__init__`` calls ``super().__init__(model)`` (wraps the model with
  :func:`scrutiny.as_model` and checks the capabilities named in ``requires``), then stores
  its keyword hyper-parameters under their own names, without validating them (so
  ``sklearn.base.clone`` works; ``model`` is a parameter too). Every method takes ``space``
  (``"auto" | "raw" | "probability" | "log_odds"``, the space explained; ``output`` is only
  what the model returns, on the adapter) and ``feature_names`` (recorded on the result);
* declares ``_constraints`` (see :func:`scrutiny._validation.validate_params`), checked at
  every ``explain`` call;
* implements ``_explain(X, target, rng) -> RawAttribution`` on validated float64 inputs.

``explain(X, target=None)`` validates the input and the parameters, resolves the target
(the predicted class when None), derives a fresh Generator from ``random_state`` and builds
the :class:`~scrutiny.explanation.Explanation`, recording every parameter needed to
reproduce it.

Randomness convention: stochastic methods draw **one** perturbation design per call (noise
matrix, coalition masks, ...) and apply it to every input, so that the same seed gives the
same result and rows explained together equal rows explained one by one.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar, Mapping, NamedTuple

import numpy as np

from .._validation import ParamsMixin, check_random_state, check_target
from ..explanation import Explanation
from .._threads import blas_guard
from ..exceptions import ModelError
from ..models import as_model, require_capability

__all__ = ["Explainer", "RawAttribution"]


def native_dtype(model: Any) -> Any:
    """The numpy dtype ``model`` consumes without converting (float32 for float32 torch
    modules): explainers build perturbed and noisy rows directly in it."""
    return getattr(model, "input_dtype", np.float64)


class RawAttribution(NamedTuple):
    """What ``_explain`` returns; the base class turns it into an Explanation."""

    values: np.ndarray
    base_values: np.ndarray | None = None
    stderr: np.ndarray | None = None
    extras: Mapping[str, Any] | None = None


MAX_RECORDED_ARRAY = 10_000  # elements; larger arrays are recorded by shape and digest


def _record(value: Any) -> Any:
    """A JSON-friendly record of a hyper-parameter value.

    Arrays up to ``MAX_RECORDED_ARRAY`` elements are kept; larger ones (training data,
    backgrounds) are recorded by shape, dtype and SHA-256 so that results stay small and a
    rerun can still check it used the same data.
    """
    if isinstance(value, np.ndarray) and value.size > MAX_RECORDED_ARRAY:
        import hashlib

        digest = hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()
        return {"shape": list(value.shape), "dtype": str(value.dtype), "sha256": digest}
    if isinstance(value, np.random.Generator):
        return f"<numpy Generator {type(value.bit_generator).__name__}: not reproducible from the record>"
    if isinstance(value, (np.ndarray, str, int, float, bool, type(None))):
        return value
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, (list, tuple)):
        try:
            return np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            return [_record(v) for v in value]
    if callable(value):
        return f"<callable {getattr(value, '__qualname__', type(value).__name__)}>"
    if isinstance(value, dict):
        return {str(k): _record(v) for k, v in value.items()}
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return repr(value)


class Explainer(ParamsMixin):
    """Base class of local explainers (template method; at most ``Explainer -> Method``).

    Parameters
    ----------
    model : torch.nn.Module, fitted scikit-learn estimator, callable or Model
        Wrapped with :func:`scrutiny.as_model`; available afterwards as ``self.model``.
    """

    requires: ClassVar[tuple[str, ...]] = ()

    def __init__(self, model: Any) -> None:
        self.model = as_model(model)
        for capability in self.requires:
            require_capability(self.model, capability, type(self).__name__)

    # -- the template ----------------------------------------------------------------------
    def explain(self, X: Any, target: Any = None) -> Explanation:
        """Explain one output per sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Inputs in the model's input shape.
        target : int, array-like of shape (n_samples,) or None
            Output to explain per sample; None explains the predicted class (output 0 for a
            single-output model).

        Returns
        -------
        Explanation
        """
        params = self._validate_params()
        params.pop("model")
        X = np.asarray(self.model.check_input(X), dtype=np.float64)
        self._check(X)
        with blas_guard(self.model):
            target = self._resolve_target(X, target)
            rng = check_random_state(params["random_state"]) if "random_state" in params else None
            raw = self._explain(X, target, rng)
        _check_finite(type(self).__name__, raw)
        return Explanation(
            values=raw.values,
            target=target,
            method=type(self).__name__,
            base_values=raw.base_values,
            data=X,
            feature_names=params.get("feature_names"),
            params={k: _record(v) for k, v in params.items() if k != "feature_names"},
            stderr=raw.stderr,
            extras=dict(raw.extras or {}),
        )

    def _resolve_target(self, X: np.ndarray, target: Any) -> np.ndarray:
        """``target`` as one output index per row; None: the model's default (the predicted class)."""
        if target is None:
            return self.model.default_target(X)
        if self.model.n_outputs is None:  # learn the output count from one row
            self.model.predict(X[:1])
        return check_target(target, X.shape[0], self.model.n_outputs)

    def _check(self, X: np.ndarray) -> None:
        """Extra input checks of a method (shapes of baselines, backgrounds, segments)."""

    def _explain(self, X: np.ndarray, target: np.ndarray, rng: np.random.Generator | None) -> RawAttribution:
        raise NotImplementedError  # pragma: no cover


def _check_finite(owner: str, raw: RawAttribution) -> None:
    """The one overflow check of every explainer: inputs and model outputs were finite (both are
    checked on the way in), so a non-finite attribution means float64 overflowed inside the method."""
    for name in ("values", "base_values", "stderr"):
        arr = getattr(raw, name)
        if arr is not None and not np.isfinite(arr).all():
            raise ModelError(
                f"{owner} produced non-finite {name}: float64 overflowed inside the method. The model's outputs "
                "are finite but too large for the method's differences and sums (outputs near 1.8e308, the float64 "
                "limit). Rescale the model's output (divide it by a constant, e.g. 1e300) and scale the "
                "attributions back: they are linear in the output."
            )
