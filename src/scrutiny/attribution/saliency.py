"""Saliency and Gradient x Input: one gradient per input.

References
----------
.. [1] Simonyan, Vedaldi, Zisserman (2014). Deep inside convolutional networks: visualising
   image classification models and saliency maps. ICLR workshop, arXiv:1312.6034.
.. [2] Shrikumar, Greenside, Shcherbina, Kundaje (2016). Not just a black box: learning
   important features through propagating activation differences. arXiv:1605.01713.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from .._validation import Interval, Options
from ._base import Explainer, RawAttribution
from ._gradient import (
    BASELINE_CONSTRAINT,
    BATCH_HINT,
    FEATURE_NAMES_CONSTRAINT,
    SPACE_HINT,
    SPACES,
    gradient,
    resolve_baseline,
)

__all__ = ["Saliency", "GradientXInput"]


class Saliency(Explainer):
    """Vanilla gradient (saliency map): ``phi = d f_target / d x``.

    Parameters
    ----------
    model : torch.nn.Module or TorchModel
        A differentiable model (see :func:`scrutiny.as_model`).
    abs : bool, default False
        Return ``|d f / d x|`` (Simonyan et al.; captum's default) instead of the signed gradient.
    space : {"auto", "raw", "probability", "log_odds"}, default "auto"
        The differentiated space (see :meth:`scrutiny.models.TorchModel.gradient`); ``"auto"``
        is ``"raw"``, the model's own output (the logit of a logit model).
    batch_size : int or None, default None
        Largest number of rows sent to ``model.gradient`` at once (memory only; never changes
        the result).
    feature_names : sequence of str, optional
        One name per input value, recorded on the Explanation.

    Notes
    -----
    One forward and one backward pass per chunk of inputs. ``explain(X, target)`` returns an
    :class:`~scrutiny.explanation.Explanation` whose ``values`` have the shape of ``X``
    (n_samples, ...). For images, reduce channels afterwards if needed
    (``values.abs().max(axis=1)`` as in Simonyan et al.).

    References
    ----------
    .. [1] Simonyan, Vedaldi, Zisserman (2014). Deep inside convolutional networks:
       visualising image classification models and saliency maps. arXiv:1312.6034.

    Examples
    --------
    >>> import torch
    >>> from scrutiny.attribution import Saliency
    >>> net = torch.nn.Linear(3, 2)
    >>> e = Saliency(net).explain(torch.ones(4, 3), target=1)
    >>> e.values.shape
    (4, 3)
    """

    requires: ClassVar[tuple[str, ...]] = ("gradient",)
    _constraints: ClassVar[dict[str, list]] = {
        "abs": ["boolean"],
        "space": [Options(*SPACES)],
        "batch_size": [Interval(int, 1, None), None],
        "feature_names": FEATURE_NAMES_CONSTRAINT,
    }
    _hints: ClassVar[dict[str, str]] = {"space": SPACE_HINT, "batch_size": BATCH_HINT}

    def __init__(
        self,
        model: Any,
        *,
        abs: bool = False,
        space: str = "auto",
        batch_size: int | None = None,
        feature_names: Any = None,
    ):
        super().__init__(model)
        self.abs = abs
        self.space = space
        self.batch_size = batch_size
        self.feature_names = feature_names

    def _resolve_baseline(self, X: np.ndarray) -> np.ndarray | None:
        return None

    def _attribute(self, X: np.ndarray, target: np.ndarray, baseline: np.ndarray | None) -> np.ndarray:
        grad = gradient(self.model, X, target, self.space, self.batch_size)
        return np.abs(grad) if self.abs else grad

    def _explain(self, X: np.ndarray, target: np.ndarray, rng: Any) -> RawAttribution:
        return RawAttribution(values=self._attribute(X, target, None))


class GradientXInput(Explainer):
    """Gradient times input: ``phi = (x - baseline) * d f_target / d x``.

    Parameters
    ----------
    model : torch.nn.Module or TorchModel
        A differentiable model.
    baseline : None, float, array of shape sample_shape or (n_samples, *sample_shape)
        Reference input; None means zeros, i.e. the classic ``x * grad``. A baseline removes
        the dependence on the input's units (``(x - x') * grad``).
    space : {"auto", "raw", "probability", "log_odds"}, default "auto"
        As for :class:`Saliency`.
    batch_size : int or None, default None
    feature_names : sequence of str, optional

    Notes
    -----
    For a piecewise-linear network without biases this equals DeepLIFT/epsilon-LRP; it is
    the limit of Integrated Gradients as the path shrinks to the input. ``values`` have the
    shape of ``X``.

    References
    ----------
    .. [1] Shrikumar, Greenside, Shcherbina, Kundaje (2016). Not just a black box: learning
       important features through propagating activation differences. arXiv:1605.01713.

    Examples
    --------
    >>> import torch
    >>> from scrutiny.attribution import GradientXInput
    >>> net = torch.nn.Linear(3, 1)
    >>> GradientXInput(net, space="raw").explain(torch.ones(2, 3)).values.shape
    (2, 3)
    """

    requires: ClassVar[tuple[str, ...]] = ("gradient",)
    _constraints: ClassVar[dict[str, list]] = {
        "baseline": BASELINE_CONSTRAINT,
        "space": [Options(*SPACES)],
        "batch_size": [Interval(int, 1, None), None],
        "feature_names": FEATURE_NAMES_CONSTRAINT,
    }
    _hints: ClassVar[dict[str, str]] = {"space": SPACE_HINT, "batch_size": BATCH_HINT}

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
        self.baseline = baseline
        self.space = space
        self.batch_size = batch_size
        self.feature_names = feature_names

    def _check(self, X: np.ndarray) -> None:
        resolve_baseline(self.baseline, X, type(self).__name__)

    def _resolve_baseline(self, X: np.ndarray) -> np.ndarray:
        return resolve_baseline(self.baseline, X, type(self).__name__)

    def _attribute(self, X: np.ndarray, target: np.ndarray, baseline: np.ndarray) -> np.ndarray:
        grad = gradient(self.model, X, target, self.space, self.batch_size)
        return (X - baseline) * grad

    def _explain(self, X: np.ndarray, target: np.ndarray, rng: Any) -> RawAttribution:
        return RawAttribution(values=self._attribute(X, target, self._resolve_baseline(X)))
