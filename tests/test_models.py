"""Model adapters: closed-form gradients, features, per-sample gradients, conversions, and every error path."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from conftest import wrap

from scrutiny import (
    CapabilityError,
    InvalidParameterError,
    ModelError,
    NotFittedError,
    as_model,
)
from scrutiny.models import CallableModel, SklearnModel, TorchModel, log_odds_from_proba, require_capability


# --------------------------------------------------------------------------- dispatch


def test_as_model_dispatches_to_the_right_adapter(logistic_trio):
    assert isinstance(wrap(logistic_trio, "sklearn"), SklearnModel)
    assert isinstance(wrap(logistic_trio, "torch"), TorchModel)
    assert isinstance(wrap(logistic_trio, "callable"), CallableModel)
    model = wrap(logistic_trio, "torch")
    assert as_model(model) is model


def test_as_model_refuses_unknown_objects_and_options_on_wrapped_models(logistic_trio):
    with pytest.raises(InvalidParameterError, match="cannot wrap a str"):
        as_model("model.pt")
    with pytest.raises(InvalidParameterError, match="already wrapped"):
        as_model(wrap(logistic_trio, "torch"), batch_size=3)
    with pytest.raises(InvalidParameterError, match="output must be one of"):
        as_model(lambda X: X, output="probabilities")
    with pytest.raises(InvalidParameterError, match="batch_size must be a positive int or None; got 0"):
        as_model(lambda X: X, batch_size=0)
    with pytest.raises(InvalidParameterError, match="pass method="):
        as_model(logistic_trio["sklearn"], output="logit")


def test_sklearn_method_choice():
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.svm import SVC

    X = np.random.default_rng(0).normal(size=(60, 3))
    y = (X[:, 0] > 0).astype(int)
    assert as_model(SVC().fit(X, y)).output == "decision"
    from sklearn.calibration import CalibratedClassifierCV

    assert as_model(CalibratedClassifierCV(SVC(), cv=3).fit(X, y)).output == "probability"
    reg = as_model(RandomForestRegressor(n_estimators=5, random_state=0).fit(X, X[:, 0]))
    assert reg.output == "regression" and reg.predict(X).shape == (60, 1)
    with pytest.raises(CapabilityError, match="hard labels"):
        as_model(SVC().fit(X, y), method="predict")


# --------------------------------------------------------------------------- conversions


def test_single_logit_binary_conversions_match_sklearn_binary_proba():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    X = rng.normal(size=(80, 4))
    y = (X @ [1.0, -2.0, 0.5, 0.0] + rng.normal(size=80) > 0).astype(int)
    clf = LogisticRegression().fit(X, y)
    w, b = clf.coef_[0], clf.intercept_[0]
    logit_model = as_model(lambda Z: Z @ w + b, output="logit")
    np.testing.assert_allclose(logit_model.predict_proba(X), clf.predict_proba(X), atol=1e-12)
    np.testing.assert_allclose(as_model(clf).predict_log_odds(X), logit_model.predict_log_odds(X), atol=1e-8)
    np.testing.assert_allclose(logit_model.predict_log_odds(X)[:, 1], X @ w + b, atol=1e-12)
    np.testing.assert_array_equal(logit_model.predict_class(X), clf.predict(X))


def test_log_odds_are_clipped_consistently_for_saturated_outputs():
    Z = np.array([[0.0, 50.0, -50.0]])
    from_logits = as_model(lambda X: np.repeat(Z, len(X), axis=0), output="logit").predict_log_odds(np.zeros((2, 1)))
    P = np.exp(Z - Z.max()) / np.exp(Z - Z.max()).sum()
    from_proba = log_odds_from_proba(P)
    bound = np.log((1 - 1e-6) / 1e-6)
    np.testing.assert_allclose(from_logits[0], from_proba[0], atol=1e-6)
    assert np.isclose(from_logits[0, 1], bound) and np.isclose(from_logits[0, 2], -bound)


def test_regression_models_refuse_probability_conversions():
    model = as_model(lambda X: X.sum(axis=1), output="regression")
    with pytest.raises(CapabilityError, match="needs a classifier"):
        model.predict_proba(np.ones((2, 3)))


# --------------------------------------------------------------------------- torch capabilities


class TwoLayer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.hidden = torch.nn.Linear(5, 4)
        self.act = torch.nn.Tanh()
        self.out = torch.nn.Linear(4, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen))

    def forward(self, x):
        return self.out(self.act(self.hidden(x)))


def _closed_form_grad(net, x, c):
    """d logit_c / dx for out(tanh(hidden(x))): W_out[c] * (1 - h^2) @ W_hidden."""
    W1, b1 = net.hidden.weight.detach().double().numpy(), net.hidden.bias.detach().double().numpy()
    W2 = net.out.weight.detach().double().numpy()
    h = np.tanh(x @ W1.T + b1)
    return (W2[c] * (1 - h**2)) @ W1


def test_torch_gradient_matches_closed_form_per_sample_target():
    net = TwoLayer().double()
    model = as_model(net, dtype=torch.float64, batch_size=3)
    X = np.random.default_rng(2).normal(size=(7, 5))
    target = np.array([0, 1, 2, 0, 1, 2, 0])
    G = model.gradient(X, target)
    expected = np.stack([_closed_form_grad(net, X[i], target[i]) for i in range(7)])
    np.testing.assert_allclose(G, expected, rtol=1e-10, atol=1e-12)


def test_torch_gradient_of_probability_matches_finite_differences():
    net = TwoLayer().double()
    model = as_model(net, dtype=torch.float64)
    x = np.random.default_rng(3).normal(size=(1, 5))
    g = model.gradient(x, 2, space="probability")[0]
    h = 1e-6
    fd = [(model.predict_proba(x + h * e)[0, 2] - model.predict_proba(x - h * e)[0, 2]) / (2 * h) for e in np.eye(5)]
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-9)
    g_lo = model.gradient(x, 2, space="log_odds")[0]
    fd_lo = [(model.predict_log_odds(x + h * e)[0, 2] - model.predict_log_odds(x - h * e)[0, 2]) / (2 * h) for e in np.eye(5)]
    np.testing.assert_allclose(g_lo, fd_lo, rtol=1e-6, atol=1e-9)


def test_features_default_named_layer_and_callable():
    net = TwoLayer().double()
    X = np.random.default_rng(4).normal(size=(6, 5))
    W1, b1 = net.hidden.weight.detach().numpy(), net.hidden.bias.detach().numpy()
    expected = np.tanh(X @ W1.T + b1)
    np.testing.assert_allclose(as_model(net, dtype=torch.float64).features(X), expected, atol=1e-12)
    np.testing.assert_allclose(as_model(net, dtype=torch.float64, features="act").features(X), expected, atol=1e-12)
    custom = as_model(net, dtype=torch.float64, features=lambda m, x: m.hidden(x))
    np.testing.assert_allclose(custom.features(X), X @ W1.T + b1, atol=1e-12)
    with pytest.raises(InvalidParameterError, match="features='nope' is not a submodule"):
        as_model(net, features="nope")


def test_features_method_on_module_is_used_and_last_layer_reproduces_logits():
    class WithFeatures(TwoLayer):
        def features(self, x):
            return self.act(self.hidden(x))

    net = WithFeatures().double()
    model = as_model(net, dtype=torch.float64, batch_size=4)
    X = np.random.default_rng(5).normal(size=(9, 5))
    F = model.features(X)
    name, layer = model.last_linear()
    assert name == "out"
    logits = F @ layer.weight.detach().numpy().T + layer.bias.detach().numpy()
    np.testing.assert_allclose(logits, model.predict(X), atol=1e-12)


@pytest.mark.filterwarnings("ignore:TorchModel.per_sample_grads is deprecated")
def test_per_sample_grads_match_closed_form_for_softmax_regression(logistic_trio):
    from scrutiny.data_attribution import TrainingObjective

    X, y = logistic_trio["X"][:10], logistic_trio["y"][:10]
    model = wrap(logistic_trio, "torch", batch_size=4)
    loss = lambda out, t: torch.nn.functional.cross_entropy(out, t, reduction="none")  # noqa: E731
    with pytest.warns(DeprecationWarning, match="TrainingObjective"):
        G = model.per_sample_grads(X, y, loss)
    # the one implementation the deprecated method points to gives the same closed form
    G_objective = TrainingObjective(model, "cross_entropy", X, y).per_sample_grads()
    P = model.predict_proba(X)
    R = P - np.eye(3)[y]  # dL/dlogits
    expected = np.concatenate([np.einsum("nk,nd->nkd", R, X).reshape(10, -1), R], axis=1)
    assert model.parameter_names() == ["weight", "bias"]
    np.testing.assert_allclose(G, expected, atol=1e-10)
    np.testing.assert_allclose(G_objective, expected, atol=1e-10)
    np.testing.assert_allclose(model.per_sample_grads(X, y, loss, params="last"), expected, atol=1e-10)
    np.testing.assert_allclose(model.per_sample_grads(X, y, loss, params=["bias"]), R, atol=1e-10)
    with pytest.raises(InvalidParameterError, match=r"params \['w'\] are not parameters"):
        model.per_sample_grads(X, y, loss, params=["w"])
    with pytest.raises(InvalidParameterError, match="y must have one entry per sample"):
        model.per_sample_grads(X, y[:3], loss)


def test_torch_model_restores_training_flag_and_uses_eval_mode():
    net = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3)).double()
    net.train()
    model = as_model(net, dtype=torch.float64, batch_size=2)
    X = np.random.default_rng(6).normal(size=(5, 3))
    a = model.predict(X)
    assert net.training
    model.gradient(X, 0)
    assert net.training
    # eval mode: a batch of 1 row works for batch norm and results do not depend on batching
    np.testing.assert_allclose(as_model(net, dtype=torch.float64, batch_size=5).predict(X), a, atol=1e-12)


def test_capabilities_are_declared_and_required(logistic_trio):
    require_capability(wrap(logistic_trio, "torch"), "gradient", "Saliency")
    with pytest.raises(CapabilityError, match="Saliency needs a model with 'gradient' capability; SklearnModel"):
        require_capability(wrap(logistic_trio, "sklearn"), "gradient", "Saliency")
    with pytest.raises(CapabilityError, match="features"):
        require_capability(wrap(logistic_trio, "callable"), "features", "RepresenterPoints")


# --------------------------------------------------------------------------- error paths


@pytest.mark.parametrize("kind", ["sklearn", "torch", "callable"])
def test_nan_and_inf_inputs_are_refused(logistic_trio, kind):
    X = logistic_trio["X"][:5].copy()
    X[2, 1] = np.nan
    with pytest.raises(InvalidParameterError, match=r"X contains 1 non-finite value\(s\) \(first: NaN at index \(2, 1\)\)"):
        wrap(logistic_trio, kind).predict(X)
    X[2, 1] = np.inf
    with pytest.raises(InvalidParameterError, match="first: inf"):
        wrap(logistic_trio, kind).predict(X)


@pytest.mark.parametrize("kind", ["sklearn", "torch", "callable"])
def test_empty_and_one_dimensional_inputs_are_refused(logistic_trio, kind):
    model = wrap(logistic_trio, kind)
    with pytest.raises(InvalidParameterError, match=r"at least 1 sample\(s\); got an array of shape \(0, 4\)"):
        model.predict(np.empty((0, 4)))
    with pytest.raises(InvalidParameterError, match=r"For one sample use X\[None\]"):
        model.predict(np.ones(4))


def test_wrong_feature_count_is_refused(logistic_trio):
    with pytest.raises(InvalidParameterError, match=r"per-sample shape \(4,\).*got \(3,\)"):
        wrap(logistic_trio, "sklearn").predict(np.ones((2, 3)))
    model = wrap(logistic_trio, "callable")
    model.predict(np.ones((2, 4)))
    with pytest.raises(InvalidParameterError, match=r"per-sample shape \(4,\)"):
        model.predict(np.ones((2, 5)))


def test_non_numeric_input_is_refused(logistic_trio):
    with pytest.raises(InvalidParameterError, match="X must be a numeric array-like"):
        wrap(logistic_trio, "callable").predict([["a", "b", "c", "d"]])


def test_model_that_raises_is_reported_with_rows_and_cause():
    def broken(X):
        raise RuntimeError("boom")

    with pytest.raises(ModelError, match=r"raised RuntimeError while predicting rows 0\.\.1.*boom") as info:
        as_model(broken, batch_size=2).predict(np.ones((3, 2)))
    assert isinstance(info.value.__cause__, RuntimeError)


def test_model_that_returns_nan_is_reported_with_the_row():
    def half_nan(X):
        out = X.sum(axis=1)
        out[X[:, 0] > 2] = np.nan
        return out

    X = np.arange(10, dtype=float).reshape(5, 2) / 2
    with pytest.raises(ModelError, match=r"NaN or inf for 2 input row\(s\) \(first: row 3\)"):
        as_model(half_nan, batch_size=2).predict(X)


def test_model_with_wrong_number_of_rows_or_changing_outputs():
    with pytest.raises(ModelError, match=r"output of shape \(1, 1\) for a batch of 3 rows"):
        as_model(lambda X: np.ones(1)).predict(np.ones((3, 2)))
    flaky = as_model(lambda X: np.ones((len(X), 2 if X[0, 0] < 1 else 3)), batch_size=1)
    with pytest.raises(ModelError, match="number of outputs must not depend on the input"):
        flaky.predict(np.array([[0.0], [5.0]]))


def test_torch_module_that_raises_in_gradient():
    class Bad(torch.nn.Module):
        def forward(self, x):
            raise ValueError("shape mismatch inside")

    model = as_model(Bad(), batch_size=4)
    with pytest.raises(ModelError, match="raised ValueError"):
        model.predict(np.ones((2, 3)))
    model.n_outputs_ = 2
    with pytest.raises(ModelError, match="forward pass for rows 0..1: shape mismatch inside"):
        model.gradient(np.ones((2, 3)), 0)


def test_unfitted_sklearn_estimator_is_refused():
    from sklearn.linear_model import LogisticRegression

    with pytest.raises(NotFittedError, match=r"LogisticRegression passed to as_model is not fitted. Call estimator.fit"):
        as_model(LogisticRegression())


@pytest.mark.parametrize("target", [3, -1, [0, 1, 7]])
def test_out_of_range_target_is_refused(logistic_trio, target):
    model = wrap(logistic_trio, "torch")
    with pytest.raises(InvalidParameterError, match=r"target must lie in \[0, 2\] \(the model has 3 output\(s\)\)"):
        model.gradient(logistic_trio["X"][:3], target)


def test_non_integer_target_is_refused(logistic_trio):
    with pytest.raises(InvalidParameterError, match="target must be an int or an array of ints"):
        wrap(logistic_trio, "torch").gradient(logistic_trio["X"][:3], "setosa")


class _RecordingModule(torch.nn.Module):
    """Linear map that records the size and dtype of every batch it receives."""

    def __init__(self, d: int):
        super().__init__()
        self.lin = torch.nn.Linear(d, 2)
        self.calls: list[tuple[int, torch.dtype]] = []

    def forward(self, x):
        self.calls.append((x.shape[0], x.dtype))
        return self.lin(x.reshape(x.shape[0], -1))


@pytest.mark.parametrize(("shape", "expected"), [((30,), 2048), ((1, 8, 8), 1024), ((1, 28, 28), 256), ((3, 64, 64), 256)])
def test_torch_default_batch_size_follows_the_sample_size(shape, expected):
    from scrutiny.models import auto_batch_size

    d = int(np.prod(shape))
    module = _RecordingModule(d)
    model = TorchModel(module)
    assert model.rows_per_call(d) == expected == auto_batch_size(d)
    X = np.zeros((expected + 3,) + shape)
    model.predict(X)
    assert model.batch_size is None  # resolved per call, never stored back on the adapter
    assert [n for n, _ in module.calls] == [expected, 3]  # full batches, then the remainder
    explicit = TorchModel(_RecordingModule(d), batch_size=7)
    explicit.predict(X[:10])
    assert explicit.batch_size == explicit.rows_per_call(d) == 7


def test_torch_float32_input_is_not_round_tripped_through_float64():
    X = np.random.default_rng(0).normal(size=(6, 5))
    as32 = TorchModel(_RecordingModule(5))
    assert as32.input_dtype == np.float32
    checked = as32.check_input(X.astype(np.float32))
    assert checked.dtype == np.float32  # kept as given: no float64 copy
    assert as32.check_input(X).dtype == np.float64  # anything else is validated as float64
    np.testing.assert_array_equal(as32.predict(X.astype(np.float32)), as32.predict(X))
    readonly = X.astype(np.float32)
    readonly.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns when it would share read-only memory
        as32.predict(readonly)


def _blas_threads() -> set[int]:
    from threadpoolctl import threadpool_info

    return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}


class _BlasProbe(torch.nn.Module):
    """A linear layer that records numpy's BLAS thread count at every forward pass."""

    def __init__(self, n_out: int = 2):
        super().__init__()
        self.lin = torch.nn.Linear(4, n_out)
        self.seen: list[int] = []

    def forward(self, x):
        self.seen.extend(_blas_threads())
        return self.lin(x)


