"""DMM-MEN sampler: every conditional against brute force, and the Geweke joint-distribution test.

Oracles used here, best first:

* Geweke's (2004) "getting it right" test: the successive-conditional simulator (one sweep of
  the sampler, then a fresh ``y ~ p(y | params)``) must have the prior as its stationary law,
  exactly what the marginal-conditional simulator (params from the prior, y from the likelihood)
  draws. A wrong conditional anywhere in the sweep breaks this (dropping the ``Phi^-p`` factor
  of the ``sigma2`` conditional gives |z| > 10 at 8,000 sweeps; checked by hand, see
  ``test_geweke_detects_a_dropped_phi_term``).
* Each conditional against the normalised ``exp(log_joint)`` on a grid, where ``log_joint`` is
  itself checked against an independent scipy.stats computation with a quadrature normaliser.
* Closed forms: the elastic-net normaliser by quadrature; the Gaussian posterior of beta.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest
from scipy import integrate, stats

from scrutiny.surrogate import _penalties as PEN
from scrutiny.surrogate import _regression as REG
from scrutiny.surrogate import conditionals as C
from scrutiny.surrogate._math import (
    en_log_norm,
    en_log_norm1,
    kmeans,
    log_erfcx,
    rinvgauss,
    rng_random,
    rng_state,
    slice_loop,
    slice_sample,
)
from scrutiny.surrogate.conditionals import Priors, Settings, make_data
from scrutiny.surrogate.conditionals import prior_xi
from scrutiny.surrogate.mcmc import init, run_chain, sample_prior, sample_y, step, with_data

# moderately informative priors with finite moments: the Geweke test compares means
GEWEKE_PRIORS = Priors(
    n_components=2, n_priors=2, alpha_shape=2.0, alpha_rate=1.0, sigma2_shape=3.0, sigma2_scale=2.0,
    lam1_shape=2.0, lam2_shape=3.0, lam_v=2.0, intercept_scale=2.0,
)


def _ks_against_cdf(draws, grid, density):
    """KS p-value of ``draws`` against the distribution with (unnormalised) ``density`` on ``grid``."""
    cdf = integrate.cumulative_trapezoid(density, grid, initial=0.0)
    cdf /= cdf[-1]
    return stats.kstest(draws, lambda x: np.interp(x, grid, cdf)).pvalue


def _small_state(seed=0, n=8, p=3, J=1, priors=None):
    """A consistent state on a small simulated data set (after a few sweeps)."""
    priors = priors or Priors(n_components=J, n_priors=2)
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    y = X @ rng.normal(size=p) + 0.5 * rng.normal(size=n)
    data = make_data(X, y, priors)
    state = init(rng, X, y, priors)
    for _ in range(5):
        state, _ = step(rng, state, data, priors)
    return state, data, priors


# --------------------------------------------------------------------------- closed forms


@pytest.mark.parametrize("lam1,lam2,sigma2", [(1.0, 4.0, 1.0), (2.0, 0.5, 0.3), (50.0, 0.1, 0.01), (1e-6, 2.0, 5.0)])
def test_en_normaliser_matches_quadrature(lam1, lam2, sigma2):
    # log of 2 * int_0^inf exp(-(lam1 b + lam2 b^2) / (2 sigma2)) db, scaled to avoid underflow
    scale = 2.0 * sigma2 / (lam1 + np.sqrt(lam2 * sigma2))
    val, _ = integrate.quad(lambda u: np.exp(-(lam1 * u * scale + lam2 * (u * scale) ** 2) / (2 * sigma2)), 0, np.inf)
    expected = np.log(2.0 * val * scale)
    assert en_log_norm(lam1, lam2, sigma2) == pytest.approx(expected, rel=1e-9, abs=1e-9)
    # the scalar form used inside the slice targets
    assert en_log_norm1(lam1, lam2, sigma2) == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_scalar_and_vectorised_penalty_targets_agree():
    """The switch moves evaluate own_lambda_log_target and the Student-t proposal on floats."""
    priors = Priors()
    u1, u2 = np.array([-2.0, 0.5, 3.0]), np.array([1.0, -1.5, 0.2])
    vec = C.own_lambda_log_target(u1, u2, 4.0, 2.5, 30, 0.7, priors)
    for i in range(3):
        assert C.own_lambda_log_target(float(u1[i]), float(u2[i]), 4.0, 2.5, 30, 0.7, priors) == pytest.approx(
            vec[i], rel=1e-12)
    chol = np.linalg.cholesky(np.array([[0.5, 0.2], [0.2, 0.3]]))
    mode = np.array([0.3, -1.0])
    ref = stats.multivariate_t(loc=mode, shape=chol @ chol.T, df=PEN._T_DF).logpdf([1.1, -0.4])
    assert PEN._t_logpdf((1.1, -0.4), mode, chol) == pytest.approx(ref, rel=1e-12)


def test_prior_switch_proposals_sit_at_the_mode_with_the_inflated_laplace_scale():
    """The compiled proposal search: its location maximises own_lambda_log_target (checked with
    scipy's optimiser on the vectorised form) and its scale is the inverse negative Hessian there
    (by finite differences) times _T_INFLATE^2."""
    from scipy.optimize import minimize

    priors = Priors()
    l1, l2, sig2, p = np.array([4.0, 40.0, 0.3]), np.array([2.5, 30.0, 0.01]), np.array([0.7, 2.0, 0.05]), 30
    mode, chol = C.lambda_proposals(l1, l2, p, sig2, priors)
    for j in range(3):
        f = lambda u: -C.own_lambda_log_target(u[0], u[1], l1[j], l2[j], p, sig2[j], priors)  # noqa: E731
        ref = minimize(f, mode[j] + 0.5, method="Nelder-Mead", options={"xatol": 1e-9, "fatol": 1e-12}).x
        np.testing.assert_allclose(mode[j], ref, atol=1e-4)
        h = 1e-3
        H = np.empty((2, 2))
        for a in range(2):
            for b in range(2):
                ea, eb = np.eye(2)[a] * h, np.eye(2)[b] * h
                H[a, b] = (f(ref + ea + eb) - f(ref + ea - eb) - f(ref - ea + eb) + f(ref - ea - eb)) / (4 * h * h)
        np.testing.assert_allclose(chol[j] @ chol[j].T, np.linalg.inv(H) * PEN._T_INFLATE**2, rtol=1e-3)


def test_log_joint_matches_independent_scipy_computation():
    state, data, priors = _small_state(seed=3, n=10, p=3, J=3)
    J, p = state.beta.shape
    lp = 0.0
    mean = data.X @ state.beta.T + state.intercept
    for i in range(data.n):
        j = state.z[i]
        lp += stats.norm.logpdf(data.y[i], mean[i, j], np.sqrt(state.sigma2[j])) + state.log_pi[j]
    u = -np.expm1(state.log1m_u[:-1])
    lp += stats.beta.logpdf(u, 1.0, state.alpha).sum()
    lp += stats.gamma.logpdf(state.alpha, priors.alpha_shape, scale=1.0 / priors.alpha_rate)
    lp += stats.invgamma.logpdf(state.sigma2, priors.sigma2_shape, scale=priors.sigma2_scale).sum()
    lp += stats.norm.logpdf(state.intercept, 0.0, priors.intercept_scale).sum()
    for j in range(J):
        l1, l2, s2 = state.lam1[state.c[j]], state.lam2[state.c[j]], state.sigma2[j]
        Z = integrate.quad(lambda b: np.exp(-(l1 * abs(b) + l2 * b * b) / (2 * s2)), -np.inf, np.inf)[0]
        lp += np.sum(-(l1 * np.abs(state.beta[j]) + l2 * state.beta[j] ** 2) / (2 * s2) - np.log(Z))
    lp += np.log(state.w[state.c]).sum()
    lp += stats.dirichlet.logpdf(state.w, np.full(priors.n_priors, priors.alpha_e))
    rate = priors.lam_rate
    lp += stats.gamma.logpdf(state.lam1, priors.lam1_shape, scale=1 / rate).sum()
    lp += stats.gamma.logpdf(state.lam2, priors.lam2_shape, scale=1 / rate).sum()
    assert C.log_joint(state, data, priors) == pytest.approx(lp, rel=1e-8)


# --------------------------------------------------------------------------- tau / xi


@pytest.mark.parametrize("beta", [0.3, 2.0, 1e-9, 0.0])
def test_tau_draws_follow_their_full_conditional(beta):
    lam1, lam2, sigma2 = 2.0, 3.0, 0.5
    rng = np.random.default_rng(1)
    N = 40000
    xi = C.sample_xi(rng, np.full((1, N), beta), np.array([sigma2]), np.array([0]), np.array([lam1]), np.array([lam2]))
    theta = lam1**2 / (8 * lam2 * sigma2)
    # p(tau | beta) prop. to N(beta | 0, sigma2 (1 - tau) / lam2) InvGamma(tau | 1/2, theta) on (0, 1), written on
    # the logit scale u = log(tau / (1 - tau)) (Jacobian tau (1 - tau)) so that a grid resolves tau -> 1
    u = np.linspace(-30, 80, 400001)
    log_tau, log1m_tau = -np.logaddexp(0, -u), -np.logaddexp(0, u)
    logd = (-0.5 * log1m_tau - lam2 * beta**2 / (2 * sigma2) * np.exp(-log1m_tau) - 1.5 * log_tau
            - theta * np.exp(-log_tau) + log_tau + log1m_tau)
    assert _ks_against_cdf(np.log(xi[0]), u, np.exp(logd - logd.max())) > 1e-3


def test_rinvgauss_matches_scipy_and_levy_limit():
    rng = np.random.default_rng(2)
    for mean, shape in [(0.5, 2.0), (3.0, 0.2), (1e3, 1.0)]:
        x = rinvgauss(rng, np.full(20000, mean), np.full(20000, shape))
        assert stats.kstest(x, stats.invgauss(mu=mean / shape, scale=shape).cdf).pvalue > 1e-3
    x = rinvgauss(rng, np.full(20000, 1e12), np.full(20000, 0.7))  # ~ Levy(0, 0.7)
    assert stats.kstest(x, stats.levy(scale=0.7).cdf).pvalue > 1e-3
    x = rinvgauss(rng, np.full(20000, np.inf), np.full(20000, 0.7))
    assert np.all(np.isfinite(x)) and stats.kstest(x, stats.levy(scale=0.7).cdf).pvalue > 1e-3


def test_prior_hierarchy_integrates_to_the_elastic_net():
    """tau ~ truncated IG(1/2, theta), beta | tau ~ N(0, sigma2 (1 - tau) / lam2) gives EN(beta)."""
    lam1, lam2, sigma2 = 3.0, 2.0, 0.7
    rng = np.random.default_rng(4)
    N = 40000
    theta = np.full(N, lam1**2 / (8 * lam2 * sigma2))
    xi = prior_xi(rng, theta)
    tau = xi / (1 + xi)
    trunc = stats.invgamma(0.5, scale=theta[0])
    grid_t = np.linspace(1e-6, 1 - 1e-12, 100001)
    assert _ks_against_cdf(tau, grid_t, trunc.pdf(grid_t)) > 1e-3
    beta = rng.standard_normal(N) * np.sqrt(sigma2 / (lam2 * (1 + xi)))
    grid = np.linspace(-8, 8, 200001)
    assert _ks_against_cdf(beta, grid, np.exp(-(lam1 * np.abs(grid) + lam2 * grid**2) / (2 * sigma2))) > 1e-3


# --------------------------------------------------------------------------- collapsed conditionals


def _replicate(state, J_new, c=None):
    """State with component 0 copied J_new times (for many parallel chains of one conditional)."""
    rep = lambda a: np.repeat(a[:1], J_new, axis=0)  # noqa: E731
    return state._replace(
        beta=rep(state.beta), intercept=rep(state.intercept), sigma2=rep(state.sigma2), xi=rep(state.xi),
        c=rep(state.c) if c is None else c, counts=rep(state.counts),
    )


def _sigma2_kernel_without_phi():
    """``sample_sigma2``'s compiled kernel with a target that lacks ``Phi^-p`` (the mutation the
    conditional tests must catch): the exact target plus ``p log Phi(-lam1 / (2 sigma sqrt(lam2)))``."""
    exact = C.sigma2_log_target

    @numba.njit(error_model="numpy")
    def element(j, x, args):
        n, rss, l1, l2, p, lam1, lam2, a, b = args
        t = lam1[j] / (2.0 * math.exp(0.5 * x) * math.sqrt(lam2[j]))
        log_phi = math.log(0.5 * math.erfc(t / math.sqrt(2.0)))
        return exact(x, n[j], rss[j], l1[j], l2[j], p, lam1[j], lam2[j], a, b) + p * log_phi

    @numba.njit(error_model="numpy")
    def kernel(seed, x0, width, max_steps, args):
        x = x0.copy()
        return x, slice_loop(element, args, rng_state(seed), x, width, max_steps)

    return kernel


def test_sigma2_update_leaves_the_brute_force_conditional_invariant(monkeypatch):
    state, data, priors = _small_state(seed=5)
    # lam1 large enough that Phi^-p matters (lam1 / (2 sigma sqrt(lam2)) about 0.9 instead of
    # 0.09): the mutation below is then detected with p ~ 1e-75 for any stream, not by luck
    state = state._replace(lam1=state.lam1 * 10.0)
    grid = np.exp(np.linspace(np.log(state.sigma2[0]) - 6, np.log(state.sigma2[0]) + 6, 4001))
    logp = np.array([C.log_joint(state._replace(sigma2=np.array([s])), data, priors) for s in grid])
    dens = np.exp(logp - logp.max())
    cdf = integrate.cumulative_trapezoid(dens, grid, initial=0.0)
    cdf /= cdf[-1]
    rng = np.random.default_rng(6)
    M = 4000
    start = np.interp(rng.random(M), cdf, grid)  # exact draws from the brute-force conditional
    rep = _replicate(state, M)._replace(sigma2=start)
    rss = np.full(M, np.sum((data.y - state.fitted[:, 0]) ** 2))
    s2 = start
    for _ in range(3):
        s2, _ = C.sample_sigma2(rng, rep._replace(sigma2=s2), rep.beta, rss, rep.c, state.lam1, state.lam2, priors, Settings())
    assert stats.kstest(s2, lambda x: np.interp(x, grid, cdf)).pvalue > 1e-3
    # and the test has power: the same check fails for a sampler whose target lacks Phi^-p
    bad = start
    monkeypatch.setattr(REG, "_sigma2_kernel", _sigma2_kernel_without_phi())
    for _ in range(20):
        bad, _ = C.sample_sigma2(rng, rep._replace(sigma2=bad), rep.beta, rss, rep.c, state.lam1, state.lam2, priors, Settings())
    assert stats.kstest(bad, lambda x: np.interp(x, grid, cdf)).pvalue < 1e-6


def test_lambda_update_leaves_the_brute_force_conditional_invariant():
    state, data, priors = _small_state(seed=7)
    k = state.c[0]
    a1 = np.linspace(np.log(state.lam1[k]) - 4.5, np.log(state.lam1[k]) + 4.5, 151)
    a2 = np.linspace(np.log(state.lam2[k]) - 4.5, np.log(state.lam2[k]) + 4.5, 151)
    logp = np.empty((a1.size, a2.size))
    for i, u in enumerate(a1):
        for j, v in enumerate(a2):
            l1, l2 = state.lam1.copy(), state.lam2.copy()
            l1[k], l2[k] = np.exp(u), np.exp(v)
            logp[i, j] = C.log_joint(state._replace(lam1=l1, lam2=l2), data, priors) + u + v  # log-scale density
    P = np.exp(logp - logp.max())
    P /= P.sum()
    rng = np.random.default_rng(8)
    M = 3000
    cell = rng.choice(P.size, size=M, p=P.ravel())
    h1, h2 = a1[1] - a1[0], a2[1] - a2[0]
    s1 = a1[cell // a2.size] + h1 * (rng.random(M) - 0.5)
    s2 = a2[cell % a2.size] + h2 * (rng.random(M) - 0.5)
    pri = priors._replace(n_priors=M)
    rep = _replicate(state, M, c=np.arange(M))._replace(lam1=np.exp(s1), lam2=np.exp(s2))
    for _ in range(3):
        l1, l2, _ = C.sample_lambda(rng, rep, rep.beta, rep.sigma2, rep.c, pri, Settings())
        rep = rep._replace(lam1=l1, lam2=l2)
    m1, m2 = P.sum(axis=1), P.sum(axis=0)
    cdf1 = lambda x: np.interp(x, a1 + h1 / 2, np.cumsum(m1))  # noqa: E731
    cdf2 = lambda x: np.interp(x, a2 + h2 / 2, np.cumsum(m2))  # noqa: E731
    assert stats.kstest(np.log(rep.lam1), cdf1).pvalue > 1e-3
    assert stats.kstest(np.log(rep.lam2), cdf2).pvalue > 1e-3


def test_c_conditional_matches_log_joint_and_sampler_frequencies():
    priors = Priors(n_components=2, n_priors=3)
    state, data, _ = _small_state(seed=9, J=2, priors=priors)
    state = state._replace(lam1=np.array([0.5, 3.0, 8.0]), lam2=np.array([6.0, 1.0, 0.3]), w=np.array([0.2, 0.5, 0.3]))
    logp = C.c_log_probs(state.beta, state.sigma2, state.lam1, state.lam2, state.w)
    for j in range(2):
        lj = []
        for k in range(3):
            c = state.c.copy()
            c[j] = k
            lj.append(C.log_joint(state._replace(c=c), data, priors))
        lj = np.array(lj)
        np.testing.assert_allclose(np.exp(logp[j]), np.exp(lj - np.logaddexp.reduce(lj)), rtol=1e-9)
    rng = np.random.default_rng(10)
    draws = np.array([C.sample_c(rng, state.beta, state.sigma2, state.lam1, state.lam2, state.w) for _ in range(20000)])
    for j in range(2):
        freq = np.bincount(draws[:, j], minlength=3) / 20000
        se = np.sqrt(np.exp(logp[j]) * (1 - np.exp(logp[j])) / 20000) + 1e-12
        assert np.all(np.abs(freq - np.exp(logp[j])) < 4.5 * se + 1e-4)


@pytest.mark.parametrize("n_j,p", [(30, 4), (5, 8), (0, 3)])
@pytest.mark.parametrize("solver", ["cholesky", "compiled", "bhattacharya"])
def test_beta_samplers_match_the_exact_gaussian_posterior(n_j, p, solver):
    rng = np.random.default_rng(11)
    d = p + 1
    D = np.column_stack([np.ones(n_j), rng.normal(size=(n_j, p))])
    yj = D @ rng.normal(size=d) + 0.3 * rng.normal(size=n_j)
    pen = np.concatenate([[0.02], rng.uniform(0.5, 3.0, p)])
    sigma2 = 0.7
    A = D.T @ D + np.diag(pen)
    cov = sigma2 * np.linalg.inv(A)
    mu = np.linalg.solve(A, D.T @ yj)
    N = 20000
    if solver == "cholesky":
        draws = np.array([REG._draw_cholesky(rng, D.T @ D, D.T @ yj, pen, sigma2) for _ in range(N)])
    elif solver == "compiled":  # the small-d path of sample_beta: N copies as N components
        draws = np.empty((N, d))
        done = REG._draw_cholesky_small(np.broadcast_to(D.T @ D, (N, d, d)), np.broadcast_to(D.T @ yj, (N, d)),
                                      np.broadcast_to(pen, (N, d)), np.full(N, sigma2), rng.standard_normal((N, d)),
                                      np.ones(N, dtype=bool), draws)
        assert done.all()
    else:
        draws = np.array([REG._draw_bhattacharya(rng, D, yj, pen, sigma2) for _ in range(N)])
    z = (draws.mean(axis=0) - mu) / np.sqrt(np.diag(cov) / N)
    assert np.all(np.abs(z) < 4.5)
    emp = np.cov(draws.T)
    sd = np.sqrt(np.diag(cov))
    assert np.max(np.abs(emp - cov) / np.outer(sd, sd)) < 0.05  # correlation-scale error, se ~ 0.01


def test_sticks_alpha_and_slice_sampler():
    rng = np.random.default_rng(12)
    counts = np.array([5, 0, 3, 0])
    draws = [C.sample_sticks(rng, counts, 1.5) for _ in range(20000)]
    log_pi = np.array([d[0] for d in draws])
    np.testing.assert_allclose(np.logaddexp.reduce(log_pi, axis=1), 0.0, atol=1e-12)
    u1 = np.exp(log_pi[:, 0])
    assert stats.kstest(u1, stats.beta(1 + 5, 1.5 + 3).cdf).pvalue > 1e-3
    # alpha | u: Gamma(e + J - 1, f - sum log(1 - u)), here against a grid of the brute-force density
    log1m_u = draws[0][1]
    pri = Priors(n_components=4, alpha_shape=2.0, alpha_rate=0.5)
    a = np.array([C.sample_alpha(rng, log1m_u, pri) for _ in range(20000)])
    grid = np.linspace(1e-6, 40, 40001)
    logd = stats.gamma.logpdf(grid, 2.0, scale=2.0) + sum(
        stats.beta.logpdf(-np.expm1(l), 1.0, grid) for l in log1m_u[:-1]
    )
    assert _ks_against_cdf(a, grid, np.exp(logd - logd.max())) > 1e-3
    # the slice sampler keeps N(0,1) and Gamma(3) invariant, from exact starts (math.log(0) and
    # below: outside the support)
    x = rng.standard_normal(5000)
    g = rng.gamma(3.0, size=5000)
    normal = numba.njit(lambda i, v, args: -0.5 * v * v)
    gamma3 = numba.njit(error_model="numpy")(lambda i, v, args: 2 * math.log(v) - v)
    for _ in range(3):
        x, _ = slice_sample(rng, x, normal, 1.0)
        g, _ = slice_sample(rng, g, gamma3, 0.5)
    assert stats.kstest(x, "norm").pvalue > 1e-3
    assert stats.kstest(g, stats.gamma(3.0).cdf).pvalue > 1e-3
    # +inf and NaN are outside the support too (no target has a pole; an overflow must not be
    # taken): N(0, 1) with +inf on (0.3, 0.5) and NaN on (0.5, 0.7) is N(0, 1) without (0.3, 0.7)
    holed = numba.njit(error_model="numpy")(
        lambda i, v, args: math.inf if 0.3 < v < 0.5 else (math.nan if 0.5 <= v < 0.7 else -0.5 * v * v)
    )
    x = rng.standard_normal(20000)
    x = x[(x <= 0.3) | (x >= 0.7)][:5000]  # exact draws of the holed target
    for _ in range(3):
        x, _ = slice_sample(rng, x, holed, 1.0)
    assert not np.any((x > 0.3) & (x < 0.7))
    lo, hi = stats.norm.cdf(0.3), stats.norm.cdf(0.7)
    holed_cdf = lambda v: np.where(v <= 0.3, stats.norm.cdf(v), np.where(v < 0.7, lo, stats.norm.cdf(v) - (hi - lo))) / (
        1 - (hi - lo))  # noqa: E731
    assert stats.kstest(x, holed_cdf).pvalue > 1e-3


def test_compiled_uniforms_are_uniform_and_independent_across_seeds():
    """The xoshiro256** stream behind the compiled slice loops: uniform on [0, 1), serially
    uncorrelated, and distinct for neighbouring seeds."""
    s = rng_state(np.uint64(12345))
    u = np.array([rng_random(s) for _ in range(20000)])
    assert u.min() >= 0.0 and u.max() < 1.0
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 0.03
    t = rng_state(np.uint64(12346))
    v = np.array([rng_random(t) for _ in range(20000)])
    assert abs(np.corrcoef(u, v)[0, 1]) < 0.03 and not np.any(u == v)


def test_log_erfcx_matches_scipy_across_both_branches():
    from scipy.special import erfcx

    x = np.concatenate([np.linspace(0.0, 30.0, 3001), [24.999, 25.0, 25.001, 50.0, 1e3, 1e8]])
    got = np.array([log_erfcx(float(v)) for v in x])
    np.testing.assert_allclose(got, np.log(erfcx(x)), rtol=1e-12, atol=1e-13)


def test_kmeans_reaches_a_lloyd_fixed_point_near_sklearns_inertia():
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(5)
    F = rng.standard_normal((3000, 12)) @ rng.standard_normal((12, 12))
    for seed in range(3):
        labels = kmeans(np.random.default_rng(seed), F, 6, n_iter=1000)
        # converged: a fixed point of Lloyd's iteration, every label the nearest cluster mean
        C = np.array([F[labels == j].mean(axis=0) for j in range(6)])
        d2 = ((F[:, None, :] - C[None]) ** 2).sum(-1)
        np.testing.assert_array_equal(labels, d2.argmin(axis=1))
        # one k-means++ start lands within 2 % of scikit-learn's best of 10
        ours = d2[np.arange(len(F)), labels].sum()
        assert ours <= 1.02 * KMeans(6, n_init=10, random_state=0).fit(F).inertia_
    # fewer distinct points than clusters: no error, every label a valid index
    labels = kmeans(np.random.default_rng(2), np.repeat(np.eye(3), 5, axis=0), 5)
    assert labels.shape == (15,) and labels.min() >= 0 and labels.max() < 5


# --------------------------------------------------------------------------- bookkeeping


def test_incremental_gram_matches_exact_recompute_and_step_is_pure(monkeypatch):
    import scrutiny.surrogate.mcmc as mcmc

    rng = np.random.default_rng(13)
    X = rng.normal(size=(300, 6))
    y = np.where(rng.random(300) < 0.5, X @ np.arange(6.0), -X @ np.arange(6.0)) + 0.2 * rng.normal(size=300)
    priors = Priors(n_components=4)
    data = make_data(X, y, priors)
    state = init(rng, X, y, priors)
    # a problem this small recomputes its Gram matrices every sweep ...
    assert step(rng, state, data, priors, Settings(recompute_every=10**9))[1].recomputed
    # ... unless told otherwise: the incremental update is checked here
    monkeypatch.setattr(mcmc, "SMALL_GRAM_WORK", 0)
    frozen = {k: np.copy(v) for k, v in state._asdict().items() if isinstance(v, np.ndarray)}
    nxt, _ = step(rng, state, data, priors, Settings(recompute_every=10**9))
    for k, v in frozen.items():
        np.testing.assert_array_equal(getattr(state, k), v, err_msg=f"step modified state.{k}")
    moved = 0
    for _ in range(60):
        nxt, info = step(rng, nxt, data, priors, Settings(recompute_every=10**9))
        moved += info.n_moved
        assert not info.recomputed or 4 * info.n_moved > data.n
    assert moved > 0
    gram, xty, counts = C.component_stats(nxt.z, data, 4)
    np.testing.assert_array_equal(counts, nxt.counts)
    np.testing.assert_allclose(nxt.gram, gram, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(nxt.xty, xty, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(nxt.fitted, X @ nxt.beta.T + nxt.intercept, rtol=1e-12, atol=1e-12)


def test_run_chain_is_reproducible_and_does_not_touch_global_rng(rng_guard):
    rng = np.random.default_rng(14)
    X = rng.normal(size=(60, 3))
    y = X @ [1.0, -1.0, 0.5] + 0.1 * rng.normal(size=60)
    a = run_chain(np.random.default_rng(0), X, y, Priors(n_components=3), n_iter=30, n_burnin=10, thin=2)
    b = run_chain(np.random.default_rng(0), X, y, Priors(n_components=3), n_iter=30, n_burnin=10, thin=2)
    assert a.draws["beta"].shape == (10, 3, 3) and a.draws["z"].dtype == np.int8
    np.testing.assert_array_equal(a.draws["beta"], b.draws["beta"])
    np.testing.assert_array_equal(a.draws["iteration"], np.arange(10, 30, 2))
    assert a.trace["loglik"].shape == (30,) and np.all(np.isfinite(a.trace["logjoint"]))
    s1, s2 = np.random.default_rng(0).spawn(2)
    c = run_chain(s1, X, y, Priors(n_components=3), n_iter=30, n_burnin=10)
    d = run_chain(s2, X, y, Priors(n_components=3), n_iter=30, n_burnin=10)
    assert not np.array_equal(c.draws["beta"], d.draws["beta"])
    seen = []
    run_chain(rng, X, y, Priors(n_components=3), n_iter=5, n_burnin=1, callback=lambda t, s, i: seen.append(t))
    assert seen == [0, 1, 2, 3, 4]


def test_run_chain_rejects_bad_arguments():
    from scrutiny.exceptions import InvalidParameterError

    X, y = np.ones((5, 2)), np.arange(5.0)
    with pytest.raises(InvalidParameterError, match="n_burnin must be smaller than n_iter"):
        run_chain(np.random.default_rng(0), X, y, Priors(), n_iter=10, n_burnin=10)
    with pytest.raises(InvalidParameterError, match="thin must be an int >= 1"):
        run_chain(np.random.default_rng(0), X, y, Priors(), n_iter=10, n_burnin=1, thin=0)
    with pytest.raises(InvalidParameterError, match=r"priors.sigma2_shape must be a finite float > 0; got -1"):
        run_chain(np.random.default_rng(0), X, y, Priors(sigma2_shape=-1), n_iter=10, n_burnin=1)
    with pytest.raises(InvalidParameterError, match="store must name"):
        run_chain(np.random.default_rng(0), X, y, Priors(), n_iter=10, n_burnin=1, store=("gamma",))


# --------------------------------------------------------------------------- Geweke


def _geweke_functions(state, y):
    s2, b = state.sigma2, state.beta
    return np.array([
        state.alpha, np.log(state.alpha), state.pi[0],
        s2[0], np.log(s2[0]), np.log(s2[1]), float(s2[0] < 0.6), float(s2[1] < 1.2),
        b[0, 0], abs(b[0, 0]), b[0, 0] ** 2, b[1, 1], float(b[1, 1] > 0.5),
        state.intercept[0], state.intercept[1],
        state.lam1[0], state.lam2[0], np.log(state.lam1[1]), np.log(state.lam2[1]),
        state.w[0], float(state.c[0] == 0), float(state.c[0] == state.c[1]),
        # functions coupling c to the penalties: what a wrong c conditional distorts
        state.lam1[state.c[0]], np.log(state.lam2[state.c[0]]), state.w[state.c[0]],
        np.sum(state.lam1[state.c] * np.abs(b).sum(axis=1) / np.sqrt(s2)),
        state.counts[0], float(state.counts[0] == 0),
        state.tau[0, 0], state.tau[1, 1],
        y.mean(), (y**2).mean(),
    ])


def _geweke(n_iter, seed, priors=GEWEKE_PRIORS, settings=Settings(), n=6, p=2):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    mc = []
    for _ in range(n_iter):
        st = sample_prior(rng, X, priors)
        mc.append(_geweke_functions(st, sample_y(rng, st, X)))
    st = sample_prior(rng, X, priors)
    y = sample_y(rng, st, X)
    data = make_data(X, y, priors)
    st = with_data(st, data)
    sc = []
    for _ in range(n_iter):
        st, _ = step(rng, st, data, priors, settings)
        y = sample_y(rng, st, X)
        data = make_data(X, y, priors)
        st = with_data(st, data)
        sc.append(_geweke_functions(st, y))
    mc, sc = np.array(mc), np.array(sc)
    # z-scores; the successive-conditional chain's standard errors come from 40 batch means
    nb = 40
    T = n_iter // nb * nb
    bm = sc[:T].reshape(nb, -1, sc.shape[1]).mean(axis=1)
    se2 = mc.var(axis=0) / n_iter + bm.var(axis=0, ddof=1) / nb
    diff = mc.mean(axis=0) - sc.mean(axis=0)
    constant = (se2 == 0) & (diff == 0)  # e.g. the intercepts of a model without intercept
    return np.where(constant, 0.0, diff / np.sqrt(np.where(constant, 1.0, se2)))


def test_geweke_getting_it_right_fast():
    """32 test functions, |z| < 4 each (two-sided 6e-5; family-wise about 2e-3 under a correct sampler)."""
    z = _geweke(2500, seed=20)
    assert np.all(np.abs(z) < 4.0), np.round(z, 2)


@pytest.mark.slow
@pytest.mark.parametrize("solver", ["auto", "cholesky", "bhattacharya"])
def test_geweke_getting_it_right_long(solver):
    z = _geweke(30000, seed=21, settings=Settings(beta_solver=solver))
    assert np.all(np.abs(z) < 4.0), np.round(z, 2)


@pytest.mark.slow
def test_geweke_without_intercept_and_three_priors():
    priors = GEWEKE_PRIORS._replace(intercept_scale=None, n_priors=3, n_components=3)
    z = _geweke(20000, seed=22, priors=priors)
    assert np.all(np.abs(z) < 4.0), np.round(z, 2)


@pytest.mark.slow
def test_geweke_detects_a_dropped_phi_term(monkeypatch):
    """The mutation the Geweke test is meant to catch: the sigma2 target without Phi^-p."""
    monkeypatch.setattr(REG, "_sigma2_kernel", _sigma2_kernel_without_phi())
    z = _geweke(2500, seed=20)
    assert np.max(np.abs(z)) > 8.0


def test_large_problems_use_float32_products_within_float64_round_off_of_the_exact_ones():
    from scrutiny.surrogate.state import GRAM32_WORK

    rng = np.random.default_rng(0)
    n, p, J = 3000, 200, 4
    assert n * (p + 1) ** 2 >= GRAM32_WORK  # this size takes the float32 path
    X, y = rng.random((n, p)), 10 + rng.normal(size=n)
    data = make_data(X, y, Priors(n_components=J))
    assert data.design32 is not None and data.design32.dtype == np.float32
    exact = data._replace(design32=None)
    z = rng.integers(0, J, n)
    (g32, h32, c32), (g64, h64, c64) = C.component_stats(z, data, J), C.component_stats(z, exact, J)
    assert g32.dtype == np.float64 and np.array_equal(c32, c64)
    assert np.abs(g32 - g64).max() <= 1e-6 * np.abs(g64).max()
    assert np.abs(h32 - h64).max() <= 1e-6 * np.abs(h64).max()
    beta, b0 = rng.normal(size=(J, p)), rng.normal(size=J)
    np.testing.assert_allclose(C.fitted_values(data, beta, b0), C.fitted_values(exact, beta, b0), atol=1e-4)
    small = make_data(X[:100, :10], y[:100], Priors(n_components=J))
    assert small.design32 is None  # small problems stay in float64 throughout


# --------------------------------------------------------------------------- prior switches


def _exact_c_lambda_sampler(beta, sigma2, priors, step=0.02):
    """Exact draws of ``(c, lam)`` from ``p(c, lam | beta, sigma2)`` (``tau`` and ``w``
    integrated out): ``p(c)`` by enumeration (Dirichlet-multinomial times each prior's penalties
    integrated on a log grid), then every used prior's penalties from their gridded posterior and
    unused ones from the Gamma priors."""
    import itertools

    from scipy.special import gammaln

    from scrutiny.surrogate._math import en_logpdf_sum

    J, p = beta.shape
    K = priors.n_priors
    l1, l2 = np.abs(beta).sum(axis=1), (beta**2).sum(axis=1)
    g = np.arange(-14.0, 8.0, step)
    u1, u2 = g[:, None], g[None, :]
    rate = priors.lam_rate
    log_p0 = (stats.gamma.logpdf(np.exp(u1), priors.lam1_shape, scale=1.0 / rate) + u1
              + stats.gamma.logpdf(np.exp(u2), priors.lam2_shape, scale=1.0 / rate) + u2)
    en = [en_logpdf_sum(l1[j], l2[j], p, np.exp(u1), np.exp(u2), sigma2[j]) for j in range(J)]
    cdf, logM = {}, {(): 0.0}
    for r in range(1, J + 1):
        for S in itertools.combinations(range(J), r):
            f = log_p0 + sum(en[j] for j in S)
            m = f.max()
            P = np.exp(f - m).ravel()
            logM[S] = m + np.log(P.sum() * step * step)
            cdf[S] = np.cumsum(P) / P.sum()
    configs = list(itertools.product(range(K), repeat=J))
    logp = np.array([
        sum(gammaln(priors.alpha_e + cfg.count(k)) + logM[tuple(j for j in range(J) if cfg[j] == k)]
            for k in range(K))
        for cfg in configs
    ])
    prob = np.exp(logp - np.logaddexp.reduce(logp))

    def draw(rng, M):
        cs = np.array(configs)[rng.choice(len(configs), size=M, p=prob)]
        lam1 = rng.gamma(priors.lam1_shape, 1.0 / rate, (M, K))
        lam2 = rng.gamma(priors.lam2_shape, 1.0 / rate, (M, K))
        for m in range(M):
            for k in range(K):
                S = tuple(np.flatnonzero(cs[m] == k))
                if S:
                    cell = min(int(np.searchsorted(cdf[S], rng.random())), g.size * g.size - 1)
                    lam1[m, k] = np.exp(g[cell // g.size] + step * (rng.random() - 0.5))
                    lam2[m, k] = np.exp(g[cell % g.size] + step * (rng.random() - 0.5))
        return cs, lam1, lam2

    return configs, prob, draw


def test_prior_switches_leave_the_exact_c_lambda_conditional_invariant():
    """Exact draws of (c, lam) pass through one round of switches and must keep their law: the
    configurations of c (chi-square against the enumerated probabilities) and the penalties of
    component 0's prior (two-sample KS against fresh exact draws); the moves must also move."""
    priors = Priors(n_components=3, n_priors=3)
    beta = np.array([[0.05, -0.02, 0.1, 0.0], [2.0, -3.0, 1.5, 2.5], [0.4, 0.0, -0.6, 0.3]])
    sigma2 = np.array([1.0, 0.5, 2.0])
    configs, prob, draw = _exact_c_lambda_sampler(beta, sigma2, priors)
    rng = np.random.default_rng(11)
    M = 3000
    cs, L1, L2 = draw(rng, M)
    out_c, out_l1, n_acc = np.empty_like(cs), np.empty(M), 0
    for m in range(M):
        c, l1, l2, acc = C.switch_priors(rng, beta, sigma2, cs[m], L1[m], L2[m], priors)
        out_c[m], out_l1[m] = c, l1[c[0]]
        n_acc += acc
    assert n_acc > 0.1 * M  # the test has power only if the moves are accepted
    index = {cfg: i for i, cfg in enumerate(configs)}
    counts = np.bincount([index[tuple(c)] for c in out_c], minlength=len(configs))
    expected = M * prob
    big = expected >= 5
    obs = np.append(counts[big], counts[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    assert stats.chisquare(obs, exp).pvalue > 1e-3
    fresh_c, fresh_l1, _ = draw(rng, M)
    assert stats.ks_2samp(np.log(out_l1), np.log(fresh_l1[np.arange(M), fresh_c[:, 0]])).pvalue > 1e-3


def test_prior_switches_are_a_no_op_with_one_prior_or_one_component():
    rng = np.random.default_rng(0)
    beta, sigma2 = rng.normal(size=(1, 3)), np.ones(1)
    c, l1, l2, n = C.switch_priors(rng, beta, sigma2, np.array([1]), np.ones(3), np.ones(3),
                                   Priors(n_components=1, n_priors=3))
    assert n == 0 and c.tolist() == [1]
    beta, sigma2 = rng.normal(size=(3, 3)), np.ones(3)
    c, l1, l2, n = C.switch_priors(rng, beta, sigma2, np.zeros(3, int), np.ones(1), np.ones(1),
                                   Priors(n_components=3, n_priors=1))
    assert n == 0 and c.tolist() == [0, 0, 0]


def test_label_swaps_return_a_permutation_and_move_empty_labels_behind_occupied_ones():
    """An occupied component behind two empty labels: the swaps must bring it forward (the
    stick-breaking prior favours heavy early labels) and always return a permutation."""
    from scrutiny.surrogate.conditionals import sample_sticks, swap_labels

    priors = Priors(n_components=4)
    rng = np.random.default_rng(0)
    counts = np.array([0, 0, 50, 0])
    log_pi, log1m_u = sample_sticks(rng, counts, 1.0)
    front, alphas = 0, set()
    for _ in range(200):
        perm, alpha, n_acc = swap_labels(rng, log_pi, log1m_u, counts, 1.0, priors, 12)
        assert sorted(perm.tolist()) == [0, 1, 2, 3] and alpha > 0
        front += int(counts[perm][0] == 50)
        alphas.add(alpha)
    assert front > 60 and len(alphas) > 1  # often moved to label 0 (92 of 200); weight swaps redraw alpha
    perm, alpha, n_acc = swap_labels(rng, np.zeros(1), np.array([-np.inf]), np.array([5]), 2.0,
                                     Priors(n_components=1), 5)
    assert perm.tolist() == [0] and alpha == 2.0 and n_acc == 0


def _rescaled_joint_draws(M, seed):
    """``M`` exact joint draws ``(theta, y)`` of a tiny model, each passed through one
    :func:`rescale_penalties` update; returns before/after statistics and the mean ``|t|``."""
    priors = Priors(n_components=2, n_priors=2)
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(12, 3))
    out = {"lam1": [], "l1": [], "chi2": [], "fresh_lam1": [], "fresh_l1": []}
    moved = 0.0
    for m in range(M):
        st = sample_prior(rng, X, priors)
        y = sample_y(rng, st, X)
        fresh = sample_prior(rng, X, priors)
        beta, fitted, lam1, _ = C.rescale_penalties(rng, st.beta, st.intercept, st.fitted, st.z, y, st.sigma2, st.c, st.lam1,
                                   st.lam2, priors)
        moved += abs(np.log(lam1[st.c[0]] / st.lam1[st.c[0]]))
        np.testing.assert_allclose(fitted, st.intercept + X @ beta.T, rtol=1e-9, atol=1e-9)
        resid = y - fitted[np.arange(y.size), st.z]
        out["chi2"].append(np.sum(resid * resid / st.sigma2[st.z]))  # chi2 with n = 12 df under the joint
        out["lam1"].append(np.log(lam1[st.c[0]]))
        out["l1"].append(np.log(np.abs(beta[0]).sum()))
        out["fresh_lam1"].append(np.log(fresh.lam1[fresh.c[0]]))
        out["fresh_l1"].append(np.log(np.abs(fresh.beta[0]).sum()))
    return {k: np.array(v) for k, v in out.items()}, moved / M


def test_penalty_rescaling_leaves_the_joint_distribution_invariant():
    """Exact joint draws of (theta, y) pass through one rescaling: lam1 and ||beta||_1 must keep
    their law (two-sample KS against fresh draws), the standardised residuals their chi-square
    law, while the move moves them (mean |log| step)."""
    stats_, moved = _rescaled_joint_draws(3000, 5)
    assert moved > 0.3  # the move has power: lam1 typically changes by a third on the log scale
    assert stats.ks_2samp(stats_["lam1"], stats_["fresh_lam1"]).pvalue > 1e-3
    assert stats.ks_2samp(stats_["l1"], stats_["fresh_l1"]).pvalue > 1e-3
    assert stats.kstest(stats_["chi2"], stats.chi2(12).cdf).pvalue > 1e-3


def _rescaling_pvalue(stats_):
    return min(stats.ks_2samp(stats_["lam1"], stats_["fresh_lam1"]).pvalue,
               stats.ks_2samp(stats_["l1"], stats_["fresh_l1"]).pvalue,
               stats.kstest(stats_["chi2"], stats.chi2(12).cdf).pvalue)


def _drop_jacobian(exact):
    return numba.njit(error_model="numpy")(
        lambda t, u1, u2, mp, lam2, k, c, l1, l2, A, B, Cq, s2, p, a1, a2, rate:
        exact(t, u1, u2, mp, lam2, k, c, l1, l2, A, B, Cq, s2, p, a1, a2, rate) - t * mp
    )


def _drop_likelihood(exact):
    return numba.njit(error_model="numpy")(
        lambda t, u1, u2, mp, lam2, k, c, l1, l2, A, B, Cq, s2, p, a1, a2, rate:
        exact(t, u1, u2, mp, lam2, k, c, l1, l2, 0.0 * A, 0.0 * B, 0.0 * Cq, s2, p, a1, a2, rate)
    )


def _rescale_kernel_with(target):
    """``rescale_penalties``' compiled kernel with another target (same signature)."""
    @numba.njit(error_model="numpy")
    def element(i, t, args):
        u1, u2, mp, lam2, used, c, l1, l2, A, B, Cq, s2, p, a1, a2, rate = args
        return target(t, u1[i], u2[i], mp[i], lam2[i], used[i], c, l1, l2, A, B, Cq, s2, p, a1, a2, rate)

    @numba.njit(error_model="numpy")
    def kernel(seed, x0, width, max_steps, args):
        x = x0.copy()
        return x, slice_loop(element, args, rng_state(seed), x, width, max_steps)

    return kernel


@pytest.mark.parametrize("mutation", [_drop_jacobian, _drop_likelihood])
def test_penalty_rescaling_mutations_are_caught(monkeypatch, mutation):
    """The same test must fail when the Jacobian ``t m_k p`` of the coefficients or the
    likelihood change ``RSS_j(e^t)`` is dropped from the target."""
    monkeypatch.setattr(PEN, "_rescale_kernel", _rescale_kernel_with(mutation(C.rescale_log_target)))
    stats_, _ = _rescaled_joint_draws(3000, 5)
    assert _rescaling_pvalue(stats_) < 1e-3


def test_the_cached_log_densities_change_nothing():
    """A sweep leaves ``logdens`` for the next z step; a sweep from the same state without the
    cache (same stream) must give the same state, and ``with_data`` must clear the cache."""
    priors = Priors(n_components=3)
    rng = np.random.default_rng(3)
    X = rng.normal(size=(150, 4))
    y = np.where(X[:, 0] > 0, X @ [1.0, -2.0, 0.0, 0.5], 3.0 - X[:, 1]) + 0.2 * rng.normal(size=150)
    data = make_data(X, y, priors)
    st, info = step(rng, init(rng, X, y, priors), data, priors)
    np.testing.assert_array_equal(st.logdens, C.component_log_densities(st, data.y))
    assert info.loglik == pytest.approx(C.log_likelihood(st, data.y), rel=1e-12)
    assert info.logjoint == pytest.approx(C.log_joint(st, data, priors), rel=1e-12)  # also from the cache
    assert info.logjoint_occupied == pytest.approx(C.log_joint(st, data, priors, occupied_only=True), rel=1e-12)
    a, _ = step(np.random.default_rng(9), st, data, priors)
    b, _ = step(np.random.default_rng(9), st._replace(logdens=None), data, priors)
    for f in ("z", "beta", "sigma2", "lam1", "alpha"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    assert with_data(st, data).logdens is None



def test_cholesky_draw_jitters_a_singular_precision_and_refuses_an_indefinite_one():
    rng = np.random.default_rng(5)
    v = np.array([1.0, 2.0, -1.0])
    G = np.outer(v, v)  # rank 1: the plain factorisation fails, the jittered one succeeds
    theta = REG._draw_cholesky(rng, G, G @ np.ones(3), np.zeros(3), 1e-8)
    assert theta.shape == (3,) and np.all(np.isfinite(theta))
    assert v @ theta == pytest.approx(v @ np.ones(3), abs=1e-3)  # the data pin the direction v
    with pytest.raises(FloatingPointError, match="not positive definite"):
        REG._draw_cholesky(rng, -1e12 * np.eye(3), np.zeros(3), np.zeros(3), 0.5)
    # the compiled small-d factorisation leaves such a component to that path instead of drawing
    G2 = np.stack([G, np.eye(3)])
    theta = np.zeros((2, 3))
    done = REG._draw_cholesky_small(G2, np.zeros((2, 3)), np.zeros((2, 3)), np.ones(2), np.ones((2, 3)),
                                  np.ones(2, dtype=bool), theta)
    assert done.tolist() == [False, True] and np.all(theta[0] == 0.0)
    np.testing.assert_allclose(theta[1], np.ones(3))  # A = I, h = 0: theta = sigma eps


def test_log_joint_of_the_occupied_components_ignores_empty_ones():
    """The convergence criterion leaves out an empty component's prior terms: changing its
    parameters moves the full log joint by exactly their prior log density and leaves the
    occupied-only one unchanged; with every component occupied the two agree."""
    priors = Priors(n_components=3)
    rng = np.random.default_rng(5)
    X = rng.normal(size=(80, 3))
    y = X @ [1.0, -1.0, 0.5] + 0.1 * rng.normal(size=80)
    data = make_data(X, y, priors)
    st = init(rng, X, y, priors)
    st = st._replace(z=np.where(np.arange(80) < 40, 0, 1).astype(st.z.dtype))  # component 2 empty
    full, occ = C.log_joint(st, data, priors), C.log_joint(st, data, priors, occupied_only=True)
    sigma2 = st.sigma2.copy()
    sigma2[2] *= 7.0
    moved = st._replace(sigma2=sigma2)
    assert C.log_joint(moved, data, priors, occupied_only=True) == pytest.approx(occ, rel=1e-12)
    # the full log joint moves (sigma2's inverse-gamma prior and the elastic-net prior of beta,
    # whose scale is sigma2, both of the empty component)
    assert abs(C.log_joint(moved, data, priors) - full) > 1e-3
    assert occ != pytest.approx(full)  # the empty component's terms are not zero
    every = st._replace(z=(np.arange(80) % 3).astype(st.z.dtype))
    assert C.log_joint(every, data, priors, occupied_only=True) == pytest.approx(C.log_joint(every, data, priors))


def test_bhattacharya_draw_hands_a_rounded_singular_system_to_cholesky():
    """A nearly flat prior (S = sigma2 / pen of order 1e20) and two identical rows make
    Phi S Phi' + I singular in floating point (the + I is lost): the Bhattacharya draw declines
    (None) instead of failing, and sample_beta's caller then draws the same Gaussian by
    Cholesky; the data still pin the direction they measure."""
    rng = np.random.default_rng(6)
    D = np.array([[1.0, 1.0, 0.0, 1.0], [1.0, 1.0, 0.0, 1.0], [1.0, 0.0, 1.0, 0.0]])  # n_j = 3 < d = 4
    yj = np.array([2.0, 2.0, 1.0])
    pen = np.full(4, 1e-20)
    assert REG._draw_bhattacharya(rng, D, yj, pen, 0.01) is None
    assert REG._draw_bhattacharya(rng, D, yj, np.ones(4), 0.01) is not None  # a proper prior: drawn as before
    theta = REG._draw_cholesky(rng, D.T @ D, D.T @ yj, pen, 0.01)
    assert np.all(np.isfinite(theta))
    np.testing.assert_allclose(D @ theta, yj, atol=0.5)  # the fitted values follow the data
