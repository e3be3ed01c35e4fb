"""Grad-CAM (Selvaraju et al. 2017), as captum's ``LayerGradCam`` + ``LayerAttribution.interpolate``.

References
----------
.. [1] Selvaraju, Cogswell, Das, Vedantam, Parikh, Batra (2017). Grad-CAM: visual
   explanations from deep networks via gradient-based localization. ICCV.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from .._validation import Interval, Options
from ..exceptions import InvalidParameterError
from ._base import Explainer, RawAttribution
from ._gradient import BATCH_HINT, FEATURE_NAMES_CONSTRAINT, SPACE_HINT, SPACES, gradient
from ._hooks import hooked, torch_module

__all__ = ["GradCAM"]

_MODES = {("bilinear", 1): "linear", ("bilinear", 2): "bilinear", ("bilinear", 3): "trilinear"}


def resolve_layer(module: Any, layer: Any, who: str) -> Any:
    """The hooked submodule: a name (``"conv.3"``; ``""`` is the whole module), a submodule
    of ``module``, or None for the last convolution layer."""
    import torch

    if layer is None:
        convs = [m for m in module.modules() if isinstance(m, torch.nn.modules.conv._ConvNd)]
        if not convs:
            raise InvalidParameterError(
                f"{who}: layer=None picks the last convolution layer, but {type(module).__name__} has none. "
                f"Name a layer: one of {[n for n, _ in module.named_modules()][:20]}."
            )
        return convs[-1]
    if isinstance(layer, str):
        try:
            return module.get_submodule(layer)
        except AttributeError as exc:
            raise InvalidParameterError(
                f"{who}: layer={layer!r} is not a submodule of {type(module).__name__}; available: "
                f"{[n for n, _ in module.named_modules()][:20]}."
            ) from exc
    if isinstance(layer, torch.nn.Module) and any(m is layer for m in module.modules()):
        return layer
    raise InvalidParameterError(
        f"{who}: layer must be None, a submodule name or a submodule of the model; got {type(layer).__name__}. "
        "Pass its name (e.g. 'conv.3'), which survives sklearn.base.clone."
    )


class GradCAM(Explainer):
    """Grad-CAM: the layer's activation maps weighted by their average gradient, upsampled.

    For the activations ``A`` of shape (channels, *spatial) of ``layer``:
    ``L = relu(sum_k alpha_k A_k)`` with ``alpha_k = mean_spatial dy_target / dA_k``, then
    ``L`` is interpolated to the input's spatial size (bilinear, ``align_corners=False``, as
    captum's ``LayerAttribution.interpolate``) and repeated over the input's channels, so
    ``values`` have the input's shape. A layer without spatial dimensions (a linear layer)
    gives one number per sample, repeated over the whole input.

    Parameters
    ----------
    model : torch.nn.Module or TorchModel
        The network.
    layer : str, torch.nn.Module or None, default None
        The layer whose output is weighted: a submodule name (``"conv.3"``), the submodule
        itself, or None for the last convolution layer.
    relu : bool, default True
        Keep only positive evidence (the paper's ReLU; captum's ``relu_attributions``).
    interpolation : {"bilinear", "nearest"}, default "bilinear"
        Upsampling to the input size ("bilinear" is linear / bilinear / trilinear by the
        number of spatial dimensions).
    space : {"auto", "raw", "probability", "log_odds"}, default "auto"
        The differentiated output (``"auto"``: the module's own output, e.g. logits).
    batch_size : int or None, default None
        Largest number of rows sent to ``model.gradient`` at once (memory only).
    feature_names : sequence of str, optional
        One name per input value, recorded on the Explanation.

    Notes
    -----
    ``extras["layer_map"]`` is the map before upsampling, shape (n_samples, *layer_spatial).
    The module is never changed: the hooks are removed after every call.

    References
    ----------
    .. [1] Selvaraju, Cogswell, Das, Vedantam, Parikh, Batra (2017). Grad-CAM: visual
       explanations from deep networks via gradient-based localization. ICCV.

    Examples
    --------
    >>> import torch
    >>> from scrutiny.attribution import GradCAM
    >>> from scrutiny.zoo import make_model
    >>> net = make_model("cnn", (1, 8, 8), 10)
    >>> e = GradCAM(net, layer="conv.3").explain(torch.rand(2, 1, 8, 8))
    >>> e.values.shape, e.extras["layer_map"].shape
    ((2, 1, 8, 8), (2, 4, 4))
    """

    requires: ClassVar[tuple[str, ...]] = ("gradient",)
    _constraints: ClassVar[dict[str, list]] = {
        "layer": [None, "str", "callable"],
        "relu": ["boolean"],
        "interpolation": [Options("bilinear", "nearest")],
        "space": [Options(*SPACES)],
        "batch_size": [Interval(int, 1, None), None],
        "feature_names": FEATURE_NAMES_CONSTRAINT,
    }
    _hints: ClassVar[dict[str, str]] = {"space": SPACE_HINT, "batch_size": BATCH_HINT}

    def __init__(
        self,
        model: Any,
        *,
        layer: Any = None,
        relu: bool = True,
        interpolation: str = "bilinear",
        space: str = "auto",
        batch_size: int | None = None,
        feature_names: Any = None,
    ):
        super().__init__(model)
        torch_module(self.model, type(self).__name__)
        self.layer = layer
        self.relu = relu
        self.interpolation = interpolation
        self.space = space
        self.batch_size = batch_size
        self.feature_names = feature_names

    def _check(self, X: np.ndarray) -> None:
        resolve_layer(torch_module(self.model, type(self).__name__), self.layer, type(self).__name__)

    def _explain(self, X: np.ndarray, target: np.ndarray, rng: Any) -> RawAttribution:
        import torch
        import torch.nn.functional as F

        who = type(self).__name__
        root = torch_module(self.model, who)
        sub = resolve_layer(root, self.layer, who)
        maps: list = []
        inputs: list = []

        def forward_hook(mod: Any, args: Any, out: Any) -> Any:
            if isinstance(out, tuple) or not torch.is_tensor(out) or out.ndim < 2:
                raise InvalidParameterError(
                    f"{who}: the layer {type(mod).__name__} must return one tensor of shape (n, channels, ...); "
                    "choose a convolution or linear layer."
                )
            record: dict = {}
            maps.append(record)
            act = out.detach()

            def grad_hook(g: Any) -> None:
                w = g.mean(dim=tuple(range(2, g.ndim)), keepdim=True) if g.ndim > 2 else g
                record["map"] = (w * act).sum(dim=1, keepdim=True)

            if not inputs or not inputs[-1].requires_grad:
                if out.requires_grad:
                    out.register_hook(grad_hook)
                return None
            # Grad-CAM needs dy/dA only: the layer's output is cut from the graph below it and
            # tied to the input by a zero-cost term, so the backward pass stops at the layer
            # (no convolution backward below it) while model.gradient still finds its input.
            x = inputs[-1]
            cut = act.requires_grad_(True) + x.reshape(-1)[:1].mul(0.0).reshape((1,) * act.ndim)
            cut.register_hook(grad_hook)
            return cut

        def root_pre_hook(mod: Any, args: Any) -> None:
            inputs[:] = [args[0] if isinstance(args, tuple) and args and torch.is_tensor(args[0]) else None]

        def register(handles: list) -> None:
            handles.append(root.register_forward_pre_hook(root_pre_hook))
            handles.append(sub.register_forward_hook(forward_hook))

        with hooked(register):
            gradient(self.model, X, target, self.space, self.batch_size)
        if len(maps) == 0 or any("map" not in m for m in maps):
            raise InvalidParameterError(
                f"{who}: the layer {type(sub).__name__} was not used on the path to the explained output; "
                "choose a layer the output depends on."
            )
        cam = torch.cat([m["map"] for m in maps]).to("cpu", torch.float64)
        if cam.shape[0] != X.shape[0]:
            raise InvalidParameterError(
                f"{who}: the layer {type(sub).__name__} ran {cam.shape[0] // max(1, X.shape[0])} times per "
                "forward pass; choose a layer that is used once."
            )
        if self.relu:
            cam = cam.clamp(min=0)
        layer_map = cam[:, 0]
        spatial_in = X.shape[2:]
        if cam.ndim == 2:
            up = cam.reshape((len(X),) + (1,) * (X.ndim - 1))
        elif cam.ndim - 2 == len(spatial_in):
            mode = "nearest" if self.interpolation == "nearest" else _MODES[(self.interpolation, len(spatial_in))]
            up = F.interpolate(cam, size=tuple(spatial_in), mode=mode)
        else:
            raise InvalidParameterError(
                f"{who}: the layer's output has {cam.ndim - 2} spatial dimension(s) and the input "
                f"{len(spatial_in)}; choose a layer whose maps match the input (a convolution layer)."
            )
        values = np.ascontiguousarray(np.broadcast_to(up.numpy(), X.shape))
        return RawAttribution(values=values, extras={"layer_map": layer_map.numpy()})
