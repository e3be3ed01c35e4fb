"""NNK: exact kNN, the non-negative QP solvers, the estimator, the NNK graph and the DeepNNK diagnostics."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
from scipy.optimize import nnls

from scrutiny.nnk import CONVENTION, NNK, _nnls, nnk_graph
from scrutiny.nnk._knn import knn_search
from scrutiny.exceptions import (
    InvalidParameterError,
    MissingDependencyError,
    NotFittedError,
)

# --------------------------------------------------------------------------- helpers


def cosine_problems(rng, n, k, d, duplicates=False):
    """Batches of NNK problems built like the estimator does (normalised cosine kernel)."""
    F = rng.normal(size=(n, k + 1, d))
    if duplicates:  # candidates 1, 3 and 8 (column 0 is the query)
        F[:, 4] = F[:, 2]
        F[:, 9] = 3.0 * F[:, 2]  # same direction: a duplicate under the cosine kernel
    F /= np.linalg.norm(F, axis=2, keepdims=True)
    G = 0.5 + 0.5 * np.einsum("nkd,njd->nkj", F, F)
    G[:, np.arange(k + 1), np.arange(k + 1)] = 1.0
    return G[:, 1:, 1:].copy(), G[:, 0, 1:].copy()


def scipy_nnk(K, b):
    """Reference: min 1/2 t'Kt - b't  <=>  min ||L't - L^{-1} b||^2 with K = L L' (Cholesky).

    A rank-deficient K (cosine kernel with k > n_features + 1, duplicates) has no Cholesky
    factor; then K = A'A with A = diag(sqrt(w)) V' over its positive eigenvalues, and b lies
    in the range of K (b = Phi' phi(q)), so A' y = b with y = diag(1/sqrt(w)) V' b.
    """
    try:
        L = np.linalg.cholesky(K)
        A, y = L.T, np.linalg.solve(L, b)
    except np.linalg.LinAlgError:
        w, V = np.linalg.eigh(K)
        keep = w > 1e-12 * w.max()
        A = np.sqrt(w[keep])[:, None] * V[:, keep].T
        y = (V[:, keep].T @ b) / np.sqrt(w[keep])
    theta, _ = nnls(A, y, maxiter=50 * len(b))
    return theta


def brute_knn(Q, X, k, metric, exclude=None):
    S = Q @ X.T if metric == "ip" else ((Q[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    key = -S if metric == "ip" else S.copy()
    if exclude is not None:
        key[np.arange(len(Q)), exclude] = np.inf
    idx = np.argsort(key, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(S, idx, 1), idx


# --------------------------------------------------------------------------- kNN


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_knn_exact_with_self_exclusion_and_duplicates(metric, backend):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 6))
    X[10] = X[3]
    X[11] = X[3]  # two duplicates of row 3
    if metric == "ip":
        X /= np.linalg.norm(X, axis=1, keepdims=True)
    s, i = knn_search(X, X, 7, metric=metric, exclude=np.arange(400), backend=backend, block_size=64)
    s_ref, i_ref = brute_knn(X, X, 7, metric, exclude=np.arange(400))
    np.testing.assert_array_equal(i, i_ref)
    np.testing.assert_allclose(s, s_ref, atol=1e-12)
    assert not (i == np.arange(400)[:, None]).any(), "a point must never be its own neighbour"
    # the duplicates of row 3 are other points: they come first (ties broken by index)
    assert list(i[3, :2]) == [10, 11] and list(i[10, :2]) == [3, 11]


def test_knn_near_ties_fall_back_to_float64():
    # candidates that float32 cannot order: the exactness check recomputes the rows in float64
    rng = np.random.default_rng(1)
    base = rng.normal(size=(1, 5))
    X = base + 1e-9 * rng.normal(size=(300, 5))
    Q = base + 1e-9 * rng.normal(size=(4, 5))
    s, i = knn_search(Q, X, 3, metric="l2", backend="numpy")
    s_ref, i_ref = brute_knn(Q, X, 3, "l2")
    np.testing.assert_array_equal(i, i_ref)
    np.testing.assert_allclose(s, s_ref, rtol=1e-6)


def test_knn_faiss_backend_is_optional(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # makes "import faiss" fail
    X = np.random.default_rng(0).normal(size=(50, 3))
    with pytest.raises(MissingDependencyError, match="faiss-cpu"):
        knn_search(X, X, 3, backend="faiss")
    _, i = knn_search(X, X, 3, backend="auto")  # silently uses the built-in search
    assert i.shape == (50, 3)


def test_knn_faiss_path_gives_the_same_lists(monkeypatch):
    """A stand-in faiss module (numpy inside) exercises the faiss code path."""

    class _Flat:
        def __init__(self, d, ip):
            self.ip, self.X = ip, None

        def add(self, X):
            self.X = np.asarray(X, dtype=np.float32)

        def search(self, Q, kk):
            S = Q @ self.X.T
            key = -S if self.ip else (Q * Q).sum(1)[:, None] + (self.X * self.X).sum(1)[None] - 2 * S
            idx = np.argsort(key, axis=1, kind="stable")[:, :kk]
            vals = np.take_along_axis(S if self.ip else key, idx, 1)
            return vals.astype(np.float32), idx.astype(np.int64)

    fake = types.SimpleNamespace(IndexFlatIP=lambda d: _Flat(d, True), IndexFlatL2=lambda d: _Flat(d, False))
    monkeypatch.setitem(sys.modules, "faiss", fake)
    rng = np.random.default_rng(2)
    X = rng.normal(size=(300, 8))
    X[7] = X[1]
    for metric in ("ip", "l2"):
        _, i = knn_search(X, X, 5, metric=metric, exclude=np.arange(300), backend="faiss")
        _, i_ref = brute_knn(X, X, 5, metric, exclude=np.arange(300))
        np.testing.assert_array_equal(i, i_ref)


# --------------------------------------------------------------------------- QP solvers


@pytest.mark.parametrize("k,d", [(50, 64), (30, 8), (12, 3)])
def test_active_set_matches_scipy_nnls_and_satisfies_kkt(k, d):
    rng = np.random.default_rng(k + d)
    K, b = cosine_problems(rng, 40, k, d)
    K += 1e-6 * np.eye(k)  # full rank even when k > d + 1, so the Cholesky reference exists
    res = _nnls.active_set(K, b)
    assert res.converged.all()
    for i in range(len(b)):
        ref = scipy_nnk(K[i], b[i])
        np.testing.assert_allclose(res.theta[i], ref, atol=1e-8)
        assert _nnls.objective(K[i:i + 1], b[i:i + 1], res.theta[i:i + 1])[0] <= (
            _nnls.objective(K[i:i + 1], b[i:i + 1], ref[None])[0] + 1e-12)
    # KKT: theta >= 0, gradient >= 0, complementarity
    g = np.einsum("nij,nj->ni", K, res.theta) - b
    assert (res.theta >= 0).all()
    assert (g >= -1e-9).all()
    assert np.abs(g[res.theta > 0]).max() < 1e-9
    assert res.kkt.max() < 1e-9
    assert (res.theta > 0).sum(1).mean() < k / 2  # sparse polytopes


def test_active_set_on_rank_deficient_kernels():
    # cosine kernel of d=3 features has rank <= 4 < k: the solver must still reach the optimum
    rng = np.random.default_rng(5)
    K, b = cosine_problems(rng, 30, 20, 3)
    res = _nnls.active_set(K, b)
    assert res.converged.all() and res.kkt.max() < 1e-9
    fis = _nnls.fista(K, b, tol=1e-10, max_iter=20000)
    np.testing.assert_allclose(_nnls.objective(K, b, res.theta), _nnls.objective(K, b, fis.theta), atol=1e-9)
    # the optimum is not unique here: the active set returns a vertex (at most rank K = 4 neighbours)
    assert (res.theta > 0).sum(axis=1).max() <= 4
    pol = _nnls.fista_polish(K, b)
    assert pol.converged.all() and pol.kkt.max() < 1e-9
    np.testing.assert_allclose(_nnls.objective(K, b, pol.theta), _nnls.objective(K, b, res.theta), atol=1e-12)


def test_lipschitz_bound_is_a_valid_step():
    rng = np.random.default_rng(3)
    F = rng.normal(size=(20, 1, 16)) + 0.6 * rng.normal(size=(20, 50, 16))  # 50 neighbours of one point
    F /= np.linalg.norm(F, axis=2, keepdims=True)
    K = 0.5 + 0.5 * np.einsum("nkd,njd->nkj", F, F)
    lam = np.linalg.eigvalsh(K)[:, -1]
    L = _nnls.lipschitz_bound(K)
    assert (L >= lam * (1 - 1e-12)).all()  # never a step above 1/lambda_max
    assert (L <= lam * 1.02).all()  # and tight
    assert lam.min() > 2 / 0.05  # why the public fixed step 0.05 cannot converge at k=50


def test_fista_reaches_the_exact_objective():
    rng = np.random.default_rng(4)
    K, b = cosine_problems(rng, 60, 50, 32)
    exact = _nnls.active_set(K, b)
    fis = _nnls.fista(K, b, tol=1e-9, max_iter=5000)
    assert fis.converged.all()
    gap = _nnls.objective(K, b, fis.theta) - _nnls.objective(K, b, exact.theta)
    assert np.abs(gap).max() < 1e-10
    # a few iterations + the polish give the exact solution
    rough = _nnls.fista(K, b, tol=1e-3, max_iter=40)
    polished = _nnls.active_set(K, b, theta0=rough.theta)
    np.testing.assert_allclose(polished.theta, exact.theta, atol=1e-10)
    assert polished.converged.all()


def test_duplicate_candidates_share_weight():
    rng = np.random.default_rng(6)
    K, b = cosine_problems(rng, 25, 15, 10, duplicates=True)
    rep = _nnls.duplicate_groups(K)
    assert (rep[:, [3, 8]] == 1).all()
    allowed = rep == np.arange(15)
    res = _nnls.active_set(K, b, allowed=allowed)
    theta = _nnls.split_duplicates(res.theta, rep)
    assert (theta[:, 1] > 0).sum() > 5
    np.testing.assert_allclose(theta[:, 1], theta[:, 3])
    np.testing.assert_allclose(theta[:, 1], theta[:, 8])
    # same optimum as scipy on the de-duplicated problem
    keep = [j for j in range(15) if j not in (3, 8)]
    for i in range(len(b)):
        ref = scipy_nnk(K[i][np.ix_(keep, keep)], b[i][keep])
        np.testing.assert_allclose(_nnls.objective(K[i:i + 1], b[i:i + 1], theta[i:i + 1])[0],
                                   0.5 * ref @ K[i][np.ix_(keep, keep)] @ ref - b[i][keep] @ ref, atol=1e-12)
    assert _nnls.kkt_residual(K, b, theta).max() < 1e-9


# --------------------------------------------------------------------------- estimator


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=3.0, size=(3, 5))
    y = np.repeat(np.arange(3), 60)
    X = centers[y] + rng.normal(size=(180, 5))
    return X, y


@pytest.mark.parametrize("kernel", ["cosine", "gaussian"])
@pytest.mark.parametrize("solver", ["exact", "fista"])
def test_training_point_interpolates_its_own_label(blobs, kernel, solver):
    X, y = blobs
    nnk = NNK(k=15, kernel=kernel, solver=solver).fit(X, y)
    P = nnk.predict_proba(X[:20])
    np.testing.assert_allclose(P, np.eye(3)[y[:20]], atol=1e-12)
    att = nnk.attribute(X[:20])
    np.testing.assert_allclose(att.scores[np.arange(20), np.arange(20)], 1.0, atol=1e-12)
    assert np.abs(att.scores).sum(1).max() < 1 + 1e-9 and att.extras["residual"].max() < 1e-12


@pytest.mark.parametrize("kernel", ["cosine", "gaussian"])
def test_estimator_matches_scipy_per_query(blobs, kernel):
    X, y = blobs
    rng = np.random.default_rng(1)
    Q = X[:10] + 0.7 * rng.normal(size=(10, 5))
    nnk = NNK(k=20, kernel=kernel).fit(X, y)
    sol = nnk.solve(Q)
    for i in range(10):
        idx = sol.indices[i]
        if kernel == "cosine":
            A = X[idx] / np.linalg.norm(X[idx], axis=1, keepdims=True)
            q = Q[i] / np.linalg.norm(Q[i])
            K, kq = 0.5 + 0.5 * A @ A.T, 0.5 + 0.5 * A @ q
        else:
            s = nnk.sigma_
            K = np.exp(-((X[idx][:, None] - X[idx][None]) ** 2).sum(-1) / (2 * s * s))
            kq = np.exp(-((X[idx] - Q[i]) ** 2).sum(-1) / (2 * s * s))
        ref = scipy_nnk(K, kq)
        np.testing.assert_allclose(sol.weights[i], ref, atol=1e-8)
        np.testing.assert_allclose(sol.residual[i], 1 - 2 * ref @ kq + ref @ K @ ref, atol=1e-10)
    assert sol.kkt_residual.max() < 1e-9


def test_two_neighbours_are_both_kept_iff_the_kernel_ratio_interval_holds():
    # Shekkizhar & Ortega: with a Gaussian kernel, x_j and x_l are both NNK neighbours of q
    # (among the two) iff K_jl < K_qj / K_ql < 1 / K_jl
    rng = np.random.default_rng(2)
    P = rng.normal(size=(400, 3, 2))  # (query, x_j, x_l) triples
    D2 = ((P[:, :, None] - P[:, None, :]) ** 2).sum(-1)
    G = np.exp(-D2 / 2.0)
    K, b = G[:, 1:, 1:].copy(), G[:, 0, 1:].copy()
    theta = _nnls.active_set(K, b).theta
    both = (theta > 1e-12).all(axis=1)
    ratio, kjl = b[:, 0] / b[:, 1], K[:, 0, 1]
    kri = (kjl < ratio) & (ratio < 1 / kjl)
    np.testing.assert_array_equal(both, kri)
    assert 50 < both.sum() < 350  # both outcomes occur


def test_sigma_auto_is_a_third_of_the_mean_kth_distance(blobs):
    X, y = blobs
    nnk = NNK(k=7, kernel="gaussian").fit(X, y)
    D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    np.fill_diagonal(D, np.inf)
    np.testing.assert_allclose(nnk.sigma_, np.sort(D, axis=1)[:, 6].mean() / 3)
    assert NNK(k=7, kernel="gaussian", sigma=0.5).fit(X, y).sigma_ == 0.5


def test_predict_is_the_weighted_label_average(blobs):
    X, y = blobs
    rng = np.random.default_rng(3)
    Q = rng.normal(scale=3.0, size=(25, 5))
    nnk = NNK(k=20).fit(X, y)
    sol = nnk.solve(Q)
    P = nnk.predict_proba(Q)
    manual = np.stack([(sol.weights[i][:, None] * np.eye(3)[y[sol.indices[i]]]).sum(0) / sol.weights[i].sum()
                       for i in range(25)])
    np.testing.assert_allclose(P, manual, atol=1e-12)
    np.testing.assert_array_equal(nnk.predict(Q), np.argmax(manual, 1))
    # string labels round-trip through classes_
    names = np.array(["ant", "bee", "cat"])[y]
    assert set(NNK(k=20).fit(X, names).predict(Q)) <= {"ant", "bee", "cat"}


def test_explain_returns_nnk_weights(blobs, rng_guard):
    X, y = blobs
    Q = X[100:104] + 0.3
    nnk = NNK(k=25).fit(X, y)
    att = nnk.attribute(Q)
    sol = nnk.solve(Q)
    assert att.scores.shape == (4, 180) and att.convention == CONVENTION == "similarity: NNK interpolation weight"
    assert att.method == "NNK" and (att.scores >= 0).all()
    for i in range(4):
        outside = np.setdiff1d(np.arange(180), sol.indices[i])
        assert (att.scores[i, outside] == 0).all()  # zero outside the k candidates
        np.testing.assert_allclose(att.scores[i, sol.indices[i]], sol.weights[i])
    np.testing.assert_array_equal(att.target, nnk.predict(Q))
    assert att.extras["kkt_residual"].max() < 1e-9 and att.extras["residual"].shape == (4,)
    assert (att.extras["n_neighbors"] < 25).all()
    json.dumps(att.to_dict())
    # rows explained together equal rows explained one by one
    np.testing.assert_allclose(nnk.attribute(Q[2:3]).scores[0], att.scores[2], atol=1e-12)


def test_fista_solver_agrees_with_exact(blobs):
    X, y = blobs
    rng = np.random.default_rng(4)
    Q = X[:30] + 0.8 * rng.normal(size=(30, 5))
    exact = NNK(k=40).fit(X, y).solve(Q)
    fista = NNK(k=40, solver="fista").fit(X, y).solve(Q)
    raw = NNK(k=40, solver="fista", polish=False, tol=1e-8, max_iter=20000).fit(X, y).solve(Q)
    np.testing.assert_allclose(fista.weights, exact.weights, atol=1e-9)
    # un-polished FISTA reaches the exact objective (residual = 1 + 2 * objective) within tolerance
    np.testing.assert_allclose(raw.residual, exact.residual, atol=1e-8)
    assert raw.kkt_residual.max() <= 1e-8


def test_leave_one_out_never_uses_the_point_itself():
    # point 0 is a class-1 point in the middle of class-0 points: it predicts itself when it is
    # part of the training set, but its leave-one-out prediction is class 0
    rng = np.random.default_rng(7)
    angle = np.r_[0.0, rng.normal(scale=0.2, size=40), np.pi / 2 + rng.normal(scale=0.2, size=40)]
    radius = rng.uniform(0.8, 1.2, size=81)
    X = radius[:, None] * np.c_[np.cos(angle), np.sin(angle)]
    y = np.r_[1, np.zeros(40, int), np.ones(40, int)]
    for kernel in ("gaussian", "cosine"):
        nnk = NNK(k=10, kernel=kernel).fit(X, y)
        assert nnk.predict(X[:1])[0] == 1
        loo = nnk.loo_error()
        assert loo.nnk_pred[0] == 0 and loo.knn_pred[0] == 0
        sol = nnk.loo_solve()
        assert not (sol.indices == np.arange(81)[:, None]).any()
        assert loo.nnk_error == pytest.approx(np.mean(loo.nnk_pred != y))
        sub = nnk.loo_error(indices=[0, 5])
        assert list(sub.nnk_pred) == [loo.nnk_pred[0], loo.nnk_pred[5]]


def test_duplicated_training_points(blobs):
    X, y = blobs
    X2 = np.vstack([X, X[:1]])  # row 180 duplicates row 0 but carries another label
    y2 = np.r_[y, (y[0] + 1) % 3]
    nnk = NNK(k=10).fit(X2, y2)
    # a query equal to the duplicated point splits its weight between the two copies
    att = nnk.attribute(X[:1])
    np.testing.assert_allclose(att.scores[0, [0, 180]], [0.5, 0.5], atol=1e-12)
    np.testing.assert_allclose(att.extras["proba"][0, [y[0], y2[180]]], [0.5, 0.5], atol=1e-12)
    # leave-one-out of row 0 uses its twin (another point), never itself
    sol = nnk.loo_solve()
    assert 0 not in sol.indices[0] and sol.indices[0, 0] == 180
    np.testing.assert_allclose(sol.weights[0, 0], 1.0, atol=1e-12)
    assert nnk.loo_error().nnk_pred[0] == y2[180]
    assert sol.kkt_residual.max() < 1e-9


def test_zero_feature_vectors_under_the_cosine_kernel(blobs):
    X, y = blobs
    X2 = X.copy()
    X2[:3] = 0.0  # dead ReLU features
    nnk = NNK(k=10).fit(X2, y)
    sol = nnk.solve(np.zeros((1, 5)))
    assert set(sol.indices[0, :3]) == {0, 1, 2}
    np.testing.assert_allclose(np.sort(sol.weights[0])[-3:], 1 / 3)


def test_loo_error_per_class_and_json(blobs):
    X, y = blobs
    loo = NNK(k=10).fit(X, y).loo_error()
    assert loo.nnk_error_per_class.shape == (3,) and loo.class_counts.tolist() == [60, 60, 60]
    np.testing.assert_allclose((loo.nnk_error_per_class * 60).sum() / 180, loo.nnk_error)
    assert 0 <= loo.nnk_error <= 0.1 and loo.max_kkt_residual < 1e-9
    json.dumps(loo.to_dict())


# --------------------------------------------------------------------------- errors


def test_bad_inputs_raise_clear_errors(blobs):
    X, y = blobs
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(InvalidParameterError, match="X contains 1 non-finite value.*NaN"):
        NNK(k=5).fit(bad, y)
    with pytest.raises(InvalidParameterError, match="k=500 is larger than the number of training points"):
        NNK(k=500).fit(X, y)
    with pytest.raises(InvalidParameterError, match="y has 179 labels but X has 180 rows"):
        NNK(k=5).fit(X, y[:-1])
    with pytest.raises(InvalidParameterError, match="k must be an int in"):
        NNK(k=0).fit(X, y)
    with pytest.raises(InvalidParameterError, match="kernel must be one of"):
        NNK(kernel="rbf").fit(X, y)
    with pytest.raises(InvalidParameterError, match="sigma=0.5 only applies to kernel='gaussian'"):
        NNK(sigma=0.5).fit(X, y)
    with pytest.raises(InvalidParameterError, match="leave-one-out needs k <= n_train - 1"):
        NNK(k=180).fit(X, y).loo_error()
    nnk = NNK(k=5).fit(X, y)
    with pytest.raises(InvalidParameterError, match="X has 4 features but the training features had 5"):
        nnk.attribute(X[:, :4])
    with pytest.raises(InvalidParameterError, match="X contains .*inf"):
        nnk.predict(np.full((1, 5), np.inf))
    with pytest.raises(InvalidParameterError, match="needs labels"):
        NNK(k=5).fit(X).predict(X[:2])
    with pytest.raises(NotFittedError, match="not fitted"):
        NNK().attribute(X)
    with pytest.raises(InvalidParameterError, match="nnk_graph: k=180 must be at most n_nodes - 1"):
        nnk_graph(X, 180)


# --------------------------------------------------------------------------- graph


def test_nnk_graph_pruning_and_symmetry(blobs):
    X, _ = blobs
    W = nnk_graph(X, 10, kernel="gaussian")
    assert (abs(W - W.T)).max() == 0 and W.diagonal().sum() == 0 and W.min() >= 0
    # rebuild from the directed NNK weights with the residual rule
    nnk = NNK(k=10, kernel="gaussian").fit(X)
    sol = nnk.loo_solve()
    D = np.zeros((180, 180))
    r = sol.residual
    for i in range(180):
        for j, w in zip(sol.indices[i], sol.weights[i]):
            if w > 0 and r[i] <= r[j]:
                D[i, j] = w
    np.testing.assert_allclose(W.toarray(), np.maximum(D, D.T), atol=1e-12)
    unpruned = nnk_graph(X, 10, kernel="gaussian", prune=False)
    assert W.nnz <= unpruned.nnz < 180 * 10  # NNK is sparser than the kNN graph


# --------------------------------------------------------------------------- diagnostics


@pytest.fixture(scope="module")
def digits_small():
    from scrutiny.data import load_digits, train_test_split

    train, test = train_test_split(load_digits(), test_size=0.25, random_state=0)
    return train.X[:600], train.y[:600], test.X[:300], test.y[:300]


def test_generalization_monitor_records_epochs(digits_small, tmp_path):
    from scrutiny.nnk import GeneralizationMonitor, nnk_generalization
    from scrutiny.zoo import make_model, save_weights, train_model

    Xtr, ytr, Xte, yte = digits_small
    model = make_model("mlp", (1, 8, 8), 10, hidden=(32,))
    monitor = GeneralizationMonitor(Xtr, ytr, Xte, yte, k=10, test_nnk=True, n_loo=200)
    snapshots = []
    train_model(model, Xtr, ytr, epochs=3, lr=3e-3, callback=lambda e, m: (monitor(e, m), snapshots.append(
        (e, __import__("copy").deepcopy(m)))))
    res = monitor.result()
    assert res.epochs.tolist() == [1, 2, 3] and res.loo_nnk_error_per_class.shape == (3, 10)
    assert np.isfinite(res.test_error).all() and np.isfinite(res.nnk_test_error).all()
    assert (res.max_kkt_residual < 1e-8).all()
    assert res.test_error[-1] < res.test_error[0]
    d = res.to_dict()
    json.dumps(d)
    from scrutiny import load_result

    back = load_result(res.save(tmp_path / "monitor"))  # a recorded run reloads whole
    np.testing.assert_array_equal(back.loo_nnk_error_per_class, res.loo_nnk_error_per_class)
    np.testing.assert_array_equal(back.test_error, res.test_error)
    assert back.params == res.params and back.correlations() == res.correlations()
    assert set(d["correlations"]) >= {"loo_nnk_error~test_error", "loo_knn_error~test_error"}
    # same numbers from the saved checkpoints
    again = nnk_generalization(snapshots, Xtr, ytr, Xte, yte, k=10, test_nnk=True, n_loo=200)
    np.testing.assert_allclose(again.loo_nnk_error, res.loo_nnk_error)
    np.testing.assert_allclose(again.test_error, res.test_error)
    paths = [save_weights(m, tmp_path / f"epoch{e}.pt") for e, m in snapshots]
    files = nnk_generalization(paths, Xtr, ytr, Xte, yte, model=model, k=10, n_loo=200)
    np.testing.assert_allclose(files.loo_nnk_error, res.loo_nnk_error)
    assert files.epochs.tolist() == [1, 2, 3] and np.isnan(files.nnk_test_error).all()
    with pytest.raises(InvalidParameterError, match="pass model="):
        nnk_generalization(paths, Xtr, ytr, k=10)
    with pytest.raises(InvalidParameterError, match="k=600 must be at most n_train - 1"):
        GeneralizationMonitor(Xtr, ytr, k=600)(1, model)  # checked when called, before any work


def test_correlation_and_best_epoch():
    from scrutiny.nnk import GeneralizationResult

    z = np.zeros(4)
    res = GeneralizationResult(
        epochs=np.arange(1, 5), loo_nnk_error=np.array([0.4, 0.3, 0.2, 0.25]), loo_knn_error=z + 0.1,
        loo_nnk_soft_error=z, loo_nnk_error_per_class=np.zeros((4, 2)), loo_knn_error_per_class=np.zeros((4, 2)),
        train_error=z, test_error=np.array([0.5, 0.4, 0.3, 0.35]), nnk_test_error=z * np.nan,
        knn_test_error=z * np.nan, mean_residual=z, mean_neighbors=z, max_kkt_residual=z, seconds=z,
        classes=np.arange(2))
    assert res.correlation() == pytest.approx(1.0)
    assert np.isnan(res.correlation("loo_knn_error"))  # constant series
    assert res.best_epoch() == 3
    with pytest.raises(InvalidParameterError, match="x must be one of"):
        res.correlation("nope")


def test_out_of_support_flags_off_support_queries(blobs):
    from scrutiny.nnk import out_of_support

    X, y = blobs
    rng = np.random.default_rng(9)
    nnk = NNK(k=15, kernel="gaussian").fit(X, y)
    inside = out_of_support(nnk, X[:30] + 0.05 * rng.normal(size=(30, 5)), y[:30])
    far = out_of_support(nnk, rng.normal(scale=12.0, size=(30, 5)))
    between = out_of_support(nnk, 0.5 * (X[:30] + X[60:90]))  # midpoints of two classes
    assert far.residual.mean() > 10 * inside.residual.mean()
    assert far.residual_pvalue.mean() < 0.1 < inside.residual_pvalue.mean()
    assert between.disagreement.mean() > inside.disagreement.mean() + 0.1
    assert inside.label_disagreement.mean() < 0.05
    json.dumps(inside.to_dict())


def test_cached_training_gram_gives_the_same_solution(monkeypatch):
    # small training sets with wide features gather K_SS from a cached training Gram matrix
    from scrutiny.nnk import estimator as nnk_module

    rng = np.random.default_rng(11)
    X = rng.normal(size=(150, 40))
    y = rng.integers(0, 3, size=150)
    Q = rng.normal(size=(20, 40))
    for kernel in ("cosine", "gaussian"):
        cached = NNK(k=10, kernel=kernel).fit(X, y)
        a = cached.solve(Q)
        assert cached._KK is not None
        monkeypatch.setattr(nnk_module, "_FULL_GRAM", 0)
        plain = NNK(k=10, kernel=kernel).fit(X, y)
        b = plain.solve(Q)
        assert plain._KK is None
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_allclose(a.weights, b.weights, atol=1e-10)
        monkeypatch.undo()
