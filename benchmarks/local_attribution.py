"""Local attribution benchmark: scrutiny against lime, shap and captum.

One run, same model, same inputs, same budget for every library; times are medians of
``--repeats`` interleaved rounds after a warm-up (the order of the cases rotates each
round, so a change in machine load hits every library alike).

This file is the driver (arguments, task dispatch, footnotes, JSON); the sections live in private
modules: tasks 1-4 in :mod:`_local_speed` (helpers shared with :mod:`_local_gradients`, and the
tables, in :mod:`_local_shared`), tasks 5-8 in the modules named below.

Tasks
-----
1. **Image LIME** (``lime``; digits CNN, MNIST CNN; ``--n-images`` test images, 1,000 samples each).
   Both libraries get the *same* superpixels (SLIC from :func:`scrutiny.data.segment`:
   ``n_segments=16`` on 8x8 digits, 50 on MNIST), hidden superpixels set to 0, the same
   kernel (cosine distance, width 0.25) and ridge (alpha 1), and explain the predicted
   class's probability. lime runs at its leanest: ``LimeImageExplainer(feature_selection=
   "none")``, ``labels=(target,)``, ``top_labels=None``, ``segmentation_fn`` returning our
   labels, no progress bar; ``batch_size=10`` (its default) and 256 (our model batch).
   Error: mean over images of the relative L2 distance of the superpixel coefficients to
   a high-budget reference (ours at 2**15 samples; lime estimates the same quantity).
2. **Tabular KernelSHAP** (``kernelshap``; breast cancer, a zoo MLP (30-128-64-2, ReLU) trained on
   standardised features; ``--n-tabular`` test rows; the same 20 training rows as background
   for both; 2*30 + 2048 = 2,108 coalitions = shap's "auto"; shap ``l1_reg=False``; P(benign)
   explained). 2**30 coalitions cannot be enumerated, so the error is measured against two
   high-budget references: ours at 2**17 coalitions and shap at 2**15 coalitions (different
   seeds from the timed runs).
3. **Integrated Gradients** (``gradients``; 50 Gauss-Legendre steps, zero baseline) and **SmoothGrad**
   (50 noisy copies, sigma = 0.15 absolute, signed gradients) on the MNIST CNN (digits CNN
   when the MNIST files are missing), 64 test images, logit of the predicted class.
   captum: ``IntegratedGradients`` with ``internal_batch_size=256`` (our model batch) and
   None (everything at once); ``NoiseTunnel(Saliency)`` with ``nt_samples=50``, ``stdevs``
   the same sigma, ``abs=False``, ``nt_samples_batch_size`` 4 (4 x 64 = 256 rows) and None.
   Errors against ours at 1,024 IG steps / 4,096 plain Monte Carlo SmoothGrad samples; IG
   agreement ours vs captum at 50 steps is reported separately.
4. **Overhead ratio** (in ``lime``, ``kernelshap`` and ``gradients``) for every one of ours:
   total time / time of the model alone on the same rows in the same chunks (replayed with
   numpy's BLAS on one thread, as in scrutiny's explainers, so that OpenBLAS workers left
   spinning by earlier numpy work do not slow the replay). The chunks are recorded by running
   ours once through a module that logs the batch sizes (and whether a gradient was taken); the
   replay sends float32 tensors of those sizes through the bare model (``inference_mode``
   forward, or forward + ``autograd.grad`` of the selected outputs). For KernelSHAP the table
   also shows the floor: a hand-fused torch loop doing only what every KernelSHAP must (build
   the coalition rows, run the model, softmax, average over the background), no checks or
   regression (``fused_kernelshap``).
5. **Accuracy at equal budget, low dimension** (``lowdim``; :mod:`_local_lowdim`): KernelSHAP
   vs shap at 1,024 coalitions on held-out models with 8-16 features (wine MLP and GBM,
   diabetes GBM, synthetic MLPs), error to *exact* Shapley values (all ``2**M - 2``
   coalitions), mean +- s.e. over seeds.
6. **SmoothGrad vs its matching C-LIME** (``clime``; :mod:`_local_clime`): error against the
   number of samples at d = 10 to 784 (does C-LIME need ~d times more?), and the robustness
   (Lipschitz) table of the gradient, SmoothGrad, C-LIME and LIME.
7. **GradientSHAP, DeepLIFT, Grad-CAM** (``gradmethods``; :mod:`_local_gradients`) against captum
   on the MNIST CNN.
8. **TreeSHAP** (``trees``; :mod:`_local_trees`) against shap's TreeExplainer on adult (RF and
   GB, 1,000 rows, both forms), and KernelSHAP's accuracy/time against the exact values.

Usage::

    python benchmarks/local_attribution.py                       # full run (several minutes)
    python benchmarks/local_attribution.py --quick               # smoke run
    python benchmarks/local_attribution.py --tasks lime --datasets mnist --repeats 5 --json out.json
    python benchmarks/local_attribution.py --quick --tasks kernelshap trees   # any of the keys above
"""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")  # lime's per-sample progress bar (set before tqdm is imported)

