"""The :class:`Dataset` container shared by every loader, and :func:`train_test_split`."""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import _describe, check_array, check_random_state, validate_params
from ..exceptions import InvalidParameterError

__all__ = ["Dataset", "train_test_split"]


def _names(value: Any, field: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str) or not hasattr(value, "__iter__"):
        raise InvalidParameterError(
            f"Dataset: {field} must be a sequence of str or None; got {_describe(value)}. "
            f"Pass e.g. {field}=('a', 'b')."
        )
    names = tuple(value)
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        raise InvalidParameterError(
            f"Dataset: every entry of {field} must be a str; got {bad[0]!r}. Convert with [str(n) for n in names]."
        )
    return names


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """An immutable labelled data set.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
        Inputs, stored as float64. Tabular data are 2-D; images are 4-D, channel-first, with
        values in [0, 1] by convention (the loaders in :mod:`scrutiny.data` guarantee it).
    y : array-like of shape (n_samples,)
        Targets. Integer or boolean labels are stored as int64 class indices (they must be
        non-negative); float targets are stored as float64 and mean regression.
    feature_names : sequence of str, optional
        One name per feature, ``prod(X.shape[1:])`` names in C order (for images:
        ``"pixel_r_c"``).
    target_names : sequence of str, optional
        Class names, ``target_names[k]`` naming class ``k`` (classification), or a single name
        for the target of a regression.
    name : str
        Short identifier such as ``"mnist-test"``.
    description : str
        Free-text provenance (source files, subsets, quirks).

    Attributes
    ----------
    image_shape : tuple of int or None
        ``(C, H, W)`` for image data, ``None`` for tabular data.
    n_classes : int or None
        Number of classes (``None`` for regression).
    n_features : int
        ``prod(X.shape[1:])``.

    Notes
    -----
    The dataclass is frozen (fields cannot be reassigned) but the arrays are ordinary
    writable numpy arrays; treat them as read-only. :meth:`subset` and
    :func:`train_test_split` always copy.

    Examples
    --------
    >>> import numpy as np
    >>> from scrutiny.data import Dataset
    >>> ds = Dataset(np.zeros((4, 2)), np.array([0, 1, 1, 0]), feature_names=("a", "b"), name="toy")
    >>> len(ds), ds.n_classes, ds.image_shape
    (4, 2, None)
    >>> ds.subset([1, 2]).y
    array([1, 1])
    """

    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...] | None = None
    target_names: tuple[str, ...] | None = None
    name: str = "dataset"
    description: str = ""

    def __post_init__(self) -> None:
        X = check_array(self.X, "X", ndim=(2, 4), min_samples=0)
        if X.ndim == 4 and X.shape[1] not in (1, 2, 3, 4) and X.shape[-1] in (1, 3, 4):
            raise InvalidParameterError(
                f"Dataset: image arrays must be channel-first (n, C, H, W); got shape {X.shape}, which looks "
                "channel-last. Use X.transpose(0, 3, 1, 2)."
            )
        y = self._check_y(self.y, X.shape[0])
        feature_names = _names(self.feature_names, "feature_names")
        n_features = int(np.prod(X.shape[1:]))
        if feature_names is not None:
            if len(feature_names) != n_features:
                raise InvalidParameterError(
                    f"Dataset: feature_names must have one name per feature ({n_features} for X of shape "
                    f"{X.shape}); got {len(feature_names)} names."
                )
            if len(set(feature_names)) != len(feature_names):
                seen: set[str] = set()
                dup = ""
                for n in feature_names:
                    if n in seen:
                        dup = n
                        break
                    seen.add(n)
                raise InvalidParameterError(
                    f"Dataset: feature_names must be unique; {dup!r} appears more than once. Rename the duplicates."
                )
        target_names = _names(self.target_names, "target_names")
        if target_names is not None:
            if y.dtype == np.float64:
                if len(target_names) != 1:
                    raise InvalidParameterError(
                        f"Dataset: a regression target (float y) takes at most one target name; got "
                        f"{len(target_names)}. For classification pass integer labels."
                    )
            elif y.size and len(target_names) <= int(y.max()):
                raise InvalidParameterError(
                    f"Dataset: target_names must name every class; y contains class {int(y.max())} but only "
                    f"{len(target_names)} target_names were given."
                )
        if not isinstance(self.name, str):
            raise InvalidParameterError(f"Dataset: name must be a str; got {_describe(self.name)}.")
        if not isinstance(self.description, str):
            raise InvalidParameterError(f"Dataset: description must be a str; got {_describe(self.description)}.")
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "y", y)
        object.__setattr__(self, "feature_names", feature_names)
        object.__setattr__(self, "target_names", target_names)

    @staticmethod
    def _check_y(y: Any, n: int) -> np.ndarray:
        if y is None:
            raise InvalidParameterError("Dataset: y must be an array of targets; got None.")
        arr = np.asarray(y.detach().cpu().numpy() if hasattr(y, "detach") else y)
        if arr.ndim != 1:
            raise InvalidParameterError(
                f"Dataset: y must be 1-D with one target per sample; got shape {arr.shape}. "
                "For one-hot labels use y.argmax(axis=1)."
            )
        if np.issubdtype(arr.dtype, np.bool_) or np.issubdtype(arr.dtype, np.integer):
            arr = arr.astype(np.int64)
            if arr.size and arr.min() < 0:
                raise InvalidParameterError(
                    f"Dataset: integer labels must be class indices >= 0; got {int(arr.min())}. "
                    "Encode them with np.unique(y, return_inverse=True)."
                )
        elif np.issubdtype(arr.dtype, np.floating):
            arr = check_array(arr, "y", ndim=1, min_samples=0)
        else:
            raise InvalidParameterError(
                f"Dataset: y must hold integer class labels or float regression targets; got dtype {arr.dtype}. "
                "Encode string labels with np.unique(y, return_inverse=True) and pass the classes as target_names."
            )
        if arr.shape[0] != n:
            raise InvalidParameterError(
                f"Dataset: y must have one target per sample of X (len(X) == {n}); got len(y) == {arr.shape[0]}."
            )
        return arr

    # ------------------------------------------------------------------ accessors

    def __len__(self) -> int:
        return int(self.X.shape[0])

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, X={self.X.shape} {self.X.dtype}, y={self.y.shape} {self.y.dtype}, "
            f"n_classes={self.n_classes})"
        )

    @property
    def image_shape(self) -> tuple[int, int, int] | None:
        """``(C, H, W)`` for image data, ``None`` for tabular data."""
        if self.X.ndim == 4:
            c, h, w = self.X.shape[1:]
            return (int(c), int(h), int(w))
        return None

    @property
    def n_features(self) -> int:
        """Number of input features, ``prod(X.shape[1:])``."""
        return int(np.prod(self.X.shape[1:]))

    @property
    def n_classes(self) -> int | None:
        """Number of classes: ``len(target_names)`` if given, else ``max(y) + 1``; ``None`` for regression."""
        if self.y.dtype != np.int64:
            return None
        if self.target_names is not None:
            return len(self.target_names)
        return int(self.y.max()) + 1 if self.y.size else 0

    def subset(self, indices: Any) -> "Dataset":
        """A new :class:`Dataset` holding a copy of the selected samples.

        Parameters
        ----------
        indices : array-like of int, boolean mask of shape (n_samples,), or slice
            Which samples to keep (negative indices count from the end).

        Returns
        -------
        Dataset
            Same names and description, ``len(indices)`` samples.

        Examples
        --------
        >>> from scrutiny.data import load_iris
        >>> len(load_iris().subset(slice(0, 10)))
        10
        """
        n = len(self)
        if isinstance(indices, slice):
            idx = np.arange(n)[indices]
        else:
            idx = np.asarray(indices)
            if idx.dtype == np.bool_:
                if idx.shape != (n,):
                    raise InvalidParameterError(
                        f"Dataset.subset: a boolean mask must have shape ({n},); got {idx.shape}."
                    )
                idx = np.flatnonzero(idx)
            elif idx.size == 0:
                idx = idx.astype(np.int64)
            elif idx.dtype == object or not np.issubdtype(idx.dtype, np.integer):
                raise InvalidParameterError(
                    f"Dataset.subset: indices must be integers, a boolean mask or a slice; got {_describe(indices)}."
                )
            if idx.ndim != 1:
                raise InvalidParameterError(f"Dataset.subset: indices must be 1-D; got shape {idx.shape}.")
            if idx.size and (idx.min() < -n or idx.max() >= n):
                bad = idx[(idx < -n) | (idx >= n)][0]
                raise InvalidParameterError(
                    f"Dataset.subset: index {int(bad)} is out of range for a dataset of {n} samples "
                    f"(valid: {-n} to {n - 1})."
                )
        return Dataset(
            X=self.X[idx],
            y=self.y[idx],
            feature_names=self.feature_names,
            target_names=self.target_names,
            name=self.name,
            description=self.description,
        )


