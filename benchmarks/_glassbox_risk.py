"""Risk scores and the glass-box vs black-box comparison (issue 18, the risk-score half).

``run_risk(args)``: RiskScoreClassifier (k=5, points in -5..5) on adult, mushroom, breastcancer, mammo and spambase
(80/20 split, seed ``args.seed``): mean training logistic loss, train/test AUC and time, beside FasterRisk 0.1.10 in
the same run when it can be imported (``pip install --no-deps fasterrisk --target /tmp/fr`` and its one
``ndarray.tostring`` call patched to ``tobytes``; ``--fasterrisk`` names the folder), else beside the figures
measured in ``../shared/docs/wave2-anchors.md``; then ``method="certify"`` (SCIP) on breastcancer and mammo with a
60 s limit: relative gap, time, nodes and cuts.

``run_compare(args)``: ``compare_models`` (5-fold) on COMPAS (the 14 one-hot features of the CORELS split, train
and test rows pooled) and the five tabular sets, with each comparison's conclusion.

``args`` is an argparse namespace with ``data_dir``, ``seed`` and ``quick`` (benchmarks/glassbox.py passes its own);
run alone: ``python benchmarks/_glassbox_risk.py --data-dir ../shared/data [--quick] [--sections risk compare]``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

_HERE = Path(__file__).resolve().parent
if str(_HERE.parent / "src") not in sys.path:
    sys.path.insert(0, str(_HERE.parent / "src"))

DEFAULT_DATA_DIR = _HERE.parents[0].parent / "shared" / "data"
DATASETS = ("adult", "mushroom", "breastcancer", "mammo", "spambase")
QUICK = ("breastcancer", "mammo")
# measured with FasterRisk 0.1.10 on this machine (wave2-anchors.md): time s, train loss, test AUC
FASTERRISK_NOTES = {"breastcancer": (0.9, 0.089, 0.998), "mammo": (1.5, 0.457, 0.845), "spambase": (5.6, 0.353, 0.920),
                    "mushroom": (9.0, 0.065, 0.991), "adult": (10.26, 0.377, 0.862)}


def _table(header, rows) -> str:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(header)]
    fmt = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows])


def load_tabular(name: str, data_dir: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    path = Path(data_dir) / "tabular" / f"{name}_data.csv"
    with open(path) as fh:
        header = fh.readline().strip().split(",")
    data = np.loadtxt(path, delimiter=",", skiprows=1)
    return data[:, 1:], data[:, 0].astype(int), header[1:]


def load_compas(data_dir: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    parts = []
    for split in ("train", "test"):
        path = Path(data_dir) / "compas" / f"compas_{split}-binary.csv"
        with open(path) as fh:
            header = fh.readline().strip().split(",")
        parts.append(np.loadtxt(path, delimiter=",", skiprows=1))
    data = np.vstack(parts)
    return data[:, :-1], data[:, -1].astype(int), header[:-1]


def _log_loss(y01: np.ndarray, z: np.ndarray) -> float:
    return float(np.mean(np.logaddexp(0.0, -np.where(y01 == 1, 1.0, -1.0) * z)))


def _fasterrisk(path: str | None):
    for p in [path, "/tmp/fr"]:
        if p and Path(p).exists() and p not in sys.path:
            sys.path.insert(0, p)
    try:
        import importlib.util
        import types

        if importlib.util.find_spec("requests") is None:
            # fasterrisk.utils imports requests only to download its example data; the optimiser never uses it
            sys.modules["requests"] = types.ModuleType("requests")
        from fasterrisk.fasterrisk import RiskScoreOptimizer

        return RiskScoreOptimizer, None
    except Exception as exc:  # noqa: BLE001 - any import failure is reported, then the notes are used
        return None, f"{type(exc).__name__}: {exc}"


def run_risk(args: Any) -> dict:
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    from scrutiny.glassbox import RiskScoreClassifier

    names = QUICK if getattr(args, "quick", False) else DATASETS
    FR, why = _fasterrisk(getattr(args, "fasterrisk", None))
    print(f"FasterRisk in this run: {'yes' if FR else 'no (' + str(why) + '); comparing with wave2-anchors figures'}")
    rows, record = [], []
    for name in names:
        X, y, feats = load_tabular(name, args.data_dir)
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=args.seed)
        # interleaved repeats, minimum time (the machine is shared): 3 on the small sets, 1 on adult
        repeats = 1 if X.shape[0] > 10000 or getattr(args, "quick", False) else 3
        t_ours, t_fr = np.inf, np.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            clf = RiskScoreClassifier(5, feature_names=feats).fit(Xtr, ytr)
            t_ours = min(t_ours, time.perf_counter() - t0)
            if FR is not None:
                t0 = time.perf_counter()
                opt = FR(Xtr, np.where(ytr == 1, 1, -1), k=5, lb=-5, ub=5)
                opt.optimize()
                t_fr = min(t_fr, time.perf_counter() - t0)
        rec = {"data": name, "n": int(X.shape[0]), "p": int(X.shape[1]), "time": t_ours, "loss": clf.loss_,
               "train_auc": roc_auc_score(ytr, clf.decision_function(Xtr)),
               "test_auc": roc_auc_score(yte, clf.decision_function(Xte)),
               "card": clf.to_dict()["points"], "scale": clf.scale_}
        if FR is not None:
            mult, b0, betas = opt.get_models(model_index=0)
            rec["fr_time"] = t_fr
            z_tr = (b0 + Xtr @ betas) / mult
            rec["fr_loss"] = _log_loss(ytr, z_tr)
            rec["fr_test_auc"] = roc_auc_score(yte, (b0 + Xte @ betas) / mult)
            rec["fr_source"] = "same run"
        else:
            rec["fr_time"], rec["fr_loss"], rec["fr_test_auc"] = FASTERRISK_NOTES[name]
            rec["fr_source"] = "wave2-anchors.md"
        rec["loss_ratio"] = rec["loss"] / rec["fr_loss"]
        record.append(rec)
        rows.append([name, f"{rec['loss']:.5f}", f"{rec['fr_loss']:.5f}", f"{100 * (rec['loss_ratio'] - 1):+.2f}%",
                     f"{rec['train_auc']:.3f}", f"{rec['test_auc']:.3f}", f"{rec['fr_test_auc']:.3f}",
                     f"{t_ours:.2f}", f"{rec['fr_time']:.2f}"])
        print(f"  {name}: done", flush=True)
    print("heuristic, k=5, points in -5..5; loss = mean training logistic loss; times are the minimum of interleaved "
          "repeats")
    print(_table(["data", "loss", "FR loss", "vs FR", "train AUC", "test AUC", "FR test AUC", "time s", "FR s"], rows))
    cert_rows, cert = [], []
    # the goal is breastcancer and mammo; mushroom and spambase show how far 60 s gets on larger problems
    for name in QUICK if getattr(args, "quick", False) else ("breastcancer", "mammo", "mushroom", "spambase"):
        X, y, feats = load_tabular(name, args.data_dir)
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=args.seed)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf = RiskScoreClassifier(5, method="certify", time_limit=60.0, feature_names=feats).fit(Xtr, ytr)
        dt = time.perf_counter() - t0
        cert.append({"data": name, "time": dt, "objective": clf.objective_, "lower_bound": clf.lower_bound_,
                     "relative_gap": clf.relative_gap_, "certified": clf.certified_, "status": clf.solver_status_,
                     "nodes": clf.n_nodes_, "cuts": clf.n_cuts_, "tightenings": clf.n_tightenings_, "test_auc": roc_auc_score(yte, clf.decision_function(Xte))})
        c = cert[-1]
        cert_rows.append([name, f"{c['objective']:.6f}", f"{c['lower_bound']:.6f}", f"{100 * c['relative_gap']:.3f}%",
                          str(c["certified"]), c["status"], str(c["nodes"]), str(c["cuts"]), f"{dt:.1f}"])
    print("\ncertify (SCIP, 60 s limit; time includes the heuristic warm start)")
    print(_table(["data", "objective", "lower bound", "gap", "certified", "status", "nodes", "cuts", "time s"], cert_rows))
    return {"risk": record, "certify": cert, "fasterrisk_in_run": FR is not None, "fasterrisk_note": why}


def run_compare(args: Any) -> dict:
    from scrutiny.glassbox import compare_models

    sets = ["compas"] + list(QUICK if getattr(args, "quick", False) else DATASETS)
    if getattr(args, "datasets", None):
        sets = [s for s in sets if s in args.datasets]
    out = {}
    for name in sets:
        X, y, _ = load_compas(args.data_dir) if name == "compas" else load_tabular(name, args.data_dir)
        t0 = time.perf_counter()
        res = compare_models(X, y, cv=5, random_state=args.seed)
        print(f"\n== {name} (n={X.shape[0]}, p={X.shape[1]}; {time.perf_counter() - t0:.0f} s)")
        print(res)
        out[name] = res.to_dict()
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="breastcancer and mammo only")
    p.add_argument("--sections", nargs="+", choices=("risk", "compare"), default=("risk", "compare"))
    p.add_argument("--datasets", nargs="+", choices=("compas",) + DATASETS, default=None,
                   help="data sets of the compare section (default: all)")
    p.add_argument("--fasterrisk", default=None, help="folder holding a patched fasterrisk (default /tmp/fr)")
    p.add_argument("--out", type=Path, default=_HERE / "results" / "glassbox_risk.json")
    args = p.parse_args(argv)
    record: dict = {"args": {k: str(v) for k, v in vars(args).items()}}
    if "risk" in args.sections:
        record.update(run_risk(args))
    if "compare" in args.sections:
        record["compare"] = run_compare(args)
    import json

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
