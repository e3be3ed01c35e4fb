"""``DMMMENExplainer``: DMM-MEN individual explanations of images over superpixels.

The paper's individual explanation for high-dimensional inputs (Guo et al. 2018, section 4.2):
superpixel on/off masks around one image, the black box's response on the perturbed images, one
:class:`~scrutiny.surrogate.DMMMEN` fit per image, and the coefficients of the component of the
unperturbed image. It reuses the perturbation engine of LIME (:mod:`._perturbation`): the mask
streams and their tags (``_design``), image composition, the segment-mean fill and chunked model
evaluation (``_compose``); the estimator comes from :mod:`scrutiny.surrogate`'s public API.

References
----------
Guo, W., Huang, S., Tao, Y., Xing, X. & Lin, L. (2018). Explaining deep learning models - a
Bayesian non-parametric approach. NeurIPS 31.
Ribeiro, M. T., Singh, S. & Guestrin, C. (2016). "Why should I trust you?": Explaining the
predictions of any classifier. KDD.
"""

from __future__ import annotations

import os
import time
import warnings
from typing import Any, ClassVar

import numpy as np

from .._validation import Interval, Options
from ..exceptions import ConvergenceWarning, InvalidParameterError
from ._base import Explainer, RawAttribution
from ._perturbation import external_stacklevel
from ._perturbation._common import check_budget
from ._perturbation._compose import chunk_rows, compose_images, evaluate, resolve_fills, resolve_segments
from ._perturbation._design import TAG_SAMPLER, TAG_UNIFORM_SIZE, bernoulli_masks, root_seed, stream

__all__ = ["DMMMENExplainer", "inert_segments", "uniform_size_masks"]

#: ``space`` options: the response the surrogate is fitted to
SPACES = Options("auto", "raw", "probability", "log_odds")
#: ``summary`` options: the posterior summary that ranks the superpixels
SUMMARIES = Options("projection", "component")


def uniform_size_masks(seed: int, n_features: int, m: int) -> np.ndarray:
    """Masks whose number of "off" features is uniform on ``{1..n_features}`` (LIME's and
    LEMNA's sampler); the first row is all ones (the explained input itself).

    Drawn from a stream that depends only on ``(seed, n_features)``, so inputs with as many
    superpixels share one design.

    Returns
    -------
    ndarray of shape (m, n_features), float64 0/1
    """
    rng = stream(seed, TAG_UNIFORM_SIZE, n_features)
    n_off = rng.integers(1, n_features + 1, size=m)
    ranks = np.argsort(np.argsort(rng.random((m, n_features)), axis=1), axis=1)
    Z = (ranks >= n_off[:, None]).astype(np.float64)
    if m:
        Z[0] = 1.0
    return Z


def inert_segments(image: np.ndarray, fill: np.ndarray, labels: np.ndarray, n_segments: int) -> np.ndarray:
    """Superpixels that hiding leaves unchanged: every pixel (every channel) equals the fill.

    Returns
    -------
    ndarray of shape (n_segments,), bool
    """
    same = np.all(np.asarray(image) == np.asarray(fill), axis=0) if np.ndim(image) == 3 else image == fill
    changed = np.bincount(labels.ravel(), weights=~same.ravel(), minlength=n_segments)[:n_segments]
    return changed == 0


