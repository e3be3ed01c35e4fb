"""Convergence diagnostics for DMM-MEN chains, in plain numpy.

* :func:`rhat`: rank-normalised split R-hat, the maximum of the bulk and the folded (tail)
  versions (Vehtari, Gelman, Simpson, Carpenter & Buerkner 2021);
* :func:`ess_bulk` / :func:`ess_tail`: effective sample sizes of the rank-normalised split
  chains and of the 5 % / 95 % quantile indicators, with Geyer's initial monotone sequence;
* :func:`topk_stability`: Jaccard overlap of the top-k coefficient sets between chains, the
  quantity users of an explanation actually consume;
* :func:`chain_diagnostics`: all of the above on the label-invariant quantities (log-likelihood,
  ``alpha``, number of occupied components) and on relabelled per-component ones;
* :func:`to_inferencedata`: an ArviZ ``InferenceData`` when ArviZ is installed.

Inputs have shape ``(n_chains, n_draws, *extra)``; outputs have shape ``extra``. The algorithms
follow ArviZ's ``rhat(method="rank")``, ``ess(method="bulk" | "tail")`` so the numbers agree.

References
----------
Vehtari, A., Gelman, A., Simpson, D., Carpenter, B. & Buerkner, P.-C. (2021). Rank-normalization,
folding, and localization: an improved R-hat for assessing convergence of MCMC. Bayesian
Analysis 16(2), 667-718.
Geyer, C. J. (1992). Practical Markov chain Monte Carlo. Statistical Science 7(4), 473-483.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
from scipy.fft import next_fast_len
from scipy.special import ndtri
from scipy.stats import rankdata

from ..exceptions import InvalidParameterError, MissingDependencyError

__all__ = [
    "rhat",
    "ess_bulk",
    "ess_tail",
    "topk_stability",
    "chain_diagnostics",
    "to_inferencedata",
    "LABEL_INVARIANT",
]

#: Trace entries that do not depend on the component labels.
LABEL_INVARIANT = ("loglik", "logjoint", "logjoint_occupied", "alpha", "n_occupied")


def _as_chains(x, name="x") -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if x.ndim < 2:
        raise InvalidParameterError(
            f"{name} must have shape (n_chains, n_draws, ...); got {x.shape}. "
            "For a single chain use x[None, :]."
        )
    if x.shape[1] < 4:
        raise InvalidParameterError(f"{name} needs at least 4 draws per chain; got {x.shape[1]}.")
    return x


def _split(x: np.ndarray) -> np.ndarray:
    """(M, N, ...) -> (2M, N // 2, ...), dropping the middle draw when N is odd."""
    half = x.shape[1] // 2
    return np.concatenate([x[:, :half], x[:, -half:]], axis=0)


def _z_scale(x: np.ndarray) -> np.ndarray:
    """Normal scores of the pooled (average) ranks, ``Phi^-1((r - 3/8) / (S + 1/4))``, of each
    column of (M, N, Q) draws (ranks pooled over chains and draws)."""
    flat = x.reshape(-1, x.shape[2])
    r = rankdata(flat, method="average", axis=0).reshape(x.shape)
    return ndtri((r - 0.375) / (flat.shape[0] + 0.25))


def _rhat_basic(x: np.ndarray) -> np.ndarray:
    """Classic R-hat of each column of (M, N, Q) chains."""
    n = x.shape[1]
    within = x.var(axis=1, ddof=1).mean(axis=0)
    between = n * x.mean(axis=1).var(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.sqrt((between / within + n - 1) / n)
    return np.where(within == 0, np.where(between == 0, 1.0, np.inf), out)


def _rhat_cols(x: np.ndarray) -> np.ndarray:
    """Rank-normalised split R-hat of each column of (M, N, Q) draws (see :func:`rhat`)."""
    out = np.full(x.shape[2], np.nan)
    finite = np.all(np.isfinite(x), axis=(0, 1))
    constant = finite & (np.ptp(np.where(np.isfinite(x), x, 0.0), axis=(0, 1)) == 0)
    out[constant] = 1.0
    cols = finite & ~constant
    if cols.any():
        s = _split(x[:, :, cols])
        bulk = _rhat_basic(_z_scale(s))
        tail = _rhat_basic(_z_scale(np.abs(s - np.median(s, axis=(0, 1)))))
        out[cols] = np.maximum(bulk, tail)
    return out


def _autocov(x: np.ndarray) -> np.ndarray:
    """Biased autocovariances along axis 1 (FFT) of (M, N, Q) chains, averaged over the M chains:
    shape (N, Q)."""
    n = x.shape[1]
    m = next_fast_len(2 * n)
    xc = x - x.mean(axis=1, keepdims=True)
    f = np.fft.rfft(xc, n=m, axis=1)
    return (np.fft.irfft(f * np.conjugate(f), n=m, axis=1)[:, :n] / n).mean(axis=0)


def _ess_cols(x: np.ndarray) -> np.ndarray:
    """ESS of each column of (M, N, Q) chains with Geyer's initial positive and monotone
    sequences (NaN for a column with a non-finite draw, ``M N`` for a constant one)."""
    M, N, Q = x.shape
    finite = np.all(np.isfinite(x), axis=(0, 1))
    x = np.where(finite, x, 0.0)
    constant = np.ptp(x, axis=(0, 1)) < np.finfo(float).resolution
    acov = _autocov(x).T.tolist()  # (Q, N) as floats: the loop below reads them one by one
    mean_var = [a[0] * N / (N - 1.0) for a in acov]
    between = x.mean(axis=1).var(axis=0, ddof=1).tolist() if M > 1 else [0.0] * Q
    out = np.full(Q, np.nan)
    for q in range(Q):
        if not finite[q]:
            continue
        if constant[q]:
            out[q] = float(M * N)
            continue
        out[q] = _geyer_ess(acov[q], mean_var[q], mean_var[q] * (N - 1.0) / N + between[q], M, N)
    return out


def _geyer_ess(acov: list, mean_var: float, var_plus: float, M: int, N: int) -> float:
    """ESS from chain-averaged autocovariances (floats) with Geyer's initial positive and
    monotone sequences."""
    rho = [0.0] * N
    rho_even, rho_odd = 1.0, 1.0 - (mean_var - acov[1]) / var_plus
    rho[0], rho[1] = rho_even, rho_odd
    t = 1
    while t < N - 3 and rho_even + rho_odd > 0.0:
        rho_even = 1.0 - (mean_var - acov[t + 1]) / var_plus
        rho_odd = 1.0 - (mean_var - acov[t + 2]) / var_plus
        if rho_even + rho_odd >= 0:
            rho[t + 1], rho[t + 2] = rho_even, rho_odd
        t += 2
    max_t = t - 2
    if rho_even > 0:
        rho[max_t + 1] = rho_even
    t = 1
    while t <= max_t - 2:
        if rho[t + 1] + rho[t + 2] > rho[t - 1] + rho[t]:
            rho[t + 1] = rho[t + 2] = (rho[t - 1] + rho[t]) / 2.0
        t += 2
    ess = M * N
    tau = -1.0 + 2.0 * sum(rho[: max_t + 1]) + sum(rho[max_t + 1 : max_t + 2])
    tau = max(tau, 1.0 / math.log10(ess))
    return float(ess / tau)


def _columns(x, name="x") -> tuple[np.ndarray, tuple]:
    """``x`` as (M, N, Q) columns and the shape of its trailing dimensions."""
    x = _as_chains(x, name)
    return x.reshape(x.shape[0], x.shape[1], -1), x.shape[2:]


def _shaped(out: np.ndarray, extra: tuple) -> np.ndarray | float:
    return float(out[0]) if extra == () else out.reshape(extra)


def rhat(x) -> np.ndarray | float:
    """Rank-normalised split R-hat (max of bulk and folded), Vehtari et al. (2021).

    Parameters
    ----------
    x : array-like of shape (n_chains, n_draws, *extra)

    Returns
    -------
    float or ndarray of shape ``extra``
        1.0 for a quantity that is constant across all draws, ``inf`` when chains are
        constant at different values, NaN when any draw is non-finite.
    """
    cols, extra = _columns(x)
    return _shaped(_rhat_cols(cols), extra)


def ess_bulk(x) -> np.ndarray | float:
    """Bulk effective sample size: ESS of the rank-normalised split chains.

    Parameters
    ----------
    x : array-like of shape (n_chains, n_draws, *extra)
    """
    cols, extra = _columns(x)
    finite = np.all(np.isfinite(cols), axis=(0, 1))
    ess = _ess_cols(_z_scale(_split(np.where(finite, cols, 0.0))))
    return _shaped(np.where(finite, ess, np.nan), extra)


def ess_tail(x, prob: tuple[float, float] = (0.05, 0.95)) -> np.ndarray | float:
    """Tail effective sample size: the smaller ESS of the two quantile indicators.

    Parameters
    ----------
    x : array-like of shape (n_chains, n_draws, *extra)
    prob : (float, float)
    """
    cols, extra = _columns(x)
    ess = [_ess_cols(_split((cols <= np.quantile(cols, q, axis=(0, 1))).astype(float))) for q in prob]
    return _shaped(np.where(np.all(np.isfinite(cols), axis=(0, 1)), np.min(ess, axis=0), np.nan), extra)


def topk_stability(coef: np.ndarray, k: int, *, signed: bool = False) -> np.ndarray:
    """Jaccard overlap of top-k coefficient sets, for every pair of chains (or halves).

    Parameters
    ----------
    coef : ndarray of shape (n_groups, J, p) or (n_groups, p)
        Posterior-mean coefficients per chain (or per half-chain), relabelled to common labels.
    k : int
        Size of the top set (ranked by ``|coef|``, or by ``coef`` when ``signed``).

    Returns
    -------
    ndarray of shape (J,) (or scalar)
        Mean Jaccard index ``|A & B| / |A | B|`` over all pairs of groups, per component.
    """
    coef = np.asarray(coef, dtype=float)
    squeeze = coef.ndim == 2
    if squeeze:
        coef = coef[:, None, :]
    if coef.ndim != 3 or coef.shape[0] < 2:
        raise InvalidParameterError(
            f"coef must have shape (n_groups >= 2, J, p) or (n_groups >= 2, p); got {np.shape(coef)}."
        )
    p = coef.shape[2]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= p:
        raise InvalidParameterError(f"k must be an int in [1, {p}]; got {k!r}.")
    score = coef if signed else np.abs(coef)
    top = np.argsort(-score, axis=2, kind="stable")[:, :, :k]
    G, J = coef.shape[:2]
    out = np.zeros(J)
    pairs = 0
    for a in range(G):
        for b in range(a + 1, G):
            for j in range(J):
                A, B = set(top[a, j].tolist()), set(top[b, j].tolist())
                out[j] += len(A & B) / len(A | B)
            pairs += 1
    out /= pairs
    return float(out[0]) if squeeze else out


def chain_diagnostics(
    traces: Sequence[dict],
    draws: Sequence[dict],
    n_burnin: int,
    *,
    per_component: Sequence[str] = ("pi", "sigma2"),
    k: Optional[int] = None,
) -> dict:
    """R-hat, bulk ESS and top-k stability of DMM-MEN chains.

    Parameters
    ----------
    traces : sequence of dict
        Per-sweep traces of each chain (``ChainResult.trace``); the label-invariant
        :data:`LABEL_INVARIANT` entries after ``n_burnin`` are used at full resolution.
    draws : sequence of dict
        Relabelled draws of each chain (``RelabelResult.draws``).
    n_burnin : int
    per_component : sequence of str
        Relabelled per-component draws to diagnose (shape (J,) each).
    k : int, optional
        Top-k size for :func:`topk_stability` of ``beta`` (default ``min(20, p)``).

    Returns
    -------
    dict
        ``{"rhat": {...}, "ess_bulk": {...}, "ess_tail": {...}, "topk_jaccard": ndarray (J,),
        "topk_jaccard_halves": ndarray (J,)}``: the top-k overlap between chains, and between the
        first and second halves of each chain (averaged over chains); ``"alpha"`` is taken from
        the stored draws.
    """
    out: dict = {"rhat": {}, "ess_bulk": {}, "ess_tail": {}}
    series = {}
    for name in ("loglik", "logjoint", "logjoint_occupied", "n_occupied"):
        if all(name in tr for tr in traces):
            L = min(len(tr[name]) for tr in traces)
            series[name] = np.stack([np.asarray(tr[name][n_burnin:L], dtype=float) for tr in traces])
    if all("alpha" in d for d in draws):
        T = min(len(d["alpha"]) for d in draws)
        series["alpha"] = np.stack([np.asarray(d["alpha"][:T], dtype=float) for d in draws])
    for name in per_component:
        if all(name in d for d in draws):
            T = min(len(d[name]) for d in draws)
            series[name] = np.stack([np.asarray(d[name][:T], dtype=float) for d in draws])
    for name, x in series.items():
        if x.shape[1] < 4:
            continue
        out["rhat"][name] = rhat(x)
        out["ess_bulk"][name] = ess_bulk(x)
        out["ess_tail"][name] = ess_tail(x)
    if all("beta" in d for d in draws):
        betas = [np.asarray(d["beta"]) for d in draws]
        kk = min(20, betas[0].shape[-1]) if k is None else k
        if len(draws) >= 2:
            out["topk_jaccard"] = topk_stability(np.stack([b.mean(axis=0) for b in betas]), kk)
        halves = [
            topk_stability(np.stack([b[: len(b) // 2].mean(axis=0), b[len(b) // 2 :].mean(axis=0)]), kk)
            for b in betas
            if len(b) >= 2
        ]
        if halves:
            out["topk_jaccard_halves"] = np.mean(halves, axis=0)
    return out


def to_inferencedata(draws: Sequence[dict], traces: Optional[Sequence[dict]] = None, n_burnin: int = 0):
    """Relabelled draws (and optionally the post-burn-in traces) as an ArviZ ``InferenceData``.

    Parameters
    ----------
    draws : sequence of dict
        One dict per chain with equal numbers of draws.
    traces : sequence of dict, optional
        Per-sweep traces; their post-burn-in ``loglik``/``logjoint``/``n_occupied`` go to
        ``sample_stats``.
    n_burnin : int

    Raises
    ------
    MissingDependencyError
        If ArviZ is not installed.
    """
    try:
        import arviz as az
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            "to_inferencedata needs ArviZ, which is not installed. Install it with `pip install arviz`; "
            "rhat, ess_bulk and ess_tail in scrutiny.surrogate.convergence work without it."
        ) from exc
    names = ("alpha", "pi", "beta", "intercept", "sigma2", "w", "lam1", "lam2", "loglik", "logjoint")
    T = min(len(d["alpha"]) for d in draws)
    posterior = {n: np.stack([np.asarray(d[n][:T]) for d in draws]) for n in names if all(n in d for d in draws)}
    stats = None
    if traces is not None:
        L = min(len(t["loglik"]) for t in traces)
        stats = {
            n: np.stack([np.asarray(t[n][n_burnin:L]) for t in traces])
            for n in ("loglik", "logjoint", "n_occupied")
        }
    dims = {"pi": ["component"], "beta": ["component", "feature"], "intercept": ["component"],
            "sigma2": ["component"], "w": ["prior"], "lam1": ["prior"], "lam2": ["prior"]}
    return az.from_dict(posterior=posterior, sample_stats=stats, dims=dims)
