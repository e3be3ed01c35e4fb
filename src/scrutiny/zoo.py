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

import hashlib
import inspect
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._validation import (
    Interval,
    Options,
    _describe,
    check_array,
    check_random_state,
    validate_params,
)
from .exceptions import (
    DataFormatError,
    InvalidParameterError,
    ModelError,
    ScrutinyWarning,
)

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

_FORMAT = "scrutiny-zoo-weights"
_FORMAT_VERSION = 1
# Part of every reference-model cache key: bump it when an architecture or the trainer changes.
_CACHE_VERSION = 1


# --------------------------------------------------------------------------- initialisation


def _torch_generator(random_state: Any) -> torch.Generator:
    """A CPU :class:`torch.Generator` seeded from ``random_state`` (int, numpy Generator or None)."""
    seed = int(check_random_state(random_state).integers(0, 2**63 - 1))
    return torch.Generator(device="cpu").manual_seed(seed)


_NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


@torch.no_grad()
def init_parameters(module: nn.Module, random_state: Any = 0) -> nn.Module:
    """Re-initialise every parameter of ``module`` in place, without touching global RNG state.

    Linear and convolution layers get PyTorch's default distributions, drawn from a private
    :class:`torch.Generator` seeded from ``random_state``: weights from
    ``kaiming_uniform_(a=sqrt(5))`` (i.e. ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``) and biases
    from ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``. Normalisation layers are reset to weight 1,
    bias 0. Parameters are visited in ``module.modules()`` order, so the result depends only
    on the architecture and the seed.

    Parameters
    ----------
    module : torch.nn.Module
        The module to re-initialise (e.g. a whole model, or one layer for a cascading
        randomization test).
    random_state : int, numpy.random.Generator or None, default=0
        Seed of the draws. The same int gives the same parameters on every call.

    Returns
    -------
    torch.nn.Module
        ``module`` itself.

    Raises
    ------
    InvalidParameterError
        If ``module`` holds parameters of a layer type whose default initialisation is not
        known here (anything other than Linear, ConvNd, ConvTransposeNd and norm layers).

    Notes
    -----
    With a generator seeded like ``torch.manual_seed(s)``, the draws are bit-identical to
    the ones PyTorch's own ``reset_parameters`` makes when the layers are constructed in
    the same order, so zoo models have exactly PyTorch's default initialisation.

    References
    ----------
    .. [1] K. He, X. Zhang, S. Ren, J. Sun. "Delving Deep into Rectifiers: Surpassing
       Human-Level Performance on ImageNet Classification." ICCV 2015.

    Examples
    --------
    >>> from scrutiny.zoo import make_model, init_parameters
    >>> model = make_model("mlp", (1, 8, 8), 10)
    >>> _ = init_parameters(model.classifier, random_state=1)  # randomise the top layer only
    """
    if not isinstance(module, nn.Module):
        raise InvalidParameterError(
            f"module must be a torch.nn.Module; got {_describe(module)}."
        )
    gen = _torch_generator(random_state)
    for sub in module.modules():
        own = list(sub.parameters(recurse=False))
        if not own:
            continue
        if isinstance(sub, (nn.Linear, nn.modules.conv._ConvNd)):
            nn.init.kaiming_uniform_(sub.weight, a=math.sqrt(5), generator=gen)
            if sub.bias is not None:
                fan_in, _ = nn.init._calculate_fan_in_and_fan_out(sub.weight)
                bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                nn.init.uniform_(sub.bias, -bound, bound, generator=gen)
        elif isinstance(sub, _NORM_LAYERS):
            if getattr(sub, "weight", None) is not None:
                nn.init.ones_(sub.weight)
            if getattr(sub, "bias", None) is not None:
                nn.init.zeros_(sub.bias)
        else:
            raise InvalidParameterError(
                f"init_parameters does not know the default initialisation of {type(sub).__name__} "
                f"(it holds parameters {[n for n, _ in sub.named_parameters(recurse=False)]}). "
                "Supported layers: Linear, Conv/ConvTranspose and normalisation layers; "
                "initialise other layers yourself with a torch.Generator."
            )
    return module


# --------------------------------------------------------------------------- models


def _check_shape(input_shape: Any, n_classes: Any, owner: str) -> tuple[tuple[int, ...], int]:
    if isinstance(input_shape, (int, np.integer)) and not isinstance(input_shape, bool):
        input_shape = (int(input_shape),)
    try:
        shape = tuple(int(s) for s in input_shape)
        ok = all(int(s) == s and s >= 1 for s in input_shape) and 1 <= len(shape) <= 3
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InvalidParameterError(
            f"{owner}: input_shape must be a tuple of 1 to 3 positive ints (n_features,) or "
            f"(channels, height, width); got {_describe(input_shape)}. "
            "For 8x8 digits use (1, 8, 8); for MNIST (1, 28, 28)."
        )
    validate_params(owner, {"n_classes": n_classes}, {"n_classes": [Interval(int, 2, None)]},
                    {"n_classes": "A classifier needs at least 2 classes."})
    return shape, int(n_classes)


