"""Scrutability tests of global insights (Guo et al. 2018, section 4.1).

A global insight is a ranking of input features for a class ``c`` (e.g.
``DMMMEN.explain_global()[0].features``). If the model really relies on those features,

* nullifying the top-k features of class-``c`` samples ("positives") should make the model stop
  predicting ``c``: the **positive classification rate** (PCR, the fraction predicted as ``c``)
  drops;
* writing class-``c`` values into the top-k features of other samples ("negatives") should make
  it predict ``c``: their PCR rises;
* noise images whose top-k pixels are filled in ("insight-driven crafted samples") should be
  classified as ``c`` far more often than noise with k random pixels filled.

Every test compares the insight's top-k features with k random features.

:func:`scrutability_test` follows the paper: 50 bootstrap subsamples of 30 % of the positives
and of the negatives, positives' top-k set to 0, negatives' top-k set to the positives' mean,
``k in {50, 75, 100, 125, 150}``; the other fills of the authors' code and of the reviews
(random values, a scaled "prototype" positive) are options. :func:`crafted_samples_test` draws
noise images ``N(0.03, 0.01)``. Results are frozen dataclasses with per-bootstrap PCRs, means,
95 % percentile intervals, :meth:`~ScrutabilityResult.summary` and
:meth:`~ScrutabilityResult.to_table`; like every result type they save with ``result.save(path)``
and reload with :func:`scrutiny.load_result`.

References
----------
Guo, W., Huang, S., Tao, Y., Xing, X. & Lin, L. (2018). Explaining deep learning models - a
Bayesian non-parametric approach. NeurIPS 31.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from .._validation import Interval, check_array, check_random_state, validate_params
from ..exceptions import InvalidParameterError
from ..explanation import Result
from ..explanation import read_only_copy as _frozen

__all__ = ["CraftedSamplesResult", "ScrutabilityResult", "crafted_samples_test", "scrutability_test"]

FILLS = ("zero", "positive_mean", "random", "prototype")
DEFAULT_K = (50, 75, 100, 125, 150)


# --------------------------------------------------------------------------- results




class _PCRTable:
    """Shared summaries of the result classes: arms are (K, B) arrays of bootstrap PCRs."""

    _ARMS: ClassVar[tuple[str, ...]] = ()
    _LABELS: ClassVar[dict[str, str]] = {}

    def estimate(self, arm: str) -> np.ndarray:
        """Point estimate of an arm's PCR per k, shape (K,)."""
        return np.asarray(getattr(self, arm)).mean(axis=-1)

    def interval(self, arm: str) -> np.ndarray:
        """Percentile interval of an arm's PCR per k at ``params['level']``, shape (K, 2)."""
        level = float(self.params.get("level", 0.95))
        q = [50 * (1 - level), 50 * (1 + level)]
        return np.moveaxis(np.percentile(np.asarray(getattr(self, arm)), q, axis=-1), 0, -1)

    def summary(self) -> dict:
        """``{"k": (K,), "<arm>": (K,) estimate, "<arm>_low"/"<arm>_high": (K,) interval}``."""
        out: dict = {"k": np.asarray(self.k)}
        for arm in self._ARMS:
            ci = self.interval(arm)
            out[arm] = self.estimate(arm)
            out[f"{arm}_low"], out[f"{arm}_high"] = ci[:, 0], ci[:, 1]
        return out

    def to_table(self) -> str:
        """A plain-text table: one row per k, ``PCR [low, high]`` per arm (in %)."""
        s = self.summary()
        heads = ["k"] + [self._LABELS.get(a, a) for a in self._ARMS]
        rows = [
            [str(int(k))] + [self._cell(np.asarray(getattr(self, a))[i]) for a in self._ARMS]
            for i, k in enumerate(s["k"])
        ]
        rows = self._extra_rows() + rows
        widths = [max(len(r[j]) for r in [heads] + rows) for j in range(len(heads))]
        fmt = "  ".join(f"{{:>{w}}}" for w in widths)
        lines = [fmt.format(*heads), fmt.format(*["-" * w for w in widths])] + [fmt.format(*r) for r in rows]
        return "\n".join(lines)

    def _extra_rows(self) -> list:
        return []

    def _cell(self, values: np.ndarray) -> str:
        level = float(self.params.get("level", 0.95))
        lo, hi = np.percentile(np.asarray(values), [50 * (1 - level), 50 * (1 + level)])
        return f"{100 * np.mean(values):5.1f} [{100 * lo:5.1f}, {100 * hi:5.1f}]"


