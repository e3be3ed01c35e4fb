"""scrutiny: explain and audit machine-learning models.

Public names are loaded lazily (PEP 562): ``import scrutiny`` imports neither torch nor
matplotlib; they are imported the first time a name that needs them is used.

>>> import scrutiny
>>> model = scrutiny.as_model(fitted_sklearn_classifier)      # doctest: +SKIP
>>> model.predict_proba(X).shape                              # doctest: +SKIP
(n_samples, n_classes)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    # models
    "Model": "scrutiny.models",
    "DifferentiableModel": "scrutiny.models",
    "ModelAdapter": "scrutiny.models",
    "TorchModel": "scrutiny.models",
    "SklearnModel": "scrutiny.models",
    "CallableModel": "scrutiny.models",
    "as_model": "scrutiny.models",
    # results
    "Explanation": "scrutiny.explanation",
    "DataAttribution": "scrutiny.explanation",
    "MetricResult": "scrutiny.explanation",
    "Result": "scrutiny.explanation",
    "load_result": "scrutiny.explanation",
    # local attributions
    "Saliency": "scrutiny.attribution",
    "GradientXInput": "scrutiny.attribution",
    "IntegratedGradients": "scrutiny.attribution",
    "SmoothGrad": "scrutiny.attribution",
    "LIME": "scrutiny.attribution",
    "CLIME": "scrutiny.attribution",
    "KernelSHAP": "scrutiny.attribution",
    "Occlusion": "scrutiny.attribution",
    "GradientSHAP": "scrutiny.attribution",
    "DeepLIFT": "scrutiny.attribution",
    "GradCAM": "scrutiny.attribution",
    "GuidedBackprop": "scrutiny.attribution",
    "TreeSHAP": "scrutiny.attribution",
    # global surrogates
    "DMMMEN": "scrutiny.surrogate",
    "DMMMENExplainer": "scrutiny.attribution",
    "scrutability_test": "scrutiny.surrogate",
    "crafted_samples_test": "scrutiny.surrogate",
    # training-data attribution
    "InfluenceFunctions": "scrutiny.data_attribution",
    "RepresenterPoints": "scrutiny.data_attribution",
    "NNK": "scrutiny.nnk",
    # interpretable models
    "RuleListClassifier": "scrutiny.glassbox",
    "RiskScoreClassifier": "scrutiny.glassbox",
    "compare_models": "scrutiny.glassbox",
    # randomization diagnostics
    "randomization_test": "scrutiny.diagnostics",
    "sanity_check": "scrutiny.diagnostics",
    "RandomizationResult": "scrutiny.diagnostics",
    "SanityCheckResult": "scrutiny.diagnostics",
    # exceptions
    "ScrutinyError": "scrutiny.exceptions",
    "InvalidParameterError": "scrutiny.exceptions",
    "NotFittedError": "scrutiny.exceptions",
    "MissingDependencyError": "scrutiny.exceptions",
    "CapabilityError": "scrutiny.exceptions",
    "ModelError": "scrutiny.exceptions",
    "DataFormatError": "scrutiny.exceptions",
}
_SUBMODULES = {"attribution", "data_attribution", "metrics", "nnk", "diagnostics", "glassbox", "surrogate", "data", "zoo", "models", "explanation", "exceptions", "cli", "viz", "distributed"}

__all__ = sorted(_LAZY) + sorted(_SUBMODULES) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(f"scrutiny.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'scrutiny' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
