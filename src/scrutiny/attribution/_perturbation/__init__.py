"""The local-surrogate engine behind :mod:`scrutiny.attribution.perturbation` (private).

One engine, four pieces, each a small module:

* :mod:`._design` -- perturbation designs drawn once per call and shared by every input
  (common random numbers): Bernoulli masks (complementary pairs), Gaussian noise (antithetic pairs), Shapley
  coalitions (exact enumeration, or enumeration of the outer sizes plus paired sampling),
  the proximity kernels, and the ``n_samples="auto"`` schedule;
* :mod:`._wls` -- one batched weighted least-squares solve for every (input, output) pair,
  with an optional ridge penalty, intercept or efficiency constraint, and sandwich standard
  errors;
* :mod:`._compose` -- turning a design into model inputs (vectorised image composition,
  background imputation) and chunked model evaluation in the explained output space;
* :mod:`._engine` -- the rounds driver: draw a block, evaluate, solve, stop each input when
  its standard errors are small enough (``n_samples="auto"``).

The method-specific problems (tabular and image LIME, C-LIME, KernelSHAP) live in
:mod:`._problems`; occlusion, which needs no regression, in :mod:`._occlusion`.
"""

from __future__ import annotations

import os
import sys

_PACKAGE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def external_stacklevel() -> int:
    """``stacklevel`` that points a warning at the first frame outside scrutiny (the user's call),
    whatever the depth of the internal call chain; call it from the function that warns."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE + os.sep):
        frame = frame.f_back
        level += 1
    return level


