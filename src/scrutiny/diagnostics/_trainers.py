"""Training one model to (near) zero training error while recording its learning curve.

Two backends behind one function, :func:`fit_recording`:

* torch modules train with :func:`scrutiny.zoo.train_model` (the zoo's deterministic trainer),
  with a callback that evaluates the full training set in eval mode after every epoch and stops
  at the first epoch whose training accuracy reaches ``stop_at``;
* scikit-learn estimators train epoch by epoch with ``partial_fit`` when they have it (so the
  curve exists), else with one ``fit`` (a curve of one point).

Stopping at the first epoch with 100% training accuracy follows the notes' reproduction
(interpretable-and-randomization-notes.md B.3): more epochs cannot change "epochs to 100%".
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from ..exceptions import InvalidParameterError, ModelError

__all__ = ["Curve", "fit_recording", "is_torch_module"]


class Curve(NamedTuple):
    """Per-epoch record of one training run (eval-mode, full training set)."""

    train_loss: np.ndarray  # (n_epochs,) mean cross-entropy on the training set after each epoch
    train_accuracy: np.ndarray  # (n_epochs,)
    test_accuracy: np.ndarray  # (n_epochs,) on the clean held-out set
    steps_per_epoch: int
    seconds: float


class _Stop(Exception):
    """Raised by the epoch callback to end training early (train_model has no stopping rule;
    its callback's exceptions propagate and the model is left in eval mode)."""


def is_torch_module(obj: Any) -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return isinstance(obj, torch.nn.Module)


def _torch_eval(module: Any, X: Any, y: Any, chunk: int = 2048) -> tuple[float, float]:
    import torch
    import torch.nn.functional as F

    loss, correct = 0.0, 0
    with torch.no_grad():
        for s in range(0, X.shape[0], chunk):
            out = module(X[s:s + chunk])
            loss += float(F.cross_entropy(out, y[s:s + chunk], reduction="sum"))
            correct += int((out.argmax(dim=1) == y[s:s + chunk]).sum())
    return loss / X.shape[0], correct / X.shape[0]


def _fit_torch(module: Any, X: np.ndarray, y: np.ndarray, X_test: np.ndarray, y_test: np.ndarray,
               train_params: dict, max_epochs: int, stop_at: float, seed: int) -> Curve:
    import time

    import torch

    from ..zoo import train_model

    params = dict(train_params)
    for key in ("epochs", "X_val", "y_val", "callback", "random_state"):
        if key in params:
            raise InvalidParameterError(
                f"train_params must not set {key!r}: randomization_test sets it (epochs from max_epochs, the "
                "seed from random_state, the evaluation itself). Remove it from the trainer config."
            )
    p = next(iter(module.parameters()), None)
    if p is None:
        raise InvalidParameterError("model_factory must return a module with trainable parameters.")
    Xt = torch.as_tensor(X.reshape(X.shape[0], *X.shape[1:]), dtype=p.dtype)
    yt = torch.as_tensor(y, dtype=torch.int64)
    Xv = torch.as_tensor(X_test, dtype=p.dtype)
    yv = torch.as_tensor(y_test, dtype=torch.int64)
    loss_c: list[float] = []
    acc_c: list[float] = []
    test_c: list[float] = []

    def callback(epoch: int, model: Any) -> None:
        loss, acc = _torch_eval(model, Xt, yt)
        loss_c.append(loss)
        acc_c.append(acc)
        test_c.append(_torch_eval(model, Xv, yv)[1])
        if acc >= stop_at:
            raise _Stop

    start = time.perf_counter()
    try:
        train_model(module, X, y, epochs=max_epochs, random_state=seed, callback=callback, **params)
    except _Stop:
        pass
    except TypeError as exc:
        raise InvalidParameterError(f"train_params holds an option train_model does not take: {exc}.") from exc
    seconds = time.perf_counter() - start
    minibatch = int(params.get("minibatch_size", 64))
    return Curve(np.array(loss_c), np.array(acc_c), np.array(test_c), math.ceil(X.shape[0] / minibatch), seconds)


def _fit_sklearn(estimator: Any, X: np.ndarray, y: np.ndarray, X_test: np.ndarray, y_test: np.ndarray,
                 max_epochs: int, stop_at: float, classes: np.ndarray) -> Curve:
    import time
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import log_loss

    Xf, Xv = X.reshape(X.shape[0], -1), X_test.reshape(X_test.shape[0], -1)
    loss_c: list[float] = []
    acc_c: list[float] = []
    test_c: list[float] = []

    def record() -> float:
        acc = float(np.mean(estimator.predict(Xf) == y))
        if hasattr(estimator, "predict_proba"):
            loss_c.append(float(log_loss(y, estimator.predict_proba(Xf), labels=classes)))
        else:
            loss_c.append(float("nan"))
        acc_c.append(acc)
        test_c.append(float(np.mean(estimator.predict(Xv) == y_test)))
        return acc

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if hasattr(estimator, "partial_fit"):
            for _ in range(max_epochs):
                estimator.partial_fit(Xf, y, classes=classes)
                if record() >= stop_at:
                    break
            batch = getattr(estimator, "batch_size", "auto")
            batch = min(200, Xf.shape[0]) if batch == "auto" else int(batch) if isinstance(batch, (int, np.integer)) else Xf.shape[0]
            steps = math.ceil(Xf.shape[0] / batch)
        else:
            estimator.fit(Xf, y)
            record()
            steps = 1
    return Curve(np.array(loss_c), np.array(acc_c), np.array(test_c), steps, time.perf_counter() - start)


def fit_recording(model: Any, X: np.ndarray, y: np.ndarray, X_test: np.ndarray, y_test: np.ndarray, *,
                  train_params: dict, max_epochs: int, stop_at: float, seed: int, classes: np.ndarray) -> Curve:
    """Train ``model`` (a fresh torch module or an unfitted scikit-learn estimator) and record its curve."""
    if is_torch_module(model):
        return _fit_torch(model, X, y, X_test, y_test, train_params, max_epochs, stop_at, seed)
    if hasattr(model, "fit") and hasattr(model, "predict"):
        if train_params:
            raise InvalidParameterError(
                "train_params is for torch models (options of scrutiny.zoo.train_model); set a scikit-learn "
                "estimator's options on the estimator itself."
            )
        return _fit_sklearn(model, X, y, X_test, y_test, max_epochs, stop_at, classes)
    raise ModelError(
        f"model_factory returned {type(model).__name__}, which is neither a torch.nn.Module nor a scikit-learn "
        "estimator. Return a fresh module (optionally with a dict of train_model options), or pass an estimator."
    )
