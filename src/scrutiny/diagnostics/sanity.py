"""Adebayo et al.'s sanity checks for explanations: does the explanation depend on the model?

:func:`sanity_check` explains the same inputs with the trained model and with randomised copies
of it, and measures how similar the explanations stay:

* ``"cascading"`` -- layers re-initialised from the output layer down, one more at each stage;
* ``"independent"`` -- one layer re-initialised at a time;
* ``"data"`` -- a copy re-initialised and retrained with the same recipe on permuted labels.

Re-initialisation uses the layer's own initialiser (:func:`scrutiny.zoo.init_parameters`: PyTorch's
defaults; ``reset_parameters`` under a forked RNG for other layer types; Glorot for scikit-learn
MLPs) with a generator seeded by (``random_state``, layer name), so a layer gets the same new
weights in every test, whatever the order or the number of workers. The model passed in is
never changed: every stage works on a deep copy.

Explainers are rebuilt on each randomised model from their own parameters (their
``random_state`` included, so stochastic explainers use the same perturbation design on the
original and on the randomised model), and explain the targets of the original explanation.
"""

from __future__ import annotations

import copy
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from .._validation import Interval, Options, check_array, check_random_state, validate_params
from ..exceptions import CapabilityError, InvalidParameterError
from ..models import as_model
from .results import SanityCheckResult
from .similarity import IMAGE_METRICS, METRICS, pairwise, similarity

__all__ = ["sanity_check"]

TESTS = ("cascading", "independent", "data")

_CONSTRAINTS = {
    "threshold": [Interval(float, 0, 1, closed="neither")],
    "n_noise": [Interval(int, 0, None)],
    "noise_level": [Interval(float, 0, None)],
    "n_permutations": [Interval(int, 1, None)],
    "batch_size": [Interval(int, 1, None), None],
    "n_jobs": [Interval(int, 1, None)],
    "n_workers": [Interval(int, 1, None), None],
    "random_state": ["random_state"],
    "metric": [Options(*METRICS)],
}
_HINTS = {
    "threshold": "0.5: the explanation must lose at least half its similarity above the noise floor.",
    "n_noise": "0 for MPRT; 10-50 noisy copies for the smoothed variant (sMPRT).",
    "noise_level": "0.1 (a tenth of each input's value range).",
    "n_permutations": "999 gives p-values down to 0.001.",
    "batch_size": "None explains all rows at once; it never changes a result.",
    "n_jobs": "1, or the number of cores (stages run in threads).",
    "n_workers": "None (one per core), or the size of the process pool / local Dask cluster to start.",
    "random_state": "an int seed, a Generator or None.",
}


class _Stage(NamedTuple):
    name: str
    layers: tuple[str, ...]  # layers re-initialised ("*" = the data test)


def _layer_seed(random_state: int, name: str) -> int:
    return int(np.random.SeedSequence([random_state, zlib.crc32(name.encode())]).generate_state(1)[0])


# --------------------------------------------------------------------------- model access


def _torch_layers(module: Any) -> list[str]:
    return [n for n, m in module.named_modules() if n and any(True for _ in m.parameters(recurse=False))]


def _sk_layers(est: Any) -> list[str]:
    if hasattr(est, "coefs_"):
        return [f"layer{k}" for k in range(len(est.coefs_))]
    raise CapabilityError(
        f"model-parameter randomisation needs a torch module or a scikit-learn MLP (coefs_); got "
        f"{type(est).__name__}. Use tests=('data',) for other estimators."
    )


def _reinit_torch(module: Any, names: Sequence[str], random_state: int) -> None:
    from ..zoo import init_parameters

    for name in names:
        layer = module.get_submodule(name)
        seed = _layer_seed(random_state, name)
        try:
            init_parameters(layer, random_state=seed)
        except InvalidParameterError:
            _reinit_unknown(layer, seed)


def _reinit_unknown(layer: Any, seed: int) -> None:
    """A layer type ``init_parameters`` does not know: PyTorch's default for weight layers
    (``kaiming_uniform_(a=sqrt(5))`` for every parameter with two or more dimensions, and
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for the others), drawn from a private generator seeded
    per layer, so global RNG state is never touched."""
    import math

    import torch

    params = list(layer.parameters(recurse=False))
    weights = [p for p in params if p.dim() >= 2]
    if not weights:
        raise InvalidParameterError(
            f"sanity_check: cannot re-initialise layer {type(layer).__name__} (no weight matrix and an unknown "
            "type). Pass layers= naming only Linear, convolution and normalisation layers."
        )
    fan_in = weights[0][0].numel()
    g = torch.Generator(device="cpu").manual_seed(int(seed))
    with torch.no_grad():
        for p in params:
            if p.dim() >= 2:
                torch.nn.init.kaiming_uniform_(p, a=math.sqrt(5), generator=g)
            else:
                p.uniform_(-1.0 / math.sqrt(fan_in), 1.0 / math.sqrt(fan_in), generator=g)


