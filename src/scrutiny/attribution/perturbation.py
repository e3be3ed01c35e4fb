"""Perturbation attributions: one local-surrogate engine and its presets.

Every method here perturbs the input, queries the model, and reads the attribution off a
simple local model of the answers:

=============  ==========================  ====================  ===========================
method         perturbation                proximity weight      surrogate
=============  ==========================  ====================  ===========================
LIME tabular   bins/categories from the    exp(-D^2 / 2w^2),     weighted ridge on binary
               training data (or Gaussian  w = 0.75 sqrt(d)      "same bin as x" features
               noise in std units)                               (or standardised features)
LIME image     Bernoulli(1/2) superpixel   exp(-D_cos^2 / 2w^2), weighted ridge on the
               masks in pairs (z, 1-z),    w = 0.25              superpixel indicators
               hidden = baseline
CLIME          x + N(0, sigma^2 I)         none (optional)       OLS on the noise
KernelSHAP     Shapley-kernel coalitions   Shapley kernel        WLS with the efficiency
               (distinct; players may be                         constraint
               groups), absent =
               background values
Occlusion      sliding window = baseline   --                    average drop over windows
=============  ==========================  ====================  ===========================

Speed comes from the design, not from tuning: one perturbation design per call is shared by
all inputs and outputs (common random numbers), all perturbed rows go to the model in large
chunks (``model.predict`` splits them into ``model.rows_per_call`` rows), and one batched weighted
least-squares solve (one Cholesky factorisation of the shared Gram matrix, many right-hand
sides) gives the surrogates of every (input, output) pair. Sampled methods report standard
errors (sandwich covariance of the regression; Covert & Lee's for KernelSHAP) and accept
``n_samples="auto"``.

The ``n_samples="auto"`` rule
-----------------------------
Start with an initial block (LIME: lime's 5000 tabular / 1000 image samples; CLIME:
``max(1000, 10 (d + 1))``; KernelSHAP: shap's ``2 M + 2048`` coalitions, or all ``2**M - 2``
when that is not more), then double the total each round. An input stops as soon as
``max_j stderr_j <= tol * (max_j phi_j - min_j phi_j)`` for its explained output (Covert &
Lee's rule, ``tol=0.01``); every input stops at 16 times the initial block, with a
:class:`~scrutiny.exceptions.ConvergenceWarning` if it had not converged. Each input's
result depends only on its own stopping time, so rows explained together still equal rows
explained one by one.

References
----------
M. T. Ribeiro, S. Singh, C. Guestrin, "'Why should I trust you?': Explaining the predictions
of any classifier", KDD 2016.
S. M. Lundberg, S.-I. Lee, "A unified approach to interpreting model predictions", NeurIPS 2017.
I. Covert, S.-I. Lee, "Improving KernelSHAP: Practical Shapley value estimation via linear
regression", AISTATS 2021.
S. Agarwal, S. Jabbari, C. Agarwal, S. Upadhyay, Z. S. Wu, H. Lakkaraju, "Towards the
unification and robustness of perturbation and gradient based explanations", ICML 2021.
M. D. Zeiler, R. Fergus, "Visualizing and understanding convolutional networks", ECCV 2014.
"""

from __future__ import annotations

from ._perturbation._clime import CLIME
from ._perturbation._kernelshap import KernelSHAP
from ._perturbation._lime import LIME
from ._perturbation._occlusion import Occlusion

__all__ = ["LIME", "CLIME", "KernelSHAP", "Occlusion"]

for _cls in (LIME, CLIME, KernelSHAP, Occlusion):
    _cls.__module__ = __name__  # documented and shown under their public home
del _cls
