"""IDX files (the format of the original MNIST distribution) and the MNIST / Fashion-MNIST loaders.

IDX layout: two zero bytes, a type-code byte, a byte giving the number of dimensions ``d``,
then ``d`` big-endian int32 sizes, then the data in C order (multi-byte types big-endian).
Files may be gzip-compressed; compression is detected from the content (``1f 8b``), not the
file name.

References
----------
Y. LeCun, C. Cortes, C. J. C. Burges, "The MNIST database of handwritten digits",
http://yann.lecun.com/exdb/mnist/ (file-format section).
H. Xiao, K. Rasul, R. Vollgraf, "Fashion-MNIST: a novel image dataset for benchmarking
machine learning algorithms", arXiv:1708.07747, 2017.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path
from typing import IO, Any

import numpy as np

from .._validation import _describe, validate_params, Options
from ..exceptions import DataFormatError, InvalidParameterError
from ._bundled import pixel_names
from ._dataset import Dataset
from ._paths import DATA_DIR_ENV_VAR, _candidate_dirs

__all__ = ["load_idx", "save_idx", "load_mnist", "load_fashion_mnist", "FASHION_MNIST_CLASSES"]

# type code -> big-endian dtype
_IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_TYPE_NAMES = {0x08: "uint8", 0x09: "int8", 0x0B: "int16", 0x0C: "int32", 0x0D: "float32", 0x0E: "float64"}
_CODE_OF = {np.dtype(name): code for code, name in _TYPE_NAMES.items()}
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 22  # 4 MiB

#: Fashion-MNIST class names, in label order.
FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


def _check_path(path: Any, owner: str) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidParameterError(f"{owner}: path must be a str or a path; got {_describe(path)}.")
    return Path(path).expanduser()


def _known_types() -> str:
    return ", ".join(f"0x{code:02X} ({name})" for code, name in _TYPE_NAMES.items())


def _read_exact(stream: IO[bytes], n: int) -> bytearray:
    """Read up to ``n`` bytes in chunks (never pre-allocating what a corrupt header claims)."""
    buf = bytearray()
    while len(buf) < n:
        chunk = stream.read(min(_CHUNK, n - len(buf)))
        if not chunk:
            break
        buf += chunk
    return buf


def _count_rest(stream: IO[bytes]) -> int:
    total = 0
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            return total
        total += len(chunk)


#: numpy's limit on array dimensions (an IDX byte allows 255)
_MAX_DIMS = 64


def _parse(stream: IO[bytes], where: str) -> np.ndarray:
    head = stream.read(4)
    if len(head) < 4:
        raise DataFormatError(
            f"{where}: expected a 4-byte IDX header (00 00 <type> <ndim>); found only {len(head)} byte(s). "
            "The file is empty or truncated."
        )
    if head[:2] != b"\x00\x00":
        raise DataFormatError(
            f"{where}: bad magic number: expected an IDX file starting with two zero bytes (00 00); found "
            f"{head[:2].hex(' ')}. This is not an IDX file (or a compressed format other than gzip)."
        )
    code, ndim = head[2], head[3]
    if code not in _IDX_TYPES:
        raise DataFormatError(
            f"{where}: unknown IDX type code 0x{code:02X}; expected one of {_known_types()}."
        )
    if ndim == 0:
        raise DataFormatError(f"{where}: the IDX header declares 0 dimensions; expected at least 1.")
    if ndim > _MAX_DIMS:
        raise DataFormatError(
            f"{where}: the IDX header declares {ndim} dimensions; numpy arrays have at most {_MAX_DIMS}. "
            "The file is corrupted or not an IDX file."
        )
    raw_dims = stream.read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise DataFormatError(
            f"{where}: truncated header: {ndim} dimension size(s) declared ({4 * ndim} bytes) but only "
            f"{len(raw_dims)} byte(s) follow the magic number."
        )
    dims = struct.unpack(f">{ndim}i", raw_dims)
    if any(d < 0 for d in dims):
        raise DataFormatError(f"{where}: the IDX header declares a negative dimension size: {dims}.")
    dtype = _IDX_TYPES[code]
    count = 1
    for d in dims:
        count *= d
    nbytes = count * dtype.itemsize
    data = _read_exact(stream, nbytes)
    if len(data) < nbytes:
        raise DataFormatError(
            f"{where}: truncated data: the header declares shape {tuple(dims)} of {_TYPE_NAMES[code]} "
            f"({nbytes} bytes) but only {len(data)} byte(s) follow. The file is incomplete; download it again."
        )
    extra = _count_rest(stream)
    if extra:
        raise DataFormatError(
            f"{where}: {extra} unexpected trailing byte(s) after the {nbytes} data bytes declared by the header "
            f"(shape {tuple(dims)} of {_TYPE_NAMES[code]}). The header is wrong or several files were concatenated."
        )
    arr = np.frombuffer(data, dtype=dtype).reshape(dims)
    native = dtype.newbyteorder("=")
    if dtype.itemsize == 1:
        return arr.view(native)  # backed by a bytearray: already writable, no copy
    return arr.astype(native)


def load_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed) into a numpy array.

    Parameters
    ----------
    path : str or path-like
        The file. Gzip compression is detected from its first two bytes (``1f 8b``), whatever
        its name, and decompressed as a stream.

    Returns
    -------
    numpy.ndarray of shape given by the header
        Native byte order, dtype from the type code: 0x08 uint8, 0x09 int8, 0x0B int16,
        0x0C int32, 0x0D float32, 0x0E float64.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    DataFormatError
        On a bad magic number, an unknown type code, zero dimensions, a truncated header or data,
        trailing bytes, or a corrupt gzip stream; the message names the file.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from scrutiny.data import load_idx, save_idx
    >>> path = os.path.join(tempfile.mkdtemp(), "a-idx2-ubyte.gz")
    >>> _ = save_idx(path, np.arange(6, dtype=np.uint8).reshape(2, 3))
    >>> load_idx(path)
    array([[0, 1, 2],
           [3, 4, 5]], dtype=uint8)
    """
    path = _check_path(path, "load_idx")
    if not path.exists():
        raise FileNotFoundError(f"load_idx: no such file: {str(path)!r}.")
    with open(path, "rb") as raw:
        compressed = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        if not compressed:
            return _parse(raw, f"IDX file {str(path)!r}")
        where = f"IDX file {str(path)!r} (gzip)"
        try:
            with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                return _parse(stream, where)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise DataFormatError(
                f"{where}: corrupt or truncated gzip stream ({exc}). The file is incomplete; download it again."
            ) from exc


