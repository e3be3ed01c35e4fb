"""Run an audit: load, run the sections with progress bars, write the trail and the report.

``run_audit`` is what ``scrutiny audit`` calls. Sections run in ``config["sections"]`` order;
with ``jobs > 1`` the independent sections run in threads (torch and numpy release the GIL in
their kernels). A failing section is recorded with its error and the audit goes on, unless
``strict``. The per-row work of the local section (explanations, deletion curves, sanity checks)
runs on ``backend`` through :mod:`scrutiny.distributed`, with the same results on every backend.
"""

from __future__ import annotations

import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

from .loaders import LoadedData, LoadedModel
from .sections import TITLES, AuditContext, Skip

__all__ = ["ProgressBar", "run_audit", "run_section", "section_functions"]


class ProgressBar:
    """A dependency-free text bar on stderr: ``label [#####.....] 3/6 12.1 s``."""

    def __init__(self, total: int, label: str, *, enabled: bool = True, stream: Any = None, width: int = 24):
        self.total, self.label, self.enabled, self.width = max(int(total), 1), label, enabled, width
        self.stream = stream if stream is not None else sys.stderr
        self.n, self.start = 0, time.perf_counter()
        self._draw()

    def _draw(self, end: str = "\r") -> None:
        if not self.enabled:
            return
        filled = int(self.width * self.n / self.total)
        self.stream.write(f"{self.label:<28} [{'#' * filled}{'.' * (self.width - filled)}] "
                          f"{self.n}/{self.total} {time.perf_counter() - self.start:6.1f} s{end}")
        self.stream.flush()

    def update(self, n: int = 1) -> None:
        self.n = min(self.total, self.n + n)
        self._draw()

    def close(self) -> None:
        self._draw(end="\n")


def section_functions() -> dict[str, Any]:
    """Section name -> ``fn(ctx) -> SectionOutput``, in report order."""
    from .sections import local, performance
    from .sections_global import dmm_men, generalisation, glassbox, training_data

    return {"performance": performance, "local": local, "dmm_men": dmm_men, "training_data": training_data,
            "generalisation": generalisation, "glassbox": glassbox}


def run_section(name: str, fn: Any, ctx: AuditContext, strict: bool) -> dict:
    """One section's record: status ok/skipped/failed, seconds, numbers, params, files."""
    start = time.perf_counter()
    record: dict = {"name": name, "title": TITLES[name], "status": "ok", "reason": None, "error": None,
                    "numbers": {}, "params": {}, "files": []}
    try:
        out = fn(ctx)
        record.update(numbers=out.numbers, params=out.params, files=out.files)
    except Skip as exc:
        record.update(status="skipped", reason=str(exc))
    except Exception as exc:
        if strict:
            raise
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc(limit=4).splitlines()[-6:])
    record["seconds"] = round(time.perf_counter() - start, 3)
    return record


def run_audit(model: LoadedModel, data: LoadedData, out: str | Path, *, train: LoadedData | None = None,
              config: dict, seed: int = 0, jobs: int = 1, quiet: bool = False, strict: bool = False,
              argv: Sequence[str] | None = None, backend: str | None = None, scheduler: str | None = None,
              n_workers: int | None = None) -> dict:
    """Run every configured section and write ``audit.json`` and ``report.html`` to ``out``; returns the trail.

    ``backend`` (``"serial"``, ``"process"`` or ``"dask"``), ``scheduler`` (a Dask scheduler
    address to connect to) and ``n_workers`` (workers of a pool or local cluster started here)
    override ``config["distributed"]``; they never change a result, and the trail records them
    as ``execution``.
    """
    from .config import resolve_execution

    execution = resolve_execution(config, backend, scheduler, n_workers)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    executor, owned = open_executor(execution)
    try:
        return _run(model, data, out, train, config, seed, jobs, quiet, strict, argv, execution, executor)
    finally:
        if owned:
            executor.close()


def open_executor(execution: dict) -> tuple[Any, bool]:
    """The executor of a resolved execution (``"serial"`` for serial) and whether to close it; a
    scheduler that cannot be reached is a :class:`~scrutiny.exceptions.InvalidParameterError`."""
    if execution["backend"] == "serial":
        return "serial", False
    from ..distributed import make_executor
    from ..exceptions import InvalidParameterError

    address = execution["scheduler"]
    try:
        return make_executor(address or execution["backend"], execution["workers"])
    except (OSError, TimeoutError) as exc:
        if address is None:
            raise
        raise InvalidParameterError(f"--scheduler {address!r}: cannot connect ({exc}); start the scheduler there, "
                                    "or fix the address.") from None


def _run(model, data, out, train, config, seed, jobs, quiet, strict, argv, execution, executor) -> dict:
    from .report import write_report
    from .trail import build_trail, write_trail

    t0 = time.perf_counter()

    def progress(total: int, label: str) -> ProgressBar:
        return ProgressBar(total, label, enabled=not quiet)

    ctx = AuditContext(model, data.dataset, train.dataset if train is not None else None, config, out, seed, jobs,
                       progress, executor)
    functions = section_functions()
    names = [n for n in config["sections"]]
    if jobs > 1:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(run_section, n, functions[n], ctx, strict) for n in names]
            records = [f.result() for f in futures]
    else:
        records = [run_section(n, functions[n], ctx, strict) for n in names]
    trail = build_trail(model, data, train, config, records, seed=seed, argv=argv,
                        seconds=time.perf_counter() - t0,
                        execution={**execution, "workers": getattr(executor, "n_workers", 1)})
    write_trail(trail, out)
    write_report(out, trail)
    return trail
