"""compare_models: DeLong against its definition, pooled metrics against a manual cross-validation, round trip."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from scrutiny.exceptions import InvalidParameterError
from scrutiny.explanation import load_result
from scrutiny.glassbox.binarize import ThresholdBinarizer
from scrutiny.glassbox.compare import Binarized, compare_models, delong
from scrutiny.glassbox.risk_score import RiskScoreClassifier


def _delong_by_definition(y, s):
    pos, neg = s[y == 1], s[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(1), psi.mean(0)
    return psi.mean(), v10.var(ddof=1) / pos.size + v01.var(ddof=1) / neg.size, v10, v01


def test_delong_matches_definition():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 120)
    s1 = np.round(y + rng.normal(0, 1, 120), 1)  # ties included
    s2 = np.round(0.5 * y + rng.normal(0, 1, 120), 1)
    aucs, cov = delong(y, np.vstack([s1, s2]))
    a1, v1, p1, q1 = _delong_by_definition(y, s1)
    a2, v2, p2, q2 = _delong_by_definition(y, s2)
    np.testing.assert_allclose(aucs, [a1, a2])
    np.testing.assert_allclose(np.diag(cov), [v1, v2])
    c12 = np.cov(p1, p2)[0, 1] / p1.size + np.cov(q1, q2)[0, 1] / q1.size
    assert cov[0, 1] == pytest.approx(c12)


def _data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = (X[:, 0] - X[:, 1] + 0.5 * rng.normal(size=n) > 0).astype(int)
    return X, y


def test_compare_matches_manual_cross_validation(tmp_path):
    X, y = _data()
    res = compare_models(X, y, {"lr": LogisticRegression(), "risk": Binarized(RiskScoreClassifier(2), n_thresholds=4)},
                         cv=3, random_state=1)
    fold = res.extras["fold"]
    proba = np.empty(len(y))
    for f in range(3):
        tr, te = fold != f, fold == f
        proba[te] = LogisticRegression().fit(X[tr], y[tr]).predict_proba(X[te])[:, 1]
    i = res.models.index("lr")
    assert res.accuracy[i] == pytest.approx(np.mean((proba > 0.5) == y))
    from sklearn.metrics import roc_auc_score

    assert res.auc[i] == pytest.approx(roc_auc_score(y, proba))
    assert res.auc_ci[i, 0] < res.auc[i] < res.auc_ci[i, 1]
    assert res.kinds == ["black box", "glass box"] and res.reference == "lr"
    assert res.auc_diff[i] == 0 and res.size[res.models.index("risk")] <= 2
    # the risk score's thresholds were learned inside each training fold
    j = res.models.index("risk")
    sizes = np.bincount(fold)
    assert res.accuracy[j] == pytest.approx(np.sum(res.fold_accuracy[j] * sizes) / len(y))
    same = load_result(res.save(tmp_path / "cmp"))
    assert same.models == res.models and str(same) == str(res)
    np.testing.assert_allclose(same.auc_diff_ci, res.auc_diff_ci)
    assert "risk" in str(res) and "difference" in res.conclusion()[0]


def test_binarized_learns_inside_the_fold():
    X, y = _data(200)
    m = Binarized(RiskScoreClassifier(2), n_thresholds=3).fit(X[:100], y[:100])
    assert m.binarizer_.rules_ == ThresholdBinarizer(3).fit(X[:100]).rules_
    assert m.binarizer_.rules_ != ThresholdBinarizer(3).fit(X).rules_


def test_compare_errors():
    X, y = _data(50)
    with pytest.raises(InvalidParameterError, match="two classes"):
        compare_models(X, np.zeros(50), {"lr": LogisticRegression()})
    with pytest.raises(InvalidParameterError, match="cv must be"):
        compare_models(X, y, {"lr": LogisticRegression()}, cv=1)


@pytest.mark.slow
def test_default_models_on_breast_cancer():
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    res = compare_models(X, y, cv=3)
    assert {"risk score", "logistic regression", "gradient boosting", "MLP"} <= set(res.models)
    assert res.auc[res.models.index("risk score")] > 0.9


def test_sklearn_pipeline_and_cross_val_score():
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline

    X, y = _data(240)
    pipe = make_pipeline(ThresholdBinarizer(4), RiskScoreClassifier(2))
    a = cross_val_score(pipe, X, y, cv=3, scoring="roc_auc")
    b = cross_val_score(Binarized(RiskScoreClassifier(2), n_thresholds=4), X, y, cv=3, scoring="roc_auc")
    assert np.all(np.isfinite(a)) and np.all(a > 0.8)
    np.testing.assert_allclose(a, b)  # the same model either way
