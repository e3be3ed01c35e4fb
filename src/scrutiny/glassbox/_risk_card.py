"""Result types of RiskScoreClassifier: the score card and the calibration diagnostics.

Both are :class:`scrutiny.explanation.Result` subclasses, so they save to one ``.npz`` and reload through
``load_result``; ``plot`` draws them from the saved numbers alone (matplotlib is imported only there).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from ..explanation import Result
from ..exceptions import InvalidParameterError

__all__ = ["ScoreCard", "CalibrationResult", "calibration_table"]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


@dataclasses.dataclass(frozen=True, eq=False)
class ScoreCard(Result):
    """A risk score card: points per feature, and the risk of every total score.

    ``risk(total) = 1 / (1 + exp(-(total + intercept) / scale))``.

    Parameters
    ----------
    features : list of str
        The features that carry points, in column order.
    points : array of shape (n_terms,), int
    intercept, scale : float
    totals : array of shape (n_totals,)
        Total scores tabulated (every integer between the smallest and largest reachable total when that range
        is short, else the distinct totals seen in training).
    risks : array of shape (n_totals,)
    """

    features: list
    points: np.ndarray
    intercept: float
    scale: float
    totals: np.ndarray
    risks: np.ndarray
    params: dict = dataclasses.field(default_factory=dict)

    _ARRAYS: ClassVar[tuple[str, ...]] = ("points", "totals", "risks")

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "features", [str(f) for f in self.features])
        set_(self, "points", np.asarray(self.points, dtype=np.int64))
        set_(self, "totals", np.asarray(self.totals, dtype=np.float64))
        set_(self, "risks", np.asarray(self.risks, dtype=np.float64))
        if len(self.features) != self.points.shape[0]:
            raise InvalidParameterError(
                f"features has {len(self.features)} names but points has {self.points.shape[0]} entries."
            )
        if self.totals.shape != self.risks.shape:
            raise InvalidParameterError("totals and risks must have the same shape.")

    def __str__(self) -> str:
        width = max([len(f) for f in self.features] + [7])
        lines = [f"{'feature':<{width}}  points"]
        for f, p in zip(self.features, self.points):
            lines.append(f"{f:<{width}}  {int(p):+d}")
        lines.append(f"{'(offset ' + format(self.intercept, '.3g') + ', scale ' + format(self.scale, '.3g') + ')'}")
        lines.append("")
        lines.append("total score  risk")
        for t, r in zip(self.totals, self.risks):
            lines.append(f"{t:>11g}  {100 * r:5.1f}%")
        return "\n".join(lines)

    def plot(self, ax: Any = None):
        """Draw the points table (left) and the total -> risk curve (right); returns the figure."""
        import matplotlib.pyplot as plt

        if ax is None:
            fig, (left, right) = plt.subplots(1, 2, figsize=(9, max(2.5, 0.35 * len(self.features) + 1.5)))
        else:
            left, right = ax
            fig = left.figure
        left.axis("off")
        rows = [[f, f"{int(p):+d}"] for f, p in zip(self.features, self.points)] or [["(no feature)", "0"]]
        table = left.table(cellText=rows, colLabels=["feature", "points"], loc="center", cellLoc="left")
        table.auto_set_font_size(False)
        table.set_fontsize(9)
        left.set_title("points")
        right.plot(self.totals, 100 * self.risks, marker="o")
        right.set_xlabel("total score")
        right.set_ylabel("risk (%)")
        right.set_ylim(0, 100)
        right.grid(alpha=0.3)
        right.set_title("risk of each total")
        fig.tight_layout()
        return fig


@dataclasses.dataclass(frozen=True, eq=False)
class CalibrationResult(Result):
    """A reliability curve: mean predicted risk against the observed frequency, per bin.

    Parameters
    ----------
    predicted, observed : array of shape (n_bins,)
    counts : array of shape (n_bins,)
    ece : float
        Expected calibration error, ``sum_b counts_b / n * |predicted_b - observed_b|``.
    mce : float
        Largest ``|predicted_b - observed_b|`` over bins.
    binning : str
        ``"score"`` (one bin per distinct predicted risk) or ``"quantile"``.
    """

    predicted: np.ndarray
    observed: np.ndarray
    counts: np.ndarray
    ece: float
    mce: float
    binning: str
    params: dict = dataclasses.field(default_factory=dict)

    _ARRAYS: ClassVar[tuple[str, ...]] = ("predicted", "observed", "counts")

    def plot(self, ax: Any = None):
        """Reliability diagram (marker size by bin count) with the diagonal; returns the axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(4, 4))
        ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
        size = 20 + 200 * self.counts / max(1.0, float(self.counts.max()))
        ax.scatter(self.predicted, self.observed, s=size)
        ax.plot(self.predicted, self.observed)
        ax.set_xlabel("predicted risk")
        ax.set_ylabel("observed frequency")
        ax.set_title(f"ECE {self.ece:.3f}")
        return ax


def calibration_table(risk: np.ndarray, y01: np.ndarray, n_bins: int | None = None) -> CalibrationResult:
    """Bin by distinct predicted risk when there are at most 20 of them (a risk score's natural bins), else
    into ``n_bins`` (default 10) equal-count bins."""
    risk = np.asarray(risk, dtype=np.float64)
    y01 = np.asarray(y01, dtype=np.float64)
    distinct, inverse = np.unique(np.round(risk, 12), return_inverse=True)
    if n_bins is None and distinct.size <= 20:
        bins, nb, binning = inverse.reshape(-1), distinct.size, "score"
    else:
        nb = 10 if n_bins is None else int(n_bins)
        order = np.argsort(risk, kind="stable")
        bins = np.empty(risk.size, dtype=np.int64)
        bins[order] = np.minimum(np.arange(risk.size) * nb // risk.size, nb - 1)
        binning = "quantile"
    counts = np.bincount(bins, minlength=nb).astype(np.float64)
    keep = counts > 0
    pred = np.bincount(bins, weights=risk, minlength=nb)[keep] / counts[keep]
    obs = np.bincount(bins, weights=y01, minlength=nb)[keep] / counts[keep]
    counts = counts[keep]
    err = np.abs(pred - obs)
    return CalibrationResult(pred, obs, counts, float(counts @ err / counts.sum()), float(err.max()), binning)
