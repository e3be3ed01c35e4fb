"""Grad-CAM and Guided Backprop: closed forms (CAM of a global-average-pooling network, guided
gradients of a one-hidden-layer ReLU network), agreement with captum's LayerGradCam +
interpolate and GuidedBackprop on the zoo CNN and MLP (peers), the module left unchanged, and
Adebayo et al.'s sanity check: Guided Backprop barely changes when the upper layers are
re-initialised, the plain gradient does."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from scrutiny import InvalidParameterError  # noqa: E402
from scrutiny.attribution import GradCAM, GuidedBackprop, Saliency  # noqa: E402


@pytest.fixture(scope="module")
def zoo():
    from scrutiny.zoo import reference_model

    cnn, info = reference_model("cnn", "digits")
    mlp, _ = reference_model("mlp", "digits")
    return {"cnn": cnn, "mlp": mlp, "X": info["test"].X[:16]}


def _seeded(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5)
    return module


# --------------------------------------------------------------------------- Grad-CAM


def test_gradcam_of_a_global_average_pooling_network_is_cam():
    """f = W . mean_hw(A) + c: alpha_k = W_tk / (h w), so Grad-CAM = relu(sum_k W_tk A_k) / (h w)."""
    net = _seeded(nn.Sequential(nn.Conv2d(2, 5, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                nn.Linear(5, 3)).double())
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4, 2, 6, 6))
    e = GradCAM(net, layer="0", interpolation="nearest").explain(X, target=[0, 1, 2, 1])
    with torch.no_grad():
        A = net[0](torch.as_tensor(X)).numpy()
    W = net[3].weight.detach().numpy()[[0, 1, 2, 1]]
    cam = np.maximum(np.einsum("nk,nkhw->nhw", W, A) / 36.0, 0.0)
    np.testing.assert_allclose(e.extras["layer_map"], cam, rtol=1e-10, atol=1e-12)
    # same spatial size: the upsampled map is the map, repeated over the input's 2 channels
    np.testing.assert_allclose(e.values, np.repeat(cam[:, None], 2, axis=1), rtol=1e-10, atol=1e-12)
    assert e.values.shape == X.shape
    signed = GradCAM(net, layer=net[0], relu=False).explain(X, target=[0, 1, 2, 1])
    assert (signed.extras["layer_map"] < 0).any()
    np.testing.assert_allclose(np.maximum(signed.extras["layer_map"], 0), cam, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("layer,relu", [("conv.3", True), ("conv.0", False), (None, True)])
def test_gradcam_equals_captum_on_the_zoo_cnn(zoo, layer, relu):
    captum = pytest.importorskip("captum.attr")
    cnn, X = zoo["cnn"], zoo["X"]
    target = np.arange(16) % 10
    e = GradCAM(cnn, layer=layer, relu=relu).explain(X, target=target)
    sub = cnn.get_submodule(layer or "conv.3")  # None: the last convolution
    x = torch.as_tensor(X, dtype=torch.float32)
    small = captum.LayerGradCam(cnn, sub).attribute(x, target=torch.as_tensor(target), relu_attributions=relu)
    ref = captum.LayerAttribution.interpolate(small, (8, 8), "bilinear").detach().numpy()
    np.testing.assert_allclose(e.values, ref, rtol=0, atol=1e-5 * np.abs(ref).max())
    np.testing.assert_allclose(e.extras["layer_map"], small[:, 0].detach().numpy(), rtol=0,
                               atol=1e-5 * np.abs(ref).max())


def test_gradcam_on_the_zoo_mlp_linear_layer_equals_captum(zoo):
    """A layer without spatial dimensions gives one number per sample (captum: shape (n, 1))."""
    captum = pytest.importorskip("captum.attr")
    mlp, X = zoo["mlp"], zoo["X"]
    e = GradCAM(mlp, layer="body.2").explain(X, target=3)
    ref = captum.LayerGradCam(mlp, mlp.body[2]).attribute(torch.as_tensor(X, dtype=torch.float32), target=3,
                                                          relu_attributions=True).detach().numpy()
    assert ref.shape == (16, 1)
    np.testing.assert_allclose(e.values, np.broadcast_to(ref[:, :, None, None], X.shape), rtol=1e-5, atol=1e-6)


def test_gradcam_errors_name_parameter_and_fix(zoo):
    X = zoo["X"][:2]
    with pytest.raises(InvalidParameterError, match="layer='nope'.*available"):
        GradCAM(zoo["cnn"], layer="nope").explain(X)
    with pytest.raises(InvalidParameterError, match="no(ne)?.*Name a layer"):
        GradCAM(zoo["mlp"]).explain(X)
    with pytest.raises(InvalidParameterError, match="interpolation"):
        GradCAM(zoo["cnn"], interpolation="cubic").explain(X)
    with pytest.raises(InvalidParameterError, match="submodule"):
        GradCAM(zoo["cnn"], layer=nn.Conv2d(1, 1, 1)).explain(X)


# --------------------------------------------------------------------------- Guided Backprop


def test_guided_backprop_closed_form_one_hidden_layer():
    """x -> W1 x + b1 -> ReLU -> W2 . + b2: guided gradient = W1^T max(0, W2_t * 1[z > 0])."""
    net = _seeded(nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3)).double())
    rng = np.random.default_rng(1)
    X = rng.normal(size=(6, 5))
    e = GuidedBackprop(net).explain(X, target=2)
    W1, b1 = net[0].weight.detach().numpy(), net[0].bias.detach().numpy()
    W2 = net[2].weight.detach().numpy()
    z = X @ W1.T + b1
    expected = np.maximum(W2[2] * (z > 0), 0.0) @ W1
    np.testing.assert_allclose(e.values, expected, rtol=1e-12, atol=1e-12)
    grad = Saliency(net).explain(X, target=2).values
    assert np.abs(grad - expected).max() > 1e-3  # the guidance changes the gradient here


@pytest.mark.parametrize("name", ["cnn", "mlp"])
def test_guided_backprop_equals_captum(zoo, name):
    captum = pytest.importorskip("captum.attr")
    net, X = zoo[name], zoo["X"]
    target = (np.arange(16) * 3) % 10
    e = GuidedBackprop(net).explain(X, target=target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = captum.GuidedBackprop(net).attribute(torch.as_tensor(X, dtype=torch.float32),
                                                   target=torch.as_tensor(target)).detach().numpy()
    np.testing.assert_allclose(e.values, ref, rtol=0, atol=1e-5 * np.abs(ref).max())


@pytest.mark.parametrize("make", [lambda net: GuidedBackprop(net), lambda net: GradCAM(net, layer="conv.3")])
def test_module_is_left_unchanged(zoo, make):
    net = zoo["cnn"]
    modes = [m.training for m in net.modules()]
    state = {k: v.clone() for k, v in net.state_dict().items()}
    make(net).explain(zoo["X"][:3])
    for m in net.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
    assert [m.training for m in net.modules()] == modes
    assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())


# --------------------------------------------------------------------------- sanity check


def test_sanity_check_guided_backprop_ignores_the_upper_layers(zoo):
    """Adebayo et al. (2018), cascading randomisation: once the classifier and fc layers are
    re-initialised, Guided Backprop's maps stay close to the trained model's, the gradient's do
    not; Guided Backprop fails the test, the gradient passes. The zoo CNN applies its fc ReLU as
    F.relu, which no hook reaches, so the test runs on the same network rebuilt with ReLU modules
    (identical outputs), where the guided rule applies at every ReLU as in the paper."""
    import copy

    from scrutiny.diagnostics import sanity_check

    c = copy.deepcopy(zoo["cnn"])
    net = nn.Sequential(*c.conv, nn.Flatten(), c.fc, nn.ReLU(), c.classifier)
    X = zoo["X"]
    with torch.no_grad():
        x = torch.as_tensor(X, dtype=torch.float32)
        assert torch.equal(net(x), zoo["cnn"](x))
    checks = sanity_check({"Gradient": Saliency(net), "GuidedBackprop": GuidedBackprop(net)}, net, X,
                          tests=("cascading",), metrics=("spearman_abs", "ssim"), n_permutations=99)
    stages, guided = checks.curve("GuidedBackprop")
    _, grad = checks.curve("Gradient")
    upper = stages.index("cascading:7")  # classifier (9) and fc (7) re-initialised, convolutions intact
    assert guided[upper] > 0.7, (stages, guided)
    assert grad[upper] < 0.45, (stages, grad)
    _, guided_ssim = checks.curve("GuidedBackprop", "ssim")
    _, grad_ssim = checks.curve("Gradient", "ssim")
    assert guided_ssim[upper] > 0.7 and grad_ssim[upper] < 0.45
    assert checks.verdicts() == {"Gradient": {"cascading": True}, "GuidedBackprop": {"cascading": False}}


def test_sanity_check_accepts_the_hooked_methods(zoo):
    """sanity_check rebuilds each explainer on every randomised copy from its parameters."""
    from scrutiny.attribution import DeepLIFT, GradientSHAP
    from scrutiny.diagnostics import sanity_check

    net, X = zoo["cnn"], zoo["X"][:4]
    explainers = {"GradientSHAP": GradientSHAP(net, zoo["X"][4:12], n_samples=4, random_state=0),
                  "DeepLIFT": DeepLIFT(net), "GradCAM": GradCAM(net, layer="conv.3"), "GuidedBackprop": GuidedBackprop(net)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DeepLIFT: the zoo CNN's F.relu
        checks = sanity_check(explainers, net, X, tests=("independent",), layers=["classifier", "conv.0"],
                              metrics=("spearman_abs",), n_permutations=19)
    assert set(checks.verdicts()) == set(explainers)
    for name in explainers:
        _, curve = checks.curve(name, test="independent")
        assert np.all(np.isfinite(curve)) and np.all(curve < 1.0 - 1e-6)  # the explanations did change
