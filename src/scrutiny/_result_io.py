"""The one save / load of scrutiny's result types (re-exported by :mod:`scrutiny.explanation`).

:class:`Result` is the base of every result type: a frozen dataclass whose arrays go to a
``.npz`` file and whose other fields go to a JSON header in the same file (``save`` /
``load``), or to one JSON-ready dict (``to_dict`` / ``from_dict``). Subclasses register
themselves by name, so :func:`load_result` reads every type. Nothing is ever unpickled, and a
header can only name a class that registered itself, imported from inside ``scrutiny``.

Reading is the one place untrusted bytes enter, so :func:`_read_npz` treats the file as hostile:
every failure is a :class:`DataFormatError` naming the file and the problem; each ``.npy`` entry's
header is parsed before its data, and its size (``prod(shape) * itemsize``) must agree with the
zip directory and fit in ``max_bytes`` before anything is allocated (default: ``_RATIO`` times the
file's size, at least ``_MIN_BYTES``, at most ``_MAX_BYTES_CEILING``); entries the result type does
not have are never decompressed (they are refused: a corrupted entry name must not drop an array
silently); the JSON header is validated (types, nesting depth) and its
tags (``__array__``, ``__float__``, ...) are escaped when a user's dict uses them as keys.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .exceptions import DataFormatError, InvalidParameterError, ScrutinyError

__all__ = ["Result", "load_result", "read_only_copy"]

FORMAT_VERSION = 1
_META_KEY = "__scrutiny_meta__"

#: default read limit: ``_RATIO`` x the file size, clipped to [_MIN_BYTES, _MAX_BYTES_CEILING].
#: Real results compress 1-10x (float noise barely compresses); deflate tops out near 1000x,
#: which is what a zip bomb uses. Pass ``max_bytes`` to read a legitimately more compressible file.
_RATIO = 100
_MIN_BYTES = 64 * 2**20
_MAX_BYTES_CEILING = 4 * 2**30
_MAX_JSON_DEPTH = 64
#: the JSON tags of the header; a user dict using one of them as a key is escaped as {"__dict__": {...}}
_TAGS = frozenset({"__float__", "__array__", "__generator__", "__result__", "__dict__"})
#: dtype kinds a result may hold: bool, ints, floats and (params / extras only) unicode strings.
#: complex, datetime, bytes, void and object arrays are refused: they do not survive the JSON form.
_ARRAY_KINDS = "biuf"
_EXTRA_KINDS = "biufU"


# --------------------------------------------------------------------------- helpers


def read_only_copy(value: Any, dtype: Any = np.float64) -> np.ndarray:
    """A read-only copy of ``value`` as an array of ``dtype`` (the arrays of frozen result objects)."""
    arr = np.array(value, dtype=dtype, copy=True)
    arr.setflags(write=False)
    return arr


def _frozen_array(value: Any, name: str, dtype: Any = np.float64, finite: bool = True) -> np.ndarray:
    """A read-only copy of a numeric field; complex / datetime / string / object input and
    (when ``finite``) NaN or inf are refused rather than silently converted."""
    try:
        raw = value if isinstance(value, np.ndarray) else np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"{name} must be a numeric array; got {type(value).__name__} ({exc}).") from exc
    if raw.dtype.kind not in _ARRAY_KINDS:
        raise InvalidParameterError(
            f"{name} must be a real numeric array (bool, int or float); got dtype {raw.dtype}. "
            "Convert it explicitly (e.g. take .real of a complex array)."
        )
    if np.dtype(dtype).kind in "iu":
        return _int_array(raw, name, dtype)
    arr = read_only_copy(raw, dtype)
    if finite and arr.size and not np.isfinite(arr).all():
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise InvalidParameterError(
            f"{name} must be finite; got {bad} NaN/inf value(s). A result never holds NaN: find where the "
            "method produced it (a model returning NaN, an overflow) and fix the input or the model."
        )
    return arr


def _int_array(raw: np.ndarray, name: str, dtype: Any = np.int64) -> np.ndarray:
    """``raw`` as read-only int64, refusing non-integral values and values outside int64."""
    info = np.iinfo(np.int64)
    if raw.dtype.kind == "f":
        if raw.size and not (np.isfinite(raw).all() and np.all(np.mod(raw, 1) == 0)):
            raise InvalidParameterError(f"{name} must hold integers; got non-integral or non-finite values.")
        # float64(2**63) == 2**63 is already outside int64; the cast would wrap silently
        out_of_range = raw.size and (raw.min() < -(2.0**63) or raw.max() >= 2.0**63)
    elif raw.dtype.kind == "u":
        out_of_range = raw.size and int(raw.max()) > info.max
    else:
        out_of_range = False
    if out_of_range:
        raise InvalidParameterError(
            f"{name} must fit in int64 [{info.min}, {info.max}]; got values outside it (e.g. 2**63 would wrap "
            "to a negative number). Use class / output indices."
        )
    return read_only_copy(raw, dtype)


def _freeze_mapping(mapping: Mapping[str, Any] | None, where: str) -> dict[str, Any]:
    """Copy ``params``/``extras``: arrays become read-only float/int numpy arrays, numpy
    scalars become Python scalars, and anything that could not be saved as JSON is refused."""
    out: dict[str, Any] = {}
    for key, value in dict(mapping or {}).items():
        if not isinstance(key, str):
            raise InvalidParameterError(f"{where} keys must be strings; got {key!r}.")
        if hasattr(value, "detach") and hasattr(value, "cpu"):
            value = value.detach().cpu().numpy()
        if isinstance(value, np.ndarray):
            if value.dtype.kind not in _EXTRA_KINDS:
                raise InvalidParameterError(
                    f"{where}[{key!r}] has dtype {value.dtype}, which does not round-trip through a result file; "
                    "store bool, int, float or str arrays (e.g. split complex values into .real and .imag)."
                )
            value = value.copy()
            value.setflags(write=False)
        elif isinstance(value, (np.floating, np.integer, np.bool_)):
            value = value.item()
        else:
            _json_ready(value, f"{where}[{key!r}]")  # validation only
        out[key] = value
    return out


def _json_ready(value: Any, where: str) -> Any:
    """Check that a params/extras value is JSON-serialisable (numpy scalars converted)."""
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return {"__float__": repr(value)}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_json_ready(v, where) for v in value]
    if isinstance(value, Mapping):
        out = {str(k): _json_ready(v, where) for k, v in value.items()}
        return {"__dict__": out} if _TAGS.intersection(out) else out
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in _EXTRA_KINDS:
            raise InvalidParameterError(
                f"{where} holds an array of dtype {value.dtype}, which cannot be saved exactly; store bool, "
                "int, float or str arrays."
            )
        return {"__array__": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, np.random.Generator):
        return {"__generator__": type(value.bit_generator).__name__}
    if isinstance(value, Result):
        return {"__result__": value.to_dict()}
    raise InvalidParameterError(
        f"{where} holds a {type(value).__name__}, which cannot be saved as JSON; store numbers, "
        "strings, lists, dicts or numpy arrays."
    )


def _from_json_ready(value: Any) -> Any:
    """Inverse of :func:`_json_ready`; a malformed tag raises DataFormatError."""
    if isinstance(value, list):
        return [_from_json_ready(v) for v in value]
    if not isinstance(value, dict):
        return value
    tags = _TAGS.intersection(value)
    if not tags:
        return {k: _from_json_ready(v) for k, v in value.items()}
    tag = next(iter(tags))
    if tag == "__dict__":
        inner = value["__dict__"]
        if len(value) != 1 or not isinstance(inner, dict):
            raise DataFormatError("a '__dict__' entry of the header must be the only key and hold a dict.")
        return {k: _from_json_ready(v) for k, v in inner.items()}
    if tag == "__array__":
        dtype = value.get("dtype", "float64")
        if set(value) - {"__array__", "dtype"} or not isinstance(dtype, str):
            raise DataFormatError(f"a header array must be {{'__array__': [...], 'dtype': str}}; got keys {sorted(value)}.")
        return _checked_array(value["__array__"], dtype, None, "a header array")
    if tag == "__float__":
        text = value["__float__"]
        if len(value) != 1 or text not in ("nan", "inf", "-inf"):
            raise DataFormatError(f"a '__float__' entry must be 'nan', 'inf' or '-inf'; got {text!r}.")
        return float(text)
    if tag == "__result__":
        data = value["__result__"]
        if len(value) != 1 or not isinstance(data, dict):
            raise DataFormatError("a '__result__' entry must be the only key and hold a dict.")
        return _result_type(data, "a nested result").from_dict(data)
    return value  # {"__generator__": name}: a record of the seed's type, kept as is


def _checked_array(data: Any, dtype: Any, shape: Any, where: str) -> np.ndarray:
    """An array from JSON lists with a validated dtype (and shape, when given)."""
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError) as exc:
        raise DataFormatError(f"{where} has an unknown dtype {dtype!r}.") from exc
    if dt.kind not in _EXTRA_KINDS:
        raise DataFormatError(f"{where} has dtype {dt}; result files hold only bool, int, float or str arrays.")
    try:
        arr = np.array(data, dtype=dt)
        if shape is not None:
            if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
                raise DataFormatError(f"{where} has a malformed shape {shape!r}; expected a list of ints.")
            arr = arr.reshape(shape)
    except (TypeError, ValueError, OverflowError) as exc:
        raise DataFormatError(f"{where} is not a regular {dt} array ({exc}).") from exc
    arr.setflags(write=False)
    return arr


def _check_depth(value: Any, where: Any) -> None:
    """Refuse JSON nested deeper than ``_MAX_JSON_DEPTH`` (iteratively: no recursion limit to hit)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > _MAX_JSON_DEPTH:
            raise DataFormatError(f"{where}: the JSON header is nested deeper than {_MAX_JSON_DEPTH} levels.")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


