"""The DMM-MEN paper's Table 1 (Guo et al., NeurIPS 2018, section 4.2), reproduced against lime and shap.

Protocol (the paper's, as ``../shared/docs/dmm-men-spec.md`` §4.4 reads it): random test images
(``--n-images`` per data set, drawn with ``--seed``), one SLIC segmentation per image
(``--n-segments``, about 30-50 superpixels on 28x28) and one budget (``--n-samples`` model
evaluations per explanation) shared by every perturbation method. Each method's top
``--keep-top`` (20) segments are kept, the rest set to 0, and the model is queried again:

* **mean P**: the mean probability of the originally predicted class, with its 95% t-interval;
* **kept**: the share still predicted as that class (95% interval); **acc**: the share classified
  as the true label (the paper's wording: "classified to the corresponding truth categories");
* **deletion / insertion AUC** over the same superpixels (RISE; deletion to 0, insertion from a
  blank image), and **ROAD** (noisy linear imputation; LeRF minus MoRF accuracy, averaged over
  10-90 % removed), all from :mod:`scrutiny.metrics`;
* **s/expl**: wall seconds per explanation in this run (the global route: its per-class fits
  divided by the images explained, plus the assignment).

Columns (methods):

* ``DMM-MEN image``: :class:`scrutiny.DMMMENExplainer` with its defaults (one fit per image on
  the masks over the superpixels that hiding changes; response the class probability relative to
  the blank image; ranking by the projection of the fitted mixture onto the masks); its share of
  converged fits is printed beside the table. ``DMM-MEN image h*``: the same fits ranked by the
  paper's rule, the slopes of the component of the unperturbed image.
* ``DMM-MEN global``: the paper's route for MNIST and Fashion-MNIST as the spec reads it: one
  :meth:`DMMMEN.from_model` per class on that class's training images (``--global-n`` images,
  300 screened pixels, the clipped logit), each test image assigned to its component ``h*``, and
  a superpixel's importance the sum of ``coef[h*] * x`` over its pixels.
* ``LIME`` / ``KernelSHAP``: scrutiny's image LIME and grouped KernelSHAP (superpixels as players,
  background all 0) on the same superpixels and budget; ``lime`` / ``shap``: the packages on the
  same superpixels and budget (``LimeImageExplainer`` with ``hide_color=0``; ``KernelExplainer``
  on the superpixel indicators with an all-off background).
* ``random``: a random ranking of the superpixels (the floor); ``random, blank last``: a random
  ranking of the superpixels that hiding changes, the blank ones last. On MNIST about 15 of 38
  SLIC superpixels hold any stroke, so keeping 20 keeps every stroke of 96 % of the digits and
  this floor already keeps the prediction for nearly every image: the MNIST column of the
  paper's Table 1 cannot tell methods apart (Fashion-MNIST can: about 26 of 37 are non-blank).
* ``Saliency``, ``GradientXInput``, ``IntegratedGradients``, ``SmoothGrad``: pixel attributions
  summed over each superpixel (defaults).

The paper's numbers (mean P / accuracy): MNIST DMM-MEN 99.89 % / 100 %, LIME 99.84 % / 99.95 %,
SHAP 94.01 % / 94.10 %; Fashion-MNIST DMM-MEN 97.59 % / 100 %, LIME 93.49 % / 98.32 %, SHAP
86.03 % / 90.10 %. The paper used 10,000 images, an MLP on MNIST and a CNN on Fashion-MNIST; the
segmentation and the budget are not stated.

Usage::

    python benchmarks/table1.py                                   # 1,000 images per data set, MLP and CNN
    python benchmarks/table1.py --quick                           # smoke run (20 images, short global fits)
    python benchmarks/table1.py --datasets mnist --models cnn --n-images 200 --json t1.json
    python benchmarks/table1.py --methods dmm-image lime random    # a subset of the columns
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_DATA_DIR, environment, format_table, write_json

from scrutiny import data as sdata
from scrutiny.exceptions import ConvergenceWarning
from scrutiny.explanation import Explanation, MetricResult
from scrutiny.metrics import deletion_curve, insertion_curve, keep_top_k, road
from scrutiny.models import as_model
from scrutiny.zoo import reference_model

LOADERS = {"mnist": sdata.load_mnist, "fashion-mnist": sdata.load_fashion_mnist}
PAPER = {  # Table 1: mean probability of the true label, accuracy (percent)
    "mnist": {"DMM-MEN": (99.89, 100.0), "LIME": (99.84, 99.95), "SHAP": (94.01, 94.10)},
    "fashion-mnist": {"DMM-MEN": (97.59, 100.0), "LIME": (93.49, 98.32), "SHAP": (86.03, 90.10)},
}
PAPER_COLUMN = {"DMM-MEN image": "DMM-MEN", "DMM-MEN global": "DMM-MEN", "LIME": "LIME", "lime": "LIME",
                "KernelSHAP": "SHAP", "shap": "SHAP"}
METHODS = ("dmm-image", "dmm-global", "lime", "kernelshap", "lime-pkg", "shap-pkg", "random", "random-blank-last",
           "saliency",
           "gradxinput", "ig", "smoothgrad")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def segment_explanation(name: str, segs: np.ndarray, seg_values: np.ndarray, target: np.ndarray) -> Explanation:
    """An Explanation carrying per-superpixel values, so the metrics rank superpixels by them."""
    values = np.take_along_axis(seg_values, segs.reshape(len(segs), -1), axis=1).reshape(segs.shape)[:, None]
    return Explanation(values=values, base_values=np.zeros(len(segs)), target=target, method=name,
                       extras={"segments": segs, "segment_values": seg_values})


def compose(image: np.ndarray, seg: np.ndarray, Z: np.ndarray) -> np.ndarray:
    """Images with the superpixels off in ``Z`` (n, S) set to 0, shape (n, 1, H, W)."""
    return np.where(Z[:, seg][:, None] > 0, image[None], 0.0).astype(np.float32)


def probabilities(net: torch.nn.Module, X: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return torch.softmax(net(torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))), dim=1).numpy()


# --------------------------------------------------------------------------- the methods


def run_dmm_image(net, X, segs, target, args, ctx) -> Explanation:
    from scrutiny.attribution import DMMMENExplainer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        e = DMMMENExplainer(net, segments=segs, n_samples=args.n_samples, random_state=args.seed).explain(
            X, target=target)
    ctx["dmm_image_converged"] = float(np.mean(e.extras["converged"]))
    ctx["dmm_image_explanation_rhat_ok"] = float(np.mean(e.extras["rhat_explanation"] < 1.05))
    # the paper's rule (the slopes of the image's component h*) from the same fits: a second row
    ctx["extra_rows"] = [segment_explanation("DMM-MEN image h*", segs, e.extras["component_segment_values"], target)]
    return e


def run_dmm_global(net, X, segs, target, args, ctx) -> Explanation:
    from scrutiny.surrogate import DMMMEN

    train = LOADERS[ctx["dataset"]](data_dir=args.data_dir, split="train")
    contrib = np.zeros(X.shape)
    conv, fit_seconds = [], 0.0
    for c in np.unique(target):
        rows = np.flatnonzero(train.y == c)[: args.global_n]
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est = DMMMEN.from_model(net, train.X[rows], int(c), n_features=300, n_iter=args.global_iter,
                                    n_burnin=args.global_iter // 2, n_chains=2, n_jobs=2, random_state=args.seed)
        fit_seconds += time.perf_counter() - t0
        conv.append(bool(est.converged_))
        mine = np.flatnonzero(target == c)
        contrib[mine] = est.explain(X[mine]).extras["contributions"].reshape(X[mine].shape)
        log(f"    global fit class {c}: {len(rows)} images, {est.fit_time_:.1f} s, converged {est.converged_}")
    ctx["dmm_global_converged"] = float(np.mean(conv))
    ctx["dmm_global_fit_seconds"] = fit_seconds
    return Explanation(values=contrib, base_values=np.zeros(len(X)), target=target, method="DMM-MEN global")


def run_lime(net, X, segs, target, args, ctx) -> Explanation:
    from scrutiny.attribution import LIME

    return LIME(net, mode="image", segments=segs, baseline=0.0, n_samples=args.n_samples,
                random_state=args.seed).explain(X, target=target)


def run_kernelshap(net, X, segs, target, args, ctx) -> Explanation:
    from scrutiny.attribution import KernelSHAP

    return KernelSHAP(net, np.zeros((1, *X.shape[1:])), groups=segs, n_samples=args.n_samples,
                      random_state=args.seed).explain(X, target=target)


def run_lime_pkg(net, X, segs, target, args, ctx) -> Explanation:
    from lime.lime_image import LimeImageExplainer

    S = segs.reshape(len(X), -1).max(axis=1) + 1
    out = np.zeros((len(X), int(S.max())))
    explainer = LimeImageExplainer(random_state=args.seed)
    for i in range(len(X)):
        exp = explainer.explain_instance(
            X[i, 0], lambda b: probabilities(net, b[..., :1].transpose(0, 3, 1, 2)), labels=(int(target[i]),),
            top_labels=None, hide_color=0, num_samples=args.n_samples, segmentation_fn=lambda img, s=segs[i]: s,
            random_seed=args.seed,
        )
        for f, w in exp.local_exp[int(target[i])]:
            out[i, f] = w
    return segment_explanation("lime", segs, out, target)


def run_shap_pkg(net, X, segs, target, args, ctx) -> Explanation:
    import shap

    S = segs.reshape(len(X), -1).max(axis=1) + 1
    out = np.zeros((len(X), int(S.max())))
    for i in range(len(X)):
        s = int(S[i])

        def f(Z, i=i):
            return probabilities(net, compose(X[i, 0], segs[i], Z))[:, target[i]]

        np.random.seed(args.seed + i)  # shap's KernelExplainer samples with numpy's global RNG
        explainer = shap.KernelExplainer(f, np.zeros((1, s)), link="identity")
        out[i, :s] = np.asarray(explainer.shap_values(np.ones((1, s)), nsamples=args.n_samples, silent=True)).ravel()
    return segment_explanation("shap", segs, out, target)


def run_random(net, X, segs, target, args, ctx) -> Explanation:
    rng = np.random.default_rng(args.seed + 7)
    S = segs.reshape(len(X), -1).max(axis=1) + 1
    return segment_explanation("random", segs, rng.random((len(X), int(S.max()))), target)


def run_random_blank_last(net, X, segs, target, args, ctx) -> Explanation:
    """A random ranking of the superpixels that hiding changes, the blank ones (equal to the
    baseline 0) last: the floor of a test that any ranking passes once it keeps every stroke."""
    from scrutiny.attribution.dmm_men import inert_segments

    rng = np.random.default_rng(args.seed + 11)
    S = segs.reshape(len(X), -1).max(axis=1) + 1
    out = rng.random((len(X), int(S.max())))
    for i in range(len(X)):
        out[i, : S[i]][inert_segments(X[i], np.zeros_like(X[i]), segs[i], int(S[i]))] = -1.0
    return segment_explanation("random, blank last", segs, out, target)


def _gradient(cls_name: str) -> Callable:
    def run(net, X, segs, target, args, ctx) -> Explanation:
        from scrutiny import attribution

        kwargs = {"random_state": args.seed} if cls_name == "SmoothGrad" else {}  # the one stochastic one
        return getattr(attribution, cls_name)(net, **kwargs).explain(X, target=target)

    return run


RUNNERS = {
    "dmm-image": ("DMM-MEN image", run_dmm_image), "dmm-global": ("DMM-MEN global", run_dmm_global),
    "lime": ("LIME", run_lime), "kernelshap": ("KernelSHAP", run_kernelshap), "lime-pkg": ("lime", run_lime_pkg),
    "shap-pkg": ("shap", run_shap_pkg), "random": ("random", run_random),
    "random-blank-last": ("random, blank last", run_random_blank_last),
    "saliency": ("Saliency", _gradient("Saliency")), "gradxinput": ("GradientXInput", _gradient("GradientXInput")),
    "ig": ("IntegratedGradients", _gradient("IntegratedGradients")), "smoothgrad": ("SmoothGrad", _gradient("SmoothGrad")),
}


# --------------------------------------------------------------------------- metrics and tables


def pct(values: np.ndarray) -> str:
    """Mean and 95% t-interval of per-image values, in percent."""
    r = MetricResult("x", np.asarray(values, dtype=float), higher_is_better=True)
    lo, hi = r.ci
    return f"{100 * r.mean:.2f} [{100 * lo:.1f}, {100 * hi:.1f}]"


def score(net, X, y_true, segs, e: Explanation, args) -> dict[str, Any]:
    keep = keep_top_k(net, X, e, k=args.keep_top, segments=segs, baseline=0.0)
    truth = keep_top_k(net, X, e, k=args.keep_top, segments=segs, baseline=0.0, target=y_true, score="accuracy")
    out = {"keep_probability": keep.values, "still_predicted": keep.extras["still_predicted"],
           "true_label_accuracy": truth.values}
    if args.curves:
        step = 1  # one superpixel at a time
        out["deletion_auc"] = deletion_curve(net, X, e, segments=segs, step=step, substrate=0.0).values
        # insertion from a blank image: a blurred MNIST digit is still classified, so the
        # blur substrate (RISE's) scores every ranking alike here (measured: 0.96-0.98 for all)
        out["insertion_auc"] = insertion_curve(net, X, e, segments=segs, step=step, substrate=0.0).values
        out["road"] = road(net, X, e, segments=segs, random_state=args.seed).values
    return out


def paired(a: np.ndarray, b: np.ndarray) -> str:
    d = MetricResult("d", np.asarray(a, float) - np.asarray(b, float), higher_is_better=True)
    lo, hi = d.ci
    return f"{100 * d.mean:+.2f} [{100 * lo:+.2f}, {100 * hi:+.2f}]"


def run_combo(dataset: str, model_name: str, args) -> dict[str, Any]:
    net, info = reference_model(model_name, dataset, data_dir=args.data_dir)
    net.eval()
    test = info["test"]
    idx = np.random.default_rng(args.seed).permutation(len(test.X))[: args.n_images]
    X, y_true = test.X[idx], np.asarray(test.y)[idx]
    segs = sdata.segment(X, method="slic", n_segments=args.n_segments)
    target = as_model(net).predict(X).argmax(axis=1)
    n_seg = segs.reshape(len(X), -1).max(axis=1) + 1
    log(f"{dataset}/{model_name}: test accuracy {info['test_accuracy']:.4f}; {len(X)} images, superpixels "
        f"{int(n_seg.min())}-{int(n_seg.max())} (median {int(np.median(n_seg))}), {args.n_samples} evaluations")
    ctx: dict[str, Any] = {"dataset": dataset}
    rows, res = [], {"n_images": len(X), "superpixels_median": float(np.median(n_seg)),
                     "model_accuracy_on_images": float(np.mean(target == y_true)), "methods": {}}
    scores: dict[str, dict] = {}
    for key in args.methods:
        name, runner = RUNNERS[key]
        t0 = time.perf_counter()
        try:
            e = runner(net, X, segs, target, args, ctx)
        except ImportError as exc:
            log(f"  {name}: skipped ({exc})")
            continue
        seconds = (time.perf_counter() - t0) / len(X)
        log(f"  {name}: {seconds:.3f} s per explanation")
        for name, e in [(name, e)] + [(x.method, x) for x in ctx.pop("extra_rows", [])]:
            s = score(net, X, y_true, segs, e, args)
            scores[name] = s
            res["methods"][name] = {"seconds_per_explanation": seconds,
                                    **{k: {"mean": float(np.mean(v)), "values": v} for k, v in s.items()}}
            paper = PAPER[dataset].get(PAPER_COLUMN.get(name.removesuffix(" h*"), ""), None)
            row = [name, pct(s["keep_probability"]), pct(s["still_predicted"]),
                   f"{100 * np.mean(s['true_label_accuracy']):.2f}"]
            if args.curves:
                row += [f"{np.mean(s['deletion_auc']):.3f}", f"{np.mean(s['insertion_auc']):.3f}",
                        f"{np.mean(s['road']):.3f}"]
            row += [f"{seconds:.3f}", "" if paper is None else f"{paper[0]:.2f} / {paper[1]:.2f}"]
            rows.append(row)
    header = ["method", "mean P % [95% CI]", "kept % [95% CI]", "acc % (true)"]
    if args.curves:
        header += ["deletion AUC (lower)", "insertion AUC", "ROAD"]
    header += ["s/expl", "paper P / acc %"]
    print(f"\nTable 1, {dataset} {model_name.upper()}: keep the top {args.keep_top} SLIC superpixels, the rest 0 "
          f"({len(X)} random test images; model accuracy on them {100 * res['model_accuracy_on_images']:.2f}%)\n"
          + format_table(header, rows, right=tuple(range(1, len(header) - 1))), flush=True)
    notes = []
    for key, label in (("dmm_image_converged", "DMM-MEN image: converged fits"),
                       ("dmm_image_explanation_rhat_ok", "DMM-MEN image: explanation R-hat < 1.05"),
                       ("dmm_global_converged", "DMM-MEN global: converged class fits")):
        if key in ctx:
            notes.append(f"{label} {100 * ctx[key]:.0f}%")
            res[key] = ctx[key]
    if "dmm_global_fit_seconds" in ctx:
        res["dmm_global_fit_seconds"] = ctx["dmm_global_fit_seconds"]
        notes.append(f"global fits {ctx['dmm_global_fit_seconds']:.0f} s in all")
    for a, b in (("DMM-MEN image", "LIME"), ("DMM-MEN image", "random"), ("DMM-MEN image h*", "LIME"),
                 ("DMM-MEN global", "LIME")):
        if a in scores and b in scores:
            notes.append(f"{a} - {b}, mean P (paired, pct. points): {paired(scores[a]['keep_probability'], scores[b]['keep_probability'])}")
            if args.curves:
                notes.append(f"{a} - {b}, deletion AUC (paired, x100): "
                             f"{paired(scores[a]['deletion_auc'], scores[b]['deletion_auc'])}")
    if notes:
        print("  " + "\n  ".join(notes), flush=True)
    return res


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    p.add_argument("--datasets", nargs="+", choices=tuple(LOADERS), default=tuple(LOADERS))
    p.add_argument("--models", nargs="+", choices=("mlp", "cnn"), default=("mlp", "cnn"))
    p.add_argument("--methods", nargs="+", choices=METHODS, default=METHODS)
    p.add_argument("--n-images", type=int, default=1000, help="random test images per data set (the paper: 10,000)")
    p.add_argument("--n-samples", type=int, default=1000, help="model evaluations per perturbation explanation")
    p.add_argument("--n-segments", type=int, default=50, help="SLIC n_segments")
    p.add_argument("--keep-top", type=int, default=20, help="segments kept (the paper: 20)")
    p.add_argument("--global-n", type=int, default=2000, help="training images per class for the global fits")
    p.add_argument("--global-iter", type=int, default=1000, help="sweeps per chain of the global fits")
    p.add_argument("--no-curves", dest="curves", action="store_false", help="skip deletion/insertion/ROAD")
    p.add_argument("--quick", action="store_true", help="20 images, short global fits (a smoke run)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.n_images, args.global_n, args.global_iter = min(args.n_images, 20), 300, 200
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    out = {"environment": environment(), "args": vars(args), "results": {}}
    for dataset in args.datasets:
        for model_name in args.models:
            try:
                out["results"][f"{dataset}/{model_name}"] = run_combo(dataset, model_name, args)
            except FileNotFoundError as exc:
                log(f"{dataset}/{model_name}: skipped, data missing ({exc}); pass --data-dir")
            if args.json:  # after every combination: a run stopped early keeps what it finished
                write_json(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
