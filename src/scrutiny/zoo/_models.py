"""Reference architectures and their seeded initialisation."""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._validation import (
    Interval,
    Options,
    _describe,
    check_random_state,
    validate_params,
)
from ..exceptions import (
    InvalidParameterError,
)

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
    With a private generator seeded with ``s``, the draws are bit-identical to
    the ones PyTorch's own ``reset_parameters`` makes (after seeding the global generator with ``s``) when the layers are constructed in
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
