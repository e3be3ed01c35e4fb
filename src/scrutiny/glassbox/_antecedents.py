"""Antecedent mining for rule lists: boolean conditions on the columns of X, and their conjunctions.

An antecedent is a tuple of :class:`Condition` (a conjunction). Mining, per column:

* binary (values within {0, 1}, not declared categorical): ``x == 1`` and ``x == 0`` (the
  feature and its negation, as pycorels does);
* categorical (declared): ``x == v`` for every level ``v`` (one-hot);
* continuous: ``x <= t`` and ``x > t`` at up to ``n_thresholds`` quantile thresholds (both
  directions).

Then conjunctions of up to ``max_card`` conditions on distinct columns. Every antecedent must
hold for a fraction of the rows in ``[min_support, max_support]``; antecedents that hold for
exactly the same rows as an earlier (shorter) one are dropped, since the search could not tell
them apart.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np


class Condition(NamedTuple):
    feature: int  # column index
    op: str  # "==", "<=" or ">"
    value: Any  # level or threshold


def _as_float(col: np.ndarray) -> np.ndarray | None:
    try:
        return col.astype(np.float64)
    except (TypeError, ValueError):
        return None


def holds(cond: Condition, column: np.ndarray) -> np.ndarray:
    """Boolean vector: where ``cond`` holds in ``column`` (the values of its feature)."""
    if cond.op == "==":
        return column == cond.value
    x = column.astype(np.float64)
    return x <= cond.value if cond.op == "<=" else x > cond.value


def evaluate(antecedents: list, columns: list) -> np.ndarray:
    """Boolean matrix (n_samples, n_antecedents): where each conjunction holds."""
    n = len(columns[0]) if columns else 0
    out = np.ones((n, len(antecedents)), dtype=bool)
    cache: dict = {}
    for j, conj in enumerate(antecedents):
        for cond in conj:
            if cond not in cache:
                cache[cond] = holds(cond, columns[cond.feature])
            out[:, j] &= cache[cond]
    return out


def describe(conj: tuple, feature_names: list, binary: np.ndarray) -> str:
    """Readable text of a conjunction, e.g. ``"age <= 23 and priors > 3"``."""
    parts = []
    for c in conj:
        name = feature_names[c.feature]
        if c.op == "==" and binary[c.feature]:
            parts.append(name if c.value == 1 else f"not {name}")
        elif c.op == "==":
            parts.append(f"{name} == {c.value}")
        else:
            parts.append(f"{name} {c.op} {c.value:.6g}")
    return " and ".join(parts)


def _thresholds(x: np.ndarray, n_thresholds: int) -> np.ndarray:
    levels = np.unique(x)
    if levels.size <= n_thresholds + 1:
        return levels[:-1]  # every split between distinct values
    q = np.arange(1, n_thresholds + 1) / (n_thresholds + 1)
    t = np.unique(np.quantile(x, q, method="lower"))
    return t[t < levels[-1]]


def base_conditions(columns: list, categorical: np.ndarray, n_thresholds: int) -> tuple[list, np.ndarray]:
    """Single-column conditions and whether each column is binary (for :func:`describe`)."""
    conds: list = []
    binary = np.zeros(len(columns), dtype=bool)
    for j, col in enumerate(columns):
        if categorical[j]:
            for v in np.unique(col):
                conds.append(Condition(j, "==", v.item() if hasattr(v, "item") else v))
            continue
        x = col.astype(np.float64)
        levels = np.unique(x)
        if np.all(np.isin(levels, (0.0, 1.0))):
            binary[j] = True
            conds.extend([Condition(j, "==", 1), Condition(j, "==", 0)])
            continue
        for t in _thresholds(x, n_thresholds):
            conds.extend([Condition(j, "<=", float(t)), Condition(j, ">", float(t))])
    return conds, binary


def mine(columns: list, categorical: np.ndarray, *, max_card: int, min_support: float, max_support: float,
         n_thresholds: int) -> tuple[list, np.ndarray, np.ndarray]:
    """Mine antecedents; return ``(antecedents, B, binary)`` with ``B`` of shape (n_samples, n_antecedents)."""
    n = len(columns[0])
    conds, binary = base_conditions(columns, categorical, n_thresholds)
    lo, hi = min_support * n, max_support * n
    base = evaluate([(c,) for c in conds], columns)
    antecedents: list = []
    blocks: list = []
    seen: set = set()

    def add(conj: tuple, vec: np.ndarray) -> None:
        s = vec.sum()
        if s < lo or s > hi or s == 0 or s == n:
            return
        key = np.packbits(vec).tobytes()
        if key in seen:
            return
        seen.add(key)
        antecedents.append(conj)
        blocks.append(vec)

    for i, c in enumerate(conds):
        add((c,), base[:, i])
    # conjunctions: extend every conjunction of size k by a condition on a later column
    frontier = [((i,), base[:, i]) for i in range(len(conds)) if base[:, i].sum() >= lo]
    for _ in range(2, max_card + 1):
        nxt = []
        for idx, vec in frontier:
            last_feature = conds[idx[-1]].feature
            for i in range(idx[-1] + 1, len(conds)):
                if conds[i].feature <= last_feature:
                    continue
                v = vec & base[:, i]
                if v.sum() < lo:
                    continue  # support only falls as conditions are added
                conj = tuple(conds[k] for k in idx) + (conds[i],)
                add(conj, v)
                nxt.append((idx + (i,), v))
        frontier = nxt
    B = np.column_stack(blocks) if blocks else np.zeros((n, 0), dtype=bool)
    return antecedents, B, binary

