"""Global surrogates: DMM-MEN, the Dirichlet-process mixture of regressions with multiple elastic nets.

* :class:`DMMMEN` (``dmm_men.py``): the scikit-learn style estimator;
* :mod:`~scrutiny.surrogate.mcmc`: the pure sampler kernels (``init``, ``step``, ``run_chain``)
  over :class:`State`, with the full conditionals in :mod:`~scrutiny.surrogate.conditionals`;
* :mod:`~scrutiny.surrogate.relabel`: Cron & West (2011) relabelling;
* :mod:`~scrutiny.surrogate.diagnostics`: rank-normalised R-hat, bulk/tail ESS, top-k stability.

References
----------
Guo, W., Huang, S., Tao, Y., Xing, X. & Lin, L. (2018). Explaining deep learning models - a
Bayesian non-parametric approach. NeurIPS 31.
"""

from __future__ import annotations

from .conditionals import Data, Priors, Settings, State, log_joint, log_likelihood, make_data, responsibilities
from .diagnostics import chain_diagnostics, ess_bulk, ess_tail, rhat, to_inferencedata, topk_stability
from .dmm_men import DMMMEN
from .mcmc import ChainResult, Info, init, run_chain, sample_prior, sample_y, step, with_data
from .relabel import RelabelResult, apply_permutations, canonical_penalty_order, relabel_chains, relabel_permutations

__all__ = [
    "DMMMEN",
    "Priors",
    "Settings",
    "State",
    "Data",
    "Info",
    "ChainResult",
    "make_data",
    "init",
    "step",
    "run_chain",
    "sample_prior",
    "sample_y",
    "with_data",
    "log_joint",
    "log_likelihood",
    "responsibilities",
    "RelabelResult",
    "relabel_chains",
    "relabel_permutations",
    "apply_permutations",
    "canonical_penalty_order",
    "rhat",
    "ess_bulk",
    "ess_tail",
    "topk_stability",
    "chain_diagnostics",
    "to_inferencedata",
]
