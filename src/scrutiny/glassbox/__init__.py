"""Interpretable (glass-box) models, certified where the problem allows it.

- :class:`RuleListClassifier` — certifiably optimal rule lists (the CORELS objective and bounds).
- :class:`RiskScoreClassifier` — sparse integer scoring systems (FasterRisk heuristic, RiskSLIM-style
  certification on SCIP).
- :func:`compare_models` — the lecture's question: is a glass box as accurate as the black box?

Names load lazily, so importing the package does not import numba or the solver.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> module that defines it
_LAZY = {
    "RuleListClassifier": "scrutiny.glassbox.rule_list",
    "RiskScoreClassifier": "scrutiny.glassbox.risk_score",
    "compare_models": "scrutiny.glassbox.compare",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'scrutiny.glassbox' has no attribute {name!r}")


def __dir__() -> list[str]:
    return list(__all__)
