"""DMM-MEN as an explainer: from_model, explain, explain_global, DMMMENExplainer, scrutability.

Every test uses a black box whose answer is known by construction: logits that are linear in a
few known pixels (found again after variance screening moves them to other columns), two
regimes told apart by the response, a logit driven mostly by one superpixel, and a classifier
that reads only a known set of pixels (so that nullifying those, and not random ones, flips it).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from scrutiny import Explanation, as_model
from scrutiny.exceptions import ConvergenceWarning, InvalidParameterError
from scrutiny.attribution import DMMMENExplainer
from scrutiny.attribution.dmm_men import uniform_size_masks
from scrutiny.surrogate import (
    DMMMEN,
    CraftedSamplesResult,
    GlobalInsight,
    ScrutabilityResult,
    crafted_samples_test,
    scrutability_test,
)

SHAPE = (1, 6, 6)
D = 36


def quiet(fn, *args, **kwargs):
    """Short test chains: the R-hat warning is not what these tests check."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fn(*args, **kwargs)


def wobble(Xf):
    """A small deterministic 'noise' term so that the responses are not exactly linear."""
    return 0.1 * np.sin(997.0 * Xf.sum(axis=1))


# --------------------------------------------------------------------------- from_model + screening

# informative pixels at high flat positions; after screening they sit in other columns
W_TRUE = {29: 4.0, 34: 3.0, 31: -3.0}


def linear_classifier(X):
    Xf = X.reshape(len(X), -1)
    z1 = sum(w * Xf[:, j] for j, w in W_TRUE.items()) - 1.0 + wobble(Xf)
    return np.stack([np.zeros(len(X)), z1], axis=1)


@pytest.fixture(scope="module")
def screened():
    rng = np.random.default_rng(0)
    X = rng.random((400,) + SHAPE)
    low = np.array([0, 2, 3, 5, 8, 9, 12, 14, 15, 17, 19, 20, 22, 24, 27, 30, 33, 35])  # low-variance pixels
    X.reshape(400, -1)[:, low] *= 0.1
    model = as_model(linear_classifier, output="logit")
    est = quiet(DMMMEN.from_model, model, X, 1, n_features=18, n_iter=300, n_burnin=150, random_state=0)
    return est, X, model, np.setdiff1d(np.arange(D), low)


def test_from_model_screens_and_maps_indices_back(screened):
    est, _, model, high = screened
    np.testing.assert_array_equal(est.feature_indices_, high)
    assert est.input_shape_ == SHAPE and est.n_input_features_ == D and est.n_features_in_ == 18
    assert est.target_class_ == 1 and est.model_ is model
    # the informative pixels are not in their own column after screening
    assert [int(np.flatnonzero(high == j)[0]) for j in W_TRUE] != list(W_TRUE)
    top = est.explain_global(k=2)[0]
    assert isinstance(top, GlobalInsight) and top.ranking == "signed"
    np.testing.assert_array_equal(top.features, [29, 34])  # signed ranking: the two positive weights
    np.testing.assert_allclose(top.coef, [4.0, 3.0], atol=0.2)
    assert np.all(top.significant) and np.all((top.coef_ci[:, 0] < top.coef) & (top.coef < top.coef_ci[:, 1]))
    absolute = est.explain_global(k=3, absolute=True)[0]
    assert set(absolute.features.tolist()) == set(W_TRUE) and absolute.ranking == "absolute"
    # heat maps live in the input shape, at the right pixels
    assert top.heatmap.shape == SHAPE and top.coef_map.shape == SHAPE
    assert set(np.flatnonzero(absolute.heatmap).tolist()) == set(W_TRUE)
    c, r, q = np.unravel_index(29, SHAPE)
    assert top.heatmap[c, r, q] == pytest.approx(top.coef[0])
    assert np.all(top.coef_map.reshape(-1)[np.setdiff1d(np.arange(D), high)] == 0)
    assert "component" in top.summary() and "29" in top.summary()
    # credible_only keeps only features whose interval excludes 0
    strict = est.explain_global(k=18, credible_only=True)[0]
    assert set(W_TRUE) <= set(strict.features.tolist()) and np.all(strict.significant)