def test_explainers_run_numpy_blas_on_one_thread_around_torch_models():
    from threadpoolctl import threadpool_info, threadpool_limits

    from scrutiny.attribution import Occlusion

    probe = _BlasProbe()
    seen = probe.seen

    n_threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the guard applies when torch itself runs on several threads
    try:
        with threadpool_limits(2, user_api="blas"):  # the suite pins BLAS to 1 thread; undo that here
            before = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
            Occlusion(probe, window=1).explain(np.ones((2, 4)))
            after = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
    finally:
        torch.set_num_threads(n_threads)
    assert before and set(before) == {2}
    assert seen and set(seen) == {1}
    assert after == before  # restored


def _small_convnet() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 3), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 5),
    )


def test_channels_last_convolutions_agree_with_the_module_and_leave_it_untouched():
    module = _small_convnet()
    X = np.random.default_rng(0).normal(size=(40, 3, 8, 8)).astype(np.float32)
    with torch.no_grad():
        direct = module(torch.as_tensor(X)).double().numpy()
    strides = [p.stride() for p in module.parameters()]
    fast, plain = TorchModel(module), TorchModel(module, memory_format="contiguous")
    assert fast._channels_last_weights() is not None and plain._channels_last_weights() is None
    np.testing.assert_allclose(fast.predict(X), direct, atol=1e-5)
    np.testing.assert_array_equal(plain.predict(X), direct)
    np.testing.assert_allclose(fast.gradient(X, 2), plain.gradient(X, 2), atol=1e-5)
    assert [p.stride() for p in module.parameters()] == strides  # the user's module is never converted
    with torch.no_grad():
        module[0].weight.mul_(2.0)  # later in-place edits are seen: no stale copy
        edited = module(torch.as_tensor(X)).double().numpy()
    np.testing.assert_allclose(fast.predict(X), edited, atol=1e-5)
    assert TorchModel(torch.nn.Linear(4, 2))._channels_last_weights() is None  # "auto": only with Conv2d
    with pytest.raises(InvalidParameterError, match="memory_format must be 'auto', 'channels_last' or 'contiguous'"):
        TorchModel(module, memory_format="nhwc")


