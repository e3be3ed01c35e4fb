"""Speed sections of the local attribution benchmark: image LIME, KernelSHAP, IG, SmoothGrad.

Image LIME against lime (:func:`bench_lime`), tabular KernelSHAP against shap
(:func:`bench_kernelshap`, with the hand-fused floor :func:`fused_kernelshap`), and Integrated
Gradients and SmoothGrad against captum (:func:`bench_gradients`): same model, inputs and budget
for every library, timed in interleaved rounds, errors against high-budget references, and the
overhead ratio of ours (total time / the model alone on the same chunks). The protocols are
described in the docstring of ``local_attribution.py`` (tasks 1-4), which runs these sections
(``--tasks lime kernelshap gradients``); shared helpers are in :mod:`_local_shared`.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from _common import Case, time_cases
from _local_shared import (
    Results,
    breast_cancer_mlp,
    channels_last_copy,
    fmt_time,
    load_cnn,
    log,
    not_worse,
    predicted,
    record_calls,
    rel_err,
    replay,
    seeded_error,
)
from torch import nn

from scrutiny.attribution import LIME, IntegratedGradients, KernelSHAP, SmoothGrad
from scrutiny.data import segment
from scrutiny.models import as_model, auto_batch_size

SLIC_SEGMENTS = {"digits": 16, "mnist": 50}
LIME_PEER_BATCHES = (10, 256)
SIGMA = 0.15


# --------------------------------------------------------------------------- task 1: image LIME


def bench_lime(dataset: str, args: argparse.Namespace, res: Results) -> None:
    from lime.lime_image import LimeImageExplainer

    try:
        cnn, info = load_cnn(dataset, args.data_dir)
    except FileNotFoundError as exc:
        log(f"image LIME on {dataset}: skipped ({exc})")
        res.notes[f"lime_{dataset}"] = {"skipped": str(exc)}
        return
    X = info["test"].X[: args.n_images]
    n = len(X)
    target = predicted(cnn, X)
    segs = segment(X, method="slic", n_segments=SLIC_SEGMENTS[dataset])
    n_seg = segs.reshape(n, -1).max(axis=1) + 1
    m = args.lime_samples
    task = f"image LIME / {dataset} CNN"
    log(f"{task}: {n} images {X.shape[1:]}, superpixels {int(n_seg.min())}-{int(n_seg.max())}, {m} samples")

    def ours(model: nn.Module = cnn, samples: int = m, seed: int = 0):
        return LIME(model, mode="image", segments=segs, baseline=0.0, n_samples=samples,
                    random_state=seed).explain(X, target=target)

    fast_cnn = channels_last_copy(cnn)

    def lime_predict(batch: np.ndarray, module: nn.Module = cnn) -> np.ndarray:  # (b, H, W, 3) from gray2rgb
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch[..., 0], dtype=np.float32))[:, None]
            return torch.softmax(module(x), dim=1).numpy()

    def lime_run(batch_size: int, idx: range | None = None, seed: int = 0, module: nn.Module = cnn) -> np.ndarray:
        explainer = LimeImageExplainer(feature_selection="none", random_state=seed)
        out = np.zeros((n, int(n_seg.max())))
        for i in idx if idx is not None else range(n):
            exp = explainer.explain_instance(
                X[i, 0], lambda b: lime_predict(b, module), labels=(int(target[i]),), top_labels=None, hide_color=0,
                num_samples=m, batch_size=batch_size, segmentation_fn=lambda img, s=segs[i]: s, random_seed=0,
            )
            for f, w in exp.local_exp[int(target[i])]:
                out[i, f] = w
        return out

    # errors against a high-budget reference (untimed; lime's result does not depend on batch_size)
    ref = ours(samples=args.lime_ref_samples, seed=12345).extras["segment_values"]

    def err(v: np.ndarray) -> np.ndarray:
        return np.array([np.linalg.norm(v[i, : n_seg[i]] - ref[i, : n_seg[i]]) / np.linalg.norm(ref[i, : n_seg[i]])
                         for i in range(n)])

    e_ours = seeded_error(lambda s: ours(seed=s).extras["segment_values"], err, args.error_seeds)
    e_lime = seeded_error(lambda s: lime_run(256, seed=s), err, args.error_seeds)
    v_ours, v_lime = ours().extras["segment_values"], lime_run(256)
    agree = float(np.median([np.corrcoef(v_ours[i, : n_seg[i]], v_lime[i, : n_seg[i]])[0, 1] for i in range(n)]))

    calls = record_calls(cnn, lambda mod: ours(model=mod))
    pool = torch.as_tensor(X, dtype=torch.float32).contiguous()
    cases = [Case("ours", lambda: ours())]
    for bs in LIME_PEER_BATCHES:
        cases.append(Case(f"lime bs={bs}", lambda bs=bs: lime_run(bs),
                          warmup=lambda bs=bs: lime_run(bs, range(min(2, n)))))
        cases.append(Case(f"lime bs={bs} CL", lambda bs=bs: lime_run(bs, module=fast_cnn),
                          warmup=lambda bs=bs: lime_run(bs, range(min(2, n)), module=fast_cnn)))
    cases.append(Case("model only", replay(cnn, calls, pool, torch.as_tensor(target))))
    time_cases(cases, args.repeats, log, args.gate)
    t = res.timing(f"lime_{dataset}", cases, args.gate)
    budget = f"{m} samples x {n} img"
    res.add(task=task, method="LIME", library="scrutiny", config=f"defaults (model batch {auto_batch_size(int(np.prod(X.shape[1:])))})", budget=budget,
            time=t["ours"], speedup="-", error=e_ours, goal="", met=None)
    for bs in LIME_PEER_BATCHES:
        for k, layout in ((f"lime bs={bs}", ""), (f"lime bs={bs} CL", ", channels-last model")):
            sp = t[k]["median"] / t["ours"]["median"]
            res.add(task=task, method="LIME", library="lime", config=f"batch_size={bs}{layout}", budget=budget,
                    time=t[k], speedup=f"{sp:.2f}x", error=e_lime, goal="ours >= 5x faster", met=bool(sp >= 5.0))
    res.add_overhead(task, "LIME", calls, t["ours"], t["model only"])
    bound = {bs: t[f"lime bs={bs} CL"]["median"] / t["model only"]["median"] for bs in LIME_PEER_BATCHES}
    res.notes[f"lime_{dataset}"].update({
        "n_images": n, "superpixels_min": int(n_seg.min()), "superpixels_max": int(n_seg.max()),
        "reference": f"scrutiny LIME, {args.lime_ref_samples} samples, seed 12345",
        "error_ours": e_ours, "error_lime": e_lime, "median_pearson_ours_vs_lime": agree,
        "amdahl_bound_vs_lime": {str(k): v for k, v in bound.items()},
    })
    res.footnotes.append(
        f"{task}: superpixels {int(n_seg.min())}-{int(n_seg.max())}; median Pearson ours vs lime {agree:.3f}. "
        f"The model alone on the same {sum(c for c, _ in calls):,} rows takes {fmt_time(t['model only'])}, so no "
        "library evaluating those rows can beat lime (given the same channels-last model) by more than "
        + " / ".join(f"{bound[bs]:.1f}x (bs={bs})" for bs in LIME_PEER_BATCHES) + ".")


# --------------------------------------------------------------------------- task 2: KernelSHAP


def fused_kernelshap(mlp: nn.Module, X: np.ndarray, bg: np.ndarray, m: int) -> Callable[[], None]:
    """The least work any KernelSHAP must do on top of the model, written as one hand-fused torch
    loop: coalition rows built with ``torch.where`` into one reused buffer, the model in batches
    of whole coalitions (about 2,048 rows), softmax and the background average in torch. No
    checks, no sampling, no regression: its overhead ratio bounds what a library can reach."""
    rng = np.random.default_rng(0)
    B, D = bg.shape
    Xt, bt = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(bg, dtype=torch.float32)
    mask = torch.as_tensor(rng.random((m, D)) < 0.5)
    per_call = max(1, 2048 // B)  # coalitions per model call
    per_chunk = per_call * 8
    buf = torch.empty(per_chunk * B, D)
    w = torch.full((1, B, 1), 1.0 / B)

    def run() -> None:
        with torch.inference_mode():
            for x in Xt:
                for lo in range(0, m, per_chunk):
                    hi = min(m, lo + per_chunk)
                    rows = buf[: (hi - lo) * B]
                    torch.where(mask[lo:hi, None, :], x, bt, out=rows.view(hi - lo, B, D))
                    for s in range(0, rows.shape[0], per_call * B):
                        p = torch.softmax(mlp(rows[s:s + per_call * B]), dim=1)
                        (p.view(-1, B, p.shape[1]) * w).sum(1)

    return run


def bench_kernelshap(args: argparse.Namespace, res: Results) -> None:
    import shap

    mlp, d = breast_cancer_mlp()
    rng = np.random.default_rng(0)
    bg = d["Xtr"][rng.choice(len(d["Xtr"]), 20, replace=False)]
    X = d["Xte"][: args.n_tabular]
    n, B, M = len(X), len(bg), X.shape[1]
    budget = args.shap_budget
    task = "KernelSHAP / breast cancer MLP"
    log(f"{task}: {n} rows, {M} features, background {B}, {budget} coalitions")

    def f(A: np.ndarray) -> np.ndarray:  # what shap sees: P(benign)
        with torch.inference_mode():
            return torch.softmax(mlp(torch.as_tensor(A, dtype=torch.float32)), dim=1)[:, 1].double().numpy()

    def ours(model: Any = mlp, samples: int = budget, seed: int = 0) -> np.ndarray:
        return KernelSHAP(model, background=bg, n_samples=samples, random_state=seed).explain(X, target=1).values

    def shap_run(samples: int = budget, seed: int = 0, rows: np.ndarray = X) -> np.ndarray:
        np.random.seed(seed)  # shap's KernelExplainer samples with the global numpy RNG
        explainer = shap.KernelExplainer(f, bg, link="identity")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(explainer.shap_values(rows, nsamples=samples, l1_reg=False, silent=True))

    # references (untimed): ours with a large model batch (speed only), shap at 2**15
    t0 = time.perf_counter()
    ref_ours = ours(model=as_model(mlp, batch_size=65536), samples=args.shap_ref_ours, seed=777)
    t1 = time.perf_counter()
    ref_shap = shap_run(samples=args.shap_ref_shap, seed=778)
    t2 = time.perf_counter()
    ref_dist = float(np.median(rel_err(ref_shap, ref_ours)))
    log(f"  references: ours@{args.shap_ref_ours} {t1 - t0:.1f} s, shap@{args.shap_ref_shap} {t2 - t1:.1f} s; "
        f"median rel. distance between them {ref_dist:.4f}")
    big = as_model(mlp, batch_size=8192)
    e_ours = [seeded_error(lambda s: ours(model=big, seed=s), lambda v, r=r: rel_err(v, r), args.error_seeds)
              for r in (ref_ours, ref_shap)]
    e_shap = [seeded_error(lambda s: shap_run(seed=s), lambda v, r=r: rel_err(v, r), args.error_seeds)
              for r in (ref_ours, ref_shap)]
    v_ours, v_shap = ours(), shap_run()
    gap = f(X) - f(bg).mean()  # efficiency: sum phi = f(x) - E f(background)
    eff_ours, eff_shap = np.abs(v_ours.sum(1) - gap).max(), np.abs(v_shap.sum(1) - gap).max()

    calls = record_calls(mlp, lambda mod: ours(model=mod))
    calls_big = record_calls(mlp, lambda mod: ours(model=as_model(mod, batch_size=8192)))
    pool = torch.as_tensor(np.concatenate([X, bg]), dtype=torch.float32)
    ones = torch.ones(len(pool), dtype=torch.long)
    cases = [
        Case("ours", lambda: ours()),
        Case("ours bs8192", lambda: ours(model=big)),
        Case("shap", lambda: shap_run(), warmup=lambda: shap_run(rows=X[:2])),
        Case("model only", replay(mlp, calls, pool, ones)),
        Case("model only bs8192", replay(mlp, calls_big, pool, ones)),
        Case("fused floor", fused_kernelshap(mlp, X, bg, budget)),
    ]
    time_cases(cases, args.repeats, log, args.gate)
    t = res.timing("kernelshap", cases, args.gate)
    label = f"{budget} coalitions x {n} rows, bg {B}"
    sp = t["shap"]["median"] / t["ours"]["median"]
    sp_big = t["shap"]["median"] / t["ours bs8192"]["median"]
    res.add(task=task, method="KernelSHAP", library="scrutiny", config=f"defaults (model batch {auto_batch_size(M)})", budget=label,
            time=t["ours"], speedup="-", error=e_ours, goal="", met=None)
    res.add(task=task, method="KernelSHAP", library="scrutiny", config="as_model(mlp, batch_size=8192)",
            budget=label, time=t["ours bs8192"], speedup=f"{sp_big:.2f}x vs shap", error=e_ours, goal="", met=None)
    no_worse = all(not_worse(e_ours[j], e_shap[j]) for j in range(2))
    res.add(task=task, method="KernelSHAP", library="shap", config="KernelExplainer, l1_reg=False", budget=label,
            time=t["shap"], speedup=f"{sp:.2f}x", error=e_shap, goal="ours >= 3x faster, error <= shap's",
            met=bool(sp >= 3.0 and no_worse))
    res.add_overhead(task, "KernelSHAP", calls, t["ours"], t["model only"])
    res.add_overhead(task + " (model batch 8192)", "KernelSHAP", calls_big, t["ours bs8192"], t["model only bs8192"])
    res.add_overhead(task + " (hand-fused torch pipeline: the floor)", "KernelSHAP", calls, t["fused floor"],
                     t["model only"])
    res.notes["kernelshap"].update({
        "n_rows": n, "background": B, "features": M, "budget": budget, "mlp_test_accuracy": d["test_accuracy"],
        "errors": f"mean over seeds of the median relative L2 vs [ours@{args.shap_ref_ours}, "
                  f"shap@{args.shap_ref_shap}]",
        "error_ours": e_ours, "error_shap": e_shap, "reference_distance": ref_dist,
        "efficiency_max_abs_ours": float(eff_ours), "efficiency_max_abs_shap": float(eff_shap),
        "speedup_vs_shap_default": sp, "speedup_vs_shap_bs8192": sp_big, "error_no_worse": no_worse,
    })
    res.footnotes.append(
        f"{task}: errors are 'vs ours@{args.shap_ref_ours} | vs shap@{args.shap_ref_shap}' (mean ± s.e. over "
        f"{args.error_seeds} seeds; 'no worse' = not above shap's by 2 s.e. of the difference); the two references "
        f"differ by {ref_dist:.4f}; efficiency max |sum phi - (f(x) - E f)|: ours {eff_ours:.1e}, shap {eff_shap:.1e}.")


# --------------------------------------------------------------------------- task 3: IG and SmoothGrad


def bench_gradients(args: argparse.Namespace, res: Results) -> None:
    from captum.attr import IntegratedGradients as CaptumIG
    from captum.attr import NoiseTunnel
    from captum.attr import Saliency as CaptumSaliency

    try:
        cnn, info = load_cnn("mnist", args.data_dir)
        dataset = "mnist"
    except FileNotFoundError as exc:
        log(f"MNIST missing ({exc}); IG/SmoothGrad fall back to the digits CNN")
        cnn, info = load_cnn("digits", args.data_dir)
        dataset = "digits"
    X = info["test"].X[: args.n_grad_images]
    n = len(X)
    target = predicted(cnn, X)
    xt = torch.as_tensor(X, dtype=torch.float32)
    tt = torch.as_tensor(target)
    S, K = args.ig_steps, args.sg_samples

    # ---- Integrated Gradients
    def ours_ig(model: nn.Module = cnn, steps: int = S):
        return IntegratedGradients(model, n_steps=steps).explain(X, target=target)

    fast_cnn = channels_last_copy(cnn)

    def captum_ig(ibs: int | None, module: nn.Module = cnn) -> torch.Tensor:
        return CaptumIG(module).attribute(xt, baselines=torch.zeros_like(xt), target=tt, n_steps=S,
                                       method="gausslegendre", internal_batch_size=ibs)

    task = f"IG / {dataset} CNN"
    log(f"{task}: {n} images, {S} steps (reference {args.ig_ref_steps})")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = ours_ig(steps=args.ig_ref_steps).values
        e_ours = ours_ig()
    v_captum = captum_ig(256).detach().numpy().astype(np.float64)
    v_ours = e_ours.values
    diff = rel_err(v_ours, v_captum)
    with torch.inference_mode():
        logits = cnn(xt)
        delta = (logits[torch.arange(n), tt] - cnn(torch.zeros_like(xt))[0, tt]).double().numpy()
    gap_captum = np.abs(v_captum.reshape(n, -1).sum(1) - delta) / np.abs(delta)
    calls = record_calls(cnn, lambda mod: ours_ig(model=mod))
    cases = [Case("ours", lambda: ours_ig())]
    for ibs in (256, None):
        cases.append(Case(f"captum ibs={ibs}", lambda ibs=ibs: captum_ig(ibs)))
    cases.append(Case("captum ibs=256 CL", lambda: captum_ig(256, fast_cnn)))
    cases.append(Case("model only", replay(cnn, calls, xt, tt)))
    time_cases(cases, args.repeats, log, args.gate)
    t = res.timing("ig", cases, args.gate)
    budget = f"{S} steps x {n} img"
    res.add(task=task, method="IG", library="scrutiny", config=f"defaults (gausslegendre, model batch {auto_batch_size(int(np.prod(X.shape[1:])))})",
            budget=budget, time=t["ours"], speedup="-", error=float(np.median(rel_err(v_ours, ref))), goal="",
            met=None)
    for k, config in (("captum ibs=256", "internal_batch_size=256"), ("captum ibs=None", "internal_batch_size=None"),
                      ("captum ibs=256 CL", "internal_batch_size=256, channels-last model")):
        sp = t[k]["median"] / t["ours"]["median"]
        res.add(task=task, method="IG", library="captum", config=config, budget=budget,
                time=t[k], speedup=f"{sp:.2f}x", error=float(np.median(rel_err(v_captum, ref))),
                goal="ours no slower", met=bool(sp >= 1.0))
    res.add_overhead(task, "IG", calls, t["ours"], t["model only"])
    ig = {
        "dataset": dataset, "n_images": n, "steps": S, "reference": f"scrutiny IG, {args.ig_ref_steps} GL steps",
        "ours_vs_captum_rel_l2_median": float(np.median(diff)), "ours_vs_captum_rel_l2_max": float(diff.max()),
        "ours_vs_captum_max_abs_over_max_abs": float(np.abs(v_ours - v_captum).max() / np.abs(v_captum).max()),
        "completeness_gap_median_ours": float(np.median(e_ours.extras["relative_gap"])),
        "completeness_gap_median_captum": float(np.median(gap_captum)),
    }
    res.notes["ig"].update(ig)
    res.footnotes.append(
        f"{task}: ours vs captum at {S} GL steps: relative L2 median {ig['ours_vs_captum_rel_l2_median']:.1e}, "
        f"max {ig['ours_vs_captum_rel_l2_max']:.1e}; max |diff| / max |phi| "
        f"{ig['ours_vs_captum_max_abs_over_max_abs']:.1e}; median relative completeness gap ours "
        f"{ig['completeness_gap_median_ours']:.4f}, captum {ig['completeness_gap_median_captum']:.4f}.")

    # ---- SmoothGrad
    def ours_sg(model: nn.Module = cnn, samples: int = K, seed: int = 0, antithetic: bool = True):
        return SmoothGrad(model, n_samples=samples, noise_level=SIGMA, noise_scale="absolute",
                          antithetic=antithetic, random_state=seed).explain(X, target=target).values

    def captum_sg(nsbs: int | None, seed: int = 0, module: nn.Module = cnn) -> torch.Tensor:
        torch.manual_seed(seed)
        return NoiseTunnel(CaptumSaliency(module)).attribute(xt, nt_type="smoothgrad", nt_samples=K,
                                                          nt_samples_batch_size=nsbs, stdevs=SIGMA, target=tt,
                                                          abs=False)

    task = f"SmoothGrad / {dataset} CNN"
    log(f"{task}: {n} images, {K} samples, sigma {SIGMA} (reference {args.sg_ref_samples} MC samples)")
    ref = ours_sg(samples=args.sg_ref_samples, seed=999, antithetic=False)
    e_ours = seeded_error(lambda s: ours_sg(seed=s), lambda v: rel_err(v, ref), args.error_seeds)
    e_ours_plain = seeded_error(lambda s: ours_sg(seed=s, antithetic=False), lambda v: rel_err(v, ref),
                                args.error_seeds)
    e_captum = seeded_error(lambda s: captum_sg(None, s).detach().numpy().astype(np.float64),
                            lambda v: rel_err(v, ref), args.error_seeds)
    calls = record_calls(cnn, lambda mod: ours_sg(model=mod))
    nsbs_fair = max(1, 256 // n)
    cases = [Case("ours", lambda: ours_sg())]
    for nsbs in (nsbs_fair, None):
        cases.append(Case(f"captum nsbs={nsbs}", lambda nsbs=nsbs: captum_sg(nsbs)))
    cases.append(Case(f"captum nsbs={nsbs_fair} CL", lambda: captum_sg(nsbs_fair, module=fast_cnn)))
    cases.append(Case("model only", replay(cnn, calls, xt, tt)))
    time_cases(cases, args.repeats, log, args.gate)
    t = res.timing("smoothgrad", cases, args.gate)
    budget = f"{K} samples x {n} img"
    res.add(task=task, method="SmoothGrad", library="scrutiny", config=f"defaults (antithetic, model batch {auto_batch_size(int(np.prod(X.shape[1:])))})",
            budget=budget, time=t["ours"], speedup="-", error=e_ours, goal="", met=None)
    for k, config in ((f"captum nsbs={nsbs_fair}", f"nt_samples_batch_size={nsbs_fair}"),
                      ("captum nsbs=None", "nt_samples_batch_size=None"),
                      (f"captum nsbs={nsbs_fair} CL", f"nt_samples_batch_size={nsbs_fair}, channels-last model")):
        sp = t[k]["median"] / t["ours"]["median"]
        res.add(task=task, method="SmoothGrad", library="captum", config=config,
                budget=budget, time=t[k], speedup=f"{sp:.2f}x", error=e_captum, goal="ours no slower",
                met=bool(sp >= 1.0))
    res.add_overhead(task, "SmoothGrad", calls, t["ours"], t["model only"])
    res.notes["smoothgrad"].update({
        "dataset": dataset, "n_images": n, "samples": K, "sigma": SIGMA,
        "reference": f"scrutiny SmoothGrad, {args.sg_ref_samples} plain MC samples, seed 999",
        "error_ours_antithetic": e_ours, "error_ours_plain": e_ours_plain, "error_captum": e_captum,
    })
    res.footnotes.append(f"{task}: ours without antithetic pairs has error {e_ours_plain['mean']:.4f} "
                         f"(antithetic {e_ours['mean']:.4f}, captum {e_captum['mean']:.4f}).")