def test_predict_and_explain_accept_the_model_input_shape(screened):
    est, _, model, high = screened
    Xn = np.random.default_rng(1).random((30,) + SHAPE)
    flat = Xn.reshape(30, -1)
    pred = est.predict(Xn)
    np.testing.assert_allclose(est.predict(flat), pred)
    np.testing.assert_allclose(est.predict(flat[:, high]), pred)
    truth = model.predict_log_odds(Xn)[:, 1]
    assert np.corrcoef(pred, truth)[0, 1] > 0.98
    e = est.explain(Xn[:5])
    assert e.values.shape == (5,) + SHAPE and e.method == "DMMMEN"
    np.testing.assert_array_equal(e.target, 1)
    np.testing.assert_allclose(e.extras["response"], model.predict_log_odds(Xn[:5])[:, 1])
    vals = e.values.reshape(5, -1)
    assert np.all(vals[:, np.setdiff1d(np.arange(D), high)] == 0)  # screened out -> 0
    np.testing.assert_allclose(vals[:, 29], 4.0, atol=0.2)
    np.testing.assert_allclose(vals[:, 31], -3.0, atol=0.2)
    np.testing.assert_allclose(e.extras["contributions"], e.values * Xn[:5] * (e.values != 0))
    assert e.extras["values_ci"].shape == (5,) + SHAPE + (2,)
    assert e[1:3].values.shape == (2,) + SHAPE  # per-sample extras slice with the result
    with pytest.raises(InvalidParameterError, match="must be a batch of the model's inputs"):
        est.predict(Xn.reshape(30, 2, 18))
    with pytest.raises(InvalidParameterError, match="only the 18 screened features"):
        est.explain(flat[:, high])


def test_from_model_y_true_selects_the_class_rows(screened):
    _, X, model, _ = screened
    labels = np.where(np.arange(len(X)) % 4 == 0, 1, 0)
    est = quiet(DMMMEN.from_model, model, X, 1, y_true=labels, n_iter=40, n_burnin=20, n_chains=1, random_state=0)
    assert est.labels_.shape == (int((labels == 1).sum()),)
    assert est.n_features_in_ == D and np.array_equal(est.feature_indices_, np.arange(D))


# --------------------------------------------------------------------------- two regimes


def two_regime_classifier(X):
    """Regime A (x0 > 0.5): logit 4 + 3 x3; regime B: logit -4 - 3 x7 (separated by the response)."""
    Xf = X.reshape(len(X), -1)
    a = Xf[:, 0] > 0.5
    z1 = np.where(a, 4.0 + 3.0 * Xf[:, 3], -4.0 - 3.0 * Xf[:, 7]) + wobble(Xf)
    return np.stack([np.zeros(len(X)), z1], axis=1)


def test_explain_assigns_the_right_regime():
    rng = np.random.default_rng(2)
    X = rng.random((400, 10))
    model = as_model(two_regime_classifier, output="logit")
    est = quiet(DMMMEN.from_model, model, X, 1, n_iter=300, n_burnin=150, random_state=1)
    Xn = rng.random((60, 10))
    e = est.explain(Xn)  # the response from the stored model
    comp = e.extras["component"]
    regime = Xn[:, 0] > 0.5
    h_a, h_b = np.bincount(comp[regime]).argmax(), np.bincount(comp[~regime]).argmax()
    assert h_a != h_b
    np.testing.assert_array_equal(comp, np.where(regime, h_a, h_b))
    assert np.all(e.extras["component_proba"] > 0.9)
    np.testing.assert_allclose(e.values[regime][:, 3], 3.0, atol=0.3)
    np.testing.assert_allclose(e.values[~regime][:, 7], -3.0, atol=0.3)
    np.testing.assert_allclose(e.base_values, np.where(regime, 4.0, -4.0), atol=0.3)
    # the same with the response given explicitly
    again = est.explain(Xn, response=model.predict_log_odds(Xn)[:, 1])
    np.testing.assert_array_equal(again.extras["component"], comp)


def test_plain_fit_explain_needs_the_response():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 3))
    y = X @ [1.0, -1.0, 0.5] + 0.1 * rng.normal(size=60)
    est = quiet(DMMMEN(n_components=2, n_iter=12, n_burnin=6, n_chains=1, random_state=0).fit, X, y)
    assert est.model_ is None and est.feature_indices_ is None
    with pytest.raises(InvalidParameterError, match=r"DMMMEN.explain needs response.*explain\(X, response=\.\.\.\)"):
        est.explain(X)
    e = est.explain(X[:4], response=y[:4])
    assert e.values.shape == (4, 3) and np.all(e.target == 0)
    np.testing.assert_array_equal(e.extras["response"], y[:4])
    assert est.explain_global(k=3)[0].heatmap.shape == (3,)


# --------------------------------------------------------------------------- local explainer


