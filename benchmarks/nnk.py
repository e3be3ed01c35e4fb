"""DeepNNK at small scale, the NNK classifier, NNK solver and kNN speed, out-of-support scores.

Sections (each prints a table; ``--json`` writes everything):

1. **DeepNNK generalisation** (Shekkizhar & Ortega 2020). A zoo ``SmallCNN`` (conv 16-32, FC 128)
   is trained on a small training subset (2,000 Fashion-MNIST or MNIST images; all 1,347 digits),
   Adam lr 1e-3, batch 16, 30 epochs: *overfit* -- no weight decay, no augmentation, through
   ``scrutiny.zoo.train_model(callback=...)`` (it memorises: training error -> ~1-2%);
   *regularised* -- weight decay 5e-4 (coupled L2 in Adam) and a random shift of every training
   image in every epoch (+-2 pixels; +-1 on 8x8 digits), in a small loop here because
   ``train_model`` has no augmentation hook; *noisy* (MNIST / Fashion-MNIST only, 24 epochs) --
   the overfit recipe on training labels with 30% symmetric label noise (``--label-noise``; each
   label replaced with probability 0.3 by a uniformly drawn *other* class), the standard way to
   make a network memorise and get a U-shaped test-error curve. After every epoch two
   ``GeneralizationMonitor``s record the leave-one-out NNK and kNN error on the training features
   (k = 50, cosine kernel, exact solver) of the penultimate layer (``model.features``, the FC
   layer) and of the conv block (the FC layer's input, the kind of layer DeepNNK used), the
   network's train and test error (full test set; only the penultimate monitor evaluates it) and
   the NNK / kNN classifiers on the test features. In the noisy run the monitors see the noisy
   labels (all a user has); as diagnostics only, the same LOO predictions scored against the clean
   labels, LOO with the clean labels, the network's error on the clean training labels and the
   share of flipped labels it reproduces are recorded too. Reported: per-epoch tables, Pearson
   and Spearman correlation across epochs between each LOO error and the (clean) test error, the
   epoch each would select against the test-error minimum, and the late rise of each curve.

   What to expect (seed 0, 2,000 images; issue #6). Without label noise the unregularised run
   hardly overfits at this scale (late test-error rise +0.016 on Fashion-MNIST, none on MNIST;
   none either with 1,000 Fashion images and lr 3e-3), and the LOO errors track the test error
   (Pearson r 0.84-0.98 on Fashion-MNIST / MNIST, 0.53-0.83 on digits) mainly through the early
   fall. With 30% label noise the test error is clearly U-shaped (minimum 0.190 at epoch 10 on
   Fashion-MNIST, 0.089 at epoch 7 on MNIST, then +0.095 / +0.214 as the flipped labels are
   memorised), but the LOO error on the training features does *not* rise: in the penultimate
   layer it keeps falling with the noisy training error (r with the test error -0.15 / -0.77 for
   NNK, it would select epoch 22-23), because training moves each memorised point's own feature
   into the region of its wrong label -- leaving the point out of the NNK support does not leave it
   out of the feature map; the conv-block LOO stays flat. Scored against the clean labels
   (diagnostic only) the LOO errors follow the test error partly on MNIST (r from epoch 3 ~0.8-0.9,
   minimum at epoch 8-9, rise +0.03-0.04) and not on Fashion-MNIST. Only the NNK classifier on the
   *test* features (which needs test labels) tracks the U (r 0.89 / 0.91, minimum at epoch 9 / 5),
   with a smaller rise (+0.026 / +0.053). The late LOO rise of the CIFAR logs (a network that did
   not memorise: training error 0.14) is not reproduced here. The digits run has no noisy variant:
   the small CNN on 8x8 images still fits < 3% of the flipped labels after 22 epochs, its test
   error still falling (~0.05; no U shape).

   A search for the late rise (``--runs``, ``--channels``, ``--hidden``, ``--n-loo`` and
   ``--layers`` exist for it; six runs on Fashion-MNIST / MNIST with 10,000-20,000 images,
   narrow (8-16 channels, 32-64 hidden) and default CNNs, 30-40% label noise or clean labels,
   lr 1e-3 to 1e-2) found none: in every run the penultimate LOO NNK error follows the
   network's *training* error (Pearson r 0.80-0.99), not its test error, and falls or stays
   flat while the test error rises (late rises of the test error +0.008 to +0.082; of LOO NNK
   -0.050 to +0.013, the largest within 1.4 standard errors of the 3,000-point LOO subset).
   Under label noise, memorising the flipped labels lowers the LOO error on flipped *and*
   unflipped points (``loo_nnk_on_flipped`` / ``loo_nnk_on_unflipped`` in the JSON). Networks
   that overfit without memorising (training error 0.05-0.42) show the same. Only the NNK
   classifier on the test features follows a U-shaped test curve.
2. **NNK classifier on test features** vs kNN (k = 25, 50, 75) vs the network, at the last epoch.
3. **Speed and exactness** of the NNK solves for 10,000 test queries, k = 50, against the
   training features of the regularised model (all 60,000 Fashion-MNIST training images, or
   the 20,000 MNIST ones): exact kNN search time (torch.topk and numpy.argpartition
   pre-selection), the batched exact active-set solver, FISTA (float32) + active-set polish,
   raw FISTA (100 / 500 iterations, step 1/lambda_max, float64), and re-implementations of the
   public solvers: the prune-only Cholesky heuristic (``non_negative_qpsolver``) and the batched
   projected gradient with the fixed step 0.05 (``approximate_nnk``), plus scipy's ``nnls`` on
   the Cholesky-transformed problem (a per-query loop). Objective gap to the exact solution and
   KKT violations for each.
4. **Out-of-support scores** (the paper's view of adversarial and generated inputs): NNK residual
   and polytope class disagreement of clean test images, FGSM adversarial images, pixel-space
   mixtures of two test images of different classes (a crude stand-in for generated images) and
   uniform noise, with AUROC against the clean images.
5. **DeepNNK, CW-DeepNNK and the linear-SVM baseline** (:mod:`_nnk_cw`): per epoch of the noisy
   MNIST run (``--cw-dataset``), the LOO NNK error of the penultimate features, its channel-wise
   variant (Bonet et al. 2021) and the DeepNNK paper's 5-fold cross-validated linear SVM, the
   epoch each would pick, a CW-DeepNNK training run (channels stopped one by one), and the
   figure ``benchmarks/figures/deepnnk_early_stopping_<dataset>.png``.

Usage::

    python benchmarks/nnk.py                      # digits + Fashion-MNIST (24 min on 2 busy shared cores)
    python benchmarks/nnk.py --quick              # digits only (no noisy run), fewer epochs, 2,000 speed queries
    python benchmarks/nnk.py --datasets mnist --json nnk.json
    python benchmarks/nnk.py --label-noise 0      # without the noisy-label run
    python benchmarks/nnk.py --sections 5         # DeepNNK vs CW-DeepNNK vs SVM on noisy MNIST, with the figure
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_DATA_DIR, environment, format_table, write_json
from _nnk_speed import speed_section  # section 3 and the public solvers it compares against
from _nnk_cw import cw_section  # section 5

from scrutiny import data as sdata
from scrutiny.nnk import NNK, GeneralizationMonitor, out_of_support
from scrutiny.models import as_model
from scrutiny.zoo import make_model, train_model


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- data


def load(name: str, data_dir: Path, n_train: int, seed: int) -> dict[str, Any]:
    if name == "digits":
        train, test = sdata.train_test_split(sdata.load_digits(), test_size=0.25, random_state=0)
        full = train
    else:
        loader = sdata.load_mnist if name == "mnist" else sdata.load_fashion_mnist
        full, test = loader(data_dir, split="train"), loader(data_dir, split="test")
        train = None
    rng = np.random.default_rng(seed)
    n = min(n_train, len(full.y))
    idx = np.sort(rng.choice(len(full.y), size=n, replace=False)) if n < len(full.y) else np.arange(n)
    return {"name": name, "X": full.X[idx].astype(np.float32), "y": full.y[idx], "X_full": full.X.astype(np.float32),
            "y_full": full.y, "X_test": test.X.astype(np.float32), "y_test": test.y,
            "shape": full.image_shape, "train_idx": idx, "train_obj": train}


def shift(X: np.ndarray, rng: np.random.Generator, pad: int = 2) -> np.ndarray:
    """Random shifts by up to ``pad`` pixels (zero fill), one offset per image."""
    h, w = X.shape[2:]
    P = np.pad(X, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.empty_like(X)
    off = rng.integers(0, 2 * pad + 1, size=(len(X), 2))
    for dx in range(2 * pad + 1):
        for dy in range(2 * pad + 1):
            s = (off[:, 0] == dx) & (off[:, 1] == dy)
            out[s] = P[s, :, dx:dx + h, dy:dy + w]
    return out


# --------------------------------------------------------------------------- 1. DeepNNK


LAYERS = {"penultimate": None, "conv": "conv"}  # features: model.features(x) (the FC hidden layer), conv block
RUNS = ("overfit", "regularised", "noisy")


def noisy_labels(y: np.ndarray, rate: float, seed: int, n_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric label noise: each label is replaced, with probability ``rate``, by one of the other classes."""
    rng = np.random.default_rng(seed + 11)
    flip = rng.random(len(y)) < rate
    out = y.copy()
    out[flip] = (y[flip] + rng.integers(1, n_classes, size=int(flip.sum()))) % n_classes
    return out, flip


