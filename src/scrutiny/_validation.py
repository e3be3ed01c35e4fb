"""Input validation shared by every scrutiny module.

Four kinds of helpers live here:

* array checks (:func:`check_array`, :func:`check_target`) that turn user input into
  float64 numpy arrays and refuse NaN/inf, empty arrays and wrong shapes with messages
  that say what to do;
* declarative parameter constraints (:class:`Interval`, :class:`Options`,
  :func:`validate_params`) used by estimators in ``fit``/``explain``;
* randomness (:func:`check_random_state`, :func:`spawn_generators`): every stochastic API
  takes ``random_state: int | numpy.random.Generator | None`` and never touches global
  RNG state;
* the one parameter mechanism (:class:`ParamsMixin`): ``get_params`` / ``set_params`` /
  ``repr`` from the ``__init__`` signature and class-level ``_constraints`` checked at
  ``fit`` / ``explain`` / ``attribute`` time.
"""

from __future__ import annotations

import inspect
import numbers
from dataclasses import dataclass
from typing import Any, ClassVar, Iterable, Mapping, Sequence

import numpy as np

from .exceptions import InvalidParameterError, NotFittedError

__all__ = [
    "check_array",
    "check_target",
    "check_random_state",
    "spawn_generators",
    "check_is_fitted",
    "Interval",
    "Options",
    "validate_params",
    "ParamsMixin",
]


# --------------------------------------------------------------------------- arrays


def _describe(value: Any) -> str:
    """A short description of a value for error messages."""
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_array(
    X: Any,
    name: str = "X",
    *,
    ndim: int | Sequence[int] | None = None,
    min_samples: int = 1,
    allow_nan: bool = False,
    dtype: Any = np.float64,
    shape: tuple[int | None, ...] | None = None,
    copy: bool = False,
) -> np.ndarray:
    """Convert ``X`` to a numeric numpy array and check it.

    Parameters
    ----------
    X : array-like
        The input. Torch tensors are accepted (moved to CPU and detached).
    name : str
        Name used in error messages ("X", "baseline", ...).
    ndim : int or sequence of int, optional
        Allowed numbers of dimensions.
    min_samples : int
        Minimum size of the first axis (``0`` allows empty arrays).
    allow_nan : bool
        Whether NaN and inf are allowed.
    dtype : numpy dtype or None
        Target dtype; ``None`` keeps the input's numeric dtype.
    shape : tuple, optional
        Expected shape; ``None`` entries are free.
    copy : bool
        Force a copy.

    Returns
    -------
    numpy.ndarray

    Raises
    ------
    InvalidParameterError
        On non-numeric input, a wrong number of dimensions or shape, too few samples, or
        NaN/inf values.
    """
    if X is None:
        raise InvalidParameterError(f"{name} must be an array; got None.")
    if hasattr(X, "detach") and hasattr(X, "cpu"):  # torch.Tensor without importing torch
        X = X.detach().cpu().numpy()
    try:
        arr = np.array(X, dtype=dtype, copy=True) if copy else np.asarray(X, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(
            f"{name} must be a numeric array-like; got {_describe(X)} which cannot be "
            f"converted to {np.dtype(dtype) if dtype is not None else 'a number'} ({exc}). "
            "Encode categorical columns as numbers first."
        ) from exc
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise InvalidParameterError(
            f"{name} must be numeric; got dtype {arr.dtype}. Encode categorical columns as numbers first."
        )
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            want = " or ".join(str(a) for a in allowed)
            hint = ""
            if arr.ndim == 1 and 2 in allowed:
                hint = " For a single sample use X.reshape(1, -1); for a single feature X.reshape(-1, 1)."
            raise InvalidParameterError(
                f"{name} must have {want} dimensions; got an array of shape {arr.shape}.{hint}"
            )
    if arr.ndim == 0:
        raise InvalidParameterError(f"{name} must be an array of samples; got the scalar {arr!r}.")
    if arr.shape[0] < min_samples:
        raise InvalidParameterError(
            f"{name} must contain at least {min_samples} sample(s); got an array of shape {arr.shape}. "
            "Pass a non-empty array."
        )
    if shape is not None:
        ok = len(shape) == arr.ndim and all(s is None or s == a for s, a in zip(shape, arr.shape))
        if not ok:
            want = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ")"
            raise InvalidParameterError(f"{name} must have shape {want}; got {arr.shape}.")
    if not allow_nan and np.issubdtype(arr.dtype, np.floating) and arr.size:
        finite = np.isfinite(arr)
        if not finite.all():
            bad = np.argwhere(~finite)
            first = tuple(int(i) for i in bad[0])
            kind = "NaN" if np.isnan(arr[first]) else "inf"
            raise InvalidParameterError(
                f"{name} contains {len(bad)} non-finite value(s) (first: {kind} at index {first}). "
                "Impute or drop them before explaining; scrutiny never guesses missing values."
            )
    return arr


def check_target(target: Any, n_samples: int, n_outputs: int | None, name: str = "target") -> np.ndarray:
    """Broadcast ``target`` (an int or one int per sample) to an int64 array of length ``n_samples``.

    Raises
    ------
    InvalidParameterError
        If a target is not an integer or is outside ``[0, n_outputs)``.
    """
    arr = np.asarray(target)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.bool_)):
        if np.issubdtype(arr.dtype, np.floating) and arr.size and np.all(np.mod(arr, 1) == 0):
            arr = arr.astype(np.int64)
        else:
            raise InvalidParameterError(
                f"{name} must be an int or an array of ints (output indices); got {_describe(target)}. "
                "For a classifier pass the class index, e.g. list(model.classes_).index(label)."
            )
    arr = arr.astype(np.int64)
    if arr.ndim == 0:
        arr = np.full(n_samples, int(arr), dtype=np.int64)
    elif arr.ndim != 1 or arr.shape[0] != n_samples:
        raise InvalidParameterError(
            f"{name} must be an int or have one entry per sample ({n_samples}); got shape {arr.shape}."
        )
    if n_outputs is not None and arr.size:
        bad = (arr < 0) | (arr >= n_outputs)
        if bad.any():
            raise InvalidParameterError(
                f"{name} must lie in [0, {n_outputs - 1}] (the model has {n_outputs} output(s)); "
                f"got {int(arr[bad][0])}. Use None to explain the predicted class."
            )
    return arr


