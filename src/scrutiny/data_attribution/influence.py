"""Influence functions (Koh & Liang 2017) with explicit, block-CG and LiSSA inverse-Hessian products.

Sign and scale convention
-------------------------
``InfluenceFunctions.attribute`` returns, for test point ``t`` and training point ``i``::

    score[t, i] = (1/n) g_t^T (H + damping I)^{-1} g_i

with ``g = grad_theta L(z, theta_hat)`` and ``H`` the Hessian of the training objective
``R(theta) = (1/n) sum_i L_i + (l2/2) ||theta||^2`` (over the selected parameters). This is
the first-order **change of the test loss when training point i is removed** (its weight
``1/n`` set to 0, the other weights and the regulariser unchanged):

* positive = **helpful** (a proponent): removing the point would raise the test loss;
* negative = **harmful** (an opponent): removing it would lower the test loss;
* it is divided by ``n``, so it is on the scale of an actual loss change, like
  influence-release's ``get_influence_on_test_loss`` and torch-influence. Captum, pyDVL,
  kronfluence and dattri report ``g_t^T H^{-1} g_i`` without ``1/n`` (same sign);
  Koh & Liang's ``I_up,loss = -g_t^T H^{-1} g_i`` is ``-n * score``
  (:meth:`InfluenceFunctions.influence_up_loss`).

The removal predicted here equals an actual refit of
``(1/n) sum_{j != i} L_j + (l2/2)||theta||^2``, i.e. the mean loss over the ``n - 1``
remaining points with L2 strength ``l2 * n / (n - 1)``; keeping ``l2`` fixed instead (as in
Koh & Liang's scikit-learn refits) adds the same small offset to every point's effect.

References
----------
.. [1] Koh, P. W. & Liang, P. (2017). Understanding black-box predictions via influence
   functions. ICML.
.. [2] Agarwal, N., Bullins, B. & Hazan, E. (2017). Second-order stochastic optimization for
   machine learning in linear time. JMLR 18(116).
.. [3] Basu, S., Pope, P. & Feizi, S. (2021). Influence functions in deep learning are
   fragile. ICLR.
"""

from __future__ import annotations

import time
import warnings
from typing import Any, ClassVar

import numpy as np

from .._threads import blas_guard, blas_guarded
from .._validation import Interval, Options, ParamsMixin, check_is_fitted
from ..exceptions import ConvergenceWarning, InvalidParameterError
from ..explanation import DataAttribution
from ..models import as_model, require_capability
from ._protocol import resolve_fit_data, take_deprecated_data
from .hessian import NotAtOptimumError
from .objective import TrainingObjective
from .solvers import make_solver

__all__ = ["CONVENTION", "InfluenceFunctions"]

CONVENTION = (
    "positive = helpful: removing the training point would raise the test loss; "
    "score = (1/n) g_test^T (H + damping I)^{-1} g_train, the predicted change of the test loss "
    "when the point is removed (divided by n)"
)

_MAX_GRAD_BYTES = 4e9


_NEW_FORM = "InfluenceFunctions(model, loss, **params).fit(X_train, y_train)"
_OLD_FORM = "InfluenceFunctions(model, loss, X_train, y_train, ...).fit()"


