"""``audit.json``, the audit trail: what was audited, with what, and every number the report shows.

Keys: ``scrutiny_version``, ``created`` (UTC), ``argv``, ``seed``, ``budget``, ``config``,
``model`` (path, format, kind, sha256), ``data`` / ``train`` (path, format, sha256, shape),
``versions`` (python, numpy, torch, scikit-learn, ... as installed), ``execution`` (``backend``,
``scheduler``, ``workers``: where the per-row work ran; never changes a number), ``sections`` (one
record per section: status, reason/error, seconds, params, numbers, files) and ``seconds``.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["build_trail", "write_trail", "read_trail", "library_versions", "TRAIL_NAME"]

TRAIL_NAME = "audit.json"
_PACKAGES = ("numpy", "scipy", "scikit-learn", "torch", "matplotlib", "jinja2", "skops", "onnxruntime")


def library_versions() -> dict[str, str | None]:
    from .. import __version__

    versions: dict[str, str | None] = {"python": platform.python_version(), "scrutiny": __version__}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _data_record(d: Any) -> dict | None:
    if d is None:
        return None
    ds = d.dataset
    return {"path": d.path, "format": d.format, "sha256": d.sha256, "shape": list(ds.X.shape),
            "n_classes": ds.n_classes, "name": ds.name}


def _plain(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    if isinstance(obj, (tuple, set)):
        return list(obj)
    return repr(obj)


def build_trail(model: Any, data: Any, train: Any, config: dict, records: list, *, seed: int,
                argv: Sequence[str] | None, seconds: float, execution: dict | None = None) -> dict:
    from .. import __version__

    return {
        "scrutiny_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "argv": list(argv) if argv is not None else None,
        "seed": seed, "budget": config.get("budget"),
        "config": {k: v for k, v in config.items() if k != "distributed"},  # recorded as "execution"
        "model": {"path": model.path, "format": model.format, "kind": model.kind, "sha256": model.sha256},
        "data": _data_record(data), "train": _data_record(train),
        "versions": library_versions(),
        "execution": dict(execution) if execution else {"backend": "serial", "scheduler": None, "workers": 1},
        "sections": records, "seconds": round(seconds, 3),
    }


def write_trail(trail: dict, out: str | Path) -> Path:
    path = Path(out) / TRAIL_NAME
    path.write_text(json.dumps(trail, indent=1, default=_plain, allow_nan=False) if _finite(trail) else
                    json.dumps(_nan_to_none(trail), indent=1, default=_plain))
    return path


def _finite(obj: Any) -> bool:
    try:
        json.dumps(obj, default=_plain, allow_nan=False)
        return True
    except ValueError:
        return False


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj


def read_trail(path: str | Path) -> dict:
    """Read ``audit.json`` (a file, or the folder holding it)."""
    from ..exceptions import InvalidParameterError

    p = Path(path)
    p = p / TRAIL_NAME if p.is_dir() else p
    if not p.exists():
        raise InvalidParameterError(f"{str(p)!r} does not exist; give an audit folder or its audit.json.")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise InvalidParameterError(f"{str(p)!r} is not an audit.json ({exc}).") from exc
