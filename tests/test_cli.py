"""The command line, run in-process through main(argv)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from scrutiny import __version__, load_result
from scrutiny.cli import main


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"scrutiny {__version__}"
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "demo" in capsys.readouterr().out
    assert main([]) == 2


def test_console_script_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "scrutiny.cli", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"scrutiny {__version__}"


def test_demo_writes_results_that_reload(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "-o", str(out), "--cache-dir", str(tmp_path / "cache"), "--n-images", "5", "--quiet"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"]["test_accuracy"] > 0.97
    assert (out / "attributions.png").stat().st_size > 1000
    assert set(summary["methods"]) == {"saliency", "integrated_gradients", "smoothgrad", "occlusion", "lime"}
    for name in summary["methods"]:
        loaded = load_result(out / f"{name}.npz")
        assert loaded.values.shape == (5, 1, 8, 8) and loaded.data.shape == (5, 1, 8, 8)
        np.testing.assert_array_equal(loaded.target, summary["explained"]["predicted"])
    # the reported completeness gap is what the cached model says: sum(IG) - (f(x) - f(0))
    from scrutiny import as_model
    from scrutiny.zoo import reference_model

    net, _ = reference_model("cnn", "digits", cache_dir=tmp_path / "cache")
    ig = load_result(out / "integrated_gradients.npz")
    model = as_model(net)
    rows = np.arange(5)
    delta = model.predict(ig.data)[rows, ig.target] - model.predict(np.zeros_like(ig.data))[rows, ig.target]
    np.testing.assert_allclose(ig.values.sum(axis=(1, 2, 3)) - delta, ig.extras["completeness_gap"], atol=1e-4)
    exp = load_result(out / "saliency.npz")
    # one image per class first: five different true labels
    assert len(set(summary["explained"]["true"])) == 5
    np.testing.assert_array_equal(exp.target, summary["explained"]["predicted"])
    assert np.abs(exp.values).sum() > 0
    # a second run loads the cached weights and gives the same explanation
    assert main(["demo", "-o", str(tmp_path / "again"), "--cache-dir", str(tmp_path / "cache"), "--n-images", "5", "--quiet"]) == 0
    again = json.loads((tmp_path / "again" / "summary.json").read_text())
    assert again["model"]["from_cache"] is True
    for name in summary["methods"]:  # deterministic: same seed, same cached model
        np.testing.assert_array_equal(
            load_result(tmp_path / "again" / f"{name}.npz").values, load_result(out / f"{name}.npz").values
        )


def test_demo_reports_bad_arguments(tmp_path, capsys):
    assert main(["demo", "-o", str(tmp_path), "--n-images", "0"]) == 1
    assert "--n-images must be at least 1; got 0" in capsys.readouterr().err
