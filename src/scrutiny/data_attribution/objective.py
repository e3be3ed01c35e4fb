"""The training objective of a torch model as a float64 function of (a subset of) its parameters.

:class:`TrainingObjective` is what every Hessian-based attribution method differentiates::

    R(theta) = (1/n) sum_i w_i L(f(x_i; theta), y_i) + (l2 / 2) ||theta_S||^2

where ``theta_S`` are the selected parameters (all, ``"last"`` layer, or a list of names),
the other parameters and buffers are held fixed, ``w_i`` are optional sample weights
(default 1; ``w_i = 0`` removes point ``i`` while keeping the ``1/n`` of the others, which
is exactly the removal that influence functions predict) and ``l2`` is the L2 strength the
model was trained with. All computations run in float64 whatever the module's dtype (the
parameters and buffers are cast, the module itself is not modified), in eval mode, through
``torch.func``:

* per-sample gradients: ``vmap(grad(loss))``;
* Hessian-vector products for many vectors at once: ``vmap`` over forward-over-reverse
  ``jvp(grad(loss))``, over the full training set (``hvp``) or a mini-batch (``batch_hvp``);
* explicit Hessians: layer by layer in closed form when the selection lies in the chain of
  linear layers and elementwise activations that ends the module (all parameters of an MLP,
  or the last layer(s) of any network; for the last layer alone the GLM form
  ``H = (1/n) sum_i A_i (x) f~_i f~_i^T + l2 I`` with ``A_i`` the Hessian of the loss in the
  logits, ``diag(p) - p p^T`` for softmax cross-entropy, and ``f~ = [f, 1]``; see
  :mod:`._chain`), otherwise column by column from HVPs;
* the input gradient of ``s^T grad_theta L(x, y)`` (for the perturbation influence).

:func:`fit_to_optimum` minimises the objective over the selected parameters (L-BFGS, then
Newton) and writes the result back into the module.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np

from .._validation import Interval, check_array, validate_params
from ..exceptions import InvalidParameterError, ModelError, ScrutinyError
from ..models import TorchModel, as_model, require_capability

__all__ = ["TrainingObjective", "resolve_loss"]

LOSSES = ("cross_entropy", "mse")

#: default cap on the rows per vectorised gradient / HVP call. The adapter's ``rows_per_call``
#: sizes prediction chunks by the input size alone (up to 2048 rows), but per-sample gradients
#: and forward-over-reverse HVPs hold ``p`` values per row on top of the activations, so
#: gradient work uses at most 256 rows per call. Chunking never changes a result beyond float
#: round-off, but the training-set attack takes signs of near-zero perturbation influences, so
#: its figures in ``benchmarks/data_attribution.py`` are reproduced with this fixed default.
GRAD_ROWS = 256


def resolve_loss(loss: Any) -> Callable[[Any, Any], Any]:
    """A per-sample loss ``loss(outputs, targets) -> (m,)`` from a name or a callable.

    ``"cross_entropy"``: softmax cross-entropy for ``(m, c >= 2)`` logits and integer
    targets; binary cross-entropy with logits for a single logit ``(m,)`` or ``(m, 1)`` and
    0/1 targets. ``"mse"``: squared error summed over outputs.
    """
    import torch.nn.functional as F

    if callable(loss):
        return loss
    if loss == "cross_entropy":
        def cross_entropy(out: Any, t: Any) -> Any:
            if out.ndim == 1 or out.shape[-1] == 1:
                return F.binary_cross_entropy_with_logits(out.reshape(-1), t.reshape(-1).to(out.dtype),
                                                          reduction="none")
            return F.cross_entropy(out, t.long() if t.is_floating_point() and t.ndim == 1 else t,
                                   reduction="none")
        return cross_entropy
    if loss == "mse":
        def mse(out: Any, t: Any) -> Any:
            out2 = out.reshape(out.shape[0], -1)
            return ((out2 - t.reshape(out2.shape).to(out.dtype)) ** 2).sum(dim=1)
        return mse
    raise InvalidParameterError(
        f"loss must be 'cross_entropy', 'mse' or a callable loss(outputs, targets) returning one loss per "
        f"sample; got {loss!r}. For example lambda out, t: torch.nn.functional.cross_entropy(out, t, "
        "reduction='none')."
    )


class TrainingObjective:
    """``R(theta) = (1/n) sum_i w_i L(f(x_i; theta), y_i) + (l2/2) ||theta_S||^2`` in float64.

    Parameters
    ----------
    model : torch.nn.Module or TorchModel
    loss : {"cross_entropy", "mse"} or callable
        ``loss(outputs, targets) -> tensor of shape (m,)``: per-sample losses (no reduction).
    X : array-like of shape (n, ...)
        Training inputs.
    y : array-like of shape (n, ...)
        Training targets (integer class labels become int64 tensors).
    params : None, "last" or list of str, default None
        Parameters differentiated (all trainable ones, the last linear layer, or names).
    l2 : float, default 0
        L2 strength of the training objective (the ``(l2/2)||theta_S||^2`` term).
    sample_weight : array-like of shape (n,), optional
        Weights ``w_i >= 0`` (default 1). The normaliser stays ``1/n``.
    batch_size : int, optional
        Rows per vectorised call, memory chunking only (default: the adapter's
        ``rows_per_call`` for this sample size, at most ``GRAD_ROWS`` = 256).
    data_names : (str, str), default ("X", "y")
        Names of ``X`` and ``y`` in error messages.

    Attributes
    ----------
    n, p : int
        Number of training points and of selected parameters.
    names : list of str
        Selected parameter names, in the order of the flat vector.
    theta : ndarray of shape (p,)
        The selected parameters at construction (float64).
    """

    #: the parameters checked at construction (scrutiny's one constraint format, see ``_validation``)
    _constraints: ClassVar[dict[str, list]] = {"l2": [Interval(float, 0, None)],
                                               "batch_size": [Interval(int, 1, None), None]}
    _hints: ClassVar[dict[str, str]] = {"l2": "Pass the L2 strength the model was trained with (0 for none)."}

    def __init__(self, model: Any, loss: Any, X: Any, y: Any, *, params: Any = None, l2: float = 0.0,
                 sample_weight: Any = None, batch_size: int | None = None,
                 data_names: tuple[str, str] = ("X", "y")):
        import torch

        if not isinstance(model, TorchModel):
            model = as_model(model)
        require_capability(model, "trainable", "TrainingObjective")
        validate_params("TrainingObjective", {"l2": l2, "batch_size": batch_size}, self._constraints, self._hints)
        self.model = model
        self.module = model.module
        self.loss_fn = resolve_loss(loss)
        self._loss_name = loss if isinstance(loss, str) else None
        self.l2 = float(l2)
        self.names = model.parameter_names(params)
        if not self.names:
            raise InvalidParameterError(f"params={params!r} selects no parameters; select at least one.")
        named = dict(self.module.named_parameters())
        self.shapes = [tuple(named[n].shape) for n in self.names]
        self.numels = [int(math.prod(s)) for s in self.shapes]
        self.p = int(sum(self.numels))
        self.theta = np.concatenate([named[n].detach().to("cpu", torch.float64).reshape(-1).numpy()
                                     for n in self.names])
        fixed = {n: t.detach() for n, t in named.items() if n not in self.names}
        fixed.update(dict(self.module.named_buffers()))
        self._fixed = {n: (t.to(torch.float64) if t.is_floating_point() else t) for n, t in fixed.items()}
        self._X, self._y = self.prepare_data(X, y, *data_names)
        self.n = int(self._X.shape[0])
        # rows per vectorised call, resolved from the sample size itself (never from the adapter's
        # state, which depends on what it was last called with); memory chunking only
        row_size = int(math.prod(self._X.shape[1:]))
        self.batch_size = (int(batch_size) if batch_size is not None
                           else min(int(model.rows_per_call(row_size)), GRAD_ROWS))
        if sample_weight is None:
            w = np.ones(self.n)
        else:
            w = check_array(sample_weight, "sample_weight", ndim=1)
            if w.shape[0] != self.n or (w < 0).any():
                raise InvalidParameterError(
                    f"sample_weight must hold {self.n} non-negative weights (one per training point); got shape "
                    f"{w.shape}{' with negative entries' if (w < 0).any() else ''}."
                )
        self.sample_weight = w
        self._w = torch.as_tensor(w, dtype=torch.float64)
        self._check_loss()

    # ------------------------------------------------------------------ plumbing
    def prepare_inputs(self, X: Any, xname: str = "X") -> Any:
        """Validate ``X`` against the model and convert it to a float64 tensor."""
        import torch

        try:
            Xa = self.model.check_input(X)
        except InvalidParameterError as exc:
            raise InvalidParameterError(f"{xname}: {exc}") from exc
        if self.model.input_shape_ is None:
            self.model.input_shape_ = tuple(Xa.shape[1:])
        return torch.as_tensor(Xa, dtype=torch.float64)

    def prepare_data(self, X: Any, y: Any, xname: str, yname: str) -> tuple[Any, Any]:
        """Validate ``(X, y)`` against the model and convert to float64 / int64 tensors."""
        import torch

        Xt = self.prepare_inputs(X, xname)
        Xa = Xt.numpy()
        ya = np.asarray(y.detach().cpu().numpy() if hasattr(y, "detach") else y)
        if ya.ndim == 0 or ya.shape[0] != Xa.shape[0]:
            raise InvalidParameterError(
                f"{yname} must have one entry per row of {xname} ({Xa.shape[0]}); got shape {ya.shape}. "
                f"Pass the targets of exactly the samples in {xname}."
            )
        if ya.dtype == object or not (np.issubdtype(ya.dtype, np.number) or np.issubdtype(ya.dtype, np.bool_)):
            raise InvalidParameterError(f"{yname} must be numeric (class indices or real targets); got dtype {ya.dtype}.")
        if np.issubdtype(ya.dtype, np.floating) and not np.isfinite(ya).all():
            raise InvalidParameterError(f"{yname} contains NaN or inf.")
        if self._loss_name == "cross_entropy" and np.issubdtype(ya.dtype, np.floating) and np.any(np.mod(ya, 1) != 0):
            bad = ya[np.mod(ya, 1) != 0].ravel()[0]
            raise InvalidParameterError(
                f"{yname} must hold integer class labels for loss='cross_entropy'; got non-integer values "
                f"(e.g. {bad!r}), which cross-entropy would silently floor. Pass class indices (0, 1, ...) or "
                "use loss='mse' for real-valued targets."
            )
        if np.issubdtype(ya.dtype, np.integer) or np.issubdtype(ya.dtype, np.bool_):
            yt = torch.as_tensor(ya.astype(np.int64))
        else:
            yt = torch.as_tensor(ya, dtype=torch.float64)
        return Xt, yt

    @contextmanager
    def _eval(self) -> Iterator[None]:
        was = self.module.training
        self.module.eval()
        try:
            yield
        finally:
            self.module.train(was)

    def _theta_t(self, theta: Any = None) -> Any:
        import torch

        return torch.as_tensor(self.theta if theta is None else np.asarray(theta, dtype=np.float64),
                               dtype=torch.float64)

    def _unflatten(self, theta_t: Any) -> dict[str, Any]:
        parts = theta_t.split(self.numels)
        return {n: part.reshape(s) for n, part, s in zip(self.names, parts, self.shapes)}

    def forward(self, theta_t: Any, x: Any) -> Any:
        """Module outputs with the selected parameters set to ``theta_t`` (float64)."""
        from torch.func import functional_call

        try:
            return functional_call(self.module, (self._unflatten(theta_t), self._fixed), (x,))
        except ScrutinyError:
            raise
        except Exception as exc:  # the model raised inside a fit: wrapped like predict's
            raise ModelError(
                f"The wrapped module raised {type(exc).__name__} in a forward pass of the training objective: {exc}"
            ) from exc

    def _losses(self, theta_t: Any, x: Any, t: Any) -> Any:
        return self.loss_fn(self.forward(theta_t, x), t)

    def _single(self, theta_t: Any, x: Any, t: Any) -> Any:
        return self._losses(theta_t, x[None], t[None]).sum()

    def _check_loss(self) -> None:
        import torch

        m = min(2, self.n)
        try:
            with self._eval(), torch.no_grad():
                out = self._losses(self._theta_t(), self._X[:m], self._y[:m])
        except Exception as exc:
            raise ModelError(
                f"Evaluating the loss on the first training rows failed ({type(exc).__name__}: {exc}). The loss "
                "is called as loss(model(X_batch), y_batch) with float64 outputs; check that the targets fit it "
                "(integer class indices for cross-entropy)."
            ) from exc
        if not hasattr(out, "shape") or tuple(out.shape) != (m,):
            raise InvalidParameterError(
                f"loss must return one loss per sample, a tensor of shape ({m},) for a batch of {m}; got "
                f"{tuple(getattr(out, 'shape', ()))}. Use reduction='none' (e.g. "
                "torch.nn.functional.cross_entropy(out, t, reduction='none'))."
            )

    def _batches(self, n: int, size: int | None = None) -> Iterator[slice]:
        size = size or self.batch_size
        for start in range(0, n, size):
            yield slice(start, min(start + size, n))

    # ------------------------------------------------------------------ values and gradients
    def loss_values(self, X: Any = None, y: Any = None, theta: Any = None, *,
                    names: tuple[str, str] = ("X", "y")) -> np.ndarray:
        """Per-sample losses ``L(f(x_i; theta), y_i)`` (training set by default), shape (m,)."""
        import torch

        Xt, yt = (self._X, self._y) if X is None else self.prepare_data(X, y, *names)
        th = self._theta_t(theta)
        out = []
        with self._eval(), torch.no_grad():
            for sl in self._batches(Xt.shape[0]):
                out.append(self._losses(th, Xt[sl], yt[sl]).numpy())
        return np.concatenate(out)

    def outputs(self, X: Any = None, theta: Any = None, *, name: str = "X") -> np.ndarray:
        """Module outputs ``f(x_i; theta)`` in float64 (training set by default), shape (m, ...)."""
        import torch

        Xt = self._X if X is None else self.prepare_inputs(X, name)
        th = self._theta_t(theta)
        out = []
        with self._eval(), torch.no_grad():
            for sl in self._batches(Xt.shape[0]):
                out.append(self.forward(th, Xt[sl]).numpy())
        return np.concatenate(out)

    def value_and_gradient(self, theta: Any = None) -> tuple[float, np.ndarray]:
        """``R(theta)`` and ``grad R(theta)`` (shape (p,)), L2 term included."""
        import torch

        th = self._theta_t(theta).clone().requires_grad_(True)
        total, g = 0.0, torch.zeros(self.p, dtype=torch.float64)
        with self._eval(), torch.enable_grad():
            for sl in self._batches(self.n):
                val = (self._w[sl] * self._losses(th, self._X[sl], self._y[sl])).sum()
                (gb,) = torch.autograd.grad(val, th)
                total += float(val.detach())
                g += gb
        th_np = th.detach().numpy()
        value = total / self.n + 0.5 * self.l2 * float(th_np @ th_np)
        return value, g.numpy() / self.n + self.l2 * th_np

    def gradient(self, theta: Any = None) -> np.ndarray:
        """``grad R(theta)``, shape (p,)."""
        return self.value_and_gradient(theta)[1]

    def per_sample_grads(self, X: Any = None, y: Any = None, theta: Any = None, *,
                         names: tuple[str, str] = ("X", "y")) -> np.ndarray:
        """Gradients ``grad_theta L(f(x_i; theta), y_i)`` (no weight, no L2 term), shape (m, p).

        ``X, y`` default to the training set; ``names`` are used in error messages."""
        from torch.func import grad, vmap

        Xt, yt = (self._X, self._y) if X is None else self.prepare_data(X, y, *names)
        th = self._theta_t(theta)
        fn = vmap(grad(self._single), in_dims=(None, 0, 0))
        out = np.empty((Xt.shape[0], self.p))
        with self._eval():
            for sl in self._batches(Xt.shape[0]):
                out[sl] = fn(th, Xt[sl], yt[sl]).detach().numpy()
        if not np.isfinite(out).all():
            raise ModelError("Per-sample gradients contain NaN or inf; check the model and the loss for overflow.")
        return out

    # ------------------------------------------------------------------ Hessian products
    def _hvp_rows(self, V: Any, th: Any, x: Any, t: Any, w: Any, col_chunk: int) -> Any:
        """``sum_i w_i Hess(L_i) @ V`` over the given rows, for V of shape (p, k)."""
        import torch
        from torch.func import grad, jvp, vmap

        def weighted(theta_t: Any) -> Any:
            return (w * self._losses(theta_t, x, t)).sum()

        g = grad(weighted)

        def one(v: Any) -> Any:
            return jvp(g, (th,), (v,))[1]

        cols = []
        for start in range(0, V.shape[1], col_chunk):
            cols.append(vmap(one)(V[:, start:start + col_chunk].T.contiguous()).T)
        return torch.cat(cols, dim=1)

    def _col_chunk(self, rows: int) -> int:
        """Columns per vmapped HVP call (bounds the memory of the batched forward-over-reverse pass)."""
        return max(1, min(64, 1_000_000 // max(1, rows * 16)))

    def hvp(self, V: Any, theta: Any = None) -> np.ndarray:
        """``H @ V`` with ``H`` the Hessian of ``R`` (L2 term included) over the full training set.

        Parameters
        ----------
        V : ndarray of shape (p,) or (p, k)

        Returns
        -------
        ndarray like V
        """
        return self._hvp_impl(V, theta, None)

    def batch_hvp(self, V: Any, indices: Any, theta: Any = None) -> np.ndarray:
        """``H_B @ V`` with ``H_B`` the Hessian of ``(1/|B|) sum_{i in B} w_i L_i + (l2/2)||theta||^2``."""
        return self._hvp_impl(V, theta, np.asarray(indices))

    def _hvp_impl(self, V: Any, theta: Any, indices: np.ndarray | None) -> np.ndarray:
        import torch

        V = np.asarray(V, dtype=np.float64)
        vector = V.ndim == 1
        Vt = torch.as_tensor(V[:, None] if vector else V, dtype=torch.float64)
        if Vt.shape[0] != self.p:
            raise InvalidParameterError(f"V must have {self.p} rows (one per selected parameter); got {tuple(V.shape)}.")
        th = self._theta_t(theta)
        acc = torch.zeros_like(Vt)
        rows = np.arange(self.n) if indices is None else indices
        denom = self.n if indices is None else len(indices)
        chunk = self._col_chunk(min(self.batch_size, len(rows)))
        with self._eval():
            for sl in self._batches(len(rows)):
                idx = rows[sl]
                if indices is None:
                    x, t, w = self._X[sl], self._y[sl], self._w[sl]
                else:
                    it = torch.as_tensor(idx)
                    x, t, w = self._X[it], self._y[it], self._w[it]
                acc += self._hvp_rows(Vt, th, x, t, w, chunk).detach()
        out = acc.numpy() / denom + self.l2 * Vt.numpy()
        return out[:, 0] if vector else out

    # ------------------------------------------------------------------ explicit Hessian
    def chain(self, theta: Any = None) -> Any:
        """The chain of linear layers and elementwise maps that ends the module and holds every
        selected parameter (:class:`~scrutiny.data_attribution._chain.Chain`, recorded on the
        training rows), or None if the selection is not such a chain (e.g. convolution weights)."""
        import torch

        from ._chain import ChainRecorder

        th = self._theta_t(theta)
        with self._eval(), torch.no_grad():
            return ChainRecorder(self.module, self.names).record(
                lambda x: self.forward(th, x), [self._X[sl] for sl in self._batches(self.n)])

    def output_derivatives(self, Z: np.ndarray, y: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Gradients (m, c) and Hessians (m, c, c) of the per-sample loss in the model outputs."""
        import torch
        from torch.func import grad, hessian, vmap

        yt = self._y if y is None else y
        Zt = torch.as_tensor(Z, dtype=torch.float64)

        def single(z: Any, t: Any) -> Any:
            return self.loss_fn(z[None], t[None]).sum()

        gs, hs = [], []
        for sl in self._batches(Zt.shape[0], 4096):
            gs.append(vmap(grad(single))(Zt[sl], yt[sl]).reshape(-1, Zt.shape[1]).numpy())
            hs.append(vmap(hessian(single))(Zt[sl], yt[sl]).reshape(-1, Zt.shape[1], Zt.shape[1]).numpy())
        return np.concatenate(gs), np.concatenate(hs)

    def closed_form_hessian(self, theta: Any = None) -> np.ndarray | None:
        """The exact Hessian of ``R`` layer by layer when the selected parameters belong to a chain of
        linear layers and elementwise maps ending the module (an MLP, or the head of a network with
        the layers before it held fixed; see :mod:`scrutiny.data_attribution._chain`); for the last
        layer alone this is the GLM form ``(1/n) sum_i w_i A_i (x) f~_i f~_i^T + l2 I``. None if the
        selection is not such a chain."""
        from ._chain import chain_hessian

        ch = self.chain(theta)
        if ch is None:
            return None
        perm = ch.parameter_index(self.names)
        if perm is None:
            return None
        g, A = self.output_derivatives(ch.outputs)
        T = chain_hessian(ch, g, A, self.sample_weight / self.n)
        H = T if np.array_equal(perm, np.arange(T.shape[0])) else T[np.ix_(perm, perm)]
        del T
        H[np.diag_indices_from(H)] += self.l2  # H is exactly symmetric: chain_hessian mirrors its blocks
        if len(ch.layers) > 1:
            # the chain was inferred from the recorded values; one Hessian-vector product through the
            # module confirms that gradients flow along it (e.g. no detach() between layers)
            v = np.random.default_rng(0).standard_normal(self.p)
            ref = self.hvp(v, theta)
            if np.linalg.norm(H @ v - ref) > 1e-7 * max(np.linalg.norm(ref), 1e-300):
                return None
        return H

    def hessian(self, method: str = "auto", theta: Any = None) -> tuple[np.ndarray, str]:
        """The explicit ``p x p`` Hessian of ``R``.

        Parameters
        ----------
        method : {"auto", "closed_form", "autograd"}
            ``"closed_form"`` needs a selection inside the chain of linear layers and elementwise
            activations that ends the module (an MLP, or the last layer(s) of any network;
            layer-wise form, :meth:`closed_form_hessian`), fast;
            ``"autograd"`` applies :meth:`hvp` to the identity, column block by block;
            ``"auto"`` uses the closed form when it applies.

        Returns
        -------
        H : ndarray of shape (p, p)
        method : str
            The method used.
        """
        if method in ("auto", "closed_form"):
            H = self.closed_form_hessian(theta)
            if H is not None:
                return H, "closed_form"
            if method == "closed_form":
                raise InvalidParameterError(
                    "hessian='closed_form' needs parameters of linear layers in the chain of torch.nn.Linear "
                    "layers and elementwise activation modules that produces the model's output (all parameters "
                    "of an MLP, or params='last'); use hessian='autograd' otherwise."
                )
        elif method != "autograd":
            raise InvalidParameterError(f"method must be 'auto', 'closed_form' or 'autograd'; got {method!r}.")
        H = np.empty((self.p, self.p))
        block = 256
        for s in range(0, self.p, block):
            E = np.zeros((self.p, min(block, self.p - s)))
            E[np.arange(s, s + E.shape[1]), np.arange(E.shape[1])] = 1.0
            H[:, s:s + E.shape[1]] = self.hvp(E, theta)
        return 0.5 * (H + H.T), "autograd"

    # ------------------------------------------------------------------ perturbation
    def input_gradients(self, S: np.ndarray, X: Any, y: Any, theta: Any = None, *,
                        names: tuple[str, str] = ("X", "y")) -> np.ndarray:
        """``grad_x [ s^T grad_theta L(f(x; theta), y) ]`` for every column ``s`` of ``S`` and every
        sample ``(x, y)``.

        Parameters
        ----------
        S : ndarray of shape (p, k)
        X, y : inputs (m, ...) and targets (m, ...)

        Returns
        -------
        ndarray of shape (k, m, *input_shape)
        """
        import torch
        from torch.func import grad, vmap

        Xt, yt = self.prepare_data(X, y, *names)
        th = self._theta_t(theta)
        St = torch.as_tensor(np.asarray(S, dtype=np.float64).reshape(self.p, -1))

        def dot(x: Any, t: Any, s: Any) -> Any:
            return (grad(self._single)(th, x, t) * s).sum()

        fn = vmap(grad(dot), in_dims=(0, 0, None))
        out = np.empty((St.shape[1], Xt.shape[0], *Xt.shape[1:]))
        with self._eval():
            for j in range(St.shape[1]):
                for sl in self._batches(Xt.shape[0]):
                    out[j, sl] = fn(Xt[sl], yt[sl], St[:, j]).detach().numpy()
        return out

    # ------------------------------------------------------------------ writing back
    def set_parameters(self, theta: np.ndarray) -> None:
        """Copy ``theta`` into the module's selected parameters (in the module's dtype) and make it the
        objective's current point."""
        import torch

        theta = np.asarray(theta, dtype=np.float64).reshape(self.p)
        named = dict(self.module.named_parameters())
        with torch.no_grad():
            for n, part in self._unflatten(torch.as_tensor(theta)).items():
                named[n].copy_(part.to(named[n].dtype))
        self.theta = theta.copy()
