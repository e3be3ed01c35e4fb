"""The command line, run in-process through main(argv): every command and error path, message and exit code."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest

from scrutiny import __version__, load_result
from scrutiny.cli import main

from _audit_helpers import tabular_files


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"scrutiny {__version__}"
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("audit", "report", "diff", "demo"):
        assert command in out
    assert main([]) == 2


def test_console_script_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "scrutiny.cli", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"scrutiny {__version__}"


def test_usage_errors_exit_2(capsys):
    assert main(["audit"]) == 2  # --model and --data are required
    assert "the following arguments are required: --model/-m, --data/-d" in capsys.readouterr().err
    assert main(["audit", "-m", "x", "-d", "y", "--budget", "huge"]) == 2
    assert "invalid choice: 'huge'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return tabular_files(tmp_path_factory.mktemp("cli"))


@pytest.fixture(scope="module")
def audited(files, tmp_path_factory):
    """One fast audit through the CLI, shared by the report/diff/gate tests."""
    p = files["paths"]
    out = tmp_path_factory.mktemp("cli-out") / "a"
    code = main(["audit", "-m", str(p["model"]), "-d", str(p["test"]), "--train", str(p["train"]), "-c", str(p["config"]),
                 "--budget", "fast", "-o", str(out), "--quiet", "--fail-on", "accuracy<0.6,failed"])
    assert code == 0
    return out


def _audit_args(files, out, *extra):
    p = files["paths"]
    return ["audit", "-m", str(p["model"]), "-d", str(p["test"]), "--train", str(p["train"]), "-c", str(p["config"]),
            "--budget", "fast", "-o", str(out), "--quiet", *extra]


def test_audit_writes_report_trail_and_results(audited, files):
    trail = json.loads((audited / "audit.json").read_text())
    assert {s["name"]: s["status"] for s in trail["sections"]} == {
        "performance": "ok", "local": "ok", "dmm_men": "ok", "training_data": "ok", "generalisation": "ok"}
    est, X, y, n = files["model"], files["X"], files["y"], files["n_train"]
    perf = next(s for s in trail["sections"] if s["name"] == "performance")["numbers"]
    # the accuracy in the trail is the model's accuracy on the test CSV (6 significant digits in the file)
    pred = est.predict(np.round(X[n:], 5))
    assert perf["predicted"] == pred.tolist()
    assert perf["accuracy"] == pytest.approx(float((pred == y[n:]).mean()))
    assert (audited / "report.html").stat().st_size > 10_000
    assert load_result(audited / "performance.npz").values.shape == (len(y) - n,)


def test_fail_on_gates_with_exit_1(files, tmp_path, capsys):
    assert main(_audit_args(files, tmp_path / "g", "--fail-on", "accuracy>0.5")) == 1
    err = capsys.readouterr().err
    assert "accuracy>0.5: FAILED (accuracy = " in err


def test_fail_on_bad_syntax_is_a_usage_error_before_any_work(files, tmp_path, capsys):
    assert main(_audit_args(files, tmp_path / "s", "--fail-on", "faithfulness<<0.6")) == 2
    err = capsys.readouterr().err
    assert "--fail-on: cannot parse 'faithfulness<<0.6'" in err and "Grammar:" in err and "loo_gap" in err
    assert not (tmp_path / "s").exists()
    assert main(_audit_args(files, tmp_path / "s", "--fail-on", "speed<3")) == 2
    assert "unknown check 'speed'" in capsys.readouterr().err
    assert main(_audit_args(files, tmp_path / "s", "--fail-on", "sanity<3")) == 2
    assert "'sanity' is a flag and takes no comparison" in capsys.readouterr().err


def test_input_errors_exit_2_with_one_actionable_line(files, tmp_path, capsys):
    p = files["paths"]
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(files["model"]))
    (tmp_path / "model.pt").write_bytes(pickle.dumps({"w": 1}, protocol=5))
    cases = [
        (["-m", str(tmp_path / "missing.skops"), "-d", str(p["test"])], "--model file", "does not exist"),
        (["-m", str(p["model"]), "-d", str(tmp_path / "missing.csv")], "--data file", "does not exist"),
        (["-m", str(tmp_path / "model.pkl"), "-d", str(p["test"])], "is a pickle; scrutiny never unpickles", "skops or ONNX"),
        (["-m", str(tmp_path / "model.pt"), "-d", str(p["test"])], "is a pickle; scrutiny never unpickles", "TorchScript"),
        (["-m", str(p["model"]), "-d", str(p["test"]), "--label", "nope"], "--label 'nope' is not a column", "f0"),
    ]
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text('[local]\nmethods = ["gradcam9"]\n')
    cases.append((["-m", str(p["model"]), "-d", str(p["test"]), "-c", str(bad_toml)], "unknown method 'gradcam9'",
                  "kernelshap"))
    wide = tmp_path / "wide.csv"
    wide.write_text("a,b,label\n1,2,0\n3,4,1\n")
    cases.append((["-m", str(p["model"]), "-d", str(wide)], "the model cannot take rows of shape (2,)", "--data/--model"))
    afile = tmp_path / "afile"
    afile.write_text("x")
    base = ["-m", str(p["model"]), "-d", str(p["test"]), "-c", str(p["config"]), "--budget", "fast"]
    outs = {len(cases): afile, len(cases) + 1: afile / "sub"}
    cases.append((base, f"--output-dir '{afile}' exists and is not a folder", "give a folder path"))
    cases.append((base, f"--output-dir '{afile / 'sub'}' cannot be created", "give a writable folder"))
    for i, (args, first, second) in enumerate(cases):
        assert main(["audit", *args, "-o", str(outs.get(i, tmp_path / "o")), "--quiet"]) == 2, args
        err = capsys.readouterr().err.strip()
        assert err.startswith("scrutiny audit: error: ") and first in err and second in err, err
        assert len(err.splitlines()) == 1


def test_gradient_methods_on_a_black_box_are_skipped_with_the_reason(files, tmp_path):
    p = files["paths"]
    cfg = tmp_path / "a.toml"
    cfg.write_text('sections = ["local"]\n[local]\nmethods = ["saliency", "lime"]\nn_samples = 100\n'
                   'faithfulness_runs = 10\nn_misclassified = 0\n')
    assert main(["audit", "-m", str(p["model"]), "-d", str(p["test"]), "-c", str(cfg), "-o", str(tmp_path / "o"), "-q"]) == 0
    local = json.loads((tmp_path / "o" / "audit.json").read_text())["sections"][0]["numbers"]
    assert list(local["methods"]) == ["lime"]
    assert "saliency needs input gradients; the skops model is a black box" in local["unavailable"]["saliency"]


def test_report_rebuilds_from_saved_results(audited, tmp_path, capsys):
    html = (audited / "report.html").read_text()
    (audited / "report.html").unlink()
    assert main(["report", str(audited)]) == 0
    rebuilt = (audited / "report.html").read_text()
    # same content apart from nothing: the report is a pure function of audit.json and the .npz files
    assert rebuilt == html
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "does not exist; give an audit folder or its audit.json" in capsys.readouterr().err


def test_diff_of_two_model_versions(audited, files, tmp_path, capsys):
    import skops.io as sio
    from sklearn.neural_network import MLPClassifier

    n = files["n_train"]
    other = MLPClassifier((3,), max_iter=30, random_state=5).fit(files["X"][:n], files["y"][:n])  # a worse version
    sio.dump(other, tmp_path / "v2.skops")
    p = files["paths"]
    args = ["audit", "-m", str(tmp_path / "v2.skops"), "-d", str(p["test"]), "--train", str(p["train"]), "-c",
            str(p["config"]), "--budget", "fast", "-o", str(tmp_path / "b"), "--quiet"]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(args) == 0
    capsys.readouterr()
    assert main(["diff", str(audited / "audit.json"), str(tmp_path / "b" / "audit.json")]) == 0
    text = capsys.readouterr().out
    old = json.loads((audited / "audit.json").read_text())["sections"][0]["numbers"]["predicted"]
    new = json.loads((tmp_path / "b" / "audit.json").read_text())["sections"][0]["numbers"]["predicted"]
    moved = sum(a != b for a, b in zip(old, new))
    assert f"predictions: {moved} rows changed class" in text
    assert "accuracy:" in text and "attributions kernelshap: top feature changed on" in text
    assert main(["diff", str(audited), str(tmp_path / "b"), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["predictions"]["n_changed"] == moved and d["same_data"] is True
    assert d["metrics"]["accuracy"]["change"] == pytest.approx(d["metrics"]["accuracy"]["new"] - d["metrics"]["accuracy"]["old"])
    assert main(["diff", str(audited), str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_demo_bad_arguments(tmp_path, capsys):
    assert main(["demo", "-o", str(tmp_path), "--jobs", "x"]) == 2
    assert "invalid int value: 'x'" in capsys.readouterr().err


@pytest.mark.slow
def test_full_demo_writes_both_reports(tmp_path, capsys):
    code = main(["demo", "-o", str(tmp_path / "demo"), "--cache-dir", str(tmp_path / "cache"), "--quiet"])
    assert code == 0
    for name in ("images", "tabular"):
        trail = json.loads((tmp_path / "demo" / name / "audit.json").read_text())
        status = {s["name"]: s["status"] for s in trail["sections"]}
        assert "failed" not in status.values(), status
        assert (tmp_path / "demo" / name / "report.html").stat().st_size > 50_000
    images = json.loads((tmp_path / "demo" / "images" / "audit.json").read_text())
    assert images["sections"][0]["numbers"]["accuracy"] > 0.95
    assert {"saliency", "integrated_gradients", "occlusion"} <= set(images["sections"][1]["numbers"]["methods"])
    assert set(next(s for s in images["sections"] if s["name"] == "training_data")["numbers"]["methods"]) == {
        "influence", "representer", "nnk"}


def test_onnx_black_box_audit(files, tmp_path):
    from _audit_helpers import onnx_linear

    p = files["paths"]
    W = np.zeros((5, 2))
    W[0, 1], W[1, 1] = 3.0, 1.5  # class 1 when f0 + f1/2 > 0: the rule the labels follow
    onnx_linear(tmp_path / "m.onnx", W, np.zeros(2))
    cfg = tmp_path / "a.toml"
    cfg.write_text('sections = ["performance", "local"]\n[local]\nmethods = ["integrated_gradients", "kernelshap"]\n'
                   'n_samples = 200\nfaithfulness_runs = 10\n')
    assert main(["audit", "-m", str(tmp_path / "m.onnx"), "-d", str(p["test"]), "-c", str(cfg), "-o", str(tmp_path / "o"),
                 "-q"]) == 0
    trail = json.loads((tmp_path / "o" / "audit.json").read_text())
    perf, local = (s["numbers"] for s in trail["sections"])
    assert trail["model"]["kind"] == "onnx" and perf["accuracy"] > 0.8
    assert "integrated_gradients needs input gradients; the onnx model is a black box" in local["unavailable"]["integrated_gradients"]
    # a linear model: KernelSHAP's top feature is f0 or f1 on every row (the only non-zero weights)
    assert all(top[0][0] in ("f0", "f1") for top in local["methods"]["kernelshap"]["top_features"])
    assert local["methods"]["kernelshap"]["sanity"] is None and local["methods"]["kernelshap"]["sanity_reason"]
