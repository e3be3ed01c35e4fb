"""Image figures of the audit report (attribution overlays, example galleries, NNK neighbours),
each returned as an inline PNG data URI; see :mod:`scrutiny.viz.audit_plots` for the contract.

Images may be given as ``(n, H, W)``, ``(n, C, H, W)`` or ``(n, H, W, C)`` with ``C`` in {1, 3};
each image is min-max scaled for display only.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..exceptions import InvalidParameterError
from ._figures import (
    DIVERGING,
    SEQUENTIAL,
    as_image,
    check_array,
    check_int,
    check_names,
    grid,
    new_figure,
    set_title,
    show_image,
    symmetric_limit,
    to_data_uri,
)

__all__ = ["image_attributions", "image_gallery", "nnk_panel"]


def _images(name: str, images: Any) -> list[np.ndarray]:
    arr = check_array(name, images, (3, 4))
    return [as_image(f"{name}[{i}]", arr[i]) for i in range(arr.shape[0])]


def _heat(name: str, attribution: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """An attribution of one image as an (H, W) map (channels summed)."""
    a = attribution
    if a.ndim == 3:
        a = as_image(name, a)
        if a.ndim == 3:
            a = a.sum(axis=-1)
    if a.shape != hw:
        raise InvalidParameterError(f"{name} must match its image's height and width {hw}; got {attribution.shape}.")
    return a


def _colourbar(fig: Any, mappable: Any, axes: Any) -> None:
    cbar = fig.colorbar(mappable, ax=axes, shrink=0.6, ticks=[-1, 0, 1])
    cbar.ax.set_yticklabels(["\u2212", "0", "+"], fontsize=8)


def image_attributions(
    images: Any,
    attributions: Any,
    titles: Sequence[str] | None = None,
    ncols: int = 4,
    *,
    max_images: int = 16,
    alpha: float = 0.65,
    dpi: int = 100,
) -> str:
    """Grid of images, each with its signed attribution overlaid (red for, blue against).

    Each overlay is scaled by its own largest ``|attribution|`` (the colour bar reads -max, 0, +max),
    so the pattern of every sample is visible whatever its magnitude.

    Parameters
    ----------
    images : array-like of shape (n, H, W), (n, C, H, W) or (n, H, W, C)
    attributions : array-like of shape (n, H, W) or the shape of ``images``
        Channels are summed.
    titles : sequence of str of length n, optional
    ncols : int, default 4
    max_images : int, default 16
        The first ``max_images`` samples are drawn.
    alpha : float, default 0.65
        Opacity of the heat map over the image.
    dpi : int, default 100
    """
    imgs = _images("images", images)
    attr = check_array("attributions", attributions, (3, 4))
    if attr.shape[0] != len(imgs):
        raise InvalidParameterError(
            f"attributions must hold one map per image ({len(imgs)}); got {attr.shape[0]}."
        )
    names = check_names("titles", titles, len(imgs), default="")
    if not 0.0 < float(alpha) <= 1.0:
        raise InvalidParameterError(f"alpha must be in (0, 1]; got {alpha!r}.")
    n = min(len(imgs), check_int("max_images", max_images))
    nrows, ncols = grid(n, check_int("ncols", ncols))
    fig = new_figure(1.6 * ncols + 0.6, 1.75 * nrows + 0.2)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    im = None
    for i, ax in enumerate(axes.ravel()):
        if i >= n:
            ax.set_axis_off()
            continue
        hw = imgs[i].shape[:2]
        heat = _heat(f"attributions[{i}]", attr[i], hw)
        show_image(ax, imgs[i].mean(axis=-1) if imgs[i].ndim == 3 else imgs[i])
        im = ax.imshow(heat / symmetric_limit(heat), cmap=DIVERGING, vmin=-1.0, vmax=1.0, alpha=float(alpha),
                       interpolation="nearest")
        set_title(ax, names[i], fontsize=7)
    _colourbar(fig, im, axes)
    return to_data_uri(fig, dpi)


def image_gallery(
    images: Any,
    captions: Sequence[str] | None = None,
    title: str = "",
    max_images: int = 16,
    *,
    ncols: int = 8,
    dpi: int = 100,
) -> str:
    """A captioned grid of images (influential or harmful training examples, mislabel candidates).

    Parameters
    ----------
    images : array-like of shape (n, H, W), (n, C, H, W) or (n, H, W, C)
    captions : sequence of str of length n, optional
        Drawn under each image (e.g. ``"#412 label 7, score +0.31"``).
    title : str, default ""
    max_images : int, default 16
        The first ``max_images`` images are drawn (pass them sorted, most important first).
    ncols : int, default 8
    dpi : int, default 100
    """
    imgs = _images("images", images)
    caps = check_names("captions", captions, len(imgs), default="")
    n = min(len(imgs), check_int("max_images", max_images))
    nrows, ncols = grid(n, check_int("ncols", ncols))
    fig = new_figure(1.25 * ncols + 0.2, 1.45 * nrows + (0.35 if title else 0.1))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        if i >= n:
            ax.set_axis_off()
            continue
        show_image(ax, imgs[i])
        if caps[i]:
            ax.set_xlabel(caps[i], fontsize=6, parse_math=False)
    set_title(fig, title)
    return to_data_uri(fig, dpi)


def nnk_panel(
    query: Any,
    neighbours: Any,
    weights: Any,
    labels: Sequence[str] | None,
    *,
    query_label: str = "",
    max_neighbours: int = 10,
    dpi: int = 100,
) -> str:
    """A query and its NNK neighbours, heaviest weight first, each with its weight and label.

    Images (``query`` of shape (H, W) / (C, H, W) / (H, W, C)) are drawn in a row: the query, then
    the neighbours captioned ``"w=0.42 <label>"``. Tabular rows (``query`` of shape (n_features,))
    give a bar chart of the weights, one bar per neighbour labelled by ``labels``.

    Parameters
    ----------
    query : array-like of one sample
    neighbours : array-like of shape (k, *query.shape)
    weights : array-like of shape (k,), non-negative
        NNK interpolation weights (neighbours with weight 0 are still listed, last).
    labels : sequence of str of length k, or None
        One caption per neighbour (its label, index...).
    query_label : str, default ""
    max_neighbours : int, default 10
        Neighbours drawn at most (largest weights).
    dpi : int, default 100
    """
    q = check_array("query", query, (1, 2, 3))
    nb = check_array("neighbours", neighbours, (q.ndim + 1,))
    if nb.shape[1:] != q.shape:
        raise InvalidParameterError(
            f"neighbours must have shape (k, {', '.join(map(str, q.shape))}) like the query; got {nb.shape}."
        )
    w = check_array("weights", weights, (1,))
    if w.shape[0] != nb.shape[0]:
        raise InvalidParameterError(f"weights must hold one value per neighbour ({nb.shape[0]}); got {w.shape[0]}.")
    if np.any(w < 0):
        raise InvalidParameterError("weights must be non-negative (NNK weights are); got a negative value.")
    names = check_names("labels", labels, nb.shape[0], default="#{}")
    k = min(nb.shape[0], check_int("max_neighbours", max_neighbours))
    order = np.argsort(-w, kind="stable")[:k]
    if q.ndim == 1:
        fig = new_figure(4.4, 0.8 + 0.24 * k)
        ax = fig.add_subplot()
        pos = np.arange(k)[::-1]
        ax.barh(pos, w[order], color="#0072B2", height=0.7)
        ax.set_yticks(pos, [names[i] for i in order], fontsize=7, parse_math=False)
        for p, i in zip(pos, order):
            ax.text(w[i], p, f" {w[i]:.3f}", va="center", fontsize=6)
        ax.set_xlim(0, 1.25 * max(float(w.max()), 1e-12))
        ax.set_ylim(-0.6, k - 0.4)
        ax.set_xlabel("NNK weight", fontsize=7)
        ax.tick_params(axis="x", labelsize=7)
        set_title(ax, query_label)
        return to_data_uri(fig, dpi)
    qimg = as_image("query", q)
    fig = new_figure(1.3 * (k + 1) + 0.1, 1.6)
    axes = fig.subplots(1, k + 1, squeeze=False)[0]
    show_image(axes[0], qimg)
    for spine in axes[0].spines.values():
        spine.set_linewidth(2.0)
    set_title(axes[0], query_label, fontsize=7)
    cmap_max = max(float(w.max()), 1e-12)
    for ax, i in zip(axes[1:], order):
        show_image(ax, as_image(f"neighbours[{i}]", nb[i]))
        ax.set_xlabel(f"w={w[i]:.3f} {names[i]}", fontsize=6, parse_math=False)
        # the frame's darkness encodes the weight too, for a print in grey
        shade = 0.25 + 0.75 * w[i] / cmap_max
        for spine in ax.spines.values():
            spine.set_edgecolor(_shade(shade))
            spine.set_linewidth(1.5)
    return to_data_uri(fig, dpi)


def _shade(level: float) -> Any:
    from matplotlib import colormaps

    return colormaps[SEQUENTIAL](float(level))
