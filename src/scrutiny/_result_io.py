"""The one save / load of scrutiny's result types (re-exported by :mod:`scrutiny.explanation`).

:class:`Result` is the base of every result type: a frozen dataclass whose arrays go to a
``.npz`` file and whose other fields go to a JSON header in the same file (``save`` /
``load``), or to one JSON-ready dict (``to_dict`` / ``from_dict``). Subclasses register
themselves by name, so :func:`load_result` reads every type. Nothing is ever unpickled, and a
header can only name a class that registered itself, imported from inside ``scrutiny``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .exceptions import DataFormatError, InvalidParameterError

__all__ = ["Result", "load_result", "read_only_copy"]

FORMAT_VERSION = 1
_META_KEY = "__scrutiny_meta__"


# --------------------------------------------------------------------------- helpers


def read_only_copy(value: Any, dtype: Any = np.float64) -> np.ndarray:
    """A read-only copy of ``value`` as an array of ``dtype`` (the arrays of frozen result objects)."""
    arr = np.array(value, dtype=dtype, copy=True)
    arr.setflags(write=False)
    return arr


def _frozen_array(value: Any, name: str, dtype: Any = np.float64) -> np.ndarray:
    try:
        arr = read_only_copy(value, dtype)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"{name} must be a numeric array; got {type(value).__name__} ({exc}).") from exc
    if arr.dtype == object:
        raise InvalidParameterError(f"{name} must be numeric; got an object array.")
    return arr


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
            if value.dtype == object:
                raise InvalidParameterError(f"{where}[{key!r}] is an object array; store numbers or strings.")
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
        return {str(k): _json_ready(v, where) for k, v in value.items()}
    if isinstance(value, np.ndarray):
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
    if isinstance(value, list):
        return [_from_json_ready(v) for v in value]
    if isinstance(value, dict):
        if "__array__" in value:
            arr = np.array(value["__array__"], dtype=value.get("dtype", "float64"))
            arr.setflags(write=False)
            return arr
        if "__float__" in value:
            return float(value["__float__"])
        if "__result__" in value:
            data = value["__result__"]
            return _result_type(data, "a nested result").from_dict(data)
        return {k: _from_json_ready(v) for k, v in value.items()}
    return value


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
        kind = meta.get("type")
        if kind != cls.__name__:
            raise DataFormatError(f"expected a saved {cls.__name__}; the data holds a {kind!r}.")
        version = meta.get("format_version", 0)
        if version > FORMAT_VERSION:
            raise DataFormatError(
                f"the result was saved by a newer scrutiny (format {version}; this one reads up to "
                f"{FORMAT_VERSION}). Upgrade scrutiny to load it."
            )
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
        return cls(**kwargs)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        """Inverse of :meth:`to_dict`."""
        arrays = {
            k: np.array(v["data"], dtype=v["dtype"]).reshape(v["shape"]) for k, v in data.get("arrays", {}).items()
        }
        return cls._rebuild(data, arrays)

    # -- files -----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Save to one ``.npz`` file (arrays + a JSON header); returns the path written.

        The suffix ``.npz`` is added if missing. No pickle is used.
        """
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
    def load(cls, path: str | os.PathLike):
        """Load a result written by :meth:`save` (never unpickles)."""
        meta, arrays = _read_npz(path)
        return cls._rebuild(meta, arrays)


def _read_npz(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    path = Path(path)
    if not path.exists() and path.suffix != ".npz" and path.with_name(path.name + ".npz").exists():
        path = path.with_name(path.name + ".npz")
    try:
        with np.load(path, allow_pickle=False) as data:
            if _META_KEY not in data.files:
                raise DataFormatError(f"{path} is not a scrutiny result file (no {_META_KEY} entry).")
            meta = json.loads(str(data[_META_KEY]))
            arrays = {k: data[k] for k in data.files if k != _META_KEY}
    except DataFormatError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc):
            raise DataFormatError(
                f"{path} contains pickled objects or is not an .npz file; scrutiny never unpickles, "
                "so it refuses to load it."
            ) from exc
        raise DataFormatError(f"{path} is not a valid scrutiny result file: {exc}") from exc
    return meta, arrays


def _result_type(meta: Mapping[str, Any], where: Any) -> type:
    """The registered result class named in a header; imports its scrutiny module if needed.

    Only modules inside the ``scrutiny`` package are ever imported, and only to find a class
    that registered itself as a result type, so a crafted header cannot run foreign code.
    """
    kind = meta.get("type")
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


def load_result(path: str | os.PathLike):
    """Load any saved scrutiny result, whatever its type."""
    meta, arrays = _read_npz(path)
    return _result_type(meta, path)._rebuild(meta, arrays)
