"""KernelSHAP (public class re-exported by :mod:`scrutiny.attribution.perturbation`)."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from ..._validation import Interval, Options, check_array
from ...exceptions import InvalidParameterError
from .._base import Explainer, RawAttribution
from ._common import COMMON_HINTS, SPACES, add_all_outputs, check_budget, check_space
from ._compose import chunk_rows, model_outputs
from ._design import MIN_SAMPLED, min_budget, root_seed
from ._engine import run
from ._problems import ShapleyProblem


class KernelSHAP(Explainer):
    """Shapley values by weighted linear regression over coalitions (Kernel SHAP).

    The game is interventional: ``v(S) = sum_b w_b f(x_S, b_{not S})`` over the (weighted)
    background rows ``b``; ``phi_0 = v(empty) = E f(background)`` and the efficiency
    constraint ``sum_j phi_j = f(x) - phi_0`` holds exactly. Coalitions are weighted by the
    Shapley kernel. Features whose value in x equals every background row's are dummy
    players: exactly 0.

    Coalition design (shared by all inputs): with ``M`` varying features, every one of the
    ``2**M - 2`` coalitions when the budget allows (exact Shapley values); otherwise the
    sizes 1 and M-1 are enumerated (which keeps the regression full rank), then further outer sizes (2 and M-2, ...) while the budget would cover them
    under proportional sampling (shap's rule), and the rest is sampled in complementary pairs
    ``(z, 1 - z)`` with sizes drawn from the Shapley kernel.

    Parameters
    ----------
    model : torch.nn.Module, fitted scikit-learn estimator, callable or Model
    background : array-like of shape (n_background, *input_shape)
        Reference rows (e.g. a sample of the training data), or one row.
    n_samples : int or "auto", default "auto"
        Coalitions per input (the model sees ``n_samples * n_background`` rows per input).
        At least ``2 * n_features + 4`` (or ``2**n_features - 2``, exact, when fewer). "auto": shap's ``2 M + 2048`` (all coalitions when that
        is not fewer), then more until the standard errors are small (see
        :mod:`scrutiny.attribution.perturbation`).
    max_background : int or None, default 100
        Larger backgrounds are summarised by k-means (scikit-learn, seed 0) into this many
        centroids weighted by cluster size (as ``shap.kmeans``); None keeps every row.
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
    ``values`` have the input's shape; ``base_values`` are ``E f(background)`` of the target;
    ``stderr`` are Covert & Lee's standard errors (sandwich covariance of the constrained
    regression with complementary pairs as units; 0 for exact enumeration); ``extras``:
    ``all_outputs`` (n, *input_shape, K) when small, ``base_values_all`` (n, K),
    ``exact`` (n,), ``n_samples_used`` (n,).

    References
    ----------
    S. M. Lundberg, S.-I. Lee, "A unified approach to interpreting model predictions",
    NeurIPS 2017.
    I. Covert, S.-I. Lee, "Improving KernelSHAP: Practical Shapley value estimation via
    linear regression", AISTATS 2021.

    Examples
    --------
    >>> import numpy as np
    >>> w, bg = np.array([1.0, -2.0, 0.5]), np.zeros((4, 3))
    >>> e = KernelSHAP(lambda X: X @ w, bg, random_state=0).explain(np.ones((1, 3)))
    >>> np.allclose(e.values, w * (1 - bg.mean(axis=0)))
    True
    """

    _constraints = {
        "background": ["array-like", None],
        "n_samples": [Interval(int, 1, None), Options("auto")],
        "max_background": [Interval(int, 1, None), None],
        "space": [SPACES],
        "tol": [Interval(float, 0, None, closed="neither")],
        "feature_names": ["array-like", None],
        "batch_size": [Interval(int, 1, None), None],
        "random_state": ["random_state"],
    }
    _hints = {**COMMON_HINTS, "max_background": "100 is typical; None keeps all rows (slower)."}

    def __init__(
        self,
        model: Any,
        background: Any = None,
        *,
        n_samples: int | str = "auto",
        max_background: int | None = 100,
        space: str = "auto",
        tol: float = 0.01,
        feature_names: Any = None,
        batch_size: int | None = None,
        random_state: Any = None,
    ) -> None:
        super().__init__(model)
        self.background = background
        self.n_samples = n_samples
        self.max_background = max_background
        self.space = space
        self.tol = tol
        self.feature_names = feature_names
        self.batch_size = batch_size
        self.random_state = random_state
        self._summary_cache: dict = {}

    def _background(self, shape: tuple[int, ...]) -> np.ndarray:
        if self.background is None:
            raise InvalidParameterError(
                "KernelSHAP: background must be an array of reference rows; got None. Pass e.g. "
                "KernelSHAP(model, background=X_train[:100])."
            )
        bg = check_array(self.background, "background")
        if bg.shape == shape:
            bg = bg[None]
        if bg.shape[1:] != shape:
            raise InvalidParameterError(
                f"KernelSHAP: background must have rows shaped like the samples of X, {shape} "
                f"({int(np.prod(shape))} features); got an array of shape {bg.shape}. Pass rows of the "
                "training data in the same feature order."
            )
        return bg

    def _check(self, X: np.ndarray) -> None:
        check_space("KernelSHAP", self.model, self.space)
        self._background(X.shape[1:])
        d = int(np.prod(X.shape[1:]))
        check_budget(
            "KernelSHAP", self.n_samples, min_budget(d),
            f"for {d} features (2 * n_features + {MIN_SAMPLED} coalitions: sizes 1 and n_features - 1 enumerated "
            "plus two sampled complementary pairs; or all 2**n_features - 2 coalitions when fewer)",
        )

    def _summary(self, bg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The background and its weights, k-means summarised when larger than max_background."""
        k = self.max_background
        if k is None or bg.shape[0] <= k:
            return bg, np.full(bg.shape[0], 1.0 / bg.shape[0])
        key = (bg.shape, hashlib.sha1(np.ascontiguousarray(bg).tobytes()).hexdigest(), k)
        if key not in self._summary_cache:
            from sklearn.cluster import KMeans

            flat = bg.reshape(bg.shape[0], -1)
            km = KMeans(n_clusters=int(k), n_init=3, random_state=0).fit(flat)
            counts = np.bincount(km.labels_, minlength=int(k)).astype(np.float64)
            keep = counts > 0
            centers = km.cluster_centers_[keep].reshape((-1,) + bg.shape[1:])
            self._summary_cache = {key: (centers, counts[keep] / counts.sum())}
        return self._summary_cache[key]

    def _explain(self, X: np.ndarray, target: np.ndarray, rng: np.random.Generator) -> RawAttribution:
        space = check_space("KernelSHAP", self.model, self.space)
        n, shape = X.shape[0], X.shape[1:]
        D = int(np.prod(shape))
        bg, bw = self._summary(self._background(shape))
        v0 = bw @ model_outputs(self.model, bg, space)  # (K,)
        fx = model_outputs(self.model, X, space)
        K = fx.shape[1]
        problem = ShapleyProblem(
            self.model, space, X, bg, bw, v0, fx, self.n_samples, root_seed(rng),
            chunk_rows(self.model, D, self.batch_size), "KernelSHAP",
        )
        phi = np.zeros((n, D, K))
        se = np.zeros((n, D))
        exact = np.ones(n, dtype=bool)
        used = np.zeros(n, dtype=np.int64)
        # 0 or 1 varying feature: the answer is immediate
        n_var = problem.varying.sum(axis=1)
        for i in np.flatnonzero(n_var == 1):
            phi[i, problem.varying[i]] = fx[i] - v0
        groups = problem.groups()
        if groups:
            fit = run(problem, n, K, target, float(self.tol), "KernelSHAP")
            for key, idx in groups:
                P = problem.players(key)
                plan_exact = problem.plan(key[0]).exact
                for i in idx:
                    phi[i, P] = fit.coef[i]
                    se[i, P] = fit.stderr[i]
                    exact[i] = plan_exact
                    used[i] = fit.n_used[i]
        rows = np.arange(n)
        extras = {
            "base_values_all": np.broadcast_to(v0, (n, K)).copy(),
            "exact": exact,
            "n_samples_used": used,
        }
        add_all_outputs(extras, "all_outputs", phi.reshape((n,) + shape + (K,)))
        values = phi[rows, :, target].reshape(X.shape)
        return RawAttribution(values, v0[target], se.reshape(X.shape), extras)
