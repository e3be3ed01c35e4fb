"""Heat maps of image attributions."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..exceptions import InvalidParameterError
from ..explanation import Explanation


def _pyplot() -> Any:
    import matplotlib

    if "matplotlib.pyplot" not in __import__("sys").modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _as_image(arr: np.ndarray) -> np.ndarray:
    """(C, H, W) or (H, W) -> (H, W) or (H, W, 3) for imshow."""
    if arr.ndim == 2:
        return arr
    if arr.ndim == 3 and arr.shape[0] == 1:
        return arr[0]
    if arr.ndim == 3 and arr.shape[0] == 3:
        return np.moveaxis(arr, 0, -1)
    raise InvalidParameterError(
        f"image attributions must have shape (H, W), (1, H, W) or (3, H, W) per sample; got {arr.shape}."
    )


def plot_image_attributions(
    explanations: Explanation | Sequence[Explanation],
    path: str | os.PathLike | None = None,
    *,
    max_samples: int = 8,
    class_names: Sequence[str] | None = None,
    titles: Sequence[str] | None = None,
) -> Any:
    """Plot inputs and signed attribution heat maps, one column per sample.

    Parameters
    ----------
    explanations : Explanation or sequence of Explanation
        Image explanations of the same samples (values of shape (n, [C,] H, W)); each one
        adds a row. ``data`` of the first explanation gives the input row when present.
    path : str or path-like, optional
        Where to save the figure (PNG, SVG, PDF by suffix). The figure is returned either way.
    max_samples : int, default 8
    class_names : sequence of str, optional
        Names of the explained targets, for column titles.
    titles : sequence of str, optional
        Row labels (default: each explanation's ``method``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    if isinstance(explanations, Explanation):
        explanations = [explanations]
    explanations = list(explanations)
    if not explanations or not all(isinstance(e, Explanation) for e in explanations):
        raise InvalidParameterError("explanations must be an Explanation or a non-empty list of them.")
    n = min(len(explanations[0]), int(max_samples))
    if any(len(e) < n for e in explanations):
        raise InvalidParameterError("all explanations must cover the same samples (same length).")
    plt = _pyplot()
    first = explanations[0]
    rows = ([("input", None)] if first.data is not None else []) + [
        (titles[i] if titles else e.method, e) for i, e in enumerate(explanations)
    ]
    fig, axes = plt.subplots(len(rows), n, figsize=(1.6 * n + 0.8, 1.7 * len(rows)), squeeze=False)
    for r, (label, exp) in enumerate(rows):
        for c in range(n):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if exp is None:
                ax.imshow(_as_image(first.data[c]), cmap="gray_r")
                target = int(first.target[c])
                ax.set_title(class_names[target] if class_names else f"target {target}", fontsize=8)
            else:
                values = _as_image(exp.values[c])
                if values.ndim == 3:
                    values = values.sum(axis=-1)
                lim = float(np.abs(values).max()) or 1.0
                ax.imshow(values, cmap="RdBu_r", vmin=-lim, vmax=lim)
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    return fig
