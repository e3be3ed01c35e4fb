"""Silent wrong values and unwrapped errors from issue 24: each now raises or warns, with its cause."""

import gzip
import struct
import warnings

import numpy as np
import pytest
import torch

from scrutiny.attribution import LIME, IntegratedGradients, KernelSHAP, Saliency, SmoothGrad
from scrutiny.exceptions import (
    CapabilityError,
    ConvergenceWarning,
    DataFormatError,
    InvalidParameterError,
    ModelError,
    ScrutinyWarning,
)

rng = np.random.default_rng(0)
X4 = rng.normal(size=(30, 4))
y4 = (X4[:, 0] > 0).astype(np.int64)


def logistic(d=4, c=2):
    # weights set by hand: no global torch seed
    net = torch.nn.Sequential(torch.nn.Linear(d, c)).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.as_tensor(np.arange(d * c, dtype=np.float64).reshape(c, d) / 10))
        net[0].bias.zero_()
    return net


# --------------------------------------------------------------------------- silent wrong values


def test_influence_cross_entropy_refuses_fractional_labels():
    from scrutiny.data_attribution import InfluenceFunctions

    with pytest.raises(InvalidParameterError, match=r"y_train must hold integer class labels .*silently floor"):
        InfluenceFunctions(logistic(), "cross_entropy", l2=1e-2, check_optimum="ignore").fit(X4, y4 + 0.9)
    from scrutiny.data_attribution import TrainingObjective

    # integer-valued floats are still labels, and give the same losses as the ints
    as_float = TrainingObjective(logistic(), "cross_entropy", X4, y4.astype(float)).loss_values()
    np.testing.assert_array_equal(as_float, TrainingObjective(logistic(), "cross_entropy", X4, y4).loss_values())


def test_fit_to_optimum_warns_at_its_iteration_limit():
    from scrutiny.data_attribution import fit_to_optimum

    with pytest.warns(ConvergenceWarning, match=r"iteration limit \(max_iter=1\).*not at an optimum"):
        info = fit_to_optimum(logistic(), "cross_entropy", X4, y4, l2=1e-2, max_iter=1, newton=False)
    assert info["grad_norm"] > 1e-10
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        fit_to_optimum(logistic(), "cross_entropy", X4, y4, l2=1e-2)  # converges: no warning


def test_kernelshap_overflow_is_an_error_naming_the_cause():
    big = lambda Z: np.sign(Z[:, :1]) * 1.7e308  # noqa: E731 - finite outputs whose differences overflow
    with pytest.raises(ModelError, match=r"KernelSHAP produced non-finite values: float64 overflowed.*Rescale"):
        KernelSHAP(big, background=X4, n_samples=64, space="raw", random_state=0).explain(X4[:1])
    # outputs of 1e300 stay finite throughout: explained, not refused
    e = KernelSHAP(lambda Z: Z[:, :1] * 1e300, background=X4, n_samples=64, space="raw", random_state=0).explain(X4[:1])
    exact = np.r_[X4[0, 0] - X4[:, 0].mean(), 0.0, 0.0, 0.0]  # Shapley values of f(x) = 1e300 x_0
    np.testing.assert_allclose(e.values[0] / 1e300, exact, rtol=1e-8, atol=1e-12)


def test_kernelshap_huge_budget_is_refused_before_allocating():
    f = lambda Z: Z.sum(1, keepdims=True)  # noqa: E731
    X = rng.normal(size=(3, 25))
    with pytest.raises(InvalidParameterError, match=r"n_samples=33554432 with 25 features implies a 12\.5 GiB design"):
        KernelSHAP(f, background=X, n_samples=2**25, random_state=0).explain(X[:1])


def test_dmm_men_refuses_responses_that_overflow():
    from scrutiny.surrogate import DMMMEN

    y = (X4 @ np.ones(4)) * 1e300
    with pytest.raises(InvalidParameterError, match=r"responses as large as .*e\+300.*Rescale y"):
        DMMMEN(n_components=2, n_iter=20, n_burnin=10, random_state=0).fit(X4, y)


@pytest.mark.parametrize("kernel", ["gaussian", "cosine"])
def test_nnk_refuses_features_that_overflow(kernel):
    from scrutiny.nnk import NNK

    with pytest.raises(InvalidParameterError, match=r"X holds values as large as .*e\+200.*all-zero kernel weights"):
        NNK(k=5, kernel=kernel).fit(X4 * 1e200, y4)


