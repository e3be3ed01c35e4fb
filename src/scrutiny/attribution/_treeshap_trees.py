"""Flatten fitted scikit-learn tree models into the arrays the TreeSHAP kernels read.

Only scikit-learn's public tree arrays are read: ``tree_.children_left / children_right /
feature / threshold / value / weighted_n_node_samples / missing_go_to_left`` of every
``DecisionTree*`` (alone, in a forest, or inside gradient boosting). HistGradientBoosting has
no public tree arrays; its fitted ``_predictors`` (lists of ``TreePredictor``) hold a ``nodes``
structured array (``left, right, feature_idx, num_threshold, missing_go_to_left, is_leaf,
value, count``) and ``_baseline_prediction`` the initial raw score: this is the only route to its
trees (shap reads the same fields), so it is read here and nowhere else, and a model whose
layout differs fails with a CapabilityError instead of a wrong answer.

The flat form (:class:`FlatTrees`) concatenates every tree; node indices are global; leaves
have ``left == right == -1``; ``value`` (n_nodes, K) holds each leaf's contribution to the
model's raw output (already multiplied by 1/n_trees for forests and by the learning rate for
gradient boosting); ``base`` (K,) is the constant added to the trees' sum (gradient boosting's
initial raw score). The raw output of the model is ``base + sum_trees value[leaf(x)]``:
probabilities for forest and tree classifiers, log-odds (binary, K = 1) or per-class logits
(multiclass) for gradient-boosted classifiers, values for regressors.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..exceptions import CapabilityError

__all__ = ["FlatTrees", "flatten", "SUPPORTED"]

SUPPORTED = (
    "DecisionTreeClassifier, DecisionTreeRegressor, ExtraTreeClassifier, ExtraTreeRegressor, "
    "RandomForestClassifier, RandomForestRegressor, ExtraTreesClassifier, ExtraTreesRegressor, "
    "GradientBoostingClassifier, GradientBoostingRegressor, HistGradientBoostingClassifier, "
    "HistGradientBoostingRegressor"
)


class FlatTrees(NamedTuple):
    left: np.ndarray  # int64 (n_nodes,), -1 at leaves
    right: np.ndarray  # int64 (n_nodes,)
    feature: np.ndarray  # int64 (n_nodes,), 0 at leaves
    threshold: np.ndarray  # float64 (n_nodes,): x <= threshold goes left
    missing_left: np.ndarray  # int8 (n_nodes,): NaN goes left when 1
    cover: np.ndarray  # float64 (n_nodes,): training (weighted) samples reaching the node
    value: np.ndarray  # float64 (n_nodes, K): leaf contribution to the raw output
    roots: np.ndarray  # int64 (n_trees,)
    max_depth: int
    base: np.ndarray  # float64 (K,)
    n_features: int
    float32_input: bool  # scikit-learn's trees compare float32(x) with the threshold
    link: str  # "identity" (probability or value) or "logit" (gradient-boosted classifier)
    n_classes: int  # 0 for regressors


def _depth(left: np.ndarray, right: np.ndarray) -> int:
    depth = np.zeros(left.shape[0], dtype=np.int64)
    deepest = 0
    for node in range(left.shape[0]):  # scikit-learn numbers children after their parent
        if left[node] >= 0:
            depth[left[node]] = depth[right[node]] = depth[node] + 1
            deepest = max(deepest, int(depth[node]) + 1)
    return deepest


class _Builder:
    def __init__(self, K: int):
        self.K = K
        self.parts: list[tuple] = []
        self.n = 0
        self.max_depth = 0

    def add(self, left, right, feature, threshold, missing_left, cover, leaf_value, column):
        """One tree; ``leaf_value`` is (n_nodes, K) when ``column`` is None, else (n_nodes,)
        added to output ``column`` only."""
        left = np.asarray(left, dtype=np.int64)
        right = np.asarray(right, dtype=np.int64)
        leaf = left < 0
        value = np.zeros((left.shape[0], self.K))
        if column is None and leaf_value.ndim == 1:
            column = 0
        if column is None:
            value[leaf] = leaf_value[leaf]
        else:
            value[leaf, column] = leaf_value[leaf]
        feat = np.where(leaf, 0, np.asarray(feature, dtype=np.int64))
        self.parts.append(
            (
                np.where(leaf, -1, left + self.n),
                np.where(leaf, -1, right + self.n),
                feat,
                np.asarray(threshold, dtype=np.float64),
                np.asarray(missing_left, dtype=np.int8),
                np.asarray(cover, dtype=np.float64),
                value,
                self.n,
            )
        )
        self.max_depth = max(self.max_depth, _depth(left, right))
        self.n += left.shape[0]

    def build(self, base, n_features, float32_input, link, n_classes) -> FlatTrees:
        cols = list(zip(*self.parts))
        return FlatTrees(
            left=np.ascontiguousarray(np.concatenate(cols[0])),
            right=np.ascontiguousarray(np.concatenate(cols[1])),
            feature=np.ascontiguousarray(np.concatenate(cols[2])),
            threshold=np.ascontiguousarray(np.concatenate(cols[3])),
            missing_left=np.ascontiguousarray(np.concatenate(cols[4])),
            cover=np.ascontiguousarray(np.concatenate(cols[5])),
            value=np.ascontiguousarray(np.concatenate(cols[6])),
            roots=np.asarray(cols[7], dtype=np.int64),
            max_depth=int(self.max_depth),
            base=np.asarray(base, dtype=np.float64).reshape(-1),
            n_features=int(n_features),
            float32_input=float32_input,
            link=link,
            n_classes=int(n_classes),
        )


def _sk_tree(builder: _Builder, tree: Any, scale: float, column: int | None, classifier: bool) -> None:
    t = tree.tree_
    if t.n_outputs != 1:
        raise CapabilityError(
            f"TreeSHAP explains single-output trees; {type(tree).__name__} has {t.n_outputs} outputs. "
            "Fit one model per output."
        )
    value = np.asarray(t.value, dtype=np.float64)[:, 0, :]
    if classifier:
        # scikit-learn >= 1.4 stores class fractions at every node; normalise anyway so that
        # counts (older layouts) give the same probabilities as predict_proba.
        value = value / np.maximum(value.sum(axis=1, keepdims=True), np.finfo(float).tiny)
    else:
        value = value[:, 0]
    missing = getattr(t, "missing_go_to_left", None)
    if missing is None:
        missing = np.zeros(t.node_count, dtype=np.int8)
    builder.add(
        t.children_left, t.children_right, t.feature, t.threshold, missing, t.weighted_n_node_samples,
        value * scale, column,
    )


def _estimator_name(model: Any) -> str:
    return type(model).__name__


def flatten(model: Any) -> FlatTrees:
    """Flatten a fitted supported scikit-learn tree model (see the module docstring)."""
    from sklearn import ensemble, tree

    name = _estimator_name(model)
    n_features = getattr(model, "n_features_in_", None)
    if isinstance(model, (tree.DecisionTreeClassifier, tree.DecisionTreeRegressor)):
        classifier = isinstance(model, tree.DecisionTreeClassifier)
        K = _n_classes(model) if classifier else 1
        b = _Builder(K)
        _sk_tree(b, model, 1.0, None, classifier)
        return b.build(np.zeros(K), n_features, True, "identity", K if classifier else 0)
    if isinstance(model, (ensemble.RandomForestClassifier, ensemble.RandomForestRegressor,
                          ensemble.ExtraTreesClassifier, ensemble.ExtraTreesRegressor)):
        classifier = isinstance(model, (ensemble.RandomForestClassifier, ensemble.ExtraTreesClassifier))
        K = _n_classes(model) if classifier else 1
        b = _Builder(K)
        scale = 1.0 / len(model.estimators_)
        for est in model.estimators_:
            _sk_tree(b, est, scale, None, classifier)
        return b.build(np.zeros(K), n_features, True, "identity", K if classifier else 0)
    if isinstance(model, (ensemble.GradientBoostingClassifier, ensemble.GradientBoostingRegressor)):
        return _gradient_boosting(model, n_features)
    if isinstance(model, (ensemble.HistGradientBoostingClassifier, ensemble.HistGradientBoostingRegressor)):
        return _hist_gradient_boosting(model, n_features)
    raise CapabilityError(
        f"TreeSHAP reads scikit-learn tree models ({SUPPORTED}); got {name}. For other models use "
        "KernelSHAP (any model) or a gradient method (torch models)."
    )


def _n_classes(model: Any) -> int:
    classes = getattr(model, "classes_", None)
    if classes is None or np.ndim(classes) != 1:
        raise CapabilityError(
            f"TreeSHAP explains single-output classifiers; {type(model).__name__} has classes_ of another "
            "layout (multi-output). Fit one classifier per output."
        )
    return len(classes)


def _gradient_boosting(model: Any, n_features: int) -> FlatTrees:
    from sklearn import ensemble
    from sklearn.dummy import DummyClassifier, DummyRegressor

    classifier = isinstance(model, ensemble.GradientBoostingClassifier)
    init = model.init_
    if not (isinstance(init, str) and init == "zero") and not isinstance(init, (DummyClassifier, DummyRegressor)):
        raise CapabilityError(
            f"TreeSHAP needs a constant initial raw score; {type(model).__name__} was fitted with "
            f"init={type(init).__name__}, whose prediction varies with x. Refit with the default init "
            "or init='zero'."
        )
    estimators = model.estimators_
    K = estimators.shape[1]
    b = _Builder(K)
    lr = float(model.learning_rate)
    for stage in estimators:
        for k, est in enumerate(stage):
            _sk_tree(b, est, lr, k, False)
    flat0 = b.build(np.zeros(K), n_features, True, "logit" if classifier else "identity",
                    _n_classes(model) if classifier else 0)
    # The initial raw score through the public API: the model's raw output minus the trees' sum
    # at one row (constant, since init_ is a constant estimator).
    from . import _treeshap_kernels as kern

    row = np.zeros((1, n_features))
    trees = np.zeros((1, K))
    kern.predict(row.astype(np.float32).astype(np.float64), flat0.left, flat0.right, flat0.feature,
                 flat0.threshold, flat0.missing_left, flat0.value, flat0.roots, trees)
    raw = model.decision_function(row) if classifier else model.predict(row)
    base = np.asarray(raw, dtype=np.float64).reshape(1, -1)[0] - trees[0]
    return flat0._replace(base=base)


def _hist_gradient_boosting(model: Any, n_features: int) -> FlatTrees:
    from sklearn import ensemble

    classifier = isinstance(model, ensemble.HistGradientBoostingClassifier)
    if not classifier and getattr(model, "loss", "squared_error") in ("poisson", "gamma"):
        raise CapabilityError(
            f"TreeSHAP space='raw' explains the trees' sum; {type(model).__name__}(loss={model.loss!r}) "
            "predicts exp(sum), which is not additive over trees. Explain a model with an identity link "
            "(loss='squared_error', 'absolute_error' or 'quantile')."
        )
    predictors = getattr(model, "_predictors", None)
    baseline = getattr(model, "_baseline_prediction", None)
    if predictors is None or baseline is None:
        raise CapabilityError(
            f"TreeSHAP could not find the trees of {type(model).__name__} (_predictors / _baseline_prediction): "
            "this scikit-learn version lays them out differently. Report it with your scikit-learn version."
        )
    K = len(predictors[0]) if predictors else 1
    b = _Builder(K)
    for stage in predictors:
        for k, pred in enumerate(stage):
            nodes = pred.nodes
            if np.any(nodes["is_categorical"]):
                raise CapabilityError(
                    f"TreeSHAP does not read categorical splits of {type(model).__name__}; refit with "
                    "categorical_features=None (one-hot or ordinal encoding) to explain it exactly."
                )
            leaf = nodes["is_leaf"].astype(bool)
            left = np.where(leaf, -1, nodes["left"].astype(np.int64))
            right = np.where(leaf, -1, nodes["right"].astype(np.int64))
            b.add(left, right, nodes["feature_idx"], nodes["num_threshold"], nodes["missing_go_to_left"],
                  nodes["count"], nodes["value"].astype(np.float64), k)
    base = np.asarray(baseline, dtype=np.float64).reshape(-1)
    return b.build(base, n_features, False, "logit" if classifier else "identity",
                   _n_classes(model) if classifier else 0)
