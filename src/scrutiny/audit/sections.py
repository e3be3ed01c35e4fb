"""The audit's sections: one function per capability, each ``fn(ctx) -> SectionOutput``.

A section reads the model and data from the :class:`AuditContext`, saves every result it
computes as ``.npz`` with the result type's own ``save`` (so ``scrutiny report`` can re-plot it
without re-running anything), and returns the numbers the report and ``--fail-on`` use. A
section that does not apply raises :class:`Skip` with the reason; the runner records any other
exception as a failed section.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np

from .config import GRADIENT_METHODS

__all__ = ["AuditContext", "SectionOutput", "Skip", "TITLES", "class_names", "top_features", "performance", "local"]


class Skip(Exception):
    """The section does not apply to this model or data; ``str(exc)`` is the reason."""


class AuditContext(NamedTuple):
    model: Any            # loaders.LoadedModel
    data: Any             # the audited rows (scrutiny.data.Dataset)
    train: Any            # training rows (Dataset) or None
    config: dict
    out: Path
    seed: int
    jobs: int
    progress: Callable[[int, str], Any]  # (total, label) -> bar with .update(n=1) and .close()
    backend: Any = "serial"  # "serial" or a scrutiny.distributed Executor: where the per-row work runs


class SectionOutput(NamedTuple):
    numbers: dict   # JSON-ready numbers (what the report draws and the checks read)
    params: dict    # every method's parameters
    files: list     # the .npz files written, relative to ctx.out


TITLES = {
    "performance": "Model and data summary",
    "local": "Local explanations",
    "dmm_men": "DMM-MEN global insights",
    "training_data": "Influential training examples and NNK neighbours",
    "generalisation": "Generalisation, mislabel candidates, out-of-support inputs",
    "glassbox": "Glass-box comparison",
}


def class_names(ds: Any, n: int) -> list[str]:
    names = list(ds.target_names or ())
    return names + [str(k) for k in range(len(names), n)] if len(names) < n else names[:n]


def feature_names(ds: Any) -> list[str]:
    return list(ds.feature_names) if ds.feature_names else [f"x{i}" for i in range(ds.n_features)]


def top_features(values: np.ndarray, names: list[str], k: int = 5) -> list[list]:
    """Per row: the k features with the largest |attribution| as [name, value] pairs."""
    flat = values.reshape(len(values), -1)
    order = np.argsort(-np.abs(flat), axis=1, kind="stable")[:, :k]
    return [[[names[j], float(flat[i, j])] for j in order[i]] for i in range(len(flat))]


def _predicted(ctx: AuditContext, X: np.ndarray) -> np.ndarray:
    return ctx.model.adapter.predict(X).argmax(axis=1)


def _save(ctx: AuditContext, result: Any, name: str, files: list) -> str:
    result.save(ctx.out / name)
    files.append(name)
    return name


# ---------------------------------------------------------------- performance
def performance(ctx: AuditContext) -> SectionOutput:
    from ..explanation import MetricResult

    ds = ctx.data
    if ds.n_classes is None:
        raise Skip("the labels are not class indices (regression); only classification is audited.")
    out = ctx.model.adapter.predict(ds.X)
    pred = out.argmax(axis=1)
    n_classes = max(int(out.shape[1]), int(ds.n_classes))
    cm = np.zeros((n_classes, n_classes), dtype=int)
    np.add.at(cm, (ds.y, pred), 1)
    per_class = [float(cm[c, c] / cm[c].sum()) if cm[c].sum() else None for c in range(n_classes)]
    correct = (pred == ds.y).astype(float)
    files: list = []
    _save(ctx, MetricResult("correct", correct, higher_is_better=True, params={"rows": len(ds.y)}),
          "performance.npz", files)
    numbers = {
        "accuracy": float(correct.mean()), "n_rows": int(len(ds.y)), "n_classes": n_classes,
        "class_names": class_names(ds, n_classes), "per_class_accuracy": per_class,
        "class_counts": cm.sum(axis=1).tolist(), "confusion_matrix": cm.tolist(),
        "predicted": pred.tolist(), "input_shape": list(ds.X.shape[1:]),
        "feature_names": feature_names(ds) if ds.image_shape is None else None,
    }
    if ctx.train is not None and ctx.train.n_classes is not None:
        numbers["train_accuracy"] = float((_predicted(ctx, ctx.train.X) == ctx.train.y).mean())
        numbers["n_train"] = int(len(ctx.train.y))
    return SectionOutput(numbers, {}, files)


# ---------------------------------------------------------------- local explanations
def chosen_rows(ctx: AuditContext, pred: np.ndarray) -> tuple[list[int], list[int]]:
    """The rows explained: configured (default: first row of each class), then misclassified ones."""
    cfg, y = ctx.config["local"], ctx.data.y
    rows = [int(r) for r in cfg["rows"]]
    bad = [r for r in rows if not 0 <= r < len(y)]
    if bad:
        from ..exceptions import InvalidParameterError

        raise InvalidParameterError(f"local.rows has row {bad[0]}, but --data has {len(y)} rows (0..{len(y) - 1}).")
    if not rows:
        rows = [int(np.flatnonzero(y == c)[0]) for c in np.unique(y)][:10]
    wrong = [int(i) for i in np.flatnonzero(pred != y) if int(i) not in rows][: int(cfg["n_misclassified"])]
    return rows, wrong


def _is_script_module(obj: Any) -> bool:
    import torch

    return isinstance(obj, torch.jit.ScriptModule)


def _explainers(ctx: AuditContext, requested: list[str]) -> tuple[dict, dict]:
    """name -> factory for the methods that apply; name -> reason for those that do not."""
    from ..attribution import (LIME, DeepLIFT, GradCAM, GradientSHAP, GuidedBackprop, IntegratedGradients,
                               KernelSHAP, Occlusion, Saliency, SmoothGrad, TreeSHAP)
    from ..exceptions import ScrutinyError

    cfg, m, ds, seed = ctx.config["local"], ctx.model.adapter, ctx.data, ctx.seed
    image = ds.image_shape is not None
    torch = ctx.model.kind == "torch"
    default = (["saliency", "integrated_gradients", "gradient_shap", "deeplift", "occlusion"] if torch else []) + \
              (["gradcam"] if torch and image else []) + \
              (["occlusion", "lime"] if image and not torch else []) + ([] if image else ["kernelshap", "lime"])
    tree_reason = None
    if not torch and not image:
        try:  # exact Shapley values when the model is a scikit-learn tree ensemble: the default then
            TreeSHAP(ctx.model.obj).explain(ds.X[:1])  # model checks happen on use; one row costs milliseconds
            default = ["treeshap"] + default
        except ScrutinyError as exc:
            tree_reason = str(exc).splitlines()[0]
    names = requested or list(dict.fromkeys(default))
    background = (ctx.train or ds).X
    background = background[np.random.default_rng(seed).choice(len(background), min(50, len(background)), replace=False)]
    if image:
        c, h, w = ds.image_shape
        cell = max(1, h // 7)
        occ = {"window": (c, cell, cell), "stride": (c, cell, cell), "baseline": 0.0}
    else:
        occ = {"window": 1, "baseline": background.mean(axis=0)}
    factories = {
        "saliency": lambda: Saliency(m),
        "integrated_gradients": lambda: IntegratedGradients(m, n_steps=int(cfg["n_steps"])),
        "smoothgrad": lambda: SmoothGrad(m, n_samples=max(8, int(cfg["n_samples"]) // 20), noise_level=0.15,
                                         random_state=seed),
        "gradient_shap": lambda: GradientSHAP(m, background, n_samples=max(8, int(cfg["n_samples"]) // 20),
                                              random_state=seed),
        "deeplift": lambda: DeepLIFT(m),
        "gradcam": lambda: GradCAM(m),
        "guided_backprop": lambda: GuidedBackprop(m),
        "treeshap": lambda: TreeSHAP(ctx.model.obj, feature_names=feature_names(ds)),
        "occlusion": lambda: Occlusion(m, **occ),
        "kernelshap": lambda: KernelSHAP(m, background, n_samples=int(cfg["n_samples"]), random_state=seed),
        "lime": (lambda: LIME(m, mode="image", segments="grid", segment_params={"cell": (cell, cell)},
                              n_samples=int(cfg["n_samples"]), random_state=seed)) if image else
                (lambda: LIME(m, training_data=background, n_samples=int(cfg["n_samples"]), random_state=seed)),
    }
    ok, unavailable = {}, {}
    for name in names:
        if name in GRADIENT_METHODS and not torch:
            unavailable[name] = (f"{name} needs input gradients; the {ctx.model.format} model is a black box "
                                 "(perturbation methods only).")
        elif name in ("deeplift", "gradcam", "guided_backprop") and torch and _is_script_module(ctx.model.obj):
            unavailable[name] = (f"{name} needs module hooks, which TorchScript modules do not take; audit a "
                                 "state_dict with --arch (or a torch.export archive) to get it.")
        elif name == "gradcam" and not image:
            unavailable[name] = "gradcam needs convolutional feature maps (image models)."
        elif name == "treeshap" and (torch or image or tree_reason):
            unavailable[name] = f"treeshap needs a scikit-learn tree model ({tree_reason or 'this model is not one'})."
        elif name == "kernelshap" and image:
            unavailable[name] = "kernelshap on raw pixels is too costly; occlusion and image LIME cover images."
        else:
            ok[name] = factories[name]
    return ok, unavailable


def _serial(ctx: AuditContext) -> bool:
    return isinstance(ctx.backend, str) and ctx.backend == "serial"


def _explained(ctx: AuditContext, factories: dict, X: np.ndarray, target: np.ndarray):
    """Yields ``(name, explainer, Explanation or the ScrutinyError it raised)`` per method. Serial:
    one method after the other, in this process. Another backend: every method's rows go through
    :func:`scrutiny.distributed.explain` (one task of all rows, so a row meets the very batch it
    meets serially), the methods submitted at once so that the workers run them side by side."""
    from ..exceptions import ScrutinyError

    def one(name: str, make: Callable) -> tuple:
        try:
            explainer = make()
            if _serial(ctx):
                return name, explainer, explainer.explain(X, target=target)
            from ..distributed import explain

            return name, explainer, explain(explainer, X, target, backend=ctx.backend, chunk_size=max(1, len(X)))
        except ScrutinyError as exc:  # e.g. Grad-CAM on a network without a convolution: recorded, shown
            return name, None, exc

    if _serial(ctx) or len(factories) < 2:
        for name, make in factories.items():
            yield one(name, make)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=len(factories)) as pool:
        futures = [pool.submit(one, name, make) for name, make in factories.items()]
        for f in futures:
            yield f.result()


def _deletion(ctx: AuditContext, X: np.ndarray, exp: Any, target: np.ndarray, step: int, substrate: Any) -> Any:
    """The deletion curve (RISE) of an explanation; per row, so it goes through
    :func:`scrutiny.distributed.evaluate_metric` on a backend other than serial (explanations
    ranked by superpixels keep them, which an array of values cannot carry: those run here)."""
    from ..metrics import deletion_curve

    extras = exp.extras or {}
    if _serial(ctx) or extras.get("segments") is not None and extras.get("segment_values") is not None:
        return deletion_curve(ctx.model.adapter, X, exp, step=step, substrate=substrate, target=target)
    import dataclasses

    from ..distributed import evaluate_metric

    dele = evaluate_metric(deletion_curve, ctx.model.adapter, X, exp, target=target, backend=ctx.backend,
                           chunk_size=max(1, len(X)), step=step, substrate=substrate)
    # the rows travel as an array of values; the curve ranked the explanation's own method's values
    return dataclasses.replace(dele, params={**dele.params, "attributions": exp.method})


def local(ctx: AuditContext) -> SectionOutput:
    from ..diagnostics import sanity_check
    from ..metrics import faithfulness_correlation

    cfg, ds = ctx.config["local"], ctx.data
    pred = _predicted(ctx, ds.X)
    rows, wrong = chosen_rows(ctx, pred)
    idx = rows + wrong
    X, target = ds.X[idx], pred[idx]
    factories, unavailable = _explainers(ctx, list(cfg["methods"]))
    names = feature_names(ds)
    files: list = []
    methods, params = {}, {}
    bar = ctx.progress(len(factories), "local explanations")
    n_units = int(np.prod(X.shape[1:]))
    substrate = 0.0 if ds.image_shape is not None else (ctx.train or ds).X.mean(axis=0)
    for name, explainer, exp in _explained(ctx, factories, X, target):
        if explainer is None:
            unavailable[name] = f"{type(exp).__name__}: {str(exp).splitlines()[0]}"
            bar.update()
            continue
        _save(ctx, exp, f"local_{name}.npz", files)
        # deletion curve (RISE): about 20 steps whatever the input size
        dele = _deletion(ctx, X, exp, target, max(1, n_units // 20), substrate)
        _save(ctx, dele, f"deletion_{name}.npz", files)
        # in this process on every backend: its random subsets are drawn for the whole batch, so it
        # is not split into tasks (scrutiny.distributed.PARTITION_INVARIANT_METRICS)
        faith = faithfulness_correlation(ctx.model.adapter, X, exp, target=target, n_runs=int(cfg["faithfulness_runs"]),
                                         random_state=ctx.seed)
        _save(ctx, faith, f"faithfulness_{name}.npz", files)
        record = {"faithfulness": [None if not np.isfinite(v) else float(v) for v in faith.values],
                  "faithfulness_mean": float(np.nanmean(faith.values)) if np.isfinite(faith.values).any() else None,
                  "top_features": top_features(exp.values, names), "sanity": None, "sanity_reason": None,
                  "deletion_auc": float(np.mean(dele.values)),
                  "deletion_curve": np.mean(np.asarray(dele.extras["curves"], dtype=float), axis=0).tolist()}
        if cfg["sanity"] and len(idx) >= 2:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    sc = sanity_check(explainer, ctx.model.obj if ctx.model.kind != "onnx" else ctx.model.adapter, X,
                                      target=target, tests=("cascading",), n_permutations=99, random_state=ctx.seed,
                                      backend=ctx.backend)
                _save(ctx, sc, f"sanity_{name}.npz", files)
                record["sanity"] = bool(np.all(sc.passed))
            except Exception as exc:  # a model whose layers cannot be re-initialised: recorded, not fatal
                record["sanity_reason"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        methods[name] = record
        params[name] = exp.params
        bar.update()
    bar.close()
    numbers = {"rows": idx, "chosen": rows, "misclassified": wrong, "true": ds.y[idx].tolist(),
               "predicted": target.tolist(), "methods": methods, "unavailable": unavailable,
               "image_shape": list(ds.image_shape) if ds.image_shape else None}
    return SectionOutput(numbers, params, files)