class _ZooModel(nn.Module):
    """Shared plumbing: layers are created on the meta device, then materialised and
    initialised from a private generator, so construction never touches global RNG state."""

    input_shape: tuple[int, ...]
    n_classes: int
    n_features: int
    classifier: nn.Linear

    def _finish(self, random_state: Any) -> None:
        self.to_empty(device="cpu")
        init_parameters(self, random_state)

    def features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape ``(n_samples, n_classes)``; equals ``classifier(features(x))``."""
        return self.classifier(self.features(x))

    def _flat(self, x: torch.Tensor) -> torch.Tensor:
        n_in = math.prod(self.input_shape)
        if x.ndim < 2 or math.prod(x.shape[1:]) != n_in:
            raise InvalidParameterError(
                f"{type(self).__name__} expects inputs of shape (n_samples, {', '.join(map(str, self.input_shape))})"
                f" or (n_samples, {n_in}); got a tensor of shape {tuple(x.shape)}."
            )
        return x.reshape(x.shape[0], n_in)

    def config(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this architecture with :func:`make_model`."""
        raise NotImplementedError  # pragma: no cover - overridden

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "name")


class LogisticRegression(_ZooModel):
    """Multinomial logistic regression: flatten, then one linear layer.

    ``features(x)`` is the flattened input, so the whole model is its ``classifier``.

    Parameters
    ----------
    input_shape : int or tuple of int
        Shape of one sample, ``(n_features,)`` or ``(channels, height, width)``.
    n_classes : int
        Number of classes (outputs), at least 2.
    random_state : int, numpy.random.Generator or None, default=0
        Seed of the initial parameters (PyTorch's default distributions).

    Attributes
    ----------
    classifier : torch.nn.Linear
        The ``(prod(input_shape) -> n_classes)`` layer.
    n_features : int
        Width of ``features(x)``: ``prod(input_shape)``.

    Examples
    --------
    >>> import torch
    >>> from scrutiny.zoo import LogisticRegression
    >>> model = LogisticRegression((1, 8, 8), 10)
    >>> model(torch.zeros(5, 1, 8, 8)).shape
    torch.Size([5, 10])
    """

    def __init__(self, input_shape: Any, n_classes: int, *, random_state: Any = 0) -> None:
        super().__init__()
        self.input_shape, self.n_classes = _check_shape(input_shape, n_classes, "LogisticRegression")
        self.n_features = math.prod(self.input_shape)
        self.classifier = nn.Linear(self.n_features, self.n_classes, device="meta")
        self._finish(random_state)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The flattened input, shape ``(n_samples, prod(input_shape))``."""
        return self._flat(x)

    def config(self) -> dict[str, Any]:
        return {"name": "logistic", "input_shape": self.input_shape, "n_classes": self.n_classes}


_ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU, "tanh": nn.Tanh}


class MLP(_ZooModel):
    """Fully-connected network: flatten, ``len(hidden)`` linear+activation layers, linear head.

    Parameters
    ----------
    input_shape : int or tuple of int
        Shape of one sample, ``(n_features,)`` or ``(channels, height, width)``.
    n_classes : int
        Number of classes (outputs), at least 2.
    hidden : sequence of int, default=(128, 64)
        Widths of the hidden layers (at least one).
    activation : {"relu", "elu", "tanh"}, default="relu"
        Non-linearity after each hidden layer ("elu"/"tanh" give smooth Hessians, which
        influence functions prefer).
    random_state : int, numpy.random.Generator or None, default=0
        Seed of the initial parameters.

    Attributes
    ----------
    body : torch.nn.Sequential
        The hidden layers; ``features(x) == body(flatten(x))`` of width ``hidden[-1]``.
    classifier : torch.nn.Linear
        The ``(hidden[-1] -> n_classes)`` head.

    Examples
    --------
    >>> import torch
    >>> from scrutiny.zoo import MLP
    >>> model = MLP((1, 8, 8), 10, hidden=(32,), activation="tanh")
    >>> model.features(torch.zeros(5, 64)).shape
    torch.Size([5, 32])
    """

    def __init__(
        self,
        input_shape: Any,
        n_classes: int,
        hidden: Sequence[int] = (128, 64),
        activation: str = "relu",
        *,
        random_state: Any = 0,
    ) -> None:
        super().__init__()
        self.input_shape, self.n_classes = _check_shape(input_shape, n_classes, "MLP")
        hidden = _check_widths(hidden, "hidden", "MLP", "(128, 64)")
        validate_params("MLP", {"activation": activation}, {"activation": [Options(*_ACTIVATIONS)]})
        self.hidden, self.activation = hidden, activation
        layers: list[nn.Module] = []
        width = math.prod(self.input_shape)
        for h in hidden:
            layers += [nn.Linear(width, h, device="meta"), _ACTIVATIONS[activation]()]
            width = h
        self.body = nn.Sequential(*layers)
        self.n_features = width
        self.classifier = nn.Linear(width, self.n_classes, device="meta")
        self._finish(random_state)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Activations of the last hidden layer, shape ``(n_samples, hidden[-1])``."""
        return self.body(self._flat(x))

    def config(self) -> dict[str, Any]:
        return {"name": "mlp", "input_shape": self.input_shape, "n_classes": self.n_classes,
                "hidden": self.hidden, "activation": self.activation}


def _check_widths(widths: Any, name: str, owner: str, example: str) -> tuple[int, ...]:
    try:
        out = tuple(int(w) for w in widths)
        ok = len(out) >= 1 and all(int(w) == w and w >= 1 and not isinstance(w, bool) for w in widths)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InvalidParameterError(
            f"{owner}: {name} must be a non-empty sequence of positive ints; got {_describe(widths)}. "
            f"For example {name}={example}."
        )
    return out


