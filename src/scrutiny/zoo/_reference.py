"""Reference models trained with fixed recipes and cached on disk."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from torch import nn

from .._validation import (
    Interval,
    Options,
    validate_params,
)
from ..exceptions import (
    DataFormatError,
    InvalidParameterError,
    ScrutinyWarning,
)
from ._models import _MODELS, make_model
from ._training import accuracy, train_model
from ._weights import load_weights, save_weights

# Part of every reference-model cache key: bump it when an architecture or the trainer changes.
_CACHE_VERSION = 1

# --------------------------------------------------------------------------- reference models


@dataclass(frozen=True)
class Recipe:
    """A fixed training recipe for :func:`reference_model` (hashed into the cache key)."""

    epochs: int
    lr: float = 1e-3
    minibatch_size: int = 64
    weight_decay: float = 0.0
    optimizer: str = "adam"
    momentum: float = 0.0
    lr_schedule: str = "constant"
    model_kwargs: tuple[tuple[str, Any], ...] = ()

    def key(self) -> str:
        """A short hash of the recipe (and of the zoo's cache version).

        ``minibatch_size`` is hashed under its former name ``batch_size``: the rename changed no
        recipe, so weights cached before it stay valid (and are not retrained).
        """
        fields = asdict(self)
        fields["batch_size"] = fields.pop("minibatch_size")
        blob = json.dumps({"recipe": fields, "version": _CACHE_VERSION}, sort_keys=True, default=list)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


# Chosen on 2 CPU cores; benchmarks/zoo.py prints the accuracies and times they reach.
RECIPES: dict[tuple[str, str], Recipe] = {
    ("logistic", "digits"): Recipe(epochs=50, lr=3e-2, minibatch_size=64, lr_schedule="cosine"),
    ("mlp", "digits"): Recipe(epochs=40, lr=2e-3, minibatch_size=32, lr_schedule="cosine"),
    ("cnn", "digits"): Recipe(epochs=30, lr=2e-3, minibatch_size=32, lr_schedule="cosine"),
    ("logistic", "mnist"): Recipe(epochs=20, lr=5e-3, minibatch_size=64, lr_schedule="cosine"),
    ("mlp", "mnist"): Recipe(epochs=20, lr=2e-3, minibatch_size=64, lr_schedule="cosine"),
    ("cnn", "mnist"): Recipe(epochs=8, lr=2e-3, minibatch_size=64, lr_schedule="cosine"),
    ("logistic", "fashion-mnist"): Recipe(epochs=20, lr=5e-3, minibatch_size=64, lr_schedule="cosine"),
    ("mlp", "fashion-mnist"): Recipe(epochs=20, lr=2e-3, minibatch_size=64, lr_schedule="cosine"),
    ("cnn", "fashion-mnist"): Recipe(epochs=8, lr=2e-3, minibatch_size=64, lr_schedule="cosine"),
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
    from .. import data

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
            model, train.X, train.y, epochs=recipe.epochs, lr=recipe.lr, minibatch_size=recipe.minibatch_size,
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
