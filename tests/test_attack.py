"""Training-set attack (Koh & Liang 2017, Sec. 5.2) on a small L2 logistic regression.

Digits 3 versus 8 (250 training images, 64 pixels in [0, 1]), a two-logit logistic regression
fitted to its optimum. The oracle is actual retraining: every number compared here is a test
loss after refitting the model on the poisoned training set.
"""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pytest

from scrutiny.data_attribution import AttackResult, training_set_attack
from scrutiny.exceptions import InvalidParameterError

L2 = 1e-2
N_TRAIN = 250


@pytest.fixture(scope="module")
def problem():
    from scrutiny.data import load_digits
    from scrutiny.data_attribution import fit_to_optimum
    from scrutiny.zoo import make_model

    d = load_digits()
    keep = (d.y == 3) | (d.y == 8)
    X, y = d.X[keep], (d.y[keep] == 8).astype(np.int64)
    model = make_model("logistic", (1, 8, 8), 2, random_state=0).double()
    fit_to_optimum(model, "cross_entropy", X[:N_TRAIN], y[:N_TRAIN], l2=L2)
    return {"model": model, "X": X[:N_TRAIN], "y": y[:N_TRAIN], "Xte": X[N_TRAIN:], "yte": y[N_TRAIN:]}


def _attack(p, **kw):
    kw.setdefault("l2", L2)
    return training_set_attack(p["model"], "cross_entropy", p["X"], p["y"], p["Xte"], p["yte"], **kw)


def _test_loss(model, X, y):
    from scrutiny.data_attribution import TrainingObjective

    return TrainingObjective(model, "cross_entropy", X, y).loss_values()


def _refit(p, X_poisoned):
    from scrutiny.data_attribution import fit_to_optimum

    m = copy.deepcopy(p["model"])
    fit_to_optimum(m, "cross_entropy", X_poisoned, p["y"], l2=L2)
    return m


@pytest.fixture(scope="module")
def attacked(problem):
    return _attack(problem, targets=np.arange(6), epsilon=0.1)


def test_attack_beats_a_random_perturbation_of_the_same_size(problem, attacked, rng_guard):
    rand = _attack(problem, targets=np.arange(6), epsilon=0.1, strategy="random", random_state=3)
    assert rand.strategy == "random" and attacked.strategy == "influence"
    a, r = attacked.actual_change, rand.actual_change
    assert (a > 0).all(), a
    assert (a > np.abs(r)).all(), (a, r)
    assert a.mean() > 10 * np.abs(r).mean()
    # both stay inside the L-infinity ball and the pixel range
    for res in (attacked, rand):
        assert res.max_abs_perturbation <= 0.1 + 1e-12
        poisoned = problem["X"][res.train_indices] + res.perturbations
        assert poisoned.min() >= 0.0 and poisoned.max() <= 1.0
    # a signed step moves every pixel by epsilon unless the pixel range stops it
    delta = attacked.perturbations.reshape(-1)
    x0 = problem["X"][attacked.train_indices].reshape(-1)
    at_bound = ((x0 + delta) <= 1e-12) | ((x0 + delta) >= 1 - 1e-12)
    assert np.all(np.isclose(np.abs(delta), 0.1) | at_bound)
    # the same seed gives the same control
    again = _attack(problem, targets=np.arange(6), epsilon=0.1, strategy="random", random_state=3)
    np.testing.assert_array_equal(again.train_indices, rand.train_indices)
    np.testing.assert_array_equal(again.perturbations, rand.perturbations)


def test_selected_point_beats_other_points_attacked_the_same_way(problem, attacked):
    from scrutiny.data_attribution import InfluenceFunctions

    t = 0
    chosen = int(attacked.train_indices[t, 0])
    inf = InfluenceFunctions(problem["model"], "cross_entropy", l2=L2).fit(problem["X"], problem["y"])
    xt, yt = problem["Xte"][t:t + 1], problem["yte"][t:t + 1]
    others = [i for i in np.random.default_rng(1).choice(N_TRAIN, 4, replace=False) if i != chosen][:3]
    grads = inf.influence_pert_loss(xt, yt, others)[0]
    base = _test_loss(problem["model"], xt, yt)[0]
    for i, g in zip(others, grads):
        X2 = problem["X"].copy()
        X2[i] = np.clip(X2[i] + 0.1 * np.sign(g), 0, 1)
        change = _test_loss(_refit(problem, X2), xt, yt)[0] - base
        assert change < attacked.actual_change[t], (i, change, attacked.actual_change[t])


