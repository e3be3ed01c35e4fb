"""evaluate(): the cross product of methods and metrics, explained once, with paired-bootstrap
intervals of the differences between methods."""

from __future__ import annotations

import numpy as np
import pytest

from scrutiny.exceptions import InvalidParameterError
from scrutiny.explanation import Explanation, load_result
from scrutiny.metrics import EvaluationTable, deletion_curve, evaluate, keep_top_k, remove_top_k
from scrutiny.models import as_model


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    w = rng.standard_normal(10)
    X = rng.standard_normal((60, 10))

    def f(Z):
        z = Z @ w
        return np.stack([-z / 2, z / 2], axis=1)

    model = as_model(f, output="logit")
    sign = np.where(model.default_target(X) == 1, 1.0, -1.0)[:, None]
    return model, X, sign * X * w


class CountingExplainer:
    """An explainer returning fixed attributions, counting its calls."""

    def __init__(self, values):
        self.values, self.calls = values, 0

    def explain(self, X, target=None):
        self.calls += 1
        target = np.zeros(len(X), dtype=np.int64) if target is None else target
        return Explanation(values=self.values, target=np.asarray(target), method="counting")


METRICS = {"deletion": deletion_curve, "keep3": (keep_top_k, {"k": 3}), "remove3": (remove_top_k, {"k": 3})}


def test_true_beats_random_and_identical_methods_tie(problem):
    model, X, true = problem
    table = evaluate({"true": true, "copy": true.copy(), "random": "random", "random2": "random"}, METRICS, model, X,
                     n_bootstrap=1000, random_state=0)
    assert table.methods == ("true", "copy", "random", "random2")
    assert table.metrics == ("deletion", "keep3", "remove3")
    for metric in table.metrics:
        same = table.difference("true", "copy", metric)
        assert same["mean"] == 0.0 and same["ci"][0] <= 0.0 <= same["ci"][1] and same["better"] is None
        two_random = table.difference("random", "random2", metric)
        assert two_random["ci"][0] < 0.0 < two_random["ci"][1] and two_random["better"] is None
        better = table.difference("true", "random", metric)
        assert better["better"] == "true"
        assert better["ci"][0] > 0 or better["ci"][1] < 0
        flipped = table.difference("random", "true", metric)
        assert flipped["mean"] == -better["mean"] and flipped["ci"] == [-better["ci"][1], -better["ci"][0]]
    # deletion: lower is better, so true's advantage is a negative difference
    assert table.difference("true", "random", "deletion")["ci"][1] < 0
    cell = table.result("true", "keep3")
    np.testing.assert_array_equal(cell.values, keep_top_k(model, X, true, k=3).values)


def test_bootstrap_interval_matches_the_difference_of_means(problem):
    """The paired interval is centred on the mean difference and narrower than the unpaired
    one (the two methods share per-sample difficulty)."""
    model, X, true = problem
    table = evaluate({"true": true, "random": "random"}, {"keep3": (keep_top_k, {"k": 3})}, model, X,
                     n_bootstrap=2000, random_state=1)
    d = table.difference("true", "random", "keep3")
    a, b = table.result("true", "keep3"), table.result("random", "keep3")
    assert d["mean"] == pytest.approx(a.mean - b.mean)
    assert d["ci"][0] < d["mean"] < d["ci"][1]
    diff = a.values - b.values
    se = diff.std(ddof=1) / np.sqrt(len(diff))
    assert d["ci"][1] - d["ci"][0] == pytest.approx(2 * 1.96 * se, rel=0.15)


def test_each_explainer_runs_once_and_same_seed_same_table(problem):
    model, X, true = problem
    exp = CountingExplainer(true)
    t1 = evaluate({"c": exp, "random": "random"}, METRICS, model, X, random_state=5)
    assert exp.calls == 1
    t2 = evaluate({"c": exp, "random": "random"}, METRICS, model, X, random_state=5)
    for metric in METRICS:
        np.testing.assert_array_equal(t1.result("random", metric).values, t2.result("random", metric).values)
        assert t1.difference("c", "random", metric) == t2.difference("c", "random", metric)
    t3 = evaluate({"c": exp, "random": "random"}, METRICS, model, X, random_state=6)
    assert not np.array_equal(t1.result("random", "keep3").values, t3.result("random", "keep3").values)


def test_round_trip(tmp_path, problem):
    model, X, true = problem
    table = evaluate({"true": true, "random": "random"}, METRICS, model, X, random_state=0)
    back = load_result(table.save(tmp_path / "table"))
    assert isinstance(back, EvaluationTable)
    assert back.methods == table.methods and back.metrics == table.metrics
    assert back.differences == table.differences
    for metric in table.metrics:
        np.testing.assert_array_equal(back.result("true", metric).values, table.result("true", metric).values)
    assert "true" in str(back)


def test_errors(problem):
    model, X, true = problem
    with pytest.raises(InvalidParameterError, match="explainers must be"):
        evaluate({}, METRICS, model, X)
    with pytest.raises(InvalidParameterError, match=r"metrics\['bad'\]"):
        evaluate({"t": true}, {"bad": 3}, model, X)
    with pytest.raises(InvalidParameterError, match="n_bootstrap"):
        evaluate({"t": true}, METRICS, model, X, n_bootstrap=10)


def test_bootstrap_by_counts_equals_resampling_by_index():
    from scrutiny.metrics.evaluation import _paired_bootstrap_means

    diffs = np.random.default_rng(2).standard_normal((3, 37))
    got = _paired_bootstrap_means(diffs, 450, seed=9)  # 450: more than one chunk, a partial last one
    rng = np.random.default_rng(9)
    idx = np.concatenate([rng.integers(0, 37, size=(c, 37)) for c in (200, 200, 50)])
    np.testing.assert_allclose(got, diffs[:, idx].mean(axis=2).T)
