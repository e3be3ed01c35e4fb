"""The self-contained HTML report, rebuilt from ``audit.json`` and the saved ``.npz`` results.

One file: CSS inline, images inline as ``data:`` URIs, no script, no external URL (a print
stylesheet keeps it readable on paper). jinja2 renders it with ``autoescape=True``, so every
user string (feature, class and file names, rule text) is escaped. Figures come from
:mod:`scrutiny.viz.audit_plots` when it is installed; without it (or if a figure fails) the
report shows the numbers as tables and says so. The size budget (``report.max_bytes``) is kept by
subsampling galleries to ``report.max_gallery`` rows and, if still too large, dropping figures
from the last sections first (each drop is noted in the report).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["write_report", "render_report", "REPORT_NAME"]

REPORT_NAME = "report.html"


def _plots() -> Any:
    try:
        from ..viz import audit_plots
    except ImportError:  # matplotlib missing: the report keeps its tables
        return None
    return audit_plots


def _load(out: Path, name: str) -> Any:
    from ..explanation import load_result

    return load_result(out / name)


def _figure(figs: list, notes: list, caption: str, make: Any) -> None:
    try:
        figs.append({"caption": caption, "uri": make()})
    except Exception as exc:  # a figure that cannot be drawn must not lose the numbers
        notes.append(f"figure '{caption}' not drawn: {type(exc).__name__}: {exc}")


def _section_figures(out: Path, sec: dict, plots: Any, max_gallery: int, names: list | None) -> tuple[list, list]:
    figs: list = []
    notes: list = []
    if plots is None or sec["status"] != "ok":
        if plots is None and sec["status"] == "ok":
            notes.append("figures unavailable (scrutiny.viz.audit_plots is not installed); numbers shown as tables.")
        return figs, notes
    n, name = sec["numbers"], sec["name"]
    if name == "performance":
        _figure(figs, notes, "confusion matrix",
                lambda: plots.confusion_matrix_plot(np.array(n["confusion_matrix"]), n["class_names"]))
    elif name == "local":
        for method in n["methods"]:
            exp = _load(out, f"local_{method}.npz")
            rows = slice(0, max_gallery)
            if n["image_shape"]:
                _figure(figs, notes, method, lambda exp=exp: plots.image_attributions(
                    exp.data[rows], exp.values[rows], titles=[f"row {r}" for r in n["rows"][:max_gallery]]))
            else:
                for i, r in enumerate(n["rows"][:max_gallery]):
                    _figure(figs, notes, f"{method}, row {r}", lambda exp=exp, i=i, r=r: plots.attribution_bars(
                        exp.values[i], list(exp.feature_names or names or []) or None, title=f"{method}: row {r}"))
        curves = {m: np.asarray(rec["deletion_curve"], dtype=float) for m, rec in n["methods"].items()
                  if rec.get("deletion_curve")}
        if curves:
            t = len(next(iter(curves.values())))
            _figure(figs, notes, "deletion curves (lower is more faithful)", lambda: plots.faithfulness_curve(
                np.linspace(0.0, 1.0, t), curves, title="deletion: probability of the explained class",
                ylabel="probability"))
    elif name == "dmm_men":
        for cls, rec in n["classes"].items():
            if not rec["components"]:
                continue
            ins = _load(out, f"dmm_men_class{rec['class']}_component0.npz")
            coef = np.asarray(ins.coef_map, dtype=float).ravel()
            lower, upper = coef.copy(), coef.copy()
            lower[ins.features], upper[ins.features] = ins.coef_ci[:, 0], ins.coef_ci[:, 1]
            shape = tuple(n["image_shape"]) if n["image_shape"] else None
            _figure(figs, notes, f"class {cls}", lambda coef=coef, lower=lower, upper=upper, shape=shape:
                    plots.dmm_heatmaps(coef, lower, upper, image_shape=shape, feature_names=None if shape else names))
            if rec.get("trace_loglik"):
                _figure(figs, notes, f"class {cls}: log-likelihood traces", lambda rec=rec: plots.trace_plot(
                    np.atleast_2d(np.array(rec["trace_loglik"], dtype=float)), rhat=rec["max_rhat"]))
    elif name == "training_data":
        _training_figures(out, n, plots, figs, notes, max_gallery)
    return figs, notes


def _training_figures(out: Path, n: dict, plots: Any, figs: list, notes: list, max_gallery: int) -> None:
    path = out / "training_examples.npz"
    if not path.exists():
        return
    with np.load(path, allow_pickle=False) as z:
        pos = {int(p): i for i, p in enumerate(z["positions"])}
        X, y, test_X = z["X"], z["y"], z["test_X"]
    image = X.ndim > 2
    for t, test_row in enumerate(n["test_rows"][:max(1, max_gallery // 4)]):
        for method, rec in n["methods"].items():
            top = [pos[j] for j in rec["proponents"][t]]
            if method == "nnk":
                _figure(figs, notes, f"NNK neighbours of test row {test_row}", lambda top=top, t=t, rec=rec:
                        plots.nnk_panel(test_X[t], X[top], np.array(rec["proponent_scores"][t]),
                                        [str(y[i]) for i in top], query_label=f"row {test_row}"))
            elif image:
                harm = [pos[j] for j in rec.get("opponents", [[]] * (t + 1))[t]]
                _figure(figs, notes, f"{method}: helpful (first row) and harmful training images for test row {test_row}",
                        lambda top=top, harm=harm: plots.image_gallery(
                            np.concatenate([X[top], X[harm]]), captions=[f"+ label {y[i]}" for i in top] +
                            [f"- label {y[i]}" for i in harm], title=f"{method}", max_images=max_gallery))


def render_report(out: str | Path, trail: dict) -> str:
    import jinja2

    out = Path(out)
    cfg = trail.get("config", {}).get("report", {})
    max_gallery, max_bytes = int(cfg.get("max_gallery", 12)), int(cfg.get("max_bytes", 6_000_000))
    plots = _plots()
    perf = next((s for s in trail["sections"] if s["name"] == "performance" and s["status"] == "ok"), None)
    names = perf["numbers"].get("feature_names") if perf else None
    sections = []
    for sec in trail["sections"]:
        figs, notes = _section_figures(out, sec, plots, max_gallery, names)
        sections.append({**sec, "figures": figs, "notes": notes})
    env = jinja2.Environment(loader=jinja2.PackageLoader("scrutiny.audit", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    def fmt(v: Any, digits: int = 3) -> str:
        if v is None:
            return "n/a"
        if isinstance(v, float):
            return f"{v:.{digits}f}"
        return str(v)

    env.filters["fmt"] = fmt
    template = env.get_template("report.html.j2")
    html = template.render(trail=trail, sections=sections, by_name={s["name"]: s for s in sections})
    # size budget: drop figures from the last sections first
    for sec in reversed(sections):
        if len(html.encode()) <= max_bytes:
            break
        if sec["figures"]:
            sec["notes"].append(f"{len(sec['figures'])} figures left out to keep the report under {max_bytes} bytes.")
            sec["figures"] = []
            html = template.render(trail=trail, sections=sections, by_name={s["name"]: s for s in sections})
    return html


def write_report(out: str | Path, trail: dict) -> Path:
    path = Path(out) / REPORT_NAME
    path.write_text(render_report(out, trail), encoding="utf-8")
    return path
