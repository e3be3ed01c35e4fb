"""The full conditionals of the DMM-MEN sampler (spec section 2.1), as pure functions.

Model and notation: :mod:`scrutiny.surrogate.state`. ``d`` is the number of design columns
(``p`` penalised features plus the intercept, when fitted); the sampler keeps
``xi = tau / (1 - tau)``. Every function takes its inputs explicitly and returns new arrays;
the order of the sweep lives in :mod:`scrutiny.surrogate.mcmc`.

This module gathers them (every name in ``__all__``) and holds the log joint; they are defined by
block, one module per responsibility:

* :mod:`._allocation` -- sufficient statistics, allocations ``z``, label swaps, sticks, ``alpha``;
* :mod:`._regression` -- coefficients ``[b0, beta]``, ``xi``, noise variances ``sigma2``;
* :mod:`._penalties` -- prior choices ``c``, weights ``w``, prior switches, penalty rescaling and
  the penalties ``lam1``, ``lam2``.

References
----------
Guo, W., Huang, S., Tao, Y., Xing, X. & Lin, L. (2018). Explaining deep learning models - a
Bayesian non-parametric approach. NeurIPS 31.
Ishwaran, H. & James, L. F. (2001). Gibbs sampling methods for stick-breaking priors. JASA 96.
Li, Q. & Lin, N. (2010). The Bayesian elastic net. Bayesian Analysis 5(1), 151-170.
Hans, C. (2011). Elastic net regression modeling with the orthant normal prior. JASA 106.
Bhattacharya, A., Chakraborty, A. & Mallick, B. K. (2016). Fast sampling with Gaussian scale
mixture priors in high-dimensional regression. Biometrika 103(4), 985-991.
van Dyk, D. A. & Park, T. (2008). Partially collapsed Gibbs samplers. JASA 103, 790-796.
Neal, R. M. (2003). Slice sampling. Annals of Statistics 31(3), 705-767.
Liu, J. S. & Sabatti, C. (2000). Generalised Gibbs sampler and multigrid Monte Carlo for
Bayesian computation. Biometrika 87(2), 353-369.
"""

from __future__ import annotations

import math

import numpy as np

from ._allocation import (
    component_log_densities,
    component_stats,
    fitted_values,
    log_likelihood,
    mixture_log_likelihood,
    responsibilities,
    sample_alpha,
    sample_sticks,
    sample_z,
    swap_labels,
    update_stats,
)
from ._math import LOG_2PI, en_logpdf_sum1, jit
from ._penalties import (
    _beta_norms,
    _lambda_prior_args,
    c_log_probs,
    lambda_log_target,
    lambda_proposals,
    own_lambda_log_target,
    rescale_log_target,
    rescale_penalties,
    sample_c,
    sample_lambda,
    sample_w,
    switch_priors,
)
from ._regression import prior_xi, sample_beta, sample_sigma2, sample_xi, sigma2_log_target
from .state import Data, Priors, Settings, State, check_priors, make_data  # noqa: F401  (re-exported)

__all__ = [
    "fitted_values",
    "prior_xi",
    "component_stats",
    "update_stats",
    "sample_z",
    "swap_labels",
    "sample_sticks",
    "sample_alpha",
    "sample_beta",
    "c_log_probs",
    "sample_c",
    "own_lambda_log_target",
    "lambda_proposals",
    "switch_priors",
    "rescale_log_target",
    "rescale_penalties",
    "sample_w",
    "lambda_log_target",
    "sample_lambda",
    "sigma2_log_target",
    "sample_sigma2",
    "sample_xi",
    "log_joint",
    "log_joint_parts",
    "log_likelihood",
    "component_log_densities",
    "mixture_log_likelihood",
    "responsibilities",
]


# --------------------------------------------------------------------------- log joint


