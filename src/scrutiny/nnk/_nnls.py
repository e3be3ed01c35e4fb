"""Batched non-negative quadratic programs ``min_{theta >= 0} 1/2 theta^T K theta - b^T theta``.

One small problem per query (``K`` is the ``(k, k)`` kernel matrix of its k nearest neighbours,
``b`` their kernel values with the query), solved for a whole batch of queries at once:

* :func:`active_set` -- the Lawson--Hanson active-set method written on the Gram form (as in
  Bro & de Jong's "fast NNLS"): exact, finite, ends when the KKT conditions hold to ``tol``;
  it can start from zero (the classical algorithm) or from a feasible warm start (the polish
  of FISTA). Each step solves every query's passive-set system in one batched LAPACK call on
  a compacted ``(batch, m, m)`` array (``m`` the largest passive set);
* :func:`fista` -- projected accelerated gradient (Beck & Teboulle) with a per-query step
  ``1/L``, where ``L >= lambda_max(K)`` is a Collatz--Wielandt upper bound from a few power
  iterations (valid because both NNK kernels have non-negative entries), and gradient-based
  adaptive restart (O'Donoghue & Candes);
* :func:`fista_polish` -- FISTA in float32 to a rough KKT tolerance, then one solve on its
  support plus a KKT check (the active-set method from zero where that fails): exact;
* :func:`kkt_residual` -- ``max_j |min(theta_j, (K theta - b)_j)|``, zero iff the KKT
  conditions hold (``theta >= 0``, gradient ``>= 0``, complementarity).

Duplicated neighbours (kernel value ``>= 1 - dup_tol`` between two candidates; both NNK
kernels have a unit diagonal) make ``K`` singular. :func:`duplicate_groups` maps each candidate
to the first member of its group; the solvers keep the other members at zero, and
:func:`split_duplicates` shares the representative's weight equally among the group (the
minimum-norm optimum; the objective is unchanged).

References
----------
.. [1] C. L. Lawson & R. J. Hanson (1974). Solving Least Squares Problems, ch. 23. Prentice-Hall.
.. [2] R. Bro & S. de Jong (1997). A fast non-negativity-constrained least squares algorithm.
   J. Chemometrics 11, 393-401.
.. [3] A. Beck & M. Teboulle (2009). A fast iterative shrinkage-thresholding algorithm for linear
   inverse problems. SIAM J. Imaging Sci. 2(1), 183-202.
.. [4] B. O'Donoghue & E. Candes (2015). Adaptive restart for accelerated gradient schemes.
   Found. Comput. Math. 15, 715-732.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = [
    "QPResult",
    "active_set",
    "duplicate_groups",
    "fista",
    "fista_polish",
    "kkt_residual",
    "lipschitz_bound",
    "objective",
    "split_duplicates",
]


class QPResult(NamedTuple):
    """Solutions of a batch of problems."""

    theta: np.ndarray  #: (n, k) minimisers, >= 0
    kkt: np.ndarray  #: (n,) KKT natural residual ``max_j |min(theta_j, grad_j)|``
    n_iter: np.ndarray  #: (n,) iterations used (active-set steps or FISTA iterations)
    converged: np.ndarray  #: (n,) bool: KKT residual <= tol


def _mv(K: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.matmul(K, x[..., None])[..., 0]


def objective(K: np.ndarray, b: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """``1/2 theta^T K theta - b^T theta`` per problem, shape (n,)."""
    return 0.5 * np.einsum("nk,nk->n", theta, _mv(K, theta)) - np.einsum("nk,nk->n", b, theta)


def kkt_residual(K: np.ndarray, b: np.ndarray, theta: np.ndarray, allowed: np.ndarray | None = None) -> np.ndarray:
    """KKT natural residual ``max_j |min(theta_j, (K theta - b)_j)|``, shape (n,).

    Variables outside ``allowed`` (merged duplicates, kept at zero) are not counted.
    """
    r = np.abs(np.minimum(theta, _mv(K, theta) - b))
    if allowed is not None:
        r = np.where(allowed, r, 0.0)
    return r.max(axis=1) if r.shape[1] else np.zeros(r.shape[0])


def duplicate_groups(K: np.ndarray, dup_tol: float = 1e-9) -> np.ndarray:
    """Representative of each candidate's duplicate group, shape (n, k) int.

    Candidates ``j`` and ``l`` are duplicates when ``K_jl >= 1 - dup_tol`` (unit-diagonal
    kernels); each is mapped to the smallest index of its group.
    """
    dup = K >= 1.0 - dup_tol
    k = K.shape[-1]
    dup |= np.eye(k, dtype=bool)
    return np.argmax(dup, axis=2)


def split_duplicates(theta: np.ndarray, rep: np.ndarray) -> np.ndarray:
    """Share each representative's weight equally among its duplicate group."""
    n, k = theta.shape
    rows = np.arange(n)[:, None]
    counts = np.zeros((n, k))
    np.add.at(counts, (np.broadcast_to(rows, rep.shape), rep), 1.0)
    return theta[rows, rep] / counts[rows, rep]


