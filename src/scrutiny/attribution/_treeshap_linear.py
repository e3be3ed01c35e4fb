"""Path-dependent TreeSHAP in one pass over the nodes per row (Linear TreeSHAP, Yu et al. 2022).

The game of one leaf ``l`` (value ``v``) under the path-dependent value function is
``v * prod_{j in S} s_j * prod_{j on the path, not in S} R_j``, where, for each distinct feature
``j`` on the leaf's path, ``s_j`` is 1 when ``x`` follows every split on ``j`` along the path
(else 0) and ``R_j`` is the product of the cover ratios of those splits. Its Shapley value for a
feature ``i`` on the path is (a Beta integral over the coalition sizes)::

    v * (s_i - R_i) * integral_0^1 prod_{j != i} rho_j(t) dt,   rho_j(t) = (1 - t) R_j + t s_j,

a polynomial of degree < depth in ``t``, integrated exactly by Gauss-Legendre with
``ceil(max_depth / 2)`` nodes. The integrand's products are kept as values at those nodes, and
summed over leaves bottom-up: the term of a split on feature ``f`` is the change it makes to
``s_f - R_f`` times the sum, over the leaves below it, of the leaf's product without ``f``'s factor
(``W`` below; leaves under a deeper split on the same feature are handed up from that split, as
their ``f`` factor differs). The terms of a feature's splits along a path telescope to the leaf
formula. Every node costs ``O(nodes)`` per row, against ``O(depth**2)`` per leaf for the
recursive kernel (``_treeshap_kernels._tree_path``): ``benchmarks/local_attribution.py --tasks
trees`` compares them with shap's TreeExplainer.

Rows are processed as a block: the traversal is the same for every row (path-dependent
TreeSHAP visits every node), only ``s`` and hence ``rho`` differ, so the inner loops run over the
block's rows (innermost, vectorised). Each row's arithmetic is the same whatever the block, so
results never depend on the blocking; no fast-math licences, for the same reason.

Needs every cover > 0 (``rho`` divides); the caller uses the recursive kernel otherwise.

References
----------
.. [1] Yu, Bhat, Yu (2022). Linear TreeShap. NeurIPS.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._gauss_legendre import unit_interval
from ._treeshap_kernels import _goes_left

__all__ = ["path_dependent_linear", "quadrature"]


def quadrature(max_depth: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on (0, 1), exact for the degree ``max_depth - 1``."""
    return unit_interval(max(1, (max_depth + 1) // 2))


@njit(cache=True, nogil=True)
def path_dependent_linear(X, left, right, feature, threshold, missing_left, cover, value, roots, max_depth,
                          t_nodes, t_weights, out):
    """Path-dependent SHAP values of the rows ``X`` (a block): ``out`` (n, d, K) is added to."""
    n = X.shape[0]
    K = value.shape[1]
    m = t_nodes.shape[0]
    L = max_depth + 1  # depth levels 0 .. max_depth; level d holds the edge into the depth-d node
    feat = np.zeros(L, dtype=np.int64)
    prev = np.full(L, -1, dtype=np.int64)  # level of the previous split on the same feature, or -1
    R = np.ones(L)
    s = np.ones((L, n))
    rho = np.ones((L, m, n))
    P = np.ones((L, m, n))  # prod_j rho_j over the features on the path to the node
    S = np.zeros((L, m, K, n))  # sum over the leaves below the node of v * P_leaf
    A = np.zeros((L, m, K, n))  # ... of those below a deeper split on the edge's feature
    B = np.zeros((L, m, K, n))  # the W of those deeper splits
    W = np.zeros((m, K, n))
    acc = np.zeros((K, n))
    last = np.full(out.shape[1], -1, dtype=np.int64)
    size = 2 * L + 2
    st_node = np.empty(size, dtype=np.int64)
    st_depth = np.empty(size, dtype=np.int64)
    st_parent = np.empty(size, dtype=np.int64)
    st_done = np.empty(size, dtype=np.int8)
    for tree in range(roots.shape[0]):
        root = roots[tree]
        if left[root] < 0:
            continue  # a single leaf: every SHAP value is 0
        top = 0
        st_node[0] = root
        st_depth[0] = 0
        st_parent[0] = -1
        st_done[0] = 0
        top = 1
        while top > 0:
            top -= 1
            node = st_node[top]
            d = st_depth[top]
            parent = st_parent[top]
            if st_done[top] == 0:
                if d > 0:  # enter the edge parent -> node
                    f = feature[parent]
                    q = last[f]
                    feat[d] = f
                    prev[d] = q
                    r = cover[node] / cover[parent]
                    is_left = left[parent] == node
                    thr = threshold[parent]
                    ml = missing_left[parent]
                    if q >= 0:
                        R[d] = R[q] * r
                        for b in range(n):
                            follow = _goes_left(X[b, f], thr, ml) == is_left
                            s[d, b] = s[q, b] if follow else 0.0
                    else:
                        R[d] = r
                        for b in range(n):
                            follow = _goes_left(X[b, f], thr, ml) == is_left
                            s[d, b] = 1.0 if follow else 0.0
                    Rd = R[d]
                    for k in range(m):
                        tk = t_nodes[k]
                        a = Rd * (1.0 - tk)
                        if q >= 0:
                            for b in range(n):
                                rd = a + tk * s[d, b]
                                rho[d, k, b] = rd
                                P[d, k, b] = P[d - 1, k, b] * rd / rho[q, k, b]
                        else:
                            for b in range(n):
                                rd = a + tk * s[d, b]
                                rho[d, k, b] = rd
                                P[d, k, b] = P[d - 1, k, b] * rd
                    last[f] = d
                    for k in range(m):
                        for c in range(K):
                            for b in range(n):
                                A[d, k, c, b] = 0.0
                                B[d, k, c, b] = 0.0
                if left[node] >= 0:
                    for k in range(m):
                        for c in range(K):
                            for b in range(n):
                                S[d, k, c, b] = 0.0
                    st_node[top] = node  # finish this node after its children
                    st_depth[top] = d
                    st_parent[top] = parent
                    st_done[top] = 1
                    top += 1
                    for child in (right[node], left[node]):
                        st_node[top] = child
                        st_depth[top] = d + 1
                        st_parent[top] = node
                        st_done[top] = 0
                        top += 1
                    continue
                for k in range(m):
                    for c in range(K):
                        v = value[node, c]
                        for b in range(n):
                            S[d, k, c, b] = v * P[d, k, b]
            # finish the edge parent -> node (a leaf, or an internal node whose children are done)
            if d == 0:
                continue
            f = feat[d]
            q = prev[d]
            for k in range(m):
                for c in range(K):
                    for b in range(n):
                        W[k, c, b] = (S[d, k, c, b] - A[d, k, c, b]) / rho[d, k, b] + B[d, k, c, b]
            for c in range(K):
                for b in range(n):
                    acc[c, b] = 0.0
            for k in range(m):
                wk = t_weights[k]
                for c in range(K):
                    for b in range(n):
                        acc[c, b] += wk * W[k, c, b]
            for b in range(n):
                delta = s[d, b] - R[d]
                if q >= 0:
                    delta -= s[q, b] - R[q]
                for c in range(K):
                    out[b, f, c] += delta * acc[c, b]
            if q >= 0:
                for k in range(m):
                    for c in range(K):
                        for b in range(n):
                            A[q, k, c, b] += S[d, k, c, b]
                            B[q, k, c, b] += W[k, c, b]
            if d > 1:
                for k in range(m):
                    for c in range(K):
                        for b in range(n):
                            S[d - 1, k, c, b] += S[d, k, c, b]
            last[f] = q
    return out
