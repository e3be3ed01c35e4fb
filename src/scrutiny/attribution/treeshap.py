"""TreeSHAP: exact Shapley values of scikit-learn tree ensembles.

References
----------
.. [1] Lundberg, Lee (2017). A unified approach to interpreting model predictions. NeurIPS.
.. [2] Lundberg, Erion, Chen, DeGrave, Prutkin, Nair, Katz, Himmelfarb, Bansal, Lee (2020).
   From local explanations to global understanding with explainable AI for trees. Nature
   Machine Intelligence 2, 56-67.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import numpy as np

from .._validation import Interval, Options, check_array, check_target
from ..exceptions import CapabilityError, InvalidParameterError
from ..explanation import Explanation
from ._base import Explainer, RawAttribution, _record
from ._gradient import FEATURE_NAMES_CONSTRAINT, SPACES
from . import _treeshap_kernels as kern
from . import _treeshap_linear as linear
from ._treeshap_trees import FlatTrees, flatten

__all__ = ["TreeSHAP"]

# Rows per kernel call: small enough that n_jobs threads get balanced work, large enough that
# the Python overhead per call is negligible. It never changes a result (rows are independent).
_BLOCK = 64


class TreeSHAP(Explainer):
    """Exact SHAP values of a scikit-learn tree model, read from its fitted trees.

    Two games, both exact:

    * ``background=None``: **path-dependent** TreeSHAP [2]_ -- the value of a coalition ``S`` is
      the tree's output with the features outside ``S`` integrated out along the tree, each
      branch weighted by its training cover (``weighted_n_node_samples``; ``count`` for
      HistGradientBoosting). ``base_values`` is the cover-weighted mean output.
    * ``background`` given: **interventional** TreeSHAP [2]_ -- the value of ``S`` is the mean
      over the background rows ``z`` of ``f(x_S, z_not_S)``; ``base_values`` is ``mean_z f(z)``.

    Either way the values sum exactly to ``f(x) - base_values`` (``extras["output"]`` holds
    ``f(x)``).

    Parameters
    ----------
    model : fitted scikit-learn tree model
        ``DecisionTree*``, ``ExtraTree*``, ``RandomForest*``, ``ExtraTrees*``,
        ``GradientBoosting*`` or ``HistGradientBoosting*`` (classifier or regressor, binary or
        multiclass; HistGradientBoosting without categorical splits).
    background : array-like of shape (n_background, n_features) or None, default None
        Rows of the reference distribution for the interventional form (50-1000 training
        rows); None selects the path-dependent form. The cost grows linearly with its size.
    space : {"raw", "auto", "probability", "log_odds"}, default "raw"
        ``"raw"`` (and ``"auto"``) explain the trees' own additive output: the probability of
        the target class for tree and forest classifiers, the log-odds (binary) or the class
        logit (multiclass) for gradient-boosted classifiers, the value for regressors.
        ``"probability"`` is accepted where it is that raw output (tree and forest
        classifiers) and ``"log_odds"`` for binary gradient-boosted classifiers; anything else
        is not additive over trees, so not exact, and raises a CapabilityError.
    feature_names : sequence of str, optional
        One name per feature, recorded on the Explanation.
    n_jobs : int or None, default None
        Threads over blocks of rows (None: 1; -1: all cores). Results do not depend on it.

    Notes
    -----
    ``target`` is the class index (``model.classes_[target]``), None the predicted class. For a
    binary gradient-boosted classifier the trees model the log-odds of class 1; class 0 is
    explained by its own log-odds, the negation. The trees are flattened at ``explain`` time
    (public tree arrays; see ``_treeshap_trees`` for HistGradientBoosting), and the kernels are
    compiled with numba on first use (cached on disk).

    References
    ----------
    .. [1] Lundberg, Lee (2017). A unified approach to interpreting model predictions. NeurIPS.
    .. [2] Lundberg et al. (2020). From local explanations to global understanding with
       explainable AI for trees. Nature Machine Intelligence 2, 56-67.

    Examples
    --------
    >>> from sklearn.ensemble import RandomForestRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 4)); y = X[:, 0] * X[:, 1]
    >>> model = RandomForestRegressor(n_estimators=5, max_depth=3, random_state=0).fit(X, y)
    >>> e = TreeSHAP(model).explain(X[:3])
    >>> np.allclose(e.values.sum(1) + e.base_values, model.predict(X[:3]))
    True
    """

    _constraints: ClassVar[dict[str, list]] = {
        "background": ["array-like", None],
        "space": [Options(*SPACES)],
        "feature_names": FEATURE_NAMES_CONSTRAINT,
        "n_jobs": [Interval(int, -1, None), None],
    }
    _hints: ClassVar[dict[str, str]] = {
        "background": "Pass training rows, e.g. X_train[:100], or None for the path-dependent form.",
        "space": "'raw' explains the trees' additive output (see the TreeSHAP docstring).",
        "n_jobs": "None or 1 runs one thread; -1 uses every core.",
    }

    def __init__(self, model: Any, background: Any = None, space: str = "raw", feature_names: Any = None,
                 n_jobs: int | None = None):
        super().__init__(model)
        self.background = background
        self.space = space
        self.feature_names = feature_names
        self.n_jobs = n_jobs

    # -- missing values ----------------------------------------------------------------------
    def explain(self, X: Any, target: Any = None) -> Explanation:
        """Explain one output per sample (see :meth:`Explainer.explain`).

        NaN in ``X`` (or in ``background``) is accepted for models that route missing values
        (scikit-learn's ``allow_nan`` tag: HistGradientBoosting, decision trees and forests):
        each split sends NaN to the side the fitted tree chose, as the model's own predictions do.
        The result then has ``data=None`` and ``extras["missing"]`` (bool, shape of X) instead.
        """
        arr = X.detach().cpu().numpy() if hasattr(X, "detach") else X
        arr = check_array(arr, "X", min_samples=1, allow_nan=True)
        if not np.isnan(arr).any():
            return super().explain(X, target)
        trees = self._trees()
        if not self._routes_missing():
            raise InvalidParameterError(
                f"X contains NaN, and {type(self.model.estimator).__name__} does not route missing values. "
                "Impute them first (e.g. sklearn.impute.SimpleImputer), as the model itself needs."
            )
        if np.isinf(arr).any():
            raise InvalidParameterError("X contains inf; only NaN (missing values) is accepted besides finite values.")
        params = self._validate_params()
        params.pop("model")
        self._check_X(arr, trees)
        if target is None:
            target = self._predicted_class(arr, trees)
        else:
            target = check_target(target, arr.shape[0], max(trees.n_classes, 1))
        raw = self._explain(arr, target, None)
        # Results hold no NaN (Explanation refuses it): the explained rows are left out of ``data``
        # and the positions of the missing values are kept in extras["missing"].
        return Explanation(values=raw.values, target=target, method=type(self).__name__,
                           base_values=raw.base_values, data=None, feature_names=params.get("feature_names"),
                           params={k: _record(v) for k, v in params.items() if k != "feature_names"},
                           extras={**dict(raw.extras or {}), "missing": np.isnan(arr)})

    def _routes_missing(self) -> bool:
        from sklearn.utils import get_tags

        return bool(get_tags(self.model.estimator).input_tags.allow_nan)

    def _predicted_class(self, X: np.ndarray, trees: FlatTrees) -> np.ndarray:
        """The predicted class from the trees' raw output (argmax of probabilities or logits; the
        sign of a binary log-odds), i.e. the model's prediction, computed here since the adapter
        refuses NaN."""
        raw = self._raw_output(self._as_tree_input(X, trees), trees)
        if trees.n_classes == 0:
            return np.zeros(X.shape[0], dtype=np.int64)
        if raw.shape[1] == 1:
            return (raw[:, 0] > 0).astype(np.int64)
        return np.argmax(raw, axis=1).astype(np.int64)

    # -- preparation -------------------------------------------------------------------------
    def _trees(self) -> FlatTrees:
        estimator = getattr(self.model, "estimator", None)
        if estimator is None:
            raise CapabilityError(
                "TreeSHAP needs a fitted scikit-learn tree model (e.g. RandomForestClassifier); got "
                f"{type(self.model).__name__}. For other models use KernelSHAP."
            )
        trees = flatten(estimator)
        if trees.max_depth > kern.MAX_DEPTH:
            raise CapabilityError(
                f"TreeSHAP handles trees up to depth {kern.MAX_DEPTH}; this model has a tree of depth "
                f"{trees.max_depth}. Refit with max_depth <= {kern.MAX_DEPTH}."
            )
        self._check_space(trees)
        return trees

    def _check_space(self, trees: FlatTrees) -> None:
        space = self.space
        if space in ("raw", "auto"):
            return
        if space == "probability" and trees.link == "identity" and trees.n_classes:
            return
        if space == "log_odds" and trees.link == "logit" and trees.value.shape[1] == 1:
            return
        raise CapabilityError(
            f"TreeSHAP is exact only in the space where the trees add up; space={space!r} is not that space "
            f"for {type(self.model.estimator).__name__}. Use space='raw' (probabilities for forests, log-odds "
            "for gradient boosting), or KernelSHAP for an approximation in another space."
        )

    def _n_threads(self) -> int:
        import os

        if self.n_jobs is None or self.n_jobs == 0:
            return 1
        if self.n_jobs < 0:
            return os.cpu_count() or 1
        return int(self.n_jobs)

    def _background(self, trees: FlatTrees) -> np.ndarray | None:
        if self.background is None:
            return None
        bg = check_array(self.background, "background", min_samples=1, allow_nan=True)
        if np.isinf(bg).any() or (np.isnan(bg).any() and not self._routes_missing()):
            raise InvalidParameterError(
                "TreeSHAP: background must be finite (NaN only for models that route missing values, e.g. "
                "HistGradientBoosting); impute it first."
            )
        if bg.ndim != 2 or bg.shape[1] != trees.n_features:
            raise InvalidParameterError(
                f"TreeSHAP: background must have shape (n_background, {trees.n_features}); got {bg.shape}. "
                "Pass rows of the training data, e.g. X_train[:100]."
            )
        return self._as_tree_input(bg, trees)

    @staticmethod
    def _as_tree_input(X: np.ndarray, trees: FlatTrees) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if trees.float32_input:  # scikit-learn's trees compare float32(x) with the threshold
            X = X.astype(np.float32).astype(np.float64)
        return np.ascontiguousarray(X)

    def _check_X(self, X: np.ndarray, trees: FlatTrees) -> None:
        if X.ndim != 2 or X.shape[1] != trees.n_features:
            raise InvalidParameterError(
                f"TreeSHAP: X must have shape (n_samples, {trees.n_features}) like the model's training data; "
                f"got {X.shape}."
            )

    def _run(self, kernel_call, n: int, shape: tuple) -> np.ndarray:
        """Run ``kernel_call(start, stop, out_block)`` over blocks of rows on ``n_jobs`` threads."""
        out = np.zeros((n,) + shape)
        blocks = [(s, min(s + _BLOCK, n)) for s in range(0, n, _BLOCK)]
        threads = min(self._n_threads(), len(blocks))
        if threads <= 1:
            for s, e in blocks:
                kernel_call(s, e, out[s:e])
        else:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                list(pool.map(lambda b: kernel_call(b[0], b[1], out[b[0]:b[1]]), blocks))
        return out

    def _raw_output(self, X: np.ndarray, trees: FlatTrees) -> np.ndarray:
        out = np.zeros((X.shape[0], trees.value.shape[1]))
        kern.predict(X, trees.left, trees.right, trees.feature, trees.threshold, trees.missing_left,
                     trees.value, trees.roots, out)
        return out + trees.base

    def _expected(self, trees: FlatTrees, bg: np.ndarray | None) -> np.ndarray:
        if bg is not None:
            return self._raw_output(bg, trees).mean(axis=0)
        expected = trees.base.copy()
        cover_leaf = trees.left < 0
        tree_of = np.searchsorted(trees.roots, np.arange(trees.left.shape[0]), side="right") - 1
        root_cover = trees.cover[trees.roots][tree_of]
        weights = np.where(cover_leaf, trees.cover / root_cover, 0.0)
        return expected + weights @ trees.value

    @staticmethod
    def _columns(trees: FlatTrees, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Kernel output column and sign of each target (class 0 of a binary logit model is -f)."""
        if trees.link == "logit" and trees.value.shape[1] == 1:
            return np.zeros_like(target), np.where(target == 1, 1.0, -1.0)
        return target, np.ones(target.shape[0])

    # -- SHAP values -------------------------------------------------------------------------
    def _explain(self, X: np.ndarray, target: np.ndarray, rng: np.random.Generator | None) -> RawAttribution:
        trees = self._trees()
        self._check_X(X, trees)
        bg = self._background(trees)
        Xt = self._as_tree_input(X, trees)
        K = trees.value.shape[1]
        d = trees.n_features
        t = trees
        if bg is None and t.cover.min() > 0:
            # One pass over the nodes per block of rows (Linear TreeSHAP); the recursive kernel
            # only where a zero cover rules its divisions out. benchmarks/local_attribution.py
            # --tasks trees times both forms against shap's TreeExplainer.
            t_nodes, t_weights = linear.quadrature(t.max_depth)

            def call(s, e, out):
                linear.path_dependent_linear(Xt[s:e], t.left, t.right, t.feature, t.threshold, t.missing_left,
                                             t.cover, t.value, t.roots, t.max_depth, t_nodes, t_weights, out)
        elif bg is None:
            def call(s, e, out):
                kern.path_dependent(Xt[s:e], t.left, t.right, t.feature, t.threshold, t.missing_left, t.cover,
                                    t.value, t.roots, t.max_depth, out)
        else:
            W = kern.shapley_weights(t.max_depth)
            GZ = np.zeros((bg.shape[0], t.left.shape[0]), dtype=np.int8)
            kern.directions(bg, t.left, t.feature, t.threshold, t.missing_left, GZ)
            ptr, rows_, weights = _distinct_background(GZ, t)

            def call(s, e, out):
                kern.interventional(Xt[s:e], GZ, ptr, rows_, weights, t.left, t.right, t.feature, t.threshold,
                                    t.missing_left, t.value, t.roots, t.max_depth, W, out)
        phi = self._run(call, X.shape[0], (d, K))
        col, sign = self._columns(trees, target)
        rows = np.arange(X.shape[0])
        values = phi[rows, :, col] * sign[:, None]
        base = self._expected(trees, bg)[col] * sign
        output = self._raw_output(Xt, trees)[rows, col] * sign
        return RawAttribution(values=values, base_values=base, extras={"output": output})

    # -- SHAP interaction values -------------------------------------------------------------
    def explain_interactions(self, X: Any, target: Any = None) -> Explanation:
        """Path-dependent SHAP interaction values [2]_.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        target : int, array-like of shape (n_samples,) or None
            Class explained per sample; None: the predicted class.

        Returns
        -------
        Explanation
            ``values`` of shape (n_samples, n_features, n_features): symmetric; off the diagonal
            half the interaction of each pair, on it the main effect, so each row of a sample's
            matrix sums to that feature's SHAP value and the whole matrix to
            ``f(x) - base_values``. ``method`` is ``"TreeSHAPInteractions"``; the feature names
            are in ``params["feature_names"]`` (``feature_names`` counts one per value).

        Raises
        ------
        CapabilityError
            With a background: interaction values are defined here for the path-dependent form
            only (as in shap's TreeExplainer).
        """
        params = self._validate_params()
        params.pop("model")
        if params["background"] is not None:
            raise CapabilityError(
                "TreeSHAP.explain_interactions computes path-dependent interaction values; this explainer has a "
                "background. Use TreeSHAP(model) (background=None) for interactions."
            )
        X = np.asarray(self.model.check_input(X), dtype=np.float64)
        trees = self._trees()
        self._check_X(X, trees)
        target = self._resolve_target(X, target)
        Xt = self._as_tree_input(X, trees)
        t = trees
        d = t.n_features
        K = t.value.shape[1]
        ptr, feats = _tree_features(t)

        def call(s, e, out):
            kern.path_interactions(Xt[s:e], t.left, t.right, t.feature, t.threshold, t.missing_left, t.cover,
                                   t.value, t.roots, feats, ptr, t.max_depth, out)

        phi = self._run(call, X.shape[0], (d, d, K))
        col, sign = self._columns(trees, target)
        rows = np.arange(X.shape[0])
        values = phi[rows, :, :, col] * sign[:, None, None]
        base = self._expected(trees, None)[col] * sign
        output = self._raw_output(Xt, trees)[rows, col] * sign
        recorded = {k: _record(v) for k, v in params.items()}
        return Explanation(values=values, target=target, method="TreeSHAPInteractions", base_values=base,
                           data=X, params=recorded, extras={"output": output})


