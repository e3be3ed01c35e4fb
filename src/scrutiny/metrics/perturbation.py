"""Perturbation and robustness metrics: infidelity, max/avg-sensitivity, faithfulness
correlation, PGI and PGU.

Every metric follows the convention of :mod:`scrutiny.metrics._common`: ``attributions`` is an
Explanation, an explainer, an array of the input's shape, or ``"random"`` (the random baseline);
the result is a :class:`~scrutiny.MetricResult` with one value per row of ``X``, the direction,
and every parameter and the seed in ``params``.

Perturbations are drawn in one fixed order: row ``i``'s ``n_samples`` perturbed copies are rows
``i * n_samples ... (i + 1) * n_samples - 1`` of one expanded array (captum's
``repeat_interleave`` order), so a user ``perturbation`` callable sees exactly what captum's
``perturb_func`` sees, and the captum comparisons in ``tests/test_metrics_perturbation.py`` feed
both libraries the same perturbations. A ``perturbation`` callable is
``perturbation(X_expanded, rng) -> X_perturbed`` (same shape).

``space="auto"`` scores classifiers with several outputs in probability space (as RISE and the
DMM-MEN paper's Table 1) and everything else (regressors, single-logit models) in raw space.

References
----------
.. [1] Yeh, Hsieh, Suggala, Inouye, Ravikumar (2019). On the (in)fidelity and sensitivity of
   explanations. NeurIPS.
.. [2] Bhatt, Weller, Moura (2020). Evaluating and aggregating feature-based model
   explanations. IJCAI.
.. [3] Agarwal, Krishna, Saxena, Pawelczyk, Johnson, Puri, Zitnik, Lakkaraju (2022). OpenXAI:
   towards a transparent evaluation of model explanations. NeurIPS datasets and benchmarks.
"""

from __future__ import annotations

import numbers
from typing import Any, Callable

import numpy as np

from .._validation import check_array, spawn_generators
from ..exceptions import InvalidParameterError
from ..explanation import MetricResult
from ..models import as_model
from ._common import model_scores, metric_result, resolve_attributions

__all__ = ["infidelity", "sensitivity_max", "sensitivity_avg", "faithfulness_correlation", "pgi", "pgu"]

# Rows of expanded (perturbed) inputs sent to the model per call: bounds memory only; every
# random number is drawn before chunking, so the chunk size never changes a result.
_CHUNK_ELEMENTS = 4_000_000


# ----------------------------------------------------------------------------- local helpers
def _seed_record(random_state: Any) -> Any:
    if random_state is None or isinstance(random_state, (numbers.Integral, np.integer)):
        return None if random_state is None else int(random_state)
    return type(random_state).__name__


def _positive_int(value: Any, name: str, hint: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)) or value < 1:
        raise InvalidParameterError(f"{name} must be a positive int; got {value!r}. {hint}")
    return int(value)


def _positive_float(value: Any, name: str, hint: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value) or value <= 0:
        raise InvalidParameterError(f"{name} must be a positive finite number; got {value!r}. {hint}")
    return float(value)


def _resolve_space(model: Any, X: np.ndarray, space: str) -> str:
    if space in ("raw", "probability", "log_odds"):
        return space
    if space != "auto":
        raise InvalidParameterError(
            f"space must be 'auto', 'raw', 'probability' or 'log_odds'; got {space!r}."
        )
    if model.n_outputs is None:
        model.predict(X[:1])
    if getattr(model, "output", None) == "regression" or model.n_outputs == 1:
        return "raw"
    return "probability"


def _baseline_array(baseline: Any, X: np.ndarray) -> np.ndarray:
    """``baseline`` (a scalar, one sample's shape, or one per row) broadcast to ``X``'s shape."""
    b = np.asarray(baseline, dtype=np.float64)
    if b.ndim == 0 or b.shape == X.shape[1:]:
        return np.broadcast_to(b, X.shape)
    if b.shape == X.shape:
        return b
    raise InvalidParameterError(
        f"baseline must be a scalar, an array of one sample's shape {X.shape[1:]} or of X's shape {X.shape}; "
        f"got shape {b.shape}."
    )


