"""The compiled branch-and-bound search of :class:`~scrutiny.glassbox.RuleListClassifier`.

Contract: :func:`run_search` advances a search whose whole state lives in the arrays of a
:class:`SearchState` (built and grown by ``_corels.py``) by at most ``budget`` node expansions
and returns a status code. It never allocates the state, so the Python driver can check time,
node and memory limits between calls and grow the arrays when :data:`NEED_GROW` comes back.

The data are *patterns*, not samples: rows with identical antecedent values are merged (their
per-class weights summed), because every rule list treats them alike. A prefix's not-captured
set ``U`` is a bit vector over patterns (uint64 words); a child's captured class weights are
summed over the set bits of ``U & A[r]``.

Objective (CORELS, in weight units): ``R(d) = errors(d) + lam_w * len(d)`` with
``lam_w = regularization * total_weight``. A node stores the hierarchical bound ``lbh`` (errors
of its own rules plus ``lam_w * depth``) and the equivalent-points term ``eqv`` (the minority
weight of the patterns in ``U``, which no extension can classify correctly); its lower bound is
``lbh + eqv``. Bounds (names as in ``ablation``):

* hierarchical: a node with ``lbh + eqv >= best`` is never expanded (always on);
* ``lookahead``: a child is queued only if ``lbh + eqv + lam_w < best`` (any extension adds a rule);
* ``support`` / ``accurate_support``: a rule that captures, or correctly classifies, less than
  ``lam_w`` is never useful (removing it lowers the objective), so the child is skipped, and
  the rule is skipped in every descendant too (``rej``), since both quantities only shrink;
* ``equivalent_points``: ``eqv`` above (zero when switched off);
* ``symmetry``: a hash map keyed by the prefix's antecedent set (``map_type=1``) or by its
  not-captured vector (``map_type=2``); a prefix whose key was seen with a lower bound no larger
  is dropped, and a dominated queued node is marked dead.

Policies order the queue by: the lower bound; curiosity (the lower bound divided by the fraction
of the weight the prefix captures, so prefixes that explain much at little cost come first); the
objective; depth first-in-first-out (``bfs``); or depth last-in-first-out (``dfs``).

The trie is the parent links of the node arena; an expanded node stays while it has live
children and is freed (cascading upwards) when the last one goes. When the incumbent improves,
the queue and the map are swept (garbage collection) of everything the new incumbent prunes.
"""

from __future__ import annotations

import numba
import numpy as np
from numba.cpython.unsafe.numbers import trailing_zeros

# status codes returned by run_search
DONE = 0  # queue empty: the incumbent is optimal
BUDGET = 1  # expansion budget of this call used up
NEED_GROW = 2  # an array is nearly full: grow it and call again
NODE_LIMIT = 3  # node_limit reached

# node states
FREE, QUEUED, EXPANDED, DEAD = 0, 1, 2, 3

# policies
LOWER_BOUND, CURIOSITY, OBJECTIVE, BFS, DFS = 0, 1, 2, 3, 4

# indices into the int64 counter array `ic`
IC_HEAP, IC_NFREE, IC_MAP, IC_SEQ, IC_EXPANDED, IC_EVALUATED, IC_INSERTED, IC_BESTLEN, IC_GC, IC_NODE_LIMIT = range(10)
# indices into the float64 array `fc`
FC_BEST, FC_LAMW, FC_TOTAL = range(3)
# indices into the int64 option array `opt`
OPT_LOOKAHEAD, OPT_SUPPORT, OPT_ACCURATE, OPT_MAP, OPT_POLICY, OPT_MAXLEN = range(6)

jit = numba.njit(cache=True, nogil=True)


@jit
def _heap_less(hp, hs, a, b):
    return hp[a] < hp[b] or (hp[a] == hp[b] and hs[a] < hs[b])


@jit
def _heap_swap(hp, hs, hn, a, b):
    hp[a], hp[b] = hp[b], hp[a]
    hs[a], hs[b] = hs[b], hs[a]
    hn[a], hn[b] = hn[b], hn[a]


