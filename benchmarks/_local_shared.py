"""Shared helpers of the local attribution benchmark (``benchmarks/local_attribution.py``).

Used by its speed sections (tasks 1-4: image LIME, KernelSHAP, IG, SmoothGrad) and by
:mod:`_local_gradients`:

* the model-alone replay behind the overhead ratio: :func:`record_calls` logs the batch sizes
  (and whether a gradient was taken) of one run of ours through :class:`Recorder`, and
  :func:`replay` sends float32 tensors of those sizes through the bare model;
* errors: :func:`rel_err` (per-row relative L2), :func:`seeded_error` (mean over inputs, per
  seed), :func:`not_worse` (within two standard errors);
* :class:`Results` (table rows, overhead rows, JSON notes, footnotes) and :func:`report`, which
  formats the two tables (:func:`fmt_time`, :func:`fmt_err`);
* models and data: :func:`load_cnn` (the zoo's reference CNNs), :func:`breast_cancer_mlp`,
  :func:`predicted`, :func:`channels_last_copy`.
"""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import Case, Gate, format_table, summary
from torch import nn

from scrutiny.data import load_breast_cancer, train_test_split
from scrutiny.zoo import make_model, reference_model, train_model


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- helpers


class Recorder(nn.Module):
    """Passes through to ``inner`` and logs (batch size, gradient taken) of every call."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls: list[tuple[int, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((int(x.shape[0]), bool(torch.is_grad_enabled() and x.requires_grad)))
        return self.inner(x)


def channels_last_copy(module: nn.Module) -> nn.Module:
    """The module with channels-last convolution weights (a copy): the layout scrutiny's
    ``TorchModel`` runs convolutions in by default, given to the peers as well so that they are
    timed on the same fast model."""
    return copy.deepcopy(module).to(memory_format=torch.channels_last).eval()


def record_calls(module: nn.Module, run: Callable[[nn.Module], Any]) -> list[tuple[int, bool]]:
    rec = Recorder(module).eval()
    run(rec)
    return rec.calls


def replay(module: nn.Module, calls: list[tuple[int, bool]], pool: torch.Tensor, targets: torch.Tensor) -> Callable[[], None]:
    """The model alone on the recorded chunks: float32 slices of ``pool`` (contiguous views),
    convolutions in the channels-last layout scrutiny uses (``channels_last_copy``)."""
    if any(isinstance(m, nn.Conv2d) for m in module.modules()):
        module = channels_last_copy(module)
    need = max(n for n, _ in calls)
    if need > pool.shape[0]:
        reps = -(-need // pool.shape[0])
        pool = pool.repeat((reps,) + (1,) * (pool.ndim - 1)).contiguous()
        targets = targets.repeat(reps)

    from threadpoolctl import threadpool_limits

    def run() -> None:
        # the same BLAS setting scrutiny's explainers use around torch models (one thread, so
        # no OpenBLAS workers left spinning by earlier numpy work compete with torch's pool)
        with threadpool_limits(1, user_api="blas"):
            for n, grad in calls:
                if grad:
                    x = pool[:n].clone().requires_grad_(True)
                    out = module(x)
                    sel = out.gather(1, targets[:n, None]).sum()
                    torch.autograd.grad(sel, x)
                else:
                    with torch.inference_mode():
                        module(pool[:n])

    return run


def rel_err(values: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per-row relative L2 distance."""
    v = values.reshape(len(values), -1)
    r = ref.reshape(len(ref), -1)
    return np.linalg.norm(v - r, axis=1) / np.maximum(np.linalg.norm(r, axis=1), 1e-300)


def seeded_error(values: Callable[[int], np.ndarray], err: Callable[[np.ndarray], np.ndarray], seeds: int) -> dict:
    """Mean over inputs of the per-input error, for ``seeds`` seeds; mean and per-seed values.

    Several seeds matter because ours shares one perturbation design across all inputs of a
    call (common random numbers): the errors of one call share one design's luck. The mean,
    not the median, over inputs: with one design per call the expected median of the
    (right-skewed) errors is higher than with a design per input (lime, shap) at equal
    per-input accuracy (image LIME on MNIST, independent rows, 5 seeds: mean 0.117 for both
    libraries, median 0.114 ours vs 0.112 lime)."""
    per_seed = [float(np.mean(err(values(s)))) for s in range(seeds)]
    se = float(np.std(per_seed, ddof=1) / np.sqrt(seeds)) if seeds > 1 else float("nan")
    return {"mean": float(np.mean(per_seed)), "se": se, "per_seed": per_seed}


def not_worse(ours: dict, peer: dict) -> bool:
    """Ours' mean error is below the peer's, or above it by less than two standard errors of
    the difference (seed noise)."""
    se = np.hypot(ours["se"], peer["se"])
    return bool(ours["mean"] <= peer["mean"] or (np.isfinite(se) and ours["mean"] - peer["mean"] < 2 * se))


