"""Small models and data files for the audit tests (written to tmp folders, never committed)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

FAST = """
sections = ["performance", "local", "dmm_men", "training_data", "generalisation"]
[local]
n_samples = 150
faithfulness_runs = 15
n_misclassified = 1
[dmm_men]
max_classes = 1
max_rows = 60
n_iter = 60
n_burnin = 30
n_features = 5
"""


def tabular_files(folder: Path, *, names=None, labels=None, seed: int = 0, hidden=(8,), n: int = 240) -> dict:
    """Two-class CSV data (train/test) and a skops MLP; returns the paths and the arrays."""
    import skops.io as sio
    from sklearn.neural_network import MLPClassifier

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 5))
    y = (X[:, 0] + 0.5 * X[:, 1] + 0.3 * rng.normal(size=n) > 0).astype(int)
    names = list(names or [f"f{i}" for i in range(5)])
    label_values = np.array(labels)[y] if labels is not None else y
    paths = {}
    for part, rows in (("train", slice(0, n * 3 // 4)), ("test", slice(n * 3 // 4, n))):
        with open(folder / f"{part}.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(names + ["label"])
            w.writerows([f"{v:.6g}" for v in X[rows][i]] + [str(label_values[rows][i])] for i in range(len(y[rows])))
        paths[part] = folder / f"{part}.csv"
    est = MLPClassifier(hidden, max_iter=800, random_state=seed).fit(X[: n * 3 // 4], y[: n * 3 // 4])
    sio.dump(est, folder / "model.skops")
    paths["model"] = folder / "model.skops"
    (folder / "audit.toml").write_text(FAST)
    paths["config"] = folder / "audit.toml"
    return {"paths": paths, "X": X, "y": y, "model": est, "n_train": n * 3 // 4}


def onnx_linear(path: Path, W: np.ndarray, b: np.ndarray) -> Path:
    """An ONNX softmax(x W + b) classifier, built with onnx.helper (no exporter needed)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Add", ["h", "b"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)],
        "linear", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, W.shape[0]])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, W.shape[1]])],
        [numpy_helper.from_array(W.astype(np.float32), "W"), numpy_helper.from_array(b.astype(np.float32), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path
