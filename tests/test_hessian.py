"""Hessian machinery: factorisation, block CG, LiSSA, HVPs and closed-form GLM Hessians."""

from __future__ import annotations

import numpy as np
import pytest

from scrutiny.data_attribution.hessian import (
    IndefiniteHessianError,
    LiSSADivergenceError,
    block_cg,
    factorize,
    lanczos_extremes,
    lissa,
    lissa_damping_from_reference,
    power_iteration,
)
from scrutiny.exceptions import ConvergenceWarning, InvalidParameterError


def _spd(p, cond=100.0, seed=0):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((p, p)))
    eig = np.geomspace(1.0, cond, p)
    return (Q * eig) @ Q.T, eig


# --------------------------------------------------------------------------- numpy level


def test_factorize_solves_and_reports_spectrum():
    H, eig = _spd(30)
    fact = factorize(H, damping=0.5)
    B = np.random.default_rng(1).standard_normal((30, 4))
    np.testing.assert_allclose(fact.solve(B), np.linalg.solve(H + 0.5 * np.eye(30), B), rtol=1e-10, atol=1e-12)
    assert fact.min_eigenvalue == pytest.approx(eig[0]) and fact.max_eigenvalue == pytest.approx(eig[-1])
    W = fact.whiten(B)
    np.testing.assert_allclose((W * W).sum(0), (B * np.linalg.solve(H + 0.5 * np.eye(30), B)).sum(0), rtol=1e-10)


def test_factorize_indefinite_suggests_damping():
    H, _ = _spd(10)
    H -= 2.0 * np.eye(10)  # smallest eigenvalue -1
    with pytest.raises(IndefiniteHessianError, match=r"smallest eigenvalue of H is -1.*damping>=1\.1"):
        factorize(H)
    fact = factorize(H, damping=1.1)
    assert fact.min_eigenvalue == pytest.approx(-1.0)


def test_block_cg_matches_direct_solve_with_many_rhs():
    H, _ = _spd(120, cond=1e3)
    B = np.random.default_rng(2).standard_normal((120, 25))
    B[:, 3] = 0.0  # a zero right-hand side
    B[:, 5] = B[:, 4]  # a duplicate one: the block must not break down
    X, info = block_cg(lambda V: H @ V, B, damping=0.1, rtol=1e-10)
    exact = np.linalg.solve(H + 0.1 * np.eye(120), B)
    assert np.linalg.norm(X - exact) / np.linalg.norm(exact) < 1e-8
    assert info["converged"] and info["residuals"].max() < 1e-9
    # a shared block Krylov space: far fewer iterations than single-vector CG's dimension bound
    assert info["iterations"] < 40
    # columns solved together equal columns solved alone (to the tolerance)
    x7, _ = block_cg(lambda V: H @ V, B[:, 7], damping=0.1, rtol=1e-10)
    np.testing.assert_allclose(x7, X[:, 7], rtol=1e-7, atol=1e-9)


def test_block_cg_detects_indefiniteness_and_nonconvergence():
    H, _ = _spd(20)
    H -= 3.0 * np.eye(20)
    with pytest.raises(IndefiniteHessianError, match="non-positive curvature.*damping"):
        block_cg(lambda V: H @ V, np.ones(20))
    H2, _ = _spd(200, cond=1e6)
    with pytest.warns(ConvergenceWarning, match="maxiter"):
        _, info = block_cg(lambda V: H2 @ V, np.ones(200), rtol=1e-12, maxiter=3)
    assert not info["converged"]


def _sample_problem(n=400, d=8, l2=0.05, seed=0):
    """H = (1/n) sum_i a_i a_i^T + l2 I, with per-sample Hessians for LiSSA."""
    A = np.random.default_rng(seed).standard_normal((n, d))
    H = A.T @ A / n + l2 * np.eye(d)

    def batch_matvec(V, idx):
        Ab = A[idx]
        return Ab.T @ (Ab @ V) / len(idx) + l2 * V

    return H, batch_matvec


