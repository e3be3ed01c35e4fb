"""Throughput and memory of scrutiny.distributed: serial, process and Dask backends.

Sections:

* ``throughput``: rows explained per second for image LIME and grouped (superpixel) KernelSHAP
  on the digits CNN, with the serial backend and the process and Dask backends on 1 and 2
  workers (every worker and the serial run use one torch and one BLAS thread), in the same run; the
  speed-up of 2 workers over serial and the overhead of Dask over the process backend. Every
  distributed result is checked equal to the serial one. Every backend is warmed up by a short
  job first (imports, first-call costs); ``--rounds`` interleaved rounds run every
  configuration, each started, warmed up, timed and closed in turn (one alive at a time); the
  best round counts (the machine is shared; every round's rate is shown), and
  ``speedup_paired`` is the median over rounds of each round's speed-up over the serial run of
  the same round (robust to the machine's speed drifting between rounds).
  The script re-runs itself with the workers' glibc allocator settings (``WORKER_MALLOC_ENV``,
  which keep the explainers' temporary arrays on the heap), so the serial run in this process is
  like-for-like with the workers (the settings speed the serial run up here, so this is the
  conservative choice).
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
    p.add_argument("--rounds", type=int, default=3, help="interleaved timed rounds (the best counts)")
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
    configs = [("serial", 1), ("process", 1), ("process", 2), ("dask", 1), ("dask", 2)]

    def start(backend, workers):
        if backend == "process":
            return ProcessExecutor(workers)
        if backend == "dask":
            return DaskExecutor(None, workers)  # a LocalCluster on 127.0.0.1 (WORKER_MALLOC_ENV on its workers)
        return "serial"

    startup: dict = {}
    walls: dict = {}
    others: dict = {}
    reference: dict = {}
    identical: dict = {}
    for r in range(args.rounds):  # interleaved rounds; the best round of each configuration counts
        for backend, workers in configs:
            # one configuration alive at a time: idle pools and schedulers (the latter in this
            # process) would otherwise take CPU and the GIL from the configuration being timed
            target = start(backend, workers)
            for name, explainer in methods.items():
                # a short job first: imports (each spawned worker imports torch) and first-call costs
                # out of the rates; the table reports it apart. Eight one-row tasks per worker, so
                # that every worker gets one (a cold worker in the timed job costs a second)
                with CpuMeter() as warm:
                    explain(explainer, X[:8 * workers], backend=target, chunk_size=1)
                startup.setdefault((backend, workers, name), round(warm.wall, 2))
            for name, explainer in methods.items():
                with CpuMeter() as meter:
                    e = explain(explainer, X, backend=target, n_workers=workers, chunk_size=chunk_size)
                key = (name, backend, workers)
                reference.setdefault(name, e)
                identical[key] = identical.get(key, True) and bool(np.array_equal(e.values, reference[name].values))
                walls.setdefault(key, []).append(meter.wall)
                others.setdefault(key, []).append(meter.others)
                log(f"round {r + 1}: {key} {n / meter.wall:.1f} rows/s")
            if not isinstance(target, str):
                target.close()
    for name in methods:
        base = n / min(walls[(name, "serial", 1)])
        for backend, workers in configs:
            key = (name, backend, workers)
            rate = n / min(walls[key])
            # the machine's speed drifts between rounds: the paired figure divides each round's rate
            # by the serial rate of the same round, then takes the median over rounds
            paired = float(np.median(np.array(walls[(name, "serial", 1)]) / np.array(walls[key])))
            row = {"method": name, "backend": backend, "workers": workers, "chunk": chunk_size,
                   "rows_per_s": round(rate, 2), "speedup_vs_serial": round(rate / base, 2),
                   "speedup_paired": round(paired, 2),
                   "rounds_rows_per_s": " ".join(f"{n / w:.0f}" for w in walls[key]),
                   "identical": identical[key], "warmup_s": startup[(backend, workers, name)],
                   "others_cores": round(float(np.median(others[key])), 2)}
            table.append(row)
            record.setdefault("throughput", []).append(row)
        by = {(r["backend"], r["workers"]): r["rows_per_s"] for r in table if r["method"] == name}
        record.setdefault("dask_overhead", {})[name] = {
            w: round(by[("process", w)] / by[("dask", w)] - 1, 3) for w in (1, 2)
        }


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


def _same_allocator_as_the_workers() -> None:
    """Re-run this script with the glibc settings the workers start with (WORKER_MALLOC_ENV; glibc
    reads them only at start-up), so that the serial rate is measured like-for-like. They make the
    serial run faster, not slower, here, so the speed-ups are conservative."""
    import os

    from scrutiny.distributed import WORKER_MALLOC_ENV

    env = {k: str(v) for k, v in WORKER_MALLOC_ENV.items()}
    if all(os.environ.get(k) == v for k, v in env.items()):
        return
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **env})


def main(argv=None) -> int:
    args = parse_args(argv)
    if argv is None:
        _same_allocator_as_the_workers()
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