def fmt_time(s: dict[str, float]) -> str:
    def one(t: float) -> str:
        return f"{t * 1e3:.0f} ms" if t < 1 else f"{t:.2f} s"

    flag = "" if s.get("contended_kept", 0) == 0 else f" ({s['n']}/{s['n'] + s['contended_kept']})"
    return f"{one(s['median'])} [{one(s['min'])}]{flag}"


def fmt_err(e: Any) -> str:
    if e is None:
        return "-"
    if isinstance(e, dict):
        return f"{e['mean']:.4f}" + (f"±{e['se']:.4f}" if np.isfinite(e.get("se", np.nan)) else "")
    if isinstance(e, (tuple, list)):
        return " | ".join(fmt_err(x) for x in e)
    return f"{e:.4f}" if isinstance(e, float) else str(e)


class Results:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.overhead: list[dict[str, Any]] = []
        self.notes: dict[str, Any] = {}
        self.footnotes: list[str] = []

    def add(self, **row: Any) -> dict[str, Any]:
        self.rows.append(row)
        return row

    def timing(self, key: str, cases: list[Case], gate: Gate) -> dict[str, dict[str, Any]]:
        """Summaries per case over the uncontended samples (all samples if none is), also stored
        (with every sample and the cores other processes used during it) in the notes."""
        out = {}
        for c in cases:
            clean = [t for t, o in zip(c.times, c.others) if not (gate.enabled and o > gate.threshold)]
            out[c.key] = summary(clean or c.times) | {
                "samples": c.times, "others_cores": c.others, "retaken": c.rejected,
                "contended_kept": len(c.times) - len(clean), "used_contended": not clean,
            }
        self.notes.setdefault(key, {})["timing"] = out
        return out

    def add_overhead(self, task: str, method: str, calls: list[tuple[int, bool]], ours: dict, model: dict) -> None:
        self.overhead.append({"task": task, "method": method, "rows": sum(c for c, _ in calls),
                              "n_calls": len(calls), "chunk": max(c for c, _ in calls), "ours": ours,
                              "model": model, "ratio": ours["median"] / model["median"]})


# --------------------------------------------------------------------------- models and data


def load_cnn(dataset: str, data_dir: Path) -> tuple[nn.Module, dict[str, Any]]:
    t0 = time.perf_counter()
    model, info = reference_model("cnn", dataset, data_dir=data_dir)
    log(f"cnn/{dataset}: test accuracy {info['test_accuracy']:.4f} "
        f"({'cached' if info['from_cache'] else 'trained'}, {time.perf_counter() - t0:.1f} s)")
    return model.eval(), info


def breast_cancer_mlp() -> tuple[nn.Module, dict[str, Any]]:
    ds = load_breast_cancer()
    train, test = train_test_split(ds, test_size=0.25, random_state=0, stratify=True)
    mu, sd = train.X.mean(axis=0), train.X.std(axis=0)
    Xtr, Xte = (train.X - mu) / sd, (test.X - mu) / sd
    mlp = make_model("mlp", (30,), 2, random_state=0)
    train_model(mlp, Xtr, train.y, epochs=60, lr=1e-3, minibatch_size=32, random_state=0)
    mlp.eval()
    with torch.inference_mode():
        acc = float((mlp(torch.as_tensor(Xte, dtype=torch.float32)).argmax(1).numpy() == test.y).mean())
    log(f"mlp/breast_cancer: test accuracy {acc:.4f}")
    return mlp, {"Xtr": Xtr, "Xte": Xte, "yte": test.y, "test_accuracy": acc}


def predicted(model: nn.Module, X: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.as_tensor(X, dtype=torch.float32)).argmax(1).numpy()


# --------------------------------------------------------------------------- report


def report(res: Results) -> str:
    header = ["task", "method", "library (config)", "budget", "time median [min]", "ours x faster",
              "error vs ref", "goal", "met?"]
    rows = []
    for r in res.rows:
        met = "-" if r["met"] is None else ("yes" if r["met"] else "NO")
        rows.append([r["task"], r["method"], f"{r['library']} ({r['config']})", r["budget"], fmt_time(r["time"]),
                     r["speedup"], fmt_err(r["error"]), r["goal"] or "-", met])
    out = [format_table(header, rows, right=(4, 5, 6))]
    if res.overhead:
        header = ["task", "rows through model", "model calls (max rows)", "ours median [min]",
                  "model alone median [min]", "overhead ratio", "goal", "met?"]
        rows = [[o["task"], f"{o['rows']:,}", f"{o['n_calls']} ({o['chunk']})", fmt_time(o["ours"]),
                 fmt_time(o["model"]), f"{o['ratio']:.2f}", "<= 1.2", "yes" if o["ratio"] <= 1.2 else "NO"]
                for o in res.overhead]
        out += ["", "Overhead: total time / model evaluations alone (same rows, same chunks)",
                format_table(header, rows, right=(1, 3, 4, 5))]
    return "\n".join(out)
