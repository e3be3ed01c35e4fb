"""Gradient attributions: Saliency, Gradient x Input, Integrated Gradients and SmoothGrad.

All four need a differentiable model (``as_model(torch_module)``) and return attributions of
the input's shape, one row per explained sample. They share parameter names:

* ``space`` -- which scalar is differentiated: the raw output (``"raw"``, and ``"auto"``, the
  default: the logit of a logit model), ``"probability"`` or ``"log_odds"`` (see
  :mod:`scrutiny.models`);
* ``baseline`` -- the reference input of Integrated Gradients and Gradient x Input: None
  (zeros), a scalar, an array of one sample's shape, or one baseline per sample;
* ``batch_size`` -- the largest number of model-input rows (path points, noisy copies) built
  and sent to ``model.gradient`` at once; None chooses it from a 64 MB memory budget. The
  model further splits each call into chunks of its own ``batch_size``;
* ``n_steps`` (IG), ``n_samples``, ``noise_level`` and ``random_state`` (SmoothGrad);
* ``feature_names`` -- recorded on the Explanation.

The methods live in :mod:`.saliency` (Saliency, GradientXInput), :mod:`.integrated_gradients`
and :mod:`.smoothgrad`; this module gathers them under one name.

Speed by design: all path points or noisy copies of all inputs are built as one array (in
memory-bounded blocks) and differentiated in large chunks; there is no per-sample Python
loop. SmoothGrad draws **one** noise matrix per call and applies it to every input (common
random numbers), so rows explained together equal rows explained one by one.

References
----------
.. [1] Simonyan, Vedaldi, Zisserman (2014). Deep inside convolutional networks: visualising
   image classification models and saliency maps. ICLR workshop, arXiv:1312.6034.
.. [2] Shrikumar, Greenside, Shcherbina, Kundaje (2016). Not just a black box: learning
   important features through propagating activation differences. arXiv:1605.01713.
.. [3] Sundararajan, Taly, Yan (2017). Axiomatic attribution for deep networks. ICML.
.. [4] Smilkov, Thorat, Kim, Viegas, Wattenberg (2017). SmoothGrad: removing noise by adding
   noise. arXiv:1706.03825.
.. [5] Agarwal, Jabbari, Agarwal, Upadhyay, Wu, Lakkaraju (2021). Towards the unification
   and robustness of perturbation and gradient based explanations. ICML.
"""

from __future__ import annotations

from .integrated_gradients import IntegratedGradients, quadrature
from .saliency import GradientXInput, Saliency
from .smoothgrad import SmoothGrad

__all__ = ["Saliency", "GradientXInput", "IntegratedGradients", "SmoothGrad", "quadrature"]