@dataclasses.dataclass(frozen=True, eq=False)
class ScrutabilityResult(_PCRTable, Result):
    """Positive classification rates of :func:`scrutability_test`.

    Attributes
    ----------
    k : ndarray of shape (K,), int
        Numbers of manipulated features.
    target_class : int
    positive : ndarray of shape (K, B)
        PCR of the positives (class ``c``) with their top-k features replaced
        (``fill_positive``), per bootstrap subsample. Lower is better for the insight.
    positive_random : ndarray of shape (K, B)
        The same with k random features.
    negative : ndarray of shape (K, B)
        PCR of the negatives with their top-k features replaced (``fill_negative``). Higher is
        better for the insight.
    negative_random : ndarray of shape (K, B)
        The same with k random features.
    positive_original, negative_original : ndarray of shape (B,)
        PCR of the unmanipulated subsamples.
    n_positive, n_negative : int
        Positives and negatives available (each subsample takes ``fraction`` of them).
    params : dict
        The test's settings (fills, fraction, n_bootstrap, level, random_state).

    Estimates are means over the bootstrap subsamples, intervals their percentiles
    (:meth:`estimate`, :meth:`interval`, :meth:`summary`, :meth:`to_table`).
    """

    k: np.ndarray
    target_class: int
    positive: np.ndarray
    positive_random: np.ndarray
    negative: np.ndarray
    negative_random: np.ndarray
    positive_original: np.ndarray
    negative_original: np.ndarray
    n_positive: int
    n_negative: int
    params: dict

    _ARMS: ClassVar[tuple[str, ...]] = ("positive", "positive_random", "negative", "negative_random")
    _ARRAYS: ClassVar[tuple[str, ...]] = ("k",) + _ARMS + ("positive_original", "negative_original")
    _LABELS: ClassVar[dict[str, str]] = {
        "positive": "pos. top-k",
        "positive_random": "pos. random",
        "negative": "neg. top-k",
        "negative_random": "neg. random",
    }

    @property
    def positive_drop(self) -> np.ndarray:
        """Mean PCR drop of the positives, top-k minus random (negative = the insight matters), (K,)."""
        return self.estimate("positive") - self.estimate("positive_random")

    def _extra_rows(self) -> list:
        return [["none", self._cell(self.positive_original), "", self._cell(self.negative_original), ""]]


@dataclasses.dataclass(frozen=True, eq=False)
class CraftedSamplesResult(_PCRTable, Result):
    """Positive classification rates of :func:`crafted_samples_test`.

    Attributes
    ----------
    k : ndarray of shape (K,), int
    target_class : int
    crafted : ndarray of shape (K, B)
        PCR of noise images with the top-k features filled, per bootstrap resample of the
        crafted samples. Higher is better for the insight.
    crafted_random : ndarray of shape (K, B)
        The same with k random features filled (a new random set per sample).
    noise : ndarray of shape (B,)
        PCR of the unfilled noise images.
    n_samples : int
    params : dict

    Estimates are means over the bootstrap resamples (which equal the plain PCR over all
    crafted samples up to resampling noise), intervals their percentiles.
    """

    k: np.ndarray
    target_class: int
    crafted: np.ndarray
    crafted_random: np.ndarray
    noise: np.ndarray
    n_samples: int
    params: dict

    _ARMS: ClassVar[tuple[str, ...]] = ("crafted", "crafted_random")
    _ARRAYS: ClassVar[tuple[str, ...]] = ("k",) + _ARMS + ("noise",)
    _LABELS: ClassVar[dict[str, str]] = {"crafted": "top-k filled", "crafted_random": "random filled"}


# --------------------------------------------------------------------------- validation


