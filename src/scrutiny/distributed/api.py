"""Entry points: explain, evaluate a metric, and query influence over chunks of rows, on any backend.

Each takes ``backend`` (``"serial"`` default, ``"process"``, ``"dask"``, a scheduler address, a
``dask.distributed.Client`` or an :class:`~scrutiny.distributed.Executor`), ``chunk_size`` (rows
per task; never changes a result), ``store`` (a directory or :class:`ResultStore`: finished chunks
are saved there and a rerun of the same job loads them instead of recomputing), ``max_in_flight``
(tasks submitted and not yet consumed; default twice the number of workers) and ``progress``
(``True`` for a bar with the remaining time, or a callable ``(done_rows, total_rows, eta_s)``).
With ``collect=False`` nothing is kept in memory (the results are in the store), so memory does not
grow with the number of rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..exceptions import InvalidParameterError
from ._executor import Shared, make_executor
from ._jobs import Chunk, concat_results, digest_of, run_job
from ._shipping import pack_object, pack_value, payload_digest
from ._tasks import attribute_chunk, explain_chunk, metric_chunk

__all__ = ["explain", "evaluate_metric", "attribute", "run_tasks", "PARTITION_INVARIANT_METRICS"]

#: metrics whose per-row value depends only on that row and its attributions (no random draws
#: shaped by the whole batch): safe to evaluate chunk by chunk
PARTITION_INVARIANT_METRICS = ("keep_top_k", "remove_top_k", "deletion_curve", "insertion_curve")


def _rows(X: Any) -> Any:
    """X as something sliceable by rows without a copy (a numpy memmap stays on disk)."""
    if isinstance(X, np.ndarray):
        return X
    if hasattr(X, "detach"):
        return X.detach().cpu().numpy()
    if hasattr(X, "shape") and hasattr(X, "__getitem__"):
        return X
    return np.asarray(X)


def _check_rows(X: Any) -> int:
    shape = getattr(X, "shape", None)
    if shape is None or len(shape) < 1 or shape[0] < 1:
        raise InvalidParameterError(f"X must be an array with at least one row; got shape {shape}.")
    return int(shape[0])


def _target_spec(target: Any, n: int) -> tuple[Any, Any]:
    """(per-job record, per-row array or scalar) of ``target``."""
    if target is None:
        return "predicted", None
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        return int(target), int(target)
    arr = np.asarray(target)
    if arr.ndim == 0:
        return arr.item(), arr.item()
    if arr.shape[0] != n:
        raise InvalidParameterError(f"target must be None, an int or one entry per row of X ({n}); got shape {arr.shape}.")
    return "per-row", arr


def _stream(random_state: Any) -> Any:
    """The job's random stream as data: an int as is; a Generator as its state (None: a fresh one)."""
    if random_state is None:
        random_state = np.random.default_rng()
    if isinstance(random_state, np.random.Generator):
        return pack_value(random_state)
    return None


def _clone(obj: Any) -> Any:
    return type(obj)(**obj.get_params())


def _chunker(X: Any, target: Any, extra: Any = None):
    def make(s: int, e: int) -> Chunk:
        t = target[s:e] if isinstance(target, np.ndarray) else target
        x = None if extra is None else np.asarray(extra[s:e])
        return Chunk(s, e, np.asarray(X[s:e]), t, x)

    return make


def explain(explainer: Any, X: Any, target: Any = None, *, backend: Any = "serial", n_workers: int | None = None,
            chunk_size: int = 256, store: Any = None, max_in_flight: int | None = None, progress: Any = False,
            collect: bool = True) -> Any:
    """``explainer.explain(X, target)`` over chunks of rows, on any backend, with the same result.

    Parameters
    ----------
    explainer : local explainer
        Any ``scrutiny.attribution`` explainer whose parameters can be shipped (see
        :mod:`scrutiny.distributed`: torch models as weights + architecture or TorchScript,
        scikit-learn models through skops, functions by import path).
    X : array-like of shape (n_samples, ...)
        Inputs; a ``numpy.memmap`` is read chunk by chunk.
    target : None, int or array-like of shape (n_samples,)
        As in ``explain``.
    backend, n_workers, chunk_size, store, max_in_flight, progress, collect
        See the module doc. ``n_workers`` sizes a process pool or a local Dask cluster.

    Returns
    -------
    Explanation or None
        Equal, bit for bit, to ``explainer.explain(X, target)`` for any chunk size, backend and
        number of workers (None with ``collect=False``).

    Examples
    --------
    >>> from scrutiny.distributed import explain                            # doctest: +SKIP
    >>> e = explain(KernelSHAP(net, background=B, random_state=0), X, backend="dask", chunk_size=64)
    """
    X = _rows(X)
    n = _check_rows(X)
    target_record, target_rows = _target_spec(target, n)
    rng = _stream(getattr(explainer, "random_state", None)) if "random_state" in explainer.get_params() else None
    payload = {"explainer": pack_object(explainer, type(explainer).__name__), "rng": rng}
    results = run_job(fn=explain_chunk, payload=payload, live=_clone(explainer), method=type(explainer).__name__,
                      n_rows=n, make_chunk=_chunker(X, target_rows), chunk_digest=digest_of(X, target_rows),
                      backend=backend, n_workers=n_workers, chunk_size=chunk_size, store=store,
                      max_in_flight=max_in_flight, progress=progress, collect=collect,
                      config={"target": target_record, "kind": "explain"})
    return None if results is None else concat_results(results)


