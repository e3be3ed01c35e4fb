"""Result types: shape checks, immutability, slicing, round trips, and safe loading."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from scrutiny import DataAttribution, Explanation, InvalidParameterError, MetricResult, load_result
from scrutiny.exceptions import DataFormatError


def make_explanation(n=5, shape=(2, 3)):
    rng = np.random.default_rng(0)
    return Explanation(
        values=rng.normal(size=(n, *shape)),
        target=np.arange(n) % 3,
        method="Test",
        base_values=rng.normal(size=n),
        feature_names=[f"f{i}" for i in range(int(np.prod(shape)))],
        extras={"gap": np.arange(n, dtype=float), "shared": np.ones(7), "note": "x"},
    )


# --------------------------------------------------------------------------- Explanation


def test_explanation_is_immutable_and_copies_its_input():
    values = np.ones((2, 3))
    e = Explanation(values=values, target=0, method="Test")
    values[0, 0] = 99
    assert e.values[0, 0] == 1
    with pytest.raises(ValueError, match="read-only"):
        e.values[0, 0] = 5
    with pytest.raises(AttributeError):
        e.method = "other"
    np.testing.assert_array_equal(e.target, [0, 0])
    assert e.values.dtype == np.float64 and e.target.dtype == np.int64


def test_explanation_shape_checks_name_the_field():
    with pytest.raises(InvalidParameterError, match=r"values must have shape \(n_samples, \.\.\.\); got \(3,\)"):
        Explanation(values=np.ones(3), target=0, method="Test")
    with pytest.raises(InvalidParameterError, match=r"target must hold one int per sample \(2\); got shape \(3,\)"):
        Explanation(values=np.ones((2, 3)), target=[0, 1, 2], method="Test")
    with pytest.raises(InvalidParameterError, match=r"stderr must have the shape of values \(2, 3\); got \(2, 2\)"):
        Explanation(values=np.ones((2, 3)), target=0, method="Test", stderr=np.ones((2, 2)))
    with pytest.raises(InvalidParameterError, match=r"base_values must have the shape of \(n_samples,\) \(2,\)"):
        Explanation(values=np.ones((2, 3)), target=0, method="Test", base_values=np.ones(3))
    with pytest.raises(InvalidParameterError, match=r"feature_names must have 6 entries"):
        Explanation(values=np.ones((2, 2, 3)), target=0, method="Test", feature_names=["a", "b"])
    with pytest.raises(InvalidParameterError, match="data must have 2 rows"):
        Explanation(values=np.ones((2, 3)), target=0, method="Test", data=np.ones((3, 3)))
    with pytest.raises(InvalidParameterError, match=r"params\['model'\] holds a object"):
        Explanation(values=np.ones((2, 3)), target=0, method="Test", params={"model": object()})


def test_slicing_keeps_sample_axis_and_slices_per_sample_extras():
    e = make_explanation()
    one = e[3]
    assert len(one) == 1 and one.values.shape == (1, 2, 3)
    np.testing.assert_array_equal(one.values[0], e.values[3])
    assert one.target.tolist() == [0] and one.extras["gap"].tolist() == [3.0]
    assert one.extras["shared"].shape == (7,) and one.extras["note"] == "x"
    part = e[1:4]
    assert len(part) == 3 and part.feature_names == e.feature_names
    masked = e[e.target == 0]
    np.testing.assert_array_equal(masked.extras["gap"], [0.0, 3.0])
    assert len(e[-1]) == 1 and e[-1].target[0] == e.target[-1]
    with pytest.raises(IndexError, match="out of range"):
        e[5]
    with pytest.raises(IndexError, match="sliced along samples only"):
        e[0, 1]


def test_top_features_orders_by_magnitude():
    e = Explanation(values=[[0.1, -3.0, 2.0, 0.0]], target=0, method="Test")
    assert e.top_features(2).tolist() == [[1, 2]]
    assert e.top_features(2, absolute=False).tolist() == [[2, 0]]
    with pytest.raises(InvalidParameterError, match="k must be a positive int; got 0"):
        e.top_features(0)


def test_round_trip_preserves_feature_names_and_nonfinite_params(tmp_path):
    e = Explanation(values=np.ones((1, 2)), target=1, method="Test", feature_names=["a", "b"], params={"tol": float("inf")})
    again = Explanation.from_dict(json.loads(json.dumps(e.to_dict())))
    assert again.feature_names == ("a", "b") and again.params["tol"] == float("inf")
    path = e.save(tmp_path / "sub" / "e")
    assert path.name == "e.npz" and path.exists()
    assert Explanation.load(tmp_path / "sub" / "e").feature_names == ("a", "b")


# --------------------------------------------------------------------------- DataAttribution


def test_data_attribution_ranks_proponents_and_opponents():
    scores = np.array([[0.5, -2.0, 3.0, 0.0], [-1.0, 1.0, 0.2, -0.1]])
    d = DataAttribution(scores=scores, method="Test", train_ids=[10, 11, 12, 13], self_influence=[1, 2, 3, 4])
    assert d.proponents(2).tolist() == [[12, 10], [11, 12]]
    assert d.opponents(2).tolist() == [[11, 13], [10, 13]]
    assert d.top_k(1, "absolute").tolist() == [[12], [10]]
    assert "positive = helpful" in d.convention
    sub = d[1]
    assert sub.scores.shape == (1, 4) and sub.self_influence.shape == (4,) and sub.train_ids.tolist() == [10, 11, 12, 13]
    with pytest.raises(InvalidParameterError, match="kind must be"):
        d.top_k(1, "best")


def test_data_attribution_shape_checks():
    with pytest.raises(InvalidParameterError, match=r"scores must have shape \(n_test, n_train\)"):
        DataAttribution(scores=np.ones(3), method="Test")
    with pytest.raises(InvalidParameterError, match=r"self_influence must have the shape of \(n_train,\) \(3,\)"):
        DataAttribution(scores=np.ones((2, 3)), method="Test", self_influence=np.ones(2))
    with pytest.raises(InvalidParameterError, match=r"target must have shape \(2,\)"):
        DataAttribution(scores=np.ones((2, 3)), method="Test", target=[1, 2, 3])


def test_data_attribution_file_round_trip(tmp_path):
    d = DataAttribution(scores=np.arange(6.0).reshape(2, 3), method="Test", target=[1, 0], extras={"residual": np.ones(2)})
    loaded = load_result(d.save(tmp_path / "d.npz"))
    assert isinstance(loaded, DataAttribution)
    np.testing.assert_array_equal(loaded.scores, d.scores)
    np.testing.assert_array_equal(loaded.target, [1, 0])
    np.testing.assert_array_equal(loaded.extras["residual"], [1.0, 1.0])


# --------------------------------------------------------------------------- MetricResult


def test_metric_result_mean_and_t_interval_match_scipy():
    values = np.random.default_rng(1).normal(2.0, 1.0, size=40)
    m = MetricResult(name="faithfulness", values=values, higher_is_better=True)
    lo, hi = stats.t.interval(0.95, df=39, loc=values.mean(), scale=stats.sem(values))
    assert m.mean == pytest.approx(values.mean())
    assert m.ci == pytest.approx((lo, hi))
    sub = m[:10]
    assert sub.mean == pytest.approx(values[:10].mean())
    loaded = MetricResult.from_dict(json.loads(json.dumps(m.to_dict())))
    assert loaded.ci == pytest.approx(m.ci) and loaded.higher_is_better is True


def test_metric_result_refuses_nan_and_empty():
    with pytest.raises(InvalidParameterError, match="values must be finite"):
        MetricResult(name="m", values=[1.0, np.nan], higher_is_better=True)
    with pytest.raises(InvalidParameterError, match="at least one"):
        MetricResult(name="m", values=[], higher_is_better=True)


# --------------------------------------------------------------------------- safe loading


def test_loading_refuses_pickled_content_and_foreign_files(tmp_path):
    bad = tmp_path / "evil.npz"
    np.savez(bad, __scrutiny_meta__=np.array(json.dumps({"type": "Explanation", "format_version": 1})),
             values=np.array([object()], dtype=object))
    with pytest.raises(DataFormatError, match="pickled objects or is not an .npz file; scrutiny never unpickles"):
        load_result(bad)
    foreign = tmp_path / "plain.npz"
    np.savez(foreign, a=np.ones(2))
    with pytest.raises(DataFormatError, match="not a scrutiny result file"):
        load_result(foreign)


def test_loading_the_wrong_type_or_a_newer_format_is_refused(tmp_path):
    path = make_explanation().save(tmp_path / "e.npz")
    with pytest.raises(DataFormatError, match="expected a saved DataAttribution; the data holds a 'Explanation'"):
        DataAttribution.load(path)
    d = make_explanation().to_dict()
    d["format_version"] = 99
    with pytest.raises(DataFormatError, match="newer scrutiny"):
        Explanation.from_dict(d)


# --------------------------------------------------------------------------- the one result base


def test_any_result_subclass_round_trips_with_nested_arrays_and_results(tmp_path):
    """A new result type needs only to derive from Result: load_result reads it back."""
    import dataclasses
    import subprocess
    import sys

    from scrutiny.explanation import Result

    @dataclasses.dataclass(frozen=True, eq=False)
    class _ProbeResult(Result):
        weights: np.ndarray
        summary: dict
        parts: list

        _ARRAYS = ("weights",)

    inner = MetricResult(name="acc", values=[1.0, 0.0, 1.0], higher_is_better=True)
    probe = _ProbeResult(weights=np.arange(6.0).reshape(2, 3), summary={"a": np.eye(2), "b": [1, "x"]},
                         parts=[inner, {"inf": float("inf")}])
    loaded = load_result(probe.save(tmp_path / "probe"))
    assert type(loaded) is _ProbeResult
    np.testing.assert_array_equal(loaded.weights, probe.weights)
    np.testing.assert_array_equal(loaded.summary["a"], np.eye(2))
    assert loaded.summary["b"] == [1, "x"] and loaded.parts[1]["inf"] == float("inf")
    assert isinstance(loaded.parts[0], MetricResult) and loaded.parts[0].ci == inner.ci
    with pytest.raises(TypeError, match="not a per-sample result"):
        len(loaded)

    # a fresh interpreter finds a library result type from the module named in the header
    path = DataAttribution(scores=np.ones((2, 3)), method="Probe").save(tmp_path / "da")
    code = f"import scrutiny; r = scrutiny.load_result({str(path)!r}); print(type(r).__name__, r.scores.shape)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["DataAttribution", "(2,", "3)"]


def test_load_result_refuses_unknown_types_and_foreign_modules(tmp_path):
    import json

    path = Explanation(values=np.zeros((1, 2)), target=[0], method="M").save(tmp_path / "e")
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays["__scrutiny_meta__"]))
    meta.update(type="Evil", module="os")
    arrays["__scrutiny_meta__"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "evil.npz", **arrays)
    with pytest.raises(DataFormatError, match="unknown result type 'Evil'"):
        load_result(tmp_path / "evil.npz")


# --------------------------------------------------------------------------- feature names


def test_every_explainer_records_feature_names_and_refuses_a_wrong_count(logistic_trio):
    from conftest import wrap

    X, bg = logistic_trio["X"][:3], logistic_trio["X"]
    from test_common import EXPLAINER_CASES

    for name, factory, _ in EXPLAINER_CASES:
        explainer = factory(wrap(logistic_trio, "torch"), bg)
        explainer.set_params(feature_names=["w", "x", "y", "z"])
        assert explainer.explain(X).feature_names == ("w", "x", "y", "z"), name
        explainer.set_params(feature_names=["w", "x"])
        with pytest.raises(InvalidParameterError, match="feature_names must have 4 entries"):
            explainer.explain(X)
