"""sanity_check (Adebayo et al. 2018): an input-only "explainer" fails, Saliency of a trained CNN
passes, verdicts do not depend on batch size or workers, the model is never changed, and the
similarity measures have their closed-form values."""

from __future__ import annotations

import numpy as np
import pytest

from scrutiny import InvalidParameterError, load_result
from scrutiny.attribution import Explainer, RawAttribution, Saliency
from scrutiny.diagnostics import SanityCheckResult, sanity_check
from scrutiny.diagnostics.similarity import pairwise, permutation_pvalue, similarity


class EdgeDetector(Explainer):
    """Returns the input itself: it ignores the model (what Guided BackProp nearly is)."""

    def __init__(self, model, *, space="auto", feature_names=None):
        super().__init__(model)
        self.space = space
        self.feature_names = feature_names

    _constraints = {}

    def _explain(self, X, target, rng):
        return RawAttribution(X.copy())


@pytest.fixture(scope="module")
def cnn():
    from scrutiny.zoo import reference_model

    net, info = reference_model("cnn", "digits")
    return net, info["test"].X[:16]  # held-out digits


@pytest.fixture(scope="module")
def checked(cnn):
    net, X = cnn
    return sanity_check({"Saliency": Saliency(net), "edge": EdgeDetector(net)}, net, X,
                        tests=("cascading", "independent"), n_permutations=199)


def test_edge_detector_fails_and_saliency_passes(checked):
    v = checked.verdicts()
    assert v["edge"] == {"cascading": False, "independent": False}
    assert v["Saliency"]["cascading"] is True
    e, s = checked.explainers.index("edge"), checked.explainers.index("Saliency")
    np.testing.assert_allclose(checked.similarity[e], 1.0, atol=1e-9)  # the input is its own explanation
    # Saliency: the fully randomised model's gradients are far closer to noise than to the original
    stages, curve = checked.curve("Saliency", "spearman_abs", "cascading")
    assert stages[0] == "cascading:classifier" and stages[-1] == "cascading:conv.0"
    assert curve[-1] < 0.5 and checked.params["normalised_similarity"]["Saliency/cascading"] < 0.5
    assert "edge" in checked.verdict and checked.verdict.startswith("fail")
    # the random-attribution floor sits near 0 for Spearman and SSIM
    assert abs(np.mean(checked.baseline[s, checked.metrics.index("spearman")])) < 0.1
    # the edge detector's explanation is input-specific: the re-pairing test rejects
    assert np.all(checked.p_values[e] <= 1 / 200 + 1e-12)


def test_a_layer_gets_the_same_weights_in_both_tests(checked):
    k_c = checked.stages.index("cascading:classifier")
    k_i = checked.stages.index("independent:classifier")
    np.testing.assert_array_equal(checked.similarity[:, k_c], checked.similarity[:, k_i])
    assert not np.array_equal(checked.similarity[:, checked.stages.index("independent:fc")],
                              checked.similarity[:, k_i])


def test_verdicts_do_not_depend_on_batch_size_or_workers(cnn, checked):
    net, X = cnn
    other = sanity_check({"Saliency": Saliency(net), "edge": EdgeDetector(net)}, net, X,
                         tests=("cascading", "independent"), n_permutations=199, batch_size=5, n_jobs=2)
    np.testing.assert_allclose(other.similarity, checked.similarity, atol=1e-6)
    np.testing.assert_array_equal(other.passed, checked.passed)
    np.testing.assert_array_equal(other.p_values, checked.p_values)


def test_model_is_never_changed(cnn):
    net, X = cnn
    before = {k: v.clone() for k, v in net.state_dict().items()}
    sanity_check(Saliency(net), net, X[:4], tests=("cascading",), metrics=("spearman_abs",), n_permutations=9)
    for k, v in net.state_dict().items():
        assert np.array_equal(v.numpy(), before[k].numpy()), k


def test_result_round_trip_table_and_plot(checked, tmp_path):
    back = load_result(checked.save(tmp_path / "sanity"))
    assert isinstance(back, SanityCheckResult)
    np.testing.assert_array_equal(back.similarity, checked.similarity)
    assert back.verdicts() == checked.verdicts() and back.table() == checked.table()
    lo, hi = back.interval[..., 0], back.interval[..., 1]
    assert np.all(lo <= back.mean + 1e-12) and np.all(back.mean <= hi + 1e-12)
    fig = back.plot(tmp_path / "s.png")
    assert len(fig.axes) == 2 and (tmp_path / "s.png").exists()


