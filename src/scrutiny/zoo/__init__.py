"""Small reference PyTorch models, a deterministic trainer and safe weight files.

The model zoo gives every other part of scrutiny (attribution, influence functions,
representer points, randomization tests, the demo) the same few well-understood models:

* :class:`LogisticRegression`, :class:`MLP` and :class:`SmallCNN`, each exposing
  ``features(x)`` (the penultimate activations) and a final :class:`torch.nn.Linear`
  called ``classifier`` such that ``model(x) == model.classifier(model.features(x))``;
* :func:`make_model`, which builds one of them with parameters drawn from a private
  :class:`torch.Generator` (PyTorch's default distributions, global RNG state untouched);
* :func:`train_model`, a deterministic CPU trainer (shuffling from a numpy Generator);
* :func:`save_weights` / :func:`load_weights`, which only ever unpickle tensors
  (``torch.load(..., weights_only=True)``);
* :func:`reference_model`, which trains a model on digits, MNIST or Fashion-MNIST with a
  fixed recipe, or loads it from a cache keyed by name, dataset, seed and recipe.

Outputs of every model are logits; inputs are float images of shape
``(n_samples, channels, height, width)`` (or ``(n_samples, n_features)`` for the
fully-connected models, which flatten whatever they get).
"""


from __future__ import annotations

from ._models import MLP, LogisticRegression, SmallCNN, init_parameters, make_model
from ._reference import RECIPES, TARGETS, Recipe, reference_model
from ._training import TrainingHistory, accuracy, train_model
from ._weights import load_weights, save_weights

__all__ = [
    "MLP",
    "RECIPES",
    "TARGETS",
    "LogisticRegression",
    "Recipe",
    "SmallCNN",
    "TrainingHistory",
    "accuracy",
    "init_parameters",
    "load_weights",
    "make_model",
    "reference_model",
    "save_weights",
    "train_model",
]
