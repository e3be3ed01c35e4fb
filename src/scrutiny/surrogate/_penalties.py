"""Full conditionals of the elastic-net priors (spec section 2.1, steps 7-9).

The prior of each component ``c`` and the prior weights ``w`` (7-8, collapsed over ``tau``),
the Metropolis-Hastings prior switches with a Student-t proposal for a component's own
penalties (7'), the joint rescaling of a prior's penalties and coefficients (a generalised
Gibbs move, Liu & Sabatti 2000) and the penalties ``lam1``, ``lam2`` (9, slice sampled).
Pure functions; the order of the sweep lives in :mod:`scrutiny.surrogate.mcmc`.

References: the sampler's full list is in :mod:`scrutiny.surrogate.conditionals`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import gammaln

from ._math import (
    categorical_from_logits,
    en_logpdf_sum,
    en_logpdf_sum1,
    jit,
    log_dirichlet_rvs,
    rng_state,
    slice_loop,
    slice_seed,
)
from .state import Priors, Settings, State

__all__ = [
    "c_log_probs",
    "sample_c",
    "own_lambda_log_target",
    "lambda_proposals",
    "switch_priors",
    "rescale_log_target",
    "rescale_penalties",
    "sample_w",
    "lambda_log_target",
    "log_lambda_prior1",
    "sample_lambda",
]


# --------------------------------------------------------------------------- (7)-(8) c, w


def c_log_probs(beta: np.ndarray, sigma2: np.ndarray, lam1, lam2, w) -> np.ndarray:
    """Collapsed ``log P(c_j = k | beta_j, sigma2_j, lam, w)`` (normalised), shape (J, K)."""
    p = beta.shape[1]
    l1 = np.abs(beta).sum(axis=1)[:, None]
    l2 = (beta * beta).sum(axis=1)[:, None]
    with np.errstate(divide="ignore"):
        logits = np.log(w)[None, :] + en_logpdf_sum(l1, l2, p, lam1[None, :], lam2[None, :], sigma2[:, None])
    return logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)


def sample_c(rng: np.random.Generator, beta, sigma2, lam1, lam2, w) -> np.ndarray:
    """Draw ``c_j`` from the collapsed conditional (``tau`` integrated out)."""
    draws, _ = categorical_from_logits(rng, c_log_probs(beta, sigma2, lam1, lam2, w))
    return draws


# --------------------------------------------------------------------------- (7') prior switches

#: Degrees of freedom of the Student-t proposal for a component's own penalties.
_T_DF = 5.0
#: Inflation of the Laplace scale of that proposal (heavier than the target: robust acceptance).
_T_INFLATE = 1.5
#: Coarse grid of log-penalties on which the proposal's mode is first located.
_LOG_LAM_GRID = np.arange(-10.0, 8.0 + 1e-9, 1.0)


def own_lambda_log_target(u1, u2, l1, l2, p, sigma2, priors: Priors) -> np.ndarray | float:
    """``log p0(u) + sum_l log EN(beta_l | e^u1, e^u2, sigma2)`` on the log scale, normalised prior.

    ``p0(u)`` is the density of ``(log lam1, log lam2)`` under the Gamma priors (Jacobian
    included). This is the log posterior, up to a constant, of the penalties of a prior used by
    one component with ``||beta||_1 = l1``, ``||beta||^2 = l2``. Broadcasts over every argument;
    floats ``u1``, ``u2`` take the compiled scalar form (:func:`_own_lambda_log_target1`, what
    the prior switches evaluate) and give a float.
    """
    prior = _own_prior_args(priors)
    if isinstance(u1, float) and isinstance(u2, float):
        return _own_lambda_log_target1(u1, u2, float(l1), float(l2), int(p), float(sigma2), *prior)
    en = en_logpdf_sum(l1, l2, p, np.exp(u1), np.exp(u2), sigma2)
    return prior[3] + _log_lambda_prior(u1, u2, priors) + en


def _own_prior_args(priors: Priors) -> tuple[float, float, float, float]:
    """``(a1, a2, rate, log normaliser)`` of the Gamma priors of ``(log lam1, log lam2)``."""
    a1, a2, rate = _lambda_prior_args(priors)
    return a1, a2, rate, (a1 + a2) * math.log(rate) - float(gammaln(a1) + gammaln(a2))


@jit
def _own_lambda_log_target1(u1, u2, l1, l2, p, sigma2, a1, a2, rate, norm) -> float:
    return norm + log_lambda_prior1(u1, u2, a1, a2, rate) + en_logpdf_sum1(l1, l2, p, math.exp(u1), math.exp(u2), sigma2)


@jit
def _proposal(l1, l2, p, sigma2, a1, a2, rate, norm):
    """Mode and lower Cholesky factor ``(a, 0; b, c)`` of the Student-t proposal of one component
    (:func:`lambda_proposals`)."""
    best, u0, u1 = -math.inf, 0.0, 0.0
    for g0 in _LOG_LAM_GRID:
        for g1 in _LOG_LAM_GRID:
            v = _own_lambda_log_target1(g0, g1, l1, l2, p, sigma2, a1, a2, rate, norm)
            if v > best:
                best, u0, u1 = v, g0, g1
    h = 1e-3
    ok = False
    d11 = d22 = d12 = 0.0
    for _ in range(8):
        f = np.empty(7)
        for q in range(7):
            f[q] = _own_lambda_log_target1(u0 + h * _OFFSETS[q, 0], u1 + h * _OFFSETS[q, 1], l1, l2, p, sigma2,
                                           a1, a2, rate, norm)
        g0 = (f[1] - f[2]) / (2 * h)
        g1 = (f[3] - f[4]) / (2 * h)
        d11 = (f[1] - 2 * f[0] + f[2]) / h**2
        d22 = (f[3] - 2 * f[0] + f[4]) / h**2
        d12 = (f[5] - f[1] - f[3] + 2 * f[0] - f[2] - f[4] + f[6]) / (2 * h**2)
        det = d11 * d22 - d12 * d12
        # a negative definite Hessian takes a (damped) Newton step, others a gradient step
        ok = d11 < 0 and det > 0 and det < math.inf
        if ok:
            s0 = -(d22 * g0 - d12 * g1) / det
            s1 = -(d11 * g1 - d12 * g0) / det
        else:
            s0, s1 = 0.1 * g0, 0.1 * g1
        norm_step = math.sqrt(s0 * s0 + s1 * s1)
        if norm_step > 1.0:
            s0, s1 = s0 / norm_step, s1 / norm_step
        if s0 == s0 and s1 == s1:  # a NaN step (non-finite target) is not taken
            u0, u1 = u0 + s0, u1 + s1
        if norm_step < 1e-4:  # Newton converges quadratically: the mode is then within ~1e-8
            break
    if ok:  # covariance -H^-1
        det = d11 * d22 - d12 * d12
        c00, c01, c11 = -d22 / det, d12 / det, -d11 / det
    else:
        c00, c01, c11 = 0.25, 0.0, 0.25
    f2 = _T_INFLATE * _T_INFLATE
    c00, c01, c11 = c00 * f2 + 1e-10, c01 * f2, c11 * f2 + 1e-10
    a = math.sqrt(c00)
    b = c01 / a
    return u0, u1, a, b, math.sqrt(c11 - b * b)


def lambda_proposals(l1, l2, p, sigma2, priors: Priors) -> tuple[np.ndarray, np.ndarray]:
    """Student-t proposals for the log-penalties of every component's own prior.

    Location: the mode of :func:`own_lambda_log_target` (grid search, then Newton steps with
    finite-difference derivatives); scale: the inverse negative Hessian there, inflated by
    ``_T_INFLATE``. They depend only on ``(beta_j, sigma2_j)``, which a prior switch does not
    change, so the forward and reverse moves see the same proposal.

    Returns
    -------
    mode : ndarray of shape (J, 2)
    chol : ndarray of shape (J, 2, 2)
        Lower Cholesky factors of the scale matrices.
    """
    l1, l2, sigma2 = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (l1, l2, sigma2))
    J = l1.shape[0]
    mode, chol = np.zeros((J, 2)), np.zeros((J, 2, 2))
    prior = _own_prior_args(priors)
    for j in range(J):
        u0, u1, a, b, c = _proposal(l1[j], l2[j], int(p), sigma2[j], *prior)
        mode[j] = u0, u1
        chol[j] = [[a, 0.0], [b, c]]
    return mode, chol


#: Finite-difference stencil of the proposal's Newton steps (in units of h).
_OFFSETS = np.array([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1], [1, 1], [-1, -1]], dtype=float)
#: Log normaliser of the bivariate Student-t with ``_T_DF`` degrees of freedom (unit scale).
_T_LOG_NORM = float(gammaln((_T_DF + 2) / 2) - gammaln(_T_DF / 2) - math.log(_T_DF * math.pi))


@jit
def _t_logpdf(x, mode, chol):
    """Log density of the bivariate Student-t (``_T_DF`` degrees of freedom) at the point ``x``
    (two floats), location ``mode``, scale ``chol chol'`` (``chol`` lower triangular 2 x 2)."""
    a, b, c = chol[0, 0], chol[1, 0], chol[1, 1]
    r0 = (x[0] - mode[0]) / a
    r1 = (x[1] - mode[1] - b * r0) / c
    nu = _T_DF
    return _T_LOG_NORM - math.log(abs(a * c)) - (nu + 2) / 2 * math.log1p((r0 * r0 + r1 * r1) / nu)