def train_test_split(
    dataset: Dataset, test_size: float | int = 0.25, random_state: Any = 0, stratify: bool = True
) -> tuple[Dataset, Dataset]:
    """Split a :class:`Dataset` into shuffled train and test parts.

    Parameters
    ----------
    dataset : Dataset
        The data to split.
    test_size : float in (0, 1) or int
        Fraction of samples (float) or number of samples (int, ``1 <= test_size < n``) in the
        test part.
    random_state : int, numpy.random.Generator or None
        Seed of the shuffle; the same int gives the same split every time. Global RNG state is
        never touched.
    stratify : bool
        Keep class proportions equal in both parts (classification only; ignored for float
        regression targets).

    Returns
    -------
    train, test : Dataset
        Copies, with the same names as ``dataset``.

    Raises
    ------
    InvalidParameterError
        On a bad ``test_size``/``random_state``, or when stratification is impossible (a class
        with a single sample, or fewer test samples than classes).

    Examples
    --------
    >>> from scrutiny.data import load_iris, train_test_split
    >>> train, test = train_test_split(load_iris(), test_size=0.2, random_state=0)
    >>> len(train), len(test)
    (120, 30)
    """
    from sklearn.model_selection import train_test_split as _sk_split

    if not isinstance(dataset, Dataset):
        raise InvalidParameterError(
            f"train_test_split: dataset must be a scrutiny.data.Dataset; got {_describe(dataset)}. "
            "Wrap arrays with Dataset(X, y)."
        )
    validate_params("train_test_split", {"stratify": stratify}, {"stratify": ["boolean"]})
    n = len(dataset)
    if n < 2:
        raise InvalidParameterError(f"train_test_split: dataset must have at least 2 samples; got {n}.")
    if isinstance(test_size, bool) or not isinstance(test_size, (numbers.Real, np.number)):
        raise InvalidParameterError(
            f"train_test_split: test_size must be a float in (0, 1) or an int in [1, {n - 1}]; got {test_size!r}."
        )
    if isinstance(test_size, (numbers.Integral, np.integer)):
        if not 1 <= int(test_size) <= n - 1:
            raise InvalidParameterError(
                f"train_test_split: an int test_size must lie in [1, {n - 1}] for {n} samples; got {test_size}."
            )
        size: float | int = int(test_size)
    else:
        if not 0.0 < float(test_size) < 1.0:
            raise InvalidParameterError(
                f"train_test_split: a float test_size must lie in (0, 1); got {test_size}. 0.25 is typical."
            )
        size = float(test_size)
    rng = check_random_state(random_state)
    seed = int(rng.integers(0, 2**31 - 1))
    strat = dataset.y if (stratify and dataset.y.dtype == np.int64) else None
    try:
        train_idx, test_idx = _sk_split(np.arange(n), test_size=size, random_state=seed, stratify=strat)
    except ValueError as exc:
        raise InvalidParameterError(
            f"train_test_split: cannot split {n} samples with test_size={test_size}, stratify={stratify} ({exc}). "
            "Pass stratify=False, or a test_size that leaves at least one sample of every class on each side."
        ) from exc
    note = f"part of train_test_split(test_size={test_size}, stratify={stratify})"

    def part(idx: np.ndarray, which: str) -> Dataset:
        text = f"{dataset.description} [{which} {note}]" if dataset.description else f"[{which} {note}]"
        return Dataset(
            X=dataset.X[idx],
            y=dataset.y[idx],
            feature_names=dataset.feature_names,
            target_names=dataset.target_names,
            name=dataset.name,
            description=text,
        )

    return part(train_idx, "train"), part(test_idx, "test")
