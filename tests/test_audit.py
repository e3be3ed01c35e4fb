"""End-to-end audits: a scikit-learn model on a tabular CSV and a torch CNN on PNG images (CI-sized budgets)."""

from __future__ import annotations

import hashlib
import html as htmllib
import json
import re
import warnings

import numpy as np
import pytest

from scrutiny import load_result
from scrutiny.cli import main

from _audit_helpers import tabular_files

torch = pytest.importorskip("torch")

INJECTIONS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "a</style><b>x"]


def _sections(out):
    trail = json.loads((out / "audit.json").read_text())
    return trail, {s["name"]: s for s in trail["sections"]}


@pytest.fixture(scope="module")
def tabular(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tab")
    files = tabular_files(folder)
    p = files["paths"]
    cfg = folder / "full.toml"
    cfg.write_text(p["config"].read_text().replace('"generalisation"]', '"generalisation", "glassbox"]'))
    out = folder / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(["audit", "-m", str(p["model"]), "-d", str(p["test"]), "--train", str(p["train"]), "-c", str(cfg),
                     "--budget", "fast", "--seed", "3", "-o", str(out), "--quiet"])
    assert code == 0
    return files, out


def test_tabular_trail_records_provenance_and_numbers(tabular):
    files, out = tabular
    p = files["paths"]
    trail, sec = _sections(out)
    assert trail["model"]["sha256"] == hashlib.sha256(p["model"].read_bytes()).hexdigest()
    assert trail["data"]["sha256"] == hashlib.sha256(p["test"].read_bytes()).hexdigest()
    assert trail["seed"] == 3 and trail["budget"] == "fast" and trail["argv"][1] == "audit"
    assert trail["versions"]["scrutiny"] and trail["versions"]["numpy"] == np.__version__
    assert all(s["status"] == "ok" for s in trail["sections"]), [(s["name"], s["error"] or s["reason"]) for s in trail["sections"]]
    perf = sec["performance"]["numbers"]
    cm = np.array(perf["confusion_matrix"])
    assert cm.sum() == perf["n_rows"] and np.trace(cm) / cm.sum() == pytest.approx(perf["accuracy"])
    for c, acc in enumerate(perf["per_class_accuracy"]):
        assert acc == pytest.approx(cm[c, c] / cm[c].sum())


def test_tabular_local_explanations_match_their_saved_results(tabular):
    files, out = tabular
    _, sec = _sections(out)
    local = sec["local"]["numbers"]
    assert set(local["methods"]) == {"kernelshap", "lime"}
    est = files["model"]
    for method, rec in local["methods"].items():
        exp = load_result(out / f"local_{method}.npz")
        np.testing.assert_array_equal(exp.target, local["predicted"])
        # the top feature in the trail is the largest |attribution| of the saved explanation
        names = [f"f{i}" for i in range(5)]
        for i, top in enumerate(rec["top_features"]):
            assert top[0][0] == names[int(np.argmax(np.abs(exp.values[i])))]
        faith = load_result(out / f"faithfulness_{method}.npz")
        assert rec["faithfulness_mean"] == pytest.approx(float(np.nanmean(faith.values)))
        assert isinstance(rec["sanity"], bool)  # scikit-learn MLP: its layers are re-initialised
        dele = load_result(out / f"deletion_{method}.npz")
        assert rec["deletion_auc"] == pytest.approx(float(np.mean(dele.values)))
        curve = np.asarray(rec["deletion_curve"])
        assert curve.ndim == 1 and curve.size >= 2 and np.all((curve >= 0) & (curve <= 1))
    assert "treeshap" not in local["methods"]  # an MLP: not a tree model, so not in the default list
    assert "deletion curves" in (out / "report.html").read_text()
    ks = load_result(out / "local_kernelshap.npz")
    # KernelSHAP efficiency: attributions sum to f(x) - E_background f in the explained space
    assert np.all(np.isfinite(ks.values))
    # the feature the label depends on most (f0) leads the KernelSHAP ranking on most rows
    first = [top[0][0] for top in local["methods"]["kernelshap"]["top_features"]]
    assert first.count("f0") >= len(first) / 2
    assert est is not None


def test_tabular_global_sections(tabular):
    files, out = tabular
    _, sec = _sections(out)
    dmm = sec["dmm_men"]["numbers"]["classes"]
    assert len(dmm) == 1
    rec = next(iter(dmm.values()))
    comp = rec["components"][0]
    lo, hi = np.array(comp["ci"]).T
    assert np.all(lo <= np.array(comp["coef"]) + 1e-12) and np.all(np.array(comp["coef"]) <= hi + 1e-12)
    assert rec["max_rhat"] is not None and isinstance(rec["converged"], bool)
    trace = np.array(rec["trace_loglik"])  # chains x sweeps, the numbers behind the report's trace plot
    assert trace.ndim == 2 and trace.shape[0] >= 2 and np.all(np.isfinite(trace))
    gen = sec["generalisation"]["numbers"]
    loo = load_result(out / "nnk_loo.npz")
    assert gen["nnk_loo_error"] == pytest.approx(loo.nnk_error)
    assert gen["loo_gap"] == pytest.approx(gen["nnk_loo_error"] - gen["train_error"])
    td = sec["training_data"]["numbers"]
    assert "influence" in td["unavailable"] and "nnk" in td["methods"]
    att = load_result(out / "nnk_neighbours.npz")
    for i, row in enumerate(td["methods"]["nnk"]["proponent_scores"]):
        assert row == sorted(row, reverse=True) and row[0] == pytest.approx(att.scores[i].max())
    gb = sec["glassbox"]["numbers"]
    assert gb["models"][:2] == ["rule list", "risk score"] and "audited model" in gb["models"]
    assert gb["rule_list"] and gb["score_card"]["features"]
    html = (out / "report.html").read_text()
    for sid in ("performance", "local", "dmm_men", "training_data", "generalisation", "glassbox"):
        assert f'id="section-{sid}"' in html
    assert "http://" not in html and "https://" not in html and "<script" not in html
    assert "log-likelihood traces" in html


def test_injected_names_are_escaped_in_the_report(tmp_path):
    names = INJECTIONS + ["f3", "f4"]
    files = tabular_files(tmp_path, names=names, labels=["</style><i>bad", "ok"])
    p = files["paths"]
    cfg = tmp_path / "inj.toml"
    cfg.write_text('sections = ["performance", "local", "glassbox"]\n[local]\nmethods = ["kernelshap"]\n'
                   'n_samples = 100\nfaithfulness_runs = 10\n[glassbox]\ncv = 2\ntime_limit = 1.0\n')
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["audit", "-m", str(p["model"]), "-d", str(p["test"]), "-c", str(cfg), "-o", str(tmp_path / "o"), "-q"]) == 0
    html = (tmp_path / "o" / "report.html").read_text()
    for s in INJECTIONS + ["</style><i>bad"]:
        assert s not in html
    assert htmllib.escape("<script>alert(1)</script>") in html
    assert htmllib.escape("</style><i>bad") in html
    assert len(re.findall(r"<script", html)) == 0 and len(re.findall(r"</style>", html)) == 1


