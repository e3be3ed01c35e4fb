"""scrutiny.distributed on a local Dask cluster: results identical to the serial call for any chunk
size and worker count, the model shipped as data, a killed worker, a resumed job, loopback only.

Bit-identity needs a model whose output for a row does not depend on the batch it is computed in:
BLAS-backed layers (torch Linear, scikit-learn's predict_proba) change the last bits of a row's
output with the batch size, which serial explain shows too between rows explained together and
one by one. ``RowLocal`` (elementwise products and a per-row sum) is batch-invariant, so these
tests can demand equality bit for bit; a zoo MLP is checked at the tolerance of tests/test_common.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
import torch

from scrutiny.attribution import LIME, KernelSHAP, Occlusion
from scrutiny.distributed import DaskExecutor, ResultStore, evaluate_metric, explain, pack_model, unpack_model
from scrutiny.exceptions import CapabilityError, InvalidParameterError

distributed = pytest.importorskip("dask.distributed", reason="the dask extra is not installed: pip install 'scrutiny[dask]'")

from _dask_helpers import loopback_client  # noqa: E402


class RowLocal(torch.nn.Module):
    """Logits ``3 * sum_j tanh(x_j * w_kj)``: no BLAS, so a row's output ignores the batch."""

    def __init__(self, d: int, k: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w = torch.nn.Parameter(torch.randn(k, d, generator=g, dtype=torch.float64) * 2)

    def forward(self, x):
        x = x.reshape(x.shape[0], 1, -1)
        return torch.tanh(x * self.w).sum(-1) * 3.0


class Unscriptable(torch.nn.Module):
    def forward(self, x):
        return torch.as_tensor(np.tanh(x.detach().numpy()))


@pytest.fixture(scope="module")
def client():
    with loopback_client(distributed, ("scrutiny.attribution", "scrutiny.data_attribution", "scrutiny.metrics")) as c:
        yield c


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.random((20, 1, 8, 8))


@pytest.fixture(scope="module")
def net():
    return torch.jit.script(RowLocal(64, 4))


def _explainers(net, images):
    return {
        "LIME": LIME(net, mode="image", segments="grid", segment_params={"cell": 2}, n_samples=120, random_state=3),
        "KernelSHAP": KernelSHAP(net, background=images[:1] * 0, groups=np.arange(64).reshape(8, 8) // 9,
                                 n_samples=96, random_state=5),
        "Occlusion": Occlusion(net, window=(1, 3, 3), stride=2),
    }


def _same(a, b):
    assert a.values.shape == b.values.shape
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.target, b.target)
    for field in ("base_values", "stderr"):
        x, y = getattr(a, field), getattr(b, field)
        assert (x is None) == (y is None)
        if x is not None:
            np.testing.assert_array_equal(x, y)
    assert sorted(a.extras) == sorted(b.extras)
    for k in a.extras:
        if isinstance(a.extras[k], np.ndarray):
            np.testing.assert_array_equal(a.extras[k], b.extras[k])


@pytest.mark.parametrize("method", ["LIME", "KernelSHAP", "Occlusion"])
def test_identical_to_serial_for_any_chunking_and_worker_count(client, net, images, method):
    explainer = _explainers(net, images)[method]
    reference = explainer.explain(images)
    one_worker = DaskExecutor(client, workers=[sorted(client.scheduler_info()["workers"])[0]])
    for backend, chunk_size in [(client, 1), (client, 7), (one_worker, 7), (client, 64), ("serial", 7)]:
        _same(explain(explainer, images, backend=backend, chunk_size=chunk_size), reference)
    # a Generator seed: every chunk starts from the state the serial call starts from
    if "random_state" in explainer.get_params():
        explainer.set_params(random_state=np.random.default_rng(11))
        got = explain(explainer, images, backend=client, chunk_size=7)
        _same(got, explainer.set_params(random_state=np.random.default_rng(11)).explain(images))


