"""Throughput and memory of scrutiny.distributed: serial, process and Dask backends.

Sections:

* ``throughput``: rows explained per second for image LIME and grouped (superpixel) KernelSHAP
  on the digits CNN, with the serial backend and the process and Dask backends on 1 and 2
  workers (every worker and the serial run use one torch and one BLAS thread), in the same run; the
  speed-up of 2 workers over serial and the overhead of Dask over the process backend. Every
  distributed result is checked equal to the serial one. Every backend is warmed up by a short
  job first (imports, first-call costs), so the rates compare steady states. The serial backend
  runs twice: in this process as it starts (``serial``), and again after this process takes the
  workers' glibc allocator settings (``serial, worker malloc``: ``WORKER_MALLOC_ENV``, which keeps
  the explainers' large temporary arrays on the heap instead of mapping and unmapping them on
  every call), so that the speed-up of 2 workers can be read against a like-for-like single
  process too.
* ``memory``: peak resident memory (driver + workers, sampled every 50 ms) while explaining
  ``--rows`` (default 100,000) tabular rows with KernelSHAP on the process backend into a
  result store with ``collect=False``, against a run on a tenth of the rows: flat memory means
  the two peaks match. Rows are read from a ``numpy.memmap``, chunk by chunk.

The machine is shared: the table states the CPU cores other processes used during each run
(``others``), which slow every backend and distort the speed-ups.

    python benchmarks/scale.py [--quick] [--sections throughput memory] [--json out.json]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE))

from _common import CpuMeter, environment, format_table, write_json  # noqa: E402


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer images and rows")
    p.add_argument("--sections", nargs="+", default=["throughput", "memory"], choices=["throughput", "memory"])
    p.add_argument("--images", type=int, default=512, help="images per throughput run")
    p.add_argument("--chunk", type=int, default=128, help="images per chunk (the distributed backends)")
    p.add_argument("--rows", type=int, default=100_000, help="rows of the memory run")
    p.add_argument("--json", type=Path, default=None)
    return p.parse_args(argv)


def run_throughput(args, table, record):
    import torch

    from scrutiny.attribution import LIME, KernelSHAP
    from scrutiny.data import load_digits
    from scrutiny.distributed import DaskExecutor, ProcessExecutor, explain
    from scrutiny.zoo import reference_model

    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)  # the serial run gets what one worker gets: one torch and one BLAS thread
    threadpool_limits(1)
    net, _ = reference_model("cnn", "digits")
    n = 16 if args.quick else args.images
    chunk_size = max(1, min(args.chunk, n // 4))
    X = load_digits().X[:n]
    groups = (np.arange(64).reshape(8, 8) // 8 // 2) * 4 + (np.arange(64).reshape(8, 8) % 8) // 2  # 16 cells
    methods = {
        "LIME": LIME(net, mode="image", segments="grid", segment_params={"cell": 2}, n_samples=1000, random_state=0),
        "KernelSHAP": KernelSHAP(net, background=np.zeros((1, 1, 8, 8)), groups=groups, n_samples=1000,
                                 random_state=0),
    }
    startup: dict = {}
    reference: dict = {}
    base: dict = {}
    base_malloc: dict = {}
    # backends outer, methods inner: the plain serial runs of both methods come before this
    # process takes the workers' allocator settings, which cannot be undone
    for backend, workers in [("serial", 1), ("serial, worker malloc", 1), ("process", 1), ("process", 2),
                             ("dask", 1), ("dask", 2)]:
        target = "serial"
        if backend == "serial, worker malloc":
            _worker_malloc()
        if backend == "process":
            target = ProcessExecutor(workers)  # a pool kept across jobs
        if backend == "dask":
            target = DaskExecutor(None, workers)  # a LocalCluster on 127.0.0.1 (WORKER_MALLOC_ENV on its workers)
        for name, explainer in methods.items():
            # a short job first: imports (each spawned worker imports torch) and first-call costs
            # out of the rate; the table reports it apart
            with CpuMeter() as warm:
                explain(explainer, X[:max(2, workers)], backend=target, chunk_size=1)
            startup[(backend, workers, name)] = round(warm.wall, 2)
            with CpuMeter() as meter:
                e = explain(explainer, X, backend=target, n_workers=workers, chunk_size=chunk_size)
            reference.setdefault(name, e)
            same = bool(np.array_equal(e.values, reference[name].values))
            rate = n / meter.wall
            base.setdefault(name, rate)
            if backend == "serial, worker malloc":
                base_malloc[name] = rate
            row = {"method": name, "backend": backend, "workers": workers, "chunk": chunk_size,
                   "rows_per_s": round(rate, 2), "speedup_vs_serial": round(rate / base[name], 2),
                   "speedup_vs_serial_worker_malloc": round(rate / base_malloc[name], 2) if name in base_malloc
                   else "-",
                   "identical": same, "wall_s": round(meter.wall, 2), "warmup_s": startup[(backend, workers, name)],
                   "others_cores": round(meter.others, 2)}
            log(str(row))
            table.append(row)
            record.setdefault("throughput", []).append(row)
        if backend in ("process", "dask"):
            target.close()
    for name in methods:
        by = {(r["backend"], r["workers"]): r["rows_per_s"] for r in table if r["method"] == name}
        record.setdefault("dask_overhead", {})[name] = {
            w: round(by[("process", w)] / by[("dask", w)] - 1, 3) for w in (1, 2)
        }


def _worker_malloc() -> None:
    """This process takes the glibc allocator thresholds the workers start with (mallopt: the
    environment variables are read only at start-up); a no-op off glibc."""
    import ctypes
    import ctypes.util

    from scrutiny.distributed import WORKER_MALLOC_ENV

    name = ctypes.util.find_library("c")
    if not name or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(name)
    libc.mallopt(-1, WORKER_MALLOC_ENV["MALLOC_TRIM_THRESHOLD_"])  # M_TRIM_THRESHOLD
    libc.mallopt(-3, WORKER_MALLOC_ENV["MALLOC_MMAP_THRESHOLD_"])  # M_MMAP_THRESHOLD


def run_memory(args, record):
    import psutil
    from sklearn.linear_model import LogisticRegression

    from scrutiny.attribution import KernelSHAP
    from scrutiny.distributed import ProcessExecutor, ResultStore, explain

    rng = np.random.default_rng(0)
    d = 8
    Xs = rng.normal(size=(2000, d))
    clf = LogisticRegression().fit(Xs, Xs[:, 0] + Xs[:, 1] > 0)
    shap = KernelSHAP(clf, background=Xs[:20], n_samples=64, random_state=0)
    out = {}
    n_full = 20_000 if args.quick else args.rows
    with tempfile.TemporaryDirectory() as tmp:
        for n in (n_full // 10, n_full):
            path = Path(tmp) / f"X{n}.npy"
            mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(n, d))
            for s in range(0, n, 10_000):
                mm[s:s + 10_000] = rng.normal(size=(min(10_000, n - s), d))
            mm.flush()
            del mm
            X = np.load(path, mmap_mode="r")
            me = psutil.Process()
            peak = {"rss": 0}
            stop = threading.Event()

            def sample():
                while not stop.is_set():
                    procs = [me] + me.children(recursive=True)
                    total = 0
                    for p in procs:
                        try:
                            total += p.memory_info().rss
                        except psutil.Error:
                            pass
                    peak["rss"] = max(peak["rss"], total)
                    time.sleep(0.05)

            t = threading.Thread(target=sample, daemon=True)
            t.start()
            start = time.perf_counter()
            store = ResultStore(Path(tmp) / f"store{n}")
            with ProcessExecutor(2) as pool:
                explain(shap, X, backend=pool, chunk_size=2000, store=store, collect=False)
            wall = time.perf_counter() - start
            stop.set()
            t.join()
            out[n] = {"rows": n, "peak_rss_mb": round(peak["rss"] / 2**20, 1), "wall_s": round(wall, 1),
                      "rows_per_s": round(n / wall, 1), "chunks": store.last_run.n_chunks}
            log(str(out[n]))
    record["memory"] = list(out.values())
    return out


def _table(rows: list[dict]) -> str:
    header = list(rows[0])
    return format_table(header, [[str(r[h]) for h in header] for r in rows], right=range(2, len(header)))


def main(argv=None) -> int:
    args = parse_args(argv)
    record = {"environment": environment()}
    if "throughput" in args.sections:
        table: list[dict] = []
        run_throughput(args, table, record)
        print(_table(table))
        print("Dask overhead over the process backend (process rate / dask rate - 1):", record["dask_overhead"])
    if "memory" in args.sections:
        mem = run_memory(args, record)
        rows = list(mem.values())
        print(_table(rows))
        print(f"peak RSS ratio ({rows[1]['rows']:,} / {rows[0]['rows']:,} rows): "
              f"{rows[1]['peak_rss_mb'] / rows[0]['peak_rss_mb']:.2f}")
    if args.json:
        write_json(args.json, record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
