"""DMM-MEN on a black box: the paper's per-class problem (Guo et al. 2018, sections 3.3 and 4).

:func:`fit_from_model` is the body of :meth:`DMMMEN.from_model
<scrutiny.surrogate.DMMMEN.from_model>`: the response is the model's clipped one-vs-rest logit
of one class, the features its flattened inputs, optionally screened to the highest-variance
ones (mapped back to input positions by ``feature_indices_``). It receives the estimator class,
so this module does not import :mod:`scrutiny.surrogate.dmm_men` (which imports it).

References
----------
Guo, W., Huang, S., Tao, Y., Xing, X. & Lin, L. (2018). Explaining deep learning models - a
Bayesian non-parametric approach. NeurIPS 31.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import Interval, check_array, validate_params
from ..exceptions import InvalidParameterError
from ..models import as_model

__all__ = ["fit_from_model"]


def fit_from_model(cls: type, model: Any, X: Any, target_class: Any, y_true: Any, n_features: Any, clip: Any,
                   dmm_params: dict) -> Any:
    """Body of :meth:`DMMMEN.from_model` (see there): ``cls`` is the estimator class."""

    owner = "DMMMEN.from_model"
    valid = cls._get_param_names()
    unknown = sorted(set(dmm_params) - set(valid))
    if unknown:
        raise InvalidParameterError(
            f"{owner}: unknown DMMMEN parameter(s) {unknown}; valid parameters are {sorted(valid)}."
        )
    validate_params(
        owner,
        {"target_class": target_class, "n_features": n_features, "clip": clip},
        {
            "target_class": [Interval(int, 0, None)],
            "n_features": [Interval(int, 1, None), None],
            "clip": [Interval(float, 0, 0.5, closed="neither")],
        },
        {
            "target_class": "Pass the index of the explained class (e.g. 3 for the digit 3).",
            "n_features": "None keeps every input feature; the authors keep 300 of 784 pixels.",
            "clip": "1e-6 is the paper's clipping of p before the logit.",
        },
    )
    wrapped = as_model(model)
    if wrapped.output == "regression":
        raise InvalidParameterError(
            f"{owner}: model must be a classifier (the response is the logit of a class probability), but its "
            "output is 'regression'. Wrap a callable classifier with as_model(f, output='logit') or "
            "as_model(f, output='probability')."
        )
    X = wrapped.check_input(X)
    if y_true is not None:
        labels = check_array(y_true, "y_true", ndim=1, shape=(X.shape[0],))
        keep = labels == target_class
        if keep.sum() < 2:
            raise InvalidParameterError(
                f"{owner}: y_true has {int(keep.sum())} sample(s) of target_class={target_class}; at least 2 are "
                f"needed (labels present: {np.unique(labels).astype(int).tolist()}). Check target_class, or pass "
                "y_true=None to fit every row of X."
            )
        X = X[keep]
    if X.shape[0] < 2:
        raise InvalidParameterError(f"{owner}: X must contain at least 2 samples; got shape {X.shape}.")
    logits = wrapped.predict_log_odds(X, eps=float(clip))
    if target_class >= logits.shape[1]:
        raise InvalidParameterError(
            f"{owner}: target_class must be a class index in [0, {logits.shape[1] - 1}] (the model has "
            f"{logits.shape[1]} classes); got {target_class}."
        )
    y = logits[:, int(target_class)]
    shape = tuple(int(s) for s in X.shape[1:])
    flat = X.reshape(X.shape[0], -1)
    d = flat.shape[1]
    if n_features is None:
        idx = np.arange(d)
    elif n_features > d:
        raise InvalidParameterError(
            f"{owner}: n_features must be at most the number of input features ({d} = prod{shape}); got "
            f"{n_features}. Use a smaller n_features, or None to keep every feature."
        )
    else:
        variance = flat.var(axis=0)
        idx = np.sort(np.argsort(-variance, kind="stable")[: int(n_features)])
    est = cls(**dmm_params)
    est.fit(flat[:, idx], y)
    est.model_ = wrapped
    est.target_class_ = int(target_class)
    est.clip_ = float(clip)
    est.input_shape_ = shape
    est.feature_indices_ = idx.astype(np.int64)
    est.n_input_features_ = int(d)
    return est
