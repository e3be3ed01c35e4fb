"""Where the file-based data sets live.

The real data files (MNIST, Fashion-MNIST, COMPAS, binarised tabular benchmarks) are never
shipped with scrutiny: every loader takes a ``data_dir`` and, when it is ``None``, falls back
to :func:`default_data_dir`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..exceptions import InvalidParameterError

__all__ = ["DATA_DIR_ENV_VAR", "default_data_dir"]

#: Environment variable that overrides the default data directory.
DATA_DIR_ENV_VAR = "SCRUTINY_DATA_DIR"

# src/scrutiny/data/_paths.py -> parents: data, scrutiny, src, <repo root>
_REPO_ROOT = Path(__file__).resolve().parents[3]


def _default_candidates() -> list[Path]:
    return [Path.cwd() / ".." / "shared" / "data", _REPO_ROOT / ".." / "shared" / "data"]


def default_data_dir() -> Path:
    """The directory the file-based loaders read when ``data_dir=None``.

    Resolution order:

    1. the environment variable ``SCRUTINY_DATA_DIR``, if set (it must name a directory);
    2. ``../shared/data`` relative to the current working directory;
    3. ``../shared/data`` relative to the root of the scrutiny checkout.

    Returns
    -------
    pathlib.Path
        An existing directory (resolved to an absolute path).

    Raises
    ------
    FileNotFoundError
        If ``SCRUTINY_DATA_DIR`` names a missing directory, or none of the defaults exists.

    Examples
    --------
    >>> from scrutiny.data import default_data_dir
    >>> default_data_dir()                       # doctest: +SKIP
    PosixPath('/work/shared/data')
    """
    env = os.environ.get(DATA_DIR_ENV_VAR, "").strip()
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(
                f"{DATA_DIR_ENV_VAR} is set to {env!r}, which is not an existing directory. Point it at "
                "the folder that holds mnist/, fashion-mnist/, compas/ and tabular/, or unset it."
            )
        return path.resolve()
    candidates = _default_candidates()
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"No data directory found (tried {tried}). Pass data_dir=... to the loader, or set the "
        f"environment variable {DATA_DIR_ENV_VAR} to the folder that holds the data files."
    )


def _as_dir(data_dir: Any, owner: str) -> Path:
    """Validate ``data_dir`` (None -> :func:`default_data_dir`) and return an existing directory."""
    if data_dir is None:
        return default_data_dir()
    if not isinstance(data_dir, (str, os.PathLike)):
        raise InvalidParameterError(
            f"{owner}: data_dir must be a str, a path or None; got {data_dir!r}. "
            "Pass the folder that holds the data files."
        )
    path = Path(data_dir).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"{owner}: data_dir {str(path)!r} does not exist. Pass the folder that holds the data files "
            f"(or its parent), or data_dir=None to use {DATA_DIR_ENV_VAR} / ../shared/data."
        )
    if not path.is_dir():
        raise InvalidParameterError(
            f"{owner}: data_dir must be a directory; got the file {str(path)!r}. Pass the folder that holds it."
        )
    return path


def _candidate_dirs(data_dir: Any, subfolder: str, owner: str) -> list[Path]:
    """``data_dir`` itself, then ``data_dir/subfolder`` if that is a directory."""
    root = _as_dir(data_dir, owner)
    dirs = [root]
    sub = root / subfolder
    if sub.is_dir():
        dirs.append(sub)
    return dirs
