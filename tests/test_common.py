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
        DeepLIFT,
        GradCAM,
        GradientSHAP,
        GradientXInput,
        GuidedBackprop,
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
        "GradientSHAP": lambda m: GradientSHAP(m, bg[::15], n_samples=8, random_state=0),
        "GradientSHAP-noise": lambda m: GradientSHAP(m, bg[::15], n_samples=5, stdevs=0.2, random_state=1),
        "DeepLIFT": lambda m: DeepLIFT(m, baseline=0.5),
        "GradCAM": lambda m: GradCAM(m, layer=""),  # the whole (linear) module is the layer
        "GuidedBackprop": lambda m: GuidedBackprop(m),
    }
    perturbation = {
        "LIME-quartile": lambda m: LIME(m, training_data=bg, n_samples=300, random_state=0),
        "LIME-gaussian": lambda m: LIME(m, training_data=bg, discretizer=None, n_samples=300, random_state=0),
        "CLIME": lambda m: CLIME(m, sigma=0.3, n_samples=200, random_state=0),
        "CLIME-auto": lambda m: CLIME(m, sigma=0.3, n_samples="auto", tol=0.05, random_state=0),
        "CLIME-range": lambda m: CLIME(m, sigma=0.1, noise_scale="range", n_samples=200, random_state=0),
        "KernelSHAP-exact": lambda m: KernelSHAP(m, bg[::10], random_state=0),
        "KernelSHAP-sampled": lambda m: KernelSHAP(m, bg[::10], n_samples=12, random_state=0),
        "Occlusion": lambda m: Occlusion(m, baseline=bg.mean(axis=0)),
    }
    return [(k, f, True) for k, f in gradient.items()] + [(k, f, False) for k, f in perturbation.items()]


EXPLAINERS: list[tuple[str, object, bool]] = _registry()


def _explainer_cases():
    """(name, factory(model, background) -> explainer with non-default parameters, needs a gradient)."""
    from scrutiny.attribution import (
        CLIME,
        LIME,
        DeepLIFT,
        GradCAM,
        GradientSHAP,
        GradientXInput,
        GuidedBackprop,
        IntegratedGradients,
        KernelSHAP,
        Occlusion,
        Saliency,
        SmoothGrad,
    )

    names = ["a", "b", "c", "d"]
    return [
        ("Saliency", lambda m, bg: Saliency(m, abs=True, space="probability", feature_names=names), True),
        ("GradientXInput", lambda m, bg: GradientXInput(m, baseline=0.5, space="log_odds"), True),
        ("IntegratedGradients", lambda m, bg: IntegratedGradients(m, n_steps=8, batch_size=5, feature_names=names), True),
        ("SmoothGrad", lambda m, bg: SmoothGrad(m, IntegratedGradients(m, n_steps=4), n_samples=6, random_state=3), True),
        ("GradientSHAP", lambda m, bg: GradientSHAP(m, bg[:9], n_samples=6, stdevs=0.1, space="log_odds", batch_size=4,
                                                    random_state=2, feature_names=names), True),
        ("DeepLIFT", lambda m, bg: DeepLIFT(m, baseline=bg.mean(axis=0), batch_size=2, feature_names=names), True),
        ("GradCAM", lambda m, bg: GradCAM(m, layer="", relu=False, space="probability", feature_names=names), True),
        ("GuidedBackprop", lambda m, bg: GuidedBackprop(m, space="probability", batch_size=3, feature_names=names), True),
        ("LIME", lambda m, bg: LIME(m, training_data=bg, n_samples=200, space="log_odds", random_state=1), False),
        ("CLIME", lambda m, bg: CLIME(m, sigma=0.3, n_samples=120, random_state=2, feature_names=names), False),
        ("KernelSHAP", lambda m, bg: KernelSHAP(m, bg[:5], n_samples=12, random_state=0, feature_names=names), False),
        ("Occlusion", lambda m, bg: Occlusion(m, baseline=bg.mean(axis=0), space="raw", feature_names=names), False),
    ]


EXPLAINER_CASES = _explainer_cases()
# every explainer with non-default parameters (space, feature_names, batch_size, ...), on each model kind it accepts
PARAM_RUNS = [(name, factory, kind) for name, factory, grad in EXPLAINER_CASES for kind in ("torch", "sklearn")
              if kind == "torch" or not grad]


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


# --------------------------------------------------------------------------- every public class


def _tiny_modules():
    """Small torch modules built once, from numpy weights (no global RNG involved)."""
    import torch

    rng = np.random.default_rng(0)
    image_net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)).double()
    with torch.no_grad():
        image_net[1].weight.copy_(torch.as_tensor(rng.normal(scale=0.3, size=(10, 64))))
        image_net[1].bias.copy_(torch.as_tensor(rng.normal(scale=0.1, size=10)))
    return {"image_net": image_net}


@pytest.fixture(scope="module")
def contract_data(logistic_trio):
    from scrutiny.data import load_digits

    digits = load_digits()
    rng = np.random.default_rng(1)
    X_lin = rng.normal(size=(120, 3))
    y_lin = np.where(X_lin[:, 0] > 0, 2.0 * X_lin[:, 1], -1.5 * X_lin[:, 2]) + 0.05 * rng.normal(size=120)
    return {
        **_tiny_modules(),
        "images": digits.X[:3],
        "X": logistic_trio["X"],
        "y": logistic_trio["y"],
        "X_lin": X_lin,
        "y_lin": y_lin,
    }


def _cloned(obj):
    from sklearn.base import clone as sk_clone

    return sk_clone(obj)


def _tree_model(X, y):
    from sklearn.ensemble import GradientBoostingClassifier

    return GradientBoostingClassifier(n_estimators=5, max_depth=2, random_state=0).fit(X, y)


