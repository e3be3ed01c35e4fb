"""Faithfulness and robustness metrics of explanations, each returning a
:class:`~scrutiny.MetricResult` (per-sample values, mean, 95% interval, direction, parameters).

See :mod:`scrutiny.metrics._common` for the calling convention every metric follows.
"""

from __future__ import annotations

from .._lazy import lazy_module

_LAZY: dict[str, str] = {
    "keep_top_k": "removal",
    "remove_top_k": "removal",
    "deletion_curve": "removal",
    "insertion_curve": "removal",
    "road": "removal",
    "gaussian_blur": "removal",
    "evaluate": "evaluation",
    "EvaluationTable": "evaluation",
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
