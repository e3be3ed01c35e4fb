"""Global surrogates: DMM-MEN, the Dirichlet-process mixture of regressions with multiple elastic nets.

* the estimator, :class:`DMMMEN` (``dmm_men.py``): scikit-learn's contract, with
  :meth:`DMMMEN.from_model` (fit one class of a black box, ``from_model.py``),
  :meth:`DMMMEN.explain` (``explain(X, *, response=None)``: per-sample explanations by the most
  probable component) and :meth:`DMMMEN.explain_global` (one :class:`GlobalInsight` per occupied
  component, ``insights.py``); posterior summaries in ``summary.py``;
* the sampler: the pure kernels ``init``, ``step`` and the one driver ``run_chain``
  (``mcmc.py``) over the state types of ``state.py`` (:class:`Priors`, :class:`Settings`,
  :class:`Data`, :class:`State`), with the full conditionals in ``conditionals.py``; running
  several chains, pilots and process pools in ``chains.py`` (:func:`chain_pool` shares one pool
  among the fits inside a ``with`` block);
* relabelling (``relabel.py``, Cron & West 2011) and convergence diagnostics (``convergence.py``:
  rank-normalised R-hat, bulk/tail ESS, top-k stability);
* scrutability (``scrutability.py``): :func:`scrutability_test` and :func:`crafted_samples_test`,
  the paper's fidelity tests of global insights (:class:`ScrutabilityResult`,
  :class:`CraftedSamplesResult`).

Every result type here (:class:`GlobalInsight`, :class:`ScrutabilityResult`,
:class:`CraftedSamplesResult`) saves with ``result.save(path)`` and reloads with
:func:`scrutiny.load_result`. The local explainer built on DMM-MEN, ``DMMMENExplainer``, lives in
:mod:`scrutiny.attribution` (``scrutiny.surrogate.DMMMENExplainer`` is a deprecated alias, kept
one release).

References
----------
Guo, W., Huang, S., Tao, Y., Xing, X. & Lin, L. (2018). Explaining deep learning models - a
Bayesian non-parametric approach. NeurIPS 31.
"""

from __future__ import annotations

from typing import Any

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
from .chains import chain_pool
from .dmm_men import DMMMEN
from .insights import GlobalInsight
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
    "with_data",
]

#: names that moved to :mod:`scrutiny.attribution` (kept here one release, with a DeprecationWarning)
_MOVED = {"DMMMENExplainer": "scrutiny.attribution", "uniform_size_masks": "scrutiny.attribution.dmm_men"}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        import importlib
        import warnings

        warnings.warn(
            f"scrutiny.surrogate.{name} is deprecated: use {_MOVED[name]}.{name} (the local explainer lives with "
            "the other local explainers). The alias will be removed in the next release.",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module 'scrutiny.surrogate' has no attribute {name!r}")
