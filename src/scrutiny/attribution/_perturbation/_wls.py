"""One batched weighted least-squares solve for every (input, output) pair.

The surrogate of input ``i`` and output ``k`` solves::

    min_{b0, beta}  sum_r w_r (y_{irk} - b0 - z_r' beta)^2 + alpha ||beta||^2
    [subject to 1' beta = delta_{ik}, without intercept: KernelSHAP's efficiency constraint]

When the design ``Z`` and the weights are shared by all inputs (common random numbers), the
Gram matrix ``G = Zc' W Zc + alpha I`` is the same for every pair: it is factorised once
(Cholesky) and all ``n_inputs * n_outputs`` right-hand sides are solved together. Designs
that depend on the input (discretised tabular LIME) use one batched solve over the stack of
per-input Gram matrices.

Standard errors (for the explained output only) use the sandwich (heteroscedasticity-
consistent, HC1) covariance ``B (sum_u s_u s_u') B`` with ``B = G^-1`` (or the constrained
projection ``J = G^-1 - G^-1 1 1' G^-1 / (1' G^-1 1)``, Covert & Lee 2021) and ``s_u`` the
summed scores ``w_r r_r z_r`` of each sampling unit (a row, or an antithetic / complementary
pair). Deterministic rows (enumerated coalitions) form no unit and add no variance.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np

from ...exceptions import ScrutinyWarning
from . import external_stacklevel


class WLSResult(NamedTuple):
    """Per input ``i`` (a inputs), ``M`` coefficients and ``K`` outputs."""

    coef: np.ndarray  # (a, M, K)
    intercept: np.ndarray  # (a, K); zeros without intercept
    stderr: np.ndarray  # (a, M), for the target output
    score: np.ndarray  # (a,), weighted R^2 of the target output's surrogate (NaN without intercept)


def _warn_singular(owner: str) -> None:
    warnings.warn(
        f"{owner}: the perturbation design is rank-deficient (some interpretable feature never "
        "changes across the samples, or n_samples is too small); using the minimum-norm solution. "
        "Increase n_samples.",
        ScrutinyWarning,
        stacklevel=external_stacklevel(),
    )


def _inverse(G: np.ndarray, owner: str) -> np.ndarray:
    """``G^-1`` from one Cholesky factorisation ``G = L L'``.

    ``G^-1 = L^-T L^-1`` is formed once and every right-hand side is a matrix product: the
    triangular solves of scipy's bundled OpenBLAS are far slower than a GEMM for small
    systems with many right-hand sides (the LIME and KernelSHAP timings of
    benchmarks/local_attribution.py back this). A singular or numerically
    singular ``G`` falls back to the pseudo-inverse with a warning.
    """
    M = G.shape[0]
    if M == 0:
        return np.zeros((0, 0))
    scale = max(float(np.trace(G)) / M, np.finfo(float).tiny)
    try:
        L = np.linalg.cholesky(G)
        if np.min(np.diag(L)) ** 2 < 1e-13 * scale:  # tiny pivots: numerically singular
            raise np.linalg.LinAlgError("ill-conditioned")
        Linv = np.linalg.inv(L)
        Ginv = Linv.T @ Linv
    except np.linalg.LinAlgError:
        _warn_singular(owner)
        Ginv = np.linalg.pinv(G, rcond=1e-10, hermitian=True)
    return Ginv


def _stderr(Zw: np.ndarray, resid: np.ndarray, units: np.ndarray, B: np.ndarray, n_params: int) -> np.ndarray:
    """Sandwich standard errors ``sqrt(diag(B C B))`` for every input.

    ``C = U/(U - p) * sum_u (s_u - s_bar)(s_u - s_bar)'`` with ``s_u`` the summed scores
    ``w_r r_r z_r`` of unit ``u`` (units are contiguous runs of rows; -1 rows are
    deterministic and dropped). ``Zw`` is (m, M) or (a, m, M), ``resid`` (a, m), ``B`` (M, M)
    or (a, M, M).

    Only the diagonal is needed: with ``A = Zw B`` (one product for a shared design),
    ``diag(B S' S B) = sum_u (sum_{r in u} r_r A_r)^2`` expands, for units of ``L`` rows, into
    ``L^2`` matrix products ``(r_l r_l') @ (A_l * A_l')``, and the centring term is
    ``(r @ A)^2 / U``: no (inputs, samples, features) temporary.
    """
    a, m = resid.shape
    M = Zw.shape[-1]
    keep = np.flatnonzero(units >= 0)
    out = np.zeros((a, M))
    if keep.size < 2 or M == 0:
        return out
    u = units[keep]
    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]])
    U = starts.size
    if U < 2:
        return out
    lengths = np.diff(np.r_[starts, u.size])
    factor = U / max(U - n_params, 1)
    if B.ndim == 2:
        A = Zw @ B  # (m, M), shared
        prod = lambda r, Am: np.stack([ri @ Am for ri in r])  # noqa: E731  (per input, see _solve_shared)
        take = lambda sel: A[sel]  # noqa: E731
    else:
        A = np.stack([Zw[i] @ B[i] for i in range(a)])  # (a, m, M); 2-D products beat a stacked matmul
        prod = lambda r, Am: np.matmul(r[:, None, :], Am)[:, 0, :]  # noqa: E731
        take = lambda sel: A[:, sel]  # noqa: E731
    # row selectors of the l-th row of every unit, grouped by unit length: strided views when
    # the units are regular runs over a contiguous block of rows (the usual case), else indices
    if keep[-1] - keep[0] + 1 == keep.size and (lengths == lengths[0]).all():
        L, k0 = int(lengths[0]), int(keep[0])
        groups = [[slice(k0 + l, m, L) for l in range(L)]]
        everything = slice(k0, m)
    else:
        groups = []
        for L in np.unique(lengths):
            first = np.searchsorted(keep, keep[starts[lengths == L]])
            groups.append([keep[first + l] for l in range(int(L))])
        everything = keep
    sumsq = np.zeros((a, M))
    for rows in groups:
        for l1, r1 in enumerate(rows):
            for l2, r2 in enumerate(rows):
                if l2 < l1:
                    continue
                term = prod(resid[:, r1] * resid[:, r2], take(r1) * take(r2))
                sumsq += term if l1 == l2 else 2.0 * term
    mean = prod(resid[:, everything], take(everything))
    var = (sumsq - mean**2 / U) * factor
    return np.sqrt(np.maximum(var, 0.0))


def solve_wls(
    Z: np.ndarray,
    w: np.ndarray,
    Y: np.ndarray,
    target: np.ndarray,
    *,
    alpha: float = 0.0,
    intercept: bool = True,
    delta: np.ndarray | None = None,
    units: np.ndarray | None = None,
    owner: str = "surrogate",
) -> WLSResult:
    """Solve the weighted (ridge / constrained) least-squares surrogates.

    Parameters
    ----------
    Z : array of shape (m, M) (shared design) or (a, m, M) (one design per input)
    w : array of shape (m,) or (a, m)
        Sample weights (proximity kernel).
    Y : array of shape (a, m, K)
        Responses of the ``a`` inputs for every output.
    target : int array of shape (a,)
        Output whose standard errors and R^2 are reported.
    alpha : float
        Ridge penalty (the intercept is not penalised).
    intercept : bool
        Fit an intercept (by weighted centring).
    delta : array of shape (a, K), optional
        Efficiency constraint ``sum_j beta_j = delta`` (requires ``intercept=False``).
    units : int array of shape (m,), optional
        Sampling unit of each row for the standard errors (contiguous runs; -1 =
        deterministic). Default: every row its own unit.

    Returns
    -------
    WLSResult
    """
    if Z.ndim == 2 and w.ndim == 1:
        return _solve_shared(Z, w, Y, target, alpha, intercept, delta, units, owner)
    a = Y.shape[0]
    Zs = np.broadcast_to(Z, (a,) + Z.shape[-2:]) if Z.ndim == 2 else Z
    ws = np.broadcast_to(w, (a, w.shape[-1])) if w.ndim == 1 else w
    return _solve_stacked(Zs, ws, Y, target, alpha, intercept, delta, units, owner)


def _solve_shared(Z, w, Y, target, alpha, intercept, delta, units, owner) -> WLSResult:
    a, m, K = Y.shape
    M = Z.shape[1]
    units = np.arange(m) if units is None else units
    sw = w.sum()
    if intercept:
        zbar = (w @ Z) / sw
        Zc = Z - zbar
        ybar = np.einsum("m,amk->ak", w, Y) / sw
    else:
        zbar = np.zeros(M)
        Zc = Z
        ybar = np.zeros((a, K))
    Zw = Zc * w[:, None]
    G = Zc.T @ Zw
    if alpha:
        G[np.diag_indices(M)] += alpha
    Ginv = _inverse(G, owner)
    # one product per input, not one (M, a K) product for all: a GEMM's last bits depend on its
    # width, and a row's result must not depend on the rows explained with it (the distributed
    # backends split rows into chunks and promise bit-identical results: tests/test_distributed.py)
    beta = np.concatenate([Ginv @ (Zw.T @ Y[i]) for i in range(a)], axis=1)  # (M, a K)
    B = Ginv
    if delta is not None:
        v = Ginv.sum(axis=1)  # G^-1 1
        c = float(v.sum())
        lam = (beta.sum(axis=0) - np.asarray(delta, dtype=np.float64).reshape(a * K)) / c
        beta = beta - np.outer(v, lam)
        B = Ginv - np.outer(v, v) / c
    coef = beta.reshape(M, a, K).transpose(1, 0, 2)
    icpt = ybar - np.einsum("m,amk->ak", zbar, coef) if intercept else np.zeros((a, K))

    rows = np.arange(a)
    yt = Y[rows, :, target]  # (a, m)
    ct = coef[rows, :, target]  # (a, M)
    yt_bar = ybar[rows, target]
    resid = yt - yt_bar[:, None] - np.stack([Zc @ c for c in ct])  # (a, m), per input (see above)
    n_params = M + int(intercept) - int(delta is not None)
    stderr = _stderr(Zw, resid, units, B, n_params)
    score = _r2(w, yt, yt_bar, resid) if intercept else np.full(a, np.nan)
    return WLSResult(coef, icpt, stderr, score)


def _solve_stacked(Z, w, Y, target, alpha, intercept, delta, units, owner) -> WLSResult:
    a, m, K = Y.shape
    M = Z.shape[2]
    units = np.arange(m) if units is None else units
    sw = w.sum(axis=1)
    if intercept:
        zbar = np.matmul(w[:, None, :], Z)[:, 0, :] / sw[:, None]
        Zc = Z - zbar[:, None, :]
        ybar = np.matmul(w[:, None, :], Y)[:, 0, :] / sw[:, None]
    else:
        zbar = np.zeros((a, M))
        Zc = Z
        ybar = np.zeros((a, K))
    Zw = Zc * w[:, :, None]
    G = np.stack([Zc[i].T @ Zw[i] for i in range(a)])
    if alpha:
        G = G + alpha * np.eye(M)
    rhs = np.stack([Zw[i].T @ Y[i] for i in range(a)])  # (a, M, K)
    Ginv = _stacked_inverse(G, owner)
    coef = np.matmul(Ginv, rhs)
    if delta is not None:
        v = Ginv.sum(axis=2)  # G^-1 1
        c = v.sum(axis=1)
        lam = (coef.sum(axis=1) - delta) / c[:, None]  # (a, K)
        coef = coef - v[:, :, None] * lam[:, None, :]
        J = Ginv - np.einsum("ai,aj->aij", v, v) / c[:, None, None]
    else:
        J = Ginv
    icpt = ybar - np.einsum("aj,ajk->ak", zbar, coef) if intercept else np.zeros((a, K))
    rows = np.arange(a)
    yt = Y[rows, :, target]
    ct = coef[rows, :, target]
    yt_bar = ybar[rows, target]
    resid = yt - yt_bar[:, None] - np.matmul(Zc, ct[:, :, None])[:, :, 0]
    n_params = M + int(intercept) - int(delta is not None)
    stderr = _stderr(Zw, resid, units, J, n_params)
    score = _r2(w, yt, yt_bar, resid) if intercept else np.full(a, np.nan)
    return WLSResult(coef, icpt, stderr, score)


def _stacked_inverse(G: np.ndarray, owner: str) -> np.ndarray:
    """``G_i^-1`` for a stack of Gram matrices, through batched Cholesky factorisations; the
    singular or numerically singular ones fall back to the pseudo-inverse (with a warning)."""
    a, M = G.shape[:2]
    if M == 0:
        return np.zeros_like(G)
    scale = np.maximum(np.trace(G, axis1=1, axis2=2) / M, np.finfo(float).tiny)
    Ginv = np.empty_like(G)
    try:
        L = np.linalg.cholesky(G)
        bad = np.min(np.diagonal(L, axis1=1, axis2=2), axis=1) ** 2 < 1e-13 * scale
    except np.linalg.LinAlgError:
        L, bad = None, np.ones(a, dtype=bool)
    good = ~bad
    if good.any():
        Linv = np.linalg.inv(L[good])
        Ginv[good] = np.matmul(Linv.transpose(0, 2, 1), Linv)
    if bad.any():
        _warn_singular(owner)
        Ginv[bad] = np.linalg.pinv(G[bad], rcond=1e-10, hermitian=True)
    return Ginv


def _r2(w: np.ndarray, yt: np.ndarray, yt_bar: np.ndarray, resid: np.ndarray) -> np.ndarray:
    """Weighted R^2 of the target surrogate (lime's ``score``); 1 when y is constant."""
    w = np.broadcast_to(w, resid.shape)
    sse = np.einsum("am,am->a", w, resid**2)
    sst = np.einsum("am,am->a", w, (yt - yt_bar[:, None]) ** 2)
    # a constant output leaves round-off in sst (the weighted mean is not exact), and R^2 of
    # round-off is arbitrary (strongly negative): below 1e-10 of the output's scale y counts as constant
    scale = 1e-10 * np.maximum(1.0, np.abs(yt).max(axis=1))
    flat = sst <= scale**2 * w.sum(axis=1)
    if flat.any():
        warnings.warn(
            f"the explained output does not vary over the perturbed samples of input(s) "
            f"{np.flatnonzero(flat)[:5].tolist()} (a constant model there): the attributions are 0 and the "
            "surrogate's score is 1 by convention. Check the target and space (a saturated probability is "
            "constant; space='log_odds' may still vary).",
            ScrutinyWarning, stacklevel=external_stacklevel(),
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = 1.0 - sse / sst
    return np.where(flat, 1.0, r2)
