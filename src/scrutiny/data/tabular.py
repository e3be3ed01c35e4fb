"""Tabular data from CSV files: a general :func:`load_csv`, COMPAS, and the binarised benchmarks.

Only the standard library's :mod:`csv` and numpy are used (no pandas dependency).

References
----------
J. Angwin, J. Larson, S. Mattu, L. Kirchner, "Machine Bias", ProPublica, 2016 (COMPAS data).
E. Angelino, N. Larus-Stone, D. Alabi, M. Seltzer, C. Rudin, "Learning certifiably optimal rule
lists for categorical data", JMLR 18(234), 2018 (the CORELS COMPAS split).
B. Ustun, C. Rudin, "Learning optimized risk scores", JMLR 20(150), 2019 (the RiskSLIM benchmarks).
"""

from __future__ import annotations

import csv
import numbers
import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .._validation import Options, _describe, validate_params
from ..exceptions import DataFormatError, InvalidParameterError
from ._dataset import Dataset
from ._paths import DATA_DIR_ENV_VAR, _as_dir, _candidate_dirs

__all__ = ["load_csv", "load_compas", "load_tabular_benchmark", "TABULAR_BENCHMARKS"]

#: Names accepted by :func:`load_tabular_benchmark` in place of a path.
TABULAR_BENCHMARKS = ("adult", "breastcancer", "mammo", "mushroom", "spambase")


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_rows(path: Path, delimiter: str, owner: str) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, data rows and the file line number of each data row; blank lines are skipped."""
    if not path.is_file():
        raise FileNotFoundError(f"{owner}: no such file: {str(path)!r}.")
    header: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        try:
            for row in reader:
                if not row or all(not cell.strip() for cell in row):
                    continue
                if header is None:
                    header = [cell.strip() for cell in row]
                    continue
                if len(row) != len(header):
                    raise DataFormatError(
                        f"{owner}: {str(path)!r} line {reader.line_num} has {len(row)} field(s); expected "
                        f"{len(header)} like the header. Check the delimiter (delimiter={delimiter!r}) and quoting."
                    )
                rows.append(row)
                lines.append(reader.line_num)
        except csv.Error as exc:
            raise DataFormatError(f"{owner}: {str(path)!r} is not valid CSV ({exc}).") from exc
        except UnicodeDecodeError as exc:
            raise DataFormatError(
                f"{owner}: {str(path)!r} is not UTF-8 text (byte 0x{exc.object[exc.start]:02X} at offset "
                f"{exc.start} of a read block). Re-save it as UTF-8 (e.g. iconv -f latin1 -t utf-8)."
            ) from exc
    if header is None:
        raise DataFormatError(f"{owner}: {str(path)!r} is empty; expected a header row followed by data rows.")
    if all(_is_float(cell) for cell in header):
        raise DataFormatError(
            f"{owner}: the first row of {str(path)!r} looks like data ({header[:3]}...), not a header; "
            "load_csv needs a header row of column names. Add one."
        )
    for j, cell in enumerate(header):
        if not cell:
            raise DataFormatError(f"{owner}: column {j} of the header of {str(path)!r} has an empty name.")
    seen: set[str] = set()
    for cell in header:
        if cell in seen:
            raise DataFormatError(
                f"{owner}: the header of {str(path)!r} names column {cell!r} more than once; column names must be unique."
            )
        seen.add(cell)
    if not rows:
        raise DataFormatError(f"{owner}: {str(path)!r} has a header but no data rows.")
    return header, rows, lines


def _column_index(header: list[str], target: Any, owner: str) -> int:
    if isinstance(target, str):
        if target not in header:
            raise InvalidParameterError(
                f"{owner}: target {target!r} is not a column of the file; available columns: {header}."
            )
        return header.index(target)
    if isinstance(target, (numbers.Integral, np.integer)) and not isinstance(target, bool):
        k = len(header)
        if not -k <= int(target) < k:
            raise InvalidParameterError(
                f"{owner}: target index {int(target)} is out of range for {k} columns (valid: {-k} to {k - 1})."
            )
        return int(target) % k
    raise InvalidParameterError(
        f"{owner}: target must be a column name (str) or a column index (int); got {_describe(target)}."
    )


def _parse_features(
    rows: list[list[str]], cols: list[int], header: list[str], lines: list[int], path: Path, owner: str
) -> np.ndarray:
    cells = [[row[j] for j in cols] for row in rows]
    try:
        X = np.array(cells, dtype=np.float64).reshape(len(rows), len(cols))
    except ValueError:
        X = None
    if X is not None and np.isfinite(X).all():
        return X
    for i, row in enumerate(cells):
        for k, text in enumerate(row):
            try:
                value = float(text)
            except ValueError:
                value = None
            if value is None or not np.isfinite(value):
                what = "an empty cell" if not text.strip() else f"the non-numeric value {text!r}"
                if value is not None:
                    what = f"the non-finite value {text!r}"
                raise InvalidParameterError(
                    f"{owner}: feature column {header[cols[k]]!r} has {what} in data row {i} (line {lines[i]} of "
                    f"{str(path)!r}); every feature must be a finite number. One-hot encode categorical columns "
                    "and impute missing values first, or leave the column out with feature_names=[...]."
                )
    raise DataFormatError(f"{owner}: could not parse the features of {str(path)!r}.")  # pragma: no cover


def _parse_target(
    values: list[str], name: str, lines: list[int], path: Path, owner: str
) -> tuple[np.ndarray, tuple[str, ...] | None]:
    stripped = [v.strip() for v in values]
    for i, text in enumerate(stripped):
        if not text:
            raise InvalidParameterError(
                f"{owner}: target column {name!r} is empty in data row {i} (line {lines[i]} of {str(path)!r}). "
                "Drop rows without a label first."
            )
    try:
        numeric = np.array(stripped, dtype=np.float64)
    except ValueError:
        numeric = None
    if numeric is None:
        classes, y = np.unique(np.array(stripped), return_inverse=True)
        return y.astype(np.int64), tuple(str(c) for c in classes)
    if not np.isfinite(numeric).all():
        i = int(np.flatnonzero(~np.isfinite(numeric))[0])
        raise InvalidParameterError(
            f"{owner}: target column {name!r} has the non-finite value {values[i]!r} in data row {i} (line "
            f"{lines[i]} of {str(path)!r}). Drop rows without a label first."
        )
    if np.all(numeric == np.round(numeric)):
        ints = numeric.astype(np.int64)
        if ints.min() >= 0:
            return ints, None
        classes, y = np.unique(ints, return_inverse=True)
        return y.astype(np.int64), tuple(str(c) for c in classes)
    return numeric, None


def load_csv(
    path: str | os.PathLike,
    target: str | int,
    *,
    feature_names: Sequence[str] | None = None,
    delimiter: str = ",",
) -> Dataset:
    """Load a numeric CSV file with a header row into a tabular :class:`Dataset`.

    Parameters
    ----------
    path : str or path-like
        The CSV file. The first non-blank row must be a header of unique column names; blank
        lines are skipped; a UTF-8 byte-order mark is ignored.
    target : str or int
        The label column, by name or by (possibly negative) index.
    feature_names : sequence of str, optional
        The header names of the columns to use as features, in this order. By default every
        column other than ``target``, in file order.
    delimiter : str
        Field separator (one character).

    Returns
    -------
    Dataset
        ``X`` of shape (n_rows, n_features) float64 and ``feature_names`` from the header.
        Target coding: non-negative integers are kept as int64 class labels
        (``target_names=None``); other integers and non-numeric labels are encoded as
        ``0..K-1`` in sorted order with ``target_names`` holding the original values; other
        numbers give a float64 regression target.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    DataFormatError
        If the header is missing or has empty/duplicate names, or a row has the wrong number of
        fields.
    InvalidParameterError
        If ``target`` or a feature name is not a column, or a feature cell is empty,
        non-numeric or non-finite (the message names the column and the row).

    Examples
    --------
    >>> import os, tempfile
    >>> from scrutiny.data import load_csv
    >>> path = os.path.join(tempfile.mkdtemp(), "toy.csv")
    >>> with open(path, "w") as f:
    ...     _ = f.write("a,b,label\\n1,2.5,0\\n3,4,1\\n")
    >>> ds = load_csv(path, target="label")
    >>> ds.X, ds.y, ds.feature_names
    (array([[1. , 2.5],
           [3. , 4. ]]), array([0, 1]), ('a', 'b'))
    """
    owner = "load_csv"
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidParameterError(f"{owner}: path must be a str or a path; got {_describe(path)}.")
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise InvalidParameterError(
            f"{owner}: delimiter must be a single character; got {delimiter!r}. Use ',' or ';' or '\\t'."
        )
    path = Path(path).expanduser()
    header, rows, lines = _read_rows(path, delimiter, owner)
    t = _column_index(header, target, owner)
    if feature_names is None:
        cols = [j for j in range(len(header)) if j != t]
    else:
        if isinstance(feature_names, str) or not hasattr(feature_names, "__iter__"):
            raise InvalidParameterError(
                f"{owner}: feature_names must be a sequence of column names; got {_describe(feature_names)}."
            )
        chosen = list(feature_names)
        missing = [f for f in chosen if f not in header]
        if missing:
            raise InvalidParameterError(
                f"{owner}: feature_names {missing} are not columns of {str(path)!r}; available: {header}."
            )
        if header[t] in chosen:
            raise InvalidParameterError(
                f"{owner}: feature_names must not include the target column {header[t]!r}."
            )
        if len(set(chosen)) != len(chosen):
            raise InvalidParameterError(f"{owner}: feature_names contains duplicates: {chosen}.")
        if not chosen:
            raise InvalidParameterError(f"{owner}: feature_names must name at least one column; got [].")
        cols = [header.index(f) for f in chosen]
    if not cols:
        raise DataFormatError(f"{owner}: {str(path)!r} has only the target column; expected at least one feature.")
    X = _parse_features(rows, cols, header, lines, path, owner)
    y, target_names = _parse_target([row[t] for row in rows], header[t], lines, path, owner)
    return Dataset(
        X=X,
        y=y,
        feature_names=tuple(header[j] for j in cols),
        target_names=target_names,
        name=path.stem,
        description=f"Loaded from {str(path)!r}: {len(rows)} rows, {len(cols)} features, target column {header[t]!r}.",
    )


# --------------------------------------------------------------------------- COMPAS

_COMPAS_TARGET = "recidivate-within-two-years"
# Levels of the categorical COMPAS columns, in a natural order (the files hold exactly these).
_COMPAS_LEVELS: dict[str, tuple[str, ...]] = {
    "sex": ("Female", "Male"),
    "age": ("18-20", "21-22", "23-25", "26-45", ">45"),
    "juvenile-felonies": ("=0", ">0"),
    "juvenile-misdemeanors": ("=0", ">0"),
    "juvenile-crimes": ("=0", ">0"),
    "priors": ("=0", "=1", "2-3", ">3"),
    "current-charge-degree": ("Felony", "Misdemeanor"),
}


def _level_name(column: str, level: str) -> str:
    """``"sex=Male"``; levels that already start with a comparison keep it: ``"priors>3"``."""
    return f"{column}{level}" if level[:1] in "=<>" else f"{column}={level}"


def _compas_categorical(path: Path, owner: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    header, rows, lines = _read_rows(path, ",", owner)
    expected = list(_COMPAS_LEVELS) + [_COMPAS_TARGET]
    if header != expected:
        raise DataFormatError(f"{owner}: {str(path)!r} has columns {header}; expected {expected}.")
    names: list[str] = []
    blocks = []
    for j, (column, levels) in enumerate(_COMPAS_LEVELS.items()):
        values = np.array([row[j].strip() for row in rows], dtype=object)
        unknown = sorted(set(values) - set(levels))
        if unknown:
            i = next(i for i, v in enumerate(values) if v == unknown[0])
            raise DataFormatError(
                f"{owner}: column {column!r} of {str(path)!r} has the unexpected value {unknown[0]!r} at line "
                f"{lines[i]}; expected one of {list(levels)}."
            )
        blocks.append(np.stack([values == level for level in levels], axis=1))
        names.extend(_level_name(column, level) for level in levels)
    X = np.concatenate(blocks, axis=1).astype(np.float64)
    labels = [row[-1].strip() for row in rows]
    bad = [i for i, v in enumerate(labels) if v not in ("0", "1")]
    if bad:
        raise DataFormatError(
            f"{owner}: the label of {str(path)!r} at line {lines[bad[0]]} is {labels[bad[0]]!r}; expected 0 or 1."
        )
    return X, np.array(labels, dtype=np.int64), tuple(names)


def load_compas(data_dir: str | os.PathLike | None = None, split: str = "train", binary: bool = True) -> Dataset:
    """ProPublica's COMPAS recidivism data (Broward County), in the CORELS train/test split.

    Parameters
    ----------
    data_dir : str, path-like or None
        The folder holding the files, or a parent holding them in a ``compas/`` subfolder.
        ``None`` uses :func:`default_data_dir`.
    split : {"train", "test"}
        6,489 training or 721 test rows.
    binary : bool
        ``True`` reads ``compas_{split}-binary.csv``: the 14 binary features of the file, with
        its names (``"sex:Male"``, ``"age:18-20"``, ..., ``"current-charge-degree:Misdemeanor"``;
        reference levels such as female or felony are left out). ``False`` reads the
        categorical ``compas_{split}.csv`` and one-hot encodes all 7 columns into 19
        indicators named ``"column=level"`` (``"sex=Male"``, ``"age=18-20"``); levels that are
        already comparisons keep them (``"priors>3"``, ``"juvenile-felonies=0"``). Both
        encodings describe the same rows in the same order.

    Returns
    -------
    Dataset
        ``X`` float64 0/1 indicators; ``y`` int64, 1 = re-arrested within two years;
        ``target_names`` ``("no", "yes")``; name ``"compas-{split}"``.

    Raises
    ------
    FileNotFoundError
        If the file is not found (the message lists where it looked).
    DataFormatError
        If the file's columns or values are not those of the COMPAS split.

    Examples
    --------
    >>> from scrutiny.data import load_compas
    >>> ds = load_compas(split="train")          # doctest: +SKIP
    >>> ds.X.shape                               # doctest: +SKIP
    (6489, 14)
    """
    owner = "load_compas"
    validate_params(
        owner,
        {"split": split, "binary": binary},
        {"split": [Options("train", "test")], "binary": ["boolean"]},
        hints={"split": "Use split='train' or split='test'."},
    )
    filename = f"compas_{split}-binary.csv" if binary else f"compas_{split}.csv"
    dirs = _candidate_dirs(data_dir, "compas", owner)
    path = next((d / filename for d in dirs if (d / filename).is_file()), None)
    if path is None:
        raise FileNotFoundError(
            f"{owner}: {filename} not found in {', '.join(repr(str(d)) for d in dirs)}. Pass data_dir= the folder "
            f"holding it (or its parent with a compas/ subfolder), or set {DATA_DIR_ENV_VAR}."
        )
    if binary:
        ds = load_csv(path, target=f"{_COMPAS_TARGET}:1")
        if not set(np.unique(ds.y)) <= {0, 1} or ds.y.dtype != np.int64:
            raise DataFormatError(f"{owner}: the labels of {str(path)!r} must be 0 or 1.")
        X, y, names = ds.X, ds.y, ds.feature_names
    else:
        X, y, names = _compas_categorical(path, owner)
    encoding = "14 binary features as in the file" if binary else "7 categorical columns one-hot encoded"
    return Dataset(
        X=X,
        y=y,
        feature_names=names,
        target_names=("no", "yes"),
        name=f"compas-{split}",
        description=(
            f"COMPAS (ProPublica, Broward County), CORELS {split} split read from {str(path)!r}: {len(y)} people, "
            f"{encoding}. Label 1 = recidivated (re-arrested) within two years."
        ),
    )


# --------------------------------------------------------------------------- RiskSLIM benchmarks

_BENCHMARK_NOTES = {
    "breastcancer": (
        " Note: although the label column is named 'Benign', label 1 marks the 239 malignant tumours and 0 the "
        "444 benign ones (UCI Wisconsin original, rows with missing values dropped): every cytology score is far "
        "higher in class 1."
    ),
}


def load_tabular_benchmark(path: str | os.PathLike, *, data_dir: str | os.PathLike | None = None) -> Dataset:
    """A benchmark from the RiskSLIM / FasterRisk papers (``tabular/<name>_data.csv``).

    The first column is the 0/1 label, the others are the features. Despite the "binarised"
    label, only ``adult`` and ``mushroom`` are all-binary: ``breastcancer`` holds 1-10
    cytology scores, ``mammo`` one ordinal ``Density`` column, ``spambase`` real-valued word
    frequencies and run lengths.

    Parameters
    ----------
    path : str or path-like
        The CSV file, or one of the names in :data:`TABULAR_BENCHMARKS` (``"adult"``,
        ``"breastcancer"``, ``"mammo"``, ``"mushroom"``, ``"spambase"``), looked up as
        ``<data_dir>/tabular/<name>_data.csv`` or ``<data_dir>/<name>_data.csv``.
    data_dir : str, path-like or None
        Only used when ``path`` is a name; ``None`` uses :func:`default_data_dir`.

    Returns
    -------
    Dataset
        ``X`` float64, ``y`` int64 in {0, 1}, ``feature_names`` from the header,
        ``target_names`` ``("<label>=0", "<label>=1")`` and name ``"<name>"`` (file stem
        without ``_data``).

    Raises
    ------
    FileNotFoundError
        If the file (or named benchmark) is not found.
    DataFormatError
        If the label column holds values other than 0 and 1.

    Examples
    --------
    >>> from scrutiny.data import load_tabular_benchmark
    >>> ds = load_tabular_benchmark("adult")     # doctest: +SKIP
    >>> ds.X.shape, ds.target_names              # doctest: +SKIP
    ((32561, 36), ('Over50K=0', 'Over50K=1'))
    """
    owner = "load_tabular_benchmark"
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidParameterError(
            f"{owner}: path must be a CSV path or one of {list(TABULAR_BENCHMARKS)}; got {_describe(path)}."
        )
    file = Path(path).expanduser()
    if not file.is_file() and isinstance(path, str) and path in TABULAR_BENCHMARKS:
        root = _as_dir(data_dir, owner)
        candidates = [root / "tabular" / f"{path}_data.csv", root / f"{path}_data.csv"]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise FileNotFoundError(
                f"{owner}: benchmark {path!r} not found; looked for {', '.join(repr(str(c)) for c in candidates)}. "
                f"Pass data_dir= the folder holding tabular/, or set {DATA_DIR_ENV_VAR}."
            )
        file = found
    elif not file.is_file():
        raise FileNotFoundError(
            f"{owner}: no such file: {str(file)!r}. Pass a CSV path or one of {list(TABULAR_BENCHMARKS)}."
        )
    ds = load_csv(file, target=0)
    label = _first_column_name(file)
    if ds.y.dtype != np.int64 or ds.target_names is not None or not set(np.unique(ds.y)) <= {0, 1}:
        raise DataFormatError(
            f"{owner}: the first column ({label!r}) of {str(file)!r} must be a 0/1 label; found values "
            f"{sorted(set(ds.target_names or np.unique(ds.y).tolist()))[:5]}. Use load_csv for other layouts."
        )
    stem = file.stem[: -len("_data")] if file.stem.endswith("_data") else file.stem
    return replace(
        ds,
        target_names=(f"{label}=0", f"{label}=1"),
        name=stem,
        description=(
            f"Benchmark {stem!r} (RiskSLIM / FasterRisk) from {str(file)!r}: {len(ds)} rows, "
            f"{ds.n_features} features, label column {label!r}." + _BENCHMARK_NOTES.get(stem, "")
        ),
    )


def _first_column_name(file: Path) -> str:
    with open(file, newline="", encoding="utf-8-sig") as handle:
        for row in csv.reader(handle):
            if row and any(cell.strip() for cell in row):
                return row[0].strip()
    return "label"  # pragma: no cover - load_csv already refused an empty file
