"""Accuracy at equal budget on low-dimensional tabular problems: scrutiny's KernelSHAP vs shap.

Part of the local attribution benchmark (``python benchmarks/local_attribution.py --tasks
lowdim`` runs it; so does this file on its own). Every problem is small enough (8-16
features) for exact Shapley values by enumeration of all ``2**M - 2`` coalitions, so the
error of an estimate is measured against the truth, not against a high-budget estimate.

Protocol: a held-out model (sklearn MLP or gradient boosting) trained on the first half of
the data, ``--rows`` rows of the other half explained, the same ``--n-background`` training
rows as background for both libraries (shap: ``KernelExplainer(f, background)``, no
k-means; ``l1_reg=False``), the same budget of coalitions (each coalition costs one model
evaluation per background row in both; a budget that would cover all coalitions is replaced
by ``2**M / 8``: 128 for 10 features, 32 for 8). Error: per row, the relative L2 distance of the
estimate to the exact values; mean over rows; then mean +- standard error over ``--seeds``
seeds (shap's seed: ``np.random.seed`` before each call, as shap draws from the global
generator; ours: ``random_state``). Ratio = ours / shap (below 1: ours more accurate).

Usage::

    python benchmarks/_local_lowdim.py                  # all problems, 1,024 coalitions, 5 seeds
    python benchmarks/_local_lowdim.py --budgets 512 1024 2048 --seeds 10
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))


def problems(which: list[str]) -> dict:
    """name -> (f, X_explained, background); f maps (n, d) -> (n,)."""
    from sklearn.datasets import load_diabetes, load_wine, make_classification
    from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out = {}

    def split(X, y, seed=0):
        idx = np.random.default_rng(seed).permutation(len(X))
        h = len(X) // 2
        return X[idx[:h]], y[idx[:h]], X[idx[h:]]

    if "wine-mlp" in which or "wine-gbm" in which:
        Xw, yw = load_wine(return_X_y=True)
        Xtr, ytr, Xte = split(Xw, yw)
        if "wine-mlp" in which:
            m = make_pipeline(StandardScaler(), MLPClassifier((32, 16), max_iter=2000, random_state=0)).fit(Xtr, ytr)
            out["wine-mlp (13)"] = (lambda A, m=m: m.predict_proba(A)[:, 1], Xte, Xtr)
        if "wine-gbm" in which:
            g = GradientBoostingClassifier(n_estimators=100, random_state=0).fit(Xtr, ytr)
            out["wine-gbm (13)"] = (lambda A, g=g: g.predict_proba(A)[:, 1], Xte, Xtr)
    if "diabetes-gbm" in which:
        Xd, yd = load_diabetes(return_X_y=True)
        Xtr, ytr, Xte = split(Xd, yd)
        g = GradientBoostingRegressor(n_estimators=100, random_state=0).fit(Xtr, ytr)
        out["diabetes-gbm (10)"] = (lambda A, g=g: g.predict(A), Xte, Xtr)
    for d in (8, 16):
        if f"synth{d}-mlp" in which:
            Xs, ys = make_classification(600, d, n_informative=d // 2, random_state=d)
            Xtr, ytr, Xte = split(Xs, ys)
            m = make_pipeline(StandardScaler(), MLPClassifier((32,), max_iter=2000, random_state=0)).fit(Xtr, ytr)
            out[f"synth{d}-mlp ({d})"] = (lambda A, m=m: m.predict_proba(A)[:, 1], Xte, Xtr)
    return out


PROBLEMS = ["synth8-mlp", "diabetes-gbm", "wine-mlp", "wine-gbm", "synth16-mlp"]


def rel_err(v: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return np.linalg.norm(v - ref, axis=1) / np.maximum(np.linalg.norm(ref, axis=1), 1e-300)


def run(args: argparse.Namespace) -> list[dict]:
    import shap

    from scrutiny.attribution import KernelSHAP

    rows = []
    for name, (f, Xte, Xtr) in problems(args.problems).items():
        X, bg = Xte[: args.rows], Xtr[: args.n_background]
        M = X.shape[1]
        t0 = time.perf_counter()
        exact = KernelSHAP(f, bg, n_samples=2**M, max_background=None, random_state=0).explain(X)
        if not exact.extras["exact"].all():
            raise RuntimeError(f"{name}: the reference is not exact")
        ref = exact.values
        t_ref = time.perf_counter() - t0
        # a budget that covers every coalition is exact for both (error 0): smaller problems get
        # 1/8 of their 2**M - 2 coalitions instead
        for budget in sorted({b if b < 2**M - 2 else max(2 * M + 4, 2**M // 8) for b in args.budgets}):
            e_ours, e_shap = [], []
            for s in range(args.seeds):
                v = KernelSHAP(f, bg, n_samples=budget, max_background=None, random_state=s).explain(X).values
                e_ours.append(rel_err(v, ref).mean())
                np.random.seed(s)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ex = shap.KernelExplainer(f, bg)
                    vs = np.asarray(ex.shap_values(X, nsamples=budget, l1_reg=False, silent=True))
                e_shap.append(rel_err(vs.reshape(v.shape), ref).mean())
            eo, es = np.array(e_ours), np.array(e_shap)
            k = len(eo)
            row = {
                "problem": name, "budget": budget, "seeds": k,
                "ours_mean": float(eo.mean()), "ours_se": float(eo.std(ddof=1) / np.sqrt(k)) if k > 1 else float("nan"),
                "shap_mean": float(es.mean()), "shap_se": float(es.std(ddof=1) / np.sqrt(k)) if k > 1 else float("nan"),
                "ratio": float(eo.mean() / es.mean()),
                "paired_diff_se": float((eo - es).std(ddof=1) / np.sqrt(k)) if k > 1 else float("nan"),
                "reference_s": t_ref,
            }
            rows.append(row)
            print(format_row(row), flush=True)
    return rows


def format_row(r: dict) -> str:
    return (f"{r['problem']:<20} {r['budget']:>6}  ours {r['ours_mean']:.4f} +- {r['ours_se']:.4f}   "
            f"shap {r['shap_mean']:.4f} +- {r['shap_se']:.4f}   ours/shap {r['ratio']:.3f}   "
            f"(paired diff se {r['paired_diff_se']:.4f}, {r['seeds']} seeds)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--problems", nargs="+", choices=PROBLEMS, default=PROBLEMS)
    p.add_argument("--budgets", nargs="+", type=int, default=[1024])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--rows", type=int, default=10, help="rows explained per problem")
    p.add_argument("--n-background", type=int, default=20)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print("relative L2 error to exact Shapley values (mean over rows; mean +- s.e. over seeds)")
    run(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