def _check_ks(k: Any, d: int, n_features: int, owner: str) -> np.ndarray:
    ks = np.atleast_1d(np.asarray(k))
    if ks.ndim != 1 or ks.size == 0 or not all(
        isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in ks.tolist()
    ):
        raise InvalidParameterError(f"{owner}: k must be a positive int or a sequence of them; got {k!r}. The paper uses k=(50, 75, 100, 125, 150).")
    ks = ks.astype(np.int64)
    if ks.min() < 1:
        raise InvalidParameterError(f"{owner}: every k must be >= 1; got {ks.tolist()}.")
    if ks.max() > d:
        raise InvalidParameterError(
            f"{owner}: k must be at most the number of input features ({d}); got k={int(ks.max())}. Use smaller k "
            f"(e.g. k={tuple(int(v) for v in np.unique(np.minimum(ks, d)))})."
        )
    if ks.max() > n_features:
        raise InvalidParameterError(
            f"{owner}: k={int(ks.max())} needs at least {int(ks.max())} ranked features, but features has "
            f"{n_features}. Pass a longer ranking (e.g. explain_global(k={int(ks.max())})) or smaller k."
        )
    return ks


def _check_features(features: Any, d: int, owner: str) -> np.ndarray:
    if hasattr(features, "features") and hasattr(features, "heatmap"):  # a GlobalInsight
        features = features.features
    arr = np.asarray(features)
    if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
        raise InvalidParameterError(
            f"{owner}: features must be a GlobalInsight or a 1-d int array of flat input positions, most important "
            f"first; got {np.shape(features)} {getattr(arr, 'dtype', type(features))}. Use "
            "DMMMEN.explain_global()[h].features."
        )
    if arr.min() < 0 or arr.max() >= d:
        raise InvalidParameterError(
            f"{owner}: features must be flat input positions in [0, {d - 1}]; got values in "
            f"[{int(arr.min())}, {int(arr.max())}]."
        )
    if np.unique(arr).size != arr.size:
        raise InvalidParameterError(f"{owner}: features must not repeat a position; got {arr.size - np.unique(arr).size} duplicate(s).")
    return arr.astype(np.int64)


def _check_fill(fill: Any, name: str, owner: str, allowed: Sequence[str]) -> Any:
    if isinstance(fill, str):
        if fill not in allowed:
            raise InvalidParameterError(
                f"{owner}: {name} must be one of {list(allowed)} or a number; got {fill!r}."
            )
        return fill
    if isinstance(fill, numbers.Real) and not isinstance(fill, bool) and np.isfinite(fill):
        return float(fill)
    raise InvalidParameterError(f"{owner}: {name} must be one of {list(allowed)} or a finite number; got {fill!r}.")


def _setup(model, X, y, target_class, owner):
    from ..models import as_model

    wrapped = as_model(model)
    X = wrapped.check_input(X)
    n = X.shape[0]
    labels = check_array(y, "y", ndim=1, shape=(n,))
    validate_params(owner, {"target_class": target_class}, {"target_class": [Interval(int, 0, None)]})
    out = wrapped.predict(X[:1])
    n_classes = 2 if out.shape[1] == 1 else out.shape[1]
    if target_class >= n_classes:
        raise InvalidParameterError(
            f"{owner}: target_class must be a class index in [0, {n_classes - 1}] (the model has {n_classes} "
            f"classes); got {target_class}."
        )
    pos = labels == target_class
    if not pos.any():
        raise InvalidParameterError(
            f"{owner}: y has no sample of target_class={target_class} (labels present: "
            f"{np.unique(labels).astype(int).tolist()}); the positives' mean needs at least one. Check target_class."
        )
    return wrapped, X, pos


class _Filler:
    """Replacement values for a set of positions: zero, the positives' mean, random values in
    the data range, a scaled prototype positive, or a constant."""

    def __init__(self, model, Xf, pos, shape, target_class):
        self.model, self.Xf, self.pos, self.shape, self.c = model, Xf, pos, shape, target_class
        self.mean = Xf[pos].mean(axis=0)
        self.lo, self.hi = float(Xf.min()), float(Xf.max())
        self._prototypes: dict = {}

    def prototype(self, top: np.ndarray) -> np.ndarray:
        """The positive whose top-k-only image (every other feature 0) the model scores highest
        for class c (the authors' code)."""
        key = top.tobytes()
        if key not in self._prototypes:
            P = self.Xf[self.pos]
            only = np.zeros_like(P)
            only[:, top] = P[:, top]
            proba = self.model.predict_proba(only.reshape((-1,) + self.shape))[:, self.c]
            self._prototypes[key] = P[int(np.argmax(proba))]
        return self._prototypes[key]

    def values(self, fill, positions: np.ndarray, m: int, rng, scale: float, top: np.ndarray) -> np.ndarray:
        """Values for ``positions`` (shape (k,) shared or (m, k) per sample), shape (m, k)."""
        shape = (m,) + positions.shape[-1:]
        if not isinstance(fill, str):
            return np.full(shape, fill)
        if fill == "zero":
            return np.zeros(shape)
        if fill == "positive_mean":
            return np.broadcast_to(self.mean[positions], shape)
        if fill == "random":
            return rng.uniform(self.lo, self.hi, size=shape)
        return np.broadcast_to(scale * self.prototype(top)[positions], shape)


