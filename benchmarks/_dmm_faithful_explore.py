"""Exploration for issue 26: which response / chain setting / posterior summary makes the per-image
DMM-MEN explanation faithful (keep top 20 segments)? Shares masks and model calls across settings."""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_DATA_DIR

from scrutiny import data as sdata
from scrutiny.attribution import LIME
from scrutiny.attribution.dmm_men import uniform_size_masks
from scrutiny.exceptions import ConvergenceWarning
from scrutiny.models import as_model
from scrutiny.surrogate import DMMMEN, chain_pool
from scrutiny.zoo import reference_model


def soft_hstar(est, y0):
    """Posterior mean over draws of sum_h r_h(x*) beta_h at the all-ones row."""
    out, cnt = 0.0, 0
    for d in est.draws_:
        pi, beta, b0, s2 = (np.asarray(d[k]) for k in ("pi", "beta", "intercept", "sigma2"))
        mean = b0 + beta.sum(axis=2)  # (T, J)
        with np.errstate(divide="ignore"):
            logd = np.log(pi) - 0.5 * np.log(s2) - 0.5 * (y0 - mean) ** 2 / s2
        logd -= np.logaddexp.reduce(logd, axis=1, keepdims=True)
        r = np.exp(logd)
        out = out + np.einsum("tj,tjp->p", r, beta)
        cnt += r.shape[0]
    return out / cnt


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--model", default="cnn")
    p.add_argument("--n", type=int, default=24)
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-time", type=float, default=5.0)
    p.add_argument("--configs", nargs="+", default=["lo:2x200b", "raw:2x200b", "lo:4x1000a", "raw:4x1000a"])
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    net, info = reference_model(a.model, a.dataset, data_dir=a.data_dir)
    net.eval()
    m = as_model(net)
    load = {"mnist": sdata.load_mnist, "fashion-mnist": sdata.load_fashion_mnist}[a.dataset]
    test = load(split="test", data_dir=a.data_dir)
    rng = np.random.default_rng(12345)
    idx = rng.permutation(len(test.X))[a.offset: a.offset + a.n]
    X = test.X[idx]
    segs = sdata.segment(X, method="slic", n_segments=50)
    target = m.predict(X).argmax(1)
    n = len(X)
    rankings: dict[str, list] = {}
    t0 = time.perf_counter()
    lime = LIME(net, mode="image", segments=segs, baseline=0.0, n_samples=1000, random_state=a.seed).explain(X, target=target)
    print(f"lime {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    rankings["LIME"] = [np.argsort(-lime.extras["segment_values"][i][: segs[i].max() + 1], kind="stable") for i in range(n)]
    rr = np.random.default_rng(a.seed + 1)
    rankings["random"] = [rr.permutation(segs[i].max() + 1) for i in range(n)]
    # masks and responses
    resp = {"lo": [], "raw": [], "prob": []}
    Zs = []
    for i in range(n):
        S = int(segs[i].max()) + 1
        Z = uniform_size_masks(a.seed, S, 1000)
        imgs = np.where(Z[:, segs[i]].reshape(len(Z), 1, *segs[i].shape) > 0, X[i][None], 0.0)
        out = m.predict(imgs)
        logits = out[:, target[i]]
        lse_other = np.logaddexp.reduce(np.delete(out, target[i], axis=1), axis=1)
        P = np.exp(out - np.logaddexp.reduce(out, axis=1, keepdims=True))[:, target[i]]
        pc = np.clip(P, 1e-6, 1 - 1e-6)
        resp["lo"].append(np.log(pc / (1 - pc)))
        resp["raw"].append(logits)
        resp["prob"].append(P)
        resp.setdefault("ulo", []).append(logits - lse_other)
        P0 = m.predict_proba(np.zeros_like(X[i:i + 1]))[0, target[i]]
        resp.setdefault("anc", []).append(P - P0)
        Zs.append(Z)
        # OLS on masks
    for key in ("lo", "ulo", "prob"):
        rankings[f"OLS[{key}]"] = [np.argsort(-np.linalg.lstsq(np.c_[np.ones(len(Zs[i])), Zs[i]], resp[key][i], rcond=None)[0][1:], kind="stable") for i in range(n)]
    times = {}
    conv = {}
    with chain_pool(2):
        for cfg in a.configs:
            space, ch, *extra = cfg.split(":")
            nc, rest = ch.split("x")
            sel = {"b": "best", "a": "all", "p": "all", "o": "all", "q": "best"}[rest[-1]]
            init = {"p": "pilot", "o": "one", "q": "one"}.get(rest[-1], "mixed")
            auto = rest[:-1] == "auto"
            it = "auto" if auto else int(rest[:-1])
            params = dict(init=init, chain_selection=sel, n_jobs=2, n_components=6, n_priors=3, n_iter=it,
                          n_burnin=100 if auto else it // 2, n_chains=int(nc), random_state=a.seed)
            if auto:
                params.update(max_time=a.max_time, max_iter=4000)
            for e in extra:
                if e == "noint":
                    params["fit_intercept"] = False
                elif e.startswith("is"):
                    params["intercept_scale"] = float(e[2:])
                elif e.startswith("J"):
                    params["n_components"] = int(e[1:])
            for s in ("h*", "soft", "mix", "heavy", "kern.25", "kern.5", "kern1"):
                rankings[f"{cfg} {s}"] = []
            ts, cv = [], []
            for i in range(n):
                y = resp[space][i]
                Z = Zs[i]
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    est = DMMMEN(**params).fit(Z, y)
                ts.append(time.perf_counter() - t0)
                cv.append(est.converged_)
                Pc = est.component_proba(Z[:1], y[:1])[0]
                h = int(np.argmax(Pc))
                rankings[f"{cfg} h*"].append(np.argsort(-est.coef_[h], kind="stable"))
                rankings[f"{cfg} soft"].append(np.argsort(-soft_hstar(est, y[0]), kind="stable"))
                rankings[f"{cfg} mix"].append(np.argsort(-est.coef_mixture_, kind="stable"))
                d = 1 - Z.sum(1) / np.sqrt(Z.shape[1] * np.maximum(Z.sum(1), 1))  # cosine distance to all-ones
                for wname, width in (("kern.25", 0.25), ("kern.5", 0.5), ("kern1", 1.0)):
                    w = np.exp(-d ** 2 / width ** 2)
                    r = (w[:, None] * est.responsibilities_).sum(0)
                    rankings[f"{cfg} {wname}"].append(np.argsort(-(r @ est.coef_), kind="stable"))
                rankings[f"{cfg} heavy"].append(np.argsort(-est.coef_[int(np.argmax(est.weights_))], kind="stable"))
            times[cfg] = float(np.median(ts))
            conv[cfg] = float(np.mean(cv))
            print(f"{cfg}: {times[cfg]:.2f}s/img, converged {conv[cfg]:.2f}", file=sys.stderr, flush=True)
    print(f"\n{a.dataset}/{a.model}: {n} images, keep top 20 of SLIC-50 segments, rest 0")
    for name, ranks in rankings.items():
        imgs = np.stack([np.where(np.isin(segs[i], ranks[i][:20]), X[i], 0.0) for i in range(n)])
        P = m.predict_proba(imgs)
        pv = P[np.arange(n), target]
        acc = np.mean(P.argmax(1) == target)
        se = pv.std(ddof=1) / np.sqrt(n)
        print(f"{name:24s} P={100 * pv.mean():6.2f}% ±{196 * se:5.2f}  acc={100 * acc:5.1f}%")
    for cfg in times:
        print(f"{cfg}: {times[cfg]:.2f} s/img, converged {100 * conv[cfg]:.0f}%")


if __name__ == "__main__":
    main()
