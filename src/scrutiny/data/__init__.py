"""Data sets and image segmentation.

* :class:`Dataset`, the immutable container every loader returns, and :func:`train_test_split`;
* bundled scikit-learn data that work offline everywhere: :func:`load_digits` (as 1x8x8
  images), :func:`load_breast_cancer`, :func:`load_wine`, :func:`load_iris`;
* file-based data read from a directory (``data_dir``, default :func:`default_data_dir`):
  IDX files (:func:`load_idx`, :func:`save_idx`, :func:`load_mnist`,
  :func:`load_fashion_mnist`) and CSV (:func:`load_csv`, :func:`load_compas`,
  :func:`load_tabular_benchmark`), and the CORELS rule-list format (:func:`read_corels`);
* superpixels for perturbation explainers: :func:`segment`, :func:`slic_segments`,
  :func:`quickshift_segments`, :func:`grid_segments`, :func:`n_segments`, :func:`segment_masks`.

Importing this package imports neither scikit-learn nor scikit-image; they are imported by the
functions that need them.

>>> from scrutiny.data import load_digits, segment
>>> digits = load_digits()
>>> int(segment(digits.X[0], method="grid", cell=2).max())
15
"""

from __future__ import annotations

from ._bundled import load_breast_cancer, load_digits, load_iris, load_wine
from ._dataset import Dataset, train_test_split
from ._paths import DATA_DIR_ENV_VAR, default_data_dir
from .corels import CorelsData, read_corels
from .idx import FASHION_MNIST_CLASSES, load_fashion_mnist, load_idx, load_mnist, save_idx
from .segmentation import grid_segments, n_segments, quickshift_segments, segment, segment_masks, slic_segments
from .tabular import TABULAR_BENCHMARKS, load_compas, load_csv, load_tabular_benchmark

__all__ = [
    "Dataset",
    "train_test_split",
    "default_data_dir",
    "DATA_DIR_ENV_VAR",
    # bundled
    "load_digits",
    "load_breast_cancer",
    "load_wine",
    "load_iris",
    # IDX
    "load_idx",
    "save_idx",
    "load_mnist",
    "load_fashion_mnist",
    "FASHION_MNIST_CLASSES",
    # CSV
    "load_csv",
    "load_compas",
    "load_tabular_benchmark",
    "TABULAR_BENCHMARKS",
    # CORELS format
    "read_corels",
    "CorelsData",
    # segmentation
    "segment",
    "slic_segments",
    "quickshift_segments",
    "grid_segments",
    "n_segments",
    "segment_masks",
]