def _solve_passive(K: np.ndarray, b: np.ndarray, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``K_PP z_P = b_P`` (``z = 0`` off ``P``) for each row; returns (z, ok)."""
    n, k = P.shape
    z = np.zeros((n, k))
    ok = np.ones(n, dtype=bool)
    sizes = P.sum(axis=1)
    m = int(sizes.max()) if n else 0
    if m == 0:
        return z, ok
    order = np.argsort(~P, axis=1, kind="stable")[:, :m]  # passive indices first
    valid = np.arange(m)[None, :] < sizes[:, None]
    rows = np.arange(n)[:, None, None]
    A = K[rows, order[:, :, None], order[:, None, :]]
    vv = valid[:, :, None] & valid[:, None, :]
    A = np.where(vv, A, 0.0)
    A[:, np.arange(m), np.arange(m)] += ~valid  # identity on the padding
    rhs = np.where(valid, np.take_along_axis(b, order, 1), 0.0)
    try:
        sol = np.linalg.solve(A, rhs[..., None])[..., 0]
    except np.linalg.LinAlgError:
        sol = np.empty_like(rhs)
        for i in range(n):
            try:
                sol[i] = np.linalg.solve(A[i], rhs[i])
            except np.linalg.LinAlgError:
                sol[i] = np.linalg.lstsq(A[i], rhs[i], rcond=None)[0]
                ok[i] = False
    # a (numerically) singular passive system gives a useless solution: flag it
    res = np.abs(np.matmul(A, sol[..., None])[..., 0] - rhs).max(axis=1)
    ok &= np.isfinite(sol).all(axis=1) & (res <= 1e-8 * (1.0 + np.abs(rhs).max(axis=1)))
    sol = np.where(valid, sol, 0.0)
    np.put_along_axis(z, order, sol, axis=1)
    z[~P] = 0.0
    return z, ok


def active_set(
    K: np.ndarray,
    b: np.ndarray,
    *,
    allowed: np.ndarray | None = None,
    theta0: np.ndarray | None = None,
    tol: float = 1e-10,
    max_iter: int | None = None,
) -> QPResult:
    """Exact batched active-set (Lawson--Hanson) solution of ``min_{theta>=0} 1/2 theta'K theta - b'theta``.

    Parameters
    ----------
    K : ndarray of shape (n, k, k)
        Symmetric positive semi-definite matrices.
    b : ndarray of shape (n, k)
    allowed : bool ndarray of shape (n, k), optional
        Variables that may become positive (others stay 0; e.g. merged duplicates).
    theta0 : ndarray of shape (n, k), optional
        Feasible warm start (``>= 0``); its positive entries form the first passive set.
        Default: zero (the classical algorithm, which only ever adds variables whose
        gradient is negative, so the passive columns stay linearly independent).
    tol : float, default 1e-10
        A variable enters the passive set only if its negative gradient exceeds ``tol``;
        the returned KKT residual is at most ``tol`` on convergence.
    max_iter : int, optional
        Steps (each one batched solve), default ``30 * k + 50``.

    Returns
    -------
    QPResult
    """
    n, k = b.shape
    allowed = np.ones((n, k), dtype=bool) if allowed is None else allowed.astype(bool)
    max_iter = 30 * k + 50 if max_iter is None else int(max_iter)
    theta = np.zeros((n, k))
    n_iter = np.zeros(n, dtype=np.int64)
    finished = np.zeros(n, dtype=bool)
    # working rows (compacted when a third of them are done, so K is rarely copied)
    ids = np.arange(n)
    Kw, bw, aw = K, b, allowed
    x = np.zeros((n, k)) if theta0 is None else np.where(allowed, np.maximum(theta0, 0.0), 0.0)
    P = x > 0
    need_add = np.full(n, theta0 is None)  # from a warm start, first solve on its support
    done = np.zeros(n, dtype=bool)
    tabu = np.zeros((n, k), dtype=bool)
    restarted = np.zeros(n, dtype=bool)
    just = np.full(n, -1)
    its = np.zeros(n, dtype=np.int64)

    def flush(mask: np.ndarray) -> None:
        theta[ids[mask]] = x[mask]
        n_iter[ids[mask]] = its[mask]
        finished[ids[mask]] = done[mask]

    for _ in range(max_iter):
        # 1. rows optimal on their passive set: check KKT, add the most violating variable
        add = need_add & ~done
        if add.any():
            w = bw - _mv(Kw, x)
            w[P | tabu | ~aw] = -np.inf
            j = np.argmax(w, axis=1)
            best = w[np.arange(w.shape[0]), j]
            stop = add & ~(best > tol)
            done |= stop
            go = add & ~stop
            P[go, j[go]] = True
            just[go] = j[go]
            need_add[go] = False
        run = ~done
        if not run.any():
            break
        if done.sum() * 3 >= done.size:  # compact
            flush(done)
            ids, Kw, bw, aw = ids[run], Kw[run], bw[run], aw[run]
            x, P, need_add, done, tabu, restarted, just, its = (
                a[run] for a in (x, P, need_add, done, tabu, restarted, just, its))
            run = np.ones(ids.size, dtype=bool)
        its[run] += 1
        # 2. solve every running row on its passive set
        z, ok = _solve_passive(Kw, bw, P & run[:, None])
        bad = run & ~ok
        if bad.any():
            # A singular passive system can only come from a warm-start support holding linearly
            # dependent columns: restart such rows from zero (the classical algorithm keeps the
            # passive columns independent). If it happens again, rounding made the newly added
            # column dependent: treat it as degenerate (below), or stop at the current x.
            fresh = bad & ~restarted
            x[fresh], P[fresh], tabu[fresh], just[fresh] = 0.0, False, False, -1
            need_add[fresh], restarted[fresh] = True, True
            again = bad & ~fresh
            rj = again & (just >= 0)
            P[rj, just[rj]] = False
            tabu[rj, just[rj]] = True
            just[rj], need_add[rj] = -1, True
            done |= again & ~rj
        live = run & ok
        infeasible = live & (P & (z <= 0)).any(axis=1)
        # the variable just added cannot come out <= 0 in exact arithmetic: rounding -> drop it
        has_j = live & (just >= 0)
        zj = z[np.arange(z.shape[0]), np.maximum(just, 0)]
        degenerate = has_j & (zj <= 0)
        if degenerate.any():
            P[degenerate, just[degenerate]] = False
            tabu[degenerate, just[degenerate]] = True
            just[degenerate], need_add[degenerate] = -1, True
        acc = live & ~infeasible & ~degenerate  # feasible: accept z
        x[acc] = z[acc]
        need_add[acc], tabu[acc], just[acc] = True, False, -1
        st = infeasible & ~degenerate  # step towards z until a passive variable hits zero; drop it
        if st.any():
            xs, zs, Ps = x[st], z[st], P[st]
            neg = Ps & (zs <= 0)
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(neg, xs / (xs - zs), np.inf)
            alpha = ratio.min(axis=1, keepdims=True)
            xn = xs + alpha * (zs - xs)
            xn[(neg & (ratio <= alpha * (1 + 1e-12))) | (xn <= 0) | ~Ps] = 0.0
            x[st], P[st], just[st] = xn, Ps & (xn > 0), -1
    flush(np.ones(ids.size, dtype=bool))
    kkt = kkt_residual(K, b, theta, allowed)
    return QPResult(theta, kkt, n_iter, finished & (kkt <= 10 * tol + 1e-12))


def lipschitz_bound(K: np.ndarray, n_power: int = 10) -> np.ndarray:
    """Upper bound ``L >= lambda_max(K)`` per matrix, shape (n,).

    For a matrix with non-negative entries and a positive diagonal, the Collatz--Wielandt
    quotient ``max_j (K v)_j / v_j`` bounds the Perron root from above for any positive
    ``v``; ``v`` comes from ``n_power`` power iterations from the all-ones vector, so the bound
    tightens to ``lambda_max`` quickly. For matrices with negative entries the Gershgorin bound
    ``max_j sum_l |K_jl|`` is used instead.
    """
    n, k = K.shape[:2]
    gersh = np.abs(K).sum(axis=2).max(axis=1)
    if (K >= 0).all() and (np.diagonal(K, axis1=1, axis2=2) > 0).all():
        v = np.ones((n, k))
        for _ in range(n_power):
            v = _mv(K, v)
            v /= v.max(axis=1, keepdims=True)
        Kv = _mv(K, v)
        cw = (Kv / v).max(axis=1)
        return np.minimum(cw * (1 + 1e-12), gersh)
    return gersh


def fista(
    K: np.ndarray,
    b: np.ndarray,
    *,
    allowed: np.ndarray | None = None,
    tol: float = 1e-6,
    max_iter: int = 300,
    check_every: int = 10,
    step: np.ndarray | None = None,
    dtype: type = np.float64,
) -> QPResult:
    """Projected FISTA with step ``1/L`` per query and adaptive restart.

    Parameters
    ----------
    K : ndarray of shape (n, k, k)
    b : ndarray of shape (n, k)
    allowed : bool ndarray of shape (n, k), optional
        Variables that may become positive.
    tol : float, default 1e-6
        A query stops once its KKT residual is at most ``tol`` (checked every
        ``check_every`` iterations).
    max_iter : int, default 300
    step : ndarray of shape (n,), optional
        Step sizes; default ``1 / lipschitz_bound(K)`` (never above ``1/lambda_max``).
    dtype : numpy float type, default float64
        Precision of the iterations (float32 is faster per matrix-vector product and enough
        to find the support before an exact polish; ``benchmarks/nnk.py`` section 3 times both). The returned KKT residuals are
        computed in float64.

    Returns
    -------
    QPResult
    """
    n, k = b.shape
    allowed = np.ones((n, k), dtype=bool) if allowed is None else allowed.astype(bool)
    eta = 1.0 / lipschitz_bound(K) if step is None else np.asarray(step, dtype=np.float64)
    theta = np.zeros((n, k))
    n_iter = np.zeros(n, dtype=np.int64)
    ids = np.arange(n)
    Kw, bw, ew, aw = K.astype(dtype), b.astype(dtype), eta.astype(dtype)[:, None], allowed
    x = np.zeros((n, k), dtype=dtype)
    y = x.copy()
    t = np.ones(n, dtype=dtype)
    it = 0
    while ids.size and it < max_iter:
        for _ in range(min(check_every, max_iter - it)):
            g = _mv(Kw, y) - bw
            xn = np.where(aw, np.maximum(y - ew * g, 0.0), 0.0)
            restart = np.einsum("nk,nk->n", g, xn - x) > 0
            tn = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
            beta = np.where(restart, 0.0, (t - 1.0) / tn)[:, None]
            y = xn + beta * (xn - x)
            t = np.where(restart, 1.0, tn)
            x = xn
            it += 1
        done = kkt_residual(Kw, bw, x, aw) <= tol
        if done.all() or it >= max_iter:
            done[:] = True
        if done.sum() * 5 >= done.size:  # flush finished rows, compact the rest
            theta[ids[done]] = x[done]
            n_iter[ids[done]] = it
            keep = ~done
            ids, Kw, bw, ew, aw, x, y, t = (a[keep] for a in (ids, Kw, bw, ew, aw, x, y, t))
    kkt = kkt_residual(K, b, theta, allowed)
    return QPResult(theta, kkt, n_iter, kkt <= tol)


def fista_polish(
    K: np.ndarray,
    b: np.ndarray,
    *,
    allowed: np.ndarray | None = None,
    tol: float = 1e-10,
    max_iter: int = 300,
    rough_tol: float = 1e-3,
) -> QPResult:
    """FISTA (float32) to a rough KKT tolerance, then an exact polish.

    The polish solves ``K_FF theta_F = b_F`` on FISTA's support ``F`` (one batched solve) and
    checks the KKT conditions. Queries where that fails -- a wrong support, or a singular
    ``K_FF`` because the support holds linearly dependent neighbours (rank-deficient kernels,
    where FISTA converges to a dense point of a non-unique optimal face) -- are re-solved by
    :func:`active_set` from zero, which is exact and returns a sparse (vertex) solution.

    ``n_iter`` counts FISTA iterations plus polish steps.
    """
    n, k = b.shape
    allowed = np.ones((n, k), dtype=bool) if allowed is None else allowed.astype(bool)
    rough = fista(K, b, allowed=allowed, tol=rough_tol, max_iter=max_iter, dtype=np.float32)
    P = rough.theta > 0
    z, ok = _solve_passive(K, b, P)
    z = np.where(P, z, 0.0)
    kkt = kkt_residual(K, b, np.maximum(z, 0.0), allowed)
    good = ok & ~(P & (z <= 0)).any(axis=1) & (kkt <= tol)
    theta = np.where(good[:, None], z, 0.0)
    n_iter = rough.n_iter + 1
    converged = good.copy()
    bad = np.flatnonzero(~good)
    if bad.size:
        exact = active_set(K[bad], b[bad], allowed=allowed[bad], tol=tol)
        theta[bad], converged[bad] = exact.theta, exact.converged
        n_iter[bad] += exact.n_iter
    return QPResult(theta, kkt_residual(K, b, theta, allowed), n_iter, converged)
