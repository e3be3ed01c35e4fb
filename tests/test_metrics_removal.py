"""Removal metrics (keep/remove top-k, deletion/insertion AUC, ROAD) on models whose faithful
attributions are known: an additive (linear-logit) model on tabular data and on images."""

from __future__ import annotations

import numpy as np
import pytest

from scrutiny.data import segment
from scrutiny.exceptions import InvalidParameterError
from scrutiny.explanation import MetricResult, load_result
from scrutiny.metrics import deletion_curve, insertion_curve, keep_top_k, remove_top_k, road
from scrutiny.metrics import gaussian_blur
from scrutiny.metrics.removal import noisy_linear_impute
from scrutiny.models import as_model


def _additive(w, c=0.0):
    """Two-class model with logit z = <w, x> - c (outputs [-z/2, z/2]); the exact attribution of
    the predicted class is sign * w * x (its contribution to that class's logit)."""
    w = np.asarray(w, dtype=np.float64)

    def f(X):
        z = X.reshape(X.shape[0], -1) @ w.ravel() - c
        return np.stack([-z / 2, z / 2], axis=1)

    return as_model(f, output="logit")


@pytest.fixture(scope="module")
def tabular():
    rng = np.random.default_rng(0)
    w = rng.standard_normal(12)
    X = rng.standard_normal((80, 12))
    model = _additive(w)
    sign = np.where(model.default_target(X) == 1, 1.0, -1.0)[:, None]
    return model, X, sign * X * w


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(1)
    W = rng.standard_normal((1, 8, 8))
    X = rng.uniform(0, 1, size=(40, 1, 8, 8))
    model = _additive(W, c=float(W.sum() / 2))
    sign = np.where(model.default_target(X) == 1, 1.0, -1.0)[:, None, None, None]
    return model, X, sign * X * W, segment(X, method="grid", cell=2)


def _three(metric, model, X, true, **kw):
    return [metric(model, X, a, random_state=0, **kw).mean for a in (true, "random", -true)]


@pytest.mark.parametrize("metric, kwargs, lower_is_better", [
    (deletion_curve, {}, True),
    (deletion_curve, {"step": 5}, True),
    (insertion_curve, {"substrate": 0.0}, False),
    (keep_top_k, {"k": 3}, False),
    (keep_top_k, {"k": 3, "score": "accuracy"}, False),
    (remove_top_k, {"k": 3}, False),
])
def test_tabular_true_beats_random_beats_negated(tabular, metric, kwargs, lower_is_better):
    model, X, true = tabular
    t, r, neg = _three(metric, model, X, true, **kwargs)
    assert (t < r < neg) if lower_is_better else (t > r > neg)


@pytest.mark.parametrize("metric, kwargs, lower_is_better", [
    (deletion_curve, {}, True),
    (insertion_curve, {}, False),
    (keep_top_k, {"k": 4}, False),
    (remove_top_k, {"k": 4}, False),
])
def test_segment_level_true_beats_random_beats_negated(images, metric, kwargs, lower_is_better):
    model, X, true, seg = images
    t, r, neg = _three(metric, model, X, true, segments=seg, **kwargs)
    assert (t < r < neg) if lower_is_better else (t > r > neg)


def test_keep_all_segments_is_the_models_own_prediction(images):
    model, X, true, seg = images
    res = keep_top_k(model, X, "random", k=16, segments=seg, random_state=0)
    own = model.predict_proba(X)[np.arange(len(X)), model.default_target(X)]
    assert res.extras["accuracy"] == 1.0
    np.testing.assert_allclose(res.values, own)
    # one segment short of all: the nullified segment changes the prediction of some image
    assert keep_top_k(model, X, "random", k=1, segments=seg, random_state=0).extras["accuracy"] < 1.0


def test_segment_units_are_whole_superpixels(images):
    """Keeping the top-1 segment of a segment-constant attribution keeps exactly that segment."""
    model, X, _, seg = images
    attr = (seg == 5).astype(float)[:, None]  # segment 5 is the most important everywhere
    kept = np.where(seg[:, None] == 5, X, 0.0)
    res = keep_top_k(model, X, attr, k=1, segments=seg)
    target = model.default_target(X)
    np.testing.assert_allclose(res.values, model.predict_proba(kept)[np.arange(len(X)), target])


def test_deletion_curve_ends_and_rise_auc(tabular):
    model, X, true = tabular
    res = deletion_curve(model, X, true, step=5, substrate=0.3)
    curves = res.extras["curves"]
    assert curves.shape == (len(X), 4)  # ceil(12 / 5) + 1 points
    target = model.default_target(X)
    p = model.predict_proba
    np.testing.assert_allclose(curves[:, 0], p(X)[np.arange(len(X)), target])
    np.testing.assert_allclose(curves[:, -1], p(np.full_like(X, 0.3))[np.arange(len(X)), target])
    np.testing.assert_allclose(res.values, np.trapezoid(curves, np.linspace(0, 1, 4), axis=1))
    assert res.higher_is_better is False and res.params["step"] == 5


