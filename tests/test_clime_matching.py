"""SmoothGrad = C-LIME by construction (``CLIME.matching``, ``noise_scale="range"``) and the
robustness result of Agarwal et al. (2021, Theorem 2): explanations are Lipschitz with a constant
of order grad_max / sigma."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scrutiny import InvalidParameterError, as_model
from scrutiny.attribution import CLIME, IntegratedGradients, Saliency, SmoothGrad
from scrutiny.zoo import make_model


def _rel(a, b):
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    return np.linalg.norm(a - b, axis=1) / np.linalg.norm(b, axis=1)


# --------------------------------------------------------------------------- matching on a CNN


@pytest.fixture(scope="module")
def digits_cnn():
    from scrutiny.data import load_digits, train_test_split
    from scrutiny.zoo import reference_model

    net, _ = reference_model("cnn", "digits")
    _, test = train_test_split(load_digits(), test_size=0.25, random_state=0)
    return net, test.X[:2].astype(np.float64)


def test_matching_clime_converges_to_smoothgrad_on_a_cnn(digits_cnn):
    """Same space (logits) and noise (15% of each image's range): the two estimates differ only by
    their sampling errors, so the standardised differences z = (SG - CLIME) / sqrt(se_SG^2 + se_CL^2)
    over the 128 pixels have mean square ~1 (chi^2 / 128: sd 0.125). The default C-LIME (probabilities,
    absolute noise 0.25) converges to another vector, thousands of standard errors away."""
    net, X = digits_cnn
    sg = SmoothGrad(net, n_samples=1000, random_state=0)
    a = sg.explain(X)
    clime = CLIME.matching(sg, n_samples=4000)
    assert (clime.space, clime.sigma, clime.noise_scale, clime.antithetic) == ("raw", 0.15, "range", True)
    b = clime.explain(X)
    np.testing.assert_allclose(b.extras["noise_std"], a.extras["noise_std"])
    z2 = np.mean((a.values - b.values) ** 2 / (a.stderr**2 + b.stderr**2))
    assert 0.6 < z2 < 1.6, z2
    assert _rel(b.values, a.values).max() < 0.05
    default = CLIME(net, n_samples=2000, random_state=0).explain(X)
    z2_default = np.mean((a.values - default.values) ** 2 / (a.stderr**2 + default.stderr**2))
    assert z2_default > 100, z2_default


def test_matching_keeps_smoothgrads_space_noise_and_names():
    net = make_model("mlp", 4, 3, random_state=0, hidden=(8,))
    names = list("abcd")
    sg = SmoothGrad(net, Saliency(net, space="probability"), noise_level=0.3, noise_scale="absolute",
                    antithetic=False, random_state=5, feature_names=names)
    c = CLIME.matching(sg, n_samples=64)
    assert (c.space, c.sigma, c.noise_scale, c.antithetic, c.random_state, c.n_samples) == (
        "probability", 0.3, "absolute", False, 5, 64)
    assert list(c.feature_names) == names
    assert CLIME.matching(SmoothGrad(net, space="log_odds"), random_state=1).space == "log_odds"
    assert CLIME.matching(SmoothGrad(net, space="log_odds"), random_state=1).random_state == 1


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda net: Saliency(net), "must be a SmoothGrad"),
        (lambda net: SmoothGrad(net, IntegratedGradients), "smooths IntegratedGradients"),
        (lambda net: SmoothGrad(net, Saliency(net, abs=True)), r"abs=True"),
    ],
)
def test_matching_refuses_what_has_no_clime_counterpart(make, match):
    net = make_model("mlp", 4, 3, random_state=0, hidden=(8,))
    with pytest.raises(InvalidParameterError, match=match):
        CLIME.matching(make(net))


# --------------------------------------------------------------------------- noise_scale="range"


def test_range_noise_equals_absolute_noise_at_sigma_times_range():
    """Per input, noise_scale="range" perturbs by sigma * (max - min) with the same design as absolute
    noise at that sigma, so the slopes agree to rounding; rows explained together equal rows alone."""
    rng = np.random.default_rng(0)
    W = rng.normal(size=(5, 2))

    def f(Z):
        return np.tanh(Z @ W)

    X = rng.normal(size=(3, 5)) * np.array([[0.5], [1.0], [3.0]])
    together = CLIME(f, sigma=0.2, noise_scale="range", n_samples=400, space="raw", random_state=3).explain(X)
    for i in range(3):
        r = X[i].max() - X[i].min()
        alone = CLIME(f, sigma=0.2 * r, n_samples=400, space="raw", random_state=3).explain(X[i : i + 1], together.target[i : i + 1])
        np.testing.assert_allclose(together.values[i], alone.values[0], rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(together.stderr[i], alone.stderr[0], rtol=1e-8, atol=1e-12)
        assert together.extras["noise_std"][i] == pytest.approx(0.2 * r)


def test_range_noise_recovers_a_linear_model_exactly():
    w = np.array([1.0, -2.0, 0.5])
    X = np.array([[0.0, 1.0, 2.0], [5.0, -5.0, 0.0]])
    e = CLIME(lambda Z: Z @ w, sigma=0.1, noise_scale="range", n_samples=20, random_state=0).explain(X)
    np.testing.assert_allclose(e.values, np.tile(w, (2, 1)), atol=1e-10)


def test_range_noise_refuses_constant_inputs():
    X = np.array([[1.0, 2.0, 3.0], [4.0, 4.0, 4.0]])
    with pytest.raises(InvalidParameterError, match=r"noise_scale='range'.*rows \[1\] are constant"):
        CLIME(lambda Z: Z.sum(1), noise_scale="range", n_samples=20).explain(X)
    with pytest.raises(InvalidParameterError, match="noise_scale"):
        CLIME(lambda Z: Z.sum(1), noise_scale="relative").explain(X)


# --------------------------------------------------------------------------- robustness (Theorem 2)


def lipschitz_ratios(explainer, X, deltas, target):
    """||E(x + delta) - E(x)|| / ||delta|| per point, with the same seed for both (common noise)."""
    a = explainer.explain(X, target).values.reshape(len(X), -1)
    b = explainer.explain(X + deltas, target).values.reshape(len(X), -1)
    return np.linalg.norm(a - b, axis=1) / np.linalg.norm(deltas.reshape(len(X), -1), axis=1)


def test_smoothgrad_and_clime_are_lipschitz_with_constant_falling_in_sigma():
    """local-attribution-notes.md 1.7 test 5. For a tanh MLP, ||grad f|| <= ||w_out[c]|| ||W_1||_2 =: G
    (tanh' <= 1), and Theorem 2 bounds the Lipschitz constant of SG_sigma and CLIME_sigma by
    sqrt(2 / pi) G / sigma. The measured ratios stay under that bound and fall as sigma grows."""
    net = make_model("mlp", 10, 2, random_state=0, hidden=(32,), activation="tanh").double()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(3.0)
    model = as_model(net, dtype=torch.float64)
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    W1, W2 = linears[0].weight.detach().numpy(), linears[-1].weight.detach().numpy()
    G = np.linalg.norm(W2[0]) * np.linalg.norm(W1, 2)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6, 10))
    deltas = rng.normal(size=X.shape)
    deltas *= 0.05 / np.linalg.norm(deltas, axis=1, keepdims=True)
    target = np.zeros(len(X), dtype=int)
    sigmas = (0.25, 0.5, 1.0, 2.0)
    med = {}
    for name, make in {
        "SmoothGrad": lambda s: SmoothGrad(model, n_samples=4000, noise_level=s, noise_scale="absolute", random_state=0),
        "CLIME": lambda s: CLIME(model, sigma=s, n_samples=8000, space="raw", random_state=0),
    }.items():
        for s in sigmas:
            r = lipschitz_ratios(make(s), X, deltas, target)
            assert r.max() <= 1.05 * np.sqrt(2 / np.pi) * G / s, (name, s, r.max(), G)
            med[name, s] = np.median(r)
        falls = [med[name, b] / med[name, a] for a, b in zip(sigmas, sigmas[1:])]
        assert max(falls) < 0.9, (name, falls)
    gradient = np.median(lipschitz_ratios(Saliency(model), X, deltas, target))
    assert gradient > med["SmoothGrad", 0.5] and gradient > med["CLIME", 0.5], (gradient, med)