def _apply(Xf: np.ndarray, positions: np.ndarray, values: np.ndarray) -> np.ndarray:
    out = Xf.copy()
    if positions.ndim == 1:
        out[:, positions] = values
    else:
        np.put_along_axis(out, positions, values, axis=1)
    return out


def _scales(prototype_scale: Any, owner: str) -> tuple[float, float]:
    pair = np.atleast_1d(np.asarray(prototype_scale, dtype=float)) if np.ndim(prototype_scale) else None
    if pair is None:
        if isinstance(prototype_scale, numbers.Real) and not isinstance(prototype_scale, bool) and np.isfinite(prototype_scale):
            return float(prototype_scale), float(prototype_scale)
    elif pair.shape == (2,) and np.all(np.isfinite(pair)):
        return float(pair[0]), float(pair[1])
    raise InvalidParameterError(
        f"{owner}: prototype_scale must be a finite number or a pair (positives, negatives); got {prototype_scale!r}. "
        "The authors' code uses -0.5 for positives and 5 for negatives."
    )


# --------------------------------------------------------------------------- tests


def scrutability_test(
    model: Any,
    X: Any,
    y: Any,
    target_class: int,
    features: Any,
    *,
    k: Any = DEFAULT_K,
    n_bootstrap: int = 50,
    fraction: float = 0.3,
    fill_positive: Any = "zero",
    fill_negative: Any = "positive_mean",
    prototype_scale: Any = 1.0,
    level: float = 0.95,
    random_state: Any = None,
) -> ScrutabilityResult:
    """The paper's scrutability test of a global insight for class ``target_class``.

    For each k and each of ``n_bootstrap`` subsamples (``fraction`` of the positives and of the
    negatives, drawn without replacement): the positives' top-k features are replaced by
    ``fill_positive`` and the negatives' by ``fill_negative``, and the PCR (fraction predicted
    as ``target_class``) of each group is recorded; the same is done with k random features (a
    new random set per subsample).

    Parameters
    ----------
    model : torch.nn.Module, fitted scikit-learn estimator, callable or Model
        The classifier (wrapped with :func:`scrutiny.as_model`).
    X : array-like of shape (n_samples, *input_shape)
        Samples of every class.
    y : array-like of shape (n_samples,)
        Their true labels: ``y == target_class`` are the positives, the rest the negatives.
    target_class : int
    features : GlobalInsight or array-like of int
        Flat input positions ranked by importance (best first), at least ``max(k)`` of them.
    k : int or sequence of int, default=(50, 75, 100, 125, 150)
        Numbers of manipulated features; each at most ``prod(input_shape)``.
    n_bootstrap : int, default=50
    fraction : float in (0, 1], default=0.3
        Share of the positives (and of the negatives) in each subsample.
    fill_positive : {"zero", "positive_mean", "random", "prototype"} or float, default="zero"
        What the positives' features become: 0 (the paper's "nullify"), the positives' mean,
        uniform random values in the data range (the reviews' reading), ``prototype_scale``
        times the prototype positive (the authors' code: the positive whose top-k-only image
        the model scores highest), or a constant.
    fill_negative : same choices, default="positive_mean"
        What the negatives' features become (the paper: the positives' mean).
    prototype_scale : float or (float, float), default=1.0
        Scale of the prototype fill, or a pair (positives, negatives); the authors use -0.5 and 5.
    level : float in (0, 1), default=0.95
        Level of the percentile intervals.
    random_state : int, numpy.random.Generator or None

    Returns
    -------
    ScrutabilityResult

    Examples
    --------
    >>> insight = surrogate.explain_global(k=150)[0]                                 # doctest: +SKIP
    >>> res = scrutability_test(net, X, y, 3, insight, random_state=0)               # doctest: +SKIP
    >>> print(res.to_table())                                                        # doctest: +SKIP
    """
    owner = "scrutability_test"
    validate_params(
        owner,
        {"n_bootstrap": n_bootstrap, "fraction": fraction, "level": level, "random_state": random_state},
        {
            "n_bootstrap": [Interval(int, 1, None)],
            "fraction": [Interval(float, 0, 1, closed="right")],
            "level": [Interval(float, 0, 1, closed="neither")],
            "random_state": ["random_state"],
        },
        {"fraction": "The paper subsamples 30% (fraction=0.3).", "n_bootstrap": "The paper uses 50."},
    )
    fill_positive = _check_fill(fill_positive, "fill_positive", owner, FILLS)
    fill_negative = _check_fill(fill_negative, "fill_negative", owner, FILLS)
    scale_pos, scale_neg = _scales(prototype_scale, owner)
    wrapped, X, pos = _setup(model, X, y, target_class, owner)
    shape = X.shape[1:]
    Xf = X.reshape(X.shape[0], -1)
    d = Xf.shape[1]
    features = _check_features(features, d, owner)
    ks = _check_ks(k, d, features.size, owner)
    if pos.all():
        raise InvalidParameterError(
            f"{owner}: every sample of y is of target_class={target_class}; the test needs negatives (other classes) too."
        )
    rng = check_random_state(random_state)
    filler = _Filler(wrapped, Xf, pos, shape, int(target_class))
    P, N = Xf[pos], Xf[~pos]
    n_pos, n_neg = P.shape[0], N.shape[0]
    m_pos, m_neg = max(1, round(fraction * n_pos)), max(1, round(fraction * n_neg))

    def hits(rows: np.ndarray) -> np.ndarray:
        return wrapped.predict_class(rows.reshape((-1,) + shape)) == target_class

    base_pos, base_neg = hits(P), hits(N)
    # the top-k arms do not depend on the subsample: evaluate every row once, then subsample
    top_pos, top_neg = [], []
    for kk in ks:
        top = features[:kk]
        top_pos.append(hits(_apply(P, top, filler.values(fill_positive, top, n_pos, rng, scale_pos, top))))
        top_neg.append(hits(_apply(N, top, filler.values(fill_negative, top, n_neg, rng, scale_neg, top))))
    K, B = ks.size, int(n_bootstrap)
    arms = {a: np.zeros((K, B)) for a in ScrutabilityResult._ARMS}
    orig_pos, orig_neg = np.zeros(B), np.zeros(B)
    for b in range(B):
        ip = rng.choice(n_pos, size=m_pos, replace=False)
        ineg = rng.choice(n_neg, size=m_neg, replace=False)
        orig_pos[b], orig_neg[b] = base_pos[ip].mean(), base_neg[ineg].mean()
        for j, kk in enumerate(ks):
            top = features[:kk]
            arms["positive"][j, b] = top_pos[j][ip].mean()
            arms["negative"][j, b] = top_neg[j][ineg].mean()
            rand = rng.choice(d, size=int(kk), replace=False)
            Pv = filler.values(fill_positive, rand, m_pos, rng, scale_pos, top)
            Nv = filler.values(fill_negative, rand, m_neg, rng, scale_neg, top)
            arms["positive_random"][j, b] = hits(_apply(P[ip], rand, Pv)).mean()
            arms["negative_random"][j, b] = hits(_apply(N[ineg], rand, Nv)).mean()
    params = {
        "n_bootstrap": B, "fraction": float(fraction), "fill_positive": fill_positive, "fill_negative": fill_negative,
        "prototype_scale": [scale_pos, scale_neg], "level": float(level),
        "random_state": random_state if isinstance(random_state, (int, np.integer, type(None))) else repr(random_state),
    }
    return ScrutabilityResult(
        k=_frozen(ks, np.int64),
        target_class=int(target_class),
        **{a: _frozen(v) for a, v in arms.items()},
        positive_original=_frozen(orig_pos),
        negative_original=_frozen(orig_neg),
        n_positive=int(n_pos),
        n_negative=int(n_neg),
        params=params,
    )


