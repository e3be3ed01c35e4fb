"""Run an audit: load, run the sections with progress bars, write the trail and the report.

``run_audit`` is what ``scrutiny audit`` calls. Sections run in ``config["sections"]`` order;
with ``jobs > 1`` the independent sections run in threads (torch and numpy release the GIL in
their kernels). A failing section is recorded with its error and the audit goes on, unless
``strict``.
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
              argv: Sequence[str] | None = None) -> dict:
    """Run every configured section and write ``audit.json`` and ``report.html`` to ``out``; returns the trail."""
    from .report import write_report
    from .trail import build_trail, write_trail

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    def progress(total: int, label: str) -> ProgressBar:
        return ProgressBar(total, label, enabled=not quiet)

    ctx = AuditContext(model, data.dataset, train.dataset if train is not None else None, config, out, seed, jobs,
                       progress)
    functions = section_functions()
    names = [n for n in config["sections"]]
    if jobs > 1:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(run_section, n, functions[n], ctx, strict) for n in names]
            records = [f.result() for f in futures]
    else:
        records = [run_section(n, functions[n], ctx, strict) for n in names]
    trail = build_trail(model, data, train, config, records, seed=seed, argv=argv,
                        seconds=time.perf_counter() - t0)
    write_trail(trail, out)
    write_report(out, trail)
    return trail
