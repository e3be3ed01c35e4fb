"""The result store: finished chunks of a long job on disk, so that a killed job resumes.

Layout: ``<root>/<method>-<config hash[:16]>/rows-<start>-<stop>.npz``, one scrutiny result file
(:meth:`scrutiny.explanation.Result.save`: arrays + JSON header, never pickle) per chunk of rows,
plus ``job.json`` recording the full configuration hash. The configuration hash covers everything
that can change a row's result (the explainer's class and parameters, the model's weights, the
target rule, the random stream); the rows themselves are checked per chunk by a SHA-256 of their
inputs and targets stored in the chunk's header, so the same store resumed on other data
recomputes instead of returning stale results. Files are written to a temporary name and renamed,
so a chunk on disk is always complete (a job killed mid-write leaves no partial chunk).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..exceptions import InvalidParameterError
from ..explanation import load_result

__all__ = ["ResultStore", "RunStats", "rows_digest"]

_CHUNK = re.compile(r"^rows-(\d+)-(\d+)\.npz$")


class RunStats(NamedTuple):
    """What the last job on a store did: chunks in the job, loaded from disk, computed now."""

    n_chunks: int
    n_loaded: int
    n_computed: int


def rows_digest(*arrays: Any) -> str:
    """SHA-256 of the rows of a chunk (inputs and targets), to check a stored chunk's identity."""
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


class ResultStore:
    """A directory of finished chunks, keyed by (row range, method, configuration hash).

    Parameters
    ----------
    root : str or path-like
        The directory (created on first write). One store can hold many jobs: each job has its
        own sub-directory named by its method and configuration hash.

    Attributes
    ----------
    last_run : RunStats or None
        Chunks of the last job run with this store object, how many were read back from disk and
        how many were computed.

    Examples
    --------
    >>> from scrutiny.distributed import ResultStore, explain               # doctest: +SKIP
    >>> store = ResultStore("runs/lime-test")                               # doctest: +SKIP
    >>> e = explain(LIME(net, mode="image"), X, store=store)                # doctest: +SKIP
    >>> store.last_run                                                      # doctest: +SKIP
    RunStats(n_chunks=40, n_loaded=31, n_computed=9)
    """

    def __init__(self, root: Any) -> None:
        if isinstance(root, ResultStore):
            root = root.root
        if not isinstance(root, (str, os.PathLike)):
            raise InvalidParameterError(f"store must be a directory path or a ResultStore; got {type(root).__name__}.")
        self.root = Path(root)
        self.last_run: RunStats | None = None

    def __repr__(self) -> str:
        return f"ResultStore({str(self.root)!r})"

    def job_dir(self, method: str, config_hash: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", method)
        return self.root / f"{safe}-{config_hash[:16]}"

    def open_job(self, method: str, config_hash: str, config: dict) -> Path:
        """The job's directory (created), with its ``job.json``; a different job under the same
        16-character prefix (a hash collision) is refused."""
        path = self.job_dir(method, config_hash)
        path.mkdir(parents=True, exist_ok=True)
        meta = path / "job.json"
        if meta.exists():
            recorded = json.loads(meta.read_text()).get("config_hash")
            if recorded != config_hash:
                raise InvalidParameterError(
                    f"store {self.root}: {path.name} holds another job (hash {recorded}); use another directory."
                )
        else:
            _atomic_write_text(meta, json.dumps({"config_hash": config_hash, **config}, indent=1, default=str))
        return path

    @staticmethod
    def chunk_path(job: Path, start: int, stop: int) -> Path:
        return job / f"rows-{start:012d}-{stop:012d}.npz"

    @staticmethod
    def load_chunk(job: Path, start: int, stop: int, digest: str) -> Any | None:
        """The stored result of rows ``[start, stop)`` if present and made from the same rows."""
        path = ResultStore.chunk_path(job, start, stop)
        if not path.exists():
            return None
        try:
            result = load_result(path)
        except Exception:  # a damaged file is recomputed, never trusted
            return None
        if (result.extras or {}).get("_rows_digest") != digest:
            return None
        return result

    @staticmethod
    def save_chunk(job: Path, start: int, stop: int, result: Any) -> None:
        path = ResultStore.chunk_path(job, start, stop)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}.npz")
        result.save(tmp)
        os.replace(tmp, path)

    def chunks(self, method: str, config_hash: str) -> list[tuple[int, int]]:
        """Row ranges stored for a job, sorted."""
        job = self.job_dir(method, config_hash)
        if not job.exists():
            return []
        found = [m for m in (_CHUNK.match(p.name) for p in job.iterdir()) if m]
        return sorted((int(m.group(1)), int(m.group(2))) for m in found)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