class SmallCNN(_ZooModel):
    """A small convolutional network for 8x8 digits up to 28x28 MNIST-like images.

    Architecture: for each width ``c`` in ``channels``: ``Conv2d(3x3, padding=1) -> ReLU ->
    MaxPool2d(2)``; then flatten, ``Linear(-> hidden) -> ReLU`` (the features) and the
    ``Linear(hidden -> n_classes)`` head. With the default two blocks an 8x8 image is pooled
    to 2x2 and a 28x28 one to 7x7. No dropout and no batch norm, so train and eval mode
    compute the same function.

    Parameters
    ----------
    input_shape : tuple of int, default=(1, 28, 28)
        ``(channels, height, width)``; height and width must be at least ``2**len(channels)``.
    n_classes : int, default=10
        Number of classes (outputs), at least 2.
    channels : sequence of int, default=(16, 32)
        Output channels of the convolution blocks.
    hidden : int, default=128
        Width of the penultimate (feature) layer.
    random_state : int, numpy.random.Generator or None, default=0
        Seed of the initial parameters.

    Attributes
    ----------
    conv : torch.nn.Sequential
        The convolution blocks.
    fc : torch.nn.Linear
        The flatten -> ``hidden`` layer (followed by ReLU).
    classifier : torch.nn.Linear
        The ``(hidden -> n_classes)`` head.

    Examples
    --------
    >>> import torch
    >>> from scrutiny.zoo import SmallCNN
    >>> model = SmallCNN((1, 8, 8), 10)
    >>> model(torch.zeros(5, 1, 8, 8)).shape, model.features(torch.zeros(5, 1, 8, 8)).shape
    (torch.Size([5, 10]), torch.Size([5, 128]))
    """

    def __init__(
        self,
        input_shape: Any = (1, 28, 28),
        n_classes: int = 10,
        channels: Sequence[int] = (16, 32),
        hidden: int = 128,
        *,
        random_state: Any = 0,
    ) -> None:
        super().__init__()
        self.input_shape, self.n_classes = _check_shape(input_shape, n_classes, "SmallCNN")
        channels = _check_widths(channels, "channels", "SmallCNN", "(16, 32)")
        validate_params("SmallCNN", {"hidden": hidden}, {"hidden": [Interval(int, 1, None)]},
                        {"hidden": "128 is typical."})
        hidden = int(hidden)
        min_side = 2 ** len(channels)
        if len(self.input_shape) != 3 or min(self.input_shape[1:]) < min_side:
            raise InvalidParameterError(
                f"SmallCNN: input_shape must be (channels, height, width) with height and width >= "
                f"{min_side} (one 2x2 pooling per block of channels={channels}); got {self.input_shape}. "
                "Use fewer channel blocks, or MLP for tabular data."
            )
        self.channels, self.hidden = channels, hidden
        blocks: list[nn.Module] = []
        c_in, h, w = self.input_shape
        for c in channels:
            blocks += [nn.Conv2d(c_in, c, 3, padding=1, device="meta"), nn.ReLU(), nn.MaxPool2d(2)]
            c_in, h, w = c, h // 2, w // 2
        self.conv = nn.Sequential(*blocks)
        self.fc = nn.Linear(c_in * h * w, hidden, device="meta")
        self.n_features = hidden
        self.classifier = nn.Linear(hidden, self.n_classes, device="meta")
        self._finish(random_state)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Post-ReLU activations of the ``hidden`` layer, shape ``(n_samples, hidden)``."""
        x = self._flat(x).reshape(x.shape[0], *self.input_shape)
        return F.relu(self.fc(self.conv(x).flatten(1)))

    def config(self) -> dict[str, Any]:
        return {"name": "cnn", "input_shape": self.input_shape, "n_classes": self.n_classes,
                "channels": self.channels, "hidden": self.hidden}


_MODELS = {"logistic": LogisticRegression, "mlp": MLP, "cnn": SmallCNN}


def make_model(name: str, input_shape: Any, n_classes: int, random_state: Any = 0, **kwargs: Any) -> nn.Module:
    """Build a zoo model with deterministically initialised parameters.

    Parameters are drawn from PyTorch's default distributions through a private
    :class:`torch.Generator` seeded from ``random_state`` (see :func:`init_parameters`);
    the global torch and numpy RNG states are never read or advanced.

    Parameters
    ----------
    name : {"logistic", "mlp", "cnn"}
        :class:`LogisticRegression`, :class:`MLP` or :class:`SmallCNN`.
    input_shape : int or tuple of int
        Shape of one sample, e.g. ``(1, 8, 8)``.
    n_classes : int
        Number of classes.
    random_state : int, numpy.random.Generator or None, default=0
        Seed of the initial parameters; the same int gives identical parameters.
    **kwargs
        Architecture options of the class (``hidden``, ``activation``, ``channels``).

    Returns
    -------
    torch.nn.Module
        The model on CPU, float32, in eval mode.

    Examples
    --------
    >>> from scrutiny.zoo import make_model
    >>> model = make_model("cnn", (1, 8, 8), 10, random_state=0)
    >>> type(model).__name__, model.n_features
    ('SmallCNN', 128)
    """
    validate_params("make_model", {"name": name, "random_state": random_state},
                    {"name": [Options(*_MODELS)], "random_state": ["random_state"]})
    cls = _MODELS[name]
    allowed = [p for p in inspect.signature(cls).parameters if p not in ("input_shape", "n_classes", "random_state")]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise InvalidParameterError(
            f"make_model: unexpected option(s) {unknown} for {name!r} ({cls.__name__}); it accepts "
            f"{allowed if allowed else 'no options'}."
        )
    return cls(input_shape, n_classes, random_state=random_state, **kwargs).eval()


# --------------------------------------------------------------------------- training


@dataclass
class TrainingHistory:
    """What :func:`train_model` did, epoch by epoch.

    Attributes
    ----------
    epochs : int
        Number of epochs run.
    train_loss : list of float
        Mean cross-entropy over each epoch's mini-batches (computed on the fly, while the
        parameters change).
    train_accuracy : list of float
        Accuracy over each epoch's mini-batches (on the fly).
    val_accuracy : list of float or None
        Accuracy on ``(X_val, y_val)`` after each epoch, or None without validation data.
    final_train_accuracy : float
        Accuracy of the final model on the whole training set (one evaluation pass).
    final_val_accuracy : float or None
        Accuracy of the final model on the validation set.
    train_seconds : float
        Wall-clock time of the training loop (excluding the final evaluation).
    params : dict
        The training hyper-parameters (lr, batch_size, ...), random_state included.
    """

    epochs: int
    train_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    val_accuracy: list[float] | None = None
    final_train_accuracy: float = float("nan")
    final_val_accuracy: float | None = None
    train_seconds: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy."""
        return asdict(self)