def test_blas_guard_limits_small_dense_work_and_data_attribution_uses_it():
    """Influence functions and representer points run numpy's BLAS on one thread next to a torch
    model (small matrices, spinning OpenBLAS workers), unless the dense algebra is large."""
    from sklearn.linear_model import LogisticRegression as SkLR
    from threadpoolctl import threadpool_limits

    from scrutiny.data_attribution import InfluenceFunctions, RepresenterPoints
    from scrutiny._threads import DENSE_BLAS_FLOPS, blas_guard

    blas_threads = _blas_threads

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 4)), rng.integers(0, 3, 40)
    n_threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the guard applies when torch itself runs on several threads
    try:
        with threadpool_limits(2, user_api="blas"):  # the suite pins BLAS to 1 thread; undo that here
            before = blas_threads()
            tm = as_model(_BlasProbe(3).double())
            with blas_guard(tm):
                assert blas_threads() == {1}
            with blas_guard(tm, dense_flops=DENSE_BLAS_FLOPS):
                assert blas_threads() == before
            with blas_guard(as_model(SkLR().fit(X, y))):
                assert blas_threads() == before
            model = _BlasProbe(3).double()
            seen = model.seen
            inf = InfluenceFunctions(model, "cross_entropy", l2=0.1, check_optimum="ignore").fit(X, y)
            inf.attribute(X[:3], y[:3])
            RepresenterPoints(model).fit(X, y).attribute(X[:3])
            after = blas_threads()
    finally:
        torch.set_num_threads(n_threads)
    assert before == {2} and after == before
    assert seen and set(seen) == {1}


