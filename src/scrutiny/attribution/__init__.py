"""Local attributions: why did the model produce this output for this input?

Gradient methods (``gradient.py``: Saliency, GradientXInput, IntegratedGradients,
SmoothGrad) need a differentiable model; perturbation methods (``perturbation.py``: one
local-surrogate engine with LIME, C-LIME, KernelSHAP and Occlusion presets) work with any
model. Every method is ``Method(model, **params).explain(X, target=None) -> Explanation``.
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
