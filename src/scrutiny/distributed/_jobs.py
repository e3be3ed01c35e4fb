"""The chunked job driver shared by every entry point: split rows into chunks, skip the chunks the
result store already holds, run the rest through an executor with a bounded number in flight,
save each finished chunk, report progress, and stitch the chunks back together in row order.

Partition invariance: a row's result must not depend on which chunk or worker computed it. The
local explainers guarantee it by their contract (:mod:`scrutiny.attribution._base`: one
perturbation design per call, drawn from ``random_state`` and shared by all rows), so a chunk is
explained with the **same** random stream as the whole call: an int seed is passed as is, and a
Generator (or ``None``, resolved here once from fresh entropy) travels as its bit generator's
state, restored before each chunk. Metrics are run per chunk only when their per-row values are
deterministic given the attributions (see :data:`PARTITION_INVARIANT_METRICS`).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import Any, Callable, Iterator, NamedTuple

import numpy as np

from ..exceptions import InvalidParameterError
from ._executor import Shared, make_executor
from ._shipping import payload_digest
from ._store import ResultStore, RunStats, rows_digest

__all__ = ["Chunk", "run_job", "concat_results", "chunk_ranges", "Progress"]


class Chunk(NamedTuple):
    """One task: rows ``[start, stop)`` of the job, their inputs and per-row extras."""

    start: int
    stop: int
    X: np.ndarray
    target: Any
    extra: Any = None


def chunk_ranges(n: int, chunk_size: int) -> list[tuple[int, int]]:
    if not isinstance(chunk_size, (int, np.integer)) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise InvalidParameterError(
            f"chunk_size must be a positive int (rows per task); got {chunk_size!r}. 64 to 1024 is typical: "
            "large enough that a task outlasts its scheduling overhead."
        )
    return [(s, min(s + int(chunk_size), n)) for s in range(0, n, int(chunk_size))]


class Progress:
    """Progress and the estimated remaining time: a tqdm bar when ``progress=True`` and tqdm is
    installed (a plain line on stderr otherwise), or ``progress(done_rows, total_rows, eta_s)``
    when ``progress`` is callable. Chunks read back from the store count as done at once and do
    not enter the rate."""

    def __init__(self, progress: Any, total: int, desc: str) -> None:
        self.callback = progress if callable(progress) else None
        self.total, self.done, self.start, self.computed = total, 0, time.perf_counter(), 0
        self.bar = None
        self.plain = False
        if progress is True:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, desc=desc, unit="row")
            except ImportError:
                self.plain = True

    def eta(self) -> float:
        elapsed = time.perf_counter() - self.start
        rate = self.computed / elapsed if elapsed > 0 and self.computed else 0.0
        return (self.total - self.done) / rate if rate else float("nan")

    def update(self, rows: int, computed: bool) -> None:
        self.done += rows
        if computed:
            self.computed += rows
        if self.bar is not None:
            self.bar.update(rows)
        elif self.plain:
            print(f"\r{self.done}/{self.total} rows, ETA {self.eta():.0f} s", end="", file=sys.stderr)
        if self.callback is not None:
            self.callback(self.done, self.total, self.eta())

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.plain:
            print(file=sys.stderr)


def run_job(*, fn: Callable, payload: dict, live: Any, method: str, n_rows: int, make_chunk: Callable,
            chunk_digest: Callable, backend: Any, n_workers: int | None, chunk_size: int, store: Any,
            max_in_flight: int | None, progress: Any, collect: bool, config: dict) -> list[Any] | None:
    """Run a job; returns the chunk results in row order (or None with ``collect=False``)."""
    ranges = chunk_ranges(n_rows, chunk_size)
    config_hash = payload_digest({"payload": payload, "config": config, "method": method})
    store = store if store is None or isinstance(store, ResultStore) else ResultStore(store)
    job = None if store is None else store.open_job(method, config_hash, {"method": method, "n_rows": n_rows})
    results: dict[tuple[int, int], Any] = {}
    todo: list[tuple[int, int]] = []
    meter = Progress(progress, n_rows, method)
    for s, e in ranges:
        found = None if job is None else ResultStore.load_chunk(job, s, e, chunk_digest(s, e))
        if found is None:
            todo.append((s, e))
        else:
            if collect:
                results[(s, e)] = _untag(found)
            meter.update(e - s, computed=False)
    executor, owned = make_executor(backend, n_workers)
    shared = Shared(config_hash, payload, live if executor.name == "serial" else None)
    limit = int(max_in_flight) if max_in_flight is not None else 2 * executor.n_workers
    if limit < 1:
        raise InvalidParameterError(f"max_in_flight must be a positive int; got {max_in_flight!r}.")

    def tasks() -> Iterator[tuple[tuple[int, int], Chunk]]:
        for s, e in todo:  # built lazily: only max_in_flight chunks of rows exist at a time
            yield (s, e), make_chunk(s, e)

    try:
        for (s, e), result in executor.run(fn, shared, tasks(), limit):
            if job is not None:
                tagged = dataclasses.replace(result, extras={**dict(result.extras or {}),
                                                             "_rows_digest": chunk_digest(s, e)})
                ResultStore.save_chunk(job, s, e, tagged)
            if collect:
                results[(s, e)] = result
            meter.update(e - s, computed=True)
    finally:
        meter.close()
        if owned:
            executor.close()
    if store is not None:
        store.last_run = RunStats(len(ranges), len(ranges) - len(todo), len(todo))
    return [results[r] for r in ranges] if collect else None


def _untag(result: Any) -> Any:
    extras = {k: v for k, v in dict(result.extras or {}).items() if k != "_rows_digest"}
    return dataclasses.replace(result, extras=extras)


def digest_of(X: Any, target: Any, extra: Any = None) -> Callable[[int, int], str]:
    """The per-chunk digest function over the job's inputs, per-row targets and per-row extras."""
    def digest(s: int, e: int) -> str:
        t = target[s:e] if isinstance(target, np.ndarray) and target.ndim >= 1 else target
        x = extra[s:e] if isinstance(extra, np.ndarray) else None
        return rows_digest(np.asarray(X[s:e]), None if t is None else np.asarray(t), x)

    return digest