@jit
def _sift_up(hp, hs, hn, i):
    while i > 0:
        parent = (i - 1) >> 1
        if _heap_less(hp, hs, i, parent):
            _heap_swap(hp, hs, hn, i, parent)
            i = parent
        else:
            break


@jit
def _sift_down(hp, hs, hn, i, size):
    while True:
        left = 2 * i + 1
        if left >= size:
            break
        best = left
        right = left + 1
        if right < size and _heap_less(hp, hs, right, left):
            best = right
        if _heap_less(hp, hs, best, i):
            _heap_swap(hp, hs, hn, i, best)
            i = best
        else:
            break


@jit
def _hash(key):
    h = np.uint64(1469598103934665603)
    for w in range(key.shape[0]):
        h ^= key[w]
        h *= np.uint64(1099511628211)
        h ^= h >> np.uint64(29)
    return h


@jit
def _map_find(mk, mused, key):
    """Slot holding ``key``, or the empty slot where it would go (open addressing)."""
    mask = mk.shape[0] - 1
    slot = np.int64(_hash(key) & np.uint64(mask))
    while mused[slot]:
        same = True
        for w in range(key.shape[0]):
            if mk[slot, w] != key[w]:
                same = False
                break
        if same:
            return slot
        slot = (slot + 1) & mask
    return slot


@jit
def _release(node, parent, nchild, status, free, ic):
    """Free ``node`` and every ancestor left without live children (trie garbage collection)."""
    while node >= 0:
        status[node] = FREE
        free[ic[IC_NFREE]] = node
        ic[IC_NFREE] += 1
        p = parent[node]
        if p < 0:
            break
        nchild[p] -= 1
        if nchild[p] > 0 or status[p] != EXPANDED:
            break
        node = p