def _distinct_background(GZ: np.ndarray, trees: FlatTrees) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per tree, one representative of each group of background rows with the same directions at
    every node of the tree, and the group's share of the background (CSR over trees). Rows of a
    group play the same game against any x, so each tree is walked once per group."""
    ptr = [0]
    rows: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    ends = list(trees.roots[1:]) + [trees.left.shape[0]]
    n = GZ.shape[0]
    for start, end in zip(trees.roots, ends):
        _, first, counts = np.unique(GZ[:, start:end], axis=0, return_index=True, return_counts=True)
        order = np.argsort(first, kind="stable")  # groups in background order
        rows.append(first[order].astype(np.int64))
        weights.append(counts[order] / n)
        ptr.append(ptr[-1] + first.shape[0])
    return np.asarray(ptr, dtype=np.int64), np.concatenate(rows), np.concatenate(weights)


def _tree_features(trees: FlatTrees) -> tuple[np.ndarray, np.ndarray]:
    """CSR lists of the features each tree splits on: ``feats[ptr[t]:ptr[t+1]]``."""
    feats: list[np.ndarray] = []
    ptr = [0]
    ends = list(trees.roots[1:]) + [trees.left.shape[0]]
    for start, end in zip(trees.roots, ends):
        internal = trees.left[start:end] >= 0
        used = np.unique(trees.feature[start:end][internal])
        feats.append(used)
        ptr.append(ptr[-1] + used.shape[0])
    return np.asarray(ptr, dtype=np.int64), np.concatenate(feats).astype(np.int64)