class DMMMENExplainer(Explainer):
    """DMM-MEN individual explanations of images over superpixels (Guo et al. 2018, section 4.2).

    For each image: segment it into superpixels, draw ``n_samples`` on/off masks over the
    superpixels that hiding can change (the number hidden uniform on ``{1..A}``; the first mask
    keeps every superpixel), render the masked images (hidden superpixels replaced by
    ``baseline``), take the black box's response (``space``: by default its probability) for the
    target class on them, fit :class:`DMMMEN` to ``(masks, responses)`` and summarise the
    posterior (``summary``): by default, the least-squares projection of the fitted mixture onto
    the masks, averaged over the posterior draws (with 95 % credible intervals); or, the paper's
    rule, the coefficients of the component of the unperturbed (all-ones) row,
    ``h* = argmax_h pi_h N(y* | b0_h + 1' beta_h, sigma2_h)``. Every input gets its own fit.

    Parameters
    ----------
    model : torch.nn.Module, fitted scikit-learn estimator, callable or Model
        A classifier, or a regression model (explained in ``space="raw"``).
    n_samples : int, default=1000
        Masks per image, the unperturbed one included (LIME's image default). At least
        ``n_segments + 2``.
    segments : {"slic", "quickshift", "grid"} or int array, default="slic"
        A method of :func:`scrutiny.data.segment` (parameters in ``segment_params``), or labels
        of shape (H, W) (shared) or (n, H, W); any integer labels, renumbered ``0..S-1``.
    segment_params : dict, optional
        E.g. ``{"n_segments": 50}`` (the slic default: 31-48 superpixels on MNIST).
    baseline : float, "mean" or array-like, default=0.0
        What a hidden superpixel becomes: a constant (0 is the paper's "off"), ``"mean"`` (its
        mean colour, LIME's ``hide_color=None``) or an image broadcastable to (C, H, W).
    sampling : {"uniform_size", "bernoulli"}, default="uniform_size"
        Mask design: the paper's (number of hidden superpixels ~ U{1..S}) or independent
        Bernoulli(1/2) entries (this library's image LIME).
    space : {"auto", "probability", "log_odds", "raw"}, default="auto"
        The space explained, i.e. the response DMM-MEN is fitted to: ``"probability"`` of the
        target class; ``"log_odds"``, the one-vs-rest logit ``log(p / (1 - p))`` with ``p``
        clipped to ``[1e-6, 1 - 1e-6]`` (the paper's response); or ``"raw"``, the model's raw
        output. ``"auto"``: ``"probability"`` for classifiers, ``"raw"`` for regression models.
        The probability is the default because it is the faithful one (see Notes).
    anchor : {"baseline", None}, default="baseline"
        ``"baseline"``: the response is taken relative to the baseline image's (every superpixel
        hidden), and DMM-MEN is fitted without intercepts, so every component passes through the
        baseline image and explains the response by the superpixels' slopes (the reference point
        of Shapley values and Integrated Gradients). ``None``: the paper's fit, with an
        intercept per component. See Notes.
    summary : {"projection", "component"}, default="projection"
        What ranks the superpixels. ``"projection"``: per posterior draw, every mask's fitted
        response (its component's regression) regressed on the masks; the slopes averaged over
        draws. It carries the jumps between components, e.g. a superpixel whose removal moves
        the image to another regime. ``"component"``: the slopes of ``h*``, the image's own
        regime (the paper's rule). See Notes.
    n_components, n_priors : int, default=6, 3
        ``J`` and ``K`` of DMM-MEN.
    n_iter, n_burnin, n_chains : int, default=1000, 500, 2
        Sampler length per chain (burn-in included) and number of chains. See Notes.
    dmm_params : dict, optional
        Further :class:`DMMMEN` constructor parameters (priors, ``thin``, ``rhat_threshold``).
        The explainer's fits default to ``init="mixed"`` and ``chain_selection="best"`` (see
        Notes); pass e.g. ``{"init": "kmeans", "chain_selection": "all"}`` for plain pooling.
        They run their chains in parallel processes (``n_jobs``: one per chain, at most one per
        CPU; ``benchmarks/dmm_men.py``, section 4, prints the time per explanation);
        ``{"n_jobs": 1}`` runs them in this process.
    feature_names : sequence of str, optional
        Recorded on the :class:`~scrutiny.explanation.Explanation` (one name per input feature).
    batch_size : int, optional
        Perturbed images built and passed to the model at once.
    random_state : int, numpy.random.Generator or None
        Seed of the masks and of the sampler (one design per call, shared by all inputs with
        the same number of superpixels).

    Notes
    -----
    ``explain(X, target)`` returns an :class:`~scrutiny.explanation.Explanation` whose
    ``values`` have the input's shape (every pixel holds its superpixel's value under
    ``summary``) and whose ``base_values`` are the baseline image's response (anchored fits) or
    the summary's intercept (``anchor=None``). ``extras``:

    * ``segments`` (n, H, W), ``n_segments`` (n,), ``inert_segments`` (n, S_max) bool: the
      superpixels that equal their fill (hiding them changes nothing), which get exactly 0 and
      stay out of the design and the fit;
    * ``segment_values`` (n, S_max) the values under ``summary``, ``segment_ci`` (n, S_max, 2)
      their 95 % credible intervals (zero-padded), ``segment_ranking`` (n, S_max) superpixels by
      decreasing value (padded with -1; the top-k segments are ``[:, :k]``);
    * both summaries whatever ``summary`` is: ``projection_segment_values`` /
      ``projection_segment_ci`` and ``component_segment_values`` / ``component_segment_ci``
      (``h*``'s coefficients); ``mixture_segment_values`` (n, S_max): the posterior mean of
      ``sum_h pi_h beta_h``, the mixture's average slope;
    * ``component`` (n,), ``component_proba`` (n,) its plug-in probability for the
      unperturbed image, ``component_weight`` (n,) its mixture weight;
    * ``response`` (n,) the response (in ``space``) of the image itself, ``baseline_response``
      (n,) that of the baseline image, ``local_pred`` (n,) the summary's prediction for the
      image (``base_values + sum(values)``);
    * ``converged`` (n,) bool (every label-invariant R-hat of the kept chain(s) below
      ``rhat_threshold``), ``rhat_loglik`` (n,), ``rhat_explanation`` (n,) the largest split
      R-hat of the summary's top-10 values (the numbers the explanation reports),
      ``topk_jaccard`` (n,) the between-chain overlap of the top-10 superpixels (NaN with one
      kept chain), ``n_chains_used`` (n,), ``fit_time`` (n,) seconds per fit. A
      :class:`~scrutiny.exceptions.ConvergenceWarning` per call names the inputs whose fits
      have not converged or whose chains disagree.

    Decisions on the summary (``benchmarks/table1.py``: the paper's keep-top-20 test and the
    deletion AUC, next to LIME and random segments):

    * **The projection, not ``h*``, by default.** A mixture whose weights do not depend on the
      mask explains a response that collapses when one key superpixel is hidden by putting the
      masks that hide it in another component: the jump is carried by the allocation, not by any
      slope, so ``h*``'s slopes miss that superpixel (the ``and_classifier`` test: a digit that
      needs two strokes; on MNIST a few images in every forty lose their class when ``h*``'s
      top 20 are kept). The projection reads the whole fitted mixture, allocations included.
    * **``h*`` is kept** (``summary="component"``): on a black box with two regimes
      (``tests/test_dmm_men_explain.py``) it recovers the image's own regime, which the
      projection, an average over every mask, mixes with the other regime's after ranking the
      switch first.
    * **Inert superpixels are left out.** On MNIST most SLIC superpixels are blank background
      equal to the baseline 0; left in the fit, an anchored component spreads the response's
      level over them and ranks them above strokes. Their effect is known to be exactly 0.

    Decisions on the response and the fit (the figures: ``benchmarks/table1.py``, the paper's
    keep-top-20 test, and ``benchmarks/_dmm_faithful_explore.py``, every response, start, chain
    length and posterior summary on the same images and masks):

    * **Probability, not the clipped logit.** Fitted to the clipped logit, the component of the
      unperturbed image, ``h*``, ranks superpixels far less faithfully than LIME: a confident
      network's logit stays near its clip for every mask that hides few superpixels, so ``h*``
      is a component over masks where the response barely moves, and its slopes are noise (the
      raw logit and the unclipped log-odds do no better).
    * **Anchored at the baseline, no intercepts.** With an intercept per component, the mixture
      explains a response that jumps when one key superpixel is hidden by two components with
      different intercepts and near-zero slopes, and the ranking is lost (a few images in every
      fifty). Without intercepts, on the response relative to the baseline image, every
      component must explain the response by slopes.

    Decisions on speed and convergence (the figures: ``benchmarks/table1.py`` prints the time per
    explanation and the share of converged fits; ``benchmarks/dmm_men.py``, section 4, the
    convergence diagnostics): 2 chains x 1,000 sweeps (500 burn-in) run in parallel processes.
    The mixture posterior of these problems is multimodal and the Gibbs sampler does not move
    between modes (chains settle on different numbers of components, and a k-means warm start
    alone can leave a chain in a mode that explains a dominant superpixel by two intercepts
    instead of a slope), so pooling chains makes R-hat large whatever their length. The fits
    therefore start one chain from the k-means partition and one from a single component
    (``init="mixed"``) and keep the chain(s) with the best log-likelihood
    (``chain_selection="best"``; usually one, see ``extras["n_chains_used"]``);
    ``extras["converged"]`` and the R-hats describe the kept chain(s) only. The 200-sweep chains
    of earlier versions were faster and ranked less faithfully. Compare settings on several
    seeds: the explanation of one image varies from seed to seed.

    References
    ----------
    Guo, W., Huang, S., Tao, Y., Xing, X. & Lin, L. (2018). Explaining deep learning models - a
    Bayesian non-parametric approach. NeurIPS 31.

    Examples
    --------
    >>> from scrutiny.zoo import reference_model                            # doctest: +SKIP
    >>> from scrutiny.data import load_mnist                                # doctest: +SKIP
    >>> net, _ = reference_model("cnn", "mnist")                            # doctest: +SKIP
    >>> X = load_mnist(split="test").X[:2]                                  # doctest: +SKIP
    >>> e = DMMMENExplainer(net, random_state=0).explain(X)                 # doctest: +SKIP
    >>> e.values.shape, e.extras["segment_ranking"][:, :5]                  # doctest: +SKIP
    """

    _constraints: ClassVar[dict[str, list]] = {
        "n_samples": [Interval(int, 3, None)],
        "segments": [Options("slic", "quickshift", "grid"), "array-like"],
        "segment_params": [dict, None],
        "baseline": [Interval(float), Options("mean"), "array-like"],
        "sampling": [Options("uniform_size", "bernoulli")],
        "space": [SPACES],
        "anchor": [Options("baseline"), None],
        "summary": [SUMMARIES],
        "n_components": [Interval(int, 1, None)],
        "n_priors": [Interval(int, 1, None)],
        "n_iter": [Interval(int, 1, None)],
        "n_burnin": [Interval(int, 0, None)],
        "n_chains": [Interval(int, 1, None)],
        "dmm_params": [dict, None],
        "feature_names": ["array-like", None],
        "batch_size": [Interval(int, 1, None), None],
        "random_state": ["random_state"],
    }
    _hints: ClassVar[dict[str, str]] = {
        "n_samples": "1000 masks is the paper's and LIME's budget.",
        "segments": "Pass a segmentation method name or integer labels of shape (H, W) or (n, H, W).",
        "baseline": "0 (black, the paper), 'mean' (superpixel mean) or an image.",
        "space": "'probability' is the faithful response ('auto' picks it for classifiers, 'raw' for regression "
                 "models); 'log_odds' is the paper's.",
        "n_iter": "n_iter counts all sweeps, burn-in included (200 is the default).",
    }

    def __init__(
        self,
        model: Any,
        *,
        n_samples: int = 1000,
        segments: Any = "slic",
        segment_params: dict | None = None,
        baseline: Any = 0.0,
        sampling: str = "uniform_size",
        space: str = "auto",
        anchor: str | None = "baseline",
        summary: str = "projection",
        n_components: int = 6,
        n_priors: int = 3,
        n_iter: int = 1000,
        n_burnin: int = 500,
        n_chains: int = 2,
        dmm_params: dict | None = None,
        feature_names: Any = None,
        batch_size: int | None = None,
        random_state: Any = None,
    ) -> None:
        super().__init__(model)
        self.n_samples = n_samples
        self.segments = segments
        self.segment_params = segment_params
        self.baseline = baseline
        self.sampling = sampling
        self.space = space
        self.anchor = anchor
        self.summary = summary
        self.n_components = n_components
        self.n_priors = n_priors
        self.n_iter = n_iter
        self.n_burnin = n_burnin
        self.n_chains = n_chains
        self.dmm_params = dmm_params
        self.feature_names = feature_names
        self.batch_size = batch_size
        self.random_state = random_state

    # -- checks ------------------------------------------------------------------------------
    def _check(self, X: np.ndarray) -> None:
        from ..surrogate import DMMMEN  # on use: `import scrutiny.attribution` stays without numba

        owner = type(self).__name__
        self._space()
        if X.ndim not in (3, 4):
            raise InvalidParameterError(
                f"{owner}: X must be a batch of images of shape (n, C, H, W) or (n, H, W); got {X.shape}. "
                "For tabular data fit DMMMEN directly (DMMMEN.from_model)."
            )
        reserved = {"n_components", "n_priors", "n_iter", "n_burnin", "n_chains", "random_state"}
        if self.anchor is not None:
            reserved.add("fit_intercept")  # anchored fits have no intercepts
        extra = dict(self.dmm_params or {})
        valid = list(DMMMEN().get_params())
        bad = sorted(set(extra) & reserved) + sorted(set(extra) - set(valid))
        if bad:
            raise InvalidParameterError(
                f"{owner}: dmm_params must hold other DMMMEN parameters than {sorted(reserved)} (which are "
                f"explainer arguments); got {bad}. Valid keys: {sorted(set(valid) - reserved)}."
            )

    def _space(self) -> str:
        """The explained space, ``"auto"`` resolved; probabilities and log-odds need a classifier."""
        if self.space == "auto":
            return "raw" if self.model.output == "regression" else "probability"
        if self.space in ("log_odds", "probability") and self.model.output == "regression":
            raise InvalidParameterError(
                f"{type(self).__name__}: space={self.space!r} needs a classifier, but the model's output is "
                "'regression'. Use space='raw' (or 'auto'), or wrap the model with as_model(..., output='logit')."
            )
        return self.space

    def _masks(self, seed: int, S: int) -> np.ndarray:
        if self.sampling == "bernoulli":
            return bernoulli_masks(seed, S, 0, int(self.n_samples), include_ones=True)
        return uniform_size_masks(seed, S, int(self.n_samples))

    # -- explain -----------------------------------------------------------------------------
    def _explain(self, X: np.ndarray, target: np.ndarray, rng: np.random.Generator) -> RawAttribution:
        owner = type(self).__name__
        if self.n_burnin >= self.n_iter:
            raise InvalidParameterError(
                f"{owner}: n_burnin must be smaller than n_iter; got n_burnin={self.n_burnin}, n_iter={self.n_iter}."
            )
        from ..surrogate import DMMMEN, chain_pool  # on use, as in _check

        space = self._space()
        seed = root_seed(rng)
        sampler_seed = int(np.random.SeedSequence([seed, TAG_SAMPLER]).generate_state(1)[0])
        n = X.shape[0]
        labels = resolve_segments(self.segments, self.segment_params, X, owner)
        n_seg = labels.reshape(n, -1).max(axis=1) + 1
        S_max = int(n_seg.max())
        if self.n_samples < S_max + 2:
            raise InvalidParameterError(
                f"{owner}: n_samples must be at least n_segments + 2 = {S_max + 2}; got {self.n_samples}. "
                "Use more masks (1000 is typical) or fewer superpixels."
            )
        check_budget(owner, self.n_samples, S_max + 2, "(n_segments + 2)", S_max)  # the masks' memory bound
        rows_per_chunk = chunk_rows(self.model, int(np.prod(X.shape[1:])), self.batch_size)
        n_jobs = max(1, min(int(self.n_chains), os.cpu_count() or 1))
        params = {"init": "mixed", "chain_selection": "best", "n_jobs": n_jobs, **dict(self.dmm_params or {})}
        params.update(
            n_components=self.n_components, n_priors=self.n_priors, n_iter=self.n_iter,
            n_burnin=self.n_burnin, n_chains=self.n_chains, random_state=sampler_seed,
        )
        anchored = self.anchor is not None
        if anchored:
            params["fit_intercept"] = False
        seg_values = np.zeros((n, S_max))
        mix_values = np.zeros((n, S_max))
        seg_ci = np.zeros((n, S_max, 2))
        comp_values, proj_values = np.zeros((n, S_max)), np.zeros((n, S_max))
        comp_ci, proj_ci = np.zeros((n, S_max, 2)), np.zeros((n, S_max, 2))
        ranking = np.full((n, S_max), -1, dtype=np.int64)
        scalars = {k: np.zeros(n) for k in ("component_proba", "component_weight", "response", "baseline_response",
                                             "local_pred",
                                             "rhat_loglik", "rhat_explanation", "topk_jaccard", "fit_time")}
        component = np.zeros(n, dtype=np.int64)
        converged = np.zeros(n, dtype=bool)
        chains_used = np.zeros(n, dtype=np.int64)
        intercept = np.zeros(n)
        fills = resolve_fills(self.baseline, X, labels, n_seg, owner)
        inert_all = np.zeros((n, S_max), dtype=bool)
        with chain_pool(int(params["n_jobs"])):  # one process pool for every image's fit
            for i in range(n):
                S = int(n_seg[i])
                image, lab, fill = X[i], labels[i], fills[i]
                # A superpixel that equals its fill (MNIST's blank background with baseline 0) is
                # never changed by hiding it: its effect is exactly 0, so it gets 0 and stays out of
                # the fit. Left in, an anchored component spreads the response's level over it and
                # ranks blank superpixels above the strokes (benchmarks/table1.py, DMM-MEN image).
                inert = inert_segments(image, fill, lab, S)
                inert_all[i, :S] = inert
                active = np.flatnonzero(~inert)
                A = active.size
                if A == 0:  # nothing to explain: every superpixel already equals the baseline
                    out0 = evaluate(self.model, space, 1, lambda s, e: image[None].astype(np.float32, copy=False),
                                    rows_per_chunk)[0, target[i]]
                    intercept[i] = scalars["response"][i] = scalars["baseline_response"][i] = out0
                    scalars["local_pred"][i] = out0
                    for key in ("component_proba", "rhat_loglik", "rhat_explanation", "topk_jaccard"):
                        scalars[key][i] = np.nan
                    converged[i] = True
                    continue
                Z = np.ones((int(self.n_samples), S))
                Z[:, active] = self._masks(seed, A)  # the design is over the superpixels that can change

                # one model pass over the masks and, last, the baseline image (every superpixel
                # hidden): the anchor of the fit
                Zx = np.vstack([Z, np.zeros((1, S))])

                def build(s, e, image=image, fill=fill, lab=lab, Zx=Zx):
                    return compose_images(image, fill, lab, Zx[s:e])

                out = evaluate(self.model, space, Zx.shape[0], build, rows_per_chunk)[:, target[i]]
                y, y_off = out[:-1], float(out[-1])
                if anchored:
                    y = y - y_off
                start = time.perf_counter()
                Za = Z[:, active]
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)  # summarised once below
                    try:
                        est = DMMMEN(**params).fit(Za, y)
                    except InvalidParameterError as exc:
                        raise InvalidParameterError(f"{owner}: fitting DMM-MEN to input {i} failed: {exc}") from exc
                P = est.component_proba(Za[:1], y[:1])[0]
                h = int(np.argmax(P))
                comp_values[i, active] = est.coef_[h]
                comp_ci[i, active] = est.coef_ci_[h]
                proj, proj_b = projection_draws(est, Za)  # (chains, draws, A), (chains, draws)
                proj_b0 = float(proj_b.mean())
                proj_values[i, active] = proj.mean(axis=(0, 1))
                proj_ci[i, active] = np.percentile(proj.reshape(-1, A), [2.5, 97.5], axis=0).T
                by_projection = self.summary == "projection"
                beta = (proj_values if by_projection else comp_values)[i, :S]
                seg_values[i, :S] = beta
                seg_ci[i, :S] = (proj_ci if by_projection else comp_ci)[i, :S]
                mix_values[i, active] = est.coef_mixture_
                ranking[i, :S] = np.argsort(-beta, kind="stable")
                component[i] = h
                intercept[i] = y_off if anchored else (proj_b0 if by_projection else est.intercept_[h])
                converged[i] = est.converged_
                scalars["component_proba"][i] = P[h]
                scalars["component_weight"][i] = est.weights_[h]
                scalars["response"][i] = y[0] + (y_off if anchored else 0.0)
                scalars["baseline_response"][i] = y_off
                scalars["local_pred"][i] = intercept[i] + beta.sum()
                scalars["rhat_loglik"][i] = est.rhat_.get("loglik", np.nan)
                draws = proj if by_projection else np.stack([np.asarray(d["beta"])[:, h, :] for d in est.draws_])
                scalars["rhat_explanation"][i] = _rhat_top(draws, min(10, A))
                scalars["topk_jaccard"][i] = _topk_jaccard(draws, min(10, A))
                chains_used[i] = est.chains_used_.size
                scalars["fit_time"][i] = time.perf_counter() - start
        self._warn_unconverged(converged, scalars, n)
        pixel = np.take_along_axis(seg_values, labels.reshape(n, -1), axis=1).reshape(labels.shape)
        if X.ndim == 4:
            pixel = np.broadcast_to(pixel[:, None], X.shape)
        extras = {
            "segments": labels,
            "n_segments": n_seg,
            "segment_values": seg_values,
            "segment_ci": seg_ci,
            "segment_ranking": ranking,
            "inert_segments": inert_all,
            "mixture_segment_values": mix_values,
            "component_segment_values": comp_values,
            "component_segment_ci": comp_ci,
            "projection_segment_values": proj_values,
            "projection_segment_ci": proj_ci,
            "component": component,
            "converged": converged,
            "n_chains_used": chains_used,
            "n_samples_used": np.full(n, int(self.n_samples)),
            **scalars,
        }
        return RawAttribution(np.array(pixel), intercept, None, extras)

    def _warn_unconverged(self, converged: np.ndarray, scalars: dict, n: int) -> None:
        """One ConvergenceWarning per call naming the inputs whose fits are not trustworthy."""
        unstable = np.flatnonzero(scalars["topk_jaccard"] < 0.5)
        failed = np.flatnonzero(~converged)
        if not (unstable.size or failed.size):
            return
        parts = []
        if failed.size:
            parts.append(
                f"the fits of {failed.size} of {n} input(s) (first: {int(failed[0])}) have not converged (an R-hat of "
                f"a label-invariant quantity >= {self._rhat_threshold()}; extras['converged'] flags them, "
                "extras['rhat_explanation'] is the R-hat of the explaining component's top coefficients)"
            )
        if unstable.size:
            parts.append(
                f"for {unstable.size} of {n} input(s) (first: {int(unstable[0])}) the chains disagree on the top "
                "superpixels of the explaining component (between-chain top-10 overlap < 0.5; extras['topk_jaccard'])"
            )
        warnings.warn(
            f"{type(self).__name__}: " + "; ".join(parts) + ". The mixture posterior is multimodal (chains settle on "
            "different numbers of components), which longer chains rarely fix: read those rankings beyond their "
            "first few superpixels as uncertain, or raise n_iter / n_chains.",
            ConvergenceWarning,
            stacklevel=external_stacklevel(),
        )

    def _rhat_threshold(self) -> float:
        return float(dict(self.dmm_params or {}).get("rhat_threshold", 1.05))


