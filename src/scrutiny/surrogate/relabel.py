"""Cron & West (2011) classification-based relabelling of mixture draws.

Mixture posteriors are invariant under permutations of the component labels, so per-component
summaries (posterior means of ``beta_h``, allocation probabilities, R-hat) are meaningful only
after every draw of every chain is mapped to one common labelling:

1. a reference classification ``zR`` (by default from the post-burn-in draw with the highest log
   joint density, pooled over chains: ``zR_i = argmax_j pi_j N(y_i | x_i' beta_j, sigma2_j)``);
2. for each draw ``t`` a classification ``z^(t)`` (its sampled allocations, or the argmax of its
   own responsibilities);
3. the cost ``C[h, l] = #{i : zR_i = h, z^(t)_i != l} = n_h^R - N_hl`` with ``N`` the ``J x J``
   contingency table, minimised over permutations by the Hungarian algorithm
   (:func:`scipy.optimize.linear_sum_assignment`);
4. the new label ``h`` takes the old component ``rho(h)``: ``pi_h <- pi_rho(h)`` and likewise
   ``beta``, intercepts, ``sigma2``, ``c``, ``xi``/``tau`` and counts; allocations go the
   other way, ``z_i <- rho^-1(z_i)`` (the authors' ``Analysis.R`` applies ``rho`` itself to ``z``,
   which is wrong whenever ``rho`` is not an involution).

Ties (components empty in the reference) are broken towards keeping the draw's own label.

References
----------
Cron, A. J. & West, M. (2011). Efficient classification-based relabeling in mixture models.
The American Statistician 65(1), 16-20.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..exceptions import InvalidParameterError

__all__ = [
    "PER_COMPONENT",
    "RelabelResult",
    "classify",
    "reference_labels",
    "relabel_permutations",
    "apply_permutations",
    "relabel_chains",
    "canonical_penalty_order",
]

#: Draw entries whose axis 1 indexes mixture components.
PER_COMPONENT = ("pi", "beta", "intercept", "sigma2", "c", "xi", "tau", "counts")


class RelabelResult(NamedTuple):
    """Output of :func:`relabel_chains`.

    Attributes
    ----------
    draws : list of dict
        The relabelled draws of each chain (new arrays; the input is not modified).
    perms : list of ndarray of shape (T_c, J)
        ``perms[c][t, h]`` is the old label that new label ``h`` takes in draw ``t`` of chain ``c``.
    reference_z : ndarray of shape (n,)
        The final reference classification.
    reference : tuple of int
        ``(chain, draw)`` of the reference draw.
    """

    draws: list
    perms: list
    reference_z: np.ndarray
    reference: tuple


def classify(draws: dict, t: int, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``argmax_j log pi_j + log N(y_i | b0_j + x_i' beta_j, sigma2_j)`` for draw ``t``, shape (n,)."""
    s2 = draws["sigma2"][t]
    mean = X @ draws["beta"][t].T + draws["intercept"][t][None, :]
    with np.errstate(divide="ignore"):
        logd = np.log(draws["pi"][t]) - 0.5 * np.log(s2) - 0.5 * (y[:, None] - mean) ** 2 / s2
    return np.argmax(logd, axis=1)


def reference_labels(
    chains: Sequence[dict], X: np.ndarray, y: np.ndarray, key: str = "logjoint"
) -> tuple[np.ndarray, tuple[int, int]]:
    """Reference classification from the draw with the highest ``key`` pooled over chains.

    Returns
    -------
    reference_z : ndarray of shape (n,)
    reference : (chain, draw)
    """
    best, where = -np.inf, None
    for ci, d in enumerate(chains):
        values = np.asarray(d[key])
        if values.size == 0:
            continue
        t = int(np.nanargmax(values))
        if values[t] > best or where is None:
            best, where = values[t], (ci, t)
    if where is None:
        raise InvalidParameterError("relabelling needs at least one stored draw; every chain is empty.")
    return classify(chains[where[0]], where[1], X, y), where


def relabel_permutations(z_draws: np.ndarray, reference_z: np.ndarray, n_components: int) -> np.ndarray:
    """Hungarian matching of each draw's classification to the reference.

    Parameters
    ----------
    z_draws : ndarray of shape (T, n)
        Classification of every draw (sampled or argmax allocations).
    reference_z : ndarray of shape (n,)
    n_components : int

    Returns
    -------
    perms : ndarray of shape (T, J), int64
        ``perms[t, h]`` = old label of new label ``h`` (``rho_t(h)``).
    """
    J = int(n_components)
    z_draws = np.asarray(z_draws, dtype=np.int64)
    ref = np.asarray(reference_z, dtype=np.int64)
    if z_draws.ndim != 2 or z_draws.shape[1] != ref.shape[0]:
        raise InvalidParameterError(
            f"z_draws must have shape (n_draws, {ref.shape[0]}) to match reference_z; got {z_draws.shape}."
        )
    n_ref = np.bincount(ref, minlength=J).astype(float)
    tie = 1e-3 * (1.0 - np.eye(J))  # < one sample: only breaks ties, towards the identity
    perms = np.empty((z_draws.shape[0], J), dtype=np.int64)
    base = ref * J
    for t in range(z_draws.shape[0]):
        N = np.bincount(base + z_draws[t], minlength=J * J).reshape(J, J)
        cost = n_ref[:, None] - N + tie
        rows, cols = linear_sum_assignment(cost)
        perms[t, rows] = cols
    return perms