def concat_results(results: list[Any]) -> Any:
    """Results of consecutive chunks as one result: per-sample fields and per-sample extras (arrays
    whose first axis has one entry per row, in every chunk) are concatenated; every other field
    and extra must be equal across chunks and is kept once."""
    first = results[0]
    if len(results) == 1:
        return first
    ns = [len(r) for r in results]
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(first):
        name = f.name
        values = [getattr(r, name) for r in results]
        if name == "extras":
            changes[name] = _concat_extras(values, ns, type(first).__name__)
        elif name in type(first)._PER_SAMPLE:
            changes[name] = None if values[0] is None else np.concatenate([np.asarray(v) for v in values])
    return dataclasses.replace(first, **changes)


def _concat_extras(extras: list[dict], ns: list[int], owner: str) -> dict:
    out: dict[str, Any] = {}
    for key in extras[0]:
        vals = [e.get(key) for e in extras]
        per_row = all(isinstance(v, np.ndarray) and v.ndim >= 1 and v.shape[0] == n for v, n in zip(vals, ns))
        # an array with one entry per row of its chunk, in every chunk, is per row: the rule of
        # Result.__getitem__, so joining chunks is the inverse of slicing a result
        if per_row:
            out[key] = np.concatenate(vals)
        elif _all_equal(vals):
            out[key] = vals[0]
        else:
            raise InvalidParameterError(
                f"{owner}: extras[{key!r}] differs between chunks and is not one entry per row, so the chunks "
                "cannot be joined; run this method with backend='serial' or one chunk (chunk_size >= n_rows)."
            )
    return out


def _all_equal(vals: list[Any]) -> bool:
    a = vals[0]
    for b in vals[1:]:
        if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
            if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape
                    and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")):
                return False
        elif a != b:
            return False
    return True
