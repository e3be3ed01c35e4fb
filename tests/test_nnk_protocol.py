"""NNK's place in the library: the data-attribution protocol, the estimator contract (clone,
get/set_params, repr), result round trips, the deprecated old homes, and the import graph."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

import scrutiny
from scrutiny import load_result
from scrutiny.exceptions import CapabilityError, InvalidParameterError
from scrutiny.explanation import DataAttribution
from scrutiny.nnk import (
    NNK,
    GeneralizationMonitor,
    GeneralizationResult,
    NNKLeaveOneOut,
    OutOfSupport,
    out_of_support,
)


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=3.0, size=(3, 5))
    y = np.repeat(np.arange(3), 40)
    X = centers[y] + rng.normal(size=(120, 5))
    Q = centers[[0, 1, 2, 1]] + 1.5 * rng.normal(size=(4, 5))
    return X, y, Q


def assert_same_result(a, b):
    """Every field equal: arrays exactly (dtype included), everything else by ==."""
    assert type(a) is type(b)
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            assert isinstance(x, np.ndarray) and isinstance(y, np.ndarray), f.name
            assert x.dtype == y.dtype, f.name
            np.testing.assert_array_equal(x, y, err_msg=f.name)
        elif isinstance(x, dict):
            assert x.keys() == y.keys(), f.name
            for k in x:
                if isinstance(x[k], np.ndarray):
                    np.testing.assert_array_equal(x[k], y[k], err_msg=f"{f.name}[{k}]")
                else:
                    assert x[k] == y[k], f"{f.name}[{k}]"
        else:
            assert x == y or (x != x and y != y), f.name  # NaN equals NaN here


# --------------------------------------------------------------------------- estimator contract


def test_clone_refits_to_identical_results(blobs, rng_guard):
    from sklearn.base import clone

    X, y, Q = blobs
    for est in (NNK(k=12), NNK(k=9, kernel="gaussian", solver="fista", sigma=1.5, batch_size=3)):
        a = est.fit(X, y).attribute(Q)
        twin = clone(est)
        assert twin is not est and not hasattr(twin, "n_train_")
        assert twin.get_params() == est.get_params()
        b = twin.fit(X, y).attribute(Q)
        np.testing.assert_array_equal(a.scores, b.scores)
        np.testing.assert_array_equal(a.target, b.target)
        np.testing.assert_array_equal(est.loo_error().nnk_pred, twin.loo_error().nnk_pred)


def test_get_set_params_and_repr():
    est = NNK(k=7, kernel="gaussian")
    params = est.get_params()
    assert list(params) == ["model", "k", "kernel", "solver", "sigma", "tol", "max_iter", "polish", "batch_size",
                            "knn_backend"]
    assert est.set_params(**params) is est and est.get_params() == params
    assert repr(est) == "NNK(k=7, kernel='gaussian')"  # non-defaults only
    assert repr(NNK()) == "NNK()"
    with pytest.raises(InvalidParameterError, match="NNK has no parameter 'bad_name'"):
        est.set_params(bad_name=1)
    # constraints are checked at fit/attribute time, so set_params cannot sneak a bad value in
    X = np.random.default_rng(0).normal(size=(30, 3))
    fitted = NNK(k=5).fit(X)
    fitted.set_params(solver="newton")
    with pytest.raises(InvalidParameterError, match="NNK: solver must be one of 'exact', 'fista'; got 'newton'"):
        fitted.attribute(X[:2])
    with pytest.raises(InvalidParameterError, match="NNK: k must be an int"):
        NNK(k=2.5).fit(X)


def test_threads_and_global_rng_untouched(blobs, rng_guard):
    import torch
    from threadpoolctl import threadpool_info

    X, y, Q = blobs
    before = (torch.get_num_threads(), [p["num_threads"] for p in threadpool_info()])
    est = NNK(k=10).fit(X, y)
    est.attribute(Q)
    est.loo_error()
    assert (torch.get_num_threads(), [p["num_threads"] for p in threadpool_info()]) == before


# --------------------------------------------------------------------------- the protocol


def test_attribute_target_is_a_label_and_leaves_the_weights_alone(blobs):
    X, y, Q = blobs
    names = np.array(["ant", "bee", "cat"])
    est = NNK(k=10).fit(X, names[y])
    default = est.attribute(Q)
    np.testing.assert_array_equal(names[default.target], est.predict(Q))  # None = predicted class
    given = est.attribute(Q, target=["cat", "cat", "ant", "bee"])
    np.testing.assert_array_equal(given.target, [2, 2, 0, 1])  # indices into classes_
    np.testing.assert_array_equal(given.scores, default.scores)
    np.testing.assert_array_equal(est.attribute(Q, target="bee").target, [1, 1, 1, 1])
    with pytest.raises(InvalidParameterError, match="target holds 'dog', which is not a training class"):
        est.attribute(Q, target="dog")
    with pytest.raises(InvalidParameterError, match=r"one per query \(4\)"):
        est.attribute(Q, target=["ant", "bee"])
    with pytest.raises(InvalidParameterError, match="target needs the class labels"):
        NNK(k=10).fit(X).attribute(Q, target=0)


def test_explain_is_deprecated_and_equals_attribute(blobs):
    X, y, Q = blobs
    est = NNK(k=10).fit(X, y)
    with pytest.warns(DeprecationWarning, match=r"use NNK\.attribute\(X, target=None\)"):
        old = est.explain(Q)
    new = est.attribute(Q)
    np.testing.assert_array_equal(old.scores, new.scores)
    np.testing.assert_array_equal(old.target, new.target)


def test_nnk_on_a_torch_model_reads_its_features(blobs):
    from scrutiny.models import as_model
    from scrutiny.zoo import make_model

    X, y, Q = blobs
    net = make_model("mlp", (5,), 3, hidden=(16,), random_state=0)
    feats = as_model(net).features
    on_model = NNK(net, k=10).fit(X, y)
    on_features = NNK(k=10).fit(feats(X), y)
    a, b = on_model.attribute(Q), on_features.attribute(feats(Q))
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(on_model.predict(Q), on_features.predict(feats(Q)))
    np.testing.assert_array_equal(out_of_support(on_model, Q).residual, out_of_support(on_features, feats(Q)).residual)
    assert on_model.n_features_in_ == 16 and repr(on_model).startswith("NNK(model=")


def test_a_model_without_features_is_refused(iris):
    from sklearn.linear_model import LogisticRegression

    X, y = iris
    clf = LogisticRegression(max_iter=500).fit(X, y)
    with pytest.raises(CapabilityError, match="NNK: model must provide penultimate features"):
        NNK(clf, k=5).fit(X, y)


# --------------------------------------------------------------------------- results


def test_nnk_results_save_and_load(blobs, tmp_path):
    X, y, Q = blobs
    names = np.array(["ant", "bee", "cat"])
    est = NNK(k=10, kernel="gaussian").fit(X, names[y])
    att = est.attribute(Q)
    loo = est.loo_error()
    oos = out_of_support(est, Q, names[[0, 1, 2, 0]])
    bare = out_of_support(est, Q, reference=False)
    assert bare.label_disagreement is None and bare.residual_pvalue is None
    for i, res in enumerate((att, loo, oos, bare)):
        back = load_result(res.save(tmp_path / f"r{i}"))
        assert_same_result(res, back)
        assert_same_result(res, type(res).from_dict(res.to_dict()))
    assert isinstance(load_result(tmp_path / "r1.npz"), NNKLeaveOneOut)
    assert load_result(tmp_path / "r2.npz").predicted.tolist() == oos.predicted.tolist()  # string labels survive
    assert isinstance(att, DataAttribution) and len(oos) == 4 and len(oos[1:3]) == 2


def generalization_result(n_epochs=4):
    rng = np.random.default_rng(3)
    z = rng.uniform(size=n_epochs)
    return GeneralizationResult(
        epochs=np.arange(1, n_epochs + 1), loo_nnk_error=z, loo_knn_error=z + 0.1, loo_nnk_soft_error=z / 2,
        loo_nnk_error_per_class=rng.uniform(size=(n_epochs, 2)), loo_knn_error_per_class=rng.uniform(size=(n_epochs, 2)),
        train_error=z / 3, test_error=z + rng.normal(scale=0.1, size=n_epochs), nnk_test_error=np.full(n_epochs, np.nan),
        knn_test_error=np.full(n_epochs, np.nan), mean_residual=z, mean_neighbors=z * 10, max_kkt_residual=z * 0,
        seconds=z, classes=np.array([3, 7]), params={"k": 10, "n_test": None})


def test_generalization_result_saves_loads_and_slices(tmp_path):
    res = generalization_result()
    back = load_result(res.save(tmp_path / "gen.npz"))
    assert_same_result(res, back)
    assert back.correlation() == res.correlation() and back.best_epoch() == res.best_epoch()
    d = res.to_dict()
    assert set(d["correlations"]) >= {"loo_nnk_error~test_error"}
    assert_same_result(res, GeneralizationResult.from_dict(d))  # the correlations are ignored on the way back
    assert len(res) == 4 and res[-2:].epochs.tolist() == [3, 4]
    np.testing.assert_array_equal(res[-2:].loo_nnk_error_per_class, res.loo_nnk_error_per_class[-2:])
    np.testing.assert_array_equal(res[-2:].classes, res.classes)  # not per epoch: kept whole


def test_generalization_monitor_contract():
    from sklearn.base import clone

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 4)), rng.integers(0, 2, size=30)
    mon = GeneralizationMonitor(X, y, k=5, n_loo=10)
    twin = clone(mon)
    assert twin.X_train is not X and np.array_equal(twin.X_train, X) and twin.k == 5
    assert repr(mon).startswith("GeneralizationMonitor(<array (30, 4) float64>, y_train=") and "k=5" in repr(mon)
    assert mon.set_params(**mon.get_params()) is mon
    with pytest.raises(InvalidParameterError, match="GeneralizationMonitor has no parameter 'kk'"):
        mon.set_params(kk=3)
    with pytest.raises(InvalidParameterError, match="has recorded no epoch yet"):
        mon.result()
    for bad, match in (({"kernel": "rbf"}, "kernel must be one of"), ({"test_nnk": True}, "test_nnk=True needs X_test"),
                       ({"X_test": X}, "X_test and y_test must be given together")):
        with pytest.raises(InvalidParameterError, match=match):
            clone(mon).set_params(**bad)(1, None)


# --------------------------------------------------------------------------- old homes, imports


def test_old_homes_warn_and_point_to_scrutiny_nnk():
    import scrutiny.data_attribution as da
    import scrutiny.diagnostics as diag
    import scrutiny.nnk as nnk

    for name in ("NNK", "NNKSolution", "NNKLeaveOneOut", "NNK_CONVENTION", "nnk_graph"):
        with pytest.warns(DeprecationWarning, match=rf"use `from scrutiny\.nnk import {name}`"):
            assert getattr(da, name) is getattr(nnk, name)
    for name in ("GeneralizationMonitor", "GeneralizationResult", "nnk_generalization", "OutOfSupport",
                 "out_of_support"):
        with pytest.warns(DeprecationWarning, match=rf"use `from scrutiny\.nnk import {name}`"):
            assert getattr(diag, name) is getattr(nnk, name)
    with pytest.warns(DeprecationWarning):  # every access warns, not only the first
        da.NNK
    with pytest.raises(AttributeError):
        diag.no_such_name
    assert scrutiny.NNK is nnk.NNK and OutOfSupport is nnk.OutOfSupport
    assert "NNK" not in da.__all__ and "nnk" in scrutiny.__all__


def test_estimator_never_imports_the_graph_and_import_is_light():
    code = ("import sys, scrutiny.nnk.estimator, scrutiny.nnk; "
            "print('scrutiny.nnk.graph' in sys.modules, 'torch' in sys.modules, 'scipy.sparse' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False"]