def test_predicted_change_has_the_right_sign_and_tracks_the_actual_change(problem, attacked):
    # the actual loss after the attack is a real refit: check it independently
    t = 2
    X2 = problem["X"].copy()
    X2[attacked.train_indices[t]] += attacked.perturbations[t]
    xt, yt = problem["Xte"][t:t + 1], problem["yte"][t:t + 1]
    refit_loss = _test_loss(_refit(problem, X2), xt, yt)[0]
    assert refit_loss == pytest.approx(attacked.loss_after[t], rel=1e-6)
    assert attacked.loss_before[t] == pytest.approx(_test_loss(problem["model"], xt, yt)[0], rel=1e-12)
    pred, act = attacked.predicted_change, attacked.actual_change
    assert (pred > 0).all() and (act > 0).all()
    assert np.corrcoef(pred, act)[0, 1] > 0.95
    ratio = pred / act
    assert ((ratio > 0.5) & (ratio < 2.0)).all(), ratio  # first order: within a factor 2 at epsilon = 0.1
    s = attacked.summary()
    assert s["pearson_predicted_actual"] > 0.95 and s["n_targets"] == 6 and s["epsilon"] == 0.1


def test_a_boundary_point_flips_and_the_model_is_left_alone(problem):
    import torch

    from scrutiny.data_attribution import TrainingObjective

    obj = TrainingObjective(problem["model"], "cross_entropy", problem["Xte"], problem["yte"])
    with torch.no_grad():
        z = obj.forward(obj._theta_t(), torch.as_tensor(problem["Xte"], dtype=torch.float64)).numpy()
    margin = (z[:, 1] - z[:, 0]) * np.where(problem["yte"] == 1, 1, -1)
    t = int(np.flatnonzero(margin > 0)[np.argmin(margin[margin > 0])])  # the least confident correct point
    before = {k: v.clone() for k, v in problem["model"].state_dict().items()}
    res = _attack(problem, targets=[t], epsilon=0.25, n_poison=3, n_steps=2)
    assert res.pred_before[0] == problem["yte"][t]
    assert res.flipped[0] and res.pred_after[0] != problem["yte"][t] and res.flip_rate == 1.0
    assert res.train_indices.shape == (1, 3) and len(set(res.train_indices[0])) == 3
    for k, v in problem["model"].state_dict().items():
        assert torch.equal(v, before[k])


def test_custom_retrain_and_result_object(problem):
    from scrutiny.data_attribution import fit_to_optimum

    calls = []

    def retrain(model, X, y):
        calls.append(X.shape)
        fit_to_optimum(model, "cross_entropy", X, y, l2=L2)

    res = _attack(problem, targets=[1, 4], epsilon=0.05, n_steps=2, retrain=retrain)
    assert len(calls) == 4 and res.params["retrain"].endswith("retrain")
    assert "retrain_grad_norm" not in res.extras and res.extras["seconds"].shape == (2,)
    assert isinstance(res, AttackResult) and len(res) == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.epsilon = 1.0
    with pytest.raises(ValueError):
        res.loss_after[0] = 0.0
    d = json.loads(json.dumps(res.to_dict()))
    assert d["strategy"] == "influence" and d["arrays"]["perturbations"]["shape"] == [2, 1, 1, 8, 8]
    back = AttackResult.from_dict(d)
    np.testing.assert_array_equal(back.perturbations, res.perturbations)
    np.testing.assert_array_equal(back.extras["seconds"], res.extras["seconds"])
    assert back.params == res.params and back.flip_rate == res.flip_rate
    with pytest.raises(InvalidParameterError, match="retrain must return the retrained torch model"):
        _attack(problem, targets=[0], epsilon=0.05, retrain=lambda m, X, y: "done")


