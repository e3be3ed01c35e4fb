"""KernelSHAP (public class re-exported by :mod:`scrutiny.attribution.perturbation`)."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from ..._validation import Interval, Options, check_array
from ...exceptions import InvalidParameterError
from .._base import Explainer, RawAttribution
from ._common import COMMON_HINTS, SPACES, add_all_outputs, check_budget, check_space
from ._compose import chunk_rows, model_outputs, resolve_segments
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

    With ``groups`` the players are groups of features (superpixels of an image, or a
    partition of tabular columns): a coalition keeps or replaces a whole group, and the values
    are the group Shapley values, with ``sum_g phi_g = f(x) - phi_0`` exactly.

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
    groups : int array, optional
        Players made of several features. Images (X of shape (n, C, H, W) or (n, H, W)):
        superpixel labels of shape (H, W) (shared by all images) or (n, H, W), like LIME's
        ``segments`` (e.g. from :func:`scrutiny.data.segment`). Tabular data (X of shape
        (n, d)): a feature -> group map of length d. Any integer labels; they are renumbered
        ``0..G-1`` in sorted order. None: every feature is a player.
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

    With ``groups``, ``values`` still have the input's shape: every feature holds its group's
    Shapley value divided by the group's size (channels included), so summing ``values`` over
    a group gives the group value exactly and the sum over the input is ``f(x) - phi_0``
    (segment-summing metrics such as keep-top-k with the same segments rank groups by their
    Shapley values); ``stderr`` likewise. The group values themselves are in ``extras``:
    ``groups`` (the renumbered labels, (n, H, W) or (n, d)), ``n_groups`` (n,),
    ``group_values`` and ``group_stderr`` (n, G_max), zero-padded, and ``all_outputs``
    (n, G_max, K); for images also ``segments``, ``n_segments``, ``segment_values`` and
    ``segment_stderr`` (the same arrays under LIME's names).

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
        "groups": ["array-like", None],
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
        groups: Any = None,
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
        self.groups = groups
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

    def _labels(self, X: np.ndarray) -> np.ndarray | None:
        """Group labels renumbered ``0..G_i-1`` per input: (n, H, W) for images, (n, d) for tabular X."""
        if self.groups is None:
            return None
        n = X.shape[0]
        if X.ndim in (3, 4):
            return resolve_segments(np.asarray(self.groups), None, X, "KernelSHAP", name="groups")
        g = np.asarray(self.groups)
        if g.dtype == object or not np.issubdtype(g.dtype, np.integer):
            raise InvalidParameterError(
                f"KernelSHAP: groups must be integer labels; got dtype {g.dtype}. Pass a feature -> group map "
                "such as np.array([0, 0, 1, 2, 2])."
            )
        d = int(np.prod(X.shape[1:]))
        if X.ndim != 2 or g.shape not in ((d,), (n, d)):
            raise InvalidParameterError(
                f"KernelSHAP: groups must be a feature -> group map of shape ({d},) for tabular X of shape "
                f"{X.shape} (or superpixel labels (H, W) / (n, H, W) for images of shape (n, C, H, W) or "
                f"(n, H, W)); got shape {g.shape}. Pass one group label per column."
            )
        g = np.broadcast_to(g, (n, d))
        return np.stack([np.unique(row, return_inverse=True)[1].reshape(d) for row in g])

    def _check(self, X: np.ndarray) -> None:
        check_space("KernelSHAP", self.model, self.space)
        self._background(X.shape[1:])
        labels = self._labels(X)
        d = int(np.prod(X.shape[1:])) if labels is None else int(labels.reshape(X.shape[0], -1).max()) + 1
        what = "features" if labels is None else "groups"
        check_budget(
            "KernelSHAP", self.n_samples, min_budget(d),
            f"for {d} {what} (2 * n_players + {MIN_SAMPLED} coalitions: sizes 1 and n_players - 1 enumerated "
            "plus two sampled complementary pairs; or all 2**n_players - 2 coalitions when fewer)",
            d,
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
        labels = self._labels(X)
        flat = None
        if labels is not None:  # per-feature labels (n, D); image labels repeat over channels
            flat = (np.broadcast_to(labels[:, None], X.shape) if X.ndim == 4 else labels).reshape(n, D)
        bg, bw = self._summary(self._background(shape))
        v0 = bw @ model_outputs(self.model, bg, space)  # (K,)
        fx = model_outputs(self.model, X, space)
        K = fx.shape[1]
        problem = ShapleyProblem(
            self.model, space, X, bg, bw, v0, fx, self.n_samples, root_seed(rng),
            chunk_rows(self.model, D, self.batch_size), "KernelSHAP", labels=flat,
        )
        G = problem.varying.shape[1]  # players: D features, or the largest number of groups
        phi = np.zeros((n, G, K))
        se = np.zeros((n, G))
        exact = np.ones(n, dtype=bool)
        used = np.zeros(n, dtype=np.int64)
        # 0 or 1 varying player: the answer is immediate
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
        if flat is None:
            add_all_outputs(extras, "all_outputs", phi.reshape((n,) + shape + (K,)))
            values = phi[rows, :, target].reshape(X.shape)
            return RawAttribution(values, v0[target], se.reshape(X.shape), extras)
        # grouped: each feature carries its group's value divided by the group's size, so
        # per-group sums of ``values`` are the group Shapley values (see Notes)
        size = np.stack([np.bincount(flat[i], minlength=G) for i in range(n)]).astype(np.float64)
        gval = phi[rows, :, target]
        per = np.where(size > 0, gval / np.maximum(size, 1.0), 0.0)
        per_se = np.where(size > 0, se / np.maximum(size, 1.0), 0.0)
        values = np.take_along_axis(per, flat, axis=1).reshape(X.shape)
        stderr = np.take_along_axis(per_se, flat, axis=1).reshape(X.shape)
        n_groups = labels.reshape(n, -1).max(axis=1) + 1
        extras.update(groups=labels, n_groups=n_groups, group_values=gval, group_stderr=se, all_outputs=phi)
        if X.ndim in (3, 4):
            extras.update(segments=labels, n_segments=n_groups, segment_values=gval, segment_stderr=se)
        return RawAttribution(values, v0[target], stderr, extras)