def segment_classifier(X):
    """Class-1 logit: 3 x the mean of grid segment 5 (cell 2 on 8x8) plus 0.4 x the mean of each segment."""
    img = X.reshape(len(X), 8, 8)
    means = img.reshape(len(X), 4, 2, 4, 2).mean(axis=(2, 4)).reshape(len(X), 16)
    z1 = 3.0 * means[:, 5] + 0.4 * means.sum(axis=1) - 2.0 + wobble(means)
    return np.stack([np.zeros(len(X)), z1], axis=1)


def test_local_explainer_ranks_the_known_segment_first():
    model = as_model(segment_classifier, output="logit")
    rng = np.random.default_rng(4)
    X = 0.6 + 0.3 * rng.random((2, 1, 8, 8))
    ex = DMMMENExplainer(
        model, n_samples=300, segments="grid", segment_params={"cell": 2}, n_iter=150, n_burnin=75,
        space="log_odds", random_state=0,
    )
    e = quiet(ex.explain, X, target=1)
    assert e.values.shape == X.shape and e.method == "DMMMENExplainer"
    assert np.all(e.extras["segment_ranking"][:, 0] == 5)
    assert e.extras["mixture_segment_values"].shape == (2, 16)
    assert np.all(np.argmax(e.extras["mixture_segment_values"], axis=1) == 5)
    assert np.all(e.extras["n_segments"] == 16)
    labels = e.extras["segments"]
    for i in range(2):  # every pixel holds its segment's coefficient
        np.testing.assert_allclose(e.values[i, 0], e.extras["segment_values"][i][labels[i]])
    seg5 = e.extras["segment_values"][:, 5]
    mean5 = X[:, 0].reshape(2, 4, 2, 4, 2)[:, 1, :, 1, :].mean(axis=(1, 2))
    np.testing.assert_allclose(seg5, (3.0 + 0.4) * mean5, rtol=0.1)
    np.testing.assert_allclose(e.extras["response"], model.predict_log_odds(X)[:, 1])
    assert np.all(e.extras["component_proba"] > 0.5)
    back = Explanation.from_dict(e.to_dict())
    np.testing.assert_array_equal(back.extras["segment_ranking"], e.extras["segment_ranking"])
    # seeded: the same call gives the same result; rows together equal rows one by one
    again = quiet(ex.explain, X[1:], target=1)
    np.testing.assert_array_equal(again.values[0], e.values[1])


def switch_classifier(X):
    """A black box linear in its 6x6 grid segments (cell 2 on 12x12) with a switch: when segment 0
    is bright (regime A) the class-1 probability is driven by segments 1-5, otherwise by segments
    10-14 with smaller weights. Probability = clip(0.05 + segment effects, 0, 1), so the effects
    are known in the explained space."""
    img = X.reshape(len(X), 12, 12)
    means = img.reshape(len(X), 6, 2, 6, 2).mean(axis=(2, 4)).reshape(len(X), 36)
    w_a, w_b = np.zeros(36), np.zeros(36)
    w_a[[1, 2, 3, 4, 5]] = [0.25, 0.2, 0.16, 0.12, 0.08]
    w_b[[10, 11, 12, 13, 14]] = [0.12, 0.1, 0.08, 0.06, 0.04]
    p = np.clip(0.05 + np.where(means[:, 0] > 0.5, means @ w_a, means @ w_b), 1e-4, 1 - 1e-4)
    return np.stack([1 - p, p], axis=1)


