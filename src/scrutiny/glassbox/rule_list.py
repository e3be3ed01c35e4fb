"""Certifiably optimal rule lists: :class:`RuleListClassifier` (the CORELS objective and bounds).

A rule list ``if a1 then c1 else if a2 then c2 ... else c0`` is chosen among every ordering of
the mined antecedents to minimise ``misclassification + regularization * (number of rules)``.
The search (``_corels_search.py``) is exact: when ``certified_`` is true no other list within
``max_length`` has a lower objective; when a limit stops it, ``gap_`` says how far from proven
the returned list is.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any, NamedTuple

import numpy as np

from .._validation import Interval, Options, ParamsMixin, _describe, check_is_fitted, check_random_state
from ..exceptions import ConvergenceWarning, InvalidParameterError
from . import _antecedents
from ._corels import BOUNDS, MAP_TYPES, POLICIES, search

__all__ = ["RuleListClassifier", "Rule"]


class Rule(NamedTuple):
    """One rule of a fitted list; the last rule of ``rules_`` is the default (``condition == "else"``)."""

    condition: str  # readable antecedent, "else" for the default rule
    antecedent: int  # index into ``antecedents_``; -1 for the default rule
    prediction: Any  # the predicted class label
    proba: np.ndarray  # (n_classes,) class frequencies of the training rows it captures, Laplace-smoothed
    counts: np.ndarray  # (n_classes,) training weight per class among the rows it captures


def _column_list(X: Any, feature_names: Any, n_features: int | None) -> tuple[list, list, np.ndarray]:
    """Columns of X as 1-D arrays, their names, and which columns are pandas categoricals."""
    if hasattr(X, "columns") and hasattr(X, "iloc"):  # pandas DataFrame, without importing pandas
        names = [str(c) for c in X.columns]
        cols = [np.asarray(X.iloc[:, j].to_numpy()) for j in range(X.shape[1])]
        is_cat = np.array([str(X.dtypes.iloc[j]) == "category" for j in range(X.shape[1])], dtype=bool)
        if any(is_cat):
            cols = [np.asarray(c, dtype=object) if k else c for c, k in zip(cols, is_cat)]
    else:
        arr = np.asarray(X)
        if arr.ndim != 2:
            raise InvalidParameterError(
                f"X must be a 2-D array-like of shape (n_samples, n_features); got {_describe(arr)}. "
                "Reshape a single sample with X.reshape(1, -1)."
            )
        cols = [arr[:, j] for j in range(arr.shape[1])]
        names = [f"x{j}" for j in range(arr.shape[1])]
        is_cat = np.zeros(arr.shape[1], dtype=bool)
    if feature_names is not None:
        names = [str(n) for n in feature_names]
        if len(names) != len(cols):
            raise InvalidParameterError(
                f"feature_names has {len(names)} names but X has {len(cols)} columns; give one name per column."
            )
    if n_features is not None and len(cols) != n_features:
        raise InvalidParameterError(
            f"X has {len(cols)} columns but the rule list was fitted on {n_features}; pass the same columns as in fit."
        )
    if not cols or len(cols[0]) == 0:
        raise InvalidParameterError(f"X must have at least one row and one column; got {len(cols)} column(s).")
    return cols, names, is_cat


class RuleListClassifier(ParamsMixin):
    """Certifiably optimal rule list (CORELS), with multiclass labels, weights and probabilities.

    Minimises ``R(d) = misclassification(d) + regularization * len(d)`` over rule lists built
    from mined antecedents, by best-first branch and bound with CORELS's bounds
    (hierarchical lower bound, one-step lookahead, both minimum-support bounds, the
    equivalent-points bound and the symmetry-aware map) on bit vectors, compiled with numba.

    Parameters
    ----------
    regularization : float, default 0.01
        The accuracy one rule must buy (CORELS's ``c``): 0.01 means each rule must fix 1 % of
        the training weight. Smaller values give longer lists and slower searches.
    policy : {"lower_bound", "curiosity", "objective", "bfs", "dfs"}, default "lower_bound"
        Order in which queued prefixes are expanded (CORELS's policies). The result is the same
        optimum; only the time to find and certify it changes.
    map_type : {"captured", "prefix", "none"}, default "captured"
        Symmetry-aware map: keyed by the not-captured sample set (the stronger key: it also merges
        different antecedent sets that capture the same rows), by the antecedent set (CORELS's
        prefix-permutation map), or none. ``benchmarks/glassbox.py --maps`` compares them.
    antecedents : {"mine", "given"}, default "mine"
        ``"mine"``: conditions on each column (see ``max_card``, ``min_support``,
        ``n_thresholds``, ``categorical_features``). ``"given"``: every column of X is already a
        0/1 antecedent (e.g. from :func:`scrutiny.data.read_corels`).
    max_card : int, default 2
        Largest number of conditions in a mined conjunction.
    min_support, max_support : float, default 0.01 and None (= 1 - min_support)
        Fraction of training rows a mined antecedent must cover.
    n_thresholds : int, default 8
        Quantile thresholds per continuous column (each gives ``x <= t`` and ``x > t``).
    categorical_features : sequence of int or str, or bool mask, optional
        Columns mined as one-hot levels; non-numeric columns must be listed here (pandas
        ``category`` columns are categorical automatically).
    feature_names : sequence of str, optional
        Column names for the printed rules (default: DataFrame columns, else ``x0, x1, ...``).
    max_length : int, optional
        Longest list considered; ``certified_`` then means optimal among lists this long.
    time_limit : float, optional
        Seconds; the search stops and returns the best list found, uncertified, with ``gap_``.
    node_limit : int, optional
        Largest number of prefixes inserted into the search trie.
    memory_limit : float or None, default 2048.0
        MiB the search state may use (None: no limit). Hard problems (many continuous thresholds,
        small ``regularization``) can otherwise fill the memory before the queue empties.
    ablation : tuple of str, default ()
        Bounds to switch off, among ``"lookahead"``, ``"support"``, ``"accurate_support"``,
        ``"equivalent_points"``, ``"symmetry"`` (for studies; the optimum does not change).
    prior : float, default 1.0
        Laplace prior added to each class count in :meth:`predict_proba`.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    rules_ : list of :class:`Rule`, the prefix then the default rule.
    objective_ : float, ``R(d)`` of the fitted list on the training data.
    lower_bound_ : float, no rule list has a smaller objective.
    gap_ : float, ``objective_ - lower_bound_`` (0 when certified).
    certified_ : bool, the search proved the list optimal.
    stop_reason_ : str, ``"optimal"``, ``"time_limit"``, ``"node_limit"`` or ``"memory_limit"``.
    n_nodes_, n_evaluated_ : int, prefixes inserted into the trie / whose objective was computed.
    search_time_ : float, seconds.
    antecedents_ : list of tuples of :class:`~scrutiny.glassbox._antecedents.Condition`.
    antecedent_names_ : list of str.

    References
    ----------
    Angelino, Larus-Stone, Alabi, Seltzer, Rudin. Learning certifiably optimal rule lists for
    categorical data. JMLR 18(234), 2018.

    Examples
    --------
    >>> from scrutiny.glassbox import RuleListClassifier
    >>> clf = RuleListClassifier(regularization=0.01).fit(X, y)      # doctest: +SKIP
    >>> print(clf)                                                    # doctest: +SKIP
    """

    _constraints = {
        "regularization": [Interval(float, 0.0, None, closed="left")],
        "policy": [Options(*POLICIES)],
        "map_type": [Options(*MAP_TYPES)],
        "antecedents": [Options("mine", "given")],
        "max_card": [Interval(int, 1, 4)],
        "min_support": [Interval(float, 0.0, 0.5, closed="left")],
        "max_support": [Interval(float, 0.0, 1.0, closed="right"), None],
        "n_thresholds": [Interval(int, 1, None)],
        "categorical_features": ["array-like", None],
        "feature_names": ["array-like", None],
        "max_length": [Interval(int, 0, None), None],
        "time_limit": [Interval(float, 0.0, None, closed="neither"), None],
        "node_limit": [Interval(int, 1, None), None],
        "memory_limit": [Interval(float, 0.0, None, closed="neither"), None],
        "ablation": [tuple, list],
        "prior": [Interval(float, 0.0, None)],
    }
    _hints = {
        "regularization": "CORELS's default is 0.01; 0.005 gives longer lists.",
        "max_card": "2 (pairs) is CORELS's default; 3 multiplies the antecedent count.",
    }

    def __init__(self, regularization=0.01, *, policy="lower_bound", map_type="captured", antecedents="mine",
                 max_card=2, min_support=0.01, max_support=None, n_thresholds=8, categorical_features=None,
                 feature_names=None, max_length=None, time_limit=None, node_limit=None, memory_limit=2048.0,
                 ablation=(), prior=1.0):
        self.regularization = regularization
        self.policy = policy
        self.map_type = map_type
        self.antecedents = antecedents
        self.max_card = max_card
        self.min_support = min_support
        self.max_support = max_support
        self.n_thresholds = n_thresholds
        self.categorical_features = categorical_features
        self.feature_names = feature_names
        self.max_length = max_length
        self.time_limit = time_limit
        self.node_limit = node_limit
        self.memory_limit = memory_limit
        self.ablation = ablation
        self.prior = prior

    def __sklearn_tags__(self):
        from sklearn.utils import ClassifierTags, Tags, TargetTags

        return Tags(estimator_type="classifier", target_tags=TargetTags(required=True), classifier_tags=ClassifierTags())

    # ------------------------------------------------------------------ fitting

    def _check_params(self) -> None:
        self._validate_params()
        unknown = [a for a in self.ablation if a not in BOUNDS]
        if unknown:
            raise InvalidParameterError(
                f"RuleListClassifier: ablation entries must be among {', '.join(BOUNDS)}; got {unknown[0]!r}."
            )
        if self.max_support is not None and self.max_support < self.min_support:
            raise InvalidParameterError(
                f"RuleListClassifier: max_support ({self.max_support}) must be >= min_support ({self.min_support}); "
                "lower min_support or raise max_support."
            )

    def _categorical_mask(self, names: list, is_cat: np.ndarray) -> np.ndarray:
        mask = is_cat.copy()
        spec = self.categorical_features
        if spec is None:
            return mask
        spec = list(np.asarray(spec).ravel()) if not isinstance(spec, (list, tuple)) else list(spec)
        if spec and all(isinstance(s, (bool, np.bool_)) for s in spec):
            if len(spec) != len(names):
                raise InvalidParameterError(
                    f"categorical_features as a mask needs {len(names)} entries (one per column); got {len(spec)}."
                )
            return mask | np.asarray(spec, dtype=bool)
        for s in spec:
            if isinstance(s, str):
                if s not in names:
                    raise InvalidParameterError(
                        f"categorical_features names {s!r}, which is not a column; columns are {names[:10]}."
                    )
                mask[names.index(s)] = True
            elif isinstance(s, (numbers.Integral, np.integer)) and -len(names) <= int(s) < len(names):
                mask[int(s)] = True
            else:
                raise InvalidParameterError(
                    f"categorical_features entries must be column indices in [0, {len(names)}) or names; got {s!r}."
                )
        return mask

    def _prepare_columns(self, cols: list, names: list, categorical: np.ndarray) -> list:
        out = []
        for j, col in enumerate(cols):
            if categorical[j]:
                col = np.asarray(col, dtype=object)
                if any(v is None or (isinstance(v, float) and np.isnan(v)) for v in col):
                    raise InvalidParameterError(
                        f"column {names[j]!r} (categorical) has missing values; fill them, e.g. with a 'missing' level."
                    )
                out.append(col)
                continue
            x = _antecedents._as_float(np.asarray(col))
            if x is None:
                raise InvalidParameterError(
                    f"column {names[j]!r} is not numeric (e.g. {col[0]!r}); declare it in categorical_features=[...] "
                    "or encode it as numbers."
                )
            if not np.all(np.isfinite(x)):
                raise InvalidParameterError(
                    f"column {names[j]!r} has NaN or infinite values; impute them before fitting a rule list."
                )
            out.append(x)
        return out

    def fit(self, X, y, sample_weight=None):
        """Find the optimal rule list for ``X`` (n_samples, n_features) and labels ``y`` (n_samples,).

        ``sample_weight`` (n_samples,), optional, non-negative: the misclassification term becomes
        the weighted error rate. Returns ``self``.
        """
        self._check_params()
        cols, names, is_cat = _column_list(X, self.feature_names, None)
        n = len(cols[0])
        y = np.asarray(y)
        if y.ndim != 1 or y.shape[0] != n:
            raise InvalidParameterError(f"y must be 1-D with one label per row of X ({n}); got {_describe(y)}.")
        if n < 2:
            raise InvalidParameterError(f"RuleListClassifier needs at least 2 samples; got {n}.")
        if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
            raise InvalidParameterError("y has NaN or infinite labels; drop those rows or give them a class.")
        classes, y_idx = np.unique(y, return_inverse=True)
        if classes.size < 2:
            raise InvalidParameterError(
                f"y has a single class ({classes[0]!r}); a classifier needs at least two. Check the labels."
            )
        if sample_weight is None:
            w = np.ones(n)
        else:
            w = np.asarray(sample_weight, dtype=np.float64)
            if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
                raise InvalidParameterError(
                    f"sample_weight must be {n} finite non-negative numbers with a positive sum; got {_describe(w)}."
                )
        categorical = self._categorical_mask(names, is_cat)
        columns = self._prepare_columns(cols, names, categorical)
        if self.antecedents == "given":
            bad = [names[j] for j, c in enumerate(columns) if categorical[j] or not np.all(np.isin(c, (0.0, 1.0)))]
            if bad:
                raise InvalidParameterError(
                    f"antecedents='given' needs 0/1 columns; column {bad[0]!r} is not. Use antecedents='mine' to mine "
                    "conditions from raw columns."
                )
            ants = [(_antecedents.Condition(j, "==", 1),) for j in range(len(columns))]
            B = np.column_stack([c == 1.0 for c in columns])
            binary = np.ones(len(columns), dtype=bool)
        else:
            max_support = 1.0 - self.min_support if self.max_support is None else self.max_support
            ants, B, binary = _antecedents.mine(
                columns, categorical, max_card=self.max_card, min_support=self.min_support,
                max_support=max_support, n_thresholds=self.n_thresholds,
            )
        res = search(
            B, y_idx, w, classes.size, float(self.regularization), policy=self.policy, map_type=self.map_type,
            ablation=tuple(self.ablation), max_length=self.max_length, time_limit=self.time_limit,
            node_limit=self.node_limit, memory_limit=self.memory_limit,
        )
        self.classes_ = classes
        self.n_features_in_ = len(columns)
        self.feature_names_in_ = np.asarray(names, dtype=object)
        self.categorical_ = categorical
        self.antecedents_ = ants
        self._binary = binary
        self.antecedent_names_ = [_antecedents.describe(a, names, binary) for a in ants]
        self.rules_ = self._build_rules(res.rules, B, y_idx, w)
        self.rule_indices_ = list(res.rules)
        self.objective_ = res.objective
        self.lower_bound_ = min(res.lower_bound, res.objective)
        self.gap_ = res.objective - self.lower_bound_
        self.certified_ = res.certified
        self.stop_reason_ = res.stop_reason
        self.n_nodes_ = res.n_nodes
        self.n_evaluated_ = res.n_evaluated
        self.search_time_ = res.search_time
        if not res.certified:
            warnings.warn(
                f"RuleListClassifier stopped at its {res.stop_reason.replace('_', ' ')} before proving optimality: "
                f"objective {res.objective:.6g}, lower bound {self.lower_bound_:.6g}, gap {self.gap_:.3g}. The list "
                "is the best found, not certified; raise the limit or the regularization to certify.",
                ConvergenceWarning, stacklevel=2,
            )
        return self

    def _build_rules(self, indices: list, B: np.ndarray, y_idx: np.ndarray, w: np.ndarray) -> list:
        k = self.classes_.size
        left = np.ones(B.shape[0], dtype=bool)
        rules = []
        for j in list(indices) + [-1]:
            cap = left & B[:, j] if j >= 0 else left
            counts = np.bincount(y_idx[cap], weights=w[cap], minlength=k)
            proba = (counts + self.prior) / (counts.sum() + k * self.prior) if counts.sum() + k * self.prior > 0 \
                else np.full(k, 1.0 / k)
            cond = self.antecedent_names_[j] if j >= 0 else "else"
            rules.append(Rule(cond, int(j), self.classes_[int(np.argmax(counts))], proba, counts))
            left &= ~cap
        return rules

    # ------------------------------------------------------------------ prediction

    def apply(self, X) -> np.ndarray:
        """Index into ``rules_`` of the rule that decides each row (the default rule is the last)."""
        check_is_fitted(self, "rules_")
        cols, _, _ = _column_list(X, None, self.n_features_in_)
        columns = self._prepare_columns(cols, list(self.feature_names_in_), self.categorical_)
        prefix = [self.antecedents_[r.antecedent] for r in self.rules_[:-1]]
        out = np.full(len(columns[0]), len(prefix), dtype=np.int64)
        if prefix:
            fires = _antecedents.evaluate(prefix, columns)
            any_fire = fires.any(axis=1)
            out[any_fire] = np.argmax(fires[any_fire], axis=1)
        return out

    def predict(self, X) -> np.ndarray:
        """Predicted class label per row of ``X``."""
        labels = np.array([r.prediction for r in self.rules_], dtype=self.classes_.dtype)
        return labels[self.apply(X)]

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (n_samples, n_classes): the deciding rule's Laplace-smoothed training frequencies."""
        table = np.array([r.proba for r in self.rules_])
        return table[self.apply(X)]

    def score(self, X, y, sample_weight=None) -> float:
        """Weighted accuracy on ``(X, y)``."""
        hit = (self.predict(X) == np.asarray(y)).astype(float)
        return float(np.average(hit, weights=sample_weight))

    # ------------------------------------------------------------------ surrogate of a black box

    def from_model(self, black_box, X, *, X_holdout=None, holdout=0.25, random_state=None):
        """Fit the list to a black box's predicted classes and measure its fidelity.

        Parameters
        ----------
        black_box : fitted scikit-learn classifier, torch module or callable
            Anything :func:`scrutiny.models.as_model` accepts; its predicted class is the label.
        X : array-like of shape (n_samples, n_features)
            Rows to imitate the black box on.
        X_holdout : array-like, optional
            Rows on which ``fidelity_`` is measured. By default a random ``holdout`` fraction of
            ``X`` is held out of the fit (its positions are in ``holdout_indices_``).
        holdout : float, default 0.25
        random_state : int, Generator or None

        Sets ``fidelity_``: the fraction of held-out rows where the list and the black box agree.
        Returns ``self``.
        """
        from ..models import as_model

        if not (isinstance(holdout, numbers.Real) and 0.0 < holdout < 1.0):
            raise InvalidParameterError(f"holdout must be a float in (0, 1); got {holdout!r}. 0.25 is typical.")
        model = as_model(black_box)
        classes = getattr(model, "classes_", None)

        def labels(rows):
            idx = model.predict_class(np.asarray(rows, dtype=np.float64))
            return np.asarray(classes)[idx] if classes is not None else idx

        X_arr = np.asarray(X)
        if X_holdout is None:
            n = X_arr.shape[0]
            perm = check_random_state(random_state).permutation(n)
            n_hold = max(1, int(round(holdout * n)))
            hold, train = np.sort(perm[:n_hold]), np.sort(perm[n_hold:])
            X_fit, X_hold = X_arr[train], X_arr[hold]
            self.holdout_indices_ = hold
        else:
            X_fit, X_hold = X_arr, np.asarray(X_holdout)
            self.holdout_indices_ = None
        self.fit(X_fit, labels(X_fit))
        self.fidelity_ = float(np.mean(self.predict(X_hold) == labels(X_hold)))
        return self

    # ------------------------------------------------------------------ reading the model

    def to_dict(self) -> dict:
        """The fitted list as JSON-ready data: rules (condition, prediction, probabilities, counts) and the search status."""
        check_is_fitted(self, "rules_")

        def plain(v):
            return v.item() if hasattr(v, "item") else v

        return {
            "rules": [
                {"if": r.condition, "then": plain(r.prediction), "proba": [float(p) for p in r.proba],
                 "counts": [float(c) for c in r.counts]}
                for r in self.rules_
            ],
            "classes": [plain(c) for c in self.classes_],
            "regularization": float(self.regularization),
            "objective": float(self.objective_),
            "lower_bound": float(self.lower_bound_),
            "gap": float(self.gap_),
            "certified": bool(self.certified_),
            "stop_reason": self.stop_reason_,
            "n_nodes": int(self.n_nodes_),
            "search_time": float(self.search_time_),
        }

    def explain_global(self) -> dict:
        """The model is its own explanation: the same as :meth:`to_dict`."""
        return self.to_dict()

    def __str__(self) -> str:
        if not hasattr(self, "rules_"):
            return repr(self)
        lines = []
        for i, r in enumerate(self.rules_):
            p = float(r.proba[list(self.classes_).index(r.prediction)])
            stats = f"  (p={p:.2f}, n={r.counts.sum():g})"
            if r.antecedent < 0:
                lines.append(("else " if i else "") + f"predict {r.prediction}" + stats)
            else:
                lines.append(("if " if i == 0 else "else if ") + f"{r.condition} then {r.prediction}" + stats)
        status = "certified optimal" if self.certified_ else f"not certified, gap {self.gap_:.3g}"
        lines.append(f"# objective {self.objective_:.5f} ({status}), regularization {self.regularization:g}")
        return "\n".join(lines)
