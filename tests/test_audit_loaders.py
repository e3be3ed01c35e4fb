"""scrutiny.audit loaders and config: every format loads, pickles and mislabelled files are refused."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from scrutiny.audit import load_config, load_data, load_model, sniff_model_format
from scrutiny.audit.loaders import check_compatible, sha256_file
from scrutiny.exceptions import DataFormatError, InvalidParameterError

from _audit_helpers import onnx_linear

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def linear():
    net = torch.nn.Sequential(torch.nn.Linear(4, 3))
    X = np.random.default_rng(0).normal(size=(6, 4))
    with torch.no_grad():
        expected = net(torch.as_tensor(X, dtype=torch.float32)).numpy()
    return net, X, expected


def test_torchscript_export_and_state_dict_give_the_module_outputs(tmp_path, linear):
    net, X, expected = linear
    torch.jit.save(torch.jit.script(net), str(tmp_path / "m.pt"))
    torch.export.save(torch.export.export(net, (torch.zeros(2, 4),)), str(tmp_path / "m.pt2"))
    assert sniff_model_format(tmp_path / "m.pt") == "torchscript"
    assert sniff_model_format(tmp_path / "m.pt2") == "torch_export"
    for name in ("m.pt", "m.pt2"):
        m = load_model(tmp_path / name)
        assert m.kind == "torch" and m.sha256 == sha256_file(tmp_path / name)
        np.testing.assert_allclose(m.adapter.predict(X), expected, rtol=1e-5, atol=1e-6)
    # gradients flow through the exported program (saliency needs them): linear model -> gradient = W row
    g = load_model(tmp_path / "m.pt2").adapter.gradient(X, np.zeros(6, dtype=int))
    np.testing.assert_allclose(g, np.tile(net[0].weight.detach().numpy()[0], (6, 1)), rtol=1e-5)


def test_state_dict_with_zoo_architecture(tmp_path):
    from scrutiny.data import Dataset
    from scrutiny.zoo import make_model

    net = make_model("mlp", (4,), 3, random_state=1).eval()
    torch.save(net.state_dict(), tmp_path / "sd.pt")
    data = Dataset(np.random.default_rng(0).normal(size=(5, 4)), np.array([0, 1, 2, 0, 1]))
    assert sniff_model_format(tmp_path / "sd.pt") == "state_dict"
    m = load_model(tmp_path / "sd.pt", arch="mlp", data=data)
    with torch.no_grad():
        np.testing.assert_allclose(m.adapter.predict(data.X), net(torch.as_tensor(data.X, dtype=torch.float32)).numpy(),
                                   rtol=1e-5, atol=1e-6)
    with pytest.raises(InvalidParameterError, match="state_dict; give its architecture with --arch"):
        load_model(tmp_path / "sd.pt", data=data)
    with pytest.raises(DataFormatError, match="does not fit --arch 'cnn'"):
        load_model(tmp_path / "sd.pt", arch="cnn", data=Dataset(np.zeros((2, 1, 8, 8)), np.array([0, 2])))


def test_skops_and_onnx(tmp_path):
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 4))
    y = (X[:, 0] > 0).astype(int)
    est = LogisticRegression().fit(X, y)
    sio.dump(est, tmp_path / "m.skops")
    m = load_model(tmp_path / "m.skops")
    assert m.kind == "sklearn"
    np.testing.assert_allclose(m.adapter.predict(X), est.predict_proba(X), rtol=1e-12)
    W, b = rng.normal(size=(4, 3)), rng.normal(size=3)
    onnx_linear(tmp_path / "m.onnx", W, b)
    m = load_model(tmp_path / "m.onnx")
    z = X @ W + b
    p = np.exp(z - z.max(1, keepdims=True))
    np.testing.assert_allclose(m.adapter.predict(X), p / p.sum(1, keepdims=True), rtol=1e-5, atol=1e-6)
    assert m.kind == "onnx" and "gradient" not in m.adapter.capabilities


@pytest.mark.parametrize("name", ["model.pkl", "model.pt", "model.bin"])
def test_pickle_is_refused_whatever_the_extension(tmp_path, name):
    (tmp_path / name).write_bytes(pickle.dumps({"a": 1}, protocol=4))
    with pytest.raises(DataFormatError, match="is a pickle; scrutiny never unpickles") as info:
        load_model(tmp_path / name)
    for fmt in ("TorchScript", "torch.export", "state_dict", "skops", "ONNX"):
        assert fmt in str(info.value)


def test_extension_that_lies_and_missing_or_unknown_files(tmp_path, linear):
    net, _, _ = linear
    torch.jit.save(torch.jit.script(net), str(tmp_path / "real.onnx"))
    with pytest.raises(DataFormatError, match="holds a torchscript model but its extension says onnx"):
        load_model(tmp_path / "real.onnx")
    with pytest.raises(InvalidParameterError, match="does not exist"):
        load_model(tmp_path / "nope.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(DataFormatError, match="not a model file scrutiny recognises"):
        load_model(tmp_path / "text.pt")


def test_tabular_data_formats_agree(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    X = np.arange(12, dtype=float).reshape(4, 3)
    y = np.array([0, 1, 1, 0])
    (tmp_path / "d.csv").write_text("a,b,c,label\n" + "\n".join(",".join(map(str, [*r, t])) for r, t in zip(X, y)))
    (tmp_path / "first.csv").write_text("target,a,b,c\n" + "\n".join(",".join(map(str, [t, *r])) for r, t in zip(X, y)))
    pq.write_table(pa.table({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "label": y}), tmp_path / "d.parquet")
    np.savez(tmp_path / "d.npz", X=X, y=y)
    for d in (load_data(tmp_path / "d.csv"), load_data(tmp_path / "d.parquet"), load_data(tmp_path / "d.npz"),
              load_data(tmp_path / "first.csv", label="target")):
        np.testing.assert_array_equal(d.dataset.X, X)
        np.testing.assert_array_equal(d.dataset.y, y)
    assert load_data(tmp_path / "d.csv").dataset.feature_names == ("a", "b", "c")
    with pytest.raises(InvalidParameterError, match="--label 'nope' is not a column"):
        load_data(tmp_path / "d.csv", label="nope")
    np.savez(tmp_path / "bad.npz", A=X)
    with pytest.raises(DataFormatError, match="must hold arrays 'X' and 'y'"):
        load_data(tmp_path / "bad.npz")
    np.savez(tmp_path / "short.npz", X=X, y=y[:3])
    with pytest.raises(DataFormatError, match="X has 4 rows but y has 3"):
        load_data(tmp_path / "short.npz")
    (tmp_path / "d.xlsx").write_text("x")
    with pytest.raises(DataFormatError, match="unknown data format '.xlsx'"):
        load_data(tmp_path / "d.xlsx")
    with pytest.raises(InvalidParameterError, match="does not exist"):
        load_data(tmp_path / "missing.csv")


def test_image_formats_idx_and_png_folder(tmp_path):
    from PIL import Image

    from scrutiny.data import save_idx

    imgs = (np.arange(3 * 4 * 5) % 256).reshape(3, 4, 5).astype(np.uint8)
    labels = np.array([2, 0, 1], dtype=np.uint8)
    save_idx(tmp_path / "img.idx3-ubyte", imgs)
    save_idx(tmp_path / "lab.idx1-ubyte", labels)
    d = load_data(tmp_path / "img.idx3-ubyte", labels=tmp_path / "lab.idx1-ubyte").dataset
    assert d.X.shape == (3, 1, 4, 5)
    np.testing.assert_allclose(d.X[:, 0], imgs / 255.0)
    np.testing.assert_array_equal(d.y, labels)
    with pytest.raises(InvalidParameterError, match="give the label file with --labels"):
        load_data(tmp_path / "img.idx3-ubyte")
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, im in enumerate(imgs):
        Image.fromarray(im).save(folder / f"{i}.png")
    (folder / "labels.csv").write_text("file,label\n" + "\n".join(f"{i}.png,{int(t)}" for i, t in enumerate(labels)))
    p = load_data(folder).dataset
    np.testing.assert_allclose(p.X, d.X)
    np.testing.assert_array_equal(p.y, labels)
    (folder / "labels.csv").write_text("9.png,1\n")
    with pytest.raises(InvalidParameterError, match="names '9.png', which is not in"):
        load_data(folder)


def test_wrong_shape_is_caught_before_the_audit(tmp_path, linear):
    from scrutiny.data import Dataset

    net, _, _ = linear
    torch.jit.save(torch.jit.script(net), str(tmp_path / "m.pt"))
    m = load_model(tmp_path / "m.pt")
    with pytest.raises(DataFormatError, match=r"cannot take rows of shape \(7,\)"):
        check_compatible(m, Dataset(np.zeros((3, 7)), np.array([0, 1, 2])))
    with pytest.raises(DataFormatError, match="3 outputs but the labels go up to 5"):
        check_compatible(m, Dataset(np.zeros((3, 4)), np.array([0, 5, 2])))


def test_config_defaults_budgets_and_errors(tmp_path):
    fast, thorough = load_config(budget="fast"), load_config(budget="thorough")
    assert fast["local"]["n_samples"] < load_config()["local"]["n_samples"] < thorough["local"]["n_samples"]
    (tmp_path / "a.toml").write_text('[local]\nmethods = ["lime"]\nn_samples = 7\n')
    cfg = load_config(tmp_path / "a.toml", "fast")
    assert cfg["local"]["methods"] == ["lime"] and cfg["local"]["n_samples"] == 7  # the file wins over the budget
    (tmp_path / "b.toml").write_text('[local]\nmethods = ["shapley"]\n')
    with pytest.raises(InvalidParameterError, match="unknown method 'shapley'.*valid methods: saliency"):
        load_config(tmp_path / "b.toml")
    (tmp_path / "c.toml").write_text('[local]\nn_sample = 3\n')
    with pytest.raises(InvalidParameterError, match="unknown key local.'n_sample'.*n_samples"):
        load_config(tmp_path / "c.toml")
    (tmp_path / "d.toml").write_text('sections = ["performance", "magic"]\n')
    with pytest.raises(InvalidParameterError, match="unknown section 'magic'"):
        load_config(tmp_path / "d.toml")
    with pytest.raises(InvalidParameterError, match="--budget must be one of fast, standard, thorough"):
        load_config(budget="huge")