def evaluate_metric(metric: Any, model: Any, X: Any, attributions: Any, *, target: Any = None,
                    backend: Any = "serial", n_workers: int | None = None, chunk_size: int = 256, store: Any = None,
                    max_in_flight: int | None = None, progress: Any = False, **kwargs: Any) -> Any:
    """``metric(model, X, attributions, target=target, **kwargs)`` over chunks of rows.

    Parameters
    ----------
    metric : callable
        A metric of :mod:`scrutiny.metrics` named in :data:`PARTITION_INVARIANT_METRICS` (the others
        draw noise shaped by the whole batch, so their per-row values change with the chunking).
    attributions : Explanation, array or explainer
        Per-row attributions (sliced per chunk), or an explainer run inside each chunk.

    Returns
    -------
    MetricResult
        Per-row values equal to the serial call's; mean and interval from all rows.
    """
    name = getattr(metric, "__name__", repr(metric))
    if name not in PARTITION_INVARIANT_METRICS:
        raise InvalidParameterError(
            f"evaluate_metric: metric {name!r} is not evaluated chunk by chunk (its random draws depend on the "
            f"whole batch); use one of {PARTITION_INVARIANT_METRICS}, or call the metric directly."
        )
    if isinstance(attributions, str):
        raise InvalidParameterError(
            f"evaluate_metric: attributions={attributions!r} draws per batch; pass an Explanation, an array or an "
            "explainer (for a random baseline, pass rng.standard_normal(X.shape))."
        )
    X = _rows(X)
    n = _check_rows(X)
    explainer, extra = None, None
    if hasattr(attributions, "explain") and hasattr(attributions, "get_params"):
        explainer = attributions
    else:
        extra = np.asarray(getattr(attributions, "values", attributions), dtype=np.float64)
        if extra.shape[0] != n:
            raise InvalidParameterError(f"attributions must have one row per row of X ({n}); got {extra.shape}.")
        if target is None and getattr(attributions, "target", None) is not None:
            target = np.asarray(attributions.target)
    target_record, target_rows = _target_spec(target, n)
    rng = None
    if explainer is not None and "random_state" in explainer.get_params():
        rng = _stream(explainer.random_state)
    payload = {"metric": pack_value(metric, "metric"), "model": pack_value(_as_model(model), "model"),
               "explainer": None if explainer is None else pack_object(explainer, "attributions"),
               "kwargs": pack_value(kwargs, "metric kwargs"), "rng": rng}
    live = (metric, model, None if explainer is None else _clone(explainer), kwargs)
    results = run_job(fn=metric_chunk, payload=payload, live=live, method=name, n_rows=n,
                      make_chunk=_chunker(X, target_rows, extra), chunk_digest=digest_of(X, target_rows, extra),
                      backend=backend, n_workers=n_workers, chunk_size=chunk_size, store=store,
                      max_in_flight=max_in_flight, progress=progress, collect=True,
                      config={"target": target_record, "kind": "metric"})
    return _join_metric(results)


def _as_model(model: Any) -> Any:
    from ..models import as_model

    return as_model(model)


