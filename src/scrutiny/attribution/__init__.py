"""Local attributions: why did the model produce this output for this input?

Gradient methods (``gradient.py``: Saliency and GradientXInput in ``saliency.py``,
``integrated_gradients.py``, ``smoothgrad.py``; ``gradient_shap.py``; and the methods that hook
the network's layers, ``deeplift.py``, ``cam.py`` (Grad-CAM) and ``guided_backprop.py``) need a
differentiable model; ``treeshap.py`` (exact Shapley values of scikit-learn tree models) reads
the fitted trees; perturbation
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
from .gradient_shap import GradientSHAP
from .deeplift import DeepLIFT
from .cam import GradCAM
from .guided_backprop import GuidedBackprop
from .dmm_men import DMMMENExplainer
from .treeshap import TreeSHAP

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
    "GradientSHAP",
    "DeepLIFT",
    "GradCAM",
    "GuidedBackprop",
    "TreeSHAP",
]
