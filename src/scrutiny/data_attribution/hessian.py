"""Hessian linear algebra for training-data attribution: explicit solves, block CG, LiSSA.

Everything here is plain numpy/scipy and works on any symmetric matrix ``H`` given either
explicitly or through its products ``matvec(V) = H @ V`` (``V`` of shape ``(p, k)``: many
right-hand sides at once). The torch side -- per-sample gradients, Hessian-vector products,
closed-form GLM Hessians -- lives in :mod:`scrutiny.data_attribution.objective`.

Conventions
-----------
``H`` is the Hessian of the *training objective* ``R(theta) = (1/n) sum_i L_i(theta) +
(l2/2) ||theta||^2``, the L2 term included. ``damping`` is always a **true Tikhonov term**:
every solver returns ``(H + damping * I)^{-1} B``, whatever the solver.

The solver strategies used by :class:`~scrutiny.data_attribution.InfluenceFunctions`
(:class:`ExactSolver`, :class:`CGSolver`, :class:`LiSSASolver`) live in
:mod:`scrutiny.data_attribution.solvers`.

LiSSA (Agarwal et al. 2017) is written with that same damping and an explicit ``scale``::

    h_0 = v,    h_j = v + h_{j-1} - (H_j + damping * I) h_{j-1} / scale,    estimate = h_T / scale

where ``H_j`` is the Hessian of the objective on a random mini-batch (mean loss on the batch
plus the L2 term). Its fixed point is ``scale * (H + damping I)^{-1} v``. The recursion
contracts only if ``scale >= lambda_max(H_j + damping I) / 2`` for *every* sampled batch; with
``scale >= lambda_max`` every iterate obeys ``||h_j|| <= (j + 1) ||v||``, which is how
divergence is detected. By default the estimate averages the iterates over the second half
of the recursion (``tail_average=0.5``), which removes most of the variance of a single
iterate; ``tail_average=0`` gives the classical ``h_T / scale``. Other libraries (influence-release, nimarb, dattri, pyDVL) write the
recursion as ``h_j = v + (1 - d) h_{j-1} - H_j h_{j-1} / s``: their ``d`` corresponds to our
``damping = d * s`` (see :func:`lissa_damping_from_reference`).

References
----------
.. [1] Koh, P. W. & Liang, P. (2017). Understanding black-box predictions via influence
   functions. ICML.
.. [2] Agarwal, N., Bullins, B. & Hazan, E. (2017). Second-order stochastic optimization for
   machine learning in linear time. JMLR 18(116).
.. [3] Ji, H. & Li, Y. (2017). A breakdown-free block conjugate gradient method. BIT 57.
.. [4] Basu, S., Pope, P. & Feizi, S. (2021). Influence functions in deep learning are
   fragile. ICLR.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg

from .._validation import Interval, validate_params
from ..exceptions import ConvergenceWarning, InvalidParameterError

__all__ = [
    "Factorization",
    "IndefiniteHessianError",
    "LiSSADivergenceError",
    "NotAtOptimumError",
    "block_cg",
    "factorize",
    "lanczos_extremes",
    "lissa",
    "lissa_damping_from_reference",
    "power_iteration",
]

Matvec = Callable[[np.ndarray], np.ndarray]


# --------------------------------------------------------------------------- errors


class IndefiniteHessianError(InvalidParameterError):
    """``H + damping * I`` is not positive definite (a saddle point, or a non-convex model)."""


class NotAtOptimumError(InvalidParameterError):
    """The model's parameters are not a stationary point of the training objective."""


class LiSSADivergenceError(InvalidParameterError):
    """The LiSSA recursion diverged: ``scale`` is below the curvature of some mini-batch."""


def _damping_advice(lam_min: float, damping: float) -> float:
    """A damping that makes ``H + damping I`` comfortably positive definite (``lam_min``: of ``H``)."""
    need = max(-lam_min, 0.0)
    return float(f"{max(1.1 * need, 1e-8):.2g}") if need > 0 else max(1e-3, 10 * damping)


# --------------------------------------------------------------------------- explicit


