"""randomization_test and its corruptions (Zhang et al. 2017): the corruptions do what they say, an MLP
memorises random labels on digits, results are reproducible and round-trip through save/load."""

from __future__ import annotations

import numpy as np
import pytest

from scrutiny import InvalidParameterError, load_result
from scrutiny.diagnostics import RandomizationResult, randomization_test
from scrutiny.diagnostics.corruptions import (
    apply_corruption,
    corrupt_labels,
    gaussian_inputs,
    parse_corruption,
    random_pixels,
    shuffle_pixels,
)


def _distinct(n: int, d: int, seed: int = 0) -> np.ndarray:
    """Rows whose column j holds j + a small row-specific offset: every pixel position is identifiable."""
    rng = np.random.default_rng(seed)
    return np.arange(d)[None, :] + 0.01 * rng.random((n, 1))


# --------------------------------------------------------------------------- corruptions


@pytest.mark.parametrize("p", [0.2, 0.5, 1.0])
def test_label_change_rate_is_p_times_one_minus_one_over_k(p):
    n, k = 40_000, 10
    y = np.random.default_rng(1).integers(0, k, n)
    new = corrupt_labels(y, p, k, np.random.default_rng(2))
    rate = np.mean(new != y)
    expected = p * (1 - 1 / k)
    half = 4 * np.sqrt(expected * (1 - expected) / n)  # binomial interval, 4 standard errors
    assert abs(rate - expected) < half
    assert new.min() >= 0 and new.max() < k
    # the re-drawn labels are uniform: each class holds about (1 - p) / k + p / k of the labels
    assert np.allclose(np.bincount(new, minlength=k) / n, 0.1, atol=0.01)


def test_label_corruption_leaves_inputs_and_test_set_alone():
    X, Xt = _distinct(50, 6), _distinct(20, 6, 1)
    y = np.arange(50) % 3
    Xtr, ytr, Xte = apply_corruption(parse_corruption("labels@0.7"), X, y, Xt, 3, np.random.default_rng(0))
    assert Xtr is X and Xte is Xt and np.any(ytr != y)


def test_shuffled_pixels_share_one_permutation_across_train_and_test():
    X, Xt = _distinct(30, 12).reshape(30, 1, 3, 4), _distinct(10, 12, 1).reshape(10, 1, 3, 4)
    Xtr, ytr, Xte = apply_corruption(parse_corruption("shuffled_pixels"), X, np.zeros(30, int), Xt, 2,
                                     np.random.default_rng(0))
    perm = np.floor(Xtr.reshape(30, -1)[0]).astype(int)  # column j now holds original column perm[j]
    assert sorted(perm) == list(range(12)) and not np.array_equal(perm, np.arange(12))
    np.testing.assert_array_equal(Xtr.reshape(30, -1), X.reshape(30, -1)[:, perm])
    np.testing.assert_array_equal(Xte.reshape(10, -1), Xt.reshape(10, -1)[:, perm])
    flat, p2 = shuffle_pixels(X, np.random.default_rng(5))
    np.testing.assert_array_equal(flat.reshape(30, -1), X.reshape(30, -1)[:, p2])


def test_random_pixels_permute_each_image_independently_and_keep_its_histogram():
    X = _distinct(200, 16)
    out = random_pixels(X, np.random.default_rng(0))
    np.testing.assert_array_equal(np.sort(out, axis=1), np.sort(X, axis=1))  # same values per image
    perms = {tuple(np.floor(row).astype(int)) for row in out}
    assert len(perms) == 200  # 16! permutations: independent draws do not repeat
    # each position receives each original pixel about equally often (uniform permutations)
    counts = np.array([np.bincount(np.floor(out[:, j]).astype(int), minlength=16) for j in range(16)])
    assert counts.max() < 35  # mean 12.5, sd ~3.4


def test_gaussian_inputs_match_mean_and_variance():
    rng = np.random.default_rng(0)
    X = rng.exponential(2.0, size=(500, 1, 8, 8)) + 3.0
    G = gaussian_inputs(X, np.random.default_rng(1))
    assert G.shape == X.shape
    assert abs(G.mean() - X.mean()) < 4 * X.std() / np.sqrt(X.size)
    assert abs(G.std() / X.std() - 1) < 0.02
    Xtr, _, Xte = apply_corruption(parse_corruption("gaussian"), X[:400], np.zeros(400, int), X[400:], 2,
                                   np.random.default_rng(2))
    assert abs(Xte.mean() - X[:400].mean()) < 0.1 and abs(Xte.std() / X[:400].std() - 1) < 0.05


@pytest.mark.parametrize("bad", ["labels@1.5", "labels@x", "noise", 3])
def test_unknown_corruptions_are_refused(bad):
    with pytest.raises(InvalidParameterError, match="corruption"):
        parse_corruption(bad)


def test_bad_parameters_name_the_parameter():
    X, y = np.zeros((20, 4)), np.arange(20) % 2
    from sklearn.linear_model import LogisticRegression

    with pytest.raises(InvalidParameterError, match="n_seeds"):
        randomization_test(LogisticRegression(), X, y, n_seeds=0)
    with pytest.raises(InvalidParameterError, match="corruptions"):
        randomization_test(LogisticRegression(), X, y, corruptions="true")
    with pytest.raises(InvalidParameterError, match="X_test"):
        randomization_test(LogisticRegression(), X, y, X_test=X)
    with pytest.raises(InvalidParameterError, match="model_factory"):
        randomization_test(42, X, y, corruptions=("true",), n_seeds=1)


# --------------------------------------------------------------------------- the test itself