def test_smoothed_variant_keeps_the_verdicts(cnn):
    net, X = cnn
    res = sanity_check({"Saliency": Saliency(net), "edge": EdgeDetector(net)}, net, X[:8], tests=("cascading",),
                       layers=["classifier", "fc", "conv.0"], n_noise=4, noise_level=0.1, n_permutations=49)
    assert res.stages == ["cascading:classifier", "cascading:fc", "cascading:conv.0"]
    assert res.verdicts() == {"Saliency": {"cascading": True}, "edge": {"cascading": False}}
    # the same noise design goes to every model: the smoothed edge detector still matches itself exactly
    np.testing.assert_allclose(res.similarity[1], 1.0, atol=1e-9)


def _tabular():
    from sklearn.datasets import load_breast_cancer
    from sklearn.neural_network import MLPClassifier

    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=1000, random_state=0).fit(X[:400], y[:400])
    return clf, X, y


def test_data_randomisation_and_sklearn_mlp_layers():
    from scrutiny.attribution import KernelSHAP

    clf, X, y = _tabular()
    coefs = [c.copy() for c in clf.coefs_]
    shap = KernelSHAP(clf, background=X[:30], n_samples=256, random_state=0)
    res = sanity_check({"KernelSHAP": shap, "edge": lambda model, Xs, t: Xs}, clf, X[400:412],
                       X_train=X[:400], y_train=y[:400], n_permutations=99)
    assert res.metrics == ["spearman_abs", "spearman"]  # no image measures for tabular inputs
    assert res.stages == ["cascading:layer1", "cascading:layer0", "independent:layer1", "independent:layer0", "data"]
    assert res.verdicts()["edge"] == {"cascading": False, "independent": False, "data": False}
    assert res.verdicts()["KernelSHAP"]["cascading"] is True
    assert res.params["data_train_accuracy"] > 0.6  # the copy was refitted on permuted labels
    for a, b in zip(coefs, clf.coefs_):
        np.testing.assert_array_equal(a, b)


def test_errors_name_parameter_and_fix(cnn):
    net, X = cnn
    with pytest.raises(InvalidParameterError, match="tests"):
        sanity_check(Saliency(net), net, X, tests=("cascade",))
    with pytest.raises(InvalidParameterError, match="X_train"):
        sanity_check(Saliency(net), net, X, tests=("data",))
    with pytest.raises(InvalidParameterError, match="layers"):
        sanity_check(Saliency(net), net, X, tests=("cascading",), layers=["nope"])
    with pytest.raises(InvalidParameterError, match="threshold"):
        sanity_check(Saliency(net), net, X, threshold=2.0)
    with pytest.raises(InvalidParameterError, match="explainers"):
        sanity_check({"x": 3}, net, X)
    with pytest.raises(InvalidParameterError, match="ssim"):
        sanity_check(lambda m, Xs, t: Xs, _tabular()[0], _tabular()[1][:5], metrics=("ssim",), tests=("cascading",))


# --------------------------------------------------------------------------- similarity measures


def test_similarity_closed_forms():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((5, 1, 8, 8))
    np.testing.assert_allclose(similarity("spearman", a, np.exp(a)), 1.0)  # rank-invariant
    np.testing.assert_allclose(similarity("spearman", a, -a), -1.0)
    np.testing.assert_allclose(similarity("spearman_abs", a, -a), 1.0)  # the sign is dropped
    np.testing.assert_allclose(similarity("ssim", a, 3 * a), 1.0)  # maps are scaled to [0, 1]
    np.testing.assert_allclose(similarity("hog", a, a), 1.0)
    b = rng.standard_normal((5, 1, 8, 8))
    for m in ("spearman", "spearman_abs", "ssim", "hog"):
        np.testing.assert_allclose(np.diag(pairwise(m, a, b)), similarity(m, a, b), atol=1e-12)
    # Spearman of independent maps: mean 0, sd 1/sqrt(d - 1)
    big = rng.standard_normal((400, 64))
    s = similarity("spearman", big, rng.standard_normal((400, 64)))
    assert abs(s.mean()) < 4 / np.sqrt(64 * 400) and abs(s.std() * np.sqrt(63) - 1) < 0.15


