"""Result types of the diagnostics (saved and reloaded by ``save`` / :func:`scrutiny.load_result`).

* :class:`RandomizationResult` -- Zhang et al.'s randomization test (:func:`randomization_test`);
* :class:`SanityCheckResult` -- Adebayo et al.'s sanity checks of explanations (:func:`sanity_check`).

Both are frozen dataclasses of arrays plus a JSON header; indicators, tables, verdicts and plots
are computed from the stored arrays, so a reloaded result prints and plots the same.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..explanation import Result

__all__ = ["RandomizationResult", "SanityCheckResult"]

#: monotonicity tolerance: held-out accuracy may rise by at most this much from one label-noise
#: rate to the next (3 seeds of 2,000 held-out points have a standard error near 0.005)
MONOTONE_TOL = 0.02
#: "at chance": held-out accuracy on random labels within this of the chance level (issue 19)
CHANCE_TOL = 0.05


def _pyplot() -> Any:
    import matplotlib

    if "matplotlib.pyplot" not in __import__("sys").modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _nanmean(a: np.ndarray, axis: int = -1) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        count = np.sum(~np.isnan(a), axis=axis)
        total = np.nansum(a, axis=axis)
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _fmt(v: float, spec: str = ".3f") -> str:
    return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else format(v, spec)


@dataclasses.dataclass(frozen=True, eq=False)
class RandomizationResult(Result):
    """What :func:`randomization_test` measured, per (corruption, seed).

    Attributes
    ----------
    corruptions : list of str
        Condition names, e.g. ``["true", "labels@0.5", "random_labels", ...]``.
    noise_rate : ndarray of shape (n_corruptions,)
        Label re-draw probability p (0 for true labels, 1 for random labels, NaN for input corruptions).
    seeds : int ndarray of shape (n_seeds,)
    epochs_to_threshold, epochs_to_fit : ndarray of shape (n_corruptions, n_seeds)
        First epoch with training accuracy >= ``fit_threshold`` / = 100% (NaN: not within ``max_epochs``).
    steps_to_threshold, steps_to_fit : ndarray of shape (n_corruptions, n_seeds)
        The same in optimisation steps (epochs x minibatches per epoch).
    final_train_loss, final_train_accuracy, test_accuracy : ndarray of shape (n_corruptions, n_seeds)
        At the end of training (eval mode, whole training set; clean held-out labels).
    label_change_rate : ndarray of shape (n_corruptions, n_seeds)
        Observed fraction of training labels changed (about ``p * (1 - 1/n_classes)``).
    seconds : ndarray of shape (n_corruptions, n_seeds)
    chance : float
        The chance level: the held-out share of the most frequent class (the best any
        input-independent prediction does).
    class_prior : ndarray of shape (n_classes,)
        Held-out class frequencies.
    curves_train_loss, curves_train_accuracy, curves_test_accuracy : ndarray of shape (n_corruptions, n_seeds, max_epochs)
        Learning curves, NaN after the run stopped.
    params : dict
    """

    corruptions: list
    noise_rate: np.ndarray
    seeds: np.ndarray
    epochs_to_threshold: np.ndarray
    epochs_to_fit: np.ndarray
    steps_to_threshold: np.ndarray
    steps_to_fit: np.ndarray
    final_train_loss: np.ndarray
    final_train_accuracy: np.ndarray
    test_accuracy: np.ndarray
    label_change_rate: np.ndarray
    seconds: np.ndarray
    chance: float
    class_prior: np.ndarray
    curves_train_loss: np.ndarray
    curves_train_accuracy: np.ndarray
    curves_test_accuracy: np.ndarray
    params: dict = dataclasses.field(default_factory=dict)

    _ARRAYS: ClassVar[tuple[str, ...]] = (
        "noise_rate", "seeds", "epochs_to_threshold", "epochs_to_fit", "steps_to_threshold", "steps_to_fit",
        "final_train_loss", "final_train_accuracy", "test_accuracy", "label_change_rate", "seconds",
        "class_prior", "curves_train_loss", "curves_train_accuracy", "curves_test_accuracy")

    def __post_init__(self) -> None:
        object.__setattr__(self, "corruptions", [str(c) for c in self.corruptions])
        object.__setattr__(self, "chance", float(self.chance))

    # -- derived indicators -------------------------------------------------------------------
    def _row(self, name: str) -> int | None:
        return self.corruptions.index(name) if name in self.corruptions else None

    @property
    def indicators(self) -> dict[str, Any]:
        """Derived indicators (all from the stored arrays).

        * ``memorises_random_labels``: every seed reached ``fit_threshold`` training accuracy on
          random labels (None without that condition);
        * ``random_labels_test_minus_chance``: mean held-out accuracy on random labels minus chance;
        * ``relative_time``: per condition, mean epochs to ``fit_threshold`` over those on true labels;
        * ``gap_slope``, ``gap_intercept``: least-squares line of the generalisation gap (train minus
          held-out accuracy, every seed) against the label-noise rate p;
        * ``monotone``: held-out accuracy (seed means) never rises by more than
          ``MONOTONE_TOL`` as p grows, and is within ``CHANCE_TOL`` of chance at p = 1.
        """
        out: dict[str, Any] = {}
        thr = self.params.get("fit_threshold", 0.99)
        r = self._row("random_labels")
        out["memorises_random_labels"] = None if r is None else bool(np.all(self.final_train_accuracy[r] >= thr))
        out["random_labels_test_minus_chance"] = (
            None if r is None else float(np.mean(self.test_accuracy[r]) - self.chance))
        t = self._row("true")
        base = float(_nanmean(self.epochs_to_threshold[t])) if t is not None else float("nan")
        out["relative_time"] = {c: float(_nanmean(self.epochs_to_threshold[i]) / base) if t is not None else None
                                for i, c in enumerate(self.corruptions)}
        rates = np.asarray(self.noise_rate, dtype=np.float64)
        lab = np.flatnonzero(~np.isnan(rates))
        if lab.size >= 2 and len(np.unique(rates[lab])) >= 2:
            p = np.repeat(rates[lab], self.test_accuracy.shape[1])
            gap = (self.final_train_accuracy[lab] - self.test_accuracy[lab]).ravel()
            slope, intercept = np.polyfit(p, gap, 1)
            out["gap_slope"], out["gap_intercept"] = float(slope), float(intercept)
            order = lab[np.argsort(rates[lab], kind="stable")]
            means = np.mean(self.test_accuracy[order], axis=1)
            falls = bool(np.all(np.diff(means) <= MONOTONE_TOL))
            at_chance = True
            if rates[order[-1]] == 1.0:
                at_chance = bool(abs(means[-1] - self.chance) <= CHANCE_TOL)
            out["monotone"] = falls and at_chance
        else:
            out["gap_slope"] = out["gap_intercept"] = out["monotone"] = None
        return out

    @property
    def verdict(self) -> str:
        """One line: does the model memorise random labels, how much slower, and at what held-out accuracy."""
        ind = self.indicators
        mem = ind["memorises_random_labels"]
        if mem is None:
            return "no random-label condition: memorisation not tested."
        r = self._row("random_labels")
        acc = float(np.mean(self.final_train_accuracy[r]))
        test = float(np.mean(self.test_accuracy[r]))
        rel = ind["relative_time"].get("random_labels")
        slower = f", {rel:.1f}x the epochs of true labels" if rel is not None and np.isfinite(rel) else ""
        if mem:
            return (f"memorises random labels (train accuracy {acc:.3f}{slower}; held-out {test:.3f} vs chance "
                    f"{self.chance:.3f}): capacity alone cannot explain this model's generalisation.")
        return (f"does not memorise random labels within {self.params.get('max_epochs')} epochs (train accuracy "
                f"{acc:.3f}; held-out {test:.3f} vs chance {self.chance:.3f}).")

    def table(self) -> str:
        """A plain-text table: one row per condition (seed values listed, held-out accuracy a mean)."""
        ind = self.indicators
        head = ["condition", "epochs to 99%", "epochs to 100%", "train acc", "test acc", "rel. time", "changed"]
        rows = []
        for i, c in enumerate(self.corruptions):
            def seeds(a: np.ndarray) -> str:
                return ", ".join("-" if np.isnan(v) else str(int(v)) for v in a)

            rel = ind["relative_time"].get(c)
            rows.append([c, seeds(self.epochs_to_threshold[i]), seeds(self.epochs_to_fit[i]),
                         _fmt(float(np.mean(self.final_train_accuracy[i]))), _fmt(float(np.mean(self.test_accuracy[i]))),
                         _fmt(rel, ".2f") if rel is not None else "-", _fmt(float(np.mean(self.label_change_rate[i])))])
        widths = [max(len(str(r[k])) for r in rows + [head]) for k in range(len(head))]
        lines = ["  ".join(str(v).ljust(w) for v, w in zip(r, widths)) for r in [head] + rows]
        lines.append(f"chance level {self.chance:.3f}; {self.verdict}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def plot(self, path: str | os.PathLike | None = None) -> Any:
        """Training loss against epochs (seed means), time to fit and held-out accuracy against p.

        Returns the matplotlib Figure (saved to ``path`` when given).
        """
        plt = _pyplot()
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
        for i, c in enumerate(self.corruptions):
            curve = _nanmean(np.moveaxis(self.curves_train_loss[i], 0, -1))
            axes[0].plot(np.arange(1, curve.size + 1), curve, label=c)
        axes[0].set(xlabel="epoch", ylabel="training loss", yscale="log", title="(a) learning curves")
        axes[0].legend(fontsize=7)
        rates = np.asarray(self.noise_rate, dtype=np.float64)
        lab = np.flatnonzero(~np.isnan(rates))
        lab = lab[np.argsort(rates[lab], kind="stable")]
        ind = self.indicators
        if lab.size:
            rel = [ind["relative_time"].get(self.corruptions[i]) or np.nan for i in lab]
            axes[1].plot(rates[lab], rel, "o-")
            axes[2].plot(rates[lab], np.mean(self.test_accuracy[lab], axis=1), "o-", label="held-out")
            axes[2].plot(rates[lab], np.mean(self.final_train_accuracy[lab], axis=1), "s--", label="train")
        axes[1].set(xlabel="label corruption p", ylabel="epochs to threshold / true labels", title="(b) time to fit")
        axes[2].axhline(self.chance, color="grey", lw=0.8, ls=":", label="chance")
        axes[2].set(xlabel="label corruption p", ylabel="accuracy", title="(c) generalisation", ylim=(0, 1.05))
        axes[2].legend(fontsize=7)
        fig.tight_layout()
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(Path(path), dpi=120)
        return fig


@dataclasses.dataclass(frozen=True, eq=False)
class SanityCheckResult(Result):
    """What :func:`sanity_check` measured: similarity of original and randomised explanations.

    Attributes
    ----------
    explainers : list of str
        Names of the explainers checked.
    stages : list of str
        The randomised models: ``"cascading:<layer>"`` (that layer and every layer above it
        re-initialised; output layer first), ``"independent:<layer>"`` (that layer only) and ``"data"``
        (the model retrained on permuted labels).
    metrics : list of str
        Similarity measures (``"spearman_abs"``, ``"spearman"``, ``"ssim"``, ``"hog"``).
    similarity : ndarray of shape (n_explainers, n_stages, n_metrics, n_samples)
        Similarity of each sample's original and randomised explanation.
    baseline : ndarray of shape (n_explainers, n_metrics, n_samples)
        Similarity of each original explanation with a random attribution (standard normal): the
        noise floor that similarities are read against.
    p_values : ndarray of shape (n_explainers, n_stages, n_metrics)
        Permutation test of "the randomised explanation of a sample is no closer to that sample's
        original explanation than to another sample's" (small: it still follows the input).
    passed : ndarray of bool, shape (n_explainers, n_tests)
        Verdict per explainer and test (``tests``): the normalised similarity of the test,
        ``(s - floor) / (ceiling - floor)`` on the decision metric (floor: a random attribution; ceiling:
        the explainer's seed-to-seed similarity, 1 when deterministic), is below ``threshold``.
    tests : list of str
    params : dict
        ``threshold``, ``metric`` (the decision metric), the layers, seeds, smoothing, and per stage
        the retrained model's accuracy on permuted labels (data randomisation).
    extras : dict
        ``seconds`` (n_explainers, n_stages + 1): time of the original and each stage's explanations;
        ``ceiling`` (n_explainers, n_metrics, n_samples): similarity of the original explanation with
        the same explainer re-run on the original model with another seed (1 for deterministic
        explainers) -- a stochastic explainer whose randomised similarities reach it cannot show
        whether the model mattered.
    """

    explainers: list
    stages: list
    metrics: list
    tests: list
    similarity: np.ndarray
    baseline: np.ndarray
    p_values: np.ndarray
    passed: np.ndarray
    params: dict = dataclasses.field(default_factory=dict)
    extras: dict = dataclasses.field(default_factory=dict)

    _ARRAYS: ClassVar[tuple[str, ...]] = ("similarity", "baseline", "p_values", "passed")

    def __post_init__(self) -> None:
        for name in ("explainers", "stages", "metrics", "tests"):
            object.__setattr__(self, name, [str(v) for v in getattr(self, name)])
        object.__setattr__(self, "passed", np.asarray(self.passed, dtype=bool))

    @property
    def mean(self) -> np.ndarray:
        """Mean similarity over samples, shape (n_explainers, n_stages, n_metrics)."""
        return np.mean(self.similarity, axis=-1)

    @property
    def interval(self) -> np.ndarray:
        """95% t-interval of the mean similarity, shape (n_explainers, n_stages, n_metrics, 2)."""
        from scipy import stats

        n = self.similarity.shape[-1]
        se = np.std(self.similarity, axis=-1, ddof=1) / np.sqrt(n) if n > 1 else np.full(self.mean.shape, np.nan)
        half = stats.t.ppf(0.975, max(n - 1, 1)) * se
        return np.stack([self.mean - half, self.mean + half], axis=-1)

    def curve(self, explainer: str | int, metric: str = "spearman_abs", test: str = "cascading") -> tuple[list, np.ndarray]:
        """Stage names and mean similarities of one explainer along one test (the cascading curve)."""
        e = explainer if isinstance(explainer, int) else self.explainers.index(explainer)
        m = self.metrics.index(metric)
        idx = [k for k, s in enumerate(self.stages) if s.split(":")[0] == test]
        return [self.stages[k] for k in idx], self.mean[e, idx, m]

    def verdicts(self) -> dict[str, dict[str, bool]]:
        """Pass/fail per explainer and test."""
        return {e: {t: bool(self.passed[i, k]) for k, t in enumerate(self.tests)} for i, e in enumerate(self.explainers)}

    @property
    def verdict(self) -> str:
        failed = [f"{e} ({', '.join(t for t, ok in v.items() if not ok)})" for e, v in self.verdicts().items()
                  if not all(v.values())]
        thr, metric = self.params.get("threshold"), self.params.get("metric")
        if not failed:
            return f"every explainer passes (normalised {metric} similarity below {thr} after randomisation)."
        return (f"fail: {'; '.join(failed)} -- after the model is randomised their explanations stay within "
                f"{thr} of their own seed-to-seed similarity above the random floor ({metric}): they follow the "
                "input (or their own noise) more than the model.")

    def table(self) -> str:
        """Mean similarity [95% interval] per explainer and stage on every metric, plus the noise floor."""
        lo_hi = self.interval
        head = ["explainer", "stage"] + self.metrics + ["p (" + self.metrics[0] + ")"]
        rows = []
        for i, e in enumerate(self.explainers):
            rows.append([e, "random baseline"] + [_fmt(float(np.mean(self.baseline[i, m]))) for m in range(len(self.metrics))] + [""])
            ceiling = self.extras.get("ceiling")
            if ceiling is not None and not np.all(ceiling[i] == 1.0):
                rows.append([e, "seed-to-seed"] + [_fmt(float(np.mean(ceiling[i, m]))) for m in range(len(self.metrics))] + [""])
            for k, s in enumerate(self.stages):
                rows.append([e, s] + [f"{self.mean[i, k, m]:.3f} [{lo_hi[i, k, m, 0]:.2f}, {lo_hi[i, k, m, 1]:.2f}]"
                                      if np.isfinite(self.mean[i, k, m]) else "-" for m in range(len(self.metrics))]
                            + [_fmt(float(self.p_values[i, k, 0]), ".4f")])
        widths = [max(len(str(r[k])) for r in rows + [head]) for k in range(len(head))]
        lines = ["  ".join(str(v).ljust(w) for v, w in zip(r, widths)) for r in [head] + rows]
        lines.append(self.verdict)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def plot(self, path: str | os.PathLike | None = None, metric: str = "spearman_abs") -> Any:
        """Cascading curves (similarity against layers randomised, top down) and the other tests.

        Returns the matplotlib Figure (saved to ``path`` when given).
        """
        plt = _pyplot()
        m = self.metrics.index(metric)
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
        casc = [k for k, s in enumerate(self.stages) if s.startswith("cascading:")]
        other = [k for k, s in enumerate(self.stages) if not s.startswith("cascading:")]
        for i, e in enumerate(self.explainers):
            line = axes[0].plot(range(len(casc) + 1), np.r_[1.0, self.mean[i, casc, m]], "o-", label=e)[0]
            axes[0].axhline(float(np.mean(self.baseline[i, m])), color=line.get_color(), ls=":", lw=0.8)
            if other:
                axes[1].plot(range(len(other)), self.mean[i, other, m], "o", label=e, color=line.get_color())
        axes[0].set_xticks(range(len(casc) + 1), ["original"] + [self.stages[k].split(":", 1)[1] for k in casc],
                           rotation=45, fontsize=7)
        axes[0].set(ylabel=f"{metric} similarity", title="cascading randomisation (dotted: random baseline)")
        axes[1].set_xticks(range(len(other)), [self.stages[k] for k in other], rotation=45, fontsize=7)
        axes[1].set(ylabel=f"{metric} similarity", title="independent layers and data randomisation")
        axes[0].legend(fontsize=7)
        fig.tight_layout()
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(Path(path), dpi=120)
        return fig
