"""Generalisation diagnostics from training features alone (DeepNNK).

DeepNNK (Shekkizhar & Ortega 2020) estimates the test error of a network from its *training*
data: the penultimate features of the training set are NNK-interpolated leave-one-out (every
training point from its k nearest *other* training points), and the LOO error tracks the
network's test error across epochs. When a network starts to overfit, the LOO error rises
although the training error keeps falling, which gives a validation-free early-stopping and
model-selection signal.

* :class:`GeneralizationMonitor` -- a ``callback(epoch, model)`` for
  :func:`scrutiny.zoo.train_model` (or any loop) that records, per epoch, the LOO NNK and kNN
  error on the training features, the network's train and test error, and optionally the NNK
  and kNN classifiers' error on the test features;
* :func:`nnk_generalization` -- the same over saved checkpoints (modules or weight files);
* :func:`channelwise_loo_error` -- CW-DeepNNK (Bonet et al. 2021): the same leave-one-out NNK
  error computed on each channel of a convolutional layer separately, the per-channel
  early-stopping signal;
* :class:`GeneralizationResult` -- per-epoch arrays, correlations across epochs; saved and
  reloaded like every result (``save`` / :func:`scrutiny.load_result`);
* :func:`out_of_support` -- per-query scores of how far a query lies outside the training
  data's NNK polytopes: the kernel-space residual (distance to the polytope of its neighbours)
  and the class disagreement of the polytope. In the paper's interpolation view, adversarial
  and generated inputs are queries whose features leave the support of the training features
  or fall into polytopes whose vertices disagree.

References
----------
.. [1] S. Shekkizhar & A. Ortega (2020). DeepNNK: Explaining deep models and their generalization
   using polytope interpolation. arXiv:2007.10505.
.. [2] D. Bonet, A. Ortega, J. Ruiz-Hidalgo & S. Shekkizhar (2021). Channel-wise early stopping
   without a validation set via NNK polytope interpolation. APSIPA ASC.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Iterable
from typing import Any

import numpy as np

from .._validation import (
    Interval,
    Options,
    ParamsMixin,
    check_array,
    check_random_state,
    validate_params,
)
from ..exceptions import InvalidParameterError
from .estimator import NNK
from .results import GeneralizationResult, OutOfSupport

__all__ = ["GeneralizationMonitor", "GeneralizationResult", "OutOfSupport", "channelwise_loo_error",
           "nnk_generalization", "out_of_support"]


class GeneralizationMonitor(ParamsMixin):
    """Record DeepNNK generalisation estimates after every epoch: ``callback(epoch, model)``.

    A training callback rather than an estimator: it needs the data at every epoch, so the data
    are constructor arguments. Like every scrutiny class it has ``get_params`` / ``set_params`` /
    ``repr`` and ``clone`` gives a fresh monitor; the arguments are stored as given and checked
    when the monitor is first called (and again on every call, so ``set_params`` is checked too).

    Parameters
    ----------
    X_train : array-like of shape (n_train, ...)
        Training inputs (as fed to the model).
    y_train : array-like of shape (n_train,)
        Integer class labels.
    X_test, y_test : array-like, optional
        Test inputs and labels: the network's test error is recorded beside the LOO estimates.
    k : int, default 50
        NNK candidate neighbours.
    kernel : {"cosine", "gaussian"}, default "cosine"
    solver : {"exact", "fista"}, default "exact"
    features : str or callable, optional
        How to read penultimate features (see :class:`scrutiny.models.TorchModel`); default the
        model's ``features`` method or the input of its last linear layer.
    n_loo : int, optional
        Leave out only this many training points (a fixed random subset, each interpolated from
        all other training points) to save time; default all.
    test_nnk : bool, default False
        Also classify the test features by NNK and kNN over the training features.
    batch_size : int, optional
        Rows per forward pass when extracting features (memory only).
    random_state : int, numpy.random.Generator or None, default 0
        Seed of the ``n_loo`` subset (drawn once, at the first epoch).

    Examples
    --------
    >>> from scrutiny.zoo import make_model, train_model                          # doctest: +SKIP
    >>> monitor = GeneralizationMonitor(X_tr, y_tr, X_te, y_te, k=25)             # doctest: +SKIP
    >>> train_model(model, X_tr, y_tr, epochs=20, callback=monitor)               # doctest: +SKIP
    >>> res = monitor.result(); res.correlation("loo_nnk_error", "test_error")    # doctest: +SKIP

    References
    ----------
    .. [1] S. Shekkizhar & A. Ortega (2020). DeepNNK: Explaining deep models and their
       generalization using polytope interpolation. arXiv:2007.10505.
    """

    _constraints = {
        "X_train": ["array-like"],
        "y_train": ["array-like"],
        "X_test": ["array-like", None],
        "y_test": ["array-like", None],
        "k": [Interval(int, 1, None)],
        "kernel": [Options("cosine", "gaussian")],
        "solver": [Options("exact", "fista")],
        "n_loo": [Interval(int, 1, None), None],
        "test_nnk": ["boolean"],
        "batch_size": [Interval(int, 1, None), None],
        "random_state": ["random_state"],
    }

    def __init__(self, X_train: Any, y_train: Any, X_test: Any = None, y_test: Any = None, *, k: int = 50,
                 kernel: str = "cosine", solver: str = "exact", features: Any = None, n_loo: int | None = None,
                 test_nnk: bool = False, batch_size: int | None = None, random_state: Any = 0) -> None:
        self.X_train = X_train
        self.y_train = y_train
        self.X_test = X_test
        self.y_test = y_test
        self.k = k
        self.kernel = kernel
        self.solver = solver
        self.features = features
        self.n_loo = n_loo
        self.test_nnk = test_nnk
        self.batch_size = batch_size
        self.random_state = random_state
        self._rows: list[dict[str, Any]] = []
        self._loo_idx: np.ndarray | None = None

    def _checked_data(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        """The parameters checked and the data as arrays: ``(X_train, y_train, X_test, y_test)``."""
        self._validate_params()
        X = check_array(self.X_train, "X_train", ndim=None, dtype=None)
        y = _labels(self.y_train, X.shape[0], "y_train", "X_train")
        if (self.X_test is None) != (self.y_test is None):
            raise InvalidParameterError("X_test and y_test must be given together (or neither).")
        Xt = yt = None
        if self.X_test is not None:
            Xt = check_array(self.X_test, "X_test", ndim=None, dtype=None)
            yt = _labels(self.y_test, Xt.shape[0], "y_test", "X_test")
        if self.test_nnk and Xt is None:
            raise InvalidParameterError("test_nnk=True needs X_test and y_test.")
        n = X.shape[0]
        if self.k > n - 1:
            raise InvalidParameterError(
                f"GeneralizationMonitor: k={self.k} must be at most n_train - 1 = {n - 1} (leave-one-out); "
                "use a smaller k."
            )
        return X, y, Xt, yt

    def _wrap(self, model: Any) -> Any:
        from ..models import as_model

        if hasattr(model, "features") and hasattr(model, "capabilities"):
            return model
        return as_model(model, batch_size=self.batch_size, features=self.features)

    def __call__(self, epoch: int, model: Any) -> dict[str, Any]:
        """Evaluate ``model`` (a torch module or a wrapped model) and record the row for ``epoch``."""
        X_train, y_train, X_test, y_test = self._checked_data()
        self.classes_ = np.unique(y_train)
        start = time.perf_counter()
        m = self._wrap(model)
        F = m.features(X_train)
        row: dict[str, Any] = {"epoch": int(epoch)}
        row["train_error"] = float(np.mean(m.predict(X_train).argmax(axis=1) != y_train))
        if X_test is not None:
            row["test_error"] = float(np.mean(m.predict(X_test).argmax(axis=1) != y_test))
        nnk = NNK(k=self.k, kernel=self.kernel, solver=self.solver).fit(F, y_train)
        if self.n_loo is not None and self._loo_idx is None and self.n_loo < F.shape[0]:
            rng = check_random_state(self.random_state)
            self._loo_idx = np.sort(rng.choice(F.shape[0], size=self.n_loo, replace=False))
        loo = nnk.loo_error(self._loo_idx)
        C = len(self.classes_)
        per_nnk = np.full(C, np.nan)
        per_knn = np.full(C, np.nan)
        pos = np.searchsorted(self.classes_, loo.classes)
        per_nnk[pos], per_knn[pos] = loo.nnk_error_per_class, loo.knn_error_per_class
        row.update(loo_nnk_error=loo.nnk_error, loo_knn_error=loo.knn_error, loo_nnk_soft_error=loo.nnk_soft_error,
                   loo_nnk_error_per_class=per_nnk, loo_knn_error_per_class=per_knn,
                   mean_residual=float(loo.residual.mean()), mean_neighbors=float(loo.n_neighbors.mean()),
                   max_kkt_residual=loo.max_kkt_residual)
        if self.test_nnk:
            Ft = m.features(X_test)
            sol = nnk.solve(Ft)
            p, knn, _ = nnk.interpolate(sol)
            row["nnk_test_error"] = float(np.mean(nnk.classes_[p.argmax(1)] != y_test))
            row["knn_test_error"] = float(np.mean(nnk.classes_[knn.argmax(1)] != y_test))
            row["max_kkt_residual"] = max(row["max_kkt_residual"], float(sol.kkt_residual.max()))
        row["seconds"] = time.perf_counter() - start
        self._rows.append(row)
        return row

    def result(self) -> GeneralizationResult:
        """The per-epoch record so far (sorted by epoch)."""
        if not self._rows:
            raise InvalidParameterError(
                "GeneralizationMonitor has recorded no epoch yet; pass it as callback= to train_model "
                "(or call monitor(epoch, model))."
            )
        rows = sorted(self._rows, key=lambda r: r["epoch"])
        C = len(self.classes_)

        def series(name: str) -> np.ndarray:
            return np.array([r.get(name, np.nan) for r in rows], dtype=np.float64)

        return GeneralizationResult(
            epochs=np.array([r["epoch"] for r in rows], dtype=np.int64),
            loo_nnk_error=series("loo_nnk_error"), loo_knn_error=series("loo_knn_error"),
            loo_nnk_soft_error=series("loo_nnk_soft_error"),
            loo_nnk_error_per_class=np.array([r["loo_nnk_error_per_class"] for r in rows]).reshape(len(rows), C),
            loo_knn_error_per_class=np.array([r["loo_knn_error_per_class"] for r in rows]).reshape(len(rows), C),
            train_error=series("train_error"), test_error=series("test_error"),
            nnk_test_error=series("nnk_test_error"), knn_test_error=series("knn_test_error"),
            mean_residual=series("mean_residual"), mean_neighbors=series("mean_neighbors"),
            max_kkt_residual=series("max_kkt_residual"), seconds=series("seconds"), classes=self.classes_,
            params={"k": self.k, "kernel": self.kernel, "solver": self.solver, "n_loo": self.n_loo,
                    "n_train": int(len(self.X_train)),
                    "n_test": None if self.X_test is None else int(len(self.X_test)),
                    "test_nnk": self.test_nnk},
        )


def _labels(y: Any, n: int, name: str, x_name: str) -> np.ndarray:
    arr = check_array(y, name, ndim=1, dtype=None)
    if arr.shape[0] != n:
        raise InvalidParameterError(f"{name} must have one label per row of {x_name} ({n}); got {arr.shape[0]}.")
    if arr.dtype.kind == "f":
        if not np.all(np.mod(arr, 1) == 0):
            raise InvalidParameterError(f"{name} must hold integer class labels; got non-integer values.")
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iub":
        raise InvalidParameterError(f"{name} must hold integer class labels; got dtype {arr.dtype}.")
    return arr.astype(np.int64)


def channelwise_loo_error(features: Any, y: Any, *, k: int = 25, kernel: str = "cosine", solver: str = "exact",
                          channels: Any = None, indices: Any = None) -> np.ndarray:
    """CW-DeepNNK: the leave-one-out NNK error of each channel's features on their own.

    Channel ``c`` of the training features ``features[:, c]`` (its spatial map, flattened) is
    NNK-interpolated leave-one-out from the other training points, exactly as DeepNNK does with a
    whole layer (:meth:`NNK.loo_error`). Bonet et al. stop training each channel of the last
    convolutional layer when its error has not improved for ``patience`` evaluations and stop the
    network when every channel has stopped; ``python benchmarks/nnk.py --sections 5`` runs that
    rule beside DeepNNK and the cross-validated linear SVM.

    Parameters
    ----------
    features : array-like of shape (n_train, n_channels, ...)
        Activations of one layer on the training set, channels on axis 1 (torch's layout).
    y : array-like of shape (n_train,)
        Integer class labels.
    k : int, default 25
        NNK candidate neighbours (Bonet et al.'s default).
    kernel : {"cosine", "gaussian"}, default "cosine"
    solver : {"exact", "fista"}, default "exact"
    channels : int array-like, optional
        Evaluate only these channels (e.g. those still training); default all.
    indices : int array-like, optional
        Leave out only these training points (each interpolated from all others); default all.

    Returns
    -------
    ndarray of shape (n_selected_channels,)
        LOO NNK classification error per channel. A channel whose features are zero for every
        training point (a dead ReLU channel) carries no information and gets NaN.

    References
    ----------
    .. [1] D. Bonet, A. Ortega, J. Ruiz-Hidalgo & S. Shekkizhar (2021). Channel-wise early stopping
       without a validation set via NNK polytope interpolation. APSIPA ASC. arXiv:2107.12972.
    """
    validate_params("channelwise_loo_error", {"k": k, "kernel": kernel, "solver": solver},
                    {"k": [Interval(int, 1, None)], "kernel": [Options("cosine", "gaussian")],
                     "solver": [Options("exact", "fista")]})
    F = check_array(features, "features", ndim=None, dtype=np.float64)
    if F.ndim < 2:
        raise InvalidParameterError(
            f"features must have shape (n_train, n_channels, ...); got shape {F.shape}. Pass a layer's "
            "activations with the channels on axis 1 (e.g. (n, C, H, W) from a convolution)."
        )
    n, C = F.shape[:2]
    labels = _labels(y, n, "y", "features")
    if k > n - 1:
        raise InvalidParameterError(
            f"channelwise_loo_error: k={k} must be at most n_train - 1 = {n - 1} (leave-one-out); use a smaller k."
        )
    chans = np.arange(C) if channels is None else np.asarray(channels, dtype=np.int64).reshape(-1)
    if chans.size and (chans.min() < 0 or chans.max() >= C):
        raise InvalidParameterError(
            f"channels must lie in [0, {C - 1}] (features have {C} channels); got {chans.tolist()}."
        )
    out = np.full(len(chans), np.nan)
    for j, c in enumerate(chans):
        Fc = F[:, c].reshape(n, -1)
        if not np.any(Fc):
            continue
        out[j] = NNK(k=k, kernel=kernel, solver=solver).fit(Fc, labels).loo_error(indices).nnk_error
    return out


def nnk_generalization(checkpoints: Iterable[Any], X_train: Any, y_train: Any, X_test: Any = None,
                       y_test: Any = None, *, model: Any = None, **kwargs: Any) -> GeneralizationResult:
    """DeepNNK generalisation estimates over a sequence of checkpoints.

    Parameters
    ----------
    checkpoints : iterable
        Torch modules, ``(epoch, module)`` pairs, or paths of weight files written by
        :func:`scrutiny.zoo.save_weights` (then ``model`` gives the architecture). Items without
        an epoch are numbered 1, 2, ...
    X_train, y_train, X_test, y_test
        As in :class:`GeneralizationMonitor`.
    model : torch.nn.Module, optional
        Architecture into which weight files are loaded (a copy; ``model`` is not modified).
    **kwargs
        Options of :class:`GeneralizationMonitor` (``k``, ``kernel``, ``solver``, ``features``,
        ``n_loo``, ``test_nnk``, ``batch_size``, ``random_state``).

    Returns
    -------
    GeneralizationResult

    References
    ----------
    .. [1] S. Shekkizhar & A. Ortega (2020). DeepNNK: Explaining deep models and their
       generalization using polytope interpolation. arXiv:2007.10505.
    """
    monitor = GeneralizationMonitor(X_train, y_train, X_test, y_test, **kwargs)
    for i, item in enumerate(checkpoints, start=1):
        epoch, obj = item if isinstance(item, tuple) and len(item) == 2 else (i, item)
        if isinstance(obj, (str, os.PathLike)):
            if model is None:
                raise InvalidParameterError(
                    f"checkpoint {str(obj)!r} is a weight file: pass model= (the architecture to load it into)."
                )
            from ..zoo import load_weights

            obj = load_weights(copy.deepcopy(model), obj)
        monitor(epoch, obj)
    return monitor.result()


# --------------------------------------------------------------------------- out of support


def out_of_support(nnk: NNK, X: Any, y: Any = None, *, reference: bool = True) -> OutOfSupport:
    """Out-of-support scores of queries against a fitted :class:`~scrutiny.nnk.NNK`.

    Parameters
    ----------
    nnk : NNK
        Fitted on training features with labels.
    X : array-like of shape (n, n_features)
        Query features (same extractor; model inputs if ``nnk`` was built with a model).
    y : array-like of shape (n,), optional
        Labels to check against the polytope (e.g. the network's predicted labels, or the labels a
        generator was conditioned on), giving ``label_disagreement``.
    reference : bool, default True
        Calibrate residuals against the training points' leave-one-out residuals
        (``residual_pvalue``; runs :meth:`NNK.loo_solve` once, cached).

    Returns
    -------
    OutOfSupport

    References
    ----------
    .. [1] S. Shekkizhar & A. Ortega (2020). DeepNNK: Explaining deep models and their
       generalization using polytope interpolation. arXiv:2007.10505.
    """
    if not isinstance(nnk, NNK):
        raise InvalidParameterError(f"nnk must be a fitted NNK; got {type(nnk).__name__}.")
    validate_params("out_of_support", {"reference": reference}, {"reference": ["boolean"]})
    sol = nnk.solve(X)
    p, _, _ = nnk.interpolate(sol)
    lab = None
    if y is not None:
        yy = np.asarray(y)
        if yy.shape != (p.shape[0],):
            raise InvalidParameterError(f"y must have one label per query ({p.shape[0]}); got shape {yy.shape}.")
        pos = np.searchsorted(nnk.classes_, yy)
        pos_c = np.minimum(pos, len(nnk.classes_) - 1)
        known = nnk.classes_[pos_c] == yy
        lab = np.where(known, 1.0 - p[np.arange(p.shape[0]), pos_c], 1.0)
    pval = None
    if reference:
        ref = np.sort(nnk.loo_solve().residual)
        pval = 1.0 - np.searchsorted(ref, sol.residual, side="left") / ref.size
    return OutOfSupport(residual=sol.residual, disagreement=1.0 - p.max(axis=1), label_disagreement=lab,
                        residual_pvalue=pval, degree=sol.weights.sum(axis=1),
                        n_neighbors=(sol.weights > 0).sum(axis=1), predicted=nnk.classes_[p.argmax(axis=1)])
