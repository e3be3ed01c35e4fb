"""Non-Negative Kernel regression (NNK): sparse polytope interpolation over training features.

For a query ``q`` with its k nearest training features ``S`` (Shekkizhar & Ortega), NNK solves::

    theta_S = argmin_{theta >= 0}  1/2 theta^T K_SS theta - K_Sq^T theta

i.e. the non-negative projection of ``phi(q)`` onto the cone of its neighbours in the kernel's
feature space. The KKT conditions select a few neighbours (a local polytope around ``q``);
``theta`` is zero for the rest. The query is interpolated as ``y_hat(q) = sum_j theta_j y_j /
sum_j theta_j`` (one-hot ``y``), and ``1 - 2 theta^T K_Sq + theta^T K_SS theta`` (the squared
kernel-space distance from ``phi(q)`` to the polytope) is its *residual*.

* :class:`NNK` -- ``fit(X, y)``, ``predict``/``predict_proba``, ``attribute(X) ->
  DataAttribution`` (the weights ``theta``), ``solve`` (sparse neighbour lists and weights),
  ``loo_error()`` (leave-one-out NNK and kNN error on the training features, per class);
* :class:`~scrutiny.nnk.results.NNKLeaveOneOut` -- the result of ``loo_error`` (in :mod:`.results`);
* kernels: ``"cosine"``, ``K = 1/2 + 1/2 cos`` on L2-normalised features (DeepNNK), and
  ``"gaussian"``, ``K = exp(-d^2 / (2 sigma^2))`` with ``sigma`` the mean distance of training
  points to their k-th nearest other training point, divided by 3 (the authors' code).

Both kernels have a unit diagonal, so ``K_qq = 1``. Under the cosine kernel, all-zero feature
vectors (dead ReLU layers) are treated as one direction of their own: identical to each other
and orthogonal to every non-zero vector.

Solvers: ``"exact"`` is a batched Lawson--Hanson active-set method (KKT conditions hold to
``tol`` on return); ``"fista"`` runs batched FISTA with the step ``1/lambda_max`` per query and
then polishes on its support (one solve plus a KKT check, the active-set method where that
fails), which makes it exact too. When ``K_SS`` is singular (neighbours linearly dependent in
kernel space, common with low-rank ReLU features) the optimal ``theta`` is not unique; the
active-set method returns a vertex of the optimal face (at most ``rank(K_SS)`` neighbours).
The public prune-only heuristic (solve on the support, drop negatives, never re-add) is *not*
used: it stops at points that violate the KKT conditions. Every result reports the KKT residual.

References
----------
.. [1] S. Shekkizhar & A. Ortega (2020). Graph construction from data by non-negative kernel
   regression. ICASSP.
.. [2] S. Shekkizhar & A. Ortega (2020). DeepNNK: Explaining deep models and their generalization
   using polytope interpolation. arXiv:2007.10505.
.. [3] C. L. Lawson & R. J. Hanson (1974). Solving Least Squares Problems. Prentice-Hall.
.. [4] A. Beck & M. Teboulle (2009). A fast iterative shrinkage-thresholding algorithm for linear
   inverse problems. SIAM J. Imaging Sci. 2(1), 183-202.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .._validation import (
    Interval,
    Options,
    ParamsMixin,
    check_array,
    check_is_fitted,
)
from ..exceptions import CapabilityError, ConvergenceWarning, InvalidParameterError
from ..explanation import DataAttribution
from . import _nnls
from ._kernels import gram as _gram
from ._kernels import kernel_values as _kernel_of_scores
from ._kernels import normalise as _normalise
from ._knn import knn_search
from .results import NNKLeaveOneOut, NNKSolution

__all__ = ["CONVENTION", "NNK", "NNK_CONVENTION", "NNKLeaveOneOut", "NNKSolution"]

CONVENTION = "similarity: NNK interpolation weight"
NNK_CONVENTION = CONVENTION  # package-level name (``CONVENTION`` there is the influence functions' one)

_SIGMA_QUERIES = 5000  # training points (evenly spaced) whose k-th neighbour distance sets sigma
_GATHER = 2**23  # float64 entries of one gathered (batch, k, d) neighbour array (64 MB)
_FULL_GRAM = 2**23  # cache the whole training Gram matrix when n_train^2 fits (n_train <= 2896, 64 MB)

_CONSTRAINTS = {
    "k": [Interval(int, 1, None)],
    "kernel": [Options("cosine", "gaussian")],
    "solver": [Options("exact", "fista")],
    "sigma": [Options("auto"), Interval(float, 0, None, closed="neither")],
    "tol": [Interval(float, 0, 1, closed="neither")],
    "max_iter": [Interval(int, 1, None)],
    "polish": ["boolean"],
    "batch_size": [Interval(int, 1, None)],
    "knn_backend": [Options("auto", "numpy", "torch", "faiss")],
}
_HINTS = {
    "k": "50 is the usual choice (DeepNNK used 25, 50 and 75).",
    "sigma": "Use 'auto' (mean distance to the k-th neighbour / 3) or a positive bandwidth.",
    "tol": "The KKT tolerance of the solver; 1e-10 is the default.",
    "max_iter": "FISTA iterations before the polish; 300 is the default.",
}


#: the largest feature magnitude accepted: kernels square features (norms, squared distances),
#: which overflow float64 above about 1e154 and would leave all-zero kernel weights
_MAX_FEATURE = 1e150


def _check_scale(X: np.ndarray, name: str) -> np.ndarray:
    peak = float(np.abs(X).max()) if X.size else 0.0
    if peak > _MAX_FEATURE:
        raise InvalidParameterError(
            f"NNK: {name} holds values as large as {peak:.3g}; squared distances and norms of such features "
            "overflow float64 (above about 1e154), which would give all-zero kernel weights. Standardise the "
            "features (e.g. divide by their standard deviation) first."
        )
    return X


class NNK(ParamsMixin):
    """Non-Negative Kernel regression over training features: interpolation, attribution, LOO error.

    NNK follows the data-attribution protocol, ``NNK(model_or_none, **params).fit(X_train,
    y_train).attribute(X)``. It is feature-based: with ``model=None`` (the default) ``X`` *is*
    the feature matrix (e.g. ``as_model(net).features(X_train)``, or any embedding), which keeps
    NNK usable without torch and lets one feature extraction serve several fits. With a model
    that has the ``"features"`` capability (a torch module, or an adapter from
    ``as_model(module, features=...)``), every ``X`` given to ``fit``, ``attribute``, ``solve``,
    ``predict`` and ``score`` is a model *input* and its penultimate features are read first, so
    generic code can treat NNK like :class:`~scrutiny.data_attribution.InfluenceFunctions` and
    :class:`~scrutiny.data_attribution.RepresenterPoints`.

    Parameters
    ----------
    model : torch.nn.Module, Model with features, or None, default None
        Where features come from (see above); None: ``X`` are features already.
    k : int, default 50
        Candidate neighbours per query (the NNK polytope is a subset of them).
    kernel : {"cosine", "gaussian"}, default "cosine"
        ``"cosine"``: ``K = 1/2 + 1/2 cos(x, x')`` (neighbours by cosine similarity, as DeepNNK);
        ``"gaussian"``: ``K = exp(-||x - x'||^2 / (2 sigma^2))`` (neighbours by Euclidean distance).
    solver : {"exact", "fista"}, default "exact"
        Batched active-set (Lawson--Hanson) solver, or batched FISTA with step ``1/lambda_max``
        per query followed by an active-set polish (``polish=True``).
    sigma : "auto" or float, default "auto"
        Bandwidth of the Gaussian kernel; ``"auto"`` is the mean distance of the training
        points (up to 5,000 evenly spaced ones) to their k-th nearest other training point,
        divided by 3. Must stay ``"auto"`` for the cosine kernel.
    tol : float, default 1e-10
        KKT tolerance: on return ``max_j |min(theta_j, grad_j)| <= tol`` (up to rounding).
    max_iter : int, default 300
        FISTA iterations (solver="fista"). With ``polish=True`` FISTA runs in float32 and stops
        once its KKT residual is below 1e-3 (the polish makes the result exact); otherwise it
        runs in float64 until ``tol``.
    polish : bool, default True
        Finish FISTA with one solve of ``K_FF theta_F = b_F`` on FISTA's support ``F`` and a
        KKT check; queries that fail it (wrong support, or a singular ``K_FF`` when neighbours
        are linearly dependent in kernel space) are re-solved by the exact active-set method.
    batch_size : int, default 2048
        Queries solved together (memory grows as ``batch_size * k * (k + n_features)``).
    knn_backend : {"auto", "numpy", "torch", "faiss"}, default "auto"
        Candidate pre-selection of the exact kNN search: faiss-cpu if installed, else a blocked
        GEMM with ``torch.topk`` (or ``numpy.argpartition``); the neighbour lists are the same.

    Attributes
    ----------
    n_train_ : int
    n_features_in_ : int
    classes_ : ndarray of shape (n_classes,) or None
        Sorted class labels (None when fitted without ``y``).
    y_ : int ndarray of shape (n_train,) or None
        Labels as indices into ``classes_``.
    sigma_ : float or None
        Gaussian bandwidth in use (None for the cosine kernel).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> F = rng.normal(size=(200, 8)); y = (F[:, 0] > 0).astype(int)
    >>> nnk = NNK(k=20).fit(F, y)
    >>> att = nnk.attribute(F[:3])        # weights theta over the 200 training points
    >>> att.scores.shape, bool(np.isclose(att.scores[0, 0], 1.0))  # a training point is its own polytope
    ((3, 200), True)
    >>> round(nnk.loo_error().nnk_error, 2) < 0.2
    True

    References
    ----------
    .. [1] S. Shekkizhar & A. Ortega (2020). DeepNNK: Explaining deep models and their
       generalization using polytope interpolation. arXiv:2007.10505.
    .. [2] S. Shekkizhar & A. Ortega (2020). Graph construction from data by non-negative kernel
       regression. ICASSP.
    .. [3] C. L. Lawson & R. J. Hanson (1974). Solving Least Squares Problems. Prentice-Hall.
    .. [4] A. Beck & M. Teboulle (2009). A fast iterative shrinkage-thresholding algorithm for
       linear inverse problems. SIAM J. Imaging Sci. 2(1), 183-202.
    """

    _constraints = _CONSTRAINTS
    _hints = _HINTS

    def __init__(self, model: Any = None, *, k: int = 50, kernel: str = "cosine", solver: str = "exact",
                 sigma: Any = "auto", tol: float = 1e-10, max_iter: int = 300, polish: bool = True,
                 batch_size: int = 2048, knn_backend: str = "auto") -> None:
        self.model = model
        self.k = k
        self.kernel = kernel
        self.solver = solver
        self.sigma = sigma
        self.tol = tol
        self.max_iter = max_iter
        self.polish = polish
        self.batch_size = batch_size
        self.knn_backend = knn_backend

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> NNK:
        """Store the training features (and labels) and set the kernel bandwidth.

        Parameters
        ----------
        X : array-like of shape (n_train, n_features)
            Training features (e.g. ``as_model(net).features(X_train)``); finite. With a
            ``model``, the training inputs of the model instead.
        y : array-like of shape (n_train,), optional
            Class labels (ints or strings); needed by ``predict`` and ``loo_error``.

        Returns
        -------
        self

        Raises
        ------
        InvalidParameterError
            On a bad hyper-parameter, NaN/inf features, ``k`` above the number of training
            points, or ``y`` not matching ``X``.
        """
        self._validate_params()
        X = self._features(X, "X")
        n, d = X.shape
        if d == 0:
            raise InvalidParameterError(f"NNK: X must have at least one feature column; got shape {X.shape}.")
        if self.k > n:
            raise InvalidParameterError(
                f"NNK: k={self.k} is larger than the number of training points ({n}). Use k <= {n} "
                f"(k <= {n - 1} for loo_error and nnk_graph, which leave each point out), or more training data."
            )
        if self.kernel == "cosine" and self.sigma != "auto":
            raise InvalidParameterError(
                f"NNK: sigma={self.sigma!r} only applies to kernel='gaussian'; leave sigma='auto' for the cosine kernel."
            )
        self.classes_, self.y_ = None, None
        if y is not None:
            self.classes_, self.y_ = _encode_labels(y, n)
        self.n_train_, self.n_features_in_ = n, d
        self._F = _normalise(X) if self.kernel == "cosine" else X
        self._metric = "ip" if self.kernel == "cosine" else "l2"
        self.sigma_ = None
        if self.kernel == "gaussian":
            self.sigma_ = float(self.sigma) if self.sigma != "auto" else self._auto_sigma()
        self._loo = None
        self._KK = None
        return self

    def _neighbour_gram(self, idx: np.ndarray) -> np.ndarray:
        """``K_SS`` for each row of neighbour indices ``idx`` (n, k) -> (n, k, k).

        Small training sets with wide features cache the full training Gram matrix once and
        gather from it; otherwise the neighbours' features are gathered and multiplied.
        """
        n, d = self._F.shape
        if n * n <= _FULL_GRAM and d > 2 * self.k:
            if self._KK is None:
                self._KK = _gram(self._F[None], self.kernel, self.sigma_)[0]
            return self._KK[idx[:, :, None], idx[:, None, :]]
        return _gram(self._F[idx], self.kernel, self.sigma_)

    def _auto_sigma(self) -> float:
        n = self.n_train_
        if n < 2:
            raise InvalidParameterError("NNK: sigma='auto' needs at least 2 training points; pass sigma explicitly.")
        kk = min(self.k, n - 1)
        q = np.unique(np.linspace(0, n - 1, min(n, _SIGMA_QUERIES)).round().astype(np.int64))
        d2, _ = knn_search(self._F[q], self._F, kk, metric="l2", exclude=q, backend=self.knn_backend)
        sigma = float(np.sqrt(np.maximum(d2[:, -1], 0.0)).mean() / 3.0)
        if not sigma > 0:
            raise InvalidParameterError(
                f"NNK: sigma='auto' is 0 because every training point has {kk} exact duplicates; "
                "pass a positive sigma explicitly."
            )
        return sigma

    def _features(self, X: Any, name: str) -> np.ndarray:
        """``X`` itself (``model=None``) or the model's penultimate features of ``X``, checked."""
        if self.model is not None:
            from ..models import as_model

            m = as_model(self.model)
            caps = getattr(m, "capabilities", frozenset())
            if "features" not in caps or not hasattr(m, "features"):
                raise CapabilityError(
                    f"NNK: model must provide penultimate features ('features' capability); "
                    f"{type(m).__name__} provides {sorted(caps)}. Wrap a torch.nn.Module (name its layer "
                    "with as_model(module, features='layer')), or pass model=None and give NNK the features."
                )
            X = m.features(X)
        return _check_scale(check_array(X, name, ndim=2), name)

    # -- queries ---------------------------------------------------------------------------
    def _check_query(self, X: Any, name: str = "X") -> np.ndarray:
        check_is_fitted(self, "n_train_")
        if self.model is None:
            X = check_array(X, name, ndim=(1, 2))
            if X.ndim == 1:
                X = X[None, :]
            _check_scale(X, name)
        else:
            X = self._features(X, name)
        if X.shape[1] != self.n_features_in_:
            raise InvalidParameterError(
                f"NNK: {name} has {X.shape[1]} features but the training features had {self.n_features_in_}; "
                "extract query features with the same model/layer as the training features."
            )
        return X

    def _solve_features(self, Fq: np.ndarray, exclude: np.ndarray | None) -> NNKSolution:
        k, n = self.k, Fq.shape[0]
        if exclude is not None and k > self.n_train_ - 1:
            raise InvalidParameterError(
                f"NNK: leave-one-out needs k <= n_train - 1 = {self.n_train_ - 1}; got k={k}. Refit with a smaller k."
            )
        out = {f: [] for f in NNKSolution._fields}
        n_tr, d = self._F.shape
        width = k if n_tr * n_tr <= _FULL_GRAM and d > 2 * k else d
        step = max(1, min(self.batch_size, _GATHER // max(1, k * width)))
        for s in range(0, n, step):
            e = min(n, s + step)
            ex = None if exclude is None else exclude[s:e]
            scores, idx = knn_search(Fq[s:e], self._F, k, metric=self._metric, exclude=ex, backend=self.knn_backend)
            b = _kernel_of_scores(scores, self.kernel, self.sigma_)
            K = self._neighbour_gram(idx)
            rep = _nnls.duplicate_groups(K)
            allowed = rep == np.arange(k)
            if self.solver == "exact":
                res = _nnls.active_set(K, b, allowed=allowed, tol=self.tol)
            elif self.polish:
                res = _nnls.fista_polish(K, b, allowed=allowed, tol=self.tol, max_iter=self.max_iter)
            else:
                res = _nnls.fista(K, b, allowed=allowed, tol=self.tol, max_iter=self.max_iter)
            theta = _nnls.split_duplicates(res.theta, rep)
            resid = 1.0 + 2.0 * _nnls.objective(K, b, theta)
            out["indices"].append(idx)
            out["weights"].append(theta)
            out["kernel"].append(b)
            out["residual"].append(np.maximum(resid, 0.0))
            out["kkt_residual"].append(res.kkt)
            out["n_iter"].append(res.n_iter)
            out["converged"].append(res.converged)
        sol = NNKSolution(*(np.concatenate(out[f]) if out[f] else np.empty(0) for f in NNKSolution._fields))
        if not sol.converged.all():
            bad = int((~sol.converged).sum())
            warnings.warn(
                f"NNK: {bad} of {n} problems stopped before the KKT tolerance {self.tol:g} (largest KKT residual "
                f"{float(sol.kkt_residual.max()):.2g}); raise max_iter, use solver='exact', or loosen tol.",
                ConvergenceWarning, stacklevel=3)
        return sol

    def solve(self, X: Any) -> NNKSolution:
        """NNK neighbourhoods of query features in sparse form.

        Parameters
        ----------
        X : array-like of shape (n_queries, n_features)

        Returns
        -------
        NNKSolution
            ``indices``, ``weights`` (theta), ``kernel``, ``residual``, ``kkt_residual``,
            ``n_iter``, ``converged``; row ``i`` belongs to query ``i``.
        """
        X = self._check_query(X)
        return self._solve_features(_normalise(X) if self.kernel == "cosine" else X, None)

    def interpolate(self, sol: NNKSolution) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Class probabilities of solved queries (from :meth:`solve` or :meth:`loo_solve`).

        Returns
        -------
        proba : ndarray of shape (n, n_classes)
            NNK: ``sum_j theta_j y_j / sum_j theta_j``.
        knn_proba : ndarray of shape (n, n_classes)
            Kernel-weighted vote of the same k neighbours, ``sum_j K_qj y_j / sum_j K_qj``.
        fallback : bool ndarray of shape (n,)
            Queries whose weights were all zero (their ``proba`` is ``knn_proba``).
        """
        if self.y_ is None:
            raise InvalidParameterError("NNK: this needs labels; fit with NNK().fit(X, y).")
        C = len(self.classes_)
        Ynb = np.eye(C)[self.y_[sol.indices]]  # (n, k, C)
        knn = np.einsum("nk,nkc->nc", sol.kernel, Ynb)
        ks = knn.sum(axis=1, keepdims=True)
        uniform = Ynb.mean(axis=1)
        knn = np.where(ks > 0, knn / np.where(ks > 0, ks, 1.0), uniform)
        p = np.einsum("nk,nkc->nc", sol.weights, Ynb)
        deg = p.sum(axis=1, keepdims=True)
        fallback = deg[:, 0] <= 0
        p = np.where(fallback[:, None], knn, p / np.where(deg > 0, deg, 1.0))
        return p, knn, fallback

    def predict_proba(self, X: Any) -> np.ndarray:
        """NNK interpolation of one-hot labels, ``sum_j theta_j y_j / sum_j theta_j``.

        Queries whose weights are all zero (kernel values underflowing to 0) fall back to the
        kernel-weighted kNN vote.

        Returns
        -------
        ndarray of shape (n_queries, n_classes)
        """
        return self.interpolate(self.solve(X))[0]

    def predict(self, X: Any) -> np.ndarray:
        """Class labels ``classes_[argmax y_hat]``, shape (n_queries,)."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def score(self, X: Any, y: Any) -> float:
        """Accuracy of :meth:`predict` on ``(X, y)``."""
        Xq = self._check_query(X)
        y = np.asarray(y)
        if y.shape != (Xq.shape[0],):
            raise InvalidParameterError(f"NNK.score: y must have one label per row of X ({Xq.shape[0]}); got {y.shape}.")
        return float(np.mean(self.predict(Xq) == y))

    def attribute(self, X: Any, target: Any = None) -> DataAttribution:
        """NNK weights of the training points for each query.

        Parameters
        ----------
        X : array-like of shape (n_queries, n_features)
            Query features (same extractor as the training features); with a ``model``, its inputs.
        target : label or array-like of shape (n_queries,), optional
            Class labels (as in ``y``) recorded as the result's ``target``; None: the NNK-predicted
            class. The weights ``theta`` do not depend on it (NNK interpolates all classes at
            once); it is accepted so that every data attributor has the same call.

        Returns
        -------
        DataAttribution
            ``scores`` of shape (n_queries, n_train): ``theta_j >= 0`` for the training points of
            the query's NNK polytope, 0 elsewhere; convention ``"similarity: NNK interpolation
            weight"``; ``target`` the index (into ``classes_``) of ``target`` or, by default, of the
            NNK-predicted class (when fitted with labels).
            ``extras``: ``residual``, ``kkt_residual``, ``degree`` (sum of theta),
            ``n_neighbors`` (theta > 0), ``knn_indices`` and ``knn_kernel`` (the k candidates),
            and with labels ``proba`` (NNK class probabilities) and ``knn_proba``.

        Notes
        -----
        ``scores`` is dense, ``n_queries * n_train`` floats; for many queries against a large
        training set use :meth:`solve`, which returns the same weights in sparse form.
        """
        self._validate_params()
        X = self._check_query(X)
        sol = self._solve_features(_normalise(X) if self.kernel == "cosine" else X, None)
        scores = np.zeros((X.shape[0], self.n_train_))
        np.put_along_axis(scores, sol.indices, sol.weights, axis=1)
        extras: dict[str, Any] = {
            "residual": sol.residual, "kkt_residual": sol.kkt_residual, "degree": sol.weights.sum(axis=1),
            "n_neighbors": (sol.weights > 0).sum(axis=1), "knn_indices": sol.indices, "knn_kernel": sol.kernel,
        }
        if self.y_ is not None:
            p, knn, _ = self.interpolate(sol)
            target = np.argmax(p, axis=1) if target is None else self._target_index(target, X.shape[0])
            extras.update(proba=p, knn_proba=knn)
        elif target is not None:
            raise InvalidParameterError(
                "NNK: target needs the class labels; fit with NNK().fit(X, y) or pass target=None.")
        return DataAttribution(scores=scores, method="NNK", convention=CONVENTION, target=target,
                               params=self._params(), extras=extras)

    def _target_index(self, target: Any, n: int) -> np.ndarray:
        arr = np.asarray(target)
        if arr.ndim == 0:
            arr = np.repeat(arr[None], n)
        if arr.shape != (n,):
            raise InvalidParameterError(
                f"NNK: target must be one class label or one per query ({n}); got shape {arr.shape}.")
        pos = np.minimum(np.searchsorted(self.classes_, arr), len(self.classes_) - 1)
        unknown = self.classes_[pos] != arr
        if unknown.any():
            raise InvalidParameterError(
                f"NNK: target holds {arr[unknown][0].item()!r}, which is not a training class; use one of "
                f"{self.classes_.tolist()} (labels as in y) or None for the predicted class.")
        return pos.astype(np.int64)

    def explain(self, X: Any) -> DataAttribution:
        """Deprecated name of :meth:`attribute` (kept one release; warns)."""
        warnings.warn("NNK.explain(X) is deprecated and will be removed in the next release; use "
                      "NNK.attribute(X, target=None), the data-attribution verb.", DeprecationWarning, stacklevel=2)
        return self.attribute(X)

    def _params(self) -> dict[str, Any]:
        return {"k": int(self.k), "kernel": self.kernel, "solver": self.solver, "sigma": self.sigma_,
                "tol": float(self.tol), "max_iter": int(self.max_iter), "polish": bool(self.polish),
                "n_train": int(self.n_train_)}

    # -- leave-one-out -----------------------------------------------------------------------
    def _check_indices(self, indices: Any) -> np.ndarray | None:
        if indices is None:
            return None
        idx = check_array(indices, "indices", ndim=1, dtype=None)
        if idx.dtype.kind not in "iu" or (idx < 0).any() or (idx >= self.n_train_).any():
            raise InvalidParameterError(
                f"NNK: indices must be ints in [0, {self.n_train_ - 1}] (training rows to leave out); "
                f"got {idx.dtype} values in [{idx.min()}, {idx.max()}]."
            )
        return idx.astype(np.int64)

    def loo_solve(self, indices: Any = None) -> NNKSolution:
        """NNK of training points from their k nearest *other* training points.

        Parameters
        ----------
        indices : int array-like of shape (n_loo,), optional
            Training rows to leave out (each one separately); default all (result cached).

        Returns
        -------
        NNKSolution
            Row ``i`` belongs to training point ``indices[i]``; that point never appears in
            its own neighbour list.
        """
        check_is_fitted(self, "n_train_")
        idx = self._check_indices(indices)
        if idx is not None:
            return self._solve_features(self._F[idx], idx)
        if self._loo is None:
            self._loo = self._solve_features(self._F, np.arange(self.n_train_))
        return self._loo

    def loo_error(self, indices: Any = None) -> NNKLeaveOneOut:
        """Leave-one-out NNK and kNN classification error on the training features.

        Each training point is interpolated from its k nearest other training points (its
        own row is never a candidate). DeepNNK uses this error, computed on the training set
        alone, as an estimate of the test error of the network that produced the features.

        Parameters
        ----------
        indices : int array-like of shape (n_loo,), optional
            Estimate from these training points only (each left out in turn, interpolated from
            all other training points); default all.

        Returns
        -------
        NNKLeaveOneOut
            Overall and per-class errors of NNK and of the kernel-weighted kNN vote, the
            soft NNK error, per-point predictions and residuals.
        """
        check_is_fitted(self, "n_train_")
        if self.y_ is None:
            raise InvalidParameterError("NNK: loo_error needs labels; fit with NNK().fit(X, y).")
        idx = self._check_indices(indices)
        sol = self.loo_solve(idx)
        p, knn, _ = self.interpolate(sol)
        y = self.y_ if idx is None else self.y_[idx]
        pn, pk = p.argmax(axis=1), knn.argmax(axis=1)
        C = len(self.classes_)
        counts = np.bincount(y, minlength=C)
        with np.errstate(invalid="ignore", divide="ignore"):
            per_nnk = np.bincount(y, weights=pn != y, minlength=C) / counts
            per_knn = np.bincount(y, weights=pk != y, minlength=C) / counts
        return NNKLeaveOneOut(
            nnk_error=float(np.mean(pn != y)), knn_error=float(np.mean(pk != y)),
            nnk_soft_error=float(np.mean(1.0 - p[np.arange(y.size), y])),
            nnk_error_per_class=per_nnk, knn_error_per_class=per_knn,
            class_counts=counts, classes=self.classes_, nnk_pred=pn, knn_pred=pk, residual=sol.residual,
            n_neighbors=(sol.weights > 0).sum(axis=1), max_kkt_residual=float(sol.kkt_residual.max()),
            params={**self._params(), "n_loo": int(y.size)})


def _encode_labels(y: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(y, "detach") and hasattr(y, "cpu"):
        y = y.detach().cpu().numpy()
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise InvalidParameterError(f"NNK: y must be 1-D with one label per training point; got shape {arr.shape}.")
    if arr.shape[0] != n:
        raise InvalidParameterError(
            f"NNK: y has {arr.shape[0]} labels but X has {n} rows; pass one label per row of X (same order)."
        )
    if arr.dtype.kind not in "biufUS":
        raise InvalidParameterError(f"NNK: y must hold integer or string class labels; got dtype {arr.dtype}.")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise InvalidParameterError("NNK: y contains NaN or inf; every training point needs a class label.")
    classes, codes = np.unique(arr, return_inverse=True)
    return classes, codes.reshape(-1).astype(np.int64)