def test_a_real_network_agrees_at_the_contract_tolerance(client, images):
    from scrutiny.zoo import make_model

    mlp = make_model("mlp", (1, 8, 8), 4, hidden=(16,))
    lime = LIME(mlp, mode="image", segments="grid", segment_params={"cell": 2}, n_samples=80, random_state=0)
    reference = lime.explain(images[:9])
    got = explain(lime, images[:9], backend=client, chunk_size=4)
    np.testing.assert_allclose(got.values, reference.values, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(got.target, reference.target)


def test_metric_and_explainer_inside_metric(client, net, images):
    from scrutiny.metrics import deletion_curve

    lime = _explainers(net, images)["LIME"]
    e = lime.explain(images)
    reference = deletion_curve(net, images, e, step=8)
    for chunk_size in (1, 7, 64):
        got = evaluate_metric(deletion_curve, net, images, e, backend=client, chunk_size=chunk_size, step=8)
        np.testing.assert_array_equal(got.values, reference.values)
        assert got.mean == reference.mean
    inside = evaluate_metric(deletion_curve, net, images, lime, backend=client, chunk_size=7, step=8)
    np.testing.assert_array_equal(inside.values, deletion_curve(net, images, lime, step=8).values)
    with pytest.raises(InvalidParameterError, match="road.*chunk by chunk"):
        from scrutiny.metrics import road

        evaluate_metric(road, net, images, e, backend="serial")


def test_influence_queries_over_blocks(client):
    from scrutiny.data_attribution import InfluenceFunctions
    from scrutiny.distributed import attribute

    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 5))
    y = (X[:, 0] - X[:, 1] > 0).astype(np.int64)
    from scrutiny.zoo import make_model

    model = make_model("logistic", 5, 2, random_state=0).double()  # ships as zoo weights + architecture
    # partition invariance is the point here, not the optimum: damping keeps the Hessian definite
    inf = InfluenceFunctions(model, "cross_entropy", solver="exact", l2=0.1, damping=0.1, check_optimum="ignore")
    reference = inf.fit(X, y).attribute(X[:11], y[:11])
    for chunk_size in (1, 7, 64):
        got = attribute(inf, X, y, X[:11], y[:11], backend=client, chunk_size=chunk_size)
        # scores = train_grads @ S is one GEMM over the block's test points, whose last bits depend
        # on the block's width: equal to the serial scores up to float64 rounding, not bit for bit
        np.testing.assert_allclose(got.scores, reference.scores, rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(got.target, reference.target)
        np.testing.assert_allclose(got.extras["test_loss"], reference.extras["test_loss"], rtol=1e-12)
    # the scores are not a copy of one row: the test distinguishes test points
    assert np.abs(reference.scores[0] - reference.scores[1]).max() > 1e-4


def test_nnk_queries_over_blocks(client):
    """NNK attribution of test points (their non-negative kernel neighbours among the training
    points) through the backend: the same neighbours and weights as the serial call."""
    from scrutiny.distributed import attribute
    from scrutiny.nnk import NNK

    rng = np.random.default_rng(2)
    X = rng.normal(size=(120, 6))
    y = (X[:, 0] + X[:, 2] > 0).astype(np.int64)
    nnk = NNK(k=10)
    reference = nnk.fit(X, y).attribute(X[:13])
    for chunk_size in (1, 7, 64):
        got = attribute(NNK(k=10), X, y, X[:13], backend=client, chunk_size=chunk_size)
        np.testing.assert_array_equal(got.scores != 0, reference.scores != 0)  # the same neighbours
        np.testing.assert_allclose(got.scores, reference.scores, rtol=1e-12, atol=1e-15)
    assert (reference.scores != 0).sum(axis=1).min() > 0
    assert not np.array_equal(reference.scores[0] != 0, reference.scores[1] != 0)


def test_randomization_conditions_run_on_the_cluster(client):
    """The training runs of randomization_test on two workers: the same curves bit for bit as
    the serial call (models made by the driver's factory, travelling as zoo weights; an
    estimator as skops bytes), and a factory whose module cannot travel gets the clear error."""
    from sklearn.linear_model import SGDClassifier

    from scrutiny.data import load_digits
    from scrutiny.diagnostics import randomization_test
    from scrutiny.zoo import make_model

    d = load_digits()
    X, y = d.X[:400], d.y[:400]
    kw = dict(corruptions=("true", "random_labels"), n_seeds=2, max_epochs=6, random_state=3)

    def factory(seed):  # a closure is fine: the factory runs in this process
        return make_model("mlp", (1, 8, 8), 10, seed, hidden=(32,))

    serial = randomization_test(factory, X, y, **kw)
    on_cluster = randomization_test(factory, X, y, backend=client, **kw)
    for name in ("curves_train_loss", "curves_train_accuracy", "curves_test_accuracy", "label_change_rate"):
        np.testing.assert_array_equal(getattr(on_cluster, name), getattr(serial, name))
    assert serial.label_change_rate[1].min() > 0.5  # the random-label runs did get other labels
    Xf = X.reshape(400, -1)
    sgd = SGDClassifier(loss="log_loss", random_state=0)
    np.testing.assert_array_equal(randomization_test(sgd, Xf, y, backend=client, **kw).curves_train_loss,
                                  randomization_test(sgd, Xf, y, **kw).curves_train_loss)

    with pytest.raises(CapabilityError, match="randomization_test.*backend='serial'"):
        randomization_test(lambda seed: Unscriptable(), X, y, backend=client, **kw)


def test_dmm_men_chains_run_on_the_cluster(client):
    """chain_pool(backend=client): every chain of every fit in the block (a fixed-length fit with
    pilots, an n_iter="auto" fit) is a task on the cluster, and the fits equal the local ones."""
    from scrutiny.surrogate import DMMMEN, chain_pool
    from scrutiny.surrogate import chains as chains_mod

    rng = np.random.default_rng(4)
    X = rng.normal(size=(80, 3))
    y = np.where(X[:, 0] > 0, X @ [2.0, 0.0, 1.0], X @ [-1.0, 1.5, 0.0]) + 0.1 * rng.normal(size=80)
    fits = [dict(n_iter=60, n_burnin=20, n_chains=2, init="pilot", n_pilots=2),
            dict(n_iter="auto", max_iter=100, n_chains=2)]
    for params in fits:
        local = DMMMEN(random_state=0, n_jobs=2, **params).fit(X, y)
        with chain_pool(backend=client):
            assert chains_mod._SHARED_EXECUTOR is not None
            remote = DMMMEN(random_state=0, n_jobs=1, **params).fit(X, y)
        assert chains_mod._SHARED_EXECUTOR is None
        assert len(remote.draws_) == len(local.draws_) == 2
        for c in range(2):
            assert set(remote.draws_[c]) == set(local.draws_[c])
            for name in local.draws_[c]:
                np.testing.assert_array_equal(remote.draws_[c][name], local.draws_[c][name])
            np.testing.assert_array_equal(remote.trace_[c]["loglik"], local.trace_[c]["loglik"])
        np.testing.assert_array_equal(remote.coef_, local.coef_)
    assert np.ptp(local.trace_[0]["loglik"]) > 0


def test_killed_worker_does_not_change_the_result(client, net, images, tmp_path):
    lime = LIME(net, mode="image", segments="grid", segment_params={"cell": 2}, n_samples=400, random_state=7)
    X = np.concatenate([images] * 3)
    reference = lime.explain(X)
    store = ResultStore(tmp_path / "store")
    pids = client.run(os.getpid)
    victim = sorted(pids.values())[0]
    killed = threading.Event()
    done_at_kill = []

    def kill_after_first_chunk():
        deadline = time.time() + 60
        while time.time() < deadline and not any(store.root.rglob("rows-*.npz")):
            time.sleep(0.02)
        os.kill(victim, 9)
        done_at_kill.append(len(list(store.root.rglob("rows-*.npz"))))
        killed.set()

    t = threading.Thread(target=kill_after_first_chunk)
    t.start()
    got = explain(lime, X, backend=client, chunk_size=2, store=store, max_in_flight=4)
    t.join()
    assert killed.is_set() and done_at_kill[0] < 30  # killed in the middle of the job (30 chunks)
    _same(got, reference)
    client.wait_for_workers(2, timeout=60)


def test_stopped_job_resumes_from_the_store(client, net, images, tmp_path):
    shap = _explainers(net, images)["KernelSHAP"]
    reference = shap.explain(images)
    store = ResultStore(tmp_path)

    class Stop(Exception):
        pass

    def stop_after_two(done, total, eta):
        if done >= 6:
            raise Stop

    with pytest.raises(Stop):
        explain(shap, images, backend=client, chunk_size=3, store=store, progress=stop_after_two, max_in_flight=1)
    stored = store.chunks("KernelSHAP", next(p.name.split("-", 1)[1] for p in tmp_path.iterdir()))
    assert stored and len(stored) < 7
    resumed = explain(shap, images, backend=client, chunk_size=3, store=store)
    assert store.last_run.n_chunks == 7
    assert store.last_run.n_loaded == len(stored)
    assert store.last_run.n_computed == 7 - len(stored)
    _same(resumed, reference)
    # another seed is another job: nothing is reused
    explain(shap.set_params(random_state=6), images, backend="serial", chunk_size=3, store=store)
    assert store.last_run.n_loaded == 0


def test_unshippable_models_get_a_clear_error():
    with pytest.raises(CapabilityError, match="torch.jit.trace.*zoo.make_model"):
        pack_model(Unscriptable())
    with pytest.raises(CapabilityError, match="top-level function"):
        pack_model(lambda X: X.sum(axis=1, keepdims=True))
    with pytest.raises(CapabilityError, match="cannot ship"):
        explain(LIME(lambda X: X[:, :1], training_data=np.zeros((3, 2))), np.ones((2, 2)), backend="process")


def test_models_travel_as_data():
    from sklearn.ensemble import RandomForestClassifier

    from scrutiny import as_model
    from scrutiny.zoo import make_model

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 4))
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, X[:, 0] > 0)
    spec = pack_model(forest)
    assert spec["kind"] == "sklearn" and isinstance(spec["skops"], bytes)
    np.testing.assert_array_equal(unpack_model(spec).predict(X), as_model(forest).predict(X))
    cnn = make_model("cnn", (1, 8, 8), 3, random_state=4).double()
    spec = pack_model(cnn)
    assert spec["module"]["kind"] == "zoo"  # weights + architecture, no code
    Z = rng.random((5, 1, 8, 8))
    np.testing.assert_array_equal(unpack_model(spec).predict(Z), as_model(cnn).predict(Z))