def _digits_cnn(tmp_path):
    from PIL import Image

    from scrutiny.data import load_digits, train_test_split
    from scrutiny.zoo import make_model, train_model

    ds = load_digits()
    tr, te = train_test_split(ds, random_state=0)
    tr, te = tr.subset(np.arange(400)), te.subset(np.arange(40))
    net = make_model("cnn", (1, 8, 8), 10, random_state=0)
    train_model(net, tr.X, tr.y, epochs=6, lr=3e-3, minibatch_size=32, random_state=0)
    net.eval()
    torch.jit.save(torch.jit.trace(net, torch.zeros(2, 1, 8, 8)), str(tmp_path / "cnn.pt"))
    folder = tmp_path / "pngs"
    folder.mkdir()
    lines = ["file,label"]
    for i, (x, y) in enumerate(zip(te.X, te.y)):
        Image.fromarray(np.round(x[0] * 255).astype(np.uint8)).save(folder / f"img{i}.png")
        lines.append(f"img{i}.png,{y}")
    (folder / "labels.csv").write_text("\n".join(lines))
    np.savez(tmp_path / "train.npz", X=tr.X, y=tr.y)
    return net, te


def test_torch_cnn_on_png_images_end_to_end(tmp_path):
    net, te = _digits_cnn(tmp_path)
    cfg = tmp_path / "a.toml"
    cfg.write_text('sections = ["performance", "local", "training_data", "generalisation", "glassbox"]\n'
                   '[local]\nn_steps = 8\nfaithfulness_runs = 10\nrows = [0, 1, 2]\nn_misclassified = 1\n'
                   'methods = ["saliency", "integrated_gradients", "occlusion", "gradient_shap", "deeplift", "gradcam", '
                   '"guided_backprop"]\n'
                   '[training_data]\nmax_train = 150\nn_test = 2\n[generalisation]\nmax_train = 200\n')
    out = tmp_path / "o"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(["audit", "-m", str(tmp_path / "cnn.pt"), "-d", str(tmp_path / "pngs"), "--train",
                     str(tmp_path / "train.npz"), "-c", str(cfg), "--budget", "fast", "-o", str(out), "-q"])
    assert code == 0
    trail, sec = _sections(out)
    assert trail["model"]["format"] == "torchscript" and trail["data"]["format"] == "png-folder"
    assert sec["glassbox"]["status"] == "skipped" and "tabular" in sec["glassbox"]["reason"]
    for name in ("performance", "local", "training_data", "generalisation"):
        assert sec[name]["status"] == "ok", (name, sec[name]["error"])
    with torch.no_grad():  # PNG round trip quantises to 1/255: predictions agree with the original images
        pred = net(torch.as_tensor(np.round(te.X * 255) / 255, dtype=torch.float32)).argmax(1).numpy()
    assert sec["performance"]["numbers"]["predicted"] == pred.tolist()
    local = sec["local"]["numbers"]
    assert {"saliency", "integrated_gradients", "occlusion"} <= set(local["methods"])
    # the captum-family methods either ran or say why not (a TorchScript module cannot take module hooks)
    for name in ("gradient_shap", "deeplift", "gradcam", "guided_backprop"):
        assert name in local["methods"] or name in local["unavailable"], name
    assert "module hooks" in local["unavailable"]["guided_backprop"]
    print({k: v for k, v in local["unavailable"].items()})
    ig = load_result(out / "local_integrated_gradients.npz")
    assert ig.values.shape == (len(local["rows"]), 1, 8, 8)
    # IG completeness: attributions sum to f(x) - f(baseline) up to the recorded gap
    assert np.all(np.abs(ig.extras["relative_gap"]) < 0.2)
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 4  # confusion matrix, overlays, galleries/panels


