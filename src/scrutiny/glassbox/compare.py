"""compare_models: is a glass box as accurate as the black box? (the lecture's question in one call).

Every model is cross-validated on the same stratified folds; pooled out-of-fold predictions give test accuracy
(Wilson interval) and AUC (DeLong interval), and paired differences against the best black box (by AUC): a
normal interval on the per-sample difference in correctness, and DeLong's paired interval for the AUC difference.
Glass-box models are fitted behind a :class:`ThresholdBinarizer` learned inside each training fold.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from typing import Any, ClassVar

import numpy as np
from scipy.stats import norm

from .._validation import check_array, check_random_state
from ..exceptions import InvalidParameterError
from ..explanation import Result
from .binarize import ThresholdBinarizer

__all__ = ["compare_models", "ModelComparison", "Binarized", "delong"]


class Binarized:
    """``ThresholdBinarizer`` then ``estimator``, refitted together (thresholds from the training fold only)."""

    def __init__(self, estimator: Any, n_thresholds: int = 9, categorical_features: Any = None) -> None:
        self.estimator = estimator
        self.n_thresholds = n_thresholds
        self.categorical_features = categorical_features

    def __sklearn_tags__(self):
        from .risk_score import classifier_tags

        return classifier_tags()

    def get_params(self, deep: bool = True) -> dict:
        return {"estimator": self.estimator, "n_thresholds": self.n_thresholds,
                "categorical_features": self.categorical_features}

    def set_params(self, **params: Any) -> Binarized:
        for k, v in params.items():
            setattr(self, k, v)
        return self

    def fit(self, X: Any, y: Any) -> Binarized:
        from sklearn.base import clone

        self.binarizer_ = ThresholdBinarizer(self.n_thresholds, categorical_features=self.categorical_features).fit(X)
        self.estimator_ = clone(self.estimator).fit(self.binarizer_.transform(X), y)
        self.classes_ = self.estimator_.classes_
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.estimator_.predict_proba(self.binarizer_.transform(X))


def _size(model: Any) -> float:
    est = getattr(model, "estimator_", model)
    if hasattr(est, "rules_") and not isinstance(est, ThresholdBinarizer):
        return float(len(est.rules_))
    if hasattr(est, "coef_") and type(est).__name__ == "RiskScoreClassifier":
        return float(np.count_nonzero(est.coef_))
    return float("nan")


def delong(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs of each row of ``scores`` (n_models, n) and their covariance (DeLong, DeLong & Clarke-Pearson 1988)."""
    pos, neg = scores[:, y == 1], scores[:, y == 0]
    m, n = pos.shape[1], neg.shape[1]
    from scipy.stats import rankdata

    aucs, v10, v01 = [], [], []
    for s_pos, s_neg in zip(pos, neg):
        all_rank = rankdata(np.concatenate([s_pos, s_neg]))
        r_pos, r_neg = rankdata(s_pos), rankdata(s_neg)
        auc = (all_rank[:m].sum() - m * (m + 1) / 2) / (m * n)
        v10.append((all_rank[:m] - r_pos) / n)
        v01.append(1.0 - (all_rank[m:] - r_neg) / m)
        aucs.append(auc)
    v10, v01 = np.array(v10), np.array(v01)
    cov = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    return np.array(aucs), cov


def _wilson(k: float, n: int, z: float) -> tuple[float, float]:
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return float(c - h), float(c + h)