@dataclass
class Factorization:
    """A Cholesky factorisation of ``H + damping * I`` with the extremes of the spectrum of ``H``.

    Attributes
    ----------
    cho : tuple
        ``scipy.linalg.cho_factor`` output (lower triangular).
    damping : float
    min_eigenvalue, max_eigenvalue : float
        Smallest and largest eigenvalue of ``H`` (undamped).
    eigenvalues : ndarray of shape (p,) or None
        The whole spectrum of ``H``, ascending, when asked for (``factorize(..., spectrum=True)``).
    """

    cho: Any
    damping: float
    min_eigenvalue: float
    max_eigenvalue: float
    eigenvalues: np.ndarray | None = None

    def solve(self, B: np.ndarray) -> np.ndarray:
        """``(H + damping I)^{-1} B`` for ``B`` of shape (p,) or (p, k)."""
        return scipy.linalg.cho_solve(self.cho, B, check_finite=False)

    def whiten(self, B: np.ndarray) -> np.ndarray:
        """``L^{-1} B`` where ``H + damping I = L L^T``; ``||L^{-1} b||^2 = b^T (H+dI)^{-1} b``."""
        c, lower = self.cho
        return scipy.linalg.solve_triangular(c, B, lower=lower, trans=0 if lower else 1, check_finite=False)


def _indefinite(lam_min: float, lam_max: float, damping: float) -> IndefiniteHessianError:
    return IndefiniteHessianError(
        f"The Hessian plus damping is not positive definite: smallest eigenvalue of H is "
        f"{lam_min:.3g} (largest {lam_max:.3g}) and damping={damping:g}, so H + damping*I has "
        f"eigenvalue {lam_min + damping:.3g}. Influence functions need a strict minimum. Fix: pass "
        f"damping>={_damping_advice(lam_min, damping):g} (a true Tikhonov term), increase l2 if the "
        "model was trained with weight decay, restrict params='last', or train the model closer to "
        "a minimum."
    )


def factorize(H: np.ndarray, damping: float = 0.0, *, rtol: float = 1e-10, spectrum: bool = False) -> Factorization:
    """Cholesky-factorise ``H + damping * I`` after checking that it is positive definite.

    The Cholesky factorisation itself is the positive-definiteness test (``p^3/3`` flops, a
    quarter of a symmetric eigendecomposition). The extreme eigenvalues then come from Lanczos
    (``lanczos_extremes``) on ``H`` and, shift-and-invert, on ``(H + damping I)^{-1}`` through
    the factor, stopped when an eigenvalue provably lies within 1e-6 (relative) of each estimate:
    the smallest is that accurate when it is separated from the next by a few percent, and
    otherwise lies within its cluster (``spectrum=True`` gives the exact spectrum). If the factorisation
    fails, the full spectrum is computed for the error message.

    Parameters
    ----------
    H : ndarray of shape (p, p)
        Symmetric Hessian (symmetrised here: ``(H + H^T) / 2``).
    damping : float, default 0
        Tikhonov term added to the diagonal.
    rtol : float, default 1e-10
        ``H + damping I`` counts as singular if its smallest eigenvalue is below
        ``rtol * max(|eigenvalues|)``.
    spectrum : bool, default False
        Also compute every eigenvalue of ``H`` (``eigvalsh``, ``4p^3/3`` flops).

    Returns
    -------
    Factorization

    Raises
    ------
    IndefiniteHessianError
        If ``H + damping I`` has a non-positive (or numerically zero) eigenvalue; the
        message gives the smallest eigenvalue and a damping that fixes it.
    """
    H = np.asarray(H, dtype=np.float64)
    if H.ndim != 2 or H.shape[0] != H.shape[1]:
        raise InvalidParameterError(f"H must be a square matrix; got shape {H.shape}.")
    if not np.isfinite(H).all():
        raise InvalidParameterError("H contains NaN or inf; check the model and the loss for overflow.")
    H = H + H.T  # symmetrised; no p x p temporaries beyond H and A (large Hessians are GBs)
    H *= 0.5
    p = H.shape[0]
    A = H.copy()
    A[np.diag_indices(p)] += damping
    try:
        cho = scipy.linalg.cho_factor(A, lower=True, overwrite_a=True, check_finite=False)
    except np.linalg.LinAlgError:
        eig = scipy.linalg.eigvalsh(H, check_finite=False)
        raise _indefinite(float(eig[0]), float(eig[-1]), damping) from None
    eig = None
    if spectrum:
        eig = scipy.linalg.eigvalsh(H, check_finite=False)
        lam_min, lam_max = float(eig[0]), float(eig[-1])
    else:
        steps = min(p, 60)
        lam_max = lanczos_extremes(lambda V: H @ V, p, steps=steps, tol=1e-6)[1]
        mu = lanczos_extremes(lambda V: scipy.linalg.cho_solve(cho, V, check_finite=False), p, steps=steps,
                              tol=1e-6)[1]
        lam_min = 1.0 / mu - damping
    scale = max(abs(lam_min), abs(lam_max)) or 1.0
    if lam_min + damping <= rtol * scale:
        raise _indefinite(lam_min, lam_max, damping)
    return Factorization(cho=cho, damping=float(damping), min_eigenvalue=lam_min, max_eigenvalue=lam_max,
                         eigenvalues=eig)


