"""Sample-heavy work on one executor interface: ``"serial"``, ``"process"`` or ``"dask"``.

``explain(explainer, X, backend=..., chunk_size=..., store=...)``, ``evaluate_metric(metric,
model, X, attributions, ...)`` and ``attribute(estimator, X_train, y_train, X, ...)`` split the rows
into chunks and give, for any backend, chunk size and number of workers, the same result bit for
bit as the serial call (each row's random stream comes from ``random_state``, never from a
worker). The model and the background or training data reach each worker once, as data (weights
and architecture, skops bytes, import paths: :mod:`._shipping`); finished chunks go to a
:class:`ResultStore`, so a killed job resumes where it stopped. Dask is optional
(``pip install 'scrutiny[dask]'``).
"""

from ._executor import WORKER_MALLOC_ENV, DaskExecutor, Executor, ProcessExecutor, SerialExecutor, make_executor
from ._shipping import pack_estimator, pack_model, unpack_estimator, unpack_model
from ._store import ResultStore, RunStats
from .api import PARTITION_INVARIANT_METRICS, attribute, evaluate_metric, explain, run_tasks

__all__ = ["explain", "evaluate_metric", "attribute", "run_tasks", "ResultStore", "RunStats", "Executor", "SerialExecutor",
           "ProcessExecutor", "DaskExecutor", "make_executor", "pack_model", "unpack_model", "pack_estimator", "unpack_estimator",
           "PARTITION_INVARIANT_METRICS", "WORKER_MALLOC_ENV"]
