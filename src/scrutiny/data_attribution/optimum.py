"""Bringing a torch model to a stationary point of its training objective (influence functions
assume one): :func:`fit_to_optimum`, L-BFGS then Newton on :class:`TrainingObjective`."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.linalg

from ..exceptions import ConvergenceWarning
from .objective import TrainingObjective

__all__ = ["fit_to_optimum"]


def fit_to_optimum(model: Any, loss: Any, X: Any, y: Any, *, params: Any = None, l2: float = 0.0,
                   sample_weight: Any = None, gtol: float = 1e-10, max_iter: int = 2000,
                   newton: bool | None = None, batch_size: int | None = None) -> dict[str, Any]:
    """Minimise the training objective over the selected parameters and write the optimum into ``model``.

    Runs scipy's L-BFGS in float64 from the current parameters, then (for up to 3000
    parameters, or when ``newton=True``) Newton steps with the explicit Hessian and a
    backtracking line search until ``||grad R|| <= gtol``. Newton stops if the Hessian is not
    positive definite (a saddle or a non-convex region): the L-BFGS point is kept. Use it to bring a model to the stationary point that influence
    functions assume (e.g. the last layer of a network, ``params="last"``).

    Parameters
    ----------
    model : torch.nn.Module or TorchModel
        Modified in place.
    loss, X, y, params, l2, sample_weight, batch_size
        As in :class:`TrainingObjective`.
    gtol : float, default 1e-10
        Target gradient norm.
    max_iter : int, default 2000
        L-BFGS iterations.
    newton : bool, optional
        Polish with Newton steps (default: when ``p <= 3000``).

    Warns
    -----
    ConvergenceWarning
        When L-BFGS stops at ``max_iter`` and the gradient norm is still above ``gtol``.

    Returns
    -------
    dict
        ``value``, ``grad_norm``, ``lbfgs_iterations``, ``newton_steps``,
        ``newton_positive_definite`` (False if Newton stopped at an indefinite Hessian), ``p``.
    """
    from scipy.optimize import minimize

    obj = TrainingObjective(model, loss, X, y, params=params, l2=l2, sample_weight=sample_weight,
                            batch_size=batch_size)
    use_newton = bool(newton) or (newton is None and obj.p <= 3000)
    # L-BFGS gets close (to 1e-6 per component when Newton finishes the job), Newton polishes
    res = minimize(obj.value_and_gradient, obj.theta.copy(), jac=True, method="L-BFGS-B",
                   options={"maxiter": int(max_iter), "gtol": max(gtol, 1e-6) if use_newton else gtol,
                            "ftol": 0.0, "maxcor": 30})
    theta = res.x
    val, g = obj.value_and_gradient(theta)
    steps, newton_ok = 0, use_newton
    while use_newton and np.linalg.norm(g) > gtol and steps < 50:
        H, _ = obj.hessian("auto", theta)
        try:  # Newton only where H is positive definite (a minimum, not a saddle)
            cho = scipy.linalg.cho_factor(H, lower=True, check_finite=False)
        except np.linalg.LinAlgError:
            newton_ok = False
            break
        step = -scipy.linalg.cho_solve(cho, g, check_finite=False)
        slope = float(g @ step)  # < 0: a descent direction
        t, accepted = 1.0, False
        while t > 1e-8:
            v_new, g_new = obj.value_and_gradient(theta + t * step)
            flat = abs(v_new - val) <= 1e-14 * max(1.0, abs(val))  # below float64 resolution
            if v_new <= val + 1e-4 * t * slope or (flat and np.linalg.norm(g_new) < np.linalg.norm(g)):
                accepted = True
                break
            t *= 0.5
        if not accepted:
            break
        theta, val, g = theta + t * step, v_new, g_new
        steps += 1
    obj.set_parameters(theta)
    grad_norm = float(np.linalg.norm(g))
    if res.nit >= int(max_iter) and grad_norm > gtol:
        warnings.warn(
            f"fit_to_optimum: L-BFGS stopped at its iteration limit (max_iter={int(max_iter)}) with a gradient "
            f"norm of {grad_norm:.3g} > gtol={gtol:g}, so the model is not at an optimum and influence "
            "estimates that assume one are biased. Increase max_iter, add l2, or restrict params='last'.",
            ConvergenceWarning, stacklevel=2,
        )
    return {"value": float(val), "grad_norm": float(np.linalg.norm(g)), "lbfgs_iterations": int(res.nit),
            "newton_steps": steps, "newton_positive_definite": bool(newton_ok), "p": obj.p}
