"""Module hooks shared by DeepLIFT, Guided Backprop and Grad-CAM.

Contract: every hook is registered inside :func:`hooked` and removed when the block exits,
even on error; nothing is stored on the user's module (state lives in closures), so a module
used twice in one forward pass gets two independent records. The modified backward rules
are applied through tensor hooks on a *clone* of a module's input (as captum's
``_register_backward_hook`` does): the clone's gradient receives only what flows through the
module, so in-place activations and inputs shared with other branches are handled.

Input gradients themselves are taken with the adapter's public ``model.gradient``, which
owns eval mode, dtype, device, the channels-last weights and the explained space.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

from ..exceptions import CapabilityError, InvalidParameterError

#: |delta input| below which DeepLIFT falls back to the ordinary gradient (captum's eps)
DEEPLIFT_EPS = 1e-10


def torch_module(model: Any, who: str) -> Any:
    """The ``torch.nn.Module`` behind an adapter, or a CapabilityError naming the fix."""
    module = getattr(model, "module", None)
    try:
        import torch
    except ImportError:  # pragma: no cover - gradient models imply torch
        module = None
    if module is None or not isinstance(module, torch.nn.Module):
        raise CapabilityError(
            f"{who} needs the layers of a torch.nn.Module (it hooks them); got {type(model).__name__}. "
            "Wrap the network with scrutiny.as_model(module), or use IntegratedGradients / KernelSHAP."
        )
    return module


@contextmanager
def hooked(register: Callable[[list], None]) -> Iterator[None]:
    """Run ``register(handles)`` (which appends hook handles) and remove every handle on exit."""
    handles: list = []
    try:
        register(handles)
        yield
    finally:
        for handle in handles:
            handle.remove()


def _first_tensor(value: Any, who: str, module: Any) -> Any:
    if isinstance(value, tuple):
        if len(value) != 1:
            raise InvalidParameterError(
                f"{who}: {type(module).__name__} takes or returns {len(value)} tensors; module rules "
                "apply to single-tensor layers only."
            )
        value = value[0]
    return value


def on_input_gradient(module: Any, rule: Callable[[dict, Any], Any], handles: list, who: str) -> None:
    """Replace the gradient reaching ``module``'s input by ``rule(record, grad_input)``.

    ``record`` holds the module's input ``"x"`` and output ``"out"`` (detached) and the
    gradient at its output ``"grad_out"`` of the same forward call.
    """

    def pre_hook(mod: Any, inputs: Any) -> Any:
        x = _first_tensor(inputs, who, mod)
        record: dict = {"x": x.detach().clone()}
        calls.append(record)
        if not x.requires_grad:
            return None
        clone = x.clone()
        clone.register_hook(lambda g: rule(record, g))
        return (clone,) + tuple(inputs[1:]) if isinstance(inputs, tuple) else clone

    def forward_hook(mod: Any, inputs: Any, out: Any) -> None:
        if not calls:
            return
        record = calls.pop()  # the pre-hook's record of this call; the tensor hooks keep it alive
        out = _first_tensor(out, who, mod)
        record["out"] = out.detach().clone()
        if out.requires_grad:
            out.register_hook(lambda g: record.__setitem__("grad_out", g))

    calls: list = []
    handles.append(module.register_forward_pre_hook(pre_hook))
    handles.append(module.register_forward_hook(forward_hook))


def guided_relu_rule(record: dict, grad_input: Any) -> Any:
    """Guided Backprop: the ReLU's gradient, negative values zeroed (Springenberg et al.)."""
    return grad_input.clamp(min=0)


# --------------------------------------------------------------------------- DeepLIFT rules
# The batch is [inputs; references] (two halves of equal length, row i of each half paired).
# The rules are captum's (captum/attr/_core/deep_lift.py) applied to each pair separately:
# captum's softmax and max-pooling fallbacks read the whole batch (the mean over all rows, the
# gradient of row 0), which would make a row's attribution depend on the other rows; per pair
# they equal captum's call on one input (tests/test_deeplift.py compares row by row).