def _select(arr: np.ndarray, index: Any) -> np.ndarray:
    out = arr[index]
    if out.ndim < arr.ndim:  # integer index: keep the sample axis
        out = out[None]
    return out


def _normalise_index(index: Any, n: int) -> Any:
    if isinstance(index, (int, np.integer)):
        i = int(index)
        if not -n <= i < n:
            raise IndexError(f"index {i} is out of range for a result with {n} samples.")
        return [i % n]
    if isinstance(index, tuple):
        raise IndexError("results are sliced along samples only: use result[i], result[a:b] or result[mask].")
    return index


#: every result type by name (filled by ``Result.__init_subclass__``); ``load_result`` reads it
_RESULT_TYPES: dict[str, type] = {}


class Result:
    """The base of every result type: one to_dict / from_dict / save / load, and slicing.

    A result type is a frozen dataclass deriving from ``Result``. It declares ``_ARRAYS``
    (array fields, stored as arrays in the ``.npz``), ``_PER_SAMPLE`` (array fields whose
    first axis is the sample axis) and ``_N_FIELD`` (the field giving the number of samples;
    empty for results that are not per sample). Every other field is stored in the JSON
    header: numbers, strings, lists, dicts, numpy arrays and nested results are accepted.
    Defining the subclass registers it, so :func:`load_result` reads every result type.
    """

    _ARRAYS: ClassVar[tuple[str, ...]] = ()
    _PER_SAMPLE: ClassVar[tuple[str, ...]] = ()
    _N_FIELD: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__name__ in _RESULT_TYPES and _RESULT_TYPES[cls.__name__] is not cls:
            other = _RESULT_TYPES[cls.__name__]
            if (other.__module__, other.__qualname__) != (cls.__module__, cls.__qualname__):
                raise TypeError(f"two result types are named {cls.__name__!r}; result names must be unique.")
        _RESULT_TYPES[cls.__name__] = cls




    # -- sizes and slicing -----------------------------------------------------------------
    def __len__(self) -> int:
        if not self._N_FIELD:
            raise TypeError(f"a {type(self).__name__} is not a per-sample result; it has no length.")
        return int(getattr(self, self._N_FIELD).shape[0])

    def __getitem__(self, index: Any):
        n = len(self)
        index = _normalise_index(index, n)
        changes: dict[str, Any] = {}
        for f in self._PER_SAMPLE:
            value = getattr(self, f)
            if value is not None:
                changes[f] = _select(value, index)
        extras = getattr(self, "extras", None)
        if extras:
            changes["extras"] = {
                k: (_select(v, index) if isinstance(v, np.ndarray) and v.ndim >= 1 and v.shape[0] == n else v)
                for k, v in extras.items()
            }
        return dataclasses.replace(self, **changes)

    # -- dict round trip ---------------------------------------------------------------------
    def _split(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Return (JSON metadata, arrays) with array extras moved to the arrays."""
        meta: dict[str, Any] = {
            "type": type(self).__name__,
            "module": type(self).__module__,
            "format_version": FORMAT_VERSION,
        }
        arrays: dict[str, np.ndarray] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in self._ARRAYS:
                if value is not None:
                    arrays[f.name] = np.asarray(value)
            elif f.name == "extras":
                plain = {}
                for k, v in value.items():
                    if isinstance(v, np.ndarray):
                        arrays[f"extras.{k}"] = v
                    else:
                        plain[k] = _json_ready(v, f"extras[{k!r}]")
                meta["extras"] = plain
            else:
                meta[f.name] = _json_ready(value, f.name)
        return meta, arrays

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (arrays as nested lists with their dtype)."""
        meta, arrays = self._split()
        meta["arrays"] = {k: {"data": v.tolist(), "dtype": str(v.dtype), "shape": list(v.shape)} for k, v in arrays.items()}
        return meta

    @classmethod
    def _rebuild(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]):
        _check_meta(meta, "the header")
        kind = meta.get("type")
        if kind != cls.__name__:
            raise DataFormatError(f"expected a saved {cls.__name__}; the data holds a {kind!r}.")
        kwargs: dict[str, Any] = {}
        names = {f.name for f in dataclasses.fields(cls)}
        for name in names:
            if name in cls._ARRAYS:
                kwargs[name] = arrays.get(name)
            elif name == "extras":
                extras = {k: _from_json_ready(v) for k, v in meta.get("extras", {}).items()}
                for key, value in arrays.items():
                    if key.startswith("extras."):
                        extras[key[len("extras."):]] = value
                kwargs["extras"] = extras
            elif name in meta:
                kwargs[name] = _from_json_ready(meta[name])
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in kwargs and _required(f)]
        if missing:
            raise DataFormatError(f"the saved {cls.__name__} lacks the required field(s) {missing}.")
        try:
            return cls(**kwargs)
        except ScrutinyError as exc:
            raise DataFormatError(f"the saved {cls.__name__} is inconsistent: {exc}") from exc

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        """Inverse of :meth:`to_dict`; malformed data raises :class:`DataFormatError`."""
        return _guarded("the dict", lambda: cls._rebuild(data, _dict_arrays(data)))

    # -- files -----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Save to one ``.npz`` file (arrays + a JSON header); returns the path written.

        The suffix ``.npz`` is added if missing. No pickle is used.
        """
        if not isinstance(path, (str, os.PathLike)) or not os.fspath(path) or Path(path).name in ("", ".", ".."):
            raise InvalidParameterError(
                f"path must name a file to write (e.g. 'runs/result.npz'); got {path!r}."
            )
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        meta, arrays = self._split()
        payload = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
        payload[_META_KEY] = np.array(json.dumps(meta))
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            np.savez_compressed(fh, **payload)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, *, max_bytes: int | None = None):
        """Load a result written by :meth:`save` (never unpickles).

        Parameters
        ----------
        path : str or path-like
        max_bytes : int, optional
            The most bytes the arrays may take once decompressed. Default: 100 x the file's
            size, at least 64 MiB and at most 4 GiB (a zip bomb is refused before it is inflated).

        Raises
        ------
        DataFormatError
            Whatever is wrong with the file (truncated, corrupted, too large, a malformed header).
        """
        return _load(path, cls, max_bytes)


def _required(field: dataclasses.Field) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING  # type: ignore[misc]


def _check_meta(meta: Any, where: Any) -> None:
    """Validate the header's own keys (the result type's fields are validated by its constructor)."""
    if not isinstance(meta, Mapping):
        raise DataFormatError(f"{where} must be a JSON object; got a {type(meta).__name__}.")
    if not isinstance(meta.get("type"), str):
        raise DataFormatError(f"{where} must name its result type as a string; got {meta.get('type')!r}.")
    version = meta.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise DataFormatError(f"{where} has a malformed format_version {version!r}; expected a non-negative int.")
    if version > FORMAT_VERSION:
        raise DataFormatError(
            f"the result was saved by a newer scrutiny (format {version}; this one reads up to "
            f"{FORMAT_VERSION}). Upgrade scrutiny to load it."
        )
    for key in ("extras", "params"):
        if key in meta and not isinstance(meta[key], Mapping):
            raise DataFormatError(f"{where}: {key!r} must be a JSON object; got a {type(meta[key]).__name__}.")


def _dict_arrays(data: Any) -> dict[str, np.ndarray]:
    if not isinstance(data, Mapping):
        raise DataFormatError(f"a saved result must be a dict; got a {type(data).__name__}.")
    _check_depth(data, "the dict")
    raw = data.get("arrays", {})
    if not isinstance(raw, Mapping):
        raise DataFormatError(f"'arrays' must map names to arrays; got a {type(raw).__name__}.")
    out = {}
    for k, v in raw.items():
        if not isinstance(v, Mapping) or set(v) != {"data", "dtype", "shape"}:
            raise DataFormatError(f"array {k!r} must be {{'data', 'dtype', 'shape'}}; got {v!r:.80}.")
        out[k] = _checked_array(v["data"], v["dtype"], v["shape"], f"array {k!r}")
    return out


def _guarded(where: Any, read: Any) -> Any:
    """Run ``read()``; any failure becomes a DataFormatError naming ``where``."""
    try:
        return read()
    except DataFormatError as exc:
        text = str(exc)
        raise DataFormatError(text if text.startswith(str(where)) else f"{where}: {text}") from exc
    except ScrutinyError as exc:
        raise DataFormatError(f"{where}: {exc}") from exc
    except MemoryError as exc:
        raise DataFormatError(f"{where}: not enough memory to load it; pass a smaller max_bytes or free memory.") from exc
    except RecursionError as exc:
        raise DataFormatError(f"{where}: the JSON header is nested too deeply.") from exc
    except Exception as exc:  # noqa: BLE001 - an untrusted file may fail anywhere; say so plainly
        raise DataFormatError(f"{where} is not a valid scrutiny result file ({type(exc).__name__}: {exc}).") from exc


def _load(path: Any, cls: type | None, max_bytes: int | None) -> Any:
    if max_bytes is not None and (isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)) or max_bytes < 1):
        raise InvalidParameterError(f"max_bytes must be a positive int (bytes) or None; got {max_bytes!r}.")
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise DataFormatError(f"path must name a result file (e.g. 'runs/result.npz'); got {path!r}.")
    path = Path(path)
    if not path.exists() and path.suffix != ".npz" and path.with_name(path.name + ".npz").exists():
        path = path.with_name(path.name + ".npz")
    if not path.is_file():
        raise DataFormatError(f"{path}: no such result file.")
    return _guarded(path, lambda: _read_result(path, cls, max_bytes))


def _read_result(path: Path, cls: type | None, max_bytes: int | None) -> Any:
    size = path.stat().st_size
    limit = int(max_bytes) if max_bytes is not None else int(min(_MAX_BYTES_CEILING, max(_MIN_BYTES, _RATIO * size)))
    with zipfile.ZipFile(path) as zf:
        infos = {info.filename: info for info in zf.infolist()}
        meta_info = infos.get(_META_KEY + ".npy")
        if meta_info is None:
            raise DataFormatError(f"{path} is not a scrutiny result file (no {_META_KEY} entry).")
        text = _read_entry(zf, meta_info, limit, _META_KEY, "U")
        if text.ndim != 0:
            raise DataFormatError(f"the {_META_KEY} entry must hold one string; got shape {text.shape}.")
        try:
            meta = json.loads(str(text))
        except RecursionError as exc:
            raise DataFormatError("the JSON header is nested too deeply.") from exc
        except ValueError as exc:
            raise DataFormatError(f"the JSON header is not valid JSON ({exc}).") from exc
        _check_depth(meta, "the header")
        _check_meta(meta, "the header")
        kind = _result_type(meta, "the header") if cls is None else cls
        if meta["type"] != kind.__name__:
            raise DataFormatError(f"expected a saved {kind.__name__}; the data holds a {meta['type']!r}.")
        # only the entries this result type reads are ever decompressed; any other entry is
        # refused unread (a corrupted entry name would otherwise drop that array silently)
        used = [
            name for name in infos
            if name.endswith(".npy") and (name[:-4] in kind._ARRAYS or name.startswith("extras."))
        ]
        unknown = sorted(set(infos) - set(used) - {_META_KEY + ".npy"})
        if unknown:
            raise DataFormatError(
                f"the archive holds entries a saved {kind.__name__} does not have: {unknown[:5]}; the file is "
                "corrupted or was not written by scrutiny (they were not read)."
            )
        declared = sum(infos[name].file_size for name in used)
        budget = limit - int(np.asarray(text).nbytes)
        if declared > budget:
            raise DataFormatError(
                f"the arrays would take {declared:,} bytes once decompressed, over the limit of {budget:,} "
                f"(max_bytes={limit:,}, {_RATIO}x the file size by default). Pass a larger max_bytes if you "
                "trust the file."
            )
        arrays = {}
        for name in used:
            arrays[name[:-4]] = _read_entry(zf, infos[name], budget, name[:-4], _EXTRA_KINDS)
            budget -= arrays[name[:-4]].nbytes
    return kind._rebuild(meta, arrays)


def _read_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int, name: str, kinds: str) -> np.ndarray:
    """One ``.npy`` entry: header first, sizes checked against the zip directory and ``budget``,
    then exactly the declared bytes (the zip's CRC is verified at the end)."""
    fmt = np.lib.format
    with zf.open(info) as fh:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(fh)
        else:
            raise DataFormatError(f"entry {name!r} has an unsupported .npy version {version}.")
        if dtype.hasobject:
            raise DataFormatError(
                f"entry {name!r} holds pickled objects or is not an .npz file; scrutiny never unpickles, so it "
                "refuses to load it."
            )
        if dtype.kind not in kinds or dtype.fields is not None:
            raise DataFormatError(
                f"entry {name!r} has dtype {dtype}; result files hold only bool, int, float (and str extras) arrays."
            )
        if len(shape) > 64 or any(not isinstance(d, int) or d < 0 for d in shape):
            raise DataFormatError(f"entry {name!r} declares an invalid shape {shape}.")
        nbytes = math.prod(shape) * dtype.itemsize
        header = fh.tell()
        if header + nbytes != info.file_size:
            raise DataFormatError(
                f"entry {name!r} declares shape {shape} of {dtype} ({nbytes:,} bytes) but the archive lists "
                f"{info.file_size - header:,} data bytes; the file is corrupted."
            )
        if nbytes > budget:
            raise DataFormatError(
                f"entry {name!r} would take {nbytes:,} bytes, over the remaining limit of {budget:,}; pass a "
                "larger max_bytes if you trust the file."
            )
        data = fh.read(nbytes)
        if len(data) != nbytes or fh.read(1):
            raise DataFormatError(f"entry {name!r} is truncated or longer than declared.")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def _result_type(meta: Mapping[str, Any], where: Any) -> type:
    """The registered result class named in a header; imports its scrutiny module if needed.

    Only modules inside the ``scrutiny`` package are ever imported, and only to find a class
    that registered itself as a result type, so a crafted header cannot run foreign code.
    """
    kind = meta.get("type") if isinstance(meta, Mapping) else None
    if not isinstance(kind, str):
        raise DataFormatError(f"{where} does not name its result type.")
    if kind not in _RESULT_TYPES:
        module = meta.get("module")
        if isinstance(module, str) and (module == "scrutiny" or module.startswith("scrutiny.")):
            import importlib

            try:
                importlib.import_module(module)
            except ImportError:
                pass
    if kind not in _RESULT_TYPES:
        raise DataFormatError(f"{where} holds an unknown result type {kind!r}.")
    return _RESULT_TYPES[kind]


def load_result(path: str | os.PathLike, *, max_bytes: int | None = None):
    """Load any saved scrutiny result, whatever its type.

    ``max_bytes`` bounds the decompressed size (see :meth:`Result.load`); every failure to
    read the file is a :class:`DataFormatError` naming it and what is wrong.
    """
    return _load(path, None, max_bytes)