def test_smoothgrad_warns_when_range_noise_is_zero():
    net = torch.nn.Sequential(torch.nn.Linear(1, 2))
    with pytest.warns(ScrutinyWarning, match=r"input\(s\) \[0, 1\] have a single feature.*adds no noise"):
        SmoothGrad(net, n_samples=4, random_state=0).explain(np.ones((2, 1), dtype=np.float32))
    with pytest.warns(ScrutinyWarning, match=r"are constant"):
        SmoothGrad(logistic(), n_samples=4, random_state=0).explain(np.full((1, 4), 2.0))


def test_lime_on_a_constant_model_scores_one_and_warns():
    const = lambda Z: np.full((len(Z), 1), 3.0)  # noqa: E731
    with pytest.warns(ScrutinyWarning, match="does not vary over the perturbed samples"):
        e = LIME(const, training_data=X4, n_samples=300, random_state=0).explain(X4[:3])
    np.testing.assert_array_equal(e.extras["score"], 1.0)
    np.testing.assert_allclose(e.values, 0.0, atol=1e-12)


# --------------------------------------------------------------------------- unwrapped errors


def test_meta_device_module_is_refused_at_wrapping():
    from scrutiny.models import as_model

    with pytest.raises(InvalidParameterError, match=r"parameter '0.weight' is on the meta device.*to_empty"):
        as_model(torch.nn.Sequential(torch.nn.Linear(3, 2, device="meta")))


class _Argmax(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 3)

    def forward(self, x):
        return torch.nn.functional.one_hot(self.lin(x).argmax(1), 3).float()


class _Constant(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(2))

    def forward(self, x):
        return self.bias.expand(x.shape[0], 2)


@pytest.mark.parametrize("module", [_Argmax(), _Constant()], ids=["argmax", "constant"])
@pytest.mark.parametrize("method", [Saliency, IntegratedGradients])
def test_gradient_methods_on_a_model_without_gradient_path(module, method):
    with pytest.raises(CapabilityError, match="output has no gradient path to its input.*perturbation method"):
        method(module).explain(X4[:2].astype(np.float32), target=[0, 1])


class _BrokenFeatures(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Linear(4, 3)
        self.head = torch.nn.Linear(3, 2)

    def features(self, x):
        raise RuntimeError("feature extractor exploded")

    def forward(self, x):
        return self.head(self.body(x))


def test_exceptions_inside_features_are_wrapped():
    from scrutiny.data_attribution import RepresenterPoints
    from scrutiny.models import as_model

    with pytest.raises(ModelError, match="raised RuntimeError while computing features .*exploded"):
        as_model(_BrokenFeatures()).features(X4.astype(np.float32))
    with pytest.raises(ModelError, match="exploded"):
        RepresenterPoints(_BrokenFeatures()).fit(X4.astype(np.float32), y4)


class _FailsInTraining(torch.nn.Module):
    """Passes the loss check (its first forward pass), then raises in every later one."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 2)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        if self.calls > 1:
            raise ValueError("toy failure after the first call")
        return self.lin(x)


def test_exceptions_inside_influence_fits_are_wrapped():
    from scrutiny.data_attribution import InfluenceFunctions

    with pytest.raises(ModelError, match="raised ValueError in a forward pass of the training objective"):
        InfluenceFunctions(_FailsInTraining(), "cross_entropy", l2=1e-2, check_optimum="ignore").fit(
            X4.astype(np.float32), y4)


def test_idx_with_more_than_64_dimensions(tmp_path):
    from scrutiny.data import load_idx

    path = tmp_path / "deep.idx"
    path.write_bytes(bytes([0, 0, 0x08, 65]) + struct.pack(">65i", *([1] * 65)) + b"\x00")
    with pytest.raises(DataFormatError, match="declares 65 dimensions; numpy arrays have at most 64"):
        load_idx(path)
    gz = tmp_path / "deep.idx.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    with pytest.raises(DataFormatError, match="65 dimensions"):
        load_idx(gz)


def test_csv_that_is_not_utf8(tmp_path):
    from scrutiny.data import load_csv

    path = tmp_path / "latin1.csv"
    path.write_bytes("caf\u00e9,label\n1,0\n2,1\n".encode("latin-1"))
    with pytest.raises(DataFormatError, match=r"latin1\.csv' is not UTF-8 text .*Re-save it as UTF-8"):
        load_csv(path, target="label")