def test_local_explainer_recovers_the_regime_of_the_image_and_random_does_not():
    """Issue 26's synthetic check. The paper's rule (``summary="component"``, the slopes of the
    image's own component h*) recovers the top-5 superpixels of the image's regime, which the
    mixture's average slope mixes with the other regime's. The default projection ranks the
    switch (segment 0: hiding it leaves the regime) first, then the regime's strongest superpixels.
    A random ranking (the same test's floor) misses them."""
    model = as_model(switch_classifier, output="probability")
    X = np.ones((2, 1, 12, 12))  # image 0: segment 0 on (regime A)
    X[1, 0, :2, :2] = 0.0  # image 1: segment 0 off (regime B); with baseline 0 it is inert
    kw = dict(segments="grid", segment_params={"cell": 2}, random_state=0, dmm_params={"n_jobs": 1})
    e = quiet(DMMMENExplainer(model, summary="component", **kw).explain, X, target=1)
    assert set(e.extras["segment_ranking"][0, :5].tolist()) == {1, 2, 3, 4, 5}
    assert set(e.extras["segment_ranking"][1, :5].tolist()) == {10, 11, 12, 13, 14}
    assert set(np.argsort(-e.extras["mixture_segment_values"][0])[:5].tolist()) != {1, 2, 3, 4, 5}
    np.testing.assert_array_equal(e.extras["segment_values"], e.extras["component_segment_values"])
    assert e.extras["inert_segments"][1, 0] and not e.extras["inert_segments"][0].any()
    assert e.extras["segment_values"][1, 0] == 0.0  # an inert superpixel gets exactly 0
    p = quiet(DMMMENExplainer(model, **kw).explain, X, target=1)  # summary="projection"
    np.testing.assert_array_equal(p.extras["segment_values"], p.extras["projection_segment_values"])
    assert p.extras["segment_ranking"][0, 0] == 0  # the switch
    # the projection averages over every mask, half of which hide the switch: after it come the
    # regime's three strongest superpixels (the other regime's strongest may follow)
    assert {1, 2, 3} <= set(p.extras["segment_ranking"][0, 1:5].tolist())
    assert set(p.extras["segment_ranking"][1, :5].tolist()) == {10, 11, 12, 13, 14}
    rng = np.random.default_rng(0)
    hits = [len(set(rng.permutation(36)[:5].tolist()) & {1, 2, 3, 4, 5}) for _ in range(200)]
    assert np.mean(np.array(hits) == 5) < 0.01  # a random ranking essentially never recovers them


def and_classifier(X):
    """P(class 1) = 0.05 + 0.9 * [segment 3 on AND segment 8 on] * (0.5 + 0.5 * mean of segments
    1, 2, 4): an interaction, as a digit that needs two strokes (6x6 grid, cell 2 on 12x12)."""
    img = X.reshape(len(X), 12, 12)
    means = img.reshape(len(X), 6, 2, 6, 2).mean(axis=(2, 4)).reshape(len(X), 36)
    gate = (means[:, 3] > 0.5) & (means[:, 8] > 0.5)
    p = 0.05 + 0.9 * gate * (0.5 + 0.5 * means[:, [1, 2, 4]].mean(axis=1))
    return np.stack([1 - p, p], axis=1)


def test_projection_keeps_both_halves_of_an_interaction():
    """The default summary ranks both superpixels of an AND first: hiding either drops the
    probability from 0.95 to 0.05. The slopes of one component cannot carry that jump (a mask
    that hides one of them belongs to another component), which is why the per-image default is
    the projection (benchmarks/table1.py, DMM-MEN image, keep-top-20 and deletion AUC)."""
    model = as_model(and_classifier, output="probability")
    X = np.ones((1, 1, 12, 12))
    e = quiet(DMMMENExplainer(model, segments="grid", segment_params={"cell": 2}, random_state=0,
                              dmm_params={"n_jobs": 1}).explain, X, target=1)
    assert set(e.extras["segment_ranking"][0, :2].tolist()) == {3, 8}
    lo, hi = e.extras["segment_ci"][0, 3]
    assert lo <= e.extras["segment_values"][0, 3] <= hi and lo > 0.1  # a credible interval away from 0
    assert e.extras["converged"][0] or np.isfinite(e.extras["rhat_explanation"][0])


def test_uniform_size_masks():
    Z = uniform_size_masks(7, 12, 2000)
    assert Z.shape == (2000, 12) and np.all(Z[0] == 1)
    off = 12 - Z[1:].sum(axis=1)
    assert off.min() == 1 and off.max() == 12
    counts = np.bincount(off.astype(int), minlength=13)[1:]
    assert counts.min() > 2000 / 12 * 0.6  # roughly uniform on 1..12
    np.testing.assert_array_equal(uniform_size_masks(7, 12, 2000), Z)  # a function of (seed, S, m) only
    assert not np.array_equal(uniform_size_masks(8, 12, 2000), Z)


# --------------------------------------------------------------------------- scrutability

TRUE_PIXELS = np.array([7, 8, 13, 14])


def pixel_classifier(X):
    """Predicts class 1 iff the mean of TRUE_PIXELS exceeds 0.4."""
    Xf = X.reshape(len(X), -1)
    z1 = 10.0 * Xf[:, TRUE_PIXELS].mean(axis=1) - 4.0
    return np.stack([np.zeros(len(X)), z1], axis=1)


