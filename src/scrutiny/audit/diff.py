"""``scrutiny diff OLD NEW``: what moved between two audits of model versions.

Compares, on the rows both audits share: predictions (which rows changed class), accuracy and
the gating metrics, the top features of each local explanation (top-1 changes and top-5
overlap), and the influential training examples (overlap of the top proponents).
"""

from __future__ import annotations

from typing import Any

from .checks import CHECKS

__all__ = ["diff_audits", "format_diff"]


def _numbers(trail: dict, name: str) -> dict:
    sec = next((s for s in trail["sections"] if s["name"] == name), None)
    return sec["numbers"] if sec is not None and sec["status"] == "ok" else {}


def _jaccard(a: list, b: list) -> float:
    a, b = set(map(str, a)), set(map(str, b))
    return len(a & b) / len(a | b) if a | b else 1.0


def diff_audits(old: dict, new: dict) -> dict[str, Any]:
    """A JSON-ready record of the differences between two audit trails."""
    out: dict[str, Any] = {"old": {"model": old["model"], "data": old["data"]},
                           "new": {"model": new["model"], "data": new["data"]},
                           "same_data": (old["data"] or {}).get("sha256") == (new["data"] or {}).get("sha256")}
    po, pn = _numbers(old, "performance"), _numbers(new, "performance")
    if po.get("predicted") is not None and pn.get("predicted") is not None and out["same_data"]:
        moved = [i for i, (a, b) in enumerate(zip(po["predicted"], pn["predicted"])) if a != b]
        out["predictions"] = {"n_changed": len(moved), "rows": moved[:50],
                              "changes": [[i, po["predicted"][i], pn["predicted"][i]] for i in moved[:50]]}
    metrics = {}
    for name in CHECKS:
        if name == "failed":
            continue
        a, b = CHECKS[name][1](old), CHECKS[name][1](new)
        if a is not None or b is not None:
            metrics[name] = {"old": a, "new": b,
                             "change": (float(b) - float(a)) if isinstance(a, (int, float)) and isinstance(b, (int, float))
                             and not isinstance(a, bool) else None}
    out["metrics"] = metrics
    lo, ln = _numbers(old, "local"), _numbers(new, "local")
    attributions = {}
    if lo and ln:
        rows_o = {r: i for i, r in enumerate(lo["rows"])}
        for method in sorted(set(lo["methods"]) & set(ln["methods"])):
            per_row = []
            for j, r in enumerate(ln["rows"]):
                if r not in rows_o:
                    continue
                a = [f for f, _ in lo["methods"][method]["top_features"][rows_o[r]]]
                b = [f for f, _ in ln["methods"][method]["top_features"][j]]
                per_row.append({"row": r, "old_top": a[:3], "new_top": b[:3], "top1_changed": a[:1] != b[:1],
                                "top5_overlap": _jaccard(a, b)})
            attributions[method] = per_row
    out["attributions"] = attributions
    to, tn = _numbers(old, "training_data"), _numbers(new, "training_data")
    influential = {}
    if to and tn and to["test_rows"] == tn["test_rows"]:
        for method in sorted(set(to["methods"]) & set(tn["methods"])):
            a, b = to["methods"][method]["proponents"], tn["methods"][method]["proponents"]
            influential[method] = [{"test_row": t, "overlap": _jaccard([to["train_rows"][k] for k in a[i]],
                                                                        [tn["train_rows"][k] for k in b[i]])}
                                   for i, t in enumerate(tn["test_rows"])]
    out["influential"] = influential
    return out


def format_diff(d: dict) -> str:
    """The diff as text lines a person reads."""
    lines = [f"old: {d['old']['model']['path']} (sha256 {d['old']['model']['sha256'][:12]})",
             f"new: {d['new']['model']['path']} (sha256 {d['new']['model']['sha256'][:12]})"]
    if not d["same_data"]:
        lines.append("the two audits ran on different data: predictions are not compared row by row")
    if "predictions" in d:
        p = d["predictions"]
        lines.append(f"predictions: {p['n_changed']} rows changed class"
                     + (": " + ", ".join(f"row {i} {a}->{b}" for i, a, b in p["changes"][:10]) if p["changes"] else ""))
    for name, m in d["metrics"].items():
        change = f" ({m['change']:+.4g})" if m["change"] is not None else ""
        lines.append(f"{name}: {m['old']} -> {m['new']}{change}")
    for method, rows in d["attributions"].items():
        changed = [r for r in rows if r["top1_changed"]]
        mean = sum(r["top5_overlap"] for r in rows) / len(rows) if rows else float("nan")
        lines.append(f"attributions {method}: top feature changed on {len(changed)}/{len(rows)} rows; "
                     f"mean top-5 overlap {mean:.2f}")
        for r in changed[:5]:
            lines.append(f"  row {r['row']}: {', '.join(map(str, r['old_top']))} -> {', '.join(map(str, r['new_top']))}")
    for method, rows in d["influential"].items():
        mean = sum(r["overlap"] for r in rows) / len(rows) if rows else float("nan")
        lines.append(f"influential examples {method}: mean overlap of the top proponents {mean:.2f}")
    return "\n".join(lines)
