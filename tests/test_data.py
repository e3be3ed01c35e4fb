"""Tests of scrutiny.data: Dataset, bundled loaders, IDX and CSV (segmentation: test_segmentation.py)."""

from __future__ import annotations

import dataclasses
import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from scrutiny.data import (
    FASHION_MNIST_CLASSES,
    Dataset,
    default_data_dir,
    load_breast_cancer,
    load_compas,
    load_csv,
    load_digits,
    load_fashion_mnist,
    load_idx,
    load_iris,
    load_mnist,
    load_tabular_benchmark,
    load_wine,
    n_segments,
    save_idx,
    segment,
    train_test_split,
)
from scrutiny.data import _paths
from scrutiny.exceptions import DataFormatError, InvalidParameterError

# --------------------------------------------------------------------------- helpers

REAL_DATA = Path(os.environ.get("SCRUTINY_DATA_DIR") or Path(__file__).resolve().parents[1] / ".." / "shared" / "data")


def real(sub: str) -> Path:
    path = REAL_DATA / sub
    if not path.is_dir():
        pytest.skip(f"real data folder {path} not available")
    return path


def idx_bytes(code: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    """An IDX file built by hand, independently of save_idx."""
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}i", *dims) + payload


def write(path: Path, data: bytes, gz: bool = False) -> Path:
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def fake_images(n: int, h: int = 28, w: int = 28) -> np.ndarray:
    """Distinct, deterministic uint8 images: image i, pixel (r, c) = (7 i + 3 r + c) mod 256."""
    i, r, c = np.meshgrid(np.arange(n), np.arange(h), np.arange(w), indexing="ij")
    return ((7 * i + 3 * r + c) % 256).astype(np.uint8)


def write_pair(folder: Path, prefix: str, n: int, gz: bool, n_labels: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    images = fake_images(n)
    labels = (np.arange(n if n_labels is None else n_labels) % 10).astype(np.uint8)
    ext = ".gz" if gz else ""
    save_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", images)
    save_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", labels)
    return images, labels


# --------------------------------------------------------------------------- Dataset


def test_dataset_converts_and_reports_shapes():
    ds = Dataset(np.arange(12).reshape(4, 3), [0, 1, 2, 1], feature_names=["a", "b", "c"], name="toy")
    assert ds.X.dtype == np.float64 and ds.y.dtype == np.int64
    assert len(ds) == 4 and ds.n_features == 3
    assert ds.image_shape is None and ds.n_classes == 3
    assert ds.feature_names == ("a", "b", "c") and ds.description == ""
    img = Dataset(np.zeros((2, 1, 3, 5)), np.array([0, 1]), target_names=("x", "y", "z"))
    assert img.image_shape == (1, 3, 5) and img.n_features == 15 and img.n_classes == 3
    reg = Dataset(np.zeros((3, 2)), np.array([0.5, 1.0, 2.0]))
    assert reg.y.dtype == np.float64 and reg.n_classes is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(X=np.zeros((3, 2)), y=[0, 1]), r"len\(X\) == 3.*len\(y\) == 2"),
        (dict(X=np.zeros((3, 2)), y=np.zeros((3, 2), dtype=int)), "y must be 1-D"),
        (dict(X=np.zeros((2, 2)), y=np.array(["a", "b"])), "np.unique"),
        (dict(X=np.zeros((2, 2)), y=[0, -1]), "class indices >= 0; got -1"),
        (dict(X=np.zeros(3), y=[0, 1, 0]), "2 or 4 dimensions"),
        (dict(X=np.zeros((2, 2)), y=[0, 1], feature_names=("a",)), "one name per feature"),
        (dict(X=np.zeros((2, 2)), y=[0, 1], feature_names=("a", "a")), "'a' appears more than once"),
        (dict(X=np.zeros((2, 2)), y=[0, 2], target_names=("a", "b")), "class 2"),
        (dict(X=np.zeros((2, 28, 28, 3)), y=[0, 1]), "channel-last"),
        (dict(X=np.array([[np.nan, 0.0]]), y=[0]), "non-finite"),
    ],
)
def test_dataset_rejects_bad_input(kwargs, match):
    with pytest.raises(InvalidParameterError, match=match):
        Dataset(**kwargs)


