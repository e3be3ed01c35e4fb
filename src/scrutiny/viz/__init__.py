"""Plots that accept only scrutiny result objects, so saved results can be re-plotted.

matplotlib is imported lazily and the non-interactive Agg backend is used when no backend
has been chosen, so plotting works on machines without a display.
"""

from __future__ import annotations

from .images import plot_image_attributions

__all__ = ["plot_image_attributions"]
