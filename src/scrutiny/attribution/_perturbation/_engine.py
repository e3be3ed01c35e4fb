"""The rounds driver shared by LIME, C-LIME and KernelSHAP.

A *problem* splits the inputs into groups that share a design family (same number of
interpretable features), and knows how to draw design block ``b`` of a group, evaluate the
model on it for some inputs, and solve the surrogates from all blocks so far. The driver

1. draws block 0 (``n_samples`` rows, or the initial block of ``n_samples="auto"``),
2. evaluates it for the group's active inputs and solves,
3. with ``"auto"``: retires every input whose standard errors pass the stopping rule
   (:func:`._design.converged`) and draws the next block for the others, until the cap.

Blocks depend only on the seed, the group's number of features and the block number, so an
input's result depends only on its own stopping time: rows explained together equal rows
explained one by one, whatever else is in the batch.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple, Protocol, Sequence

import numpy as np

from ...exceptions import ConvergenceWarning
from ._design import converged
from . import external_stacklevel
from ._wls import WLSResult


class Problem(Protocol):
    def groups(self) -> list[tuple[Any, np.ndarray]]: ...

    def sizes(self, key: Any) -> Sequence[int]: ...

    def draw(self, key: Any, block: int, m: int) -> Any: ...

    def evaluate(self, key: Any, idx: np.ndarray, block: Any) -> np.ndarray: ...

    def solve(self, key: Any, idx: np.ndarray, blocks: list, Y: np.ndarray, target: np.ndarray) -> WLSResult: ...


class Fitted(NamedTuple):
    """Per-input surrogate results (lists, since groups may differ in their number of features)."""

    coef: list  # (M_i, K) per input
    intercept: np.ndarray  # (n, K)
    stderr: list  # (M_i,) per input
    score: np.ndarray  # (n,)
    n_used: np.ndarray  # (n,) samples used per input
    converged: np.ndarray  # (n,) bool


def run(problem: Problem, n_inputs: int, n_outputs: int, target: np.ndarray, tol: float, owner: str) -> Fitted:
    """Fit every input's surrogate, adding blocks while ``n_samples="auto"`` asks for more."""
    coef: list = [None] * n_inputs
    stderr: list = [None] * n_inputs
    intercept = np.zeros((n_inputs, n_outputs))
    score = np.full(n_inputs, np.nan)
    n_used = np.zeros(n_inputs, dtype=np.int64)
    done_ok = np.ones(n_inputs, dtype=bool)
    auto = False
    for key, idx in problem.groups():
        sizes = list(problem.sizes(key))
        auto = auto or len(sizes) > 1
        active = np.asarray(idx)
        blocks: list = []
        responses: dict[int, list] = {int(i): [] for i in active}
        for b, m in enumerate(sizes):
            block = problem.draw(key, b, m)
            blocks.append(block)
            Yb = problem.evaluate(key, active, block)
            for j, i in enumerate(active):
                responses[int(i)].append(Yb[j])
            Y = np.stack([np.concatenate(responses[int(i)], axis=0) for i in active])
            res = problem.solve(key, active, blocks, Y, target[active])
            last = b == len(sizes) - 1
            if len(sizes) > 1:
                ct = res.coef[np.arange(len(active)), :, target[active]]
                ok = converged(ct, res.stderr, tol)
            else:
                ok = np.ones(len(active), dtype=bool)
            finish = ok | last
            for j in np.flatnonzero(finish):
                i = int(active[j])
                coef[i] = res.coef[j]
                stderr[i] = res.stderr[j]
                intercept[i] = res.intercept[j]
                score[i] = res.score[j]
                n_used[i] = Y.shape[1]
                done_ok[i] = bool(ok[j])
                del responses[i]
            active = active[~finish]
            if active.size == 0:
                break
    if auto and not done_ok.all():
        warnings.warn(
            f"{owner}: n_samples='auto' reached its cap ({int(n_used.max())} samples) before the standard "
            f"errors of {int((~done_ok).sum())} input(s) fell below tol times the range of their attributions; "
            "their explanations are noisier. Raise tol or pass a larger fixed n_samples.",
            ConvergenceWarning,
            stacklevel=external_stacklevel(),
        )
    return Fitted(coef, intercept, stderr, score, n_used, done_ok)


def pad(arrays: list, width: int) -> np.ndarray:
    """Stack per-input arrays whose first axis varies, zero-padded to ``width``."""
    first = arrays[0]
    out = np.zeros((len(arrays), width) + first.shape[1:])
    for i, a in enumerate(arrays):
        out[i, : a.shape[0]] = a
    return out
