"""Gradient attributions: closed-form oracles, convergence, the SmoothGrad/C-LIME unification,
agreement with captum, the explainer contract and every error path."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from conftest import wrap

from scrutiny import CapabilityError, InvalidParameterError, as_model
from scrutiny.attribution.gradient import (
    GradientXInput,
    IntegratedGradients,
    Saliency,
    SmoothGrad,
    quadrature,
)
from scrutiny.exceptions import ConvergenceWarning
from scrutiny.zoo import make_model

IG_METHODS = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def tanh_mlp():
    """A smooth 6 -> 16 -> 3 tanh MLP in float64, weights scaled up so that it is clearly non-linear."""
    net = make_model("mlp", 6, 3, random_state=0, hidden=(16,), activation="tanh").double()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(3.0)
    X = np.random.default_rng(0).normal(size=(8, 6))
    return as_model(net, dtype=torch.float64), X


class Sine(torch.nn.Module):
    """f(x) = sin(w^T x), one regression output."""

    def __init__(self, w):
        super().__init__()
        self.register_buffer("w", torch.as_tensor(np.asarray(w, dtype=np.float64)))

    def forward(self, x):
        return torch.sin(x @ self.w)[:, None]


@pytest.fixture(scope="module")
def sine():
    rng = np.random.default_rng(1)
    d = 20
    w = rng.normal(size=d) * 1.2 / np.sqrt(d)
    X = rng.normal(size=(20, d)) * 0.5
    return as_model(Sine(w), output="regression", dtype=torch.float64), w, X


def sine_smoothgrad(w, X, sigma):
    """Closed form E[grad sin(w^T (x + eps))] = w cos(w^T x) exp(-sigma^2 |w|^2 / 2)."""
    return w * (np.cos(X @ w) * np.exp(-(sigma**2) * (w @ w) / 2))[:, None]


def rel_err(values, reference):
    return np.linalg.norm(values - reference, axis=1) / np.linalg.norm(reference, axis=1)


# --------------------------------------------------------------------------- closed forms on linear models


def test_saliency_of_a_linear_model_is_its_weight_row(logistic_trio):
    W, X = logistic_trio["coef"], logistic_trio["X"][:10]
    model = wrap(logistic_trio, "torch")
    target = np.arange(10) % 3
    e = Saliency(model).explain(X, target)
    np.testing.assert_allclose(e.values, W[target], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(Saliency(model, abs=True).explain(X, target).values, np.abs(W[target]), atol=1e-12)
    assert e.base_values is None and e.values.shape == X.shape


def test_gradient_x_input_of_a_linear_model(logistic_trio):
    W, X = logistic_trio["coef"], logistic_trio["X"][:10]
    model = wrap(logistic_trio, "torch")
    e = GradientXInput(model).explain(X, 2)
    np.testing.assert_allclose(e.values, X * W[2], atol=1e-12)
    b = np.linspace(-1, 1, 4)
    np.testing.assert_allclose(GradientXInput(model, baseline=b).explain(X, 2).values, (X - b) * W[2], atol=1e-12)


@pytest.mark.parametrize("method", IG_METHODS)
@pytest.mark.parametrize("kind", ["none", "scalar", "row", "per-sample"])
def test_integrated_gradients_of_a_linear_model_is_exact(logistic_trio, method, kind):
    """IG = w * (x - baseline) exactly, for every rule and every way of giving a baseline."""
    W, b0, X = logistic_trio["coef"], logistic_trio["intercept"], logistic_trio["X"][:12]
    rng = np.random.default_rng(0)
    baseline = {"none": None, "scalar": -0.7, "row": rng.normal(size=4), "per-sample": rng.normal(size=X.shape)}[kind]
    ref_base = np.zeros(4) if baseline is None else np.broadcast_to(baseline, X.shape)
    target = np.arange(12) % 3
    e = IntegratedGradients(wrap(logistic_trio, "torch"), baseline=baseline, n_steps=5, method=method).explain(X, target)
    np.testing.assert_allclose(e.values, W[target] * (X - ref_base), rtol=1e-10, atol=1e-12)
    f_base = np.einsum("nd,nd->n", np.broadcast_to(ref_base, X.shape), W[target]) + b0[target]
    np.testing.assert_allclose(e.base_values, f_base, atol=1e-12)
    assert np.abs(e.extras["completeness_gap"]).max() < 1e-12
    assert e.extras["relative_gap"].shape == (12,)


def test_per_sample_baselines_equal_explaining_each_row_with_its_own(tanh_mlp):
    model, X = tanh_mlp
    B = np.random.default_rng(5).normal(size=X.shape)
    together = IntegratedGradients(model, baseline=B, n_steps=20).explain(X)
    for i in range(len(X)):
        alone = IntegratedGradients(model, baseline=B[i], n_steps=20).explain(X[i : i + 1], together.target[i])
        np.testing.assert_allclose(alone.values[0], together.values[i], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(alone.base_values[0], together.base_values[i], atol=1e-14)


@pytest.mark.parametrize("n_samples", [1, 2, 3, 8, 50])
@pytest.mark.parametrize("antithetic", [True, False])
def test_smoothgrad_of_a_linear_model_is_the_weight_for_any_sample_count(logistic_trio, n_samples, antithetic):
    W, X = logistic_trio["coef"], logistic_trio["X"][:10]
    e = SmoothGrad(wrap(logistic_trio, "torch"), n_samples=n_samples, antithetic=antithetic, random_state=0).explain(
        X, 1
    )
    np.testing.assert_allclose(e.values, np.broadcast_to(W[1], X.shape), rtol=1e-12, atol=1e-12)
    copies = 2 if antithetic else 1
    assert np.all(e.extras["n_samples_used"] == copies * -(-n_samples // copies))
    if e.extras["n_samples_used"][0] // copies >= 2:
        assert e.stderr is not None and np.abs(e.stderr).max() < 1e-12
    else:
        assert e.stderr is None


def test_antithetic_noise_tunnel_is_exact_for_linear_models(logistic_trio):
    """With +eps/-eps pairs the noise cancels: SmoothGrad of GradientXInput / IG equals the noiseless value."""
    W, X = logistic_trio["coef"], logistic_trio["X"][:10]
    model = wrap(logistic_trio, "torch")
    for inner in (GradientXInput(model, baseline=0.25), IntegratedGradients(model, baseline=0.25, n_steps=3)):
        e = SmoothGrad(model, inner, n_samples=6, noise_level=0.5, random_state=0).explain(X, 0)
        np.testing.assert_allclose(e.values, W[0] * (X - 0.25), atol=1e-12)


def test_gradients_of_probabilities_and_log_odds_follow_the_softmax(logistic_trio):
    W, X = logistic_trio["coef"], logistic_trio["X"][:10]
    model = wrap(logistic_trio, "torch")
    P = model.predict_proba(X)
    c = 1
    expected = P[:, [c]] * (W[c] - P @ W)  # d p_c / d x for a softmax of linear logits
    np.testing.assert_allclose(Saliency(model, space="probability").explain(X, c).values, expected, atol=1e-12)
    # IG of the probability: completeness in probability space
    e = IntegratedGradients(model, space="probability", n_steps=64).explain(X, c)
    np.testing.assert_allclose(e.values.sum(axis=1), P[:, c] - model.predict_proba(np.zeros((1, 4)))[0, c], atol=1e-8)
    e = IntegratedGradients(model, space="log_odds", n_steps=64).explain(X, c)
    np.testing.assert_allclose(e.extras["completeness_gap"], 0.0, atol=1e-8)


def test_space_auto_is_the_raw_output_and_smoothgrad_space_overrides_the_wrapped_explainer(logistic_trio):
    W, X = logistic_trio["coef"], logistic_trio["X"][:6]
    model = wrap(logistic_trio, "torch")
    c = 2
    # "auto" (the default) differentiates the raw logits: the gradient is the weight row
    np.testing.assert_allclose(Saliency(model).explain(X, c).values, np.tile(W[c], (6, 1)), atol=1e-12)
    np.testing.assert_array_equal(Saliency(model).explain(X, c).values, Saliency(model, space="raw").explain(X, c).values)
    # SmoothGrad: "auto" keeps the wrapped explainer's space, any other value overrides it
    kept = SmoothGrad(model, Saliency(model, space="probability"), n_samples=8, random_state=0).explain(X, c)
    over = SmoothGrad(model, Saliency(model, space="raw"), n_samples=8, space="probability", random_state=0).explain(X, c)
    np.testing.assert_array_equal(kept.values, over.values)
    raw = SmoothGrad(model, Saliency(model, space="probability"), n_samples=8, space="raw", random_state=0).explain(X, c)
    np.testing.assert_allclose(raw.values, np.tile(W[c], (6, 1)), atol=1e-12)
    assert not np.allclose(kept.values, raw.values)


# --------------------------------------------------------------------------- Integrated Gradients convergence


def test_quadrature_rules_have_unit_weight_and_integrate_polynomials():
    for method in IG_METHODS:
        a, w = quadrature(method, 10)
        assert a.shape == w.shape == (10,) and np.all((a >= 0) & (a <= 1))
        assert abs(w.sum() - 1) < 1e-14
        assert abs(w @ a - 0.5) < 1e-14 or method in ("riemann_left", "riemann_right")
    a, w = quadrature("gausslegendre", 6)  # exact up to degree 11
    assert abs(w @ a**11 - 1 / 12) < 1e-14


def test_completeness_gap_vanishes_as_steps_grow_on_a_smooth_model(tanh_mlp):
    model, X = tanh_mlp
    baseline = np.full(6, -0.5)
    for method, steps, final_tol in [("gausslegendre", (2, 4, 8, 16), 1e-6), ("riemann_trapezoid", (8, 32, 128), 1e-3)]:
        gaps = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for n in steps:
                e = IntegratedGradients(model, baseline=baseline, n_steps=n, method=method).explain(X)
                gaps.append(np.abs(e.extras["relative_gap"]).max())
        assert all(later < earlier for earlier, later in zip(gaps, gaps[1:])), (method, gaps)
        assert gaps[-1] < final_tol, (method, gaps)
        if method == "riemann_trapezoid":  # second-order rule: 4x the steps, about 16x smaller gap
            assert gaps[-2] / gaps[-1] > 8


def test_gauss_legendre_converges_much_faster_than_riemann(tanh_mlp):
    model, X = tanh_mlp
    n = 16
    reference = IntegratedGradients(model, n_steps=200).explain(X).values
    errors = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for method in IG_METHODS:
            values = IntegratedGradients(model, n_steps=n, method=method).explain(X).values
            errors[method] = np.abs(values - reference).max()
    riemann = min(v for k, v in errors.items() if k != "gausslegendre")
    assert errors["gausslegendre"] < 1e-3 * riemann, errors
    assert errors["riemann_left"] > 10 * errors["riemann_middle"]  # first- versus second-order rules


def test_large_completeness_gap_warns_and_small_one_does_not(tanh_mlp):
    model, X = tanh_mlp
    with pytest.warns(ConvergenceWarning, match=r"completeness gap exceeds 5%.*n_steps=2.*method='gausslegendre'"):
        IntegratedGradients(model, n_steps=2, method="riemann_left").explain(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        IntegratedGradients(model, n_steps=32).explain(X)


# --------------------------------------------------------------------------- SmoothGrad: unification theorem


@pytest.mark.parametrize("antithetic", [True, False])
def test_smoothgrad_matches_the_closed_form_on_sin(sine, antithetic):
    """Agarwal et al. (2021): SG_sigma(x) = w cos(w^T x) exp(-sigma^2 |w|^2 / 2) for f = sin(w^T x)."""
    model, w, X = sine
    sigma = 0.5
    e = SmoothGrad(
        model, n_samples=6400, noise_level=sigma, noise_scale="absolute", antithetic=antithetic, random_state=0
    ).explain(X)
    err = rel_err(e.values, sine_smoothgrad(w, X, sigma))
    assert np.median(err) < 0.02, err
    np.testing.assert_array_equal(e.extras["noise_std"], sigma)


def test_smoothgrad_error_shrinks_like_one_over_root_n_with_the_predicted_constant(sine):
    """With antithetic pairs the relative error is |mean_k cos(s_k) - E cos s| / E cos s, s = w^T eps,
    whose standard deviation is known in closed form; check the RMS over seeds against it."""
    model, w, X = sine
    sigma, x = 0.8, X[:1]
    v = sigma**2 * (w @ w)
    sd_pair = np.sqrt((1 + np.exp(-2 * v)) / 2 - np.exp(-v)) / np.exp(-v / 2)
    reference = sine_smoothgrad(w, x, sigma)
    rms = {}
    for n in (64, 1024):
        errs = [
            rel_err(
                SmoothGrad(model, n_samples=n, noise_level=sigma, noise_scale="absolute", random_state=s)
                .explain(x)
                .values,
                reference,
            )[0]
            for s in range(40)
        ]
        rms[n] = np.sqrt(np.mean(np.square(errs)))
        predicted = sd_pair / np.sqrt(n // 2)
        assert 0.65 < rms[n] / predicted < 1.5, (n, rms[n], predicted)
    assert 2.5 < rms[64] / rms[1024] < 6.5  # sqrt(16) = 4


def test_smoothgrad_stderr_is_calibrated(sine):
    """The reported standard error matches the spread of the estimate across seeds."""
    model, w, X = sine
    x = X[:2]
    runs = [
        SmoothGrad(model, n_samples=200, noise_level=0.6, noise_scale="absolute", antithetic=False, random_state=s).explain(x)
        for s in range(60)
    ]
    spread = np.std([r.values for r in runs], axis=0, ddof=1)
    reported = np.mean([r.stderr for r in runs], axis=0)
    ratio = np.median(reported / spread)
    assert 0.8 < ratio < 1.25, ratio


def test_noise_level_is_relative_to_each_inputs_range(tanh_mlp):
    """noise_scale='range': sigma_i = noise_level * (x_i.max() - x_i.min()); equal to the absolute
    parametrisation with that sigma, input by input (the same seed gives the same draws)."""
    model, X = tanh_mlp
    e = SmoothGrad(model, n_samples=16, noise_level=0.2, random_state=7).explain(X)
    sigma = 0.2 * (X.max(axis=1) - X.min(axis=1))
    np.testing.assert_allclose(e.extras["noise_std"], sigma, rtol=1e-15)
    for i in range(len(X)):
        alone = SmoothGrad(model, n_samples=16, noise_level=sigma[i], noise_scale="absolute", random_state=7)
        np.testing.assert_allclose(alone.explain(X[i : i + 1], e.target[i]).values[0], e.values[i], rtol=1e-10, atol=1e-13)


def test_noise_tunnel_averages_the_wrapped_explainer_over_shared_antithetic_draws(tanh_mlp):
    """SmoothGrad(IG) = mean over k of IG(x + sigma Z_k) and IG(x - sigma Z_k), Z drawn once per call."""
    model, X = tanh_mlp
    X = X[:3]
    ig = IntegratedGradients(model, baseline=0.1, n_steps=12)
    e = SmoothGrad(model, ig, n_samples=8, noise_level=0.3, noise_scale="absolute", random_state=11).explain(X)
    Z = np.random.default_rng(11).standard_normal((4, 6))
    expected = np.zeros(X.shape)
    for sign in (1, -1):
        for z in Z:
            expected += ig.explain(X + sign * 0.3 * z, e.target).values / 8
    np.testing.assert_allclose(e.values, expected, rtol=1e-10, atol=1e-13)
    # hyper-parameters of an instance are used, and batch_size overrides the inner one
    assert SmoothGrad(model, ig, n_samples=2, batch_size=5).explain(X[:1]).params["batch_size"] == 5


# --------------------------------------------------------------------------- n_samples="auto"


def test_auto_sample_size_meets_its_stated_rule(tanh_mlp):
    model, X = tanh_mlp
    e = SmoothGrad(model, n_samples="auto", noise_level=0.3, random_state=0).explain(X)
    used = e.extras["n_samples_used"]
    assert np.all(e.extras["converged"])
    assert set(np.unique(used)) <= {32 * 2**k for k in range(8)}
    se = e.stderr.reshape(len(X), -1).max(axis=1)
    scale = np.abs(e.values).reshape(len(X), -1).max(axis=1)
    assert np.all(se <= SmoothGrad.auto_rtol * scale)
    # each input stops on its own: explaining a row alone gives the same numbers
    for i in (0, 5):
        alone = SmoothGrad(model, n_samples="auto", noise_level=0.3, random_state=0).explain(X[i : i + 1], e.target[i])
        np.testing.assert_allclose(alone.values[0], e.values[i], rtol=1e-10, atol=1e-13)
        assert alone.extras["n_samples_used"][0] == used[i]


def test_auto_sample_size_warns_at_the_cap(sine):
    """Heavy noise makes E[grad] = exp(-sigma^2 |w|^2 / 2) w cos(.) vanish: the rule cannot be met."""
    model, w, X = sine
    with pytest.warns(ConvergenceWarning, match="reached the cap of 4096"):
        e = SmoothGrad(model, n_samples="auto", noise_level=4.0, noise_scale="absolute", random_state=0).explain(X[:2])
    assert np.all(e.extras["n_samples_used"] == 4096) and not e.extras["converged"].any()


# --------------------------------------------------------------------------- speed by design


class CallCounter(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.calls: list[int] = []

    def forward(self, x):
        self.calls.append(x.shape[0])
        return self.inner(x)


def test_one_model_call_per_chunk_and_batch_size_caps_rows(logistic_trio):
    counter = CallCounter(logistic_trio["torch"])
    model = as_model(counter, dtype=torch.float64, batch_size=10_000)
    X = logistic_trio["X"][:40]
    model.predict(X[:1])
    for explainer, rows in [
        (Saliency(model), 40),
        (IntegratedGradients(model, n_steps=50), 2000),
        (SmoothGrad(model, n_samples=50, random_state=0), 2000),
        (SmoothGrad(model, IntegratedGradients, n_samples=10, random_state=0), 20000),
    ]:
        counter.calls.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            explainer.explain(X, 0)
        gradient_calls = [c for c in counter.calls if c > 1]  # f(x), f(baseline) predictions aside
        assert sum(gradient_calls) >= rows and len(gradient_calls) <= 3, (type(explainer).__name__, counter.calls)
    counter.calls.clear()
    IntegratedGradients(model, n_steps=50, batch_size=300).explain(X, 0)
    assert max(counter.calls) == 300 and sum(counter.calls) >= 2000


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("cls", [Saliency, GradientXInput, IntegratedGradients, SmoothGrad])
def test_models_without_gradients_are_refused_at_construction(logistic_trio, cls):
    with pytest.raises(CapabilityError, match=f"{cls.__name__} needs a model with 'gradient' capability"):
        cls(logistic_trio["sklearn"])
    with pytest.raises(CapabilityError, match="model-agnostic method"):
        cls(wrap(logistic_trio, "callable"))


BAD_PARAMS = [
    (IntegratedGradients, {"n_steps": 0}, r"n_steps must be an int in \[1, inf\]; got 0\. IntegratedGradients needs at least 1 step \(50 is typical\)"),
    (IntegratedGradients, {"n_steps": 2.5}, r"n_steps must be an int.*got 2\.5"),
    (IntegratedGradients, {"n_steps": 1, "method": "riemann_trapezoid"}, r"n_steps must be an int in \[2, inf\] with method='riemann_trapezoid'; got 1"),
    (IntegratedGradients, {"method": "simpson"}, r"method must be one of .*'gausslegendre'.*got 'simpson'"),
    (IntegratedGradients, {"space": "softmax"}, r"space must be one of .*'log_odds'.*got 'softmax'.*'auto' \(the default\) and 'raw'"),
    (IntegratedGradients, {"baseline": np.zeros(3)}, r"baseline must be None, a scalar, an array of one sample's shape \(4,\).*got an array of shape \(3,\)"),
    (IntegratedGradients, {"baseline": np.zeros((2, 4))}, r"one baseline per sample of shape \(6, 4\)"),
    (IntegratedGradients, {"baseline": np.array([0, np.nan, 0, 0])}, r"baseline contains 1 non-finite value"),
    (IntegratedGradients, {"baseline": float("inf")}, r"baseline must be finite; got inf"),
    (IntegratedGradients, {"baseline": "zeros"}, r"baseline must be None, a scalar.*got 'zeros'. For a zero baseline pass None"),
    (GradientXInput, {"baseline": np.zeros(5)}, r"baseline must be None, a scalar"),
    (Saliency, {"abs": "yes"}, r"abs must be a bool; got 'yes'"),
    (Saliency, {"batch_size": 0}, r"batch_size must be an int in \[1, inf\] or None; got 0\. It caps the rows"),
    (SmoothGrad, {"n_samples": 0}, r"n_samples must be an int in \[1, inf\] or one of 'auto'; got 0\. SmoothGrad averages"),
    (SmoothGrad, {"n_samples": "many"}, r"n_samples must be .*got 'many'"),
    (SmoothGrad, {"noise_level": -0.1}, r"noise_level must be a float in \[0, inf\]; got -0\.1\. Smilkov"),
    (SmoothGrad, {"noise_level": float("nan")}, r"noise_level must be a float"),
    (SmoothGrad, {"noise_scale": "std"}, r"noise_scale must be one of 'absolute', 'range'; got 'std'"),
    (SmoothGrad, {"antithetic": 1}, r"antithetic must be a bool; got 1"),
    (SmoothGrad, {"random_state": -1}, r"random_state must be an int >= 0"),
    (SmoothGrad, {"explainer": "saliency"}, r"explainer must be None, Saliency, GradientXInput or IntegratedGradients .*got 'saliency'"),
    (SmoothGrad, {"explainer": SmoothGrad}, r"explainer must be None, Saliency.*SmoothGrad"),
]


@pytest.mark.parametrize("cls,kwargs,match", BAD_PARAMS, ids=[f"{c.__name__}-{list(k)[0]}" for c, k, _ in BAD_PARAMS])
def test_bad_parameters_raise_with_name_value_and_fix(logistic_trio, cls, kwargs, match):
    model = wrap(logistic_trio, "torch")
    with pytest.raises(InvalidParameterError, match=match):
        cls(model, **kwargs).explain(logistic_trio["X"][:6])


def test_bad_wrapped_explainer_parameters_are_reported(logistic_trio):
    model = wrap(logistic_trio, "torch")
    bad = IntegratedGradients(model, n_steps=-3)
    with pytest.raises(InvalidParameterError, match=r"IntegratedGradients: n_steps must be an int in \[1, inf\]; got -3"):
        SmoothGrad(model, bad).explain(logistic_trio["X"][:2])
    with pytest.raises(InvalidParameterError, match=r"baseline must be None, a scalar"):
        SmoothGrad(model, GradientXInput(model, baseline=np.ones(7))).explain(logistic_trio["X"][:2])


def test_bad_inputs_and_targets_are_refused(logistic_trio):
    model = wrap(logistic_trio, "torch")
    X = logistic_trio["X"][:3].copy()
    with pytest.raises(InvalidParameterError, match="target must lie in"):
        Saliency(model).explain(X, target=7)
    X[1, 2] = np.nan
    with pytest.raises(InvalidParameterError, match="non-finite"):
        IntegratedGradients(model).explain(X)


# --------------------------------------------------------------------------- agreement with captum


@pytest.fixture(scope="module")
def cnn_batch():
    net = make_model("cnn", (1, 12, 12), 4, random_state=0, channels=(4, 8), hidden=16)
    X = np.random.default_rng(0).random((6, 1, 12, 12)).astype(np.float32)
    return net, X


def _close(ours, theirs, rtol=1e-5):
    scale = np.abs(theirs).max()
    assert scale > 0
    assert np.abs(ours - theirs).max() <= rtol * scale, np.abs(ours - theirs).max() / scale


@pytest.mark.peers
@pytest.mark.parametrize("method", IG_METHODS)
def test_integrated_gradients_matches_captum(cnn_batch, method):
    captum_attr = pytest.importorskip("captum.attr")
    net, X = cnn_batch
    model = as_model(net)
    target = model.predict_class(X)
    baseline = np.full((1, 12, 12), 0.2, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ReLU net: a large gap is expected and captum warns about grads
        ours = IntegratedGradients(model, baseline=baseline, method=method).explain(X, target).values
        theirs = (
            captum_attr.IntegratedGradients(net)
            .attribute(
                torch.as_tensor(X), baselines=torch.as_tensor(baseline[None]), target=torch.as_tensor(target),
                n_steps=50, method=method,
            )
            .detach()
            .numpy()
        )
    if method == "riemann_trapezoid":
        ours = ours * 49 / 50  # captum's trapezoid weights sum to 1 - 1/n (see quadrature's notes)
    _close(ours, theirs)


@pytest.mark.peers
def test_saliency_and_gradient_x_input_match_captum(cnn_batch):
    captum_attr = pytest.importorskip("captum.attr")
    net, X = cnn_batch
    model = as_model(net)
    target = model.predict_class(X)
    t, tt = torch.as_tensor(X), torch.as_tensor(target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        sal = captum_attr.Saliency(net).attribute(t, target=tt, abs=False).numpy()
        sal_abs = captum_attr.Saliency(net).attribute(t, target=tt).numpy()
        ixg = captum_attr.InputXGradient(net).attribute(t, target=tt).detach().numpy()
    _close(Saliency(model).explain(X, target).values, sal)
    _close(Saliency(model, abs=True).explain(X, target).values, sal_abs)
    _close(GradientXInput(model).explain(X, target).values, ixg)


@pytest.mark.peers
def test_smoothgrad_agrees_with_captum_noise_tunnel_in_expectation(tanh_mlp):
    """Different noise draws, same target E[grad f(x + eps)]: the two estimates agree within their errors."""
    captum_attr = pytest.importorskip("captum.attr")
    model, X = tanh_mlp
    X = X[:4]
    target = model.predict_class(X)
    sigma, n = 0.4, 2000
    ours = SmoothGrad(model, n_samples=n, noise_level=sigma, noise_scale="absolute", antithetic=False, random_state=0)
    e = ours.explain(X, target)
    with torch.random.fork_rng():  # captum draws from the global torch RNG: keep the suite's state untouched
        torch.manual_seed(0)
        nt = captum_attr.NoiseTunnel(captum_attr.Saliency(model.module))
        theirs = nt.attribute(
            torch.as_tensor(X), target=torch.as_tensor(target), nt_type="smoothgrad", nt_samples=n,
            stdevs=sigma, abs=False,
        ).numpy()
    z = (e.values - theirs) / (np.sqrt(2) * e.stderr)
    assert np.abs(z).max() < 5, np.abs(z).max()
    assert np.sqrt(np.mean(z**2)) < 1.6