def _reinit_sklearn(est: Any, names: Sequence[str], random_state: int) -> None:
    for name in names:
        k = int(name[len("layer"):])
        rng = np.random.default_rng(_layer_seed(random_state, name))
        fan_in, fan_out = est.coefs_[k].shape
        # scikit-learn's own MLP initialiser (Glorot uniform; factor 2 for logistic activations)
        factor = 2.0 if getattr(est, "activation", "relu") == "logistic" else 6.0
        bound = np.sqrt(factor / (fan_in + fan_out))
        est.coefs_[k] = rng.uniform(-bound, bound, size=(fan_in, fan_out))
        est.intercepts_[k] = rng.uniform(-bound, bound, size=fan_out)


class _Target(NamedTuple):
    """The model under test, as a torch module or a scikit-learn estimator with its adapter."""

    adapter: Any
    raw: Any
    torch: bool

    def layers(self) -> list[str]:
        return _torch_layers(self.raw) if self.torch else _sk_layers(self.raw)

    def randomised(self, names: Sequence[str], random_state: int) -> Any:
        raw = copy.deepcopy(self.raw)
        if self.torch:
            _reinit_torch(raw, names, random_state)
        else:
            _reinit_sklearn(raw, names, random_state)
        return self.wrap(raw)

    def wrap(self, raw: Any) -> Any:
        if self.torch:
            adapter = copy.copy(self.adapter)  # same output/batch/device settings, another module
            adapter.module = raw
            return adapter
        return type(self.adapter)(raw, method=self.adapter.method, batch_size=self.adapter.batch_size)

    def retrained(self, X: np.ndarray, y: np.ndarray, train_params: dict, random_state: int) -> tuple[Any, float]:
        """A copy re-initialised and retrained on (X, y); returns (adapter, training accuracy)."""
        seed = _layer_seed(random_state, "*data*")
        if self.torch:
            from ..zoo import accuracy, train_model

            raw = copy.deepcopy(self.raw)
            _reinit_torch(raw, self.layers(), seed)
            params = {"random_state": seed, **train_params}
            train_model(raw, X, y, **params)
            return self.wrap(raw), float(accuracy(raw, X, y))
        from sklearn.base import clone

        est = clone(self.raw)
        if "random_state" in est.get_params(deep=False):
            est.set_params(random_state=seed)
        if train_params:
            est.set_params(**train_params)
        est.fit(X.reshape(X.shape[0], -1) if X.ndim > 2 else X, y)
        return self.wrap(est), float(np.mean(est.predict(X.reshape(X.shape[0], -1)) == y))


def _target(model: Any) -> _Target:
    adapter = as_model(model)
    if hasattr(adapter, "module"):
        return _Target(adapter, adapter.module, True)
    if hasattr(adapter, "estimator"):
        return _Target(adapter, adapter.estimator, False)
    raise CapabilityError(
        f"sanity_check needs a torch module or a scikit-learn estimator (it randomises or retrains the "
        f"model); got {type(adapter).__name__}."
    )


# --------------------------------------------------------------------------- explainers


def _named(explainers: Any) -> dict[str, Any]:
    if isinstance(explainers, dict):
        items = dict(explainers)
    else:
        if hasattr(explainers, "explain") or callable(explainers) and not isinstance(explainers, (list, tuple)):
            explainers = [explainers]
        items = {}
        for e in explainers:
            name = type(e).__name__ if hasattr(e, "explain") else getattr(e, "__name__", "explainer")
            base, k = name, 2
            while name in items:
                name, k = f"{base}_{k}", k + 1
            items[name] = e
    if not items:
        raise InvalidParameterError("explainers must hold at least one explainer.")
    for name, e in items.items():
        if not (hasattr(e, "explain") and hasattr(e, "get_params")) and not callable(e):
            raise InvalidParameterError(
                f"explainers[{name!r}] must be a scrutiny explainer (e.g. Saliency(model)) or a callable "
                f"f(model, X, target) -> attributions; got {type(e).__name__}."
            )
    return items