def test_bad_inputs_are_refused(problem):
    from scrutiny.data_attribution import NotAtOptimumError
    from scrutiny.zoo import make_model

    p = problem
    cases = [
        ({"epsilon": 0.0}, r"epsilon must be a float in \(0, inf\); got 0\.0\. It is the L-infinity radius"),
        ({"epsilon": -1}, "epsilon must be a float"),
        ({"epsilon": 0.1, "n_steps": 0}, r"n_steps must be an int in \[1, inf\]; got 0"),
        ({"epsilon": 0.1, "step_size": 0.0}, "step_size must be a float"),
        ({"epsilon": 0.1, "strategy": "greedy"}, r"strategy must be one of 'influence', 'random'; got 'greedy'"),
        ({"epsilon": 0.1, "n_poison": N_TRAIN + 1}, f"n_poison must be at most n_train={N_TRAIN}; got 251"),
        ({"epsilon": 0.1, "targets": [len(p["yte"])]}, r"targets must be a non-empty 1-d array of ints in \[0, "),
        ({"epsilon": 0.1, "targets": []}, "targets must be a non-empty"),
        ({"epsilon": 0.1, "targets": [0.5]}, "targets must be"),
        ({"epsilon": 0.1, "clip": (1.0, 0.0)}, r"clip must be None or a pair \(low, high\).*got \(1\.0, 0\.0\)"),
        ({"epsilon": 0.1, "retrain": "refit"}, "retrain must be a callable or None"),
    ]
    for kw, msg in cases:
        with pytest.raises(InvalidParameterError, match=msg):
            _attack(p, **kw)
    with pytest.raises(InvalidParameterError, match=r"X_train has values in \[0, 2\], outside clip=\(0\.0, 1\.0\)"):
        training_set_attack(p["model"], "cross_entropy", 2 * p["X"], p["y"], p["Xte"], p["yte"], epsilon=0.1, l2=L2)
    with pytest.raises(InvalidParameterError, match=r"y_test must have one label per row of X_test"):
        training_set_attack(p["model"], "cross_entropy", p["X"], p["y"], p["Xte"], p["yte"][:5], epsilon=0.1, l2=L2)
    with pytest.raises(InvalidParameterError, match="y_test must hold integer class labels"):
        training_set_attack(p["model"], "cross_entropy", p["X"], p["y"], p["Xte"], p["yte"] + 0.5, epsilon=0.1,
                            l2=L2)
    with pytest.raises(InvalidParameterError, match="X_train contains 1 non-finite"):
        X = p["X"].copy()
        X[3, 0, 2, 2] = np.nan
        training_set_attack(p["model"], "cross_entropy", X, p["y"], p["Xte"], p["yte"], epsilon=0.1, l2=L2)
    untrained = make_model("logistic", (1, 8, 8), 2, random_state=0).double()
    with pytest.raises(NotAtOptimumError, match="fit_to_optimum"):
        training_set_attack(untrained, "cross_entropy", p["X"], p["y"], p["Xte"], p["yte"], epsilon=0.1, l2=L2)


def test_attack_result_saves_reloads_and_slices(attacked, tmp_path):
    from scrutiny import load_result

    path = attacked.save(tmp_path / "attack")
    back = load_result(path)
    assert type(back) is AttackResult and len(back) == len(attacked)
    for f in dataclasses.fields(AttackResult):
        a, b = getattr(attacked, f.name), getattr(back, f.name)
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
        elif f.name == "extras":
            assert set(a) == set(b)
            for k in a:
                np.testing.assert_array_equal(a[k], b[k])
        else:
            assert a == b, f.name
    np.testing.assert_array_equal(back.flipped, attacked.flipped)
    first = attacked[1:3]
    assert len(first) == 2 and np.array_equal(first.targets, attacked.targets[1:3])
    np.testing.assert_array_equal(first.extras["gain"], attacked.extras["gain"][1:3])