def save_idx(path: str | os.PathLike, array: Any) -> Path:
    """Write an array as an IDX file; gzip-compressed if ``path`` ends in ``.gz``.

    Parameters
    ----------
    path : str or path-like
        Destination (overwritten).
    array : array-like of 1 to 255 dimensions
        dtype uint8, int8, int16, int32, float32 or float64 (written big-endian).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    InvalidParameterError
        On a dtype IDX cannot store (e.g. int64, bool) or 0 dimensions.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from scrutiny.data import load_idx, save_idx
    >>> path = save_idx(os.path.join(tempfile.mkdtemp(), "x.idx"), np.eye(2, dtype=np.float32))
    >>> load_idx(path).dtype
    dtype('float32')
    """
    path = _check_path(path, "save_idx")
    arr = np.asarray(array)
    code = _CODE_OF.get(arr.dtype.newbyteorder("=")) if arr.dtype.kind in "iuf" else None
    if code is None:
        raise InvalidParameterError(
            f"save_idx: array has dtype {arr.dtype}, which IDX cannot store; supported: "
            f"{', '.join(_TYPE_NAMES.values())}. Convert first, e.g. array.astype(np.int32)."
        )
    if not 1 <= arr.ndim <= 255:
        raise InvalidParameterError(
            f"save_idx: array must have 1 to 255 dimensions; got shape {arr.shape}. Use np.atleast_1d for a scalar."
        )
    if any(d >= 2**31 for d in arr.shape):
        raise InvalidParameterError(f"save_idx: every dimension must be < 2**31; got shape {arr.shape}.")
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}i", *arr.shape)
    payload = np.ascontiguousarray(arr, dtype=_IDX_TYPES[code]).tobytes()
    if str(path).endswith(".gz"):
        with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as out:
            out.write(header)
            out.write(payload)
    else:
        with open(path, "wb") as out:
            out.write(header)
            out.write(payload)
    return path


