"""Training-set attacks with the perturbation influence (Koh & Liang 2017, Sec. 5.2).

For a targeted test point ``z_t`` the attack perturbs the *inputs* of a few training points,
within an L-infinity ball of radius ``epsilon`` and the valid pixel range, so that the model
retrained on the poisoned set has a larger loss on ``z_t`` (and, ideally, flips its
prediction):

1. fit :class:`~scrutiny.data_attribution.InfluenceFunctions` on the clean training set and
   compute ``I_pert,loss(z_i, z_t)`` for every training point; moving ``x_i`` to ``x_i + delta``
   changes the test loss by about ``(1/n) I_pert,loss . delta``;
2. attack the ``n_poison`` training points with the largest first-order gain of a full-size
   signed step, ``(1/n) sum_j |I_pert,loss_j| * min(epsilon, room_j)`` where ``room_j`` is the
   distance to the pixel bound in the step's direction;
3. projected signed-gradient steps: ``x_i <- proj(x_i + step_size * sign(I_pert,loss))`` onto
   ``[x_i0 - epsilon, x_i0 + epsilon]`` intersected with ``clip``; after every step the model is
   retrained (by default: warm-started :func:`~scrutiny.data_attribution.fit_to_optimum` over the
   influence parameters, e.g. the logistic regression or the last layer on frozen features, as in
   Koh & Liang's Inception experiment) and ``I_pert,loss`` recomputed at the new optimum;
4. record the test loss and prediction before and after, and the first-order *predicted*
   change ``(1/n) sum_i I_pert,loss(z_i, z_t) . delta_i`` (clean model, final perturbation).

Every targeted test point is attacked independently, starting from the clean model and data.
``strategy="random"`` is the control: random training points, random signs, the same
``epsilon``.

References
----------
.. [1] Koh, P. W. & Liang, P. (2017). Understanding black-box predictions via influence
   functions. ICML (Sec. 5.2, training-set attacks).
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from .._validation import (
    Interval,
    Options,
    check_array,
    check_random_state,
    validate_params,
)
from ..exceptions import InvalidParameterError, ModelError
from ..explanation import Result
from ..explanation import read_only_copy as _frozen

__all__ = ["AttackResult", "training_set_attack"]


@dataclasses.dataclass(frozen=True, eq=False)
class AttackResult(Result):
    """Outcome of :func:`training_set_attack`, one row per targeted test point.

    A :class:`~scrutiny.explanation.Result`: ``save(path)`` / ``scrutiny.load_result(path)``,
    ``to_dict`` / ``from_dict``, and slicing by target (``res[0]``, ``res[:3]``).

    Attributes
    ----------
    targets : int ndarray of shape (m,)
        Indices of the attacked test points (rows of ``X_test``).
    labels : int ndarray of shape (m,)
        ``y_test`` of the targets (the test loss is evaluated at these labels).
    train_indices : int ndarray of shape (m, k)
        The ``k = n_poison`` training points perturbed for each target.
    perturbations : ndarray of shape (m, k, *input_shape)
        Final ``delta = x_poisoned - x_clean`` (``|delta| <= epsilon``, inside ``clip``).
    pred_before, pred_after : int ndarray of shape (m,)
        Predicted class of each target before the attack and after retraining.
    loss_before, loss_after : ndarray of shape (m,)
        Test loss of each target before and after.
    predicted_change : ndarray of shape (m,)
        First-order prediction of ``loss_after - loss_before``:
        ``(1/n) sum_i I_pert,loss(z_i, z_t) . delta_i`` at the clean optimum.
    epsilon : float
    strategy : str
        ``"influence"`` (the attack) or ``"random"`` (the control).
    params : dict
        Everything needed to reproduce the run.
    extras : dict
        ``seconds`` (m,) per target, ``gain`` (m, k) the selection score of each poisoned point,
        ``retrain_grad_norm`` (m,) when the default retraining is used.
    """

    targets: np.ndarray
    labels: np.ndarray
    train_indices: np.ndarray
    perturbations: np.ndarray
    pred_before: np.ndarray
    pred_after: np.ndarray
    loss_before: np.ndarray
    loss_after: np.ndarray
    predicted_change: np.ndarray
    epsilon: float
    strategy: str
    params: dict = dataclasses.field(default_factory=dict)
    extras: dict = dataclasses.field(default_factory=dict)

    _PER_SAMPLE: ClassVar[tuple[str, ...]] = (
        "targets", "labels", "train_indices", "perturbations", "pred_before", "pred_after", "loss_before",
        "loss_after", "predicted_change")
    _ARRAYS: ClassVar[tuple[str, ...]] = _PER_SAMPLE
    _N_FIELD: ClassVar[str] = "targets"

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        ints = ("targets", "labels", "pred_before", "pred_after")
        for name in ints:
            set_(self, name, _frozen(getattr(self, name), np.int64))
        for name in ("loss_before", "loss_after", "predicted_change", "perturbations"):
            set_(self, name, _frozen(getattr(self, name)))
        set_(self, "train_indices", _frozen(self.train_indices, np.int64))
        m = self.targets.shape[0]
        for name in (*ints, "loss_before", "loss_after", "predicted_change"):
            if getattr(self, name).shape != (m,):
                raise InvalidParameterError(f"{name} must have shape ({m},); got {getattr(self, name).shape}.")
        if self.train_indices.ndim != 2 or self.train_indices.shape[0] != m:
            raise InvalidParameterError(f"train_indices must have shape ({m}, k); got {self.train_indices.shape}.")
        if self.perturbations.shape[:2] != self.train_indices.shape:
            raise InvalidParameterError(
                f"perturbations must have shape {self.train_indices.shape} + input_shape; got "
                f"{self.perturbations.shape}.")
        set_(self, "epsilon", float(self.epsilon))
        set_(self, "params", dict(self.params))
        set_(self, "extras", {k: (_frozen(v) if isinstance(v, np.ndarray) else v) for k, v in self.extras.items()})

    @property
    def actual_change(self) -> np.ndarray:
        """``loss_after - loss_before``, shape (m,)."""
        return self.loss_after - self.loss_before

    @property
    def flipped(self) -> np.ndarray:
        """Whether each target's predicted class changed, bool of shape (m,)."""
        return self.pred_after != self.pred_before

    @property
    def flip_rate(self) -> float:
        """Fraction of targets whose prediction changed."""
        return float(np.mean(self.flipped)) if len(self) else float("nan")

    @property
    def max_abs_perturbation(self) -> float:
        """Largest ``|delta|`` over every poisoned pixel (``<= epsilon``)."""
        return float(np.abs(self.perturbations).max()) if self.perturbations.size else 0.0

    def summary(self) -> dict[str, Any]:
        """Flip rate, mean actual and predicted loss changes, their Pearson correlation."""
        a, p = self.actual_change, self.predicted_change
        corr = float(np.corrcoef(a, p)[0, 1]) if len(self) > 2 and a.std() > 0 and p.std() > 0 else float("nan")
        correct = self.pred_before == self.labels
        return {"strategy": self.strategy, "epsilon": self.epsilon, "n_targets": len(self),
                "n_poison": int(self.train_indices.shape[1]), "flip_rate": self.flip_rate,
                "flip_rate_of_correct": float(np.mean(self.flipped[correct])) if correct.any() else float("nan"),
                "mean_actual_change": float(a.mean()), "mean_predicted_change": float(p.mean()),
                "pearson_predicted_actual": corr, "max_abs_perturbation": self.max_abs_perturbation}


