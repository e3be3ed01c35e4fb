"""Section 5 of ``benchmarks/nnk.py``: DeepNNK beside CW-DeepNNK and the paper's SVM baseline.

Run A (*monitored*): the zoo SmallCNN trained with section 1's overfit recipe (Adam, no weight
decay, minibatch 16) on the run's training labels (MNIST / Fashion-MNIST: 30% symmetric label
noise, the run whose test error is U-shaped; digits: clean labels). After every epoch, from
the training set alone (the labels the run is trained on):

* **DeepNNK** (Shekkizhar & Ortega 2020): leave-one-out NNK error on the penultimate features
  (k = 50, cosine kernel, every training point);
* **CW-DeepNNK** (Bonet et al. 2021, :func:`scrutiny.nnk.channelwise_loo_error`): the LOO NNK
  error of every output channel of the last convolution (its pooled 7x7 map; k = 25 and the
  cosine kernel, their defaults), on a fixed random subset of ``n_loo_cw`` training points;
  reported as the mean over channels;
* **SVM 5-fold CV**: the DeepNNK paper's baseline, a linear SVM (``LinearSVC``, C = 1000 as in
  the paper's code) cross-validated in 5 stratified folds on the same penultimate features;

beside the network's training error and its (clean) test error, which none of the estimates
sees. Each estimate picks an epoch two ways: its minimum over the run, and the patience rule
(stop after ``patience`` evaluations without improvement, keep the best epoch so far).

Run B (*CW-DeepNNK training*): the same network, seed and minibatch order, trained with
Bonet et al.'s rule: each channel of the last convolution keeps a patience counter on its own
LOO error; when it runs out, that channel's weights and bias stop training (restored after
every optimiser step); training stops when every channel has stopped. Reported: the epoch it
stops and the test error there.

The figure (``--figure``; default ``benchmarks/figures/deepnnk_early_stopping_<dataset>.png``)
shows run A's curves with the epoch each rule picks, and run B's test error.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from _common import format_table

from scrutiny.models import as_model
from scrutiny.nnk import NNK, channelwise_loo_error
from scrutiny.zoo import make_model

FIGURES = Path(__file__).resolve().parent / "figures"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _last_conv(model: torch.nn.Module) -> torch.nn.Conv2d:
    return [m for m in model.conv if isinstance(m, torch.nn.Conv2d)][-1]


def _train(d: dict, y_run: np.ndarray, epochs: int, seed: int, lr: float, batch: int,
           on_epoch: Callable[[int, torch.nn.Module], set]) -> torch.nn.Module:
    """Adam without weight decay; ``on_epoch(epoch, model)`` returns the channels of the last
    convolution to freeze from now on (their weights are restored after every step)."""
    model = make_model("cnn", d["shape"], 10, random_state=seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    conv = _last_conv(model)
    rng = np.random.default_rng(seed + 1)
    X, y = torch.from_numpy(d["X"]), torch.from_numpy(y_run)
    frozen: list[int] = []
    saved_w = saved_b = None
    for epoch in range(1, epochs + 1):
        model.train()
        perm = torch.from_numpy(rng.permutation(len(y)))
        for b in range(0, len(y), batch):
            i = perm[b:b + batch]
            loss = F.cross_entropy(model(X[i]), y[i])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if frozen:
                with torch.no_grad():
                    conv.weight[frozen] = saved_w
                    conv.bias[frozen] = saved_b
        model.eval()
        stop = on_epoch(epoch, model)
        if stop is None:  # the rule asks to end training
            break
        if set(stop) != set(frozen):
            frozen = sorted(stop)
            with torch.no_grad():
                saved_w, saved_b = conv.weight[frozen].clone(), conv.bias[frozen].clone()
    return model


def _conv_maps(model: torch.nn.Module, X: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return np.concatenate([model.conv(torch.from_numpy(X[s:s + 1000])).double().numpy()
                               for s in range(0, len(X), 1000)])


def _svm_cv_error(Fp: np.ndarray, y: np.ndarray, seed: int) -> float:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.svm import LinearSVC

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # C = 1000 on noisy labels: capped iterations
        acc = cross_val_score(LinearSVC(C=1000.0, max_iter=2000), Fp, y,
                              cv=StratifiedKFold(5, shuffle=True, random_state=seed))
    return float(1 - acc.mean())


def patience_pick(series: np.ndarray, patience: int) -> tuple[int, int]:
    """(epoch at which the patience rule stops, best epoch up to then), epochs counted from 1."""
    best, wait = 0, 0
    for i in range(1, len(series)):
        if series[i] < series[best]:
            best, wait = i, 0
        else:
            wait += 1
            if wait >= patience:
                return i + 1, best + 1
    return len(series), best + 1


def cw_section(d: dict, epochs: int, seed: int, lr: float, batch: int, *, k: int = 50, k_cw: int = 25,
               n_loo_cw: int = 500, patience: int = 3, figure: Path | None = None) -> dict[str, Any]:
    y_run = d.get("y_noisy", d["y"])
    noisy = "y_noisy" in d
    rng = np.random.default_rng(seed + 5)
    sub = np.sort(rng.choice(len(y_run), size=min(n_loo_cw, len(y_run)), replace=False))
    rows: list[dict[str, Any]] = []

    def monitor(epoch: int, model: torch.nn.Module) -> set:
        t0 = time.perf_counter()
        m = as_model(model)
        Fp = m.features(d["X"])
        rec = {"epoch": epoch, "train_error": float(np.mean(m.predict(d["X"]).argmax(1) != y_run)),
               "test_error": float(np.mean(m.predict(d["X_test"]).argmax(1) != d["y_test"])),
               "deepnnk": NNK(k=k).fit(Fp, y_run).loo_error().nnk_error}
        ch = channelwise_loo_error(_conv_maps(model, d["X"]), y_run, k=k_cw, indices=sub)
        rec["cw_channels"] = ch.tolist()
        rec["cw_mean"] = float(np.nanmean(ch))
        rec["svm_cv"] = _svm_cv_error(Fp, y_run, seed)
        rec["seconds"] = time.perf_counter() - t0
        rows.append(rec)
        log(f"  [CW, monitored] epoch {epoch:2d}: train {rec['train_error']:.3f} test {rec['test_error']:.3f} | "
            f"DeepNNK {rec['deepnnk']:.3f} CW {rec['cw_mean']:.3f} SVM-CV {rec['svm_cv']:.3f} ({rec['seconds']:.0f} s)")
        return set()

    log(f"CW-DeepNNK section on {d['name']} ({len(y_run)} training images{', noisy labels' if noisy else ''}), "
        f"{epochs} epochs")
    _train(d, y_run, epochs, seed, lr, batch, monitor)
    series = {key: np.array([r[key] for r in rows]) for key in ("train_error", "test_error", "deepnnk", "cw_mean",
                                                                 "svm_cv")}
    te = series["test_error"]
    picks = []
    for key, label in (("deepnnk", "DeepNNK LOO (penultimate)"), ("cw_mean", "CW-DeepNNK LOO (mean over channels)"),
                       ("svm_cv", "linear SVM 5-fold CV (penultimate)"), ("train_error", "training error"),
                       ("test_error", "test error (oracle)")):
        s = series[key]
        arg = int(np.argmin(s)) + 1
        stop, best = patience_pick(s, patience)
        picks.append({"estimate": label, "key": key, "pearson_with_test": float(np.corrcoef(s, te)[0, 1]),
                      "argmin_epoch": arg, "test_at_argmin": float(te[arg - 1]), "patience_stop": stop,
                      "patience_pick": best, "test_at_patience_pick": float(te[best - 1])})

    # run B: Bonet et al.'s rule, channels of the last convolution stopped one by one
    n_ch = len(rows[0]["cw_channels"])
    state = {"best": np.full(n_ch, np.inf), "wait": np.zeros(n_ch, dtype=int), "frozen": set(), "log": []}

    def cw_rule(epoch: int, model: torch.nn.Module) -> set | None:
        active = [c for c in range(n_ch) if c not in state["frozen"]]
        err = channelwise_loo_error(_conv_maps(model, d["X"]), y_run, k=k_cw, channels=active, indices=sub)
        for c, e in zip(active, err):
            if np.isnan(e) or e >= state["best"][c]:
                state["wait"][c] += 1
                if state["wait"][c] >= patience:
                    state["frozen"].add(c)
            else:
                state["best"][c], state["wait"][c] = e, 0
        m = as_model(model)
        test = float(np.mean(m.predict(d["X_test"]).argmax(1) != d["y_test"]))
        state["log"].append({"epoch": epoch, "test_error": test, "frozen": len(state["frozen"])})
        log(f"  [CW, training] epoch {epoch:2d}: test {test:.3f}, {len(state['frozen'])}/{n_ch} channels stopped")
        return None if len(state["frozen"]) == n_ch else set(state["frozen"])

    _train(d, y_run, epochs, seed, lr, batch, cw_rule)
    cw_run = {"log": state["log"], "stop_epoch": state["log"][-1]["epoch"],
              "test_at_stop": state["log"][-1]["test_error"],
              "all_channels_stopped": len(state["frozen"]) == n_ch}
    out = {"dataset": d["name"], "noisy_labels": noisy, "n_train": len(y_run), "epochs": epochs, "k": k,
           "k_cw": k_cw, "n_loo_cw": len(sub), "patience": patience, "per_epoch": rows, "picks": picks,
           "cw_training": cw_run, "best_test": float(te.min()), "best_test_epoch": int(np.argmin(te)) + 1}

    print(f"\n[5] DeepNNK, CW-DeepNNK and the linear-SVM baseline, {d['name']} ({len(y_run)} train"
          f"{', 30% label noise' if noisy else ''}; the estimates see only the training labels); per epoch")
    print(format_table(["epoch", "train err", "test err", "DeepNNK LOO", "CW-DeepNNK LOO", "SVM 5-fold CV", "s"],
                       [[str(r["epoch"]), f"{r['train_error']:.3f}", f"{r['test_error']:.3f}", f"{r['deepnnk']:.3f}",
                         f"{r['cw_mean']:.3f}", f"{r['svm_cv']:.3f}", f"{r['seconds']:.0f}"] for r in rows],
                       right=range(7)))
    print(f"\n[5] Epoch each estimate picks (min over the run; patience rule, patience {patience}) and the test error "
          f"there; best test error {out['best_test']:.3f} at epoch {out['best_test_epoch']}. CW-DeepNNK training "
          f"(channels of the last convolution stopped one by one): stopped at epoch {cw_run['stop_epoch']}"
          f"{'' if cw_run['all_channels_stopped'] else ' (the epoch cap; not every channel had stopped)'}, "
          f"test error {cw_run['test_at_stop']:.3f}")
    print(format_table(["estimate", "r with test err", "argmin epoch", "test there", "patience stop", "picked epoch",
                        "test there"],
                       [[p["estimate"], f"{p['pearson_with_test']:+.3f}", str(p["argmin_epoch"]),
                         f"{p['test_at_argmin']:.3f}", str(p["patience_stop"]), str(p["patience_pick"]),
                         f"{p['test_at_patience_pick']:.3f}"] for p in picks], right=range(1, 7)))
    path = figure or FIGURES / f"deepnnk_early_stopping_{d['name']}.png"
    plot(out, path)
    out["figure"] = str(path)
    print(f"figure: {path}")
    return out


def plot(out: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = out["per_epoch"]
    ep = [r["epoch"] for r in rows]
    fig, ax = plt.subplots(figsize=(10, 4.2))
    styles = {"test_error": ("test error (clean labels, unseen)", "k", "-"),
              "train_error": ("training error (training labels)", "0.55", ":"),
              "deepnnk": ("DeepNNK LOO, penultimate", "tab:blue", "-"),
              "cw_mean": ("CW-DeepNNK LOO, mean over channels", "tab:orange", "-"),
              "svm_cv": ("linear SVM 5-fold CV", "tab:green", "--")}
    for key, (label, color, ls) in styles.items():
        s = np.array([r[key] for r in rows])
        ax.plot(ep, s, color=color, ls=ls, label=label)
        if key != "train_error":
            i = int(np.argmin(s))
            ax.plot(ep[i], s[i], "o", color=color, ms=6)
    cw = out["cw_training"]["log"]
    ax.plot([r["epoch"] for r in cw], [r["test_error"] for r in cw], color="tab:red", ls="-.",
            label="test error, CW-DeepNNK training\n(stops at its last point)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("error")
    noisy = ", 30% label noise" if out["noisy_labels"] else ""
    ax.set_title(f"{out['dataset']} ({out['n_train']} training images{noisy}): dots = epoch each curve's minimum picks",
                 fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