def _explain_fn(explainer: Any, runner: Callable | None = None) -> Callable[[Any, np.ndarray, np.ndarray], np.ndarray]:
    """f(model adapter, X, target) -> attributions, rebuilding the explainer on the given model;
    ``runner(explainer, X, target) -> Explanation`` runs it (None: in this process)."""
    if hasattr(explainer, "explain") and hasattr(explainer, "get_params"):
        params = explainer.get_params(deep=False)

        def run(model: Any, X: np.ndarray, target: np.ndarray) -> np.ndarray:
            rebuilt = type(explainer)(**{**params, "model": model})
            exp = rebuilt.explain(X, target=target) if runner is None else runner(rebuilt, X, target)
            return np.asarray(exp.values)

        return run
    return lambda model, X, target: np.asarray(explainer(model, X, target), dtype=np.float64)


def _explain(fn: Callable, model: Any, X: np.ndarray, target: np.ndarray, noise: np.ndarray | None,
             batch_size: int | None) -> np.ndarray:
    """Attributions of X (averaged over X + noise[k] when noise is given), in chunks of rows."""
    step = X.shape[0] if batch_size is None else int(batch_size)
    out = []
    for s in range(0, X.shape[0], step):
        xs, ts = X[s:s + step], target[s:s + step]
        if noise is None:
            out.append(fn(model, xs, ts))
        else:
            out.append(np.mean([fn(model, xs + nz[s:s + step], ts) for nz in noise], axis=0))
    return np.concatenate(out, axis=0).astype(np.float64)


# --------------------------------------------------------------------------- the check