def test_permutation_pvalue():
    perms = np.random.default_rng(0).permuted(np.tile(np.arange(10), (99, 1)), axis=1)
    assert permutation_pvalue(np.eye(10), perms) == pytest.approx(
        (1 + np.sum(np.all(perms == np.arange(10), axis=1))) / 100)
    assert permutation_pvalue(np.ones((10, 10)), perms) == 1.0
    # under the null (independent similarities) p-values are about uniform
    rng = np.random.default_rng(1)
    ps = [permutation_pvalue(rng.standard_normal((10, 10)), perms) for _ in range(200)]
    assert 0.3 < np.mean(ps) < 0.7 and np.mean(np.array(ps) <= 0.05) < 0.12


def test_torch_data_randomisation_retrains_a_copy_on_permuted_labels():
    from scrutiny.data import load_digits
    from scrutiny.zoo import make_model, train_model

    d = load_digits()
    X, y = d.X[:300], d.y[:300]
    recipe = {"epochs": 60, "lr": 3e-3, "minibatch_size": 32}
    net = make_model("mlp", (1, 8, 8), 10, 0, hidden=(256,))
    train_model(net, X, y, random_state=0, **recipe)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    res = sanity_check({"Saliency": Saliency(net), "edge": EdgeDetector(net)}, net, d.X[1500:1512], tests=("data",),
                       X_train=X, y_train=y, train_params=recipe, n_permutations=99)
    assert res.stages == ["data"]
    assert res.params["data_train_accuracy"] > 0.9  # the copy memorised the permuted labels
    assert res.verdicts() == {"Saliency": {"data": True}, "edge": {"data": False}}
    for k, v in net.state_dict().items():
        assert np.array_equal(v.numpy(), before[k].numpy())


def test_seed_to_seed_ceiling_of_a_stochastic_explainer(cnn):
    from scrutiny.attribution import SmoothGrad

    net, X = cnn
    res = sanity_check({"SmoothGrad": SmoothGrad(net, n_samples=4, random_state=0), "Saliency": Saliency(net)}, net,
                       X[:6], tests=("cascading",), layers=["classifier"], metrics=("spearman_abs",), n_permutations=9)
    ceiling = res.extras["ceiling"]
    assert np.all(ceiling[1] == 1.0)  # deterministic: its own re-run is identical
    assert 0.3 < np.mean(ceiling[0]) < 0.999  # 4 noisy samples: another seed gives a different map
    assert "seed-to-seed" in res.table()


def test_an_explainer_as_noisy_as_the_randomisation_effect_fails():
    """Input plus noise whose draw depends on the seed *and* the model (as a perturbation explainer's estimate
    does): the randomised model's explanation differs from the original only as much as a re-run with another
    seed does, so the check must not pass, although the similarity itself drops well below 1."""
    from scrutiny.zoo import make_model

    class Noise(Explainer):
        def __init__(self, model, *, random_state=0, space="auto", feature_names=None):
            super().__init__(model)
            self.random_state, self.space, self.feature_names = random_state, space, feature_names

        _constraints = {}

        def _explain(self, X, target, rng):
            key = int(1e6 * abs(self.model.predict(X[:1])).sum()) % 2**32
            noise = np.random.default_rng([self.random_state, key]).standard_normal(X.shape)
            return RawAttribution(X + 0.5 * noise)

    net = make_model("mlp", (10,), 3, 0, hidden=(8,))
    X = np.random.default_rng(0).standard_normal((12, 10))
    res = sanity_check(Noise(net), net, X, tests=("cascading",), n_permutations=9)
    ceiling = np.mean(res.extras["ceiling"])
    assert 0.2 < ceiling < 0.9
    assert np.mean(res.similarity[0, -1, 0]) < 0.8  # would pass a threshold on (s - floor) / (1 - floor)
    assert res.verdicts() == {"Noise": {"cascading": False}}


def test_a_layer_type_init_parameters_does_not_know_is_reinitialised_from_a_private_generator():
    import torch

    from scrutiny.diagnostics.sanity import _reinit_torch

    a, b = (torch.nn.Sequential(torch.nn.Bilinear(3, 3, 2)) for _ in range(2))
    before = a[0].weight.detach().clone()
    state = torch.random.get_rng_state()
    _reinit_torch(a, ["0"], 7)
    _reinit_torch(b, ["0"], 7)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global generator is not touched
    assert not torch.equal(a[0].weight, before)
    assert torch.equal(a[0].weight, b[0].weight) and torch.equal(a[0].bias, b[0].bias)
    bound = 1 / np.sqrt(a[0].weight[0].numel())
    assert float(a[0].bias.abs().max()) <= bound
