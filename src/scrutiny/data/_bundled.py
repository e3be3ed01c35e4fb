"""Data sets bundled with scikit-learn: available offline everywhere, the default for demos and tests."""

from __future__ import annotations

import numpy as np

from ._dataset import Dataset

__all__ = ["load_digits", "load_breast_cancer", "load_wine", "load_iris", "pixel_names"]


def pixel_names(height: int, width: int, channels: int = 1) -> tuple[str, ...]:
    """Feature names of an image flattened in C order.

    ``"pixel_r_c"`` for one channel, ``"pixel_k_r_c"`` (channel ``k``) for several.

    Examples
    --------
    >>> pixel_names(2, 2)
    ('pixel_0_0', 'pixel_0_1', 'pixel_1_0', 'pixel_1_1')
    """
    if channels == 1:
        return tuple(f"pixel_{r}_{c}" for r in range(height) for c in range(width))
    return tuple(f"pixel_{k}_{r}_{c}" for k in range(channels) for r in range(height) for c in range(width))


def load_digits() -> Dataset:
    """The scikit-learn 8x8 handwritten digits as images.

    Returns
    -------
    Dataset
        ``X`` of shape (1797, 1, 8, 8), float64 in [0, 1] (scikit-learn's 0-16 counts divided
        by 16); ``y`` int64 digits 0-9; ``feature_names`` ``"pixel_r_c"`` (64 names, C order);
        ``target_names`` ``"0"`` ... ``"9"``.

    Examples
    --------
    >>> from scrutiny.data import load_digits
    >>> ds = load_digits()
    >>> ds.X.shape, ds.image_shape, ds.n_classes
    ((1797, 1, 8, 8), (1, 8, 8), 10)
    """
    from sklearn import datasets

    bunch = datasets.load_digits()
    X = np.asarray(bunch.images, dtype=np.float64)[:, None, :, :] / 16.0
    return Dataset(
        X=X,
        y=np.asarray(bunch.target, dtype=np.int64),
        feature_names=pixel_names(8, 8),
        target_names=tuple(str(d) for d in range(10)),
        name="digits",
        description=(
            "UCI optical recognition of handwritten digits as bundled with scikit-learn: 1,797 grayscale "
            "8x8 images (pixel counts 0-16 divided by 16), labels 0-9."
        ),
    )


def _tabular(loader_name: str, name: str, description: str) -> Dataset:
    from sklearn import datasets

    bunch = getattr(datasets, loader_name)()
    return Dataset(
        X=np.asarray(bunch.data, dtype=np.float64),
        y=np.asarray(bunch.target, dtype=np.int64),
        feature_names=tuple(str(f) for f in bunch.feature_names),
        target_names=tuple(str(t) for t in bunch.target_names),
        name=name,
        description=description,
    )


def load_breast_cancer() -> Dataset:
    """The Wisconsin diagnostic breast cancer data (scikit-learn's copy).

    Returns
    -------
    Dataset
        ``X`` of shape (569, 30) float64 (unscaled); ``y`` int64 with scikit-learn's coding
        ``0 = "malignant"``, ``1 = "benign"``; scikit-learn's feature and target names.

    Examples
    --------
    >>> from scrutiny.data import load_breast_cancer
    >>> ds = load_breast_cancer()
    >>> ds.X.shape, ds.target_names
    ((569, 30), ('malignant', 'benign'))
    """
    return _tabular(
        "load_breast_cancer",
        "breast_cancer",
        "Wisconsin diagnostic breast cancer (scikit-learn): 569 tumours, 30 real-valued features, "
        "0 = malignant (212), 1 = benign (357).",
    )


def load_wine() -> Dataset:
    """The UCI wine recognition data (scikit-learn's copy).

    Returns
    -------
    Dataset
        ``X`` of shape (178, 13) float64 (unscaled); ``y`` int64 classes 0-2
        (``"class_0"``, ``"class_1"``, ``"class_2"``).

    Examples
    --------
    >>> from scrutiny.data import load_wine
    >>> load_wine().X.shape
    (178, 13)
    """
    return _tabular(
        "load_wine",
        "wine",
        "UCI wine recognition (scikit-learn): 178 wines from three cultivars, 13 chemical measurements.",
    )


def load_iris() -> Dataset:
    """Fisher's iris data (scikit-learn's copy).

    Returns
    -------
    Dataset
        ``X`` of shape (150, 4) float64 in cm; ``y`` int64 classes 0-2 (``"setosa"``,
        ``"versicolor"``, ``"virginica"``).

    Examples
    --------
    >>> from scrutiny.data import load_iris
    >>> load_iris().feature_names[0]
    'sepal length (cm)'
    """
    return _tabular(
        "load_iris",
        "iris",
        "Fisher's iris (scikit-learn): 150 flowers, 4 measurements in cm, 3 species (50 each).",
    )
