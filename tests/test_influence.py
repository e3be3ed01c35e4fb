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
    with pytest.raises(CapabilityError, match="trainable"):
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


# --------------------------------------------------------------------------- protocol and contract


def _threads():
    import torch
    from threadpoolctl import threadpool_info

    return torch.get_num_threads(), sorted((p["user_api"], p["num_threads"]) for p in threadpool_info())


def test_old_call_forms_warn_and_give_the_new_forms_results(lr_problem, exact_if):
    p = lr_problem
    new = exact_if.attribute(p["Xte"][:4], p["yte"][:4]).scores
    with pytest.warns(DeprecationWarning, match=r"use InfluenceFunctions\(model, loss, \*\*params\)\.fit\(X_train, y_train\)"):
        old = InfluenceFunctions(p["model"], "cross_entropy", p["X"], p["y"], l2=L2)
    assert "X_train" not in old.get_params() and old.get_params() == InfluenceFunctions(p["model"], l2=L2).get_params()
    with pytest.warns(DeprecationWarning, match=r"fit\(\) without data is deprecated.*\.fit\(X_train, y_train\)") as rec:
        old.fit()
    assert rec[0].filename == __file__  # the warning points at the caller's line
    np.testing.assert_array_equal(old.attribute(p["Xte"][:4], p["yte"][:4]).scores, new)
    with pytest.warns(DeprecationWarning, match="deprecated"):
        kw = InfluenceFunctions(p["model"], "cross_entropy", X_train=p["X"], y_train=p["y"], l2=L2)
    with pytest.warns(DeprecationWarning, match="deprecated"):
        np.testing.assert_array_equal(kw.fit().attribute(p["Xte"][:4], p["yte"][:4]).scores, new)
    with pytest.raises(InvalidParameterError, match=r"unexpected keyword.*'X_tr'"):
        InfluenceFunctions(p["model"], "cross_entropy", X_tr=p["X"])
    with pytest.raises(InvalidParameterError, match="hyper-parameters as keywords"):
        InfluenceFunctions(p["model"], "cross_entropy", p["X"], p["y"], "exact")


def test_target_none_takes_the_loss_at_the_predicted_class(lr_problem, exact_if):
    p = lr_problem
    X = p["Xte"][:30]
    Z = np.hstack([X, np.ones((30, 1))]) @ p["theta"].T
    pred = Z.argmax(axis=1)
    assert (pred != p["yte"][:30]).any()  # some test points are misclassified: the two targets differ
    att = exact_if.attribute(X)
    np.testing.assert_array_equal(att.target, pred)
    np.testing.assert_array_equal(att.scores, exact_if.attribute(X, pred).scores)
    np.testing.assert_allclose(att.extras["test_loss"], _ce(p["theta"], X, pred), rtol=1e-10)
    wrong = pred != p["yte"][:30]
    assert not np.allclose(att.scores[wrong], exact_if.attribute(X, p["yte"][:30]).scores[wrong])
    np.testing.assert_allclose(exact_if.influence_up_loss(X[:3]), -N_TRAIN * att.scores[:3], rtol=1e-9, atol=1e-13)
    np.testing.assert_array_equal(exact_if.attribute(X[:3], 4).scores, exact_if.attribute(X[:3], np.full(3, 4)).scores)
    mse = InfluenceFunctions(p["model"], "mse", check_optimum="ignore", l2=L2).fit(p["X"], np.eye(10)[p["y"]])
    with pytest.raises(InvalidParameterError, match="target=None takes the loss at the predicted class.*pass target="):
        mse.attribute(X[:2])


def test_params_clone_repr_and_save_round_trip(lr_problem, exact_if, tmp_path, rng_guard):
    from sklearn.base import clone

    from scrutiny import load_result
    from scrutiny.explanation import DataAttribution

    p = lr_problem
    solver = LiSSASolver(depth=50, minibatch_size=50, random_state=3)
    inf = InfluenceFunctions(p["model"], "cross_entropy", l2=L2, damping=0.3, solver=solver)
    assert repr(inf) == ("InfluenceFunctions(Linear(in_features=64, out_features=10, bias=True), "
                         "solver=LiSSASolver(depth=50, minibatch_size=50, random_state=3), l2=0.01, damping=0.3)")
    assert repr(solver) == "LiSSASolver(depth=50, minibatch_size=50, random_state=3)"
    params = inf.get_params()
    assert inf.set_params(**params) is inf and inf.get_params() == params
    with pytest.raises(InvalidParameterError, match="has no parameter 'lamda'"):
        inf.set_params(lamda=1.0)
    with pytest.raises(InvalidParameterError, match="has no parameter 'batch_size'"):
        solver.set_params(batch_size=1)
    before = _threads()
    twin = clone(inf)
    assert twin is not inf and twin.solver is not solver and twin.get_params()["solver"].get_params() == solver.get_params()
    X, y = p["Xte"][:5], p["yte"][:5]
    a = inf.fit(p["X"], p["y"]).attribute(X, y)
    b = twin.fit(p["X"], p["y"]).attribute(X, y)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(inf.self_influence(np.arange(5)), twin.self_influence(np.arange(5)))
    assert not hasattr(solver, "scale_")  # the given solver object is never fitted in place
    assert _threads() == before
    back = load_result(a.save(tmp_path / "influence"))
    assert isinstance(back, DataAttribution)
    np.testing.assert_array_equal(back.scores, a.scores)
    np.testing.assert_array_equal(back.target, a.target)
    assert back.params == a.params and back.method == a.method
    # a parameter changed with set_params is validated at fit time
    with pytest.raises(InvalidParameterError, match="l2 must be a float in"):
        clone(inf).set_params(l2=-1.0).fit(p["X"], p["y"])


