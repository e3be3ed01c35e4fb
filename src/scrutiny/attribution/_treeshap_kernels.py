"""Compiled TreeSHAP kernels over flat tree arrays (see ``_treeshap_trees.FlatTrees``).

Every kernel takes one block of rows and every tree, and writes into an output block that it
owns, so ``n_jobs`` threads over disjoint row blocks give the same numbers as one thread (the
order of the sums per row never depends on the blocking). The kernels are ``nogil`` so that
Python threads run them in parallel.

* ``path_dependent``: Lundberg et al. (2020), Algorithm 2 (the recursion of shap's
  ``tree_shap_recursive``: extend / unwind / unwound-sum of the path polynomial), with the
  ``condition`` argument that SHAP interaction values need (+1: the conditioned feature is
  present, -1: absent, 0: no conditioning).
* ``interventional``: for each (row, background row) pair a tree is walked along both rows;
  where they split apart on a feature not seen yet, both branches are followed, the feature
  being "taken from x" on one and "taken from z" on the other. A leaf reached with ``a``
  features from x and ``b`` from z is the game ``v * 1[S_x in S, S_z disjoint S]``, whose
  Shapley values are ``v (a-1)! b! / (a+b)!`` for the x-features and ``-v a! (b-1)! / (a+b)!``
  for the z-features (exact; no approximation beyond float64 sums).

Node direction: ``x <= threshold`` goes left; NaN goes to the side given by ``missing_left``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["path_dependent", "interventional", "predict", "shapley_weights"]


@njit(cache=True, nogil=True)
def _goes_left(value, threshold, missing_left):
    if value != value:  # NaN
        return missing_left != 0
    return value <= threshold


@njit(cache=True, nogil=True)
def predict(X, left, right, feature, threshold, missing_left, value, roots, out):
    """Sum of the leaf values each row reaches, per output: ``out`` (n, K) is added to."""
    n = X.shape[0]
    K = value.shape[1]
    for r in range(n):
        for t in range(roots.shape[0]):
            node = roots[t]
            while left[node] >= 0:
                if _goes_left(X[r, feature[node]], threshold[node], missing_left[node]):
                    node = left[node]
                else:
                    node = right[node]
            for k in range(K):
                out[r, k] += value[node, k]


# --------------------------------------------------------------------------- path-dependent
# A path is four parallel arrays (feature, zero fraction, one fraction, permutation weight);
# every recursion level owns the slice [offset, offset + depth + 2) of one scratch buffer.


@njit(cache=True, nogil=True)
def _extend(pf, pz, po, pw, off, depth, zero_fraction, one_fraction, feat):
    pf[off + depth] = feat
    pz[off + depth] = zero_fraction
    po[off + depth] = one_fraction
    pw[off + depth] = 1.0 if depth == 0 else 0.0
    for i in range(depth - 1, -1, -1):
        pw[off + i + 1] += one_fraction * pw[off + i] * (i + 1) / (depth + 1)
        pw[off + i] = zero_fraction * pw[off + i] * (depth - i) / (depth + 1)


@njit(cache=True, nogil=True)
def _unwind(pf, pz, po, pw, off, depth, index):
    one_fraction = po[off + index]
    zero_fraction = pz[off + index]
    next_one = pw[off + depth]
    for i in range(depth - 1, -1, -1):
        if one_fraction != 0.0:
            tmp = pw[off + i]
            pw[off + i] = next_one * (depth + 1) / ((i + 1) * one_fraction)
            next_one = tmp - pw[off + i] * zero_fraction * (depth - i) / (depth + 1)
        else:
            pw[off + i] = pw[off + i] * (depth + 1) / (zero_fraction * (depth - i))
    for i in range(index, depth):
        pf[off + i] = pf[off + i + 1]
        pz[off + i] = pz[off + i + 1]
        po[off + i] = po[off + i + 1]


@njit(cache=True, nogil=True)
def _unwound_sum(pz, po, pw, off, depth, index):
    one_fraction = po[off + index]
    zero_fraction = pz[off + index]
    next_one = pw[off + depth]
    total = 0.0
    if one_fraction != 0.0:
        for i in range(depth - 1, -1, -1):
            tmp = next_one / ((i + 1) * one_fraction)
            total += tmp
            next_one = pw[off + i] - tmp * zero_fraction * (depth - i)
    elif zero_fraction != 0.0:
        for i in range(depth - 1, -1, -1):
            total += pw[off + i] / (zero_fraction * (depth - i))
    return total * (depth + 1)


@njit(cache=True, nogil=True)
def _recurse(x, left, right, feature, threshold, missing_left, cover, value, phi, node, depth,
             pf, pz, po, pw, parent_off, parent_zero, parent_one, parent_feat,
             condition, cond_feat, cond_fraction):
    if cond_fraction == 0.0:
        return
    off = parent_off + depth + 1
    for i in range(depth + 1):
        pf[off + i] = pf[parent_off + i]
        pz[off + i] = pz[parent_off + i]
        po[off + i] = po[parent_off + i]
        pw[off + i] = pw[parent_off + i]
    if condition == 0 or cond_feat != parent_feat:
        _extend(pf, pz, po, pw, off, depth, parent_zero, parent_one, parent_feat)
    K = value.shape[1]
    if left[node] < 0:
        for i in range(1, depth + 1):
            w = _unwound_sum(pz, po, pw, off, depth, i) * (po[off + i] - pz[off + i]) * cond_fraction
            f = pf[off + i]
            for k in range(K):
                phi[f, k] += w * value[node, k]
        return
    split = feature[node]
    if _goes_left(x[split], threshold[node], missing_left[node]):
        hot = left[node]
        cold = right[node]
    else:
        hot = right[node]
        cold = left[node]
    hot_zero = cover[hot] / cover[node]
    cold_zero = cover[cold] / cover[node]
    incoming_zero = 1.0
    incoming_one = 1.0
    index = 0
    while index <= depth:
        if pf[off + index] == split:
            break
        index += 1
    if index != depth + 1:
        incoming_zero = pz[off + index]
        incoming_one = po[off + index]
        _unwind(pf, pz, po, pw, off, depth, index)
        depth -= 1
    hot_fraction = cond_fraction
    cold_fraction = cond_fraction
    if condition > 0 and split == cond_feat:
        cold_fraction = 0.0
        depth -= 1
    elif condition < 0 and split == cond_feat:
        hot_fraction *= hot_zero
        cold_fraction *= cold_zero
        depth -= 1
    _recurse(x, left, right, feature, threshold, missing_left, cover, value, phi, hot, depth + 1,
             pf, pz, po, pw, off, hot_zero * incoming_zero, incoming_one, split,
             condition, cond_feat, hot_fraction)
    _recurse(x, left, right, feature, threshold, missing_left, cover, value, phi, cold, depth + 1,
             pf, pz, po, pw, off, cold_zero * incoming_zero, 0.0, split,
             condition, cond_feat, cold_fraction)


@njit(cache=True, nogil=True)
def _tree_path(x, left, right, feature, threshold, missing_left, cover, value, root, max_depth,
               phi, pf, pz, po, pw, condition, cond_feat):
    _recurse(x, left, right, feature, threshold, missing_left, cover, value, phi, root, 0,
             pf, pz, po, pw, 0, 1.0, 1.0, -1, condition, cond_feat, 1.0)


@njit(cache=True, nogil=True)
def path_dependent(X, left, right, feature, threshold, missing_left, cover, value, roots, max_depth, out):
    """Path-dependent SHAP values: ``out`` (n, d, K) is added to."""
    size = (max_depth + 2) * (max_depth + 3) // 2 + max_depth + 3
    pf = np.empty(size, dtype=np.int64)
    pz = np.empty(size)
    po = np.empty(size)
    pw = np.empty(size)
    for r in range(X.shape[0]):
        for t in range(roots.shape[0]):
            _tree_path(X[r], left, right, feature, threshold, missing_left, cover, value, roots[t],
                       max_depth, out[r], pf, pz, po, pw, 0, -1)


@njit(cache=True, nogil=True)
def path_interactions(X, left, right, feature, threshold, missing_left, cover, value, roots, tree_features,
                      tree_feature_ptr, max_depth, out):
    """Path-dependent SHAP interaction values: ``out`` (n, d, d, K) is added to.

    Off the diagonal ``(phi_j(k | j present) - phi_j(k | j absent)) / 2`` (shap's definition);
    the diagonal is ``phi_j`` minus the row's off-diagonal sum, so each row sums to ``phi_j``.
    Only the features a tree splits on (``tree_features[tree_feature_ptr[t]:tree_feature_ptr[t+1]]``)
    are conditioned on: the others have zero interaction with that tree.
    """
    size = (max_depth + 2) * (max_depth + 3) // 2 + max_depth + 3
    pf = np.empty(size, dtype=np.int64)
    pz = np.empty(size)
    po = np.empty(size)
    pw = np.empty(size)
    d = X.shape[1]
    K = value.shape[1]
    phi = np.zeros((d, K))
    on = np.zeros((d, K))
    off = np.zeros((d, K))
    for r in range(X.shape[0]):
        for t in range(roots.shape[0]):
            phi[:] = 0.0
            _tree_path(X[r], left, right, feature, threshold, missing_left, cover, value, roots[t],
                       max_depth, phi, pf, pz, po, pw, 0, -1)
            for j in range(d):
                for k in range(K):
                    out[r, j, j, k] += phi[j, k]
            for q in range(tree_feature_ptr[t], tree_feature_ptr[t + 1]):
                j = tree_features[q]
                on[:] = 0.0
                off[:] = 0.0
                _tree_path(X[r], left, right, feature, threshold, missing_left, cover, value, roots[t],
                           max_depth, on, pf, pz, po, pw, 1, j)
                _tree_path(X[r], left, right, feature, threshold, missing_left, cover, value, roots[t],
                           max_depth, off, pf, pz, po, pw, -1, j)
                for i in range(d):
                    if i == j:
                        continue
                    for k in range(K):
                        v = 0.5 * (on[i, k] - off[i, k])
                        out[r, j, i, k] += v
                        out[r, j, j, k] -= v


# --------------------------------------------------------------------------- interventional


def shapley_weights(max_depth: int) -> np.ndarray:
    """``W[p, q] = p! q! / (p + q + 1)!``, the Shapley weight of a game on ``p + q + 1`` players."""
    n = max_depth + 2
    W = np.zeros((n, n))
    for p in range(n):
        for q in range(n - p):
            # p! q! / (p+q+1)! = 1 / ((p+q+1) * C(p+q, p)), built without factorial overflow
            c = 1.0
            for i in range(1, p + 1):
                c = c * (q + i) / i
            W[p, q] = 1.0 / ((p + q + 1) * c)
    return W


@njit(cache=True, nogil=True)
def _indep(x, z, left, right, feature, threshold, missing_left, value, node, a, b, state, path, depth, W,
           scale, phi):
    while left[node] >= 0:
        f = feature[node]
        s = state[f]
        if s == 1:
            go_left = _goes_left(x[f], threshold[node], missing_left[node])
        elif s == 2:
            go_left = _goes_left(z[f], threshold[node], missing_left[node])
        else:
            xl = _goes_left(x[f], threshold[node], missing_left[node])
            zl = _goes_left(z[f], threshold[node], missing_left[node])
            if xl == zl:
                go_left = xl
            else:
                path[depth] = f
                state[f] = 1
                _indep(x, z, left, right, feature, threshold, missing_left, value,
                       left[node] if xl else right[node], a + 1, b, state, path, depth + 1, W, scale, phi)
                state[f] = 2
                _indep(x, z, left, right, feature, threshold, missing_left, value,
                       left[node] if zl else right[node], a, b + 1, state, path, depth + 1, W, scale, phi)
                state[f] = 0
                return
        node = left[node] if go_left else right[node]
    if depth == 0:
        return
    K = value.shape[1]
    wx = W[a - 1, b] * scale if a > 0 else 0.0
    wz = W[a, b - 1] * scale if b > 0 else 0.0
    for i in range(depth):
        f = path[i]
        w = wx if state[f] == 1 else -wz
        for k in range(K):
            phi[f, k] += w * value[node, k]


@njit(cache=True, nogil=True)
def interventional(X, Z, left, right, feature, threshold, missing_left, value, roots, max_depth, W, out):
    """Interventional SHAP values against the background ``Z`` (mean over its rows): ``out``
    (n, d, K) is added to."""
    d = X.shape[1]
    state = np.zeros(d, dtype=np.int8)
    path = np.zeros(max_depth + 1, dtype=np.int64)
    scale = 1.0 / Z.shape[0]
    for r in range(X.shape[0]):
        for t in range(roots.shape[0]):
            for m in range(Z.shape[0]):
                _indep(X[r], Z[m], left, right, feature, threshold, missing_left, value, roots[t], 0, 0,
                       state, path, 0, W, scale, out[r])