def train_run(d: dict, run: str, epochs: int, k: int, seed: int, lr: float, batch: int, arch: dict | None = None,
              n_loo: int | None = None, layers=tuple(LAYERS)) -> tuple[Any, dict, dict]:
    """One training run with per-epoch DeepNNK monitors.

    ``run``: "overfit" (train_model, clean labels), "regularised" (weight decay + shifts, own loop) or
    "noisy" (train_model on ``d["y_noisy"]``; the monitors see the noisy labels, as a user would, and
    clean-label diagnostics are recorded beside them). ``arch``: SmallCNN options (channels, hidden);
    ``n_loo``: LOO on a fixed random subset of that many training points; ``layers``: monitored layers.
    """
    model = make_model("cnn", d["shape"], 10, random_state=seed, **(arch or {}))
    y_run = d["y_noisy"] if run == "noisy" else d["y"]
    # only the penultimate monitor evaluates the test set (the conv one would repeat the same forward pass)
    monitors = {layer: GeneralizationMonitor(d["X"], y_run, *((d["X_test"], d["y_test"]) if layer == "penultimate"
                                                              else (None, None)),
                                             k=k, features=spec, test_nnk=layer == "penultimate", n_loo=n_loo)
                for layer, spec in LAYERS.items() if layer in layers}
    diag: dict[str, list] = {"train_error_clean": [], "train_error_flipped": [], "loo_nnk_vs_clean": [],
                             "loo_knn_vs_clean": [], "loo_nnk_clean_labels": [], "loo_knn_clean_labels": [],
                             "loo_nnk_on_flipped": [], "loo_nnk_on_unflipped": []}

    def callback(epoch, m):
        rows = {layer: mon(epoch, m) for layer, mon in monitors.items()}
        nan = {"loo_nnk_error": float("nan"), "loo_knn_error": float("nan"), "seconds": 0.0}
        p, c = rows["penultimate"], rows.get("conv", nan)
        extra = ""
        if run == "noisy":  # diagnostics that need the clean labels (unavailable in practice)
            t0 = time.perf_counter()
            w = as_model(m)
            pred = w.predict(d["X"]).argmax(1)
            F_pen = w.features(d["X"])
            sub = monitors["penultimate"]._loo_idx  # the monitor's LOO subset (None: all points)
            ys = d["y"] if sub is None else d["y"][sub]
            lo = NNK(k=k).fit(F_pen, y_run).loo_error(sub)  # the monitor's solve, read against the clean labels
            lc = NNK(k=k).fit(F_pen, d["y"]).loo_error(sub)  # LOO with the clean labels on the same features
            flip = d["flip"]
            fs = flip if sub is None else flip[sub]  # flipped points among the LOO points
            yn = y_run if sub is None else y_run[sub]
            for key, v in (("train_error_clean", np.mean(pred != d["y"])),
                           ("train_error_flipped", np.mean(pred[flip] != y_run[flip])),
                           ("loo_nnk_vs_clean", np.mean(lo.nnk_pred != ys)),
                           ("loo_knn_vs_clean", np.mean(lo.knn_pred != ys)),
                           ("loo_nnk_clean_labels", lc.nnk_error), ("loo_knn_clean_labels", lc.knn_error),
                           # the monitor's LOO NNK error (noisy labels) split into flipped / unflipped points
                           ("loo_nnk_on_flipped", np.mean(lo.nnk_pred[fs] != yn[fs])),
                           ("loo_nnk_on_unflipped", np.mean(lo.nnk_pred[~fs] != yn[~fs]))):
                diag[key].append(float(v))
            extra = (f" | train err clean {diag['train_error_clean'][-1]:.3f}, LOO pen. vs clean NNK "
                     f"{diag['loo_nnk_vs_clean'][-1]:.3f} kNN {diag['loo_knn_vs_clean'][-1]:.3f}, LOO NNK on flipped "
                     f"{diag['loo_nnk_on_flipped'][-1]:.3f} unflipped {diag['loo_nnk_on_unflipped'][-1]:.3f} "
                     f"({time.perf_counter() - t0:.1f} s)")
        log(f"  [{run}] epoch {epoch:2d}: train err {p['train_error']:.3f} test err {p['test_error']:.3f} | LOO NNK "
            f"penult. {p['loo_nnk_error']:.3f} conv {c['loo_nnk_error']:.3f} | LOO kNN penult. "
            f"{p['loo_knn_error']:.3f} conv {c['loo_knn_error']:.3f} ({p['seconds'] + c['seconds']:.1f} s){extra}")

    t0 = time.perf_counter()
    if run != "regularised":
        train_model(model, d["X"], y_run, epochs=epochs, lr=lr, minibatch_size=batch, random_state=seed, callback=callback)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=5e-4)
        rng = np.random.default_rng(seed + 1)
        y = torch.from_numpy(d["y"])
        pad = 1 if d["shape"][1] <= 8 else 2
        n = len(d["y"])
        for epoch in range(1, epochs + 1):
            model.train()
            Xa = torch.from_numpy(shift(d["X"], rng, pad))
            perm = torch.from_numpy(rng.permutation(n))
            for b in range(0, n, batch):
                i = perm[b:b + batch]
                loss = F.cross_entropy(model(Xa[i]), y[i])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            model.eval()
            callback(epoch, model)
    log(f"  run done in {time.perf_counter() - t0:.0f} s")
    return model, {layer: mon.result() for layer, mon in monitors.items()}, ({} if run != "noisy" else diag)


