"""Removal metrics: keep or remove the most important features (or superpixels) and watch the
model's score of the explained class.

Every function follows :mod:`scrutiny.metrics._common`: ``metric(model, X, attributions, *,
..., target=None, space="probability", random_state=None) -> MetricResult`` with one value per
sample. ``attributions`` may be an Explanation, an explainer, an array of X's shape, or
``"random"`` (the random baseline every metric reports against).

Units. Without ``segments`` every input value is a unit (a tabular feature, a pixel of each
channel). With ``segments`` (labels ``0..S_i-1`` of shape (H, W) or (n, H, W), as
:func:`scrutiny.data.segment` returns; X of shape (n, H, W) or (n, C, H, W)) a unit is a
superpixel across all channels, and its importance is the sum of the attributions inside it,
so image methods are compared on the same superpixels. An explanation computed over the same
superpixels (LIME, KernelSHAP with ``groups``, DMMMENExplainer: ``extras["segments"]`` equal to
``segments``) is ranked by its own value per superpixel (``extras["segment_values"]``) instead,
which is how the method itself ranks them. Units are ranked by importance,
descending; ties keep their index order (a stable sort), so results are deterministic.

References
----------
Petsiuk, Das, Saenko. RISE: Randomized Input Sampling for Explanation of Black-box Models. BMVC 2018.
DeYoung et al. ERASER: A Benchmark to Evaluate Rationalized NLP Models. ACL 2020.
Rong, Leemann, Borisov, Kasneci, Kasneci. A Consistent and Efficient Evaluation Strategy for
Attribution Methods (ROAD). ICML 2022.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from .._validation import check_array, check_random_state
from ..exceptions import InvalidParameterError
from ..models import as_model
from ._common import metric_result, model_outputs, resolve_attributions

__all__ = ["keep_top_k", "remove_top_k", "deletion_curve", "insertion_curve", "road", "gaussian_blur"]

# Rows sent to the model in one call when scoring stacks of masked inputs; memory only, never
# changes a result (each sample's stack is scored independently of the others).
_ROW_BUDGET = 4096


class _Ranked(NamedTuple):
    """Per-sample ranks of the units: ``rank`` (n, d) gives each input value the rank of its unit
    (0 = most important), ``n_units`` (n,) the number of units of each sample."""

    rank: np.ndarray
    n_units: np.ndarray


def _check_space(space: str) -> None:
    if space not in ("probability", "log_odds", "raw"):
        raise InvalidParameterError(f"space must be 'probability', 'log_odds' or 'raw'; got {space!r}.")


def _unit_map(X: np.ndarray, segments: Any) -> tuple[np.ndarray, np.ndarray]:
    """(unit of each flattened input value, shape (n, d); number of units per sample)."""
    n, d = X.shape[0], int(np.prod(X.shape[1:]))
    if segments is None:
        return np.broadcast_to(np.arange(d), (n, d)), np.full(n, d, dtype=np.int64)
    labels = np.asarray(segments)
    if X.ndim not in (3, 4):
        raise InvalidParameterError(
            f"segments need images: X of shape (n, H, W) or (n, C, H, W); got X of shape {X.shape}. "
            "Drop segments= for tabular data."
        )
    hw = X.shape[-2:]
    if labels.shape == hw:
        labels = np.broadcast_to(labels, (n, *hw))
    if labels.shape != (n, *hw) or not np.issubdtype(labels.dtype, np.integer):
        raise InvalidParameterError(
            f"segments must be integer labels of shape {hw} or {(n, *hw)}; got {labels.dtype} of shape "
            f"{labels.shape}. Use scrutiny.data.segment(X) to make them."
        )
    if labels.min() < 0:
        raise InvalidParameterError("segments must be labels 0..S-1; got a negative label.")
    if X.ndim == 4:
        labels = np.broadcast_to(labels[:, None], X.shape)
    n_units = labels.reshape(n, -1).max(axis=1).astype(np.int64) + 1
    return labels.reshape(n, -1).astype(np.int64), n_units


def _own_scores(attr: Any, segments: Any, n: int, s_max: int) -> np.ndarray | None:
    """The explanation's own per-superpixel values when it was computed over ``segments``."""
    if segments is None or getattr(attr, "segment_values", None) is None:
        return None
    own, mine = np.asarray(attr.segments), np.asarray(segments)
    if own.shape[-2:] != mine.shape[-2:]:
        return None
    if not np.array_equal(np.broadcast_to(own, (n, *own.shape[-2:])), np.broadcast_to(mine, (n, *mine.shape[-2:]))):
        return None
    vals = attr.segment_values
    if vals.shape[0] != n or vals.shape[1] < s_max:
        return None
    return np.array(vals[:, :s_max], dtype=np.float64)