def test_lissa_batch_size_is_the_deprecated_name_of_minibatch_size(lr_problem):
    p = lr_problem
    with pytest.warns(DeprecationWarning, match=r"LiSSASolver\(minibatch_size=\.\.\.\)"):
        old = LiSSASolver(depth=40, batch_size=60, random_state=1)
    assert old.get_params()["minibatch_size"] == 60 and "batch_size" not in old.get_params()
    new = LiSSASolver(depth=40, minibatch_size=60, random_state=1)
    X, y = p["Xte"][:3], p["yte"][:3]
    kw = {"l2": L2, "damping": 0.3}
    a = InfluenceFunctions(p["model"], solver=old, **kw).fit(p["X"], p["y"]).attribute(X, y).scores
    b = InfluenceFunctions(p["model"], solver=new, **kw).fit(p["X"], p["y"]).attribute(X, y).scores
    np.testing.assert_array_equal(a, b)
    with pytest.raises(InvalidParameterError, match="unexpected keyword"):
        LiSSASolver(minibatch=3)


def test_predict_first_does_not_change_rows_per_call_or_results(lr_problem):
    """The rows per vectorised call come from the training samples, not from what the adapter saw last."""
    import torch

    from scrutiny.models import as_model

    p = lr_problem
    fresh, used = (as_model(p["model"], dtype=torch.float64) for _ in range(2))
    used.predict(p["Xte"][:3])
    used.predict(p["Xte"])
    X, y = p["Xte"][:6], p["yte"][:6]
    a = InfluenceFunctions(fresh, l2=L2).fit(p["X"], p["y"])
    b = InfluenceFunctions(used, l2=L2).fit(p["X"], p["y"])
    assert a.objective_.batch_size == b.objective_.batch_size == min(fresh.rows_per_call(64), 256)
    np.testing.assert_array_equal(a.attribute(X, y).scores, b.attribute(X, y).scores)
    np.testing.assert_array_equal(a.attribute(X).scores, b.attribute(X).scores)
    np.testing.assert_array_equal(a.self_influence(), b.self_influence())
    # batch_size is memory chunking only: a small one gives the same scores
    c = InfluenceFunctions(p["model"], l2=L2, batch_size=7).fit(p["X"], p["y"])
    assert c.objective_.batch_size == 7
    np.testing.assert_allclose(c.attribute(X, y).scores, a.attribute(X, y).scores, rtol=1e-9, atol=1e-15)


def test_mislabel_detection_result_saves_and_reloads(tmp_path):
    from scrutiny import load_result
    from scrutiny.data_attribution import MislabelDetectionResult, mislabel_detection_curve

    rng = np.random.default_rng(1)
    flipped = np.zeros(50, bool)
    flipped[rng.choice(50, 8, replace=False)] = True
    res = mislabel_detection_curve({"loss": flipped + rng.random(50)}, flipped, random_state=2, params={"seed": 2})
    back = load_result(res.save(tmp_path / "mislabel"))
    assert type(back) is MislabelDetectionResult
    np.testing.assert_array_equal(back.fractions_checked, res.fractions_checked)
    for name in ("found", "scores"):
        assert set(getattr(back, name)) == set(getattr(res, name)) == {"loss", "random"}
        for k in getattr(res, name):
            np.testing.assert_array_equal(getattr(back, name)[k], getattr(res, name)[k])
    assert back.auc == res.auc and back.n_flipped == 8 and back.n_train == 50 and back.params == {"seed": 2}
    np.testing.assert_array_equal(back.ranking("loss"), res.ranking("loss"))
    assert back.table() == res.table()
    with pytest.raises(InvalidParameterError, match=r"scores\['x'\] must have shape \(50,\)"):
        MislabelDetectionResult(res.fractions_checked, res.found, res.auc, {"x": np.ones(3)}, 8, 50)
