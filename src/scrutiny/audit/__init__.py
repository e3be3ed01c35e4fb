"""``scrutiny audit``: audit a saved model on saved data into ``audit.json``, ``.npz`` results and one HTML report.

Modules: :mod:`.loaders` (models and data, never unpickling), :mod:`.config` (``audit.toml``
and budgets), :mod:`.sections` and :mod:`.sections_global` (one function per capability),
:mod:`.runner` (progress, sections, trail, report), :mod:`.trail` (``audit.json``),
:mod:`.checks` (``--fail-on``), :mod:`.report` (the HTML file) and :mod:`.diff` (two audits).
"""

from __future__ import annotations

from .config import BUDGETS, DEFAULTS, METHODS, SECTIONS, load_config
from .loaders import SAFE_FORMATS, LoadedData, LoadedModel, check_compatible, load_data, load_model, sniff_model_format
from .runner import run_audit

__all__ = ["load_model", "load_data", "check_compatible", "sniff_model_format", "LoadedModel", "LoadedData", "SAFE_FORMATS",
           "load_config", "DEFAULTS", "BUDGETS", "SECTIONS", "METHODS", "run_audit"]
