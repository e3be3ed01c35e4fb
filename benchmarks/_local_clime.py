"""SmoothGrad and C-LIME (Agarwal et al. 2021): sample cost against dimension, and robustness.

Part of the local attribution benchmark (``python benchmarks/local_attribution.py --tasks
clime`` runs it; so does this file on its own). Every C-LIME here is
``CLIME.matching(smoothgrad)``: the same space, noise and antithetic pairs, so both estimate the
same vector (Theorem 1) and only their sampling errors differ.

A. **Finite-sample cost** (Proposition 1 vs Theorem 3: C-LIME should need about ``d`` times
   more samples). ``f(x) = sin(w'x)`` with ``||w|| = 1.2`` and absolute noise ``sigma = 0.5``
   has the closed form ``SG(x) = w cos(w'x) exp(-sigma^2 ||w||^2 / 2)`` at every ``d``; ``d``
   runs from 10 to 784, n over powers of 4. Both estimators draw independent samples
   (``antithetic=False``, the setting of the paper's bounds; antithetic pairs make SmoothGrad of
   this f nearly exact and would hide the comparison). Error: relative L2 distance to the closed
   form, root mean square over the explained points and seeds. The factor is ``(c_CLIME / c_SG)^2`` with
   ``c`` fitted to ``err = c / sqrt(n)`` on the budgets with ``n >= 4 d`` (below that the OLS
   error is inflated by ``n ~ d``); "factor / d" near a constant means C-LIME's cost grows like
   ``d``. The same on the reference CNNs (digits ``d = 64``, MNIST ``d = 784``, logit of the
   predicted class, SmoothGrad's default noise: 15% of the range), against a SmoothGrad reference
   of ``--ref-samples`` samples.
B. **Robustness** (Theorem 2; local-attribution-notes.md 1.7 test 5): ``||E(x + delta) - E(x)|| /
   ||delta||`` for random directions at three radii, every explainer run with the same seed at
   ``x`` and ``x + delta`` (common noise, so the ratio measures the explanation map, not the
   sampling noise), on an ELU MLP (20 features, 2 x 64, trained on a synthetic task; logit of
   class 1 for every method). Gradient; SmoothGrad and its matching C-LIME at three noise
   levels; tabular LIME with lime's defaults (quartile discretisation, kernel width
   0.75 sqrt(d)). The bound column is Theorem 2's ``sqrt(2/pi) G / sigma`` with ``G`` the product
   of the layers' spectral norms (ELU' <= 1).

Usage::

    python benchmarks/_local_clime.py            # both parts (a few minutes on 2 cores)
    python benchmarks/_local_clime.py --quick
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

from _common import DEFAULT_DATA_DIR, format_table  # noqa: E402

from scrutiny.attribution import CLIME, LIME, Saliency, SmoothGrad  # noqa: E402
from scrutiny.models import as_model  # noqa: E402


class Sine(torch.nn.Module):
    def __init__(self, w: np.ndarray):
        super().__init__()
        self.register_buffer("w", torch.as_tensor(w, dtype=torch.float64))

    def forward(self, x):
        return torch.sin(x @ self.w)[:, None]


def rel_err(est: np.ndarray, ref: np.ndarray) -> np.ndarray:
    est, ref = est.reshape(len(est), -1), ref.reshape(len(ref), -1)
    return np.linalg.norm(est - ref, axis=1) / np.linalg.norm(ref, axis=1)


def _factor(ns, e_sg, e_cl, d) -> float:
    """(c_CLIME / c_SG)^2 from err = c / sqrt(n), C-LIME fitted on n >= 4 d only."""
    ns = np.asarray(ns, dtype=float)
    sg_ok = np.isfinite(e_sg)
    cl_ok = np.isfinite(e_cl) & (ns >= 4 * d)
    if not cl_ok.any() or not sg_ok.any():
        return float("nan")
    c_sg = np.exp(np.mean(np.log(e_sg[sg_ok] * np.sqrt(ns[sg_ok]))))
    c_cl = np.exp(np.mean(np.log(e_cl[cl_ok] * np.sqrt(ns[cl_ok]))))
    return float((c_cl / c_sg) ** 2)


def _errors(sg_of, ref, X, target, ns, seeds, d):
    """Per budget: (SmoothGrad error, C-LIME error), root mean square over points and seeds."""
    e_sg, e_cl = [], []
    for n in ns:
        a, b = [], []
        for s in range(seeds):
            sg = sg_of(n, s)
            a.append(rel_err(sg.explain(X, target).values, ref))
            if n >= d + 1:  # C-LIME's minimum (independent samples)
                b.append(rel_err(CLIME.matching(sg, n_samples=n).explain(X, target).values, ref))
        e_sg.append(np.sqrt(np.mean(np.square(a))))
        e_cl.append(np.sqrt(np.mean(np.square(b))) if b else np.nan)
    return np.array(e_sg), np.array(e_cl)


def finite_sample(args) -> list[dict]:
    out = []
    ns = [4**k for k in range(3, 8)]  # 64 ... 16,384
    sigma, norm = 0.5, 1.2
    for d in args.dims:
        t0 = time.perf_counter()
        rng = np.random.default_rng(d)
        w = rng.normal(size=d)
        w *= norm / np.linalg.norm(w)
        X = rng.normal(size=(args.points, d)) * 0.5
        model = as_model(Sine(w), output="regression", dtype=torch.float64)
        ref = w * (np.cos(X @ w) * np.exp(-(sigma**2) * norm**2 / 2))[:, None]
        target = np.zeros(len(X), dtype=int)

        def sg_of(n, s):
            return SmoothGrad(model, n_samples=n, noise_level=sigma, noise_scale="absolute", antithetic=False,
                              random_state=s)

        e_sg, e_cl = _errors(sg_of, ref, X, target, ns, args.seeds, d)
        out.append({"problem": f"sin(w'x), d={d}", "d": d, "n": ns, "smoothgrad": e_sg.tolist(),
                    "clime": e_cl.tolist(), "factor": _factor(ns, e_sg, e_cl, d),
                    "seconds": time.perf_counter() - t0})
    for name in args.cnns:
        t0 = time.perf_counter()
        from scrutiny.data import load_digits, load_mnist, train_test_split
        from scrutiny.zoo import reference_model

        net, _ = reference_model("cnn", name, data_dir=args.data_dir)
        if name == "digits":
            X = train_test_split(load_digits(), test_size=0.25, random_state=0)[1].X[: args.cnn_points]
        else:
            X = load_mnist(args.data_dir, split="test").X[: args.cnn_points]
        X = X.astype(np.float64)
        d = int(np.prod(X.shape[1:]))
        model = as_model(net)
        target = model.predict(X).argmax(1)
        ref = SmoothGrad(model, n_samples=args.ref_samples, random_state=10_000).explain(X, target).values
        cnn_ns = [n for n in ns if n <= args.ref_samples // 4]

        def sg_of(n, s):
            return SmoothGrad(model, n_samples=n, antithetic=False, random_state=s)

        e_sg, e_cl = _errors(sg_of, ref, X, target, cnn_ns, args.seeds, d)
        out.append({"problem": f"{name} CNN, d={d}", "d": d, "n": cnn_ns, "smoothgrad": e_sg.tolist(),
                    "clime": e_cl.tolist(), "factor": _factor(cnn_ns, e_sg, e_cl, d),
                    "reference": f"SmoothGrad@{args.ref_samples}", "seconds": time.perf_counter() - t0})
    return out


def format_finite(rows: list[dict]) -> str:
    ns = sorted({n for r in rows for n in r["n"]})
    body = []
    for r in rows:
        cells = []
        for n in ns:
            if n not in r["n"]:
                cells.append("")
                continue
            i = r["n"].index(n)
            cl = r["clime"][i]
            cells.append(f"{r['smoothgrad'][i]:.3f} | " + ("-" if not np.isfinite(cl) else f"{cl:.3f}"))
        f = r["factor"]
        body.append([r["problem"]] + cells + [f"{f:.0f}", f"{f / r['d']:.2f}", f"{r['seconds']:.0f}"])
    head = ["problem"] + [f"n={n}: SG | C-LIME" for n in ns] + ["factor", "factor / d", "s"]
    table = format_table(head, body, right=range(1, len(head)))
    slope = slope_line(rows)
    return ("A. Relative L2 error against the number of samples (SmoothGrad | its matching C-LIME; '-': n <= d, "
            "below C-LIME's minimum). factor = (c_CLIME / c_SG)^2 with err = c / sqrt(n): how many times more "
            "samples C-LIME needs for SmoothGrad's error\n" + table + ("\n" + slope if slope else ""))


def slope_line(rows: list[dict]) -> str:
    """Slope of log(factor) against log(d) over the closed-form rows (1: C-LIME's extra cost grows like d)."""
    pts = [(r["d"], r["factor"]) for r in rows if r["problem"].startswith("sin") and np.isfinite(r["factor"])]
    if len(pts) < 2:
        return ""
    d, f = np.log(np.array(pts, dtype=float)).T
    slope = float(np.polyfit(d, f, 1)[0])
    return (f"Slope of log(factor) against log(d) over the sin rows (d = {', '.join(str(p[0]) for p in pts)}): "
            f"{slope:.2f} (1: the extra samples C-LIME needs grow in proportion to d)")


# --------------------------------------------------------------------------- B. robustness


def elu_mlp(seed: int = 0):
    """A 20 -> 64 -> 64 -> 2 ELU MLP trained on a synthetic non-linear task (deterministic)."""
    from scrutiny.zoo import train_model

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(4000, 20))
    logit = np.sin(2 * X[:, 0]) + X[:, 1] * X[:, 2] + 0.5 * X[:, 3] - np.abs(X[:, 4])
    y = (logit > 0).astype(np.int64)
    g = torch.Generator().manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(20, 64), torch.nn.ELU(), torch.nn.Linear(64, 64), torch.nn.ELU(),
                              torch.nn.Linear(64, 2))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.empty_like(p).uniform_(-1, 1, generator=g) / np.sqrt(p.shape[-1]))
    train_model(net, X[:3000].astype(np.float32), y[:3000], epochs=15, lr=3e-3, minibatch_size=64, random_state=seed)
    net = net.double().eval()
    acc = float(np.mean(net(torch.from_numpy(X[3000:])).argmax(1).numpy() == y[3000:]))
    G = float(np.prod([np.linalg.norm(m.weight.detach().numpy(), 2) for m in net if isinstance(m, torch.nn.Linear)]))
    return net, X[:3000], X[3000:], acc, G


