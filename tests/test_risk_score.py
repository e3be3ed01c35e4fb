"""RiskScoreClassifier: exact optimum by enumeration, bounds and sparsity, errors, results, the binariser."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from scrutiny.exceptions import ConvergenceWarning, InvalidParameterError
from scrutiny.explanation import load_result
from scrutiny.glassbox.binarize import ThresholdBinarizer
from scrutiny.glassbox.risk_score import RiskScoreClassifier

pytest.importorskip("pyscipopt")


def _problem(seed, n=150, p=4):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 2, size=(n, p)).astype(float)
    X[:, -1] = rng.integers(0, 4, size=n)  # one integer-valued column
    w = rng.normal(0, 1.5, size=p)
    z = X @ w - X.mean(0) @ w + rng.normal(0, 1.0, size=n)
    y = (z > 0).astype(int)
    return X, y


def _brute_force(X, y, k, lo, hi, scale, c0):
    """Enumerate every integer vector with <= k non-zeros in [lo, hi]; the offset by scipy's bounded 1-D solver."""
    ys = np.where(y == 1, 1.0, -1.0)
    p = X.shape[1]
    results = []
    for size in range(k + 1):
        for sup in itertools.combinations(range(p), size):
            for vals in itertools.product([v for v in range(lo, hi + 1) if v != 0], repeat=size):
                lam = np.zeros(p)
                lam[list(sup)] = vals
                t = X @ lam

                def f(b, t=t):
                    return float(np.mean(np.logaddexp(0.0, -ys * (t + b) / scale)))

                r = minimize_scalar(f, bounds=(-60, 60), method="bounded", options={"xatol": 1e-10})
                results.append((r.fun + c0 * size, lam))
    results.sort(key=lambda r: r[0])
    return results


@pytest.mark.parametrize("seed,k,c0,scale", [(0, 2, 1e-6, 1.0), (1, 1, 1e-6, 2.0), (2, 2, 0.02, 1.5)])
def test_certify_equals_enumeration(seed, k, c0, scale):
    X, y = _problem(seed)
    brute = _brute_force(X, y, k, -3, 3, scale, c0)
    best_obj, best_lam = brute[0]
    clf = RiskScoreClassifier(k, coef_bounds=(-3, 3), c0=c0, scale=scale, method="certify", time_limit=30.0,
                              intercept_bounds=(-60, 60)).fit(X, y)
    assert clf.certified_
    assert clf.objective_ == pytest.approx(best_obj, rel=1e-6, abs=1e-9)
    if brute[1][0] - best_obj > 1e-5:  # unique optimum: the same points
        np.testing.assert_array_equal(clf.coef_, best_lam)
    assert clf.lower_bound_ <= best_obj + 1e-9
    # the heuristic at the same scale is feasible: never below the optimum, and within the reported gap's reach
    heur = RiskScoreClassifier(k, coef_bounds=(-3, 3), c0=c0, scale=scale, intercept_bounds=(-60, 60)).fit(X, y)
    assert heur.objective_ >= clf.lower_bound_ - 1e-9
    assert heur.objective_ >= best_obj - 1e-9
    assert np.count_nonzero(heur.coef_) <= k


def test_objective_matches_recomputed_loss():
    X, y = _problem(3, n=200, p=6)
    clf = RiskScoreClassifier(3).fit(X, y)
    ys = np.where(y == 1, 1.0, -1.0)
    loss = np.mean(np.logaddexp(0.0, -ys * clf.decision_function(X)))
    assert clf.loss_ == pytest.approx(loss, rel=1e-10)
    assert clf.objective_ == pytest.approx(loss + clf.c0 * np.count_nonzero(clf.coef_), rel=1e-10)
    # the pool is sorted and every member is a valid model of the problem
    objs = [m.objective for m in clf.pool_]
    assert objs == sorted(objs)
    assert all(np.count_nonzero(m.points) <= 3 for m in clf.pool_)


@pytest.mark.parametrize("method", ["heuristic", "certify"])
def test_never_exceeds_k_or_bounds(method):
    rng = np.random.default_rng(5)
    X = rng.integers(0, 2, size=(300, 8)).astype(float)
    y = (X @ np.array([3, -3, 2, 2, -2, 1, 1, 0.5]) + rng.normal(0, 1, 300) > 1).astype(int)
    names = [f"f{j}" for j in range(8)]
    bounds = {"f0": (0, 2), "f1": (-1, 0), "f2": (0, 0)}
    clf = RiskScoreClassifier(3, coef_bounds=bounds, feature_names=names, method=method, time_limit=20.0).fit(X, y)
    for pts in [clf.coef_] + [m.points for m in clf.pool_]:
        assert np.count_nonzero(pts) <= 3
        assert 0 <= pts[0] <= 2 and -1 <= pts[1] <= 0 and pts[2] == 0
        assert np.all(np.abs(pts[3:]) <= 5)
    # the unconstrained fit wants f0 > 2 and f1 < -1: the bounds bind
    free = RiskScoreClassifier(3, feature_names=names).fit(X, y)
    assert free.coef_[0] > 2 or free.coef_[1] < -1