# --------------------------------------------------------------------------- the model contract


def test_as_model_returns_the_public_adapter_type_which_satisfies_the_protocol(logistic_trio):
    from scrutiny import DifferentiableModel, Model, ModelAdapter

    for kind in ("sklearn", "torch", "callable"):
        model = wrap(logistic_trio, kind)
        assert isinstance(model, ModelAdapter) and isinstance(model, Model)
        assert isinstance(model, DifferentiableModel) == (kind == "torch")
    # every member the protocol declares exists on every adapter
    members = [n for n in dir(Model) if not n.startswith("_")] + list(Model.__annotations__)
    for kind in ("sklearn", "torch", "callable"):
        model = wrap(logistic_trio, kind)
        missing = [n for n in members if not hasattr(model, n)]
        assert not missing, (kind, missing)


def _linear(dtype: torch.dtype, seed: int = 0) -> torch.nn.Linear:
    gen = torch.Generator().manual_seed(seed)  # a local generator: global RNG untouched
    lin = torch.nn.Linear(13, 3)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(3, 13, generator=gen))
        lin.bias.copy_(torch.randn(3, generator=gen))
    return lin.to(dtype)


@pytest.mark.parametrize(
    ("dtype", "np_dtype"),
    [(torch.float64, np.float64), (torch.float32, np.float32), (torch.float16, np.float16), (torch.bfloat16, np.float32)],
)
def test_torch_adapter_follows_the_module_dtype(dtype, np_dtype):
    model = as_model(_linear(dtype))
    assert model.dtype == dtype and model.input_dtype == np_dtype
    out = model.predict(np.random.default_rng(0).normal(size=(4, 13)))
    assert out.dtype == np.float64 and out.shape == (4, 3) and np.isfinite(out).all()
    later = _linear(torch.float32)
    followed = as_model(later)
    later.to(dtype)  # converted after wrapping: the adapter follows the module call by call
    assert followed.dtype == dtype and followed.predict(np.ones((2, 13))).shape == (2, 3)
    explicit = as_model(_linear(torch.float32), dtype=torch.float64)  # dtype= overrides the module
    assert explicit.dtype == torch.float64 and explicit.input_dtype == np.float64
    with pytest.raises(InvalidParameterError, match="dtype must be a floating torch dtype or None; got torch.int64"):
        as_model(_linear(torch.float32), dtype=torch.int64)


