"""From a fitted DMM-MEN to explanations: global insights and per-sample explanations.

* :class:`GlobalInsight` -- the top-k features of one mixture component (the paper's
  "generalizable insight"), a saveable result; :func:`global_insights` is the body of
  :meth:`DMMMEN.explain_global <scrutiny.surrogate.DMMMEN.explain_global>`;
* :func:`explain_samples` is the body of :meth:`DMMMEN.explain
  <scrutiny.surrogate.DMMMEN.explain>`: each sample explained by the coefficients of its most
  probable component;
* :func:`to_input_space` maps arrays over the fitted (screened) features back to the model's
  input shape.

The functions take the fitted estimator as their first argument and read its fitted attributes;
this module does not import :mod:`scrutiny.surrogate.dmm_men` (which imports it).

References
----------
Guo, W., Huang, S., Tao, Y., Xing, X. & Lin, L. (2018). Explaining deep learning models - a
Bayesian non-parametric approach. NeurIPS 31.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, ClassVar

import numpy as np

from .._validation import Interval, check_array, check_is_fitted, validate_params
from ..exceptions import InvalidParameterError
from ..explanation import Explanation, Result
from ..explanation import read_only_copy as _readonly

__all__ = ["GlobalInsight", "explain_samples", "global_insights", "map_input", "resolve_response", "to_input_space"]

#: marks "no response given the old way" (the old forms are kept one release)
_NO_RESPONSE = object()


@dataclasses.dataclass(frozen=True, eq=False)
class GlobalInsight(Result):
    """The "generalizable insight" of one mixture component (Guo et al. 2018, section 4.1).

    Returned by :meth:`DMMMEN.explain_global`, one per occupied component, heaviest first.
    Saved and reloaded like every result (``insight.save(path)``, :func:`scrutiny.load_result`).

    Attributes
    ----------
    component : int
        Index ``h`` of the component (row of ``coef_``).
    weight : float
        Posterior mean mixture weight ``pi_h``.
    n_samples : int
        Fitted samples whose most probable allocation is ``h`` (``labels_ == h``).
    intercept, sigma2 : float
        Posterior means of the component's intercept and noise variance.
    features : ndarray of shape (k,), int
        The top-k features, best first. After :meth:`DMMMEN.from_model` these are flat
        positions in the model's input (``np.unravel_index(features, input_shape)`` gives
        pixel coordinates), already mapped through the variance screening; after a plain
        ``fit`` they are column indices of ``X``.
    coef : ndarray of shape (k,)
        Posterior mean coefficients of those features.
    coef_ci : ndarray of shape (k, 2)
        Their 95 % equal-tailed credible intervals.
    significant : ndarray of shape (k,), bool
        Whether the credible interval excludes 0.
    heatmap : ndarray of the input shape
        The top-k coefficients at their input positions, 0 elsewhere (the paper's heat map).
        The input shape is the model's input shape after ``from_model``, ``(n_features,)``
        otherwise.
    coef_map : ndarray of the input shape
        Every fitted coefficient at its input position, 0 for screened-out features.
    ranking : {"signed", "absolute"}
        How features were ranked: by ``coef`` (evidence *for* the class) or by ``|coef|``.
    """

    component: int
    weight: float
    n_samples: int
    intercept: float
    sigma2: float
    features: np.ndarray
    coef: np.ndarray
    coef_ci: np.ndarray
    significant: np.ndarray
    heatmap: np.ndarray
    coef_map: np.ndarray
    ranking: str

    _ARRAYS: ClassVar[tuple[str, ...]] = ("features", "coef", "coef_ci", "significant", "heatmap", "coef_map")

    @property
    def k(self) -> int:
        """Number of features kept."""
        return int(self.features.shape[0])

    def summary(self, n: int = 10) -> str:
        """A one-paragraph text summary listing the first ``n`` features."""
        shown = ", ".join(
            f"{int(f)} ({c:+.3g}{'' if s else '?'})"
            for f, c, s in zip(self.features[:n], self.coef[:n], self.significant[:n])
        )
        more = f", ... ({self.k - n} more)" if self.k > n else ""
        return (
            f"component {self.component}: weight {self.weight:.3f}, {self.n_samples} samples, "
            f"intercept {self.intercept:+.3g}, sigma2 {self.sigma2:.3g}; top {self.k} features by "
            f"{self.ranking} coefficient (? = 95% interval contains 0): {shown}{more}"
        )


def _record(value: Any) -> Any:
    """A JSON-friendly record of a hyper-parameter (a Generator cannot be recorded by value)."""
    if isinstance(value, np.random.Generator):
        return f"<numpy Generator {type(value.bit_generator).__name__}: not reproducible from the record>"
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    return value


def to_input_space(est: Any, a: np.ndarray) -> np.ndarray:
    """Arrays over the fitted features (..., p) -> (..., *input_shape_), zeros for screened-out
    features (unchanged without :meth:`DMMMEN.from_model`)."""
    idx = getattr(est, "feature_indices_", None)
    if idx is None:
        return a
    full = np.zeros(a.shape[:-1] + (int(est.n_input_features_),))
    full[..., idx] = a
    return full.reshape(a.shape[:-1] + tuple(est.input_shape_))


def map_input(est: Any, X: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """``(screened features (n, p), flattened model input (n, d) or None)``.

    Without :meth:`DMMMEN.from_model`, X must be (n, n_features_in_) and the second item is None.
    """
    check_is_fitted(est, "coef_")
    idx = getattr(est, "feature_indices_", None)
    if idx is None:
        X = check_array(X, "X", ndim=2)
        if X.shape[1] != est.n_features_in_:
            raise InvalidParameterError(
                f"X has {X.shape[1]} features, but this DMMMEN was fitted with {est.n_features_in_}."
            )
        return X, None
    shape, d, p = tuple(est.input_shape_), int(est.n_input_features_), int(est.n_features_in_)
    X = check_array(X, "X")
    if X.ndim >= 2 and tuple(X.shape[1:]) == shape:
        flat = X.reshape(X.shape[0], d)
    elif X.ndim == 2 and X.shape[1] == d:
        flat = X
    elif X.ndim == 2 and X.shape[1] == p:
        return X, None
    else:
        hint = " For one sample use X[None]." if X.ndim == len(shape) else ""
        raise InvalidParameterError(
            f"X must be a batch of the model's inputs, shape (n_samples, *{shape}) (or flattened "
            f"(n_samples, {d}), or the {p} screened features (n_samples, {p})); got shape {X.shape}.{hint}"
        )
    return flat[:, idx], flat


def resolve_response(args: tuple, kwargs: dict, response: Any) -> Any:
    """The response of :meth:`DMMMEN.explain`, accepting for one release the old forms
    ``explain(X, y)`` and ``explain(X, y=...)`` with a ``DeprecationWarning``."""
    legacy = _NO_RESPONSE
    if args:
        if len(args) > 1:
            raise TypeError(f"DMMMEN.explain takes X and the keyword response; got {1 + len(args)} positional "
                            "arguments. Use explain(X, response=...).")
        legacy = args[0]
    if "y" in kwargs:
        if legacy is not _NO_RESPONSE:
            raise TypeError("DMMMEN.explain got the response twice (positionally and as y=); use "
                            "explain(X, response=...).")
        legacy = kwargs.pop("y")
    if kwargs:
        raise TypeError(f"DMMMEN.explain got unexpected keyword argument(s) {sorted(kwargs)}; it takes "
                        "explain(X, response=None).")
    if legacy is not _NO_RESPONSE:
        if response is not None:
            raise TypeError("DMMMEN.explain got the response twice; use explain(X, response=...) only.")
        warnings.warn(
            "DMMMEN.explain(X, y) is deprecated: the black box's response is keyword-only now, "
            "explain(X, response=...) (a second positional argument reads as a target class elsewhere "
            "in scrutiny). The old form will be removed in the next release.",
            DeprecationWarning,
            stacklevel=3,
        )
        response = legacy
    return response


def explain_samples(est: Any, X: Any, response: Any) -> Explanation:
    """Body of :meth:`DMMMEN.explain` (see there): each sample by its most probable component."""
    Xs, flat = est._map_input(X)
    n = Xs.shape[0]
    model = getattr(est, "model_", None)
    if response is None:
        if model is None:
            raise InvalidParameterError(
                "DMMMEN.explain needs response, the black box's responses at X (e.g. the logits of the explained "
                "class), to choose each sample's component h* = argmax_h pi_h N(response | x'beta_h, sigma2_h); got "
                "response=None. Pass explain(X, response=...), or build the surrogate with "
                "DMMMEN.from_model(model, X, target_class) so that the response is computed from the model."
            )
        if flat is None:
            raise InvalidParameterError(
                f"DMMMEN.explain: X holds only the {Xs.shape[1]} screened features, so the model cannot be queried "
                f"for the response; pass X in the model's input shape (n_samples, *{tuple(est.input_shape_)}), or "
                "pass response=..."
            )
        inputs = flat.reshape((n,) + tuple(est.input_shape_))
        y = model.predict_log_odds(inputs, eps=est.clip_)[:, est.target_class_]
    else:
        y = check_array(response, "response", ndim=1, shape=(n,))
    P = est._component_proba(Xs, y)
    labels = np.argmax(P, axis=1)
    rows = np.arange(n)
    coef = est.coef_[labels]
    ci = est.coef_ci_[labels]
    values_ci = np.moveaxis(to_input_space(est, np.moveaxis(ci, -1, 0)), 0, -1)
    params = {k: _record(v) for k, v in est.get_params().items()}
    if model is not None:
        params.update(target_class=est.target_class_, clip=est.clip_, n_features=int(est.n_features_in_))
    extras = {
        "component": labels.astype(np.int64),
        "component_proba": P[rows, labels],
        "responsibilities": P,
        "response": y,
        "fitted": est.intercept_[labels] + np.einsum("ij,ij->i", coef, Xs),
        "contributions": to_input_space(est, coef * Xs),
        "values_ci": values_ci,
    }
    return Explanation(
        values=to_input_space(est, coef),
        target=np.full(n, est.target_class_ if model is not None else 0, dtype=np.int64),
        method="DMMMEN",
        base_values=est.intercept_[labels],
        data=Xs if flat is None else flat.reshape((n,) + tuple(est.input_shape_)),
        params=params,
        extras=extras,
    )


def global_insights(est: Any, k: int, absolute: bool, min_weight: float, credible_only: bool) -> list[GlobalInsight]:
    """Body of :meth:`DMMMEN.explain_global` (see there)."""
    check_is_fitted(est, "coef_")
    p = int(est.n_features_in_)
    validate_params(
        "DMMMEN.explain_global",
        {"k": k, "absolute": absolute, "min_weight": min_weight, "credible_only": credible_only},
        {
            "k": [Interval(int, 1, None)],
            "absolute": ["boolean"],
            "min_weight": [Interval(float, 0, 1, closed="left")],
            "credible_only": ["boolean"],
        },
        {"k": "The paper keeps the top 150 pixels.", "min_weight": "0.01 ignores the empty components."},
    )
    if k > p:
        raise InvalidParameterError(
            f"DMMMEN.explain_global: k must be at most the number of fitted features ({p}); got k={k}. Use k <= {p}."
        )
    idx = getattr(est, "feature_indices_", None)
    positions = np.arange(p) if idx is None else idx
    counts = np.bincount(est.labels_, minlength=est.coef_.shape[0])
    out = []
    for h in np.argsort(-est.weights_, kind="stable"):
        if est.weights_[h] < min_weight or est.occupancy_[h] == 0:  # never occupied: its prior, no insight
            continue
        beta, ci = est.coef_[h], est.coef_ci_[h]
        significant = (ci[:, 0] > 0) | (ci[:, 1] < 0)
        order = np.argsort(-(np.abs(beta) if absolute else beta), kind="stable")
        if credible_only:
            order = order[significant[order]]
        top = order[:k]
        heat = np.zeros(p)
        heat[top] = beta[top]
        out.append(
            GlobalInsight(
                component=int(h),
                weight=float(est.weights_[h]),
                n_samples=int(counts[h]),
                intercept=float(est.intercept_[h]),
                sigma2=float(est.sigma2_[h]),
                features=_readonly(positions[top], np.int64),
                coef=_readonly(beta[top]),
                coef_ci=_readonly(ci[top]),
                significant=_readonly(significant[top], bool),
                heatmap=_readonly(to_input_space(est, heat)),
                coef_map=_readonly(to_input_space(est, beta)),
                ranking="absolute" if absolute else "signed",
            )
        )
    return out