# --------------------------------------------------------------------------- the attack


def _check_clip(clip: Any) -> tuple[float, float] | None:
    if clip is None:
        return None
    try:
        lo, hi = (float(v) for v in clip)
        ok = np.isfinite(lo) and np.isfinite(hi) and lo < hi
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InvalidParameterError(
            f"training_set_attack: clip must be None or a pair (low, high) of finite floats with low < high; got "
            f"{clip!r}. Pass the valid input range, e.g. clip=(0.0, 1.0) for scrutiny's images, or None."
        )
    return lo, hi


def _check_targets(targets: Any, n_test: int) -> np.ndarray:
    if targets is None:
        return np.arange(n_test)
    arr = np.asarray(targets)
    if arr.ndim == 0:
        arr = arr[None]
    if (arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer)
            or ((arr < 0) | (arr >= n_test)).any()):
        raise InvalidParameterError(
            f"training_set_attack: targets must be a non-empty 1-d array of ints in [0, {n_test - 1}] (rows of "
            f"X_test); got {targets!r}. Pass e.g. targets=np.flatnonzero(correct)[:50]."
        )
    return arr.astype(np.int64)


def _predict(obj: Any, X: np.ndarray) -> np.ndarray:
    """Predicted class of ``X`` at the objective's parameters (float64)."""
    out = obj.outputs(X)
    if out.ndim == 1 or out.shape[1] == 1:
        return (out.reshape(-1) > 0).astype(np.int64)
    return out.argmax(axis=1).astype(np.int64)


