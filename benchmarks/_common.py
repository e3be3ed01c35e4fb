"""Helpers shared by the benchmark scripts (not part of the library).

* :data:`DEFAULT_DATA_DIR` -- the ``--data-dir`` default of ``benchmarks/zoo.py``
  (``../shared/data`` from the repository root), imported from there so that every benchmark
  looks in the same place;
* :func:`set_threads` -- torch intra-op threads = the machine's cores (scripts may set global
  state; the library never does);
* :class:`Case` and :func:`time_cases` -- warm up every case once, then time ``repeats``
  rounds with the cases interleaved (the order rotates each round) so that a change in the
  load of a shared machine hits every case alike; report median and minimum;
* :class:`CpuMeter`, :func:`wait_quiet` and :class:`Gate` -- on a shared machine, measure how
  many cores *other* processes used during a sample (``/proc/stat`` minus our own CPU time),
  wait for a quiet moment before a sample and retake samples that were contended. (Two
  torch threads slow down by 10x or more when another process competes for a core: every
  parallel region waits for a descheduled thread.)
* :func:`format_table` -- a plain-text table;
* :func:`environment` -- versions and thread counts for the JSON record.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

from zoo import DEFAULT_DATA_DIR

__all__ = [
    "DEFAULT_DATA_DIR",
    "Case",
    "CpuMeter",
    "Gate",
    "environment",
    "format_table",
    "set_threads",
    "summary",
    "time_cases",
    "wait_quiet",
    "write_json",
]


def set_threads(n: int | None = None) -> int:
    """``torch.set_num_threads(n or os.cpu_count())``; returns the thread count in use."""
    import torch

    n = int(n or os.cpu_count() or 1)
    torch.set_num_threads(n)
    return torch.get_num_threads()


@dataclass
class Case:
    """One timed callable. ``warmup`` (default: ``fn``) is run once before any timing; use a
    cheaper call with the same batch shapes for slow peers."""

    key: str
    fn: Callable[[], Any]
    warmup: Callable[[], Any] | None = None
    times: list[float] = field(default_factory=list)
    others: list[float] = field(default_factory=list)  # CPU cores used by other processes, per kept sample
    rejected: int = 0  # samples discarded because other processes were busy during them


# --------------------------------------------------------------------------- contention on a shared machine

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _busy_seconds() -> float | None:
    """CPU seconds (all cores) spent outside idle/iowait since boot, from /proc/stat (Linux)."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = v
    return (user + nice + system + irq + softirq + steal) / _CLK_TCK


class CpuMeter:
    """Wall time of a block and the CPU cores other processes used meanwhile:
    (machine busy CPU time - this process's CPU time) / wall time."""

    def __enter__(self) -> Self:
        self._busy, self._own, self._wall = _busy_seconds(), time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall
        busy = _busy_seconds()
        if busy is None or self._busy is None:
            self.others = float("nan")
        else:
            own = time.process_time() - self._own
            self.others = max(0.0, (busy - self._busy) - own) / max(self.wall, 1e-9)


def wait_quiet(threshold: float, max_wait: float, probe: float = 0.5) -> float:
    """Sleep until other processes use fewer than ``threshold`` cores over a ``probe``-second
    window (at most ``max_wait`` seconds); returns the seconds waited."""
    waited = 0.0
    while waited < max_wait:
        with CpuMeter() as m:
            time.sleep(probe)
        waited += m.wall
        if not (m.others > threshold):  # NaN (no /proc/stat): do not wait
            return waited
    return waited


@dataclass
class Gate:
    """Contention policy of :func:`time_cases`: before a sample, wait (up to ``max_wait`` s) for
    the other processes to use fewer than ``threshold`` cores; a sample during which they used
    more is discarded and retaken, at most ``retries`` times (then kept, and counted)."""

    threshold: float = 0.5
    max_wait: float = 20.0
    retries: int = 2
    enabled: bool = True
    waited: float = 0.0
    kept_contended: int = 0


