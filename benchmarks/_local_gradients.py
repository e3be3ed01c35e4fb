"""GradientSHAP, DeepLIFT and Grad-CAM against captum on the MNIST CNN (issue 25).

Part of the local attribution benchmark (``python benchmarks/local_attribution.py --tasks
gradmethods`` runs it; so does this file on its own). Same model, same images, same budget,
timed in the same run (interleaved rounds after a warm-up, :func:`_common.time_cases`).

Protocol: the reference MNIST CNN (digits CNN when the MNIST files are missing),
``--n-grad-images`` test images, the logit of the predicted class.

* **GradientSHAP**: 100 training images as background, 50 draws per image, ``stdevs=0``
  (expected gradients). captum: ``GradientShap(cnn).attribute(x, background, n_samples=50,
  stdevs=0.0)`` (all 64 x 50 path points in one batch, its only mode). Ours also with
  ``as_model(cnn, batch_size=1024)`` (footnote): the model's chunk size, not the method. Error: mean relative L2
  distance to ours at 1,000 draws, mean +- s.e. over ``--error-seeds`` seeds (captum: global
  numpy/torch seeds, which it draws from).
* **DeepLIFT**: zero baseline. captum: ``DeepLift(cnn).attribute(x, zeros)``. Agreement is
  reported against captum on the same CNN with a no-op module between each ReLU and MaxPool
  (there captum applies the rules in the chain-rule order; see ``tests/test_deeplift.py``),
  and the completeness gap of both on the CNN itself.
* **Grad-CAM**: the last convolution (``conv.3``), ReLU, bilinear upsampling to 28x28. captum:
  ``LayerGradCam(cnn, cnn.conv[3]).attribute(x, relu_attributions=True)`` then
  ``LayerAttribution.interpolate(..., (28, 28), "bilinear")``.

Each captum method is also timed on a channels-last copy of the CNN ("CL"), the layout
scrutiny's ``TorchModel`` runs convolutions in, so that the layout is not the whole story.

Usage::

    python benchmarks/_local_gradients.py                # 64 images, 5 rounds
    python benchmarks/_local_gradients.py --quick        # smoke run
"""

from __future__ import annotations

import argparse
import copy
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

GS_SAMPLES, GS_BACKGROUND, GS_REF_SAMPLES = 50, 100, 1000


def _captum_seeded(fn: Any, seed: int) -> Any:
    """Run ``fn`` with numpy's and torch's global generators seeded (captum draws from them)."""
    import torch

    np.random.seed(seed)
    torch.manual_seed(seed)
    return fn()


