"""The loopback Dask cluster of the distributed tests: 2 worker processes, 1 thread each, on 127.0.0.1."""

from __future__ import annotations

import contextlib
import importlib
from typing import Any, Iterator, Sequence


@contextlib.contextmanager
def loopback_client(distributed: Any, modules: Sequence[str]) -> Iterator[Any]:
    """A ``Client`` of a LocalCluster bound to 127.0.0.1 whose workers have imported ``modules``
    (both at once, not one per first task); closed on exit."""
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None)
    c = distributed.Client(cluster)
    try:
        for module in modules:
            c.run(importlib.import_module, module)
        yield c
    finally:
        c.close()
        cluster.close()