def time_cases(cases: Sequence[Case], repeats: int, log: Callable[[str], None] | None = None,
               gate: Gate | None = None) -> dict[str, list[float]]:
    """Warm up every case, then ``repeats`` interleaved rounds; returns seconds per case.

    The order of the cases rotates each round. With a :class:`Gate`, samples are taken when the
    machine is quiet and retaken when another process was busy during them."""
    gate = gate or Gate(enabled=False)
    for c in cases:
        t0 = time.perf_counter()
        (c.warmup or c.fn)()
        if log:
            log(f"  warm-up {c.key}: {time.perf_counter() - t0:.2f} s")
    n = len(cases)
    for r in range(repeats):
        order = [cases[(r + j) % n] for j in range(n)]
        for c in order:
            for attempt in range(gate.retries + 1):
                if gate.enabled:
                    gate.waited += wait_quiet(gate.threshold, gate.max_wait)
                gc.collect()
                with CpuMeter() as m:
                    c.fn()
                if not gate.enabled or not (m.others > gate.threshold):
                    break
                if attempt < gate.retries:
                    c.rejected += 1
                else:
                    gate.kept_contended += 1
            c.times.append(m.wall)
            c.others.append(m.others)
        if log:
            log(f"  round {r + 1}/{repeats}: " + ", ".join(
                f"{c.key} {c.times[-1]:.2f}s (others {c.others[-1]:.1f} cores)" for c in cases))
    if log and any(c.rejected for c in cases):
        log("  retaken after contention: " + ", ".join(f"{c.key} {c.rejected}" for c in cases if c.rejected))
    return {c.key: list(c.times) for c in cases}


def summary(times: Sequence[float]) -> dict[str, float]:
    return {"median": float(statistics.median(times)), "min": float(min(times)), "max": float(max(times)),
            "n": len(times)}


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> str:
    """Columns padded to their widest cell; indices in ``right`` are right-aligned."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def host_speed(repeats: int = 9) -> dict[str, float]:
    """Reference timings of this host, to put figures from different runs on one scale.

    The machine's speed drifts (a 7000 x 301 float32 Gram took 8-49 ms on the same VM within
    days): ``gemm_ms`` is the median time of that Gram on one BLAS thread (the DMM-MEN sweep's
    dominant kernel) and ``python_ms`` of a 10^6-step pure-Python loop (the interpreter overhead
    that dominates small fits).
    """
    import numpy
    from threadpoolctl import threadpool_limits

    X = numpy.random.default_rng(0).random((7000, 301), dtype=numpy.float32)
    gemm, loop = [], []
    with threadpool_limits(limits=1, user_api="blas"):
        for _ in range(repeats):
            t = time.perf_counter()
            X.T @ X
            gemm.append(time.perf_counter() - t)
            t = time.perf_counter()
            s = 0
            for i in range(1_000_000):
                s += i
            loop.append(time.perf_counter() - t)
    return {"gemm_ms": round(1e3 * float(numpy.median(gemm)), 2), "python_ms": round(1e3 * float(numpy.median(loop)), 1)}


def environment() -> dict[str, Any]:
    import numpy
    import torch

    out = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": numpy.__version__,
    }
    out["host_speed"] = host_speed()
    try:
        out["loadavg_1_5_15"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        pass
    from importlib import metadata

    for name in ("scrutiny", "lime", "shap", "captum", "scikit-learn", "scikit-image", "scipy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _jsonable(o: Any) -> Any:
    """numpy scalars and arrays (and anything with ``tolist``) as plain JSON values."""
    return o.tolist() if hasattr(o, "tolist") else str(o)


def write_json(path: Any, record: Any, indent: int = 1) -> None:
    """Write a benchmark record as JSON, creating the folder (numpy values become lists/floats)."""
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=indent, default=_jsonable))
