"""What every metric shares: turning "an explanation, an explainer or an array" into
attributions, the explained class, the model's score of it, and the MetricResult record.

Conventions (the contract of :mod:`scrutiny.metrics`):

* a metric is a function ``metric(model, X, attributions, *, target=None, ..., random_state=None)
  -> MetricResult``; ``attributions`` is an :class:`~scrutiny.Explanation`, a local explainer
  (anything with ``explain(X, target)``; robustness metrics need one, since they re-explain), or
  an array of the input's shape;
* ``target=None`` means the class the explanation explains (its ``target``), else the model's
  predicted class; scores are taken in ``space`` (``"probability"`` by default for classifiers,
  as in RISE and the DMM-MEN paper's Table 1);
* every parameter and the seed go into ``MetricResult.params``; ``higher_is_better`` states the
  direction; per-sample values are kept, so intervals and paired comparisons are possible.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .._validation import check_array, check_random_state, check_target
from ..exceptions import InvalidParameterError
from ..explanation import Explanation, MetricResult
from ..models import as_model

__all__ = ["Attributions", "resolve_attributions", "model_outputs", "model_scores", "metric_result"]


class Attributions(NamedTuple):
    """Attributions resolved for a metric: values in the input's shape, the class each row
    explains, and a short record of where they came from (for ``MetricResult.params``).

    ``segments`` / ``segment_values``: the superpixels an image explanation was computed over
    and its own value per superpixel (``extras["segments"]``, ``extras["segment_values"]``), so a
    segment-level metric on the same superpixels ranks them as the explainer did. The per-pixel
    ``values`` of superpixel methods follow two conventions (LIME and DMM-MEN broadcast the
    segment's coefficient to its pixels, like captum; grouped KernelSHAP spreads it so the pixels
    sum to it), and summing either over a segment is not the method's ranking.
    """

    values: np.ndarray
    target: np.ndarray
    source: str
    segments: np.ndarray | None = None
    segment_values: np.ndarray | None = None


def resolve_attributions(model: Any, X: np.ndarray, attributions: Any, target: Any = None,
                         random_state: Any = None) -> Attributions:
    """Attributions for ``X`` from an Explanation, an explainer, an array, or ``"random"``
    (standard-normal attributions from ``random_state``: the baseline every metric reports
    against; see the module doc)."""
    model = as_model(model)
    if isinstance(attributions, str):
        if attributions != "random":
            raise InvalidParameterError(
                f"attributions must be an Explanation, an explainer, an array or 'random'; got {attributions!r}."
            )
        rng = check_random_state(random_state)
        return Attributions(rng.standard_normal(X.shape), _targets(model, X, target), "random")
    if isinstance(attributions, Explanation):
        values = np.asarray(attributions.values, dtype=np.float64)
        if values.shape != X.shape:
            raise InvalidParameterError(
                f"attributions: the Explanation's values have shape {values.shape} but X has shape {X.shape}; "
                "explain the same inputs you evaluate."
            )
        explained = attributions.target if target is None else target
        return Attributions(values, _targets(model, X, explained), attributions.method, *_own_segments(attributions))
    if hasattr(attributions, "explain"):
        explanation = attributions.explain(X, target=target)
        return Attributions(np.asarray(explanation.values, dtype=np.float64), np.asarray(explanation.target),
                            type(attributions).__name__, *_own_segments(explanation))
    values = check_array(attributions, "attributions")
    if values.shape != X.shape:
        raise InvalidParameterError(
            f"attributions must have the shape of X {X.shape}; got {values.shape}. Pass an Explanation, an "
            "explainer, or one attribution per input value."
        )
    return Attributions(values, _targets(model, X, target), "array")


def _own_segments(explanation: Explanation) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The explanation's superpixels and its value per superpixel, when it has both."""
    extras = explanation.extras or {}
    segments, seg_values = extras.get("segments"), extras.get("segment_values")
    if segments is None or seg_values is None:
        return None, None
    seg_values = np.asarray(seg_values, dtype=np.float64)
    if seg_values.ndim != 2:
        return None, None
    return np.asarray(segments), seg_values


def _targets(model: Any, X: np.ndarray, target: Any) -> np.ndarray:
    if target is None:
        return model.default_target(X)
    if model.n_outputs is None:
        model.predict(X[:1])
    return check_target(target, X.shape[0], model.n_outputs)


def model_scores(model: Any, X: np.ndarray, target: np.ndarray, space: str = "probability") -> np.ndarray:
    """``f_target(x)`` per row of ``X`` in ``space`` (``"probability"``, ``"log_odds"`` or ``"raw"``);
    ``target`` has one class per row."""
    return model_outputs(model, X, space)[np.arange(X.shape[0]), target]


def model_outputs(model: Any, X: np.ndarray, space: str = "probability") -> np.ndarray:
    """Every output of the model per row of ``X`` in ``space``, shape (n, n_outputs)."""
    model = as_model(model)
    if space == "probability":
        out = model.predict_proba(X)
    elif space == "log_odds":
        out = model.predict_log_odds(X)
    elif space == "raw":
        out = model.predict(X)
    else:
        raise InvalidParameterError(f"space must be 'probability', 'log_odds' or 'raw'; got {space!r}.")
    return np.asarray(out, dtype=np.float64)


def metric_result(name: str, values: Any, *, higher_is_better: bool, params: dict, extras: dict | None = None) -> MetricResult:
    """The MetricResult of a metric: per-sample values, mean, 95% t-interval, every parameter."""
    return MetricResult(name=name, values=np.asarray(values, dtype=np.float64), higher_is_better=higher_is_better,
                        params=params, extras=extras or {})
