"""The data-attribution protocol shared by :class:`InfluenceFunctions` and :class:`RepresenterPoints`.

``Method(model, **params).fit(X_train, y_train) -> self`` and ``.attribute(X, target=None)``:
hyper-parameters in ``__init__``, data in ``fit``. The old form, training data in the
constructor and ``fit()`` without arguments, is kept for one release: the constructor takes
the data through ``*args`` (or the ``X_train=`` / ``y_train=`` keywords) so that it never
appears in ``get_params``, warns, and keeps it privately for a ``fit()`` without data, which
warns again.
"""

from __future__ import annotations

import warnings
from typing import Any

from ..exceptions import InvalidParameterError

_DATA_NAMES = ("X_train", "y_train")


def take_deprecated_data(owner: str, args: tuple, kwargs: dict, old: str, new: str) -> tuple[Any, Any] | None:
    """The training data passed to a constructor in the deprecated form, or None.

    ``args`` are the extra positional arguments (``X_train, y_train``), ``kwargs`` the extra
    keywords (only ``X_train`` / ``y_train`` are accepted); ``old`` and ``new`` are the call forms
    named in the warning.
    """
    unknown = sorted(set(kwargs) - set(_DATA_NAMES))
    if unknown:
        raise InvalidParameterError(f"{owner} got unexpected keyword argument(s) {unknown}. Hyper-parameters are "
                                    f"keywords of {owner}(...); the training data goes to fit: {new}.")
    if len(args) > 2:
        raise InvalidParameterError(
            f"{owner} takes its hyper-parameters as keywords; got {len(args)} extra positional arguments. "
            f"Use {new}.")
    if not args and not kwargs:
        return None
    values = dict(zip(_DATA_NAMES, args))
    for name in kwargs:
        if name in values:
            raise InvalidParameterError(f"{owner} got {name} both by position and by keyword. Use {new}.")
    values.update(kwargs)
    warnings.warn(f"Passing the training data to the constructor, {old}, is deprecated and will be removed in the "
                  f"next release; use {new}.", DeprecationWarning, stacklevel=3)
    return values.get("X_train"), values.get("y_train")


def resolve_fit_data(obj: Any, X_train: Any, y_train: Any, new: str, stacklevel: int = 3) -> tuple[Any, Any]:
    """``(X_train, y_train)`` for ``fit``: the arguments, or (deprecated) the constructor's data."""
    owner = type(obj).__name__
    if X_train is None and y_train is None:
        stored = getattr(obj, "_deprecated_data", None)
        if stored is None:
            raise InvalidParameterError(
                f"X_train and y_train are required: {new}. Pass the full training set the model was fitted on.")
        warnings.warn(f"{owner}.fit() without data is deprecated and will be removed in the next release; use {new}.",
                      DeprecationWarning, stacklevel=stacklevel)
        X_train, y_train = stored
    if X_train is None or y_train is None:
        missing = "X_train" if X_train is None else "y_train"
        raise InvalidParameterError(f"X_train and y_train are required; {missing} is missing. Use {new}.")
    return X_train, y_train
