"""Solver strategies for :class:`~scrutiny.data_attribution.InfluenceFunctions`.

A solver applies ``(H + damping I)^{-1}`` to blocks of gradients. ``prepare(problem, damping)``
runs once in ``fit`` (forming and factorising ``H``, estimating its spectrum or the LiSSA
scale); ``solve(B)`` runs for every block of test (or training) gradients. ``problem`` is a
:class:`~scrutiny.data_attribution.TrainingObjective` (anything with ``n``, ``p``, ``hvp``,
``batch_hvp`` and ``hessian``). The numerics live in :mod:`scrutiny.data_attribution.hessian`.

References
----------
.. [1] Koh, P. W. & Liang, P. (2017). Understanding black-box predictions via influence
   functions. ICML.
.. [2] Agarwal, N., Bullins, B. & Hazan, E. (2017). Second-order stochastic optimization for
   machine learning in linear time. JMLR 18(116).
.. [3] Ji, H. & Li, Y. (2017). A breakdown-free block conjugate gradient method. BIT 57.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any, ClassVar

import numpy as np

from .._validation import Interval, Options, ParamsMixin, check_random_state
from ..exceptions import InvalidParameterError
from .hessian import (
    IndefiniteHessianError,
    _damping_advice,
    block_cg,
    factorize,
    lanczos_extremes,
    lissa,
    power_iteration,
)

__all__ = ["CGSolver", "ExactSolver", "LiSSASolver", "make_solver"]


class _Solver(ParamsMixin):
    """A way of applying ``(H + damping I)^{-1}``; stateless until :meth:`prepare`.

    The influence estimator calls ``prepare(problem, damping)`` once in ``fit`` (on a copy
    of the solver it was given) and ``solve(B)`` for every batch of test gradients. The
    constructor arguments are hyper-parameters (``get_params`` / ``set_params`` / ``repr``
    from :class:`~scrutiny._validation.ParamsMixin`), checked against ``_constraints`` in
    ``prepare``; state set by ``prepare`` ends in ``_``.
    """

    name = "base"

    def prepare(self, problem: Any, damping: float) -> dict[str, Any]:  # pragma: no cover
        raise NotImplementedError

    def solve(self, B: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:  # pragma: no cover
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """The constructor arguments (the same as :meth:`get_params`)."""
        return self.get_params()


class ExactSolver(_Solver):
    """Form ``H`` explicitly and factorise ``H + damping I`` once (Cholesky).

    Viable up to a few thousand parameters (``O(p^2)`` memory, ``O(p^3)`` time once);
    afterwards every test point costs two triangular solves. When the selected parameters
    lie in the chain of linear layers and elementwise activations that ends the network (all
    parameters of an MLP, or ``params="last"`` of any network) the Hessian is formed in closed
    form, layer by layer; otherwise from ``p`` Hessian-vector products.

    Parameters
    ----------
    hessian : {"auto", "closed_form", "autograd"}, default "auto"
        How the explicit Hessian is built (see ``TrainingObjective.hessian``).
    max_params : int, default 10000
        Refuse larger problems (use ``"cg"`` instead).
    """

    name = "exact"
    _constraints: ClassVar[dict[str, list]] = {"hessian": [Options("auto", "closed_form", "autograd")],
                                               "max_params": [Interval(int, 1, None)]}

    def __init__(self, hessian: str = "auto", max_params: int = 10000):
        self.hessian = hessian
        self.max_params = max_params

    def prepare(self, problem: Any, damping: float) -> dict[str, Any]:
        self._validate_params()
        if problem.p > self.max_params:
            raise InvalidParameterError(
                f"solver='exact' forms a {problem.p} x {problem.p} Hessian, above max_params={self.max_params}. "
                "Use solver='cg' (Hessian-vector products only), restrict params='last', or raise "
                "ExactSolver(max_params=...) if you have the memory."
            )
        H, how = problem.hessian(self.hessian)
        self.hessian_ = H
        self.factorization_ = factorize(H, damping)
        return {"hessian_method": how, "min_eigenvalue": self.factorization_.min_eigenvalue,
                "max_eigenvalue": self.factorization_.max_eigenvalue}

    def solve(self, B: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        X = self.factorization_.solve(B)
        return X, {}


class CGSolver(_Solver):
    """Block conjugate gradients on Hessian-vector products (all test points at once).

    Parameters
    ----------
    rtol : float, default 1e-6
        Relative residual per right-hand side.
    maxiter : int, default 1000
        Maximum block iterations.
    block_size : int, default 64
        Right-hand sides solved together (one HVP sweep per iteration serves the block).
    eigenvalues : bool, default True
        Estimate the extreme eigenvalues of ``H`` with ``lanczos_steps`` Lanczos iterations in
        ``prepare`` (:func:`lanczos_extremes`; the smallest is an upper bound), for the
        diagnostics and to refuse a provably indefinite ``H + damping I`` up front;
        indefiniteness is also caught during CG itself.
    lanczos_steps : int, default 60
    """

    name = "cg"
    _constraints: ClassVar[dict[str, list]] = {
        "rtol": [Interval(float, 0, None, closed="neither")], "maxiter": [Interval(int, 1, None)],
        "block_size": [Interval(int, 1, None)], "eigenvalues": ["boolean"],
        "lanczos_steps": [Interval(int, 2, None)]}

    def __init__(self, rtol: float = 1e-6, maxiter: int = 1000, block_size: int = 64, eigenvalues: bool = True,
                 lanczos_steps: int = 60):
        self.rtol = rtol
        self.maxiter = maxiter
        self.block_size = block_size
        self.eigenvalues = eigenvalues
        self.lanczos_steps = lanczos_steps

    def prepare(self, problem: Any, damping: float) -> dict[str, Any]:
        self._validate_params()
        self._problem, self._damping = problem, float(damping)
        out: dict[str, Any] = {}
        if self.eigenvalues:
            lo, hi = lanczos_extremes(problem.hvp, problem.p, steps=self.lanczos_steps)
            out.update(min_eigenvalue=lo, max_eigenvalue=hi)
            if lo + damping <= 0:
                raise IndefiniteHessianError(
                    f"The Hessian plus damping is not positive definite: Lanczos finds an eigenvalue of H at or "
                    f"below {lo:.3g} (largest {hi:.3g}) and damping={damping:g}. Influence functions "
                    f"need a strict minimum. Fix: pass damping>={_damping_advice(lo, damping):g}, restrict "
                    "params='last', or train the model closer to a minimum."
                )
        return out

    def solve(self, B: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        B2 = B[:, None] if B.ndim == 1 else B
        X = np.empty_like(B2)
        res = np.empty(B2.shape[1])
        its, mv = [], 0
        for start in range(0, B2.shape[1], self.block_size):
            sl = slice(start, start + self.block_size)
            X[:, sl], info = block_cg(self._problem.hvp, B2[:, sl], damping=self._damping, rtol=self.rtol,
                                      maxiter=self.maxiter)
            res[sl] = info["residuals"]
            its.append(info["iterations"])
            mv += info["matvecs"]
        return (X[:, 0] if B.ndim == 1 else X), {"residuals": res, "iterations": its, "matvecs": mv}


class LiSSASolver(_Solver):
    """LiSSA: a stochastic Neumann series on mini-batch Hessian-vector products.

    Parameters
    ----------
    scale : float or None, default None
        ``None`` estimates the largest curvature of the mini-batch Hessians (power iteration
        on ``n_scale_batches`` sampled batches, plus damping) and uses 1.2 times the largest.
        Too small a scale makes the recursion diverge (detected, with an error).
    depth : int, default 1000
        Recursion depth ``T``; the bias decays like ``(1 - lambda_min/scale)^T``.
    repeat : int, default 1
        Independent runs averaged.
    minibatch_size : int, default 64
        Training points per mini-batch HVP (the sampled mini-batch changes the estimate; it
        is not memory chunking). ``batch_size=`` is its deprecated former name.
    random_state : int, numpy Generator or None, default 0
        Seed of the mini-batch sampling (a fresh Generator per solve: same seed, same result).
    n_scale_batches : int, default 5
    tail_average : float in [0, 1), default 0.5
        Fraction of the final iterates averaged (see :func:`lissa`); 0 gives classical LiSSA.
    """

    name = "lissa"
    _constraints: ClassVar[dict[str, list]] = {
        "scale": [Interval(float, 0, None, closed="neither"), None], "depth": [Interval(int, 1, None)],
        "repeat": [Interval(int, 1, None)], "minibatch_size": [Interval(int, 1, None)],
        "random_state": ["random_state"], "n_scale_batches": [Interval(int, 1, None)],
        "tail_average": [Interval(float, 0, 1, closed="left")]}

    def __init__(self, scale: float | None = None, depth: int = 1000, repeat: int = 1, minibatch_size: int = 64,
                 random_state: Any = 0, n_scale_batches: int = 5, tail_average: float = 0.5, **deprecated: Any):
        if deprecated:
            unknown = sorted(set(deprecated) - {"batch_size"})
            if unknown:
                raise InvalidParameterError(
                    f"LiSSASolver got unexpected keyword argument(s) {unknown}; valid parameters are "
                    f"{', '.join(self._get_param_names())}.")
            warnings.warn("LiSSASolver(batch_size=...) is deprecated and will be removed in the next release; "
                          "use LiSSASolver(minibatch_size=...) (the sampled mini-batch changes the result; "
                          "batch_size means memory chunking everywhere else in scrutiny).",
                          DeprecationWarning, stacklevel=2)
            minibatch_size = deprecated["batch_size"]
        self.scale = scale
        self.depth = depth
        self.repeat = repeat
        self.minibatch_size = minibatch_size
        self.random_state = random_state
        self.n_scale_batches = n_scale_batches
        self.tail_average = tail_average

    def prepare(self, problem: Any, damping: float) -> dict[str, Any]:
        self._validate_params()
        self._problem, self._damping = problem, float(damping)
        if self.scale is None:
            rng = check_random_state(self.random_state)
            bs = min(self.minibatch_size, problem.n)
            lams = []
            for _ in range(self.n_scale_batches):
                idx = rng.choice(problem.n, size=bs, replace=False)
                lams.append(abs(power_iteration(lambda V, idx=idx: problem.batch_hvp(V, idx), problem.p, rng=rng)))
            self.scale_ = 1.2 * (max(lams) + max(damping, 0.0))
        else:
            self.scale_ = float(self.scale)
        return {"lissa_scale": self.scale_}

    def solve(self, B: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        rng = check_random_state(self.random_state)
        X, info = lissa(self._problem.batch_hvp, B, self._problem.n, scale=self.scale_, damping=self._damping,
                        depth=self.depth, repeat=self.repeat, minibatch_size=self.minibatch_size, rng=rng,
                        tail_average=self.tail_average)
        return X, info


_SOLVERS = {"exact": ExactSolver, "cg": CGSolver, "lissa": LiSSASolver}


def make_solver(solver: Any) -> _Solver:
    """Turn ``"exact"``, ``"cg"``, ``"lissa"`` or a solver object into a fresh solver object."""
    if isinstance(solver, _Solver):
        return copy.deepcopy(solver)
    if isinstance(solver, str) and solver in _SOLVERS:
        return _SOLVERS[solver]()
    raise InvalidParameterError(
        f"solver must be 'exact', 'cg', 'lissa' or a solver object (ExactSolver(...), CGSolver(...), "
        f"LiSSASolver(...)); got {solver!r}. Use 'exact' for up to ~10^4 parameters, 'cg' beyond."
    )
