"""``DMMMEN(n_iter="auto")``: run the chains in blocks until they have converged.

Decisions (the estimator's docstring states them for users):

* **Blocks.** Every chain runs ``AUTO_BLOCK`` sweeps at a time, continuing from its own final
  state with its own generator (the worker hands the generator back, so the stream is the same
  in this process and in a process pool: results do not depend on ``n_jobs``). Convergence is
  checked after every block; a check costs a rank-normalised R-hat and a bulk ESS of two traces,
  nothing next to a block of sweeps.
* **Burn-in.** At every check, and in the final summaries, the first half of every chain is
  discarded (Gelman et al.'s and Stan's practice behind split R-hat): the kept half grows with
  the chains, so an early transient is forgotten as the run extends. ``n_burnin`` is not used
  for the chains (it still sets the pilots' length).
* **Criterion.** R-hat of the log-likelihood and of the log joint below ``rhat_threshold`` and
  their bulk ESS above ``AUTO_MIN_ESS`` (Vehtari et al. 2021 recommend 400 for 4 split chains).
* **Stopping.** Also when ``max_iter`` sweeps are reached, or when the next block would end
  after ``max_time`` seconds (measured from the start of ``fit``, pilots included; the block's
  predicted time is the last block's). Without ``max_time`` the sweeps run, hence every draw,
  depend only on the seed. With it, the sweeps run depend on the machine's speed: ``n_iter_``
  records them, and ``max_time=None, max_iter=n_iter_`` with the same seed reproduces the fit
  exactly (the checks before the last block see the same draws and fail the same way).
"""

from __future__ import annotations

import time
import warnings
from typing import Any, NamedTuple

import numpy as np

from .chains import ChainJob, chain_pool, map_chains, start_state
from .convergence import ess_bulk, rhat
from ..exceptions import ConvergenceWarning, InvalidParameterError
from .mcmc import DEFAULT_STORE, ChainResult, run_chain

__all__ = ["AUTO_BLOCK", "AUTO_MIN_ESS", "AutoRun", "check_lengths", "run_auto", "run_chains", "warn_unconverged"]

#: Sweeps per chain between two convergence checks.
AUTO_BLOCK = 250
#: Bulk ESS that the log-likelihood and the log joint must exceed (Vehtari et al. 2021).
AUTO_MIN_ESS = 400.0
#: The log joint of the occupied components: empty components' parameters are fresh prior draws
#: every sweep, whose heavy-tailed log density moves the full log joint's R-hat and ESS
#: although nothing fitted depends on them (log_joint(..., occupied_only=True)).
_CRITERION = ("loglik", "logjoint_occupied")


class _Block(NamedTuple):
    result: ChainResult
    rng: np.random.Generator


class AutoRun(NamedTuple):
    """What :func:`run_auto` returns."""

    results: list  #: one ChainResult per chain: all sweeps in ``trace``, draws after ``n_burnin``
    n_iter: int  #: sweeps run per chain
    n_burnin: int  #: sweeps discarded per chain (the first half)
    converged: bool
    stop_reason: str  #: "converged", "max_time" or "max_iter"
    history: list  #: one dict per check: sweeps, seconds, R-hat and ESS of the criterion


def run_block(job: ChainJob) -> _Block:
    """Run ``job.n_iter`` sweeps from ``job.start`` (a State) and hand the generator back."""
    res = run_chain(job.rng, job.X, job.y, job.priors, job.n_iter, 0, 1, settings=job.settings,
                    init_state=job.start, store=job.store, blas_threads=1)
    return _Block(res, job.rng)


def check(traces: list, burn: int, rhat_threshold: float) -> dict:
    """R-hat and bulk ESS of the criterion's traces after ``burn`` sweeps."""
    out: dict = {}
    for name in _CRITERION:
        x = np.stack([np.asarray(tr[name][burn:], dtype=float) for tr in traces])
        out[f"rhat_{name}"] = float(rhat(x)) if x.shape[1] >= 4 else np.nan
        out[f"ess_{name}"] = float(ess_bulk(x)) if x.shape[1] >= 4 else 0.0
    r = [out[f"rhat_{n}"] for n in _CRITERION]
    e = [out[f"ess_{n}"] for n in _CRITERION]
    out["converged"] = bool(np.all(np.isfinite(r)) and max(r) < rhat_threshold and min(e) > AUTO_MIN_ESS)
    return out


def _concat(parts: list, burn: int, thin: int) -> ChainResult:
    """Join one chain's blocks; keep the draws from sweep ``burn`` on, every ``thin``-th."""
    trace = {k: np.concatenate([p.trace[k] for p in parts]) for k in parts[0].trace}
    offsets = np.cumsum([0] + [len(p.trace["loglik"]) for p in parts[:-1]])
    t_off = np.cumsum([0.0] + [p.trace["time"][-1] for p in parts[:-1]])
    trace["time"] = np.concatenate([p.trace["time"] + t for p, t in zip(parts, t_off)])
    draws = {}
    for k in parts[0].draws:
        if k == "iteration":
            v = np.concatenate([p.draws[k] + o for p, o in zip(parts, offsets)])
        else:
            v = np.concatenate([p.draws[k] for p in parts])
        draws[k] = v[burn::thin]
    return ChainResult(draws=draws, trace=trace, state=parts[-1].state)