def late_rise(series: np.ndarray) -> float:
    """Mean of the last 3 epochs minus the minimum over the first 2/3 of training."""
    cut = max(1, (2 * len(series)) // 3)
    return float(np.mean(series[-3:]) - np.min(series[:cut]))


def _summary_row(tag: str, layer: str, est: str, loo: np.ndarray, te: np.ndarray) -> dict[str, Any]:
    arg = int(np.argmin(loo))
    return {"run": tag, "layer": layer, "estimate": est, "pearson": float(np.corrcoef(loo, te)[0, 1]),
            "spearman": _spearman(loo, te), "pearson_from_3": float(np.corrcoef(loo[2:], te[2:])[0, 1]),
            "argmin_test": int(np.argmin(te) + 1), "argmin_loo": arg + 1,
            "test_at_argmin_loo": float(te[arg]), "best_test": float(te.min()),
            "test_rise": late_rise(te), "loo_rise": late_rise(loo), "loo_minus_test_last": float(loo[-1] - te[-1])}


def _series(res) -> dict[str, Any]:
    """A GeneralizationResult as flat per-epoch lists plus its correlations (this script's JSON layout)."""
    import dataclasses

    out = {f.name: (v.tolist() if isinstance(v := getattr(res, f.name), np.ndarray) else v)
           for f in dataclasses.fields(res)}
    out["correlations"] = res.correlations()
    return out


def deepnnk_section(d: dict, epochs: int, k: int, seed: int, lr: float, batch: int, runs=RUNS,
                    noisy_epochs: int | None = None, arch: dict | None = None, n_loo: int | None = None,
                    monitor_layers=tuple(LAYERS)) -> tuple[dict, dict]:
    out: dict[str, Any] = {"dataset": d["name"], "n_train": len(d["y"]), "n_test": len(d["y_test"]),
                           "epochs": epochs, "k": k, "minibatch_size": batch, "lr": lr, "runs": {}, "diagnostics": {}}
    if "noisy" in runs:
        out.update(label_noise=d["label_noise"], flipped=float(d["flip"].mean()), noisy_epochs=noisy_epochs or epochs)
    models = {}
    for tag in runs:
        n_ep = (noisy_epochs or epochs) if tag == "noisy" else epochs
        log(f"DeepNNK on {d['name']} ({len(d['y'])} training images), {tag} run, {n_ep} epochs")
        model, res, diag = train_run(d, tag, n_ep, k, seed, lr, batch, arch=arch, n_loo=n_loo,
                                     layers=monitor_layers)
        models[tag] = model
        out["runs"][tag] = {layer: _series(r) for layer, r in res.items()}
        p = res["penultimate"]
        c = res["conv"] if "conv" in res else SimpleNamespace(  # conv block not monitored (--layers)
            seconds=np.zeros(len(p.epochs)), **{key: np.full(len(p.epochs), np.nan) for key in
                                               ("loo_nnk_error", "loo_knn_error", "mean_neighbors")})
        head = ["epoch", "train err", "test err", "LOO NNK pen", "LOO kNN pen", "LOO NNK conv", "LOO kNN conv",
                "NNK test pen", "kNN test pen", "nbrs pen", "nbrs conv", "diag s"]
        rows = [[str(e), f"{p.train_error[i]:.3f}", f"{p.test_error[i]:.3f}", f"{p.loo_nnk_error[i]:.3f}",
                 f"{p.loo_knn_error[i]:.3f}", f"{c.loo_nnk_error[i]:.3f}", f"{c.loo_knn_error[i]:.3f}",
                 f"{p.nnk_test_error[i]:.3f}", f"{p.knn_test_error[i]:.3f}", f"{p.mean_neighbors[i]:.1f}",
                 f"{c.mean_neighbors[i]:.1f}", f"{p.seconds[i] + c.seconds[i]:.1f}"]
                for i, e in enumerate(p.epochs)]
        if tag == "noisy":
            out["diagnostics"][tag] = diag
            head[1] = "train err (noisy)"
            head[-1:-1] = ["train err clean", "flipped fit", "LOO NNK pen vs clean", "LOO kNN pen vs clean",
                           "LOO NNK pen clean-lab", "LOO kNN pen clean-lab"]
            for i, r in enumerate(rows):
                # flipped fit: share of the flipped training labels the network reproduces
                r[-1:-1] = [f"{diag['train_error_clean'][i]:.3f}", f"{1 - diag['train_error_flipped'][i]:.3f}"] + [
                    f"{diag[key][i]:.3f}" for key in ("loo_nnk_vs_clean", "loo_knn_vs_clean", "loo_nnk_clean_labels",
                                                      "loo_knn_clean_labels")]
            title = (f"\n[1] DeepNNK, {d['name']}, overfit run on noisy labels ({100 * d['label_noise']:.0f}% symmetric "
                     f"label noise: {100 * d['flip'].mean():.1f}% of the training labels flipped to another class; "
                     f"{len(d['y'])} train / {len(d['y_test'])} clean test, k={k}). Train err and the LOO errors use "
                     "the noisy labels (all a user has); diagnostics that need the clean labels: train err clean, "
                     "flipped fit = share of flipped labels the network reproduces, LOO pen vs clean = the same "
                     "NNK / kNN LOO predictions scored against the clean labels, clean-lab = LOO with clean labels")
        else:
            title = (f"\n[1] DeepNNK, {d['name']}, {tag} run ({len(d['y'])} train / {len(d['y_test'])} test, k={k}); "
                     "LOO = leave-one-out error on the training features of the penultimate (FC) layer or the conv block")
        print(title)
        print(format_table(head, rows, right=range(len(head))))
    summary = []
    for tag, layers in out["runs"].items():
        te = np.array(layers["penultimate"]["test_error"])
        for layer, r in layers.items():
            for est in ("nnk", "knn"):
                summary.append(_summary_row(tag, layer, est.upper(), np.array(r[f"loo_{est}_error"]), te))
        summary.append(_summary_row(tag, "penultimate", "NNK test", np.array(layers["penultimate"]["nnk_test_error"]),
                                    te))
        if tag in out["diagnostics"]:
            diag = out["diagnostics"][tag]
            for name, key in (("NNK vs clean*", "loo_nnk_vs_clean"), ("kNN vs clean*", "loo_knn_vs_clean"),
                              ("NNK clean-lab*", "loo_nnk_clean_labels"), ("kNN clean-lab*", "loo_knn_clean_labels"),
                              ("train clean*", "train_error_clean")):
                summary.append(_summary_row(tag, "penultimate", name, np.array(diag[key]), te))
    out["summary"] = summary
    print(f"\n[1] DeepNNK summary, {d['name']}: correlation across epochs of the train-LOO error with the network's "
          "test error (r from 3: epochs >= 3); rise = mean of the last 3 epochs minus the minimum over the first 2/3 "
          "of training. 'NNK test' = NNK classifier on the test features (needs test labels, a reference); "
          "* = diagnostics that need the clean training labels (noisy run)")
    print(format_table(
        ["run", "layer", "estimate", "Pearson r", "Spearman", "r from 3", "argmin test", "argmin est.",
         "test@argmin est.", "best test", "test rise", "est. rise", "est.-test (last)"],
        [[s["run"], s["layer"], s["estimate"], f"{s['pearson']:.3f}", f"{s['spearman']:.3f}",
          f"{s['pearson_from_3']:.3f}", str(s["argmin_test"]), str(s["argmin_loo"]), f"{s['test_at_argmin_loo']:.3f}",
          f"{s['best_test']:.3f}", f"{s['test_rise']:+.3f}", f"{s['loo_rise']:+.3f}",
          f"{s['loo_minus_test_last']:+.3f}"] for s in summary], right=range(3, 13)))
    return out, models


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


# --------------------------------------------------------------------------- 2. classifier


def classifier_section(d: dict, models: dict, ks=(25, 50, 75)) -> list[dict]:
    rows, out = [], []
    for tag, model in models.items():
        y_sup = d["y_noisy"] if tag == "noisy" else d["y"]  # the labels the run was trained on
        m = as_model(model)
        Ftr, Fte = m.features(d["X"]), m.features(d["X_test"])
        net = float(np.mean(m.predict(d["X_test"]).argmax(1) != d["y_test"]))
        rec = {"run": tag, "network_test_error": net}
        for k in ks:
            nnk = NNK(k=k).fit(Ftr, y_sup)
            p, knn, _ = nnk.interpolate(nnk.solve(Fte))
            rec[f"nnk_k{k}"] = float(np.mean(p.argmax(1) != d["y_test"]))
            rec[f"knn_k{k}"] = float(np.mean(knn.argmax(1) != d["y_test"]))
        out.append(rec)
        rows.append([tag, f"{net:.4f}"] + [f"{rec[f'nnk_k{k}']:.4f}" for k in ks] + [f"{rec[f'knn_k{k}']:.4f}" for k in ks])
    print(f"\n[2] Test error at the last epoch, {d['name']}: the network vs NNK / kernel-weighted kNN classifiers on "
          "its penultimate features (training features as support, with the labels the run was trained on)")
    print(format_table(["run", "network"] + [f"NNK k={k}" for k in ks] + [f"kNN k={k}" for k in ks], rows,
                       right=range(1, 2 + 2 * len(ks))))
    return out


# --------------------------------------------------------------------------- 3. speed: see _nnk_speed.py


# --------------------------------------------------------------------------- 4. out of support


def fgsm(model: Any, X: np.ndarray, y: np.ndarray, eps: float) -> np.ndarray:
    out = np.empty_like(X)
    for s in range(0, len(X), 500):
        x = torch.from_numpy(X[s:s + 500]).clone().requires_grad_(True)
        loss = F.cross_entropy(model(x), torch.from_numpy(y[s:s + 500]))
        (g,) = torch.autograd.grad(loss, x)
        out[s:s + 500] = (x + eps * g.sign()).clamp(0, 1).detach().numpy()
    return out


def support_section(d: dict, model: Any, k: int, n: int, eps: float, seed: int) -> list[dict]:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed + 7)
    m = as_model(model)
    nnk = NNK(k=k).fit(m.features(d["X"]), d["y"])
    Xc, yc = d["X_test"][:n], d["y_test"][:n]
    j = rng.permutation(len(d["y_test"]))
    j = j[d["y_test"][j] != np.roll(d["y_test"][j], 1)][:n]
    sets = {
        "clean test": Xc,
        f"FGSM eps={eps}": fgsm(model, Xc, yc, eps),
        "mix of 2 test images (0.5/0.5)": 0.5 * (d["X_test"][j] + d["X_test"][np.roll(j, 1)]),
        "uniform noise": rng.uniform(size=Xc.shape).astype(np.float32),
    }
    base = None
    rows, out = [], []
    for name, X in sets.items():
        pred = m.predict(X).argmax(1)
        o = out_of_support(nnk, m.features(X), pred)
        rec = {"set": name, "network_error_vs_clean_label": float(np.mean(pred != yc)) if name != "uniform noise"
               and not name.startswith("mix") else None,
               "residual_mean": float(o.residual.mean()), "pvalue_below_0.05": float(np.mean(o.residual_pvalue < 0.05)),
               "disagreement_mean": float(o.disagreement.mean()),
               "label_disagreement_mean": float(o.label_disagreement.mean())}
        if base is None:
            base = o
        else:
            lab = np.r_[np.zeros(len(base.residual)), np.ones(len(o.residual))]
            rec["auroc_residual"] = float(roc_auc_score(lab, np.r_[base.residual, o.residual]))
            rec["auroc_disagreement"] = float(roc_auc_score(lab, np.r_[base.disagreement, o.disagreement]))
            rec["auroc_label_disagreement"] = float(roc_auc_score(lab, np.r_[base.label_disagreement,
                                                                             o.label_disagreement]))
        out.append(rec)
        err = rec["network_error_vs_clean_label"]
        rows.append([name, "-" if err is None else f"{err:.3f}", f"{rec['residual_mean']:.4f}",
                     f"{100 * rec['pvalue_below_0.05']:.1f}%", f"{rec['disagreement_mean']:.3f}",
                     f"{rec['label_disagreement_mean']:.3f}",
                     *(f"{rec[key]:.3f}" if key in rec else "-" for key in
                       ("auroc_residual", "auroc_disagreement", "auroc_label_disagreement"))])
    print(f"\n[4] Out-of-support scores, {d['name']} regularised model, {n} queries per set, k={k}. p<0.05: residual "
          "above 95% of the training points' LOO residuals; disagreement = 1 - max class weight of the polytope; "
          "label disagr. = polytope weight off the network's predicted class; AUROC vs clean test")
    print(format_table(["query set", "net err", "residual", "p<0.05", "disagr.", "label disagr.", "AUROC resid.",
                        "AUROC disagr.", "AUROC label"], rows, right=range(1, 9)))
    return out


