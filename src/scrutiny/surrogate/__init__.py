"""Global surrogates: DMM-MEN, the Dirichlet-process mixture of regressions with multiple elastic nets.

* :class:`DMMMEN` (``dmm_men.py``): the scikit-learn style estimator, with
  :meth:`DMMMEN.from_model` (fit one class of a black box), :meth:`DMMMEN.explain` (per-sample
  explanations by the most probable component) and :meth:`DMMMEN.explain_global` (one
  :class:`GlobalInsight` per occupied component); :func:`chain_pool` shares one process pool
  among the fits inside a ``with`` block;
* :class:`DMMMENExplainer` (``explainer.py``): the paper's individual explanations of images
  over superpixels, one DMM-MEN fit per image;
* :func:`scrutability_test` and :func:`crafted_samples_test` (``scrutability.py``): the paper's
  fidelity tests of global insights (positive classification rates with bootstrap intervals,
  :class:`ScrutabilityResult`, :class:`CraftedSamplesResult`);
* :mod:`~scrutiny.surrogate.mcmc`: the pure sampler kernels (``init``, ``step``, ``run_chain``)
  over :class:`State`, with the full conditionals in :mod:`~scrutiny.surrogate.conditionals`;
* :mod:`~scrutiny.surrogate.relabel`: Cron & West (2011) relabelling;
* :mod:`~scrutiny.surrogate.convergence`: rank-normalised R-hat, bulk/tail ESS, top-k stability.

References
----------
Guo, W., Huang, S., Tao, Y., Xing, X. & Lin, L. (2018). Explaining deep learning models - a
Bayesian non-parametric approach. NeurIPS 31.
"""

from __future__ import annotations

from .conditionals import (
    Data,
    Priors,
    Settings,
    State,
    log_joint,
    log_likelihood,
    make_data,
    responsibilities,
)
from .convergence import (
    chain_diagnostics,
    ess_bulk,
    ess_tail,
    rhat,
    to_inferencedata,
    topk_stability,
)
from .dmm_men import DMMMEN, chain_pool
from .explainer import DMMMENExplainer, GlobalInsight, uniform_size_masks
from .mcmc import (
    ChainResult,
    Info,
    init,
    run_chain,
    sample_prior,
    sample_y,
    step,
    with_data,
)
from .relabel import (
    RelabelResult,
    apply_permutations,
    canonical_penalty_order,
    relabel_chains,
    relabel_permutations,
)
from .scrutability import (
    CraftedSamplesResult,
    ScrutabilityResult,
    crafted_samples_test,
    scrutability_test,
)

__all__ = [
    "DMMMEN",
    "chain_pool",
    "ChainResult",
    "CraftedSamplesResult",
    "DMMMENExplainer",
    "Data",
    "GlobalInsight",
    "Info",
    "Priors",
    "RelabelResult",
    "ScrutabilityResult",
    "Settings",
    "State",
    "apply_permutations",
    "canonical_penalty_order",
    "chain_diagnostics",
    "crafted_samples_test",
    "ess_bulk",
    "ess_tail",
    "init",
    "log_joint",
    "log_likelihood",
    "make_data",
    "relabel_chains",
    "relabel_permutations",
    "responsibilities",
    "rhat",
    "run_chain",
    "sample_prior",
    "sample_y",
    "scrutability_test",
    "step",
    "to_inferencedata",
    "topk_stability",
    "uniform_size_masks",
    "with_data",
]