@dataclasses.dataclass(frozen=True, eq=False)
class ModelComparison(Result):
    """Cross-validated accuracy and AUC of several models, with intervals and paired differences.

    Arrays are per model (first axis), in ``models`` order; ``reference`` is the best black box by AUC, against
    which ``*_diff`` (model minus reference) and their intervals are computed.
    """

    models: list
    kinds: list
    accuracy: np.ndarray
    accuracy_ci: np.ndarray
    auc: np.ndarray
    auc_ci: np.ndarray
    accuracy_diff: np.ndarray
    accuracy_diff_ci: np.ndarray
    auc_diff: np.ndarray
    auc_diff_ci: np.ndarray
    size: np.ndarray
    fit_time: np.ndarray
    fold_accuracy: np.ndarray
    fold_auc: np.ndarray
    reference: str
    params: dict = dataclasses.field(default_factory=dict)
    extras: dict = dataclasses.field(default_factory=dict)

    _ARRAYS: ClassVar[tuple[str, ...]] = ("accuracy", "accuracy_ci", "auc", "auc_ci", "accuracy_diff",
                                          "accuracy_diff_ci", "auc_diff", "auc_diff_ci", "size", "fit_time",
                                          "fold_accuracy", "fold_auc")

    def conclusion(self) -> list[str]:
        """One plain sentence per glass-box model: within the reference's interval, or not."""
        ref = self.models.index(self.reference) if self.reference in self.models else None
        out = []
        for i, (name, kind) in enumerate(zip(self.models, self.kinds)):
            if kind != "glass box" or ref is None:
                continue
            lo, hi = self.auc_diff_ci[i]
            inside = self.auc_ci[ref, 0] <= self.auc[i] <= self.auc_ci[ref, 1]
            if hi < 0:
                verdict = "is significantly worse than"
            elif lo > 0:
                verdict = "is significantly better than"
            else:
                verdict = "is statistically indistinguishable from"
            out.append(
                f"{name} (size {self.size[i]:g}) {verdict} {self.reference} in AUC: {self.auc[i]:.3f} vs "
                f"{self.auc[ref]:.3f}, difference {self.auc_diff[i]:+.3f} [{lo:+.3f}, {hi:+.3f}]; its AUC is "
                f"{'inside' if inside else 'outside'} the black box's interval; accuracy difference "
                f"{self.accuracy_diff[i]:+.3f} [{self.accuracy_diff_ci[i, 0]:+.3f}, {self.accuracy_diff_ci[i, 1]:+.3f}]."
            )
        return out

    def __str__(self) -> str:
        w = max(len(m) for m in self.models)
        lines = [f"{'model':<{w}}  {'kind':<9}  {'accuracy [95% CI]':<22}  {'AUC [95% CI]':<22}  size  fit s"]
        for i, m in enumerate(self.models):
            size = "-" if np.isnan(self.size[i]) else f"{self.size[i]:g}"
            lines.append(
                f"{m:<{w}}  {self.kinds[i]:<9}  {self.accuracy[i]:.3f} [{self.accuracy_ci[i, 0]:.3f}, "
                f"{self.accuracy_ci[i, 1]:.3f}]    {self.auc[i]:.3f} [{self.auc_ci[i, 0]:.3f}, "
                f"{self.auc_ci[i, 1]:.3f}]    {size:>4}  {self.fit_time[i]:.1f}"
            )
        return "\n".join(lines + [""] + self.conclusion())


def _default_models(random_state: int, categorical_features: Any) -> dict[str, tuple[Any, str]]:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from .risk_score import RiskScoreClassifier

    models: dict[str, tuple[Any, str]] = {}
    try:
        from .rule_list import RuleListClassifier  # built in parallel; optional here

        rl = RuleListClassifier()
        if "time_limit" in rl.get_params():
            rl.set_params(time_limit=60.0)
        models["rule list"] = (Binarized(rl, categorical_features=categorical_features), "glass box")
    except ImportError:
        pass
    models["risk score"] = (Binarized(RiskScoreClassifier(5), categorical_features=categorical_features), "glass box")
    models["logistic regression"] = (make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)), "black box")
    models["gradient boosting"] = (HistGradientBoostingClassifier(random_state=random_state), "black box")
    models["MLP"] = (make_pipeline(StandardScaler(), MLPClassifier((64,), max_iter=300, early_stopping=True,
                                                                  random_state=random_state)), "black box")
    return models