def _public_classes(trio, data):
    """(name, make() -> object, run(object) -> list of results) for every public class."""
    from scrutiny.attribution import DMMMENExplainer, TreeSHAP
    from scrutiny.data_attribution import InfluenceFunctions, RepresenterPoints
    from scrutiny.nnk import NNK
    from scrutiny.surrogate import DMMMEN

    X, y = data["X"], data["y"]
    entries = []
    for name, factory, needs_grad in EXPLAINERS:
        kind = "torch" if needs_grad else "sklearn"
        entries.append((name, (lambda f=factory, k=kind: f(wrap(trio, k))), lambda e: [e.explain(X[:4])]))
    for name, factory, kind in PARAM_RUNS:
        entries.append((f"{name}-params-{kind}", (lambda f=factory, k=kind: f(wrap(trio, k), X)),
                        lambda e: [e.explain(X[::30])]))
    entries += [
        (
            "DMMMENExplainer",
            lambda: DMMMENExplainer(data["image_net"], n_samples=40, segments="grid", n_components=2, n_priors=2,
                                    n_iter=40, n_burnin=20, random_state=0),
            lambda e: [e.explain(data["images"][:2])],
        ),
        (
            "InfluenceFunctions",
            lambda: InfluenceFunctions(trio["torch"], "cross_entropy", l2=1e-2, check_optimum="ignore"),
            lambda e: [e.fit(X, y).attribute(X[:3]), e.attribute(X[:3], y[:3])],
        ),
        (
            "RepresenterPoints",
            lambda: RepresenterPoints(trio["torch"]),
            lambda e: [e.fit(X, y).attribute(X[:3])],
        ),
        ("NNK", lambda: NNK(k=7), lambda e: [e.fit(X[::2], y[::2]).attribute(X[1::2][:5])]),
        (  # TreeSHAP needs a tree model, not the shared logistic one
            "TreeSHAP",
            lambda: TreeSHAP(_tree_model(X, y), background=X[::15], feature_names=["a", "b", "c", "d"], n_jobs=2),
            lambda e: [e.explain(X[:4]), _cloned(e).set_params(background=None).explain_interactions(X[:3])],
        ),
        (
            "DMMMEN",
            lambda: DMMMEN(n_components=2, n_priors=2, n_iter=60, n_burnin=30, random_state=0),
            lambda e: [e.fit(data["X_lin"], data["y_lin"]).explain(data["X_lin"][:5], response=data["y_lin"][:5]),
                       *e.explain_global(k=2)],
        ),
    ]
    return entries


_CONTRACT_NAMES = [name for name, _, _ in EXPLAINERS] + [f"{n}-params-{k}" for n, _, k in PARAM_RUNS] + [
    "DMMMENExplainer", "InfluenceFunctions", "RepresenterPoints", "NNK", "DMMMEN", "TreeSHAP"]


def _assert_same(a, b, where="result", timings=True):
    """Equal results field by field; ``timings=False`` skips wall-clock entries (keys naming a time)."""
    import dataclasses

    if dataclasses.is_dataclass(a):
        assert type(a) is type(b), where
        for f in dataclasses.fields(a):
            _assert_same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}", timings)
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=where)
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            if timings or "time" not in str(k):
                _assert_same(a[k], b[k], f"{where}[{k!r}]", timings)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, z) in enumerate(zip(a, b)):
            _assert_same(x, z, f"{where}[{i}]", timings)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def _thread_counts():
    import torch
    from threadpoolctl import threadpool_info

    return torch.get_num_threads(), [(i["user_api"], i["num_threads"]) for i in threadpool_info()]


@pytest.mark.parametrize("name", _CONTRACT_NAMES)
def test_public_class_contract(logistic_trio, contract_data, name, tmp_path, rng_guard):
    """clone, get/set_params, repr, identical refits, result files and untouched global state."""
    import inspect

    from sklearn.base import clone

    from scrutiny.exceptions import InvalidParameterError

    make, run = next((m, r) for n, m, r in _public_classes(logistic_trio, contract_data) if n == name)
    threads = _thread_counts()
    obj = make()
    first = run(obj)
    twin = clone(obj)
    assert type(twin) is type(obj) and twin is not obj
    if hasattr(obj, "model") and obj.model is not None:
        assert twin.model is not obj.model  # the model (adapter) is deep-copied
    again = run(twin)
    assert len(again) == len(first)
    for a, b in zip(first, again):
        _assert_same(a, b, timings=False)

    params = obj.get_params()
    assert obj.set_params(**params) is obj and obj.get_params().keys() == params.keys()
    assert all(obj.get_params()[k] is v for k, v in params.items())
    with pytest.raises(InvalidParameterError, match="no parameter"):
        obj.set_params(no_such_parameter=1)

    from scrutiny._validation import _short_repr

    text = repr(obj)
    assert text.startswith(type(obj).__name__ + "(")
    for p in inspect.signature(type(obj).__init__).parameters.values():  # required values, e.g. the model
        if p.name != "self" and p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            text = text.replace(_short_repr(params[p.name]), "", 1)
    for p in inspect.signature(type(obj).__init__).parameters.values():
        if p.default is inspect.Parameter.empty or p.name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        value = params[p.name]
        is_default = value is p.default or (
            not isinstance(value, np.ndarray) and type(value) is type(p.default) and value == p.default)
        assert (f"{p.name}=" in text) != is_default, f"repr {text!r} and {p.name}={value!r}"

    for i, result in enumerate(first):
        loaded = load_result(result.save(tmp_path / f"{name}-{i}.npz"))
        _assert_same(result, loaded)
    assert _thread_counts() == threads
