"""Training-set debugging with data attribution: finding flipped labels.

Koh & Liang (2017, Sec. 5.4) and Yeh et al. (2018, Sec. 4.2) check training points in the
order of a suspicion score and count how many deliberately flipped labels are found after
checking a given fraction of the training set. :func:`mislabel_detection_curve` computes
that curve for any scores; :func:`detect_mislabeled` computes the standard rankings:

* ``"self_influence"``: ``(1/n) g_i^T H^{-1} g_i`` (:meth:`InfluenceFunctions.self_influence`);
* ``"representer"``: ``|alpha_{i, y_i}|`` of a last layer fine-tuned on the (noisy) labels
  (:attr:`RepresenterPoints.importance_`);
* ``"loss"``: the training loss of the model;
* ``"random"``: a random order (expected curve: the diagonal).

Retraining after fixing the checked labels (test accuracy versus fraction checked) is left to
the caller (``benchmarks/``).

References
----------
.. [1] Koh, P. W. & Liang, P. (2017). Understanding black-box predictions via influence
   functions. ICML.
.. [2] Yeh, C.-K., Kim, J. S., Yen, I. E. H. & Ravikumar, P. (2018). Representer point selection
   for explaining deep neural networks. NeurIPS.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from .._validation import check_array, check_random_state
from ..exceptions import InvalidParameterError
from ..explanation import Result, read_only_copy

__all__ = ["MislabelDetectionResult", "detect_mislabeled", "mislabel_detection_curve"]

METHODS = ("self_influence", "representer", "loss", "random")


@dataclasses.dataclass(frozen=True, eq=False)
class MislabelDetectionResult(Result):
    """Fraction of flipped labels found versus fraction of the training set checked.

    A :class:`~scrutiny.explanation.Result`: ``save(path)`` / ``scrutiny.load_result(path)``,
    ``to_dict`` / ``from_dict`` (the scores included).

    Attributes
    ----------
    fractions_checked : ndarray of shape (f,)
        Fractions of the training set checked (in ranking order).
    found : dict of str -> ndarray of shape (f,)
        Per method, the fraction of flipped labels among the checked points, out of all flips.
    auc : dict of str -> float
        Area under each curve over ``[0, 1]`` (0.5 for random order, 1 for perfect).
    scores : dict of str -> ndarray of shape (n_train,)
        The suspicion scores (larger = checked earlier).
    n_flipped, n_train : int
    params : dict
    """

    fractions_checked: np.ndarray
    found: dict
    auc: dict
    scores: dict
    n_flipped: int
    n_train: int
    params: dict = dataclasses.field(default_factory=dict)

    _ARRAYS: ClassVar[tuple[str, ...]] = ("fractions_checked",)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "fractions_checked", read_only_copy(self.fractions_checked))
        set_(self, "found", {str(k): read_only_copy(v) for k, v in self.found.items()})
        set_(self, "scores", {str(k): read_only_copy(v) for k, v in self.scores.items()})
        set_(self, "auc", {str(k): float(v) for k, v in self.auc.items()})
        set_(self, "n_flipped", int(self.n_flipped))
        set_(self, "n_train", int(self.n_train))
        set_(self, "params", dict(self.params))
        f = self.fractions_checked.shape
        for name, curves, shape in (("found", self.found, f), ("scores", self.scores, (self.n_train,))):
            for key, value in curves.items():
                if value.shape != shape:
                    raise InvalidParameterError(f"{name}[{key!r}] must have shape {shape}; got {value.shape}.")

    def ranking(self, method: str) -> np.ndarray:
        """Training indices in checking order (most suspicious first) for ``method``."""
        if method not in self.scores:
            raise InvalidParameterError(f"method must be one of {sorted(self.scores)}; got {method!r}.")
        return np.argsort(-self.scores[method], kind="stable")

    def table(self) -> str:
        """A plain-text table of the curves (one column per method)."""
        methods = list(self.found)
        head = "checked | " + " | ".join(f"{m:>14}" for m in methods)
        lines = [head, "-" * len(head)]
        for i, f in enumerate(self.fractions_checked):
            lines.append(f"{f:7.2f} | " + " | ".join(f"{self.found[m][i]:14.3f}" for m in methods))
        lines.append("    AUC | " + " | ".join(f"{self.auc[m]:14.3f}" for m in methods))
        return "\n".join(lines)


def mislabel_detection_curve(scores: Mapping[str, Any], is_flipped: Any, *,
                             fractions: Sequence[float] | None = None, random_state: Any = 0,
                             add_random: bool = True, params: Mapping[str, Any] | None = None
                             ) -> MislabelDetectionResult:
    """Curves of flips found versus fraction checked for several suspicion scores.

    Parameters
    ----------
    scores : mapping of str -> array-like of shape (n_train,)
        Suspicion per training point (larger = checked earlier; ties in index order).
    is_flipped : array-like of bool of shape (n_train,)
        Which labels were corrupted (the ground truth of the experiment).
    fractions : sequence of float in [0, 1], optional
        Fractions checked (default ``0, 0.05, ..., 1``).
    random_state : int, numpy Generator or None, default 0
        Seed of the random ranking.
    add_random : bool, default True
        Add a ``"random"`` ranking if ``scores`` has none.
    params : mapping, optional
        Recorded in the result.

    Returns
    -------
    MislabelDetectionResult
    """
    flip = np.asarray(is_flipped)
    if flip.ndim != 1 or flip.size == 0:
        raise InvalidParameterError(f"is_flipped must be a non-empty 1-d boolean array; got shape {flip.shape}.")
    flip = flip.astype(bool)
    n = flip.size
    if not flip.any():
        raise InvalidParameterError("is_flipped marks no flipped label; the detection curve is undefined.")
    fr = np.linspace(0, 1, 21) if fractions is None else check_array(fractions, "fractions", ndim=1)
    if ((fr < 0) | (fr > 1)).any():
        raise InvalidParameterError(f"fractions must lie in [0, 1]; got {fractions!r}.")
    all_scores: dict[str, np.ndarray] = {}
    for name, s in scores.items():
        arr = check_array(s, f"scores[{name!r}]", ndim=1)
        if arr.shape[0] != n:
            raise InvalidParameterError(
                f"scores[{name!r}] must have one value per training point ({n}); got {arr.shape[0]}."
            )
        all_scores[str(name)] = arr
    if add_random and "random" not in all_scores:
        all_scores["random"] = check_random_state(random_state).permutation(n).astype(np.float64)
    found, auc = {}, {}
    grid = np.arange(n + 1) / n
    for name, s in all_scores.items():
        order = np.argsort(-s, kind="stable")
        cum = np.concatenate([[0], np.cumsum(flip[order])]) / flip.sum()
        found[name] = cum[np.floor(fr * n + 1e-9).astype(int)]
        auc[name] = float(np.trapezoid(cum, grid) if hasattr(np, "trapezoid") else np.trapz(cum, grid))
    return MislabelDetectionResult(fr, found, auc, all_scores, int(flip.sum()), n, dict(params or {}))


def detect_mislabeled(model: Any, X_train: Any, y_train: Any, is_flipped: Any, *, loss: Any = "cross_entropy",
                      l2: float = 0.0, methods: Sequence[str] = METHODS, influence_params: Any = None,
                      solver: Any = "exact", damping: float = 0.0, check_optimum: str = "raise",
                      representer_l2: float | None = None, representer_fit_to: str = "labels",
                      fractions: Sequence[float] | None = None, random_state: Any = 0) -> MislabelDetectionResult:
    """Rank training points by self-influence, representer ``|alpha|``, loss and at random.

    Parameters
    ----------
    model : torch.nn.Module or TorchModel
        Trained on the (noisy) ``y_train``; for influence functions it must be at an optimum of
        ``mean loss + (l2/2)||theta||^2`` over ``influence_params``.
    X_train, y_train : training inputs and the noisy labels the model was trained on
    is_flipped : array-like of bool of shape (n_train,)
    loss, l2, solver, damping, check_optimum
        Passed to :class:`InfluenceFunctions`.
    methods : sequence of {"self_influence", "representer", "loss", "random"}
    influence_params : None, "last" or list of str
        ``params`` of :class:`InfluenceFunctions`.
    representer_l2 : float, optional
        ``l2`` of :class:`RepresenterPoints` (default: ``l2`` if positive, else 0.006). The
        head is fitted to the (noisy) labels, so with ``representer_l2 == l2`` and a model at
        its optimum the fine-tuned head *is* the model's last layer and
        ``|alpha_{i, y_i}| = (1 - p_{i, y_i}) / (l2 n)``: the representer ranking then equals the
        loss ranking exactly. A larger ``representer_l2`` makes it differ.
    representer_fit_to : {"labels", "predictions"}, default "labels"
        Targets of the representer head (:class:`RepresenterPoints`' ``fit_to``). ``"predictions"``
        is the reference code's setting (Yeh et al.'s debugging experiment): the head imitates the
        model, ``alpha_i = (p_model,i - p_head,i) / (representer_l2 n)``, and ``|alpha_{i, y_i}|``
        measures how far the more regularised head departs from the model at point ``i`` -- not a
        function of the training loss. How well it finds flips depends on the model:
        ``benchmarks/data_attribution.py`` (sections ``mislabel`` and ``rps-debug``) prints the
        rankings' recovery curves.
    fractions, random_state
        As in :func:`mislabel_detection_curve`.

    Returns
    -------
    MislabelDetectionResult
    """
    from .influence import InfluenceFunctions
    from .objective import TrainingObjective
    from .representer import RepresenterPoints

    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise InvalidParameterError(f"methods must be among {METHODS}; got {bad}.")
    if representer_fit_to not in ("labels", "predictions"):
        raise InvalidParameterError(
            f"representer_fit_to must be 'labels' or 'predictions'; got {representer_fit_to!r}. Use 'predictions' "
            "for the reference code's head (fitted to the model's outputs), 'labels' for the theorem's objective.")
    scores: dict[str, np.ndarray] = {}
    info: dict[str, Any] = {"methods": list(methods), "l2": float(l2), "damping": float(damping)}
    if "self_influence" in methods:
        inf = InfluenceFunctions(model, loss, solver=solver, l2=l2, damping=damping,
                                 params=influence_params, check_optimum=check_optimum).fit(X_train, y_train)
        scores["self_influence"] = inf.self_influence()
        info["stationarity_ratio"] = inf.stationarity_ratio_
    if "representer" in methods:
        rl2 = representer_l2 if representer_l2 is not None else (l2 if l2 > 0 else 0.006)
        rps = RepresenterPoints(model, l2=rl2, fit_to=representer_fit_to).fit(X_train, y_train)
        scores["representer"] = rps.importance_
        info["representer_l2"] = float(rl2)
        info["representer_fit_to"] = representer_fit_to
        info["representer_stationarity_residual"] = rps.stationarity_residual_
    if "loss" in methods:
        obj = TrainingObjective(model, loss, X_train, y_train, params=influence_params, l2=l2,
                                data_names=("X_train", "y_train"))
        scores["loss"] = obj.loss_values()
    return mislabel_detection_curve(scores, is_flipped, fractions=fractions, random_state=random_state,
                                    add_random="random" in methods, params=info)
