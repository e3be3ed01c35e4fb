"""Posterior summaries of pooled, relabelled DMM-MEN draws (the fitted attributes of ``DMMMEN``).

:func:`posterior_summary` relabels the chains to one reference (Cron & West 2011), puts the
per-component priors in canonical order, pools the kept draws and summarises them: each
component over the draws in which it is occupied, the mixture prediction Rao-Blackwellised over
empty components. :class:`~scrutiny.surrogate.DMMMEN` sets the returned attributes.

References
----------
Cron, A. J. & West, M. (2011). Efficient classification-based relabeling in mixture models.
The American Statistician 65(1).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Sequence

import numpy as np

from .mcmc import ChainResult
from .relabel import canonical_penalty_order, relabel_chains
from .state import Priors

__all__ = ["occupied_summary", "posterior_summary"]


def occupied_summary(x: np.ndarray, occupied: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and 95 % equal-tailed interval of every component's draws ``x`` (draws, J, ...) over
    the draws in which it is occupied (``occupied``, (draws, J)); over all draws for a component
    that never is. Returns arrays of shape (J, ...) and (J, ..., 2)."""
    mean = np.empty(x.shape[1:])
    ci = np.empty(x.shape[1:] + (2,))
    for h in range(x.shape[1]):
        xs = x[occupied[:, h], h] if occupied[:, h].any() else x[:, h]
        mean[h] = xs.mean(axis=0)
        ci[h] = np.moveaxis(np.percentile(xs, [2.5, 97.5], axis=0), 0, -1)
    return mean, ci


def posterior_summary(results: Sequence[ChainResult], X: np.ndarray, y: np.ndarray, priors: Priors) -> dict[str, Any]:
    """The posterior summaries of ``results`` (the kept chains), by fitted-attribute name
    (``draws_``, ``trace_``, ``reference_``, ``weights_``, ``occupancy_``, ``coef_``, ...,
    ``coef_mixture_``, ``intercept_mixture_``; see :class:`~scrutiny.surrogate.DMMMEN`)."""
    out = SimpleNamespace()
    J = priors.n_components
    rel = relabel_chains([r.draws for r in results], X, y)
    draws = [canonical_penalty_order(d) for d in rel.draws]
    pooled = {k: np.concatenate([d[k] for d in draws], axis=0) for k in draws[0]}
    out.draws_ = draws
    out.trace_ = [r.trace for r in results]
    out.reference_ = rel.reference
    out.weights_ = pooled["pi"].mean(axis=0)
    z = pooled["z"].astype(np.int64)
    occupied = pooled["counts"] > 0  # (draws, J), relabelled with z
    out.occupancy_ = occupied.mean(axis=0)
    # a component's parameters are summarised over the draws in which it has samples: in the
    # others they are prior draws (sigma2 ~ IG(0.5, 0.5) has no finite mean), which would
    # swamp the regression the component stands for whenever it is occupied
    out.coef_, out.coef_ci_ = occupied_summary(pooled["beta"], occupied)
    out.intercept_, out.intercept_ci_ = occupied_summary(pooled["intercept"], occupied)
    out.sigma2_, out.sigma2_ci_ = occupied_summary(pooled["sigma2"], occupied)
    out.alpha_ = float(pooled["alpha"].mean())
    out.allocation_proba_ = np.stack([(z == h).mean(axis=0) for h in range(J)], axis=1)
    out.labels_ = np.argmax(out.allocation_proba_, axis=1)
    out.lambda1_ = pooled["lam1"].mean(axis=0)
    out.lambda2_ = pooled["lam2"].mean(axis=0)
    out.penalty_weights_ = pooled["w"].mean(axis=0)
    c = pooled["c"].astype(np.int64)
    out.penalty_proba_ = np.stack([(c == k).mean(axis=0) for k in range(priors.n_priors)], axis=1)
    # Rao-Blackwellised over empty components: given an allocation that leaves h empty, b0_h
    # and beta_h follow their prior, whose mean is 0, so their term's conditional mean is 0.
    # The raw draws would average prior draws whose scale has no finite variance (sigma2 ~
    # IG(0.5, 0.5)), so a single empty component with a huge prior draw could move every
    # prediction (tests/test_surrogate.py::test_prior_draws_of_empty_components_do_not_move_the_
    # mixture_prediction checks that such draws change nothing)
    pi_occ = pooled["pi"] * occupied
    out.coef_mixture_ = np.einsum("tj,tjp->p", pi_occ, pooled["beta"]) / pi_occ.shape[0]
    out.intercept_mixture_ = float(np.einsum("tj,tj->", pi_occ, pooled["intercept"]) / pi_occ.shape[0])
    return vars(out)
