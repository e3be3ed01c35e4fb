"""SmoothGrad: a gradient explanation averaged over Gaussian-perturbed copies of the input.

Speed by design: all noisy copies of all inputs are built as one array (in memory-bounded
blocks) and differentiated in large chunks. SmoothGrad draws **one** noise matrix per call
and applies it to every input (common random numbers), so rows explained together equal rows
explained one by one.

References
----------
.. [1] Smilkov, Thorat, Kim, Viegas, Wattenberg (2017). SmoothGrad: removing noise by adding
   noise. arXiv:1706.03825.
.. [2] Agarwal, Jabbari, Agarwal, Upadhyay, Wu, Lakkaraju (2021). Towards the unification
   and robustness of perturbation and gradient based explanations. ICML.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np

from .._validation import Interval, Options
from ..exceptions import ConvergenceWarning, InvalidParameterError, ScrutinyWarning
from ._base import Explainer, RawAttribution, native_dtype
from ._gradient import BATCH_HINT, FEATURE_NAMES_CONSTRAINT, SPACES, block_rows, expand
from .integrated_gradients import IntegratedGradients
from .saliency import GradientXInput, Saliency

__all__ = ["SmoothGrad"]


_WRAPPABLE = (Saliency, GradientXInput, IntegratedGradients)


class SmoothGrad(Explainer):
    """SmoothGrad: average a gradient explanation over Gaussian-perturbed copies of the input.

    ``phi(x) = mean_k A(x + eps_k)`` with ``eps_k ~ N(0, sigma^2 I)`` and ``A`` a gradient
    explainer (Saliency by default; also GradientXInput or IntegratedGradients -- a "noise
    tunnel"). For ``A = Saliency`` the expectation is ``E[grad f(x + eps)]``, which equals
    the population slope of continuous LIME (C-LIME) with the same Gaussian (Agarwal et al.
    2021, via Stein's lemma).

    Parameters
    ----------
    model : torch.nn.Module or TorchModel
        A differentiable model.
    explainer : None, Saliency, GradientXInput or IntegratedGradients (class or instance), default None
        The smoothed explainer; None means ``Saliency``. A class is used with its defaults;
        from an instance only the hyper-parameters are taken (the model is SmoothGrad's).
    n_samples : int or "auto", default 50
        Number of noisy copies per input. With ``antithetic=True`` copies come in pairs
        ``(x + eps, x - eps)`` and an odd number is rounded up. ``"auto"`` applies the rule
        below.
    noise_level : float, default 0.15
        Standard deviation of the noise, in the units set by ``noise_scale``. Smilkov et al.
        recommend 10-20% of the input range.
    noise_scale : {"range", "absolute"}, default "range"
        ``"range"``: ``sigma = noise_level * (x.max() - x.min())``, computed per input over all
        its features (Smilkov et al.); ``"absolute"``: ``sigma = noise_level`` for every input
        and feature (the parametrisation of Agarwal et al. and of captum's ``stdevs``).
    antithetic : bool, default True
        Use antithetic pairs ``+eps, -eps``: odd-order terms of the noise cancel exactly within a
        pair (SmoothGrad of a linear or quadratic model is exact for any sample count), which
        lowers the variance for nearly linear models.
    random_state : int, numpy.random.Generator or None, default None
        Seed of the noise; the same int gives the same result.
    batch_size : int or None, default None
        Largest number of model-input rows (noisy copies, or path points for IG) built and
        sent to ``model.gradient`` at once (memory only); overrides the wrapped explainer's
        ``batch_size``.
    space : {"auto", "raw", "probability", "log_odds"}, default "auto"
        The differentiated space. ``"auto"`` keeps the wrapped explainer's ``space`` (whose
        own ``"auto"`` is the model's raw output); any other value overrides it.
    feature_names : sequence of str, optional
        One name per input value, recorded on the Explanation.

    Notes
    -----
    *Noise.* One standard normal matrix ``Z`` of shape (n_draws, *sample_shape) is drawn per
    call and shared by all inputs (common random numbers): input ``i`` uses
    ``x_i + sigma_i * Z_k`` (and ``x_i - sigma_i * Z_k``). So rows explained together equal rows
    explained one by one, and differences between inputs are not blurred by independent noise.

    *Standard errors.* ``Explanation.stderr`` is the standard error of the mean over the
    independent draws, ``std(d_k, ddof=1) / sqrt(m)``, where ``d_k`` is the attribution of
    one draw -- the average over an antithetic pair counts as one draw -- and ``m`` the number
    of draws (stderr is None when ``m < 2``).

    *n_samples="auto".* Starting from 32 copies, the number of draws is doubled until, for
    each input separately, ``max_j stderr_j <= 0.05 * max_j |phi_j|`` (the largest standard
    error is at most 5% of the largest attribution), with a cap of 4096 copies per input;
    inputs that hit the cap without meeting the rule trigger a
    :class:`~scrutiny.exceptions.ConvergenceWarning`. Every input uses a prefix of the same
    draw sequence, so the result of an input does not depend on the other inputs.
    (Constants: ``auto_start``, ``auto_rtol``, ``auto_max_samples``.)

    ``extras`` holds ``"noise_std"`` (sigma per input, shape (n_samples,)) and
    ``"n_samples_used"`` (copies per input, shape (n_samples,)); with ``"auto"`` also
    ``"converged"`` (bool, shape (n_samples,)).

    References
    ----------
    .. [1] Smilkov, Thorat, Kim, Viegas, Wattenberg (2017). SmoothGrad: removing noise by
       adding noise. arXiv:1706.03825.
    .. [2] Agarwal, Jabbari, Agarwal, Upadhyay, Wu, Lakkaraju (2021). Towards the unification
       and robustness of perturbation and gradient based explanations. ICML.

    Examples
    --------
    >>> import torch
    >>> from scrutiny.attribution import SmoothGrad, IntegratedGradients
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    >>> e = SmoothGrad(net, n_samples=64, random_state=0).explain(torch.ones(4, 3))
    >>> e.values.shape == e.stderr.shape == (4, 3)
    True
    >>> tunnel = SmoothGrad(net, explainer=IntegratedGradients, n_samples=8, random_state=0)
    >>> tunnel.explain(torch.ones(4, 3)).values.shape
    (4, 3)
    """

    requires: ClassVar[tuple[str, ...]] = ("gradient",)
    _constraints: ClassVar[dict[str, list]] = {
        "n_samples": [Interval(int, 1, None), Options("auto")],
        "noise_level": [Interval(float, 0, None)],
        "noise_scale": [Options("range", "absolute")],
        "antithetic": ["boolean"],
        "random_state": ["random_state"],
        "batch_size": [Interval(int, 1, None), None],
        "space": [Options(*SPACES)],
        "feature_names": FEATURE_NAMES_CONSTRAINT,
    }
    _hints: ClassVar[dict[str, str]] = {
        "n_samples": "SmoothGrad averages over at least 1 noisy copy (50 is typical; 'auto' picks it).",
        "noise_level": "Smilkov et al. recommend 0.1-0.2 of the input range (noise_scale='range').",
        "noise_scale": "'range' scales noise_level by each input's max - min; 'absolute' uses it as sigma.",
        "batch_size": BATCH_HINT,
        "space": "'auto' keeps the wrapped explainer's space; 'raw', 'probability' or 'log_odds' override it.",
    }
    auto_start: ClassVar[int] = 32
    auto_rtol: ClassVar[float] = 0.05
    auto_max_samples: ClassVar[int] = 4096

    def __init__(
        self,
        model: Any,
        explainer: Any = None,
        *,
        n_samples: int | str = 50,
        noise_level: float = 0.15,
        noise_scale: str = "range",
        antithetic: bool = True,
        random_state: Any = None,
        batch_size: int | None = None,
        space: str = "auto",
        feature_names: Any = None,
    ):
        super().__init__(model)
        self.explainer = explainer
        self.n_samples = n_samples
        self.noise_level = noise_level
        self.noise_scale = noise_scale
        self.antithetic = antithetic
        self.random_state = random_state
        self.batch_size = batch_size
        self.space = space
        self.feature_names = feature_names

    # -- the wrapped explainer ---------------------------------------------------------------
    def _inner(self) -> Explainer:
        spec = Saliency if self.explainer is None else self.explainer
        if isinstance(spec, type) and issubclass(spec, _WRAPPABLE):
            cls, params = spec, {}
        elif isinstance(spec, _WRAPPABLE):
            cls, params = type(spec), spec.get_params()
            params.pop("model")
            params.pop("feature_names")
        else:
            raise InvalidParameterError(
                f"SmoothGrad: explainer must be None, Saliency, GradientXInput or IntegratedGradients "
                f"(a class or an instance); got {spec!r}. For a perturbation method, smooth its "
                "inputs yourself or use C-LIME, which targets the same expectation."
            )
        if self.batch_size is not None:
            params["batch_size"] = self.batch_size
        if self.space != "auto":
            params["space"] = self.space
        inner = cls(self.model, **params)
        inner._validate_params()
        return inner

    def _check(self, X: np.ndarray) -> None:
        self._inner()._check(X)

    # -- the estimator ---------------------------------------------------------------------
    def _sigma(self, X: np.ndarray) -> np.ndarray:
        if self.noise_scale == "absolute":
            return np.full(X.shape[0], float(self.noise_level))
        flat = X.reshape(X.shape[0], -1)
        sigma = float(self.noise_level) * (flat.max(axis=1) - flat.min(axis=1))
        flat_rows = np.flatnonzero(sigma == 0)
        if self.noise_level > 0 and flat_rows.size:
            why = "have a single feature" if flat.shape[1] == 1 else "are constant"
            warnings.warn(
                f"SmoothGrad: input(s) {flat_rows[:5].tolist()} {why}, so their range is 0 and noise_scale='range' "
                "adds no noise: the result is the plain gradient explanation. Pass noise_scale='absolute' with "
                "noise_level in input units (e.g. 0.15 * the feature's spread over your data).",
                ScrutinyWarning, stacklevel=3,
            )
        return sigma

    def _accumulate(
        self,
        inner: Explainer,
        X: np.ndarray,
        target: np.ndarray,
        baseline: np.ndarray | None,
        sigma: np.ndarray,
        rows: np.ndarray,
        n_draws: int,
        rng: np.random.Generator,
        stats: tuple[np.ndarray, np.ndarray, np.ndarray],
    ) -> None:
        """Draw ``n_draws`` new noise vectors, apply them to inputs ``rows`` and merge the
        per-draw attributions into the running (count, mean, M2) statistics (Chan et al.)."""
        count, mean, m2 = stats
        copies = 2 if self.antithetic else 1
        shape, nd = X.shape[1:], X.ndim
        expansion = inner.n_steps if isinstance(inner, IntegratedGradients) else 1
        capacity = max(1, block_rows(self.batch_size, int(np.prod(shape))) // (copies * expansion))
        chunk = min(n_draws, capacity)  # draws per noise block: independent of the inputs
        group = max(1, capacity // chunk)  # inputs per block
        signs = np.array([1.0, -1.0][:copies])
        # noisy copies are drawn and built in the model's own dtype (float32 for torch: half
        # the memory traffic, no conversion before the model call)
        dt = np.float32 if native_dtype(self.model) == np.float32 else np.float64
        Xd = X.astype(dt, copy=False)
        for d0 in range(0, n_draws, chunk):
            Z = rng.standard_normal((min(chunk, n_draws - d0),) + shape, dtype=dt)
            kb = Z.shape[0]
            for g0 in range(0, len(rows), group):
                sel = rows[g0 : g0 + group]
                g = len(sel)
                # (g, kb, copies, *shape): x_i + s * sigma_i * Z_k
                ones = (1,) * len(shape)
                scale = (sigma[sel].reshape((g, 1, 1) + ones) * signs.reshape((1, 1, copies) + ones)).astype(dt)
                noisy = (Xd[sel][:, None, None] + scale * Z[None, :, None]).reshape((g * kb * copies,) + shape)
                reps = kb * copies
                base = None
                if baseline is not None:
                    base = baseline if baseline.shape[0] == 1 else np.repeat(baseline[sel], reps, axis=0)
                values = inner._attribute(noisy, np.repeat(target[sel], reps), base)
                draws = values.reshape((g, kb, copies) + shape).mean(axis=2)  # one value per draw
                block_mean = draws.mean(axis=1)
                block_m2 = ((draws - block_mean[:, None]) ** 2).sum(axis=1)
                n_a = expand(count[sel].astype(np.float64), nd)
                n_ab = n_a + kb
                delta = block_mean - mean[sel]
                mean[sel] += delta * (kb / n_ab)
                m2[sel] += block_m2 + delta**2 * (n_a * kb / n_ab)
                count[sel] += kb

    def _explain(self, X: np.ndarray, target: np.ndarray, rng: np.random.Generator) -> RawAttribution:
        inner = self._inner()
        baseline = inner._resolve_baseline(X)
        sigma = self._sigma(X)
        copies = 2 if self.antithetic else 1
        n = X.shape[0]
        stats = (np.zeros(n, dtype=np.int64), np.zeros(X.shape), np.zeros(X.shape))
        count, mean, m2 = stats
        extras: dict[str, Any] = {"noise_std": sigma}
        every = np.arange(n)
        if self.n_samples != "auto":
            n_draws = -(-int(self.n_samples) // copies)
            self._accumulate(inner, X, target, baseline, sigma, every, n_draws, rng, stats)
        else:
            done, todo = 0, max(1, self.auto_start // copies)
            cap = max(1, self.auto_max_samples // copies)
            active = every
            converged = np.zeros(n, dtype=bool)
            while active.size:
                self._accumulate(inner, X, target, baseline, sigma, active, todo - done, rng, stats)
                done = todo
                se = np.sqrt(m2[active] / (done - 1) / done).reshape(len(active), -1)
                scale = np.abs(mean[active]).reshape(len(active), -1).max(axis=1)
                ok = se.max(axis=1) <= self.auto_rtol * scale
                converged[active[ok]] = True
                active = active[~ok]
                if done >= cap:
                    break
                todo = min(2 * done, cap)
            if active.size:
                warnings.warn(
                    f"SmoothGrad: n_samples='auto' reached the cap of {self.auto_max_samples} noisy "
                    f"copies for {active.size} of {n} input(s) without the largest standard error "
                    f"falling below {self.auto_rtol:.0%} of the largest attribution. Their attributions "
                    "are close to zero relative to the noise; see stderr, or lower noise_level.",
                    ConvergenceWarning,
                    stacklevel=3,
                )
            extras["converged"] = converged
        extras["n_samples_used"] = count * copies
        stderr = None
        if count.min() >= 2:
            stderr = np.sqrt(m2 / expand((count - 1) * count, X.ndim).astype(np.float64))
        return RawAttribution(values=mean, stderr=stderr, extras=extras)