def test_lissa_converges_to_the_damped_solution():
    H, bmv = _sample_problem()
    B = np.random.default_rng(3).standard_normal((8, 3))
    batches = [np.random.default_rng(s).choice(400, 100, replace=False) for s in range(5)]
    scale = 1.2 * max(power_iteration(lambda V, idx=idx: bmv(V, idx), 8) for idx in batches)
    X, info = lissa(bmv, B, 400, scale=scale, damping=0.2, depth=300, repeat=2, batch_size=100,
                    rng=np.random.default_rng(0))
    exact = np.linalg.solve(H + 0.2 * np.eye(8), B)
    err = np.linalg.norm(X - exact) / np.linalg.norm(exact)
    assert err < 0.05 and info["tail_average"] == 0.5
    # the classical estimate (last iterate) keeps the variance floor that tail averaging removes
    X0, _ = lissa(bmv, B, 400, scale=scale, damping=0.2, depth=300, repeat=2, batch_size=100,
                  rng=np.random.default_rng(0), tail_average=0.0)
    assert np.linalg.norm(X0 - exact) / np.linalg.norm(exact) > 2 * err
    # each column's estimate does not depend on the other columns (same sampled batches)
    x1, _ = lissa(bmv, B[:, 1], 400, scale=scale, damping=0.2, depth=300, repeat=2, batch_size=100,
                  rng=np.random.default_rng(0))
    np.testing.assert_allclose(x1, X[:, 1], rtol=1e-12)


def test_lissa_small_scale_is_reported_as_divergence():
    _, bmv = _sample_problem()
    with pytest.raises(LiSSADivergenceError, match=r"diverged.*increase scale"):
        lissa(bmv, np.ones(8), 400, scale=0.05, depth=500, batch_size=50, rng=np.random.default_rng(0))


def test_lanczos_extremes_bracket_the_spectrum():
    H, eig = _spd(200, cond=1e3)
    lo, hi = lanczos_extremes(lambda V: H @ V, 200, steps=60)
    assert hi == pytest.approx(eig[-1], rel=1e-8)
    assert eig[0] <= lo < 5 * eig[0]  # the smallest Ritz value bounds lambda_min from above
    lo_ind, _ = lanczos_extremes(lambda V: (H - 2.0 * np.eye(200)) @ V, 200, steps=60)
    assert lo_ind < 0  # proves indefiniteness


def test_power_iteration_and_damping_conversion():
    H, eig = _spd(15, cond=10.0)
    assert power_iteration(lambda V: H @ V, 15, n_iter=200) == pytest.approx(eig[-1], rel=1e-6)
    assert lissa_damping_from_reference(0.01, 25) == pytest.approx(0.25)


# --------------------------------------------------------------------------- torch objective


@pytest.fixture(scope="module")
def digits_small():
    from scrutiny.data import load_digits

    d = load_digits()
    return d.X[:300].reshape(300, -1), d.y[:300]


def test_closed_form_glm_hessian_equals_autograd(digits_small):
    import torch

    from scrutiny.data_attribution import TrainingObjective

    X, y = digits_small
    lin = torch.nn.Linear(64, 10).double()
    obj = TrainingObjective(lin, "cross_entropy", X, y, l2=1e-2)
    H_cf, how = obj.hessian("closed_form")
    assert how == "closed_form"
    H_ag, _ = obj.hessian("autograd")
    np.testing.assert_allclose(H_cf, H_ag, rtol=1e-9, atol=1e-12)
    # explicit multinomial formula: (1/n) sum (diag p - p p^T) (x) x~ x~^T + l2 I  (weights row-major, then bias)
    from scipy.special import softmax

    with torch.no_grad():
        P = softmax(X @ lin.weight.numpy().T + lin.bias.numpy(), axis=1)
    Xt = np.hstack([X, np.ones((300, 1))])
    A = P[:, :, None] * np.eye(10)[None] - P[:, :, None] * P[:, None, :]
    T = np.einsum("ijk,ia,ib->jakb", A, Xt, Xt).reshape(650, 650) / 300
    perm = np.concatenate([(np.arange(10)[:, None] * 65 + np.arange(64)).ravel(), np.arange(10) * 65 + 64])
    np.testing.assert_allclose(H_cf, T[np.ix_(perm, perm)] + 1e-2 * np.eye(650), rtol=1e-9, atol=1e-12)


