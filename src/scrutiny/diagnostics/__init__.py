"""Diagnostics of explanations (home of the coming randomization tests and sanity checks).

The DeepNNK generalisation estimates that lived here moved to :mod:`scrutiny.nnk`; the old
names (``GeneralizationMonitor``, ``GeneralizationResult``, ``nnk_generalization``,
``OutOfSupport``, ``out_of_support``) still resolve for one release, each access warning with a
``DeprecationWarning`` that names the new import.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

__all__: list[str] = []

#: names that moved to :mod:`scrutiny.nnk` (kept here one release, with a DeprecationWarning)
_MOVED = {
    "GeneralizationMonitor": "scrutiny.nnk",
    "GeneralizationResult": "scrutiny.nnk",
    "nnk_generalization": "scrutiny.nnk",
    "OutOfSupport": "scrutiny.nnk",
    "out_of_support": "scrutiny.nnk",
}


def __getattr__(name: str) -> Any:
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