def sanity_check(
    explainers: Any,
    model: Any,
    X: Any,
    *,
    target: Any = None,
    tests: Sequence[str] = TESTS,
    layers: Sequence[str] | None = None,
    X_train: Any = None,
    y_train: Any = None,
    train_params: dict | None = None,
    metrics: Sequence[str] | None = None,
    metric: str = "spearman_abs",
    threshold: float = 0.5,
    n_noise: int = 0,
    noise_level: float = 0.1,
    n_permutations: int = 999,
    batch_size: int | None = None,
    n_jobs: int = 1,
    random_state: Any = 0,
    backend: Any = "serial",
    n_workers: int | None = None,
) -> SanityCheckResult:
    """Model-parameter and data randomisation checks of explanations (Adebayo et al. 2018).

    Parameters
    ----------
    explainers : explainer, sequence of explainers, or dict name -> explainer
        Scrutiny explainers built on ``model`` (e.g. ``Saliency(net)``), rebuilt on every randomised
        model from their parameters; or callables ``f(model_adapter, X, target) -> attributions``.
    model : torch.nn.Module, scikit-learn estimator or their adapter
        The trained model (never changed).
    X : array-like of shape (n_samples, ...)
        Inputs explained (at least 2 rows for the permutation test).
    target : int or array-like, optional
        Classes explained; None: the trained model's predicted classes. Randomised models explain the same.
    tests : sequence of {"cascading", "independent", "data"}
    layers : sequence of str, optional
        Layers randomised (module names, e.g. ``["classifier", "fc", "conv.3", "conv.0"]``; scikit-learn
        MLPs: ``"layer0"``, ...); None: every layer with parameters.
    X_train, y_train : array-like
        Training data for the data test (labels permuted, then the copy retrained on them).
    train_params : dict, optional
        The training recipe of the data test (:func:`scrutiny.zoo.train_model` options for torch; estimator
        parameters for scikit-learn). Use the recipe the model was trained with, with enough epochs to
        memorise (``params["data_train_accuracy"]`` records how well it did).
    metrics : sequence of str, optional
        Similarity measures; default ``("spearman_abs", "spearman", "ssim", "hog")`` for images, the first two otherwise.
    metric : str, default="spearman_abs"
        The measure the pass/fail decision reads.
    threshold : float, default=0.5
        An explainer passes a test when ``(s - floor) / (ceiling - floor) < threshold``, with ``s`` the
        mean similarity of the test's last cascading stage (all layers randomised), the mean over layers
        of the independent test, or the data test; ``floor`` the mean similarity of a random attribution;
        ``ceiling`` the similarity of the explainer re-run on the original model with another seed (1 for
        deterministic explainers). So a stochastic explainer passes only if randomising the model changes
        its explanation well beyond its own seed-to-seed noise (the noise sensitivity behind sMPRT).
    n_noise, noise_level : int, float
        ``n_noise > 0`` gives the smoothed variant (sMPRT): explanations averaged over ``n_noise`` noisy
        copies of the inputs (Gaussian, std ``noise_level`` x each input's value range; one draw shared
        by every model) before they are compared.
    n_permutations : int, default=999
        Re-pairings of the permutation test.
    batch_size : int, optional
        Rows explained per call (never changes a result).
    n_jobs : int, default=1
        Stages explained in parallel threads (never changes a result).
    backend : str, dask.distributed.Client or Executor, default="serial"
        Where the explanations of X under the original and every randomised model run:
        ``"serial"`` (this process), ``"process"``, ``"dask"`` or a scheduler address, as in
        :func:`scrutiny.distributed.explain`; never changes a result. Each model travels to the
        workers as data (weights + architecture for zoo networks, TorchScript for other torch
        modules, skops for scikit-learn), and the stages are submitted concurrently (at least one
        per worker). Only scrutiny explainers run on workers: a callable ``f(model, X, target)``
        always runs in this process, and is refused with another backend.
    n_workers : int, optional
        Size of the process pool or local Dask cluster a ``"process"``/``"dask"`` backend starts.
    random_state : int, numpy.random.Generator or None, default=0
        The one source of randomness (an int gives the same result on every call).

    Returns
    -------
    SanityCheckResult

    References
    ----------
    .. [1] J. Adebayo, J. Gilmer, M. Muelly, I. Goodfellow, M. Hardt, B. Kim. "Sanity Checks for
       Saliency Maps." NeurIPS 2018.
    .. [2] A. Hedstroem, L. Weber, S. Lapuschkin, M. Hoehne. "Sanity Checks Revisited: An Exploration
       to Repair the Model Parameter Randomisation Test." XAI in Action workshop, NeurIPS 2023 (sMPRT).

    Examples
    --------
    >>> from scrutiny.attribution import Saliency
    >>> from scrutiny.zoo import reference_model
    >>> net, _ = reference_model("cnn", "digits")                                   # doctest: +SKIP
    >>> res = sanity_check(Saliency(net), net, X_test[:20], tests=("cascading",))   # doctest: +SKIP
    >>> res.verdicts()                                                             # doctest: +SKIP
    {'Saliency': {'cascading': True}}
    """
    validate_params("sanity_check", {"threshold": threshold, "n_noise": n_noise, "noise_level": noise_level,
                                     "n_permutations": n_permutations, "batch_size": batch_size, "n_jobs": n_jobs,
                                     "n_workers": n_workers, "random_state": random_state, "metric": metric}, _CONSTRAINTS, _HINTS)
    seed0 = _base_seed(random_state)
    if isinstance(tests, str) or not tests or any(t not in TESTS for t in tests) or len(set(tests)) != len(tests):
        raise InvalidParameterError(f"tests must be a non-empty subset of {TESTS}; got {tests!r}.")
    tests = [t for t in TESTS if t in tests]
    named = _named(explainers)
    _check_backend(named, backend)
    tgt = _target(model)
    X = np.asarray(tgt.adapter.check_input(check_array(X, "X", ndim=None)), dtype=np.float64)
    if X.shape[0] < 2:
        raise InvalidParameterError(f"X must hold at least 2 samples (the permutation test re-pairs them); got {X.shape[0]}.")
    image = X.ndim in (3, 4)
    metrics = list(metrics) if metrics is not None else (list(METRICS) if image else ["spearman_abs", "spearman"])
    for m in metrics:
        if m not in METRICS or (m in IMAGE_METRICS and not image):
            raise InvalidParameterError(
                f"metrics: {m!r} is not available for inputs of shape {X.shape[1:]}; choose from "
                f"{METRICS if image else ('spearman_abs', 'spearman')}."
            )
    if metric not in metrics:
        metrics = [metric] + metrics
    metrics = [metric] + [m for m in metrics if m != metric]  # the decision metric first

    all_layers = tgt.layers() if ("cascading" in tests or "independent" in tests) else []
    if layers is not None:
        unknown = [n for n in layers if n not in all_layers]
        if unknown:
            raise InvalidParameterError(f"layers: {unknown} are not layers with parameters; available: {all_layers}.")
        all_layers = [n for n in all_layers if n in set(layers)]
    stages: list[_Stage] = []
    if "cascading" in tests:
        top_down = all_layers[::-1]
        stages += [_Stage(f"cascading:{n}", tuple(top_down[:k + 1])) for k, n in enumerate(top_down)]
    if "independent" in tests:
        stages += [_Stage(f"independent:{n}", (n,)) for n in all_layers[::-1]]
    if "data" in tests:
        if X_train is None or y_train is None:
            raise InvalidParameterError("the 'data' test needs X_train and y_train (the model's training data).")
        stages.append(_Stage("data", ("*",)))

    rng = np.random.default_rng(np.random.SeedSequence([seed0, 1]))
    noise = None
    if n_noise > 0:
        span = (X.reshape(X.shape[0], -1).max(axis=1) - X.reshape(X.shape[0], -1).min(axis=1))
        scale = (noise_level * span).reshape((-1,) + (1,) * (X.ndim - 1))
        noise = rng.standard_normal((n_noise,) + X.shape) * scale[None]
    executor, owned, runner = _runner(backend, n_workers)
    try:
        return _check(named, tgt, X, target, tests, stages, all_layers, metrics, metric, threshold, noise, n_noise,
                      noise_level, n_permutations, batch_size, n_jobs, seed0, X_train, y_train, train_params,
                      executor, runner)
    finally:
        if owned:
            executor.close()


