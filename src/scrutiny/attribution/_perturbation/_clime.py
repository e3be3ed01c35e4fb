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
        Standard deviation of the noise in the units set by ``noise_scale``: a number, or one
        per input element (broadcastable to one sample's shape). Standardise tabular data
        first, or pass per-feature scales.
    noise_scale : {"absolute", "range"}, default "absolute"
        ``"absolute"``: ``sigma`` is in input units. ``"range"``: ``sigma`` (and
        ``kernel_width``) are fractions of each input's range ``x.max() - x.min()`` over all its
        elements -- SmoothGrad's ``noise_scale="range"`` (Smilkov et al.), so that
        :meth:`matching` can reproduce SmoothGrad's noise exactly.
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
    *Matching SmoothGrad.* The defaults of :class:`~scrutiny.attribution.SmoothGrad`
    (logits, noise at 15% of each input's range) and of CLIME (probabilities of classifiers,
    absolute noise 0.25) differ, so with defaults the two converge to different vectors.
    ``CLIME.matching(smoothgrad)`` builds the C-LIME with SmoothGrad's space and noise, whose
    population value is SmoothGrad's (Agarwal et al., Theorem 1); it needs about ``d`` times
    more samples for the same error (``python benchmarks/local_attribution.py --tasks
    clime`` measures the factor).

    ``values`` have the input's shape (the slope per input element), ``stderr`` the sandwich
    standard errors (pairs as sampling units); ``extras``: ``intercept`` (the surrogate at x),
    ``score`` (R^2), ``all_outputs`` (n, *input_shape, K) when small, ``n_samples_used``; with
    ``noise_scale="range"`` and a scalar ``sigma`` also ``noise_std`` (sigma per input).

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
        "noise_scale": [Options("absolute", "range")],
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
        "noise_scale": "'absolute' uses sigma in input units; 'range' scales it by each input's max - min.",
    }

    def __init__(
        self,
        model: Any,
        *,
        sigma: Any = 0.25,
        noise_scale: str = "absolute",
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
        self.noise_scale = noise_scale
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

    @classmethod
    def matching(cls, smoothgrad: Any, *, n_samples: int | str = "auto", tol: float = 0.01,
                 batch_size: int | None = None, random_state: Any = "same") -> "CLIME":
        """The C-LIME that converges to the same vector as ``smoothgrad``.

        Same model, explained space, noise (``noise_level`` and ``noise_scale``), antithetic
        pairs and feature names, so that by Stein's lemma ``E[CLIME] = E[SmoothGrad]`` for every
        input (Agarwal et al. 2021, Theorem 1).

        Parameters
        ----------
        smoothgrad : SmoothGrad
            Smoothing the plain gradient (``explainer`` None or a ``Saliency`` without ``abs``);
            the expectation of a smoothed GradientXInput or IntegratedGradients is not a
            regression slope, so it has no C-LIME counterpart.
        n_samples : int or "auto", default "auto"
            C-LIME's own budget (it needs at least ``2 d`` with antithetic pairs, and about
            ``d`` times SmoothGrad's samples for the same error), not SmoothGrad's.
        tol, batch_size
            As in the constructor.
        random_state : int, Generator, None or "same", default "same"
            ``"same"`` takes SmoothGrad's ``random_state`` (the draws still differ: the two
            estimators use their noise differently).

        Returns
        -------
        CLIME

        Examples
        --------
        >>> import torch
        >>> from scrutiny.attribution import SmoothGrad, CLIME
        >>> net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
        >>> sg = SmoothGrad(net, n_samples=64, random_state=0)
        >>> clime = CLIME.matching(sg)
        >>> clime.space, clime.sigma, clime.noise_scale
        ('raw', 0.15, 'range')
        """
        from ..saliency import Saliency
        from ..smoothgrad import SmoothGrad

        if not isinstance(smoothgrad, SmoothGrad):
            raise InvalidParameterError(
                f"CLIME.matching: smoothgrad must be a SmoothGrad instance; got {type(smoothgrad).__name__}. "
                "Build one first, e.g. CLIME.matching(SmoothGrad(net, noise_level=0.15))."
            )
        smoothgrad._validate_params()
        inner = smoothgrad._inner()
        if type(inner) is not Saliency or inner.abs:
            raise InvalidParameterError(
                f"CLIME.matching: smoothgrad smooths {type(inner).__name__}"
                f"{'(abs=True)' if isinstance(inner, Saliency) else ''}; only SmoothGrad of the plain gradient "
                "(explainer=None or Saliency(abs=False)) equals a C-LIME slope in expectation."
            )
        return cls(
            smoothgrad.model,
            sigma=float(smoothgrad.noise_level),
            noise_scale=smoothgrad.noise_scale,
            n_samples=n_samples,
            antithetic=bool(smoothgrad.antithetic),
            # a gradient method's "auto" is the model's raw output
            space="raw" if inner.space == "auto" else inner.space,
            tol=tol,
            feature_names=smoothgrad.feature_names,
            batch_size=batch_size,
            random_state=smoothgrad.random_state if isinstance(random_state, str) and random_state == "same"
            else random_state,
        )

    def _row_scale(self, X: np.ndarray) -> np.ndarray | None:
        """Per-input noise scale: None for absolute noise, each input's range for "range"."""
        if self.noise_scale == "absolute":
            return None
        flat = X.reshape(X.shape[0], -1)
        scale = flat.max(axis=1) - flat.min(axis=1)
        if not (scale > 0).all():
            bad = np.flatnonzero(scale <= 0)[:5].tolist()
            raise InvalidParameterError(
                f"CLIME: noise_scale='range' needs inputs whose values are not all equal (the noise is "
                f"sigma * (x.max() - x.min())); rows {bad} are constant. Use noise_scale='absolute'."
            )
        return scale

    def _check(self, X: np.ndarray) -> None:
        check_space("CLIME", self.model, self.space)
        self._sigma(X.shape[1:])
        self._row_scale(X)
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
            row_scale=self._row_scale(X),
        )
        K = int(self.model.n_outputs)
        fit = run(problem, n, K, target, float(self.tol), "CLIME")
        coef = np.stack(fit.coef)
        rows = np.arange(n)
        extras = {"intercept": fit.intercept[rows, target], "score": fit.score, "n_samples_used": fit.n_used}
        if self.noise_scale == "range" and np.ndim(self.sigma) == 0:  # as SmoothGrad's extras["noise_std"]
            extras["noise_std"] = self._row_scale(X) * float(self.sigma)
        add_all_outputs(extras, "all_outputs", coef.reshape((n,) + shape + (K,)))
        values = coef[rows, :, target].reshape(X.shape)
        return RawAttribution(values, None, np.stack(fit.stderr).reshape(X.shape), extras)