class InfluenceFunctions(ParamsMixin):
    """Influence of each training point on each test loss, for a model at an optimum.

    ``InfluenceFunctions(model, loss, **params).fit(X_train, y_train)``, then
    ``attribute(X, target=None)``.

    Parameters
    ----------
    model : torch.nn.Module or TorchModel
        A differentiable model at (or near) a minimum of its training objective.
    loss : {"cross_entropy", "mse"} or callable, default "cross_entropy"
        ``loss(outputs, targets) -> (m,)`` per-sample losses (no reduction), the loss the
        model was trained with.
    solver : {"exact", "cg", "lissa"} or solver object, default "exact"
        How ``(H + damping I)^{-1}`` is applied: ``"exact"`` forms ``H`` (in closed form, layer
        by layer, for an MLP or a last-layer selection) and factorises it once (up to ~10^4
        parameters);
        ``"cg"`` runs block conjugate gradients on Hessian-vector products, all test
        points at once; ``"lissa"`` the stochastic LiSSA recursion. Pass
        ``ExactSolver(...)``, ``CGSolver(rtol=..., maxiter=...)`` or
        ``LiSSASolver(scale=..., depth=..., repeat=..., minibatch_size=..., random_state=...)``
        for options.
    l2 : float, default 0
        The L2 strength the model was trained with: the objective is
        ``(1/n) sum L_i + (l2/2) ||theta||^2`` over the selected parameters (torch's
        ``weight_decay`` for SGD/Adam equals ``l2``). Part of ``H``; not a damping.
    damping : float, default 0
        A true Tikhonov term: ``H + damping I`` is inverted. Needed when ``H`` is not
        positive definite (non-convex models); it biases the scores.
    params : None, "last" or list of str, default None
        Parameters the influence is computed over (all trainable ones, the last linear
        layer, or names). Restricting to the last layer makes ``H`` small and convex in the
        features.
    check_optimum : {"raise", "warn", "ignore"}, default "raise"
        What to do when ``||grad R(theta)||`` exceeds one training point's share of the
        gradient (``stationarity_ratio_ > 1``, see Attributes): the influence then
        predicts the optimiser's remaining progress as much as the point's effect.
        Between 0.1 and 1 a warning is issued unless ``"ignore"``.
    batch_size : int, optional
        Rows per vectorised gradient/HVP call: memory chunking only, it never changes a
        result (default: the adapter's ``rows_per_call`` for the training samples' size, at
        most 256, resolved from the data in every ``fit`` whatever the adapter was called
        with before; see ``TrainingObjective``).

    Attributes
    ----------
    objective_ : TrainingObjective
        The differentiated objective (float64).
    train_grads_ : ndarray of shape (n_train, p)
        Per-sample training gradients (cached for every ``attribute`` call).
    grad_norm_ : float
        ``||grad R(theta)||`` at the model's parameters (0 at an exact optimum).
    stationarity_ratio_ : float
        ``grad_norm_ / ((1/n) median_i ||g_i||)``: the objective's gradient relative to the
        gradient one training point contributes. Below ~0.1 the model is at an optimum for
        the purpose of leave-one-out predictions.
    solver_ : solver object
        The prepared solver (holds the factorisation for ``"exact"``).
    diagnostics_ : dict
        ``grad_norm``, ``stationarity_ratio``, ``min_eigenvalue`` and ``max_eigenvalue`` of
        ``H`` (exact for ``"exact"``; Lanczos Ritz values for ``"cg"``, where the smallest is an
        upper bound; None for ``"lissa"``), ``damping``, ``l2``, ``p``, ``n_train``,
        ``hessian_method``, ``fit_seconds`` and solver settings (``lissa_scale``).
    self_influence_ : ndarray of shape (n_train,)
        Set by :meth:`self_influence`.

    Notes
    -----
    Cost: per-sample gradients once (``O(n p)`` memory, cached); ``"exact"`` then costs
    ``O(p^3)`` once and ``O(p^2 + n p)`` per test point; ``"cg"`` costs a few dozen HVP
    sweeps per block of test points. All computations are float64.

    References
    ----------
    .. [1] Koh & Liang (2017), Understanding black-box predictions via influence functions. ICML.
    .. [2] Agarwal, Bullins & Hazan (2017), Second-order stochastic optimization for machine
       learning in linear time. JMLR.
    .. [3] Basu, Pope & Feizi (2021), Influence functions in deep learning are fragile. ICLR.

    Examples
    --------
    >>> inf = InfluenceFunctions(model, "cross_entropy", l2=1e-2).fit(X_train, y_train)  # doctest: +SKIP
    >>> att = inf.attribute(X_test[:5], y_test[:5])  # loss at the true labels           # doctest: +SKIP
    >>> inf.attribute(X_test[:5])                     # loss at the predicted classes     # doctest: +SKIP
    >>> att.proponents(k=3)        # the 3 most helpful training points per test point    # doctest: +SKIP
    """

    _constraints: ClassVar[dict[str, list]] = {
        "loss": [Options("cross_entropy", "mse"), "callable"],
        "l2": [Interval(float, 0, None)], "damping": [Interval(float, 0, None)],
        "params": [None, "str", list, tuple],
        "check_optimum": [Options("raise", "warn", "ignore")],
        "batch_size": [Interval(int, 1, None), None]}
    _hints: ClassVar[dict[str, str]] = {
        "loss": "Pass a callable loss(outputs, targets) returning one loss per sample for anything else.",
        "l2": "Pass the L2 strength the model was trained with (torch weight_decay), 0 for none.",
        "damping": "damping is a Tikhonov term added to H; use 0 for a convex model, 1e-3..1e-1 otherwise.",
        "params": "Pass None (all trainable parameters), 'last' (the last linear layer) or a list of names."}

    def __init__(self, model: Any, loss: Any = "cross_entropy", *args: Any, solver: Any = "exact",
                 l2: float = 0.0, damping: float = 0.0, params: Any = None, check_optimum: str = "raise",
                 batch_size: int | None = None, **kwargs: Any):
        # *args / **kwargs only carry the deprecated constructor data (X_train, y_train)
        data = take_deprecated_data("InfluenceFunctions", args, kwargs, _OLD_FORM, _NEW_FORM)
        if data is not None:
            self._deprecated_data = data
        self.model = model
        self.loss = loss
        self.solver = solver
        self.l2 = l2
        self.damping = damping
        self.params = params
        self.check_optimum = check_optimum
        self.batch_size = batch_size

    # ------------------------------------------------------------------ fit
    def fit(self, X_train: Any = None, y_train: Any = None) -> InfluenceFunctions:
        """Validate, compute and cache the training gradients and the solver state; check the optimum.

        Parameters
        ----------
        X_train : array-like of shape (n_train, ...)
        y_train : array-like of shape (n_train, ...)
            The training set the model was fitted on (all of it: ``H`` averages over it).

        Returns
        -------
        self

        Raises
        ------
        NotAtOptimumError
            If ``stationarity_ratio_ > 1`` and ``check_optimum="raise"``.
        IndefiniteHessianError
            If ``H + damping I`` is not positive definite.
        """
        start = time.perf_counter()
        self._validate_params()
        X_train, y_train = resolve_fit_data(self, X_train, y_train, _NEW_FORM)
        solver = make_solver(self.solver)
        model = as_model(self.model)
        require_capability(model, "trainable", "InfluenceFunctions")
        with blas_guard(model):  # one forward pass checks the loss
            obj = TrainingObjective(model, self.loss, X_train, y_train, params=self.params, l2=self.l2,
                                    batch_size=self.batch_size, data_names=("X_train", "y_train"))
        if obj.n < 2:
            raise InvalidParameterError(f"X_train must hold at least 2 samples; got {obj.n}.")
        if obj.n * obj.p * 8 > _MAX_GRAD_BYTES:
            raise InvalidParameterError(
                f"Caching the training gradients needs n_train * p * 8 = {obj.n * obj.p * 8 / 1e9:.1f} GB "
                f"(n_train={obj.n}, p={obj.p}). Restrict params (e.g. params='last') or subsample X_train."
            )
        # exact solver: n p^2 (Hessian) + p^3/3 (Cholesky) flops of dense algebra, which wants every
        # BLAS thread; otherwise BLAS runs on one thread next to torch (see blas_guard)
        self.dense_flops_ = float(obj.n * obj.p ** 2 + obj.p ** 3 / 3) if solver.name == "exact" else 0.0
        with blas_guard(model, self.dense_flops_):
            return self._fit_solver(obj, model, solver, start)

    def _fit_solver(self, obj: TrainingObjective, model: Any, solver: Any, start: float) -> InfluenceFunctions:
        G = obj.per_sample_grads()
        grad = G.mean(axis=0) + obj.l2 * obj.theta
        grad_norm = float(np.linalg.norm(grad))
        share = float(np.median(np.linalg.norm(G, axis=1))) / obj.n
        ratio = grad_norm / share if share > 0 else (0.0 if grad_norm == 0 else np.inf)
        self.objective_ = obj
        self.model_ = model
        self.train_grads_ = G
        self.grad_norm_ = grad_norm
        self.stationarity_ratio_ = float(ratio)
        self._check_stationarity(grad_norm, share, ratio)
        self.solver_ = solver
        info = solver.prepare(obj, float(self.damping))
        self.diagnostics_ = {
            "grad_norm": grad_norm, "stationarity_ratio": float(ratio), "damping": float(self.damping),
            "l2": float(self.l2), "p": obj.p, "n_train": obj.n, "solver": solver.name,
            "min_eigenvalue": info.get("min_eigenvalue"), "max_eigenvalue": info.get("max_eigenvalue"),
            "hessian_method": info.get("hessian_method"), **{k: v for k, v in info.items()
                                                            if k not in ("min_eigenvalue", "max_eigenvalue",
                                                                         "hessian_method")},
            "fit_seconds": time.perf_counter() - start,
        }
        for name in ("self_influence_",):
            self.__dict__.pop(name, None)
        return self

    def _check_stationarity(self, grad_norm: float, share: float, ratio: float) -> None:
        if self.check_optimum == "ignore" or ratio <= 0.1:
            return
        msg = (
            f"The model is not at an optimum of the training objective: ||grad R(theta)|| = {grad_norm:.3g}, "
            f"{ratio:.3g} times the gradient share of one training point ((1/n) median ||g_i|| = {share:.3g}); "
            f"stationarity_ratio={ratio:.3g} (want <= 0.1). Influence functions linearise around a minimum, so "
            "leave-one-out predictions would mostly reflect the optimiser's unfinished progress. Fix: train to "
            "convergence with the same objective (e.g. scrutiny.data_attribution.fit_to_optimum(model, loss, "
            "X_train, y_train, l2=..., params=...)), check that l2 equals the L2 strength used in training, "
            "restrict params='last' after fine-tuning that layer, or pass check_optimum='warn' to proceed anyway "
            "(scores then approximate a proximal response, not leave-one-out retraining)."
        )
        if ratio > 1 and self.check_optimum == "raise":
            raise NotAtOptimumError(msg)
        warnings.warn(msg, ConvergenceWarning, stacklevel=3)

    # ------------------------------------------------------------------ helpers
    def _fitted(self) -> None:
        check_is_fitted(self, ["solver_", "train_grads_"])

    def _solve(self, B: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        return self.solver_.solve(B)

    def _targets(self, X: Any, target: Any) -> Any:
        """The labels at which the test loss is taken: ``target``, or the model's predicted class."""
        if X is None:
            raise InvalidParameterError("X is required: the test inputs whose loss is attributed.")
        if target is not None:
            if np.ndim(target) == 0 and not hasattr(target, "detach"):  # one label for every row
                n = X.shape[0] if hasattr(X, "shape") else len(X)
                return np.full(n, target)
            return target
        if isinstance(self.loss, str) and self.loss != "cross_entropy":
            raise InvalidParameterError(
                f"target=None takes the loss at the predicted class, which needs a classifier; with loss="
                f"{self.loss!r} pass target= (the values at which the test loss is evaluated).")
        out = self.objective_.outputs(X)
        if out.ndim == 1 or out.shape[1] == 1:
            return (out.reshape(-1) > 0).astype(np.int64)
        return out.argmax(axis=1).astype(np.int64)

    def _test_grads(self, X: Any, target: Any) -> np.ndarray:
        return self.objective_.per_sample_grads(X, target, names=("X", "target"))

    def _params_record(self) -> dict[str, Any]:
        loss = self.loss if isinstance(self.loss, str) else f"<callable {getattr(self.loss, '__qualname__', '?')}>"
        return {"solver": self.solver_.name, "solver_params": {k: v for k, v in self.solver_.params().items()
                                                               if isinstance(v, (int, float, str, bool, type(None)))},
                "l2": float(self.l2), "damping": float(self.damping), "params": list(self.objective_.names),
                "loss": loss, "n_train": self.objective_.n, "p": self.objective_.p,
                "normalized_by_n": True}

    # ------------------------------------------------------------------ public API
    @blas_guarded
    def attribute(self, X: Any, target: Any = None) -> DataAttribution:
        """Influence of every training point on the loss of every test point.

        Parameters
        ----------
        X : array-like of shape (n_test, ...)
        target : array-like of shape (n_test, ...), optional
            The labels the test loss is evaluated at (the true labels, to explain the test
            loss). None: the model's predicted class (to explain a prediction; classifiers
            only). Passing ``y_test`` second, as before, is this argument.

        Returns
        -------
        DataAttribution
            ``scores`` of shape (n_test, n_train), ``(1/n) g_t^T (H + damping I)^{-1} g_i``:
            positive = helpful (removing the point raises the test loss). ``target`` is
            the labels used, for integer labels. ``extras``: ``test_loss`` (n_test,),
            ``solver_residual`` (n_test,) for CG, and the fit diagnostics.
        """
        self._fitted()
        self._validate_params()
        y_test = self._targets(X, target)
        Gt = self._test_grads(X, y_test)
        S, info = self._solve(Gt.T)
        scores = (self.train_grads_ @ S).T / self.objective_.n
        test_loss = self.objective_.loss_values(X, y_test, names=("X", "target"))
        extras: dict[str, Any] = {"test_loss": test_loss}
        if "residuals" in info:
            extras["solver_residual"] = np.asarray(info["residuals"], dtype=np.float64)
        for key in ("grad_norm", "stationarity_ratio", "min_eigenvalue", "max_eigenvalue", "lissa_scale"):
            val = self.diagnostics_.get(key)
            if val is not None:
                extras[key] = float(val)
        y_arr = np.asarray(y_test)
        target = y_arr.astype(np.int64) if (y_arr.ndim == 1 and np.issubdtype(y_arr.dtype, np.integer)) else None
        return DataAttribution(scores=scores, method="InfluenceFunctions", convention=CONVENTION, target=target,
                               params=self._params_record(), extras=extras)

    @blas_guarded
    def self_influence(self, train_indices: Any = None) -> np.ndarray:
        """Each training point's influence on its own loss, ``(1/n) g_i^T (H + damping I)^{-1} g_i >= 0``.

        In this library's convention it is the predicted rise of point ``i``'s own loss when
        ``i`` is removed (Koh & Liang's ``I_up,loss(z_i, z_i)`` is ``-n`` times it). Large values
        flag points the model can only fit by bending towards them: candidates for
        mislabelled or atypical examples.

        Parameters
        ----------
        train_indices : array-like of int, optional
            Compute only these points (default: all, cached in ``self_influence_``). With the
            iterative solvers every point costs one inverse-Hessian-vector product.

        Returns
        -------
        ndarray of shape (n_train,) or (len(train_indices),)
        """
        self._fitted()
        if train_indices is None and getattr(self, "self_influence_", None) is not None:
            return self.self_influence_
        idx = self._indices(train_indices)
        G, n = self.train_grads_[idx], self.objective_.n
        out = np.empty(len(idx))
        fact = getattr(self.solver_, "factorization_", None)
        chunk = 512
        for s in range(0, len(idx), chunk):
            Gb = G[s:s + chunk]
            if fact is not None:
                W = fact.whiten(Gb.T)
                out[s:s + chunk] = (W * W).sum(axis=0)
            else:
                S, _ = self._solve(Gb.T)
                out[s:s + chunk] = (Gb.T * S).sum(axis=0)
        out /= n
        if train_indices is None:
            self.self_influence_ = out
        return out

    @blas_guarded
    def influence_up_params(self, train_indices: Any = None) -> np.ndarray:
        """``I_up,params(z_i) = -(H + damping I)^{-1} g_i``: the parameter change per unit up-weighting.

        Removing point ``i`` changes the parameters by about ``-(1/n) I_up,params(z_i)``.

        Parameters
        ----------
        train_indices : array-like of int, optional
            Training points (default: all).

        Returns
        -------
        ndarray of shape (len(train_indices), p)
            In the flat order of ``objective_.names``.
        """
        self._fitted()
        idx = self._indices(train_indices)
        S, _ = self._solve(self.train_grads_[idx].T)
        return -S.T

    def influence_up_loss(self, X: Any, target: Any = None) -> np.ndarray:
        """Koh & Liang's ``I_up,loss(z_i, z_t) = -g_t^T (H + damping I)^{-1} g_i``, shape (n_test, n_train).

        Equal to ``-n * attribute(X, target).scores`` (up-weighting, not removal; not divided by n).
        """
        return -self.objective_.n * self.attribute(X, target).scores

    @blas_guarded
    def influence_pert_loss(self, X: Any, target: Any = None, train_indices: Any = None) -> np.ndarray:
        """Koh & Liang's ``I_pert,loss(z_i, z_t) = -grad_x [g_t^T (H + damping I)^{-1} grad_theta L(x_i, y_i)]``.

        Moving training input ``x_i`` to ``x_i + delta`` changes the test loss by about
        ``(1/n) I_pert,loss . delta``: its sign gives the direction in which to perturb a
        training input to raise (``+``) or lower (``-``) the test loss -- the training-set
        attack of Koh & Liang (Sec. 5.2).

        Parameters
        ----------
        X, target : test inputs (n_test, ...) and the labels of their loss (None: predicted class)
        train_indices : array-like of int, optional
            Training points whose inputs are differentiated (default: all).

        Returns
        -------
        ndarray of shape (n_test, len(train_indices), *input_shape)
        """
        self._fitted()
        idx = self._indices(train_indices)
        S, _ = self._solve(self._test_grads(X, self._targets(X, target)).T)
        obj = self.objective_
        Xi = obj._X[idx].numpy()
        yi = obj._y[idx].numpy()
        return -obj.input_gradients(S, Xi, yi, names=("X_train", "y_train"))

    def _indices(self, train_indices: Any) -> np.ndarray:
        n = self.objective_.n
        if train_indices is None:
            return np.arange(n)
        idx = np.asarray(train_indices)
        if idx.ndim == 0:
            idx = idx[None]
        if not np.issubdtype(idx.dtype, np.integer) or idx.ndim != 1 or ((idx < -n) | (idx >= n)).any():
            raise InvalidParameterError(
                f"train_indices must be a 1-d array of ints in [0, {n - 1}] (positions in X_train); got "
                f"{train_indices!r}."
            )
        return idx % n