def test_float64_module_is_explained_with_defaults_to_the_hand_computed_values():
    """as_model(torch.nn.Linear(13, 3).double()) used to fail ("mat1 and mat2 must have the same
    dtype"); explained with defaults it now equals the same module run by hand to 1e-10."""
    from scrutiny.attribution import IntegratedGradients, KernelSHAP, Saliency

    lin = _linear(torch.float64)
    X = np.random.default_rng(1).normal(size=(6, 13))
    W, b = lin.weight.detach().numpy(), lin.bias.detach().numpy()
    with torch.no_grad():
        logits = lin(torch.as_tensor(X)).numpy()
    np.testing.assert_allclose(as_model(lin).predict(X), logits, rtol=0, atol=1e-12)
    target = logits.argmax(axis=1)
    # Saliency and IG (space "auto" = raw logits): the gradient is the target's weight row and
    # IG from the zero baseline is x * w exactly
    np.testing.assert_allclose(Saliency(lin).explain(X).values, W[target], rtol=0, atol=1e-10)
    np.testing.assert_allclose(IntegratedGradients(lin).explain(X).values, X * W[target], rtol=0, atol=1e-10)
    # KernelSHAP: on the raw logits the game is additive, so its Shapley values are
    # w_t * (x - background) exactly; with defaults (probabilities) efficiency holds by hand
    bg = np.zeros((1, 13))
    raw = KernelSHAP(lin, bg, space="raw", random_state=0).explain(X[:2], target=target[:2])
    np.testing.assert_allclose(raw.values, X[:2] * W[target[:2]], rtol=0, atol=1e-10)
    e = KernelSHAP(lin, bg, random_state=0).explain(X[:2])
    with torch.no_grad():
        P = torch.softmax(lin(torch.as_tensor(np.vstack([X[:2], bg]))), dim=1).numpy()
    np.testing.assert_allclose(e.values.sum(axis=1), P[[0, 1], target[:2]] - P[2, target[:2]], rtol=0, atol=1e-10)