# --------------------------------------------------------------------------- randomness


def check_random_state(random_state: Any, name: str = "random_state") -> np.random.Generator:
    """Return a fresh :class:`numpy.random.Generator` for one call.

    ``None`` gives fresh OS entropy; an int (or a :class:`numpy.random.SeedSequence`) gives a new
    Generator seeded with it, so the same int reproduces the same result on every call; a
    Generator is used as given (and advanced). Global RNG state is never touched.
    """
    if random_state is None or isinstance(random_state, np.random.SeedSequence):
        return np.random.default_rng(random_state)
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, (numbers.Integral, np.integer)) and not isinstance(random_state, bool):
        if int(random_state) < 0:
            raise InvalidParameterError(
                f"{name} must be a non-negative int, a numpy Generator or None; got {random_state}."
            )
        return np.random.default_rng(int(random_state))
    if isinstance(random_state, np.random.RandomState):
        raise InvalidParameterError(
            f"{name} must be an int, a numpy.random.Generator or None; got a legacy RandomState. "
            "Use numpy.random.default_rng(seed) instead."
        )
    raise InvalidParameterError(
        f"{name} must be an int, a numpy.random.Generator or None; got {_describe(random_state)}."
    )


def spawn_generators(random_state: Any, n: int) -> list[np.random.Generator]:
    """``n`` statistically independent Generators (for chains, workers) derived from ``random_state``."""
    rng = check_random_state(random_state)
    return list(rng.spawn(int(n)))


