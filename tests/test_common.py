"""Contract suite: properties every model wrapper and every explainer must have.

Model adapters: the same logistic model wrapped from scikit-learn, torch and a plain
callable gives the same outputs; batch size never changes a result; global RNG state is
never touched; results round-trip through JSON and files.

Explainers plug in through ``EXPLAINERS`` below (issue: local attributions and later ones):
each entry is ``(name, factory)`` with ``factory(model) -> explainer``; every entry is run
through the same checks (shapes, seeded determinism, batch invariance, adapter invariance,
global RNG untouched, save/load round trip).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import wrap

from scrutiny import Explanation, load_result

KINDS = ("sklearn", "torch", "callable")

def _iris_background():
    from sklearn.datasets import load_iris
    from sklearn.preprocessing import StandardScaler

    return StandardScaler().fit_transform(load_iris(return_X_y=True)[0])


def _registry():
    """(name, factory(model) -> explainer, needs_gradient) for every public explainer."""
    from scrutiny.attribution import (
        CLIME,
        LIME,
        GradientXInput,
        IntegratedGradients,
        KernelSHAP,
        Occlusion,
        Saliency,
        SmoothGrad,
    )

    bg = _iris_background()
    gradient = {
        "Saliency": lambda m: Saliency(m),
        "Saliency-abs": lambda m: Saliency(m, abs=True),
        "GradientXInput": lambda m: GradientXInput(m, baseline=0.5),
        "IntegratedGradients": lambda m: IntegratedGradients(m, n_steps=16),
        "IG-riemann": lambda m: IntegratedGradients(m, n_steps=9, method="riemann_trapezoid", baseline=np.ones(4)),
        "SmoothGrad": lambda m: SmoothGrad(m, n_samples=20, random_state=0),
        "SmoothGrad-plain": lambda m: SmoothGrad(m, n_samples=7, antithetic=False, random_state=3),
        "SmoothGrad-IG": lambda m: SmoothGrad(m, IntegratedGradients(m, n_steps=8), n_samples=6, random_state=1),
        "SmoothGrad-auto": lambda m: SmoothGrad(m, n_samples="auto", noise_level=0.3, random_state=0),
    }
    perturbation = {
        "LIME-quartile": lambda m: LIME(m, training_data=bg, n_samples=300, random_state=0),
        "LIME-gaussian": lambda m: LIME(m, training_data=bg, discretizer=None, n_samples=300, random_state=0),
        "CLIME": lambda m: CLIME(m, sigma=0.3, n_samples=200, random_state=0),
        "CLIME-auto": lambda m: CLIME(m, sigma=0.3, n_samples="auto", tol=0.05, random_state=0),
        "KernelSHAP-exact": lambda m: KernelSHAP(m, bg[::10], random_state=0),
        "KernelSHAP-sampled": lambda m: KernelSHAP(m, bg[::10], n_samples=12, random_state=0),
        "Occlusion": lambda m: Occlusion(m, baseline=bg.mean(axis=0)),
    }
    return [(k, f, True) for k, f in gradient.items()] + [(k, f, False) for k, f in perturbation.items()]


EXPLAINERS: list[tuple[str, object, bool]] = _registry()


# --------------------------------------------------------------------------- adapters


@pytest.mark.parametrize("kind", KINDS)
def test_adapters_agree_on_probabilities_and_log_odds(logistic_trio, kind):
    X = logistic_trio["X"]
    expected_proba = logistic_trio["sklearn"].predict_proba(X)
    model = wrap(logistic_trio, kind)
    np.testing.assert_allclose(model.predict_proba(X), expected_proba, rtol=0, atol=1e-12)
    reference = wrap(logistic_trio, "callable").predict_log_odds(X)
    np.testing.assert_allclose(model.predict_log_odds(X), reference, atol=1e-6)
    np.testing.assert_array_equal(model.predict_class(X), logistic_trio["sklearn"].predict(X))


@pytest.mark.parametrize("kind", KINDS)
def test_predict_is_float64_2d_and_batch_size_invariant(logistic_trio, kind):
    X = logistic_trio["X"]
    outs = [wrap(logistic_trio, kind, batch_size=b).predict(X) for b in (1, 7, 1000)]
    for out in outs:
        assert out.dtype == np.float64 and out.shape == (X.shape[0], 3)
        np.testing.assert_allclose(out, outs[0], rtol=1e-12, atol=1e-14)  # BLAS may differ by 1 ulp


def test_model_calls_are_chunked_never_per_sample(logistic_trio):
    """A batch of 150 rows with batch_size=64 reaches the model in exactly 3 calls."""
    calls = []
    fn = logistic_trio["callable"]
    from scrutiny import as_model

    model = as_model(lambda Z: calls.append(len(Z)) or fn(Z), output="logit", batch_size=64)
    model.predict(logistic_trio["X"])
    assert calls == [64, 64, 22]


@pytest.mark.parametrize("kind", KINDS)
def test_adapters_leave_global_rng_untouched(logistic_trio, kind, rng_guard):
    model = wrap(logistic_trio, kind)
    model.predict(logistic_trio["X"])
    model.predict_proba(logistic_trio["X"])


# --------------------------------------------------------------------------- results


def test_explanation_round_trips_through_dict_json_and_file(tmp_path):
    import json

    rng = np.random.default_rng(0)
    e = Explanation(
        values=rng.normal(size=(4, 1, 3, 3)),
        target=[0, 2, 1, 1],
        method="Test",
        base_values=rng.normal(size=4),
        data=rng.normal(size=(4, 1, 3, 3)),
        params={"n_steps": 50, "seed": 3, "baseline": np.zeros(3)},
        stderr=np.abs(rng.normal(size=(4, 1, 3, 3))),
        extras={"gap": rng.normal(size=4), "note": "ok", "ratio": np.float32(0.5)},
    )
    again = Explanation.from_dict(json.loads(json.dumps(e.to_dict())))
    loaded = load_result(e.save(tmp_path / "exp"))
    for other in (again, loaded):
        for name in ("values", "target", "base_values", "data", "stderr"):
            np.testing.assert_array_equal(getattr(other, name), getattr(e, name))
        np.testing.assert_array_equal(other.extras["gap"], e.extras["gap"])
        assert other.extras["note"] == "ok" and other.extras["ratio"] == 0.5
        assert other.params["n_steps"] == 50
        np.testing.assert_array_equal(other.params["baseline"], np.zeros(3))


# --------------------------------------------------------------------------- explainers


def _explainer_params():
    items = EXPLAINERS
    return [pytest.param(factory, needs_grad, id=name) for name, factory, needs_grad in items]


def _kinds_for(needs_grad):
    return ("torch",) if needs_grad else KINDS


@pytest.mark.parametrize("factory,needs_grad", _explainer_params())
def test_explainer_contract(logistic_trio, factory, needs_grad, tmp_path, rng_guard):
    X = logistic_trio["X"][:6]
    results = {}
    for kind in _kinds_for(needs_grad):
        model = wrap(logistic_trio, kind)
        explainer = factory(model)
        first = explainer.explain(X, target=None)
        assert isinstance(first, Explanation) and len(first) == len(X)
        np.testing.assert_array_equal(first.target, model.predict_class(X))
        # same seed, same result
        np.testing.assert_array_equal(explainer.explain(X).values, first.values)
        # rows explained together equal rows explained one by one
        one_by_one = np.concatenate([explainer.explain(X[i : i + 1]).values for i in range(len(X))])
        np.testing.assert_allclose(one_by_one, first.values, rtol=1e-6, atol=1e-9)
        # batch size does not change the result
        small = factory(wrap(logistic_trio, kind, batch_size=5)).explain(X)
        np.testing.assert_allclose(small.values, first.values, rtol=1e-6, atol=1e-9)
        # the explainer's own batch_size (rows per model call) does not change the result
        capped = factory(model)
        if "batch_size" in capped.get_params():
            capped.batch_size = 3
            np.testing.assert_allclose(capped.explain(X).values, first.values, rtol=1e-6, atol=1e-9)
        loaded = load_result(first.save(tmp_path / f"{kind}.npz"))
        assert loaded.method == first.method == type(explainer).__name__
        np.testing.assert_array_equal(loaded.values, first.values)
        for key, value in first.extras.items():
            np.testing.assert_array_equal(loaded.extras[key], value)
        if first.stderr is not None:
            np.testing.assert_array_equal(loaded.stderr, first.stderr)
        results[kind] = first.values
    for kind, values in results.items():
        np.testing.assert_allclose(values, results[_kinds_for(needs_grad)[0]], rtol=1e-5, atol=1e-7)
