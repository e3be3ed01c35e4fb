"""FasterRisk-style heuristic for sparse integer risk scores (private engine of RiskScoreClassifier).

Problem: minimise ``mean_i log(1 + exp(-y_i (b + x_i . lam) / scale)) + c0 * ||lam||_0`` over integer points
``lam`` with at most ``k`` non-zeros and ``lb <= lam <= ub``, and a real offset ``b``; ``y`` is +-1.

Steps (Liu et al. 2022, read from the algorithm description, own code):

1. sparse beam search: from the offset-only model, grow supports one feature at a time; every parent ranks the
   features it lacks by the magnitude of the loss gradient (only in a direction the bounds allow), each child is
   refitted by box-constrained coordinate descent (Newton steps with backtracking) warm-started at its parent;
   duplicate supports are dropped and the ``beam_width`` best children survive;
2. diverse pool: swap each feature of the best support for the features with the largest gradient once it is
   removed, keeping swaps within ``(1 + pool_tolerance)`` of the best loss;
3. star-ray search: for each pooled continuous solution ``beta`` try multipliers ``m`` from 1 to the largest that
   keeps ``m beta`` inside the bounds, round ``m beta`` sequentially (each step fixes the coordinate and direction
   that raise the loss least, RiskSLIM's SeqRd), re-fit the real offset and polish with discrete coordinate
   descent; the model is ``P(y=1) = sigmoid((b + x . lam) / m)``;
4. integer swaps (beyond FasterRisk): from the best three rounded models, swap one feature for one of the
   features with the largest loss gradient at the integer model, screen by a short DCD, keep the best move while
   it helps.

Every support-restricted fit runs on the data compressed to its distinct (rows restricted to the support, label)
pairs with counts: integer and binary features give a handful of distinct rows, which makes the thousands of small
fits cheap (the same idea as RiskSLIM's loss lookup table).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import expit

__all__ = ["RiskModel", "Compressed", "compress", "fit_offset", "polish", "heuristic_search", "objective"]


class RiskModel(NamedTuple):
    """One integer risk score: ``P(y=1 | x) = sigmoid((intercept + x . points) / scale)``."""

    points: np.ndarray  # (n_features,) int64
    intercept: float
    scale: float
    loss: float  # mean logistic loss on the training data
    objective: float  # loss + c0 * number of non-zero points


class Compressed(NamedTuple):
    """Distinct (x restricted to ``support``, label) rows with weights summing to one."""

    support: np.ndarray  # (s,) feature indices
    rows: np.ndarray  # (u, s)
    y: np.ndarray  # (u,) +-1
    w: np.ndarray  # (u,) counts / n


class _Codes(NamedTuple):
    inverse: list  # per feature: (n,) int64 value codes
    n_values: np.ndarray  # per feature: number of distinct values


def feature_codes(X: np.ndarray) -> _Codes:
    inv, nv = [], []
    for j in range(X.shape[1]):
        _, inverse = np.unique(X[:, j], return_inverse=True)
        inv.append(inverse.astype(np.int64).reshape(-1))
        nv.append(int(inverse.max()) + 1 if inverse.size else 1)
    return _Codes(inv, np.asarray(nv, dtype=np.int64))


def compress(X: np.ndarray, y: np.ndarray, support, codes: _Codes | None = None) -> Compressed:
    """Group the rows of ``X[:, support]`` with their labels; weights are counts / n."""
    support = np.asarray(sorted(support), dtype=np.int64)
    n = X.shape[0]
    key = (y > 0).astype(np.int64)
    size = 2.0
    if codes is not None:
        for j in support:
            size *= float(codes.n_values[j])
            if size > 2.0**60:
                break
            key = key * codes.n_values[j] + codes.inverse[j]
    if codes is None or size > 2.0**60:
        rows = np.column_stack([X[:, support], y]) if support.size else y[:, None]
        _, first, counts = np.unique(rows, axis=0, return_index=True, return_counts=True)
    else:
        _, first, counts = np.unique(key, return_index=True, return_counts=True)
    return Compressed(support, X[np.ix_(first, support)], y[first].astype(np.float64), counts / n)


def _loss(t: np.ndarray, c: Compressed, scale: float) -> float:
    return float(c.w @ np.logaddexp(0.0, -c.y * t / scale))


def fit_offset(t_points: np.ndarray, c: Compressed, scale: float, b0: float, lo=-np.inf, hi=np.inf) -> tuple[float, float]:
    """Minimise the loss over the real offset ``b`` in ``[lo, hi]``; returns (b, loss).

    Safeguarded Newton on a convex 1-D function: each step is capped at ``4 * scale`` (far from the optimum the
    curvature vanishes and a raw Newton step overshoots), halved until the loss does not rise, and the loop ends
    when the derivative vanishes (relative to the loss) or the offset sits at a bound it pushes against.
    """
    b = float(np.clip(b0, lo, hi))
    cur = _loss(t_points + b, c, scale)
    for _ in range(200):
        p = expit(-c.y * (t_points + b) / scale)
        g = -float(c.w @ (c.y * p)) / scale
        # |g| * scale below 1e-9 * loss leaves a loss error of order 1e-18: stop (further halvings only stall)
        if abs(g) * scale <= 1e-9 * cur + 1e-15 or (b <= lo and g > 0) or (b >= hi and g < 0):
            break
        h = float(c.w @ (p * (1 - p))) / scale**2
        step = -g / h if h > 0 else -np.sign(g) * 4 * scale
        step = float(np.clip(step, -4 * scale, 4 * scale))
        for _ in range(60):
            nb = float(np.clip(b + step, lo, hi))
            new = _loss(t_points + nb, c, scale)
            if new <= cur:
                break
            step *= 0.5
        else:
            break
        if nb == b:
            break
        b, cur = nb, new
    return b, cur


def fit_continuous(c: Compressed, beta: np.ndarray, b: float, lb: np.ndarray, ub: np.ndarray,
                   max_iter: int = 100, tol: float = 1e-12) -> tuple[np.ndarray, float, float]:
    """Box-constrained logistic fit (scale 1) on the support of ``c``: projected Newton with an active set and
    Armijo backtracking (supports hold at most k + 1 coordinates, so the Hessian solve is tiny); returns
    (beta, b, loss)."""
    A = np.column_stack([np.ones(c.rows.shape[0]), c.rows])
    lo = np.concatenate([[-np.inf], lb])
    hi = np.concatenate([[np.inf], ub])
    theta = np.clip(np.concatenate([[b], np.asarray(beta, dtype=np.float64)]), lo, hi)
    t = A @ theta
    cur = _loss(t, c, 1.0)
    for _ in range(max_iter):
        p = expit(-c.y * t)
        g = -A.T @ (c.w * c.y * p)
        active = ((theta <= lo) & (g > 0)) | ((theta >= hi) & (g < 0))
        free = ~active
        if not free.any():
            break
        H = (A[:, free] * (c.w * p * (1 - p))[:, None]).T @ A[:, free]
        d = np.zeros_like(theta)
        try:
            d[free] = -np.linalg.solve(H + 1e-10 * np.eye(H.shape[0]), g[free])
        except np.linalg.LinAlgError:
            d[free] = -g[free]
        step, accepted = 1.0, False
        for _ in range(40):
            new_theta = np.clip(theta + step * d, lo, hi)
            new_t = A @ new_theta
            new = _loss(new_t, c, 1.0)
            if new <= cur + 1e-4 * float(g @ (new_theta - theta)):
                accepted = True
                break
            step *= 0.5
        if not accepted:
            break
        gain = cur - new
        theta, t, cur = new_theta, new_t, new
        if gain <= tol * max(1.0, cur):
            break
    return theta[1:], float(theta[0]), cur


def objective(loss: float, points: np.ndarray, c0: float) -> float:
    return float(loss + c0 * np.count_nonzero(points))


def polish(c: Compressed, lam: np.ndarray, b: float, scale: float, lb: np.ndarray, ub: np.ndarray, c0: float,
           max_sweeps: int = 20, offset_bounds=(-np.inf, np.inf), window: int | None = None
           ) -> tuple[np.ndarray, float, float]:
    """Discrete coordinate descent (RiskSLIM's DCD) over the integer points of ``c``'s support.

    Each sweep evaluates every integer value of every coordinate with the others fixed (one vectorised call),
    takes the best move if it lowers loss + c0 * L0, and re-fits the offset. Returns (points, offset, loss).
    """
    lo, hi = offset_bounds
    lam = np.asarray(lam, dtype=np.float64).copy()
    if lam.size == 0:
        b, cur = fit_offset(np.zeros(c.rows.shape[0]), c, scale, b, lo, hi)
        return lam, b, cur
    t = c.rows @ lam
    b, cur = fit_offset(t, c, scale, b, lo, hi)
    for _ in range(max_sweeps):
        cols, vals = _moves(lam, lb, ub, window)
        T = (t + b)[:, None] + c.rows[:, cols] * (vals - lam[cols])[None, :]
        objs = c.w @ np.logaddexp(0.0, -c.y[:, None] * T / scale) + c0 * ((vals != 0).astype(float) - (lam[cols] != 0))
        i = int(np.argmin(objs))
        if cur - objs[i] <= 1e-12:
            break
        j, v = int(cols[i]), vals[i]
        t = t + (v - lam[j]) * c.rows[:, j]
        lam[j] = v
        b, cur = fit_offset(t, c, scale, b, lo, hi)
    return lam, b, cur


def _moves(lam: np.ndarray, lb: np.ndarray, ub: np.ndarray, window: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(coordinate, value) pairs a DCD sweep tries: every value in the bounds, or with ``window`` only values
    within ``window`` of the current one (coordinates at 0 always try their whole range)."""
    cols, vals = [], []
    for j in range(lam.size):
        lo_j, hi_j = lb[j], ub[j]
        if window is not None and lam[j] != 0:
            lo_j, hi_j = max(lo_j, lam[j] - window), min(hi_j, lam[j] + window)
        v = np.arange(lo_j, hi_j + 1, dtype=np.float64)
        cols.append(np.full(v.size, j))
        vals.append(v)
    return np.concatenate(cols), np.concatenate(vals)


def _sequential_round(c: Compressed, gamma: np.ndarray, b: float, scale: float, lb, ub) -> np.ndarray:
    """RiskSLIM's SeqRd: repeatedly fix the (coordinate, floor/ceil) whose rounding raises the loss least."""
    lam = gamma.astype(np.float64).copy()
    free = [j for j in range(lam.size) if lam[j] != np.round(lam[j])]
    while free:
        fr = np.asarray(free)
        down = np.clip(np.floor(lam[fr]), lb[fr], ub[fr])
        up = np.clip(np.ceil(lam[fr]), lb[fr], ub[fr])
        t = c.rows @ lam + b
        cand = np.concatenate([down, up])
        cols = np.concatenate([fr, fr])
        T = t[:, None] + c.rows[:, cols] * (cand - lam[cols])[None, :]
        losses = c.w @ np.logaddexp(0.0, -c.y[:, None] * T / scale)
        i = int(np.argmin(losses))
        lam[cols[i]] = cand[i]
        free.remove(int(cols[i]))
    return lam


def round_model(c: Compressed, beta: np.ndarray, b: float, lb, ub, c0: float, multipliers,
                offset_bounds=(-np.inf, np.inf), n_polish: int = 2) -> tuple:
    """Star-ray search: round ``m * beta`` for each multiplier (SeqRd, then the best real offset), polish the
    ``n_polish`` best rounded points by discrete coordinate descent, and return the best
    (points on the support, offset, scale, loss, objective).

    Polishing only the best few rays keeps the cost near FasterRisk's (which does not polish); the polished
    objective is never worse than the rounded one (benchmarks/_glassbox_risk.py, section risk)."""
    lo, hi = offset_bounds
    multipliers = np.asarray(multipliers, dtype=np.float64)
    done: dict = {}

    def evaluate(i: int) -> None:
        if i in done or not 0 <= i < multipliers.size:
            return
        m = float(multipliers[i])
        gamma = np.clip(m * beta, lb, ub)
        lam = _sequential_round(c, gamma, m * b, m, lb, ub)
        off, loss = fit_offset(c.rows @ lam, c, m, m * b, lo, hi)
        done[i] = (objective(loss, lam, c0), m, lam, off)

    # coarse to fine: every other ray and the last, then the neighbours of the best (a third fewer roundings)
    for i in list(range(0, multipliers.size, 2)) + [multipliers.size - 1]:
        evaluate(i)
    best_i = min(done, key=lambda i: done[i][0])
    evaluate(best_i - 1)
    evaluate(best_i + 1)
    rounded = sorted(done.values(), key=lambda r: r[0])
    best = None
    for _, m, lam, off in rounded[:n_polish]:
        lam, off, loss = polish(c, lam, off, m, lb, ub, c0, offset_bounds=offset_bounds, window=_WINDOW)
        obj = objective(loss, lam, c0)
        if best is None or obj < best[4] - 1e-13:
            best = (lam, off, m, loss, obj)
    return best


# DCD after rounding and when screening swaps moves each point by at most 1 per step (rounded points are near
# their local optimum); full-range DCD polishes the swap winners and runs inside certification
_WINDOW = 1


def ray_multipliers(beta: np.ndarray, lb: np.ndarray, ub: np.ndarray, n_rays: int) -> np.ndarray:
    """1 .. the largest m keeping ``m * beta`` in the bounds (FasterRisk's star rays), ``n_rays`` values; when a
    coefficient already sits at its bound, 1 down to 0.5 instead (rounding then lets points reach the bound
    from a slightly larger effective coefficient, as FasterRisk does)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        lim = np.where(beta > 0, ub / beta, np.where(beta < 0, lb / beta, np.inf))
    mmax = float(np.min(lim)) if lim.size else np.inf
    if not np.isfinite(mmax):
        return np.array([1.0])
    if mmax <= 1.0 + 1e-9:
        return np.linspace(1.0, 0.5, n_rays)
    return np.linspace(1.0, mmax, n_rays)


class _Fit(NamedTuple):
    support: tuple
    beta: np.ndarray  # on the support, in support order
    b: float
    loss: float


def _fit_support(X, y, codes, support, warm: dict, b, lb, ub) -> _Fit:
    sup = tuple(sorted(support))
    c = compress(X, y, sup, codes)
    beta0 = np.array([warm.get(j, 0.0) for j in sup])
    idx = np.asarray(sup, dtype=np.int64)
    beta, b, loss = fit_continuous(c, beta0, b, lb[idx], ub[idx])
    return _Fit(sup, beta, b, loss)


def _gradient(X, y, fit: _Fit) -> np.ndarray:
    idx = np.asarray(fit.support, dtype=np.int64)
    score = fit.b + (X[:, idx] @ fit.beta if idx.size else 0.0)
    r = y * expit(-y * score)
    return -(X.T @ r) / X.shape[0]


def _rank(grad: np.ndarray, exclude, lb, ub, count: int) -> np.ndarray:
    """Features whose loss falls in a direction the bounds allow, by |gradient|; at most ``count``."""
    ok = ((grad < 0) & (ub > 0)) | ((grad > 0) & (lb < 0))
    ok[list(exclude)] = False
    score = np.where(ok, np.abs(grad), -1.0)
    order = np.argsort(-score, kind="stable")[:count]
    return order[score[order] > 0]


def heuristic_search(X: np.ndarray, y: np.ndarray, k: int, lb: np.ndarray, ub: np.ndarray, c0: float,
                     scale: float | None, beam_width: int = 10, pool_size: int = 50, pool_tolerance: float = 0.05,
                     max_swaps: int = 50, n_rays: int = 20, offset_bounds=(-np.inf, np.inf),
                     n_candidates: int = 8, n_swap_starts: int = 3) -> list[RiskModel]:
    """The FasterRisk pipeline; returns the pool of integer models sorted by objective (best first).

    ``scale=None`` searches the multiplier (star rays); a float fixes it.
    """
    n, p = X.shape
    codes = feature_codes(X)
    pos = float(np.mean(y > 0))
    b0 = float(np.log(pos / (1 - pos)))
    root = _fit_support(X, y, codes, (), {}, b0, lb, ub)
    beam = [root]
    seen = {(): root}
    for _ in range(k):
        children: dict = {}
        for parent in beam:
            grad = _gradient(X, y, parent)
            warm = dict(zip(parent.support, parent.beta))
            for j in _rank(grad, parent.support, lb, ub, beam_width):
                sup = tuple(sorted(parent.support + (int(j),)))
                if sup in children:
                    continue
                children[sup] = _fit_support(X, y, codes, sup, warm, parent.b, lb, ub)
        if not children:
            break
        seen.update(children)
        beam = sorted(children.values(), key=lambda f: f.loss)[:beam_width]
    # diverse pool around the best solution of the largest size reached
    best = beam[0]
    pool = {f.support: f for f in beam}
    for j in best.support:
        rest = tuple(s for s in best.support if s != j)
        warm = {s: v for s, v in zip(best.support, best.beta) if s != j}
        reduced = _Fit(rest, np.array([warm[s] for s in rest]), best.b, np.nan)
        grad = _gradient(X, y, reduced)
        for cand in _rank(grad, best.support, lb, ub, max_swaps):
            sup = tuple(sorted(rest + (int(cand),)))
            if sup in pool:
                continue
            fit = _fit_support(X, y, codes, sup, warm, best.b, lb, ub)
            if fit.loss <= (1 + pool_tolerance) * best.loss:
                pool[sup] = fit
    # smaller supports are candidates too when c0 makes sparsity pay
    if c0 > 0:
        for f in seen.values():
            pool.setdefault(f.support, f)
    fits = sorted(pool.values(), key=lambda f: f.loss)[:pool_size]
    models: dict = {}
    for f in fits:
        idx = np.asarray(f.support, dtype=np.int64)
        c = compress(X, y, f.support, codes)
        if scale is None:
            mults = ray_multipliers(f.beta, lb[idx], ub[idx], n_rays)
        else:
            mults = [float(scale)]
        lam, off, m, loss, obj = round_model(c, f.beta, f.b, lb[idx], ub[idx], c0, mults, offset_bounds)
        points = np.zeros(p, dtype=np.int64)
        points[idx] = np.round(lam).astype(np.int64)
        key = (tuple(points), round(m, 12))
        if key not in models or obj < models[key].objective:
            models[key] = RiskModel(points, float(off), float(m), float(loss), float(obj))
    ranked = sorted(models.values(), key=lambda r: r.objective)
    # local search from the best few (distinct) models: one swap from a runner-up can beat two from the best
    starts = ranked[:n_swap_starts]
    for start in starts:
        improved = integer_swaps(X, y, codes, start, k, lb, ub, c0, offset_bounds, n_candidates)
        if improved.objective < start.objective - 1e-13:
            ranked.append(improved)
    return sorted(ranked, key=lambda r: r.objective)


def integer_swaps(X, y, codes, model: RiskModel, k: int, lb, ub, c0: float, offset_bounds, n_candidates: int,
                  max_rounds: int = 5) -> RiskModel:
    """Local search on the integer model at its scale: drop one feature (or use a free slot), bring in one of the
    ``n_candidates`` features with the largest loss gradient, polish by DCD; keep the best move while it helps.

    FasterRisk's diverse pool swaps features of the continuous solution only; swapping after rounding finds
    supports whose rounded model is better (benchmarks/_glassbox_risk.py, section risk: mushroom and spambase)."""
    best = model
    for _ in range(max_rounds):
        sup = np.flatnonzero(best.points)
        score = best.intercept + X @ best.points
        grad = -(X.T @ (y * expit(-y * score / best.scale))) / (X.shape[0] * best.scale)
        cands = _rank(grad, tuple(sup), lb, ub, n_candidates)
        drops = [None] if sup.size < k else []
        drops += [int(j) for j in sup]
        found = best
        found_obj = best.objective
        for j in drops:
            rest = [int(s) for s in sup if s != j]
            for cand in cands:
                new_sup = sorted(rest + [int(cand)])
                idx = np.asarray(new_sup, dtype=np.int64)
                c = compress(X, y, new_sup, codes)
                lam0 = np.array([best.points[s] if s != cand else 0.0 for s in new_sup], dtype=np.float64)
                # screen with a short DCD (3 moves); the winner is polished to convergence below
                lam, off, loss = polish(c, lam0, best.intercept, best.scale, lb[idx], ub[idx], c0, max_sweeps=3,
                                        offset_bounds=offset_bounds, window=_WINDOW)
                obj = objective(loss, lam, c0)
                if obj < found_obj - 1e-12:
                    found, found_obj = (obj, idx, c, lam, off), obj
        if found is best:
            break
        _, idx, c, lam, off = found
        lam, off, loss = polish(c, lam, off, best.scale, lb[idx], ub[idx], c0, offset_bounds=offset_bounds)
        pts = np.zeros(X.shape[1], dtype=np.int64)
        pts[idx] = np.round(lam).astype(np.int64)
        best = RiskModel(pts, float(off), best.scale, float(loss), objective(loss, lam, c0))
    return best
