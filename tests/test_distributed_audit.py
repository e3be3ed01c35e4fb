"""sanity_check and ``scrutiny audit`` on the distributed backends: the same results as the serial
run, the work really done on the workers, and the usage errors of --backend/--scheduler/--workers.

The cluster is the one of tests/test_distributed.py: two single-threaded worker processes on
127.0.0.1.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from scrutiny import load_result
from scrutiny.attribution import IntegratedGradients, Saliency
from scrutiny.cli import main
from scrutiny.diagnostics import sanity_check
from scrutiny.exceptions import CapabilityError, InvalidParameterError

from _audit_helpers import tabular_files

distributed = pytest.importorskip("dask.distributed", reason="the dask extra is not installed: pip install 'scrutiny[dask]'")

from _dask_helpers import loopback_client  # noqa: E402


@pytest.fixture(scope="module")
def client():
    with loopback_client(distributed, ("scrutiny.attribution", "scrutiny.metrics", "scrutiny.distributed")) as c:
        yield c


def _task_names(stream) -> set:
    return {t["key"].split("-")[0] if isinstance(t["key"], str) else str(t["key"]) for t in stream.data}


# ------------------------------------------------------------------ sanity_check
def _same_check(a, b):
    assert a.explainers == b.explainers and a.stages == b.stages and a.metrics == b.metrics
    for field in ("similarity", "baseline", "p_values", "passed"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    assert np.array_equal(a.extras["ceiling"], b.extras["ceiling"])
    assert a.verdicts() == b.verdicts()
    assert a.params["normalised_similarity"] == b.params["normalised_similarity"]


def test_sanity_check_identical_on_every_backend(client):
    from scrutiny.zoo import make_model

    mlp = make_model("mlp", 6, 3, hidden=(8,), random_state=0).double()  # ships as zoo weights + architecture
    seq = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()  # TorchScript
    X = np.random.default_rng(0).normal(size=(10, 6))
    kw = dict(tests=("cascading", "independent"), n_permutations=19, random_state=3)
    for net in (mlp, seq):
        explainers = {"saliency": Saliency(net), "ig": IntegratedGradients(net, n_steps=16)}
        reference = sanity_check(explainers, net, X, **kw)
        # the randomised models are not the trained one: the check has something to compare
        assert reference.similarity[0, -1, 0].mean() < 0.9
        with distributed.get_task_stream(client=client) as stream:
            got = sanity_check(explainers, net, X, backend=client, **kw)
        assert "explain_chunk" in _task_names(stream)  # the explanations ran on the workers
        # original + 2 cascading + 2 independent stages, two explainers, none on this process
        assert len([t for t in stream.data if str(t["key"]).startswith("explain_chunk")]) == 2 * 5
        _same_check(got, reference)
    _same_check(sanity_check(explainers, seq, X, backend="process", n_workers=2, **kw), reference)


def test_sanity_check_backend_errors_name_the_fix(client):
    net = torch.nn.Sequential(torch.nn.Linear(4, 2)).double()
    X = np.random.default_rng(1).normal(size=(5, 4))

    def grad_times_input(model, X, target):
        return X

    with pytest.raises(InvalidParameterError, match=r"explainers\['grad_times_input'\] is a callable.*"
                                                    r"backend='dask'.*pass backend='serial'"):
        sanity_check(grad_times_input, net, X, backend="dask")
    sanity_check(grad_times_input, net, X, tests=("cascading",), n_permutations=9)  # serial: fine
    from scrutiny.attribution import SmoothGrad

    with pytest.raises(InvalidParameterError, match=r"Generator random_state.*int random_state"):
        sanity_check(SmoothGrad(net, n_samples=4, random_state=np.random.default_rng(0)), net, X, backend="process")
    with pytest.raises(InvalidParameterError, match="n_workers"):
        sanity_check(Saliency(net), net, X, backend="process", n_workers=0)

    class NumpyHead(torch.nn.Module):  # torch.jit.script cannot compile it: it cannot be shipped
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 2).double()

        def forward(self, x):
            return self.fc(x) * float(np.float64(1.0))

    with pytest.raises(CapabilityError, match=r"sanity_check\(backend='dask'\).*randomised copy.*"
                                              r"torch.jit.trace.*backend='serial'"):
        sanity_check(Saliency(NumpyHead()), NumpyHead(), X, tests=("cascading",), n_permutations=9, backend=client)


# ------------------------------------------------------------------ scrutiny audit --backend
SMALL = """
sections = ["performance", "local"]
[local]
n_samples = 100
faithfulness_runs = 10
n_misclassified = 1
methods = ["kernelshap", "lime", "occlusion"]
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    f = tabular_files(tmp_path_factory.mktemp("dist-audit"), n=120)
    f["paths"]["config"].write_text(SMALL)
    return f


def _args(files, out, *extra):
    p = files["paths"]
    return ["audit", "-m", str(p["model"]), "-d", str(p["test"]), "--train", str(p["train"]), "-c", str(p["config"]),
            "--budget", "fast", "-o", str(out), "--quiet", *extra]


def _numbers(trail: dict) -> list:
    return [(s["name"], s["status"], s["error"], s["numbers"], s["params"], s["files"]) for s in trail["sections"]]