def test_dataset_subset_copies_and_validates():
    ds = Dataset(np.arange(10.0).reshape(5, 2), [0, 1, 0, 1, 1], feature_names=("a", "b"), name="toy")
    sub = ds.subset([4, 0])
    np.testing.assert_array_equal(sub.X, [[8.0, 9.0], [0.0, 1.0]])
    np.testing.assert_array_equal(sub.y, [1, 0])
    assert sub.name == "toy" and sub.feature_names == ("a", "b")
    sub.X[0, 0] = -1.0
    assert ds.X[4, 0] == 8.0  # a copy
    np.testing.assert_array_equal(ds.subset(np.array([True, False, False, False, True])).y, [0, 1])
    assert len(ds.subset(slice(1, 3))) == 2 and len(ds.subset([])) == 0
    with pytest.raises(InvalidParameterError, match="index 5 is out of range"):
        ds.subset([5])
    with pytest.raises(InvalidParameterError, match=r"boolean mask must have shape \(5,\)"):
        ds.subset([True, False])


def test_train_test_split_is_stratified_reproducible_and_leaves_global_rng_alone():
    ds = load_iris()
    state = np.random.get_state()[1].copy()
    train, test = train_test_split(ds, test_size=0.2, random_state=3)
    assert np.array_equal(np.random.get_state()[1], state)
    assert (len(train), len(test)) == (120, 30)
    np.testing.assert_array_equal(np.bincount(test.y), [10, 10, 10])
    # disjoint and covering: every row of iris appears once (iris has 2 duplicated rows, so compare multisets)
    both = np.concatenate([train.X, test.X])
    np.testing.assert_array_equal(np.sort(both, axis=0), np.sort(ds.X, axis=0))
    again, _ = train_test_split(ds, test_size=0.2, random_state=3)
    np.testing.assert_array_equal(train.X, again.X)
    other, _ = train_test_split(ds, test_size=0.2, random_state=4)
    assert not np.array_equal(train.X, other.X)
    _, small = train_test_split(ds, test_size=7, random_state=np.random.default_rng(0), stratify=False)
    assert len(small) == 7 and "test part" in small.description


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(test_size=1.5), r"float test_size must lie in \(0, 1\)"),
        (dict(test_size=0), r"int test_size must lie in \[1, 149\]"),
        (dict(test_size="half"), "test_size must be"),
        (dict(random_state=-1), "random_state"),
        (dict(stratify="yes"), "stratify must be a bool"),
    ],
)
def test_train_test_split_rejects_bad_parameters(kwargs, match):
    with pytest.raises(InvalidParameterError, match=match):
        train_test_split(load_iris(), **kwargs)


def test_train_test_split_explains_impossible_stratification():
    ds = Dataset(np.zeros((5, 1)), [0, 0, 0, 0, 1])
    with pytest.raises(InvalidParameterError, match="stratify=False"):
        train_test_split(ds, test_size=0.4)
    train, test = train_test_split(ds, test_size=0.4, stratify=False)
    assert len(train) + len(test) == 5


# --------------------------------------------------------------------------- bundled


def test_load_digits_is_sklearn_digits_as_images():
    from sklearn.datasets import load_digits as sk_digits

    ds = load_digits()
    assert ds.X.shape == (1797, 1, 8, 8) and ds.X.dtype == np.float64
    assert ds.X.min() == 0.0 and ds.X.max() == 1.0
    np.testing.assert_array_equal(ds.X[:, 0] * 16.0, sk_digits().images)
    assert ds.image_shape == (1, 8, 8) and ds.n_classes == 10
    assert ds.feature_names[9] == "pixel_1_1" and len(ds.feature_names) == 64
    np.testing.assert_array_equal(ds.X.reshape(len(ds), -1)[:, 9], ds.X[:, 0, 1, 1])


