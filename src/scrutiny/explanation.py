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
from typing import Any, ClassVar

import numpy as np

from ._result_io import Result, _freeze_mapping, _frozen_array, load_result
from ._result_io import read_only_copy  # noqa: F401 - the result types' array helper, used across packages
from .exceptions import InvalidParameterError

__all__ = ["DataAttribution", "Explanation", "MetricResult", "Result", "load_result"]


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
        target = _frozen_array(self.target, "target", dtype=np.int64)  # refuses fractions and values beyond int64
        if target.ndim == 0:
            target = _frozen_array(np.full(n, target), "target", dtype=np.int64)
        if target.shape != (n,):
            raise InvalidParameterError(f"target must hold one int per sample ({n}); got shape {target.shape}.")
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