def _project(X: np.ndarray, X0: np.ndarray, epsilon: float, clip: tuple[float, float] | None) -> np.ndarray:
    X = np.clip(X, X0 - epsilon, X0 + epsilon)
    return X if clip is None else np.clip(X, clip[0], clip[1])


def training_set_attack(model: Any, loss: Any, X_train: Any, y_train: Any, X_test: Any, y_test: Any, *,
                        targets: Any = None, epsilon: float, n_steps: int = 1, step_size: float | None = None,
                        n_poison: int = 1, l2: float = 0.0, damping: float = 0.0, params: Any = None,
                        solver: Any = "exact", clip: Any = (0.0, 1.0), strategy: str = "influence",
                        retrain: Callable[..., Any] | None = None, random_state: Any = 0,
                        check_optimum: str = "raise", batch_size: int | None = None) -> AttackResult:
    """Koh & Liang's training-set attack: perturb a few training inputs to raise a test loss.

    Parameters
    ----------
    model : torch.nn.Module or TorchModel
        Trained on ``(X_train, y_train)`` and at an optimum of ``mean loss + (l2/2)||theta||^2`` over
        ``params`` (as :class:`InfluenceFunctions` requires). Not modified: every target is attacked
        on a copy.
    loss : {"cross_entropy", "mse"} or callable
        The per-sample training loss.
    X_train : array-like of shape (n_train, ...)
    y_train : array-like of shape (n_train,)
    X_test : array-like of shape (n_test, ...)
    y_test : array-like of shape (n_test,)
        Test labels (the attack raises the loss at these labels).
    targets : array-like of int, optional
        Rows of ``X_test`` to attack, each independently (default: all).
    epsilon : float > 0
        L-infinity radius of the perturbation of each poisoned training input, in input units
        (scrutiny's images lie in [0, 1]: ``epsilon=2/255`` is two 8-bit grey levels).
    n_steps : int, default 1
        Projected signed-gradient steps; the model is retrained after each.
    step_size : float, optional
        Size of each step (default: ``epsilon`` for one step, else ``min(epsilon, 2.5 epsilon / n_steps)``).
    n_poison : int, default 1
        Training points perturbed per target.
    l2, damping, params, solver, batch_size
        As in :class:`InfluenceFunctions` (``params="last"``: last layer on frozen features).
    clip : (float, float) or None, default (0.0, 1.0)
        Valid input range; poisoned inputs are clipped to it. ``X_train`` must lie inside.
    strategy : {"influence", "random"}, default "influence"
        ``"random"``: random training points and random signs of size ``epsilon``, one retraining
        (the control; ``n_steps`` and ``step_size`` do not apply).
    retrain : callable, optional
        ``retrain(model, X_train, y_train) -> model or None`` retrains the given copy of the model
        on the poisoned data (in place if it returns None). Default: warm-started
        :func:`fit_to_optimum` over ``params`` with ``l2`` (the convex refit for a logistic
        regression or a last layer).
    random_state : int, numpy Generator or None, default 0
        Seed of the random control.
    check_optimum : {"raise", "warn", "ignore"}, default "raise"
        Passed to :class:`InfluenceFunctions` for the clean model.

    Returns
    -------
    AttackResult

    Raises
    ------
    InvalidParameterError
        On a bad parameter, targets out of range, or ``X_train`` outside ``clip``.

    References
    ----------
    .. [1] Koh & Liang (2017). Understanding black-box predictions via influence functions. ICML.

    Examples
    --------
    >>> res = training_set_attack(model, "cross_entropy", X, y, X_te, y_te, targets=[0, 5],
    ...                           epsilon=0.1, l2=1e-2)                          # doctest: +SKIP
    >>> res.flip_rate, res.actual_change, res.predicted_change                   # doctest: +SKIP
    """
    from .influence import InfluenceFunctions
    from .objective import TrainingObjective
    from .optimum import fit_to_optimum

    validate_params("training_set_attack", {
        "epsilon": epsilon, "n_steps": n_steps, "step_size": step_size, "n_poison": n_poison,
        "strategy": strategy, "retrain": retrain, "random_state": random_state, "check_optimum": check_optimum}, {
        "epsilon": [Interval(float, 0, None, closed="neither")], "n_steps": [Interval(int, 1, None)],
        "step_size": [Interval(float, 0, None, closed="neither"), None], "n_poison": [Interval(int, 1, None)],
        "strategy": [Options("influence", "random")], "retrain": ["callable", None],
        "random_state": ["random_state"], "check_optimum": [Options("raise", "warn", "ignore")]}, {
        "epsilon": "It is the L-infinity radius of the perturbation in input units, e.g. 0.1 for images in [0, 1].",
        "n_steps": "Use 1 for a single signed step (FGSM-like), 5-20 for a projected iterative attack.",
        "n_poison": "The number of training points perturbed per target (Koh & Liang used 1-10).",
        "retrain": "Pass retrain(model, X_train, y_train) -> model, or None for a warm-started fit_to_optimum."})
    lim = _check_clip(clip)
    Xtr = check_array(X_train, "X_train", min_samples=2)
    Xte = check_array(X_test, "X_test")
    yte = np.asarray(y_test)
    if yte.ndim != 1 or yte.shape[0] != Xte.shape[0]:
        raise InvalidParameterError(
            f"y_test must have one label per row of X_test ({Xte.shape[0]}); got shape {yte.shape}.")
    if not (np.issubdtype(yte.dtype, np.integer) or np.issubdtype(yte.dtype, np.bool_)):
        raise InvalidParameterError(
            f"y_test must hold integer class labels (the attack flips classifications); got dtype {yte.dtype}. "
            "Pass y_test.astype(int).")
    n = Xtr.shape[0]
    if n_poison > n:
        raise InvalidParameterError(f"training_set_attack: n_poison must be at most n_train={n}; got {n_poison}.")
    if lim is not None and (Xtr.min() < lim[0] - 1e-12 or Xtr.max() > lim[1] + 1e-12):
        raise InvalidParameterError(
            f"X_train has values in [{Xtr.min():.4g}, {Xtr.max():.4g}], outside clip={clip!r}. Pass clip=(low, high) "
            "covering the data's valid range, or clip=None for unbounded inputs.")
    tgt = _check_targets(targets, Xte.shape[0])
    step = float(step_size) if step_size is not None else (
        float(epsilon) if n_steps == 1 else min(float(epsilon), 2.5 * float(epsilon) / n_steps))
    eps = float(epsilon)
    rng = check_random_state(random_state)

    inf_kw = {"solver": solver, "l2": l2, "damping": damping, "params": params, "batch_size": batch_size}
    clean = InfluenceFunctions(model, loss, check_optimum=check_optimum, **inf_kw).fit(Xtr, y_train)
    obj = clean.objective_
    ytr = obj._y.numpy()
    loss_before = obj.loss_values(Xte[tgt], yte[tgt], names=("X_test", "y_test"))
    pred_before = _predict(obj, Xte[tgt])

    last_fit: dict[str, Any] = {}

    def default_retrain(m: Any, X: np.ndarray, y: np.ndarray) -> Any:
        last_fit.update(fit_to_optimum(m, loss, X, y, params=params, l2=l2, batch_size=batch_size))
        return m

    do_retrain = retrain if retrain is not None else default_retrain
    k = int(n_poison)
    shape = Xtr.shape[1:]
    m = tgt.shape[0]
    idx_all = np.empty((m, k), dtype=np.int64)
    deltas = np.empty((m, k, *shape))
    gains = np.empty((m, k))
    loss_after, pred_after, predicted = np.empty(m), np.empty(m, dtype=np.int64), np.empty(m)
    seconds, grad_norms = np.empty(m), np.full(m, np.nan)
    for row, t in enumerate(tgt):
        start = time.perf_counter()
        xt, yt = Xte[t:t + 1], yte[t:t + 1]
        if strategy == "influence":
            I_all = clean.influence_pert_loss(xt, yt)[0]  # (n, *shape)
            flat = I_all.reshape(n, -1)
            x_flat = Xtr.reshape(n, -1)
            room = np.full_like(flat, eps)
            if lim is not None:
                room = np.minimum(eps, np.where(flat > 0, lim[1] - x_flat, x_flat - lim[0]))
            gain = (np.abs(flat) * np.maximum(room, 0.0)).sum(axis=1) / n
            idx = np.argsort(-gain, kind="stable")[:k]
            I_clean = I_all[idx]
            direction = np.sign(I_clean)
        else:
            idx = np.sort(rng.choice(n, size=k, replace=False))
            I_clean = clean.influence_pert_loss(xt, yt, idx)[0]
            gain = np.full(n, np.nan)
            direction = rng.choice([-1.0, 1.0], size=(k, *shape))
        X0 = Xtr[idx]
        Xp = Xtr.copy()
        work = copy.deepcopy(model)
        steps = n_steps if strategy == "influence" else 1
        for s in range(steps):
            size = step if strategy == "influence" else eps
            Xp[idx] = _project(Xp[idx] + size * direction, X0, eps, lim)
            try:
                out = do_retrain(work, Xp.copy(), ytr.copy())
            except (InvalidParameterError, ModelError):
                raise
            except Exception as exc:
                raise ModelError(f"retrain failed on the poisoned training set ({type(exc).__name__}: {exc}).") from exc
            if out is not None and not hasattr(out, "parameters") and not hasattr(out, "module"):
                raise InvalidParameterError(
                    f"retrain must return the retrained torch model (or None after training it in place); got "
                    f"{type(out).__name__}.")
            work = work if out is None else out
            if strategy == "influence" and s + 1 < steps:
                cur = InfluenceFunctions(work, loss, check_optimum="ignore", **inf_kw).fit(Xp, ytr)
                direction = np.sign(cur.influence_pert_loss(xt, yt, idx)[0])
        if retrain is None:
            grad_norms[row] = last_fit["grad_norm"]
        obj_after = TrainingObjective(work, loss, Xp, ytr, params=params, l2=l2, batch_size=batch_size,
                                      data_names=("X_train", "y_train"))
        delta = Xp[idx] - X0
        loss_after[row] = obj_after.loss_values(xt, yt, names=("X_test", "y_test"))[0]
        pred_after[row] = _predict(obj_after, xt)[0]
        predicted[row] = float((I_clean.reshape(k, -1) * delta.reshape(k, -1)).sum()) / n
        idx_all[row], deltas[row], gains[row] = idx, delta, gain[idx]
        seconds[row] = time.perf_counter() - start
    record = {"n_steps": int(n_steps), "step_size": step, "n_poison": k, "l2": float(l2), "damping": float(damping),
              "params": list(obj.names), "solver": clean.solver_.name, "clip": None if lim is None else list(lim),
              "retrain": "fit_to_optimum" if retrain is None else getattr(retrain, "__qualname__", "callable"),
              "random_state": random_state if isinstance(random_state, (int, type(None))) else "generator",
              "n_train": n}
    extras: dict[str, Any] = {"seconds": seconds, "gain": gains}
    if retrain is None:
        extras["retrain_grad_norm"] = grad_norms
    return AttackResult(targets=tgt, labels=yte[tgt].astype(np.int64), train_indices=idx_all, perturbations=deltas,
                        pred_before=pred_before, pred_after=pred_after, loss_before=loss_before,
                        loss_after=loss_after, predicted_change=predicted, epsilon=eps, strategy=strategy,
                        params=record, extras=extras)
