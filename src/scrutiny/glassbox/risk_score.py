"""RiskScoreClassifier: sparse integer scoring systems (FasterRisk heuristic, RiskSLIM-style certification).

The model adds integer points for a few features and turns the total into a calibrated risk:
``P(y=1 | x) = 1 / (1 + exp(-(offset + sum_j points_j x_j) / scale))``. It minimises the mean logistic loss plus
``c0`` per non-zero point, with at most ``k`` non-zero points, each inside its bounds.
"""

from __future__ import annotations

import time
import warnings
from typing import Any, ClassVar

import numpy as np

from .._validation import Interval, Options, ParamsMixin, check_array, check_is_fitted
from ..exceptions import ConvergenceWarning, InvalidParameterError
from ._risk_card import CalibrationResult, ScoreCard, calibration_table
from ._risk_heuristic import RiskModel, heuristic_search

__all__ = ["RiskScoreClassifier", "RiskModel", "classifier_tags"]


def classifier_tags():
    """scikit-learn's tags of a binary classifier taking dense numeric input (imported lazily)."""
    from sklearn.utils import ClassifierTags, InputTags, Tags, TargetTags

    return Tags(estimator_type="classifier", target_tags=TargetTags(required=True),
                classifier_tags=ClassifierTags(multi_class=False), input_tags=InputTags())


def _is_numeric(dtype: Any) -> bool:
    try:
        d = np.dtype(dtype)
    except TypeError:  # pandas extension dtypes (string, category, ...)
        return False
    return bool(np.issubdtype(d, np.number) or d == bool)


def _reject_non_numeric(X: Any) -> None:
    dtypes = getattr(X, "dtypes", None)
    if dtypes is None or not hasattr(X, "columns"):
        return
    bad = [str(c) for c, d in zip(X.columns, dtypes) if not _is_numeric(d)]
    if bad:
        raise InvalidParameterError(
            f"X has non-numeric columns {bad}; RiskScoreClassifier needs numbers. Declare them categorical in "
            f"ThresholdBinarizer(categorical_features={bad}) (scrutiny.glassbox.binarize) and put it before the "
            "classifier in a pipeline."
        )


def _feature_names(X: Any, given: Any, p: int) -> list[str]:
    if given is not None:
        names = [str(n) for n in given]
        if len(names) != p:
            raise InvalidParameterError(f"feature_names has {len(names)} names but X has {p} columns; pass one per column.")
        return names
    cols = getattr(X, "columns", None)
    if cols is not None and len(cols) == p:
        return [str(c) for c in cols]
    return [f"x{j}" for j in range(p)]