def test_no_socket_outside_loopback(client):
    import psutil

    pids = set(client.run(os.getpid).values())
    pids |= {psutil.Process(p).ppid() for p in pids}  # the nannies
    pids.add(os.getpid())  # the scheduler of a LocalCluster lives here
    seen = 0
    for pid in pids:
        for conn in psutil.Process(pid).net_connections(kind="inet"):
            seen += 1
            assert conn.laddr.ip in ("127.0.0.1", "::1"), (pid, conn)
            if conn.raddr:
                assert conn.raddr.ip in ("127.0.0.1", "::1"), (pid, conn)
    assert seen >= len(pids) - 1


def test_bad_chunk_size_names_the_fix(net, images):
    with pytest.raises(InvalidParameterError, match="chunk_size must be a positive int"):
        explain(Occlusion(net, window=(1, 3, 3)), images, chunk_size=0)


@pytest.mark.slow
def test_process_backend_identical_to_serial(net, images):
    """The stdlib process pool (spawned workers importing torch: slow to start on a loaded machine)."""
    shap = _explainers(net, images)["KernelSHAP"]
    reference = shap.explain(images)
    for chunk_size in (1, 7):
        _same(explain(shap, images, backend="process", n_workers=2, chunk_size=chunk_size), reference)


def test_store_never_returns_chunks_of_other_rows(net, images, tmp_path):
    occ = Occlusion(net, window=(1, 3, 3), stride=2)
    store = ResultStore(tmp_path)
    explain(occ, images, chunk_size=8, store=store)
    assert store.last_run == (3, 0, 3)
    other = images[::-1].copy()
    got = explain(occ, other, chunk_size=8, store=store)  # same job, other rows: recomputed
    assert store.last_run.n_loaded == 0
    _same(got, occ.explain(other))
    explain(occ, images, chunk_size=8, store=store, collect=False)  # the store now holds `other`'s chunks
    assert store.last_run.n_loaded == 0
    assert explain(occ, images, chunk_size=8, store=store, collect=False) is None
    assert store.last_run.n_loaded == 3