def apply_permutations(draws: dict, perms: np.ndarray) -> dict:
    """Relabel one chain's draws: ``param[t, h] <- param[t, perms[t, h]]``, ``z <- perms^-1[z]``.

    Entries not indexed by component (``alpha``, ``w``, ``lam1``, ...) are copied unchanged.
    """
    perms = np.asarray(perms, dtype=np.int64)
    out = {}
    for key, value in draws.items():
        value = np.asarray(value)
        if key in PER_COMPONENT:
            idx = perms.reshape(perms.shape + (1,) * (value.ndim - 2))
            out[key] = np.take_along_axis(value, np.broadcast_to(idx, perms.shape + value.shape[2:]), axis=1)
        elif key == "z":
            inverse = np.argsort(perms, axis=1)  # inverse[t, old] = new
            out[key] = np.take_along_axis(inverse, value.astype(np.int64), axis=1).astype(value.dtype)
        else:
            out[key] = value.copy()
    return out


def relabel_chains(
    chains: Sequence[dict],
    X: np.ndarray,
    y: np.ndarray,
    *,
    classification: str = "sampled",
    n_refine: int = 1,
    reference: Optional[tuple[int, int]] = None,
) -> RelabelResult:
    """Relabel the draws of several chains to one common reference (Cron & West 2011).

    Parameters
    ----------
    chains : sequence of dict
        Draws of each chain as returned in :attr:`ChainResult.draws` (need ``pi``, ``beta``,
        ``intercept``, ``sigma2``, ``logjoint`` and, for ``classification="sampled"``, ``z``).
    X : ndarray of shape (n, p)
    y : ndarray of shape (n,)
    classification : {"sampled", "map"}
        Per-draw classification: the sampled allocations (``O(n)`` per draw) or the argmax of
        each draw's responsibilities (``O(npJ)`` per draw).
    n_refine : int
        Extra passes that replace the reference by the MAP allocation of the relabelled
        posterior (Cron & West's optional step) and match again.
    reference : (chain, draw), optional
        Use this draw as the reference instead of the highest log joint.

    Returns
    -------
    RelabelResult
    """
    if classification not in ("sampled", "map"):
        raise InvalidParameterError(
            f"classification must be 'sampled' or 'map'; got {classification!r}."
        )
    if reference is None:
        ref_z, where = reference_labels(chains, X, y)
    else:
        where = (int(reference[0]), int(reference[1]))
        ref_z = classify(chains[where[0]], where[1], X, y)
    J = np.asarray(chains[0]["pi"]).shape[1]
    if classification == "sampled":
        zs = [np.asarray(d["z"]) for d in chains]
    else:
        zs = [np.stack([classify(d, t, X, y) for t in range(len(d["pi"]))]) for d in chains]
    for it in range(int(n_refine) + 1):
        perms = [relabel_permutations(z, ref_z, J) for z in zs]
        if it == n_refine:
            break
        freq = np.zeros((ref_z.shape[0], J))
        for z, pm in zip(zs, perms):
            inv = np.argsort(pm, axis=1)
            zr = np.take_along_axis(inv, z.astype(np.int64), axis=1)
            for h in range(J):
                freq[:, h] += (zr == h).sum(axis=0)
        new_ref = np.argmax(freq, axis=1)
        if np.array_equal(new_ref, ref_z):
            break
        ref_z = new_ref
    relabelled = [apply_permutations(d, pm) for d, pm in zip(chains, perms)]
    return RelabelResult(draws=relabelled, perms=perms, reference_z=ref_z, reference=where)


def canonical_penalty_order(draws: dict) -> dict:
    """Order the ``K`` elastic-net priors of every draw by ``lam1 / lam2`` (the lasso-most last).

    The ``K`` priors have their own label symmetry under ``w ~ Dir(1/K)``; this permutes
    ``lam1``, ``lam2`` and ``w`` per draw and maps ``c`` accordingly. Returns a new dict.
    """
    out = dict(draws)
    ratio = np.asarray(draws["lam1"]) / np.asarray(draws["lam2"])
    order = np.argsort(ratio, axis=1, kind="stable")  # order[t, new] = old
    for key in ("lam1", "lam2", "w"):
        if key in draws:
            out[key] = np.take_along_axis(np.asarray(draws[key]), order, axis=1)
    if "c" in draws:
        inverse = np.argsort(order, axis=1)
        out["c"] = np.take_along_axis(inverse, np.asarray(draws["c"], dtype=np.int64), axis=1)
    return out
