"""Result types and the protocol that produces them.

The protocol (stated once here and in the README)
-------------------------------------------------
* **Local explainers**: ``Method(model, **params).explain(X, target=None) -> Explanation``.
  ``target`` is the output explained per sample (None: the predicted class); ``space``
  (``"auto" | "raw" | "probability" | "log_odds"``) names the space explained; every
  explainer takes ``feature_names``.
* **Training-data attribution**: ``Method(model_or_none, **params).fit(X_train, y_train)``
  returns the fitted object; ``.attribute(X, target=None) -> DataAttribution``, where
  ``target`` is the label at which the loss is taken (None: the predicted class).
* **Estimators** (DMM-MEN, NNK, the glass-box models): scikit-learn's contract. Hyper-parameters
  in ``__init__`` (stored unchanged, so ``sklearn.base.clone`` works), data in ``fit``,
  fitted attributes end in ``_``; ``get_params`` / ``set_params`` / ``repr`` come from
  :class:`scrutiny._validation.ParamsMixin`, the one parameter mechanism.
* **Results**: every result type derives from :class:`Result`, a frozen dataclass holding
  read-only numpy arrays, and inherits one ``save`` / ``load`` (a ``.npz`` holding the arrays
  plus a JSON header; never pickle) and ``to_dict`` / ``from_dict``. :func:`load_result`
  reads every type. Per-sample results slice by sample (``result[3]``, ``result[:10]``,
  ``result[mask]``).
* ``batch_size`` only ever means memory chunking that cannot change a result; a
  result-changing minibatch is called ``minibatch_size``.

Loading never unpickles anything (``allow_pickle=False``), so opening a result file cannot
run code. Plots and the HTML report accept only result objects, so a saved result can be
re-plotted without re-running the method that produced it.

Per-sample extras
-----------------
``extras`` holds method-specific values (a completeness gap, a local R², a chosen mixture
component). Arrays whose first axis equals the number of samples are treated as per-sample
and are sliced with the result; everything else is kept whole. Name per-sample keys so that
this is unambiguous (e.g. ``"completeness_gap"`` of shape ``(n,)``).
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

__all__ = ["DataAttribution", "Explanation", "MetricResult", "Result", "load_result"]

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


def _check_optional_like(name: str, arr: np.ndarray | None, shape: tuple[int, ...], what: str) -> None:
    if arr is not None and arr.shape != shape:
        raise InvalidParameterError(f"{name} must have the shape of {what} {shape}; got {arr.shape}.")


def _check_names(names: Any, count: int, what: str) -> tuple[str, ...] | None:
    if names is None:
        return None
    names = tuple(str(n) for n in names)
    if len(names) != count:
        raise InvalidParameterError(f"feature_names must have {count} entries ({what}); got {len(names)}.")
    return names


# --------------------------------------------------------------------------- Explanation


@dataclasses.dataclass(frozen=True, eq=False)
class Explanation(Result):
    """Attributions for a batch of samples.

    Parameters
    ----------
    values : array of shape (n_samples, *feature_shape)
        Attribution of each feature (input-space methods keep the input's shape; superpixel
        methods have one value per segment).
    target : int array of shape (n_samples,)
        The explained output for each sample.
    method : str
        Name of the method (``"IntegratedGradients"``).
    base_values : array of shape (n_samples,), optional
        The reference output (e.g. E[f(x)] for SHAP, f(baseline) for IG).
    data : array of shape (n_samples, *input_shape), optional
        The explained inputs.
    feature_names : sequence of str, optional
        One name per feature (``prod(feature_shape)`` entries).
    params : dict
        Everything needed to reproduce the result, seed included (JSON-serialisable).
    stderr : array like ``values``, optional
        Standard errors of sampled attributions.
    extras : dict
        Method-specific results; see the module docstring for per-sample arrays.

    Examples
    --------
    >>> e = Explanation(values=np.ones((2, 3)), target=[0, 1], method="demo")
    >>> e[1].values.shape
    (1, 3)
    """

    values: np.ndarray
    target: np.ndarray
    method: str
    base_values: np.ndarray | None = None
    data: np.ndarray | None = None
    feature_names: tuple[str, ...] | None = None
    params: dict = dataclasses.field(default_factory=dict)
    stderr: np.ndarray | None = None
    extras: dict = dataclasses.field(default_factory=dict)

    _ARRAYS: ClassVar[tuple[str, ...]] = ("values", "target", "base_values", "data", "stderr")
    _PER_SAMPLE: ClassVar[tuple[str, ...]] = _ARRAYS
    _N_FIELD: ClassVar[str] = "values"

    def __post_init__(self) -> None:
        values = _frozen_array(self.values, "values")
        if values.ndim < 2:
            raise InvalidParameterError(
                f"values must have shape (n_samples, ...); got {values.shape}. Use values[None] for one sample."
            )
        n = values.shape[0]
        target = _frozen_array(self.target, "target", dtype=np.float64)
        if target.ndim == 0:
            target = _frozen_array(np.full(n, target), "target")
        if target.shape != (n,) or not np.all(np.mod(target, 1) == 0):
            raise InvalidParameterError(f"target must hold one int per sample ({n}); got shape {target.shape}.")
        target = _frozen_array(target, "target", dtype=np.int64)
        set_ = object.__setattr__
        set_(self, "values", values)
        set_(self, "target", target)
        for name in ("base_values", "data", "stderr"):
            value = getattr(self, name)
            if value is not None:
                set_(self, name, _frozen_array(value, name))
        _check_optional_like("base_values", self.base_values, (n,), "(n_samples,)")
        _check_optional_like("stderr", self.stderr, values.shape, "values")
        if self.data is not None and self.data.shape[0] != n:
            raise InvalidParameterError(f"data must have {n} rows (one per explained sample); got {self.data.shape}.")
        set_(self, "feature_names", _check_names(self.feature_names, int(np.prod(values.shape[1:])), "one per feature"))
        if not isinstance(self.method, str) or not self.method:
            raise InvalidParameterError(f"method must be a non-empty string; got {self.method!r}.")
        set_(self, "params", _freeze_mapping(self.params, "params"))
        set_(self, "extras", _freeze_mapping(self.extras, "extras"))

    @property
    def feature_shape(self) -> tuple[int, ...]:
        """Shape of one sample's attributions."""
        return tuple(self.values.shape[1:])

    def top_features(self, k: int = 10, absolute: bool = True) -> np.ndarray:
        """Indices (into the flattened feature axis) of the ``k`` largest attributions per sample.

        Returns
        -------
        int array of shape (n_samples, k), largest first.
        """
        flat = self.values.reshape(len(self), -1)
        k = _check_k(k, flat.shape[1])
        score = np.abs(flat) if absolute else flat
        return np.argsort(-score, axis=1, kind="stable")[:, :k]