@pytest.mark.parametrize(
    "loader, shape, first_feature, target_names",
    [
        (load_breast_cancer, (569, 30), "mean radius", ("malignant", "benign")),
        (load_wine, (178, 13), "alcohol", ("class_0", "class_1", "class_2")),
        (load_iris, (150, 4), "sepal length (cm)", ("setosa", "versicolor", "virginica")),
    ],
)
def test_bundled_tabular(loader, shape, first_feature, target_names):
    ds = loader()
    assert ds.X.shape == shape and ds.y.dtype == np.int64
    assert ds.feature_names[0] == first_feature and ds.target_names == target_names


# --------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("shape", [(7,), (3, 4), (2, 3, 4), (2, 1, 3, 2)])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path, dtype, shape, suffix):
    n = int(np.prod(shape))
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else np.finfo(dtype)
    span = float(info.max) / 2 if np.issubdtype(dtype, np.integer) else 1e6
    values = np.linspace(-span if info.min < 0 else 0.0, span, n)  # spans sign and magnitude
    array = values.astype(dtype).reshape(shape)
    array.flat[0] = info.max  # extremes catch byte-order mistakes
    path = save_idx(tmp_path / f"a{suffix}", array)
    assert path.read_bytes()[:2] == (b"\x1f\x8b" if suffix else b"\x00\x00")
    back = load_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == shape
    np.testing.assert_array_equal(back, array)
    assert back.flags.writeable


def test_save_idx_writes_the_documented_layout(tmp_path):
    array = np.array([[1, -2, 258]], dtype=np.int16)
    save_idx(tmp_path / "x", array)
    assert (tmp_path / "x").read_bytes() == idx_bytes(0x0B, (1, 3), b"\x00\x01\xff\xfe\x01\x02")


@pytest.mark.parametrize(
    "code, fmt, values",
    [
        (0x08, ">6B", [0, 1, 2, 127, 128, 255]),
        (0x09, ">6b", [-128, -1, 0, 1, 2, 127]),
        (0x0B, ">6h", [-32768, -1, 0, 1, 258, 32767]),
        (0x0C, ">6i", [-(2**31), -1, 0, 1, 65536, 2**31 - 1]),
        (0x0D, ">6f", [-1.5, 0.0, 0.25, 1.0, 3.0, 1e10]),
        (0x0E, ">6d", [-1.5, 0.0, 0.1, 1.0, 3.0, 1e300]),
    ],
)
@pytest.mark.parametrize("gz", [False, True])
def test_load_idx_reads_hand_crafted_files(tmp_path, code, fmt, values, gz):
    # gzip is detected from the content: the compressed file has no .gz suffix and vice versa.
    name = "data.idx" if gz else "looks-compressed.gz"
    path = write(tmp_path / name, idx_bytes(code, (2, 3), struct.pack(fmt, *values)), gz=gz)
    got = load_idx(path)
    assert got.shape == (2, 3)
    np.testing.assert_array_equal(got.ravel(), np.array(values, dtype=got.dtype))
    assert got.dtype.isnative


def test_load_idx_reads_mnist_style_header(tmp_path):
    images = np.arange(2 * 2 * 3, dtype=np.uint8)
    # the MNIST magic number 2051 is exactly 00 00 08 03
    data = struct.pack(">iiii", 2051, 2, 2, 3) + images.tobytes()
    np.testing.assert_array_equal(load_idx(write(tmp_path / "m", data)), images.reshape(2, 2, 3))


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", r"expected a 4-byte IDX header.*found only 0 byte"),
        (b"\x01\x02\x08\x01" + struct.pack(">i", 1) + b"\x00", r"bad magic number.*00 00.*found 01 02"),
        (b"PK\x03\x04rest", r"bad magic number.*found 50 4b"),
        (idx_bytes(0x0A, (2,), b"\x00\x00"), r"unknown IDX type code 0x0A; expected one of 0x08 \(uint8\)"),
        (b"\x00\x00\x08\x00", "declares 0 dimensions; expected at least 1"),
        (b"\x00\x00\x08\x02" + struct.pack(">i", 3), r"truncated header: 2 dimension size\(s\) declared"),
        (idx_bytes(0x08, (2, 3), bytes(5)), r"truncated data.*shape \(2, 3\) of uint8 \(6 bytes\).*only 5 byte"),
        (idx_bytes(0x0C, (2,), bytes(7)), r"truncated data.*\(8 bytes\).*only 7 byte"),
        (idx_bytes(0x08, (2, 3), bytes(9)), r"3 unexpected trailing byte\(s\) after the 6 data bytes"),
    ],
)
@pytest.mark.parametrize("gz", [False, True])
def test_load_idx_rejects_corrupt_files(tmp_path, content, match, gz):
    path = write(tmp_path / "bad-file", content, gz=gz)
    with pytest.raises(DataFormatError, match=match) as info:
        load_idx(path)
    assert "bad-file" in str(info.value)  # the message names the file