@jit
def _collect_garbage(lbh, eqv, parent, nchild, status, free, hp, hs, hn, mk, mlb, mnode, mserial, mused, ic, fc, opt):
    best = fc[FC_BEST]
    slack = fc[FC_LAMW] if opt[OPT_LOOKAHEAD] else 0.0
    keep = 0
    for i in range(ic[IC_HEAP]):
        n = hn[i]
        if status[n] == DEAD or lbh[n] + eqv[n] + slack >= best:
            _release(n, parent, nchild, status, free, ic)
        else:
            hp[keep], hs[keep], hn[keep] = hp[i], hs[i], hn[i]
            keep += 1
    ic[IC_HEAP] = keep
    for i in range(keep // 2 - 1, -1, -1):
        _sift_down(hp, hs, hn, i, keep)
    if opt[OPT_MAP] == 0:
        return
    # rebuild the map without entries whose bound the incumbent now prunes
    n_used = ic[IC_MAP]
    keys = np.empty((n_used, mk.shape[1]), dtype=np.uint64)
    vals = np.empty(n_used)
    nodes = np.empty(n_used, dtype=np.int64)
    serials = np.empty(n_used, dtype=np.int64)
    k = 0
    for s in range(mk.shape[0]):
        if mused[s]:
            if mlb[s] + slack < best:
                keys[k] = mk[s]
                vals[k], nodes[k], serials[k] = mlb[s], mnode[s], mserial[s]
                k += 1
            mused[s] = 0
    for j in range(k):
        slot = _map_find(mk, mused, keys[j])
        mused[slot] = 1
        mk[slot] = keys[j]
        mlb[slot], mnode[slot], mserial[slot] = vals[j], nodes[j], serials[j]
    ic[IC_MAP] = k


@jit
def run_search(A, cnt, eqm, parent, rule, depth, lbh, eqv, U, Uc, rej, nchild, status, serial, free,
               hp, hs, hn, mk, mlb, mnode, mserial, mused, best_rules, ic, fc, opt, budget):
    """Advance the search by at most ``budget`` expansions; return a status code (see module)."""
    n_rules, n_words = A.shape
    n_classes = cnt.shape[1]
    lam_w = fc[FC_LAMW]
    total = fc[FC_TOTAL]
    use_look = opt[OPT_LOOKAHEAD] != 0
    use_support = opt[OPT_SUPPORT] != 0
    use_accurate = opt[OPT_ACCURATE] != 0
    map_type = opt[OPT_MAP]
    policy = opt[OPT_POLICY]
    max_len = opt[OPT_MAXLEN]
    n_rule_words = (n_rules + 63) // 64
    in_prefix = np.zeros(n_rule_words, dtype=np.uint64)
    chain = np.empty(n_rules + 1, dtype=np.int64)
    cap = np.empty(n_classes)
    ucnt = np.empty(n_classes)
    key = np.empty(mk.shape[1], dtype=np.uint64)
    new_rej = np.zeros(n_rule_words, dtype=np.uint64)
    made = np.empty(n_rules, dtype=np.int64)
    expanded_here = 0
    while True:
        if ic[IC_GC]:
            _collect_garbage(lbh, eqv, parent, nchild, status, free, hp, hs, hn, mk, mlb, mnode, mserial, mused, ic, fc, opt)
            ic[IC_GC] = 0
        if ic[IC_HEAP] == 0:
            return DONE
        if expanded_here >= budget:
            return BUDGET
        if ic[IC_NODE_LIMIT] >= 0 and ic[IC_INSERTED] >= ic[IC_NODE_LIMIT]:
            return NODE_LIMIT
        # room for every child of one expansion (the map stays at most half full)
        if ic[IC_NFREE] < n_rules or hp.shape[0] - ic[IC_HEAP] < n_rules or (
            map_type != 0 and 2 * (ic[IC_MAP] + n_rules) > mk.shape[0]
        ):
            return NEED_GROW
        # pop
        q = hn[0]
        size = ic[IC_HEAP] - 1
        ic[IC_HEAP] = size
        if size > 0:
            hp[0], hs[0], hn[0] = hp[size], hs[size], hn[size]
            _sift_down(hp, hs, hn, 0, size)
        best = fc[FC_BEST]
        lb_q = lbh[q] + eqv[q]
        if status[q] == DEAD or lb_q >= best or (use_look and lb_q + lam_w >= best):
            _release(q, parent, nchild, status, free, ic)
            continue
        expanded_here += 1
        ic[IC_EXPANDED] += 1
        # the prefix of q: its antecedents (root first) and their set
        d = depth[q]
        for w in range(n_rule_words):
            in_prefix[w] = 0
        node = q
        for k in range(d - 1, -1, -1):
            chain[k] = rule[node]
            in_prefix[rule[node] >> 6] |= np.uint64(1) << np.uint64(rule[node] & 63)
            node = parent[node]
        for w in range(n_rule_words):
            new_rej[w] = 0
        n_made = 0
        for r in range(n_rules):
            bit = np.uint64(1) << np.uint64(r & 63)
            if (in_prefix[r >> 6] | rej[q, r >> 6]) & bit:
                continue
            for c in range(n_classes):
                cap[c] = 0.0
            cap_eq = 0.0
            for w in range(n_words):
                m = U[q, w] & A[r, w]
                while m:
                    i = w * 64 + trailing_zeros(m)
                    for c in range(n_classes):
                        cap[c] += cnt[i, c]
                    cap_eq += eqm[i]
                    m &= m - np.uint64(1)
            n_cap = 0.0
            correct = 0.0
            for c in range(n_classes):
                n_cap += cap[c]
                if cap[c] > correct:
                    correct = cap[c]
            # Support bounds. Both quantities only shrink as the prefix grows, so a rule rejected
            # here stays rejected in every descendant: children inherit the rejections (`rej`).
            if n_cap <= 0.0 or (use_support and n_cap < lam_w) or (use_accurate and correct < lam_w):
                new_rej[r >> 6] |= bit
                continue
            ic[IC_EVALUATED] += 1
            lbh_c = lbh[q] + (n_cap - correct) + lam_w
            n_left = 0.0
            left_best = 0.0
            for c in range(n_classes):
                ucnt[c] = Uc[q, c] - cap[c]
                n_left += ucnt[c]
                if ucnt[c] > left_best:
                    left_best = ucnt[c]
            objective = lbh_c + (n_left - left_best)
            if objective < best:
                best = objective
                fc[FC_BEST] = best
                for k in range(d):
                    best_rules[k] = chain[k]
                best_rules[d] = r
                ic[IC_BESTLEN] = d + 1
                ic[IC_GC] = 1
            eq_c = eqv[q] - cap_eq if eqv[q] > 0.0 else 0.0
            if eq_c < 0.0:  # float round-off of the subtraction
                eq_c = 0.0
            lb_c = lbh_c + eq_c
            if d + 1 >= max_len or n_left <= 0.0:
                continue
            if lb_c >= best or (use_look and lb_c + lam_w >= best):
                continue
            # symmetry-aware map
            slot = -1
            if map_type != 0:
                if map_type == 1:
                    for w in range(n_rule_words):
                        key[w] = in_prefix[w]
                    key[r >> 6] |= np.uint64(1) << np.uint64(r & 63)
                else:
                    for w in range(n_words):
                        key[w] = U[q, w] & ~A[r, w]
                slot = _map_find(mk, mused, key)
                if mused[slot]:
                    if mlb[slot] <= lb_c:
                        continue
                    old = mnode[slot]
                    if serial[old] == mserial[slot] and status[old] == QUEUED:
                        status[old] = DEAD
            # create the child
            ic[IC_NFREE] -= 1
            child = free[ic[IC_NFREE]]
            ic[IC_SEQ] += 1
            parent[child] = q
            rule[child] = r
            depth[child] = d + 1
            lbh[child] = lbh_c
            eqv[child] = eq_c
            serial[child] = ic[IC_SEQ]
            status[child] = QUEUED
            nchild[child] = 0
            for w in range(n_words):
                U[child, w] = U[q, w] & ~A[r, w]
            for c in range(n_classes):
                Uc[child, c] = ucnt[c]
            for w in range(n_rule_words):
                rej[child, w] = rej[q, w]
            made[n_made] = child
            n_made += 1
            nchild[q] += 1
            ic[IC_INSERTED] += 1
            if slot >= 0:
                if not mused[slot]:
                    mused[slot] = 1
                    ic[IC_MAP] += 1
                    for w in range(key.shape[0]):
                        mk[slot, w] = key[w]
                mlb[slot] = lb_c
                mnode[slot] = child
                mserial[slot] = ic[IC_SEQ]
            h = ic[IC_HEAP]
            if policy == LOWER_BOUND:
                hp[h], hs[h] = lb_c, ic[IC_SEQ]
            elif policy == OBJECTIVE:
                hp[h], hs[h] = objective, ic[IC_SEQ]
            elif policy == CURIOSITY:
                hp[h], hs[h] = lb_c * total / (total - n_left), ic[IC_SEQ]
            elif policy == BFS:
                hp[h], hs[h] = float(d + 1), ic[IC_SEQ]
            else:
                hp[h], hs[h] = -float(d + 1), -ic[IC_SEQ]
            hn[h] = child
            ic[IC_HEAP] = h + 1
            _sift_up(hp, hs, hn, h)
        for k in range(n_made):
            for w in range(n_rule_words):
                rej[made[k], w] |= new_rej[w]
        if nchild[q] == 0:
            _release(q, parent, nchild, status, free, ic)
        else:
            status[q] = EXPANDED


@jit
def open_lower_bound(lbh, eqv, status, hn, ic, fc):
    """Smallest objective any unexplored list can reach: min(best, min over queued nodes of
    ``lbh + eqv + lam_w``) (every queued node's own objective was already evaluated)."""
    out = fc[FC_BEST]
    for i in range(ic[IC_HEAP]):
        n = hn[i]
        if status[n] == QUEUED:
            v = lbh[n] + eqv[n] + fc[FC_LAMW]
            if v < out:
                out = v
    return out
