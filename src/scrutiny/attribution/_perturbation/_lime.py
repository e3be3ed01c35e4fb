"""LIME for tabular data and images (public class re-exported by :mod:`scrutiny.attribution.perturbation`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..._validation import Interval, Options, check_array
from ...exceptions import InvalidParameterError
from .._base import Explainer, RawAttribution
from ._common import COMMON_HINTS, SPACES, add_all_outputs, check_budget, check_space
from ._compose import chunk_rows, resolve_fills, resolve_segments
from ._design import root_seed, schedule
from ._engine import pad, run
from ._problems import ImageProblem, TabularProblem, tabular_stats


class LIME(Explainer):
    """Local Interpretable Model-agnostic Explanations for tabular data and images.

    A weighted ridge regression fitted to the model's outputs on perturbations of ``x``.
    The defaults are lime's (``LimeTabularExplainer`` / ``LimeImageExplainer``) except where
    noted; the surrogates of every output come from one fit.

    Parameters
    ----------
    model : torch.nn.Module, fitted scikit-learn estimator, callable or Model
    mode : {"tabular", "image"}, default "tabular"
        ``"tabular"``: X of shape (n, d). ``"image"``: X of shape (n, C, H, W) or (n, H, W),
        explained over superpixels.
    training_data : array-like of shape (n_train, d)
        Tabular mode (required): feature scales, quartiles and bin/category frequencies.
    discretizer : {"quartile", "decile"} or None, default "quartile"
        Tabular mode. With a discretizer (lime's default ``discretize_continuous=True``)
        every feature is binned; perturbations draw bins from their training frequencies
        (values inside a bin from a truncated normal) and the surrogate's features are
        binary: "x_j's bin kept". With None, continuous features are perturbed with
        Gaussian noise of one training standard deviation *around x* (lime's
        ``sample_around_instance=True``; lime's default samples around the training mean)
        and the coefficients are per standard deviation of each feature.
    categorical_features : sequence of int, optional
        Tabular mode: columns drawn from their training values; binary "same value as x".
    segments : {"slic", "quickshift", "grid"} or int array, default "slic"
        Image mode: a method of :func:`scrutiny.data.segment` (see ``segment_params``), or
        labels of shape (H, W) (shared by all images) or (n, H, W). Any integer labels are
        accepted; they are renumbered ``0..S-1`` in sorted order.
    segment_params : dict, optional
        Keyword arguments of the segmentation (e.g. ``{"n_segments": 30}`` or ``{"cell": 2}``).
    baseline : float, "mean" or array-like, default 0.0
        Image mode: what a hidden superpixel becomes (lime's ``hide_color``): a constant,
        ``"mean"`` (each superpixel's mean colour, lime's ``hide_color=None``), or an image
        broadcastable to (C, H, W).
    n_samples : int, "auto" or None, default None
        Perturbations per input, the input itself included. None: lime's defaults, 5000
        (tabular) or 1000 (image). "auto": see :mod:`scrutiny.attribution.perturbation`. At
        least ``n_features + 2``.
    kernel_width : float > 0 or None, default None
        Width ``w`` of the kernel ``exp(-D**2 / (2 w**2))`` (lime's ``sqrt(exp(-D**2 / w**2))``).
        None: ``0.75 * sqrt(d)`` on the Euclidean distance in the interpretable (binary or
        standardised) space for tabular data; ``0.25`` on the cosine distance of the masks for
        images.
    alpha : float >= 0, default 1.0
        Ridge penalty (lime's ``Ridge(alpha=1)``); the intercept is not penalised.
    space : {"auto", "raw", "probability", "log_odds"}, default "auto"
        The explained space: ``"auto"`` is probabilities for classifiers and raw outputs for
        regression models.
    tol : float, default 0.01
        Stopping tolerance of ``n_samples="auto"``.
    feature_names : sequence of str, optional
        Tabular mode: one name per column.
    batch_size : int, optional
        Perturbed rows built and passed to ``model.predict`` at once.
    random_state : int, numpy.random.Generator or None
        Seed of the perturbations (one design per call, shared by all inputs).

    Notes
    -----
    ``explain(X, target)`` returns an :class:`~scrutiny.explanation.Explanation` with

    * ``values``: tabular (n, d) coefficients; image: the input's shape, every pixel holding
      its superpixel's coefficient;
    * ``base_values`` (n,): the intercept (the surrogate with every feature "off");
    * ``stderr``: sandwich standard errors of the coefficients;
    * ``extras``: ``score`` (lime's weighted R^2), ``local_pred`` (the surrogate at x),
      ``intercept_all`` (n, K), ``all_outputs`` (n, n_features, K): coefficients of every
      output, ``n_samples_used``; image mode adds ``segments`` (n, H, W),
      ``n_segments`` (n,), ``segment_values`` and ``segment_stderr`` (n, S_max), zero-padded
      when images have different numbers of superpixels.

    Unlike lime there is no feature selection: every feature keeps its coefficient (lime's
    result for ``num_features >= d``).

    References
    ----------
    M. T. Ribeiro, S. Singh, C. Guestrin, "'Why should I trust you?': Explaining the
    predictions of any classifier", KDD 2016.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer                    # doctest: +SKIP
    >>> from sklearn.linear_model import LogisticRegression                 # doctest: +SKIP
    >>> X, y = load_breast_cancer(return_X_y=True)                          # doctest: +SKIP
    >>> clf = LogisticRegression(max_iter=5000).fit(X, y)                   # doctest: +SKIP
    >>> e = LIME(clf, training_data=X, random_state=0).explain(X[:5])       # doctest: +SKIP
    >>> e.values.shape, e.extras["score"].shape                             # doctest: +SKIP
    ((5, 30), (5,))
    """

    _constraints = {
        "mode": [Options("tabular", "image")],
        "training_data": ["array-like", None],
        "discretizer": [Options("quartile", "decile"), None],
        "categorical_features": ["array-like", None],
        "segments": [Options("slic", "quickshift", "grid"), "array-like"],
        "segment_params": [dict, None],
        "baseline": [Interval(float), Options("mean"), "array-like"],
        "n_samples": [Interval(int, 1, None), Options("auto"), None],
        "kernel_width": [Interval(float, 0, None, closed="neither"), None],
        "alpha": [Interval(float, 0, None)],
        "space": [SPACES],
        "tol": [Interval(float, 0, None, closed="neither")],
        "feature_names": ["array-like", None],
        "batch_size": [Interval(int, 1, None), None],
        "random_state": ["random_state"],
    }
    _hints = {
        **COMMON_HINTS,
        "kernel_width": "None uses lime's 0.75 * sqrt(n_features) (tabular) or 0.25 (image).",
        "n_samples": "None uses lime's defaults (5000 tabular, 1000 image).",
        "segments": "Pass a segmentation method name or integer labels of shape (H, W) or (n, H, W).",
        "baseline": "lime's hide_color: 0 (black), 'mean' (superpixel mean) or an image.",
    }

    def __init__(
        self,
        model: Any,
        mode: str = "tabular",
        *,
        training_data: Any = None,
        discretizer: str | None = "quartile",
        categorical_features: Any = None,
        segments: Any = "slic",
        segment_params: dict | None = None,
        baseline: Any = 0.0,
        n_samples: int | str | None = None,
        kernel_width: float | None = None,
        alpha: float = 1.0,
        space: str = "auto",
        tol: float = 0.01,
        feature_names: Any = None,
        batch_size: int | None = None,
        random_state: Any = None,
    ) -> None:
        super().__init__(model)
        self.mode = mode
        self.training_data = training_data
        self.discretizer = discretizer
        self.categorical_features = categorical_features
        self.segments = segments
        self.segment_params = segment_params
        self.baseline = baseline
        self.n_samples = n_samples
        self.kernel_width = kernel_width
        self.alpha = alpha
        self.space = space
        self.tol = tol
        self.feature_names = feature_names
        self.batch_size = batch_size
        self.random_state = random_state

    # -- checks ------------------------------------------------------------------------------
    def _check(self, X: np.ndarray) -> None:
        owner = "LIME"
        check_space(owner, self.model, self.space)
        if self.mode == "tabular":
            if X.ndim != 2:
                raise InvalidParameterError(
                    f"{owner}: mode='tabular' needs X of shape (n_samples, n_features); got {X.shape}. "
                    "For images use LIME(model, mode='image')."
                )
            self._training(X.shape[1])
            self._categorical(X.shape[1])
            check_budget(owner, self.n_samples, X.shape[1] + 2, f"(n_features + 2 = {X.shape[1]} + 2)", X.shape[1])
        else:
            if X.ndim not in (3, 4):
                raise InvalidParameterError(
                    f"{owner}: mode='image' needs X of shape (n, C, H, W) or (n, H, W); got {X.shape}. "
                    "For tabular data use mode='tabular'."
                )
            if self.feature_names is not None:
                raise InvalidParameterError(
                    f"{owner}: feature_names is for mode='tabular'; got {len(self.feature_names)} names in "
                    "image mode. Drop feature_names."
                )

    def _training(self, d: int) -> np.ndarray:
        if self.training_data is None:
            raise InvalidParameterError(
                "LIME: mode='tabular' needs training_data of shape (n_train, n_features) to learn feature "
                "scales, bins and frequencies; got None. Pass e.g. training_data=X_train."
            )
        train = check_array(self.training_data, "training_data", ndim=2, min_samples=2)
        if train.shape[1] != d:
            raise InvalidParameterError(
                f"LIME: training_data must have the {d} features of X; got shape {train.shape}. "
                "Pass the training rows in the same column order as X."
            )
        return train

    def _categorical(self, d: int) -> np.ndarray:
        if self.categorical_features is None:
            return np.zeros(0, dtype=np.int64)
        cats = np.asarray(self.categorical_features)
        if cats.ndim != 1 or (cats.size and not np.issubdtype(cats.dtype, np.integer)):
            raise InvalidParameterError(
                f"LIME: categorical_features must be a list of column indices; got {self.categorical_features!r}."
            )
        if cats.size and (cats.min() < 0 or cats.max() >= d):
            raise InvalidParameterError(
                f"LIME: categorical_features must be column indices in [0, {d - 1}]; got {cats.tolist()}."
            )
        return np.unique(cats.astype(np.int64))

    # -- explain -----------------------------------------------------------------------------
    def _explain(self, X: np.ndarray, target: np.ndarray, rng: np.random.Generator) -> RawAttribution:
        space = check_space("LIME", self.model, self.space)
        seed = root_seed(rng)
        K = int(self.model.n_outputs)
        if self.mode == "tabular":
            return self._tabular(X, target, seed, space, K)
        return self._image(X, target, seed, space, K)

    def _tabular(self, X, target, seed, space, K) -> RawAttribution:
        n, d = X.shape
        train = self._training(d)
        stats = tabular_stats(train, self.discretizer, self._categorical(d))
        width = 0.75 * np.sqrt(d) if self.kernel_width is None else float(self.kernel_width)
        sizes = schedule("auto" if self.n_samples == "auto" else (self.n_samples or 5000), 5000)
        problem = TabularProblem(
            self.model, space, X, stats, width, float(self.alpha), sizes, seed,
            chunk_rows(self.model, d, self.batch_size), "LIME",
        )
        fit = run(problem, n, K, target, float(self.tol), "LIME")
        coef = np.stack(fit.coef)  # (n, d, K)
        rows = np.arange(n)
        on = (stats.kinds != 0).astype(np.float64)  # the instance: bins kept, zero noise
        local = fit.intercept + np.einsum("j,njk->nk", on, coef)
        extras = {
            "score": fit.score,
            "local_pred": local[rows, target],
            "intercept_all": fit.intercept,
            "n_samples_used": fit.n_used,
        }
        add_all_outputs(extras, "all_outputs", coef)
        return RawAttribution(coef[rows, :, target], fit.intercept[rows, target], np.stack(fit.stderr), extras)

    def _image(self, X, target, seed, space, K) -> RawAttribution:
        n = X.shape[0]
        labels = resolve_segments(self.segments, self.segment_params, X, "LIME")
        n_seg = labels.reshape(n, -1).max(axis=1) + 1
        check_budget("LIME", self.n_samples, int(n_seg.max()) + 2, f"(n_segments + 2 = {int(n_seg.max())} + 2)",
                     int(n_seg.max()))
        fills = resolve_fills(self.baseline, X, labels, n_seg, "LIME")
        width = 0.25 if self.kernel_width is None else float(self.kernel_width)
        sizes = schedule("auto" if self.n_samples == "auto" else (self.n_samples or 1000), 1000)
        problem = ImageProblem(
            self.model, space, X, labels, n_seg, fills, width, float(self.alpha), sizes, seed,
            chunk_rows(self.model, int(np.prod(X.shape[1:])), self.batch_size), "LIME",
        )
        fit = run(problem, n, K, target, float(self.tol), "LIME")
        S = int(n_seg.max())
        coef = pad(fit.coef, S)  # (n, S, K)
        se = pad(fit.stderr, S)
        rows = np.arange(n)
        seg_values = coef[rows, :, target]
        pixel = np.take_along_axis(seg_values, labels.reshape(n, -1), axis=1).reshape(labels.shape)
        pixel_se = np.take_along_axis(se, labels.reshape(n, -1), axis=1).reshape(labels.shape)
        if X.ndim == 4:
            pixel = np.broadcast_to(pixel[:, None], X.shape)
            pixel_se = np.broadcast_to(pixel_se[:, None], X.shape)
        local = fit.intercept + coef.sum(axis=1)
        extras = {
            "score": fit.score,
            "local_pred": local[rows, target],
            "intercept_all": fit.intercept,
            "n_samples_used": fit.n_used,
            "segments": labels,
            "n_segments": n_seg,
            "segment_values": seg_values,
            "segment_stderr": se,
            "all_outputs": coef,
        }
        return RawAttribution(pixel, fit.intercept[rows, target], pixel_se, extras)