def test_stopped_early_reports_gap():
    rng = np.random.default_rng(7)
    X = rng.integers(0, 2, size=(3000, 30)).astype(float)
    y = (X @ rng.normal(0, 1, 30) + rng.normal(0, 2, 3000) > 0).astype(int)
    with pytest.warns(ConvergenceWarning, match="time_limit"):
        clf = RiskScoreClassifier(5, method="certify", time_limit=0.01).fit(X, y)
    assert not clf.certified_
    assert clf.gap_ > 0
    assert clf.lower_bound_ < clf.objective_
    assert clf.relative_gap_ == pytest.approx(clf.gap_ / clf.objective_)


def test_heuristic_recovers_planted_score():
    rng = np.random.default_rng(11)
    X = rng.integers(0, 2, size=(4000, 10)).astype(float)
    true = np.array([3, -2, 0, 0, 4, 0, 0, -1, 0, 0])
    y = (rng.random(4000) < 1 / (1 + np.exp(-(X @ true - 2) / 1.0))).astype(int)
    clf = RiskScoreClassifier(4, coef_bounds=(-5, 5), scale=1.0).fit(X, y)
    np.testing.assert_array_equal(np.flatnonzero(clf.coef_), np.flatnonzero(true))
    assert np.abs(clf.coef_ - true).max() <= 1


def test_predictions_score_card_and_roundtrip(tmp_path):
    X, y = _problem(4, n=300, p=5)
    clf = RiskScoreClassifier(3, coef_bounds=(-3, 3)).fit(X, y)
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    total = X @ clf.coef_
    np.testing.assert_allclose(proba[:, 1], 1 / (1 + np.exp(-(total + clf.intercept_) / clf.scale_)))
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[(proba[:, 1] > 0.5).astype(int)])
    card = clf.explain_global()
    assert list(card.points) == [int(v) for v in clf.coef_[clf.coef_ != 0]]
    # every reachable total of binary/integer features is tabulated, with its risk
    for t in np.unique(total):
        i = int(np.flatnonzero(card.totals == t)[0])
        assert card.risks[i] == pytest.approx(1 / (1 + np.exp(-(t + clf.intercept_) / clf.scale_)))
    same = load_result(card.save(tmp_path / "card"))
    np.testing.assert_array_equal(same.points, card.points)
    assert same.features == card.features and str(same) == str(card)
    cal = clf.calibration(X, y)
    again = load_result(cal.save(tmp_path / "cal"))
    assert again.ece == pytest.approx(cal.ece)
    assert "points" in str(clf)
    from sklearn.base import clone

    assert clone(clf).get_params() == clf.get_params()


def test_calibration_closed_form():
    from scrutiny.glassbox._risk_card import calibration_table

    risk = np.array([0.2, 0.2, 0.2, 0.2, 0.8, 0.8])
    y = np.array([0, 0, 1, 1, 1, 1])
    cal = calibration_table(risk, y)
    np.testing.assert_allclose(cal.predicted, [0.2, 0.8])
    np.testing.assert_allclose(cal.observed, [0.5, 1.0])
    assert cal.ece == pytest.approx((4 * 0.3 + 2 * 0.2) / 6)
    assert cal.mce == pytest.approx(0.3)


@pytest.mark.parametrize(
    "X,y,kwargs,match",
    [
        (np.ones((5, 2)), np.zeros(5), {}, "exactly two classes"),
        (np.ones((1, 2)), np.zeros(1), {}, "at least 2"),
        (np.array([[0.0, np.nan], [1.0, 0.0], [1, 1]]), np.array([0, 1, 1]), {}, "NaN"),
        (np.eye(3), np.array([0, 1, 1]), {"k": 4}, "k=4 is larger"),
        (np.eye(3), np.array([0, 1, 1]), {"k": 1, "coef_bounds": (3, -3)}, "infeasible"),
        (np.eye(3), np.array([0, 1, 1]), {"k": 1, "coef_bounds": (1, 3)}, "must contain 0"),
        (np.eye(3), np.array([0, 1, 1]), {"k": 1, "coef_bounds": {"nope": (0, 1)}}, "unknown features"),
        (np.eye(3), np.array([0, 1, 1]), {"k": 1, "method": "exact"}, "method must be"),
    ],
)
def test_errors(X, y, kwargs, match):
    with pytest.raises(InvalidParameterError, match=match):
        RiskScoreClassifier(**kwargs).fit(X, y)