def test_load_idx_rejects_truncated_gzip_stream(tmp_path):
    whole = gzip.compress(idx_bytes(0x08, (100,), bytes(range(100))))
    path = tmp_path / "cut.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataFormatError, match=r"cut\.gz.*corrupt or truncated gzip stream"):
        load_idx(path)


def test_idx_path_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_idx(tmp_path / "missing")
    with pytest.raises(InvalidParameterError, match="path must be a str"):
        load_idx(123)
    with pytest.raises(InvalidParameterError, match=r"dtype int64, which IDX cannot store.*astype"):
        save_idx(tmp_path / "x", np.arange(3))
    with pytest.raises(InvalidParameterError, match="dtype bool"):
        save_idx(tmp_path / "x", np.ones(3, dtype=bool))
    with pytest.raises(InvalidParameterError, match="1 to 255 dimensions"):
        save_idx(tmp_path / "x", np.uint8(3))


# --------------------------------------------------------------------------- MNIST / Fashion-MNIST


@pytest.mark.parametrize("layout", ["direct", "subfolder"])
@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_from_fake_directory(tmp_path, layout, gz):
    folder = tmp_path if layout == "direct" else tmp_path / "mnist"
    images, labels = write_pair(folder, "t10k", 12, gz)
    ds = load_mnist(tmp_path, split="test")
    assert ds.X.shape == (12, 1, 28, 28) and ds.X.dtype == np.float64
    np.testing.assert_array_equal(ds.X[:, 0], images / 255.0)
    np.testing.assert_array_equal(ds.y, labels)
    assert ds.y.dtype == np.int64 and ds.name == "mnist-test"
    assert ds.target_names == tuple("0123456789") and ds.feature_names[29] == "pixel_1_1"
    assert 0.0 <= ds.X.min() and ds.X.max() <= 1.0


def test_load_mnist_train_falls_back_to_train20k(tmp_path):
    write_pair(tmp_path / "mnist", "train20k", 6, gz=True)
    ds = load_mnist(tmp_path, split="train")
    assert len(ds) == 6 and ds.name == "mnist-train20k"
    assert "train20k" in ds.description and "were not found" in ds.description
    # the full training set wins when present
    write_pair(tmp_path / "mnist", "train", 8, gz=False)
    full = load_mnist(tmp_path / "mnist", split="train")
    assert len(full) == 8 and full.name == "mnist-train" and "train20k" not in full.description


def test_load_mnist_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte.*SCRUTINY_DATA_DIR"):
        load_mnist(tmp_path, split="test")
    with pytest.raises(FileNotFoundError, match="train20k-images-idx3-ubyte"):
        load_mnist(tmp_path, split="train")
    with pytest.raises(InvalidParameterError, match=r"split must be one of 'test', 'train'; got 'valid'"):
        load_mnist(tmp_path, split="valid")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_mnist(tmp_path / "nowhere", split="test")
    save_idx(tmp_path / "t10k-images-idx3-ubyte", fake_images(3))
    with pytest.raises(FileNotFoundError, match="companion 't10k-labels-idx1-ubyte'"):
        load_mnist(tmp_path, split="test")