def robustness(args) -> dict:
    t0 = time.perf_counter()
    net, X_train, X_test, acc, G = elu_mlp()
    model = as_model(net, dtype=torch.float64)
    rng = np.random.default_rng(1)
    X = X_test[: args.robust_points]
    direction = rng.normal(size=X.shape)
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    target = np.ones(len(X), dtype=int)
    methods = {"gradient": (Saliency(model), None)}
    for s in args.sigmas:
        sg = SmoothGrad(model, n_samples=args.robust_samples, noise_level=s, noise_scale="absolute", random_state=0)
        methods[f"SmoothGrad sigma={s}"] = (sg, s)
        methods[f"C-LIME sigma={s}"] = (CLIME.matching(sg, n_samples=4 * args.robust_samples), s)
    methods["LIME (lime's defaults)"] = (LIME(model, training_data=X_train, space="raw", n_samples=5000,
                                              random_state=0), None)
    rows = []
    for name, (ex, s) in methods.items():
        base = ex.explain(X, target).values
        rec = {"method": name, "sigma": s, "bound": None if s is None else float(np.sqrt(2 / np.pi) * G / s)}
        for r in args.radii:
            moved = ex.explain(X + r * direction, target).values
            ratio = np.linalg.norm(moved - base, axis=1) / r
            rec[f"median@{r}"], rec[f"max@{r}"] = float(np.median(ratio)), float(ratio.max())
        rows.append(rec)
    return {"rows": rows, "test_accuracy": acc, "G": G, "radii": list(args.radii), "points": len(X),
            "seconds": time.perf_counter() - t0}


