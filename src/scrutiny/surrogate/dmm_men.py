"""``DMMMEN``: the Dirichlet-process mixture of regressions with multiple elastic nets.

A scikit-learn style estimator around the sampler in :mod:`scrutiny.surrogate.mcmc`: ``fit``
runs ``n_chains`` independent chains (own random streams), relabels every draw to one common
reference (Cron & West 2011), and stores posterior summaries and convergence diagnostics.

From a fitted surrogate to explanations (Guo et al. 2018, section 3.3 and 4):

* :meth:`DMMMEN.from_model` builds the paper's per-class problem from a black box: ``y`` is
  the clipped logit of the class probability, ``X`` the flattened inputs, optionally screened
  to the highest-variance features (mapped back to input positions);
* :meth:`DMMMEN.explain` explains samples by the coefficients of their most probable
  component, ``h* = argmax_h pi_h N(y | x' beta_h, sigma2_h)``;
* :meth:`DMMMEN.explain_global` returns one :class:`GlobalInsight` per occupied component:
  the top-k features ("generalizable insight"), their credible intervals and a heat map.

References
----------
Guo, W., Huang, S., Tao, Y., Xing, X. & Lin, L. (2018). Explaining deep learning models - a
Bayesian non-parametric approach. NeurIPS 31.
Ishwaran, H. & James, L. F. (2001). Gibbs sampling methods for stick-breaking priors. JASA 96.
Li, Q. & Lin, N. (2010). The Bayesian elastic net. Bayesian Analysis 5(1).
Hans, C. (2011). Elastic net regression modeling with the orthant normal prior. JASA 106.
Cron, A. J. & West, M. (2011). Efficient classification-based relabeling in mixture models.
The American Statistician 65(1).
Vehtari, A. et al. (2021). Rank-normalization, folding, and localization: an improved R-hat.
Bayesian Analysis 16(2).
"""

from __future__ import annotations

import time
import warnings
from typing import Any, ClassVar

import numpy as np

from .._validation import Interval, Options, ParamsMixin, check_array, spawn_generators
from ..exceptions import ConvergenceWarning, InvalidParameterError
from ..explanation import Explanation
from ._auto import check_lengths, run_chains, warn_unconverged
from .chains import best_pilot, chain_pool
from .convergence import chain_diagnostics
from .from_model import fit_from_model
from .insights import GlobalInsight, explain_samples, global_insights, map_input, resolve_response
from .state import Priors, Settings, check_response
from .summary import posterior_summary

__all__ = ["DMMMEN", "chain_pool"]

_POSITIVE = [Interval(float, 0, None, closed="neither")]
_ALTERNATE = ("kmeans", "one")  # the starts alternated by init="mixed"


