"""Randomization diagnostics on CPU: Zhang et al.'s memorisation test and Adebayo et al.'s sanity checks.

Sections (each prints a table; ``--json`` writes everything; figures go to ``--out``):

1. ``memorisation`` -- :func:`scrutiny.diagnostics.randomization_test` on MNIST (the 10k test set split
   into 4,000 training and 2,000 clean held-out images, standardised; notes B.3) with an MLP
   784-512-512 (every corruption, ``--seeds`` seeds, Adam 1e-3, minibatch 100, <= ``--max-epochs``) and
   the zoo CNN (true labels, random labels, shuffled pixels; ``--cnn-seeds`` seeds, ``--cnn-epochs``
   budget): epochs to 99% and 100%, held-out accuracy, time per run, beside the notes' measured
   reproduction and the paper's qualitative claims.
2. ``sanity`` -- :func:`scrutiny.diagnostics.sanity_check` of Saliency, Gradient x Input, IG, SmoothGrad,
   Occlusion, image LIME and DMMMENExplainer on a CNN trained on 2,000 MNIST images (cascading and
   independent layer randomisation, data randomisation with the same recipe), and of KernelSHAP on an
   MLP for the breast-cancer table: similarity per layer (Spearman of |attribution|, SSIM), the
   random-attribution floor, the seed-to-seed ceiling of stochastic explainers, permutation p-values,
   verdicts, time per explainer. An "explainer" that returns the input is the negative control.

Usage::

    python benchmarks/randomization.py                 # both sections at full size (about 15 minutes)
    python benchmarks/randomization.py --quick         # 1 seed, fewer conditions and images (a few minutes)
    python benchmarks/randomization.py --sections sanity --json rnd.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import DEFAULT_DATA_DIR, environment, format_table, set_threads, write_json  # noqa: E402

ALL = ("true", "labels@0.2", "labels@0.4", "labels@0.6", "labels@0.8", "random_labels", "shuffled_pixels",
       "random_pixels", "gaussian")
# the CNN runs are ~10x costlier per epoch than the MLP's: random pixels and label noise are left to the MLP
CNN_CONDITIONS = ("true", "random_labels", "shuffled_pixels")

#: the notes' measured reproduction (interpretable-and-randomization-notes.md B.3; MLP, Adam, 3 seeds):
#: epochs to 99%, epochs to 100%, held-out accuracy
NOTES = {"true": ("6, 5, 7", "9, 10, 8", 0.953), "labels@0.2": ("33, 27, 37", "78, 70, 68", 0.853),
         "labels@0.4": ("39, 44, 41", "63, 69, 67", 0.716), "labels@0.6": ("43, 45, 43", "81, 74, 74", 0.531),
         "labels@0.8": ("42, 45, 45", "73, 86, 71", 0.311), "random_labels": ("40, 48, 44", "73, 74, 70", 0.102),
         "shuffled_pixels": ("5, 5, 6", "8, 9, 9", 0.954), "random_pixels": ("4, 4, 4", "5, 6, 5", 0.167),
         "gaussian": ("4, 4, 4", "5, 5, 5", 0.096)}
#: Zhang et al. (Fig. 1, CIFAR-10, qualitative): every condition reaches zero training error
PAPER = {"true": "fastest; test 0.86-0.89", "labels@0.2": "slower as p grows", "labels@0.4": "slower as p grows",
         "labels@0.6": "slower as p grows", "labels@0.8": "slower as p grows",
         "labels@0.5": "slower as p grows", "random_labels": "slowest (small constant x); test at chance",
         "shuffled_pixels": "between true and random", "random_pixels": "between true and random; chance",
         "gaussian": "between true and random; chance"}


def mnist_split(data_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from scrutiny.data import load_mnist

    test = load_mnist(data_dir, split="test")
    X, y = test.X.astype(np.float64), test.y
    mu, sd = X[:4000].mean(), X[:4000].std()
    X = (X - mu) / sd
    return X[:4000], y[:4000], X[4000:6000], y[4000:6000]


def memorisation(args: argparse.Namespace, record: dict) -> None:
    from scrutiny.diagnostics import randomization_test
    from scrutiny.zoo import make_model

    Xtr, ytr, Xte, yte = mnist_split(args.data_dir)
    recipe = {"lr": 1e-3, "minibatch_size": 100, "optimizer": "adam"}
    quick = args.quick
    runs = [
        ("MLP 784-512-512", lambda s: (make_model("mlp", (1, 28, 28), 10, s, hidden=(512, 512)), recipe),
         ("true", "labels@0.5", "random_labels", "random_pixels") if quick else ALL, 1 if quick else args.seeds,
         args.max_epochs),
        ("CNN (zoo SmallCNN)", lambda s: (make_model("cnn", (1, 28, 28), 10, s), recipe),
         ("true", "random_labels") if quick else tuple(args.cnn_corruptions), 1 if quick else args.cnn_seeds,
         args.cnn_epochs),
    ]
    record["memorisation"] = {}
    for name, factory, conditions, seeds, epochs in runs:
        if name.split()[0].lower() not in args.models:
            continue
        t0 = time.perf_counter()
        res = randomization_test(factory, Xtr, ytr, X_test=Xte, y_test=yte, corruptions=conditions, n_seeds=seeds,
                                 max_epochs=epochs, random_state=0)
        total = time.perf_counter() - t0
        rows = []
        for i, c in enumerate(res.corruptions):
            def seq(a: np.ndarray) -> str:
                return ", ".join("-" if np.isnan(v) else str(int(v)) for v in a)

            notes = NOTES.get(c, ("", "", float("nan"))) if name.startswith("MLP") else ("", "", float("nan"))
            rows.append([c, seq(res.epochs_to_threshold[i]), seq(res.epochs_to_fit[i]),
                         f"{np.mean(res.final_train_accuracy[i]):.3f}", f"{np.mean(res.test_accuracy[i]):.3f}",
                         f"{np.mean(res.seconds[i]):.1f}", notes[0], notes[1],
                         "" if np.isnan(notes[2]) else f"{notes[2]:.3f}", PAPER.get(c, "")])
        print(f"\n== randomization test: {name}, MNIST 4,000 / 2,000, {seeds} seed(s), <= {epochs} epochs "
              f"({total:.0f} s) ==")
        print(format_table(["condition", "ep. 99%", "ep. 100%", "train", "held-out", "s/run", "notes 99%",
                            "notes 100%", "notes held-out", "paper (CIFAR-10)"], rows, right=(3, 4, 5)))
        print(f"chance {res.chance:.3f}; indicators: " + ", ".join(
            f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in res.indicators.items()
            if k != "relative_time"))
        print("relative time to 99%: " + ", ".join(f"{k} {v:.1f}x" for k, v in res.indicators["relative_time"].items()
                                                  if v is not None and np.isfinite(v)))
        print(res.verdict)
        tag = "mlp" if name.startswith("MLP") else "cnn"
        res.plot(args.out / f"randomization_{tag}.png")
        res.save(args.out / f"randomization_{tag}.npz")
        record["memorisation"][tag] = {"total_seconds": total, "result": res.to_dict()}


def _explainers(net: object, quick: bool) -> dict:
    from scrutiny.attribution import (LIME, GradientXInput, IntegratedGradients, Occlusion,
                                      Saliency, SmoothGrad)

    out = {"Saliency": Saliency(net), "GradientXInput": GradientXInput(net),
           "IG": IntegratedGradients(net, n_steps=32),
           "SmoothGrad": SmoothGrad(net, n_samples=20, noise_level=0.15, random_state=0),
           "Occlusion": Occlusion(net, window=(1, 4, 4), stride=2),
           "LIME": LIME(net, mode="image", segments="slic", n_samples=300 if quick else 500, random_state=0)}
    out["input (edge)"] = lambda model, X, target: X  # control: ignores the model, must fail
    return out


def _dmm(net: object) -> dict:
    from scrutiny.attribution import DMMMENExplainer

    # a DMM-MEN fit per image and model: the costliest explainer by far, checked on --dmm-images images
    return {"DMMMEN": DMMMENExplainer(net, n_samples=300, segments="slic", n_iter=100, n_burnin=50, random_state=0)}


def sanity(args: argparse.Namespace, record: dict) -> None:
    import warnings

    from scrutiny.data import load_mnist, load_tabular_benchmark
    from scrutiny.diagnostics import sanity_check
    from scrutiny.zoo import accuracy, make_model, train_model

    record["sanity"] = {}
    train = load_mnist(args.data_dir, split="train")
    test = load_mnist(args.data_dir, split="test")
    n_train = 500 if args.quick else 1000
    Xtr, ytr = train.X[:n_train].astype(np.float64), train.y[:n_train]
    X = test.X[:args.n_images].astype(np.float64)
    # one recipe for the real-label model and the permuted-label copy (enough epochs to memorise)
    recipe = {"epochs": 20 if args.quick else 40, "lr": 2e-3, "minibatch_size": 64}
    net = make_model("cnn", (1, 28, 28), 10, 0)
    t0 = time.perf_counter()
    train_model(net, Xtr, ytr, random_state=0, **recipe)
    acc = accuracy(net, test.X[5000:7000], test.y[5000:7000])
    print(f"\n== sanity checks: SmallCNN on {n_train} MNIST images ({recipe['epochs']} epochs, "
          f"{time.perf_counter() - t0:.0f} s), held-out accuracy {acc:.3f}, {args.n_images} test images ==")
    explainers = _explainers(net, args.quick)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # one call: the permuted-label copy is trained once and shared by every explainer
        res = sanity_check(explainers, net, X, tests=("cascading", "independent", "data"), X_train=Xtr, y_train=ytr,
                           train_params=recipe, n_permutations=999, random_state=0)
        total = time.perf_counter() - t0
        if args.dmm_images > 0:
            t1 = time.perf_counter()
            dmm = sanity_check(_dmm(net), net, X[:args.dmm_images], tests=("cascading", "data"), X_train=Xtr,
                               y_train=ytr, train_params=recipe, n_permutations=999, random_state=0)
            record["sanity"]["dmm"] = {"seconds": time.perf_counter() - t1, "result": dmm.to_dict()}
            dmm.save(args.out / "sanity_mnist_cnn_dmm.npz")
    print(f"sanity_check: {total:.0f} s (the permuted-label copy reached {res.params['data_train_accuracy']:.3f} "
          "training accuracy)")
    rows = []
    k_data = res.stages.index("data")
    ssim = res.metrics.index("ssim")
    for i, name in enumerate(res.explainers):
        stages, curve = res.curve(name, "spearman_abs", "cascading")
        ind = [k for k, s in enumerate(res.stages) if s.startswith("independent:")]
        v = res.verdicts()[name]
        sec = res.extras["seconds"][i]
        rows.append([name, " ".join(f"{c:.2f}" for c in curve), f"{np.mean(res.mean[i, ind, 0]):.2f}",
                     f"{res.mean[i, k_data, 0]:.2f}", f"{res.mean[i, len(stages) - 1, ssim]:.2f}",
                     f"{res.mean[i, k_data, ssim]:.2f}", f"{np.mean(res.baseline[i, 0]):.2f}",
                     f"{np.mean(res.extras['ceiling'][i, 0]):.2f}",
                     f"{res.p_values[i, len(stages) - 1, 0]:.3f}",
                     "pass" if v["cascading"] else "FAIL", "pass" if v["independent"] else "FAIL",
                     "pass" if v["data"] else "FAIL", f"{sec[0]:.2f}", f"{sec.sum():.0f}"])
    print(f"cascading order: {', '.join(s.split(':')[1] for s in stages)} (Spearman of |attribution|; "
          f"threshold {res.params['threshold']} on (s - floor) / (seed-to-seed - floor))")
    print(format_table(["explainer", "cascading curve", "indep. mean", "data", "SSIM all", "SSIM data",
                        "random floor", "seed-to-seed", "p (all layers)", "cascading", "independent", "data test", "s/explain",
                        "total s"], rows))
    print(res.verdict)
    if args.dmm_images > 0:
        stages, curve = dmm.curve("DMMMEN", "spearman_abs", "cascading")
        v = dmm.verdicts()["DMMMEN"]
        print(f"DMMMEN on {args.dmm_images} images ({record['sanity']['dmm']['seconds']:.0f} s, "
              f"{dmm.extras['seconds'][0, 0] / args.dmm_images:.1f} s per image): cascading "
              f"{' '.join(f'{c:.2f}' for c in curve)}, data {dmm.mean[0, -1, 0]:.2f}, SSIM all layers "
              f"{dmm.mean[0, len(stages) - 1, dmm.metrics.index('ssim')]:.2f}, floor {np.mean(dmm.baseline[0, 0]):.2f}, "
              f"seed-to-seed {np.mean(dmm.extras['ceiling'][0, 0]):.2f}; "
              f"cascading {'pass' if v['cascading'] else 'FAIL'}, data {'pass' if v['data'] else 'FAIL'}")
    res.plot(args.out / "sanity_mnist_cnn.png")
    res.save(args.out / "sanity_mnist_cnn.npz")
    record["sanity"]["mnist_cnn"] = {"seconds": total, "cnn_test_accuracy": acc, "result": res.to_dict()}

    # KernelSHAP on a tabular model (breast cancer, zoo MLP)
    from scrutiny.attribution import KernelSHAP

    data = load_tabular_benchmark("breastcancer", data_dir=args.data_dir)
    Xt = (data.X - data.X.mean(0)) / data.X.std(0)
    idx = np.random.default_rng(0).permutation(Xt.shape[0])
    tr, te = idx[:500], idx[500:520]
    mlp = make_model("mlp", (Xt.shape[1],), 2, 0, hidden=(64, 64))
    tab_recipe = {"epochs": 200, "lr": 3e-3, "minibatch_size": 32}
    train_model(mlp, Xt[tr], data.y[tr], random_state=0, **tab_recipe)
    t0 = time.perf_counter()
    shap = KernelSHAP(mlp, background=Xt[tr[:50]], n_samples=512, random_state=0)
    res = sanity_check({"KernelSHAP": shap, "input (edge)": lambda m, Xs, t: Xs}, mlp, Xt[te], X_train=Xt[tr],
                       y_train=data.y[tr], train_params=tab_recipe, random_state=0)
    seconds = time.perf_counter() - t0
    print(f"\n== KernelSHAP, MLP 64-64 on breast cancer ({len(tr)} rows; test acc "
          f"{accuracy(mlp, Xt[idx[500:]], data.y[idx[500:]]):.3f}; permuted-label copy "
          f"{res.params['data_train_accuracy']:.3f}; {seconds:.0f} s) ==")
    print(res.table())
    record["sanity"]["KernelSHAP_tabular"] = {"seconds": seconds, "result": res.to_dict()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    p.add_argument("--sections", nargs="+", choices=("memorisation", "sanity"), default=["memorisation", "sanity"])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--models", nargs="+", choices=("mlp", "cnn"), default=["mlp", "cnn"],
                   help="networks of the memorisation section")
    p.add_argument("--seeds", type=int, default=3, help="seeds of the MLP grid")
    p.add_argument("--max-epochs", type=int, default=150, help="epoch budget of the MLP runs")
    p.add_argument("--cnn-seeds", type=int, default=1)
    p.add_argument("--cnn-corruptions", nargs="+", default=list(CNN_CONDITIONS))
    p.add_argument("--cnn-epochs", type=int, default=80, help="epoch budget of the CNN runs")
    p.add_argument("--n-images", type=int, default=8, help="MNIST test images explained by the sanity checks")
    p.add_argument("--dmm-images", type=int, default=2, help="images of the DMMMENExplainer check (0: skip)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1: on a shared 2-core machine a second thread stalls when a core is busy)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    threads = set_threads(args.threads)
    record: dict = {"environment": environment(), "threads": threads, "args": {k: str(v) for k, v in vars(args).items()}}
    start = time.perf_counter()
    if "memorisation" in args.sections:
        memorisation(args, record)
    if "sanity" in args.sections:
        sanity(args, record)
    record["total_seconds"] = time.perf_counter() - start
    print(f"\ntotal {record['total_seconds']:.0f} s")
    if args.json:
        write_json(args.json, record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
