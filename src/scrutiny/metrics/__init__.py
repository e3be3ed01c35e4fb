"""Faithfulness and robustness metrics of explanations, each returning a
:class:`~scrutiny.MetricResult` (per-sample values, mean, 95% interval, direction, parameters).

See :mod:`scrutiny.metrics._common` for the calling convention every metric follows.
"""

from __future__ import annotations

from .._lazy import lazy_module

_LAZY: dict[str, str] = {
    # perturbation and robustness metrics (perturbation.py)
    "infidelity": "perturbation",
    "sensitivity_max": "perturbation",
    "sensitivity_avg": "perturbation",
    "faithfulness_correlation": "perturbation",
    "pgi": "perturbation",
    "pgu": "perturbation",
}
__all__ = sorted(_LAZY)
__getattr__, __dir__ = lazy_module(__name__, _LAZY, __all__)
