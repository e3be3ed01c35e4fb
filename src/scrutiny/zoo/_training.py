"""The deterministic trainer and accuracy."""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._validation import (
    Interval,
    Options,
    _describe,
    check_array,
    check_random_state,
    validate_params,
)
from ..exceptions import (
    InvalidParameterError,
    ModelError,
)
from ..explanation import Result

# --------------------------------------------------------------------------- training


@dataclasses.dataclass(frozen=True, eq=False)
class TrainingHistory(Result):
    """What :func:`train_model` did, epoch by epoch (saved and reloaded like every result:
    ``history.save(path)``, :func:`scrutiny.load_result`).

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
        The training hyper-parameters (lr, minibatch_size, ...), random_state included.
    """

    epochs: int
    train_loss: list[float] = dataclasses.field(default_factory=list)
    train_accuracy: list[float] = dataclasses.field(default_factory=list)
    val_accuracy: list[float] | None = None
    final_train_accuracy: float = float("nan")
    final_val_accuracy: float | None = None
    train_seconds: float = 0.0
    params: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "train_loss", [float(v) for v in self.train_loss])
        set_(self, "train_accuracy", [float(v) for v in self.train_accuracy])
        if self.val_accuracy is not None:
            set_(self, "val_accuracy", [float(v) for v in self.val_accuracy])


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
    "minibatch_size": [Interval(int, 1, None)],
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
    "minibatch_size": "64 is typical.",
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
    minibatch_size: int = 64,
    weight_decay: float = 0.0,
    optimizer: str = "adam",
    momentum: float = 0.0,
    lr_schedule: str = "constant",
    random_state: Any = 0,
    X_val: Any = None,
    y_val: Any = None,
    progress: bool = False,
    callback: Callable[[int, nn.Module], Any] | None = None,
    batch_size: int | None = None,
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
    minibatch_size : int, default=64
        Samples per optimisation step (the last mini-batch of an epoch may be smaller). It
        changes the result, hence not ``batch_size``, which in scrutiny only ever chunks memory.
    weight_decay : float, default=0.0
        L2 penalty coefficient passed to the optimizer.
    optimizer : {"adam", "sgd"}, default="adam"
        :class:`torch.optim.Adam` or :class:`torch.optim.SGD`.
    momentum : float, default=0.0
        Momentum of SGD (ignored by Adam).
    lr_schedule : {"constant", "cosine"}, default="constant"
        ``"cosine"`` anneals the learning rate after every mini-batch from ``lr`` to 0
        over the ``epochs * ceil(n_samples / minibatch_size)`` steps (``lr * (1 + cos(pi * t / T)) / 2``).
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
    batch_size : int, optional
        Deprecated name of ``minibatch_size`` (kept one release; warns).

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
    if batch_size is not None:
        warnings.warn("train_model(batch_size=...) is deprecated and will be removed in the next release; use "
                      "train_model(minibatch_size=...) (a result-changing mini-batch; batch_size in scrutiny "
                      "only ever chunks memory).", DeprecationWarning, stacklevel=2)
        if minibatch_size != 64 and minibatch_size != batch_size:
            raise InvalidParameterError(
                f"train_model: got minibatch_size={minibatch_size!r} and the deprecated batch_size={batch_size!r}; "
                "pass minibatch_size only.")
        minibatch_size = batch_size
    params = {"epochs": epochs, "lr": lr, "minibatch_size": minibatch_size, "weight_decay": weight_decay,
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

    record = {k: v for k, v in params.items() if k not in ("callback", "progress")}
    if isinstance(random_state, np.random.Generator):
        record["random_state"] = "Generator"
    train_loss: list[float] = []
    train_accuracy: list[float] = []
    val_accuracy: list[float] | None = [] if X_val is not None else None
    n = Xt.shape[0]
    n_batches = math.ceil(n / minibatch_size)
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
                idx = perm[b * minibatch_size:(b + 1) * minibatch_size]
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
            train_loss.append(loss_sum / n)
            train_accuracy.append(correct / n)
            model.eval()
            if X_val is not None:
                val_accuracy.append(_accuracy(model, Xv, yv, 1024))
            if bar is not None:
                post = {"epoch": epoch, "loss": f"{loss_sum / n:.4f}", "acc": f"{correct / n:.4f}"}
                if X_val is not None:
                    post["val_acc"] = f"{val_accuracy[-1]:.4f}"
                bar.set_postfix(post)
            if callback is not None:
                callback(epoch, model)
    finally:
        model.eval()
        if bar is not None:
            bar.close()
    return TrainingHistory(
        epochs=int(epochs), train_loss=train_loss, train_accuracy=train_accuracy, val_accuracy=val_accuracy,
        final_train_accuracy=_accuracy(model, Xt, yt, 1024),
        final_val_accuracy=val_accuracy[-1] if X_val is not None else None,
        train_seconds=seconds, params=record,
    )
