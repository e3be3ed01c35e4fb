"""Section 6 of benchmarks/dmm_men.py: the Fashion-MNIST Trouser fit with ``n_iter="auto"``.

The paper's problem (class 1, its 6,000 training and 1,000 test images, n = 7,000, the 300
highest-variance pixels, J = 6, K = 3, two chains in two processes) fitted with
``DMMMEN(n_iter="auto", max_time=--max-time)`` for ``--trouser-seeds`` seeds. Goal (issue 20):
converged (R-hat of the log-likelihood and of the log joint of the occupied components < 1.05,
their bulk ESS > 400) in at least
9 of 10 seeds within 120 s. Per seed: whether it converged, why it stopped, the sweeps run, the
fit time, the last check's R-hat and ESS and the first check that passed each part of the
criterion (which part binds when a fit times out). Summary: seeds converged, median fit time.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

import numpy as np
from _common import format_table

from scrutiny.exceptions import ConvergenceWarning
from scrutiny.surrogate import DMMMEN

JOINT = "logjoint_occupied"  # the criterion's log joint: without empty components' prior terms


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _first(history: list, ok) -> int | None:
    for h in history:
        if ok(h):
            return int(h["sweeps"])
    return None


def auto_section(args: Any, black_box) -> dict[str, Any] | None:
    try:
        model, info = black_box("cnn", "fashion-mnist", args.data_dir)
    except FileNotFoundError as exc:
        log(f"auto: Fashion-MNIST skipped ({exc})")
        return None
    c = 1
    X = np.concatenate([info["train"].X[info["train"].y == c], info["test"].X[info["test"].y == c]])
    runs, rows = [], []
    for r in range(max(1, args.trouser_seeds)):
        seed = args.seed + r
        log(f"auto: Fashion-MNIST Trouser, n = {len(X)}, p = {args.n_features}, n_iter='auto', "
            f"max_time={args.max_time}, seed {seed}")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            est = DMMMEN.from_model(model, X, c, n_features=args.n_features, n_iter="auto", max_time=args.max_time,
                                    n_chains=2, n_jobs=2, random_state=seed)
        for w in caught:
            log(f"  warning: {w.message}")
        hist = est.auto_history_
        last = hist[-1]
        thr = est.rhat_threshold
        s = {
            "seed": seed, "converged": bool(est.converged_), "stop_reason": est.stop_reason_,
            "sweeps": int(est.n_iter_), "fit_seconds": float(est.fit_time_),
            "rhat_loglik": last["rhat_loglik"], "rhat_logjoint": last[f"rhat_{JOINT}"],
            "ess_loglik": last["ess_loglik"], "ess_logjoint": last[f"ess_{JOINT}"],
            "first_rhat_ok": _first(hist, lambda h: max(h["rhat_loglik"], h[f"rhat_{JOINT}"]) < thr),
            "first_ess_ok": _first(hist, lambda h: min(h["ess_loglik"], h[f"ess_{JOINT}"]) > 400),
            "rhat_logjoint_full": float(est.rhat_.get("logjoint", np.nan)),
            "sweeps_per_second_per_chain": float(np.mean([len(t["loglik"]) / t["time"][-1] for t in est.trace_])),
            "history": hist,
        }
        runs.append(s)
        rows.append([str(seed), "yes" if s["converged"] else "NO", s["stop_reason"], str(s["sweeps"]),
                     f"{s['fit_seconds']:.1f} s", f"{s['sweeps_per_second_per_chain']:.1f}",
                     f"{s['rhat_loglik']:.3f} / {s['rhat_logjoint']:.3f}",
                     f"{s['ess_loglik']:.0f} / {s['ess_logjoint']:.0f}",
                     str(s["first_rhat_ok"]), str(s["first_ess_ok"])])
        log(f"  {rows[-1]}")
    n_conv = sum(s["converged"] for s in runs)
    med = float(np.median([s["fit_seconds"] for s in runs]))
    med_conv = float(np.median([s["fit_seconds"] for s in runs if s["converged"]])) if n_conv else None
    print("\n6. DMM-MEN Fashion Trouser with n_iter='auto', max_time=%g s (J = 6, K = 3, 2 chains in 2 processes)\n"
          % args.max_time + format_table(
              ["seed", "converged", "stopped by", "sweeps", "fit", "sweeps/s/chain", "R-hat loglik / logjoint (occupied)",
               "ESS loglik / logjoint (occupied)", "R-hat ok at", "ESS ok at"], rows, right=(3, 4, 5)), flush=True)
    print(f"converged in {n_conv} of {len(runs)} seeds (goal: 9 of 10) within {args.max_time:g} s; median fit "
          f"time {med:.1f} s (of the converged: {'-' if med_conv is None else f'{med_conv:.1f} s'})", flush=True)
    return {"runs": runs, "converged": n_conv, "seeds": len(runs), "median_seconds": med,
            "median_seconds_converged": med_conv, "max_time": args.max_time}
