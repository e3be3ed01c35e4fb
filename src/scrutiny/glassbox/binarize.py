"""ThresholdBinarizer: binary features for glass-box models, with thresholds learned from the training fold only.

Each numeric column with more than two distinct values becomes ``x <= t`` indicators at quantile thresholds of the
data given to ``fit``; a two-valued column becomes one indicator (``x == larger value``); a column declared
categorical becomes one indicator per category seen in ``fit`` (unseen categories map to all zeros). Put it in a
scikit-learn ``Pipeline`` in front of the classifier, so that cross-validation re-learns the thresholds inside
each training fold and no test value leaks into them.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from .._validation import Interval, ParamsMixin, check_is_fitted
from ..exceptions import InvalidParameterError

__all__ = ["ThresholdBinarizer"]


def _columns(X: Any) -> tuple[list, list[str]]:
    """Columns as 1-D arrays (pandas keeps per-column dtypes) and their names."""
    if hasattr(X, "columns") and hasattr(X, "iloc"):
        return [X.iloc[:, j].to_numpy() for j in range(X.shape[1])], [str(c) for c in X.columns]
    arr = np.asarray(X)
    if arr.ndim != 2:
        raise InvalidParameterError(f"X must be 2-D (n_samples, n_features); got shape {arr.shape}.")
    return [arr[:, j] for j in range(arr.shape[1])], [f"x{j}" for j in range(arr.shape[1])]


class ThresholdBinarizer(ParamsMixin):
    """Binarise numeric and categorical columns with thresholds learned in ``fit``.

    Parameters
    ----------
    n_thresholds : int, default 9
        Quantile thresholds per numeric column (at levels 1/(n+1) .. n/(n+1) of the training values; duplicates
        and thresholds that leave one side empty are dropped).
    categorical_features : list of int or str, optional
        Columns (positions or names) to one-hot encode. Non-numeric columns must be listed here.
    feature_names : list of str, optional
        Names of the input columns (default: DataFrame columns or x0, x1, ...).

    Attributes
    ----------
    rules_ : list of (column, kind, value)
        ``kind`` is ``"<="`` (threshold), ``"=="`` (category or the larger of two values).
    feature_names_out_ : list of str
    n_features_in_ : int
    """

    _constraints: ClassVar[dict[str, list]] = {
        "n_thresholds": [Interval(int, 1, None)],
        "categorical_features": [None, list, tuple],
        "feature_names": [None, list, tuple, np.ndarray],
    }

    def __init__(self, n_thresholds: int = 9, *, categorical_features: Any = None, feature_names: Any = None) -> None:
        self.n_thresholds = n_thresholds
        self.categorical_features = categorical_features
        self.feature_names = feature_names

    def __sklearn_tags__(self):
        """scikit-learn >= 1.6 reads estimator tags from here (pipelines)."""
        from sklearn.utils import InputTags, Tags, TargetTags, TransformerTags

        return Tags(estimator_type=None, target_tags=TargetTags(required=False), transformer_tags=TransformerTags(),
                    input_tags=InputTags(categorical=True, string=True, allow_nan=False))

    def fit(self, X: Any, y: Any = None) -> ThresholdBinarizer:
        self._validate_params()
        cols, names = _columns(X)
        if self.feature_names is not None:
            if len(self.feature_names) != len(cols):
                raise InvalidParameterError(
                    f"feature_names has {len(self.feature_names)} names but X has {len(cols)} columns."
                )
            names = [str(n) for n in self.feature_names]
        if not cols or len(cols[0]) < 2:
            raise InvalidParameterError("X must have at least one column and 2 rows to learn thresholds.")
        cat = set()
        for c in self.categorical_features or []:
            if isinstance(c, (int, np.integer)) and 0 <= int(c) < len(cols):
                cat.add(int(c))
            elif str(c) in names:
                cat.add(names.index(str(c)))
            else:
                raise InvalidParameterError(f"categorical_features names {c!r}, which is not a column of X ({names}).")
        rules: list = []
        levels = np.arange(1, self.n_thresholds + 1) / (self.n_thresholds + 1)
        for j, col in enumerate(cols):
            if j in cat:
                values = np.asarray(col, dtype=object)
                if any(v is None or (isinstance(v, float) and np.isnan(v)) for v in values):
                    raise InvalidParameterError(f"column {names[j]!r} has missing values; impute them first.")
                for v in sorted(set(values.tolist()), key=str):
                    rules.append((j, "==", v))
                continue
            try:
                num = np.asarray(col, dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise InvalidParameterError(
                    f"column {names[j]!r} is not numeric; declare it categorical: "
                    f"ThresholdBinarizer(categorical_features=[{names[j]!r}])."
                ) from exc
            if not np.isfinite(num).all():
                raise InvalidParameterError(f"column {names[j]!r} has NaN or inf values; impute or drop them first.")
            distinct = np.unique(num)
            if distinct.size == 1:
                continue
            if distinct.size == 2:
                rules.append((j, "==", float(distinct[1])))
                continue
            thresholds = np.unique(np.quantile(num, levels, method="lower"))
            for t in thresholds:
                if (num <= t).all() or not (num <= t).any():
                    continue
                rules.append((j, "<=", float(t)))
        self.rules_ = rules
        self.n_features_in_ = len(cols)
        self._names_in = names
        self.feature_names_out_ = [self._rule_name(r) for r in rules]
        return self

    def _rule_name(self, rule) -> str:
        j, kind, v = rule
        if kind == "<=":
            return f"{self._names_in[j]}<={v:g}"
        return f"{self._names_in[j]}=={v:g}" if isinstance(v, float) else f"{self._names_in[j]}=={v}"

    def transform(self, X: Any) -> np.ndarray:
        """Indicators of shape (n_samples, len(rules_)), float64 0/1."""
        check_is_fitted(self, "rules_")
        cols, _ = _columns(X)
        if len(cols) != self.n_features_in_:
            raise InvalidParameterError(
                f"X has {len(cols)} columns but the binarizer was fitted on {self.n_features_in_}."
            )
        n = len(cols[0])
        out = np.zeros((n, len(self.rules_)))
        for i, (j, kind, v) in enumerate(self.rules_):
            if kind == "<=":
                num = np.asarray(cols[j], dtype=np.float64)
                if not np.isfinite(num).all():
                    raise InvalidParameterError(f"column {self._names_in[j]!r} has NaN or inf values.")
                out[:, i] = num <= v
            else:
                col = cols[j]
                out[:, i] = np.asarray([c == v for c in col], dtype=bool) if isinstance(v, str) or np.asarray(
                    col).dtype == object else (np.asarray(col) == v)
        return out

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        return self.fit(X, y).transform(X)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "rules_")
        return np.asarray(self.feature_names_out_, dtype=object)