def test_insertion_is_deletion_reversed_with_swapped_ends(tabular):
    """After t of d insertions of the top units into substrate s, the input is X with its bottom
    d - t units deleted to s: the insertion curve is the deletion curve of the negated
    attributions, read backwards."""
    model, X, true = tabular
    ins = insertion_curve(model, X, true, substrate=0.0).extras["curves"]
    dele = deletion_curve(model, X, -true, substrate=0.0).extras["curves"]
    # after t insertions of the top units, the input equals deletion of the bottom d - t units
    np.testing.assert_allclose(ins, dele[:, ::-1], atol=1e-12)


def test_same_seed_same_result_and_seed_matters(images):
    model, X, _, seg = images
    a = keep_top_k(model, X, "random", k=4, segments=seg, random_state=7)
    b = keep_top_k(model, X, "random", k=4, segments=seg, random_state=7)
    c = keep_top_k(model, X, "random", k=4, segments=seg, random_state=8)
    np.testing.assert_array_equal(a.values, b.values)
    assert not np.array_equal(a.values, c.values)
    r1 = road(model, X[:5], "random", percentages=(20, 60), random_state=3)
    r2 = road(model, X[:5], "random", percentages=(20, 60), random_state=3)
    np.testing.assert_array_equal(r1.extras["morf_score"], r2.extras["morf_score"])


def test_results_do_not_depend_on_batching(images):
    model, X, true, seg = images
    whole = road(model, X[:6], true[:6], percentages=(30, 60), random_state=2)
    part = road(model, X[:3], true[:3], percentages=(30, 60), random_state=2)
    assert whole.extras["morf_score"].shape == (6, 2)
    np.testing.assert_array_equal(whole.extras["morf_score"][:3], part.extras["morf_score"])
    whole_del = deletion_curve(model, X, true, segments=seg)
    halves = [deletion_curve(model, X[s], true[s], segments=seg[s]) for s in (slice(0, 20), slice(20, 40))]
    np.testing.assert_allclose(whole_del.values, np.concatenate([h.values for h in halves]))


def test_noisy_linear_imputation_reproduces_a_plane():
    """The 8-neighbour weighted mean is exact on linear images, so noise-free imputation of
    interior pixels recovers a plane exactly."""
    yy, xx = np.mgrid[0:10, 0:10]
    img = (0.3 * yy - 0.2 * xx + 1.0)[None].astype(float)
    removed = np.zeros((10, 10), bool)
    removed[3:7, 2:6] = True
    removed[5, 8] = True
    out = noisy_linear_impute(img, removed, noise=0.0, rng=np.random.default_rng(0))
    np.testing.assert_allclose(out, img, atol=1e-10)
    noisy = noisy_linear_impute(img, removed, noise=0.01, rng=np.random.default_rng(0))
    assert 0 < np.abs(noisy - img)[0][removed].std() < 0.05
    np.testing.assert_array_equal(noisy[0][~removed], img[0][~removed])


def test_road_known_answer():
    """Class 1 is decided by a bright 3x3 patch only: removing it first (MoRF of the true
    attribution) flips every image at once, removing it last (LeRF) never does."""
    rng = np.random.default_rng(4)
    X = rng.uniform(0, 0.1, size=(12, 12, 12))
    X[:, 5:8, 5:8] = 1.0
    W = np.zeros((12, 12))
    W[5:8, 5:8] = 1.0
    model = _additive(W, c=4.5)
    assert (model.default_target(X) == 1).all()
    true = X * W
    pcts = (10, 30, 50, 70, 90)
    res = road(model, X, true, percentages=pcts, random_state=0)
    np.testing.assert_array_equal(res.extras["morf_accuracy"], 0.0)
    np.testing.assert_array_equal(res.extras["lerf_accuracy"], 1.0)
    np.testing.assert_array_equal(res.values, 1.0)
    neg = road(model, X, -true, percentages=pcts, random_state=0)
    np.testing.assert_array_equal(neg.values, -1.0)
    rand = road(model, X, "random", percentages=pcts, random_state=0)
    assert -1.0 < rand.mean < 1.0 and rand.values.std() > 0


def test_blur_keeps_constants_and_smooths():
    X = np.full((2, 1, 28, 28), 0.4)
    np.testing.assert_allclose(gaussian_blur(X), X)
    X[0, 0, 14, 14] = 1.0
    b = gaussian_blur(X)
    assert b[0, 0, 14, 14] < 1.0 and b[0, 0, 14, 15] > 0.4
    np.testing.assert_allclose(b.sum(), X.sum())  # interior point: mass preserved


