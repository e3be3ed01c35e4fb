"""C-LIME: OLS on Gaussian perturbations (public class re-exported by :mod:`scrutiny.attribution.perturbation`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..._validation import Interval, Options, check_array
from ...exceptions import InvalidParameterError
from .._base import Explainer, RawAttribution
from ._common import COMMON_HINTS, SPACES, add_all_outputs, check_budget, check_space
from ._compose import chunk_rows
from ._design import root_seed, schedule
from ._engine import run
from ._problems import GaussianProblem


class CLIME(Explainer):
    """Continuous LIME: ordinary least squares on Gaussian perturbations around x.

    The surrogate ``g(x + eps) = b + phi' eps`` is fitted by OLS to ``f(x + eps)`` with
    ``eps ~ N(0, diag(sigma^2))``: no discretisation, no proximity kernel, no penalty
    (Agarwal et al. 2021). Its population value is ``E[grad f(x + eps)]``, the expected
    SmoothGrad (Stein's lemma); for a linear model it is the weight vector exactly as soon
    as the design has full rank.

    Parameters
    ----------
    model : torch.nn.Module, fitted scikit-learn estimator, callable or Model
    sigma : float or array-like, default 0.25
        Standard deviation of the noise in input units: a number, or one per input element
        (broadcastable to one sample's shape). Standardise tabular data first, or pass
        per-feature scales.
    n_samples : int or "auto", default "auto"
        Perturbations per input. At least ``d + 1`` (``2 d`` with ``antithetic``). "auto":
        initial block ``max(1000, 10 (d + 1))``; see :mod:`scrutiny.attribution.perturbation`.
    kernel_width : float > 0 or None, default None
        None: C-LIME (unweighted OLS). A width ``w`` weights each sample by
        ``exp(-||eps||^2 / (2 w^2))`` (lime's kernel on raw distances); the estimate then
        targets SmoothGrad at the smaller noise ``(sigma^-2 + w^-2)^(-1/2)``.
    antithetic : bool, default True
        Use pairs ``(eps, -eps)``: the even part of f (constant, quadratic terms) cancels
        from the slope, which lowers the variance for smooth models.
    space : {"auto", "raw", "probability", "log_odds"}, default "auto"
        The explained space: ``"auto"`` is probabilities for classifiers and raw outputs for
        regression models.
    tol : float, default 0.01
        Stopping tolerance of ``n_samples="auto"``.
    feature_names : sequence of str, optional
    batch_size : int, optional
    random_state : int, numpy.random.Generator or None

    Notes
    -----
    ``values`` have the input's shape (the slope per input element), ``stderr`` the sandwich
    standard errors (pairs as sampling units); ``extras``: ``intercept`` (the surrogate at x),
    ``score`` (R^2), ``all_outputs`` (n, *input_shape, K) when small, ``n_samples_used``.

    References
    ----------
    S. Agarwal, S. Jabbari, C. Agarwal, S. Upadhyay, Z. S. Wu, H. Lakkaraju, "Towards the
    unification and robustness of perturbation and gradient based explanations", ICML 2021.
    M. T. Ribeiro, S. Singh, C. Guestrin, "'Why should I trust you?'", KDD 2016.

    Examples
    --------
    >>> import numpy as np
    >>> w = np.array([1.0, -2.0, 0.5])
    >>> e = CLIME(lambda X: X @ w, sigma=0.5, n_samples=50, random_state=0).explain(np.ones((2, 3)))
    >>> np.allclose(e.values, w)
    True
    """

    _constraints = {
        "sigma": [Interval(float, 0, None, closed="neither"), "array-like"],
        "n_samples": [Interval(int, 1, None), Options("auto")],
        "kernel_width": [Interval(float, 0, None, closed="neither"), None],
        "antithetic": ["boolean"],
        "space": [SPACES],
        "tol": [Interval(float, 0, None, closed="neither")],
        "feature_names": ["array-like", None],
        "batch_size": [Interval(int, 1, None), None],
        "random_state": ["random_state"],
    }
    _hints = {
        **COMMON_HINTS,
        "sigma": "A noise scale in input units, e.g. 0.1-0.5 for standardised features.",
        "kernel_width": "None gives C-LIME (no kernel).",
    }

    def __init__(
        self,
        model: Any,
        *,
        sigma: Any = 0.25,
        n_samples: int | str = "auto",
        kernel_width: float | None = None,
        antithetic: bool = True,
        space: str = "auto",
        tol: float = 0.01,
        feature_names: Any = None,
        batch_size: int | None = None,
        random_state: Any = None,
    ) -> None:
        super().__init__(model)
        self.sigma = sigma
        self.n_samples = n_samples
        self.kernel_width = kernel_width
        self.antithetic = antithetic
        self.space = space
        self.tol = tol
        self.feature_names = feature_names
        self.batch_size = batch_size
        self.random_state = random_state

    def _sigma(self, shape: tuple[int, ...]) -> np.ndarray:
        sig = check_array(self.sigma, "sigma", min_samples=0) if np.ndim(self.sigma) else np.asarray(float(self.sigma))
        try:
            sig = np.broadcast_to(sig, shape)
        except ValueError:
            raise InvalidParameterError(
                f"CLIME: sigma must be a positive number or an array broadcastable to one sample {shape}; "
                f"got shape {sig.shape}."
            ) from None
        if not (sig > 0).all():
            raise InvalidParameterError(f"CLIME: sigma must be > 0 everywhere; got a minimum of {sig.min():g}.")
        return sig

    def _check(self, X: np.ndarray) -> None:
        check_space("CLIME", self.model, self.space)
        self._sigma(X.shape[1:])
        d = int(np.prod(X.shape[1:]))
        if self.antithetic:
            check_budget("CLIME", self.n_samples, 2 * d, f"(2 * n_features = 2 * {d}, as antithetic pairs)", d)
        else:
            check_budget("CLIME", self.n_samples, d + 1, f"(n_features + 1 = {d} + 1)", d)

    def _explain(self, X: np.ndarray, target: np.ndarray, rng: np.random.Generator) -> RawAttribution:
        space = check_space("CLIME", self.model, self.space)
        n, shape = X.shape[0], X.shape[1:]
        d = int(np.prod(shape))
        n0 = max(1000, 10 * (d + 1))
        n0 += n0 % 2
        problem = GaussianProblem(
            self.model, space, X, self._sigma(shape), self.kernel_width, bool(self.antithetic),
            schedule(self.n_samples, n0), root_seed(rng), chunk_rows(self.model, d, self.batch_size), "CLIME",
        )
        K = int(self.model.n_outputs)
        fit = run(problem, n, K, target, float(self.tol), "CLIME")
        coef = np.stack(fit.coef)
        rows = np.arange(n)
        extras = {"intercept": fit.intercept[rows, target], "score": fit.score, "n_samples_used": fit.n_used}
        add_all_outputs(extras, "all_outputs", coef.reshape((n,) + shape + (K,)))
        values = coef[rows, :, target].reshape(X.shape)
        return RawAttribution(values, None, np.stack(fit.stderr).reshape(X.shape), extras)