def test_load_mnist_rejects_count_mismatch_and_bad_files(tmp_path):
    write_pair(tmp_path, "t10k", 5, gz=True, n_labels=4)
    with pytest.raises(DataFormatError, match=r"count mismatch.*5 images.*4 labels"):
        load_mnist(tmp_path, split="test")
    save_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([0, 1, 2, 3, 12], dtype=np.uint8))
    with pytest.raises(DataFormatError, match=r"labels must lie in 0\.\.9; found 12"):
        load_mnist(tmp_path, split="test")
    save_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((5, 4), dtype=np.uint8))
    with pytest.raises(DataFormatError, match=r"3-D uint8 array.*shape \(5, 4\)"):
        load_mnist(tmp_path, split="test")


def test_load_fashion_mnist_from_fake_directory(tmp_path):
    write_pair(tmp_path / "fashion-mnist", "train", 10, gz=True)
    ds = load_fashion_mnist(tmp_path)
    assert ds.X.shape == (10, 1, 28, 28) and ds.name == "fashion-mnist-train"
    assert ds.target_names == FASHION_MNIST_CLASSES and ds.target_names[9] == "Ankle boot"
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        load_fashion_mnist(tmp_path, split="test")
    (tmp_path / "mnist").mkdir()
    write_pair(tmp_path / "mnist", "train20k", 3, gz=False)
    with pytest.raises(FileNotFoundError):  # no train20k fallback for Fashion-MNIST
        load_fashion_mnist(tmp_path / "mnist")


def test_default_data_dir(tmp_path, monkeypatch):
    write_pair(tmp_path / "mnist", "t10k", 4, gz=True)
    monkeypatch.setenv("SCRUTINY_DATA_DIR", str(tmp_path))
    assert default_data_dir() == tmp_path.resolve()
    assert len(load_mnist(split="test")) == 4
    monkeypatch.setenv("SCRUTINY_DATA_DIR", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="SCRUTINY_DATA_DIR is set to .*missing"):
        default_data_dir()
    monkeypatch.delenv("SCRUTINY_DATA_DIR")
    monkeypatch.setattr(_paths, "_REPO_ROOT", tmp_path / "a" / "b")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="Pass data_dir=.*SCRUTINY_DATA_DIR"):
        default_data_dir()
    shared = tmp_path / "shared" / "data"
    shared.mkdir(parents=True)
    (tmp_path / "a").mkdir()
    monkeypatch.chdir(tmp_path / "a")  # ./../shared/data
    assert default_data_dir() == shared.resolve()


# --------------------------------------------------------------------------- CSV


def test_load_csv(tmp_path):
    path = tmp_path / "toy.csv"
    path.write_text("a, b ,label\n1,2.5,1\n\n3,-4e1,0\n5,6,1\n", encoding="utf-8")
    ds = load_csv(path, target="label")
    np.testing.assert_array_equal(ds.X, [[1, 2.5], [3, -40], [5, 6]])
    np.testing.assert_array_equal(ds.y, [1, 0, 1])
    assert ds.feature_names == ("a", "b") and ds.target_names is None and ds.name == "toy"
    by_index = load_csv(path, target=-1, feature_names=["b"])
    np.testing.assert_array_equal(by_index.X, [[2.5], [-40], [6]])
    as_target = load_csv(path, target=1)
    assert as_target.y.dtype == np.float64 and as_target.feature_names == ("a", "label")


