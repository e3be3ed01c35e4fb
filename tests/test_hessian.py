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


@pytest.mark.parametrize("cond", [1e2, 1e6])
def test_factorize_extreme_eigenvalues_match_the_full_spectrum(cond):
    """Cholesky + Lanczos (shift-and-invert for the smallest) give the extremes of eigvalsh."""
    H, eig = _spd(300, cond=cond, seed=3)
    for damping in (0.0, 0.5):
        fact = factorize(H, damping=damping)
        assert fact.eigenvalues is None
        assert fact.min_eigenvalue == pytest.approx(eig[0], rel=1e-6)
        assert fact.max_eigenvalue == pytest.approx(eig[-1], rel=1e-6)
    full = factorize(H, spectrum=True)
    np.testing.assert_allclose(full.eigenvalues, eig, rtol=1e-8)
    # numerically singular: refused although the Cholesky factorisation may succeed
    Q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((50, 50)))
    S = (Q * np.r_[1e-14, np.ones(49)]) @ Q.T
    with pytest.raises(IndefiniteHessianError, match="not positive definite"):
        factorize(S)


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
    X, info = lissa(bmv, B, 400, scale=scale, damping=0.2, depth=300, repeat=2, minibatch_size=100,
                    rng=np.random.default_rng(0))
    exact = np.linalg.solve(H + 0.2 * np.eye(8), B)
    err = np.linalg.norm(X - exact) / np.linalg.norm(exact)
    assert err < 0.05 and info["tail_average"] == 0.5
    # the classical estimate (last iterate) keeps the variance floor that tail averaging removes
    X0, _ = lissa(bmv, B, 400, scale=scale, damping=0.2, depth=300, repeat=2, minibatch_size=100,
                  rng=np.random.default_rng(0), tail_average=0.0)
    assert np.linalg.norm(X0 - exact) / np.linalg.norm(exact) > 2 * err
    # each column's estimate does not depend on the other columns (same sampled batches)
    x1, _ = lissa(bmv, B[:, 1], 400, scale=scale, damping=0.2, depth=300, repeat=2, minibatch_size=100,
                  rng=np.random.default_rng(0))
    np.testing.assert_allclose(x1, X[:, 1], rtol=1e-12)


def test_lissa_small_scale_is_reported_as_divergence():
    _, bmv = _sample_problem()
    with pytest.raises(LiSSADivergenceError, match=r"diverged.*increase scale"):
        lissa(bmv, np.ones(8), 400, scale=0.05, depth=500, minibatch_size=50, rng=np.random.default_rng(0))


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
    # convolution weights are not in the chain of linear layers that ends the network
    cnn = make_model("cnn", (1, 8, 8), 10).double()
    with pytest.raises(InvalidParameterError, match="closed_form"):
        TrainingObjective(cnn, "cross_entropy", X.reshape(-1, 1, 8, 8), y).hessian("closed_form")
    objc = TrainingObjective(cnn, "cross_entropy", X[:40].reshape(-1, 1, 8, 8), y[:40], params="last")
    assert objc.hessian("auto")[1] == "closed_form"


def _chain_models():
    import torch

    from scrutiny.zoo import make_model

    nn = torch.nn
    torch.manual_seed(0)
    seq = nn.Sequential(nn.Flatten(), nn.Linear(64, 9), nn.GELU(), nn.Dropout(0.3), nn.Linear(9, 6, bias=False),
                        nn.Linear(6, 5), nn.Softplus(), nn.Tanh(), nn.Linear(5, 3)).double()
    return {
        "tanh MLP, two hidden layers": (make_model("mlp", (64,), 10, hidden=(12, 7), activation="tanh"), "ce10", None),
        "relu MLP": (make_model("mlp", (64,), 10, hidden=(11,), activation="relu"), "ce10", None),
        "elu MLP, middle weight and first bias": (make_model("mlp", (64,), 10, hidden=(8, 6), activation="elu"),
                                                  "ce10", ["body.2.weight", "body.0.bias"]),
        "gelu/softplus/tanh chain, no-bias layer, mse": (seq, "mse3", None),
        "binary logit MLP": (make_model("mlp", (64,), 2, hidden=(6,), activation="tanh"), "bce", None),
    }