def test_non_numeric_column_error():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"age": [20, 30, 40, 50], "sex": ["m", "f", "m", "f"]})
    with pytest.raises(InvalidParameterError, match="categorical_features"):
        RiskScoreClassifier(1).fit(df, [0, 1, 0, 1])
    with pytest.raises(InvalidParameterError, match="declare it categorical"):
        ThresholdBinarizer().fit(df)
    Z = ThresholdBinarizer(n_thresholds=2, categorical_features=["sex"]).fit(df)
    assert Z.feature_names_out_[-2:] == ["sex==f", "sex==m"]
    np.testing.assert_array_equal(Z.transform(df)[:, -1], [1, 0, 1, 0])


def test_binarizer_thresholds_come_from_training_fold_only():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(200, 2))
    test = rng.normal(5, 1, size=(50, 2))  # a shifted test set must not move any threshold
    b = ThresholdBinarizer(n_thresholds=4).fit(train)
    expected = np.quantile(train[:, 0], [0.2, 0.4, 0.6, 0.8], method="lower")
    got = [v for j, kind, v in b.rules_ if j == 0]
    np.testing.assert_allclose(got, expected)
    before = list(b.rules_)
    b.transform(test)
    assert b.rules_ == before
    np.testing.assert_array_equal(b.transform(test)[:, 0], test[:, 0] <= expected[0])
    refit = ThresholdBinarizer(n_thresholds=4).fit(np.vstack([train, test]))
    assert refit.rules_ != b.rules_


def test_certify_loss_oracle_is_exact_and_its_cuts_are_valid():
    """F(lam) = min_b loss (the quantity LCPA cuts): equal to scipy's 1-D minimum along a chain of warm starts
    that jumps between far-apart points, and every tangent cut stays below F elsewhere."""
    from scrutiny.glassbox._risk_certify import _Loss

    X, y = _problem(6, n=200, p=5)
    ys = np.where(y == 1, 1.0, -1.0)
    scale = 0.5  # a small scale puts successive optimal offsets far apart (the case that once broke Newton)
    F = _Loss(X, ys, scale, (-200.0, 200.0))
    rng = np.random.default_rng(0)
    points = [np.full(5, 5.0), np.zeros(5), np.full(5, -5.0), np.zeros(5), rng.integers(-5, 6, 5).astype(float)]
    cuts = []
    for lam in points:
        val, grad, b = F(lam)
        ref = minimize_scalar(lambda c: np.mean(np.logaddexp(0, -ys * (X @ lam + c) / scale)), bounds=(-200, 200),
                              method="bounded", options={"xatol": 1e-11}).fun
        assert val == pytest.approx(ref, rel=1e-7, abs=1e-10)
        cuts.append((lam, val, grad))
    for lam in points:
        val = F(lam)[0]
        for at, v, g in cuts:
            assert v + g @ (lam - at) <= val + 1e-9


def test_score_card_figure_shows_every_point():
    import matplotlib

    matplotlib.use("Agg")
    X, y = _problem(8, n=200, p=5)
    clf = RiskScoreClassifier(3, coef_bounds=(-3, 3), feature_names=list("abcde")).fit(X, y)
    fig = clf.score_card_.plot()
    table = fig.axes[0].tables[0]
    texts = {cell.get_text().get_text() for cell in table.get_celld().values()}
    for name, pts in zip(clf.score_card_.features, clf.score_card_.points):
        assert name in texts and f"{int(pts):+d}" in texts
    line = fig.axes[1].lines[0]
    np.testing.assert_allclose(line.get_ydata(), 100 * clf.score_card_.risks)
    ax = clf.calibration(X, y).plot()
    assert ax.get_title().startswith("ECE")


def test_certify_without_pyscipopt_names_the_extra(monkeypatch):
    import sys

    from scrutiny.exceptions import MissingDependencyError

    monkeypatch.setitem(sys.modules, "pyscipopt", None)  # makes `import pyscipopt` raise ImportError
    X, y = _problem(9, n=60, p=3)
    with pytest.raises(MissingDependencyError, match=r"scrutiny\[glassbox\]"):
        RiskScoreClassifier(1, method="certify").fit(X, y)
