"""Guided Backpropagation (Springenberg et al. 2015), as captum's ``GuidedBackprop``.

References
----------
.. [1] Springenberg, Dosovitskiy, Brox, Riedmiller (2015). Striving for simplicity: the all
   convolutional net. ICLR workshop, arXiv:1412.6806.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from .._validation import Interval, Options
from ._base import Explainer, RawAttribution
from ._gradient import BATCH_HINT, FEATURE_NAMES_CONSTRAINT, SPACE_HINT, SPACES, gradient
from ._hooks import guided_relu_rule, hooked, on_input_gradient, torch_module

__all__ = ["GuidedBackprop"]


class GuidedBackprop(Explainer):
    """Guided Backprop: the input gradient with every ReLU passing only positive gradients.

    At each ``torch.nn.ReLU`` module the backward pass keeps ``max(0, dL/dz)``, where
    ``dL/dz`` is the ordinary gradient at the ReLU's input (the forward mask and the sign of
    the backward signal both gate it). The maps look like sharp edge images and barely
    depend on the upper layers' weights: Adebayo et al.'s sanity checks show it
    (:func:`scrutiny.diagnostics.sanity_check`), which is why the method is kept.

    Parameters
    ----------
    model : torch.nn.Module or TorchModel
        The network. ReLUs called as functions (``F.relu``) are differentiated as is, as in
        captum.
    space : {"auto", "raw", "probability", "log_odds"}, default "auto"
        The differentiated output (``"auto"``: the module's own output, e.g. logits).
    batch_size : int or None, default None
        Largest number of rows sent to ``model.gradient`` at once (memory only).
    feature_names : sequence of str, optional
        One name per input value, recorded on the Explanation.

    Notes
    -----
    ``values`` have the shape of ``X``. The module is never changed: the hooks are removed
    after every call.

    References
    ----------
    .. [1] Springenberg, Dosovitskiy, Brox, Riedmiller (2015). Striving for simplicity: the
       all convolutional net. arXiv:1412.6806.
    .. [2] Adebayo, Gilmer, Muelly, Goodfellow, Hardt, Kim (2018). Sanity checks for
       saliency maps. NeurIPS.

    Examples
    --------
    >>> import torch
    >>> from scrutiny.attribution import GuidedBackprop
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> GuidedBackprop(net).explain(torch.ones(4, 3)).values.shape
    (4, 3)
    """

    requires: ClassVar[tuple[str, ...]] = ("gradient",)
    _constraints: ClassVar[dict[str, list]] = {
        "space": [Options(*SPACES)],
        "batch_size": [Interval(int, 1, None), None],
        "feature_names": FEATURE_NAMES_CONSTRAINT,
    }
    _hints: ClassVar[dict[str, str]] = {"space": SPACE_HINT, "batch_size": BATCH_HINT}

    def __init__(self, model: Any, *, space: str = "auto", batch_size: int | None = None, feature_names: Any = None):
        super().__init__(model)
        torch_module(self.model, type(self).__name__)
        self.space = space
        self.batch_size = batch_size
        self.feature_names = feature_names

    def _explain(self, X: np.ndarray, target: np.ndarray, rng: Any) -> RawAttribution:
        from torch import nn

        who = type(self).__name__
        module = torch_module(self.model, who)

        def register(handles: list) -> None:
            for sub in module.modules():
                if isinstance(sub, nn.ReLU):  # as captum (subclasses included)
                    on_input_gradient(sub, guided_relu_rule, handles, who)

        with hooked(register):
            values = gradient(self.model, X, target, self.space, self.batch_size)
        return RawAttribution(values=values)
