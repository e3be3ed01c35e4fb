"""The NNK graph of a point set (Shekkizhar & Ortega, ICASSP 2020); see :func:`nnk_graph`.

Built on :class:`~scrutiny.nnk.NNK` (leave-one-out solves); the estimator never imports this
module, so the dependency points one way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_array, validate_params
from ..exceptions import InvalidParameterError
from .estimator import NNK

__all__ = ["nnk_graph"]


def nnk_graph(X: Any, k: int, *, kernel: str = "cosine", sigma: Any = "auto", solver: str = "exact",
              tol: float = 1e-10, prune: bool = True, batch_size: int = 2048, knn_backend: str = "auto"):
    """The NNK graph of a point set: sparse, weighted, symmetric adjacency.

    Each node ``i`` is NNK-regressed on its k nearest *other* nodes, giving directed weights
    ``W[i, j] = theta_ij``. With ``prune=True`` the directed edge ``i -> j`` is dropped when the
    residual of node ``i`` exceeds that of node ``j`` (the node whose polytope reconstructs it
    better decides the edge; ties keep it), then ``W = max(W, W^T)``.

    The authors' code compares a sparse residual matrix with its transpose, so an edge to a node
    that does not list ``i`` among its k neighbours is always dropped there (the missing entry
    reads as residual 0); here node residuals are compared, whether or not the neighbourhoods are
    mutual.

    Parameters
    ----------
    X : array-like of shape (n_nodes, n_features)
    k : int
        Candidate neighbours per node, ``k <= n_nodes - 1``.
    kernel, sigma, solver, tol, batch_size, knn_backend
        As in :class:`NNK`.
    prune : bool, default True
        Apply the residual rule before symmetrising (False: ``max(W, W^T)`` only).

    Returns
    -------
    scipy.sparse.csr_matrix of shape (n_nodes, n_nodes)
        Symmetric non-negative adjacency with an empty diagonal.

    References
    ----------
    .. [1] S. Shekkizhar & A. Ortega (2020). Graph construction from data by non-negative kernel
       regression. ICASSP.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> W = nnk_graph(rng.normal(size=(100, 3)), k=10, kernel="gaussian")
    >>> W.shape, bool((W != W.T).nnz == 0), W.nnz < 100 * 10
    ((100, 100), True, True)
    """
    import scipy.sparse as sp

    validate_params("nnk_graph", {"prune": prune}, {"prune": ["boolean"]})
    X = check_array(X, "X", ndim=2)
    if isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k > X.shape[0] - 1:
        raise InvalidParameterError(
            f"nnk_graph: k={k} must be at most n_nodes - 1 = {X.shape[0] - 1} (each node is left out of its own "
            "neighbourhood); use a smaller k."
        )
    nnk = NNK(k=k, kernel=kernel, solver=solver, sigma=sigma, tol=tol, batch_size=batch_size,
              knn_backend=knn_backend).fit(X)
    sol = nnk.loo_solve()
    n = X.shape[0]
    rows = np.repeat(np.arange(n), k)
    w = sol.weights.ravel()
    cols = sol.indices.ravel()
    if prune:
        r = sol.residual
        w = np.where(r[rows] > r[cols], 0.0, w)
    keep = w > 0
    W = sp.csr_matrix((w[keep], (rows[keep], cols[keep])), shape=(n, n))
    return W.maximum(W.T).tocsr()
