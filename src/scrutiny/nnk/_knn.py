"""Exact k-nearest-neighbour search by blocked matrix products (used by :mod:`.estimator`).

Candidates are pre-selected in float32 with one GEMM per block of queries (``argpartition``
on a ``(block, n_data)`` score matrix), then re-scored in float64 and sorted; a rigorous
float32 rounding bound decides, row by row, whether the pre-selection could have missed a
neighbour, and such rows (near-ties at the k-th neighbour, e.g. many duplicates) are
recomputed entirely in float64. The result is therefore the exact float64 k-NN list, with
ties broken by the smaller data index.

Leave-one-out is done by *index*: ``exclude[i]`` is a data index that query ``i`` must never
return (its own row when the queries are the data). Duplicates of the query (other rows with
the same features) stay eligible -- they are different training points. Dropping "the first
neighbour" instead, as is common, keeps the point itself whenever a duplicate sorts first.

faiss-cpu is used as an optional accelerator for the candidate pre-selection when it is
installed (``backend="auto"``); it is never required, and the float64 re-scoring and the
exactness check are the same with either backend.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..exceptions import InvalidParameterError, MissingDependencyError

__all__ = ["knn_search"]

_U32 = float(np.finfo(np.float32).eps) / 2  # unit roundoff of float32
_BLOCK_ELEMENTS = 2**23  # float32 entries of one (block, n_data) score matrix (32 MB)
_GATHER_ELEMENTS = 2**22  # float64 entries of one gathered (block, m, d) candidate array (32 MB)


def _torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:  # pragma: no cover - torch is a dependency of scrutiny
        return False
    return True


def _smallest(key: np.ndarray, m: int, use_torch: bool) -> tuple[np.ndarray, np.ndarray]:
    """The ``m`` smallest entries of each row of ``key`` (float32), sorted: (values, indices)."""
    if use_torch:  # torch.topk beats numpy's argpartition on wide rows (benchmarks/nnk.py, section 3)
        import torch

        v, i = torch.topk(torch.from_numpy(key), m, dim=1, largest=False, sorted=True)
        return v.numpy().astype(np.float64), i.numpy().astype(np.int64)
    part = np.argpartition(key, m - 1, axis=1)[:, :m]
    vals = np.take_along_axis(key, part, 1)
    o = np.argsort(vals, axis=1, kind="stable")
    return np.take_along_axis(vals, o, 1).astype(np.float64), np.take_along_axis(part, o, 1)


def _faiss_module(backend: str) -> Any:
    if backend in ("numpy", "torch"):
        return None
    try:
        import faiss  # type: ignore[import-not-found]
    except ImportError as exc:
        if backend == "faiss":
            raise MissingDependencyError(
                "backend='faiss' needs the optional package faiss-cpu (pip install faiss-cpu); "
                "use backend='auto' or 'numpy' for the built-in exact blocked search."
            ) from exc
        return None
    return faiss


def _scores64(Q: np.ndarray, X: np.ndarray, cand: np.ndarray, metric: str) -> np.ndarray:
    """Exact float64 scores of query rows ``Q`` (b, d) against ``X[cand]`` (b, m)."""
    out = np.empty(cand.shape, dtype=np.float64)
    m, d = cand.shape[1], X.shape[1]
    step = max(1, _GATHER_ELEMENTS // max(1, m * d))
    for s in range(0, Q.shape[0], step):
        G = X[cand[s:s + step]]  # (b, m, d)
        q = Q[s:s + step, None, :]
        if metric == "ip":
            out[s:s + step] = np.einsum("bmd,bmd->bm", G, np.broadcast_to(q, G.shape))
        else:
            diff = G - q
            out[s:s + step] = np.einsum("bmd,bmd->bm", diff, diff)
    return out


def knn_search(
    Q: np.ndarray,
    X: np.ndarray,
    k: int,
    *,
    metric: str = "ip",
    exclude: np.ndarray | None = None,
    backend: str = "auto",
    block_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours of each query row among the rows of ``X``.

    Parameters
    ----------
    Q : ndarray of shape (n_queries, n_features)
        Query features (finite; converted to float64).
    X : ndarray of shape (n_data, n_features)
        Data features.
    k : int
        Number of neighbours, ``1 <= k <= n_data`` (``n_data - 1`` with ``exclude``).
    metric : {"ip", "l2"}, default "ip"
        ``"ip"``: largest inner product first (cosine similarity for L2-normalised rows);
        ``"l2"``: smallest squared Euclidean distance first.
    exclude : int array of shape (n_queries,), optional
        ``exclude[i]`` is a data index query ``i`` never returns (``-1``: none). Pass
        ``np.arange(n)`` with ``Q is X`` for leave-one-out.
    backend : {"auto", "numpy", "torch", "faiss"}, default "auto"
        Candidate pre-selection: faiss-cpu if installed (``"auto"``) or required
        (``"faiss"``), else blocked GEMM with the per-row top-m taken by ``torch.topk``
        (``"torch"``) or ``numpy.argpartition`` (``"numpy"``). The final lists are the same.
    block_size : int, optional
        Queries per GEMM block (default: as many as fit a 32 MB float32 score matrix).

    Returns
    -------
    scores : ndarray of shape (n_queries, k), float64
        Inner products (descending) or squared distances (ascending).
    indices : ndarray of shape (n_queries, k), int64
        Data indices, ties broken by the smaller index.

    Raises
    ------
    InvalidParameterError
        If ``k`` exceeds the number of eligible data points or the shapes disagree.
    MissingDependencyError
        If ``backend="faiss"`` and faiss-cpu is not installed.
    """
    Q = np.ascontiguousarray(Q, dtype=np.float64)
    X = np.ascontiguousarray(X, dtype=np.float64)
    n_q, n = Q.shape[0], X.shape[0]
    if Q.ndim != 2 or X.ndim != 2 or Q.shape[1] != X.shape[1]:
        raise InvalidParameterError(
            f"knn_search: queries and data must be 2-D with the same number of features; got {Q.shape} and {X.shape}."
        )
    if metric not in ("ip", "l2"):
        raise InvalidParameterError(f"knn_search: metric must be 'ip' or 'l2'; got {metric!r}.")
    if backend not in ("auto", "numpy", "torch", "faiss"):
        raise InvalidParameterError(
            f"knn_search: backend must be 'auto', 'numpy', 'torch' or 'faiss'; got {backend!r}."
        )
    if exclude is None:
        excl = np.full(n_q, -1, dtype=np.int64)
    else:
        excl = np.asarray(exclude, dtype=np.int64).reshape(-1)
        if excl.shape[0] != n_q:
            raise InvalidParameterError(f"knn_search: exclude must have one entry per query ({n_q}); got {excl.shape[0]}.")
    n_eligible = n - (1 if (excl >= 0).any() else 0)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n_eligible:
        raise InvalidParameterError(
            f"knn_search: k must be an int in [1, {n_eligible}] (the number of data points"
            f"{' other than the excluded one' if n_eligible < n else ''}); got {k!r}."
        )
    k = int(k)
    if n_q == 0:
        return np.empty((0, k)), np.empty((0, k), dtype=np.int64)
    m = min(n_eligible, k + max(8, k // 4))  # candidates re-scored in float64
    sign = -1.0 if metric == "ip" else 1.0  # internally: smaller key = better

    # float32 rounding bound of one pre-selection score (|fl(s) - s| <= bound), per query
    d = X.shape[1]
    qn = np.linalg.norm(Q, axis=1)
    xmax = float(np.linalg.norm(X, axis=1).max()) if n else 0.0
    if metric == "ip":
        bound = (d + 4) * _U32 * qn * xmax * 1.01 + 1e-300
    else:
        bound = (d + 6) * _U32 * (qn + xmax) ** 2 * 1.01 + 1e-300

    Q32, X32 = Q.astype(np.float32), X.astype(np.float32)
    x_sq = np.einsum("ij,ij->i", X32, X32) if metric == "l2" else None
    faiss = _faiss_module(backend)
    cand = np.empty((n_q, m), dtype=np.int64)
    next_best = np.full(n_q, np.inf)  # best float32 key NOT pre-selected (inf: none left)

    if faiss is not None:
        index = faiss.IndexFlatIP(d) if metric == "ip" else faiss.IndexFlatL2(d)
        index.add(X32)
        want = min(n, m + 2)  # one spare for the excluded index, one to read next_best
        D, I = index.search(Q32, want)
        D = np.asarray(D, dtype=np.float64) * sign
        I = np.asarray(I, dtype=np.int64)
        bad = (I < 0) | (I == excl[:, None])
        D[bad] = np.inf
        order = np.argsort(D, axis=1, kind="stable")
        D, I = np.take_along_axis(D, order, 1), np.take_along_axis(I, order, 1)
        cand[:] = I[:, :m]
        if want > m:  # the best eligible id that was not pre-selected (inf when there is none)
            next_best = D[:, m].copy()
    else:
        use_torch = backend in ("auto", "torch") and _torch_available()
        bs = block_size or max(1, _BLOCK_ELEMENTS // max(n, 1))
        for s in range(0, n_q, bs):
            e = min(n_q, s + bs)
            S = Q32[s:e] @ X32.T  # (b, n) float32
            if metric == "ip":
                key = -S
            else:
                q_sq = np.einsum("ij,ij->i", Q32[s:e], Q32[s:e])
                key = q_sq[:, None] + x_sq[None, :] - 2.0 * S
            rows = np.arange(e - s)
            ex = excl[s:e]
            has = ex >= 0
            key[rows[has], ex[has]] = np.inf
            if m < n:
                vals, part = _smallest(key, m + 1, use_torch)
                cand[s:e] = part[:, :m]
                next_best[s:e] = vals[:, m]  # inf only if that slot is the excluded index (nothing else left)
            else:
                cand[s:e] = np.argsort(key, axis=1, kind="stable")[:, :m]

    # exact float64 re-scoring of the candidates, ties broken by index
    cand.sort(axis=1)
    key64 = sign * _scores64(Q, X, cand, metric)
    order = np.argsort(key64, axis=1, kind="stable")
    key64 = np.take_along_axis(key64, order, 1)[:, :k]
    idx = np.take_along_axis(cand, order, 1)[:, :k]

    # exactness check: a point not pre-selected has true key >= next_best - bound; the k-th
    # selected has true key key64[:, -1]. If next_best - bound <= kth + bound it might belong.
    unsure = np.isfinite(next_best) & (next_best - bound <= key64[:, -1] + bound)
    for i in np.flatnonzero(unsure):
        allk = sign * _scores64(Q[i:i + 1], X, np.arange(n)[None, :], metric)[0]
        if excl[i] >= 0:
            allk[excl[i]] = np.inf
        o = np.argsort(allk, kind="stable")[:k]
        idx[i], key64[i] = o, allk[o]
    return sign * key64, idx
