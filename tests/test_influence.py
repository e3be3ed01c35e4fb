"""Influence functions: leave-one-out oracle, solver agreement, sign conventions, bad inputs.

The oracle is an independent numpy Newton solver for L2-regularised multinomial logistic
regression: the model is fitted to machine precision, then every removal is an actual refit of
``(1/n) sum_{j != i} L_j + (l2/2)||theta||^2`` warm-started from the optimum.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp, softmax

from scrutiny.data_attribution import (
    CGSolver,
    ExactSolver,
    IndefiniteHessianError,
    InfluenceFunctions,
    LiSSADivergenceError,
    LiSSASolver,
    NotAtOptimumError,
)
from scrutiny.exceptions import (
    CapabilityError,
    ConvergenceWarning,
    InvalidParameterError,
    NotFittedError,
)

L2 = 1e-2
N_TRAIN = 500


# --------------------------------------------------------------------------- numpy oracle


def _newton(X, Y, w, l2, theta0, tol=1e-13, max_iter=30):
    """Minimise (1/n) sum_i w_i CE(softmax(theta x~_i), y_i) + (l2/2)||theta||^2 (theta: (c, d+1))."""
    n, d = X.shape
    c = Y.shape[1]
    Xt = np.hstack([X, np.ones((n, 1))])
    FF = (Xt[:, :, None] * Xt[:, None, :]).reshape(n, -1)
    th = theta0.copy()
    for _ in range(max_iter):
        P = softmax(Xt @ th.T, axis=1)
        g = (w[:, None] * (P - Y)).T @ Xt / n + l2 * th
        if np.linalg.norm(g) < tol:
            break
        A = w[:, None, None] * (P[:, :, None] * np.eye(c)[None] - P[:, :, None] * P[:, None, :])
        H = (A.reshape(n, -1).T @ FF).reshape(c, c, d + 1, d + 1).transpose(0, 2, 1, 3).reshape(c * (d + 1), -1)
        H = H / n + l2 * np.eye(c * (d + 1))
        th = th - np.linalg.solve(H, g.ravel()).reshape(c, d + 1)
    return th


def _ce(th, X, y):
    Z = np.hstack([X, np.ones((len(X), 1))]) @ th.T
    return logsumexp(Z, axis=1) - Z[np.arange(len(y)), y]


def _linear(th):
    import torch

    lin = torch.nn.Linear(th.shape[1] - 1, th.shape[0]).double()
    with torch.no_grad():
        lin.weight.copy_(torch.as_tensor(th[:, :-1]))
        lin.bias.copy_(torch.as_tensor(th[:, -1]))
    return lin


@pytest.fixture(scope="module")
def lr_problem():
    from scrutiny.data import load_digits

    d = load_digits()
    X = d.X.reshape(len(d.X), -1)
    Xtr, ytr = X[:N_TRAIN], d.y[:N_TRAIN]
    Xte, yte = X[1500:1600], d.y[1500:1600]
    th = _newton(Xtr, np.eye(10)[ytr], np.ones(N_TRAIN), L2, np.zeros((10, 65)))
    return {"X": Xtr, "y": ytr, "Xte": Xte, "yte": yte, "theta": th, "model": _linear(th)}


@pytest.fixture(scope="module")
def exact_if(lr_problem):
    p = lr_problem
    return InfluenceFunctions(p["model"], "cross_entropy", l2=L2).fit(p["X"], p["y"])


# --------------------------------------------------------------------------- the oracle tests


def test_exact_influence_matches_leave_one_out_refits(lr_problem, exact_if):
    p = lr_problem
    losses = _ce(p["theta"], p["Xte"], p["yte"])
    t = int(np.argmax(losses))  # the worst-fitted test point has the largest influences
    xt, yt = p["Xte"][t:t + 1], p["yte"][t:t + 1]
    att = exact_if.attribute(xt, yt)
    s = att.scores[0]
    top = np.argsort(-np.abs(s))[:40]
    Y = np.eye(10)[p["y"]]
    actual = []
    for i in top:
        w = np.ones(N_TRAIN)
        w[i] = 0.0
        th_i = _newton(p["X"], Y, w, L2, p["theta"])
        actual.append(_ce(th_i, xt, yt)[0] - losses[t])
    actual = np.array(actual)
    r = np.corrcoef(s[top], actual)[0, 1]
    assert r >= 0.99, f"Pearson {r:.4f} between predicted and actual leave-one-out changes"
    # sign test: removing the most helpful point raises the test loss, the most harmful lowers it
    helpful, harmful = int(np.argmax(s)), int(np.argmin(s))
    assert s[helpful] > 0 > s[harmful]
    assert actual[list(top).index(helpful)] > 0 if helpful in top else True
    for i, sign in ((helpful, 1), (harmful, -1)):
        w = np.ones(N_TRAIN)
        w[i] = 0.0
        change = _ce(_newton(p["X"], Y, w, L2, p["theta"]), xt, yt)[0] - losses[t]
        assert np.sign(change) == sign
    assert att.proponents(1)[0, 0] == helpful and att.opponents(1)[0, 0] == harmful


def test_up_params_matches_refit_parameter_change(lr_problem, exact_if):
    p = lr_problem
    i = 17
    w = np.ones(N_TRAIN)
    w[i] = 0.0
    th_i = _newton(p["X"], np.eye(10)[p["y"]], w, L2, p["theta"])
    delta = th_i - p["theta"]  # (c, d+1): weights row-major then bias, as the flat order
    flat = np.concatenate([delta[:, :-1].ravel(), delta[:, -1]])
    pred = -exact_if.influence_up_params([i])[0] / N_TRAIN
    assert np.corrcoef(pred, flat)[0, 1] > 0.999
    assert np.linalg.norm(pred - flat) / np.linalg.norm(flat) < 0.1  # first order: 8% here


def test_pert_loss_matches_finite_difference_refit(lr_problem, exact_if):
    p = lr_problem
    xt, yt = p["Xte"][:1], p["yte"][:1]
    i = int(exact_if.attribute(xt, yt).top_k(1, "absolute")[0, 0])
    grad_x = exact_if.influence_pert_loss(xt, yt, [i])[0, 0]  # (64,)
    assert grad_x.shape == (64,)
    delta = 1e-3 * grad_x / np.linalg.norm(grad_x)
    X2 = p["X"].copy()
    X2[i] += delta
    th2 = _newton(X2, np.eye(10)[p["y"]], np.ones(N_TRAIN), L2, p["theta"])
    actual = _ce(th2, xt, yt)[0] - _ce(p["theta"], xt, yt)[0]
    predicted = grad_x @ delta / N_TRAIN
    assert actual > 0 and predicted == pytest.approx(actual, rel=0.02)


def test_conventions_self_influence_and_up_loss(lr_problem, exact_if):
    p = lr_problem
    att = exact_if.attribute(p["Xte"][:5], p["yte"][:5])
    H = exact_if.solver_.hessian_
    G = exact_if.train_grads_
    Gt = exact_if.objective_.per_sample_grads(p["Xte"][:5], p["yte"][:5])
    np.testing.assert_allclose(att.scores, Gt @ np.linalg.solve(H, G.T) / N_TRAIN, rtol=1e-8, atol=1e-14)
    np.testing.assert_allclose(exact_if.influence_up_loss(p["Xte"][:5], p["yte"][:5]), -N_TRAIN * att.scores)
    si = exact_if.self_influence()
    np.testing.assert_allclose(si, np.einsum("ij,ji->i", G, np.linalg.solve(H, G.T)) / N_TRAIN, rtol=1e-8)
    assert (si >= 0).all() and si.shape == (N_TRAIN,)
    assert att.scores.shape == (5, N_TRAIN) and list(att.target) == list(p["yte"][:5])
    assert att.extras["test_loss"].shape == (5,) and att.extras["stationarity_ratio"] < 1e-6
    assert exact_if.diagnostics_["hessian_method"] == "closed_form"
    # constant-zero pixels; Lanczos resolves the bottom cluster (next eigenvalue ~1.00001 L2) to 1e-4
    assert exact_if.diagnostics_["min_eigenvalue"] == pytest.approx(L2, rel=1e-4)
    # rows attributed together equal rows attributed one by one; JSON round trip
    one = exact_if.attribute(p["Xte"][3:4], p["yte"][3:4])
    np.testing.assert_allclose(one.scores[0], att.scores[3], rtol=1e-9, atol=1e-16)
    from scrutiny.explanation import DataAttribution

    back = DataAttribution.from_dict(att.to_dict())
    np.testing.assert_array_equal(back.scores, att.scores)


def test_cg_agrees_with_exact(lr_problem, exact_if):
    p = lr_problem
    cg = InfluenceFunctions(p["model"], "cross_entropy", l2=L2, solver=CGSolver(rtol=1e-8)).fit(p["X"], p["y"])
    X, y = p["Xte"][:20], p["yte"][:20]
    A = exact_if.attribute(X, y).scores
    att = cg.attribute(X, y)
    assert np.linalg.norm(att.scores - A) / np.linalg.norm(A) < 1e-6
    assert att.extras["solver_residual"].shape == (20,) and att.extras["solver_residual"].max() < 1e-7
    lo, hi = exact_if.diagnostics_["min_eigenvalue"], exact_if.diagnostics_["max_eigenvalue"]
    assert lo <= cg.diagnostics_["min_eigenvalue"] < 10 * lo  # Lanczos: an upper bound on lambda_min
    assert cg.diagnostics_["max_eigenvalue"] == pytest.approx(hi, rel=1e-6)
    np.testing.assert_allclose(cg.self_influence(np.arange(30)), exact_if.self_influence()[:30], rtol=1e-5)


def test_lissa_agrees_with_exact_and_detects_divergence(lr_problem, rng_guard):
    p = lr_problem
    X, y = p["Xte"][:10], p["yte"][:10]
    damping = 0.3  # keeps the recursion short: (1 - lambda_min/scale)^depth is negligible at depth 300
    ex = InfluenceFunctions(p["model"], "cross_entropy", l2=L2, damping=damping).fit(p["X"], p["y"])
    li = InfluenceFunctions(p["model"], "cross_entropy", l2=L2, damping=damping,
                            solver=LiSSASolver(depth=300, minibatch_size=100, random_state=0)).fit(p["X"], p["y"])
    A, B = ex.attribute(X, y).scores, li.attribute(X, y).scores
    err = np.linalg.norm(B - A) / np.linalg.norm(A)
    assert err < 0.05, f"LiSSA relative error {err:.3f}"
    assert np.corrcoef(A.ravel(), B.ravel())[0, 1] > 0.998
    assert li.diagnostics_["lissa_scale"] > ex.diagnostics_["max_eigenvalue"]  # auto scale covers the batches
    np.testing.assert_array_equal(li.attribute(X, y).scores, B)  # same seed, same result
    bad = InfluenceFunctions(p["model"], "cross_entropy", l2=L2,
                             solver=LiSSASolver(scale=0.05, depth=200)).fit(p["X"], p["y"])
    with pytest.raises(LiSSADivergenceError, match=r"scale=0\.05 is below the curvature.*increase scale"):
        bad.attribute(X, y)


def test_last_layer_restriction_uses_closed_form(lr_problem):
    import torch

    from scrutiny.data_attribution import fit_to_optimum
    from scrutiny.zoo import make_model

    p = lr_problem
    mlp = make_model("mlp", (64,), 10, hidden=(16,), activation="tanh").double()
    fit_to_optimum(mlp, "cross_entropy", p["X"], p["y"], params="last", l2=L2)
    kw = {"l2": L2, "params": "last"}
    a = InfluenceFunctions(mlp, "cross_entropy", **kw).fit(p["X"], p["y"])
    b = InfluenceFunctions(mlp, "cross_entropy", solver=ExactSolver(hessian="autograd"), **kw).fit(p["X"], p["y"])
    assert a.diagnostics_["hessian_method"] == "closed_form" and b.diagnostics_["hessian_method"] == "autograd"
    assert a.objective_.names == ["classifier.weight", "classifier.bias"]
    np.testing.assert_allclose(a.attribute(p["Xte"][:3], p["yte"][:3]).scores,
                               b.attribute(p["Xte"][:3], p["yte"][:3]).scores, rtol=1e-7, atol=1e-14)
    assert isinstance(mlp, torch.nn.Module)


# --------------------------------------------------------------------------- bad input


def test_not_at_optimum_is_refused_or_warned(lr_problem):
    p = lr_problem
    far = _linear(p["theta"] * 0.5)
    with pytest.raises(NotAtOptimumError, match=r"not at an optimum.*stationarity_ratio=.*fit_to_optimum"):
        InfluenceFunctions(far, "cross_entropy", l2=L2).fit(p["X"], p["y"])
    with pytest.warns(ConvergenceWarning, match="not at an optimum"):
        inf = InfluenceFunctions(far, "cross_entropy", l2=L2, check_optimum="warn").fit(p["X"], p["y"])
    assert inf.stationarity_ratio_ > 1
    # a wrong l2 is the same mistake: the model is not at the optimum of the stated objective
    with pytest.raises(NotAtOptimumError):
        InfluenceFunctions(p["model"], "cross_entropy", l2=0.1).fit(p["X"], p["y"])


def test_indefinite_hessian_is_reported_with_damping_advice():
    import torch

    # a stationary point (theta = 0, zero gradient) of an objective with negative curvature
    def saddle(out, t):
        return 0.5 * out[:, 1] ** 2 - 0.5 * out[:, 0] ** 2

    X = np.random.default_rng(0).standard_normal((50, 3))
    y = np.zeros(50, dtype=np.int64)
    lin = torch.nn.Linear(3, 2, bias=False).double()
    with torch.no_grad():
        lin.weight.zero_()
    with pytest.raises(IndefiniteHessianError, match=r"not positive definite.*pass damping>="):
        InfluenceFunctions(lin, saddle).fit(X, y)
    with pytest.raises(IndefiniteHessianError, match="damping"):
        InfluenceFunctions(lin, saddle, solver="cg").fit(X, y)
    lam = InfluenceFunctions(lin, saddle, check_optimum="ignore", damping=5.0).fit(X, y).diagnostics_
    assert lam["min_eigenvalue"] < 0


def test_bad_inputs_are_reported(lr_problem, exact_if):
    from sklearn.linear_model import LogisticRegression

    p = lr_problem
    m = p["model"]
    with pytest.raises(InvalidParameterError, match=r"y_train must have one entry per row of X_train \(500\)"):
        InfluenceFunctions(m, "cross_entropy", l2=L2).fit(p["X"], p["y"][:-3])
    with pytest.raises(InvalidParameterError, match=r"^X: .*per-sample shape \(64,\)"):
        exact_if.attribute(p["Xte"][:2, :10], p["yte"][:2])
    with pytest.raises(InvalidParameterError, match=r"target must have one entry per row of X"):
        exact_if.attribute(p["Xte"][:2], p["yte"][:3])
    with pytest.raises(InvalidParameterError, match="damping must be a float in"):
        InfluenceFunctions(m, "cross_entropy", damping=-1.0).fit(p["X"], p["y"])
    with pytest.raises(InvalidParameterError, match="solver must be 'exact', 'cg', 'lissa'"):
        InfluenceFunctions(m, "cross_entropy", solver="newton").fit(p["X"], p["y"])
    with pytest.raises(InvalidParameterError, match=r"X_train and y_train are required.*\.fit\(X_train, y_train\)"):
        InfluenceFunctions(m, "cross_entropy").fit()
    with pytest.raises(NotFittedError, match="fit"):
        InfluenceFunctions(m, "cross_entropy").attribute(p["Xte"][:1], p["yte"][:1])
    with pytest.raises(InvalidParameterError, match="train_indices"):
        exact_if.influence_up_params([N_TRAIN + 5])
    sk = LogisticRegression().fit(p["X"], p["y"])
    with pytest.raises(CapabilityError, match="per_sample_grads"):
        InfluenceFunctions(sk, "cross_entropy").fit(p["X"], p["y"])
    with pytest.raises(InvalidParameterError, match="max_params"):
        InfluenceFunctions(m, "cross_entropy", l2=L2, solver=ExactSolver(max_params=100)).fit(p["X"], p["y"])


def test_mislabel_detection_ranks_flips_first():
    from scrutiny.data import load_digits
    from scrutiny.data_attribution import detect_mislabeled, mislabel_detection_curve

    d = load_digits()
    X, y = d.X.reshape(len(d.X), -1)[:400], d.y[:400].copy()
    rng = np.random.default_rng(0)
    flipped = rng.choice(400, 40, replace=False)
    y_noisy = y.copy()
    y_noisy[flipped] = (y[flipped] + rng.integers(1, 10, 40)) % 10
    is_flipped = np.zeros(400, bool)
    is_flipped[flipped] = True
    th = _newton(X, np.eye(10)[y_noisy], np.ones(400), L2, np.zeros((10, 65)))
    res = detect_mislabeled(_linear(th), X, y_noisy, is_flipped, l2=L2, random_state=0)
    assert set(res.found) == {"self_influence", "representer", "loss", "random"}
    at20 = {m: res.found[m][list(np.round(res.fractions_checked, 2)).index(0.2)] for m in res.found}
    for m in ("self_influence", "representer", "loss"):
        assert at20[m] > 0.6 and res.auc[m] > 0.8, (m, at20[m], res.auc[m])
    assert res.auc["random"] < 0.65 and res.found["self_influence"][-1] == 1.0
    assert "AUC" in res.table() and res.to_dict()["n_flipped"] == 40
    with pytest.raises(InvalidParameterError, match="one value per training point"):
        mislabel_detection_curve({"a": np.ones(3)}, is_flipped)


def test_float32_zoo_model_last_layer_after_fit_to_optimum(lr_problem):
    from scrutiny.data import load_digits
    from scrutiny.data_attribution import fit_to_optimum
    from scrutiny.zoo import make_model, train_model

    d = load_digits()
    X, y = d.X[:400], d.y[:400]
    model = make_model("mlp", (1, 8, 8), 10, hidden=(16,), activation="tanh")  # float32
    train_model(model, X, y, epochs=2, lr=3e-3, random_state=0)
    with pytest.raises(NotAtOptimumError):
        InfluenceFunctions(model, "cross_entropy", params="last", l2=L2).fit(X, y)
    info = fit_to_optimum(model, "cross_entropy", X, y, params="last", l2=L2)
    assert info["grad_norm"] < 1e-9 and next(model.parameters()).dtype.is_floating_point
    inf = InfluenceFunctions(model, "cross_entropy", params="last", l2=L2).fit(X, y)
    assert inf.stationarity_ratio_ < 1e-3  # float32 rounding of the written-back optimum only
    att = inf.attribute(d.X[1500:1503], d.y[1500:1503])
    assert att.scores.shape == (3, 400) and np.isfinite(att.scores).all()


@pytest.mark.slow
def test_leave_one_out_on_the_full_digits_split():
    """Full 1347-point digits split, 3 worst test points, top 50 by |influence|: Pearson >= 0.999."""
    from scrutiny.data import load_digits, train_test_split

    tr, te = train_test_split(load_digits(), test_size=0.25, random_state=0, stratify=True)
    X, y = tr.X.reshape(len(tr.y), -1), tr.y
    Xte, yte = te.X.reshape(len(te.y), -1), te.y
    n = len(y)
    Y = np.eye(10)[y]
    th = _newton(X, Y, np.ones(n), L2, np.zeros((10, 65)))
    inf = InfluenceFunctions(_linear(th), "cross_entropy", l2=L2).fit(X, y)
    losses = _ce(th, Xte, yte)
    for t in np.argsort(-losses)[:3]:
        s = inf.attribute(Xte[t:t + 1], yte[t:t + 1]).scores[0]
        top = np.argsort(-np.abs(s))[:50]
        actual = []
        for i in top:
            w = np.ones(n)
            w[i] = 0.0
            actual.append(_ce(_newton(X, Y, w, L2, th), Xte[t:t + 1], yte[t:t + 1])[0] - losses[t])
        assert np.corrcoef(s[top], actual)[0, 1] >= 0.999
