"""Figures of the audit report, each returned as an inline PNG data URI.

Every function takes plain arrays and caller strings, validates shapes (raising
:class:`~scrutiny.exceptions.InvalidParameterError` naming the argument), draws a small
print-friendly figure without pyplot and returns ``to_data_uri(fig, dpi)``. Wide or long inputs
are cut to a stated maximum (``top_k``, ``max_points``, ``max_images`` ...) so a report's size is
bounded whatever the data. The image figures live in :mod:`scrutiny.viz.audit_images`; this
module holds the tabular / numeric ones and re-exports them all.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..exceptions import InvalidParameterError
from ._figures import (
    DASHES,
    DIVERGING,
    NEGATIVE,
    PALETTE,
    POSITIVE,
    SEQUENTIAL,
    check_array,
    check_int,
    check_names,
    grid,
    new_figure,
    set_title,
    short,
    symmetric_limit,
    to_data_uri,
)
from .audit_images import image_attributions, image_gallery, nnk_panel

__all__ = [
    "to_data_uri",
    "attribution_bars",
    "image_attributions",
    "image_gallery",
    "nnk_panel",
    "trace_plot",
    "faithfulness_curve",
    "confusion_matrix_plot",
    "dmm_heatmaps",
    "top_features",
    "thin",
]


def top_features(values: np.ndarray, top_k: int) -> np.ndarray:
    """Indices of the ``top_k`` largest ``|values|``, largest first (stable on ties)."""
    order = np.argsort(-np.abs(values), kind="stable")
    return order[:top_k]


def thin(n: int, max_points: int) -> np.ndarray:
    """At most ``max_points`` evenly spaced indices of ``range(n)``, first and last included."""
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, max_points)).astype(int))


def _bars(ax: Any, values: np.ndarray, names: Sequence[str], err: np.ndarray | None = None) -> None:
    """Horizontal signed bars, first item on top."""
    pos = np.arange(len(values))[::-1]
    colours = [POSITIVE if v >= 0 else NEGATIVE for v in values]
    xerr = None if err is None else np.stack([np.maximum(values - err[0], 0), np.maximum(err[1] - values, 0)])
    ax.barh(pos, values, color=colours, height=0.7, xerr=xerr, ecolor="#444444", capsize=2 if err is not None else 0)
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_yticks(pos, list(names), fontsize=7, parse_math=False)
    ax.tick_params(axis="x", labelsize=7)
    lim = symmetric_limit(values if err is None else np.concatenate([values, err.ravel()]))
    ax.set_xlim(-1.08 * lim, 1.08 * lim)
    ax.grid(axis="x", linewidth=0.3, alpha=0.5)


def attribution_bars(
    values: Any, feature_names: Sequence[str] | None, title: str = "", top_k: int = 15, *, dpi: int = 100
) -> str:
    """Signed horizontal bars of the ``top_k`` features with the largest ``|value|``.

    Parameters
    ----------
    values : array-like of shape (n_features,)
        One sample's attributions (or a mean over samples).
    feature_names : sequence of str of length n_features, or None
        Bar labels (default ``"x0"``, ``"x1"``...).
    title : str, default ""
    top_k : int, default 15
        At most this many bars, largest ``|value|`` on top; red is positive, blue negative.
    dpi : int, default 100

    Returns
    -------
    str
        ``data:image/png;base64,...``
    """
    values = check_array("values", values, (1,))
    names = check_names("feature_names", feature_names, values.shape[0], default="x{}")
    top_k = check_int("top_k", top_k, hint="15 keeps a report readable")
    idx = top_features(values, top_k)
    fig = new_figure(4.8, 0.8 + 0.22 * top_k)
    ax = fig.add_subplot()
    _bars(ax, values[idx], [names[i] for i in idx])
    ax.set_ylim(-0.6, top_k - 0.4)  # fixed height per bar slot, so figures line up in the report
    set_title(ax, title)
    return to_data_uri(fig, dpi)


def trace_plot(
    traces: Any,
    rhat: Any = None,
    title: str = "",
    *,
    param_names: Sequence[str] | None = None,
    max_points: int = 1000,
    max_params: int = 6,
    dpi: int = 100,
) -> str:
    """MCMC traces, one line per chain, with R-hat in the title.

    Parameters
    ----------
    traces : array-like of shape (n_chains, n_iterations) or (n_chains, n_iterations, n_params)
    rhat : float or array-like of shape (n_params,), optional
        Potential scale reduction per parameter; printed in each panel's title.
    title : str, default ""
    param_names : sequence of str, optional
        One per parameter (panel titles).
    max_points : int, default 1000
        Iterations drawn per chain (evenly thinned, first and last kept).
    max_params : int, default 6
        Panels drawn at most (the first parameters).
    dpi : int, default 100
    """
    traces = check_array("traces", traces, (2, 3))
    if traces.ndim == 2:
        traces = traces[:, :, None]
    n_chains, n_iter, n_params = traces.shape
    max_points = check_int("max_points", max_points, low=2)
    max_params = check_int("max_params", max_params)
    names = check_names("param_names", param_names, n_params, default="" if n_params == 1 else "parameter {}")
    if rhat is not None:
        rhat = np.atleast_1d(check_array("rhat", rhat, (0, 1), finite=False))
        if rhat.shape[0] != n_params:
            raise InvalidParameterError(f"rhat must hold one value per parameter ({n_params}); got {rhat.shape[0]}.")
    shown = min(n_params, max_params)
    keep = thin(n_iter, max_points)
    fig = new_figure(5.6, 0.4 + 1.5 * shown)
    axes = fig.subplots(shown, 1, squeeze=False)[:, 0]
    for p, ax in enumerate(axes):
        for c in range(n_chains):
            ax.plot(keep, traces[c, keep, p], linewidth=0.6, color=PALETTE[c % len(PALETTE)], alpha=0.85)
        label = names[p]
        if rhat is not None:
            label = (label + "  " if label else "") + f"R-hat = {rhat[p]:.3f}"
        set_title(ax, label, fontsize=8, loc="left")
        ax.tick_params(labelsize=7)
    axes[-1].set_xlabel("iteration", fontsize=7)
    set_title(fig, title)
    return to_data_uri(fig, dpi)


def faithfulness_curve(
    fractions: Any, curves: Mapping[str, Any], title: str = "", *, ylabel: str = "", dpi: int = 100
) -> str:
    """Deletion / insertion curves, one line per method, area under each in the legend.

    Parameters
    ----------
    fractions : array-like of shape (n_steps,)
        Fraction of features removed (or inserted) at each step, increasing.
    curves : dict of str -> array-like of shape (n_steps,) or (n_samples, n_steps)
        Model output per step; 2-D curves are averaged over samples with a +-1 standard-error band.
    title, ylabel : str
    dpi : int, default 100
    """
    fractions = check_array("fractions", fractions, (1,))
    if np.any(np.diff(fractions) < 0):
        raise InvalidParameterError("fractions must be non-decreasing (fraction of features removed per step).")
    if not isinstance(curves, Mapping) or not curves:
        raise InvalidParameterError("curves must be a non-empty dict mapping a method name to its curve.")
    fig = new_figure(4.6, 3.0)
    ax = fig.add_subplot()
    for i, (name, curve) in enumerate(curves.items()):
        curve = check_array(f"curves[{short(name)!r}]", curve, (1, 2))
        if curve.shape[-1] != fractions.shape[0]:
            raise InvalidParameterError(
                f"curves[{short(name)!r}] must have {fractions.shape[0]} steps (len(fractions)); got {curve.shape[-1]}."
            )
        mean = curve if curve.ndim == 1 else curve.mean(axis=0)
        auc = float(np.trapezoid(mean, fractions)) if hasattr(np, "trapezoid") else float(np.trapz(mean, fractions))
        colour, dash = PALETTE[i % len(PALETTE)], DASHES[(i // len(PALETTE) + i) % len(DASHES)]
        ax.plot(fractions, mean, color=colour, linestyle=dash, linewidth=1.3, label=f"{short(name)} (AUC {auc:.3f})")
        if curve.ndim == 2 and curve.shape[0] > 1:
            se = curve.std(axis=0, ddof=1) / np.sqrt(curve.shape[0])
            ax.fill_between(fractions, mean - se, mean + se, color=colour, alpha=0.15, linewidth=0)
    ax.set_xlabel("fraction of features", fontsize=8)
    if ylabel:
        ax.set_ylabel(short(ylabel), fontsize=8, parse_math=False)
    ax.tick_params(labelsize=7)
    ax.grid(linewidth=0.3, alpha=0.5)
    legend = ax.legend(fontsize=7, frameon=False)
    for text in legend.get_texts():
        text.set_parse_math(False)
    set_title(ax, title)
    return to_data_uri(fig, dpi)


def confusion_matrix_plot(
    cm: Any, class_names: Sequence[str] | None, title: str = "", *, max_annotated: int = 20, dpi: int = 100
) -> str:
    """Confusion matrix: colour by row-normalised rate, cells annotated with counts.

    Parameters
    ----------
    cm : array-like of shape (n_classes, n_classes)
        ``cm[i, j]`` = samples of true class ``i`` predicted as ``j`` (non-negative).
    class_names : sequence of str of length n_classes, or None
    title : str, default ""
    max_annotated : int, default 20
        Counts are written in the cells only up to this many classes.
    dpi : int, default 100
    """
    cm = check_array("cm", cm, (2,))
    if cm.shape[0] != cm.shape[1]:
        raise InvalidParameterError(f"cm must be square (n_classes, n_classes); got {cm.shape}.")
    if np.any(cm < 0):
        raise InvalidParameterError("cm must hold non-negative counts.")
    k = cm.shape[0]
    names = check_names("class_names", class_names, k)
    rows = cm.sum(axis=1, keepdims=True)
    rate = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    side = min(7.0, 1.6 + 0.38 * k)
    fig = new_figure(side + 0.6, side)
    ax = fig.add_subplot()
    im = ax.imshow(rate, cmap=SEQUENTIAL, vmin=0.0, vmax=1.0)
    fs = 7 if k <= 12 else 5
    ax.set_xticks(np.arange(k), names, rotation=90, fontsize=fs, parse_math=False)
    ax.set_yticks(np.arange(k), names, fontsize=fs, parse_math=False)
    ax.set_xlabel("predicted", fontsize=8)
    ax.set_ylabel("true", fontsize=8)
    if k <= check_int("max_annotated", max_annotated, low=0):
        for i in range(k):
            for j in range(k):
                count = cm[i, j]
                text = f"{int(count)}" if float(count).is_integer() else f"{count:.2g}"
                ax.text(j, i, text, ha="center", va="center", fontsize=fs,
                        color="white" if rate[i, j] > 0.6 else "black")
    cbar = fig.colorbar(im, ax=ax, shrink=0.7)
    cbar.ax.tick_params(labelsize=7)
    set_title(ax, title)
    return to_data_uri(fig, dpi)


def dmm_heatmaps(
    coef_mean: Any,
    lower: Any,
    upper: Any,
    image_shape: Sequence[int] | None = None,
    feature_names: Sequence[str] | None = None,
    *,
    class_names: Sequence[str] | None = None,
    top_k: int = 12,
    max_classes: int = 10,
    ncols: int = 5,
    dpi: int = 100,
) -> str:
    """Per-class DMM-MEN coefficients: heat maps (images) or bars with credible intervals (tabular).

    Parameters
    ----------
    coef_mean, lower, upper : array-like of shape (n_classes, n_features)
        Posterior mean coefficients and the ends of their credible intervals (``lower <= upper``).
    image_shape : tuple of int, optional
        ``(H, W)`` (or ``(C, H, W)``, channels summed) with product ``n_features``: draw one heat map
        per class, centred at 0, with pixels whose interval excludes 0 outlined.
    feature_names : sequence of str of length n_features, optional
        Tabular case: bar labels.
    class_names : sequence of str of length n_classes, optional
        Panel titles (default ``"class 0"``...).
    top_k : int, default 12
        Tabular case: bars per class (largest ``|coef_mean|``).
    max_classes : int, default 10
        Panels drawn at most (the first classes).
    ncols : int, default 5
    dpi : int, default 100
    """
    coef_mean = check_array("coef_mean", coef_mean, (1, 2))
    coef_mean = np.atleast_2d(coef_mean)
    lower = np.atleast_2d(check_array("lower", lower, (1, 2)))
    upper = np.atleast_2d(check_array("upper", upper, (1, 2)))
    if lower.shape != coef_mean.shape or upper.shape != coef_mean.shape:
        raise InvalidParameterError(
            f"lower and upper must have coef_mean's shape {coef_mean.shape}; got {lower.shape} and {upper.shape}."
        )
    if np.any(lower > upper):
        raise InvalidParameterError("lower must not exceed upper (they are the ends of each credible interval).")
    n_classes, n_features = coef_mean.shape
    titles = check_names("class_names", class_names, n_classes, default="class {}")
    shown = min(n_classes, check_int("max_classes", max_classes))
    significant = (lower > 0) | (upper < 0)
    if image_shape is not None:
        shape = tuple(int(s) for s in np.atleast_1d(image_shape))
        if len(shape) not in (2, 3) or int(np.prod(shape)) != n_features:
            raise InvalidParameterError(
                f"image_shape must be (H, W) or (C, H, W) with product n_features={n_features}; got {image_shape!r}."
            )
        nrows, ncols = grid(shown, check_int("ncols", ncols))
        fig = new_figure(1.7 * ncols + 0.5, 1.8 * nrows + 0.3)
        axes = fig.subplots(nrows, ncols, squeeze=False)
        lim = symmetric_limit(coef_mean[:shown])  # one scale for all classes, so panels compare
        im = None
        for c, ax in enumerate(axes.ravel()):
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= shown:
                ax.set_axis_off()
                continue
            heat, sig = coef_mean[c].reshape(shape), significant[c].reshape(shape)
            if heat.ndim == 3:
                heat, sig = heat.sum(axis=0), sig.any(axis=0)
            im = ax.imshow(heat, cmap=DIVERGING, vmin=-lim, vmax=lim, interpolation="nearest")
            if sig.any() and not sig.all():
                ax.contour(sig.astype(float), levels=[0.5], colors="black", linewidths=0.6)
            set_title(ax, titles[c], fontsize=8)
        cbar = fig.colorbar(im, ax=axes, shrink=0.6)
        cbar.ax.tick_params(labelsize=7)
        return to_data_uri(fig, dpi)
    names = check_names("feature_names", feature_names, n_features, default="x{}")
    top_k = min(check_int("top_k", top_k), n_features)
    nrows, ncols = grid(shown, min(check_int("ncols", ncols), 3))
    fig = new_figure(3.6 * ncols, 0.5 + (0.5 + 0.2 * top_k) * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for c, ax in enumerate(axes.ravel()):
        if c >= shown:
            ax.set_axis_off()
            continue
        idx = top_features(coef_mean[c], top_k)
        _bars(ax, coef_mean[c, idx], [names[i] for i in idx], err=np.stack([lower[c, idx], upper[c, idx]]))
        ax.set_ylim(-0.6, top_k - 0.4)
        set_title(ax, titles[c], fontsize=8)
    return to_data_uri(fig, dpi)