def _first_param(model: nn.Module) -> torch.Tensor:
    p = next(iter(model.parameters()), None)
    if p is None:
        raise InvalidParameterError(
            f"model must have trainable parameters; {type(model).__name__} has none."
        )
    return p


def _as_inputs(model: nn.Module, X: Any, name: str) -> torch.Tensor:
    """``X`` as a float tensor on the model's device and dtype, checked against ``model.input_shape``."""
    if not isinstance(model, nn.Module):
        raise InvalidParameterError(
            f"model must be a torch.nn.Module; got {_describe(model)}. Build one with make_model(...)."
        )
    arr = check_array(X, name, ndim=None)
    if arr.ndim < 2:
        raise InvalidParameterError(
            f"{name} must have one row per sample (at least 2 dimensions); got an array of shape {arr.shape}. "
            f"For a single sample use {name}[None]."
        )
    shape = getattr(model, "input_shape", None)
    if shape is not None:
        shape = tuple(shape)
        if arr.shape[1:] != shape and not (arr.ndim == 2 and arr.shape[1] == math.prod(shape)):
            raise InvalidParameterError(
                f"{name} must have shape (n_samples, {', '.join(map(str, shape))}) (or flattened "
                f"(n_samples, {math.prod(shape)})) to match the model's input_shape; got {arr.shape}."
            )
    p = _first_param(model)
    return torch.as_tensor(arr, dtype=p.dtype if p.is_floating_point() else torch.float32, device=p.device)


def _as_labels(y: Any, n_samples: int, n_classes: int, name: str, x_name: str) -> np.ndarray:
    arr = check_array(y, name, ndim=1, dtype=None, min_samples=0)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.mod(arr, 1) == 0):
            raise InvalidParameterError(
                f"{name} must hold integer class labels; got non-integer values such as "
                f"{float(arr[np.mod(arr, 1) != 0][0])!r}. Encode classes as 0..n_classes-1."
            )
    elif not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.bool_)):
        raise InvalidParameterError(f"{name} must hold integer class labels; got dtype {arr.dtype}.")
    arr = arr.astype(np.int64)
    if arr.shape[0] != n_samples:
        raise InvalidParameterError(
            f"{name} must have one label per row of {x_name} ({n_samples}); got {arr.shape[0]} labels."
        )
    bad = (arr < 0) | (arr >= n_classes)
    if bad.any():
        raise InvalidParameterError(
            f"{name} must lie in [0, {n_classes - 1}] (the model has {n_classes} outputs); got "
            f"{int(arr[bad][0])}. Encode classes as 0..n_classes-1 (e.g. np.unique(y, return_inverse=True))."
        )
    return arr


def _n_outputs(model: nn.Module, X: torch.Tensor) -> int:
    n = getattr(model, "n_classes", None)
    if n is not None:
        return int(n)
    was_training = model.training
    try:
        with torch.no_grad():
            out = model.eval()(X[:1])
    finally:
        model.train(was_training)
    if out.ndim != 2 or out.shape[1] < 2:
        raise ModelError(
            f"model must return logits of shape (n_samples, n_classes >= 2); got {tuple(out.shape)}."
        )
    return int(out.shape[1])


def _accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    was_training = model.training
    model.eval()
    correct = 0
    try:
        with torch.no_grad():
            for start in range(0, X.shape[0], batch_size):
                pred = model(X[start:start + batch_size]).argmax(dim=1)
                correct += int((pred == y[start:start + batch_size]).sum())
    finally:
        model.train(was_training)
    return correct / X.shape[0]


def accuracy(model: nn.Module, X: Any, y: Any, batch_size: int = 1024) -> float:
    """Fraction of samples whose arg-max logit equals the label.

    Parameters
    ----------
    model : torch.nn.Module
        A classifier returning logits of shape ``(n_samples, n_classes)``.
    X : array-like of shape (n_samples, *input_shape)
        Inputs.
    y : array-like of shape (n_samples,)
        Integer labels in ``[0, n_classes)``.
    batch_size : int, default=1024
        Samples per forward pass.

    Returns
    -------
    float
        Accuracy in [0, 1]. The model's train/eval mode is restored afterwards.

    Examples
    --------
    >>> import numpy as np
    >>> from scrutiny.zoo import make_model, accuracy
    >>> model = make_model("logistic", (4,), 2)
    >>> 0.0 <= accuracy(model, np.zeros((3, 4)), [0, 1, 1]) <= 1.0
    True
    """
    validate_params("accuracy", {"batch_size": batch_size}, {"batch_size": [Interval(int, 1, None)]})
    Xt = _as_inputs(model, X, "X")
    yt = _as_labels(y, Xt.shape[0], _n_outputs(model, Xt), "y", "X")
    return _accuracy(model, Xt, torch.as_tensor(yt, device=Xt.device), int(batch_size))