# --------------------------------------------------------------------------- fitted state


def check_is_fitted(estimator: Any, attributes: str | Iterable[str] | None = None) -> None:
    """Raise :class:`NotFittedError` unless ``estimator`` has been fitted.

    With ``attributes`` given, all must exist; otherwise any public attribute ending in ``_``
    counts as evidence of fitting (scikit-learn's convention).
    """
    name = type(estimator).__name__
    if attributes is not None:
        attrs = [attributes] if isinstance(attributes, str) else list(attributes)
        fitted = all(hasattr(estimator, a) for a in attrs)
    else:
        fitted = any(k.endswith("_") and not k.startswith("__") for k in vars(estimator))
    if not fitted:
        raise NotFittedError(
            f"This {name} instance is not fitted yet. Call {name}.fit(...) before using it."
        )


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class Interval:
    """A numeric constraint: ``kind`` is ``int`` or ``float`` (ints are accepted for floats)."""

    kind: type
    left: float | None = None
    right: float | None = None
    closed: str = "both"  # "both", "left", "right", "neither"

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool):
            return False
        if self.kind is int:
            if not isinstance(value, (numbers.Integral, np.integer)):
                return False
        elif not isinstance(value, (numbers.Real, np.floating, np.integer)):
            return False
        if not np.isfinite(value):
            return False
        lo_ok = self.left is None or (value >= self.left if self.closed in ("both", "left") else value > self.left)
        hi_ok = self.right is None or (value <= self.right if self.closed in ("both", "right") else value < self.right)
        return bool(lo_ok and hi_ok)

    def describe(self) -> str:
        kind = "an int" if self.kind is int else "a float"
        if self.left is None and self.right is None:
            return kind
        lb = "[" if self.closed in ("both", "left") else "("
        rb = "]" if self.closed in ("both", "right") else ")"
        lo = "-inf" if self.left is None else f"{self.left:g}"
        hi = "inf" if self.right is None else f"{self.right:g}"
        return f"{kind} in {lb}{lo}, {hi}{rb}"


@dataclass(frozen=True)
class Options:
    """A constraint to a fixed set of values (typically strings)."""

    values: frozenset

    def __init__(self, *values: Any) -> None:
        object.__setattr__(self, "values", frozenset(values))

    def accepts(self, value: Any) -> bool:
        try:
            return value in self.values
        except TypeError:
            return False

    def describe(self) -> str:
        return "one of " + ", ".join(repr(v) for v in sorted(self.values, key=str))


_SPECIAL = {
    "boolean": (lambda v: isinstance(v, (bool, np.bool_)), "a bool"),
    "random_state": (
        lambda v: v is None
        or isinstance(v, (np.random.Generator, np.random.SeedSequence))
        or (isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, bool) and v >= 0),
        "an int >= 0, a numpy.random.Generator or None",
    ),
    "array-like": (lambda v: hasattr(v, "__len__") or hasattr(v, "shape"), "an array-like"),
    "callable": (callable, "a callable"),
    "str": (lambda v: isinstance(v, str), "a str"),
    None: (lambda v: v is None, "None"),
}


def _accepts(constraint: Any, value: Any) -> bool:
    if isinstance(constraint, (Interval, Options)):
        return constraint.accepts(value)
    if isinstance(constraint, type):
        return isinstance(value, constraint)
    check, _ = _SPECIAL[constraint]
    return bool(check(value))


def _describe_constraint(constraint: Any) -> str:
    if isinstance(constraint, (Interval, Options)):
        return constraint.describe()
    if isinstance(constraint, type):
        return f"an instance of {constraint.__name__}"
    return _SPECIAL[constraint][1]


