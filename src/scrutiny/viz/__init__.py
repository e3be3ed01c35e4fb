"""Plots that accept only scrutiny result objects or plain arrays, so saved results can be re-plotted.

matplotlib is imported only when a figure is drawn (``import scrutiny.viz`` does not import it),
and the report figures (:mod:`scrutiny.viz.audit_plots`) are built on ``matplotlib.figure.Figure``
without pyplot, so they need no display, select no backend and leave ``rcParams`` alone.
"""

from __future__ import annotations

from .._lazy import lazy_module

_NAMES = {
    "plot_image_attributions": "images",
    "to_data_uri": "audit_plots",
    "attribution_bars": "audit_plots",
    "image_attributions": "audit_plots",
    "image_gallery": "audit_plots",
    "nnk_panel": "audit_plots",
    "trace_plot": "audit_plots",
    "faithfulness_curve": "audit_plots",
    "confusion_matrix_plot": "audit_plots",
    "dmm_heatmaps": "audit_plots",
}
__all__ = list(_NAMES)
__getattr__, __dir__ = lazy_module(__name__, _NAMES, __all__)
