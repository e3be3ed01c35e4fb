"""Representer points: stationarity, exact decomposition, scaling, sensitivity maps, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax

from scrutiny.data_attribution import RepresenterPoints
from scrutiny.exceptions import CapabilityError, InvalidParameterError, NotFittedError


@pytest.fixture(scope="module")
def digits_mlp():
    from scrutiny.data import load_digits
    from scrutiny.zoo import make_model, train_model

    d = load_digits()
    X, y = d.X[:700], d.y[:700]
    model = make_model("mlp", (1, 8, 8), 10, hidden=(24,), activation="tanh", random_state=0)
    train_model(model, X, y, epochs=3, lr=3e-3, random_state=0)
    return model, X, y, d.X[1500:1560], d.y[1500:1560]


@pytest.mark.parametrize("bias", ["regularized", "free", "none"])
def test_decomposition_reproduces_pre_activations(digits_mlp, bias):
    model, X, y, Xte, _ = digits_mlp
    rps = RepresenterPoints(model, l2=0.01, bias=bias).fit(X, y)
    assert rps.stationarity_residual_ <= rps.tol
    for data in (X, Xte):
        dec = rps.decomposition(data)
        assert dec.max_abs_error < 1e-6
        assert np.corrcoef(dec.pre_activations.ravel(), dec.reconstructed.ravel())[0, 1] >= 0.99
    # the scores of each test point sum to its target pre-activation (minus the free intercept)
    att = rps.attribute(Xte)
    pre = rps.pre_activations(Xte)[np.arange(len(Xte)), att.target]
    np.testing.assert_allclose(att.scores.sum(axis=1) + att.extras["intercept"], pre, atol=1e-6)
    assert att.extras["decomposition_error"].max() < 1e-6
    if bias == "free":
        assert np.abs(rps.alpha_.sum(axis=0)).max() < 1e-6  # stationarity in the free bias
    if bias == "none":
        assert np.all(rps.intercept_ == 0)


def test_alpha_follows_the_paper_scaling(digits_mlp):
    model, X, y, _, _ = digits_mlp
    l2 = 0.02  # the paper's lambda = l2 / 2
    rps = RepresenterPoints(model, l2=l2, fit_to="labels").fit(X, y)
    F = rps.train_features_
    Phi = F @ rps.coef_.T + rps.intercept_
    dL_dPhi = softmax(Phi, axis=1) - np.eye(10)[y]  # softmax cross-entropy
    lam, n = l2 / 2, len(y)
    np.testing.assert_allclose(rps.alpha_, -dL_dPhi / (2 * lam * n), rtol=1e-12, atol=1e-15)
    # W = sum_i alpha_i f~_i^T (Theorem 3.1), with the bias folded in as a constant feature
    Ft = np.hstack([F, np.ones((n, 1))])
    W = np.hstack([rps.coef_, rps.intercept_[:, None]])
    assert np.linalg.norm(W - rps.alpha_.T @ Ft) / np.linalg.norm(W) < 1e-8
    np.testing.assert_allclose(rps.importance_, (1 - softmax(Phi, 1)[np.arange(n), y]) / (l2 * n), rtol=1e-10)


def test_fit_to_predictions_imitates_the_model(digits_mlp, rng_guard):
    model, X, y, Xte, _ = digits_mlp
    rps = RepresenterPoints(model, l2=0.006).fit(X, y)
    assert rps.diagnostics_["fidelity_agreement"] > 0.9 and rps.diagnostics_["fidelity_corr"] > 0.9
    att = rps.attribute(Xte[:4])
    assert att.scores.shape == (4, 700) and att.method == "RepresenterPoints"
    assert att.proponents(3).shape == (4, 3)
    assert (att.scores[np.arange(4)[:, None], att.proponents(3)] > 0).all()
    assert (att.scores[np.arange(4)[:, None], att.opponents(3)] < 0).all()
    vals = rps.representer_values(Xte[:4])
    np.testing.assert_allclose(vals[np.arange(4), :, att.target], att.scores, rtol=1e-12)


def test_sensitivity_maps_sum_to_the_input_gradient(digits_mlp):
    import copy

    import torch

    model, X, y, Xte, _ = digits_mlp
    model64 = copy.deepcopy(model).double()
    rps = RepresenterPoints(model64, l2=0.01, bias="free").fit(X, y)
    everything = rps.sensitivity_maps(Xte[0], train_indices=np.arange(len(X)))
    assert everything.maps.shape == (700, 1, 8, 8)
    assert np.abs(everything.remainder).max() < 1e-10
    # total = d/dx of the fine-tuned head's pre-activation sum_i alpha_ij f_i^T f(x) (+ b)
    xt = torch.as_tensor(Xte[:1], dtype=torch.float64).requires_grad_(True)
    w = torch.as_tensor(rps.coef_[everything.target])
    (g,) = torch.autograd.grad((model64.features(xt)[0] * w).sum(), xt)
    np.testing.assert_allclose(everything.total, g[0].numpy(), atol=1e-7)
    top = rps.sensitivity_maps(Xte[0], k=5)
    assert top.maps.shape == (5, 1, 8, 8) and top.train_ids.shape == (5,)
    np.testing.assert_allclose(top.maps.sum(0) + top.remainder, top.total, atol=1e-12)
    assert np.all(np.diff(np.abs(top.values)) <= 0)


def test_single_logit_model():
    import torch

    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 5))
    y = (X[:, 0] + 0.5 * rng.standard_normal(200) > 0).astype(np.int64)
    net = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    rps = RepresenterPoints(net, l2=0.05, fit_to="labels").fit(X, y)
    dec = rps.decomposition(X[:20])
    assert rps.alpha_.shape == (200, 1) and dec.max_abs_error < 1e-6
    assert rps.attribute(X[:3]).scores.shape == (3, 200)


def test_bad_inputs_are_reported(digits_mlp):
    import torch

    model, X, y, Xte, _ = digits_mlp
    with pytest.raises(InvalidParameterError, match="l2 must be a float in"):
        RepresenterPoints(model, l2=0.0).fit(X, y)
    with pytest.raises(InvalidParameterError, match="bias must be one of"):
        RepresenterPoints(model, bias="yes").fit(X, y)
    with pytest.raises(InvalidParameterError, match=r"y_train must lie in \[0, 9\]"):
        RepresenterPoints(model).fit(X, np.where(y == 3, 12, y))
    with pytest.raises(InvalidParameterError, match=r"y_train must be an int or have one entry per sample \(700\)"):
        RepresenterPoints(model).fit(X, y[:5])
    with pytest.raises(NotFittedError):
        RepresenterPoints(model).attribute(Xte[:2])
    net = torch.nn.Sequential(torch.nn.Linear(64, 10), torch.nn.Tanh())  # output is not the last Linear's
    with pytest.raises(CapabilityError, match="not the last linear layer"):
        RepresenterPoints(net).fit(X.reshape(700, -1), y)
    rps = RepresenterPoints(model).fit(X, y)
    with pytest.raises(InvalidParameterError, match=r"^X: .*per-sample shape"):
        rps.attribute(Xte[:, :, :4])
    with pytest.raises(InvalidParameterError, match="single sample"):
        rps.sensitivity_maps(Xte[:2])


# --------------------------------------------------------------------------- protocol and contract


def _threads():
    import torch
    from threadpoolctl import threadpool_info

    return torch.get_num_threads(), sorted((p["user_api"], p["num_threads"]) for p in threadpool_info())


def test_old_call_forms_warn_and_give_the_new_forms_results(digits_mlp):
    model, X, y, Xte, yte = digits_mlp
    new = RepresenterPoints(model, l2=0.01).fit(X, y)
    with pytest.warns(DeprecationWarning, match=r"use RepresenterPoints\(model, \*\*params\)\.fit\(X_train, y_train\)"):
        old = RepresenterPoints(model, X, y, l2=0.01)
    assert old.get_params() == RepresenterPoints(model, l2=0.01).get_params()
    with pytest.warns(DeprecationWarning, match=r"fit\(\) without data is deprecated") as rec:
        old.fit()
    assert rec[0].filename == __file__  # the warning points at the caller's line
    np.testing.assert_array_equal(old.alpha_, new.alpha_)
    # the old second positional argument of attribute is the new target (the class explained)
    a, b = old.attribute(Xte[:5], yte[:5]), new.attribute(Xte[:5], target=yte[:5])
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.target, yte[:5])
    with pytest.raises(InvalidParameterError, match=r"X_train and y_train are required.*\.fit\(X_train, y_train\)"):
        RepresenterPoints(model).fit()


def test_batch_size_is_honoured_for_a_torch_model(digits_mlp):
    from scrutiny.models import as_model

    model, X, y, Xte, _ = digits_mlp
    adapter = as_model(model)
    rows = []
    handle = model.register_forward_pre_hook(lambda m, inp: rows.append(inp[0].shape[0]))
    try:
        small = RepresenterPoints(adapter, l2=0.01, batch_size=64).fit(X, y)
        att = small.attribute(Xte)
        assert rows and max(rows) <= 64, f"rows per forward pass: {sorted(set(rows))}"
        rows.clear()
        whole = RepresenterPoints(adapter, l2=0.01).fit(X, y)
        assert max(rows) > 64  # the default sends larger chunks: the bound above is the parameter's doing
    finally:
        handle.remove()
    np.testing.assert_allclose(small.train_features_, whole.train_features_, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(att.scores, whole.attribute(Xte).scores, rtol=1e-4, atol=1e-6)
    assert adapter.batch_size != 64  # resolved per call, never stored on the adapter


def test_params_clone_repr_and_save_round_trip(digits_mlp, tmp_path, rng_guard):
    from sklearn.base import clone

    from scrutiny import load_result
    from scrutiny.explanation import DataAttribution

    model, X, y, Xte, _ = digits_mlp
    rps = RepresenterPoints(model, l2=0.02, bias="free")
    assert repr(rps).endswith(", l2=0.02, bias='free')") and "tol" not in repr(rps) and "fit_to" not in repr(rps)
    params = rps.get_params()
    assert set(params) == {"model", "l2", "bias", "fit_to", "tol", "max_iter", "batch_size"}
    assert rps.set_params(**params) is rps and rps.get_params() == params
    with pytest.raises(InvalidParameterError, match="has no parameter 'X_train'"):
        rps.set_params(X_train=X)
    before = _threads()
    twin = clone(rps)
    a = rps.fit(X, y).attribute(Xte[:6])
    b = twin.fit(X, y).attribute(Xte[:6])
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(rps.alpha_, twin.alpha_)
    assert _threads() == before
    back = load_result(a.save(tmp_path / "representer"))
    assert isinstance(back, DataAttribution)
    np.testing.assert_array_equal(back.scores, a.scores)
    np.testing.assert_array_equal(back.target, a.target)
    np.testing.assert_array_equal(back.extras["intercept"], a.extras["intercept"])
    assert back.params == a.params
    with pytest.raises(InvalidParameterError, match="bias must be one of"):
        clone(rps).set_params(bias="maybe").fit(X, y)