import argparse
import sys
import time
from pathlib import Path

import torch
from _common import DEFAULT_DATA_DIR, Gate, environment, set_threads, write_json
from _local_shared import Results, log, report
from _local_speed import bench_gradients, bench_kernelshap, bench_lime

TASKS = ("lime", "kernelshap", "gradients", "lowdim", "clime", "gradmethods", "trees")
LIME_DATASETS = ("digits", "mnist")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                   help="folder holding mnist/ IDX files (default: %(default)s)")
    p.add_argument("--n-images", type=int, default=None, help="images per image-LIME run (default 20; quick 3)")
    p.add_argument("--n-grad-images", type=int, default=None, help="images for IG/SmoothGrad (default 64; quick 8)")
    p.add_argument("--n-tabular", type=int, default=None, help="rows explained by KernelSHAP (default 32; quick 4)")
    p.add_argument("--repeats", type=int, default=None, help="timed rounds after the warm-up (default 5; quick 1)")
    p.add_argument("--error-seeds", type=int, default=None,
                   help="seeds over which errors are averaged (default 5; quick 1)")
    p.add_argument("--quick", action="store_true", help="small budgets and references for a smoke run")
    p.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    p.add_argument("--datasets", nargs="+", choices=LIME_DATASETS, default=list(LIME_DATASETS),
                   help="image-LIME datasets")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: os.cpu_count())")
    p.add_argument("--json", type=Path, default=None, help="write every figure to this JSON file")
    p.add_argument("--busy-threshold", type=float, default=0.5,
                   help="cores other processes may use during a sample before it is retaken (default 0.5)")
    p.add_argument("--max-wait", type=float, default=20.0,
                   help="seconds to wait for a quiet machine before each sample (default 20)")
    p.add_argument("--no-gate", action="store_true", help="time regardless of other processes' CPU use")
    args = p.parse_args(argv)
    q = args.quick
    args.n_images = args.n_images or (3 if q else 20)
    args.n_grad_images = args.n_grad_images or (8 if q else 64)
    args.n_tabular = args.n_tabular or (4 if q else 32)
    args.repeats = args.repeats or (1 if q else 5)
    args.error_seeds = args.error_seeds or (1 if q else 5)
    args.gate = Gate(threshold=args.busy_threshold, max_wait=args.max_wait, enabled=not args.no_gate)
    args.lime_samples = 200 if q else 1000
    args.lime_ref_samples = 2**11 if q else 2**15
    args.shap_budget = 2 * 30 + 2048
    args.shap_ref_ours = 2**12 if q else 2**17
    args.shap_ref_shap = 2**11 if q else 2**15
    args.ig_steps, args.ig_ref_steps = 50, (128 if q else 1024)
    args.sg_samples, args.sg_ref_samples = 50, (256 if q else 4096)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    threads = set_threads(args.threads)
    log(f"torch {torch.__version__}, {threads} thread(s); data dir {args.data_dir}; repeats {args.repeats}"
        f"{' (quick)' if args.quick else ''}")
    res = Results()
    start = time.perf_counter()
    if "lime" in args.tasks:
        for ds in args.datasets:
            bench_lime(ds, args, res)
    if "kernelshap" in args.tasks:
        bench_kernelshap(args, res)
    if "gradients" in args.tasks:
        bench_gradients(args, res)
    if "gradmethods" in args.tasks:  # GradientSHAP, DeepLIFT, Grad-CAM vs captum (_local_gradients)
        import _local_gradients

        _local_gradients.bench(args, res)
    if "trees" in args.tasks:  # TreeSHAP vs shap's TreeExplainer; KernelSHAP vs TreeSHAP (_local_trees)
        import _local_trees

        _local_trees.bench(args, res)
    if "lowdim" in args.tasks:  # accuracy at equal budget vs shap, exact references (8-16 features)
        import _local_lowdim

        log("KernelSHAP accuracy at equal budget, low-dimensional problems (vs exact Shapley values):")
        low = _local_lowdim.run(_local_lowdim.parse_args(["--seeds", str(max(args.error_seeds, 5))]))
        res.notes["lowdim"] = low
        res.footnotes.extend(_local_lowdim.format_row(r) for r in low)
    if "clime" in args.tasks:  # SmoothGrad vs CLIME.matching: samples against dimension, robustness
        import _local_clime

        log("SmoothGrad vs its matching C-LIME (sample cost against d; robustness):")
        cl = _local_clime.run(_local_clime.parse_args(["--data-dir", str(args.data_dir)] + (["--quick"] if args.quick else [])))
        res.notes["clime"] = cl
        print(_local_clime.format_finite(cl["finite_sample"]) + "\n\n" + _local_clime.format_robust(cl["robustness"]))
    total = time.perf_counter() - start
    print(report(res))
    print()
    print("ours x faster = peer median / ours median (>1: ours faster). Errors: relative L2 distance to a "
          f"high-budget reference, mean over inputs (mean ± s.e. over {args.error_seeds} seed(s) for sampled "
          f"methods). References: LIME ours@{args.lime_ref_samples} samples; KernelSHAP ours@{args.shap_ref_ours} "
          f"| shap@{args.shap_ref_shap} coalitions; IG ours@{args.ig_ref_steps} GL steps; SmoothGrad "
          f"ours@{args.sg_ref_samples} plain MC samples.")
    for note in res.footnotes:
        print("- " + note)
    g = args.gate
    if g.enabled:
        retaken = sum(v.get("retaken", 0) for note in res.notes.values() if isinstance(note, dict)
                      for v in note.get("timing", {}).values())
        print(f"Contention gate: waited {g.waited:.0f} s for a quiet machine; {retaken} sample(s) retaken because "
              f"other processes used > {g.threshold} cores; {g.kept_contended} kept despite contention and left "
              "out of the medians (a time shown as 'x [y] (k/n)' uses the k clean samples of n).")
    env = environment()
    print(f"\n{env['cpu_count']} CPU(s), torch {env['torch']} ({env['torch_threads']} threads), lime {env['lime']}, "
          f"shap {env['shap']}, captum {env['captum']}; load average {env.get('loadavg_1_5_15')}; "
          f"total {total:.0f} s.")
    if args.json is not None:
        payload = {"benchmark": "local_attribution", "args": {k: str(v) if isinstance(v, Path) else v
                                                              for k, v in vars(args).items()},
                   "results": res.rows, "overhead": res.overhead, "notes": res.notes, "environment": env,
                   "total_seconds": round(total, 1)}
        write_json(args.json, payload, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