def test_round_trip(tmp_path, images):
    model, X, true, seg = images
    res = keep_top_k(model, X, true, k=4, segments=seg, random_state=0)
    back = load_result(res.save(tmp_path / "keep"))
    assert isinstance(back, MetricResult)
    np.testing.assert_array_equal(back.values, res.values)
    np.testing.assert_array_equal(back.extras["still_predicted"], res.extras["still_predicted"])
    assert back.params == res.params and back.ci == res.ci
    curves = deletion_curve(model, X, true, segments=seg)
    np.testing.assert_array_equal(load_result(curves.save(tmp_path / "del")).extras["curves"], curves.extras["curves"])


def test_errors(tabular, images):
    model, X, true = tabular
    with pytest.raises(InvalidParameterError, match="k must be a positive int"):
        keep_top_k(model, X, true, k=0)
    with pytest.raises(InvalidParameterError, match="segments need images"):
        keep_top_k(model, X, true, segments=np.zeros((3, 4), int))
    with pytest.raises(InvalidParameterError, match="substrate='blur' needs images"):
        insertion_curve(model, X, true)
    with pytest.raises(InvalidParameterError, match="step must be a positive int"):
        deletion_curve(model, X, true, step=0)
    with pytest.raises(InvalidParameterError, match="road needs images"):
        road(model, X, true)
    with pytest.raises(InvalidParameterError, match="space must be"):
        remove_top_k(model, X, true, space="prob")
    with pytest.raises(InvalidParameterError, match="baseline must be"):
        keep_top_k(model, X, true, baseline=np.zeros(5))
    imodel, IX, itrue, seg = images
    with pytest.raises(InvalidParameterError, match="segments must be integer labels"):
        keep_top_k(imodel, IX, itrue, segments=seg[:, :4])
    with pytest.raises(InvalidParameterError, match="percentages must be"):
        road(imodel, IX, itrue, percentages=(0, 100))


def test_road_segment_level_known_answer():
    """The same with superpixels: the 3x3 patch is one grid cell, ranked first by the truth."""
    rng = np.random.default_rng(5)
    X = rng.uniform(0, 0.1, size=(6, 1, 12, 12))
    X[:, :, 6:9, 6:9] = 1.0
    W = np.zeros((1, 12, 12))
    W[:, 6:9, 6:9] = 1.0
    model = _additive(W, c=4.5)
    seg = segment(X, method="grid", cell=3)
    res = road(model, X, X * W, segments=seg, percentages=(10, 50, 90), random_state=0)
    np.testing.assert_array_equal(res.values, 1.0)
    np.testing.assert_array_equal(road(model, X, -X * W, segments=seg, percentages=(10, 50, 90),
                                       random_state=0).values, -1.0)


def test_an_explanation_over_the_same_superpixels_is_ranked_by_its_own_segment_values():
    """LIME broadcasts a superpixel's coefficient to its pixels, so the pixel sum over a superpixel
    is coefficient x size: a large superpixel with a small coefficient would outrank a small one
    with a large coefficient. Metrics on the same superpixels rank by the method's own values."""
    from scrutiny.explanation import Explanation

    seg = np.zeros((4, 4), dtype=np.int64)
    seg[:, 2:] = 1  # segment 1: 8 pixels
    seg[3, 0] = 2  # segment 2: 1 pixel
    X = np.ones((1, 4, 4))
    model = as_model(lambda Z: np.stack([Z[:, 3, 0] * 2.0 + Z[:, 0, 2] * 0.1, np.full(len(Z), 1.0)], 1),
                     output="logit")
    coef = np.array([[0.0, 0.1, 0.5]])  # the single pixel matters most (0.5 > 0.1, but 8 x 0.1 > 0.5)
    pixel = coef[0][seg][None]
    e = Explanation(values=pixel, base_values=np.zeros(1), target=np.array([0]), method="LIME",
                    extras={"segments": seg[None], "segment_values": coef})
    kept_own = keep_top_k(model, X, e, k=1, segments=seg, target=[0], space="raw").values[0]
    kept_sum = keep_top_k(model, X, pixel, k=1, segments=seg, target=[0], space="raw").values[0]
    assert kept_own == pytest.approx(2.0)  # segment 2 kept
    assert kept_sum == pytest.approx(0.1)  # the array path sums: segment 1 (8 x 0.1) kept
    # other superpixels than the explanation's: the pixel sum again
    other = np.zeros((4, 4), dtype=np.int64)
    other[:, 1:] = 1
    assert keep_top_k(model, X, e, k=1, segments=other, target=[0], space="raw").values[0] == pytest.approx(0.1)