@pytest.fixture(scope="module")
def scrutable():
    rng = np.random.default_rng(5)
    n = 300
    y = (np.arange(n) % 2).astype(int)
    X = rng.random((n,) + SHAPE)
    flat = X.reshape(n, -1)
    flat[:, TRUE_PIXELS] = np.where(y[:, None] == 1, 0.8 + 0.2 * rng.random((n, 4)), 0.2 * rng.random((n, 4)))
    ranking = np.r_[TRUE_PIXELS, np.setdiff1d(np.arange(D), TRUE_PIXELS)]
    return as_model(pixel_classifier, output="logit"), X, y, ranking


def test_scrutability_true_features_flip_random_ones_do_not(scrutable):
    model, X, y, ranking = scrutable
    res = scrutability_test(model, X, y, 1, ranking, k=(4, 8), n_bootstrap=20, random_state=0)
    assert isinstance(res, ScrutabilityResult)
    assert res.positive.shape == (2, 20) and res.n_positive == 150 and res.n_negative == 150
    assert np.all(res.positive_original == 1.0) and np.all(res.negative_original == 0.0)
    np.testing.assert_array_equal(res.estimate("positive"), 0.0)  # nullified true pixels: never class 1
    # random pixels rarely hit enough true ones: >= 3 of 4 to flip a positive, >= 2 of 4 a negative
    assert np.all(res.estimate("positive_random") > 0.9)
    np.testing.assert_array_equal(res.estimate("negative"), 1.0)  # positives' mean written in: always class 1
    assert np.all(res.estimate("negative_random") < 0.35)
    assert np.all(res.positive_drop < -0.9)
    for arm in ("positive", "positive_random", "negative", "negative_random"):
        ci, est = res.interval(arm), res.estimate(arm)
        assert np.all((ci[:, 0] <= est) & (est <= ci[:, 1]))
    summary = res.summary()
    assert set(summary) >= {"k", "positive", "positive_low", "negative_random_high"}
    table = res.to_table()
    assert "pos. top-k" in table and len(table.splitlines()) == 2 + 1 + 2
    again = scrutability_test(model, X, y, 1, ranking, k=(4, 8), n_bootstrap=20, random_state=0)
    for arm in res._ARMS:
        np.testing.assert_array_equal(getattr(again, arm), getattr(res, arm))


def test_scrutability_other_fills_and_insight_input(scrutable):
    model, X, y, ranking = scrutable
    proto = scrutability_test(
        model, X, y, 1, ranking, k=4, n_bootstrap=5, fill_positive="random", fill_negative="prototype",
        prototype_scale=(1.0, 1.0), random_state=1,
    )
    assert proto.k.tolist() == [4] and proto.estimate("negative")[0] == 1.0
    const = scrutability_test(model, X, y, 1, ranking, k=4, n_bootstrap=5, fill_positive=0.1, random_state=1)
    assert const.estimate("positive")[0] == 0.0


def test_crafted_samples(scrutable):
    model, X, y, ranking = scrutable
    res = crafted_samples_test(model, X, y, 1, ranking, k=(4, 8), n_samples=200, n_bootstrap=20, random_state=0)
    assert isinstance(res, CraftedSamplesResult) and res.crafted.shape == (2, 20)
    assert np.all(res.noise == 0.0)
    np.testing.assert_array_equal(res.estimate("crafted"), 1.0)
    assert np.all(res.estimate("crafted_random") < 0.35)
    assert "top-k filled" in res.to_table()
    again = crafted_samples_test(model, X, y, 1, ranking, k=(4, 8), n_samples=200, n_bootstrap=20, random_state=0)
    np.testing.assert_array_equal(again.crafted_random, res.crafted_random)


# --------------------------------------------------------------------------- bad input