@pytest.fixture(scope="module")
def digits():
    from scrutiny.data import load_digits

    d = load_digits()
    X = (d.X - d.X.mean()) / d.X.std()
    return X, d.y


def _mlp(seed):
    from scrutiny.zoo import make_model

    return make_model("mlp", (1, 8, 8), 10, seed, hidden=(512, 512)), {"lr": 1e-3, "minibatch_size": 64}


@pytest.fixture(scope="module")
def memorisation(digits):
    X, y = digits
    return randomization_test(_mlp, X, y, corruptions=("true", "random_labels"), n_seeds=1,
                              max_epochs=150, random_state=0)


def test_mlp_memorises_random_labels_on_digits(memorisation):
    res = memorisation
    r, t = res.corruptions.index("random_labels"), res.corruptions.index("true")
    assert res.final_train_accuracy[r, 0] >= 0.99
    assert abs(res.test_accuracy[r, 0] - res.chance) <= 0.05
    assert res.test_accuracy[t, 0] >= 0.9
    assert res.epochs_to_threshold[r, 0] >= 3 * res.epochs_to_threshold[t, 0]
    ind = res.indicators
    assert ind["memorises_random_labels"] is True
    assert ind["relative_time"]["random_labels"] >= 3
    assert res.verdict.startswith("memorises random labels")
    # test labels stay clean: about 0.9 of the training labels changed, none of the held-out ones
    assert 0.85 < res.label_change_rate[r, 0] < 0.95 and res.label_change_rate[t, 0] == 0
    # curves stop at the first epoch with 100% training accuracy
    n_ep = int(np.sum(~np.isnan(res.curves_train_accuracy[r, 0])))
    assert n_ep == res.epochs_to_fit[r, 0] and res.curves_train_accuracy[r, 0, n_ep - 1] == 1.0


def test_result_saves_reloads_and_plots(memorisation, tmp_path):
    path = memorisation.save(tmp_path / "rt")
    back = load_result(path)
    assert isinstance(back, RandomizationResult)
    assert back.corruptions == memorisation.corruptions
    np.testing.assert_array_equal(back.curves_train_loss, memorisation.curves_train_loss)
    assert back.table() == memorisation.table() and back.verdict == memorisation.verdict
    fig = back.plot(tmp_path / "rt.png")
    assert (tmp_path / "rt.png").stat().st_size > 0 and len(fig.axes) == 3


def _tiny(seed):
    from scrutiny.zoo import make_model

    return make_model("mlp", (1, 8, 8), 10, seed, hidden=(64,)), {"lr": 3e-3, "minibatch_size": 50}


def test_same_seed_same_result_and_conditions_do_not_interact(digits):
    X, y = digits[0][:300], digits[1][:300]
    kw = dict(n_seeds=2, max_epochs=4, random_state=3)
    a = randomization_test(_tiny, X, y, corruptions=("labels@0.4", "shuffled_pixels"), **kw)
    b = randomization_test(_tiny, X, y, corruptions=("labels@0.4", "shuffled_pixels"), **kw)
    c = randomization_test(_tiny, X, y, corruptions=("shuffled_pixels",), **kw)  # order / set changed
    np.testing.assert_array_equal(a.curves_train_loss, b.curves_train_loss)
    np.testing.assert_array_equal(a.curves_train_loss[1], c.curves_train_loss[0])
    assert not np.array_equal(a.curves_train_loss[:, 0], a.curves_train_loss[:, 1])  # seeds differ
    d = randomization_test(_tiny, X, y, corruptions=("labels@0.4", "shuffled_pixels"), **{**kw, "random_state": 4})
    assert not np.array_equal(a.curves_train_loss, d.curves_train_loss)


def test_label_noise_sweep_indicators(digits):
    X, y = digits
    from sklearn.neighbors import KNeighborsClassifier

    # 1-NN memorises any labelling instantly: held-out accuracy falls with p, the gap rises with slope ~0.9
    res = randomization_test(KNeighborsClassifier(n_neighbors=1), X, y, n_seeds=2,
                             corruptions=("true", "labels@0.25", "labels@0.5", "labels@0.75", "random_labels"))
    assert np.all(res.final_train_accuracy == 1.0) and np.all(res.epochs_to_fit == 1)
    ind = res.indicators
    assert ind["monotone"] is True
    assert 0.7 < ind["gap_slope"] < 1.05
    assert res.params["backend"] == "sklearn"


def test_sklearn_partial_fit_records_a_curve(digits):
    from sklearn.linear_model import SGDClassifier

    X, y = digits[0][:400], digits[1][:400]
    res = randomization_test(SGDClassifier(loss="log_loss", random_state=0), X, y, corruptions=("true", "gaussian"),
                             n_seeds=1, max_epochs=5)
    t = res.corruptions.index("true")
    assert np.sum(~np.isnan(res.curves_train_accuracy[t, 0])) >= 2
    assert res.test_accuracy[t, 0] > 0.8 and res.test_accuracy[1, 0] < 0.3


def test_a_generator_seed_is_accepted_and_recorded(digits):
    from sklearn.neighbors import KNeighborsClassifier

    X, y = digits
    a = randomization_test(KNeighborsClassifier(1), X, y, corruptions=("labels@0.3",), n_seeds=1,
                           random_state=np.random.default_rng(7))
    b = randomization_test(KNeighborsClassifier(1), X, y, corruptions=("labels@0.3",), n_seeds=1,
                           random_state=a.params["random_state"])  # the recorded int reproduces the run
    np.testing.assert_array_equal(a.test_accuracy, b.test_accuracy)
