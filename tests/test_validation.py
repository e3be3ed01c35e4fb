"""Validation helpers: arrays, targets, parameter constraints, fitted checks and randomness."""

from __future__ import annotations

import numpy as np
import pytest

from scrutiny._validation import (
    Interval,
    Options,
    check_array,
    check_is_fitted,
    check_random_state,
    check_target,
    spawn_generators,
    validate_params,
)
from scrutiny.exceptions import InvalidParameterError, NotFittedError


def test_check_array_converts_and_checks():
    import torch

    out = check_array(torch.ones(2, 3, dtype=torch.float32))
    assert out.dtype == np.float64 and out.shape == (2, 3)
    with pytest.raises(InvalidParameterError, match=r"X must have 2 dimensions; got an array of shape \(3,\)\. For a single sample"):
        check_array(np.ones(3), ndim=2)
    with pytest.raises(InvalidParameterError, match=r"baseline must have shape \(any, 4\); got \(2, 3\)"):
        check_array(np.ones((2, 3)), "baseline", shape=(None, 4))
    with pytest.raises(InvalidParameterError, match="X must be an array; got None"):
        check_array(None)
    with pytest.raises(InvalidParameterError, match="scalar"):
        check_array(3.0)
    assert check_array(np.array([[np.nan]]), allow_nan=True).shape == (1, 1)
    assert check_array(np.empty((0, 2)), min_samples=0).shape == (0, 2)


def test_check_target_broadcasts_and_range_checks():
    assert check_target(2, 3, 4).tolist() == [2, 2, 2]
    assert check_target(np.array([1.0, 0.0]), 2, 2).tolist() == [1, 0]
    with pytest.raises(InvalidParameterError, match=r"one entry per sample \(3\); got shape \(2,\)"):
        check_target([0, 1], 3, 2)
    with pytest.raises(InvalidParameterError, match="must be an int or an array of ints"):
        check_target(0.5, 1, 2)


def test_random_state_int_gives_fresh_identical_generators_and_generators_pass_through():
    a = check_random_state(7).normal(size=3)
    b = check_random_state(7).normal(size=3)
    np.testing.assert_array_equal(a, b)
    g = np.random.default_rng(0)
    assert check_random_state(g) is g
    with pytest.raises(InvalidParameterError, match="legacy RandomState"):
        check_random_state(np.random.RandomState(0))
    with pytest.raises(InvalidParameterError, match="non-negative int"):
        check_random_state(-1)
    with pytest.raises(InvalidParameterError, match="random_state must be an int"):
        check_random_state("seed")


def test_spawned_streams_are_reproducible_and_distinct():
    first = [g.normal() for g in spawn_generators(3, 4)]
    again = [g.normal() for g in spawn_generators(3, 4)]
    assert first == again and len(set(first)) == 4


def test_random_state_helpers_leave_global_state_untouched(rng_guard):
    check_random_state(None).normal()
    spawn_generators(None, 2)


def test_validate_params_messages():
    constraints = {
        "n_steps": [Interval(int, 1, None)],
        "rule": [Options("gausslegendre", "riemann")],
        "noise": [Interval(float, 0, 1, closed="neither")],
        "random_state": ["random_state"],
        "flag": ["boolean"],
        "cb": ["callable", None],
    }
    ok = {"n_steps": 5, "rule": "riemann", "noise": 0.5, "random_state": None, "flag": True, "cb": None}
    validate_params("IG", ok, constraints)
    cases = [
        ({"n_steps": 0}, r"IG: n_steps must be an int in \[1, inf\]; got 0\. 50 is typical"),
        ({"n_steps": 2.0}, "n_steps must be an int"),
        ({"n_steps": True}, "n_steps must be an int"),
        ({"rule": "simpson"}, "rule must be one of 'gausslegendre', 'riemann'; got 'simpson'"),
        ({"noise": 1.0}, r"noise must be a float in \(0, 1\); got 1\.0"),
        ({"noise": float("nan")}, "noise must be a float"),
        ({"random_state": -3}, "random_state must be an int >= 0"),
        ({"flag": 1}, "flag must be a bool"),
        ({"cb": 3}, "cb must be a callable or None"),
    ]
    for bad, msg in cases:
        with pytest.raises(InvalidParameterError, match=msg):
            validate_params("IG", {**ok, **bad}, constraints, hints={"n_steps": "50 is typical."})


def test_check_is_fitted():
    class Est:
        pass

    est = Est()
    with pytest.raises(NotFittedError, match=r"This Est instance is not fitted yet\. Call Est\.fit"):
        check_is_fitted(est)
    est.coef_ = 1
    check_is_fitted(est)
    with pytest.raises(NotFittedError):
        check_is_fitted(est, ["coef_", "alpha_"])


# --------------------------------------------------------------------------- ParamsMixin


def test_params_mixin_round_trips_clones_validates_and_shows_non_defaults():
    from sklearn.base import clone

    from scrutiny._validation import Interval, ParamsMixin

    class Probe(ParamsMixin):
        _constraints = {"n_steps": [Interval(int, 1, None)]}
        _hints = {"n_steps": "50 is typical."}

        def __init__(self, model=None, *, n_steps=50, name="x", weights=None):
            self.model = model
            self.n_steps = n_steps
            self.name = name
            self.weights = weights

    p = Probe("m", n_steps=3, weights=np.ones(2))
    assert p.get_params().keys() == {"model", "n_steps", "name", "weights"}
    assert repr(p) == "Probe(model='m', n_steps=3, weights=<array (2,) float64>)"
    assert repr(Probe()) == "Probe()"
    twin = clone(p)
    assert twin is not p and twin.n_steps == 3 and twin.weights is not p.weights
    np.testing.assert_array_equal(twin.weights, p.weights)
    assert p.set_params(n_steps=0) is p
    with pytest.raises(InvalidParameterError, match=r"Probe: n_steps must be an int in \[1, inf\]; got 0\. 50 is typical"):
        p._validate_params()
    with pytest.raises(InvalidParameterError, match="no parameter 'steps'.*valid parameters are model, n_steps"):
        p.set_params(steps=1)