_TRAIN_CONSTRAINTS = {
    "epochs": [Interval(int, 1, None)],
    "lr": [Interval(float, 0, None, closed="neither")],
    "batch_size": [Interval(int, 1, None)],
    "weight_decay": [Interval(float, 0, None)],
    "optimizer": [Options("adam", "sgd")],
    "momentum": [Interval(float, 0, 1, closed="left")],
    "lr_schedule": [Options("constant", "cosine")],
    "random_state": ["random_state"],
    "progress": ["boolean"],
    "callback": ["callable", None],
}
_TRAIN_HINTS = {
    "epochs": "Train for at least 1 epoch (10-30 is typical for the zoo models).",
    "lr": "1e-3 is typical with Adam, 0.05 with SGD.",
    "batch_size": "64 is typical.",
    "weight_decay": "Use 0 for none; 1e-4 is a mild L2 penalty.",
    "momentum": "Use 0.9 for SGD with momentum, 0 for plain SGD.",
    "callback": "Pass a function callback(epoch, model) or None.",
}


def train_model(
    model: nn.Module,
    X: Any,
    y: Any,
    *,
    epochs: int = 10,
    lr: float = 1e-3,
    batch_size: int = 64,
    weight_decay: float = 0.0,
    optimizer: str = "adam",
    momentum: float = 0.0,
    lr_schedule: str = "constant",
    random_state: Any = 0,
    X_val: Any = None,
    y_val: Any = None,
    progress: bool = False,
    callback: Callable[[int, nn.Module], Any] | None = None,
) -> TrainingHistory:
    """Train a classifier in place with mini-batch cross-entropy, deterministically.

    Mini-batches come from one permutation per epoch drawn from a numpy Generator derived
    from ``random_state``; nothing else is random, so on the same machine and thread count
    the same seed gives bit-identical weights. The global torch and numpy RNG states are
    not touched. The loss is the mean cross-entropy of the batch; ``weight_decay`` adds the
    L2 penalty ``weight_decay / 2 * ||theta||^2`` through the optimizer (classic, not
    decoupled, weight decay).

    Parameters
    ----------
    model : torch.nn.Module
        Maps ``(batch, *input_shape)`` float tensors to logits ``(batch, n_classes)``. Zoo
        models' ``input_shape`` and ``n_classes`` are checked against ``X`` and ``y``.
    X : array-like of shape (n_samples, *input_shape)
        Training inputs (numpy or torch; converted to the model's dtype, float32 for zoo
        models). Flattened ``(n_samples, prod(input_shape))`` is accepted too.
    y : array-like of shape (n_samples,)
        Integer labels in ``[0, n_classes)``.
    epochs : int, default=10
        Passes over the training set.
    lr : float, default=1e-3
        Learning rate.
    batch_size : int, default=64
        Mini-batch size (the last batch of an epoch may be smaller).
    weight_decay : float, default=0.0
        L2 penalty coefficient passed to the optimizer.
    optimizer : {"adam", "sgd"}, default="adam"
        :class:`torch.optim.Adam` or :class:`torch.optim.SGD`.
    momentum : float, default=0.0
        Momentum of SGD (ignored by Adam).
    lr_schedule : {"constant", "cosine"}, default="constant"
        ``"cosine"`` anneals the learning rate after every mini-batch from ``lr`` to 0
        over the ``epochs * ceil(n_samples / batch_size)`` steps (``lr * (1 + cos(pi * t / T)) / 2``).
    random_state : int, numpy.random.Generator or None, default=0
        Seed of the shuffling.
    X_val, y_val : array-like, optional
        Validation data; its accuracy is recorded after each epoch. Give both or neither.
    progress : bool, default=False
        Show a tqdm progress bar.
    callback : callable, optional
        ``callback(epoch, model)`` after each epoch, ``epoch`` counting completed epochs
        from 1; the model is in eval mode during the call (e.g. to save a checkpoint with
        :func:`save_weights`). Its return value is ignored.

    Returns
    -------
    TrainingHistory
        Per-epoch loss and accuracies and the final accuracies. The model is left in eval
        mode (also when training fails).

    Raises
    ------
    InvalidParameterError
        On a bad hyper-parameter, ``X`` not matching the model, or labels out of range.
    ModelError
        If the model's outputs have the wrong shape or the loss becomes NaN/inf.

    Examples
    --------
    >>> import numpy as np
    >>> from scrutiny.zoo import make_model, train_model
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 5)); y = (X[:, 0] > 0).astype(int)
    >>> model = make_model("logistic", (5,), 2)
    >>> history = train_model(model, X, y, epochs=20, lr=0.05)
    >>> history.final_train_accuracy > 0.9
    True
    """
    params = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "weight_decay": weight_decay,
              "optimizer": optimizer, "momentum": momentum, "lr_schedule": lr_schedule,
              "random_state": random_state, "progress": progress, "callback": callback}
    validate_params("train_model", params, _TRAIN_CONSTRAINTS, _TRAIN_HINTS)
    Xt = _as_inputs(model, X, "X")
    n_classes = _n_outputs(model, Xt)
    yt = torch.as_tensor(_as_labels(y, Xt.shape[0], n_classes, "y", "X"), device=Xt.device)
    if (X_val is None) != (y_val is None):
        raise InvalidParameterError(
            "X_val and y_val must be given together; got "
            f"{'X_val only' if y_val is None else 'y_val only'}. Pass both, or neither to skip validation."
        )
    if X_val is not None:
        Xv = _as_inputs(model, X_val, "X_val")
        yv = torch.as_tensor(_as_labels(y_val, Xv.shape[0], n_classes, "y_val", "X_val"), device=Xv.device)

    rng = check_random_state(random_state)
    if optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)

    history = TrainingHistory(
        epochs=int(epochs), val_accuracy=[] if X_val is not None else None,
        params={k: v for k, v in params.items() if k not in ("callback", "progress")},
    )
    if isinstance(random_state, np.random.Generator):
        history.params["random_state"] = "Generator"
    n = Xt.shape[0]
    n_batches = math.ceil(n / batch_size)
    total_steps = epochs * n_batches
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs * n_batches, desc=f"train {type(model).__name__}", unit="batch", leave=False)
    seconds = 0.0
    try:
        for epoch in range(1, epochs + 1):
            start_time = time.perf_counter()
            model.train()
            perm = torch.from_numpy(rng.permutation(n)).to(Xt.device)
            loss_sum, correct = 0.0, 0
            for b in range(n_batches):
                idx = perm[b * batch_size:(b + 1) * batch_size]
                xb, yb = Xt[idx], yt[idx]
                out = model(xb)
                if epoch == 1 and b == 0 and (out.ndim != 2 or out.shape != (len(idx), n_classes)):
                    raise ModelError(
                        f"model must return logits of shape (batch, {n_classes}); got {tuple(out.shape)} "
                        f"for a batch of {len(idx)}."
                    )
                loss = F.cross_entropy(out, yb)
                batch_loss = float(loss.detach())
                if not math.isfinite(batch_loss):  # checked before the step: the weights stay finite
                    raise ModelError(
                        f"train_model: the training loss became {batch_loss} in epoch {epoch}, batch {b + 1} "
                        f"(lr={lr}). Lower lr (or check the inputs' scale)."
                    )
                if lr_schedule == "cosine":
                    step = (epoch - 1) * n_batches + b
                    for group in opt.param_groups:
                        group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_sum += batch_loss * len(idx)
                correct += int((out.detach().argmax(dim=1) == yb).sum())
                if bar is not None:
                    bar.update(1)
            seconds += time.perf_counter() - start_time
            history.train_loss.append(loss_sum / n)
            history.train_accuracy.append(correct / n)
            model.eval()
            if X_val is not None:
                history.val_accuracy.append(_accuracy(model, Xv, yv, 1024))
            if bar is not None:
                post = {"epoch": epoch, "loss": f"{loss_sum / n:.4f}", "acc": f"{correct / n:.4f}"}
                if X_val is not None:
                    post["val_acc"] = f"{history.val_accuracy[-1]:.4f}"
                bar.set_postfix(post)
            if callback is not None:
                callback(epoch, model)
    finally:
        model.eval()
        if bar is not None:
            bar.close()
    history.train_seconds = seconds
    history.final_train_accuracy = _accuracy(model, Xt, yt, 1024)
    if X_val is not None:
        history.final_val_accuracy = history.val_accuracy[-1]
    return history