def format_robust(res: dict) -> str:
    head = ["method"] + [f"r={r}: median | max" for r in res["radii"]] + ["bound sqrt(2/pi) G/sigma"]
    body = [[r["method"]] + [f"{r[f'median@{x}']:.3f} | {r[f'max@{x}']:.3f}" for x in res["radii"]]
            + ["" if r["bound"] is None else f"{r['bound']:.1f}"] for r in res["rows"]]
    return (f"B. Robustness: ||E(x + r u) - E(x)|| / r over {res['points']} test points, random unit directions u, "
            f"same seed at x and x + r u. ELU MLP 20-64-64-2 (test accuracy {res['test_accuracy']:.3f}), logit of "
            f"class 1; G = {res['G']:.1f} ({res['seconds']:.0f} s)\n"
            + format_table(head, body, right=range(1, len(head))))


def run(args) -> dict:
    out = {"finite_sample": finite_sample(args), "robustness": robustness(args)}
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="d in (10, 64), one seed, the digits CNN only")
    p.add_argument("--dims", nargs="+", type=int, default=None, help="default 10 50 200 784")
    p.add_argument("--cnns", nargs="+", choices=("digits", "mnist"), default=None, help="default digits mnist")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    p.add_argument("--points", type=int, default=10, help="points per sin problem")
    p.add_argument("--cnn-points", type=int, default=2)
    p.add_argument("--seeds", type=int, default=None, help="default 3 (quick 1)")
    p.add_argument("--ref-samples", type=int, default=None, help="CNN reference budget (default 65536; quick 16384)")
    p.add_argument("--sigmas", nargs="+", type=float, default=[0.1, 0.5, 1.0, 2.0])
    p.add_argument("--radii", nargs="+", type=float, default=[0.01, 0.1, 0.5])
    p.add_argument("--robust-points", type=int, default=20)
    p.add_argument("--robust-samples", type=int, default=2000)
    p.add_argument("--json", type=Path, default=None, help="write both parts to this JSON file")
    args = p.parse_args(argv)
    args.dims = args.dims or ([10, 64] if args.quick else [10, 50, 200, 784])
    args.cnns = args.cnns if args.cnns is not None else (["digits"] if args.quick else ["digits", "mnist"])
    args.seeds = args.seeds or (1 if args.quick else 3)
    args.ref_samples = args.ref_samples or (16384 if args.quick else 65536)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)  # a script may set global state (the library never does); tiny models, shared cores
    res = run(args)
    print(format_finite(res["finite_sample"]))
    print()
    print(format_robust(res["robustness"]))
    if args.json is not None:
        from _common import write_json

        write_json(args.json, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