def _halves(t: Any) -> tuple[Any, Any]:
    return t.chunk(2)


def _twice(t: Any) -> Any:
    import torch

    return torch.cat([t, t])


def _rescale(record: dict, grad_input: Any) -> Any:
    import torch

    x, x_ref = _halves(record["x"])
    o, o_ref = _halves(record["out"])
    # the multiplier on one half (it is the same for a row and its reference), then doubled:
    # half the elementwise work of forming both halves first (benchmarks/local_attribution.py
    # --tasks gradmethods times DeepLIFT against captum)
    delta_in = x - x_ref
    multiplier = (o - o_ref) / delta_in  # inf where delta_in == 0: torch.where takes the gradient there
    return torch.where(_twice(delta_in.abs() < DEEPLIFT_EPS), grad_input, record["grad_out"] * _twice(multiplier))


def rescale_rule(record: dict, grad_input: Any) -> Any:
    """Rescale rule of an elementwise nonlinearity: ``grad_out * delta_out / delta_in``."""
    return _rescale(record, grad_input)


def softmax_rule(record: dict, grad_input: Any) -> Any:
    """Rescale rule of a softmax, centred per (input, reference) pair (captum's normalisation)."""
    unnorm = _rescale(record, grad_input)
    a, b = _halves(unnorm)
    dims = tuple(range(1, a.ndim))
    n = 2 * a[0].numel()
    mean = (a.sum(dim=dims, keepdim=True) + b.sum(dim=dims, keepdim=True)) / n
    return unnorm - _twice(mean)


def maxpool_rule(nd: int) -> Callable[[Any, dict, Any], Any]:
    """Shrikumar et al.'s max-pooling rule as captum implements it, for ``MaxPool{nd}d``."""
    import torch.nn.functional as F

    pool = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[nd]

    def rule(module: Any, record: dict, grad_input: Any) -> Any:
        import torch

        with torch.no_grad():
            x, x_ref = _halves(record["x"])
            o, o_ref = _halves(record["out"])
            delta_in = x - x_ref
            o_max = torch.max(o, o_ref)
            delta_out = torch.cat([o_max - o_ref, o - o_max])
            _, indices = pool(record["x"], module.kernel_size, module.stride, module.padding,
                              module.dilation, module.ceil_mode, True)
            # captum scatters with max_unpool, which overwrites where windows overlap; a
            # scatter-add is the same for disjoint windows and keeps completeness for overlapping ones
            vals = record["grad_out"] * delta_out
            spread = record["x"].new_zeros(record["x"].shape).flatten(2)
            spread.scatter_add_(2, indices.flatten(2), vals.flatten(2))
            spread = spread.view_as(record["x"])
            a, b = _halves(spread)
            fallback = _twice(_halves(grad_input)[0])  # captum: the input row's own gradient
        return torch.where(_twice(delta_in.abs() < DEEPLIFT_EPS), fallback, _twice((a + b) / delta_in))

    return rule


def deeplift_rules() -> dict:
    """``{module type: rule(module, record, grad_input)}``: captum's supported nonlinearities."""
    from torch import nn

    def elementwise(module: Any, record: dict, g: Any) -> Any:
        return rescale_rule(record, g)

    def soft(module: Any, record: dict, g: Any) -> Any:
        return softmax_rule(record, g)

    rules: dict = {t: elementwise for t in (nn.ReLU, nn.ELU, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.Softplus)}
    rules[nn.Softmax] = soft
    for nd, t in ((1, nn.MaxPool1d), (2, nn.MaxPool2d), (3, nn.MaxPool3d)):
        rules[t] = maxpool_rule(nd)
    return rules


def register_deeplift(root: Any, handles: list, who: str) -> int:
    """Hook every supported nonlinearity of ``root`` (exact type match, as captum); returns the count."""
    rules = deeplift_rules()
    count = 0
    for sub in root.modules():
        rule = rules.get(type(sub))
        if rule is None:
            continue
        on_input_gradient(sub, (lambda r, g, m=sub, f=rule: f(m, r, g)), handles, who)
        count += 1
    return count