def test_audit_on_a_dask_scheduler_matches_serial(client, files, tmp_path):
    assert main(_args(files, tmp_path / "serial")) == 0
    address = client.scheduler.address
    with distributed.get_task_stream(client=client) as stream:
        assert main(_args(files, tmp_path / "dask", "--backend", "dask", "--scheduler", address)) == 0
    names = _task_names(stream)
    assert {"explain_chunk", "metric_chunk"} <= names, names  # explanations and deletion curves on the workers
    serial = json.loads((tmp_path / "serial" / "audit.json").read_text())
    dask = json.loads((tmp_path / "dask" / "audit.json").read_text())
    assert serial["execution"] == {"backend": "serial", "scheduler": None, "workers": 1}
    assert dask["execution"] == {"backend": "dask", "scheduler": address, "workers": 2}
    assert "distributed" not in serial["config"] and serial["config"] == dask["config"]
    assert _numbers(dask) == _numbers(serial)
    local = next(s for s in serial["sections"] if s["name"] == "local")
    assert local["status"] == "ok" and sorted(local["numbers"]["methods"]) == ["kernelshap", "lime", "occlusion"]
    assert any(m["sanity"] is not None for m in local["numbers"]["methods"].values())
    for name in local["files"]:
        a, b = load_result(tmp_path / "serial" / name), load_result(tmp_path / "dask" / name)
        field = "similarity" if name.startswith("sanity_") else "values"
        assert np.array_equal(getattr(a, field), getattr(b, field)), name
        if name.startswith("deletion_"):  # the curve records the method whose values it ranked
            assert a.params["attributions"] == b.params["attributions"] and sorted(a.params) == sorted(b.params)
    for method in ("kernelshap", "lime", "occlusion"):
        a = load_result(tmp_path / "serial" / f"local_{method}.npz")
        b = load_result(tmp_path / "dask" / f"local_{method}.npz")
        np.testing.assert_array_equal(a.values, b.values)
        np.testing.assert_array_equal(a.target, b.target)
        assert np.abs(a.values).max() > 0


@pytest.mark.parametrize("extra, says", [
    (["--scheduler", "tcp://127.0.0.1:8786"], "--scheduler 'tcp://127.0.0.1:8786' needs --backend dask"),
    (["--backend", "process", "--scheduler", "tcp://127.0.0.1:8786"], "needs --backend dask (the backend is 'process')"),
    (["--backend", "dask", "--scheduler", "127.0.0.1:8786"], "--scheduler '127.0.0.1:8786' is not a Dask scheduler "
                                                            "address; give one like tcp://127.0.0.1:8786"),
    (["--backend", "dask", "--scheduler", "tcp://127.0.0.1:99999"], "is not a Dask scheduler address"),
    (["--backend", "dask", "--scheduler", "tcp://:8786"], "is not a Dask scheduler address"),
    (["--workers", "2"], "--workers 2 sizes a process pool or a local Dask cluster, but the backend is serial"),
    (["--backend", "dask", "--workers", "0"], "--workers must be a positive number of workers; got 0"),
])
def test_backend_usage_errors_exit_2(files, tmp_path, capsys, extra, says):
    assert main(_args(files, tmp_path / "out", *extra)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("scrutiny audit: error: ")
    assert says in err
    assert not (tmp_path / "out").exists()  # a usage error stops before any work


def test_backend_in_audit_toml(files, tmp_path, capsys):
    cfg = tmp_path / "audit.toml"
    cfg.write_text(SMALL + '[distributed]\nbackend = "serial"\nscheduler = "tcp://127.0.0.1:8786"\n')
    p = files["paths"]
    args = ["audit", "-m", str(p["model"]), "-d", str(p["test"]), "-c", str(cfg), "-o", str(tmp_path / "o"), "-q"]
    assert main(args) == 2
    assert "distributed.scheduler 'tcp://127.0.0.1:8786' needs --backend dask" in capsys.readouterr().err
    cfg.write_text(SMALL + '[distributed]\nbackend = "dask"\nschedular = "tcp://127.0.0.1:8786"\n')
    assert main(args) == 2
    assert "unknown key distributed.'schedular'" in capsys.readouterr().err



TORCH = """
sections = ["local"]
[local]
n_samples = 100
faithfulness_runs = 10
n_misclassified = 1
methods = ["saliency", "integrated_gradients", "occlusion"]
"""


def test_torch_audit_on_a_dask_scheduler_matches_serial(client, files, tmp_path):
    """A zoo MLP state_dict: its explanations, deletion curves and the sanity checks of its randomised
    copies (shipped as weights + architecture) on the workers, numbers equal to the serial run's."""
    from scrutiny.zoo import make_model

    torch.save(make_model("mlp", 5, 2, random_state=0).state_dict(), tmp_path / "mlp.pt")
    (tmp_path / "audit.toml").write_text(TORCH)
    p = files["paths"]

    def args(out, *extra):
        return ["audit", "-m", str(tmp_path / "mlp.pt"), "--arch", "mlp", "-d", str(p["test"]), "--train",
                str(p["train"]), "-c", str(tmp_path / "audit.toml"), "-o", str(tmp_path / out), "-q", *extra]

    assert main(args("serial")) == 0
    with distributed.get_task_stream(client=client) as stream:
        assert main(args("dask", "--backend", "dask", "--scheduler", client.scheduler.address)) == 0
    assert {"explain_chunk", "metric_chunk"} <= _task_names(stream)
    serial = json.loads((tmp_path / "serial" / "audit.json").read_text())
    dask = json.loads((tmp_path / "dask" / "audit.json").read_text())
    methods = serial["sections"][0]["numbers"]["methods"]
    assert sorted(methods) == ["integrated_gradients", "occlusion", "saliency"]
    assert all(m["sanity"] is not None for m in methods.values()), methods
    assert _numbers(dask) == _numbers(serial)
