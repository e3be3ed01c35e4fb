"""DeepLIFT: the closed form on a linear model, completeness (summation-to-delta) whenever every
nonlinearity is a module, agreement with captum's DeepLift on the zoo MLP and CNN (peers), and
the module left exactly as it was."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from scrutiny import CapabilityError, InvalidParameterError  # noqa: E402
from scrutiny.attribution import DeepLIFT  # noqa: E402
from scrutiny.exceptions import ScrutinyWarning  # noqa: E402


def _seeded(module, seed=0, scale=0.5):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return module


def _all_module_cnn(inplace=False):
    """Every nonlinearity a module: ReLU -> MaxPool, Tanh, ELU, Sigmoid, Softplus."""
    return _seeded(nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(inplace=inplace), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1), nn.Tanh(), nn.MaxPool2d(2, stride=1),
        nn.Flatten(), nn.Linear(54, 16), nn.ELU(), nn.Linear(16, 8), nn.Sigmoid(), nn.Linear(8, 8),
        nn.Softplus(), nn.Linear(8, 3),
    ).double())


def _data(n=5, shape=(1, 8, 8), seed=1):
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(n,) + shape), rng.uniform(size=(n,) + shape)


def test_linear_model_equals_gradient_times_input_minus_baseline():
    lin = _seeded(nn.Linear(6, 3).double())
    rng = np.random.default_rng(0)
    X, B = rng.normal(size=(7, 6)), rng.normal(size=(7, 6))
    target = rng.integers(0, 3, size=7)
    e = DeepLIFT(lin, baseline=B).explain(X, target=target)
    W = lin.weight.detach().numpy()
    np.testing.assert_allclose(e.values, W[target] * (X - B), rtol=1e-12, atol=1e-12)
    f = X @ W.T + lin.bias.detach().numpy()
    fb = B @ W.T + lin.bias.detach().numpy()
    np.testing.assert_allclose(e.base_values, fb[np.arange(7), target], rtol=1e-12)
    np.testing.assert_allclose(e.values.sum(axis=1), (f - fb)[np.arange(7), target], rtol=1e-10)


@pytest.mark.parametrize("inplace", [False, True])
def test_completeness_with_random_baselines(inplace):
    net = _all_module_cnn(inplace)
    X, B = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ScrutinyWarning)  # no completeness warning
        e = DeepLIFT(net, baseline=B).explain(X, target=[0, 1, 2, 0, 1])
    with torch.no_grad():
        f = net(torch.as_tensor(X)).numpy()[np.arange(5), [0, 1, 2, 0, 1]]
        fb = net(torch.as_tensor(B)).numpy()[np.arange(5), [0, 1, 2, 0, 1]]
    assert np.max(np.abs(f - fb)) > 1e-2  # a non-trivial difference to explain
    np.testing.assert_allclose(e.values.reshape(5, -1).sum(axis=1), f - fb, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(e.extras["completeness_gap"], 0.0, atol=1e-10)
    # not the plain gradient x (input - baseline): the rescale rule matters here
    from scrutiny.attribution import GradientXInput

    plain = GradientXInput(net, baseline=B).explain(X, target=[0, 1, 2, 0, 1]).values
    assert np.abs(plain.reshape(5, -1).sum(axis=1) - (f - fb)).max() > 1e-3


def test_a_module_used_twice_keeps_completeness():
    act = nn.Tanh()
    net = _seeded(nn.Sequential(nn.Linear(4, 8), act, nn.Linear(8, 8), act, nn.Linear(8, 2)).double())
    rng = np.random.default_rng(3)
    X, B = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    e = DeepLIFT(net, baseline=B).explain(X, target=1)
    np.testing.assert_allclose(e.extras["completeness_gap"], 0.0, atol=1e-10)


def test_softmax_module_rule_is_captums_per_input():
    captum = pytest.importorskip("captum.attr")
    net = _seeded(nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 4), nn.Softmax(dim=1)))
    rng = np.random.default_rng(4)
    X, B = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    with pytest.warns(ScrutinyWarning, match="softmax rule centres"):
        e = DeepLIFT(net, baseline=B).explain(X, target=[0, 2, 3])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = np.concatenate([
            captum.DeepLift(net).attribute(torch.as_tensor(X[i:i + 1], dtype=torch.float32),
                                           torch.as_tensor(B[i:i + 1], dtype=torch.float32), target=t)
            .detach().numpy() for i, t in enumerate([0, 2, 3])])
    np.testing.assert_allclose(e.values, ref, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def zoo():
    from scrutiny.zoo import reference_model

    cnn, info = reference_model("cnn", "digits")
    mlp, _ = reference_model("mlp", "digits")
    X = info["test"].X[:6]
    return cnn, mlp, X


def _captum_rows(net, X, B, target):
    """captum's DeepLift, one input per call (its softmax/max-pool rules read the whole batch)."""
    from captum.attr import DeepLift

    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, t in enumerate(target):
            x = torch.as_tensor(X[i:i + 1], dtype=torch.float32)
            b = torch.as_tensor(B[i:i + 1] if B.shape[0] > 1 else B, dtype=torch.float32)
            rows.append(DeepLift(net).attribute(x, b, target=int(t)).detach().numpy())
    return np.concatenate(rows)


