"""Perturbation and robustness metrics: closed forms on linear models, agreement with captum on
the same perturbations, relative properties (true > random), reproducibility, round trip."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import scrutiny  # noqa: E402
from scrutiny.attribution import GradientXInput, Saliency  # noqa: E402
from scrutiny.exceptions import InvalidParameterError  # noqa: E402
from scrutiny.metrics import (  # noqa: E402
    faithfulness_correlation, infidelity, pgi, pgu, sensitivity_avg, sensitivity_max,
)


def _linear_net(d=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    net = torch.nn.Linear(d, k).double()
    with torch.no_grad():
        net.weight.copy_(torch.from_numpy(rng.normal(size=(k, d))))
        net.bias.copy_(torch.from_numpy(rng.normal(size=k)))
    return net


def _mlp(d=5, k=3, seed=1):
    g = torch.Generator().manual_seed(seed)  # a local generator: global torch RNG untouched
    net = torch.nn.Sequential(torch.nn.Linear(d, 8), torch.nn.Tanh(), torch.nn.Linear(8, k)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    return net


@pytest.fixture(scope="module")
def X6():
    return np.random.default_rng(3).normal(size=(12, 6))


# ----------------------------------------------------------------------------- infidelity
def test_infidelity_of_gradient_x_input_on_a_linear_model_is_zero(X6):
    net = _linear_net()
    gxi = infidelity(net, X6, GradientXInput(net), multiply_by_inputs=True, space="raw", random_state=0)
    assert gxi.values.max() < 1e-10
    sal = infidelity(net, X6, Saliency(net), multiply_by_inputs=False, space="raw", random_state=0)
    assert sal.values.max() < 1e-10
    rand = infidelity(net, X6, "random", multiply_by_inputs=True, space="raw", random_state=0)
    assert rand.values.min() > 1e-4 and rand.params["attributions"] == "random"
    # without the multiply_by_inputs form Gradient x Input is not faithful to x - I perturbations
    assert infidelity(net, X6, GradientXInput(net), space="raw", random_state=0).mean > 1e-3


def test_infidelity_normalize_removes_a_global_scale(X6):
    net = _linear_net()
    scaled = 3.0 * Saliency(net).explain(X6).values
    assert infidelity(net, X6, scaled, space="raw", random_state=1).mean > 1e-2
    assert infidelity(net, X6, scaled, normalize=True, space="raw", random_state=1).values.max() < 1e-10


def _captum_fixed_noise(n, d, n_samples, seed):
    return np.random.default_rng(seed).normal(0, 0.2, size=(n * n_samples, d))


@pytest.mark.peers
@pytest.mark.parametrize("multiply_by_inputs", [False, True])
@pytest.mark.parametrize("normalize", [False, True])
def test_infidelity_equals_captum_on_the_same_perturbations(multiply_by_inputs, normalize):
    metrics = pytest.importorskip("captum.metrics")
    net = _mlp()
    X = np.random.default_rng(5).normal(size=(7, 5))
    n_samples = 4
    noise = _captum_fixed_noise(7, 5, n_samples, 9)
    attr = GradientXInput(net).explain(X).values if multiply_by_inputs else Saliency(net).explain(X).values
    target = net(torch.from_numpy(X)).argmax(1)
    noise_t = torch.from_numpy(noise)
    if multiply_by_inputs:
        @metrics.infidelity_perturb_func_decorator(multiply_by_inputs=True)
        def perturb(inputs):
            return inputs - noise_t
    else:
        def perturb(inputs):
            return noise_t, inputs - noise_t
    ref = metrics.infidelity(net, perturb, torch.from_numpy(X), torch.from_numpy(np.array(attr)), target=target,
                             n_perturb_samples=n_samples, normalize=normalize).numpy()
    ours = infidelity(net, X, attr, n_samples=n_samples, perturbation=lambda Xe, rng: Xe - noise,
                      multiply_by_inputs=multiply_by_inputs, normalize=normalize, space="raw",
                      target=target.numpy(), random_state=0)
    np.testing.assert_allclose(ours.values, ref, rtol=1e-9, atol=1e-12)
    assert ours.mean > 1e-6  # a nonlinear model: the comparison is not between two zeros


# ----------------------------------------------------------------------------- sensitivity
def test_sensitivity_of_a_constant_gradient_is_zero_and_random_is_not(X6):
    net = _linear_net()
    assert sensitivity_max(net, X6, Saliency(net), random_state=0).values.max() < 1e-12
    # Gradient x Input of a linear model: phi(x + d) - phi(x) = w * d, so the ratio is bounded by
    # radius * ||w|| / ||w * x|| and reached only at a corner of the ball
    w = net.weight.detach().numpy()[net(torch.from_numpy(X6)).argmax(1).numpy()]
    bound = 0.02 * np.linalg.norm(w, axis=1) / np.linalg.norm(w * X6, axis=1)
    smax = sensitivity_max(net, X6, GradientXInput(net), random_state=0)
    savg = sensitivity_avg(net, X6, GradientXInput(net), random_state=0)
    assert np.all(smax.values <= bound + 1e-12) and np.all(smax.values > 0.2 * bound)
    assert np.all(savg.values <= smax.values + 1e-15) and not smax.higher_is_better
    assert sensitivity_max(net, X6, "random", random_state=0).mean > 0.5


@pytest.mark.peers
def test_sensitivity_max_equals_captum_on_the_same_perturbations():
    metrics = pytest.importorskip("captum.metrics")
    captum_attr = pytest.importorskip("captum.attr")
    net = _mlp()
    X = np.random.default_rng(6).normal(size=(6, 5))
    n_samples = 5
    delta = np.random.default_rng(2).uniform(-0.05, 0.05, size=(6 * n_samples, 5))
    delta_t = torch.from_numpy(delta)
    target = net(torch.from_numpy(X)).argmax(1)
    saliency = captum_attr.Saliency(net)

    def explain(inputs, target):
        return saliency.attribute(inputs, target=target, abs=False)

    ref = metrics.sensitivity_max(explain, torch.from_numpy(X), perturb_func=lambda inputs, radius: inputs + delta_t,
                                  perturb_radius=0.05, n_perturb_samples=n_samples, target=target).numpy()
    ours = sensitivity_max(net, X, Saliency(net), radius=0.05, n_samples=n_samples,
                           perturbation=lambda Xe, rng: Xe + delta, target=target.numpy(), random_state=0)
    np.testing.assert_allclose(ours.values, ref, rtol=1e-9, atol=1e-12)
    assert ours.mean > 1e-4


def test_sensitivity_needs_an_explainer(X6):
    net = _linear_net()
    with pytest.raises(InvalidParameterError, match="needs an explainer"):
        sensitivity_max(net, X6, Saliency(net).explain(X6))
    with pytest.raises(InvalidParameterError, match="radius"):
        sensitivity_avg(net, X6, Saliency(net), radius=0.0)


# ----------------------------------------------------------------------------- tabular metrics
W8 = np.array([3.0, -2.0, 2.5, 0.0, 0.0, 0.01, 0.0, -0.02])


def _additive(X):
    return np.asarray(X) @ W8


@pytest.fixture(scope="module")
def X8():
    return np.random.default_rng(4).normal(size=(40, 8))


def test_faithfulness_correlation_is_one_for_exact_linear_attributions(X8):
    exact = W8 * X8  # exact Shapley values against the zero baseline
    res = faithfulness_correlation(_additive, X8, exact, n_runs=30, subset_size=3, random_state=0)
    assert res.higher_is_better and res.extras["n_undefined"] == 0
    np.testing.assert_allclose(res.values, 1.0, atol=1e-10)
    rand = faithfulness_correlation(_additive, X8, "random", n_runs=30, subset_size=3, random_state=0)
    assert rand.mean < 0.5
    neg = faithfulness_correlation(_additive, X8, -exact, n_runs=30, subset_size=3, random_state=0)
    np.testing.assert_allclose(neg.values, -1.0, atol=1e-10)


def test_pgi_perturbs_the_important_features():
    # the model reads only feature 0 and the attribution names feature 0: PGU must be exactly 0
    # (OpenXAI#28 swapped the masks, which would make PGI 0 here)
    X = np.random.default_rng(0).normal(size=(10, 4))
    attr = np.zeros_like(X)
    attr[:, 0] = 1.0

    def only_first(Z):
        return np.asarray(Z)[:, 0] ** 3

    assert pgu(only_first, X, attr, top_k=1, random_state=0).values.max() == 0.0
    assert pgi(only_first, X, attr, top_k=1, random_state=0).values.min() > 0.0


def test_pgi_above_pgu_for_true_attributions_and_above_random(X8):
    exact = W8 * X8
    kw = dict(top_k=3, n_samples=50, random_state=0)
    gi, gu = pgi(_additive, X8, exact, **kw), pgu(_additive, X8, exact, **kw)
    assert gi.mean > 10 * gu.mean and gi.higher_is_better and not gu.higher_is_better
    assert gi.mean > pgi(_additive, X8, "random", **kw).mean * 1.3
    assert gi.params["top_k"] == 3 and gi.params["random_state"] == 0


# ----------------------------------------------------------------------------- contract
@pytest.mark.parametrize("metric", [infidelity, faithfulness_correlation, pgi, pgu])
def test_same_seed_same_result_and_round_trip(metric, X8, tmp_path):
    kw = dict(random_state=7)
    a = metric(_additive, X8[:10], "random", **kw)
    b = metric(_additive, X8[:10], "random", **kw)
    np.testing.assert_array_equal(a.values, b.values)
    assert not np.array_equal(a.values, metric(_additive, X8[:10], "random", random_state=8).values)
    back = scrutiny.load_result(a.save(tmp_path / "m.npz"))
    np.testing.assert_array_equal(back.values, a.values)
    assert back.params == a.params and back.ci == a.ci and back.higher_is_better == a.higher_is_better


def test_sensitivity_same_seed_same_result(X6):
    net = _linear_net()
    a = sensitivity_max(net, X6, GradientXInput(net), random_state=3)
    b = sensitivity_max(net, X6, GradientXInput(net), random_state=3)
    np.testing.assert_array_equal(a.values, b.values)


def test_bad_parameters_are_named(X8):
    with pytest.raises(InvalidParameterError, match="n_samples"):
        infidelity(_additive, X8, W8 * X8, n_samples=0)
    with pytest.raises(InvalidParameterError, match="top_k"):
        pgi(_additive, X8, W8 * X8, top_k=9)
    with pytest.raises(InvalidParameterError, match="baseline"):
        faithfulness_correlation(_additive, X8, W8 * X8, baseline=np.zeros(3))
    with pytest.raises(InvalidParameterError, match="perturbation"):
        infidelity(_additive, X8, W8 * X8, perturbation="uniform")
