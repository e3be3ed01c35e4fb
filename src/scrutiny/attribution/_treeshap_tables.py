"""Path-dependent TreeSHAP with per-leaf weight tables, for shallow trees.

With one fractions in {0, 1} (x takes one branch), a leaf's contribution to the path-dependent
SHAP values depends on x only through the set ``S`` of the leaf path's features on which x
follows the path at every split; the weights for each ``S`` are fixed by the covers. So each
leaf stores a table of ``2**q x q`` weights (``q`` distinct features on its path), computed once
per ``explain`` call with the same extend / unwound-sum arithmetic as the recursive kernel, and
a row costs ``O(leaves x depth)`` per tree instead of ``O(leaves x depth**2)`` (Yang 2021,
"Fast TreeSHAP" v2). Used when the tables fit ``TABLE_BUDGET`` entries (gradient-boosted
trees of depth <= ~8); deeper forests use the recursive kernel.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from ._treeshap_kernels import _extend, _goes_left, _unwound_sum

__all__ = ["LeafTables", "build_tables", "path_dependent_tables", "TABLE_BUDGET"]

TABLE_BUDGET = 1 << 22  # float64 entries (32 MB)


class LeafTables(NamedTuple):
    leaf_node: np.ndarray  # (n_leaves,) global node index of each leaf
    tree_leaf_ptr: np.ndarray  # (n_trees + 1,) leaves of tree t: [ptr[t], ptr[t+1])
    path_ptr: np.ndarray  # (n_leaves + 1,) CSR over the path nodes (root to leaf's parent)
    path_node: np.ndarray  # internal node on the path
    path_left: np.ndarray  # int8: 1 when the path goes left there
    path_u: np.ndarray  # index of the node's feature among the leaf's distinct features
    u_ptr: np.ndarray  # (n_leaves + 1,) CSR over the distinct features
    u_feat: np.ndarray  # the distinct features
    table_ptr: np.ndarray  # (n_leaves + 1,) start of each leaf's 2**q x q table
    table: np.ndarray  # float64 weights


@njit(cache=True, nogil=True)
def _count(left, feature, parent):
    n_leaves = 0
    n_path = 0
    n_table = 0
    seen = np.full(feature.max() + 1, -1, dtype=np.int64)
    for node in range(left.shape[0]):
        if left[node] >= 0:
            continue
        n_leaves += 1
        q = 0
        p = parent[node]
        while p >= 0:
            n_path += 1
            f = feature[p]
            if seen[f] != node:
                seen[f] = node
                q += 1
            p = parent[p]
        if q > 40 or n_table > (1 << 50):
            n_table = 1 << 50  # far beyond any budget; avoids overflowing 2**q
        else:
            n_table += (1 << q) * q
    return n_leaves, n_path, n_table


def build_tables(left, right, feature, cover, roots, budget: int = TABLE_BUDGET) -> LeafTables | None:
    """The leaf tables of every tree, or None when they would exceed ``budget`` entries."""
    n = left.shape[0]
    parent = np.full(n, -1, dtype=np.int64)
    internal = np.flatnonzero(left >= 0)
    parent[left[internal]] = internal
    parent[right[internal]] = internal
    n_leaves, n_path, n_table = _count(left, feature, parent)
    if n_table > budget:
        return None
    out = LeafTables(
        leaf_node=np.empty(n_leaves, dtype=np.int64),
        tree_leaf_ptr=np.zeros(roots.shape[0] + 1, dtype=np.int64),
        path_ptr=np.zeros(n_leaves + 1, dtype=np.int64),
        path_node=np.empty(n_path, dtype=np.int64),
        path_left=np.empty(n_path, dtype=np.int8),
        path_u=np.empty(n_path, dtype=np.int64),
        u_ptr=np.zeros(n_leaves + 1, dtype=np.int64),
        u_feat=np.empty(n_path, dtype=np.int64),
        table_ptr=np.zeros(n_leaves + 1, dtype=np.int64),
        table=np.empty(n_table),
    )
    _fill(left, feature, cover, roots, parent, *out)
    return out


@njit(cache=True, nogil=True)
def _fill(left, feature, cover, roots, parent, leaf_node, tree_leaf_ptr, path_ptr, path_node, path_left, path_u,
          u_ptr, u_feat, table_ptr, table):
    n = left.shape[0]
    nf = feature.max() + 1
    slot = np.full(nf, -1, dtype=np.int64)
    rev = np.empty(n, dtype=np.int64)
    zero = np.empty(64)
    size = 70 * 71 // 2 + 80
    pf = np.empty(size, dtype=np.int64)
    pz = np.empty(size)
    po = np.empty(size)
    pw = np.empty(size)
    leaf = 0
    path_at = 0
    u_at = 0
    table_at = 0
    tree = 0
    for node in range(n):
        while tree + 1 < roots.shape[0] and node >= roots[tree + 1]:
            tree += 1
            tree_leaf_ptr[tree] = leaf
        if left[node] >= 0:
            continue
        # the path root -> leaf
        m = 0
        child = node
        p = parent[node]
        while p >= 0:
            rev[m] = child
            m += 1
            child = p
            p = parent[p]
        q = 0
        for s in range(m - 1, -1, -1):  # rev[s] is the child taken below its parent
            c = rev[s]
            pn = parent[c]
            f = feature[pn]
            if slot[f] < 0:
                slot[f] = q
                u_feat[u_at + q] = f
                zero[q] = 1.0
                q += 1
            zero[slot[f]] *= cover[c] / cover[pn]
            path_node[path_at] = pn
            path_left[path_at] = 1 if left[pn] == c else 0
            path_u[path_at] = slot[f]
            path_at += 1
        for j in range(q):
            slot[u_feat[u_at + j]] = -1
        # weights for every agreement mask: the leaf step of the recursive kernel on the path
        # (dummy, u_0, ..., u_{q-1}) with one fraction 1 on the mask's bits
        for mask in range(1 << q):
            _extend(pf, pz, po, pw, 0, 0, 1.0, 1.0, -1)
            for j in range(q):
                _extend(pf, pz, po, pw, 0, j + 1, zero[j], 1.0 if (mask >> j) & 1 else 0.0, j)
            for j in range(q):
                w = _unwound_sum(pz, po, pw, 0, q, j + 1) * (po[j + 1] - pz[j + 1])
                table[table_at + mask * q + j] = w
        leaf_node[leaf] = node
        leaf += 1
        path_ptr[leaf] = path_at
        u_at += q
        u_ptr[leaf] = u_at
        table_at += (1 << q) * q
        table_ptr[leaf] = table_at
    for t in range(tree + 1, roots.shape[0] + 1):
        tree_leaf_ptr[t] = leaf


@njit(cache=True, nogil=True)
def path_dependent_tables(X, left, feature, threshold, missing_left, value, roots, leaf_node, tree_leaf_ptr,
                          path_ptr, path_node, path_left, path_u, u_ptr, u_feat, table_ptr, table, out):
    """Path-dependent SHAP values from the leaf tables: ``out`` (n, d, K) is added to."""
    n_nodes = left.shape[0]
    K = value.shape[1]
    goes = np.empty(n_nodes, dtype=np.int8)
    for r in range(X.shape[0]):
        x = X[r]
        for t in range(roots.shape[0]):
            end = roots[t + 1] if t + 1 < roots.shape[0] else n_nodes
            for node in range(roots[t], end):
                if left[node] >= 0:
                    goes[node] = 1 if _goes_left(x[feature[node]], threshold[node], missing_left[node]) else 0
            for lf in range(tree_leaf_ptr[t], tree_leaf_ptr[t + 1]):
                u0 = u_ptr[lf]
                q = u_ptr[lf + 1] - u0
                if q == 0:
                    continue
                mask = (1 << q) - 1
                for s in range(path_ptr[lf], path_ptr[lf + 1]):
                    if goes[path_node[s]] != path_left[s]:
                        mask &= ~(1 << path_u[s])
                base = table_ptr[lf] + mask * q
                node = leaf_node[lf]
                for j in range(q):
                    w = table[base + j]
                    f = u_feat[u0 + j]
                    for k in range(K):
                        out[r, f, k] += w * value[node, k]
