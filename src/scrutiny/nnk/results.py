"""The result types of the NNK package (saved and reloaded by ``save`` / :func:`scrutiny.load_result`).

* :class:`NNKSolution` -- NNK neighbourhoods of a batch of queries in sparse form (a NamedTuple
  returned by :meth:`NNK.solve` and :meth:`NNK.loo_solve`; not a saved result);
* :class:`NNKLeaveOneOut` -- leave-one-out NNK and kNN classification (:meth:`NNK.loo_error`);
* :class:`GeneralizationResult` -- DeepNNK estimates per epoch (:class:`GeneralizationMonitor`);
* :class:`OutOfSupport` -- NNK residual and polytope disagreement of queries (:func:`out_of_support`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import numpy as np

from .._validation import Options, validate_params
from ..exceptions import InvalidParameterError
from ..explanation import Result

__all__ = ["GeneralizationResult", "NNKLeaveOneOut", "NNKSolution", "OutOfSupport"]


class NNKSolution(NamedTuple):
    """NNK neighbourhoods of a batch of queries (sparse form; row ``i`` is query ``i``)."""

    indices: np.ndarray  #: (n, k) int: the k nearest training points, most similar first
    weights: np.ndarray  #: (n, k) NNK weights theta >= 0 aligned with ``indices`` (0 = outside the polytope)
    kernel: np.ndarray  #: (n, k) kernel values K(q, x_j) of the neighbours
    residual: np.ndarray  #: (n,) 1 - 2 theta'K_Sq + theta'K_SS theta (kernel-space distance^2 to the polytope)
    kkt_residual: np.ndarray  #: (n,) max_j |min(theta_j, grad_j)| (0 = exact optimum)
    n_iter: np.ndarray  #: (n,) solver iterations
    converged: np.ndarray  #: (n,) bool


@dataclasses.dataclass(frozen=True, eq=False)
class NNKLeaveOneOut(Result):
    """Leave-one-out NNK and kNN classification of the training features (see :meth:`NNK.loo_error`).

    Every training point is classified from its k nearest *other* training points (its own row is
    excluded by index; duplicates of it are other points and stay eligible). Saved and reloaded
    by ``save`` / :func:`scrutiny.load_result` like every result type.
    """

    nnk_error: float  #: fraction of training points misclassified by NNK interpolation
    knn_error: float  #: same for the kernel-weighted kNN vote over the same k neighbours
    nnk_soft_error: float  #: mean of 1 - y_hat[true class] (NNK)
    nnk_error_per_class: np.ndarray  #: (n_classes,) NaN for a class with no left-out point
    knn_error_per_class: np.ndarray  #: (n_classes,)
    class_counts: np.ndarray  #: (n_classes,) left-out points per class
    classes: np.ndarray  #: (n_classes,) class labels
    nnk_pred: np.ndarray  #: (n_loo,) predicted class index (into ``classes``) of each left-out point
    knn_pred: np.ndarray  #: (n_loo,)
    residual: np.ndarray  #: (n_loo,) LOO NNK residual (an outlier score)
    n_neighbors: np.ndarray  #: (n_loo,) neighbours with theta > 0
    max_kkt_residual: float
    params: dict = dataclasses.field(default_factory=dict)

    _ARRAYS: ClassVar[tuple[str, ...]] = (
        "nnk_error_per_class", "knn_error_per_class", "class_counts", "classes", "nnk_pred", "knn_pred",
        "residual", "n_neighbors")


_SERIES = ("loo_nnk_error", "loo_knn_error", "loo_nnk_soft_error", "train_error", "test_error",
           "nnk_test_error", "knn_test_error", "mean_residual", "mean_neighbors", "max_kkt_residual", "seconds")


@dataclasses.dataclass(frozen=True, eq=False)
class GeneralizationResult(Result):
    """Per-epoch generalisation diagnostics (one entry per recorded epoch/checkpoint).

    Attributes
    ----------
    epochs : int ndarray of shape (n_epochs,)
    loo_nnk_error, loo_knn_error : ndarray of shape (n_epochs,)
        Leave-one-out NNK / kernel-weighted kNN error on the training features.
    loo_nnk_soft_error : ndarray of shape (n_epochs,)
        Mean of ``1 - y_hat[true class]`` (NNK, leave-one-out).
    loo_nnk_error_per_class, loo_knn_error_per_class : ndarray of shape (n_epochs, n_classes)
    train_error, test_error : ndarray of shape (n_epochs,)
        The network's own error on the training and test sets (NaN without a test set).
    nnk_test_error, knn_test_error : ndarray of shape (n_epochs,)
        NNK / kNN classifiers on the test features with the training features as support
        (NaN unless ``test_nnk=True``).
    mean_residual, mean_neighbors : ndarray of shape (n_epochs,)
        Mean LOO residual and mean number of NNK neighbours (theta > 0).
    max_kkt_residual : ndarray of shape (n_epochs,)
        Largest KKT residual of the NNK solves (0 up to rounding for exact solutions).
    seconds : ndarray of shape (n_epochs,)
        Time spent by the diagnostic per epoch (features + solves).
    classes : ndarray of shape (n_classes,)
    params : dict
    """

    epochs: np.ndarray
    loo_nnk_error: np.ndarray
    loo_knn_error: np.ndarray
    loo_nnk_soft_error: np.ndarray
    loo_nnk_error_per_class: np.ndarray
    loo_knn_error_per_class: np.ndarray
    train_error: np.ndarray
    test_error: np.ndarray
    nnk_test_error: np.ndarray
    knn_test_error: np.ndarray
    mean_residual: np.ndarray
    mean_neighbors: np.ndarray
    max_kkt_residual: np.ndarray
    seconds: np.ndarray
    classes: np.ndarray
    params: dict = dataclasses.field(default_factory=dict)

    _ARRAYS: ClassVar[tuple[str, ...]] = ("epochs", "loo_nnk_error_per_class", "loo_knn_error_per_class",
                                          "classes") + _SERIES
    _PER_SAMPLE: ClassVar[tuple[str, ...]] = ("epochs", "loo_nnk_error_per_class", "loo_knn_error_per_class") + _SERIES
    _N_FIELD: ClassVar[str] = "epochs"  # one row per recorded epoch: len(result), result[-3:]

    def correlation(self, x: str = "loo_nnk_error", y: str = "test_error", method: str = "pearson") -> float:
        """Correlation across epochs between two per-epoch series (NaN if undefined).

        Parameters
        ----------
        x, y : str
            Names of per-epoch series (e.g. ``"loo_knn_error"``, ``"test_error"``).
        method : {"pearson", "spearman"}
        """
        validate_params("GeneralizationResult.correlation", {"x": x, "y": y, "method": method},
                        {"x": [Options(*_SERIES)], "y": [Options(*_SERIES)],
                         "method": [Options("pearson", "spearman")]})
        a, b = getattr(self, x), getattr(self, y)
        ok = np.isfinite(a) & np.isfinite(b)
        a, b = a[ok], b[ok]
        if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
            return float("nan")
        if method == "spearman":
            from scipy.stats import rankdata

            a, b = rankdata(a), rankdata(b)
        return float(np.corrcoef(a, b)[0, 1])

    def correlations(self, method: str = "pearson") -> dict[str, float]:
        """Correlation of each LOO estimate (and test-feature classifier) with the network's test error."""
        return {f"{x}~test_error": self.correlation(x, "test_error", method)
                for x in ("loo_nnk_error", "loo_knn_error", "loo_nnk_soft_error", "nnk_test_error")}

    def best_epoch(self, by: str = "loo_nnk_error") -> int:
        """The epoch minimising a series (model selection without a validation set by default)."""
        validate_params("GeneralizationResult.best_epoch", {"by": by}, {"by": [Options(*_SERIES)]})
        v = getattr(self, by)
        if not np.isfinite(v).any():
            raise InvalidParameterError(f"best_epoch: {by} holds no finite value (was it recorded?).")
        return int(self.epochs[int(np.nanargmin(v))])

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (see :meth:`Result.to_dict`) plus ``"correlations"`` (ignored by
        :meth:`from_dict`, which recomputes nothing it does not need)."""
        out = super().to_dict()
        out["correlations"] = self.correlations()
        return out


@dataclasses.dataclass(frozen=True, eq=False)
class OutOfSupport(Result):
    """How far queries lie outside the NNK polytopes of the training features.

    Attributes
    ----------
    residual : ndarray of shape (n,)
        Kernel-space squared distance from the query to the polytope of its neighbours
        (0: inside the convex cone of training features; large: off the data support).
    disagreement : ndarray of shape (n,)
        ``1 - max_c y_hat_c``: weight of the polytope outside its majority class.
    label_disagreement : ndarray of shape (n,) or None
        ``1 - y_hat[label]`` for the labels passed (e.g. the network's predictions).
    residual_pvalue : ndarray of shape (n,) or None
        Fraction of training points whose leave-one-out residual is at least the query's
        (small: more out-of-support than almost every training point).
    degree : ndarray of shape (n,)
        ``sum_j theta_j``.
    n_neighbors : ndarray of shape (n,)
        Polytope size (theta > 0).
    predicted : ndarray of shape (n,)
        NNK class label.
    """

    residual: np.ndarray
    disagreement: np.ndarray
    label_disagreement: np.ndarray | None
    residual_pvalue: np.ndarray | None
    degree: np.ndarray
    n_neighbors: np.ndarray
    predicted: np.ndarray

    _ARRAYS: ClassVar[tuple[str, ...]] = ("residual", "disagreement", "label_disagreement", "residual_pvalue",
                                          "degree", "n_neighbors", "predicted")
    _PER_SAMPLE: ClassVar[tuple[str, ...]] = _ARRAYS
    _N_FIELD: ClassVar[str] = "residual"