@pytest.mark.parametrize("case", list(_chain_models()))
def test_layerwise_chain_hessian_equals_autograd(digits_small, case):
    """The layer-by-layer closed form (GGN + the curvature terms of the activations + the cross terms
    between layers) equals the Hessian built column by column from autograd HVPs."""
    import torch

    from scrutiny.data_attribution import TrainingObjective

    X, y = digits_small
    X = X / 16.0
    model, target, params = _chain_models()[case]
    model = model.double()
    if target == "bce":  # one logit: keep the first output's row of the last layer
        last = model.classifier
        model.classifier = torch.nn.Linear(last.in_features, 1).double()
        yy = (y > 4).astype(np.int64)
    elif target == "mse3":
        yy = np.random.default_rng(0).standard_normal((len(y), 3))
    else:
        yy = y
    if params is None:
        names = [n for n, _ in model.named_parameters()]
        assert len(names) >= 4
    w = np.random.default_rng(1).uniform(0.0, 2.0, len(yy))
    obj = TrainingObjective(model, "mse" if target == "mse3" else "cross_entropy", X, yy, params=params, l2=3e-3,
                            sample_weight=w)
    H_cf, how = obj.hessian("closed_form")
    assert how == "closed_form"
    H_ag, _ = obj.hessian("autograd")
    np.testing.assert_allclose(H_cf, H_ag, rtol=1e-9, atol=1e-12 * np.abs(H_ag).max())
    # away from a minimum the cross and curvature terms matter: the Gauss-Newton part alone differs
    assert np.abs(H_ag).max() > 0


def test_chain_hessian_falls_back_when_the_forward_is_not_a_chain(digits_small):
    import torch

    from scrutiny.data_attribution import TrainingObjective

    X, y = digits_small
    nn = torch.nn

    class Functional(nn.Module):  # activation as a function, not a module: the chain cannot be seen
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(64, 5), nn.Linear(5, 10)

        def forward(self, x):
            return self.b(torch.tanh(self.a(x)))

    class Detached(Functional):  # values flow along the chain but gradients do not
        def __init__(self):
            super().__init__()
            self.act = nn.Tanh()

        def forward(self, x):
            return self.b(self.act(self.a(x)).detach() + 0.0 * self.a.weight.sum())

    class Reused(nn.Module):  # the last layer is also applied before it (outside the chain it ends)
        def __init__(self):
            super().__init__()
            self.a, self.act, self.b = nn.Linear(64, 10), nn.Tanh(), nn.Linear(10, 10)
            self.c = nn.Linear(10, 10)

        def forward(self, x):
            return self.b(2.0 * self.act(self.b(self.act(self.a(x)))))

    class Tied(Reused):  # the last layer's weight is also c's weight
        def __init__(self):
            super().__init__()
            self.c.weight = self.b.weight

        def forward(self, x):
            return self.b(2.0 * self.act(self.c(self.act(self.a(x)))))

    for cls in (Reused, Tied):
        torch.manual_seed(0)
        obj = TrainingObjective(cls().double(), "cross_entropy", X / 16, y, params=["b.weight", "b.bias"], l2=1e-3)
        H, how = obj.hessian("auto")
        assert how == "autograd"
        H_ag, _ = obj.hessian("autograd")
        np.testing.assert_allclose(H, H_ag)

    for cls in (Functional, Detached):
        torch.manual_seed(0)
        obj = TrainingObjective(cls().double(), "cross_entropy", X / 16, y, l2=1e-3)
        with pytest.raises(InvalidParameterError, match="closed_form"):
            obj.hessian("closed_form")
        H, how = obj.hessian("auto")
        assert how == "autograd" and H.shape == (obj.p, obj.p)
        objl = TrainingObjective(cls().double(), "cross_entropy", X / 16, y, params=["b.weight", "b.bias"])
        assert objl.hessian("auto")[1] == "closed_form"


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


def test_closed_form_hessian_is_exactly_symmetric(digits_small):
    from scrutiny.data_attribution import TrainingObjective
    from scrutiny.zoo import make_model

    X, y = digits_small
    obj = TrainingObjective(make_model("mlp", (64,), 10, hidden=(9,), activation="tanh").double(), "cross_entropy",
                            X / 16, y, l2=1e-3)
    H, how = obj.hessian("auto")
    assert how == "closed_form" and np.array_equal(H, H.T)
