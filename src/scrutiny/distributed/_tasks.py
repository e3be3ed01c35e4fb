"""What a worker runs for one chunk (top-level functions: sent by reference, never pickled)."""

from __future__ import annotations

from typing import Any

from ._shipping import rebuild, unpack_object, unpack_value

__all__ = ["explain_chunk", "metric_chunk", "attribute_chunk"]


def _generator(state: Any) -> Any:
    return None if state is None else unpack_value(state)


def _explainer(shared: Any) -> Any:
    if shared.live is not None:
        return shared.live
    return rebuild(shared.token, shared.payload["explainer"], unpack_object)


def explain_chunk(shared: Any, chunk: Any) -> Any:
    """``explainer.explain(rows, target)`` with the job's random stream restored first."""
    explainer = _explainer(shared)
    rng = _generator(shared.payload.get("rng"))
    if rng is not None:
        explainer.random_state = rng
    return explainer.explain(chunk.X, target=chunk.target)


def metric_chunk(shared: Any, chunk: Any) -> Any:
    """``metric(model, rows, attributions, target=..., **kwargs)`` on one chunk; the attributions
    are the chunk's slice of an array, or re-computed by the shipped explainer."""
    if shared.live is not None:
        metric, model, explainer, kwargs = shared.live
    else:
        metric, model, explainer, kwargs = rebuild(shared.token, shared.payload, _unpack_metric)
    if explainer is not None:
        rng = _generator(shared.payload.get("rng"))
        if rng is not None:
            explainer.random_state = rng
        attributions = explainer
    else:
        attributions = chunk.extra
    return metric(model, chunk.X, attributions, target=chunk.target, **kwargs)


def _unpack_metric(payload: dict) -> tuple:
    return (unpack_value(payload["metric"]), unpack_value(payload["model"]),
            None if payload["explainer"] is None else unpack_object(payload["explainer"]),
            unpack_value(payload["kwargs"]))


def attribute_chunk(shared: Any, chunk: Any) -> Any:
    """``estimator.attribute(rows, target)``; the estimator is fitted once per worker on the
    shipped training data (its fit is deterministic, so every worker holds the same fit)."""
    estimator = shared.live if shared.live is not None else rebuild(shared.token, shared.payload, _fit_estimator)
    return estimator.attribute(chunk.X, target=chunk.target)


def _fit_estimator(payload: dict) -> Any:
    estimator = unpack_object(payload["estimator"])
    return estimator.fit(payload["X_train"], payload["y_train"])