def _rank_units(X: np.ndarray, attr: Any, segments: Any) -> _Ranked:
    """Ranks of the units of ``attr`` (an :class:`Attributions`, or a plain array of X's shape)."""
    values = attr if isinstance(attr, np.ndarray) else attr.values
    unit_of, n_units = _unit_map(X, segments)
    n, s_max = X.shape[0], int(n_units.max())
    flat = (np.arange(n)[:, None] * s_max + unit_of).ravel()
    score = None if isinstance(attr, np.ndarray) else _own_scores(attr, segments, n, s_max)
    if score is None:
        score = np.bincount(flat, weights=values.reshape(n, -1).ravel(), minlength=n * s_max).reshape(n, s_max)
    present = np.bincount(flat, minlength=n * s_max).reshape(n, s_max) > 0
    score[~present] = -np.inf  # label gaps rank last and are never reached
    order = np.argsort(-score, axis=1, kind="stable")
    rank_of_unit = np.empty_like(order)
    np.put_along_axis(rank_of_unit, order, np.arange(s_max)[None].repeat(n, 0), axis=1)
    return _Ranked(np.take_along_axis(rank_of_unit, unit_of, axis=1), n_units)


def _fill(X: np.ndarray, value: Any, name: str) -> np.ndarray:
    """``value`` (a number, one input, or one per sample) broadcast to X's shape."""
    arr = np.asarray(value, dtype=np.float64)
    try:
        out = np.broadcast_to(arr, X.shape) if arr.shape == X.shape else np.broadcast_to(arr, X.shape[1:])
        out = np.broadcast_to(out, X.shape)
    except ValueError:
        raise InvalidParameterError(
            f"{name} must be a number, an array of one input's shape {X.shape[1:]} or of X's shape {X.shape}; "
            f"got shape {arr.shape}."
        ) from None
    if not np.isfinite(out).all():
        raise InvalidParameterError(f"{name} must be finite.")
    return out


