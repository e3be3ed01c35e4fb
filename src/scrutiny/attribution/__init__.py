"""Local attributions: why did the model produce this output for this input?

Gradient methods (``gradient.py``: Saliency and GradientXInput in ``saliency.py``,
``integrated_gradients.py``, ``smoothgrad.py``) need a differentiable model; perturbation
methods (``perturbation.py``: one local-surrogate engine with LIME, C-LIME, KernelSHAP and
Occlusion presets) work with any model. Every method is
``Method(model, **params).explain(X, target=None) -> Explanation``; every method takes
``space`` (``"auto" | "raw" | "probability" | "log_odds"``: the space explained; ``"auto"`` is
the raw output for gradient methods, probabilities of classifiers for perturbation methods)
and ``feature_names`` (recorded on the Explanation).
"""

from __future__ import annotations

from ._base import Explainer, RawAttribution
from .gradient import GradientXInput, IntegratedGradients, Saliency, SmoothGrad, quadrature
from .perturbation import CLIME, LIME, KernelSHAP, Occlusion
from .dmm_men import DMMMENExplainer

__all__ = [
    "Explainer",
    "RawAttribution",
    "Saliency",
    "GradientXInput",
    "IntegratedGradients",
    "SmoothGrad",
    "quadrature",
    "LIME",
    "CLIME",
    "KernelSHAP",
    "Occlusion",
    "DMMMENExplainer",
]
