"""Randomization diagnostics: Zhang et al.'s memorisation test and sanity checks of explanations.

* :func:`randomization_test` -> :class:`RandomizationResult`: train the same model on true labels,
  partially corrupted and random labels, shuffled and random pixels and Gaussian inputs;
* :func:`sanity_check` -> :class:`SanityCheckResult`: does an explanation change when the model's
  parameters (cascading or one layer at a time) or its training labels are randomised?
* :mod:`~scrutiny.diagnostics.corruptions` and :mod:`~scrutiny.diagnostics.similarity`: the
  corruptions and the similarity measures, as plain functions.

Names are loaded lazily, so importing the package does not import torch.

The DeepNNK generalisation estimates that lived here moved to :mod:`scrutiny.nnk`; the old
names (``GeneralizationMonitor``, ``GeneralizationResult``, ``nnk_generalization``,
``OutOfSupport``, ``out_of_support``) still resolve for one release, each access warning with a
``DeprecationWarning`` that names the new import.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

#: public names -> defining module (loaded on first use)
_LAZY = {
    "randomization_test": "scrutiny.diagnostics.randomization",
    "sanity_check": "scrutiny.diagnostics.sanity",
    "RandomizationResult": "scrutiny.diagnostics.results",
    "SanityCheckResult": "scrutiny.diagnostics.results",
    "similarity": "scrutiny.diagnostics.similarity",
    "corruptions": "scrutiny.diagnostics.corruptions",
}

__all__: list[str] = sorted(_LAZY)

#: names that moved to :mod:`scrutiny.nnk` (kept here one release, with a DeprecationWarning)
_MOVED = {
    "GeneralizationMonitor": "scrutiny.nnk",
    "GeneralizationResult": "scrutiny.nnk",
    "nnk_generalization": "scrutiny.nnk",
    "OutOfSupport": "scrutiny.nnk",
    "out_of_support": "scrutiny.nnk",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        value = module if module.__name__.endswith("." + name) else getattr(module, name)
        globals()[name] = value
        return value
    if name in _MOVED:
        warnings.warn(
            f"scrutiny.diagnostics.{name} is deprecated and will be removed in the next release: use "
            f"`from {_MOVED[name]} import {name}` (the DeepNNK estimates live with NNK).",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module 'scrutiny.diagnostics' has no attribute {name!r}")


def __dir__() -> list[str]:
    return list(__all__)
