"""GradientSHAP: equal to captum's GradientShap fed the same draws (baseline rows, path positions,
noise) on the zoo CNN and MLP (peers); the closed form of a linear model; convergence to
Integrated Gradients with one baseline, within the reported standard error."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from scrutiny import InvalidParameterError  # noqa: E402
from scrutiny.attribution import GradientSHAP, IntegratedGradients  # noqa: E402
from scrutiny.attribution.gradient_shap import GradientSHAPDesign  # noqa: E402


@pytest.fixture(scope="module")
def zoo():
    from scrutiny.zoo import reference_model

    cnn, info = reference_model("cnn", "digits")
    mlp, _ = reference_model("mlp", "digits")
    return {"cnn": cnn, "mlp": mlp, "X": info["test"].X[:4], "bg": info["train"].X[:20]}


def _captum_one(net, x, bg, target, n_samples, stdevs, seed):
    """captum's GradientShap on one input, its global draws seeded (and the global state restored)."""
    from captum.attr import GradientShap

    state = np.random.get_state()
    with torch.random.fork_rng():
        np.random.seed(seed)
        torch.manual_seed(seed)
        try:
            out = GradientShap(net).attribute(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(
                bg, dtype=torch.float32), n_samples=n_samples, stdevs=stdevs, target=int(target))
        finally:
            np.random.set_state(state)
    return out.detach().numpy()


def _captum_design(n_background, shape, n_samples, stdevs, seed):
    """The draws captum makes for one input after the seeding above: baseline rows
    (np.random.choice), noise (torch.normal), then path positions (np.random.uniform)."""
    rs = np.random.RandomState(seed)
    index = rs.choice(n_background, n_samples)
    alpha = rs.uniform(0.0, 1.0, n_samples)
    std = torch.full((n_samples,) + tuple(shape), float(stdevs))
    noise = torch.normal(0.0, std, generator=torch.Generator().manual_seed(seed)).double().numpy()
    return GradientSHAPDesign(index=index, alpha=alpha, noise=noise)


@pytest.mark.parametrize("name", ["cnn", "mlp"])
def test_equals_captum_fed_the_same_draws(zoo, name):
    pytest.importorskip("captum")
    net, X, bg = zoo[name], zoo["X"], zoo["bg"]
    S, stdevs, seed = 8, 0.1, 123
    design = _captum_design(len(bg), X.shape[1:], S, stdevs, seed)

    class Fed(GradientSHAP):
        def _design(self, rng, n_background, sample_shape):
            return design

    target = np.array([0, 3, 7, 9])
    e = Fed(net, bg, n_samples=S, stdevs=stdevs).explain(X, target=target)
    ref = np.concatenate([_captum_one(net, X[i:i + 1], bg, t, S, stdevs, seed) for i, t in enumerate(target)])
    np.testing.assert_allclose(e.values, ref, rtol=0, atol=1e-5 * np.abs(ref).max())
    # the fed design really is what captum drew: a different seed gives a different answer
    other = _captum_one(net, X[:1], bg, 0, S, stdevs, seed + 1)
    assert np.abs(other - ref[:1]).max() > 1e-3 * np.abs(ref).max()


def test_linear_model_closed_form():
    lin = torch.nn.Linear(5, 3).double()
    rng = np.random.default_rng(0)
    with torch.no_grad():
        lin.weight.copy_(torch.as_tensor(rng.normal(size=(3, 5))))
    X, bg = rng.normal(size=(6, 5)), rng.normal(size=(30, 5))
    W = lin.weight.detach().numpy()
    # one baseline row: every draw gives W_t * (x - b) exactly
    e1 = GradientSHAP(lin, bg[:1], n_samples=5, random_state=0).explain(X, target=2)
    np.testing.assert_allclose(e1.values, W[2] * (X - bg[0]), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(e1.stderr, 0.0, atol=1e-12)
    # many rows: W_t * (x - E[b]) (the exact SHAP values of a linear model) within 5 standard errors
    e = GradientSHAP(lin, bg, n_samples=2000, random_state=1).explain(X, target=2)
    exact = W[2] * (X - bg.mean(axis=0))
    assert np.all(np.abs(e.values - exact) <= 5 * e.stderr + 1e-12)
    assert np.all(e.stderr > 0) and np.all(e.stderr < 0.1)
    np.testing.assert_allclose(e.base_values, (bg @ W.T + lin.bias.detach().numpy())[:, 2].mean(), rtol=1e-12)


def test_one_baseline_converges_to_integrated_gradients():
    g = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))
    rng = np.random.default_rng(2)
    X, b = rng.normal(size=(3, 4)), rng.normal(size=(1, 4))
    ig = IntegratedGradients(net, baseline=b[0], n_steps=64).explain(X, target=1).values
    e = GradientSHAP(net, b, n_samples=3000, random_state=0).explain(X, target=1)
    assert np.all(np.abs(e.values - ig) <= 5 * e.stderr + 1e-9)
    assert np.abs(e.values - ig).max() < 0.05 * np.abs(ig).max()
    # expectation sums to f(x) - f(b): the gap is Monte Carlo error of the order of the stderr
    assert np.all(np.abs(e.extras["completeness_gap"]) <= 5 * np.sqrt((e.stderr.reshape(3, -1) ** 2).sum(1) * 4))


def test_seed_reproducible_and_design_shared_by_inputs():
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).double()
    rng = np.random.default_rng(3)
    X, bg = rng.normal(size=(5, 4)), rng.normal(size=(10, 4))
    a = GradientSHAP(net, bg, n_samples=7, stdevs=0.3, random_state=4).explain(X)
    b = GradientSHAP(net, bg, n_samples=7, stdevs=0.3, random_state=4).explain(X)
    c = GradientSHAP(net, bg, n_samples=7, stdevs=0.3, random_state=5).explain(X)
    np.testing.assert_array_equal(a.values, b.values)
    assert not np.allclose(a.values, c.values)


def test_errors_name_parameter_and_fix():
    net = torch.nn.Linear(4, 2)
    X = np.zeros((2, 4))
    with pytest.raises(InvalidParameterError, match="background.*X_train"):
        GradientSHAP(net).explain(X)
    with pytest.raises(InvalidParameterError, match=r"background must have shape"):
        GradientSHAP(net, np.zeros((3, 5))).explain(X)
    with pytest.raises(InvalidParameterError, match="n_samples"):
        GradientSHAP(net, np.zeros((3, 4)), n_samples=0).explain(X)
    with pytest.raises(InvalidParameterError, match="stdevs"):
        GradientSHAP(net, np.zeros((3, 4)), stdevs=-1.0).explain(X)