class DMMMEN(ParamsMixin):
    """Dirichlet-process regression mixture with multiple elastic nets (Guo et al. 2018).

    Approximates responses ``y`` (typically the logit of a black box's predicted probability)
    by a mixture of at most ``n_components`` linear regressions whose coefficients get one of
    ``n_priors`` Bayesian elastic-net priors; fitted by the corrected partially collapsed Gibbs
    sampler (see :mod:`scrutiny.surrogate.mcmc`).

    Parameters
    ----------
    n_components : int, default=6
        Truncation level ``J`` of the stick-breaking prior (upper bound on the number of regimes).
    n_priors : int, default=3
        Number ``K`` of elastic-net priors.
    n_iter : int or "auto", default=2000
        Sweeps per chain, burn-in included. ``"auto"``: extend the chains in blocks of 250
        sweeps (``AUTO_BLOCK``), checked after each, until R-hat of ``loglik`` and ``logjoint_occupied``
        is below ``rhat_threshold`` and their bulk ESS above ``AUTO_MIN_ESS`` (400), or ``max_iter``
        / ``max_time`` runs out; the first half of every chain is burn-in (the reasons: see
        :mod:`scrutiny.surrogate._auto`). Without ``max_time``, the draws depend only on the seed.
    n_burnin : int, default=1000
        Sweeps discarded at the start of each chain (with ``"auto"``: only sets the pilots).
    max_iter : int, default=20000
        ``n_iter="auto"``: at most this many sweeps per chain.
    max_time : float or None, default=None
        ``n_iter="auto"``: stop before a block that would end after ``max_time`` seconds of ``fit``.
        The sweeps run then depend on the machine; ``max_time=None, max_iter=n_iter_`` reproduces the fit.
    n_chains : int, default=2
        Independent chains (each with its own random stream).
    thin : int, default=1
        Keep every ``thin``-th post-burn-in draw (diagnostics of label-invariant quantities
        always use every sweep).
    fit_intercept : bool, default=True
        Add an unpenalised intercept per component with prior ``N(0, intercept_scale^2)``.
    intercept_scale : float, default=10.0
    alpha_shape, alpha_rate : float, default=5.0, 1.0
        ``alpha ~ Gamma(e, rate f)``.
    sigma2_shape, sigma2_scale : float, default=0.5, 0.5
        ``sigma2_j ~ InvGamma(a, b)``.
    lambda1_shape, lambda2_shape : float, default=1.0, 4.0
        Shapes of the lasso and ridge penalty priors ``Gamma(shape, rate V/2)``.
    lambda_v : float, default=1.0
        ``V``.
    concentration : float or None, default=None
        ``alpha_e`` of ``w ~ Dir(alpha_e)``; ``None`` means ``1 / n_priors``.
    rhat_threshold : float, default=1.05
        A :class:`~scrutiny.exceptions.ConvergenceWarning` is issued when the R-hat of a
        label-invariant quantity exceeds it.
    init : {"pilot", "kmeans", "one", "mixed"}, default="pilot"
        Starting state of each chain. ``"kmeans"``: the warm start of
        :func:`~scrutiny.surrogate.mcmc.init`, ``n_components`` k-means clusters on ``(x, y)``
        with every component occupied, refined by ``KMEANS_EM_STEPS`` classification-EM
        iterations (see :mod:`~scrutiny.surrogate.chains`), drawn independently for every chain.
        Starting full is the decision: the sweep empties superfluous components quickly but grows
        a missing one slowly. Some k-means starts land in a worse local mode, though, so the
        default is ``"pilot"``: ``n_pilots`` short pilot chains (``min(100, n_burnin // 2)``
        sweeps, at least 10), each from its own k-means start; every chain continues from the
        final state of the pilot with the highest mean log-likelihood over its second half
        (``pilot_loglik_``), with its own stream. The chains then agree on the best mode found,
        and R-hat measures the mixing within it. ``"one"``: every sample in one component.
        ``"mixed"``: chains 0, 2, ... k-means, chains 1, 3, ... one component. How long each
        start takes to reach stationarity, and how often a fit converges, is printed by
        ``benchmarks/dmm_men.py`` (section 1).
    n_pilots : int, default=4
        Pilot chains for ``init="pilot"`` (they run ``n_jobs`` at a time).
    chain_selection : {"all", "best"}, default="all"
        ``"all"`` pools every chain. ``"best"`` pools only the chains whose mean post-burn-in
        log-likelihood is within one within-chain standard deviation of the best chain's: chains
        in the same mode pass, a chain stuck in a clearly worse mode (e.g. one that explains a
        strong feature by two intercepts instead of a slope) is dropped rather than averaged in.
        (The log joint is a worse criterion here: the prior draws of empty components make it
        noisy.)
        Relabelling across modes gives meaningless averages; "best" is a restart strategy, not
        a cure for poor mixing (R-hat is then computed from the kept chains only).
    n_jobs : int, default=1
        Chains run in this many processes (1: sequentially in this process).
    random_state : int, numpy.random.Generator or None
        Seed; chains get independent streams spawned from it.

    Attributes
    ----------
    weights_ : ndarray of shape (J,)
        Posterior mean mixture weights ``pi``.
    occupancy_ : ndarray of shape (J,)
        Fraction of the kept draws in which each (relabelled) component has at least one sample.
    coef_ : ndarray of shape (J, p)
        Posterior mean coefficients of each (relabelled) component, given that it is occupied:
        over the draws in which it has samples. (In the others its parameters are draws from
        their prior, whose ``sigma2 ~ IG(0.5, 0.5)`` has no finite mean; averaging them in would
        blur the regression the component stands for.) A component never occupied
        (``occupancy_ == 0``) is summarised over all draws, i.e. its prior.
    coef_ci_ : ndarray of shape (J, p, 2)
        95 % equal-tailed credible intervals of the coefficients, over the same draws.
    intercept_, sigma2_ : ndarray of shape (J,)
        Posterior means over the same draws (``intercept_`` is zero without an intercept).
    intercept_ci_, sigma2_ci_ : ndarray of shape (J, 2)
    allocation_proba_ : ndarray of shape (n_samples, J)
        ``P(z_i = h | data)``: relabelled allocations averaged over draws.
    responsibilities_ : ndarray of shape (n_samples, J)
        Plug-in responsibilities ``prop. to weights_h N(y_i | x_i' coef_h + intercept_h, sigma2_h)``
        (the paper's assignment rule); 0 for a component never occupied.
    labels_ : ndarray of shape (n_samples,)
        ``argmax`` of ``allocation_proba_``.
    alpha_ : float
        Posterior mean DP concentration.
    lambda1_, lambda2_, penalty_weights_ : ndarray of shape (K,)
        Posterior means of the penalties and their weights, priors ordered by ``lam1 / lam2``.
    penalty_proba_ : ndarray of shape (J, K)
        ``P(c_h = k | data)``.
    coef_mixture_ : ndarray of shape (p,), intercept_mixture_ : float
        Posterior mean of ``sum_h pi_h beta_h`` (``sum_h pi_h b0_h``), used by :meth:`predict`;
        Rao-Blackwellised: a component left empty by a draw's allocations contributes its prior
        mean, 0, instead of its prior draw (same posterior mean, finite Monte Carlo variance).
    rhat_, ess_ : dict
        Split R-hat and bulk ESS of the label-invariant ``loglik``, ``logjoint``,
        ``logjoint_occupied``, ``alpha``, ``n_occupied`` and relabelled ``pi``, ``sigma2``.
    diagnostics_ : dict
        Everything from :func:`~scrutiny.surrogate.convergence.chain_diagnostics`.
    converged_ : bool
        R-hats of ``loglik``, ``logjoint_occupied``, ``alpha``, ``n_occupied`` < ``rhat_threshold`` (or "auto" met).
    n_iter_, n_burnin_ : int
        Sweeps run and discarded per chain.
    stop_reason_ : {"n_iter", "converged", "max_iter", "max_time"}
    auto_history_ : list of dict or None
        ``"auto"``: every check's ``sweeps``, ``seconds``, ``rhat_*``, ``ess_*`` and ``converged``.
    chain_loglik_ : ndarray of shape (n_chains,)
        Mean post-burn-in log-likelihood of every chain.
    pilot_loglik_ : ndarray of shape (n_pilots,) or None
        ``init="pilot"``: mean log-likelihood of every pilot over its second half (the chains
        start from the best); None otherwise.
    chains_used_ : ndarray of int
        The chains pooled in the summaries (all unless ``chain_selection="best"``).
    draws_ : list of dict
        Relabelled draws of each chain (see :class:`~scrutiny.surrogate.mcmc.ChainResult`).
    trace_ : list of dict
        Per-sweep traces of each chain.
    reference_ : tuple
        ``(chain, draw)`` used as the relabelling reference.
    n_features_in_ : int
    fit_time_ : float
        Seconds spent in ``fit``.
    model_ : Model or None
        The wrapped black box (set by :meth:`from_model`; ``None`` after a plain ``fit``).
    target_class_ : int or None
        The explained class (:meth:`from_model`).
    clip_ : float or None
        Probability clipping used for the logits (:meth:`from_model`).
    input_shape_ : tuple of int or None
        Per-sample shape of the model's input (:meth:`from_model`).
    feature_indices_ : ndarray of shape (n_features_in_,), int, or None
        Flat input position of each column of ``coef_`` (:meth:`from_model`; ascending).
    n_input_features_ : int or None
        ``prod(input_shape_)`` (:meth:`from_model`).

    Notes
    -----
    After :meth:`from_model`, ``predict``, ``component_proba``, ``predict_component`` and
    ``explain`` take inputs in the model's input shape ``(n, *input_shape_)`` (or flattened,
    ``(n, prod(input_shape_))``, or already screened, ``(n, n_features_in_)``): they are
    flattened and mapped through ``feature_indices_``.

    References
    ----------
    Guo et al. (2018), NeurIPS; Li & Lin (2010); Hans (2011); Ishwaran & James (2001);
    Cron & West (2011); Bhattacharya et al. (2016); van Dyk & Park (2008); Neal (2003);
    Vehtari et al. (2021).

    Examples
    --------
    >>> import numpy as np
    >>> from scrutiny.surrogate import DMMMEN
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 4))
    >>> y = np.where(rng.random(300) < 0.5, X @ [2, 0, 0, 1] - 4, X @ [0, -1, 1, 0] + 4)
    >>> model = DMMMEN(n_iter=300, n_burnin=150, random_state=0).fit(X, y)  # doctest: +SKIP
    >>> model.coef_.shape                                                     # doctest: +SKIP
    (6, 4)
    """

    def __init__(
        self,
        n_components: int = 6,
        n_priors: int = 3,
        *,
        n_iter: int | str = 2000,
        n_burnin: int = 1000,
        max_iter: int = 20000,
        max_time: float | None = None,
        n_chains: int = 2,
        thin: int = 1,
        fit_intercept: bool = True,
        intercept_scale: float = 10.0,
        alpha_shape: float = 5.0,
        alpha_rate: float = 1.0,
        sigma2_shape: float = 0.5,
        sigma2_scale: float = 0.5,
        lambda1_shape: float = 1.0,
        lambda2_shape: float = 4.0,
        lambda_v: float = 1.0,
        concentration: float | None = None,
        rhat_threshold: float = 1.05,
        init: str = "pilot",
        n_pilots: int = 4,
        chain_selection: str = "all",
        n_jobs: int = 1,
        random_state: Any = None,
    ) -> None:
        self.n_components = n_components
        self.n_priors = n_priors
        self.n_iter = n_iter
        self.n_burnin = n_burnin
        self.max_iter = max_iter
        self.max_time = max_time
        self.n_chains = n_chains
        self.thin = thin
        self.fit_intercept = fit_intercept
        self.intercept_scale = intercept_scale
        self.alpha_shape = alpha_shape
        self.alpha_rate = alpha_rate
        self.sigma2_shape = sigma2_shape
        self.sigma2_scale = sigma2_scale
        self.lambda1_shape = lambda1_shape
        self.lambda2_shape = lambda2_shape
        self.lambda_v = lambda_v
        self.concentration = concentration
        self.rhat_threshold = rhat_threshold
        self.init = init
        self.n_pilots = n_pilots
        self.chain_selection = chain_selection
        self.n_jobs = n_jobs
        self.random_state = random_state

    # ------------------------------------------------------------------ parameters

    _constraints: ClassVar[dict[str, list]] = {
        "n_components": [Interval(int, 1, None)],
        "n_priors": [Interval(int, 1, None)],
        "n_iter": [Interval(int, 1, None), Options("auto")],
        "n_burnin": [Interval(int, 0, None)],
        "max_iter": [Interval(int, 8, None)],
        "max_time": _POSITIVE + [None],
        "n_chains": [Interval(int, 1, None)],
        "thin": [Interval(int, 1, None)],
        "fit_intercept": ["boolean"],
        "intercept_scale": _POSITIVE,
        "alpha_shape": _POSITIVE,
        "alpha_rate": _POSITIVE,
        "sigma2_shape": _POSITIVE,
        "sigma2_scale": _POSITIVE,
        "lambda1_shape": _POSITIVE,
        "lambda2_shape": _POSITIVE,
        "lambda_v": _POSITIVE,
        "concentration": _POSITIVE + [None],
        "rhat_threshold": [Interval(float, 1, None, closed="neither")],
        "init": [Options("pilot", "kmeans", "one", "mixed")],
        "n_pilots": [Interval(int, 1, None)],
        "chain_selection": [Options("all", "best")],
        "n_jobs": [Interval(int, 1, None)],
        "random_state": ["random_state"],
    }
    _hints: ClassVar[dict[str, str]] = {
        "n_components": "It is the truncation level J (6 in the paper).",
        "n_iter": "n_iter counts all sweeps, burn-in included (e.g. 2000).",
        "n_chains": "Use at least 2 chains for R-hat.",
        "rhat_threshold": "1.01 is strict, 1.05 tolerable.",
    }

    def _priors(self) -> Priors:
        return Priors(
            n_components=int(self.n_components),
            n_priors=int(self.n_priors),
            alpha_shape=float(self.alpha_shape),
            alpha_rate=float(self.alpha_rate),
            sigma2_shape=float(self.sigma2_shape),
            sigma2_scale=float(self.sigma2_scale),
            concentration=None if self.concentration is None else float(self.concentration),
            lam1_shape=float(self.lambda1_shape),
            lam2_shape=float(self.lambda2_shape),
            lam_v=float(self.lambda_v),
            intercept_scale=float(self.intercept_scale) if self.fit_intercept else None,
        )

    # ------------------------------------------------------------------ fit

    def fit(self, X: Any, y: Any) -> DMMMEN:
        """Run the chains on ``(X, y)`` and store posterior summaries.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs (``n_features > n_samples`` is fine: small components use the
            Bhattacharya et al. sampler).
        y : array-like of shape (n_samples,)
            Responses, e.g. ``logit g_c(X)``; must be finite and not constant.

        Returns
        -------
        self
        """
        self._validate_params()
        check_lengths(self)
        for name in self._FROM_MODEL_ATTRS:  # a plain fit forgets the black box of from_model
            setattr(self, name, None)
        X = check_array(X, "X", ndim=2, min_samples=2)
        if X.shape[1] == 0:
            raise InvalidParameterError(f"X must have at least one feature; got shape {X.shape}.")
        y = check_response(y, X.shape[0])
        start = time.perf_counter()
        priors = self._priors()
        settings = Settings()
        n_pilots = int(self.n_pilots) if self.init == "pilot" else 0
        rngs = spawn_generators(self.random_state, self.n_chains + n_pilots)
        rngs, pilot_rngs = rngs[: self.n_chains], rngs[self.n_chains :]
        self.pilot_loglik_ = None
        if self.init == "pilot":
            state, self.pilot_loglik_ = best_pilot(pilot_rngs, X, y, priors, settings, int(self.n_burnin),
                                                   int(self.n_jobs))
            starts = [state] * len(rngs)
        else:
            starts = [_ALTERNATE[c % 2] if self.init == "mixed" else self.init for c in range(len(rngs))]
        results = run_chains(self, rngs, X, y, priors, settings, starts, start)
        traces = [np.asarray(r.trace["loglik"][self.n_burnin_ :], dtype=float) for r in results]
        self.chain_loglik_ = np.array([t.mean() for t in traces])
        keep = np.arange(len(results))
        if self.chain_selection == "best" and len(results) > 1:
            best = int(np.argmax(self.chain_loglik_))
            keep = np.flatnonzero(self.chain_loglik_ >= self.chain_loglik_[best] - traces[best].std())
        self.chains_used_ = keep
        self._summarise([results[c] for c in keep], X, y, priors)
        self.n_features_in_ = X.shape[1]
        self.fit_time_ = time.perf_counter() - start
        return self

    def _summarise(self, results, X, y, priors) -> None:
        """Relabel and pool the chains' draws, set the posterior summaries and diagnostics."""
        for name, value in posterior_summary(results, X, y, priors).items():
            setattr(self, name, value)
        self.responsibilities_ = self._component_proba(X, y)
        diag = chain_diagnostics(self.trace_, self.draws_, self.n_burnin_)
        self.diagnostics_ = diag
        self.rhat_ = diag["rhat"]
        self.ess_ = diag["ess_bulk"]
        # the occupied components' log joint (log_joint's occupied_only); old traces: the full one
        joint = "logjoint_occupied" if "logjoint_occupied" in diag["rhat"] else "logjoint"
        invariant = [diag["rhat"][k] for k in ("loglik", joint, "alpha", "n_occupied") if k in diag["rhat"]]
        worst = float(np.nanmax(invariant)) if invariant else np.nan
        self.converged_ = bool(np.isfinite(worst) and worst < self.rhat_threshold)
        if self.auto_history_ is not None:
            self.converged_ = self.stop_reason_ == "converged"
            warn_unconverged(self)
        elif not self.converged_:
            warnings.warn(
                f"DMMMEN: the chains have not converged (max R-hat of the label-invariant quantities "
                f"{worst:.3f} >= {self.rhat_threshold}); see rhat_ and trace_. Increase n_iter and n_burnin, "
                "or run more chains.",
                ConvergenceWarning,
                stacklevel=3,
            )

    # ------------------------------------------------------------------ prediction

    _FROM_MODEL_ATTRS = ("model_", "target_class_", "clip_", "input_shape_", "feature_indices_", "n_input_features_")

    def _check_X(self, X: Any) -> np.ndarray:
        return self._map_input(X)[0]

    def _map_input(self, X: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """``(screened features (n, p), flattened model input (n, d) or None)``; see :func:`map_input`."""
        return map_input(self, X)

    def predict(self, X: Any) -> np.ndarray:
        """Posterior-mean mixture prediction ``E[y | x] = E[sum_h pi_h (b0_h + x' beta_h)]``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        X = self._check_X(X)
        return X @ self.coef_mixture_ + self.intercept_mixture_

    def component_proba(self, X: Any, response: Any) -> np.ndarray:
        """Plug-in ``P(component h | x, y)`` prop. to ``weights_h N(y | x' coef_h + intercept_h, sigma2_h)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        response : array-like of shape (n_samples,)
            The black box's responses ``y`` at ``X`` (what the surrogate is fitted to).

        Returns
        -------
        ndarray of shape (n_samples, J)
        """
        X = self._check_X(X)
        y = check_array(response, "response", ndim=1, shape=(X.shape[0],))
        return self._component_proba(X, y)

    def _component_proba(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        mean = X @ self.coef_.T + self.intercept_[None, :]
        with np.errstate(divide="ignore"):
            logd = np.log(self.weights_) - 0.5 * np.log(self.sigma2_) - 0.5 * (y[:, None] - mean) ** 2 / self.sigma2_
        logd[:, self.occupancy_ == 0] = -np.inf  # never given a sample: no regression to assign to
        logd -= np.logaddexp.reduce(logd, axis=1, keepdims=True)
        return np.exp(logd)

    def predict_component(self, X: Any, response: Any) -> tuple[np.ndarray, np.ndarray]:
        """Most probable component of new ``(x, response)`` pairs and its probability.

        ``h* = argmax_h weights_h N(y | x' coef_h + intercept_h, sigma2_h)`` (Guo et al. 2018).

        Returns
        -------
        labels : ndarray of shape (n_samples,), int
        proba : ndarray of shape (n_samples,)
        """
        P = self.component_proba(X, response)
        labels = np.argmax(P, axis=1)
        return labels, P[np.arange(P.shape[0]), labels]

    # ------------------------------------------------------------------ explaining a black box
    # (the bodies live in :mod:`.from_model` and :mod:`.insights`, which import nothing from here)

    @classmethod
    def from_model(
        cls,
        model: Any,
        X: Any,
        target_class: int,
        *,
        y_true: Any = None,
        n_features: int | None = None,
        clip: float = 1e-6,
        **dmm_params: Any,
    ) -> DMMMEN:
        """Fit DMM-MEN to one class of a black box, as in Guo et al. (2018).

        The response is the model's one-vs-rest logit of ``target_class``, ``log(p / (1 - p))``
        with ``p`` clipped to ``[clip, 1 - clip]`` (``Model.predict_log_odds``); the features
        are the flattened inputs, optionally screened to the ``n_features`` of highest variance
        over the fitted rows (the authors keep 300 of 784 pixels).

        The paper fits each class on the samples *of that class*. Selecting them is the
        caller's job: pass only class-``c`` rows as ``X``, or pass every row with its true labels
        as ``y_true`` and only the rows with ``y_true == target_class`` are fitted.

        Parameters
        ----------
        model : torch.nn.Module, fitted scikit-learn estimator, callable or Model
            A classifier (wrap a callable with ``as_model(f, output="logit")`` or
            ``output="probability"``).
        X : array-like of shape (n_samples, *input_shape)
            Inputs in the model's input shape.
        target_class : int
            The explained class ``c``.
        y_true : array-like of shape (n_samples,), optional
            True labels used to select the class-``c`` rows.
        n_features : int, optional
            Keep the ``n_features`` highest-variance input features; None keeps all.
        clip : float in (0, 0.5), default=1e-6
            Probability clipping before the logit.
        **dmm_params
            :class:`DMMMEN` constructor parameters (``n_components``, ``n_iter``, ``random_state``...).

        Returns
        -------
        DMMMEN
            Fitted, with ``model_``, ``target_class_``, ``clip_``, ``input_shape_``,
            ``feature_indices_`` (flat input position of each column of ``coef_``, ascending)
            and ``n_input_features_``.

        Examples
        --------
        >>> from scrutiny.zoo import reference_model                          # doctest: +SKIP
        >>> from scrutiny.data import load_digits                             # doctest: +SKIP
        >>> net, _ = reference_model("cnn", "digits")                         # doctest: +SKIP
        >>> d = load_digits()                                                 # doctest: +SKIP
        >>> sur = DMMMEN.from_model(net, d.X, 3, y_true=d.y, n_features=40,
        ...                         n_iter=400, n_burnin=200, random_state=0)  # doctest: +SKIP
        >>> sur.explain_global(k=10)[0].heatmap.shape                         # doctest: +SKIP
        (1, 8, 8)
        """
        return fit_from_model(cls, model, X, target_class, y_true, n_features, clip, dmm_params)

    def explain(self, X: Any, *args: Any, response: Any = None, **kwargs: Any) -> Explanation:
        """Explain samples by the coefficients of their most probable component.

        Each sample goes to ``h* = argmax_h weights_h N(response | intercept_h + x' coef_h, sigma2_h)``
        (Guo et al. 2018, section 3.3) and is explained by ``coef_[h*]``.

        Parameters
        ----------
        X : array-like
            ``(n_samples, n_features_in_)`` after a plain ``fit``; after :meth:`from_model`,
            inputs in the model's input shape (or flattened, or the screened features).
        response : array-like of shape (n_samples,), optional, keyword-only
            The black box's responses at ``X`` (what the surrogate approximates, e.g. the logit
            of the explained class; not a class index). Required after a plain ``fit``; after
            :meth:`from_model` it defaults to the stored model's clipped logits of
            ``target_class_``. (The old second positional argument ``explain(X, y)`` and the
            keyword ``y=`` still work for one release, with a ``DeprecationWarning``.)

        Returns
        -------
        Explanation
            ``values``: ``coef_[h*]`` per sample, shape ``(n, n_features_in_)`` after a plain fit
            or the model's input shape after :meth:`from_model` (screened-out features get 0);
            ``base_values``: ``intercept_[h*]``; ``target``: ``target_class_`` (0 after a plain
            fit); ``extras``: ``component`` (n,), ``component_proba`` (n,), ``responsibilities``
            (n, J), ``response`` (n,) the response used, ``fitted`` (n,) ``intercept + x' coef``,
            ``contributions`` (``coef * x``, like ``values``) and ``values_ci`` (``values`` shape
            plus a trailing 2: 95 % credible intervals, 0 for screened-out features).
        """
        response = resolve_response(args, kwargs, response)
        return explain_samples(self, X, response)

    def explain_global(
        self, k: int = 150, *, absolute: bool = False, min_weight: float = 0.01, credible_only: bool = False
    ) -> list[GlobalInsight]:
        """The paper's "generalizable insights": the top-k features of each occupied component.

        Parameters
        ----------
        k : int, default=150
            Features kept per component (the paper keeps 150 of 784 pixels); at most
            ``n_features_in_``.
        absolute : bool, default=False
            Rank by ``|coef|`` (the authors' code) instead of signed ``coef`` (evidence *for* the
            class).
        min_weight : float in [0, 1), default=0.01
            Components whose posterior mean weight is below this are ignored, and so are
            components never occupied (``occupancy_ == 0``: their summaries are prior draws).
        credible_only : bool, default=False
            Rank only features whose 95 % credible interval excludes 0 (the list may be shorter
            than ``k``); the elastic-net posterior means are never exactly sparse.

        Returns
        -------
        list of GlobalInsight
            One per component with ``weights_ >= min_weight``, heaviest first (see
            :class:`~scrutiny.surrogate.GlobalInsight`).
        """
        return global_insights(self, k, absolute, min_weight, credible_only)