def projection_draws(est: Any, Z: np.ndarray) -> np.ndarray:
    """Per posterior draw, the least-squares projection of the fitted mixture onto the masks.

    In draw ``t`` every mask ``i`` has a component ``z_i`` and a fitted response
    ``b0_{z_i} + Z_i beta_{z_i}``; regressing these fitted responses on ``Z`` (with an intercept
    when the fit has them) gives the linear explanation that best reproduces the whole fitted
    mixture, the jumps between components included. Returns the slopes, shape
    (chains, draws, p), one row per kept draw, and the intercepts (chains, draws), 0 without.
    """
    fit_intercept = bool(getattr(est, "fit_intercept", True))
    D = np.column_stack([np.ones(len(Z)), Z]) if fit_intercept else Z
    pinv = np.linalg.pinv(D)  # (p [+1], n): one solve shared by every draw
    out, b = [], []
    for d in est.draws_:
        beta, b0, z = np.asarray(d["beta"]), np.asarray(d["intercept"]), np.asarray(d["z"]).astype(np.int64)
        means = np.einsum("ip,tjp->tij", Z, beta) + b0[:, None, :]  # (T, n, J)
        fitted = np.take_along_axis(means, z[:, :, None], axis=2)[:, :, 0]  # (T, n)
        coef = fitted @ pinv.T
        out.append(coef[:, 1:] if fit_intercept else coef)
        b.append(coef[:, 0] if fit_intercept else np.zeros(len(coef)))
    return np.stack(out), np.stack(b)


def _rhat_top(draws: np.ndarray, k: int) -> float:
    """Largest split R-hat of the top-k (by posterior mean) of per-chain draws (chains, T, p):
    the convergence of the numbers the explanation reports. The label-invariant R-hats behind
    ``converged`` include the prior terms of empty components, which the explanation never reads."""
    from ..surrogate import rhat

    top = np.argsort(-draws.mean(axis=(0, 1)), kind="stable")[:k]
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.nanmax(np.atleast_1d(rhat(draws[:, :, top]))))


def _topk_jaccard(draws: np.ndarray, k: int) -> float:
    """Jaccard overlap of the top-k (signed) values between chains (NaN with one chain)."""
    if draws.shape[0] < 2:
        return float("nan")
    tops = [set(np.argsort(-c.mean(axis=0), kind="stable")[:k].tolist()) for c in draws]
    pairs = [(a, b) for i, a in enumerate(tops) for b in tops[i + 1:]]
    return float(np.mean([len(a & b) / len(a | b) for a, b in pairs]))