def test_bad_input_gives_clear_errors(screened, scrutable):
    est, X, model, _ = screened
    with pytest.raises(InvalidParameterError, match=r"target_class must be a class index in \[0, 1\].*got 5"):
        DMMMEN.from_model(model, X, 5)
    with pytest.raises(InvalidParameterError, match=r"n_features must be at most the number of input features \(36"):
        DMMMEN.from_model(model, X, 1, n_features=100)
    with pytest.raises(InvalidParameterError, match="unknown DMMMEN parameter.*n_iters"):
        DMMMEN.from_model(model, X, 1, n_iters=10)
    with pytest.raises(InvalidParameterError, match="clip must be"):
        DMMMEN.from_model(model, X, 1, clip=0.7)
    with pytest.raises(InvalidParameterError, match="must be a classifier"):
        DMMMEN.from_model(lambda Z: Z.reshape(len(Z), -1).sum(1), X, 0)
    with pytest.raises(InvalidParameterError, match="y_true has 0 sample"):
        DMMMEN.from_model(model, X, 1, y_true=np.zeros(len(X)))
    with pytest.raises(InvalidParameterError, match=r"k must be at most the number of fitted features \(18\)"):
        est.explain_global(k=19)
    pmodel, Xs, ys, ranking = scrutable
    with pytest.raises(InvalidParameterError, match=r"k must be at most the number of input features \(36\); got k=150"):
        scrutability_test(pmodel, Xs, ys, 1, ranking)  # the paper's default k=(50, ..., 150) on 36 pixels
    for fraction in (0, 1.5):
        with pytest.raises(InvalidParameterError, match="fraction must be a float in \\(0, 1\\]"):
            scrutability_test(pmodel, Xs, ys, 1, ranking, k=4, fraction=fraction)
    with pytest.raises(InvalidParameterError, match=r"target_class must be a class index in \[0, 1\]"):
        scrutability_test(pmodel, Xs, ys, 3, ranking, k=4)
    with pytest.raises(InvalidParameterError, match="needs at least 8 ranked features"):
        scrutability_test(pmodel, Xs, ys, 1, ranking[:4], k=8)
    with pytest.raises(InvalidParameterError, match="fill_positive must be one of"):
        scrutability_test(pmodel, Xs, ys, 1, ranking, k=4, fill_positive="mean")
    with pytest.raises(InvalidParameterError, match="must not repeat"):
        scrutability_test(pmodel, Xs, ys, 1, np.r_[ranking[:3], ranking[:3]], k=4)
    with pytest.raises(InvalidParameterError, match="batch of images"):
        DMMMENExplainer(as_model(pixel_classifier, output="logit")).explain(Xs.reshape(len(Xs), -1)[:1], target=1)
    with pytest.raises(InvalidParameterError, match="n_samples must be at least n_segments \\+ 2"):
        DMMMENExplainer(pmodel, n_samples=5, segments="grid", segment_params={"cell": 1}).explain(Xs[:1], target=1)


# --------------------------------------------------------------------------- the new names, and the old ones kept one release


def test_explain_takes_the_response_by_keyword_and_the_old_forms_warn():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 3))
    y = X @ [1.0, -1.0, 0.5] + 0.1 * rng.normal(size=60)
    est = quiet(DMMMEN(n_components=2, n_iter=12, n_burnin=6, n_chains=1, random_state=0).fit, X, y)
    new = est.explain(X[:5], response=y[:5])
    with pytest.warns(DeprecationWarning, match=r"explain\(X, response=\.\.\.\)"):
        old = est.explain(X[:5], y[:5])
    with pytest.warns(DeprecationWarning, match=r"explain\(X, response=\.\.\.\)"):
        old_keyword = est.explain(X[:5], y=y[:5])
    for e in (old, old_keyword):
        np.testing.assert_array_equal(e.values, new.values)
        np.testing.assert_array_equal(e.extras["component"], new.extras["component"])
    with pytest.raises(TypeError, match="twice"):
        est.explain(X[:5], y[:5], response=y[:5])
    with pytest.raises(TypeError, match="unexpected keyword"):
        est.explain(X[:5], target=1)


def test_the_local_explainer_moved_to_attribution_with_a_deprecated_alias():
    import scrutiny
    import scrutiny.surrogate as surrogate

    assert scrutiny.DMMMENExplainer is DMMMENExplainer
    assert scrutiny.attribution.DMMMENExplainer is DMMMENExplainer
    with pytest.warns(DeprecationWarning, match=r"use scrutiny\.attribution\.DMMMENExplainer"):
        alias = surrogate.DMMMENExplainer
    assert alias is DMMMENExplainer
    with pytest.warns(DeprecationWarning, match=r"use scrutiny\.attribution\.dmm_men\.uniform_size_masks"):
        assert surrogate.uniform_size_masks is uniform_size_masks
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        surrogate.Nope  # noqa: B018


def test_unconverged_fits_are_flagged_and_warned_and_the_explanation_rhat_is_reported():
    """Explanations from fits that have not converged are never returned silently: a 30-sweep fit
    on the switch black box is flagged, warned about (naming the input), and its explanation
    R-hat is large; the default-length fit of the same image reports a small one."""
    model = as_model(switch_classifier, output="probability")
    X = np.ones((1, 1, 12, 12))
    short = DMMMENExplainer(model, segments="grid", segment_params={"cell": 2}, n_iter=30, n_burnin=15,
                            random_state=0, dmm_params={"n_jobs": 1})
    with pytest.warns(ConvergenceWarning, match=r"the fits of 1 of 1 input\(s\) \(first: 0\) have not converged"):
        e = short.explain(X, target=1)
    assert not e.extras["converged"][0]
    r_short = e.extras["rhat_explanation"][0]
    full = quiet(DMMMENExplainer(model, segments="grid", segment_params={"cell": 2}, random_state=0,
                                 dmm_params={"n_jobs": 1}).explain, X, target=1)
    r_full = full.extras["rhat_explanation"][0]
    assert np.isfinite(r_full) and r_full < 1.05 < r_short