def _score_stacks(model: Any, stacks: Any, space: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(outputs, predicted class) for each sample's stack of masked inputs. ``stacks`` may be a
    generator: stacks are built and scored in groups of about ``_ROW_BUDGET`` rows, so memory
    stays bounded however many samples and steps there are."""
    out: list[tuple[np.ndarray, np.ndarray]] = []
    group: list[np.ndarray] = []

    def flush() -> None:
        if group:
            rows = np.concatenate(group)
            res = model_outputs(model, rows, space)
            pred = _predicted(model, res, rows)
            cuts = np.cumsum([g.shape[0] for g in group])[:-1]
            out.extend(zip(np.split(res, cuts), np.split(pred, cuts)))
            group.clear()

    size = 0
    for stack in stacks:
        group.append(stack)
        size += stack.shape[0]
        if size >= _ROW_BUDGET:
            flush()
            size = 0
    flush()
    return out


def _predicted(model: Any, outputs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Predicted class from outputs in a space (argmax is the same in every space), or from the
    model when it has a single output."""
    if outputs.shape[1] > 1:
        return np.argmax(outputs, axis=1)
    return as_model(model).predict_class(rows)


def _prepare(model: Any, X: Any, attributions: Any, target: Any, space: str, random_state: Any):
    _check_space(space)
    model = as_model(model)
    X = check_array(X, "X")
    if X.ndim < 2:
        raise InvalidParameterError(f"X must hold one input per row (at least 2-D); got shape {X.shape}.")
    attr = resolve_attributions(model, X, attributions, target=target, random_state=random_state)
    return model, X, attr


def _check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InvalidParameterError(f"k must be a positive int (units kept or removed); got {k!r}. 20 is the DMM-MEN paper's choice.")
    return int(k)


def _masked_scores(model, X, keep_mask, fill, space):
    rows = np.where(keep_mask.reshape(X.shape), X, fill)
    outputs = model_outputs(model, rows, space)
    return outputs, rows


def keep_top_k(model: Any, X: Any, attributions: Any, *, k: int = 20, segments: Any = None, baseline: Any = 0.0,
               target: Any = None, space: str = "probability", score: str = "probability", random_state: Any = None):
    """Keep the ``k`` most important units, set the rest to ``baseline``, and score the class.

    The DMM-MEN paper's Table 1 (sufficiency): accuracy = the original class is still predicted;
    mean probability of the original class. Both are returned per sample: ``values`` holds the
    one named by ``score`` (``"probability"``: the class's score in ``space`` after masking;
    ``"accuracy"``: 1.0 where it is still predicted, else 0.0; "the class" is ``target``, so pass
    true labels to score accuracy against them), and ``extras`` holds both
    (``kept_score``, ``still_predicted``, with ``accuracy`` and its 95% interval). Higher is better.

    Parameters
    ----------
    model, X, attributions, target, space, random_state
        See :mod:`scrutiny.metrics._common`. X : array of shape (n, ...).
    k : int, default 20
        Units kept; ``k`` at or above the number of units keeps the whole input.
    segments : array of int, shape (H, W) or (n, H, W), optional
        Superpixel labels; units are then segments (see the module doc).
    baseline : float or array, default 0.0
        The value of nullified units ("nullify" in the paper: 0 on [0, 1] images).
    score : {"probability", "accuracy"}

    Examples
    --------
    >>> r = keep_top_k(model, X, explanation, k=20, segments=segment(X))  # doctest: +SKIP
    >>> r.mean, r.extras["accuracy"]  # doctest: +SKIP
    """
    k = _check_k(k)
    if score not in ("probability", "accuracy"):
        raise InvalidParameterError(f"score must be 'probability' or 'accuracy'; got {score!r}.")
    model, X, attr = _prepare(model, X, attributions, target, space, random_state)
    ranked = _rank_units(X, attr, segments)
    outputs, rows = _masked_scores(model, X, ranked.rank < k, _fill(X, baseline, "baseline"), space)
    kept = outputs[np.arange(X.shape[0]), attr.target]
    still = (_predicted(model, outputs, rows) == attr.target).astype(np.float64)
    acc = metric_result("accuracy", still, higher_is_better=True, params={})
    params = {"k": k, "segmented": segments is not None, "baseline": _describe(baseline), "space": space,
              "score": score, "attributions": attr.source, "random_state": _seed(random_state)}
    return metric_result(
        "keep_top_k", kept if score == "probability" else still, higher_is_better=True, params=params,
        extras={"kept_score": kept, "still_predicted": still, "accuracy": acc.mean, "accuracy_ci": list(acc.ci),
                "mean_score": float(kept.mean()), "n_units": ranked.n_units},
    )


def remove_top_k(model: Any, X: Any, attributions: Any, *, k: int = 20, segments: Any = None, baseline: Any = 0.0,
                 target: Any = None, space: str = "probability", random_state: Any = None):
    """Comprehensiveness: ``f(x) - f(x with the top-k units set to baseline)`` per sample.

    Higher is better (removing what the explanation calls important should hurt the class).
    Parameters as :func:`keep_top_k`; ``extras["still_predicted"]`` says whether the class
    survived the removal.
    """
    k = _check_k(k)
    model, X, attr = _prepare(model, X, attributions, target, space, random_state)
    ranked = _rank_units(X, attr, segments)
    idx = np.arange(X.shape[0])
    before = model_outputs(model, X, space)[idx, attr.target]
    outputs, rows = _masked_scores(model, X, ranked.rank >= k, _fill(X, baseline, "baseline"), space)
    after = outputs[idx, attr.target]
    still = (_predicted(model, outputs, rows) == attr.target).astype(np.float64)
    params = {"k": k, "segmented": segments is not None, "baseline": _describe(baseline), "space": space,
              "attributions": attr.source, "random_state": _seed(random_state)}
    return metric_result("remove_top_k", before - after, higher_is_better=True, params=params,
                         extras={"score_before": before, "score_after": after, "still_predicted": still})


def _describe(value: Any) -> Any:
    if isinstance(value, str):
        return value
    arr = np.asarray(value)
    return float(arr) if arr.ndim == 0 else f"array{list(arr.shape)}"


def _seed(random_state: Any) -> Any:
    return random_state if random_state is None or isinstance(random_state, (int, np.integer)) else repr(random_state)


def _check_step(step: Any) -> int:
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 1:
        raise InvalidParameterError(
            f"step must be a positive int (units changed per step); got {step!r}. RISE uses 224 pixels at 224x224."
        )
    return int(step)


def _curve(model, X, attr, ranked, start, end, step, space):
    """Per-sample curves: at step t the units of rank < t*step take their ``end`` value, the rest
    their ``start`` value; returns the list of score curves (length ceil(S_i/step) + 1)."""
    def stacks():
        for i in range(X.shape[0]):
            n_steps = math.ceil(int(ranked.n_units[i]) / step)
            changed = ranked.rank[i][None] < np.arange(n_steps + 1)[:, None] * step
            yield np.where(changed, end[i][None], start[i][None]).reshape(-1, *X.shape[1:])

    outs = _score_stacks(model, stacks(), space)
    return [o[:, attr.target[i]] for i, (o, _) in enumerate(outs)]


def _auc(curve: np.ndarray) -> float:
    """RISE's area: the trapezoid on [0, 1] with equally spaced steps."""
    n = curve.shape[0] - 1
    return float((curve.sum() - curve[0] / 2 - curve[-1] / 2) / n)


def _curve_result(name, curves, higher, params):
    aucs = np.array([_auc(c) for c in curves])
    lengths = {len(c) for c in curves}
    curves_out = np.stack(curves) if len(lengths) == 1 else [c.tolist() for c in curves]
    return metric_result(name, aucs, higher_is_better=higher, params=params, extras={"curves": curves_out})


def deletion_curve(model: Any, X: Any, attributions: Any, *, step: int = 1, substrate: Any = 0.0,
                   segments: Any = None, target: Any = None, space: str = "probability", random_state: Any = None):
    """Deletion: replace the most important units by ``substrate``, ``step`` units at a time, and
    take the area under the class-score curve (RISE's trapezoid on [0, 1]). Lower is better.

    ``values`` are per-sample AUCs; ``extras["curves"]`` holds each curve (an (n, T+1) array, or
    a list of lists when samples have different numbers of segments).

    Parameters
    ----------
    step : int, default 1
        Units per step (RISE: 224 pixels on 224x224 images).
    substrate : float or array, default 0.0
        The deleted value (RISE: 0; for tabular data e.g. the training mean).
    """
    step = _check_step(step)
    model, X, attr = _prepare(model, X, attributions, target, space, random_state)
    ranked = _rank_units(X, attr, segments)
    end = _fill(X, substrate, "substrate")
    curves = _curve(model, X, attr, ranked, X.reshape(X.shape[0], -1), end.reshape(X.shape[0], -1), step, space)
    params = {"step": step, "substrate": _describe(substrate), "segmented": segments is not None, "space": space,
              "attributions": attr.source, "random_state": _seed(random_state)}
    return _curve_result("deletion_auc", curves, False, params)


def insertion_curve(model: Any, X: Any, attributions: Any, *, step: int = 1, substrate: Any = "blur",
                    segments: Any = None, target: Any = None, space: str = "probability", random_state: Any = None):
    """Insertion: start from ``substrate`` and restore the most important units of X, ``step`` at a
    time; the area under the class-score curve (RISE's trapezoid on [0, 1]). Higher is better.

    Parameters
    ----------
    substrate : "blur", float or array, default "blur"
        ``"blur"`` (images only): RISE's Gaussian blur (kernel 11, sigma 5 at 224 pixels) scaled to
        the image's height. That blur is mild, and on very small images (8x8 digits: sigma 0.18)
        it leaves the image almost intact, so every method scores alike; pass
        ``substrate=gaussian_blur(X, sigma=...)`` for a stronger one. For tabular data pass a
        baseline such as the training mean.
    step, segments, target, space, random_state
        As :func:`deletion_curve`.
    """
    step = _check_step(step)
    model, X, attr = _prepare(model, X, attributions, target, space, random_state)
    if isinstance(substrate, str):
        if substrate != "blur":
            raise InvalidParameterError(f"substrate must be 'blur', a number or an array; got {substrate!r}.")
        if X.ndim not in (3, 4):
            raise InvalidParameterError(
                f"substrate='blur' needs images (n, H, W) or (n, C, H, W); X has shape {X.shape}. For tabular "
                "data pass substrate= a baseline such as the training mean."
            )
        start = gaussian_blur(X)
    else:
        start = _fill(X, substrate, "substrate")
    ranked = _rank_units(X, attr, segments)
    curves = _curve(model, X, attr, ranked, start.reshape(X.shape[0], -1), X.reshape(X.shape[0], -1), step, space)
    params = {"step": step, "substrate": _describe(substrate), "segmented": segments is not None, "space": space,
              "attributions": attr.source, "random_state": _seed(random_state)}
    return _curve_result("insertion_auc", curves, True, params)


def gaussian_blur(X: np.ndarray, sigma: float | None = None, klen: int | None = None) -> np.ndarray:
    """Gaussian blur over the last two axes with reflect padding. Defaults scale RISE's kernel
    (klen 11, sigma 5 at 224 pixels) to the image height, with klen odd and at least 3."""
    h = X.shape[-2]
    sigma = 5.0 * h / 224 if sigma is None else float(sigma)
    if klen is None:
        klen = max(3, int(round(11 * h / 224)) | 1)
    r = klen // 2
    t = np.arange(-r, r + 1, dtype=np.float64)
    kernel = np.exp(-(t ** 2) / (2 * sigma ** 2))
    kernel /= kernel.sum()
    out = np.asarray(X, dtype=np.float64)
    for axis in (-2, -1):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (r, r)
        padded = np.pad(out, pad, mode="reflect" if out.shape[axis] > r else "edge")
        out = sum(kernel[j] * np.take(padded, np.arange(j, j + out.shape[axis]), axis=axis) for j in range(klen))
    return out


# --------------------------------------------------------------------------- ROAD

_NEIGHBOURS = ((-1, 0, 1 / 6), (1, 0, 1 / 6), (0, -1, 1 / 6), (0, 1, 1 / 6),
               (-1, -1, 1 / 12), (-1, 1, 1 / 12), (1, -1, 1 / 12), (1, 1, 1 / 12))


def noisy_linear_impute(image: np.ndarray, removed: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """ROAD's noisy linear imputation of one image (C, H, W) where ``removed`` (H, W) is True.

    Each removed pixel equals the weighted mean of its 8 neighbours (weights 1/6 direct, 1/12
    diagonal, as ``tleemann/road_evaluation``), known neighbours as data and removed ones as
    unknowns: one sparse linear system per image, every channel a right-hand side; then
    Gaussian noise of std ``noise`` is added to the imputed pixels.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import spsolve

    c, h, w = image.shape
    idx = np.flatnonzero(removed.ravel())
    if idx.size == 0:
        return image.copy()
    if idx.size == h * w:
        raise InvalidParameterError("ROAD cannot impute an image with every pixel removed; use percentages below 100.")
    pos = -np.ones(h * w, dtype=np.int64)
    pos[idx] = np.arange(idx.size)
    ys, xs = np.divmod(idx, w)
    flat = image.reshape(c, -1)
    diag = np.zeros(idx.size)
    rhs = np.zeros((idx.size, c))
    rows, cols, vals = [], [], []
    for dy, dx, wt in _NEIGHBOURS:
        ny, nx = ys + dy, xs + dx
        ok = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        nb = ny[ok] * w + nx[ok]
        diag[ok] += wt
        unknown = pos[nb] >= 0
        src = np.flatnonzero(ok)
        rows.append(src[unknown])
        cols.append(pos[nb[unknown]])
        vals.append(np.full(unknown.sum(), -wt))
        np.add.at(rhs, src[~unknown], wt * flat[:, nb[~unknown]].T)
    rows.append(np.arange(idx.size))
    cols.append(np.arange(idx.size))
    vals.append(diag)
    A = coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                   shape=(idx.size, idx.size)).tocsc()
    solved = np.asarray(spsolve(A, rhs)).reshape(idx.size, c)
    out = flat.copy()
    out[:, idx] = solved.T + noise * rng.standard_normal((c, idx.size))
    return out.reshape(c, h, w)


def road(model: Any, X: Any, attributions: Any, *, percentages: Any = tuple(range(10, 100, 10)), noise: float = 0.01,
         segments: Any = None, target: Any = None, space: str = "probability", random_state: Any = None):
    """ROAD (Rong et al. 2022): remove the top p% (MoRF) or bottom p% (LeRF) of the units, impute
    them by noisy linear imputation, and record whether the class is still predicted.

    ``values`` per sample: the mean over ``percentages`` of ``LeRF correct - MoRF correct``, i.e.
    the area between the LeRF and MoRF accuracy curves per unit of percentage span (equally spaced
    percentages); higher is better. ``extras``: ``percentages``, ``morf_accuracy`` and
    ``lerf_accuracy`` (the curves, one value per percentage), per-sample ``morf_correct`` /
    ``lerf_correct`` (n, P) and ``morf_score`` / ``lerf_score`` (the class score in ``space``).

    Images only: X of shape (n, H, W) or (n, C, H, W). Without ``segments`` a unit is a pixel
    (attributions summed over channels). ``target`` defaults to the predicted class; pass true
    labels to score accuracy as in the paper. The imputation noise comes from ``random_state``,
    one independent stream per sample (so results do not depend on how X is batched).
    """
    model, X, attr = _prepare(model, X, attributions, target, space, random_state)
    if X.ndim not in (3, 4):
        raise InvalidParameterError(
            f"road needs images (n, H, W) or (n, C, H, W); X has shape {X.shape}. Noisy linear imputation "
            "uses pixel neighbours; for tabular data use deletion_curve or remove_top_k."
        )
    pcts = np.asarray(percentages, dtype=np.float64).ravel()
    if pcts.size == 0 or not ((pcts > 0) & (pcts < 100)).all():
        raise InvalidParameterError(f"percentages must be numbers in (0, 100); got {percentages!r}.")
    if not (isinstance(noise, (int, float)) and noise >= 0):
        raise InvalidParameterError(f"noise must be a non-negative float (the paper uses 0.01); got {noise!r}.")
    n, (h, w) = X.shape[0], X.shape[-2:]
    images = X.reshape(n, -1, h, w)
    values = attr.values.reshape(n, -1, h, w).sum(axis=1)
    labels = np.broadcast_to(np.arange(h * w).reshape(h, w), (n, h, w)) if segments is None else segments
    ranked = _rank_units(values, attr._replace(values=values), labels)
    rank = ranked.rank.reshape(n, h, w)
    seeds = check_random_state(random_state).integers(0, 2**63 - 1, size=n)

    def stacks():
        for i in range(n):
            rng = np.random.default_rng(seeds[i])
            s = int(ranked.n_units[i])
            rows = []
            for order in ("morf", "lerf"):
                for p in pcts:
                    m = int(round(p / 100 * s))
                    removed = rank[i] < m if order == "morf" else rank[i] >= s - m
                    rows.append(noisy_linear_impute(images[i], removed, noise, rng))
            yield np.stack(rows).reshape(-1, *X.shape[1:])

    P = pcts.size
    correct = np.empty((n, 2 * P))
    scores = np.empty((n, 2 * P))
    for i, (o, pred) in enumerate(_score_stacks(model, stacks(), space)):
        correct[i] = pred == attr.target[i]
        scores[i] = o[:, attr.target[i]]
    morf, lerf = correct[:, :P], correct[:, P:]
    params = {"percentages": pcts.tolist(), "noise": float(noise), "segmented": segments is not None, "space": space,
              "attributions": attr.source, "random_state": _seed(random_state)}
    return metric_result("road", (lerf - morf).mean(axis=1), higher_is_better=True, params=params, extras={
        "percentages": pcts, "morf_accuracy": morf.mean(axis=0), "lerf_accuracy": lerf.mean(axis=0),
        "morf_correct": morf, "lerf_correct": lerf, "morf_score": scores[:, :P], "lerf_score": scores[:, P:]})
