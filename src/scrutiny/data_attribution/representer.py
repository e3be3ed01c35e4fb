"""Representer Point Selection (Yeh, Kim, Yen & Ravikumar, NeurIPS 2018).

The last linear layer of a network is fine-tuned, on the frozen penultimate features
``f_i``, to a **verified stationary point** of the convex problem::

    min_W  (1/n) sum_i L(softmax(W f~_i), t_i) + (l2/2) ||W||^2

Stationarity gives ``W = sum_i alpha_i f~_i^T`` with

    alpha_i = -(1/(l2 n)) dL/dPhi(x_i)        (= (t_i - softmax(Phi_i)) / (l2 n) for cross-entropy)

so every pre-activation of the fine-tuned model decomposes exactly over the training set::

    Phi(x_t) = sum_i alpha_i k(x_i, x_t),   representer value of i for class j: alpha_ij k(x_i, x_t).

Scaling: the paper writes the regulariser as ``lambda ||W||^2`` and gets ``alpha = -1/(2 lambda n)
dL/dPhi``; scrutiny's ``l2`` is the library-wide ``(l2/2)||W||^2``, so ``l2 = 2 lambda`` and
``alpha = -1/(l2 n) dL/dPhi``. The reference code's ``lambda = 0.003`` is ``l2 = 0.006`` here.

The bias (``bias=``):

* ``"regularized"`` (default, as the reference code): features get a constant 1 appended, the
  bias is a regularised weight and ``k(x_i, x_t) = f_i^T f_t + 1``; the decomposition is exact;
* ``"free"``: an unregularised bias ``b``; stationarity in ``b`` gives ``sum_i alpha_i = 0`` and
  ``Phi(x_t) = sum_i alpha_i f_i^T f_t + b`` with ``k = f_i^T f_t``; ``b`` (``intercept_``) is the
  part no training point accounts for;
* ``"none"``: no bias, ``k = f_i^T f_t``.

The decomposition holds up to the stationarity residual ``||W - sum_i alpha_i f~_i^T|| / ||W||``,
which is reported (``stationarity_residual_``): the reference implementation's stopping rule can
stop far from stationarity, and then the decomposition does not hold.

References
----------
.. [1] Yeh, C.-K., Kim, J. S., Yen, I. E. H. & Ravikumar, P. (2018). Representer point selection
   for explaining deep neural networks. NeurIPS.
.. [2] Koh, P. W. & Liang, P. (2017). Understanding black-box predictions via influence
   functions. ICML.
"""

from __future__ import annotations

import time
import warnings
from typing import Any, ClassVar, NamedTuple

import numpy as np
from scipy.optimize import minimize
from scipy.sparse.linalg import LinearOperator, cg
from scipy.special import expit, log_expit, log_softmax, softmax

from .._threads import blas_guarded
from .._validation import Interval, Options, ParamsMixin, check_is_fitted, check_target
from ..exceptions import CapabilityError, ConvergenceWarning, InvalidParameterError
from ..explanation import DataAttribution
from ..models import TorchModel, as_model, require_capability
from ._protocol import resolve_fit_data, take_deprecated_data

__all__ = ["Decomposition", "RepresenterPoints", "SensitivityDecomposition"]

CONVENTION = (
    "positive = excitatory: the training point raises the target class's pre-activation; "
    "score = alpha_ij * k(x_i, x_t), and the scores of a test point sum to the fine-tuned model's "
    "pre-activation (minus intercept_ for bias='free')"
)


class Decomposition(NamedTuple):
    """The fine-tuned pre-activations and their representer reconstruction."""

    pre_activations: np.ndarray  #: (n, c) ``W f~_t (+ b)`` of the fine-tuned head
    reconstructed: np.ndarray  #: (n, c) ``sum_i alpha_i k(x_i, x_t) (+ b)``
    max_abs_error: float


class SensitivityDecomposition(NamedTuple):
    """Per-training-point input-gradient maps of one test prediction (Yeh et al. 2018, Sec. 4.4)."""

    train_ids: np.ndarray  #: (k,) training points decomposed
    values: np.ndarray  #: (k,) their representer values for ``target``
    maps: np.ndarray  #: (k, *input_shape) ``alpha_ij d(f_i^T f(x_t))/dx_t``
    total: np.ndarray  #: (*input_shape) ``d Phi_j(x_t)/dx_t`` of the representer model (sum over all points)
    remainder: np.ndarray  #: (*input_shape) ``total - maps.sum(0)``: the points not listed
    target: int


