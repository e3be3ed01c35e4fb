"""Representer points against the paper's own figures (Yeh et al. 2018), for ``data_attribution.py``.

Section ``rps-fidelity`` (Fig. 1): the last layer of the zoo's reference CNN (MNIST: 20k training
images; Fashion-MNIST: 60k) is fine-tuned to the model's own predictions with the reference code's
regulariser (``lambda = 0.003``, ``l2 = 0.006``) on the **whole** training set, as the paper did with
its 50k CIFAR-10 images. Two Pearson correlations, on the training and the test set:

* pre-activations: the original model's logits against the representer decomposition
  ``sum_i alpha_i k(x_i, x)`` (what the issue asks for);
* probabilities: the original model's softmax against the softmax of the decomposition, flattened
  over (points, classes) -- what the reference code's ``compute_representer_vals.py`` prints and
  what the paper's Fig. 1 plots (0.99977 train / 0.99642 test).

Section ``rps-debug`` (Sec. 4.1, Fig. 2): Fashion-MNIST T-shirt vs Shirt stands in for the paper's
binary CIFAR-10 task; ``--debug-per-class`` training images per class (1,000, as the reference
code's ``run_inputcheck.py``), 40% of the training labels flipped, the test set is every T-shirt
and Shirt test image. A zoo SmallCNN (2 outputs) is trained on the noisy labels. Training points
are checked in the order of

* representer importance ``|alpha_{i, y_i}|`` with the paper's setting: the head fine-tuned to the
  **model's predictions** with ``l2 = 0.006`` (so ``alpha_i = (p_model - p_head) / (l2 n)``: how
  far the smoother head has to move from the network at point ``i``; it is not a function of the
  training loss);
* the same with the head fitted to the noisy labels (``fit_to="labels"``, ``l2 = 0.006``, not the
  network's weight decay);
* self-influence over the last layer (the last layer brought to its optimum with the network's
  weight decay);
* training loss of the network; random.

After checking a fraction of the training set the checked labels are fixed and the network is
retrained from the same initialisation: test accuracy after fixing. The paper's curves (read
off the reference repository's ``labelfix.png``, 40% flips) are printed beside them.
"""

from __future__ import annotations

import copy
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scrutiny import data as sdata
from scrutiny.data_attribution import (
    InfluenceFunctions,
    RepresenterPoints,
    TrainingObjective,
    fit_to_optimum,
    mislabel_detection_curve,
)
from scrutiny.zoo import make_model, reference_model, train_model

PAPER_FIDELITY = {"train": 0.99977, "test": 0.99642}  # Yeh et al. 2018 Fig. 1, CIFAR-10 VGG-16 (probabilities)
# Read off labelfix.png of chihkuanyeh/Representer_Point_Selection (binary CIFAR-10, 40% flipped)
PAPER_DEBUG = {"fractions": (0.05, 0.10, 0.20, 0.30, 0.40),
               "found RPS ~ IF": (0.06, 0.12, 0.235, 0.34, 0.44), "found random": (0.05, 0.11, 0.205, 0.30, 0.40),
               "acc RPS": (0.567, 0.585, 0.595, 0.621, 0.649), "acc IF": (0.560, 0.572, 0.582, 0.616, 0.638),
               "acc random": (0.561, 0.556, 0.576, 0.601, 0.623), "acc start": 0.547}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def _softmax(Z: np.ndarray) -> np.ndarray:
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------- Fig. 1


def fidelity_section(data_dir: Path, datasets: tuple[str, ...], fmt: Any) -> list[dict]:
    from scrutiny.models import as_model

    rows, out = [], []
    for ds in datasets:
        net, info = reference_model("cnn", ds, data_dir=data_dir)
        net = net.eval()
        tr, te = info["train"], info["test"]
        t0 = time.perf_counter()
        rps = RepresenterPoints(net, l2=0.006, fit_to="predictions", batch_size=2048).fit(tr.X, tr.y)
        fit_s = time.perf_counter() - t0
        m = as_model(net)
        rec: dict[str, Any] = {"dataset": ds, "n_train": len(tr.y), "n_test": len(te.y), "fit_seconds": fit_s,
                               "stationarity_residual": rps.stationarity_residual_}
        for split, X in (("train", tr.X), ("test", te.X)):
            Z0 = np.concatenate([m.predict(X[s:s + 2048]) for s in range(0, len(X), 2048)])
            dec = np.concatenate([rps.decomposition(X[s:s + 2048]).reconstructed for s in range(0, len(X), 2048)])
            rec[f"{split}_logit_pearson"] = _corr(Z0, dec)
            rec[f"{split}_prob_pearson"] = _corr(_softmax(Z0), _softmax(dec))
            rec[f"{split}_argmax_agreement"] = float(np.mean(Z0.argmax(1) == dec.argmax(1)))
        out.append(rec)
        log(f"[rps-fidelity] {ds}: {rec}")
        for split in ("train", "test"):
            rows.append([ds, split, f"{rec['n_' + split]:,}", f"{rec[split + '_logit_pearson']:.5f}",
                         f"{rec[split + '_prob_pearson']:.5f}", f"{PAPER_FIDELITY[split]:.5f}",
                         f"{rec[split + '_argmax_agreement']:.4f}", f"{rec['stationarity_residual']:.1e}",
                         f"{fit_s:.1f}"])
    print("\n[rps-fidelity] Representer decomposition fidelity (Yeh et al. Fig. 1): reference CNN, last layer "
          "fine-tuned to the model's predictions on the whole training set (l2 = 0.006, the reference code's "
          "lambda = 0.003). Pearson of the original model's outputs against the decomposition sum_i alpha_i "
          "k(x_i, x): logits, and softmax probabilities flattened (the reference code's figure). Paper: CIFAR-10 "
          "VGG-16, probabilities")
    print(fmt(["dataset", "split", "n", "Pearson logits", "Pearson probabilities", "paper", "same arg-max",
               "stationarity residual", "fit s"], rows, right=range(2, 9)))
    return out


