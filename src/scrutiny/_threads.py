"""The one thread guard: how many threads numpy's BLAS may use next to torch.

* :func:`blas_limits` caps BLAS at ``n`` threads for a block (``None``: unchanged). The DMM-MEN
  chains run with one thread each, so that two chain processes do not oversubscribe two cores.
* :func:`blas_guard` picks the cap for work that alternates torch forward passes with small
  numpy algebra: one BLAS thread next to a multi-threaded torch model (OpenBLAS workers keep
  spinning after each call and take the cores torch's pool needs), unless the dense algebra is
  large (``dense_flops >= DENSE_BLAS_FLOPS``), where the second BLAS thread pays. Models other
  than torch ones may rely on BLAS themselves and are left alone. The benchmarks that back this
  choice: ``benchmarks/local_attribution.py`` (image LIME) and ``benchmarks/data_attribution.py``
  (exact influence, representer points) with ``--threads``.

Previous limits are always restored on exit; torch's own thread count is never changed.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable

__all__ = ["DENSE_BLAS_FLOPS", "blas_guard", "blas_guarded", "blas_limits"]

#: dense linear algebra (flops) above which numpy's BLAS keeps all its threads next to torch
DENSE_BLAS_FLOPS = 1e10


# threadpoolctl finds the loaded BLAS libraries by scanning the process's shared objects, about
# a millisecond per scan: more than a Grad-CAM or DeepLIFT pass over a batch costs. The controller
# is kept and rebuilt only when a module was imported since (which is how a new BLAS arrives).
_CONTROLLER: dict[str, Any] = {}


def _controller() -> Any:
    import sys

    from threadpoolctl import ThreadpoolController  # a scikit-learn dependency

    n_modules = len(sys.modules)
    if _CONTROLLER.get("n_modules") != n_modules:
        _CONTROLLER["controller"] = ThreadpoolController()
        _CONTROLLER["n_modules"] = n_modules
    return _CONTROLLER["controller"]


def blas_limits(n_threads: int | None) -> Any:
    """A context limiting numpy's BLAS to ``n_threads`` threads (a no-op for ``None``)."""
    if n_threads is None:
        return contextlib.nullcontext()
    return _controller().limit(limits=int(n_threads), user_api="blas")


def _runs_torch(model: Any) -> bool:
    """A torch module, or an adapter around one (duck-typed: this module imports neither)."""
    return hasattr(model, "named_parameters") or hasattr(getattr(model, "module", None), "named_parameters")


def blas_guard(model: Any, dense_flops: float = 0.0) -> Any:
    """A context in which numpy's BLAS runs on one thread while a torch model runs on several
    (see the module docstring); a no-op for non-torch models, for large dense work and when
    torch itself runs on one thread."""
    if not _runs_torch(model) or dense_flops >= DENSE_BLAS_FLOPS:
        return contextlib.nullcontext()
    import torch

    if torch.get_num_threads() < 2:
        return contextlib.nullcontext()
    return blas_limits(1)


def blas_guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run an estimator method inside :func:`blas_guard` of its model (``self.model_`` once
    fitted, else ``self.model``) and its ``self.dense_flops_`` (default 0)."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        model = getattr(self, "model_", None)
        with blas_guard(self.model if model is None else model, getattr(self, "dense_flops_", 0.0)):
            return method(self, *args, **kwargs)

    return wrapper
