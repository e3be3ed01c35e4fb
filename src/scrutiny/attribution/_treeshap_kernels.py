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

# Floating-point licences of the path-dependent arithmetic: reassociation and reciprocals, but
# not "no NaNs" (NaN routing relies on x != x).
_FAST = {"nsz", "arcp", "contract", "reassoc"}

__all__ = ["path_dependent", "path_interactions", "interventional", "directions", "predict", "shapley_weights"]


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


# Reciprocals 1 / (i + 1): the path updates multiply by them instead of dividing (division is
# the slowest operation of the inner loops). Trees deeper than MAX_DEPTH are refused upstream.
MAX_DEPTH = 1000
_INV = 1.0 / np.arange(1, MAX_DEPTH + 4, dtype=np.float64)


@njit(cache=True, nogil=True, fastmath=_FAST)
def _extend(pf, pz, po, pw, off, depth, zero_fraction, one_fraction, feat):
    pf[off + depth] = feat
    pz[off + depth] = zero_fraction
    po[off + depth] = one_fraction
    pw[off + depth] = 1.0 if depth == 0 else 0.0
    inv = _INV[depth]
    zi = zero_fraction * inv
    oi = one_fraction * inv
    for i in range(depth - 1, -1, -1):
        w = pw[off + i]
        pw[off + i + 1] += oi * w * (i + 1)
        pw[off + i] = zi * w * (depth - i)


@njit(cache=True, nogil=True, fastmath=_FAST)
def _unwind(pf, pz, po, pw, off, depth, index):
    one_fraction = po[off + index]
    zero_fraction = pz[off + index]
    next_one = pw[off + depth]
    if one_fraction != 0.0:
        inv_one = 1.0 / one_fraction
        zi = zero_fraction * _INV[depth]
        for i in range(depth - 1, -1, -1):
            tmp = pw[off + i]
            pw[off + i] = next_one * (depth + 1) * _INV[i] * inv_one
            next_one = tmp - pw[off + i] * zi * (depth - i)
    else:
        inv_zero = (depth + 1) / zero_fraction
        for i in range(depth - 1, -1, -1):
            pw[off + i] = pw[off + i] * inv_zero * _INV[depth - i - 1]
    for i in range(index, depth):
        pf[off + i] = pf[off + i + 1]
        pz[off + i] = pz[off + i + 1]
        po[off + i] = po[off + i + 1]


@njit(cache=True, nogil=True, fastmath=_FAST)
def _unwound_sum(pz, po, pw, off, depth, index):
    one_fraction = po[off + index]
    zero_fraction = pz[off + index]
    next_one = pw[off + depth]
    total = 0.0
    if one_fraction != 0.0:
        inv_one = 1.0 / one_fraction
        for i in range(depth - 1, -1, -1):
            tmp = next_one * _INV[i] * inv_one
            total += tmp
            next_one = pw[off + i] - tmp * zero_fraction * (depth - i)
    elif zero_fraction != 0.0:
        for i in range(depth - 1, -1, -1):
            total += pw[off + i] * _INV[depth - i - 1]
        total /= zero_fraction
    return total * (depth + 1)