def _scores_chunked(model: Any, X: np.ndarray, target: np.ndarray, space: str) -> np.ndarray:
    per_row = max(1, int(np.prod(X.shape[1:])))
    step = max(1, _CHUNK_ELEMENTS // per_row)
    return np.concatenate([model_scores(model, X[i:i + step], target[i:i + step], space)
                           for i in range(0, X.shape[0], step)])


def _perturb(perturbation: Callable, X_expanded: np.ndarray, rng: np.random.Generator, name: str) -> np.ndarray:
    out = np.asarray(perturbation(X_expanded, rng), dtype=np.float64)
    if out.shape != X_expanded.shape:
        raise InvalidParameterError(
            f"{name}: the callable must return perturbed inputs of shape {X_expanded.shape}; got {out.shape}."
        )
    return out


def _n_select(value: Any, n_features: int, name: str, default_fraction: float) -> int:
    """A feature count from an int, a fraction in (0, 1), or None (``default_fraction``)."""
    if value is None:
        value = default_fraction
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        if not 1 <= value <= n_features:
            raise InvalidParameterError(
                f"{name} must be between 1 and the number of features ({n_features}); got {value}."
            )
        return int(value)
    if isinstance(value, numbers.Real) and 0 < value < 1:
        return max(1, int(round(value * n_features)))
    raise InvalidParameterError(
        f"{name} must be an int in [1, {n_features}] or a fraction in (0, 1); got {value!r}."
    )


def _setup(model: Any, X: Any, attributions: Any, target: Any, random_state: Any, space: str):
    model = as_model(model)
    X = check_array(X, "X")
    attr_rng, noise_rng = spawn_generators(random_state, 2)
    resolved = resolve_attributions(model, X, attributions, target, attr_rng)
    return model, X, resolved, noise_rng, _resolve_space(model, X, space)


# ----------------------------------------------------------------------------- infidelity
def infidelity(model: Any, X: Any, attributions: Any, *, n_samples: int = 10,
               perturbation: str | Callable = "gaussian", noise_scale: float = 0.1,
               multiply_by_inputs: bool = False, baseline: Any = 0.0, normalize: bool = False,
               target: Any = None, space: str = "auto", random_state: Any = None) -> MetricResult:
    """Explanation infidelity ``E_I[(I^T phi - (f(x) - f(x - I)))^2]`` (Yeh et al. 2019). Lower is better.

    Parameters
    ----------
    model : model or anything :func:`~scrutiny.models.as_model` accepts
    X : array-like of shape (n_samples, ...)
    attributions : Explanation, explainer, array of X's shape, or "random"
    n_samples : int, default 10
        Perturbations per input (captum's ``n_perturb_samples``).
    perturbation : "gaussian" or callable, default "gaussian"
        "gaussian": ``I ~ N(0, noise_scale^2)`` per input value and ``x - I`` is evaluated; a callable
        ``perturbation(X_expanded, rng) -> X_perturbed`` (see the module doc), ``I = x - X_perturbed``.
    noise_scale : float, default 0.1
        Standard deviation of the Gaussian perturbation.
    multiply_by_inputs : bool, default False
        For attributions that already multiply by ``x - baseline`` (Gradient x Input, IG, SHAP):
        ``I`` is divided by ``x - baseline`` (1 where that is 0), as captum's
        ``infidelity_perturb_func_decorator(multiply_by_inputs=True)``.
    baseline : float or array, default 0.0
        The baseline of ``multiply_by_inputs``.
    normalize : bool, default False
        Rescale the attributions by the optimal ``beta = E[I^T phi (f(x) - f(x - I))] / E[(I^T phi)^2]``.
    target, space, random_state
        See :mod:`scrutiny.metrics._common`.

    Returns
    -------
    MetricResult
        ``values[i]``: the infidelity of row ``i``; ``higher_is_better=False``.

    Examples
    --------
    >>> infidelity(model, X, GradientXInput(model), multiply_by_inputs=True, space="raw", random_state=0)
    """
    n_samples = _positive_int(n_samples, "n_samples", "10 is captum's default.")
    noise_scale = _positive_float(noise_scale, "noise_scale", "0.1 is typical for standardised inputs.")
    if not (perturbation == "gaussian" or callable(perturbation)):
        raise InvalidParameterError(f"perturbation must be 'gaussian' or a callable; got {perturbation!r}.")
    model, X, resolved, rng, space = _setup(model, X, attributions, target, random_state, space)
    n = X.shape[0]
    X_exp = np.repeat(X, n_samples, axis=0)
    if callable(perturbation):
        X_pert = _perturb(perturbation, X_exp, rng, "perturbation")
        noise = X_exp - X_pert
    else:
        noise = rng.normal(0.0, noise_scale, size=X_exp.shape)
        X_pert = X_exp - noise
    if multiply_by_inputs:
        denom = X_exp - np.repeat(_baseline_array(baseline, X), n_samples, axis=0)
        noise = noise / np.where(denom == 0, 1.0, denom)
    target_exp = np.repeat(resolved.target, n_samples)
    f_x = np.repeat(model_scores(model, X, resolved.target, space), n_samples)
    diff = (f_x - _scores_chunked(model, X_pert, target_exp, space)).reshape(n, n_samples)
    dot = (noise * np.repeat(resolved.values, n_samples, axis=0)).reshape(n * n_samples, -1).sum(1)
    dot = dot.reshape(n, n_samples)
    if normalize:
        a, b = (dot ** 2).sum(1), (dot * diff).sum(1)
        beta = b / np.where(a == 0, 1.0, a)
        values = ((beta[:, None] * dot - diff) ** 2).mean(1)
    else:
        values = ((dot - diff) ** 2).mean(1)
    params = dict(n_samples=n_samples, perturbation=perturbation if isinstance(perturbation, str) else "callable",
                  noise_scale=noise_scale, multiply_by_inputs=bool(multiply_by_inputs),
                  baseline=np.asarray(baseline).tolist() if np.ndim(baseline) == 0 else "array",
                  normalize=bool(normalize), space=space, attributions=resolved.source,
                  random_state=_seed_record(random_state))
    return metric_result("infidelity", values, higher_is_better=False, params=params)


# ----------------------------------------------------------------------------- sensitivity
def _sensitivity(name: str, reduce: Callable, model: Any, X: Any, explainer: Any, *, radius: float,
                 n_samples: int, norm: str, perturbation: Callable | None, target: Any,
                 random_state: Any) -> MetricResult:
    n_samples = _positive_int(n_samples, "n_samples", "10 is captum's default.")
    radius = _positive_float(radius, "radius", "0.02 is captum's default (uniform L-infinity noise).")
    if norm not in ("fro", "inf"):
        raise InvalidParameterError(f"norm must be 'fro' or 'inf'; got {norm!r}.")
    if not (explainer == "random" or hasattr(explainer, "explain")):
        raise InvalidParameterError(
            f"{name} re-explains perturbed inputs, so it needs an explainer (anything with explain(X, target)) "
            f"or 'random'; got {type(explainer).__name__}. Pass e.g. Saliency(model), not an Explanation."
        )
    model = as_model(model)
    X = check_array(X, "X")
    attr_rng, rng = spawn_generators(random_state, 2)
    n = X.shape[0]
    if explainer == "random":
        base = resolve_attributions(model, X, "random", target, attr_rng)
        explained, t = base.values, base.target
        explain = lambda Z, tz: attr_rng.standard_normal(Z.shape)  # noqa: E731  (a fresh draw per call)
        source = "random"
    else:
        first = explainer.explain(X, target=target)
        explained, t = np.asarray(first.values, dtype=np.float64), np.asarray(first.target)
        explain = lambda Z, tz: np.asarray(explainer.explain(Z, target=tz).values, dtype=np.float64)  # noqa: E731
        source = type(explainer).__name__
    X_exp = np.repeat(X, n_samples, axis=0)
    if perturbation is None:
        X_pert = X_exp + rng.uniform(-radius, radius, size=X_exp.shape)
    else:
        X_pert = _perturb(perturbation, X_exp, rng, "perturbation")
    delta = (explain(X_pert, np.repeat(t, n_samples)) - np.repeat(explained, n_samples, axis=0))
    delta = delta.reshape(n * n_samples, -1)
    flat = explained.reshape(n, -1)
    if norm == "fro":
        num, den = np.linalg.norm(delta, axis=1), np.linalg.norm(flat, axis=1)
    else:
        num, den = np.abs(delta).max(1), np.abs(flat).max(1)
    den = np.where(den == 0, 1.0, den)  # captum's convention: an all-zero attribution is not rescaled
    values = reduce((num.reshape(n, n_samples) / den[:, None]), axis=1)
    params = dict(radius=radius, n_samples=n_samples, norm=norm,
                  perturbation="uniform" if perturbation is None else "callable", attributions=source,
                  random_state=_seed_record(random_state))
    return metric_result(name, values, higher_is_better=False, params=params)


def sensitivity_max(model: Any, X: Any, explainer: Any, *, radius: float = 0.02, n_samples: int = 10,
                    norm: str = "fro", perturbation: Callable | None = None, target: Any = None,
                    random_state: Any = None) -> MetricResult:
    """Max-sensitivity ``max_j ||phi(x + d_j) - phi(x)|| / ||phi(x)||`` over ``d_j`` uniform in the
    L-infinity ball of ``radius`` (Yeh et al. 2019; captum's ``sensitivity_max``). Lower is better.

    The denominator is the attribution's norm, as captum and the paper define it (Quantus#288
    divided by the input's norm; this does not).

    Parameters
    ----------
    model : model or anything :func:`~scrutiny.models.as_model` accepts
    X : array-like of shape (n_samples, ...)
    explainer : an explainer (``explain(X, target)``) or "random"
        Re-run on every perturbed input, so an Explanation or an array is refused.
    radius : float, default 0.02
    n_samples : int, default 10
    norm : {"fro", "inf"}, default "fro"
    perturbation : callable, optional
        ``perturbation(X_expanded, rng) -> X_perturbed`` replacing the uniform noise (see the module doc).
    target, random_state
        See :mod:`scrutiny.metrics._common`.

    Returns
    -------
    MetricResult
        ``higher_is_better=False``.

    Examples
    --------
    >>> sensitivity_max(model, X, Saliency(model), random_state=0).mean
    """
    return _sensitivity("sensitivity_max", np.max, model, X, explainer, radius=radius, n_samples=n_samples,
                        norm=norm, perturbation=perturbation, target=target, random_state=random_state)


def sensitivity_avg(model: Any, X: Any, explainer: Any, *, radius: float = 0.02, n_samples: int = 10,
                    norm: str = "fro", perturbation: Callable | None = None, target: Any = None,
                    random_state: Any = None) -> MetricResult:
    """Average sensitivity: :func:`sensitivity_max` with the mean over perturbations instead of the max."""
    return _sensitivity("sensitivity_avg", np.mean, model, X, explainer, radius=radius, n_samples=n_samples,
                        norm=norm, perturbation=perturbation, target=target, random_state=random_state)


# ----------------------------------------------------------------------------- faithfulness correlation
def faithfulness_correlation(model: Any, X: Any, attributions: Any, *, n_runs: int = 100,
                             subset_size: Any = None, baseline: Any = 0.0, target: Any = None,
                             space: str = "auto", random_state: Any = None) -> MetricResult:
    """Pearson correlation, over ``n_runs`` random feature subsets ``S``, between ``sum_{i in S} phi_i``
    and ``f(x) - f(x with x_S set to the baseline)`` (Bhatt et al. 2020). Higher is better.

    Parameters
    ----------
    model, X, attributions
        See :mod:`scrutiny.metrics._common`; features are the flattened input values.
    n_runs : int, default 100
    subset_size : int or float in (0, 1), optional
        ``|S|``; None uses a quarter of the features (Quantus uses 224 pixels of 224x224 images).
    baseline : float or array, default 0.0
        A scalar, one sample's shape, or one per row.
    target, space, random_state
        See :mod:`scrutiny.metrics._common`.

    Returns
    -------
    MetricResult
        Rows where either side is constant over the runs have no correlation: they are dropped
        and counted in ``extras["n_undefined"]``.

    Examples
    --------
    >>> faithfulness_correlation(model, X, KernelSHAP(model, background=B), random_state=0)
    """
    n_runs = _positive_int(n_runs, "n_runs", "100 is Quantus's default; at least 3 are needed for a correlation.")
    if n_runs < 3:
        raise InvalidParameterError(f"n_runs must be at least 3 to define a correlation; got {n_runs}.")
    model, X, resolved, rng, space = _setup(model, X, attributions, target, random_state, space)
    n = X.shape[0]
    flat = X.reshape(n, -1)
    d = flat.shape[1]
    k = _n_select(subset_size, d, "subset_size", 0.25)
    base = _baseline_array(baseline, X).reshape(n, -1)
    phi = resolved.values.reshape(n, -1)
    f_x = model_scores(model, X, resolved.target, space)
    values = np.full(n, np.nan)
    rows_per_block = max(1, _CHUNK_ELEMENTS // (n_runs * d))
    for start in range(0, n, rows_per_block):
        stop = min(n, start + rows_per_block)
        m = stop - start
        # subsets drawn row by row in order: the stream, hence the result, is independent of the block size
        idx = np.argsort(rng.random((m, n_runs, d)), axis=2)[:, :, :k]
        mask = np.zeros((m, n_runs, d), dtype=bool)
        np.put_along_axis(mask, idx, True, axis=2)
        pert = np.where(mask, base[start:stop, None, :], flat[start:stop, None, :])
        scores = model_scores(model, pert.reshape((m * n_runs,) + X.shape[1:]),
                              np.repeat(resolved.target[start:stop], n_runs), space).reshape(m, n_runs)
        drop = f_x[start:stop, None] - scores
        sums = (mask * phi[start:stop, None, :]).sum(2)
        values[start:stop] = _pearson_rows(sums, drop)
    ok = np.isfinite(values)
    if not ok.any():
        raise InvalidParameterError(
            "faithfulness_correlation is undefined for every row: the attribution sums or the score drops are "
            "constant over the subsets (e.g. all-zero attributions, or a baseline equal to the input)."
        )
    params = dict(n_runs=n_runs, subset_size=k, baseline=np.asarray(baseline).tolist() if np.ndim(baseline) == 0
                  else "array", space=space, attributions=resolved.source, random_state=_seed_record(random_state))
    return metric_result("faithfulness_correlation", values[ok], higher_is_better=True, params=params,
                         extras={"n_undefined": int((~ok).sum()), "kept_rows": np.flatnonzero(ok).tolist()})


def _pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    den = np.sqrt((a ** 2).sum(1) * (b ** 2).sum(1))
    scale = np.sqrt((a ** 2).sum(1).max() * (b ** 2).sum(1).max()) if a.size else 0.0
    tiny = den <= 1e-12 * max(scale, 1e-300)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(1) / np.where(tiny, 1.0, den)
    return np.where(tiny, np.nan, r)


# ----------------------------------------------------------------------------- PGI / PGU
def _prediction_gap(name: str, important: bool, model: Any, X: Any, attributions: Any, *, top_k: Any,
                    n_samples: int, noise_scale: float, target: Any, space: str,
                    random_state: Any) -> MetricResult:
    n_samples = _positive_int(n_samples, "n_samples", "OpenXAI uses 100 perturbations.")
    noise_scale = _positive_float(noise_scale, "noise_scale", "0.1 is OpenXAI's default for standardised features.")
    model, X, resolved, rng, space = _setup(model, X, attributions, target, random_state, space)
    n = X.shape[0]
    flat = X.reshape(n, -1)
    d = flat.shape[1]
    k = _n_select(top_k, d, "top_k", 0.25)
    # the top k by |attribution|; ties broken by feature index (stable sort) so results are reproducible
    order = np.argsort(-np.abs(resolved.values.reshape(n, -1)), axis=1, kind="stable")
    top = np.zeros((n, d), dtype=bool)
    np.put_along_axis(top, order[:, :k], True, axis=1)
    # PGI perturbs the top-k features, PGU the others (OpenXAI#28 had the mask inverted)
    perturbed = top if important else ~top
    noise = rng.normal(0.0, noise_scale, size=(n, n_samples, d)) * perturbed[:, None, :]
    pert = (flat[:, None, :] + noise).reshape((n * n_samples,) + X.shape[1:])
    f_x = model_scores(model, X, resolved.target, space)
    scores = _scores_chunked(model, pert, np.repeat(resolved.target, n_samples), space).reshape(n, n_samples)
    values = np.abs(f_x[:, None] - scores).mean(1)
    params = dict(top_k=k, n_samples=n_samples, noise_scale=noise_scale, space=space,
                  attributions=resolved.source, random_state=_seed_record(random_state))
    return metric_result(name, values, higher_is_better=important, params=params)


def pgi(model: Any, X: Any, attributions: Any, *, top_k: Any = None, n_samples: int = 100,
        noise_scale: float = 0.1, target: Any = None, space: str = "auto",
        random_state: Any = None) -> MetricResult:
    """Prediction gap on important features (OpenXAI): ``E|f(x) - f(x + e * m_top)|`` where
    ``m_top`` marks the ``top_k`` features by absolute attribution and ``e ~ N(0, noise_scale^2)``.
    Higher is better (the features called important matter).

    Parameters
    ----------
    model, X, attributions, target, space, random_state
        See :mod:`scrutiny.metrics._common`; for tabular data (features are the flattened inputs).
    top_k : int or float in (0, 1), optional
        Number (or fraction) of top features; None uses a quarter of them.
    n_samples : int, default 100
    noise_scale : float, default 0.1

    Examples
    --------
    >>> pgi(model, X, KernelSHAP(model, background=B), top_k=3, random_state=0).mean
    """
    return _prediction_gap("pgi", True, model, X, attributions, top_k=top_k, n_samples=n_samples,
                           noise_scale=noise_scale, target=target, space=space, random_state=random_state)


def pgu(model: Any, X: Any, attributions: Any, *, top_k: Any = None, n_samples: int = 100,
        noise_scale: float = 0.1, target: Any = None, space: str = "auto",
        random_state: Any = None) -> MetricResult:
    """Prediction gap on unimportant features (OpenXAI): as :func:`pgi` but the features *outside*
    the top ``top_k`` are perturbed. Lower is better."""
    return _prediction_gap("pgu", False, model, X, attributions, top_k=top_k, n_samples=n_samples,
                           noise_scale=noise_scale, target=target, space=space, random_state=random_state)