def crafted_samples_test(
    model: Any,
    X: Any,
    y: Any,
    target_class: int,
    features: Any,
    *,
    k: Any = DEFAULT_K,
    n_samples: int = 500,
    fill: Any = "positive_mean",
    prototype_scale: float = 3.0,
    noise_mean: float = 0.03,
    noise_std: float = 0.01,
    n_bootstrap: int = 50,
    level: float = 0.95,
    random_state: Any = None,
) -> CraftedSamplesResult:
    """Insight-driven crafted samples: noise images with the top-k features filled in.

    ``n_samples`` noise images with i.i.d. ``N(noise_mean, noise_std^2)`` features (the authors
    use ``N(0.03, 0.01)``) get their top-k features set by ``fill``; the PCR (fraction predicted
    as ``target_class``) is compared with the same noise images with k random features filled
    the same way (a new random set per image). Intervals are percentiles over ``n_bootstrap``
    resamples (with replacement) of the crafted images.

    Parameters
    ----------
    model, X, y, target_class, features, k
        As in :func:`scrutability_test`; ``X`` and ``y`` only supply the positives (for the
        positives' mean or the prototype) and the input shape.
    n_samples : int, default=500
        Crafted images per k and arm.
    fill : {"positive_mean", "prototype", "random"} or float, default="positive_mean"
        The filled values: the positives' mean, ``prototype_scale`` times the prototype positive
        (the authors' code uses 3), uniform random values in the data range, or a constant.
    prototype_scale : float, default=3.0
    noise_mean, noise_std : float, default=0.03, 0.01
    n_bootstrap : int, default=50
    level : float in (0, 1), default=0.95
    random_state : int, numpy.random.Generator or None

    Returns
    -------
    CraftedSamplesResult
    """
    owner = "crafted_samples_test"
    validate_params(
        owner,
        {
            "n_samples": n_samples, "noise_mean": noise_mean, "noise_std": noise_std, "n_bootstrap": n_bootstrap,
            "level": level, "random_state": random_state, "prototype_scale": prototype_scale,
        },
        {
            "n_samples": [Interval(int, 1, None)],
            "noise_mean": [Interval(float)],
            "noise_std": [Interval(float, 0, None)],
            "n_bootstrap": [Interval(int, 1, None)],
            "level": [Interval(float, 0, 1, closed="neither")],
            "random_state": ["random_state"],
            "prototype_scale": [Interval(float)],
        },
    )
    fill = _check_fill(fill, "fill", owner, ("positive_mean", "prototype", "random"))
    wrapped, X, pos = _setup(model, X, y, target_class, owner)
    shape = X.shape[1:]
    Xf = X.reshape(X.shape[0], -1)
    d = Xf.shape[1]
    features = _check_features(features, d, owner)
    ks = _check_ks(k, d, features.size, owner)
    rng = check_random_state(random_state)
    filler = _Filler(wrapped, Xf, pos, shape, int(target_class))
    m = int(n_samples)
    noise = rng.normal(noise_mean, noise_std, size=(m, d))

    def hits(rows: np.ndarray) -> np.ndarray:
        return wrapped.predict_class(rows.reshape((-1,) + shape)) == target_class

    base = hits(noise)
    K, B = ks.size, int(n_bootstrap)
    top_hits, rand_hits = np.zeros((K, m), bool), np.zeros((K, m), bool)
    for j, kk in enumerate(ks):
        top = features[:kk]
        top_hits[j] = hits(_apply(noise, top, filler.values(fill, top, m, rng, prototype_scale, top)))
        rand = np.argsort(rng.random((m, d)), axis=1)[:, :kk]  # one random set per crafted image
        rand_hits[j] = hits(_apply(noise, rand, filler.values(fill, rand, m, rng, prototype_scale, top)))
    boot = rng.integers(0, m, size=(B, m))
    params = {
        "n_bootstrap": B, "fill": fill, "prototype_scale": float(prototype_scale), "noise_mean": float(noise_mean),
        "noise_std": float(noise_std), "level": float(level),
        "random_state": random_state if isinstance(random_state, (int, np.integer, type(None))) else repr(random_state),
    }
    return CraftedSamplesResult(
        k=_frozen(ks, np.int64),
        target_class=int(target_class),
        crafted=_frozen(top_hits[:, boot].mean(axis=-1)),
        crafted_random=_frozen(rand_hits[:, boot].mean(axis=-1)),
        noise=_frozen(base[boot].mean(axis=-1)),
        n_samples=m,
        params=params,
    )