# --------------------------------------------------------------------------- Sec. 4.1 dataset debugging


def _binary_fashion(data_dir: Path, per_class: int, seed: int) -> dict[str, np.ndarray]:
    tr = sdata.load_fashion_mnist(data_dir, split="train")
    te = sdata.load_fashion_mnist(data_dir, split="test")
    rng = np.random.default_rng(seed)
    idx = np.sort(np.concatenate([rng.choice(np.flatnonzero(tr.y == c), per_class, replace=False) for c in (0, 6)]))
    jdx = np.flatnonzero(np.isin(te.y, (0, 6)))
    return {"X": np.asarray(tr.X[idx], np.float64), "y": (tr.y[idx] == 6).astype(np.int64),
            "Xte": np.asarray(te.X[jdx], np.float64), "yte": (te.y[jdx] == 6).astype(np.int64)}


def _train(X: np.ndarray, y: np.ndarray, epochs: int, wd: float, seed: int) -> torch.nn.Module:
    net = make_model("cnn", X.shape[1:], 2, random_state=seed)
    train_model(net, X, y, epochs=epochs, lr=1e-3, minibatch_size=64, weight_decay=wd, random_state=seed)
    return net.eval()


def _accuracy(net: torch.nn.Module, X: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        z = net(torch.as_tensor(X, dtype=torch.float32)).numpy()
    return float(np.mean(z.argmax(1) == y))


def debug_section(data_dir: Path, per_class: int, flip: float, seeds: int, epochs: int, wd: float,
                  fractions: tuple[float, ...], fmt: Any, figure: Path | None) -> dict:
    runs = []
    for s in range(seeds):
        d = _binary_fashion(data_dir, per_class, seed=s)
        X, y, Xte, yte = d["X"], d["y"], d["Xte"], d["yte"]
        n = len(y)
        rng = np.random.default_rng(100 + s)
        flipped = np.zeros(n, bool)
        flipped[rng.choice(n, int(round(flip * n)), replace=False)] = True
        yn = np.where(flipped, 1 - y, y)
        t0 = time.perf_counter()
        net = _train(X, yn, epochs, wd, seed=s)
        train_s = time.perf_counter() - t0
        rec: dict[str, Any] = {"seed": s, "n_train": n, "n_flipped": int(flipped.sum()),
                               "clean_accuracy": _accuracy(_train(X, y, epochs, wd, seed=s), Xte, yte),
                               "noisy_accuracy": _accuracy(net, Xte, yte),
                               "train_acc_noisy_labels": _accuracy(net, X, yn), "train_seconds": train_s}
        scores = {}
        t0 = time.perf_counter()
        r_pred = RepresenterPoints(net, l2=0.006, fit_to="predictions").fit(X, yn)
        scores["representer (paper: head fitted to predictions)"] = r_pred.importance_
        r_lab = RepresenterPoints(net, l2=0.006, fit_to="labels").fit(X, yn)
        scores["representer (head fitted to labels)"] = r_lab.importance_
        rec["rps_seconds"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        # the last layer's convex problem on the frozen features, solved and differentiated on a copy of the head
        # fed the features (the same objective as params="last" on the network; one forward pass instead of many)
        F = r_lab.train_features_
        head = copy.deepcopy(net.classifier).double()
        fit_to_optimum(head, "cross_entropy", F, yn, l2=wd)
        inf = InfluenceFunctions(head, "cross_entropy", l2=wd, solver="exact").fit(F, yn)
        scores["influence (self, last layer)"] = inf.self_influence()
        rec["influence_seconds"] = time.perf_counter() - t0
        # the network's training loss = its own head on its features
        scores["loss"] = TrainingObjective(copy.deepcopy(net.classifier), "cross_entropy", F, yn).loss_values()
        curve = mislabel_detection_curve(scores, flipped, fractions=fractions, random_state=s)
        rec["found"] = {k: v.tolist() for k, v in curve.found.items()}
        rec["auc"] = curve.auc
        rec["spearman_rps_pred_vs_loss"] = float(
            np.corrcoef(np.argsort(np.argsort(scores["loss"])),
                        np.argsort(np.argsort(scores["representer (paper: head fitted to predictions)"])))[0, 1])
        acc: dict[str, list[float]] = {}
        t0 = time.perf_counter()
        for name in curve.found:
            order = curve.ranking(name)
            acc[name] = []
            for f in fractions:
                chk = order[: int(np.floor(f * n + 1e-9))]
                yf = yn.copy()
                yf[chk] = y[chk]
                acc[name].append(_accuracy(_train(X, yf, epochs, wd, seed=s), Xte, yte))
        rec["fix_seconds"] = time.perf_counter() - t0
        rec["accuracy_after_fix"] = acc
        runs.append(rec)
        log(f"[rps-debug] seed {s}: clean acc {rec['clean_accuracy']:.3f}, noisy {rec['noisy_accuracy']:.3f}, "
            f"fits noisy labels {rec['train_acc_noisy_labels']:.3f}; AUC {curve.auc}; fix {rec['fix_seconds']:.0f} s")
    names = list(runs[0]["found"])
    mean_found = {k: np.mean([r["found"][k] for r in runs], axis=0) for k in names}
    mean_acc = {k: np.mean([r["accuracy_after_fix"][k] for r in runs], axis=0) for k in names}
    rows = []
    for k in names:
        rows.append([k, "found"] + [f"{v:.3f}" for v in mean_found[k]] + [f"{np.mean([r['auc'][k] for r in runs]):.3f}"])
        rows.append([k, "test acc"] + [f"{v:.3f}" for v in mean_acc[k]] + [""])
    pf = PAPER_DEBUG["fractions"]
    if tuple(fractions) == pf:
        rows.append(["paper RPS ~ IF", "found"] + [f"{v:.3f}" for v in PAPER_DEBUG["found RPS ~ IF"]] + [""])
        rows.append(["paper random", "found"] + [f"{v:.3f}" for v in PAPER_DEBUG["found random"]] + [""])
        for k in ("acc RPS", "acc IF", "acc random"):
            rows.append([f"paper {k[4:]}", "test acc"] + [f"{v:.3f}" for v in PAPER_DEBUG[k]] + [""])
    r0 = runs[0]
    print(f"\n[rps-debug] Dataset debugging (Yeh et al. Sec. 4.1): Fashion-MNIST T-shirt vs Shirt, {r0['n_train']} "
          f"training images, {100 * flip:.0f}% labels flipped, SmallCNN (weight decay {wd}, {epochs} epochs) trained "
          f"on the noisy labels; mean over {len(runs)} seed(s). found = fraction of the flips among the checked points; "
          f"test acc = after fixing the checked labels and retraining. Test accuracy: clean labels "
          f"{np.mean([r['clean_accuracy'] for r in runs]):.3f}, noisy {np.mean([r['noisy_accuracy'] for r in runs]):.3f} "
          f"(paper: 0.547 start); the network fits {np.mean([r['train_acc_noisy_labels'] for r in runs]):.3f} of the "
          f"noisy training labels. Spearman(representer with the paper's head, loss) = "
          f"{np.mean([r['spearman_rps_pred_vs_loss'] for r in runs]):.3f} (1 would be the degenerate case)")
    print(fmt(["ranking", "", *[f"{f:.2f}" for f in fractions], "AUC"], rows, right=range(2, 3 + len(fractions))))
    if figure is not None:
        _debug_figure(figure, fractions, mean_found, mean_acc, runs)
    return {"runs": runs, "paper": PAPER_DEBUG}


def _debug_figure(path: Path, fractions: tuple[float, ...], found: dict, acc: dict, runs: list) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for k in found:
        axes[0].plot(fractions, found[k], marker="o", ms=3, label=k)
        axes[1].plot(fractions, acc[k], marker="o", ms=3, label=k)
    pf = PAPER_DEBUG["fractions"]
    axes[0].plot(pf, PAPER_DEBUG["found RPS ~ IF"], "k--", lw=1, label="paper RPS ~ IF (CIFAR-10)")
    axes[1].plot(pf, PAPER_DEBUG["acc RPS"], "k--", lw=1, label="paper RPS (CIFAR-10)")
    axes[1].axhline(np.mean([r["clean_accuracy"] for r in runs]), color="grey", lw=0.8, ls=":", label="clean labels")
    axes[0].set(xlabel="fraction of training data checked", ylabel="fraction of flips found")
    axes[1].set(xlabel="fraction of training data checked", ylabel="test accuracy after fixing")
    axes[0].legend(fontsize=6)
    axes[1].legend(fontsize=6)
    fig.suptitle("Dataset debugging, Fashion-MNIST T-shirt vs Shirt, 40% flipped", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