def test_closed_form_last_layer_of_mlp_and_binary_logit(digits_small):
    import torch

    from scrutiny.data_attribution import TrainingObjective
    from scrutiny.zoo import make_model

    X, y = digits_small
    mlp = make_model("mlp", (64,), 10, hidden=(12,), activation="tanh").double()
    obj = TrainingObjective(mlp, "cross_entropy", X, y, params="last", l2=1e-3)
    H_cf, how = obj.hessian("auto")
    assert how == "closed_form" and obj.p == 12 * 10 + 10
    np.testing.assert_allclose(H_cf, obj.hessian("autograd")[0], rtol=1e-9, atol=1e-12)
    binary = torch.nn.Linear(64, 1).double()
    objb = TrainingObjective(binary, "cross_entropy", X, (y > 4).astype(np.int64), l2=0.0)
    H_b, how = objb.hessian("auto")
    assert how == "closed_form"
    np.testing.assert_allclose(H_b, objb.hessian("autograd")[0], rtol=1e-9, atol=1e-12)
    # an all-parameter selection of an MLP is not a GLM
    with pytest.raises(InvalidParameterError, match="closed_form"):
        TrainingObjective(mlp, "cross_entropy", X, y).hessian("closed_form")
    # last-layer inputs of new rows given as a numpy array equal those of the training rows
    F, Z = obj.last_layer_inputs()
    F2, Z2 = obj.last_layer_inputs(X[:7])
    np.testing.assert_allclose(F2, F[:7], rtol=1e-12)
    np.testing.assert_allclose(Z2, Z[:7], rtol=1e-12)
    with pytest.raises(InvalidParameterError, match="X:"):
        obj.last_layer_inputs(X[:3, :10])


def test_hvp_equals_independent_hessian_and_batch_hvp():
    import torch

    from scrutiny.data_attribution import TrainingObjective
    from scrutiny.zoo import make_model

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 4)), rng.integers(0, 3, 40)
    mlp = make_model("mlp", (4,), 3, hidden=(5,), activation="elu").double()
    obj = TrainingObjective(mlp, "cross_entropy", X, y, l2=0.1, batch_size=16)
    names = obj.names
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)

    def R(flat):
        parts = dict(zip(names, [t.reshape(s) for t, s in zip(flat.split(obj.numels), obj.shapes)]))
        out = torch.func.functional_call(mlp, parts, (Xt,))
        return torch.nn.functional.cross_entropy(out, yt) + 0.05 * (flat ** 2).sum()

    H = torch.autograd.functional.hessian(R, torch.as_tensor(obj.theta)).numpy()
    V = rng.standard_normal((obj.p, 7))
    np.testing.assert_allclose(obj.hvp(V), H @ V, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(obj.hvp(V[:, 0]), H @ V[:, 0], rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(obj.hessian("autograd")[0], H, rtol=1e-9, atol=1e-11)
    idx = np.array([3, 7, 11, 20])
    sub = TrainingObjective(mlp, "cross_entropy", X[idx], y[idx], l2=0.1)
    np.testing.assert_allclose(obj.batch_hvp(V, idx), sub.hvp(V), rtol=1e-9, atol=1e-11)
    # gradient and per-sample gradients
    g = torch.autograd.functional.jacobian(R, torch.as_tensor(obj.theta)).numpy()
    np.testing.assert_allclose(obj.gradient(), g, rtol=1e-9, atol=1e-12)
    G = obj.per_sample_grads()
    np.testing.assert_allclose(G.mean(0) + 0.1 * obj.theta, g, rtol=1e-9, atol=1e-12)


def test_fit_to_optimum_reaches_stationarity(digits_small):
    import torch

    from scrutiny.data_attribution import TrainingObjective, fit_to_optimum

    X, y = digits_small
    lin = torch.nn.Linear(64, 10).double()
    info = fit_to_optimum(lin, "cross_entropy", X, y, l2=1e-2)
    assert info["grad_norm"] < 1e-10
    assert np.linalg.norm(TrainingObjective(lin, "cross_entropy", X, y, l2=1e-2).gradient()) < 1e-10


def test_objective_input_errors(digits_small):
    import torch

    from scrutiny.data_attribution import TrainingObjective

    X, y = digits_small
    lin = torch.nn.Linear(64, 10).double()
    with pytest.raises(InvalidParameterError, match=r"y must have one entry per row of X \(300\)"):
        TrainingObjective(lin, "cross_entropy", X, y[:-1])
    with pytest.raises(InvalidParameterError, match="one loss per sample"):
        TrainingObjective(lin, lambda out, t: torch.nn.functional.cross_entropy(out, t), X, y)
    with pytest.raises(InvalidParameterError, match="loss must be"):
        TrainingObjective(lin, "hinge", X, y)
    with pytest.raises(InvalidParameterError, match="sample_weight"):
        TrainingObjective(lin, "cross_entropy", X, y, sample_weight=-np.ones(300))