@njit(cache=True, nogil=True, fastmath=_FAST)
def _tree_path(x, left, right, feature, threshold, missing_left, cover, value, root, phi, pf, pz, po, pw,
               stack_i, stack_f, condition, cond_feat):
    """One tree, depth first with an explicit stack (numba cannot cache recursive functions:
    reloading them from the cache crashes). A pending call is (node, depth, parent offset,
    parent feature) in ``stack_i`` and (parent zero fraction, parent one fraction, condition
    fraction) in ``stack_f``; the hot child is visited before the cold one, as in the recursion,
    so a node's path slice is intact until both children have read it."""
    K = value.shape[1]
    top = 0
    stack_i[0, 0] = root
    stack_i[0, 1] = 0
    stack_i[0, 2] = 0
    stack_i[0, 3] = -1
    stack_f[0, 0] = 1.0
    stack_f[0, 1] = 1.0
    stack_f[0, 2] = 1.0
    top = 1
    while top > 0:
        top -= 1
        node = stack_i[top, 0]
        depth = stack_i[top, 1]
        parent_off = stack_i[top, 2]
        parent_feat = stack_i[top, 3]
        parent_zero = stack_f[top, 0]
        parent_one = stack_f[top, 1]
        cond_fraction = stack_f[top, 2]
        if cond_fraction == 0.0:
            continue
        off = parent_off + depth + 1
        for i in range(depth + 1):
            pf[off + i] = pf[parent_off + i]
            pz[off + i] = pz[parent_off + i]
            po[off + i] = po[parent_off + i]
            pw[off + i] = pw[parent_off + i]
        if condition == 0 or cond_feat != parent_feat:
            _extend(pf, pz, po, pw, off, depth, parent_zero, parent_one, parent_feat)
        if left[node] < 0:
            # One fractions are 0 or 1 here (x takes one branch). For a 0 (a feature whose branch
            # x left) the unwound sum is sum_i pw[i] / (zero (depth - i)) times (depth + 1), so its
            # contribution -zero * sum is the same for all of them: computed once (Fast TreeSHAP
            # v1's observation, Yang 2021).
            cold_w = 0.0
            have_cold = False
            for i in range(1, depth + 1):
                f = pf[off + i]
                if po[off + i] == 0.0:
                    if not have_cold:
                        total = 0.0
                        for j in range(depth - 1, -1, -1):
                            total += pw[off + j] * _INV[depth - j - 1]
                        cold_w = -total * (depth + 1) * cond_fraction
                        have_cold = True
                    w = cold_w if pz[off + i] != 0.0 else 0.0
                else:
                    w = _unwound_sum(pz, po, pw, off, depth, i) * (po[off + i] - pz[off + i]) * cond_fraction
                for k in range(K):
                    phi[f, k] += w * value[node, k]
            continue
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
        # cold first on the stack, so the hot child is visited first
        stack_i[top, 0] = cold
        stack_i[top, 1] = depth + 1
        stack_i[top, 2] = off
        stack_i[top, 3] = split
        stack_f[top, 0] = cold_zero * incoming_zero
        stack_f[top, 1] = 0.0
        stack_f[top, 2] = cold_fraction
        top += 1
        stack_i[top, 0] = hot
        stack_i[top, 1] = depth + 1
        stack_i[top, 2] = off
        stack_i[top, 3] = split
        stack_f[top, 0] = hot_zero * incoming_zero
        stack_f[top, 1] = incoming_one
        stack_f[top, 2] = hot_fraction
        top += 1


@njit(cache=True, nogil=True)
def _scratch(max_depth):
    size = (max_depth + 2) * (max_depth + 3) // 2 + max_depth + 3
    stack = 2 * max_depth + 4
    return (np.empty(size, dtype=np.int64), np.empty(size), np.empty(size), np.empty(size),
            np.empty((stack, 4), dtype=np.int64), np.empty((stack, 3)))


@njit(cache=True, nogil=True)
def path_dependent(X, left, right, feature, threshold, missing_left, cover, value, roots, max_depth, out):
    """Path-dependent SHAP values: ``out`` (n, d, K) is added to."""
    pf, pz, po, pw, stack_i, stack_f = _scratch(max_depth)
    for r in range(X.shape[0]):
        for t in range(roots.shape[0]):
            _tree_path(X[r], left, right, feature, threshold, missing_left, cover, value, roots[t],
                       out[r], pf, pz, po, pw, stack_i, stack_f, 0, -1)