def regression_segments(X):
    """The class-1 logit of segment_classifier, as a one-output regression model."""
    return segment_classifier(X)[:, 1:]


def _small_explainer(model, **kwargs):
    params = dict(n_samples=120, segments="grid", segment_params={"cell": 2}, n_iter=40, n_burnin=20,
                  dmm_params={"n_jobs": 1}, random_state=0)
    params.update(kwargs)
    return DMMMENExplainer(model, **params)


def test_space_auto_is_probability_for_classifiers_and_raw_for_regression():
    X = 0.6 + 0.3 * np.random.default_rng(4).random((1, 1, 8, 8))
    clf = as_model(segment_classifier, output="logit")
    auto = quiet(_small_explainer(clf).explain, X, target=1)
    proba = quiet(_small_explainer(clf, space="probability").explain, X, target=1)
    np.testing.assert_array_equal(auto.values, proba.values)
    np.testing.assert_allclose(auto.extras["response"], clf.predict_proba(X)[:, 1])
    log_odds = quiet(_small_explainer(clf, space="log_odds").explain, X, target=1)
    np.testing.assert_allclose(log_odds.extras["response"], clf.predict_log_odds(X)[:, 1])
    raw = quiet(_small_explainer(clf, space="raw").explain, X, target=1)
    np.testing.assert_allclose(raw.extras["response"], clf.predict(X)[:, 1])
    reg = as_model(regression_segments, output="regression")
    r_auto = quiet(_small_explainer(reg).explain, X, target=0)
    np.testing.assert_allclose(r_auto.extras["response"], reg.predict(X)[:, 0])
    np.testing.assert_array_equal(r_auto.values, quiet(_small_explainer(reg, space="raw").explain, X, target=0).values)
    for space in ("log_odds", "probability"):
        with pytest.raises(InvalidParameterError, match=f"space='{space}' needs a classifier"):
            _small_explainer(reg, space=space).explain(X, target=0)
    with pytest.raises(InvalidParameterError, match="space must be one of"):
        _small_explainer(clf, space="logit").explain(X, target=1)
    names = [f"px{i}" for i in range(64)]
    named = quiet(_small_explainer(clf, feature_names=names).explain, X, target=1)
    assert list(named.feature_names) == names


# --------------------------------------------------------------------------- the contract (clone, params, repr, results)


def _thread_state():
    import torch
    from threadpoolctl import threadpool_info

    return torch.get_num_threads(), sorted((d["internal_api"], d["num_threads"]) for d in threadpool_info())


def test_dmmmen_contract(rng_guard, tmp_path):
    from sklearn.base import clone

    from scrutiny import load_result
    from scrutiny.exceptions import InvalidParameterError as IPE

    rng = np.random.default_rng(8)
    X = rng.normal(size=(120, 4))
    y = np.where(X[:, 0] > 0, X @ [2.0, 0, 0, 1] + 3, X @ [0, -1, 1, 0] - 3) + 0.1 * rng.normal(size=120)
    est = DMMMEN(n_components=3, n_iter=40, n_burnin=20, init="kmeans", random_state=4)
    assert repr(est) == "DMMMEN(n_components=3, n_iter=40, n_burnin=20, init='kmeans', random_state=4)"
    twin = clone(est)
    assert twin is not est and twin.get_params() == est.get_params()
    threads = _thread_state()
    quiet(est.fit, X, y)
    assert _thread_state() == threads
    quiet(twin.fit, X, y)
    for name in ("coef_", "coef_ci_", "intercept_", "sigma2_", "weights_", "allocation_proba_", "responsibilities_"):
        np.testing.assert_array_equal(getattr(twin, name), getattr(est, name), err_msg=name)
    assert not hasattr(clone(est), "coef_")  # clone copies parameters, not the fit
    params = est.get_params()
    assert est.set_params(**params) is est and est.get_params() == params
    with pytest.raises(IPE, match="DMMMEN has no parameter 'bad_name'"):
        est.set_params(bad_name=1)
    est.set_params(n_components=0)  # validated at fit time, like scikit-learn
    with pytest.raises(IPE, match="n_components must be an int in"):
        est.fit(X, y)
    # every result it returns round-trips through save / load_result
    est.set_params(n_components=3)
    e = est.explain(X[:6], response=y[:6])
    back = load_result(e.save(tmp_path / "explanation"))
    np.testing.assert_array_equal(back.values, e.values)
    np.testing.assert_array_equal(back.extras["values_ci"], e.extras["values_ci"])
    for insight in est.explain_global(k=2):
        _assert_same_result(load_result(insight.save(tmp_path / f"insight{insight.component}")), insight)