def _join_metric(results: list[Any]) -> Any:
    """Per-row values and per-row extras joined; the MetricResult recomputes mean and interval.
    Extras summarising the chunk (keep_top_k's accuracy) are recomputed from the rows where the
    rows carry them, else dropped rather than reported for one chunk only."""
    import dataclasses

    from ..explanation import MetricResult

    first = results[0]
    values = np.concatenate([r.values for r in results])
    ns = [len(r.values) for r in results]
    extras: dict[str, Any] = {}
    for key in first.extras:
        vals = [r.extras.get(key) for r in results]
        if all(isinstance(v, np.ndarray) and v.ndim >= 1 and v.shape[0] == k for v, k in zip(vals, ns)):
            extras[key] = np.concatenate(vals)
        elif all(_same(v, vals[0]) for v in vals):
            extras[key] = vals[0]
    fields = {f.name: getattr(first, f.name) for f in dataclasses.fields(first)}
    fields.update(values=values, extras=extras)
    for derived in ("mean", "ci"):
        fields.pop(derived, None)
    return MetricResult(**{k: v for k, v in fields.items() if k in _init_names(MetricResult)})


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape and np.array_equal(a, b)
    return a == b


def _init_names(cls: Any) -> set:
    import dataclasses

    return {f.name for f in dataclasses.fields(cls) if f.init}


def attribute(estimator: Any, X_train: Any, y_train: Any, X: Any, target: Any = None, *, backend: Any = "serial",
              n_workers: int | None = None, chunk_size: int = 256, store: Any = None,
              max_in_flight: int | None = None, progress: Any = False) -> Any:
    """Training-data attribution (``InfluenceFunctions``, ``RepresenterPoints``, ...) of blocks of
    test points: ``estimator.fit(X_train, y_train).attribute(X, target)`` with the fit done once
    per worker from the shipped training data.

    Parameters
    ----------
    estimator : training-data attribution estimator
        Fitted or not; on the serial backend a fitted estimator is used as is, elsewhere each
        worker refits a copy of its parameters on ``X_train, y_train`` once.
    X_train, y_train : arrays
        The training data (shipped once to every worker).
    X, target : arrays
        Test points and the labels of their losses (None: the predicted class).

    Returns
    -------
    DataAttribution
        Rows equal to the serial call's for any chunk size and worker count.
    """
    X = _rows(X)
    n = _check_rows(X)
    target_record, target_rows = _target_spec(target, n)
    X_train, y_train = np.asarray(X_train), np.asarray(y_train)
    payload = {"estimator": pack_object(estimator, type(estimator).__name__), "X_train": X_train, "y_train": y_train}
    live = estimator if _is_fitted(estimator) else _clone(estimator).fit(X_train, y_train)
    results = run_job(fn=attribute_chunk, payload=payload, live=live, method=type(estimator).__name__, n_rows=n,
                      make_chunk=_chunker(X, target_rows), chunk_digest=digest_of(X, target_rows),
                      backend=backend, n_workers=n_workers, chunk_size=chunk_size, store=store,
                      max_in_flight=max_in_flight, progress=progress, collect=True,
                      config={"target": target_record, "kind": "attribute"})
    return concat_results(results)


def _is_fitted(estimator: Any) -> bool:
    return any(k.endswith("_") and not k.startswith("_") for k in vars(estimator))


def run_tasks(fn: Any, payload: dict, tasks: list, *, backend: Any = "serial", n_workers: int | None = None,
              max_in_flight: int | None = None) -> list:
    """``[fn(payload, task) for task in tasks]`` on any backend, in task order.

    For work that is not rows of one array (the training runs of
    :func:`~scrutiny.diagnostics.randomization_test`, say). ``payload`` (plain data, see
    :mod:`._shipping`: models packed with :func:`pack_model`) reaches each worker once; each task
    (plain data too) travels alone. ``fn`` must be a top-level function of an importable module;
    it receives the payload (not a copy per task: it must not change it) and one task.
    """
    if not isinstance(payload, dict):
        raise InvalidParameterError(f"payload must be a dict of plain data; got {type(payload).__name__}.")
    executor, owned = make_executor(backend, n_workers)
    limit = int(max_in_flight) if max_in_flight is not None else 2 * executor.n_workers
    if limit < 1:
        raise InvalidParameterError(f"max_in_flight must be a positive int; got {max_in_flight!r}.")
    shared = Shared(payload_digest({"payload": payload, "fn": f"{fn.__module__}:{fn.__qualname__}"}), payload)
    results: dict[int, Any] = {}
    try:
        for key, result in executor.run(_payload_task, shared, ((i, (fn, t)) for i, t in enumerate(tasks)), limit):
            results[key] = result
    finally:
        if owned:
            executor.close()
    return [results[i] for i in range(len(tasks))]


def _payload_task(shared: Any, task: Any) -> Any:
    fn, t = task
    return fn(shared.payload, t)