def test_hooked_methods_run_on_a_state_dict_with_its_architecture(tmp_path):
    """A state_dict loaded with --arch is an ordinary module: DeepLIFT, Grad-CAM and Guided
    Backprop (module hooks) run in the audit, and Guided Backprop's file equals the library's call."""
    from scrutiny.attribution import GuidedBackprop

    net, te = _digits_cnn(tmp_path)
    torch.save(net.state_dict(), tmp_path / "sd.pt")
    np.savez(tmp_path / "test.npz", X=te.X, y=te.y)
    cfg = tmp_path / "a.toml"
    cfg.write_text('sections = ["local"]\n[local]\nrows = [0, 1, 2]\nn_misclassified = 0\nfaithfulness_runs = 5\n'
                   'methods = ["deeplift", "gradcam", "guided_backprop"]\n')
    out = tmp_path / "o"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(["audit", "-m", str(tmp_path / "sd.pt"), "--arch", "cnn", "-d", str(tmp_path / "test.npz"),
                     "-c", str(cfg), "--budget", "fast", "-o", str(out), "-q"])
    assert code == 0
    _, sec = _sections(out)
    assert sec["local"]["status"] == "ok", sec["local"]["error"]
    local = sec["local"]["numbers"]
    assert set(local["methods"]) == {"deeplift", "gradcam", "guided_backprop"}, local["unavailable"]
    gb = load_result(out / "local_guided_backprop.npz")
    rows = np.asarray(local["rows"])
    expected = GuidedBackprop(net).explain(te.X[rows], target=gb.target)
    np.testing.assert_allclose(gb.values, expected.values, rtol=1e-5, atol=1e-7)
    assert np.abs(gb.values).max() > 0


def test_size_budget_drops_figures_from_the_last_sections_first(tabular):
    from scrutiny.audit.report import render_report

    _, out = tabular
    trail = json.loads((out / "audit.json").read_text())
    full = render_report(out, trail)
    trail["config"]["report"]["max_bytes"] = len(full.encode()) // 2
    small = render_report(out, trail)
    assert len(small.encode()) < len(full.encode())
    assert "figures left out to keep the report under" in small
    # the summary keeps its confusion matrix while later sections lose their figures first
    summary = small.split('id="section-local"')[0]
    assert "data:image/png;base64," in summary


def test_tree_models_get_exact_treeshap_by_default(tmp_path):
    import skops.io as sio
    from sklearn.ensemble import GradientBoostingClassifier

    from scrutiny.attribution import TreeSHAP

    files = tabular_files(tmp_path)
    p = files["paths"]
    n = files["n_train"]
    gb = GradientBoostingClassifier(n_estimators=20, max_depth=2, random_state=0).fit(files["X"][:n], files["y"][:n])
    sio.dump(gb, tmp_path / "gb.skops")
    (tmp_path / "local.toml").write_text('sections = ["local"]\n[local]\nsanity = false\nfaithfulness_runs = 10\n')
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(["audit", "-m", str(tmp_path / "gb.skops"), "-d", str(p["test"]), "--train", str(p["train"]),
                     "-c", str(tmp_path / "local.toml"), "--budget", "fast", "-o", str(out), "--quiet"])
    assert code == 0
    _, sec = _sections(out)
    local = sec["local"]["numbers"]
    assert "treeshap" in local["methods"]
    saved = load_result(out / "local_treeshap.npz")
    X = files["X"][n:][local["rows"]]
    direct = TreeSHAP(gb).explain(X, target=np.asarray(local["predicted"]))
    np.testing.assert_allclose(saved.values, direct.values, atol=1e-12)