def test_job_files_are_read_as_plain_data_only(tmp_path):
    import pickle

    from scrutiny.distributed import _executor

    good = tmp_path / "good.pkl"
    good.write_bytes(pickle.dumps(_executor.Shared("t", {"X": np.arange(6.0).reshape(2, 3), "k": (1, "a")}), protocol=5))
    with open(good, "rb") as f:
        back = _executor._load_plain(f)
    np.testing.assert_array_equal(back.payload["X"], np.arange(6.0).reshape(2, 3))

    class Evil:
        def __reduce__(self):
            return (print, ("ran",))

    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps(Evil()))
    with open(bad, "rb") as f, pytest.raises(pickle.UnpicklingError, match="builtins.print"):
        _executor._load_plain(f)


def test_a_cluster_started_by_scrutiny_is_on_loopback_with_its_worker_settings(client):
    # `client` first: its default LocalCluster leaves Dask's MALLOC_TRIM_THRESHOLD_=65536 in this
    # process's environment, which Dask lets override the settings of any later cluster
    import dask

    from scrutiny.distributed import WORKER_MALLOC_ENV

    before = os.environ.get("MALLOC_TRIM_THRESHOLD_")
    ex = DaskExecutor(None, 1)
    try:
        settings = ex.client.run(lambda: (dask.config.get("distributed.worker.profile.enabled"),
                                          os.environ.get("MALLOC_TRIM_THRESHOLD_")))
        assert list(settings.values()) == [(False, str(WORKER_MALLOC_ENV["MALLOC_TRIM_THRESHOLD_"]))]
        assert all(addr.startswith("tcp://127.0.0.1:") for addr in settings)
        assert ex.client.scheduler.address.startswith("tcp://127.0.0.1:")
    finally:
        ex.close()
    assert dask.config.get("distributed.worker.profile.enabled") is True  # the driver's config is left alone
    assert os.environ.get("MALLOC_TRIM_THRESHOLD_") == before  # and its environment
