"""``evaluate``: every explanation method on every metric, with intervals and paired comparisons.

Each method is explained once and its attributions are reused by every metric. Rankings of
methods disagree across metrics and seeds, so the table carries, for every metric and every
pair of methods, a paired-bootstrap 95% interval of the mean difference (the same resampled
samples for both methods, so the shared per-sample difficulty cancels).

The module is ``evaluation``, not ``evaluate``: a submodule named like the function would replace
the function on the package (``scrutiny.metrics.evaluate``) as soon as it is imported.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .._validation import check_array, check_random_state
from ..exceptions import InvalidParameterError
from ..explanation import MetricResult, Result
from ..models import as_model
from ._common import resolve_attributions

__all__ = ["evaluate", "EvaluationTable"]


@dataclasses.dataclass(frozen=True)
class EvaluationTable(Result):
    """The results of :func:`evaluate`.

    Attributes
    ----------
    methods, metrics : tuple of str
        Row and column names, in the order given.
    results : dict
        ``results[metric][method]`` is that cell's :class:`~scrutiny.MetricResult`.
    differences : dict
        ``differences[metric]`` is a list of ``{"a", "b", "mean", "ci", "better"}``: the mean of
        ``values(a) - values(b)`` with its paired-bootstrap interval, and which method the metric's
        direction favours when the interval excludes 0 (else ``None``).
    params : dict
        ``n_bootstrap``, ``ci_level``, ``random_state``.
    """

    methods: tuple
    metrics: tuple
    results: dict
    differences: dict
    params: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "methods", tuple(self.methods))
        object.__setattr__(self, "metrics", tuple(self.metrics))

    def result(self, method: str, metric: str) -> MetricResult:
        """The MetricResult of one cell."""
        return self.results[metric][method]

    def difference(self, a: str, b: str, metric: str) -> dict:
        """The paired comparison of ``a`` against ``b`` on ``metric`` (sign flipped if stored as b - a)."""
        for d in self.differences[metric]:
            if (d["a"], d["b"]) == (a, b):
                return dict(d)
            if (d["a"], d["b"]) == (b, a):
                lo, hi = d["ci"]
                return {"a": a, "b": b, "mean": -d["mean"], "ci": [-hi, -lo], "better": d["better"]}
        raise InvalidParameterError(f"no comparison of {a!r} and {b!r} on {metric!r}; methods are {self.methods}.")

    def __str__(self) -> str:
        width = max(len(m) for m in self.methods) + 2
        lines = ["method".ljust(width) + "".join(m[:28].ljust(30) for m in self.metrics)]
        for method in self.methods:
            cells = []
            for metric in self.metrics:
                r = self.results[metric][method]
                cells.append(f"{r.mean:.4f} [{r.ci[0]:.4f}, {r.ci[1]:.4f}]".ljust(30))
            lines.append(method.ljust(width) + "".join(cells))
        return "\n".join(lines)


def _metric_spec(name: str, spec: Any) -> tuple[Callable, dict]:
    if callable(spec):
        return spec, {}
    if isinstance(spec, tuple) and len(spec) == 2 and callable(spec[0]) and isinstance(spec[1], Mapping):
        return spec[0], dict(spec[1])
    raise InvalidParameterError(
        f"metrics[{name!r}] must be a metric function or a (function, kwargs) pair; got {type(spec).__name__}."
    )


# Bootstrap replicates drawn per chunk: memory is chunk x n counts, whatever n_bootstrap is.
_BOOT_CHUNK = 200


def _paired_bootstrap_means(diffs: np.ndarray, n_bootstrap: int, seed: int) -> np.ndarray:
    """Means of ``diffs`` (pairs, n) over ``n_bootstrap`` resamples of the n samples, the same
    resamples for every pair; shape (n_bootstrap, pairs). Resampling counts times the
    differences equals indexing, without materialising (pairs, B, n)."""
    n = diffs.shape[1]
    rng = np.random.default_rng(seed)
    out = np.empty((n_bootstrap, diffs.shape[0]))
    for lo in range(0, n_bootstrap, _BOOT_CHUNK):
        c = min(_BOOT_CHUNK, n_bootstrap - lo)
        idx = rng.integers(0, n, size=(c, n))
        counts = np.bincount((np.arange(c)[:, None] * n + idx).ravel(), minlength=c * n).reshape(c, n)
        out[lo:lo + c] = counts @ diffs.T / n
    return out


def evaluate(explainers: Mapping[str, Any], metrics: Mapping[str, Any], model: Any, X: Any, *, target: Any = None,
             n_bootstrap: int = 2000, ci_level: float = 0.95, random_state: Any = None) -> EvaluationTable:
    """Run every metric on every method's attributions of ``X``.

    Parameters
    ----------
    explainers : dict of name -> explainer, Explanation, array or "random"
        Each is resolved to attributions once (explainers are run once) and reused by every metric.
    metrics : dict of name -> metric function or (function, kwargs)
        Functions of :mod:`scrutiny.metrics` (``metric(model, X, attributions, *, target, ...)``).
        A metric that takes ``random_state`` and is not given one in its kwargs gets a seed drawn
        from ``random_state``, the same for every method (so methods see the same perturbations).
    model : model or anything :func:`scrutiny.models.as_model` accepts
    X : array of shape (n, ...)
    target : int or array of int, optional
        The explained class; ``None``: each explanation's own target, else the predicted class.
    n_bootstrap : int, default 2000
    ci_level : float, default 0.95
    random_state : int, Generator or None

    Returns
    -------
    EvaluationTable

    Examples
    --------
    >>> table = evaluate({"ig": IntegratedGradients(model), "random": "random"},
    ...                  {"deletion": deletion_curve, "keep20": (keep_top_k, {"k": 20})},
    ...                  model, X, random_state=0)  # doctest: +SKIP
    >>> table.difference("ig", "random", "deletion")["ci"]  # doctest: +SKIP
    """
    if not isinstance(explainers, Mapping) or not explainers:
        raise InvalidParameterError("explainers must be a non-empty dict of name -> explainer, Explanation, array or 'random'.")
    if not isinstance(metrics, Mapping) or not metrics:
        raise InvalidParameterError("metrics must be a non-empty dict of name -> metric function or (function, kwargs).")
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < 100:
        raise InvalidParameterError(f"n_bootstrap must be an int >= 100 (2000 is typical); got {n_bootstrap!r}.")
    if not 0 < ci_level < 1:
        raise InvalidParameterError(f"ci_level must be in (0, 1); got {ci_level!r}.")
    specs = {name: _metric_spec(name, spec) for name, spec in metrics.items()}
    model = as_model(model)
    X = check_array(X, "X")
    rng = check_random_state(random_state)
    attr_seeds = rng.integers(0, 2**63 - 1, size=len(explainers))
    metric_seeds = rng.integers(0, 2**63 - 1, size=len(metrics))
    boot_seed = int(rng.integers(0, 2**63 - 1))

    attributions = {
        name: resolve_attributions(model, X, exp, target=target, random_state=int(seed))
        for (name, exp), seed in zip(explainers.items(), attr_seeds)
    }
    results: dict[str, dict[str, MetricResult]] = {}
    for (metric_name, (fn, kwargs)), seed in zip(specs.items(), metric_seeds):
        if "random_state" not in kwargs and "random_state" in inspect.signature(fn).parameters:
            kwargs = {**kwargs, "random_state": int(seed)}
        row = {}
        for method, attr in attributions.items():
            res = fn(model, X, attr.values, target=attr.target, **kwargs)
            if not isinstance(res, MetricResult):
                raise InvalidParameterError(f"metrics[{metric_name!r}] returned a {type(res).__name__}, not a MetricResult.")
            row[method] = res
        results[metric_name] = row

    names = list(attributions)
    pairs = [(metric, a, b) for metric in results for i, a in enumerate(names) for b in names[i + 1:]]
    n = X.shape[0]
    diffs = np.empty((len(pairs), n))
    for j, (metric, a, b) in enumerate(pairs):
        diff = results[metric][a].values - results[metric][b].values
        if diff.shape != (n,):
            raise InvalidParameterError(
                f"metrics[{metric!r}] must return one value per sample of X to be compared; got {diff.shape}."
            )
        diffs[j] = diff
    boot = _paired_bootstrap_means(diffs, n_bootstrap, boot_seed)
    alpha = (1 - ci_level) / 2
    differences: dict[str, list] = {metric: [] for metric in results}
    for j, (metric, a, b) in enumerate(pairs):
        lo, hi = (float(q) for q in np.quantile(boot[:, j], [alpha, 1 - alpha]))
        better = None
        if lo > 0 or hi < 0:
            better = a if (lo > 0) == results[metric][a].higher_is_better else b
        differences[metric].append({"a": a, "b": b, "mean": float(diffs[j].mean()), "ci": [lo, hi], "better": better})
    params = {"n_bootstrap": int(n_bootstrap), "ci_level": float(ci_level),
              "random_state": random_state if random_state is None or isinstance(random_state, int) else repr(random_state),
              "sources": {name: a.source for name, a in attributions.items()}}
    return EvaluationTable(methods=tuple(names), metrics=tuple(results), results=results, differences=differences,
                           params=params)
