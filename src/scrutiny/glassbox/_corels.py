"""Driver of the rule-list search: patterns, state arrays, anytime limits.

:func:`search` takes a binary antecedent matrix, class labels and weights, merges identical rows
into patterns, builds the bit vectors and the state arrays, and calls the compiled
:func:`._corels_search.run_search` in slices of expansions, checking the time, node and memory
limits between slices and growing the arrays when the kernel asks. It returns a
:class:`SearchResult`; ``certified`` is true only when the queue emptied.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np

from . import _corels_search as _k

POLICIES = {"lower_bound": _k.LOWER_BOUND, "curiosity": _k.CURIOSITY, "objective": _k.OBJECTIVE, "bfs": _k.BFS, "dfs": _k.DFS}
MAP_TYPES = {"none": 0, "prefix": 1, "captured": 2}
BOUNDS = ("lookahead", "support", "accurate_support", "equivalent_points", "symmetry")


class SearchResult(NamedTuple):
    rules: list  # antecedent indices of the best prefix, in order
    objective: float  # R(d) of the best list (misclassification rate + regularization * length)
    lower_bound: float  # no list (within max_length) has a smaller objective
    certified: bool  # the search space was exhausted: objective == lower_bound
    stop_reason: str  # "optimal", "time_limit", "node_limit" or "memory_limit"
    n_nodes: int  # prefixes inserted into the trie (queued)
    n_evaluated: int  # prefixes whose objective was computed
    n_expanded: int  # prefixes expanded
    search_time: float  # seconds
    n_patterns: int  # distinct rows of the antecedent matrix


def pack_bits(B: np.ndarray) -> np.ndarray:
    """Rows of a boolean matrix (n_rows, n_bits) as uint64 words, bit ``i % 64`` of word ``i // 64``."""
    n_rows, n_bits = B.shape
    n_words = max(1, (n_bits + 63) // 64)
    padded = np.zeros((n_rows, n_words * 64), dtype=np.uint8)
    padded[:, :n_bits] = B
    return np.packbits(padded.reshape(n_rows, n_words, 64), axis=2, bitorder="little").reshape(n_rows, n_words * 8).view(np.uint64).copy()


class _State:
    """Every array the kernel reads and writes; grown by copying."""

    def __init__(self, n_words: int, n_classes: int, key_words: int, n_rules: int, use_map: bool):
        cap = 4 * n_rules + 64
        self.rej = np.zeros((cap, (n_rules + 63) // 64), dtype=np.uint64)
        self.parent = np.full(cap, -1, dtype=np.int64)
        self.rule = np.zeros(cap, dtype=np.int64)
        self.depth = np.zeros(cap, dtype=np.int64)
        self.lbh = np.zeros(cap)
        self.eqv = np.zeros(cap)
        self.U = np.zeros((cap, n_words), dtype=np.uint64)
        self.Uc = np.zeros((cap, n_classes))
        self.nchild = np.zeros(cap, dtype=np.int64)
        self.status = np.zeros(cap, dtype=np.int8)
        self.serial = np.zeros(cap, dtype=np.int64)
        self.free = np.arange(cap - 1, -1, -1, dtype=np.int64)
        hcap = 2 * n_rules + 64
        self.hp = np.zeros(hcap)
        self.hs = np.zeros(hcap, dtype=np.int64)
        self.hn = np.zeros(hcap, dtype=np.int64)
        mcap = 1 << max(6, int(np.ceil(np.log2(4 * n_rules + 4)))) if use_map else 1
        self.mk = np.zeros((mcap, key_words), dtype=np.uint64)
        self.mlb = np.zeros(mcap)
        self.mnode = np.zeros(mcap, dtype=np.int64)
        self.mserial = np.zeros(mcap, dtype=np.int64)
        self.mused = np.zeros(mcap, dtype=np.int8)

    _NODE = ("parent", "rule", "depth", "lbh", "eqv", "U", "Uc", "rej", "nchild", "status", "serial")
    _HEAP = ("hp", "hs", "hn")

    def nbytes(self) -> int:
        return sum(a.nbytes for a in vars(self).values())

    def grow(self, ic: np.ndarray, n_rules: int, use_map: bool) -> None:
        if ic[_k.IC_NFREE] < n_rules:
            old = self.parent.shape[0]
            new = 2 * old
            for name in self._NODE:
                a = getattr(self, name)
                b = np.zeros((new,) + a.shape[1:], dtype=a.dtype)
                b[:old] = a
                setattr(self, name, b)
            nfree = int(ic[_k.IC_NFREE])
            free = np.empty(new, dtype=np.int64)
            free[:nfree] = self.free[:nfree]
            free[nfree:nfree + new - old] = np.arange(new - 1, old - 1, -1)
            self.free = free
            ic[_k.IC_NFREE] = nfree + new - old
        if self.hp.shape[0] - ic[_k.IC_HEAP] < n_rules:
            for name in self._HEAP:
                a = getattr(self, name)
                b = np.zeros(2 * a.shape[0], dtype=a.dtype)
                b[: a.shape[0]] = a
                setattr(self, name, b)
        if use_map and 2 * (ic[_k.IC_MAP] + n_rules) > self.mk.shape[0]:
            used = self.mused.astype(bool)
            keys, lbs, nodes, serials = self.mk[used], self.mlb[used], self.mnode[used], self.mserial[used]
            new = 2 * self.mk.shape[0]
            while 2 * (len(keys) + n_rules) > new:
                new *= 2
            self.mk = np.zeros((new, keys.shape[1]), dtype=np.uint64)
            self.mlb = np.zeros(new)
            self.mnode = np.zeros(new, dtype=np.int64)
            self.mserial = np.zeros(new, dtype=np.int64)
            self.mused = np.zeros(new, dtype=np.int8)
            _rehash(self.mk, self.mlb, self.mnode, self.mserial, self.mused, keys, lbs, nodes, serials)

    def grown_nbytes(self) -> int:
        """Bytes after the next :meth:`grow` (an upper estimate: everything doubles)."""
        return 2 * self.nbytes()


@_k.jit
def _rehash(mk, mlb, mnode, mserial, mused, keys, lbs, nodes, serials):
    for j in range(keys.shape[0]):
        slot = _k._map_find(mk, mused, keys[j])
        mused[slot] = 1
        mk[slot] = keys[j]
        mlb[slot], mnode[slot], mserial[slot] = lbs[j], nodes[j], serials[j]


def search(
    antecedents: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray,
    n_classes: int,
    regularization: float,
    *,
    policy: str = "lower_bound",
    map_type: str = "captured",
    ablation: tuple = (),
    max_length: int | None = None,
    time_limit: float | None = None,
    node_limit: int | None = None,
    memory_limit: float | None = None,
) -> SearchResult:
    """Certifiably optimal rule list over the columns of ``antecedents`` (n_samples, n_rules) bool.

    ``y`` holds class indices in ``[0, n_classes)``, ``weights`` non-negative sample weights.
    ``memory_limit`` is in MiB. See :class:`SearchResult`.
    """
    start = time.perf_counter()
    B = np.ascontiguousarray(antecedents, dtype=bool)
    n_rules = B.shape[1]
    # identical rows -> one pattern (unique over the packed rows: far faster than over the bools)
    packed = np.packbits(B, axis=1)
    rows = np.ascontiguousarray(packed).view(np.dtype((np.void, packed.shape[1]))).ravel()
    _, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    patterns = B[first]
    n_patterns = patterns.shape[0]
    cnt = np.zeros((n_patterns, n_classes))
    np.add.at(cnt, (inverse, y), weights)
    total = float(cnt.sum())
    eqm = cnt.sum(axis=1) - cnt.max(axis=1)
    if "equivalent_points" in ablation:
        eqm = np.zeros_like(eqm)
    A = pack_bits(patterns.T) if n_rules else np.zeros((0, max(1, (n_patterns + 63) // 64)), dtype=np.uint64)
    n_words = A.shape[1]
    mtype = 0 if "symmetry" in ablation else MAP_TYPES[map_type]
    key_words = (n_rules + 63) // 64 if mtype == 1 else n_words
    st = _State(n_words, n_classes, max(1, key_words), max(1, n_rules), mtype != 0)
    lam_w = float(regularization) * total
    class_tot = cnt.sum(axis=0)
    default_err = total - class_tot.max()

    ic = np.zeros(10, dtype=np.int64)
    ic[_k.IC_NFREE] = st.free.shape[0]
    ic[_k.IC_NODE_LIMIT] = -1 if node_limit is None else int(node_limit)
    fc = np.array([default_err, lam_w, total])
    opt = np.zeros(6, dtype=np.int64)
    opt[_k.OPT_LOOKAHEAD] = "lookahead" not in ablation
    opt[_k.OPT_SUPPORT] = "support" not in ablation
    opt[_k.OPT_ACCURATE] = "accurate_support" not in ablation
    opt[_k.OPT_MAP] = mtype
    opt[_k.OPT_POLICY] = POLICIES[policy]
    opt[_k.OPT_MAXLEN] = n_rules if max_length is None else min(int(max_length), n_rules)
    best_rules = np.zeros(n_rules + 1, dtype=np.int64)

    # the root: the empty prefix
    ic[_k.IC_NFREE] -= 1
    root = int(st.free[ic[_k.IC_NFREE]])
    all_bits = pack_bits(np.ones((1, n_patterns), dtype=bool))[0]
    st.parent[root], st.depth[root], st.lbh[root], st.eqv[root] = -1, 0, 0.0, float(eqm.sum())
    st.U[root], st.Uc[root], st.status[root], st.serial[root] = all_bits, class_tot, _k.QUEUED, 0
    root_lb = st.eqv[root] + (lam_w if opt[_k.OPT_LOOKAHEAD] else 0.0)
    if n_rules and opt[_k.OPT_MAXLEN] > 0 and root_lb < default_err:
        st.hp[0], st.hs[0], st.hn[0] = 0.0, 0, root
        ic[_k.IC_HEAP] = 1
        ic[_k.IC_INSERTED] = 1

    use_map = mtype != 0
    budget = 1024
    reason = "optimal"
    while True:
        t0 = time.perf_counter()
        status = _k.run_search(
            A, cnt, eqm, st.parent, st.rule, st.depth, st.lbh, st.eqv, st.U, st.Uc, st.rej, st.nchild, st.status,
            st.serial, st.free, st.hp, st.hs, st.hn, st.mk, st.mlb, st.mnode, st.mserial, st.mused,
            best_rules, ic, fc, opt, budget,
        )
        if status == _k.DONE:
            break
        if status == _k.NODE_LIMIT:
            reason = "node_limit"
            break
        if status == _k.NEED_GROW:
            if memory_limit is not None and st.grown_nbytes() > memory_limit * 2**20:
                reason = "memory_limit"
                break
            st.grow(ic, n_rules, use_map)
        elif time.perf_counter() - t0 < 0.05:
            budget *= 2  # slices of roughly 50 ms keep the time-limit checks cheap and prompt
        if time_limit is not None and time.perf_counter() - start >= time_limit:
            reason = "time_limit"
            break
    best = float(fc[_k.FC_BEST])
    if reason == "optimal":
        lower = best
    else:
        lower = float(_k.open_lower_bound(st.lbh, st.eqv, st.status, st.hn, ic, fc))
        if ic[_k.IC_HEAP] == 0 or lower >= best:
            reason, lower = "optimal", best
    return SearchResult(
        rules=[int(r) for r in best_rules[: ic[_k.IC_BESTLEN]]],
        objective=best / total,
        lower_bound=lower / total,
        certified=reason == "optimal",
        stop_reason=reason,
        n_nodes=int(ic[_k.IC_INSERTED]),
        n_evaluated=int(ic[_k.IC_EVALUATED]),
        n_expanded=int(ic[_k.IC_EXPANDED]),
        search_time=time.perf_counter() - start,
        n_patterns=int(n_patterns),
    )