# --------------------------------------------------------------------------- MNIST-style pairs


def _find_file(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _find_pair(dirs: list[Path], stems: tuple[str, str]) -> tuple[Path, Path] | None:
    """The first directory holding both files of ``stems`` (raw preferred over .gz)."""
    for directory in dirs:
        images, labels = _find_file(directory, stems[0]), _find_file(directory, stems[1])
        if images is not None and labels is not None:
            return images, labels
        if images is not None or labels is not None:
            present, missing = (images, stems[1]) if images is not None else (labels, stems[0])
            raise FileNotFoundError(
                f"Found {str(present)!r} but not its companion {missing!r} (or {missing}.gz) in "
                f"{str(directory)!r}. Both the images and the labels file are needed."
            )
    return None


def _read_pair(images_path: Path, labels_path: Path, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    images = load_idx(images_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise DataFormatError(
            f"IDX file {str(images_path)!r}: expected images as a 3-D uint8 array (n, rows, cols); found "
            f"shape {images.shape} and dtype {images.dtype}."
        )
    labels = load_idx(labels_path)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataFormatError(
            f"IDX file {str(labels_path)!r}: expected labels as a 1-D integer array (n,); found shape "
            f"{labels.shape} and dtype {labels.dtype}."
        )
    if images.shape[0] != labels.shape[0]:
        raise DataFormatError(
            f"Image/label count mismatch: {str(images_path)!r} holds {images.shape[0]} images but "
            f"{str(labels_path)!r} holds {labels.shape[0]} labels; expected the same number. The files come "
            "from different sets or one is corrupt."
        )
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
        bad = labels[(labels < 0) | (labels >= n_classes)][0]
        raise DataFormatError(
            f"IDX file {str(labels_path)!r}: labels must lie in 0..{n_classes - 1}; found {int(bad)}."
        )
    return images, labels


def _load_image_pair(
    owner: str,
    data_dir: Any,
    split: Any,
    subfolder: str,
    display: str,
    target_names: tuple[str, ...],
    fallback: tuple[str, str] | None,
) -> Dataset:
    validate_params(
        owner, {"split": split}, {"split": [Options("train", "test")]},
        hints={"split": "Use split='train' or split='test'."},
    )
    prefix = "train" if split == "train" else "t10k"
    stems = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
    dirs = _candidate_dirs(data_dir, subfolder, owner)
    pair = _find_pair(dirs, stems)
    used_fallback = False
    if pair is None and split == "train" and fallback is not None:
        pair = _find_pair(dirs, fallback)
        used_fallback = pair is not None
    if pair is None:
        names = list(stems) + (list(fallback) if (split == "train" and fallback) else [])
        raise FileNotFoundError(
            f"{owner}: {display} {split} files not found. Looked for {', '.join(names)} (each raw or .gz) in "
            f"{', '.join(repr(str(d)) for d in dirs)}. Pass data_dir= the folder holding them (or its parent "
            f"with a {subfolder}/ subfolder), or set {DATA_DIR_ENV_VAR}."
        )
    images_path, labels_path = pair
    images, labels = _read_pair(images_path, labels_path, len(target_names))
    n, height, width = images.shape
    X = images.reshape(n, 1, height, width).astype(np.float64)
    X /= 255.0
    name = f"{subfolder}-{split}"
    description = (
        f"{display} {split} split: {n} grayscale {height}x{width} images scaled to [0, 1] (uint8 / 255), "
        f"read from {str(images_path)!r} and {str(labels_path)!r}."
    )
    if used_fallback:
        name = f"{subfolder}-train20k"
        description += (
            f" The full training files ({stems[0]}, {stems[1]}) were not found, so this is the "
            f"{n}-image training subset from the {fallback[0]} / {fallback[1]} fallback files."  # type: ignore[index]
        )
    return Dataset(
        X=X,
        y=labels.astype(np.int64),
        feature_names=pixel_names(height, width),
        target_names=target_names,
        name=name,
        description=description,
    )


def load_mnist(data_dir: str | os.PathLike | None = None, split: str = "train") -> Dataset:
    """The MNIST handwritten digits from IDX files.

    Parameters
    ----------
    data_dir : str, path-like or None
        The folder holding the files, or a parent holding them in a ``mnist/`` subfolder.
        ``None`` uses :func:`default_data_dir`.
    split : {"train", "test"}
        ``"test"`` reads ``t10k-images-idx3-ubyte`` / ``t10k-labels-idx1-ubyte``; ``"train"``
        reads ``train-images-idx3-ubyte`` / ``train-labels-idx1-ubyte`` and, when those are
        absent, falls back to the 20,000-image subset ``train20k-images-idx3-ubyte`` /
        ``train20k-labels-idx1-ubyte`` (the description and name ``"mnist-train20k"`` say so).
        Each file may be raw or have a ``.gz`` suffix.

    Returns
    -------
    Dataset
        ``X`` of shape (n, 1, 28, 28) float64 in [0, 1]; ``y`` int64 digits 0-9; name
        ``"mnist-train"``, ``"mnist-train20k"`` or ``"mnist-test"``.

    Raises
    ------
    FileNotFoundError
        Listing the names looked for and the directories searched.
    DataFormatError
        If a file is malformed or the image and label counts disagree.

    Examples
    --------
    >>> from scrutiny.data import load_mnist
    >>> test = load_mnist(split="test")           # doctest: +SKIP
    >>> test.X.shape                              # doctest: +SKIP
    (10000, 1, 28, 28)
    """
    return _load_image_pair(
        "load_mnist",
        data_dir,
        split,
        "mnist",
        "MNIST",
        tuple(str(d) for d in range(10)),
        ("train20k-images-idx3-ubyte", "train20k-labels-idx1-ubyte"),
    )


def load_fashion_mnist(data_dir: str | os.PathLike | None = None, split: str = "train") -> Dataset:
    """Fashion-MNIST (Zalando) from IDX files.

    Parameters
    ----------
    data_dir : str, path-like or None
        The folder holding the files, or a parent holding them in a ``fashion-mnist/``
        subfolder. ``None`` uses :func:`default_data_dir`.
    split : {"train", "test"}
        Reads ``{train,t10k}-{images-idx3,labels-idx1}-ubyte``, each raw or ``.gz``.

    Returns
    -------
    Dataset
        ``X`` of shape (n, 1, 28, 28) float64 in [0, 1]; ``y`` int64 classes 0-9 named by
        :data:`FASHION_MNIST_CLASSES`.

    Raises
    ------
    FileNotFoundError
        Listing the names looked for and the directories searched.
    DataFormatError
        If a file is malformed or the image and label counts disagree.

    Examples
    --------
    >>> from scrutiny.data import load_fashion_mnist
    >>> ds = load_fashion_mnist(split="test")     # doctest: +SKIP
    >>> ds.target_names[9]                        # doctest: +SKIP
    'Ankle boot'
    """
    return _load_image_pair(
        "load_fashion_mnist", data_dir, split, "fashion-mnist", "Fashion-MNIST", FASHION_MNIST_CLASSES, None
    )
