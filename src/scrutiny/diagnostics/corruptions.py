"""The corruptions of Zhang et al.'s randomization test, as pure functions of a Generator.

Every function takes arrays and a :class:`numpy.random.Generator` and returns new arrays (the
inputs are never changed). "Pixels" are the values of one sample in C order, so for tabular
data they are the feature columns.

* :func:`corrupt_labels` -- each training label replaced with probability ``p`` by a class drawn
  uniformly from the ``n_classes`` classes (the draw may land on the true class, so the expected
  fraction of changed labels is ``p * (1 - 1 / n_classes)``, 0.9p for ten classes);
* :func:`shuffle_pixels` -- one permutation of the pixel positions applied to every sample (train
  and test alike: pass them stacked, or the same permutation twice);
* :func:`random_pixels` -- an independent permutation per sample (each keeps its histogram);
* :func:`gaussian_inputs` -- i.i.d. Gaussian values with the data set's overall mean and variance.

:func:`parse_corruption` reads the names ``randomization_test`` accepts.

References
----------
.. [1] C. Zhang, S. Bengio, M. Hardt, B. Recht, O. Vinyals. "Understanding deep learning
   requires rethinking generalization." ICLR 2017 (Section 2).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..exceptions import InvalidParameterError

__all__ = ["CORRUPTIONS", "Corruption", "apply_corruption", "corrupt_labels", "gaussian_inputs", "parse_corruption",
           "random_pixels", "shuffle_pixels"]

#: the corruption names; partially corrupted labels are written ``"labels@p"`` with ``0 <= p <= 1``
CORRUPTIONS = ("true", "labels@p", "random_labels", "shuffled_pixels", "random_pixels", "gaussian")


class Corruption(NamedTuple):
    """A parsed corruption: its canonical name, its kind and the label-corruption rate (labels only)."""

    name: str
    kind: str  # "labels" | "shuffled_pixels" | "random_pixels" | "gaussian"
    rate: float  # probability of re-drawing a training label (0 for true labels; NaN for input corruptions)


def parse_corruption(spec: str) -> Corruption:
    """Read a corruption name (``"true"``, ``"labels@0.2"``, ``"random_labels"``, ``"shuffled_pixels"``,
    ``"random_pixels"``, ``"gaussian"``)."""
    if not isinstance(spec, str):
        raise InvalidParameterError(
            f"corruptions must hold names (strings); got {spec!r}. Known: {', '.join(CORRUPTIONS)}."
        )
    if spec == "true":
        return Corruption("true", "labels", 0.0)
    if spec == "random_labels":
        return Corruption("random_labels", "labels", 1.0)
    if spec in ("shuffled_pixels", "random_pixels", "gaussian"):
        return Corruption(spec, spec, float("nan"))
    if spec.startswith("labels@"):
        try:
            rate = float(spec[len("labels@"):])
        except ValueError:
            rate = float("nan")
        if not 0.0 <= rate <= 1.0:
            raise InvalidParameterError(
                f"corruptions: {spec!r} needs a rate p in [0, 1] after '@', e.g. 'labels@0.2'."
            )
        return Corruption(f"labels@{rate:g}", "labels", rate)
    raise InvalidParameterError(
        f"corruptions: unknown corruption {spec!r}. Known: {', '.join(CORRUPTIONS)} (with p in [0, 1], "
        "e.g. 'labels@0.5')."
    )


def corrupt_labels(y: np.ndarray, p: float, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Each label replaced with probability ``p`` by a uniform draw from ``range(n_classes)``.

    Returns
    -------
    ndarray of shape (n_samples,)
        The corrupted labels (int64). About ``p * (1 - 1 / n_classes)`` of them differ from ``y``.
    """
    y = np.asarray(y, dtype=np.int64)
    redraw = rng.random(y.shape[0]) < p
    new = rng.integers(0, n_classes, size=y.shape[0])
    return np.where(redraw, new, y)


def shuffle_pixels(X: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One permutation of the pixel positions, applied to every row; returns (X permuted, permutation)."""
    X = np.asarray(X)
    flat = X.reshape(X.shape[0], -1)
    perm = rng.permutation(flat.shape[1])
    return flat[:, perm].reshape(X.shape), perm


def random_pixels(X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An independent permutation of the pixel positions per row (each row keeps its histogram)."""
    X = np.asarray(X)
    flat = X.reshape(X.shape[0], -1)
    order = np.argsort(rng.random(flat.shape), axis=1)  # one uniform permutation per row
    return np.take_along_axis(flat, order, axis=1).reshape(X.shape)


def gaussian_inputs(X: np.ndarray, rng: np.random.Generator, mean: float | None = None,
                    std: float | None = None) -> np.ndarray:
    """I.i.d. Gaussian values of ``X``'s shape with the given (default: ``X``'s overall) mean and std."""
    X = np.asarray(X, dtype=np.float64)
    mean = float(X.mean()) if mean is None else float(mean)
    std = float(X.std()) if std is None else float(std)
    return rng.normal(mean, std, size=X.shape)


def apply_corruption(corruption: Corruption, X: np.ndarray, y: np.ndarray, X_test: np.ndarray, n_classes: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Corrupt a train/test pair: returns ``(X_train, y_train, X_test)``.

    Label corruptions change the training labels only; input corruptions change train and test
    inputs alike (one shared permutation for shuffled pixels; the training data's mean and
    variance for Gaussian inputs) and keep the labels.
    """
    if corruption.kind == "labels":
        y_new = corrupt_labels(y, corruption.rate, n_classes, rng) if corruption.rate > 0 else np.asarray(y)
        return X, y_new, X_test
    if corruption.kind == "shuffled_pixels":
        both, _ = shuffle_pixels(np.concatenate([X, X_test]), rng)
        return both[:X.shape[0]], y, both[X.shape[0]:]
    if corruption.kind == "random_pixels":
        return random_pixels(X, rng), y, random_pixels(X_test, rng)
    if corruption.kind == "gaussian":
        mean, std = float(np.mean(X)), float(np.std(X))
        return gaussian_inputs(X, rng, mean, std), y, gaussian_inputs(X_test, rng, mean, std)
    raise InvalidParameterError(f"unknown corruption kind {corruption.kind!r}.")  # pragma: no cover