def test_load_csv_target_encodings(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("x;y;s;neg\n1;0.5;yes;-1\n2;1.5;no;1\n3;2;yes;1\n", encoding="utf-8-sig")
    strings = load_csv(path, target="s", delimiter=";")
    np.testing.assert_array_equal(strings.y, [1, 0, 1])
    assert strings.target_names == ("no", "yes") and strings.feature_names == ("x", "y", "neg")
    signs = load_csv(path, target="neg", feature_names=["x", "y"], delimiter=";")
    np.testing.assert_array_equal(signs.y, [0, 1, 1])
    assert signs.target_names == ("-1", "1")
    assert load_csv(path, target="y", feature_names=["x"], delimiter=";").y.dtype == np.float64


@pytest.mark.parametrize(
    "text, kwargs, error, match",
    [
        ("a,b,label\n1,2,0\n3,oops,1\n", {}, InvalidParameterError,
         r"column 'b' has the non-numeric value 'oops' in data row 1 \(line 3 of .*bad\.csv"),
        ("a,b,label\n1,,0\n", {}, InvalidParameterError, r"column 'b' has an empty cell in data row 0"),
        ("a,b,label\n1,nan,0\n", {}, InvalidParameterError, r"column 'b' has the non-finite value 'nan'"),
        ("a,b,label\n1,2,0\n3,4\n", {}, DataFormatError, r"line 3 has 2 field\(s\); expected 3"),
        ("1,2,0\n3,4,1\n", {}, DataFormatError, "looks like data.*not a header"),
        ("a,a,label\n1,2,0\n", {}, DataFormatError, "names column 'a' more than once"),
        ("", {}, DataFormatError, "is empty"),
        ("a,b,label\n", {}, DataFormatError, "no data rows"),
        ("a,b,label\n1,2,0\n", {"target": "y"}, InvalidParameterError, r"target 'y' is not a column.*\['a', 'b', 'label'\]"),
        ("a,b,label\n1,2,0\n", {"target": 3}, InvalidParameterError, "target index 3 is out of range"),
        ("a,b,label\n1,2,0\n", {"feature_names": ["c"]}, InvalidParameterError, r"\['c'\] are not columns"),
        ("a,b,label\n1,2,0\n", {"delimiter": ",,"}, InvalidParameterError, "single character"),
        ("a,b,label\n1,2,\n", {}, InvalidParameterError, "target column 'label' is empty in data row 0"),
    ],
)
def test_load_csv_errors(tmp_path, text, kwargs, error, match):
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    kwargs = {"target": "label", **kwargs}
    with pytest.raises(error, match=match):
        load_csv(path, **kwargs)


def test_load_csv_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_csv(tmp_path / "none.csv", target=0)


def test_load_tabular_benchmark_fake(tmp_path):
    (tmp_path / "tabular").mkdir()
    path = tmp_path / "tabular" / "adult_data.csv"
    path.write_text("Over50K,Age_leq_21,Male\n0,1,0\n1,0,1\n1,0,0\n", encoding="utf-8")
    ds = load_tabular_benchmark(path)
    assert ds.name == "adult" and ds.feature_names == ("Age_leq_21", "Male")
    assert ds.target_names == ("Over50K=0", "Over50K=1")
    np.testing.assert_array_equal(ds.y, [0, 1, 1])
    by_name = load_tabular_benchmark("adult", data_dir=tmp_path)
    np.testing.assert_array_equal(by_name.X, ds.X)
    with pytest.raises(FileNotFoundError, match="benchmark 'mammo' not found"):
        load_tabular_benchmark("mammo", data_dir=tmp_path)
    bad = tmp_path / "three_data.csv"
    bad.write_text("label,x\n0,1\n2,1\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="must be a 0/1 label"):
        load_tabular_benchmark(bad)


_COMPAS_HEADER = (
    "sex,age,juvenile-felonies,juvenile-misdemeanors,juvenile-crimes,priors,current-charge-degree,"
    "recidivate-within-two-years\n"
)


def test_load_compas_fake(tmp_path):
    folder = tmp_path / "compas"
    folder.mkdir()
    (folder / "compas_test.csv").write_text(
        _COMPAS_HEADER + "Male,26-45,=0,=0,=0,>3,Felony,0\nFemale,18-20,>0,=0,>0,2-3,Misdemeanor,1\n", encoding="utf-8"
    )
    (folder / "compas_test-binary.csv").write_text(
        "sex:Male,age:18-20,priors:>3,recidivate-within-two-years:1\n1,0,1,0\n0,1,0,1\n", encoding="utf-8"
    )
    cat = load_compas(tmp_path, split="test", binary=False)
    assert cat.X.shape == (2, 19) and cat.name == "compas-test" and cat.target_names == ("no", "yes")
    row = dict(zip(cat.feature_names, cat.X[1]))
    assert row["sex=Female"] == 1 and row["sex=Male"] == 0 and row["age=18-20"] == 1
    assert row["juvenile-felonies>0"] == 1 and row["priors=2-3"] == 1 and row["current-charge-degree=Misdemeanor"] == 1
    assert cat.X.sum(axis=1).tolist() == [7.0, 7.0]  # exactly one level per column
    np.testing.assert_array_equal(cat.y, [0, 1])
    binary = load_compas(folder, split="test")
    assert binary.feature_names == ("sex:Male", "age:18-20", "priors:>3")
    np.testing.assert_array_equal(binary.y, [0, 1])
    with pytest.raises(FileNotFoundError, match="compas_train-binary.csv not found"):
        load_compas(tmp_path, split="train")
    (folder / "compas_test.csv").write_text(_COMPAS_HEADER + "Male,99-100,=0,=0,=0,>3,Felony,0\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"column 'age'.*unexpected value '99-100' at line 2"):
        load_compas(tmp_path, split="test", binary=False)
    with pytest.raises(InvalidParameterError, match="binary must be a bool"):
        load_compas(tmp_path, binary="yes")


# --------------------------------------------------------------------------- real files (skipped if absent)


def test_real_mnist_test_set():
    real("mnist")
    ds = load_mnist(REAL_DATA, split="test")
    assert ds.X.shape == (10000, 1, 28, 28) and ds.X.dtype == np.float64
    assert ds.X.min() == 0.0 and ds.X.max() == 1.0
    np.testing.assert_array_equal(np.bincount(ds.y), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
    # only the 20k subset of the training set is shipped
    train = load_mnist(REAL_DATA, split="train")
    assert train.X.shape == (20000, 1, 28, 28) and train.name == "mnist-train20k"
    # default segmentation parameters give the documented 20-60 superpixels on real digits
    counts = n_segments(segment(ds.X[:20], method="slic"))
    assert counts.min() >= 20 and counts.max() <= 60
    counts = n_segments(segment(ds.X[:20], method="quickshift"))
    assert counts.min() >= 10 and counts.max() <= 70


def test_real_fashion_mnist():
    real("fashion-mnist")
    train = load_fashion_mnist(REAL_DATA, split="train")
    assert train.X.shape == (60000, 1, 28, 28)
    assert abs(train.X.mean() * 255 - 72.94) < 0.01
    np.testing.assert_array_equal(np.bincount(train.y), np.full(10, 6000))
    test = load_fashion_mnist(REAL_DATA, split="test")
    assert abs(test.X.mean() * 255 - 73.15) < 0.01
    np.testing.assert_array_equal(np.bincount(test.y), np.full(10, 1000))


def test_real_compas_encodings_agree():
    real("compas")
    for split, n, rate in (("train", 6489, 2906 / 6489), ("test", 721, 344 / 721)):
        binary = load_compas(REAL_DATA, split=split)
        cat = load_compas(REAL_DATA, split=split, binary=False)
        assert binary.X.shape == (n, 14) and cat.X.shape == (n, 19)
        assert abs(binary.y.mean() - rate) < 1e-12
        np.testing.assert_array_equal(binary.y, cat.y)
        b = dict(zip(binary.feature_names, binary.X.T))
        c = dict(zip(cat.feature_names, cat.X.T))
        for bin_name, cat_name in [("sex:Male", "sex=Male"), ("age:18-20", "age=18-20"), ("age:>45", "age>45"),
                                   ("priors:>3", "priors>3"), ("priors:2-3", "priors=2-3"),
                                   ("juvenile-crimes:>0", "juvenile-crimes>0"),
                                   ("current-charge-degree:Misdemeanor", "current-charge-degree=Misdemeanor")]:
            np.testing.assert_array_equal(b[bin_name], c[cat_name])


def test_real_tabular_benchmarks():
    folder = real("tabular")
    adult = load_tabular_benchmark(folder / "adult_data.csv")
    assert adult.X.shape == (32561, 36) and adult.target_names == ("Over50K=0", "Over50K=1")
    assert set(np.unique(adult.X)) == {0.0, 1.0}
    cancer = load_tabular_benchmark("breastcancer", data_dir=REAL_DATA)
    assert cancer.X.shape == (683, 9)
    np.testing.assert_array_equal(np.bincount(cancer.y), [444, 239])
    assert "malignant" in cancer.description