def bench(args: argparse.Namespace, res: Any) -> None:
    """Add the GradientSHAP, DeepLIFT and Grad-CAM rows (and notes) to ``res``."""
    import torch
    from captum.attr import DeepLift, GradientShap, LayerAttribution, LayerGradCam
    from _common import Case, time_cases
    from _local_shared import channels_last_copy, load_cnn, log, predicted, rel_err, seeded_error
    from torch import nn

    from scrutiny.attribution import DeepLIFT, GradCAM, GradientSHAP
    from scrutiny.models import as_model, auto_batch_size

    try:
        cnn, info = load_cnn("mnist", args.data_dir)
        dataset = "mnist"
    except FileNotFoundError as exc:
        log(f"MNIST missing ({exc}); GradientSHAP/DeepLIFT/Grad-CAM fall back to the digits CNN")
        cnn, info = load_cnn("digits", args.data_dir)
        dataset = "digits"
    X = info["test"].X[: args.n_grad_images]
    bg = info["train"].X[:GS_BACKGROUND]
    n = len(X)
    target = predicted(cnn, X)
    xt, tt = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(target)
    bgt = torch.as_tensor(bg, dtype=torch.float32)
    fast = channels_last_copy(cnn)

    def rows(task: str, method: str, budget: str, key: str, ours_cfg: str, peers: list, err_ours: Any,
             err_peer: Any, cases: list) -> None:
        time_cases(cases, args.repeats, log, args.gate)
        t = res.timing(key, cases, args.gate)
        res.add(task=task, method=method, library="scrutiny", config=ours_cfg, budget=budget, time=t["ours"],
                speedup="-", error=err_ours, goal="", met=None)
        for k, cfg in peers:
            sp = t[k]["median"] / t["ours"]["median"]
            res.add(task=task, method=method, library="captum", config=cfg, budget=budget, time=t[k],
                    speedup=f"{sp:.2f}x", error=err_peer, goal="ours no slower", met=bool(sp >= 1.0))
        res.notes[key]["ratios_captum_over_ours"] = {k: t[k]["median"] / t["ours"]["median"] for k, _ in peers}

    # ---- GradientSHAP
    def ours_gs(samples: int = GS_SAMPLES, seed: int = 0, model: Any = cnn) -> np.ndarray:
        return GradientSHAP(model, bg, n_samples=samples, random_state=seed).explain(X, target=target).values

    big_chunks = as_model(cnn, batch_size=1024)  # captum sends all n x 50 path points in one batch

    def captum_gs(module: nn.Module = cnn) -> torch.Tensor:
        return GradientShap(module).attribute(xt, bgt, n_samples=GS_SAMPLES, stdevs=0.0, target=tt)

    task = f"GradientSHAP / {dataset} CNN"
    ref_samples = 400 if args.quick else GS_REF_SAMPLES
    log(f"{task}: {n} images, {GS_SAMPLES} draws, {GS_BACKGROUND} background images (reference {ref_samples})")
    ref = ours_gs(ref_samples, seed=999)
    e_ours = seeded_error(lambda s: ours_gs(seed=s), lambda v: rel_err(v, ref), args.error_seeds)
    e_captum = seeded_error(lambda s: _captum_seeded(captum_gs, s).detach().numpy().astype(np.float64),
                            lambda v: rel_err(v, ref), args.error_seeds)
    rows(task, "GradientSHAP", f"{GS_SAMPLES} draws x {n} img", "gradient_shap", "defaults (stdevs=0)",
         [("captum", "GradientShap, stdevs=0"), ("captum CL", "GradientShap, channels-last model")],
         e_ours, e_captum,
         [Case("ours", lambda: ours_gs()), Case("captum", lambda: captum_gs()),
          Case("captum CL", lambda: captum_gs(fast)), Case("ours 1024", lambda: ours_gs(model=big_chunks))])
    t = res.notes["gradient_shap"]["timing"]
    res.footnotes.append(
        f"{task}: ours with as_model(cnn, batch_size=1024) (1,024 path points per model call instead of the "
        f"default {auto_batch_size(int(np.prod(X.shape[1:])))}): {t['ours 1024']['median']:.2f} s, "
        f"captum / ours {t['captum']['median'] / t['ours 1024']['median']:.2f}x.")

    # ---- DeepLIFT
    def ours_dl() -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the zoo CNN's F.relu: completeness is reported below
            return DeepLIFT(cnn).explain(X, target=target)

    def captum_dl(module: nn.Module = cnn) -> torch.Tensor:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return DeepLift(module).attribute(xt, torch.zeros_like(xt), target=tt)

    class _Same(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 1.0

    spaced = copy.deepcopy(cnn)
    c = spaced.conv
    spaced.conv = nn.Sequential(c[0], c[1], _Same(), c[2], c[3], c[4], _Same(), c[5])
    task = f"DeepLIFT / {dataset} CNN"
    log(f"{task}: {n} images, zero baseline")
    e_dl = ours_dl()
    v_captum = captum_dl().detach().numpy().astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        v_spaced = np.concatenate([  # one image per call: captum's max-pool fallback reads the batch's row 0
            DeepLift(spaced).attribute(xt[i:i + 1], torch.zeros_like(xt[i:i + 1]), target=int(target[i]))
            .detach().numpy() for i in range(n)]).astype(np.float64)
    with torch.inference_mode():
        delta = (cnn(xt)[torch.arange(n), tt] - cnn(torch.zeros_like(xt))[torch.arange(n), tt]).double().numpy()
    gap_captum = np.abs(v_captum.reshape(n, -1).sum(1) - delta) / np.abs(delta)
    gap_ours = np.abs(e_dl.extras["completeness_gap"]) / np.abs(delta)
    agree = float(np.abs(e_dl.values - v_spaced).max() / np.abs(v_spaced).max())
    rows(task, "DeepLIFT", f"1 pass x {n} img", "deeplift", "defaults (zero baseline)",
         [("captum", "DeepLift"), ("captum CL", "DeepLift, channels-last model")], None, None,
         [Case("ours", ours_dl), Case("captum", lambda: captum_dl()), Case("captum CL", lambda: captum_dl(fast))])
    res.notes["deeplift"].update({"ours_vs_captum_spaced_max_abs_over_max_abs": agree,
                                  "relative_completeness_gap_median_ours": float(np.median(gap_ours)),
                                  "relative_completeness_gap_median_captum": float(np.median(gap_captum))})
    res.footnotes.append(
        f"{task}: ours vs captum (no-op module between ReLU and MaxPool, where captum's hooks compose): max |diff| / "
        f"max |phi| {agree:.1e}; median relative completeness gap ours {np.median(gap_ours):.3f}, captum "
        f"{np.median(gap_captum):.3f} (the zoo CNN applies its fc ReLU as F.relu, which neither can hook).")

    # ---- Grad-CAM
    def ours_cam() -> np.ndarray:
        return GradCAM(cnn, layer="conv.3").explain(X, target=target).values

    def captum_cam(module: nn.Module = cnn) -> torch.Tensor:
        layer = module.get_submodule("conv.3")
        small = LayerGradCam(module, layer).attribute(xt, target=tt, relu_attributions=True)
        return LayerAttribution.interpolate(small, tuple(X.shape[2:]), "bilinear")

    task = f"Grad-CAM / {dataset} CNN"
    log(f"{task}: {n} images, layer conv.3, bilinear")
    v_ours, v_cap = ours_cam(), captum_cam().detach().numpy().astype(np.float64)
    agree = float(np.abs(v_ours - v_cap).max() / np.abs(v_cap).max())
    rows(task, "Grad-CAM", f"1 pass x {n} img", "gradcam", "layer='conv.3'",
         [("captum", "LayerGradCam + interpolate"), ("captum CL", "LayerGradCam + interpolate, channels-last model")],
         None, None, [Case("ours", ours_cam), Case("captum", lambda: captum_cam()),
                      Case("captum CL", lambda: captum_cam(fast))])
    res.notes["gradcam"]["ours_vs_captum_max_abs_over_max_abs"] = agree
    res.footnotes.append(f"{task}: ours vs captum max |diff| / max |map| {agree:.1e}.")


def main(argv: list[str] | None = None) -> int:
    import local_attribution as la

    return la.main(["--tasks", "gradmethods", *(argv if argv is not None else sys.argv[1:])])


if __name__ == "__main__":
    sys.exit(main())
