"""Reader for the CORELS input format (``.out`` antecedents, ``.label`` labels, ``.minor``).

Each file holds one line per item: a name in braces followed by one ``0``/``1`` per sample,
separated by spaces, e.g. ``{age:18-20} 1 0 0 1 ...``. ``.out`` has one line per antecedent,
``.label`` one line per class (exactly one ``1`` per sample across the lines), and the optional
``.minor`` a single line marking the equivalent-points minority (CORELS's ``data.minor``).

>>> data = read_corels("compas_train.out")                      # doctest: +SKIP
>>> data.X.shape, data.target_names                             # doctest: +SKIP
((6489, 155), ('recidivate-within-two-years:No', 'recidivate-within-two-years:Yes'))

References
----------
Angelino, Larus-Stone, Alabi, Seltzer, Rudin. Learning certifiably optimal rule lists for
categorical data. JMLR 18 (2018).
"""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np

from ..exceptions import DataFormatError

__all__ = ["CorelsData", "read_corels"]


class CorelsData(NamedTuple):
    """The contents of a CORELS data set.

    X : ndarray of shape (n_samples, n_antecedents), uint8 (0/1): antecedent ``j`` holds for sample ``i``.
    y : ndarray of shape (n_samples,), int64 class index (the line of ``.label`` holding the 1), or None.
    feature_names : tuple of str, the antecedent names without braces.
    target_names : tuple of str or None, the class names without braces.
    minor : ndarray of shape (n_samples,), bool, or None: the ``.minor`` vector.
    """

    X: np.ndarray
    y: np.ndarray | None
    feature_names: tuple
    target_names: tuple | None
    minor: np.ndarray | None


def _read_lines(path: str, kind: str) -> tuple[list[str], np.ndarray]:
    try:
        with open(path, encoding="utf-8") as fh:
            lines = [line.split() for line in fh if line.strip()]
    except OSError as exc:
        raise DataFormatError(f"cannot read the CORELS {kind} file {path!r}: {exc}. Check the path.") from exc
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"the CORELS {kind} file {path!r} is not text: {exc}.") from exc
    if not lines:
        raise DataFormatError(f"the CORELS {kind} file {path!r} is empty; expected lines '{{name}} 0 1 0 ...'.")
    names, rows = [], []
    width = None
    for number, parts in enumerate(lines, start=1):
        name = parts[0]
        if not (name.startswith("{") and name.endswith("}")) or len(name) < 3:
            raise DataFormatError(
                f"{path!r} line {number}: expected a name in braces such as '{{age:18-20}}' first; got {name[:40]!r}."
            )
        bits = parts[1:]
        if width is None:
            width = len(bits)
        if len(bits) != width or width == 0:
            raise DataFormatError(
                f"{path!r} line {number}: {len(bits)} values, but the first line has {width}; every line needs one "
                "0/1 per sample."
            )
        if any(b not in ("0", "1") for b in bits):
            bad = next(b for b in bits if b not in ("0", "1"))
            raise DataFormatError(f"{path!r} line {number}: values must be 0 or 1; got {bad[:20]!r}.")
        names.append(name[1:-1])
        rows.append(np.frombuffer("".join(bits).encode("ascii"), dtype=np.uint8) - ord("0"))
    return names, np.array(rows, dtype=np.uint8)


def read_corels(out_path: str | os.PathLike, label_path: str | os.PathLike | None = None,
                minor_path: str | os.PathLike | None = None) -> CorelsData:
    """Read a CORELS data set.

    Parameters
    ----------
    out_path : path
        The ``.out`` antecedent file.
    label_path : path, optional
        The ``.label`` file; by default the ``.out`` path with ``.label``, when that file exists.
    minor_path : path, optional
        The ``.minor`` file; by default the ``.out`` path with ``.minor``, when that file exists.

    Returns
    -------
    CorelsData

    Raises
    ------
    DataFormatError
        On a missing or malformed file: no braces around a name, values other than 0/1, lines of
        different lengths, a sample count that differs between files, or a sample with no or two
        labels.
    """
    out_path = os.fspath(out_path)
    stem = out_path[:-4] if out_path.endswith(".out") else out_path
    if label_path is None and os.path.exists(stem + ".label"):
        label_path = stem + ".label"
    if minor_path is None and os.path.exists(stem + ".minor"):
        minor_path = stem + ".minor"
    names, rows = _read_lines(out_path, "antecedent (.out)")
    n_samples = rows.shape[1]
    y = target_names = minor = None
    if label_path is not None:
        label_path = os.fspath(label_path)
        target_names, labels = _read_lines(label_path, "label (.label)")
        if labels.shape[1] != n_samples:
            raise DataFormatError(
                f"{label_path!r} has {labels.shape[1]} samples but {out_path!r} has {n_samples}; they must describe the "
                "same samples."
            )
        per_sample = labels.sum(axis=0)
        if labels.shape[0] < 2 or np.any(per_sample != 1):
            bad = int(np.flatnonzero(per_sample != 1)[0]) if labels.shape[0] >= 2 else 0
            raise DataFormatError(
                f"{label_path!r}: every sample needs exactly one 1 across the label lines (one line per class, at least "
                f"two); sample {bad} has {int(per_sample[bad])} in {labels.shape[0]} line(s)."
            )
        y = np.argmax(labels, axis=0).astype(np.int64)
        target_names = tuple(target_names)
    if minor_path is not None:
        minor_path = os.fspath(minor_path)
        _, m = _read_lines(minor_path, "minority (.minor)")
        if m.shape != (1, n_samples):
            raise DataFormatError(
                f"{minor_path!r} must hold one line of {n_samples} values; got {m.shape[0]} line(s) of {m.shape[1]}."
            )
        minor = m[0].astype(bool)
    return CorelsData(X=np.ascontiguousarray(rows.T), y=y, feature_names=tuple(names), target_names=target_names, minor=minor)
