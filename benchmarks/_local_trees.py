"""TreeSHAP against shap's TreeExplainer, and KernelSHAP against TreeSHAP (issue 25).

Part of the local attribution benchmark (``python benchmarks/local_attribution.py --tasks
trees`` runs it; so does this file on its own).

Protocol: the adult data (``tabular/adult_data.csv``: 32,561 rows, 36 binary features; the
first 10,000 rows train, the last ``--n-rows`` rows are explained), a
``RandomForestClassifier(100 trees, max_depth=10)`` and a
``GradientBoostingClassifier(200 trees, max_depth=4)``, both ``random_state=0``.

* **Speed and agreement**: both forms -- path-dependent (no background) and interventional
  (100 training rows as background) -- for class 1 (RF: probability; GB: log-odds), ours
  with ``n_jobs=1`` (shap's TreeExplainer runs one thread) against
  ``shap.TreeExplainer(model[, data=bg, feature_perturbation="interventional"])``; one warm-up
  (numba compile / shap's set-up) then ``--repeats`` interleaved rounds (default 3); the time
  shown is the best round. "shap/ours" > 1 means ours is faster. Ours with ``n_jobs=2`` is
  shown beside (and checked identical to ``n_jobs=1``). Agreement: the largest absolute
  difference of the values.
* **KernelSHAP vs TreeSHAP** on the GB model: 20 rows, 50 background rows, log-odds of class
  1; KernelSHAP at several coalition budgets (time, and relative L2 error against the exact
  interventional values TreeSHAP computes with the same background; mean over rows).

Usage::

    python benchmarks/_local_trees.py            # 1,000 rows, 3 rounds
    python benchmarks/_local_trees.py --quick    # 100 rows, 1 round
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

N_TRAIN, N_BACKGROUND = 10_000, 100
KS_ROWS, KS_BACKGROUND, KS_BUDGETS = 20, 50, (128, 512, 2048, 8192)


def _models(X: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier

    return {
        "RandomForest": RandomForestClassifier(n_estimators=100, max_depth=10, random_state=0, n_jobs=1).fit(X, y),
        "GradientBoosting": GradientBoostingClassifier(n_estimators=200, max_depth=4, random_state=0).fit(X, y),
    }


def _shap_class1(sv: Any) -> np.ndarray:
    sv = np.asarray(sv)
    return sv[..., 1] if sv.ndim == 3 else sv


def run(args: argparse.Namespace) -> dict[str, Any]:
    import shap
    from _common import Case, format_table, time_cases

    from scrutiny.attribution import KernelSHAP, TreeSHAP
    from scrutiny.data import load_tabular_benchmark

    ds = load_tabular_benchmark("adult", data_dir=args.data_dir)
    X, y = ds.X, ds.y
    Xtr, ytr = X[:N_TRAIN], y[:N_TRAIN]
    rows = X[-args.n_rows:]
    bg = Xtr[:N_BACKGROUND]
    models = _models(Xtr, ytr)
    gate = getattr(args, "gate", None)
    out: dict[str, Any] = {"speed": [], "kernelshap": []}
    table = []
    for name, model in models.items():
        for form in ("path-dependent", "interventional"):
            background = None if form == "path-dependent" else bg
            ours = TreeSHAP(model, background=background, n_jobs=1)
            ours2 = TreeSHAP(model, background=background, n_jobs=2)
            if background is None:
                theirs = shap.TreeExplainer(model, feature_perturbation="tree_path_dependent")
            else:
                theirs = shap.TreeExplainer(model, data=background, feature_perturbation="interventional")
            result: dict[str, Any] = {}

            def run_ours(ours=ours, result=result):
                result["ours"] = ours.explain(rows, target=1).values

            def run_shap(theirs=theirs, result=result):
                result["shap"] = _shap_class1(theirs.shap_values(rows, check_additivity=False))

            def run_ours2(ours=ours2, result=result):
                result["ours2"] = ours.explain(rows, target=1).values

            cases = [Case(f"{name}/{form}/ours", run_ours), Case(f"{name}/{form}/shap", run_shap),
                     Case(f"{name}/{form}/ours-2threads", run_ours2)]
            times = time_cases(cases, args.repeats, log=_log, gate=gate)
            t_ours, t_shap, t_ours2 = (min(times[c.key]) for c in cases)
            diff = float(np.abs(result["ours"] - result["shap"]).max())
            same = bool(np.array_equal(result["ours"], result["ours2"]))  # n_jobs never changes a result
            row = {"model": name, "form": form, "rows": len(rows), "ours_s": t_ours, "shap_s": t_shap,
                   "shap_over_ours": t_shap / t_ours, "ours_2threads_s": t_ours2, "max_abs_diff": diff,
                   "n_jobs_identical": same}
            out["speed"].append(row)
            table.append([name, form, str(len(rows)), f"{t_ours:.3f}", f"{t_shap:.3f}", f"{t_shap / t_ours:.2f}",
                          f"{t_ours2:.3f}", f"{diff:.1e}", str(same)])
    print("TreeSHAP vs shap.TreeExplainer (adult, class 1; best of "
          f"{args.repeats} after a warm-up; one thread each)")
    print(format_table(["model", "form", "rows", "ours s", "shap s", "shap/ours", "ours 2 thr. s", "max |diff|",
                        "n_jobs same"], table, right=(2, 3, 4, 5, 6, 7)))

    gb = models["GradientBoosting"]
    ks_rows, ks_bg = X[-KS_ROWS:], Xtr[:KS_BACKGROUND]
    t0 = time.perf_counter()
    exact = TreeSHAP(gb, background=ks_bg).explain(ks_rows, target=1).values
    t_tree = time.perf_counter() - t0
    table = [["TreeSHAP (exact)", "-", f"{t_tree:.3f}", "0"]]
    out["kernelshap"].append({"method": "TreeSHAP", "seconds": t_tree, "rel_error": 0.0})
    for budget in args.budgets:
        ks = KernelSHAP(gb, ks_bg, n_samples=budget, max_background=None, space="log_odds", random_state=0)
        t0 = time.perf_counter()
        approx = ks.explain(ks_rows, target=1).values
        t_ks = time.perf_counter() - t0
        err = float(np.mean(np.linalg.norm(approx - exact, axis=1) / np.linalg.norm(exact, axis=1)))
        out["kernelshap"].append({"method": "KernelSHAP", "n_samples": budget, "seconds": t_ks, "rel_error": err})
        table.append(["KernelSHAP", str(budget), f"{t_ks:.3f}", f"{err:.4f}"])
    print(f"\nKernelSHAP vs exact TreeSHAP (GB, {KS_ROWS} rows, {KS_BACKGROUND} background rows, log-odds; "
          "relative L2 error, mean over rows; one run each)")
    print(format_table(["method", "coalitions", "seconds", "rel. error"], table, right=(1, 2, 3)))
    return out


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def bench(args: argparse.Namespace, res: Any) -> None:
    """Run from ``local_attribution.py --tasks trees``: print the tables, keep the figures."""
    sub = parse_args(["--quick"] if args.quick else [])
    sub.data_dir = args.data_dir
    sub.gate = getattr(args, "gate", None)
    res.notes["trees"] = run(sub)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from _common import DEFAULT_DATA_DIR

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    p.add_argument("--n-rows", type=int, default=None, help="rows explained (default 1000; quick 100)")
    p.add_argument("--repeats", type=int, default=None, help="timed rounds after the warm-up (default 3; quick 1)")
    p.add_argument("--budgets", type=int, nargs="+", default=list(KS_BUDGETS), help="KernelSHAP coalitions")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    args.n_rows = args.n_rows or (100 if args.quick else 1000)
    args.repeats = args.repeats or (1 if args.quick else 3)
    if args.quick:
        args.budgets = args.budgets[:2]
    return args


if __name__ == "__main__":
    run(parse_args())