def _check(named, tgt, X, target, tests, stages, all_layers, metrics, metric, threshold, noise, n_noise, noise_level,
           n_permutations, batch_size, n_jobs, seed0, X_train, y_train, train_params, executor, runner):
    """The check proper, the explanations run by ``runner`` (None: in this process)."""
    fns = {name: _explain_fn(e, runner) for name, e in named.items()}
    data_acc = None
    if target is None:
        target = tgt.adapter.default_target(X)
    else:
        from .._validation import check_target

        target = check_target(target, X.shape[0], tgt.adapter.n_outputs)

    def models_of(stage: _Stage) -> Any:
        if stage.layers == ("*",):
            return None
        return tgt.randomised(stage.layers, seed0)

    n_e, n_st, n_m, n = len(named), len(stages), len(metrics), X.shape[0]
    seconds = np.zeros((n_e, n_st + 1))
    originals = []
    for i, fn in enumerate(fns.values()):
        t0 = time.perf_counter()
        originals.append(_explain(fn, tgt.adapter, X, target, noise, batch_size))
        seconds[i, 0] = time.perf_counter() - t0
    stage_models: list[Any] = [models_of(s) for s in stages]
    if "data" in tests:
        Xtr = np.asarray(check_array(X_train, "X_train", ndim=None), dtype=np.float64)
        ytr = np.asarray(y_train).astype(np.int64)
        if ytr.shape != (Xtr.shape[0],):
            raise InvalidParameterError(f"y_train must have one label per row of X_train ({Xtr.shape[0]}); got shape {ytr.shape}.")
        perm_labels = np.random.default_rng(np.random.SeedSequence([seed0, 2])).permutation(ytr)
        stage_models[-1], data_acc = tgt.retrained(Xtr, perm_labels, dict(train_params or {}), seed0)

    def run(k: int) -> list[tuple[np.ndarray, float]]:
        out = []
        for fn in fns.values():
            t0 = time.perf_counter()
            values = _explain(fn, stage_models[k], X, target, noise, batch_size)
            out.append((values, time.perf_counter() - t0))
        return out

    threads = max(int(n_jobs), 1 if executor is None else 2 * executor.n_workers)  # keep every worker busy
    if threads > 1 and n_st > 1:
        with ThreadPoolExecutor(max_workers=min(threads, n_st)) as pool:
            per_stage = list(pool.map(run, range(n_st)))
    else:
        per_stage = [run(k) for k in range(n_st)]

    perms = np.random.default_rng(np.random.SeedSequence([seed0, 3])).permuted(
        np.tile(np.arange(n), (int(n_permutations), 1)), axis=1)
    random_maps = np.random.default_rng(np.random.SeedSequence([seed0, 4])).standard_normal(X.shape)
    sim = np.zeros((n_e, n_st, n_m, n))
    pvals = np.ones((n_e, n_st, n_m))
    base = np.zeros((n_e, n_m, n))
    from .similarity import permutation_pvalue

    for i in range(n_e):
        for m, name in enumerate(metrics):
            base[i, m] = similarity(name, originals[i], random_maps)
        for k in range(n_st):
            values, secs = per_stage[k][i]
            seconds[i, k + 1] = secs
            for m, name in enumerate(metrics):
                mat = pairwise(name, originals[i], values)
                sim[i, k, m] = np.diag(mat)
                pvals[i, k, m] = permutation_pvalue(mat, perms)

    # the seed-to-seed ceiling: a stochastic explainer re-run on the *original* model with another
    # seed; randomised similarities near it say the explainer's own noise hides any change (1 for
    # deterministic explainers)
    ceiling = np.ones((n_e, n_m, n))
    for i, e in enumerate(named.values()):
        params = e.get_params(deep=False) if hasattr(e, "get_params") else {}
        if params.get("random_state") is not None:
            reseeded = type(e)(**{**params, "model": tgt.adapter, "random_state": _base_seed(params["random_state"]) + 1})
            again = _explain(_explain_fn(reseeded, runner), tgt.adapter, X, target, noise, batch_size)
            for m, name in enumerate(metrics):
                ceiling[i, m] = similarity(name, originals[i], again)

    passed = np.zeros((n_e, len(tests)), dtype=bool)
    normalised = {}
    for i, ename in enumerate(named):
        floor = float(np.mean(base[i, 0]))
        top = float(np.mean(ceiling[i, 0]))
        for t, test in enumerate(tests):
            idx = [k for k, s in enumerate(stages) if s.name.split(":")[0] == test]
            s_mean = float(np.mean(sim[i, idx[-1], 0])) if test == "cascading" else float(np.mean(sim[i, idx, 0]))
            # between the random floor (0) and the explainer's own seed-to-seed similarity (1); an explainer
            # whose re-run is no closer than the floor cannot pass (NaN compares False)
            score = (s_mean - floor) / (top - floor) if top > floor else float("nan")
            normalised[f"{ename}/{test}"] = score
            passed[i, t] = bool(score < threshold)
    params = {"threshold": float(threshold), "metric": metric, "layers": list(all_layers), "n_noise": int(n_noise),
              "noise_level": float(noise_level), "n_permutations": int(n_permutations), "random_state": seed0,
              "n_samples": int(n), "target": np.asarray(target), "data_train_accuracy": data_acc,
              "train_params": {k: v for k, v in (train_params or {}).items() if isinstance(v, (int, float, str, bool))},
              "normalised_similarity": normalised}
    return SanityCheckResult(explainers=list(named), stages=[s.name for s in stages], metrics=metrics, tests=tests,
                             similarity=sim, baseline=base, p_values=pvals, passed=passed, params=params,
                             extras={"seconds": seconds, "ceiling": ceiling})


