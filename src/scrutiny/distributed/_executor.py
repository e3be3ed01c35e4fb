"""One executor interface, three backends: ``"serial"``, ``"process"`` and ``"dask"``.

Every backend runs ``fn(shared, task)`` for a stream of tasks and yields ``(key, result)`` as
tasks finish, with the same semantics:

* ``shared`` (a :class:`Shared`: the job's token and its payload of plain data, see
  :mod:`._shipping`) reaches every worker **once**: the process backend writes it to one file
  that each worker reads on its first task, the Dask backend scatters it with
  ``broadcast=True``; tasks carry only their own rows;
* at most ``max_in_flight`` tasks are submitted and not yet consumed (backpressure): tasks are
  drawn from a lazy iterator, so a million rows are never all in memory at once;
* a task whose worker dies is run again (Dask's scheduler reruns it on another worker, up to
  ``distributed.scheduler.allowed-failures`` times; the process backend restarts its pool and
  resubmits the tasks that were lost, up to ``max_restarts`` times). Results never depend on
  which worker ran a task, so a rerun changes nothing.

``fn`` must be an importable top-level function (it is sent by reference).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from typing import Any, Callable, Iterable, Iterator

from ..exceptions import InvalidParameterError, MissingDependencyError

__all__ = ["Shared", "Executor", "SerialExecutor", "ProcessExecutor", "DaskExecutor", "make_executor"]


class Shared:
    """What every task of a job shares: a token naming the job, its payload (plain data, see
    :mod:`._shipping`) and, on the serial backend only, the live object itself."""

    __slots__ = ("token", "payload", "live")

    def __init__(self, token: str, payload: Any, live: Any = None) -> None:
        self.token, self.payload, self.live = token, payload, live

    def __getstate__(self) -> tuple:  # the live object never travels
        return (self.token, self.payload)

    def __setstate__(self, state: tuple) -> None:
        self.token, self.payload = state
        self.live = None


class Executor:
    """The interface: ``run(fn, shared, tasks, max_in_flight)`` yields ``(key, result)``."""

    name = "executor"
    n_workers = 1

    def run(self, fn: Callable, shared: Shared, tasks: Iterable[tuple[Any, Any]],
            max_in_flight: int) -> Iterator[tuple[Any, Any]]:
        raise NotImplementedError  # pragma: no cover

    def close(self) -> None:
        """Release what the executor started (pools, a local cluster); a no-op otherwise."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class SerialExecutor(Executor):
    """Runs every task in this process, in order (the default, and the reference result)."""

    name = "serial"

    def run(self, fn, shared, tasks, max_in_flight):
        for key, task in tasks:
            yield key, fn(shared, task)


#: glibc settings of the worker processes started here (a local Dask cluster, the process pool).
#: Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536, which also freezes glibc's mmap threshold at
#: 128 kB: every perturbation batch above it is then a fresh mmap whose pages fault in, and image
#: LIME ran markedly slower in a Dask worker than in a plain process. Large thresholds keep the
#: arrays on the heap (the dask rows of benchmarks/scale.py are measured with them).
WORKER_MALLOC_ENV = {"MALLOC_TRIM_THRESHOLD_": 2**27, "MALLOC_MMAP_THRESHOLD_": 2**25}


_LOADED: dict[str, Shared] = {}
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def _worker_setup() -> None:
    """Worker start-up: one BLAS/OpenMP thread per worker process, set before torch or numpy's
    BLAS is imported there (what Dask's nanny does for its workers), so that n workers use n
    cores instead of oversubscribing them."""
    import sys

    for var in _THREAD_VARS:
        os.environ[var] = "1"
    # a spawned worker re-imports the parent's __main__ first, which may have imported torch and
    # numpy's BLAS already: then the variables come too late, and the pools are capped directly
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover - a scikit-learn dependency
        pass
    _heap_arrays()


