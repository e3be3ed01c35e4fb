"""Koh & Liang's model-explanation figure (Sec. 5.1, Fig. 4), for ``data_attribution.py``.

Section ``explain-fig``: the same binary task as ``attack-paper`` (Fashion-MNIST Sneaker vs Ankle
boot, the reference CNN's features frozen, a 2-way head at its optimum) against an **RBF-kernel
model**: kernel logistic regression with every training image as a centre, ``k(x, x_i) =
exp(-gamma ||x - x_i||^2)``, ``gamma = 1 / median squared distance``, the linear layer on the
kernel features fitted to its optimum with the same ``l2`` (the paper's RBF SVM, with the
logistic loss instead of the smoothed hinge). For a few test images, the most helpful and most
harmful training images of each model (influence on the test loss at the true label, last layer)
side by side, written to ``benchmarks/figures/influence_cnn_vs_rbf.png``. The table gives the
paper's quantitative reading: the Spearman correlation between a training point's |influence|
and its negative pixel distance to the test image (the paper: RBF influence tracks pixel
distance, the network's does not), and the share of the top-10 helpful images of the test
image's own class.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import scipy.stats
import torch

from scrutiny.data_attribution import InfluenceFunctions

from _da_attack import fit_head


class RBFKernelModel(torch.nn.Module):
    """Kernel logistic regression: ``classifier(exp(-gamma ||x - c_j||^2))`` over fixed centres."""

    def __init__(self, centres: np.ndarray, gamma: float, n_classes: int = 2):
        super().__init__()
        self.register_buffer("centres", torch.as_tensor(centres.reshape(len(centres), -1), dtype=torch.float64))
        self.gamma = float(gamma)
        self.classifier = torch.nn.Linear(len(centres), n_classes).double()
        with torch.no_grad():
            self.classifier.weight.zero_()
            self.classifier.bias.zero_()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(-self.gamma * torch.cdist(x.reshape(len(x), -1), self.centres) ** 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def explain_section(setup: dict, l2: float, n_images: int, seed: int, fmt: Any, figure: Path | None) -> dict:
    X, y, Xte, yte = setup["X"], setup["y"], setup["Xte"], setup["yte"]
    Xf = X.reshape(len(X), -1)
    sq = (Xf ** 2).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * Xf @ Xf.T, 0.0)
    gamma = 1.0 / float(np.median(d2[np.triu_indices(len(X), 1)]))
    rbf = RBFKernelModel(X, gamma)
    fit = fit_head(rbf, np.exp(-gamma * d2), y, l2)  # the kernel features of the training set are exp(-gamma d2)
    with torch.no_grad():
        acc_rbf = float(np.mean(rbf(torch.as_tensor(Xte)).numpy().argmax(1) == yte))
    log(f"[explain-fig] RBF kernel model: gamma {gamma:.4f}, ||grad|| {fit['grad_norm']:.1e}, test accuracy {acc_rbf:.4f}")
    rng = np.random.default_rng(seed)
    sel = np.sort(np.concatenate([rng.choice(np.flatnonzero(yte == c), n_images // 2 + n_images % 2 * (c == 0),
                                             replace=False) for c in (0, 1)]))
    models = {"CNN (last layer)": setup["model"], "RBF kernel": rbf}
    atts, rows, out = {}, [], {"gamma": gamma, "rbf_test_accuracy": acc_rbf, "cnn_test_accuracy": setup["accuracy"],
                              "test_indices": sel.tolist(), "models": {}}
    for name, m in models.items():
        att = InfluenceFunctions(m, "cross_entropy", l2=l2, params="last", solver="exact").fit(X, y).attribute(
            Xte[sel], yte[sel])
        atts[name] = att
        rho, same = [], []
        for t, j in enumerate(sel):
            dist = np.linalg.norm(Xf - Xte[j].reshape(1, -1), axis=1)
            rho.append(float(scipy.stats.spearmanr(np.abs(att.scores[t]), -dist).statistic))
            same.append(float(np.mean(y[att.proponents(10)[t]] == yte[j])))
        out["models"][name] = {"spearman_absinf_negdist": rho, "top10_helpful_same_class": same}
        rows.append([name, f"{np.mean(rho):+.3f}", f"{np.mean(same):.2f}"])
    print(f"\n[explain-fig] Influence explanations (Koh & Liang Fig. 4): {len(sel)} test images, Fashion-MNIST Sneaker vs "
          f"Ankle boot; CNN last layer (test acc {setup['accuracy']:.3f}) vs RBF kernel logistic regression (test acc "
          f"{acc_rbf:.3f}). Spearman(|influence|, -pixel distance) over all training images: the paper's reading is that "
          f"RBF influence tracks pixel distance and the network's does not")
    print(fmt(["model", "Spearman |inf| vs -distance", "top-10 helpful of the same class"], rows, right=(1, 2)))
    if figure is not None:
        _figure(figure, X, Xte, sel, atts)
    return out


def _figure(path: Path, X: np.ndarray, Xte: np.ndarray, sel: np.ndarray, atts: dict, k: int = 3) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(atts)
    cols = 1 + 2 * k * len(names)
    fig, axes = plt.subplots(len(sel), cols, figsize=(0.95 * cols, 1.15 * len(sel) + 0.4), squeeze=False)
    for r, j in enumerate(sel):
        axes[r, 0].imshow(Xte[j].reshape(X.shape[-2:]), cmap="gray", vmin=0, vmax=1)
        axes[r, 0].set_title("test", fontsize=6)
        c = 1
        for name in names:
            att = atts[name]
            for kind, ids in (("helpful", att.proponents(k)[r]), ("harmful", att.opponents(k)[r])):
                for i in ids:
                    axes[r, c].imshow(X[i].reshape(X.shape[-2:]), cmap="gray", vmin=0, vmax=1)
                    axes[r, c].set_title(f"{name.split()[0]} {kind}\n{att.scores[r, i]:+.1e}", fontsize=5)
                    c += 1
    for a in axes.ravel():
        a.axis("off")
    fig.suptitle("Most helpful / harmful training images: CNN last layer vs RBF kernel model", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