# --------------------------------------------------------------------------- main


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                   help="folder holding mnist/ and fashion-mnist/ (default: %(default)s)")
    p.add_argument("--datasets", nargs="+", choices=("digits", "mnist", "fashion-mnist"), default=None,
                   help="DeepNNK datasets (default: digits fashion-mnist; --quick: digits)")
    p.add_argument("--quick", action="store_true", help="digits only, 15 epochs, 2,000 speed queries")
    p.add_argument("--n-train", type=int, default=2000, help="training subset for MNIST / Fashion-MNIST")
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (default 30; --quick 15)")
    p.add_argument("--k", type=int, default=50)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--minibatch-size", "--batch-size", dest="minibatch_size", type=int, default=16,
                   help="mini-batch size of both runs (16: the unregularised run memorises its training set)")
    p.add_argument("--label-noise", type=float, default=0.3,
                   help="symmetric label-noise rate of the third, 'noisy' run (MNIST / Fashion-MNIST only; 0: no "
                        "noisy run; default %(default)s)")
    p.add_argument("--noisy-epochs", type=int, default=None,
                   help="epochs of the noisy run (default 24; --quick 20)")
    p.add_argument("--speed-queries", type=int, default=None, help="default 10,000 (--quick: 2,000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sections", nargs="+", type=int, choices=(1, 2, 3, 4, 5), default=(1, 2, 3, 4, 5),
                   help="sections to run (default: all; 1 runs with any of 2-4, which need its models; 5 alone "
                        "trains its own)")
    p.add_argument("--cw-dataset", choices=("digits", "mnist", "fashion-mnist"), default=None,
                   help="section 5's data set (default mnist with --label-noise; --quick: digits)")
    p.add_argument("--runs", nargs="+", choices=RUNS, default=None,
                   help="DeepNNK runs of section 1 (default: overfit regularised, plus noisy if --label-noise > 0)")
    p.add_argument("--channels", nargs="+", type=int, default=None, help="SmallCNN conv widths (default 16 32)")
    p.add_argument("--hidden", type=int, default=None, help="SmallCNN penultimate width (default 128)")
    p.add_argument("--n-loo", type=int, default=None,
                   help="LOO on a fixed random subset of this many training points (default: all)")
    p.add_argument("--layers", nargs="+", choices=tuple(LAYERS), default=tuple(LAYERS),
                   help="layers monitored in section 1 (default: penultimate conv)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: on a shared 2-core machine 2 threads trained 10x slower)")
    p.add_argument("--json", type=Path, default=None)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)  # a script may set global state; the library never does
    datasets = args.datasets or (["digits"] if args.quick else ["digits", "fashion-mnist"])
    epochs = args.epochs or (15 if args.quick else 30)
    n_speed = args.speed_queries or (2000 if args.quick else 10000)
    record: dict[str, Any] = {"environment": environment(), "args": {k: str(v) for k, v in vars(args).items()},
                              "deepnnk": [], "classifier": [], "speed": None, "support": None}
    t_start = time.perf_counter()
    last = None
    for name in datasets if set(args.sections) - {5} else ():
        try:
            d = load(name, args.data_dir, args.n_train, args.seed)
        except FileNotFoundError as exc:
            log(f"skipping {name}: {exc}")
            continue
        runs = ("overfit", "regularised")
        if args.runs is not None:
            runs = tuple(r for r in args.runs if r != "noisy")
        if args.label_noise > 0 and name != "digits" and (args.runs is None or "noisy" in args.runs):
            # digits: the small CNN does not fit the flipped labels within 30 epochs (no U-shaped test curve)
            d["y_noisy"], d["flip"] = noisy_labels(d["y"], args.label_noise, args.seed)
            d["label_noise"] = args.label_noise
            runs += ("noisy",)
        arch = {key: v for key, v in (("channels", args.channels), ("hidden", args.hidden)) if v is not None}
        res, models = deepnnk_section(d, epochs, args.k, args.seed, args.lr, args.minibatch_size, runs=runs,
                                      noisy_epochs=args.noisy_epochs or (20 if args.quick else 24), arch=arch,
                                      n_loo=args.n_loo, monitor_layers=args.layers)
        record["deepnnk"].append(res)
        if 2 in args.sections:
            record["classifier"].append({"dataset": name, "rows": classifier_section(d, models)})
        last = (d, models)
    if last is not None and "regularised" in last[1] and {3, 4} & set(args.sections):
        d, models = last
        support = "full" if d["name"] != "digits" else "subset"
        if 3 in args.sections:
            record["speed"] = speed_section(d, models["regularised"], n_speed, args.k, support)
        if 4 in args.sections:
            record["support"] = support_section(d, models["regularised"], args.k, 1000 if not args.quick else 300,
                                                0.1, args.seed)
    if 5 in args.sections:
        name = args.cw_dataset or ("digits" if args.quick else "mnist")
        d = load(name, args.data_dir, args.n_train, args.seed)
        if args.label_noise > 0 and name != "digits":
            d["y_noisy"], d["flip"] = noisy_labels(d["y"], args.label_noise, args.seed)
        record["cw"] = cw_section(d, args.noisy_epochs or (12 if args.quick else 24), args.seed, args.lr,
                                  args.minibatch_size, k=args.k)
    record["total_seconds"] = time.perf_counter() - t_start
    log(f"total {record['total_seconds']:.0f} s")
    if args.json:
        write_json(args.json, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
