"""Running several DMM-MEN chains: start designs, pilot chains, process pools.

:class:`~scrutiny.surrogate.DMMMEN` describes each chain as a :class:`ChainJob` (its stream,
data, priors, length, start and stored quantities) and hands the jobs to :func:`map_chains`,
which runs :func:`run_job` on each, in this process or in a process pool:

* a start is ``"kmeans"`` (the warm start of :func:`~scrutiny.surrogate.mcmc.init`, refined
  by ``KMEANS_EM_STEPS`` classification-EM iterations), ``"one"`` (every sample in one
  component) or a :class:`~scrutiny.surrogate.state.State` to continue from;
* :func:`best_pilot` runs short pilot chains and returns the final state of the best
  (``init="pilot"``);
* :func:`chain_pool` shares one process pool among the fits inside a ``with`` block.

Every chain runs with one BLAS thread (:func:`scrutiny._threads.blas_limits`): with two chain
processes on two cores, multi-threaded BLAS oversubscribes them.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, NamedTuple, Sequence

import numpy as np

from .._threads import blas_limits
from ..exceptions import InvalidParameterError
from .mcmc import ChainResult, init, load_kernels, run_chain
from .state import Priors, Settings, State

__all__ = ["ChainJob", "KMEANS_EM_STEPS", "PILOT_SWEEPS", "best_pilot", "chain_pool", "map_chains", "run_job",
           "start_state"]

#: The process pool of an active :func:`chain_pool` block and its size.
_SHARED_POOL: tuple[Any, int] | None = None
#: The scrutiny.distributed executor of an active ``chain_pool(backend=...)`` block.
_SHARED_EXECUTOR: Any = None

#: Sweeps of each pilot chain (``init="pilot"``) at most: long enough for the log-likelihood of
#: a k-means start to reach its stationary level on the paper's problems, short next to the
#: chains (``benchmarks/dmm_men.py``, section 1, prints the pilots' log-likelihoods).
PILOT_SWEEPS = 100

#: Classification-EM iterations after k-means in every ``"kmeans"`` start (no merging, all
#: components kept): deterministic uphill moves of the partition that the sweep makes only by a
#: slow drift. Decision: the log joint then starts nearer its stationary level (its R-hat over the
#: kept draws improves on the paper's Trouser problem), at the price of a longer climb of the
#: log-likelihood from the EM's shrunken smallest components. ``benchmarks/dmm_men.py --sections
#: speed --kmeans-em-steps 0`` against the default prints the R-hats of both choices.
KMEANS_EM_STEPS = 30


class ChainJob(NamedTuple):
    """One chain to run (what :func:`run_job` receives; module level, so that it pickles)."""

    rng: np.random.Generator
    X: np.ndarray
    y: np.ndarray
    priors: Priors
    n_iter: int
    n_burnin: int
    thin: int
    settings: Settings
    #: ``"kmeans"``, ``"one"`` or a State to continue from
    start: str | State
    #: the quantities kept per draw (see ``mcmc.DEFAULT_STORE``)
    store: Sequence[str]


def start_state(rng: np.random.Generator, X: np.ndarray, y: np.ndarray, priors: Priors,
                start: str | State) -> State:
    """The State a chain starts from: ``start`` itself, or a ``"kmeans"`` / ``"one"`` start drawn from ``rng``."""
    if not isinstance(start, str):
        return start
    with blas_limits(1):  # as the chain itself (see the module docstring)
        if start == "one":
            return init(rng, X, y, priors, z=np.zeros(X.shape[0], dtype=np.int64))
        return init(rng, X, y, priors, n_em_steps=KMEANS_EM_STEPS)  # "kmeans"


def run_job(job: ChainJob) -> ChainResult:
    """Run one chain from its start (the process-pool worker)."""
    state = start_state(job.rng, job.X, job.y, job.priors, job.start)
    return run_chain(job.rng, job.X, job.y, job.priors, job.n_iter, job.n_burnin, job.thin,
                     settings=job.settings, init_state=state, store=job.store, blas_threads=1)


def map_chains(jobs: list[ChainJob], n_jobs: int, worker: Callable[[ChainJob], Any] = None) -> list:
    """Run ``worker`` (default :func:`run_job`) over ``jobs``, in ``n_jobs`` processes when asked
    (the pool of an active :func:`chain_pool` block of that size, else a pool of its own)."""
    worker = run_job if worker is None else worker
    if _SHARED_EXECUTOR is not None:
        from ..distributed import run_tasks

        return run_tasks(_chain_task, {}, [(worker, job) for job in jobs], backend=_SHARED_EXECUTOR)
    if n_jobs > 1 and len(jobs) > 1:
        from concurrent.futures import ProcessPoolExecutor

        if _SHARED_POOL is not None and _SHARED_POOL[1] == n_jobs:
            return list(_SHARED_POOL[0].map(worker, jobs))
        load_kernels()  # forked workers inherit the compiled kernels instead of each loading them
        with ProcessPoolExecutor(max_workers=min(n_jobs, len(jobs))) as pool:
            return list(pool.map(worker, jobs))
    return [worker(job) for job in jobs]


def _chain_task(payload: dict, task: tuple) -> Any:
    """A chain on a scrutiny.distributed worker: ``worker(job)`` (both sent by reference/value)."""
    worker, job = task
    return worker(job)


def best_pilot(
    rngs: Sequence[np.random.Generator], X: np.ndarray, y: np.ndarray, priors: Priors, settings: Settings,
    n_burnin: int, n_jobs: int,
) -> tuple[State, np.ndarray]:
    """Run one short pilot chain per generator, each from its own k-means start
    (``max(10, min(PILOT_SWEEPS, n_burnin // 2))`` sweeps).

    Returns
    -------
    state : State
        The final state of the pilot with the highest mean log-likelihood over its second half.
    pilot_loglik : ndarray of shape (len(rngs),)
        Every pilot's mean log-likelihood over its second half.
    """
    sweeps = max(10, min(PILOT_SWEEPS, int(n_burnin) // 2))
    pilots = map_chains(
        [ChainJob(g, X, y, priors, sweeps, sweeps - 1, 1, settings, "kmeans", ("alpha",)) for g in rngs], n_jobs
    )
    loglik = np.array([r.trace["loglik"][sweeps // 2 :].mean() for r in pilots])
    return pilots[int(np.argmax(loglik))].state, loglik


@contextlib.contextmanager
def chain_pool(n_jobs: int = 2, backend: Any = None) -> Iterator[None]:
    """Share one process pool, or one scrutiny.distributed backend, among the fits inside the block.

    Every :class:`~scrutiny.surrogate.DMMMEN` fit with ``n_jobs`` equal to this ``n_jobs`` runs
    its chains in the block's pool instead of starting (and stopping) processes of its own
    (the process start-up, a fixed cost per fit that matters for the short fits of
    :class:`~scrutiny.attribution.DMMMENExplainer`, which wraps its images in one block). The
    compiled kernels are loaded before the workers start, so they inherit them. ``n_jobs <= 1``
    and nested blocks change nothing.

    With ``backend`` (``"process"``, ``"dask"``, a scheduler address, a ``dask.distributed.Client``
    or an :class:`~scrutiny.distributed.Executor`), every chain of every fit in the block (pilots
    and ``n_iter="auto"`` blocks included) is a task there, whatever the fit's ``n_jobs``; a
    backend the block starts (``n_jobs`` workers) is closed at its end. Each chain draws from its
    own stream, so the fits equal those of a plain call bit for bit.
    """
    global _SHARED_POOL, _SHARED_EXECUTOR
    if backend is not None and not (isinstance(backend, str) and backend == "serial"):
        if _SHARED_EXECUTOR is not None:
            raise InvalidParameterError("chain_pool(backend=...) blocks do not nest; use one block.")
        from ..distributed import make_executor

        executor, owned = make_executor(backend, n_jobs)
        _SHARED_EXECUTOR = executor
        try:
            yield
        finally:
            _SHARED_EXECUTOR = None
            if owned:
                executor.close()
        return
    if n_jobs <= 1 or _SHARED_POOL is not None or _SHARED_EXECUTOR is not None:
        yield
        return
    from concurrent.futures import ProcessPoolExecutor

    load_kernels()
    with ProcessPoolExecutor(max_workers=n_jobs) as pool:
        _SHARED_POOL = (pool, n_jobs)
        try:
            yield
        finally:
            _SHARED_POOL = None