# --------------------------------------------------------------------------- weight files


def _architecture(model: nn.Module) -> dict[str, Any] | None:
    if isinstance(model, _ZooModel):
        cfg = model.config()
        return {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}
    return None


def save_weights(model: nn.Module, path: str | os.PathLike) -> Path:
    """Save the model's ``state_dict`` (plus a small architecture description) with :func:`torch.save`.

    The file holds only tensors, strings and numbers, so :func:`load_weights` can read it
    with ``torch.load(weights_only=True)``. The write is atomic (temporary file + rename).

    Parameters
    ----------
    model : torch.nn.Module
        The model whose parameters and buffers are saved (moved to CPU).
    path : str or path-like
        Destination file (conventionally ``*.pt``); parent directories are created.

    Returns
    -------
    pathlib.Path
        The path written.

    Examples
    --------
    >>> from scrutiny.zoo import make_model, save_weights, load_weights
    >>> model = make_model("mlp", (1, 8, 8), 10)
    >>> save_weights(model, "mlp.pt")              # doctest: +SKIP
    >>> load_weights(make_model("mlp", (1, 8, 8), 10, random_state=1), "mlp.pt")  # doctest: +SKIP
    """
    if not isinstance(model, nn.Module):
        raise InvalidParameterError(f"model must be a torch.nn.Module; got {_describe(model)}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": _FORMAT,
        "format_version": _FORMAT_VERSION,
        "architecture": _architecture(model),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_weights(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load weights saved by :func:`save_weights` (or a bare ``state_dict``) into ``model``.

    The file is read with ``torch.load(path, weights_only=True, map_location="cpu")``: it
    can hold tensors and plain containers only, never arbitrary pickled objects.

    Parameters
    ----------
    model : torch.nn.Module
        A model of the same architecture; modified in place and put in eval mode.
    path : str or path-like
        The weight file.

    Returns
    -------
    torch.nn.Module
        ``model``.

    Raises
    ------
    InvalidParameterError
        If the file does not exist or its parameters do not match ``model`` (the message
        lists missing, unexpected and mis-shaped entries and both architectures).
    DataFormatError
        If the file is not a weights file (corrupt, or holding non-tensor objects).
    """
    if not isinstance(model, nn.Module):
        raise InvalidParameterError(f"model must be a torch.nn.Module; got {_describe(model)}.")
    path = Path(path)
    if not path.is_file():
        raise InvalidParameterError(
            f"path must be an existing weight file; {str(path)!r} is not a file. Save one with save_weights(model, path)."
        )
    try:
        payload = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # UnpicklingError, RuntimeError (zip), EOFError ...
        text = str(exc)
        if "WeightsUnpickler error:" in text:  # name the offending object, not torch's how-to-bypass advice
            text = text.split("WeightsUnpickler error:", 1)[1].split(" was not an allowed", 1)[0].strip()
            reason = f"it holds Python objects other than tensors ({text})"
        else:
            reason = f"{type(exc).__name__}: {text.splitlines()[0][:200] if text else ''}"
        raise DataFormatError(
            f"{str(path)!r} is not a readable weights file: {reason}. Only files holding tensors and plain "
            "containers (e.g. written by save_weights) can be loaded; arbitrary pickles are refused for safety."
        ) from exc
    arch = None
    if isinstance(payload, dict) and payload.get("format") == _FORMAT:
        state, arch = payload.get("state_dict"), payload.get("architecture")
    else:
        state = payload
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataFormatError(
            f"{str(path)!r} does not hold a state_dict (a dict of tensors); got {type(state).__name__}."
        )
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mis_shaped = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                  for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or mis_shaped:
        parts = []
        if missing:
            parts.append(f"missing from the file: {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"not in the model: {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
        if mis_shaped:
            parts.append(f"shape mismatch: {mis_shaped[:5]}{' ...' if len(mis_shaped) > 5 else ''}")
        saved = f" The file was saved from {arch}." if arch else ""
        ours = _architecture(model)
        raise InvalidParameterError(
            f"The weights in {str(path)!r} do not fit {type(model).__name__}"
            f"{f' {ours}' if ours else ''}: {'; '.join(parts)}.{saved} "
            "Build the model with the same architecture (make_model with the same name, input_shape, "
            "n_classes and options) before loading."
        )
    model.load_state_dict(state)
    return model.eval()


# --------------------------------------------------------------------------- reference models


@dataclass(frozen=True)
class Recipe:
    """A fixed training recipe for :func:`reference_model` (hashed into the cache key)."""

    epochs: int
    lr: float = 1e-3
    batch_size: int = 64
    weight_decay: float = 0.0
    optimizer: str = "adam"
    momentum: float = 0.0
    lr_schedule: str = "constant"
    model_kwargs: tuple[tuple[str, Any], ...] = ()

    def key(self) -> str:
        """A short hash of the recipe (and of the zoo's cache version)."""
        blob = json.dumps({"recipe": asdict(self), "version": _CACHE_VERSION}, sort_keys=True, default=list)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


# Chosen on 2 CPU cores (see benchmarks/zoo.py for the measured accuracies and times).
RECIPES: dict[tuple[str, str], Recipe] = {
    ("logistic", "digits"): Recipe(epochs=50, lr=3e-2, batch_size=64, lr_schedule="cosine"),
    ("mlp", "digits"): Recipe(epochs=40, lr=2e-3, batch_size=32, lr_schedule="cosine"),
    ("cnn", "digits"): Recipe(epochs=30, lr=2e-3, batch_size=32, lr_schedule="cosine"),
    ("logistic", "mnist"): Recipe(epochs=20, lr=5e-3, batch_size=64, lr_schedule="cosine"),
    ("mlp", "mnist"): Recipe(epochs=20, lr=2e-3, batch_size=64, lr_schedule="cosine"),
    ("cnn", "mnist"): Recipe(epochs=8, lr=2e-3, batch_size=64, lr_schedule="cosine"),
    ("logistic", "fashion-mnist"): Recipe(epochs=20, lr=5e-3, batch_size=64, lr_schedule="cosine"),
    ("mlp", "fashion-mnist"): Recipe(epochs=20, lr=2e-3, batch_size=64, lr_schedule="cosine"),
    ("cnn", "fashion-mnist"): Recipe(epochs=8, lr=2e-3, batch_size=64, lr_schedule="cosine"),
}

#: The test-accuracy targets that benchmarks/zoo.py checks.
TARGETS: dict[tuple[str, str], float] = {
    ("cnn", "digits"): 0.97,
    ("cnn", "mnist"): 0.98,
    ("cnn", "fashion-mnist"): 0.88,
}


def _default_cache_dir() -> Path:
    env = os.environ.get("SCRUTINY_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "scrutiny"


def _load_split(dataset: str, data_dir: Any) -> tuple[Any, Any, dict[str, Any]]:
    from . import data

    if dataset == "digits":
        full = data.load_digits()
        split = {"method": "train_test_split", "test_size": 0.25, "random_state": 0, "stratify": True}
        train, test = data.train_test_split(full, test_size=0.25, random_state=0, stratify=True)
        return train, test, split
    loader = data.load_mnist if dataset == "mnist" else data.load_fashion_mnist
    train = loader(data_dir=data_dir, split="train")
    test = loader(data_dir=data_dir, split="test")
    return train, test, {"method": "files", "train": train.name, "test": test.name}


def reference_model(
    name: str,
    dataset: str = "digits",
    *,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    random_state: int = 0,
    progress: bool = False,
    retrain: bool = False,
) -> tuple[nn.Module, dict[str, Any]]:
    """A zoo model trained on a standard dataset with a fixed recipe, cached on disk.

    The first call trains the model with ``RECIPES[(name, dataset)]`` and saves its
    weights to ``cache_dir``; later calls with the same name, dataset, seed and recipe
    load them (the cache key contains a hash of the recipe, so changing a recipe never
    returns stale weights). The test accuracy is always recomputed.

    Parameters
    ----------
    name : {"logistic", "mlp", "cnn"}
        Architecture (see :func:`make_model`).
    dataset : {"digits", "mnist", "fashion-mnist"}, default="digits"
        ``"digits"``: scikit-learn's 8x8 digits with a fixed stratified 75/25 split
        (``train_test_split(random_state=0)``; 1347 train, 450 test). ``"mnist"``: the
        MNIST training files found by :func:`scrutiny.data.load_mnist` (the full 60k set, or
        the 20k-image ``train20k`` subset when only that is present; ``n_train`` is part
        of the cache key) and the 10k test set. ``"fashion-mnist"``: the 60k training and
        10k test images.
    data_dir : str or path-like, optional
        Where the IDX files of MNIST / Fashion-MNIST live (see
        :func:`scrutiny.data.load_mnist`); unused for digits.
    cache_dir : str or path-like, optional
        Weight cache; default ``$SCRUTINY_CACHE_DIR`` or ``~/.cache/scrutiny``.
    random_state : int, default=0
        Seed of the initial parameters and of the shuffling (part of the cache key).
    progress : bool, default=False
        Show a progress bar while training.
    retrain : bool, default=False
        Train even if cached weights exist (and overwrite them).

    Returns
    -------
    model : torch.nn.Module
        The trained model, CPU float32, eval mode.
    info : dict
        ``name``, ``dataset``, ``test_accuracy``, ``train_accuracy``, ``n_train``,
        ``n_test``, ``train`` and ``test`` (the :class:`scrutiny.data.Dataset` objects
        used), ``split`` (how they were made), ``recipe``, ``recipe_key``,
        ``random_state``, ``train_seconds`` (of the original training run),
        ``from_cache``, ``cache_path`` and ``history`` (a dict, see
        :class:`TrainingHistory`).

    Examples
    --------
    >>> from scrutiny.zoo import reference_model
    >>> model, info = reference_model("cnn", "digits")          # doctest: +SKIP
    >>> info["test_accuracy"] > 0.97                            # doctest: +SKIP
    True
    """
    validate_params(
        "reference_model",
        {"name": name, "dataset": dataset, "random_state": random_state, "progress": progress, "retrain": retrain},
        {"name": [Options(*_MODELS)], "dataset": [Options("digits", "mnist", "fashion-mnist")],
         "random_state": [Interval(int, 0, None)], "progress": ["boolean"], "retrain": ["boolean"]},
        {"random_state": "reference_model needs an int seed because the seed is part of the cache key."},
    )
    recipe = RECIPES[(name, dataset)]
    train, test, split = _load_split(dataset, data_dir)
    model = make_model(name, train.image_shape, train.n_classes, random_state=random_state,
                       **dict(recipe.model_kwargs))
    cache = Path(cache_dir).expanduser() if cache_dir is not None else _default_cache_dir()
    # n_train is in the key: load_mnist falls back to a 20k subset when the full files are absent.
    stem = f"{name}-{dataset}-n{len(train.y)}-seed{int(random_state)}-{recipe.key()}"
    weights_path, meta_path = cache / f"{stem}.pt", cache / f"{stem}.json"

    from_cache, meta = False, None
    if not retrain and weights_path.is_file() and meta_path.is_file():
        try:
            load_weights(model, weights_path)
            meta = json.loads(meta_path.read_text())
            if not (isinstance(meta, dict) and "train_seconds" in meta and isinstance(meta.get("history"), dict)):
                raise ValueError(f"incomplete metadata in {str(meta_path)!r}")
            from_cache = True
        except (InvalidParameterError, DataFormatError, ValueError, OSError, KeyError, TypeError) as exc:
            warnings.warn(f"Ignoring the unreadable cache entry {str(weights_path)!r} ({exc}); retraining.",
                          ScrutinyWarning, stacklevel=2)
            model = make_model(name, train.image_shape, train.n_classes, random_state=random_state,
                               **dict(recipe.model_kwargs))
    if not from_cache:
        history = train_model(
            model, train.X, train.y, epochs=recipe.epochs, lr=recipe.lr, batch_size=recipe.batch_size,
            weight_decay=recipe.weight_decay, optimizer=recipe.optimizer, momentum=recipe.momentum,
            lr_schedule=recipe.lr_schedule,
            random_state=random_state, progress=progress,
        )
        meta = {"train_seconds": history.train_seconds, "history": history.to_dict()}
        try:
            save_weights(model, weights_path)
            tmp = meta_path.with_name(f".{meta_path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(meta, indent=1, default=str))
            os.replace(tmp, meta_path)
        except OSError as exc:
            warnings.warn(f"Could not write the cache entry {str(weights_path)!r} ({exc}); "
                          "the model will be retrained next time.", ScrutinyWarning, stacklevel=2)
    info = {
        "name": name,
        "dataset": dataset,
        "test_accuracy": accuracy(model, test.X, test.y),
        "train_accuracy": meta["history"].get("final_train_accuracy"),
        "n_train": len(train.y),
        "n_test": len(test.y),
        "train": train,
        "test": test,
        "split": split,
        "recipe": asdict(recipe),
        "recipe_key": recipe.key(),
        "random_state": int(random_state),
        "train_seconds": meta["train_seconds"],
        "from_cache": from_cache,
        "cache_path": str(weights_path),
        "history": meta["history"],
    }
    return model, info
