"""DeepLIFT with the rescale rule (Shrikumar et al. 2017), as captum's ``DeepLift``.

References
----------
.. [1] Shrikumar, Greenside, Kundaje (2017). Learning important features through propagating
   activation differences. ICML.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any, ClassVar

import numpy as np

from .._validation import Interval, Options
from ..exceptions import ScrutinyWarning
from ._base import Explainer, RawAttribution
from ._gradient import BASELINE_CONSTRAINT, BATCH_HINT, FEATURE_NAMES_CONSTRAINT, block_rows, resolve_baseline
from ._hooks import hooked, register_deeplift, torch_module

__all__ = ["DeepLIFT"]


class DeepLIFT(Explainer):
    """DeepLIFT (rescale rule): ``phi = (x - x') * m``, with ``m`` the multipliers of the input.

    Multipliers are gradients in which every supported nonlinearity ``y = f(z)`` passes
    ``dL/dy * (f(z) - f(z')) / (z - z')`` instead of ``dL/dy * f'(z)`` (the rescale rule;
    the ordinary gradient where ``|z - z'| < 1e-10``), computed in one backward pass over
    the input and the reference side by side. Supported, by module hooks (exact type, as
    captum): ``ReLU``, ``ELU``, ``LeakyReLU``, ``Sigmoid``, ``Tanh``, ``Softplus``,
    ``Softmax`` and ``MaxPool1d/2d/3d`` (Shrikumar et al.'s max-pooling rule). Linear layers,
    convolutions and pooling averages are linear, so their gradient is their multiplier.
    With every nonlinearity hooked, the attributions sum to ``f(x) - f(x')``
    (completeness, "summation-to-delta").

    Parameters
    ----------
    model : torch.nn.Module or TorchModel
        The network. Nonlinearities called as functions (``torch.relu``, ``F.relu``) cannot be
        hooked and are differentiated as is, as in captum; completeness then fails and a
        warning says so (see ``extras["completeness_gap"]``).
    baseline : None, float, array of shape sample_shape or (n_samples, *sample_shape)
        The reference input ``x'``; None means zeros.
    space : {"auto", "raw"}, default "auto"
        The explained output: the module's own (raw) output. To explain probabilities, end
        the module with ``torch.nn.Softmax(dim=1)`` so that DeepLIFT's softmax rule applies.
    batch_size : int or None, default None
        Inputs per backward pass (each with its reference, so ``2 * batch_size`` rows);
        None: half the model's rows per call. Memory only; never changes a result.
    feature_names : sequence of str, optional
        One name per input value, recorded on the Explanation.

    Notes
    -----
    ``values`` have the shape of ``X``; ``base_values = f(x')``; ``extras["completeness_gap"]``
    is ``sum(phi) - (f(x) - f(x'))`` per sample. The module is never changed: hooks are
    removed after every call and nothing is stored on its layers. Captum's softmax rule
    centres the multipliers over the whole batch and its max-pooling fallback reads the
    gradient of the batch's first row; here both are applied per (input, reference) pair,
    which equals captum's result for each input explained on its own and keeps rows
    explained together equal to rows explained one by one.

    References
    ----------
    .. [1] Shrikumar, Greenside, Kundaje (2017). Learning important features through
       propagating activation differences. ICML.

    Examples
    --------
    >>> import torch
    >>> from scrutiny.attribution import DeepLIFT
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> e = DeepLIFT(net).explain(torch.ones(4, 3))
    >>> bool(abs(e.extras["completeness_gap"]).max() < 1e-4)
    True
    """

    requires: ClassVar[tuple[str, ...]] = ("gradient",)
    _constraints: ClassVar[dict[str, list]] = {
        "baseline": BASELINE_CONSTRAINT,
        "space": [Options("auto", "raw")],
        "batch_size": [Interval(int, 1, None), None],
        "feature_names": FEATURE_NAMES_CONSTRAINT,
    }
    _hints: ClassVar[dict[str, str]] = {
        "space": "DeepLIFT explains the module's own output; end the module with torch.nn.Softmax(dim=1) "
        "to explain probabilities through DeepLIFT's softmax rule.",
        "batch_size": BATCH_HINT,
    }
    #: relative completeness gap above which a warning is issued
    gap_warning: ClassVar[float] = 1e-3

    def __init__(
        self,
        model: Any,
        *,
        baseline: Any = None,
        space: str = "auto",
        batch_size: int | None = None,
        feature_names: Any = None,
    ):
        super().__init__(model)
        torch_module(self.model, type(self).__name__)
        self.baseline = baseline
        self.space = space
        self.batch_size = batch_size
        self.feature_names = feature_names

    def _check(self, X: np.ndarray) -> None:
        resolve_baseline(self.baseline, X, type(self).__name__)

    def _explain(self, X: np.ndarray, target: np.ndarray, rng: Any) -> RawAttribution:
        who = type(self).__name__
        module = torch_module(self.model, who)
        baseline = resolve_baseline(self.baseline, X, who)
        n, row = X.shape[0], int(np.prod(X.shape[1:]))
        if self.batch_size is not None:
            rows = int(self.batch_size)
        else:
            rows = max(1, min(self.model.rows_per_call(row), block_rows(None, row)) // 2)
        # The rules pair row i of a block with row rows + i, so each block must reach the
        # module in one forward pass: a copy of the adapter whose chunks hold a whole block.
        runner = copy.copy(self.model)
        runner.batch_size = 2 * rows
        outputs: list = []

        def register(handles: list) -> None:
            register_deeplift(module, handles, who)
            handles.append(module.register_forward_hook(lambda m, i, o: outputs.append(o.detach())))

        grads = np.empty(X.shape, dtype=np.float64)
        f_x, f_ref = np.empty(n), np.empty(n)
        with hooked(register):
            for start in range(0, n, rows):
                sl = slice(start, min(start + rows, n))
                m = sl.stop - sl.start
                ref = np.broadcast_to(baseline[0] if baseline.shape[0] == 1 else baseline[sl], X[sl].shape)
                outputs.clear()
                g = runner.gradient(np.concatenate([X[sl], ref]), np.concatenate([target[sl]] * 2), space="raw")
                grads[sl] = g[:m]
                out = outputs[-1].to("cpu").double().numpy().reshape(2 * m, -1)
                f_x[sl] = out[np.arange(m), target[sl]]
                f_ref[sl] = out[m + np.arange(m), target[sl]]
        values = (X - baseline) * grads
        gap = values.reshape(n, -1).sum(axis=1) - (f_x - f_ref)
        scale = np.maximum(np.abs(f_x - f_ref), 1e-6 * np.maximum(1.0, np.maximum(np.abs(f_x), np.abs(f_ref))))
        relative = np.abs(gap) / scale
        if (relative > self.gap_warning).any():
            from torch import nn

            cause = (
                "DeepLIFT's softmax rule centres the multipliers, which does not keep the sum (explain the "
                "logits, without the Softmax module, for completeness), or the module applies"
                if any(isinstance(m, nn.Softmax) for m in module.modules())
                else "The module applies"
            )
            warnings.warn(
                f"{who}: the attributions of {int((relative > self.gap_warning).sum())} of {n} input(s) do not "
                f"sum to f(x) - f(baseline) (largest relative gap {relative.max():.3g}). {cause} a "
                "nonlinearity DeepLIFT cannot hook (a functional call such as F.relu, or a layer type without "
                "a rule); use torch.nn modules (nn.ReLU, nn.MaxPool2d, ...) for exact DeepLIFT. "
                "See extras['completeness_gap'].",
                ScrutinyWarning,
                stacklevel=3,
            )
        return RawAttribution(values=values, base_values=f_ref, extras={"completeness_gap": gap})