def run_auto(
    rngs: list, X: np.ndarray, y: np.ndarray, priors: Any, settings: Any, starts: list, store: Any,
    *, thin: int, rhat_threshold: float, max_iter: int, max_time: float | None, t_start: float, n_jobs: int,
) -> AutoRun:
    """Extend the chains block by block until :func:`check` passes, ``max_iter`` or ``max_time``."""
    rngs = list(rngs)
    # a "kmeans" / "one" start is drawn here from the chain's own stream, as run_job would
    states = [start_state(g, X, y, priors, st) for g, st in zip(rngs, starts)]
    parts: list = [[] for _ in rngs]
    history: list = []
    done = 0
    reason = "max_iter"
    converged = False
    with chain_pool(n_jobs):
        while done < max_iter:
            n = min(AUTO_BLOCK, max_iter - done)
            t0 = time.perf_counter()
            jobs = [ChainJob(g, X, y, priors, n, 0, 1, settings, st, store) for g, st in zip(rngs, states)]
            blocks = map_chains(jobs, n_jobs, worker=run_block)
            for c, b in enumerate(blocks):
                parts[c].append(b.result)
                rngs[c] = b.rng
                states[c] = b.result.state
            done += n
            elapsed = time.perf_counter() - t_start
            burn = done // 2
            info = check([_join_traces(p) for p in parts], burn, rhat_threshold)
            info.update(sweeps=done, seconds=elapsed)
            history.append(info)
            if info["converged"]:
                converged, reason = True, "converged"
                break
            if max_time is not None and elapsed + (time.perf_counter() - t0) > max_time:
                reason = "max_time"
                break
    burn = done // 2
    results = [_concat(p, burn, thin) for p in parts]
    return AutoRun(results, done, burn, converged, reason, history)


def _join_traces(parts: list) -> dict:
    return {k: np.concatenate([p.trace[k] for p in parts]) for k in _CRITERION}


def run_chains(est: Any, rngs: list, X: np.ndarray, y: np.ndarray, priors: Any, settings: Any, starts: list,
               t_start: float) -> list:
    """Run the chains of a :class:`~scrutiny.surrogate.DMMMEN` fit, for ``n_iter`` sweeps or
    ``"auto"``; sets ``n_iter_``, ``n_burnin_``, ``stop_reason_`` and ``auto_history_`` on ``est``."""
    est.auto_history_ = None
    if est.n_iter == "auto":
        run = run_auto(rngs, X, y, priors, settings, starts, DEFAULT_STORE, thin=int(est.thin),
                       rhat_threshold=float(est.rhat_threshold), max_iter=int(est.max_iter),
                       max_time=est.max_time, t_start=t_start, n_jobs=int(est.n_jobs))
        est.n_iter_, est.n_burnin_, est.stop_reason_, est.auto_history_ = (
            run.n_iter, run.n_burnin, run.stop_reason, run.history)
        return run.results
    est.n_iter_, est.n_burnin_, est.stop_reason_ = int(est.n_iter), int(est.n_burnin), "n_iter"
    jobs = [ChainJob(g, X, y, priors, est.n_iter_, est.n_burnin_, int(est.thin), settings, st, DEFAULT_STORE)
            for g, st in zip(rngs, starts)]
    return map_chains(jobs, int(est.n_jobs))


def warn_unconverged(est: Any) -> None:
    """The :class:`~scrutiny.exceptions.ConvergenceWarning` of an ``"auto"`` fit that did not converge."""
    if est.converged_:
        return
    last = est.auto_history_[-1]
    warnings.warn(
        f"DMMMEN: n_iter='auto' stopped by {est.stop_reason_} after {est.n_iter_} sweeps per chain "
        f"({last['seconds']:.1f} s) without converging: R-hat loglik {last['rhat_loglik']:.3f}, logjoint "
        f"{last['rhat_logjoint_occupied']:.3f} (threshold {est.rhat_threshold}), bulk ESS {last['ess_loglik']:.0f}, "
        f"{last['ess_logjoint_occupied']:.0f} (needed > {AUTO_MIN_ESS:.0f}); see auto_history_. Raise max_time or "
        "max_iter.",
        ConvergenceWarning,
        stacklevel=4,
    )


def check_lengths(est: Any) -> None:
    """Refuse an integer ``n_iter`` that leaves no burn-in-free draws (``"auto"`` needs no check)."""
    if est.n_iter == "auto":
        return
    if est.n_burnin >= est.n_iter:
        raise InvalidParameterError(
            f"DMMMEN: n_burnin must be smaller than n_iter; got n_burnin={est.n_burnin}, "
            f"n_iter={est.n_iter}. n_iter counts all sweeps, burn-in included."
        )
    if (est.n_iter - est.n_burnin) // est.thin < 4:
        raise InvalidParameterError(
            f"DMMMEN: (n_iter - n_burnin) / thin must leave at least 4 stored draws per chain; got "
            f"n_iter={est.n_iter}, n_burnin={est.n_burnin}, thin={est.thin}."
        )