def resolve_bounds(coef_bounds: Any, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(lo, hi)`` for every feature, or an array of shape (n_features, 2), or a dict name -> (lo, hi) over
    the default (-5, 5). Every range must be integers with lo <= 0 <= hi (a feature can always be left out)."""
    p = len(names)
    lb, ub = np.full(p, -5.0), np.full(p, 5.0)
    if isinstance(coef_bounds, dict):
        unknown = [k for k in coef_bounds if k not in names]
        if unknown:
            raise InvalidParameterError(
                f"coef_bounds names unknown features {unknown}; the features are {names[:10]}"
                f"{'...' if p > 10 else ''}."
            )
        for key, pair in coef_bounds.items():
            j = names.index(key)
            lb[j], ub[j] = _pair(pair, f"coef_bounds[{key!r}]")
    else:
        arr = np.asarray(coef_bounds, dtype=object)
        if arr.shape == (2,):
            lo, hi = _pair(coef_bounds, "coef_bounds")
            lb[:], ub[:] = lo, hi
        elif arr.shape == (p, 2):
            for j in range(p):
                lb[j], ub[j] = _pair(arr[j], f"coef_bounds[{j}]")
        else:
            raise InvalidParameterError(
                f"coef_bounds must be a (lo, hi) pair, an array of shape ({p}, 2) or a dict feature -> (lo, hi); "
                f"got shape {arr.shape}."
            )
    return lb, ub


def _pair(pair: Any, where: str) -> tuple[float, float]:
    try:
        lo, hi = pair
        lo_f, hi_f = float(lo), float(hi)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"{where} must be a pair of integers (lo, hi); got {pair!r}.") from exc
    if lo_f != round(lo_f) or hi_f != round(hi_f):
        raise InvalidParameterError(f"{where} must hold integers (points are integers); got {pair!r}.")
    if lo_f > hi_f:
        raise InvalidParameterError(f"{where} = {pair!r} is infeasible: lo > hi. Swap them.")
    if lo_f > 0 or hi_f < 0:
        raise InvalidParameterError(
            f"{where} = {pair!r} must contain 0 (every feature may be left out); use (0, hi) or (lo, 0) for a "
            "sign (monotonicity) constraint."
        )
    return lo_f, hi_f


class RiskScoreClassifier(ParamsMixin):
    """Sparse integer risk score: at most ``k`` features with integer points in their bounds.

    Parameters
    ----------
    k : int, default 5
        Largest number of features with non-zero points.
    coef_bounds : (int, int), array of shape (n_features, 2) or dict, default (-5, 5)
        Integer range of the points, for all features or per feature (a dict maps feature names to ranges over
        the default); ``(0, 5)`` makes a feature raise the risk only (monotonicity).
    c0 : float, default 1e-6
        Cost per non-zero point added to the mean logistic loss (RiskSLIM's default: the cap ``k`` decides).
    method : {"heuristic", "certify"}, default "heuristic"
        ``"heuristic"``: FasterRisk's beam search, diverse pool and star-ray rounding. ``"certify"``: RiskSLIM's
        lattice cutting-plane algorithm on SCIP (``pip install scrutiny[glassbox]``), warm-started by the
        heuristic pool; reports ``lower_bound_``, ``gap_`` and ``certified_``.
    scale : "auto" or float, default "auto"
        The divisor of the score in the risk. ``"auto"`` lets the heuristic choose it (star rays); "certify"
        then certifies optimality at the heuristic's scale.
    intercept_bounds : (float, float) or None
        Range of the real offset (None: wide enough never to bind on the data).
    time_limit : float, default 60.0
        Seconds for "certify" (the heuristic is not limited).
    beam_width, pool_size, pool_tolerance, max_swaps, n_rays
        FasterRisk's parent_size (10), select_top_m (50), gap_tolerance (0.05), maxAttempts (50) and
        num_ray_search (20).
    feature_names : list of str, optional

    Attributes
    ----------
    coef_ : array of shape (n_features,), int
        Points per feature (zero for unused features).
    intercept_, scale_ : float
    loss_, objective_ : float
        Mean training logistic loss, and loss + c0 * number of non-zero points.
    pool_ : list of RiskModel
        Near-optimal models with different supports, best objective first.
    certified_ : bool
        Optimality proven (within the solver tolerance ``1e-6`` relative). Always False for "heuristic".
    lower_bound_ : float
        Proven lower bound on the objective (NaN for "heuristic").
    gap_, relative_gap_ : float
        ``objective_ - lower_bound_`` and that divided by ``objective_`` (NaN for "heuristic").
    score_card_ : ScoreCard
    calibration_ : CalibrationResult
        Reliability on the training data; call :meth:`calibration` on held-out data.
    classes_, n_features_in_, feature_names_in_, search_time_
    solver_status_, n_nodes_, n_cuts_, n_tightenings_ : str, int, int, int
        SCIP's final status, branch-and-bound nodes, loss cuts and bounds moved by chained bound
        tightening during the search ("heuristic", 0, 0, 0 for the heuristic).

    References
    ----------
    Liu, Zhong, Li, Seltzer, Rudin. FasterRisk: Fast and Accurate Interpretable Risk Scores. NeurIPS 2022.
    Ustun, Rudin. Learning Optimized Risk Scores. JMLR 20(150), 2019.

    Examples
    --------
    >>> clf = RiskScoreClassifier(k=3).fit(X_binary, y)        # doctest: +SKIP
    >>> print(clf.score_card_)                                  # doctest: +SKIP
    """

    _constraints: ClassVar[dict[str, list]] = {
        "k": [Interval(int, 1, None)],
        "coef_bounds": [tuple, list, dict, np.ndarray],
        "c0": [Interval(float, 0, None)],
        "method": [Options("heuristic", "certify")],
        "scale": [Options("auto"), Interval(float, 0, None, closed="neither")],
        "intercept_bounds": [None, tuple, list],
        "time_limit": [Interval(float, 0, None, closed="neither")],
        "beam_width": [Interval(int, 1, None)],
        "pool_size": [Interval(int, 1, None)],
        "pool_tolerance": [Interval(float, 0, None)],
        "max_swaps": [Interval(int, 0, None)],
        "n_rays": [Interval(int, 1, None)],
        "feature_names": [None, list, tuple, np.ndarray],
    }
    _hints: ClassVar[dict[str, str]] = {"k": "Risk scores typically use 3 to 10 features (5 is common)."}
    _estimator_type = "classifier"

    def __sklearn_tags__(self):
        """scikit-learn >= 1.6 reads estimator tags from here (pipelines, cross_val_score with AUC)."""
        return classifier_tags()

    def __init__(self, k: int = 5, *, coef_bounds: Any = (-5, 5), c0: float = 1e-6, method: str = "heuristic",
                 scale: Any = "auto", intercept_bounds: Any = None, time_limit: float = 60.0, beam_width: int = 10,
                 pool_size: int = 50, pool_tolerance: float = 0.05, max_swaps: int = 50, n_rays: int = 20,
                 feature_names: Any = None) -> None:
        self.k = k
        self.coef_bounds = coef_bounds
        self.c0 = c0
        self.method = method
        self.scale = scale
        self.intercept_bounds = intercept_bounds
        self.time_limit = time_limit
        self.beam_width = beam_width
        self.pool_size = pool_size
        self.pool_tolerance = pool_tolerance
        self.max_swaps = max_swaps
        self.n_rays = n_rays
        self.feature_names = feature_names

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, y: Any) -> RiskScoreClassifier:
        """Fit the score on ``X`` (n_samples, n_features) and binary labels ``y``; returns ``self``."""
        self._validate_params()
        _reject_non_numeric(X)
        Xa = check_array(X, "X", ndim=2, min_samples=2)
        names = _feature_names(X, self.feature_names, Xa.shape[1])
        ya = np.asarray(y).reshape(-1)
        if ya.shape[0] != Xa.shape[0]:
            raise InvalidParameterError(f"y has {ya.shape[0]} labels but X has {Xa.shape[0]} rows; pass one label per row.")
        if ya.dtype.kind == "f" and not np.isfinite(ya).all():
            raise InvalidParameterError("y contains NaN or inf; drop those rows first.")
        classes = np.unique(ya)
        if classes.size != 2:
            raise InvalidParameterError(
                f"y must hold exactly two classes for a risk score; got {classes.size} ({classes[:5].tolist()}). "
                + ("Use data with both outcomes." if classes.size < 2 else "Binarise the outcome (one class vs the rest).")
            )
        p = Xa.shape[1]
        if self.k > p:
            raise InvalidParameterError(f"k={self.k} is larger than the number of features ({p}); use k <= {p}.")
        lb, ub = resolve_bounds(self.coef_bounds, names)
        if np.count_nonzero((lb < 0) | (ub > 0)) == 0:
            raise InvalidParameterError("coef_bounds leave every feature at 0 points; widen at least one range.")
        ys = np.where(ya == classes[1], 1.0, -1.0)
        ib = self._intercept_bounds(Xa, lb, ub)
        scale = None if self.scale == "auto" else float(self.scale)
        start = time.perf_counter()
        pool = heuristic_search(Xa, ys, self.k, lb, ub, float(self.c0), scale, beam_width=self.beam_width,
                                pool_size=self.pool_size, pool_tolerance=float(self.pool_tolerance),
                                max_swaps=self.max_swaps, n_rays=self.n_rays, offset_bounds=ib)
        best = pool[0]
        self.certified_, self.lower_bound_, self.gap_, self.relative_gap_ = False, float("nan"), float("nan"), float("nan")
        self.solver_status_, self.n_nodes_, self.n_cuts_, self.n_tightenings_ = "heuristic", 0, 0, 0
        if self.method == "certify":
            from ._risk_certify import certify

            res = certify(Xa, ys, self.k, lb, ub, float(self.c0), best.scale, ib, pool, float(self.time_limit))
            best = res.model
            if res.model.objective < pool[0].objective - 1e-12:
                pool = [res.model] + pool
            self.certified_, self.lower_bound_ = res.certified, res.lower_bound
            self.gap_ = max(0.0, best.objective - res.lower_bound)
            self.relative_gap_ = self.gap_ / max(best.objective, 1e-300)
            self.solver_status_, self.n_nodes_, self.n_cuts_ = res.status, res.n_nodes, res.n_cuts
            self.n_tightenings_ = res.n_tightenings
            if not res.certified:
                warnings.warn(
                    f"RiskScoreClassifier: certification stopped ({res.status}) before proving optimality; the model "
                    f"is within {self.gap_:.3g} ({100 * self.relative_gap_:.2f}%) of the optimum. Raise time_limit "
                    "to close the gap.", ConvergenceWarning, stacklevel=2)
        self.search_time_ = time.perf_counter() - start
        self.classes_ = classes
        self.n_features_in_ = p
        self.feature_names_in_ = np.asarray(names, dtype=object)
        self.pool_ = pool
        self.coef_ = best.points.copy()
        self.intercept_ = float(best.intercept)
        self.scale_ = float(best.scale)
        self.loss_ = float(best.loss)
        self.objective_ = float(best.objective)
        self._x_range = (Xa.min(axis=0), Xa.max(axis=0))
        self.score_card_ = self._score_card(Xa)
        self.calibration_ = calibration_table(self._risk(Xa), (ys > 0).astype(float))
        return self

    def _intercept_bounds(self, X: np.ndarray, lb: np.ndarray, ub: np.ndarray) -> tuple[float, float]:
        if self.intercept_bounds is not None:
            lo, hi = (float(v) for v in self.intercept_bounds)
            if not lo <= hi:
                raise InvalidParameterError(f"intercept_bounds = {self.intercept_bounds!r} is infeasible: lo > hi.")
            return lo, hi
        reach = np.sort(np.maximum(np.abs(lb * X), np.abs(ub * X)), axis=1)[:, ::-1][:, : self.k].sum(axis=1)
        big = float(reach.max()) + 100.0
        return -big, big

    # ------------------------------------------------------------------ prediction
    def _check_X(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "coef_")
        _reject_non_numeric(X)
        Xa = check_array(X, "X", ndim=2)
        if Xa.shape[1] != self.n_features_in_:
            raise InvalidParameterError(
                f"X has {Xa.shape[1]} features but the score was fitted on {self.n_features_in_}; pass the same columns."
            )
        return Xa

    def score_points(self, X: Any) -> np.ndarray:
        """Total points ``sum_j points_j x_j`` per row (the number a user adds up), shape (n_samples,)."""
        Xa = self._check_X(X)
        return Xa @ self.coef_.astype(np.float64)

    def decision_function(self, X: Any) -> np.ndarray:
        """Log-odds of the positive class, ``(offset + total) / scale``."""
        return (self.score_points(X) + self.intercept_) / self.scale_

    def _risk(self, Xa: np.ndarray) -> np.ndarray:
        z = (Xa @ self.coef_.astype(np.float64) + self.intercept_) / self.scale_
        return 1.0 / (1.0 + np.exp(-z))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probabilities of ``classes_``, shape (n_samples, 2)."""
        r = 1.0 / (1.0 + np.exp(-self.decision_function(X)))
        return np.column_stack([1 - r, r])

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[(self.decision_function(X) > 0).astype(int)]

    def score(self, X: Any, y: Any) -> float:
        """Accuracy (scikit-learn's classifier convention)."""
        return float(np.mean(self.predict(X) == np.asarray(y).reshape(-1)))

    # ------------------------------------------------------------------ explanations
    def _score_card(self, X: np.ndarray) -> ScoreCard:
        nz = np.flatnonzero(self.coef_)
        pts = self.coef_[nz].astype(np.float64)
        lo, hi = self._x_range
        t_lo = float(np.minimum(pts * lo[nz], pts * hi[nz]).sum())
        t_hi = float(np.maximum(pts * lo[nz], pts * hi[nz]).sum())
        integral = np.all(X[:, nz] == np.round(X[:, nz])) if nz.size else True
        if integral and t_hi - t_lo <= 60:
            totals = np.arange(round(t_lo), round(t_hi) + 1, dtype=np.float64)
        else:
            seen = np.unique(X[:, nz] @ pts)
            totals = seen if seen.size <= 40 else np.unique(np.quantile(seen, np.linspace(0, 1, 40)))
        risks = 1.0 / (1.0 + np.exp(-(totals + self.intercept_) / self.scale_))
        return ScoreCard([self.feature_names_in_[j] for j in nz], self.coef_[nz], self.intercept_, self.scale_,
                         totals, risks, params={"k": self.k, "c0": self.c0, "method": self.method})

    def explain_global(self) -> ScoreCard:
        """The score card (a saved/reloadable result with ``plot``)."""
        check_is_fitted(self, "coef_")
        return self.score_card_

    def calibration(self, X: Any, y: Any, n_bins: int | None = None) -> CalibrationResult:
        """Reliability curve and expected calibration error on ``(X, y)`` (held-out data, ideally)."""
        Xa = self._check_X(X)
        ya = np.asarray(y).reshape(-1)
        if ya.shape[0] != Xa.shape[0]:
            raise InvalidParameterError(f"y has {ya.shape[0]} labels but X has {Xa.shape[0]} rows.")
        return calibration_table(self._risk(Xa), (ya == self.classes_[1]).astype(float), n_bins)

    def to_dict(self) -> dict:
        check_is_fitted(self, "coef_")
        return {
            "points": {self.feature_names_in_[j]: int(self.coef_[j]) for j in np.flatnonzero(self.coef_)},
            "intercept": self.intercept_, "scale": self.scale_, "loss": self.loss_, "objective": self.objective_,
            "certified": self.certified_, "lower_bound": self.lower_bound_, "gap": self.gap_,
            "classes": self.classes_.tolist(),
        }

    def __str__(self) -> str:
        if not hasattr(self, "coef_"):
            return repr(self)
        return str(self.score_card_)