def test_float16_module_is_explained_with_defaults_close_to_a_float32_copy():
    from scrutiny.attribution import IntegratedGradients, LIME, Saliency

    half, single = _linear(torch.float16), _linear(torch.float16).float()  # same (rounded) weights
    X = np.random.default_rng(2).normal(size=(5, 13))
    for make, tol in ((lambda m: Saliency(m), 1e-2), (lambda m: IntegratedGradients(m, n_steps=16), 5e-2),
                      (lambda m: LIME(m, training_data=X, n_samples=500, random_state=0), 5e-2)):
        low, ref = make(half).explain(X, target=1).values, make(single).explain(X, target=1).values
        assert low.shape == X.shape and low.dtype == np.float64 and np.isfinite(low).all()
        np.testing.assert_allclose(low, ref, atol=tol * np.abs(ref).max())


def test_predicting_first_changes_no_later_default():
    """The rows per call are resolved per call from the input's row size and never stored back
    on the adapter: a prediction on another input does not change rows_per_call, batch_size or
    an explainer's result."""
    from scrutiny.attribution import KernelSHAP

    X = np.random.default_rng(3).normal(size=(3, 13))
    fresh, used = as_model(_linear(torch.float64)), as_model(_linear(torch.float64))
    used.predict(np.zeros((1, 13)))  # another input first (one row)
    used.predict(np.zeros((5000, 13)))  # and a large one
    assert used.batch_size is None and fresh.batch_size is None
    assert used.rows_per_call(13) == fresh.rows_per_call(13) == 2048
    assert used.rows_per_call(784) == fresh.rows_per_call(784) == 256
    explain = lambda m: KernelSHAP(m, np.zeros((4, 13)), n_samples=60, random_state=0).explain(X).values  # noqa: E731
    np.testing.assert_array_equal(explain(used), explain(fresh))
    module = _RecordingModule(13)
    model = TorchModel(module)
    model.predict(np.zeros((3000, 13)))
    model.predict(np.zeros((10, 13)))
    assert [n for n, _ in module.calls] == [2048, 952, 10] and model.batch_size is None