def compare_models(X: Any, y: Any, models: dict | None = None, cv: int = 5, *, categorical_features: Any = None,
                   level: float = 0.95, random_state: int = 0) -> ModelComparison:
    """Cross-validate glass-box and black-box models side by side.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,), two classes
    models : dict, optional
        ``name -> estimator`` or ``name -> (estimator, "glass box" | "black box")``; estimators need ``fit`` and
        ``predict_proba`` and are cloned per fold. Default: the rule list (when available) and a 5-feature risk
        score (both behind a training-fold binariser), logistic regression, gradient boosting and an MLP.
    cv : int, default 5
        Stratified folds (shuffled with ``random_state``).
    categorical_features : list, optional
        Passed to the binariser of the default glass-box models.
    level : float, default 0.95
    random_state : int
        Fold split and the seeds of the default black boxes.

    Returns
    -------
    ModelComparison
        Saves and reloads with ``load_result``; ``print`` shows the table and the conclusion.
    """
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold

    ya = np.asarray(y).reshape(-1)
    classes = np.unique(ya)
    if classes.size != 2:
        raise InvalidParameterError(f"y must hold exactly two classes; got {classes.size}.")
    n = ya.shape[0]
    if not isinstance(cv, (int, np.integer)) or cv < 2:
        raise InvalidParameterError(f"cv must be an int >= 2; got {cv!r}. 5 is typical.")
    if np.min(np.bincount((ya == classes[1]).astype(int))) < cv:
        raise InvalidParameterError(f"every class needs at least cv={cv} samples; lower cv.")
    if hasattr(X, "iloc"):
        Xa = X
    else:
        Xa = check_array(X, "X", ndim=2, min_samples=2)
    if models is None:
        spec = _default_models(random_state, categorical_features)
    else:
        spec = {str(k): (v if isinstance(v, tuple) else (v, "glass box" if _is_glass(v) else "black box"))
                for k, v in models.items()}
    y01 = (ya == classes[1]).astype(int)
    folds = list(StratifiedKFold(cv, shuffle=True, random_state=check_random_state(random_state).integers(2**31))
                 .split(np.zeros(n), y01))
    fold_of = np.empty(n, dtype=np.int64)
    for i, (_, te) in enumerate(folds):
        fold_of[te] = i
    names, kinds, oof, sizes, times, f_acc, f_auc = [], [], [], [], [], [], []
    from sklearn.metrics import roc_auc_score

    for name, (est, kind) in spec.items():
        proba = np.empty(n)
        sz, t0, accs, aucs = [], time.perf_counter(), [], []
        for tr, te in folds:
            sub = (lambda idx: Xa.iloc[idx]) if hasattr(Xa, "iloc") else (lambda idx: Xa[idx])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fitted = clone(est).fit(sub(tr), ya[tr])
            cls = list(fitted.classes_)
            proba[te] = fitted.predict_proba(sub(te))[:, cls.index(classes[1])]
            sz.append(_size(fitted))
            accs.append(np.mean((proba[te] > 0.5) == y01[te]))
            aucs.append(roc_auc_score(y01[te], proba[te]))
        names.append(name)
        kinds.append(kind)
        oof.append(proba)
        sizes.append(float(np.mean(sz)))
        times.append((time.perf_counter() - t0) / cv)
        f_acc.append(accs)
        f_auc.append(aucs)
    oof = np.array(oof)
    z = float(norm.ppf(0.5 + level / 2))
    correct = ((oof > 0.5) == y01[None, :]).astype(float)
    acc = correct.mean(1)
    acc_ci = np.array([_wilson(c.sum(), n, z) for c in correct])
    aucs, cov = delong(y01, oof)
    auc_ci = np.column_stack([aucs - z * np.sqrt(np.diag(cov)), aucs + z * np.sqrt(np.diag(cov))]).clip(0, 1)
    black = [i for i, k in enumerate(kinds) if k == "black box"]
    ref = max(black, key=lambda i: aucs[i]) if black else int(np.argmax(aucs))
    d_acc = correct - correct[ref]
    acc_diff = d_acc.mean(1)
    se = d_acc.std(1, ddof=1) / np.sqrt(n)
    auc_diff = aucs - aucs[ref]
    se_auc = np.sqrt(np.maximum(np.diag(cov) + cov[ref, ref] - 2 * cov[:, ref], 0.0))
    return ModelComparison(
        names, kinds, acc, acc_ci, aucs, auc_ci, acc_diff, np.column_stack([acc_diff - z * se, acc_diff + z * se]),
        auc_diff, np.column_stack([auc_diff - z * se_auc, auc_diff + z * se_auc]), np.array(sizes), np.array(times),
        np.array(f_acc), np.array(f_auc), names[ref],
        params={"cv": int(cv), "level": float(level), "random_state": int(random_state), "n_samples": int(n),
                "classes": [str(c) for c in classes]},
        extras={"fold": fold_of, **({"rule_list_available": "rule list" in names} if models is None else {})},
    )


def _is_glass(est: Any) -> bool:
    inner = getattr(est, "estimator", est)
    return type(inner).__name__ in {"RiskScoreClassifier", "RuleListClassifier"}