def _wrap(model: Any) -> Any:
    """``as_model`` that keeps a torch module's own floating dtype (float64 modules stay float64)."""
    if isinstance(model, TorchModel) or not hasattr(model, "parameters"):
        return as_model(model) if not isinstance(model, TorchModel) else model
    first = next(iter(model.parameters()), None)
    dtype = first.dtype if first is not None and first.is_floating_point() else None
    return as_model(model, dtype=dtype)


def _chunked(fn: Any, X: np.ndarray, rows: int | None) -> np.ndarray:
    """``fn(X)`` evaluated on at most ``rows`` rows at a time (all at once if None): memory only."""
    if rows is None or X.shape[0] <= rows:
        return fn(X)
    return np.concatenate([fn(X[s:s + rows]) for s in range(0, X.shape[0], rows)], axis=0)


_NEW_FORM = "RepresenterPoints(model, **params).fit(X_train, y_train)"
_OLD_FORM = "RepresenterPoints(model, X_train, y_train, ...).fit()"


class RepresenterPoints(ParamsMixin):
    """Representer values of training points for the predictions of a network's last layer.

    ``RepresenterPoints(model, **params).fit(X_train, y_train)``, then ``attribute(X, target=None)``.

    Parameters
    ----------
    model : torch.nn.Module or TorchModel
        A network whose output is its last ``torch.nn.Linear`` layer applied to the penultimate
        features (``model.features(x)``, or the input of that layer), e.g. any zoo model.
    l2 : float, default 0.006
        L2 strength of the fine-tuning, regulariser ``(l2/2) ||W||^2`` (paper's ``lambda = l2/2``;
        0.006 is the reference code's ``lambda = 0.003``). Larger values make the fine-tuned
        head deviate more from the model.
    bias : {"regularized", "free", "none"}, default "regularized"
        How the bias is handled (see the module docstring).
    fit_to : {"predictions", "labels"}, default "predictions"
        Targets of the fine-tuning: the original model's probabilities (the reference code:
        the representer model imitates the given model) or the training labels (the
        training objective of the paper's theorem; use it for dataset debugging).
    tol : float, default 1e-8
        Required stationarity residual ``||W - sum_i alpha_i f~_i^T|| / ||W||``.
    max_iter : int, default 1000
        L-BFGS iterations before the Newton-CG polish.
    batch_size : int, optional
        Rows per forward pass (memory chunking only; also honoured when ``model`` is a
        ``TorchModel``, whose own ``batch_size`` then bounds the rows of each inner call).

    Attributes
    ----------
    coef_ : ndarray of shape (c, m)
        Fine-tuned weights (``c`` outputs, ``m`` features).
    intercept_ : ndarray of shape (c,)
        Fine-tuned bias (zeros for ``bias="none"``).
    alpha_ : ndarray of shape (n_train, c)
        The representer coefficients ``-(1/(l2 n)) dL/dPhi``.
    importance_ : ndarray of shape (n_train,)
        ``|alpha_{i, y_i}|`` (the coefficient at the point's own label; the global importance used
        to rank suspicious points), or ``|alpha_i|`` for a single-logit model.
    train_features_ : ndarray of shape (n_train, m)
    stationarity_residual_ : float
        ``||W - sum_i alpha_i f~_i^T||_F / ||W||_F`` over the regularised weights.
    diagnostics_ : dict
        ``stationarity_residual``, ``grad_norm``, ``objective``, ``n_iter``, ``newton_iter``,
        ``fidelity_corr`` (Pearson correlation of fine-tuned and original outputs on the training
        set), ``fidelity_agreement`` (fraction of equal arg-max), ``fit_seconds``.

    References
    ----------
    .. [1] Yeh, Kim, Yen & Ravikumar (2018). Representer point selection for explaining deep neural
       networks. NeurIPS.

    Examples
    --------
    >>> rps = RepresenterPoints(model).fit(X_train, y_train)        # doctest: +SKIP
    >>> att = rps.attribute(X_test[:3])                             # doctest: +SKIP
    >>> att.proponents(5), att.opponents(5)                         # doctest: +SKIP
    """

    _constraints: ClassVar[dict[str, list]] = {
        "l2": [Interval(float, 0, None, closed="neither")], "bias": [Options("regularized", "free", "none")],
        "fit_to": [Options("predictions", "labels")], "tol": [Interval(float, 0, None, closed="neither")],
        "max_iter": [Interval(int, 1, None)], "batch_size": [Interval(int, 1, None), None]}
    _hints: ClassVar[dict[str, str]] = {
        "l2": "The theorem needs L2 regularisation; 0.006 is the reference code's setting (lambda = 0.003)."}

    def __init__(self, model: Any, *args: Any, l2: float = 0.006, bias: str = "regularized",
                 fit_to: str = "predictions", tol: float = 1e-8, max_iter: int = 1000,
                 batch_size: int | None = None, **kwargs: Any):
        # *args / **kwargs only carry the deprecated constructor data (X_train, y_train)
        data = take_deprecated_data("RepresenterPoints", args, kwargs, _OLD_FORM, _NEW_FORM)
        if data is not None:
            self._deprecated_data = data
        self.model = model
        self.l2 = l2
        self.bias = bias
        self.fit_to = fit_to
        self.tol = tol
        self.max_iter = max_iter
        self.batch_size = batch_size

    # ------------------------------------------------------------------ fit
    @blas_guarded
    def fit(self, X_train: Any = None, y_train: Any = None) -> RepresenterPoints:
        """Extract features, fine-tune the last layer to a stationary point, compute ``alpha``.

        Parameters
        ----------
        X_train : array-like of shape (n_train, ...)
        y_train : array-like of shape (n_train,)
            Integer labels (used when ``fit_to="labels"``; checked in any case).

        Returns
        -------
        self
        """
        start = time.perf_counter()
        self._validate_params()
        X_train, y_train = resolve_fit_data(self, X_train, y_train, _NEW_FORM, stacklevel=4)  # under blas_guarded
        model = _wrap(self.model)
        require_capability(model, "features", "RepresenterPoints")
        if not isinstance(model, TorchModel) or model.output != "logit":
            raise CapabilityError("RepresenterPoints needs a torch model returning logits (output='logit').")
        _, layer = model.last_linear()
        X = model.check_input(X_train)
        Fm = _chunked(model.features, X, self.batch_size)
        Z0 = _chunked(model.predict, X, self.batch_size)
        W0 = layer.weight.detach().double().cpu().numpy()
        b0 = (layer.bias.detach().double().cpu().numpy() if layer.bias is not None else np.zeros(W0.shape[0]))
        if Fm.shape[1] != W0.shape[1] or Z0.shape[1] != W0.shape[0]:
            raise CapabilityError(
                f"The features ({Fm.shape[1]} columns) and outputs ({Z0.shape[1]}) do not match the last linear "
                f"layer {tuple(W0.shape[::-1])}; pass features= to as_model so that model(x) = last_layer(features(x))."
            )
        err = np.abs(Fm @ W0.T + b0 - Z0).max()
        if err > 1e-3 * (1 + np.abs(Z0).max()):
            raise CapabilityError(
                f"model(x) is not the last linear layer applied to the features (max difference {err:.3g}); "
                "RepresenterPoints decomposes that layer. Pass features= to as_model to name the layer whose output "
                "feeds the last Linear, and make sure nothing follows it."
            )
        y = np.asarray(y_train)
        c = Z0.shape[1]
        y = check_target(y, Fm.shape[0], max(c, 2), name="y_train")
        if self.fit_to == "labels":
            T = (y.astype(np.float64) if c == 1 else np.eye(c)[y])
        else:
            T = expit(Z0[:, 0]) if c == 1 else softmax(Z0, axis=1)
        T = T.reshape(-1, 1) if c == 1 else T
        self.train_features_ = Fm
        self._single = c == 1
        self._solve(Fm, T, W0, b0)
        P = self._probs(self._phi(Fm))
        self.alpha_ = -(P - T) / (self.l2 * Fm.shape[0])
        self.importance_ = np.abs(self.alpha_[:, 0] if c == 1 else self.alpha_[np.arange(len(y)), y])
        Ft = self._kernel_features(Fm)
        Wreg = self._Wreg()
        R = Wreg - self.alpha_.T @ Ft
        self.stationarity_residual_ = float(np.linalg.norm(R) / max(np.linalg.norm(Wreg), 1e-300))
        Zft = self._phi(Fm)
        self.diagnostics_ = {
            **self._solve_info, "stationarity_residual": self.stationarity_residual_,
            "fidelity_corr": float(np.corrcoef(Zft.ravel(), Z0.ravel())[0, 1]) if Z0.size > 1 else 1.0,
            "fidelity_agreement": float(np.mean((Zft[:, 0] > 0) == (Z0[:, 0] > 0)) if c == 1
                                        else np.mean(Zft.argmax(1) == Z0.argmax(1))),
            "fit_seconds": time.perf_counter() - start}
        if self.stationarity_residual_ > self.tol:
            warnings.warn(
                f"RepresenterPoints: the fine-tuned layer reached a stationarity residual of "
                f"{self.stationarity_residual_:.2e} > tol={self.tol:g}; the representer decomposition is off by "
                "about that fraction. Increase max_iter, loosen tol, or increase l2.", ConvergenceWarning, stacklevel=2)
        self.model_ = model
        return self

    # ------------------------------------------------------------------ fine-tuning (convex)
    def _kernel_features(self, Fm: np.ndarray) -> np.ndarray:
        """Features entering the kernel: ``[f, 1]`` for a regularised bias, ``f`` otherwise."""
        return np.hstack([Fm, np.ones((Fm.shape[0], 1))]) if self.bias == "regularized" else Fm

    def _Wreg(self) -> np.ndarray:
        return np.hstack([self.coef_, self.intercept_[:, None]]) if self.bias == "regularized" else self.coef_

    def _phi(self, Fm: np.ndarray) -> np.ndarray:
        return Fm @ self.coef_.T + self.intercept_

    def _probs(self, Z: np.ndarray) -> np.ndarray:
        return expit(Z) if self._single else softmax(Z, axis=1)

    def _solve(self, Fm: np.ndarray, T: np.ndarray, W0: np.ndarray, b0: np.ndarray) -> None:
        n, m = Fm.shape
        c = T.shape[1]
        Ft = np.hstack([Fm, np.ones((n, 1))])
        l2 = float(self.l2)
        reg = np.ones((c, m + 1))
        if self.bias != "regularized":
            reg[:, m] = 0.0
        fixed_zero_bias = self.bias == "none"
        single = self._single

        def unpack(w: np.ndarray) -> np.ndarray:
            W = w.reshape(c, m + 1).copy()
            if fixed_zero_bias:
                W[:, m] = 0.0
            return W

        def fun(w: np.ndarray) -> tuple[float, np.ndarray]:
            W = unpack(w)
            Z = Ft @ W.T
            if single:
                loss = -(T * log_expit(Z) + (1 - T) * log_expit(-Z)).sum() / n
                P = expit(Z)
            else:
                loss = -(T * log_softmax(Z, axis=1)).sum() / n
                P = softmax(Z, axis=1)
            G = (P - T).T @ Ft / n + l2 * reg * W
            if fixed_zero_bias:
                G[:, m] = 0.0
            return float(loss + 0.5 * l2 * (reg * W * W).sum()), G.ravel()

        def hessp(w: np.ndarray, v: np.ndarray) -> np.ndarray:
            W, V = unpack(w), unpack(v)
            Z = Ft @ W.T
            dZ = Ft @ V.T
            if single:
                P = expit(Z)
                dP = P * (1 - P) * dZ
            else:
                P = softmax(Z, axis=1)
                dP = P * dZ - P * (P * dZ).sum(axis=1, keepdims=True)
            Hv = dP.T @ Ft / n + l2 * reg * V
            if fixed_zero_bias:
                Hv[:, m] = 0.0
            return Hv.ravel()

        def residual(w: np.ndarray) -> float:
            _, g = fun(w)
            W = unpack(w)
            G = g.reshape(c, m + 1)
            wn = np.linalg.norm(reg * W)
            # ||W - alpha^T F~|| = ||grad_reg|| / l2 on the regularised block; a free bias must have zero gradient
            res = np.linalg.norm(reg * G) / (l2 * max(wn, 1e-300))
            if self.bias == "free":
                res = max(res, np.linalg.norm(G[:, m]) / (l2 * max(wn, 1e-300)))
            return float(res)

        w0 = np.hstack([W0, (np.zeros((c, 1)) if fixed_zero_bias else b0[:, None])]).ravel()
        res = minimize(fun, w0, jac=True, method="L-BFGS-B",
                       options={"maxiter": int(self.max_iter), "gtol": 0.0, "ftol": 0.0, "maxcor": 20})
        w = res.x
        n_newton = 0
        r = residual(w)
        # Newton-CG polish driven by the gradient (near the optimum the objective's changes fall below
        # float64 resolution, so objective-based line searches or trust regions stall).
        while r > self.tol and n_newton < 30:
            _, g = fun(w)
            op = LinearOperator((w.size, w.size), matvec=lambda v, w=w: hessp(w, v), dtype=np.float64)
            step, _ = cg(op, -g, rtol=1e-12, atol=0.0, maxiter=10 * w.size)
            n_newton += 1
            r_new = residual(w + step)
            if not np.isfinite(r_new) or r_new >= r:
                break
            w, r = w + step, r_new
        W = unpack(w)
        self.coef_ = W[:, :m].copy()
        self.intercept_ = W[:, m].copy()
        val, g = fun(w)
        self._solve_info = {"objective": val, "grad_norm": float(np.linalg.norm(g)), "n_iter": int(res.nit),
                            "newton_iter": n_newton}

    # ------------------------------------------------------------------ values
    def _fitted(self) -> None:
        check_is_fitted(self, ["alpha_", "coef_"])

    def _check(self, X: Any, name: str) -> np.ndarray:
        if X is None:
            raise InvalidParameterError(f"{name} is required.")
        try:
            return self.model_.check_input(X)
        except InvalidParameterError as exc:
            raise InvalidParameterError(f"{name}: {exc}") from exc

    def _test_features(self, X: Any, name: str = "X") -> np.ndarray:
        return _chunked(self.model_.features, self._check(X, name), self.batch_size)

    @blas_guarded
    def kernel(self, X: Any) -> np.ndarray:
        """``k(x_i, x_t)`` for every test and training point, shape (n_test, n_train)."""
        self._fitted()
        Ft = self._kernel_features(self._test_features(X))
        return Ft @ self._kernel_features(self.train_features_).T

    @blas_guarded
    def representer_values(self, X: Any) -> np.ndarray:
        """All representer values ``alpha_ij k(x_i, x_t)``, shape (n_test, n_train, c).

        Memory is ``n_test * n_train * c`` floats; :meth:`attribute` keeps one class per test point.
        """
        K = self.kernel(X)
        return K[:, :, None] * self.alpha_[None, :, :]

    @blas_guarded
    def pre_activations(self, X: Any) -> np.ndarray:
        """Outputs of the fine-tuned head ``W f(x) + b``, shape (n, c)."""
        self._fitted()
        return self._phi(self._test_features(X, "X"))

    @blas_guarded
    def decomposition(self, X: Any) -> Decomposition:
        """Fine-tuned pre-activations and their reconstruction ``sum_i alpha_i k(x_i, x) (+ b)``."""
        self._fitted()
        Fm = self._test_features(X, "X")
        K = self._kernel_features(Fm) @ self._kernel_features(self.train_features_).T
        rec = K @ self.alpha_
        if self.bias == "free":
            rec = rec + self.intercept_
        pre = self._phi(Fm)
        return Decomposition(pre, rec, float(np.abs(pre - rec).max()))

    @blas_guarded
    def attribute(self, X: Any, target: Any = None) -> DataAttribution:
        """Representer values of every training point for one class per test point.

        Parameters
        ----------
        X : array-like of shape (n_test, ...)
        target : int or array-like of shape (n_test,), optional
            Class explained per test point (default: the fine-tuned head's predicted class; for a
            single-logit model, output 0). Passing ``y_test`` second, as before, is this argument.

        Returns
        -------
        DataAttribution
            ``scores[t, i] = alpha_{i, target_t} k(x_i, x_t)``: positive = excitatory. Each row
            sums to the fine-tuned pre-activation of the target (minus ``intercept_`` for
            ``bias="free"``). ``extras``: ``pre_activation`` (n_test,) of the fine-tuned head,
            ``original_output`` (n_test,) of the original model, ``decomposition_error`` (n_test,),
            ``stationarity_residual``, ``l2``, ``intercept`` (the target's free bias, per test point).
        """
        self._fitted()
        self._validate_params()
        Xc = self._check(X, "X")
        Fm = _chunked(self.model_.features, Xc, self.batch_size)
        c = self.alpha_.shape[1]
        pre = self._phi(Fm)
        if target is None:
            target = np.zeros(Fm.shape[0], dtype=np.int64) if c == 1 else pre.argmax(axis=1)
        target = check_target(target, Fm.shape[0], c)
        K = self._kernel_features(Fm) @ self._kernel_features(self.train_features_).T
        scores = K * self.alpha_[:, target].T
        rows = np.arange(Fm.shape[0])
        intercept = self.intercept_[target] if self.bias == "free" else np.zeros(Fm.shape[0])
        pre_t = pre[rows, target]
        orig = _chunked(self.model_.predict, Xc, self.batch_size)[rows, target]
        extras = {"pre_activation": pre_t, "original_output": orig,
                  "decomposition_error": np.abs(scores.sum(axis=1) + intercept - pre_t),
                  "intercept": intercept, "stationarity_residual": self.stationarity_residual_, "l2": float(self.l2)}
        params = {"l2": float(self.l2), "bias": self.bias, "fit_to": self.fit_to, "tol": float(self.tol),
                  "n_train": int(self.alpha_.shape[0])}
        return DataAttribution(scores=scores, method="RepresenterPoints", convention=CONVENTION, target=target,
                               params=params, extras=extras)

    # ------------------------------------------------------------------ sensitivity maps
    @blas_guarded
    def sensitivity_maps(self, x: Any, target: int | None = None, k: int = 10,
                         train_indices: Any = None) -> SensitivityDecomposition:
        """Decompose the input gradient of one prediction over training points (Yeh et al., Sec. 4.4).

        ``d Phi_j(x)/dx = sum_i alpha_ij J_f(x)^T f_i``: training point ``i`` contributes the map
        ``alpha_ij d(f_i^T f(x))/dx`` (the bias column of ``k`` is constant and contributes nothing).

        Parameters
        ----------
        x : array-like of shape (1, ...) or (...)
            One test input.
        target : int, optional
            Class (default: the fine-tuned head's prediction).
        k : int, default 10
            Number of training points (largest ``|representer value|``) if ``train_indices`` is None.
        train_indices : array-like of int, optional
            Training points to decompose over.

        Returns
        -------
        SensitivityDecomposition
            ``maps.sum(0) + remainder == total`` exactly; ``total`` is the input gradient of the
            representer model's pre-activation ``sum_i alpha_ij f_i^T f(x)``.
        """
        import torch

        self._fitted()
        model = self.model_
        xa = np.asarray(x, dtype=np.float64)
        if model.input_shape_ is not None and xa.shape == tuple(model.input_shape_):
            xa = xa[None]
        xa = model.check_input(xa)
        if xa.shape[0] != 1:
            raise InvalidParameterError(f"x must be a single sample; got {xa.shape[0]} rows. Pass X_test[i].")
        att = self.attribute(xa, target)
        j = int(att.target[0])
        row = att.scores[0]
        if train_indices is None:
            kk = int(min(max(int(k), 1), row.size))
            ids = np.argsort(-np.abs(row), kind="stable")[:kk]
        else:
            ids = np.asarray(train_indices, dtype=np.int64).reshape(-1)
            if ((ids < 0) | (ids >= row.size)).any():
                raise InvalidParameterError(f"train_indices must lie in [0, {row.size - 1}]; got {train_indices!r}.")
        U = self.alpha_[ids, j][:, None] * self.train_features_[ids]  # (k, m)
        u_all = self.alpha_[:, j] @ self.train_features_  # (m,)
        with model._eval():
            xt = model._tensor(xa, requires_grad=True)
            with torch.enable_grad():
                f = model._features_tensor(xt).reshape(1, -1)
                cot = torch.as_tensor(np.vstack([U, u_all[None]]), dtype=f.dtype)[:, None, :]
                (g,) = torch.autograd.grad(f, xt, grad_outputs=cot, is_grads_batched=True)
        g = g.detach().to("cpu", torch.float64).numpy()[:, 0]
        maps, total = g[:-1], g[-1]
        return SensitivityDecomposition(ids, row[ids], maps, total, total - maps.sum(axis=0), j)