def switch_priors(
    rng: np.random.Generator, beta, sigma2, c, lam1, lam2, priors: Priors
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Metropolis-Hastings moves of single components to and from priors of their own.

    Exact for ``p(c, lam | beta, sigma2)`` with both ``tau`` and the prior weights ``w``
    integrated out (``c`` is then Dirichlet-multinomial; the sweep draws ``w | c`` right after,
    which makes the collapsed step valid, van Dyk & Park 2008). Gibbs updates of ``c_j`` almost
    never move a component to an unused prior: its weight ``w_k`` is a ``Dir(1/K)`` draw near 0
    and its penalties are a draw from the Gamma prior, which a 300-coefficient ``beta_j`` rarely
    fits. For each component ``j`` in random order:

    * if other components share its prior (``U``: the priors used by the others), pick an
      unused prior ``k`` uniformly (``K - |U|`` choices) and propose ``c_j = k`` with new
      penalties ``log lam_k ~ t(mode, scale)`` from :func:`lambda_proposals`;
    * if it is alone in its prior ``k``, propose joining a prior ``l`` in ``U`` (uniformly) and
      redrawing the then unused ``lam_k`` from its prior: the reverse move.

    Compiled (:func:`_switch_kernel`), with its random numbers drawn from ``rng`` beforehand.

    Returns
    -------
    c : ndarray of shape (J,)
    lam1, lam2 : ndarray of shape (K,)
    n_accepted : int
    """
    J, p = beta.shape
    K = priors.n_priors
    c = np.array(c, dtype=np.int64)
    lam1, lam2 = np.array(lam1, dtype=float), np.array(lam2, dtype=float)
    if K == 1 or J == 1:
        return c, lam1, lam2, 0
    # the move's randomness, drawn up front (each draw is used at most once): visiting order,
    # two uniforms (choice of prior, acceptance), the t proposal's normals and chi-square, and
    # the Gamma prior draws of penalties freed by a merge
    prior = _own_prior_args(priors)
    a1, a2, rate, _ = prior
    draws = (rng.permutation(J), rng.random((J, 2)), rng.standard_normal((J, 2)), rng.chisquare(_T_DF, J),
             rng.gamma(a1, 1.0 / rate, J), rng.gamma(a2, 1.0 / rate, J))
    n_acc = _switch_kernel(draws, beta, np.asarray(sigma2, dtype=float), c, lam1, lam2, float(priors.alpha_e), *prior)
    return c, lam1, lam2, n_acc


@jit
def _beta_norms(beta):
    """``||beta_j||_1`` and ``||beta_j||^2`` of every row (compiled kernels' shared helper)."""
    J, p = beta.shape
    l1, l2 = np.zeros(J), np.zeros(J)
    for j in range(J):
        for q in range(p):
            b = beta[j, q]
            l1[j] += abs(b)
            l2[j] += b * b
    return l1, l2


@jit
def _switch_kernel(draws, beta, sigma2, c, lam1, lam2, ae, a1, a2, rate, norm):
    """:func:`switch_priors` on ``c``, ``lam1``, ``lam2`` in place; returns the acceptances.
    ``draws``: see :func:`switch_priors`."""
    order, unif, normal, chi2, gam1, gam2 = draws
    J, p = beta.shape
    K = lam1.shape[0]
    l1, l2 = _beta_norms(beta)
    mode, chol = np.zeros(2), np.zeros((2, 2))
    u = np.zeros(2)
    n_acc = 0
    for j in order:
        cnt = np.zeros(K, dtype=np.int64)  # components per prior, j excluded
        for i in range(J):
            if i != j:
                cnt[c[i]] += 1
        n_used = 0
        for k in range(K):
            n_used += cnt[k] > 0
        k_now = c[j]
        shared = cnt[k_now] > 0
        if shared and n_used == K:  # no unused prior to split off to
            continue
        mode[0], mode[1], chol[0, 0], chol[1, 0], chol[1, 1] = _proposal(l1[j], l2[j], p, sigma2[j], a1, a2, rate, norm)
        log_ratio_choices = math.log(K - n_used) - math.log(n_used)
        if shared:  # split off to an unused prior with proposed penalties
            pick = min(int(unif[j, 0] * (K - n_used)), K - n_used - 1)
            k = 0
            for kk in range(K):
                if cnt[kk] == 0:
                    if pick == 0:
                        k = kk
                        break
                    pick -= 1
            e0, e1 = normal[j, 0], normal[j, 1]
            scale = 1.0 / math.sqrt(chi2[j] / _T_DF)
            u[0] = mode[0] + chol[0, 0] * e0 * scale
            u[1] = mode[1] + (chol[1, 0] * e0 + chol[1, 1] * e1) * scale
            # Dirichlet-multinomial ratio: (ae + 0) / (ae + #others in k_now)
            log_a = (math.log(ae) - math.log(ae + cnt[k_now])
                     + _own_lambda_log_target1(u[0], u[1], l1[j], l2[j], p, sigma2[j], a1, a2, rate, norm)
                     - _t_logpdf(u, mode, chol)
                     - en_logpdf_sum1(l1[j], l2[j], p, lam1[k_now], lam2[k_now], sigma2[j])
                     + log_ratio_choices)
            if math.log(unif[j, 1]) < log_a:
                c[j] = k
                lam1[k], lam2[k] = math.exp(u[0]), math.exp(u[1])
                n_acc += 1
        else:  # alone: join a prior used by others; the freed penalties return to the prior
            pick = min(int(unif[j, 0] * n_used), n_used - 1)
            l = 0
            for kk in range(K):
                if cnt[kk] > 0:
                    if pick == 0:
                        l = kk
                        break
                    pick -= 1
            u[0], u[1] = math.log(lam1[k_now]), math.log(lam2[k_now])
            log_a = (math.log(ae + cnt[l]) - math.log(ae)
                     + en_logpdf_sum1(l1[j], l2[j], p, lam1[l], lam2[l], sigma2[j])
                     - _own_lambda_log_target1(u[0], u[1], l1[j], l2[j], p, sigma2[j], a1, a2, rate, norm)
                     + _t_logpdf(u, mode, chol)
                     - log_ratio_choices)
            if math.log(unif[j, 1]) < log_a:
                c[j] = l
                lam1[k_now] = gam1[j]
                lam2[k_now] = gam2[j]
                n_acc += 1
    return n_acc


def _used_priors(c: np.ndarray, K: int) -> tuple[np.ndarray, np.ndarray]:
    """Components per prior ``m`` (K,) and the used priors (those with ``m_k > 0``)."""
    m = np.bincount(c, minlength=K)
    return m, np.flatnonzero(m)


@jit
def rescale_log_target(t, u1, u2, mp, lam2, k, c, l1, l2, A, B, C, sigma2, p, a1, a2, rate) -> float:
    """Log density of the rescaling ``t`` of one used prior ``k`` (:func:`rescale_penalties`);
    compiled.

    Parameters
    ----------
    t : float
        Log scale factor.
    u1, u2 : float
        Current ``log lam1_k`` and ``log lam2_k`` of the prior.
    mp : int
        ``m_k p``, the Jacobian exponent (``p`` coefficients per component of the prior).
    lam2 : float
        ``lam2_k``.
    k : int
        The prior; the terms are summed over the components ``j`` with ``c[j] == k``.
    c : ndarray of shape (J,)
        Prior of each component.
    l1, l2 : ndarray of shape (J,)
        ``||beta_j||_1`` and ``||beta_j||^2`` at ``t = 0``.
    A, B, C : ndarray of shape (J,)
        ``(sum r^2, sum r q, sum q^2)`` with ``r = y - b0_j`` and ``q = x' beta_j`` over the
        component's samples: ``RSS_j(s) = A_j - 2 s B_j + s^2 C_j``.
    sigma2 : ndarray of shape (J,)
    p : int
    a1, a2, rate : float
        Shapes and rate of the Gamma priors of ``lam1`` and ``lam2``.
    """
    s = math.exp(t)
    lam1 = math.exp(u1 - t)
    out = log_lambda_prior1(u1 - t, u2, a1, a2, rate) + t * mp
    for j in range(c.shape[0]):
        if c[j] == k:
            s2 = sigma2[j]
            out += (en_logpdf_sum1(s * l1[j], s * s * l2[j], p, lam1, lam2, s2)
                    - (A[j] - 2.0 * s * B[j] + s * s * C[j]) / (2.0 * s2))
    return out


@jit
def _rescale_element(i, t, args):
    u1, u2, mp, lam2, used, c, l1, l2, A, B, C, sigma2, p, a1, a2, rate = args
    return rescale_log_target(t, u1[i], u2[i], mp[i], lam2[i], used[i], c, l1, l2, A, B, C, sigma2, p, a1, a2, rate)


@jit
def _rescale_kernel(seed, x0, width, max_steps, args):
    x = x0.copy()
    n_evals = slice_loop(_rescale_element, args, rng_state(seed), x, width, max_steps)
    return x, n_evals


def rescale_penalties(
    rng: np.random.Generator, beta, intercept, fitted, z, y, sigma2, c, lam1, lam2, priors: Priors,
    max_steps: int = 50,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Joint rescaling of each used prior's ``lam1_k`` and the coefficients of its components.

    A generalised Gibbs step on the scaling group (Liu & Sabatti 2000), exact for the sweep's
    ``tau``-marginal target: for every used prior ``k`` the move ``beta_j -> e^t beta_j`` (all
    ``j`` with ``c_j = k``, intercepts fixed), ``lam1_k -> e^-t lam1_k`` draws ``t`` by slice
    sampling from ``pi(T_t x) |det dT_t / dx|`` (the Haar measure on ``t`` is Lebesgue), started
    at the identity ``t = 0``. It moves along the ridge ``lam1_k ||beta||_1 = const`` on which the
    one-at-a-time updates crawl: ``lam1 | beta`` and ``beta | tau(lam1)`` are both tight when
    ``p`` coefficients inform one penalty (on real logits, ``lam1`` of the prior of the clipped
    component had a bulk ESS of 8-22 in 2 x 1,200 draws and drove the log joint's R-hat).

    The target along ``t`` is ``log p(log lam1 - t, log lam2) + t m_k p + sum_j [sum_l log
    EN(e^t beta_jl | e^-t lam1, lam2, sigma2_j) - RSS_j(e^t) / (2 sigma2_j)]``, with
    ``RSS_j(s) = sum_i (r_i - s q_i)^2`` (``r = y - b0_j``, ``q = x' beta_j``) from three sums
    formed once (``O(n)``): each evaluation is ``O(J)``. The initial width is ``3 /
    sqrt(1 + p m_k + sum_j B_j^2 / (C_j sigma2_j))`` (``B``, ``C`` the last two sums): the
    ``log lam`` updates' information plus the likelihood's curvature at its maximum in ``t``,
    quantities the move leaves fixed.

    Returns
    -------
    beta : ndarray of shape (J, p)
    fitted : ndarray of shape (n, J)
    lam1 : ndarray of shape (K,)
    n_evals : int
        Target evaluations of the slice sampler.
    """
    args, width = _rescale_prepare(beta, intercept, fitted, z, y, np.asarray(sigma2, dtype=float),
                                   np.asarray(c, dtype=np.int64), lam1, lam2)
    t, n_evals = _rescale_kernel(slice_seed(rng), np.zeros(width.size), width, max_steps, args + _lambda_prior_args(priors))
    beta, fitted, lam1 = _rescale_apply(t, args[4], args[5], beta, intercept, fitted, lam1)
    return beta, fitted, lam1, n_evals


@jit
def _rescale_prepare(beta, intercept, fitted, z, y, sigma2, c, lam1, lam2):
    """The rescaling target's arguments (all but the Gamma priors') and initial widths: ``O(n + J p)``."""
    J, p = beta.shape
    K = lam1.shape[0]
    A, B, C = np.zeros(J), np.zeros(J), np.zeros(J)
    for i in range(z.shape[0]):
        j = z[i]
        r = y[i] - intercept[j]
        q = fitted[i, j] - intercept[j]
        A[j] += r * r
        B[j] += r * q
        C[j] += q * q
    l1, l2 = _beta_norms(beta)
    m = np.zeros(K, dtype=np.int64)
    info = np.ones(K)
    for j in range(J):
        m[c[j]] += 1
        # the likelihood's curvature in t at s = B / C (invariant under the move)
        if C[j] > 0:
            info[c[j]] += B[j] * B[j] / C[j] / sigma2[j]
    used = np.flatnonzero(m)
    # initial widths: 3 sd of a target whose information adds the prior-driven 1 + p m_k (the
    # log lam width) and the likelihood's sum_j B_j^2 / (C_j sigma2_j); both are invariant
    # under the move (B -> s B, C -> s^2 C), as the width must be
    width = 3.0 / np.sqrt(info[used] + p * m[used])
    return (np.log(lam1[used]), np.log(lam2[used]), m[used] * p, lam2[used], used, c,
            l1, l2, A, B, C, sigma2, p), width


@jit
def _rescale_apply(t, used, c, beta, intercept, fitted, lam1):
    """``beta_j -> e^t beta_j``, the fitted values likewise (intercepts fixed), ``lam1_k -> e^-t lam1_k``."""
    J = beta.shape[0]
    scale = np.ones(lam1.shape[0])
    lam1 = lam1.copy()
    for i in range(used.shape[0]):
        scale[used[i]] = math.exp(t[i])
        lam1[used[i]] *= math.exp(-t[i])
    s = np.empty(J)
    for j in range(J):
        s[j] = scale[c[j]]
    beta = beta * s[:, None]
    fitted = fitted.copy()
    for i in range(fitted.shape[0]):
        for j in range(J):
            fitted[i, j] = intercept[j] + (fitted[i, j] - intercept[j]) * s[j]
    return beta, fitted, lam1


def sample_w(rng: np.random.Generator, c: np.ndarray, priors: Priors) -> np.ndarray:
    """``w ~ Dir(alpha_e + m_k)`` with ``m_k = #{j : c_j = k}`` over all ``J`` components."""
    m = np.bincount(c, minlength=priors.n_priors)
    w = np.maximum(np.exp(log_dirichlet_rvs(rng, priors.alpha_e + m)), np.finfo(float).tiny)
    return w / w.sum()


# --------------------------------------------------------------------------- (9) lambda


@jit
def lambda_log_target(log_lam1, log_lam2, k, c, l1, l2, sigma2, p, a1, a2, rate) -> float:
    """Collapsed log target of ``(log lam1_k, log lam2_k)`` of one used prior ``k``, Jacobian
    included; compiled.

    Parameters
    ----------
    log_lam1, log_lam2 : float
        Log penalties of the prior.
    k : int
        The prior; the sum runs over the components ``j`` with ``c[j] == k``.
    c, l1, l2, sigma2 : ndarray of shape (J,)
        Every component's prior, ``||beta_j||_1``, ``||beta_j||^2`` and ``sigma2_j``.
    a1, a2, rate : float
        Shapes and rate of the Gamma priors of ``lam1`` and ``lam2``.

    Returns
    -------
    float
        ``(L) log lam1 - (V/2) lam1 + (R) log lam2 - (V/2) lam2 + sum_{j: c_j = k} sum_l log EN(beta_jl)``.
    """
    lam1, lam2 = math.exp(log_lam1), math.exp(log_lam2)
    out = log_lambda_prior1(log_lam1, log_lam2, a1, a2, rate)
    for j in range(c.shape[0]):
        if c[j] == k:
            out += en_logpdf_sum1(l1[j], l2[j], p, lam1, lam2, sigma2[j])
    return out


@jit
def log_lambda_prior1(u1, u2, a1, a2, rate) -> float:
    """Log density of ``(log lam1, log lam2)`` under the Gamma priors, Jacobian included, up to
    its normalising constant: ``a1 u1 - r e^u1 + a2 u2 - r e^u2`` (compiled, scalars)."""
    return a1 * u1 - rate * math.exp(u1) + a2 * u2 - rate * math.exp(u2)


def _log_lambda_prior(u1, u2, priors: Priors):
    """:func:`log_lambda_prior1` for arrays (broadcast) or floats."""
    if isinstance(u1, float) and isinstance(u2, float):
        return log_lambda_prior1(u1, u2, *_lambda_prior_args(priors))
    rate = priors.lam_rate
    return priors.lam1_shape * u1 - rate * np.exp(u1) + priors.lam2_shape * u2 - rate * np.exp(u2)


def _lambda_prior_args(priors: Priors) -> tuple[float, float, float]:
    return float(priors.lam1_shape), float(priors.lam2_shape), float(priors.lam_rate)


@jit
def _lambda_kernel(seed, u1, u2, width, max_steps, steps, args):
    """``steps`` slice updates of every used prior's ``log lam1`` then ``log lam2``."""
    used, c, l1, l2, sigma2, p, a1, a2, rate = args
    u1, u2 = u1.copy(), u2.copy()
    s = rng_state(seed)
    n_evals = 0
    for _ in range(steps):
        n_evals += slice_loop(_lam1_element, (u2, used, c, l1, l2, sigma2, p, a1, a2, rate), s, u1, width, max_steps)
        n_evals += slice_loop(_lam2_element, (u1, used, c, l1, l2, sigma2, p, a1, a2, rate), s, u2, width, max_steps)
    return u1, u2, n_evals


@jit
def _lam1_element(i, x, args):
    u2, used, c, l1, l2, sigma2, p, a1, a2, rate = args
    return lambda_log_target(x, u2[i], used[i], c, l1, l2, sigma2, p, a1, a2, rate)


@jit
def _lam2_element(i, x, args):
    u1, used, c, l1, l2, sigma2, p, a1, a2, rate = args
    return lambda_log_target(u1[i], x, used[i], c, l1, l2, sigma2, p, a1, a2, rate)


def sample_lambda(
    rng: np.random.Generator, state: State, beta, sigma2, c, priors: Priors, settings: Settings
) -> tuple[np.ndarray, np.ndarray, int]:
    """Slice-sample ``log lam1_k`` then ``log lam2_k`` from the collapsed conditional.

    Priors with no component (``m_k = 0``) are drawn from the Gamma priors directly.

    Returns
    -------
    lam1, lam2 : ndarray of shape (K,)
    n_evals : int
        Target evaluations used.
    """
    K = priors.n_priors
    p = beta.shape[1]
    m, used = _used_priors(c, K)
    l1 = np.abs(beta).sum(axis=1)
    l2 = (beta * beta).sum(axis=1)
    args = (used, np.asarray(c, dtype=np.int64), l1, l2, np.asarray(sigma2, dtype=float), p, *_lambda_prior_args(priors))
    # the posterior sd of log lam_k shrinks like 1 / sqrt(p m_k): about a sixth of this width
    # (a width that depends only on quantities the update leaves fixed, as it must)
    width = settings.lambda_width * 6.0 / np.sqrt(1.0 + p * m[used])
    a1, a2, n_evals = _lambda_kernel(
        slice_seed(rng), np.log(state.lam1[used]), np.log(state.lam2[used]), width,
        settings.slice_max_steps, settings.lambda_steps, args,
    )
    # priors used by no component: exact draws from the Gamma priors
    lam1 = rng.gamma(priors.lam1_shape, 1.0 / priors.lam_rate, K)
    lam2 = rng.gamma(priors.lam2_shape, 1.0 / priors.lam_rate, K)
    lam1[used] = np.exp(a1)
    lam2[used] = np.exp(a2)
    return lam1, lam2, n_evals