def test_equals_captum_on_the_zoo_mlp(zoo):
    pytest.importorskip("captum")
    _, mlp, X = zoo
    rng = np.random.default_rng(5)
    B = rng.uniform(size=X.shape)
    target = np.arange(6) % 10
    e = DeepLIFT(mlp, baseline=B).explain(X, target=target)
    ref = _captum_rows(mlp, X, B, target)
    scale = np.abs(ref).max()
    np.testing.assert_allclose(e.values, ref, rtol=0, atol=1e-5 * scale)
    np.testing.assert_allclose(e.extras["completeness_gap"], 0.0, atol=1e-5 * scale)


class _Same(nn.Module):
    def forward(self, x):
        return x * 1.0


def test_equals_captum_on_the_zoo_cnn_where_captums_hooks_compose(zoo):
    """captum hooks a ReLU's output gradient on the same tensor as the next MaxPool's input
    gradient, before the max-pooling rule replaces it, so for ReLU -> MaxPool its ReLU uses the
    plain max-pool gradient (and loses completeness with a non-constant baseline, below). With a
    no-op module between them captum applies the rules in the chain-rule order, and equals ours."""
    pytest.importorskip("captum")
    import copy

    cnn, _, X = zoo
    rng = np.random.default_rng(6)
    target = np.array([3, 1, 4, 1, 5, 9])
    spaced = copy.deepcopy(cnn)
    c = spaced.conv
    spaced.conv = nn.Sequential(c[0], c[1], _Same(), c[2], c[3], c[4], _Same(), c[5])
    for B in (np.zeros((1,) + X.shape[1:]), rng.uniform(size=X.shape)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ScrutinyWarning)  # the zoo CNN's F.relu is not hookable
            e = DeepLIFT(cnn, baseline=B).explain(X, target=target)
        ref = _captum_rows(spaced, X, B, target)
        np.testing.assert_allclose(e.values, ref, rtol=0, atol=1e-5 * np.abs(ref).max())


def test_captum_loses_completeness_on_relu_maxpool_where_ours_keeps_it():
    pytest.importorskip("captum")
    net = _seeded(nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                                nn.Linear(64, 3)).double())
    X, B = _data(3)
    e = DeepLIFT(net, baseline=B).explain(X, target=[0, 1, 2])
    with torch.no_grad():
        delta = (net(torch.as_tensor(X)) - net(torch.as_tensor(B))).numpy()[np.arange(3), [0, 1, 2]]
    np.testing.assert_allclose(e.values.reshape(3, -1).sum(axis=1), delta, rtol=1e-9)
    ref = _captum_rows(net.float(), X, B, [0, 1, 2])
    captum_gap = ref.reshape(3, -1).sum(axis=1) - delta
    assert np.abs(captum_gap).max() > 1e-2 * np.abs(delta).max()


def test_functional_nonlinearity_warns_and_reports_the_gap():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 8), nn.Linear(8, 2)

        def forward(self, x):
            return self.b(torch.tanh(self.a(x)))

    net = _seeded(Functional().double(), scale=1.5)
    rng = np.random.default_rng(7)
    with pytest.warns(ScrutinyWarning, match="F.relu"):
        e = DeepLIFT(net, baseline=rng.normal(size=4) * 2).explain(rng.normal(size=(3, 4)) * 2, target=0)
    assert np.abs(e.extras["completeness_gap"]).max() > 1e-3


def test_module_is_left_unchanged():
    net = _all_module_cnn()
    net.train()
    net[4].eval()  # a mixed mode a user may have set
    before = {k: v.clone() for k, v in net.state_dict().items()}
    X, B = _data(3)
    DeepLIFT(net, baseline=B).explain(X)
    for m in net.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
        assert not any(k in vars(m) for k in ("input", "output", "input_ref"))
    assert net.training and not net[4].training and net[1].training
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k])


def test_errors_name_parameter_and_fix():
    from sklearn.linear_model import LogisticRegression

    net = _all_module_cnn()
    X, _ = _data(2)
    with pytest.raises(InvalidParameterError, match="space.*Softmax"):
        DeepLIFT(net, space="probability").explain(X)
    with pytest.raises(InvalidParameterError, match="baseline"):
        DeepLIFT(net, baseline=np.zeros(5)).explain(X)
    rng = np.random.default_rng(0)
    clf = LogisticRegression().fit(rng.normal(size=(20, 3)), np.arange(20) % 2)
    with pytest.raises(CapabilityError, match="gradient"):
        DeepLIFT(clf)