def validate_params(
    owner: str, params: Mapping[str, Any], constraints: Mapping[str, Sequence[Any]], hints: Mapping[str, str] | None = None
) -> None:
    """Check each ``params[name]`` against a list of acceptable constraints.

    Parameters
    ----------
    owner : str
        The class or function name, used in messages.
    params : mapping
        Parameter values by name.
    constraints : mapping
        For each name, a list of constraints; the value must satisfy at least one. A
        constraint is an :class:`Interval`, :class:`Options`, a type, or one of the strings
        ``"boolean"``, ``"random_state"``, ``"array-like"``, ``"callable"``, ``"str"`` or ``None``.
    hints : mapping, optional
        Extra advice per parameter appended to the message (e.g. typical values).

    Raises
    ------
    InvalidParameterError
        Naming the parameter, the accepted values and the value given.
    """
    for name, allowed in constraints.items():
        if name not in params:
            continue
        value = params[name]
        if any(_accepts(c, value) for c in allowed):
            continue
        want = " or ".join(_describe_constraint(c) for c in allowed)
        hint = f" {hints[name]}" if hints and name in hints else ""
        raise InvalidParameterError(f"{owner}: {name} must be {want}; got {_describe(value)}.{hint}")


# --------------------------------------------------------------------------- the parameter mechanism


_NO_DEFAULT = object()


def _same_value(a: Any, b: Any) -> bool:
    """Whether a parameter value equals its default (arrays and odd types compare safely)."""
    if a is b:
        return True
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return False
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:  # noqa: BLE001 - objects whose == raises or returns arrays
        return False


def _short_repr(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"<array {value.shape} {value.dtype}>"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class ParamsMixin:
    """The one parameter mechanism of scrutiny's classes (scikit-learn's contract).

    ``__init__`` stores each keyword hyper-parameter under its own name, unchanged and
    unvalidated; the parameter names are read from the ``__init__`` signature.
    :meth:`get_params` / :meth:`set_params` round-trip them, so ``sklearn.base.clone`` works;
    ``repr`` shows the parameters that differ from their defaults. Constraints are declared
    once per class in ``_constraints`` (see :func:`validate_params`; ``_hints`` adds advice)
    and checked by :meth:`_validate_params`, which ``fit`` / ``explain`` / ``attribute`` call
    before any work, so a parameter changed with ``set_params`` is checked too.
    """

    _constraints: ClassVar[dict[str, list]] = {}
    _hints: ClassVar[dict[str, str]] = {}

    @classmethod
    def _init_signature(cls) -> list[inspect.Parameter]:
        sig = inspect.signature(cls.__init__)
        return [
            p
            for name, p in sig.parameters.items()
            if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    @classmethod
    def _get_param_names(cls) -> list[str]:
        """Names of the ``__init__`` parameters, in signature order (scikit-learn's name)."""
        return [p.name for p in cls._init_signature()]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Hyper-parameters by name, as given to ``__init__`` (``deep`` is accepted for
        scikit-learn compatibility; scrutiny's classes do not nest estimators)."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params: Any) -> Any:
        """Set hyper-parameters by name; unknown names raise. Returns ``self``."""
        valid = self._get_param_names()
        for name, value in params.items():
            if name not in valid:
                raise InvalidParameterError(
                    f"{type(self).__name__} has no parameter {name!r}; valid parameters are "
                    f"{', '.join(valid)}."
                )
            setattr(self, name, value)
        return self

    def _validate_params(self) -> dict[str, Any]:
        """Check every parameter against the class's ``_constraints``; returns the parameters."""
        params = self.get_params()
        validate_params(type(self).__name__, params, self._constraints, self._hints)
        return params

    def __repr__(self) -> str:
        shown = []
        for p in self._init_signature():
            value = getattr(self, p.name, _NO_DEFAULT)
            if value is _NO_DEFAULT:
                continue
            if p.default is inspect.Parameter.empty:
                shown.append(_short_repr(value) if p.kind == p.POSITIONAL_OR_KEYWORD and not shown else f"{p.name}={_short_repr(value)}")
            elif not _same_value(value, p.default):
                shown.append(f"{p.name}={_short_repr(value)}")
        return f"{type(self).__name__}({', '.join(shown)})"