def log_joint(state: State, data: Data, priors: Priors, logdens: np.ndarray | None = None,
              occupied_only: bool = False) -> float:
    """Complete-data log joint density with ``tau`` integrated out (label-invariant).

    ``occupied_only=True`` leaves out the prior terms of the components without samples
    (``sigma2``, ``b0``, ``beta`` and ``c`` of an empty component, which the sampler draws afresh
    from their prior every sweep): the convergence criterion of :class:`DMMMEN`, because those
    heavy-tailed prior draws move the full log joint's R-hat although no fitted quantity
    depends on them (``tests/test_surrogate_sampler.py``; ``benchmarks/table1.py`` prints the
    share of converged per-image fits).

    ``log p(y, z, u, alpha, b0, beta, sigma2, c, w, lam)``; the stick variables enter through
    ``log(1 - u_j)``; the Jacobian of ``pi`` is not included (densities are w.r.t. ``u``).
    ``logdens``, if given, must be :func:`component_log_densities` of this state: its entries
    ``(i, z_i)`` are the first two terms. Compiled (:func:`_log_joint`).
    """
    return log_joint_parts(state, data, priors, logdens)[1 if occupied_only else 0]


def log_joint_parts(state: State, data: Data, priors: Priors,
                    logdens: np.ndarray | None = None) -> tuple[float, float]:
    """``(log_joint(...), log_joint(..., occupied_only=True))`` in one pass (the sampler traces both)."""
    if logdens is None:
        logdens = component_log_densities(state, data.y)
    s0 = priors.intercept_scale if data.intercept else math.nan
    ae, K = float(priors.alpha_e), priors.n_priors
    full, occupied = _log_joint(
        logdens, state.z, state.log1m_u, float(state.alpha), state.sigma2, state.intercept, state.beta, state.c,
        state.w, state.lam1, state.lam2, float(priors.alpha_shape), float(priors.alpha_rate),
        float(priors.sigma2_shape), float(priors.sigma2_scale), float(s0),
        float(math.lgamma(K * ae) - K * math.lgamma(ae)), ae, *_lambda_prior_args(priors),
    )
    return float(full), float(occupied)


@jit
def _gamma_logpdf1(x, shape, rate):
    return shape * math.log(rate) - math.lgamma(shape) + (shape - 1.0) * math.log(x) - rate * x


@jit
def _log_joint(logdens, z, log1m_u, alpha, sigma2, intercept, beta, c, w, lam1, lam2,
               alpha_shape, alpha_rate, s2_shape, s2_scale, s0, dir_norm, ae, a1, a2, rate):
    """(full log joint, log joint without the empty components' prior terms)."""
    J, p = beta.shape
    occupied = np.zeros(J, dtype=np.bool_)
    for i in range(z.shape[0]):
        occupied[z[i]] = True
    l1, l2 = _beta_norms(beta)
    out = 0.0
    empty = 0.0  # the prior terms of components without samples
    for i in range(z.shape[0]):  # log pi_z + log N(y | ...): the (i, z_i) entries
        out += logdens[i, z[i]]
    for j in range(J - 1):  # sticks u_j ~ Beta(1, alpha)
        out += math.log(alpha) + (alpha - 1.0) * log1m_u[j]
    out += _gamma_logpdf1(alpha, alpha_shape, alpha_rate)
    for j in range(J):
        s2 = sigma2[j]
        t = s2_shape * math.log(s2_scale) - math.lgamma(s2_shape) - (s2_shape + 1.0) * math.log(s2) - s2_scale / s2
        if s0 == s0:  # an intercept with a N(0, s0^2) prior
            t += -0.5 * (LOG_2PI + 2.0 * math.log(s0)) - 0.5 * (intercept[j] / s0) ** 2
        t += en_logpdf_sum1(l1[j], l2[j], p, lam1[c[j]], lam2[c[j]], s2) + math.log(w[c[j]])
        if occupied[j]:
            out += t
        else:
            empty += t
    out += dir_norm  # w ~ Dir(ae)
    for k in range(w.shape[0]):
        out += (ae - 1.0) * math.log(w[k])
        out += _gamma_logpdf1(lam1[k], a1, rate) + _gamma_logpdf1(lam2[k], a2, rate)
    return out + empty, out
