"""The torch adapter: predictions, input gradients, features and per-sample parameter gradients.

torch is imported inside the methods, so importing :mod:`scrutiny.models` never imports it.
"""

from __future__ import annotations

import itertools
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .._validation import check_target
from ..exceptions import CapabilityError, InvalidParameterError, ModelError
from ._adapter import ModelAdapter
from ._convert import PROBA_EPS, auto_batch_size

__all__ = ["TorchModel", "SPACES"]

#: The spaces :meth:`TorchModel.gradient` differentiates in.
SPACES = ("raw", "probability", "log_odds")


class TorchModel(ModelAdapter):
    """Wrap a ``torch.nn.Module``.

    Parameters
    ----------
    module : torch.nn.Module
        Takes a float tensor of shape (m, ...) and returns (m,) or (m, n_outputs).
    output : {"logit", "probability", "regression"}, default "logit"
        What the module returns.
    batch_size : int or None, default None
        Rows per call. None: chosen per call from the sample size, about 2**16 input values
        per call (a power of two from 256 to 2048: 2048 rows of 30 tabular features, 1024 8x8
        images, 256 28x28 images; see :meth:`rows_per_call`). Never changed by a call.
    features : str, callable or None
        How to get penultimate-layer features: the name of a submodule whose *output* is the
        feature vector (``"fc1"``, ``"body.relu2"``), a callable ``f(module, x) -> tensor``,
        or None: ``module.features(x)`` if the module has such a method, else the *input* of
        the module's last ``torch.nn.Linear`` layer.
    device : str, default "cpu"
    dtype : torch dtype or None, default None
        The dtype inputs are fed in. None follows the module, call by call: the dtype of its
        first floating parameter (or buffer), so float64, float16 and bfloat16 modules are
        explained with defaults; float32 for a module without floating parameters. Outputs and gradients
        always come back as float64 numpy arrays.
    memory_format : {"auto", "channels_last", "contiguous"}, default "auto"
        Layout of the 4-D (convolution) weights during predictions and input gradients.
        ``"channels_last"`` runs the module on channels-last copies of those weights
        (``torch.func.functional_call``; the module itself is never changed, so later edits
        of its weights are always seen): on CPU, PyTorch's oneDNN convolutions are faster in
        that layout (benchmarks/local_attribution.py times captum with and without a
        channels-last model beside ours), and the outputs agree with the contiguous run to
        float32 round-off. ``"auto"`` does this on CPU when the
        module has a ``Conv2d`` layer.

    Notes
    -----
    Every call runs the module in eval mode under ``torch.inference_mode`` (predictions) or
    with gradients enabled only where needed, and restores the module's train/eval flag
    afterwards. Per-sample gradients are computed by batching, which is exact as long as
    samples do not interact in eval mode (true of every standard layer, batch norm included).
    """

    def __init__(
        self,
        module: Any,
        output: str = "logit",
        batch_size: int | None = None,
        features: str | Callable | None = None,
        device: str = "cpu",
        dtype: Any = None,
        memory_format: str = "auto",
    ):
        import torch

        if not isinstance(module, torch.nn.Module):
            raise InvalidParameterError(f"module must be a torch.nn.Module; got {type(module).__name__}.")
        self._init_common(output, batch_size)
        if output == "decision":
            raise InvalidParameterError("output='decision' is for scikit-learn models; use 'logit' for torch.")
        self.module = module
        self.device = torch.device(device)
        on_meta = [n for n, t in [*module.named_parameters(), *module.named_buffers()] if t.is_meta]
        if self.device.type == "meta" or on_meta:
            where = f"parameter {on_meta[0]!r} is" if on_meta else "device='meta' is"
            raise InvalidParameterError(
                f"{type(module).__name__}: {where} on the meta device, which holds shapes but no values, so "
                "nothing can be computed. Materialise the module first (module.to_empty(device='cpu') then load "
                "its weights) and pass device='cpu' or a real accelerator."
            )
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise InvalidParameterError(
                f"dtype must be a floating torch dtype or None; got {dtype!r}. None follows the "
                "module's parameters (e.g. torch.float64 for module.double())."
            )
        self._dtype = dtype
        self.features_spec = features
        if features is not None and not (isinstance(features, str) or callable(features)):
            raise InvalidParameterError(
                f"features must be a layer name, a callable f(module, x) or None; got {type(features).__name__}."
            )
        if isinstance(features, str):
            try:
                module.get_submodule(features)
            except AttributeError as exc:
                names = [n for n, _ in module.named_modules() if n][:20]
                raise InvalidParameterError(
                    f"features={features!r} is not a submodule of {type(module).__name__}; "
                    f"available: {names}."
                ) from exc
        if memory_format not in ("auto", "channels_last", "contiguous"):
            raise InvalidParameterError(
                f"memory_format must be 'auto', 'channels_last' or 'contiguous'; got {memory_format!r}."
            )
        self.memory_format = memory_format
        self._has_conv2d = any(isinstance(m, torch.nn.Conv2d) for m in module.modules())
        self.capabilities = frozenset({"predict", "gradient", "features", "trainable"})

    # -- helpers ------------------------------------------------------------------------
    @property
    def dtype(self) -> Any:
        """The torch dtype inputs are fed in: ``dtype=`` if given, else the module's parameter
        dtype, read at every call (a module converted after wrapping is followed)."""
        return _module_dtype(self.module) if self._dtype is None else self._dtype

    @property
    def input_dtype(self) -> Any:  # type: ignore[override]
        """The numpy dtype of :attr:`dtype` (float32 for bfloat16, which numpy lacks: such
        rows are converted on the way in)."""
        return _NUMPY_DTYPES.get(str(self.dtype), np.float32)

    def rows_per_call(self, row_size: int) -> int:
        """Rows sent to the module per call for samples of ``row_size`` values: ``batch_size``
        if given, else :func:`~scrutiny.models.auto_batch_size` of the row size."""
        return auto_batch_size(row_size) if self.batch_size is None else int(self.batch_size)

    @contextmanager
    def _eval(self) -> Iterator[None]:
        modes = [(m, m.training) for m in self.module.modules()]  # restored layer by layer (mixed modes)
        self.module.eval()
        try:
            yield
        finally:
            for m, training in modes:
                m.training = training

    def _tensor(self, X: np.ndarray, requires_grad: bool = False) -> Any:
        import torch

        if isinstance(X, np.ndarray) and not X.flags.writeable:
            X = X.copy()  # torch would share the read-only memory (and warn)
        t = torch.as_tensor(X, dtype=self.dtype, device=self.device)
        if requires_grad:
            t = t.clone().requires_grad_(True)
        return t

    def _transform(self, raw: Any, space: str) -> Any:
        """Torch version of the output conversions (for gradients in a converted space)."""
        import torch

        if raw.ndim == 1:
            raw = raw[:, None]
        if space not in SPACES:
            raise InvalidParameterError(
                f"space must be 'raw', 'probability' or 'log_odds'; got {space!r}. 'raw' differentiates "
                "the module's own output (the logit of a logit model)."
            )
        if space == "raw" or space == self.output:
            return raw
        if self.output == "regression":
            self._require_classifier(f"space={space!r}")
        if space == "probability":
            if raw.shape[1] == 1:
                p = torch.sigmoid(raw)
                return torch.cat([1 - p, p], dim=1)
            return torch.softmax(raw, dim=1)
        # log_odds
        if self.output == "probability":
            p = raw.clamp(PROBA_EPS, 1 - PROBA_EPS)
            return torch.log(p) - torch.log1p(-p)
        if raw.shape[1] == 1:
            return torch.cat([-raw, raw], dim=1)
        cols = []
        for c in range(raw.shape[1]):
            others = torch.cat([raw[:, :c], raw[:, c + 1 :]], dim=1)
            cols.append(raw[:, c] - torch.logsumexp(others, dim=1))
        return torch.stack(cols, dim=1)

    def predict(self, X: Any) -> np.ndarray:
        """Raw module outputs, shape (n_samples, n_outputs), float64 (eval mode, no autograd)."""
        import torch

        with self._eval(), torch.inference_mode():  # once per call, not once per chunk
            return super().predict(X)

    def _channels_last_weights(self) -> dict[str, Any] | None:
        """Channels-last copies of the module's 4-D parameters, or None to run the module as is."""
        import torch

        if self.memory_format == "contiguous":
            return None
        if self.memory_format == "auto" and (self.device.type != "cpu" or not self._has_conv2d):
            return None
        weights = {k: v.to(memory_format=torch.channels_last) for k, v in self.module.named_parameters() if v.ndim == 4}
        return weights or None

    def _forward(self, x: Any) -> Any:
        """The module's output for ``x`` (with channels-last convolution weights when enabled)."""
        weights = self._channels_last_weights()
        if weights is None:
            return self.module(x)
        from torch.func import functional_call

        return functional_call(self.module, weights, (x,), strict=False)

    def _predict_chunk(self, X: np.ndarray) -> Any:
        import torch

        out = self._forward(self._tensor(X))
        return out.detach().to("cpu", torch.float64).numpy()

    # -- gradients -----------------------------------------------------------------------
    def gradient(self, X: Any, target: Any, space: str = "raw") -> np.ndarray:
        """Gradient of one output per sample with respect to the input.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
        target : int or array-like of shape (n_samples,)
            Output index to differentiate for each sample.
        space : {"raw", "probability", "log_odds"}, default "raw"
            Differentiate the raw output (the logit of a logit model) or a converted one
            (see :mod:`scrutiny.models._convert` for the conversions).

        Returns
        -------
        ndarray of the same shape as X, float64
        """
        import torch

        X = self.check_input(X)
        if self.n_outputs_ is None:
            self.predict(X[:1])
        n_out = self.n_outputs_ if space == "raw" else (2 if self.n_outputs_ == 1 else self.n_outputs_)
        target = check_target(target, X.shape[0], n_out)
        grads = np.empty_like(X, dtype=np.float64)
        with self._eval():
            for sl in self._batches(X):
                x = self._tensor(X[sl], requires_grad=True)
                with torch.enable_grad():
                    try:
                        out = self._transform(self._forward(x), space)
                    except (InvalidParameterError, CapabilityError):
                        raise
                    except Exception as exc:
                        raise ModelError(
                            f"The wrapped module raised {type(exc).__name__} in the forward pass for "
                            f"rows {sl.start}..{sl.stop - 1}: {exc}"
                        ) from exc
                    idx = torch.as_tensor(target[sl], device=out.device)
                    selected = out.gather(1, idx[:, None]).sum()
                    g = None
                    if selected.requires_grad:
                        (g,) = torch.autograd.grad(selected, x, allow_unused=True)
                    if g is None:
                        raise CapabilityError(
                            f"{type(self.module).__name__}'s output has no gradient path to its input (an argmax, "
                            "a rounding, a detach or a constant output), so gradient methods cannot explain it. "
                            "Use a perturbation method (KernelSHAP, LIME, Occlusion) or return the scores "
                            "before the non-differentiable step."
                        )
                grads[sl] = g.detach().to("cpu", torch.float64).numpy()
        if not np.isfinite(grads).all():
            raise ModelError("The model's input gradient contains NaN or inf; check the model's numerics.")
        return grads

    # -- features ------------------------------------------------------------------------
    def last_linear(self) -> tuple[str, Any]:
        """Name and module of the last ``torch.nn.Linear`` layer (registration order)."""
        import torch

        found = [(n, m) for n, m in self.module.named_modules() if isinstance(m, torch.nn.Linear)]
        if not found:
            raise CapabilityError(
                f"{type(self.module).__name__} has no torch.nn.Linear layer, so its penultimate "
                "features are not defined; pass features='layer_name' or a callable to as_model."
            )
        return found[-1]

    def _features_tensor(self, x: Any) -> Any:
        import torch

        spec = self.features_spec
        if callable(spec):
            return spec(self.module, x)
        if spec is None and callable(getattr(self.module, "features", None)) and not isinstance(
            getattr(self.module, "features"), torch.nn.Module
        ):
            return self.module.features(x)
        captured: dict[str, Any] = {}
        if isinstance(spec, str):
            layer = self.module.get_submodule(spec)
            handle = layer.register_forward_hook(lambda m, inp, out: captured.__setitem__("f", out))
        else:
            _, layer = self.last_linear()
            handle = layer.register_forward_pre_hook(lambda m, inp: captured.__setitem__("f", inp[0]))
        try:
            self.module(x)
        finally:
            handle.remove()
        return captured["f"]

    def features(self, X: Any) -> np.ndarray:
        """Penultimate-layer features (see the ``features`` parameter), shape (n_samples, n_features)."""
        import torch

        X = self.check_input(X)
        chunks = []
        with self._eval(), torch.inference_mode():
            for sl in self._batches(X):
                try:
                    f = self._features_tensor(self._tensor(X[sl]))
                    chunks.append(f.reshape(f.shape[0], -1).detach().to("cpu", torch.float64).numpy())
                except (InvalidParameterError, CapabilityError):
                    raise
                except Exception as exc:  # the module (or the features callable) raised: wrapped like predict's
                    raise ModelError(
                        f"The wrapped module raised {type(exc).__name__} while computing features for rows "
                        f"{sl.start}..{sl.stop - 1}: {exc}"
                    ) from exc
        out = np.concatenate(chunks, axis=0)
        if not np.isfinite(out).all():
            raise ModelError("The model's features contain NaN or inf; check the model's numerics.")
        return out

    # -- per-sample parameter gradients ------------------------------------------------------
    def parameter_names(self, params: Sequence[str] | str | None = None) -> list[str]:
        """Resolve a parameter selection to a list of names.

        ``None`` gives every parameter that requires grad; ``"last"`` the weight and bias of
        the last linear layer; a list of names is checked against the module.
        """
        named = dict(self.module.named_parameters())
        if params is None:
            return [n for n, p in named.items() if p.requires_grad]
        if isinstance(params, str) and params == "last":
            name, layer = self.last_linear()
            prefix = f"{name}." if name else ""
            return [prefix + n for n, _ in layer.named_parameters()]
        if isinstance(params, str):
            params = [params]
        missing = [p for p in params if p not in named]
        if missing:
            raise InvalidParameterError(
                f"params {missing} are not parameters of {type(self.module).__name__}; "
                f"available: {list(named)[:20]}."
            )
        return list(params)

    def per_sample_grads(
        self,
        X: Any,
        y: Any,
        loss: Callable[[Any, Any], Any],
        params: Sequence[str] | str | None = None,
    ) -> np.ndarray:
        """Deprecated: gradient of each sample's loss with respect to the selected parameters.

        .. deprecated::
            The library's one implementation of per-sample loss gradients is
            ``scrutiny.data_attribution.TrainingObjective(model, loss, X, y, params=...)
            .per_sample_grads()`` (float64 on the flat parameter vector, shared with the Hessian
            products of influence functions). This method is kept one release and then removed.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
        y : array-like of shape (n_samples, ...)
            Targets passed to ``loss``; integer arrays become int64 tensors.
        loss : callable
            ``loss(outputs, targets) -> tensor of shape (m,)`` of per-sample losses, e.g.
            ``lambda out, t: torch.nn.functional.cross_entropy(out, t, reduction="none")``.
        params : None, "last" or list of str
            See :meth:`parameter_names`.

        Returns
        -------
        ndarray of shape (n_samples, n_params), float64
            Flattened in the order of :meth:`parameter_names`.
        """
        import warnings

        import torch
        from torch.func import functional_call, grad, vmap

        warnings.warn(
            "TorchModel.per_sample_grads is deprecated and will be removed in the next release; use "
            "scrutiny.data_attribution.TrainingObjective(model, loss, X, y, params=...).per_sample_grads().",
            DeprecationWarning,
            stacklevel=2,
        )
        X = self.check_input(X)
        y = np.asarray(y)
        if y.shape[0] != X.shape[0]:
            raise InvalidParameterError(
                f"y must have one entry per sample of X ({X.shape[0]}); got shape {y.shape}."
            )
        names = self.parameter_names(params)
        named = dict(self.module.named_parameters())
        named.update(dict(self.module.named_buffers()))
        chosen = {n: named[n].detach() for n in names}
        fixed = {n: t.detach() for n, t in named.items() if n not in chosen}

        def sample_loss(p: dict, x: Any, t: Any) -> Any:
            out = functional_call(self.module, (p, fixed), (x[None],))
            value = loss(out, t[None])
            return value.reshape(()) if value.numel() == 1 else value.sum()

        per_sample = vmap(grad(sample_loss), in_dims=(None, 0, 0))
        rows = []
        y_dtype = torch.int64 if np.issubdtype(y.dtype, np.integer) else self.dtype
        with self._eval():
            for sl in self._batches(X):
                x = self._tensor(X[sl])
                t = torch.as_tensor(y[sl], dtype=y_dtype, device=self.device)
                g = per_sample(chosen, x, t)
                flat = torch.cat([g[n].reshape(g[n].shape[0], -1) for n in names], dim=1)
                rows.append(flat.detach().to("cpu", torch.float64).numpy())
        return np.concatenate(rows, axis=0)


_NUMPY_DTYPES = {"torch.float64": np.float64, "torch.float32": np.float32, "torch.float16": np.float16}


def _module_dtype(module: Any) -> Any:
    """The dtype of the module's first floating parameter or buffer (float32 if none)."""
    import torch

    for t in itertools.chain(module.parameters(), module.buffers()):
        if t.is_floating_point():
            return t.dtype
    return torch.float32