def _assert_same_result(back, result):
    import dataclasses

    assert type(back) is type(result)
    for field in dataclasses.fields(result):
        a, b = getattr(back, field.name), getattr(result, field.name)
        if isinstance(b, np.ndarray):
            assert a.dtype == b.dtype, field.name
            np.testing.assert_array_equal(a, b, err_msg=field.name)
        else:
            assert a == b, field.name


def test_global_insight_round_trips(screened, tmp_path):
    from scrutiny import load_result

    est = screened[0]
    insights = est.explain_global(k=5, absolute=True)
    assert insights and all(isinstance(g, GlobalInsight) for g in insights)
    for g in insights:
        back = load_result(g.save(tmp_path / "g"))
        _assert_same_result(back, g)
        assert back.summary() == g.summary()
        _assert_same_result(GlobalInsight.from_dict(g.to_dict()), g)


def test_scrutability_results_round_trip(scrutable, tmp_path):
    from scrutiny import load_result

    model, X, y, ranking = scrutable
    res = scrutability_test(model, X, y, 1, ranking, k=(4, 8), n_bootstrap=6, random_state=np.int64(0))
    crafted = crafted_samples_test(model, X, y, 1, ranking, k=(4, 8), n_samples=50, n_bootstrap=6, random_state=0)
    for r in (res, crafted):
        back = load_result(r.save(tmp_path / type(r).__name__))
        _assert_same_result(back, r)
        assert back.to_table() == r.to_table()


def test_dmmmen_explainer_contract(rng_guard, tmp_path):
    from sklearn.base import clone

    from scrutiny import load_result

    model = as_model(segment_classifier, output="logit")
    X = 0.6 + 0.3 * np.random.default_rng(6).random((2, 1, 8, 8))
    ex = _small_explainer(model)
    text = repr(ex)
    assert "n_samples=120" in text and "segments='grid'" in text and "random_state=0" in text
    assert "n_chains=" not in text and "space=" not in text and "baseline=" not in text
    assert "space='raw'" in repr(_small_explainer(model, space="raw"))
    twin = clone(ex)
    assert twin is not ex and twin.model is not ex.model
    threads = _thread_state()
    e = quiet(ex.explain, X, target=1)
    assert _thread_state() == threads
    again = quiet(twin.explain, X, target=1)
    np.testing.assert_array_equal(again.values, e.values)
    for key in ("segment_values", "segment_ci", "mixture_segment_values", "component"):
        np.testing.assert_array_equal(again.extras[key], e.extras[key], err_msg=key)
    params = ex.get_params()
    assert ex.set_params(**params) is ex and ex.get_params() == params
    with pytest.raises(InvalidParameterError, match="DMMMENExplainer has no parameter 'bad_name'"):
        ex.set_params(bad_name=1)
    back = load_result(e.save(tmp_path / "local"))
    np.testing.assert_array_equal(back.values, e.values)
    for key, value in e.extras.items():
        np.testing.assert_array_equal(back.extras[key], value, err_msg=key)
    assert back.params["space"] == "auto" and back.params["n_samples"] == 120


def test_a_blank_image_has_nothing_to_explain():
    """Every superpixel equals the baseline: no fit, every value exactly 0, the response recorded."""
    model = as_model(switch_classifier, output="probability")
    X = np.zeros((1, 1, 12, 12))
    e = DMMMENExplainer(model, segments="grid", segment_params={"cell": 2}, random_state=0,
                        dmm_params={"n_jobs": 1}).explain(X, target=1)
    assert e.extras["inert_segments"].all() and np.all(e.values == 0.0)
    assert e.extras["converged"][0] and np.isnan(e.extras["rhat_explanation"][0])
    np.testing.assert_allclose(e.extras["response"], model.predict_proba(X)[:, 1])
    np.testing.assert_allclose(e.base_values, model.predict_proba(X)[:, 1])