def _check_k(k: Any, limit: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InvalidParameterError(f"k must be a positive int; got {k!r}.")
    return int(min(k, limit))


# --------------------------------------------------------------------------- DataAttribution


@dataclasses.dataclass(frozen=True, eq=False)
class DataAttribution(Result):
    """Attribution of test predictions to training examples.

    Parameters
    ----------
    scores : array of shape (n_test, n_train)
        ``scores[i, j]`` is the effect of training point ``j`` on test point ``i``.
    method : str
    convention : str
        What the sign means. The library-wide convention is ``"positive = helpful"``:
        removing (down-weighting) a positive-score training point would *raise* the test
        point's loss; negative scores mark harmful points.
    target : int array of shape (n_test,), optional
        The explained output per test point.
    self_influence : array of shape (n_train,), optional
        Each training point's effect on its own loss, where the method defines it.
    train_ids : int array of shape (n_train,), optional
        Indices of the training points in the caller's training set (default 0..n_train-1).
    params, extras : dict
        As in :class:`Explanation`.
    """

    scores: np.ndarray
    method: str
    convention: str = "positive = helpful: removing the training point would raise the test loss"
    target: np.ndarray | None = None
    self_influence: np.ndarray | None = None
    train_ids: np.ndarray | None = None
    params: dict = dataclasses.field(default_factory=dict)
    extras: dict = dataclasses.field(default_factory=dict)

    _ARRAYS: ClassVar[tuple[str, ...]] = ("scores", "target", "self_influence", "train_ids")
    _PER_SAMPLE: ClassVar[tuple[str, ...]] = ("scores", "target")
    _N_FIELD: ClassVar[str] = "scores"

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        scores = _frozen_array(self.scores, "scores")
        if scores.ndim != 2:
            raise InvalidParameterError(f"scores must have shape (n_test, n_train); got {scores.shape}.")
        n_test, n_train = scores.shape
        set_(self, "scores", scores)
        if self.target is not None:
            target = _frozen_array(self.target, "target", dtype=np.int64)
            if target.ndim == 0:
                target = _frozen_array(np.full(n_test, target), "target", dtype=np.int64)
            if target.shape != (n_test,):
                raise InvalidParameterError(f"target must have shape ({n_test},); got {target.shape}.")
            set_(self, "target", target)
        if self.self_influence is not None:
            si = _frozen_array(self.self_influence, "self_influence")
            _check_optional_like("self_influence", si, (n_train,), "(n_train,)")
            set_(self, "self_influence", si)
        ids = np.arange(n_train) if self.train_ids is None else self.train_ids
        ids = _frozen_array(ids, "train_ids", dtype=np.int64)
        _check_optional_like("train_ids", ids, (n_train,), "(n_train,)")
        set_(self, "train_ids", ids)
        if not isinstance(self.method, str) or not self.method:
            raise InvalidParameterError(f"method must be a non-empty string; got {self.method!r}.")
        set_(self, "params", _freeze_mapping(self.params, "params"))
        set_(self, "extras", _freeze_mapping(self.extras, "extras"))

    @property
    def n_train(self) -> int:
        return int(self.scores.shape[1])

    def top_k(self, k: int = 10, kind: str = "proponents") -> np.ndarray:
        """Training ids of the ``k`` most helpful (``"proponents"``), most harmful
        (``"opponents"``) or largest-magnitude (``"absolute"``) points per test point.

        Returns
        -------
        int array of shape (n_test, k), strongest first (ids from ``train_ids``).
        """
        k = _check_k(k, self.n_train)
        if kind == "proponents":
            key = -self.scores
        elif kind == "opponents":
            key = self.scores
        elif kind == "absolute":
            key = -np.abs(self.scores)
        else:
            raise InvalidParameterError(f"kind must be 'proponents', 'opponents' or 'absolute'; got {kind!r}.")
        order = np.argsort(key, axis=1, kind="stable")[:, :k]
        return self.train_ids[order]

    def proponents(self, k: int = 10) -> np.ndarray:
        """Ids of the ``k`` most helpful training points per test point (positive scores first)."""
        return self.top_k(k, "proponents")

    def opponents(self, k: int = 10) -> np.ndarray:
        """Ids of the ``k`` most harmful training points per test point (most negative first)."""
        return self.top_k(k, "opponents")


# --------------------------------------------------------------------------- MetricResult


@dataclasses.dataclass(frozen=True, eq=False)
class MetricResult(Result):
    """A metric evaluated per sample, with its mean and a confidence interval.

    Parameters
    ----------
    name : str
    values : array of shape (n_samples,)
        Per-sample values (NaN is refused: drop undefined samples and say so in ``extras``).
    higher_is_better : bool
    mean : float, optional
        Defaults to ``values.mean()``.
    ci : (float, float), optional
        Defaults to a Student-t interval of the mean at level ``ci_level``.
    ci_level : float, default 0.95
    params, extras : dict
    """

    name: str
    values: np.ndarray
    higher_is_better: bool
    mean: float | None = None
    ci: tuple[float, float] | None = None
    ci_level: float = 0.95
    params: dict = dataclasses.field(default_factory=dict)
    extras: dict = dataclasses.field(default_factory=dict)

    _ARRAYS: ClassVar[tuple[str, ...]] = ("values",)
    _PER_SAMPLE: ClassVar[tuple[str, ...]] = ("values",)
    _N_FIELD: ClassVar[str] = "values"

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        values = _frozen_array(self.values, "values").reshape(-1)
        if values.size == 0:
            raise InvalidParameterError("values must hold at least one per-sample value; got none.")
        if not np.isfinite(values).all():
            raise InvalidParameterError(
                "values must be finite; drop samples where the metric is undefined and record how many in extras."
            )
        set_(self, "values", values)
        if not 0 < self.ci_level < 1:
            raise InvalidParameterError(f"ci_level must be in (0, 1); got {self.ci_level!r}.")
        if self.mean is None:
            set_(self, "mean", float(values.mean()))
        else:
            set_(self, "mean", float(self.mean))
        if self.ci is None:
            set_(self, "ci", _t_interval(values, self.ci_level))
        else:
            lo, hi = (float(c) for c in self.ci)
            set_(self, "ci", (lo, hi))
        set_(self, "higher_is_better", bool(self.higher_is_better))
        set_(self, "params", _freeze_mapping(self.params, "params"))
        set_(self, "extras", _freeze_mapping(self.extras, "extras"))

    def __getitem__(self, index: Any) -> MetricResult:
        sub = super().__getitem__(index)
        return dataclasses.replace(sub, mean=None, ci=None)


def _t_interval(values: np.ndarray, level: float) -> tuple[float, float]:
    from scipy import stats

    m = float(values.mean())
    if values.size < 2:
        return (m, m)
    se = float(values.std(ddof=1) / np.sqrt(values.size))
    half = float(stats.t.ppf(0.5 + level / 2, df=values.size - 1)) * se
    return (m - half, m + half)
