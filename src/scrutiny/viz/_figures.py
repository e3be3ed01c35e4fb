"""Shared machinery of the report figures: Figure objects without pyplot, PNG data URIs,
safe text, validated arrays and the colour choices.

Decisions
---------
* Figures are built with :class:`matplotlib.figure.Figure` directly, never through pyplot, so
  nothing here touches pyplot's global figure registry, the selected backend or ``rcParams``;
  ``savefig`` to PNG picks the Agg canvas by itself.
* Figure sizes are fixed from the number of panels / bars (no ``bbox_inches="tight"``), so a
  PNG's pixel size is ``figsize * dpi`` and depends only on what is shown, not on text extents.
* Every string drawn is a caller's string. It is drawn with ``parse_math=False`` so a ``$`` in
  a feature name is printed, not parsed as mathtext (which could raise), and is cut to
  ``MAX_LABEL`` characters so a long name cannot squeeze the plot away.
* Attributions use ``RdBu_r`` centred at 0 (ColorBrewer's RdBu is colour-blind safe and prints
  legibly in grey: the sign is also carried by the side of the axis a bar lies on); lines use
  the Okabe-Ito palette with distinct dash patterns so curves stay apart in black and white.
"""

from __future__ import annotations

import base64
import io
from typing import Any, Sequence

import numpy as np

from ..exceptions import InvalidParameterError

#: diverging map of signed attributions, centred at 0
DIVERGING = "RdBu_r"
#: sequential map of non-negative quantities (counts, weights)
SEQUENTIAL = "Blues"
#: bar colours of positive / negative values (the ends of RdBu)
POSITIVE, NEGATIVE = "#b2182b", "#2166ac"
#: Okabe & Ito (2008) colour-blind-safe palette, black last
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
DASHES = ("-", "--", "-.", ":")
#: longest label drawn, in characters
MAX_LABEL = 40


def new_figure(width: float, height: float) -> Any:
    """A pyplot-free Figure with constrained layout (inches)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(float(width), float(height)), layout="constrained")


def to_data_uri(fig: Any, dpi: int = 100, colors: int | None = 256) -> str:
    """Render a matplotlib figure to an inline ``data:image/png;base64,...`` URI.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    dpi : int, default 100
        Pixels per inch; the PNG is ``fig.get_size_inches() * dpi`` pixels.
    colors : int or None, default 256
        Quantise to a palette PNG of at most this many colours (no dithering), the default
        because the report inlines every figure (sizes: ``benchmarks/report_figures.py``);
        ``None`` writes a lossless RGB PNG.

    Returns
    -------
    str
    """
    if not hasattr(fig, "savefig"):
        raise InvalidParameterError(f"fig must be a matplotlib Figure; got {type(fig).__name__}.")
    dpi = check_int("dpi", dpi, low=10, high=600, hint="100 suits a screen, 200 a printed page")
    if colors is not None:
        colors = check_int("colors", colors, low=2, high=256, hint="or None for a lossless PNG")
    buf = io.BytesIO()
    if colors is None:
        fig.savefig(buf, format="png", dpi=dpi, facecolor="white", metadata={"Software": None})
    else:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from PIL import Image

        # draw on an Agg canvas directly: no backend is selected and pyplot is not involved
        canvas = FigureCanvasAgg(fig)
        old_dpi, old_face = fig.dpi, fig.get_facecolor()
        fig.set_dpi(dpi)
        fig.set_facecolor("white")
        try:
            canvas.draw()
            rgba = np.asarray(canvas.buffer_rgba())
        finally:
            fig.set_dpi(old_dpi)
            fig.set_facecolor(old_face)
        img = Image.fromarray(rgba[..., :3].copy(), "RGB")
        img = img.quantize(colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        img.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def check_int(name: str, value: Any, low: int = 1, high: int | None = None, hint: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low or (high is not None and value > high):
        bound = f"an int in [{low}, {high}]" if high is not None else f"an int >= {low}"
        raise InvalidParameterError(f"{name} must be {bound}; got {value!r}." + (f" ({hint})" if hint else ""))
    return int(value)


def check_array(name: str, value: Any, ndims: Sequence[int], *, finite: bool = True) -> np.ndarray:
    """``value`` as float64 with one of ``ndims`` dimensions, non-empty and (by default) finite."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"{name} must be a numeric array; got {type(value).__name__} ({exc}).") from None
    if arr.ndim not in ndims:
        want = " or ".join(f"{d}-D" for d in ndims)
        raise InvalidParameterError(f"{name} must be {want}; got shape {arr.shape}.")
    if arr.size == 0:
        raise InvalidParameterError(f"{name} must not be empty; got shape {arr.shape}.")
    if finite and not np.all(np.isfinite(arr)):
        raise InvalidParameterError(f"{name} holds NaN or inf; plot finite values only (drop or impute them first).")
    return arr


def check_names(name: str, value: Any, n: int, default: str = "{}") -> list[str]:
    """``n`` display strings: the caller's (cut to MAX_LABEL) or ``default.format(i)``."""
    if value is None:
        return [default.format(i) for i in range(n)]
    if isinstance(value, str) or not hasattr(value, "__len__"):
        raise InvalidParameterError(f"{name} must be a sequence of {n} strings; got {type(value).__name__}.")
    if len(value) != n:
        raise InvalidParameterError(f"{name} must hold {n} names (one per item); got {len(value)}.")
    return [short(v) for v in value]


def short(text: Any, limit: int = MAX_LABEL) -> str:
    text = str(text).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def set_title(target: Any, title: str, **kw: Any) -> None:
    """Title of an Axes or a Figure (suptitle), drawn verbatim."""
    if not title:
        return
    if hasattr(target, "set_title"):
        target.set_title(short(title, 2 * MAX_LABEL), fontsize=kw.pop("fontsize", 9), parse_math=False, **kw)
    else:
        target.suptitle(short(title, 2 * MAX_LABEL), fontsize=kw.pop("fontsize", 10), parse_math=False, **kw)


def as_image(name: str, arr: np.ndarray) -> np.ndarray:
    """One image, (H, W), (1, H, W), (3, H, W), (H, W, 1) or (H, W, 3) -> (H, W) or (H, W, 3)."""
    if arr.ndim == 2:
        return arr
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
        return arr[0] if arr.shape[0] == 1 else np.moveaxis(arr, 0, -1)
    if arr.ndim == 3 and arr.shape[-1] in (1, 3):
        return arr[..., 0] if arr.shape[-1] == 1 else arr
    if arr.ndim == 3 and arr.shape[0] in (1, 3):
        return arr[0] if arr.shape[0] == 1 else np.moveaxis(arr, 0, -1)
    raise InvalidParameterError(
        f"{name} must hold images of shape (H, W), (C, H, W) or (H, W, C) with C in {{1, 3}}; got {arr.shape}."
    )


def rescale(img: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1] so any pixel range displays (constant images become 0)."""
    lo, hi = float(img.min()), float(img.max())
    return (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)


def show_image(ax: Any, img: np.ndarray) -> None:
    img = rescale(img)
    if img.ndim == 2:
        ax.imshow(img, cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(img, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def symmetric_limit(values: np.ndarray) -> float:
    lim = float(np.abs(values).max())
    return lim if lim > 0 else 1.0


def grid(n: int, ncols: int) -> tuple[int, int]:
    ncols = max(1, min(int(ncols), n))
    return -(-n // ncols), ncols