@njit(cache=True, nogil=True)
def path_interactions(X, left, right, feature, threshold, missing_left, cover, value, roots, tree_features,
                      tree_feature_ptr, max_depth, out):
    """Path-dependent SHAP interaction values: ``out`` (n, d, d, K) is added to.

    Off the diagonal ``(phi_j(k | j present) - phi_j(k | j absent)) / 2`` (shap's definition);
    the diagonal is ``phi_j`` minus the row's off-diagonal sum, so each row sums to ``phi_j``.
    Only the features a tree splits on (``tree_features[tree_feature_ptr[t]:tree_feature_ptr[t+1]]``)
    are conditioned on: the others have zero interaction with that tree.
    """
    pf, pz, po, pw, stack_i, stack_f = _scratch(max_depth)
    d = X.shape[1]
    K = value.shape[1]
    phi = np.zeros((d, K))
    on = np.zeros((d, K))
    off = np.zeros((d, K))
    for r in range(X.shape[0]):
        for t in range(roots.shape[0]):
            phi[:] = 0.0
            _tree_path(X[r], left, right, feature, threshold, missing_left, cover, value, roots[t],
                       phi, pf, pz, po, pw, stack_i, stack_f, 0, -1)
            for j in range(d):
                for k in range(K):
                    out[r, j, j, k] += phi[j, k]
            for q in range(tree_feature_ptr[t], tree_feature_ptr[t + 1]):
                j = tree_features[q]
                on[:] = 0.0
                off[:] = 0.0
                _tree_path(X[r], left, right, feature, threshold, missing_left, cover, value, roots[t],
                           on, pf, pz, po, pw, stack_i, stack_f, 1, j)
                _tree_path(X[r], left, right, feature, threshold, missing_left, cover, value, roots[t],
                           off, pf, pz, po, pw, stack_i, stack_f, -1, j)
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
def _indep(gx, gz, left, right, feature, value, root, state, path, stack, W, scale, phi):
    """One tree and one (x, z) pair, depth first with an explicit stack (no recursion: see
    ``_tree_path``). ``gx`` / ``gz`` hold 1 where x / z goes left at a node. A pending branch is
    (node, a, b, path length before it, feature, side): side 2 means the feature is taken from z
    on that branch."""
    K = value.shape[1]
    stack[0, 0] = root
    stack[0, 1] = 0
    stack[0, 2] = 0
    stack[0, 3] = 0
    stack[0, 4] = -1
    stack[0, 5] = 0
    top = 1
    length = 0
    while top > 0:
        top -= 1
        node = stack[top, 0]
        a = stack[top, 1]
        b = stack[top, 2]
        before = stack[top, 3]
        while length > before:  # leave the features of the branch just finished
            length -= 1
            state[path[length]] = 0
        if stack[top, 4] >= 0:
            path[length] = stack[top, 4]
            state[stack[top, 4]] = stack[top, 5]
            length += 1
        while left[node] >= 0:
            f = feature[node]
            s = state[f]
            if s == 1:
                go_left = gx[node] != 0
            elif s == 2:
                go_left = gz[node] != 0
            else:
                xl = gx[node] != 0
                zl = gz[node] != 0
                go_left = xl
                if xl != zl:
                    stack[top, 0] = left[node] if zl else right[node]
                    stack[top, 1] = a
                    stack[top, 2] = b + 1
                    stack[top, 3] = length
                    stack[top, 4] = f
                    stack[top, 5] = 2
                    top += 1
                    path[length] = f
                    state[f] = 1
                    length += 1
                    a += 1
            node = left[node] if go_left else right[node]
        if length == 0:
            continue
        wx = W[a - 1, b] * scale if a > 0 else 0.0
        wz = W[a, b - 1] * scale if b > 0 else 0.0
        for i in range(length):
            f = path[i]
            w = wx if state[f] == 1 else -wz
            for k in range(K):
                phi[f, k] += w * value[node, k]
    while length > 0:
        length -= 1
        state[path[length]] = 0


@njit(cache=True, nogil=True)
def directions(X, left, feature, threshold, missing_left, out):
    """``out[r, node] = 1`` where row r goes left at an internal node (int8, (n, n_nodes))."""
    for r in range(X.shape[0]):
        for node in range(left.shape[0]):
            if left[node] >= 0:
                out[r, node] = 1 if _goes_left(X[r, feature[node]], threshold[node], missing_left[node]) else 0


@njit(cache=True, nogil=True)
def interventional(X, GZ, bg_ptr, bg_row, bg_weight, left, right, feature, threshold, missing_left, value, roots,
                   max_depth, W, out):
    """Interventional SHAP values against a background given by its directions ``GZ``
    (:func:`directions`): ``out`` (n, d, K) is added to. Directions are compared once per node
    and row, not once per (row, background row) pair. Tree ``t`` walks only the background rows
    ``bg_row[bg_ptr[t]:bg_ptr[t+1]]``, each weighted by ``bg_weight`` (the share of background
    rows that take the same direction at every node of that tree: they give the same game)."""
    d = X.shape[1]
    state = np.zeros(d, dtype=np.int8)
    path = np.zeros(max_depth + 1, dtype=np.int64)
    stack = np.zeros((max_depth + 2, 6), dtype=np.int64)
    gx = np.zeros((1, left.shape[0]), dtype=np.int8)
    for r in range(X.shape[0]):
        directions(X[r:r + 1], left, feature, threshold, missing_left, gx)
        for t in range(roots.shape[0]):
            for q in range(bg_ptr[t], bg_ptr[t + 1]):
                _indep(gx[0], GZ[bg_row[q]], left, right, feature, value, roots[t], state, path, stack, W,
                       bg_weight[q], out[r])