# --------------------------------------------------------------------------- block CG


def _orth(Z: np.ndarray, rtol: float = 1e-10) -> np.ndarray:
    """Orthonormal basis of range(Z), dropping directions below ``rtol * sigma_max``."""
    if Z.shape[1] == 0:
        return Z
    U, s, _ = np.linalg.svd(Z, full_matrices=False)
    if s.size == 0 or s[0] == 0:
        return Z[:, :0]
    keep = s > rtol * s[0]
    return U[:, keep]


def block_cg(
    matvec: Matvec,
    B: np.ndarray,
    *,
    damping: float = 0.0,
    rtol: float = 1e-6,
    maxiter: int = 1000,
    x0: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Solve ``(H + damping I) X = B`` for many right-hand sides with breakdown-free block CG.

    All columns share one block Krylov space, so one ``matvec`` per iteration (a GEMM-like
    Hessian product over the whole block) serves every right-hand side, and the number of
    iterations falls as the number of columns grows. Dependent search directions are
    dropped by a rank-revealing orthonormalisation (Ji & Li 2017), so the iteration never
    breaks down when columns converge or coincide.

    Parameters
    ----------
    matvec : callable
        ``matvec(V) -> H @ V`` for ``V`` of shape (p, r) (undamped ``H``).
    B : ndarray of shape (p,) or (p, k)
        Right-hand sides.
    damping : float, default 0
        Tikhonov term; the operator is ``H + damping I``.
    rtol : float, default 1e-6
        Stop when every column's residual ``||b_j - (H + dI) x_j|| <= rtol * ||b_j||``.
    maxiter : int, default 1000
        Maximum number of block iterations.
    x0 : ndarray like B, optional
        Starting point (default zeros).

    Returns
    -------
    X : ndarray like B
    info : dict
        ``iterations``, ``matvecs`` (columns multiplied in total), ``residuals`` (relative
        residual of each column, recomputed from scratch at the end: shape (k,)),
        ``converged`` (bool), ``min_curvature`` (smallest Rayleigh quotient of ``H + dI``
        seen: an upper bound on its smallest eigenvalue).

    Raises
    ------
    IndefiniteHessianError
        If a search direction has non-positive curvature ``p^T (H + dI) p <= 0``.

    Warns
    -----
    ConvergenceWarning
        If ``maxiter`` is reached before ``rtol``.
    """
    validate_params("block_cg", {"rtol": rtol, "maxiter": maxiter, "damping": damping},
                    {"rtol": [Interval(float, 0, None, closed="neither")],
                     "maxiter": [Interval(int, 1, None)], "damping": [Interval(float, None, None)]})
    B = np.asarray(B, dtype=np.float64)
    vector = B.ndim == 1
    B2 = B[:, None] if vector else B
    p, k = B2.shape
    norms = np.linalg.norm(B2, axis=0)
    nz = norms > 0
    X = np.zeros_like(B2) if x0 is None else np.array(x0, dtype=np.float64).reshape(p, k)

    def op(V: np.ndarray) -> np.ndarray:
        out = np.asarray(matvec(V), dtype=np.float64)
        return out + damping * V if damping else out

    info: dict[str, Any] = {"iterations": 0, "matvecs": 0, "converged": True, "min_curvature": np.inf}
    if not nz.any():
        info["residuals"] = np.zeros(k)
        return (X[:, 0] if vector else X), info
    # work on unit-norm columns so that the rank test treats all right-hand sides alike
    Bs = B2[:, nz] / norms[nz]
    Xs = X[:, nz] / norms[nz]
    R = Bs - op(Xs) if x0 is not None else Bs.copy()
    info["matvecs"] += k if x0 is not None else 0
    P = _orth(R)
    it = 0
    converged = bool((np.linalg.norm(R, axis=0) <= rtol).all())
    while not converged and it < maxiter and P.shape[1] > 0:
        it += 1
        Q = op(P)
        info["matvecs"] += P.shape[1]
        PtQ = P.T @ Q
        PtQ = 0.5 * (PtQ + PtQ.T)
        curv = float(np.linalg.eigvalsh(PtQ)[0])
        info["min_curvature"] = min(info["min_curvature"], curv)
        if curv <= 0:
            raise IndefiniteHessianError(
                f"Conjugate gradients met a direction of non-positive curvature (p^T (H + damping*I) p = "
                f"{curv:.3g} with damping={damping:g}): the Hessian is indefinite, so H^-1 g is not an "
                f"influence. Fix: pass damping>={_damping_advice(curv - damping, damping):g} or larger "
                "(the smallest eigenvalue may be lower still), restrict params='last', or train the model "
                "closer to a minimum."
            )
        C = scipy.linalg.cho_factor(PtQ, check_finite=False)
        alpha = scipy.linalg.cho_solve(C, P.T @ R, check_finite=False)
        Xs += P @ alpha
        R -= Q @ alpha
        if (np.linalg.norm(R, axis=0) <= rtol).all():
            converged = True
            break
        beta = -scipy.linalg.cho_solve(C, Q.T @ R, check_finite=False)
        P = _orth(R + P @ beta)
    # honest residuals: recompute from scratch
    true_R = Bs - op(Xs)
    info["matvecs"] += Xs.shape[1]
    res = np.zeros(k)
    res[nz] = np.linalg.norm(true_R, axis=0)
    X[:, nz] = Xs * norms[nz]
    info["iterations"] = it
    info["residuals"] = res
    info["converged"] = bool((res <= max(10 * rtol, 1e-12)).all())
    if not info["converged"]:
        warnings.warn(
            f"block CG stopped after {it} iterations with a largest relative residual of {res.max():.2e} "
            f"(rtol={rtol:g}). Increase maxiter, loosen rtol, or add damping to improve the conditioning.",
            ConvergenceWarning, stacklevel=2,
        )
    return (X[:, 0] if vector else X), info


# --------------------------------------------------------------------------- LiSSA


def lissa_damping_from_reference(d: float, scale: float) -> float:
    """Our Tikhonov ``damping`` equivalent to the ``(1 - d)`` LiSSA recursion of influence-release,
    nimarb, dattri and pyDVL with scale ``scale``: ``damping = d * scale``."""
    return float(d) * float(scale)


def power_iteration(matvec: Matvec, p: int, *, n_iter: int = 30, rng: np.random.Generator | None = None) -> float:
    """Largest eigenvalue (in magnitude) of a symmetric operator by power iteration.

    Parameters
    ----------
    matvec : callable
        ``matvec(V) -> H @ V`` for ``V`` of shape (p, 1).
    p : int
        Dimension.
    n_iter : int, default 30
    rng : numpy Generator, optional
        Start vector source (default ``default_rng(0)``).

    Returns
    -------
    float
        The Rayleigh quotient after ``n_iter`` iterations (a lower bound on ``|lambda|_max``).
    """
    rng = np.random.default_rng(0) if rng is None else rng
    v = rng.standard_normal((p, 1))
    v /= np.linalg.norm(v)
    lam = 0.0
    for _ in range(int(n_iter)):
        w = np.asarray(matvec(v), dtype=np.float64)
        lam = float((v * w).sum())
        nrm = np.linalg.norm(w)
        if nrm == 0 or not np.isfinite(nrm):
            break
        v = w / nrm
    return lam


def lissa(
    batch_matvec: Callable[[np.ndarray, np.ndarray], np.ndarray],
    B: np.ndarray,
    n: int,
    *,
    scale: float,
    damping: float = 0.0,
    depth: int = 1000,
    repeat: int = 1,
    minibatch_size: int = 64,
    rng: np.random.Generator,
    tail_average: float = 0.5,
    check_every: int = 1,
    batch_size: int | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Stochastic Neumann-series estimate of ``(H + damping I)^{-1} B`` (LiSSA).

    Runs ``h <- B + h - (H_batch + damping I) h / scale`` for ``depth`` steps from ``h = B``
    and returns ``h / scale``, averaged over the last ``tail_average`` fraction of the steps
    and over ``repeat`` independent runs. Every column uses the same sampled mini-batches, so
    each column's estimate does not depend on the others.

    Tail averaging: since the sampled ``H_batch`` is independent of ``h``, the *expected*
    iterate follows the deterministic recursion and converges to ``scale (H + dI)^{-1} v``,
    while a single iterate keeps a variance floor that more depth does not remove. Averaging
    the iterates after a burn-in (Polyak-Ruppert style) removes most of that variance at no
    extra cost, so it is on by default (``benchmarks/data_attribution.py`` prints LiSSA's error
    against the exact solver; ``tests/test_hessian.py`` checks it). ``tail_average=0`` gives the classical
    estimate (the last iterate); the burn-in must then still be long enough for the bias
    ``(1 - lambda_min/scale)^(depth (1 - tail_average))`` to vanish.

    Parameters
    ----------
    batch_matvec : callable
        ``batch_matvec(V, indices) -> H_batch @ V``, the Hessian of the objective on the
        training points ``indices`` (mean loss on the batch plus the L2 term), undamped.
    B : ndarray of shape (p,) or (p, k)
    n : int
        Number of training points to sample from.
    scale : float
        Must exceed ``lambda_max(H_batch + damping I) / 2`` for every batch (use
        ``>= lambda_max``); the error then contracts like ``(1 - lambda_min / scale)^depth``.
    damping : float, default 0
        True Tikhonov term.
    depth, repeat, minibatch_size : int
        Recursion depth, number of independent runs averaged, mini-batch size (sampled
        without replacement; mini-batches, not single examples, are what keep the variance
        manageable). The mini-batch changes the estimate: it is not memory chunking.
    rng : numpy.random.Generator
    tail_average : float in [0, 1), default 0.5
        Fraction of the final iterates averaged (0: the last iterate only).
    check_every : int, default 1
        How often the divergence test runs.
    batch_size : int, optional
        Deprecated name of ``minibatch_size`` (kept for one release, with a DeprecationWarning).

    Returns
    -------
    X : ndarray like B
    info : dict
        ``scale``, ``depth``, ``repeat``, ``minibatch_size``, ``last_step`` (relative size of the
        last update per column: a convergence indicator; it does not reach 0 because of
        the mini-batch noise).

    Raises
    ------
    LiSSADivergenceError
        If an iterate becomes non-finite or exceeds ``2 (j + 1) ||b||``, a bound that holds
        whenever ``scale`` is large enough; the message suggests a larger ``scale``.
    """
    B = np.asarray(B, dtype=np.float64)
    vector = B.ndim == 1
    V = B[:, None] if vector else B
    bnorm = np.linalg.norm(V, axis=0)
    if batch_size is not None:
        warnings.warn("lissa(batch_size=...) is deprecated and will be removed in the next release; use "
                      "lissa(minibatch_size=...) (the sampled mini-batch changes the result).",
                      DeprecationWarning, stacklevel=2)
        minibatch_size = batch_size
    minibatch_size = int(min(minibatch_size, n))
    if not 0 <= tail_average < 1:
        raise InvalidParameterError(f"tail_average must lie in [0, 1); got {tail_average!r}. 0.5 is typical.")
    first_avg = int(depth) - max(1, round(tail_average * int(depth))) + 1
    total = np.zeros_like(V)
    last_step = np.zeros(V.shape[1])
    for r in range(int(repeat)):
        h = V.copy()
        acc = np.zeros_like(V)
        for j in range(1, int(depth) + 1):
            idx = rng.choice(n, size=minibatch_size, replace=False)
            Hh = np.asarray(batch_matvec(h, idx), dtype=np.float64)
            if damping:
                Hh = Hh + damping * h
            new = V + h - Hh / scale
            if j % check_every == 0 or j == depth:
                hn = np.linalg.norm(new, axis=0)
                bad = ~np.isfinite(hn) | (hn > 2.0 * (j + 1) * bnorm * (1 + 1e-8) + 1e-300)
                if bad.any():
                    raise LiSSADivergenceError(
                        f"LiSSA diverged at step {j} of run {r + 1}: the iterate norm {hn[bad][0]:.3g} exceeds "
                        f"2*(j+1)*||v|| = {2 * (j + 1) * bnorm[bad][0]:.3g}, which can only happen when "
                        f"scale={scale:g} is below the curvature of a sampled mini-batch (lambda_max of "
                        f"H_batch + damping*I must stay below 2*scale), or the Hessian is indefinite. Fix: "
                        f"increase scale (try {10 * scale:g}, or scale=None to estimate it), use a larger "
                        "minibatch_size, or add damping if the model is non-convex."
                    )
            if j == depth:
                denom = np.maximum(np.linalg.norm(new, axis=0), 1e-300)
                last_step = np.linalg.norm(new - h, axis=0) / denom
            h = new
            if j >= first_avg:
                acc += h
        total += acc / (int(depth) - first_avg + 1) / scale
    X = total / int(repeat)
    info = {"scale": float(scale), "depth": int(depth), "repeat": int(repeat), "minibatch_size": minibatch_size,
            "damping": float(damping), "tail_average": float(tail_average), "last_step": last_step}
    return (X[:, 0] if vector else X), info


# --------------------------------------------------------------------------- spectrum


def lanczos_extremes(matvec: Matvec, p: int, *, steps: int = 60, rng: np.random.Generator | None = None,
                     tol: float | None = None) -> tuple[float, float]:
    """Extreme Ritz values of a symmetric operator after ``steps`` Lanczos iterations.

    Full reorthogonalisation; ``steps`` single-vector products. The largest Ritz value
    converges fast (a lower bound on ``lambda_max``); the smallest is an **upper bound** on
    ``lambda_min`` that converges slowly when ``lambda_min`` is small relative to the spread --
    but a non-positive value proves that the operator is not positive definite.

    ``tol``: stop as soon as the residual of the largest Ritz pair is below ``tol`` times the
    Ritz value (checked every five iterations), so that an eigenvalue lies within ``tol``
    (relative) of it; only the largest is then reliable.

    Returns
    -------
    (float, float)
        Smallest and largest Ritz value.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    m = int(min(steps, p))
    Q = np.zeros((p, m + 1))
    q = rng.standard_normal(p)
    Q[:, 0] = q / np.linalg.norm(q)
    alpha, beta = np.zeros(m), np.zeros(m)
    k = m
    for j in range(m):
        if tol is not None and j >= 5 and j % 5 == 0:
            # residual of the top Ritz pair, beta_j |s_last|: an eigenvalue lies within it
            T = np.diag(alpha[:j]) + np.diag(beta[:j - 1], 1) + np.diag(beta[:j - 1], -1)
            vals, vecs = scipy.linalg.eigh(T, subset_by_index=[j - 1, j - 1], check_finite=False)
            if beta[j - 1] * abs(vecs[-1, 0]) <= tol * abs(vals[0]):
                k = j
                break
        w = np.asarray(matvec(Q[:, j:j + 1]), dtype=np.float64).ravel()
        alpha[j] = Q[:, j] @ w
        w -= Q[:, :j + 1] @ (Q[:, :j + 1].T @ w)
        w -= Q[:, :j + 1] @ (Q[:, :j + 1].T @ w)
        beta[j] = np.linalg.norm(w)
        if beta[j] <= 1e-12 * max(abs(alpha[:j + 1]).max(), 1e-300):
            k = j + 1
            break
        Q[:, j + 1] = w / beta[j]
    T = np.diag(alpha[:k]) + np.diag(beta[:k - 1], 1) + np.diag(beta[:k - 1], -1)
    ritz = np.linalg.eigvalsh(T)
    return float(ritz[0]), float(ritz[-1])
