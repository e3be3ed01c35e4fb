"""RiskSLIM's lattice cutting-plane algorithm (LCPA) on SCIP through pyscipopt (private engine of RiskScoreClassifier).

Problem: ``min F(lam) + c0 * ||lam||_0`` over integer ``lam`` in ``[lb, ub]`` with at most ``k`` non-zeros, where
``F(lam) = min_b mean_i log(1 + exp(-y_i (b + x_i . lam) / scale))`` (the real offset ``b`` is minimised out;
partial minimisation keeps ``F`` convex, and by the envelope theorem its gradient is the loss gradient at the
optimal offset). One SCIP branch and bound over the master problem

    min L + c0 * sum_j a_j   s.t.  lb_j a_j <= lam_j <= ub_j a_j,  sum_j a_j <= k,  a binary,  lam integer,
                                   L >= F(lam_t) + grad F(lam_t) . (lam - lam_t)   (cuts, added lazily)

as in Ustun & Rudin (JMLR 2019), with SCIP in CPLEX's place:

- a constraint handler (no constraints of its own) enforces ``L >= F(lam)`` on LP and pseudo solutions by adding
  the tangent cut at the solution (RiskSLIM's lazy-constraint callback); at the root it also separates fractional
  LP points, which is RiskSLIM's cutting-plane initialisation on the relaxation;
- a primal heuristic rounds LP solutions (SeqRd on the ``k`` largest entries) and polishes them by discrete
  coordinate descent (RiskSLIM's heuristic callback);
- chained bound tightening (RiskSLIM's CBT): ``R = ||lam||_0`` is a variable, and whenever the incumbent ``U``
  or the global lower bound ``LB`` improves, an event handler tightens ``L <= U - c0 R_min``,
  ``R <= (U - L_min) / c0`` and ``R >= (LB - L_max) / c0`` in turn (chained: each new bound feeds the next);
  ``L_min`` is the loss of the best margin each sample can reach on the lattice. RiskSLIM's fourth bound,
  ``L >= LB - c0 R_max``, is left out: raising the loss variable's lower bound makes the master LP degenerate
  (every point under the bound is optimal, so the cuts land at arbitrary points), and SCIP then needed over 120 s
  instead of 6 s to certify breastcancer (``benchmarks/_glassbox_risk.py`` prints the certify times);
- the heuristic pool (re-polished at the certified scale) is the warm start.

Presolving is off: the cut callback works on the original variables, and the master problem is small.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import expit

from ..exceptions import MissingDependencyError
from ._risk_heuristic import RiskModel, compress, feature_codes, fit_offset, objective, polish, _sequential_round

__all__ = ["certify", "CertifyResult", "offset_loss"]

_REL_TOL = 1e-7  # a solution's L may undercut F(lam) by this much (relative) before a cut is added
_SEPAFREQ = 1  # cuts at fractional LP points of every node (not only the root): see benchmarks/_glassbox_risk.py


class CertifyResult(NamedTuple):
    model: RiskModel
    lower_bound: float
    certified: bool
    status: str
    n_nodes: int
    n_cuts: int
    n_tightenings: int


def _import_scip():
    try:
        import pyscipopt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            "RiskScoreClassifier(method='certify') needs the SCIP solver through pyscipopt; install it with "
            "`pip install scrutiny[glassbox]`, or use method='heuristic'."
        ) from exc
    return pyscipopt


class _Loss:
    """``F(lam)`` and its gradient on the data compressed to distinct (row, label) pairs."""

    def __init__(self, X, y, scale, ib):
        c = compress(X, y, range(X.shape[1]), feature_codes(X))
        self.c, self.scale, self.ib = c, float(scale), ib
        self.b = 0.0  # last optimal offset: warm start of the next 1-D solve

    def __call__(self, lam: np.ndarray) -> tuple[float, np.ndarray, float]:
        t = self.c.rows @ lam
        b, loss = fit_offset(t, self.c, self.scale, self.b, *self.ib)
        self.b = b
        r = self.c.w * self.c.y * expit(-self.c.y * (t + b) / self.scale)
        grad = -(self.c.rows.T @ r) / self.scale
        return loss, grad, b


def offset_loss(X, y, lam, scale, ib) -> tuple[float, float]:
    """(optimal offset, loss) of integer points ``lam`` at ``scale``."""
    c = compress(X, y, np.flatnonzero(lam), feature_codes(X))
    b, loss = fit_offset(c.rows @ lam[c.support], c, scale, 0.0, *ib)
    return b, loss


def certify(X: np.ndarray, y: np.ndarray, k: int, lb: np.ndarray, ub: np.ndarray, c0: float, scale: float,
            ib: tuple[float, float], pool: list[RiskModel], time_limit: float) -> CertifyResult:
    scip = _import_scip()
    from pyscipopt import SCIP_EVENTTYPE, SCIP_HEURTIMING, SCIP_PARAMSETTING, SCIP_RESULT, Conshdlr, Eventhdlr, Heur

    n, p = X.shape
    codes = feature_codes(X)
    F = _Loss(X, y, scale, ib)
    free = np.flatnonzero((lb < 0) | (ub > 0))

    # ---- warm start: pool supports re-polished at this scale ---------------------------------------------------
    starts: dict = {}
    for m in pool[:10]:
        sup = np.flatnonzero(m.points)
        c = compress(X, y, sup, codes)
        lam0 = np.clip(np.round(m.points[sup] * scale / m.scale), lb[sup], ub[sup]).astype(float)
        lam, b, loss = polish(c, lam0, m.intercept * scale / m.scale, scale, lb[sup], ub[sup], c0, offset_bounds=ib)
        pts = np.zeros(p, dtype=np.int64)
        pts[sup] = np.round(lam).astype(np.int64)
        starts[tuple(pts)] = RiskModel(pts, b, scale, loss, objective(loss, pts, c0))
    incumbent = min(starts.values(), key=lambda r: r.objective)
    upper = incumbent.objective

    # ---- chained bounds ----------------------------------------------------------------------------------------
    reach = np.sort(np.maximum(lb * X, ub * X) * (y > 0)[:, None] + np.maximum(-lb * X, -ub * X) * (y < 0)[:, None],
                    axis=1)[:, ::-1][:, :k].sum(axis=1)
    best_margin = reach + np.where(y > 0, ib[1], -ib[0])
    loss_min = float(np.mean(np.logaddexp(0.0, -best_margin / scale)))
    l0_max = k if c0 <= 0 else int(min(k, np.floor((upper - loss_min) / c0 + 1e-9)))

    model = scip.Model("riskslim-lcpa")
    model.hideOutput()
    model.setPresolve(SCIP_PARAMSETTING.OFF)
    model.setParam("limits/time", float(time_limit))
    model.setParam("limits/gap", 1e-6)
    model.setParam("misc/allowstrongdualreds", False)
    model.setParam("misc/allowweakdualreds", False)
    lam_v = {j: model.addVar(f"lam{j}", vtype="I", lb=lb[j], ub=ub[j]) for j in free}
    a_v = {j: model.addVar(f"a{j}", vtype="B") for j in free}
    L = model.addVar("L", vtype="C", lb=loss_min, ub=upper + 1e-9)
    # ||lam||_0 as a continuous variable (integral through the binaries): chained bounds tighten it, and it adds
    # no branching candidate; the objective keeps c0 on the binaries
    R = model.addVar("R", vtype="C", lb=0, ub=l0_max)
    for j in free:
        model.addCons(lam_v[j] <= ub[j] * a_v[j])
        model.addCons(lam_v[j] >= lb[j] * a_v[j])
    model.addCons(scip.quicksum(a_v.values()) - R == 0)
    model.setObjective(L + c0 * scip.quicksum(a_v.values()), "minimize")
    state = {"cuts": 0, "tightenings": 0}

    def values(sol) -> tuple[np.ndarray, float]:
        lam = np.zeros(p)
        for j in free:
            lam[j] = model.getSolVal(sol, lam_v[j])
        return lam, model.getSolVal(sol, L)

    def add_cut(lam: np.ndarray, loss: float, grad: np.ndarray) -> None:
        # L - grad . lam >= loss - grad . lam_t
        row = model.createEmptyRowUnspec(name=f"cut{state['cuts']}", lhs=float(loss - grad @ lam), rhs=None,
                                         local=False, modifiable=False, removable=True)
        model.cacheRowExtensions(row)
        model.addVarToRow(row, L, 1.0)
        for j in free:
            if grad[j] != 0.0:
                model.addVarToRow(row, lam_v[j], float(-grad[j]))
        model.flushRowExtensions(row)
        model.addCut(row, forcecut=True)
        model.releaseRow(row)
        state["cuts"] += 1

    def violated(sol):
        lam, lval = values(sol)
        loss, grad, _ = F(lam)
        return lval < loss - _REL_TOL * max(1.0, abs(loss)), lam, loss, grad

    class LossCuts(Conshdlr):
        def conscheck(self, constraints, solution, checkintegrality, checklprows, printreason, completely):
            bad, *_ = violated(solution)
            return {"result": SCIP_RESULT.INFEASIBLE if bad else SCIP_RESULT.FEASIBLE}

        def _enforce(self):
            bad, lam, loss, grad = violated(None)
            if not bad:
                return {"result": SCIP_RESULT.FEASIBLE}
            add_cut(lam, loss, grad)
            return {"result": SCIP_RESULT.SEPARATED}

        def consenfolp(self, constraints, nusefulconss, solinfeasible):
            return self._enforce()

        def consenfops(self, constraints, nusefulconss, solinfeasible, objinfeasible):
            bad, lam, loss, grad = violated(None)
            if not bad:
                return {"result": SCIP_RESULT.FEASIBLE}
            # pseudo solutions have no LP to cut; branch on it instead of claiming infeasibility
            return {"result": SCIP_RESULT.SOLVELP}

        def conssepalp(self, constraints, nusefulconss):
            bad, lam, loss, grad = violated(None)
            if not bad:
                return {"result": SCIP_RESULT.DIDNOTFIND}
            add_cut(lam, loss, grad)
            return {"result": SCIP_RESULT.SEPARATED}

        def conslock(self, constraint, locktype, nlockspos, nlocksneg):
            model.addVarLocksType(L, locktype, nlockspos, nlocksneg)
            for j in free:
                model.addVarLocksType(lam_v[j], locktype, nlockspos + nlocksneg, nlockspos + nlocksneg)

    class RoundPolish(Heur):
        def heurexec(self, heurtiming, nodeinfeasible):
            lam_lp, _ = values(None)
            order = np.argsort(-np.abs(lam_lp), kind="stable")[:k]
            sup = np.sort(order[np.abs(lam_lp[order]) > 1e-9])
            if sup.size == 0:
                return {"result": SCIP_RESULT.DIDNOTFIND}
            c = compress(X, y, sup, codes)
            b, _ = fit_offset(c.rows @ lam_lp[sup], c, scale, F.b, *ib)
            lam = _sequential_round(c, lam_lp[sup], b, scale, lb[sup], ub[sup])
            lam, b, loss = polish(c, lam, b, scale, lb[sup], ub[sup], c0, offset_bounds=ib)
            pts = np.zeros(p)
            pts[sup] = lam
            return {"result": SCIP_RESULT.FOUNDSOL if submit(pts, loss, self) else SCIP_RESULT.DIDNOTFIND}

    def tighten() -> None:
        """RiskSLIM's chained bound tightening, repeated while a bound moves (at most a few rounds)."""
        if c0 <= 0:
            return
        U, LB = model.getPrimalbound(), model.getDualbound()
        for _ in range(4):
            moved = False
            l_lo, l_hi, r_lo, r_hi = L.getLbGlobal(), L.getUbGlobal(), R.getLbGlobal(), R.getUbGlobal()
            cand = []
            if np.isfinite(U) and U < 1e20:
                cand += [(model.tightenVarUbGlobal, L, U - c0 * r_lo + 1e-9 * max(1.0, abs(U))),
                         (model.tightenVarUbGlobal, R, np.floor((U - l_lo) / c0 + 1e-9))]
            if np.isfinite(LB) and LB > -1e20:
                cand += [(model.tightenVarLbGlobal, R, np.ceil((LB - l_hi) / c0 - 1e-9))]
            for fn, var, value in cand:
                infeasible, tightened = fn(var, float(value))
                if infeasible:  # the bounds cross: the incumbent is optimal; SCIP closes the tree itself
                    return
                if tightened:
                    state["tightenings"] += 1
                    moved = True
            if not moved:
                return

    class ChainedBounds(Eventhdlr):
        def eventinit(self):
            model.catchEvent(SCIP_EVENTTYPE.BESTSOLFOUND, self)
            model.catchEvent(SCIP_EVENTTYPE.NODESOLVED, self)

        def eventexit(self):
            model.dropEvent(SCIP_EVENTTYPE.BESTSOLFOUND, self)
            model.dropEvent(SCIP_EVENTTYPE.NODESOLVED, self)

        def eventexec(self, event):
            tighten()

    def submit(pts: np.ndarray, loss: float, heur=None, warm: bool = False) -> bool:
        sol = model.createSol(heur)
        for j in free:
            model.setSolVal(sol, lam_v[j], float(pts[j]))
            model.setSolVal(sol, a_v[j], float(pts[j] != 0))
        model.setSolVal(sol, R, float(np.count_nonzero(pts[free])))
        model.setSolVal(sol, L, float(loss) + 1e-12)
        if warm:
            return bool(model.addSol(sol, free=True))
        return bool(model.trySol(sol, printreason=False, completely=False, checkbounds=True, checkintegrality=True,
                                 checklprows=True, free=True))

    model.includeConshdlr(LossCuts(), "riskloss", "logistic loss outer approximation", sepapriority=1000,
                          enfopriority=-1, chckpriority=-1, sepafreq=_SEPAFREQ, needscons=False)
    model.includeHeur(RoundPolish(), "roundpolish", "sequential rounding + discrete coordinate descent", "Y",
                      timingmask=SCIP_HEURTIMING.AFTERLPNODE, freq=5)
    model.includeEventhdlr(ChainedBounds(), "chainedbounds", "RiskSLIM's chained bound tightening")
    for start in sorted(starts.values(), key=lambda r: r.objective):
        submit(start.points.astype(float), start.loss, warm=True)
    model.optimize()

    status = model.getStatus()
    lower = float(model.getDualbound())
    best = incumbent
    if model.getNSols() > 0:
        sol = model.getBestSol()
        lam, _ = values(sol)
        pts = np.round(lam).astype(np.int64)
        b, loss = offset_loss(X, y, pts, scale, ib)
        cand = RiskModel(pts, b, scale, loss, objective(loss, pts, c0))
        if cand.objective < best.objective:
            best = cand
    lower = min(lower, best.objective)
    certified = status == "optimal" or (best.objective - lower) <= 1e-6 * max(1.0, abs(best.objective))
    return CertifyResult(best, lower, bool(certified), status, int(model.getNNodes()), state["cuts"],
                         state["tightenings"])
