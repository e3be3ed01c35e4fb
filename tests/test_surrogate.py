"""DMMMEN estimator: recovery of known regimes, relabelling, diagnostics and bad input.

The sampler's conditionals and the Geweke joint-distribution test are in
``test_surrogate_sampler.py``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from scrutiny.exceptions import ConvergenceWarning, InvalidParameterError, MissingDependencyError, NotFittedError
from scrutiny.surrogate import (
    DMMMEN,
    Priors,
    chain_pool,
    apply_permutations,
    canonical_penalty_order,
    ess_bulk,
    ess_tail,
    relabel_chains,
    relabel_permutations,
    rhat,
    run_chain,
    topk_stability,
)
from scrutiny.surrogate.convergence import to_inferencedata


def simulate_regimes(n, p, seed, n_active=6):
    """Three linear regimes (the model's own generative assumption: z independent of x).

    Intercepts -6, 0, 6 and slopes of moderate size keep the regimes separable from y, so the
    Bayes classifier with the true parameters reaches ARI of about 0.99.
    """
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    B = np.zeros((3, p))
    B[:, :n_active] = rng.choice([-1.0, 1.0], size=(3, n_active)) * rng.uniform(0.3, 0.8, size=(3, n_active))
    b0 = np.array([-6.0, 0.0, 6.0])
    sd = np.array([0.3, 0.5, 0.4])
    z = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    y = np.einsum("ij,ij->i", X, B[z]) + b0[z] + sd[z] * rng.normal(size=n)
    return X, y, z, B, b0, sd


def _check_recovery(model, X, y, z, B, b0, sd, coef_tol, sd_rtol, alpha_rhat=1.05):
    assert adjusted_rand_score(z, model.labels_) >= 0.9
    for r in range(3):
        h = np.bincount(model.labels_[z == r]).argmax()  # component that took regime r
        assert np.max(np.abs(model.coef_[h] - B[r])) < coef_tol, (r, model.coef_[h] - B[r])
        assert abs(model.intercept_[h] - b0[r]) < coef_tol
        assert abs(np.sqrt(model.sigma2_[h]) / sd[r] - 1) < sd_rtol
        lo, hi = model.coef_ci_[h, :, 0], model.coef_ci_[h, :, 1]
        assert np.mean((lo <= B[r]) & (B[r] <= hi)) >= 0.8  # 95 % intervals cover the truth
    assert model.rhat_["loglik"] < 1.05, model.rhat_
    assert model.rhat_["alpha"] < alpha_rhat, model.rhat_
    occupied = model.weights_ > 0.05
    assert occupied.sum() == 3
    assert np.all(model.rhat_["pi"][occupied] < 1.05), model.rhat_["pi"]


def test_recovers_three_regimes_fast():
    X, y, z, B, b0, sd = simulate_regimes(600, 8, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # checked explicitly below
        model = DMMMEN(n_iter=1000, n_burnin=400, random_state=1).fit(X, y)
    # alpha mixes slowly (with 3 of 6 labels occupied it moves with the label order): over 8
    # seeds its R-hat after 2 x 250 draws ranged over 1.00-1.16, after 2 x 600 over 1.00-1.07
    # (the log-likelihood's stays below 1.03); the full test below holds it to 1.05
    _check_recovery(model, X, y, z, B, b0, sd, coef_tol=0.2, sd_rtol=0.2, alpha_rhat=1.1)


@pytest.mark.slow
def test_recovers_three_regimes_full():
    X, y, z, B, b0, sd = simulate_regimes(1500, 20, seed=1)
    model = DMMMEN(n_iter=2000, n_burnin=1000, random_state=2).fit(X, y)
    _check_recovery(model, X, y, z, B, b0, sd, coef_tol=0.15, sd_rtol=0.12)
    assert model.converged_
    assert np.all(model.diagnostics_["topk_jaccard"][model.weights_ > 0.05] == 1.0)
    assert np.all(model.diagnostics_["topk_jaccard_halves"][model.weights_ > 0.05] == 1.0)


# --------------------------------------------------------------------------- estimator API


@pytest.fixture(scope="module")
def small_fit():
    X, y, z, *_ = simulate_regimes(200, 4, seed=3, n_active=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = DMMMEN(n_components=4, n_iter=120, n_burnin=60, random_state=0).fit(X, y)
    return model, X, y


def test_fitted_attributes_shapes_and_predictions(small_fit):
    model, X, y = small_fit
    n, p = X.shape
    assert model.coef_.shape == (4, p) and model.coef_ci_.shape == (4, p, 2)
    assert model.weights_.shape == (4,) and model.weights_.sum() == pytest.approx(1.0)
    assert model.allocation_proba_.shape == (n, 4)
    np.testing.assert_allclose(model.allocation_proba_.sum(axis=1), 1.0)
    np.testing.assert_allclose(model.responsibilities_.sum(axis=1), 1.0)
    assert np.all(model.coef_ci_[..., 0] <= model.coef_ci_[..., 1])
    assert model.penalty_proba_.shape == (4, 3) and model.lambda1_.shape == (3,)
    for d in model.draws_:  # the K priors are ordered by lam1 / lam2 in every draw
        assert np.all(np.diff(d["lam1"] / d["lam2"], axis=1) >= 0)
    assert len(model.draws_) == 2 and model.draws_[0]["beta"].shape == (60, 4, p)
    assert model.trace_[0]["loglik"].shape == (120,)
    assert model.diagnostics_["topk_jaccard"].shape == (4,) and model.diagnostics_["topk_jaccard_halves"].shape == (4,)
    assert set(model.rhat_) >= {"loglik", "logjoint", "logjoint_occupied", "alpha", "n_occupied", "pi", "sigma2"}
    pred = model.predict(X)
    assert pred.shape == (n,) and np.all(np.isfinite(pred))
    # sum_h pi_h (b0_h + x' beta_h) over the draws, components left empty by a draw's z counted as 0
    expected = np.mean([
        ((d["pi"] * (d["z"][:, :, None] == np.arange(4)).any(axis=1))[:, None, :]
         * (X @ d["beta"].transpose(0, 2, 1) + d["intercept"][:, None, :])).sum(-1)
        for d in model.draws_
    ], axis=(0, 1))
    np.testing.assert_allclose(pred, expected, rtol=1e-10, atol=1e-10)
    labels, proba = model.predict_component(X, y)
    np.testing.assert_array_equal(labels, np.argmax(model.responsibilities_, axis=1))
    assert np.all((proba > 0) & (proba <= 1))
    assert np.mean(labels == model.labels_) > 0.95


def test_prior_draws_of_empty_components_do_not_move_the_mixture_prediction(monkeypatch):
    """coef_mixture_ (and predict) Rao-Blackwellise the empty components, and the per-component
    summaries use only the draws in which a component is occupied: replacing the empty
    components' coefficient, intercept and variance draws by huge values must change nothing
    (the raw averages would move by pi_h * 1e6, or by 1e6 times the fraction of empty draws)."""
    X, y, *_ = simulate_regimes(300, 4, seed=3, n_active=4)
    captured = {}
    summarise = DMMMEN._summarise

    def spy(self, results, *args):
        captured["results"], captured["args"] = results, args
        return summarise(self, results, *args)

    monkeypatch.setattr(DMMMEN, "_summarise", spy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = DMMMEN(n_components=6, n_iter=120, n_burnin=60, random_state=0).fit(X, y)
    before = model.coef_mixture_.copy(), model.intercept_mixture_
    names = ("coef_", "coef_ci_", "intercept_", "intercept_ci_", "sigma2_", "sigma2_ci_", "responsibilities_")
    summaries = {k: getattr(model, k).copy() for k in names}
    seen = model.occupancy_ > 0
    # some components are empty in some draws but not all: the case the summaries must handle
    assert np.any(seen & (model.occupancy_ < 1))
    n_empty = 0
    for r in captured["results"]:
        d = r.draws
        empty = ~(d["z"][:, :, None] == np.arange(6)).any(axis=1)  # (draws, J), the chain's own labels
        d["beta"][empty] = 1e6
        d["intercept"][empty] = -1e6
        d["sigma2"][empty] = 1e6
        n_empty += int(empty.sum())
    assert n_empty > 0  # six components for three regimes: some draws leave components empty
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        summarise(model, captured["results"], *captured["args"])
    np.testing.assert_allclose(model.coef_mixture_, before[0], rtol=1e-12, atol=1e-12)
    assert model.intercept_mixture_ == pytest.approx(before[1], rel=1e-12, abs=1e-12)
    for k in names[:-1]:
        np.testing.assert_allclose(getattr(model, k)[seen], summaries[k][seen], rtol=1e-12, atol=1e-12, err_msg=k)
    np.testing.assert_allclose(model.responsibilities_, summaries["responsibilities_"], rtol=1e-9, atol=1e-12)
    assert np.all(model.responsibilities_[:, ~seen] == 0)
    # a component never occupied (made so here: the heaviest) gets no responsibility and no insight
    h = int(np.argmax(model.weights_))
    model.occupancy_[h] = 0.0
    assert np.all(model.component_proba(X, y)[:, h] == 0)
    assert h not in [g.component for g in model.explain_global(k=2)]


def test_same_seed_same_fit_and_global_rng_untouched(small_fit, rng_guard):
    model, X, y = small_fit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        again = DMMMEN(n_components=4, n_iter=120, n_burnin=60, random_state=0).fit(X, y)
    np.testing.assert_array_equal(again.coef_, model.coef_)
    np.testing.assert_array_equal(again.allocation_proba_, model.allocation_proba_)


def test_sklearn_clone_and_params():
    from sklearn.base import clone

    m = DMMMEN(n_components=3, n_iter=50, random_state=4)
    c = clone(m)
    assert c.get_params() == m.get_params() and c is not m
    assert m.set_params(n_chains=3).n_chains == 3
    with pytest.raises(InvalidParameterError, match="DMMMEN has no parameter 'n_comp'"):
        m.set_params(n_comp=2)


@pytest.mark.slow
def test_parallel_chains_match_sequential_ones(small_fit):
    model, X, y = small_fit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        par = DMMMEN(n_components=4, n_iter=120, n_burnin=60, n_jobs=2, random_state=0).fit(X, y)
    np.testing.assert_array_equal(par.coef_, model.coef_)


def test_chain_pool_shares_one_process_pool_and_changes_no_result(small_fit, monkeypatch):
    """Fits inside chain_pool(2) start no process pool of their own and give the same fits."""
    import concurrent.futures

    from scrutiny.surrogate import chains

    model, X, y = small_fit
    started = []

    class Counting(concurrent.futures.ProcessPoolExecutor):
        def __init__(self, *args, **kwargs):
            started.append(kwargs.get("max_workers"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", Counting)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with chain_pool(2):
            fits = [DMMMEN(n_components=4, n_iter=120, n_burnin=60, n_jobs=2, random_state=s).fit(X, y)
                    for s in (0, 1)]
            assert chains._SHARED_POOL is not None
        assert chains._SHARED_POOL is None
        assert started == [2]  # the block's pool only, for both fits' pilots and chains
        DMMMEN(n_components=4, n_iter=120, n_burnin=60, n_jobs=2, random_state=0).fit(X, y)
    assert started == [2, 2, 2]  # outside the block a fit starts its own again (pilots, then chains)
    np.testing.assert_array_equal(fits[0].coef_, model.coef_)
    assert not np.array_equal(fits[1].coef_, model.coef_)


def test_pilot_start_continues_every_chain_from_the_best_pilot():
    X, y, *_ = simulate_regimes(600, 8, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m = DMMMEN(n_iter=60, n_burnin=30, init="pilot", n_pilots=4, random_state=0).fit(X, y)
        plain = DMMMEN(n_iter=60, n_burnin=30, init="kmeans", random_state=0).fit(X, y)
    pilots = m.pilot_loglik_
    assert pilots.shape == (4,) and np.isfinite(pilots).all() and np.unique(pilots).size == 4  # own starts
    for trace in m.trace_:  # the first sweep of every chain continues the best pilot, not a new start
        assert abs(trace["loglik"][0] - pilots.max()) < 20
    assert plain.pilot_loglik_ is None
    with pytest.raises(InvalidParameterError, match="n_pilots"):
        DMMMEN(n_pilots=0).fit(X, y)


def test_convergence_warning_on_too_short_chains():
    X, y, *_ = simulate_regimes(150, 3, seed=5, n_active=3)
    with pytest.warns(ConvergenceWarning, match="have not converged"):  # over-dispersed starts, 8 draws
        m = DMMMEN(n_iter=10, n_burnin=2, init="mixed", random_state=0).fit(X, y)
    assert m.converged_ is False


# --------------------------------------------------------------------------- n_iter="auto"


@pytest.fixture(scope="module")
def auto_data():
    X, y, *_ = simulate_regimes(300, 4, seed=0, n_active=4)
    return X, y


@pytest.fixture(scope="module")
def auto_fit(auto_data):
    X, y = auto_data
    return DMMMEN(n_components=4, n_iter="auto", max_iter=5000, random_state=0).fit(*auto_data)


def test_auto_stops_when_its_criterion_first_holds(auto_fit):
    """An easy problem converges long before the cap; the recorded check is recomputed from the traces."""
    from scrutiny.surrogate._auto import AUTO_BLOCK

    m = auto_fit
    assert m.converged_ is True and m.stop_reason_ == "converged"
    assert m.n_iter_ < 5000 and m.n_iter_ % AUTO_BLOCK == 0 and m.n_burnin_ == m.n_iter_ // 2
    assert [h["sweeps"] for h in m.auto_history_] == list(range(AUTO_BLOCK, m.n_iter_ + 1, AUTO_BLOCK))
    assert [h["converged"] for h in m.auto_history_] == [False] * (len(m.auto_history_) - 1) + [True]
    for tr in m.trace_:
        assert len(tr["loglik"]) == m.n_iter_
    for d in m.draws_:
        np.testing.assert_array_equal(d["iteration"], np.arange(m.n_burnin_, m.n_iter_))
    last = m.auto_history_[-1]
    for name in ("loglik", "logjoint_occupied"):  # the criterion on the second half of every chain
        x = np.stack([tr[name][m.n_burnin_ :] for tr in m.trace_])
        assert rhat(x) == pytest.approx(last[f"rhat_{name}"]) and rhat(x) < 1.05
        assert ess_bulk(x) == pytest.approx(last[f"ess_{name}"]) and ess_bulk(x) > 400


def test_auto_same_seed_same_draws_and_timed_out_fit_reproducible(auto_data, auto_fit):
    X, y = auto_data
    again = DMMMEN(n_components=4, n_iter="auto", max_iter=5000, random_state=0).fit(X, y)
    assert again.n_iter_ == auto_fit.n_iter_
    for a, b in zip(again.draws_, auto_fit.draws_):
        np.testing.assert_array_equal(a["beta"], b["beta"])
    np.testing.assert_array_equal(again.coef_, auto_fit.coef_)
    with pytest.warns(ConvergenceWarning, match=r"stopped by max_time after 250 sweeps.*Raise max_time"):
        timed = DMMMEN(n_components=4, n_iter="auto", max_time=1e-6, random_state=1).fit(X, y)
    assert timed.converged_ is False and timed.stop_reason_ == "max_time" and timed.n_iter_ == 250
    assert len(timed.auto_history_) == 1 and not timed.auto_history_[0]["converged"]
    # the documented rerun: no time limit, max_iter = the sweeps run
    with pytest.warns(ConvergenceWarning, match="stopped by max_iter"):
        rerun = DMMMEN(n_components=4, n_iter="auto", max_iter=timed.n_iter_, random_state=1).fit(X, y)
    np.testing.assert_array_equal(rerun.coef_, timed.coef_)
    np.testing.assert_array_equal(rerun.trace_[1]["loglik"], timed.trace_[1]["loglik"])


@pytest.mark.slow
def test_auto_independent_of_n_jobs(auto_data, auto_fit):
    par = DMMMEN(n_components=4, n_iter="auto", max_iter=5000, n_jobs=2, random_state=0).fit(*auto_data)
    assert par.n_iter_ == auto_fit.n_iter_
    np.testing.assert_array_equal(par.coef_, auto_fit.coef_)


def test_integer_n_iter_runs_the_plain_chains(auto_data):
    """An int n_iter is today's fit: each chain is one run_chain of n_iter sweeps from its start."""
    from scrutiny._validation import spawn_generators
    from scrutiny.surrogate.chains import ChainJob, run_job
    from scrutiny.surrogate.mcmc import DEFAULT_STORE
    from scrutiny.surrogate.state import Settings

    X, y = auto_data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m = DMMMEN(n_components=4, n_iter=120, n_burnin=60, init="kmeans", random_state=3).fit(X, y)
    assert (m.n_iter_, m.n_burnin_, m.stop_reason_, m.auto_history_) == (120, 60, "n_iter", None)
    for g, tr in zip(spawn_generators(3, 2), m.trace_):
        ref = run_job(ChainJob(g, X, y, m._priors(), 120, 60, 1, Settings(), "kmeans", DEFAULT_STORE))
        np.testing.assert_array_equal(ref.trace["loglik"], tr["loglik"])


def test_auto_params_contract():
    from sklearn.base import clone

    m = DMMMEN(n_iter="auto", max_time=30.0, max_iter=900, random_state=2)
    c = clone(m)
    assert c.get_params() == m.get_params() and c.get_params()["n_iter"] == "auto" and c.max_time == 30.0
    assert "n_iter='auto'" in repr(m) and "max_time=30.0" in repr(m)
    X = np.random.default_rng(0).normal(size=(20, 3))
    for bad, match in (({"n_iter": "fast"}, r"n_iter must be .*'auto'.*got 'fast'"),
                       ({"max_time": 0}, "max_time must be a float in"),
                       ({"max_iter": 2}, r"max_iter must be an int in \[8, inf\]")):
        with pytest.raises(InvalidParameterError, match=match):
            DMMMEN(**{"n_iter": "auto", **bad}).fit(X, X[:, 0])


# --------------------------------------------------------------------------- bad input and edge cases


def test_refuses_non_finite_responses():
    X = np.random.default_rng(0).normal(size=(20, 3))
    y = X[:, 0].copy()
    y[4] = np.nan
    with pytest.raises(InvalidParameterError, match=r"y contains 1 non-finite response\(s\) \(first: NaN at index 4\).*clip"):
        DMMMEN(n_iter=10, n_burnin=2).fit(X, y)
    y[4] = np.inf
    with pytest.raises(InvalidParameterError, match=r"first: inf at index 4"):
        DMMMEN(n_iter=10, n_burnin=2).fit(X, y)
    X[1, 1] = np.nan
    with pytest.raises(InvalidParameterError, match="X contains 1 non-finite"):
        DMMMEN(n_iter=10, n_burnin=2).fit(X, np.arange(20.0))


def test_refuses_constant_responses():
    X = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(InvalidParameterError, match=r"y is constant \(every response equals 2.5\); there is nothing to explain"):
        DMMMEN(n_iter=10, n_burnin=2).fit(X, np.full(20, 2.5))


def test_refuses_bad_shapes_and_parameters():
    X = np.random.default_rng(0).normal(size=(20, 3))
    y = X[:, 0]
    with pytest.raises(InvalidParameterError, match="X and y must have the same number of samples; got X with 20 rows and y with 19"):
        DMMMEN(n_iter=10, n_burnin=2).fit(X, y[:-1])
    with pytest.raises(InvalidParameterError, match=r"one response per sample.*logits\[:, c\]"):
        DMMMEN(n_iter=10, n_burnin=2).fit(X, np.column_stack([y, y]))
    with pytest.raises(InvalidParameterError, match=r"DMMMEN: n_components must be an int in \[1, inf\]; got 0"):
        DMMMEN(n_components=0).fit(X, y)
    with pytest.raises(InvalidParameterError, match="sigma2_shape must be a float in"):
        DMMMEN(sigma2_shape=-1.0).fit(X, y)
    with pytest.raises(InvalidParameterError, match="n_burnin must be smaller than n_iter; got n_burnin=10, n_iter=10"):
        DMMMEN(n_iter=10, n_burnin=10).fit(X, y)
    with pytest.raises(InvalidParameterError, match="at least 4 stored draws"):
        DMMMEN(n_iter=10, n_burnin=8).fit(X, y)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        DMMMEN().predict(X)


def test_predict_checks_feature_count(small_fit):
    model, X, y = small_fit
    with pytest.raises(InvalidParameterError, match="X has 3 features, but this DMMMEN was fitted with 4"):
        model.predict(X[:, :3])
    with pytest.raises(InvalidParameterError, match=r"response must have shape \(200\)"):
        model.predict_component(X, y[:5])


def test_more_features_than_samples():
    rng = np.random.default_rng(6)
    n, p = 25, 60
    X = rng.normal(size=(n, p))
    beta = np.zeros(p)
    beta[:3] = [2.0, -1.5, 1.0]
    y = X @ beta + 0.1 * rng.normal(size=n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m = DMMMEN(n_components=2, n_iter=400, n_burnin=200, random_state=0).fit(X, y)
    # every component has n_j < d = 61 here, so every beta update used the Bhattacharya et al. sampler
    assert m.coef_.shape == (2, p) and np.all(np.isfinite(m.coef_))
    h = int(np.argmax(m.weights_))
    top = np.argsort(-np.abs(m.coef_[h]))[:3]
    assert set(top.tolist()) == {0, 1, 2}
    assert np.corrcoef(m.predict(X), y)[0, 1] > 0.8


def test_single_component_is_a_bayesian_elastic_net_regression():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(300, 5))
    beta = np.array([1.0, -2.0, 0.0, 0.5, 0.0])
    y = X @ beta + 3.0 + 0.5 * rng.normal(size=300)
    m = DMMMEN(n_components=1, n_iter=400, n_burnin=200, random_state=0).fit(X, y)
    assert m.weights_.tolist() == [1.0]
    np.testing.assert_array_equal(m.labels_, 0)
    ols = np.linalg.lstsq(np.column_stack([np.ones(300), X]), y, rcond=None)[0]
    np.testing.assert_allclose(m.coef_[0], ols[1:], atol=0.05)  # weak shrinkage at n = 300
    assert m.intercept_[0] == pytest.approx(ols[0], abs=0.05)
    assert np.sqrt(m.sigma2_[0]) == pytest.approx(0.5, rel=0.1)
    np.testing.assert_allclose(m.predict(X), X @ m.coef_[0] + m.intercept_[0], rtol=1e-6, atol=1e-6)
    assert m.rhat_["loglik"] < 1.05


def test_without_intercept():
    rng = np.random.default_rng(8)
    X = rng.normal(size=(150, 3))
    y = X @ [1.0, 2.0, -1.0] + 0.2 * rng.normal(size=150)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m = DMMMEN(n_components=2, n_iter=100, n_burnin=50, fit_intercept=False, random_state=0).fit(X, y)
    np.testing.assert_array_equal(m.intercept_, 0.0)
    h = int(np.argmax(m.weights_))
    np.testing.assert_allclose(m.coef_[h], [1.0, 2.0, -1.0], atol=0.1)


# --------------------------------------------------------------------------- relabelling


def _short_chains(n_chains=2, J=4, seed=9):
    X, y, *_ = simulate_regimes(120, 3, seed=seed, n_active=3)
    rngs = np.random.default_rng(seed).spawn(n_chains)
    return [run_chain(g, X, y, Priors(n_components=J), n_iter=40, n_burnin=20).draws for g in rngs], X, y


def test_relabelling_undoes_a_known_permutation_of_a_chain():
    (a, _), X, y = _short_chains()
    T, J = a["pi"].shape
    rng = np.random.default_rng(0)
    perms = np.stack([rng.permutation(J) for _ in range(T)])  # includes non-involutions (cycles)
    assert any(not np.array_equal(pm[pm], np.arange(J)) for pm in perms)
    b = apply_permutations(a, perms)
    # b's new label h holds a's component perms[t, h]: check the direction on pi and z
    np.testing.assert_array_equal(b["pi"][0], a["pi"][0][perms[0]])
    np.testing.assert_array_equal(perms[0][b["z"][0]], a["z"][0])
    out = relabel_chains([a, b], X, y, reference=(0, T - 1), n_refine=0)
    for key in ("pi", "beta", "intercept", "sigma2", "c", "counts", "z"):
        np.testing.assert_array_equal(out.draws[1][key], out.draws[0][key], err_msg=key)
    # composing: relabelling b recovers the inverse of the known permutation (up to a's own relabelling)
    for t in range(T):
        np.testing.assert_array_equal(perms[t][out.perms[1][t]], out.perms[0][t])
    # the same with each draw classified by its own parameters instead of its sampled z
    out_map = relabel_chains([a, b], X, y, reference=(0, T - 1), classification="map", n_refine=0)
    np.testing.assert_array_equal(out_map.draws[1]["beta"], out_map.draws[0]["beta"])
    with pytest.raises(InvalidParameterError, match="classification must be 'sampled' or 'map'"):
        relabel_chains([a, b], X, y, classification="argmax")


def test_relabel_permutations_direction_and_empty_components():
    ref = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    rho = np.array([2, 0, 1, 3, 4, 5])  # new label h takes old component rho[h]; J = 6, three empty
    inv = np.argsort(rho)
    z_old = rho[ref]  # the draw labels reference cluster h as rho[h]
    perms = relabel_permutations(z_old[None, :], ref, 6)
    np.testing.assert_array_equal(perms[0][:3], rho[:3])
    np.testing.assert_array_equal(perms[0][3:], [3, 4, 5])  # ties keep the draw's own labels
    relabelled = apply_permutations({"z": z_old[None, :].astype(np.int8)}, perms)
    np.testing.assert_array_equal(relabelled["z"][0], ref)
    np.testing.assert_array_equal(inv[z_old], ref)  # z <- rho^-1(z); applying rho would be wrong:
    assert not np.array_equal(rho[z_old], ref)


def test_canonical_penalty_order_keeps_c_consistent():
    rng = np.random.default_rng(1)
    T, J, K = 5, 4, 3
    d = {"lam1": rng.gamma(2, size=(T, K)), "lam2": rng.gamma(2, size=(T, K)), "w": rng.dirichlet(np.ones(K), T),
         "c": rng.integers(K, size=(T, J))}
    out = canonical_penalty_order(d)
    assert np.all(np.diff(out["lam1"] / out["lam2"], axis=1) >= 0)
    t = np.arange(T)[:, None]
    np.testing.assert_array_equal(out["lam1"][t, out["c"]], d["lam1"][t, d["c"]])
    np.testing.assert_array_equal(out["w"][t, out["c"]], d["w"][t, d["c"]])


# --------------------------------------------------------------------------- diagnostics


def test_rhat_and_ess_against_known_cases():
    rng = np.random.default_rng(2)
    iid = rng.normal(size=(4, 1000))
    assert rhat(iid) < 1.01
    assert ess_bulk(iid) == pytest.approx(4000, rel=0.15)
    assert ess_tail(iid) == pytest.approx(4000, rel=0.25)
    shifted = iid + np.array([0, 0, 0, 1.0])[:, None]
    assert rhat(shifted) > 1.1
    scaled = iid * np.array([1, 1, 1, 3.0])[:, None]  # same location: only the folded R-hat sees it
    assert rhat(scaled) > 1.05
    rho = 0.9
    ar = np.empty((4, 4000))
    ar[:, 0] = rng.normal(size=4) / np.sqrt(1 - rho**2)
    for t in range(1, 4000):
        ar[:, t] = rho * ar[:, t - 1] + rng.normal(size=4)
    assert ess_bulk(ar) == pytest.approx(16000 * (1 - rho) / (1 + rho), rel=0.25)
    assert rhat(np.full((2, 10), 3.0)) == 1.0
    assert rhat(np.stack([np.zeros(10), np.ones(10)])) == np.inf
    assert rhat(iid[:, :, None].repeat(2, axis=2)).shape == (2,)
    with pytest.raises(InvalidParameterError, match=r"shape \(n_chains, n_draws, \.\.\.\)"):
        rhat(np.ones(10))


def test_diagnostics_agree_with_arviz_when_installed():
    az = pytest.importorskip("arviz")
    rng = np.random.default_rng(3)
    x = np.cumsum(rng.normal(size=(3, 500)), axis=1) * 0.05 + rng.normal(size=(3, 500))
    assert rhat(x) == pytest.approx(float(az.rhat(x, method="rank")), rel=1e-8)
    assert ess_bulk(x) == pytest.approx(float(az.ess(x, method="bulk")), rel=1e-8)
    assert ess_tail(x) == pytest.approx(float(az.ess(x, method="tail")), rel=1e-8)


def test_diagnostics_of_many_quantities_equal_their_one_at_a_time_values():
    """rhat / ess_* rank and diagnose every column at once; each column must get exactly what
    it gets alone (a constant column: R-hat 1; a column with a NaN: NaN)."""
    rng = np.random.default_rng(4)
    x = np.empty((3, 200, 2, 3))
    x[..., 0, 0] = np.cumsum(rng.normal(size=(3, 200)), axis=1)
    x[..., 0, 1] = rng.normal(size=(3, 200)) + np.array([0.0, 0.0, 0.5])[:, None]
    x[..., 0, 2] = rng.poisson(2.0, size=(3, 200))  # ties
    x[..., 1, 0] = 7.0
    x[..., 1, 1] = rng.normal(size=(3, 200))
    x[0, 5, 1, 1] = np.nan
    x[..., 1, 2] = rng.normal(size=(3, 200)) * np.array([1.0, 1.0, 3.0])[:, None]
    for fn in (rhat, ess_bulk, ess_tail):
        together = fn(x)
        assert together.shape == (2, 3)
        alone = np.array([[fn(x[..., i, j]) for j in range(3)] for i in range(2)])
        np.testing.assert_allclose(together, alone, rtol=1e-12)
    assert rhat(x)[1, 0] == 1.0 and np.isnan(rhat(x)[1, 1]) and np.isnan(ess_bulk(x)[1, 1])


def test_topk_stability_and_inferencedata():
    a = np.array([[5.0, -4.0, 3.0, 0.1, 0.0]])
    assert topk_stability(np.stack([a, a]), 2).tolist() == [1.0]
    b = np.array([[0.0, 0.1, 3.0, -4.0, 5.0]])
    assert topk_stability(np.stack([a, b]), 2).tolist() == [0.0]
    assert topk_stability(np.stack([a, b]), 3).tolist() == [pytest.approx(0.2)]  # {0,1,2} vs {4,3,2}
    with pytest.raises(InvalidParameterError, match=r"k must be an int in \[1, 5\]"):
        topk_stability(np.stack([a, b]), 6)
    try:
        import arviz  # noqa: F401
    except ImportError:
        with pytest.raises(MissingDependencyError, match="pip install arviz"):
            to_inferencedata([{"alpha": np.zeros(5)}])