def _heap_arrays() -> None:
    """glibc: keep large arrays on the heap (the thresholds of WORKER_MALLOC_ENV, set with mallopt
    since the process already runs); a no-op elsewhere."""
    import ctypes
    import ctypes.util

    import sys

    name = ctypes.util.find_library("c")
    if not name or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt(-1, WORKER_MALLOC_ENV["MALLOC_TRIM_THRESHOLD_"])  # M_TRIM_THRESHOLD
        libc.mallopt(-3, WORKER_MALLOC_ENV["MALLOC_MMAP_THRESHOLD_"])  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        pass


# What a job file may hold: a Shared of plain data (see _shipping). The file is written by this job's
# driver; the allow-list still makes a swapped file unable to run code.
_PLAIN_GLOBALS = {
    ("scrutiny.distributed._executor", "Shared"),
    ("builtins", "complex"), ("builtins", "slice"), ("builtins", "set"), ("builtins", "frozenset"),
    ("builtins", "bytearray"), ("collections", "OrderedDict"),
    ("numpy", "dtype"), ("numpy", "ndarray"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
}


def _load_plain(f) -> Any:
    import pickle

    class _PlainUnpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            if (module, name) not in _PLAIN_GLOBALS:
                raise pickle.UnpicklingError(f"job file holds {module}.{name}, which is not plain data")
            return super().find_class(module, name)

    return _PlainUnpickler(f).load()


def _run_from_file(fn: Callable, token: str, path: str, task: Any) -> Any:
    shared = _LOADED.get(token)
    if shared is None:
        with open(path, "rb") as f:  # written by this job's driver: a Shared of plain data (see _shipping)
            shared = _load_plain(f)
        _LOADED.clear()
        _LOADED[token] = shared
    return fn(shared, task)


class ProcessExecutor(Executor):
    """Local worker processes (``concurrent.futures.ProcessPoolExecutor``, ``spawn`` start
    method: no fork of a process that runs torch threads).

    The pool outlives a job (use the executor as a context manager, or ``close()`` it), so its
    start-up (each worker imports torch) is paid once. A job's payload is written once to a
    temporary file that each worker reads on its first task of the job: shipped once per worker,
    as on Dask, and only plain data (see :mod:`._shipping`).
    """

    name = "process"

    def __init__(self, n_workers: int | None = None, max_restarts: int = 3) -> None:
        self.n_workers = int(n_workers or os.cpu_count() or 1)
        self.max_restarts = max_restarts
        self._pool: cf.ProcessPoolExecutor | None = None

    def _get_pool(self) -> cf.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = cf.ProcessPoolExecutor(self.n_workers, mp_context=multiprocessing.get_context("spawn"),
                                                initializer=_worker_setup)
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def run(self, fn, shared, tasks, max_in_flight):
        import pickle
        import tempfile

        fd, path = tempfile.mkstemp(prefix="scrutiny-job-", suffix=".pkl")
        try:
            with os.fdopen(fd, "wb") as f:
                pickle.dump(Shared(shared.token, shared.payload), f, protocol=5)
            yield from self._run(fn, shared.token, path, iter(tasks), max_in_flight)
        finally:
            os.unlink(path)

    def _run(self, fn, token, path, tasks, max_in_flight):
        retry: list[tuple[Any, Any]] = []
        restarts = 0
        while True:
            pool = self._get_pool()
            pending: dict[cf.Future, tuple[Any, Any]] = {}
            broken = False
            try:
                while True:
                    while len(pending) < max_in_flight:
                        item = retry.pop() if retry else next(tasks, None)
                        if item is None:
                            break
                        pending[pool.submit(_run_from_file, fn, token, path, item[1])] = item
                    if not pending:
                        return
                    done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                    for fut in done:
                        item = pending.pop(fut)
                        try:
                            result = fut.result()
                        except cf.process.BrokenProcessPool:
                            retry.append(item)
                            broken = True
                            continue
                        yield item[0], result
                    if broken:  # a worker died: every task in flight is lost; rerun them on a new pool
                        retry.extend(pending.values())
                        pending.clear()
                        break
            except BaseException:
                for fut in pending:
                    fut.cancel()
                raise
            self.close()
            restarts += 1
            if restarts > self.max_restarts:
                raise RuntimeError(f"process backend: the worker pool died {restarts} times; giving up.")


class DaskExecutor(Executor):
    """A Dask ``Client`` (given, connected to a scheduler address, or to a ``LocalCluster``
    started on demand, bound to 127.0.0.1 with no dashboard); ``workers`` restricts the job to
    some worker addresses."""

    name = "dask"

    def __init__(self, client: Any = None, n_workers: int | None = None, workers: Any = None) -> None:
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError as exc:
            raise MissingDependencyError(
                "backend='dask' needs dask.distributed; install it with pip install 'scrutiny[dask]'."
            ) from exc
        self._owned: list[Any] = []
        if client is None:
            import dask

            environ = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **WORKER_MALLOC_ENV}
            # No statistical profiler on the workers: it samples every worker's stack every 10 ms and
            # only a dashboard reads it (this cluster has none); on the throughput workload of
            # benchmarks/scale.py, timed with and without it in paired rounds, every round was faster
            # without it.
            # Dask lets this process's environment override pre-spawn-environ, and every LocalCluster's
            # nannies write their values into it (Dask's MALLOC_TRIM_THRESHOLD_=65536 after a default
            # cluster): ours go there for the start-up (nanny restarts reuse them), then it is restored.
            saved = {k: os.environ.get(k) for k in WORKER_MALLOC_ENV}
            os.environ.update({k: str(v) for k, v in WORKER_MALLOC_ENV.items()})
            try:
                with dask.config.set({"distributed.nanny.pre-spawn-environ": environ,
                                      "distributed.worker.profile.enabled": False}):
                    cluster = LocalCluster(n_workers=int(n_workers or os.cpu_count() or 1), threads_per_worker=1,
                                           processes=True, host="127.0.0.1", dashboard_address=None)
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
            client = Client(cluster)
            self._owned = [client, cluster]
        elif isinstance(client, str):
            client = Client(client)
            self._owned = [client]
        self.client = client
        self.workers = None if workers is None else list(workers)  # restrict the job to these addresses
        self.n_workers = len(self.workers) if self.workers else max(1, len(client.scheduler_info().get("workers", {})))

    def run(self, fn, shared, tasks, max_in_flight):
        from dask.distributed import as_completed

        handle = self.client.scatter(shared, broadcast=True, hash=False, workers=self.workers)
        keys: dict[str, Any] = {}
        tasks = iter(tasks)
        futures = as_completed(loop=self.client.loop)  # this client's loop, not the default client's
        in_flight = 0

        def submit() -> bool:
            item = next(tasks, None)
            if item is None:
                return False
            fut = self.client.submit(fn, handle, item[1], pure=False, workers=self.workers)
            keys[fut.key] = item[0]
            futures.add(fut)
            return True

        try:
            while in_flight < max_in_flight and submit():
                in_flight += 1
            for fut in futures:
                result = fut.result()
                key = keys.pop(fut.key)
                fut.release()
                in_flight -= 1
                if submit():
                    in_flight += 1
                yield key, result
        finally:
            for fut in list(futures.futures):
                fut.cancel()
            handle.release()

    def close(self) -> None:
        for obj in self._owned:
            obj.close()
        self._owned = []


def make_executor(backend: Any = "serial", n_workers: int | None = None) -> tuple[Executor, bool]:
    """The executor for ``backend`` and whether the caller owns it (must close it).

    ``backend``: ``"serial"``, ``"process"``, ``"dask"`` (a local cluster started on demand), a
    scheduler address (``"tcp://host:8786"``), a ``dask.distributed.Client``, or an Executor.
    """
    if isinstance(backend, Executor):
        return backend, False
    if backend is None or backend == "serial":
        return SerialExecutor(), True
    if backend == "process":
        return ProcessExecutor(n_workers), True
    if backend == "dask":
        return DaskExecutor(None, n_workers), True
    if isinstance(backend, str) and "://" in backend:
        return DaskExecutor(backend), True
    if type(backend).__name__ == "Client" and hasattr(backend, "scatter"):
        return DaskExecutor(backend), False
    raise InvalidParameterError(
        f"backend must be 'serial', 'process', 'dask', a scheduler address ('tcp://host:8786'), a "
        f"dask.distributed.Client or an Executor; got {backend!r}."
    )