def _check_backend(named: dict, backend: Any) -> None:
    if isinstance(backend, str) and backend == "serial" or backend is None:
        return
    for name, e in named.items():
        if not (hasattr(e, "explain") and hasattr(e, "get_params")):
            raise InvalidParameterError(
                f"sanity_check: explainers[{name!r}] is a callable f(model, X, target), which runs only in this "
                f"process, but backend={backend!r}; pass backend='serial', or a scrutiny explainer (e.g. "
                "Saliency(model)) to run on workers."
            )
        if isinstance(e.get_params(deep=False).get("random_state"), np.random.Generator):
            raise InvalidParameterError(
                f"sanity_check: explainers[{name!r}] has a Generator random_state, which the serial check advances "
                f"from one model to the next and backend={backend!r} cannot; give it an int random_state (the same "
                "result on every backend), or pass backend='serial'."
            )


def _runner(backend: Any, n_workers: int | None) -> tuple[Any, bool, Callable | None]:
    """(executor or None, whether it is ours to close, runner(explainer, X, target) or None)."""
    if isinstance(backend, str) and backend == "serial" or backend is None:
        return None, False, None
    from ..distributed import explain, make_executor

    executor, owned = make_executor(backend, n_workers)

    def run(explainer: Any, X: np.ndarray, target: np.ndarray) -> Any:
        try:
            return explain(explainer, X, target, backend=executor, chunk_size=max(1, X.shape[0]))
        except CapabilityError as exc:
            raise CapabilityError(
                f"sanity_check(backend={getattr(executor, 'name', backend)!r}): the model or a randomised copy of it "
                f"cannot be sent to the workers. {exc} Or run the check with backend='serial'."
            ) from exc

    return executor, owned, run


def _base_seed(random_state: Any) -> int:
    """An int seed: ``random_state`` itself, or one draw from the Generator (or fresh entropy for None)."""
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        return int(random_state)
    return int(check_random_state(random_state).integers(0, 2**63 - 1))
