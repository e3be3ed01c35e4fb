"""RuleListClassifier: exactness against brute force, bounds, anytime honesty, the estimator contract."""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest

from scrutiny.data import read_corels
from scrutiny.exceptions import ConvergenceWarning, DataFormatError, InvalidParameterError
from scrutiny.glassbox import RuleListClassifier

DATA = os.environ.get("SCRUTINY_DATA_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
COMPAS = os.path.join(DATA, "compas", "compas_train.out")
BOUNDS = ("lookahead", "support", "accurate_support", "equivalent_points", "symmetry")


def brute_force(B, y, w, n_classes, lam):
    """Smallest objective over every ordered list of distinct antecedents up to the length the
    objective allows (a list longer than R(empty)/lam costs more than the empty list)."""
    total = w.sum()

    def errors(mask):
        counts = np.bincount(y[mask], weights=w[mask], minlength=n_classes)
        return counts.sum() - counts.max()

    empty = errors(np.ones(len(y), dtype=bool)) / total
    max_len = min(B.shape[1], int(np.floor(empty / lam))) if lam > 0 else B.shape[1]
    best = empty

    def walk(left, used, err, depth):
        nonlocal best
        for r in range(B.shape[1]):
            if r in used:
                continue
            cap = left & B[:, r]
            e = err + errors(cap)
            rest = left & ~B[:, r]
            obj = (e + errors(rest)) / total + lam * (depth + 1)
            best = min(best, obj)
            if depth + 1 < max_len:
                walk(rest, used | {r}, e, depth + 1)

    walk(np.ones(len(y), dtype=bool), frozenset(), 0.0, 0)
    return best


def random_problem(seed, n_rules=7, n=120, n_classes=2, weighted=False):
    rng = np.random.default_rng(seed)
    Z = rng.random((n, 3)) < 0.5  # a few latent features make equal-looking rows and informative rules
    B = np.column_stack([Z[:, rng.integers(3)] ^ (rng.random(n) < 0.15) for _ in range(n_rules)])
    B[:, :2] = Z[:, :2]
    logits = Z[:, 0] * 1.5 - Z[:, 1] + rng.normal(0, 1, n)
    y = np.digitize(logits, np.quantile(logits, np.linspace(0, 1, n_classes + 1)[1:-1]))
    w = rng.integers(1, 4, n).astype(float) if weighted else np.ones(n)
    return B.astype(float), y, w


@pytest.mark.parametrize("seed", range(10))
def test_matches_brute_force(seed):
    n_classes = 2 + seed % 2
    n_rules = 6 + seed % 3 if seed < 6 else 6
    B, y, w = random_problem(seed, n_rules=n_rules, n_classes=n_classes, weighted=3 <= seed < 8)
    lam = [0.02, 0.03, 0.05][seed % 3] if seed < 6 else 0.008
    clf = RuleListClassifier(lam, antecedents="given").fit(B, y, sample_weight=w)
    assert clf.certified_ and clf.gap_ == 0.0
    assert clf.objective_ == pytest.approx(brute_force(B.astype(bool), y, w, n_classes, lam), abs=1e-12)
    # the reported objective is the fitted list's weighted error plus the penalty
    err = 1 - clf.score(B, y, sample_weight=w)
    assert clf.objective_ == pytest.approx(err + lam * (len(clf.rules_) - 1), abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_each_bound_off_keeps_the_optimum_and_does_not_save_nodes(seed):
    B, y, w = random_problem(10 + seed, n_rules=8, n=200)
    lam = 0.01
    full = RuleListClassifier(lam, antecedents="given").fit(B, y)
    assert full.certified_
    for bound in BOUNDS:
        off = RuleListClassifier(lam, antecedents="given", ablation=(bound,)).fit(B, y)
        assert off.certified_
        assert off.objective_ == pytest.approx(full.objective_, abs=1e-12), bound
        assert off.n_nodes_ >= full.n_nodes_, bound
    assert RuleListClassifier(lam, antecedents="given", ablation=BOUNDS).fit(B, y).n_nodes_ > full.n_nodes_


@pytest.fixture(scope="module")
def three_class_problem():
    B, y, w = random_problem(3, n_rules=8, n=160, n_classes=3)
    return B, y, brute_force(B.astype(bool), y, w, 3, 0.03)


@pytest.mark.parametrize("policy", ["lower_bound", "curiosity", "objective", "bfs", "dfs"])
@pytest.mark.parametrize("map_type", ["captured", "prefix", "none"])
def test_every_policy_and_map_reach_the_same_optimum(policy, map_type, three_class_problem):
    B, y, ref = three_class_problem
    clf = RuleListClassifier(0.03, antecedents="given", policy=policy, map_type=map_type).fit(B, y)
    assert clf.certified_ and clf.objective_ == pytest.approx(ref, abs=1e-12)


def test_early_stop_is_uncertified_with_an_honest_gap():
    B, y, _ = random_problem(7, n_rules=16, n=300)
    full = RuleListClassifier(0.002, antecedents="given").fit(B, y)
    assert full.certified_ and full.n_nodes_ > 1000
    with pytest.warns(ConvergenceWarning, match="gap"):
        early = RuleListClassifier(0.002, antecedents="given", node_limit=20).fit(B, y)
    assert not early.certified_ and early.stop_reason_ == "node_limit"
    assert early.gap_ > 0
    # the bound is a bound: the true optimum lies between it and the returned objective
    assert early.lower_bound_ <= full.objective_ + 1e-12 <= early.objective_ + 2e-12


def test_memory_limit_stops_honestly():
    B, y, _ = random_problem(7, n_rules=16, n=300)
    with pytest.warns(ConvergenceWarning, match="memory limit"):
        clf = RuleListClassifier(0.002, antecedents="given", memory_limit=0.05).fit(B, y)
    assert clf.stop_reason_ == "memory_limit" and not clf.certified_ and clf.gap_ > 0


def test_sample_weight_equals_repeating_rows():
    B, y, _ = random_problem(5, n_rules=7, n=80)
    w = np.random.default_rng(1).integers(0, 4, len(y))
    weighted = RuleListClassifier(0.02, antecedents="given").fit(B, y, sample_weight=w)
    repeated = RuleListClassifier(0.02, antecedents="given").fit(np.repeat(B, w, axis=0), np.repeat(y, w))
    assert weighted.objective_ == pytest.approx(repeated.objective_, abs=1e-12)
    assert weighted.rule_indices_ == repeated.rule_indices_


def test_predict_proba_is_the_laplace_smoothed_frequency_of_the_deciding_rule():
    B, y, _ = random_problem(2, n_rules=6, n=150, n_classes=3)
    clf = RuleListClassifier(0.02, antecedents="given", prior=2.0).fit(B, y)
    which = clf.apply(B)
    P = clf.predict_proba(B)
    for k in range(len(clf.rules_)):
        rows = which == k
        if rows.any():
            counts = np.bincount(y[rows], minlength=3)
            np.testing.assert_allclose(P[rows][0], (counts + 2.0) / (counts.sum() + 6.0))
            assert clf.predict(B[rows])[0] == np.argmax(counts)


def test_from_model_fidelity_is_the_agreement_by_hand():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    bb = LogisticRegression().fit(X, y)
    X_fit, X_hold = X[:200], X[200:]
    clf = RuleListClassifier(0.03, n_thresholds=4).from_model(bb, X_fit, X_holdout=X_hold)
    assert clf.fidelity_ == np.mean(clf.predict(X_hold) == bb.predict(X_hold))
    assert 0.7 < clf.fidelity_ < 1.0
    auto = RuleListClassifier(0.03, n_thresholds=4).from_model(bb, X, holdout=0.3, random_state=0)
    hold = auto.holdout_indices_
    assert len(hold) == 90
    assert auto.fidelity_ == np.mean(auto.predict(X[hold]) == bb.predict(X[hold]))


def test_mining_continuous_categorical_and_conjunctions():
    rng = np.random.default_rng(0)
    n = 300
    age = rng.integers(18, 70, n).astype(float)
    color = rng.choice(np.array(["red", "green", "blue"], dtype=object), n)
    X = np.empty((n, 2), dtype=object)
    X[:, 0], X[:, 1] = age, color
    y = ((age < 30) & (color == "red")).astype(int)
    clf = RuleListClassifier(0.005, categorical_features=[1], feature_names=["age", "color"], n_thresholds=60)
    clf.fit(X, y)
    names = clf.antecedent_names_
    assert any("age <=" in s for s in names) and any("age >" in s for s in names)
    assert "color == red" in names and any(" and " in s for s in names)
    assert clf.certified_ and clf.score(X, y) == 1.0  # one conjunction describes the label exactly
    text = str(clf)
    assert "color == red" in text and text.startswith("if ")
    json.dumps(clf.to_dict())
    # every mined antecedent respects the support limits
    assert RuleListClassifier(0.01, categorical_features=[1], min_support=0.2).fit(X, y).antecedents_
    strict = RuleListClassifier(0.01, categorical_features=[1], min_support=0.2).fit(X, y)
    from scrutiny.glassbox._antecedents import evaluate

    cols = [X[:, 0].astype(float), X[:, 1]]
    support = evaluate(strict.antecedents_, cols).mean(axis=0)
    assert support.min() >= 0.2 and support.max() <= 0.8


def test_predict_refuses_nan():
    B, y, _ = random_problem(1, n_rules=6, n=60)
    clf = RuleListClassifier(0.02, antecedents="given").fit(B, y)
    B[0, 0] = np.nan
    with pytest.raises(InvalidParameterError, match="NaN"):
        clf.predict(B)


def test_clone_and_cross_validation():
    from sklearn.base import clone, is_classifier
    from sklearn.model_selection import cross_val_score

    B, y, _ = random_problem(1, n_rules=6, n=120)
    clf = RuleListClassifier(0.02, antecedents="given", policy="bfs")
    copy = clone(clf)
    assert copy.get_params() == clf.get_params() and is_classifier(clf)
    scores = cross_val_score(clf, B, y, cv=3)
    assert scores.shape == (3,) and np.all(scores > 0.5)
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    pipe = make_pipeline(FunctionTransformer(), clone(clf)).fit(B, y)
    np.testing.assert_array_equal(pipe.predict(B), clf.fit(B, y).predict(B))


@pytest.mark.parametrize(
    "kwargs, X, y, match",
    [
        ({}, np.zeros((5, 2)), np.zeros(5), "single class"),
        ({}, np.zeros((1, 2)), np.array([0]), "at least 2 samples"),
        ({}, np.array([[np.nan, 1.0], [0.0, 1.0]]), np.array([0, 1]), "NaN"),
        ({}, np.array([["a", 1], ["b", 0]], dtype=object), np.array([0, 1]), "categorical_features"),
        ({"regularization": -1.0}, np.eye(2), np.array([0, 1]), "regularization"),
        ({"policy": "best"}, np.eye(2), np.array([0, 1]), "policy"),
        ({"ablation": ("hierarchy",)}, np.eye(2), np.array([0, 1]), "ablation"),
        ({"antecedents": "given"}, np.array([[0.5, 1], [0, 1]]), np.array([0, 1]), "0/1"),
    ],
)
def test_bad_input_names_the_fix(kwargs, X, y, match):
    with pytest.raises(InvalidParameterError, match=match):
        RuleListClassifier(**kwargs).fit(X, y)


def test_read_corels_round_trip_and_errors(tmp_path):
    B, y, _ = random_problem(0, n_rules=3, n=10)
    out = tmp_path / "d.out"
    out.write_text("".join("{a%d} %s\n" % (j, " ".join(str(int(v)) for v in B[:, j])) for j in range(3)))
    (tmp_path / "d.label").write_text(
        "{neg} %s\n{pos} %s\n" % (" ".join(str(int(v == 0)) for v in y), " ".join(str(int(v == 1)) for v in y))
    )
    d = read_corels(out)
    np.testing.assert_array_equal(d.X, B)
    np.testing.assert_array_equal(d.y, y)
    assert d.feature_names == ("a0", "a1", "a2") and d.target_names == ("neg", "pos") and d.minor is None
    bad = tmp_path / "bad.out"
    for text, match in [
        ("a0 1 0 1\n", "braces"),
        ("{a0} 1 0 2\n", "0 or 1"),
        ("{a0} 1 0 1\n{a1} 1 0\n", "first line has 3"),
        ("", "empty"),
    ]:
        bad.write_text(text)
        with pytest.raises(DataFormatError, match=match):
            read_corels(bad, label_path=None)
    bad.write_text("{a0} 1 0 1\n")
    lab = tmp_path / "bad2.label"
    lab.write_text("{n} 1 1 0\n{p} 0 1 1\n")
    with pytest.raises(DataFormatError, match="exactly one 1"):
        read_corels(bad, label_path=lab)
    with pytest.raises(DataFormatError, match="cannot read"):
        read_corels(tmp_path / "missing.out")


@pytest.mark.skipif(not os.path.exists(COMPAS), reason="COMPAS CORELS files not found (../shared/data)")
def test_compas_certified_optimum_at_0015():
    d = read_corels(COMPAS)
    clf = RuleListClassifier(0.015, antecedents="given", feature_names=d.feature_names).fit(d.X, d.y)
    assert clf.certified_
    assert clf.objective_ == pytest.approx(0.37797, abs=5e-6)
    assert [r.condition for r in clf.rules_[:-1]] == ["sex:Male,juvenile-crimes:>0", "priors:>3"]


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(COMPAS), reason="COMPAS CORELS files not found (../shared/data)")
@pytest.mark.parametrize("lam, expected", [(0.01, 0.36797), (0.005, 0.34809)])
def test_compas_certified_optima(lam, expected):
    d = read_corels(COMPAS)
    clf = RuleListClassifier(lam, antecedents="given").fit(d.X, d.y)
    assert clf.certified_ and clf.objective_ == pytest.approx(expected, abs=5e-6)
