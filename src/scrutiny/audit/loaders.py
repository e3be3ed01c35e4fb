"""Load the model and the data an audit runs on, never unpickling anything.

The model format is decided by the file's contents (magic bytes and the member names of a zip
archive), not by its extension; an extension that names another format is an error, so a
mislabelled file is caught before it is half-loaded. A pickle (any extension) is refused.

Formats: TorchScript (``torch.jit.load``), ``torch.export`` archives (``torch.export.load``),
a ``state_dict`` (``torch.load(weights_only=True)``) plus a zoo architecture (``arch``),
scikit-learn models saved with skops (loaded with an explicit trusted-type list checked against
:data:`SKOPS_ALLOWED_PREFIXES`), and ONNX through onnxruntime as a black box.
Data: CSV/Parquet with a label column, ``.npz`` with ``X`` and ``y``, IDX image + label files,
and a folder of PNG images with a ``labels.csv``/``labels.txt`` file.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..exceptions import DataFormatError, InvalidParameterError, MissingDependencyError

__all__ = ["LoadedModel", "LoadedData", "load_model", "load_data", "sniff_model_format", "sha256_file",
           "SAFE_FORMATS", "SKOPS_ALLOWED_PREFIXES"]

SAFE_FORMATS = "TorchScript, torch.export, a state_dict (+--arch), skops or ONNX"
# skops: types whose module starts with one of these may be trusted; anything else is refused.
SKOPS_ALLOWED_PREFIXES = ("sklearn.", "numpy.", "scipy.sparse.", "builtins.", "collections.")
_EXTENSIONS = {
    ".pt": ("torchscript", "state_dict", "torch_export"), ".pth": ("torchscript", "state_dict"),
    ".ts": ("torchscript",), ".pt2": ("torch_export",), ".skops": ("skops",), ".onnx": ("onnx",),
}
_PICKLE_EXTENSIONS = (".pkl", ".pickle", ".joblib", ".sav")


class LoadedModel(NamedTuple):
    """A loaded model: ``kind`` is ``"torch"``, ``"sklearn"`` or ``"onnx"``; ``adapter`` is its :class:`Model`."""

    kind: str
    format: str
    obj: Any
    adapter: Any
    path: str
    sha256: str


class LoadedData(NamedTuple):
    """A data set read from ``path`` (a :class:`scrutiny.data.Dataset`) with its hash."""

    dataset: Any
    path: str
    sha256: str
    format: str


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a file, or of a folder's files (sorted names and contents)."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _existing(path: Any, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise InvalidParameterError(f"{what} file {str(p)!r} does not exist; check the path.")
    return p


def _is_pickle(head: bytes) -> bool:
    # protocol 2-5 pickles start with PROTO (0x80) and the protocol number; joblib's zlib
    # containers wrap a pickle too and are refused by their extension.
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def sniff_model_format(path: str | Path) -> str:
    """The model format held in ``path``: torchscript, torch_export, state_dict, skops or onnx.

    Raises DataFormatError for a pickle (never loaded) or an unrecognised file, and when the
    extension names a different format than the contents.
    """
    p = _existing(path, "--model")
    if p.is_dir():
        raise DataFormatError(f"--model {str(p)!r} is a folder; give a model file ({SAFE_FORMATS}).")
    with open(p, "rb") as fh:
        head = fh.read(8)
    refuse = (f"--model {str(p)!r} is a pickle; scrutiny never unpickles. Save the model as {SAFE_FORMATS} "
              "(e.g. torch.jit.save, torch.export.save, torch.save(model.state_dict()), skops.io.dump).")
    if _is_pickle(head) or p.suffix.lower() in _PICKLE_EXTENSIONS:
        raise DataFormatError(refuse)
    if zipfile.is_zipfile(p):
        with zipfile.ZipFile(p) as zf:
            names = zf.namelist()
        if "schema.json" in names:
            fmt = "skops"
        elif any("/code/" in n or n.endswith("constants.pkl") for n in names):
            fmt = "torchscript"
        elif any("serialized_exported_program" in n or n.endswith("archive_format") for n in names):
            fmt = "torch_export"
        elif any(n.endswith("data.pkl") for n in names):
            fmt = "state_dict"
        else:
            raise DataFormatError(f"--model {str(p)!r} is a zip archive but not one scrutiny reads; "
                                  f"save the model as {SAFE_FORMATS}.")
    elif p.suffix.lower() == ".onnx" or head[:1] == b"\x08":  # ONNX protobuf: field 1 (ir_version) varint
        fmt = "onnx"
    else:
        raise DataFormatError(f"--model {str(p)!r} is not a model file scrutiny recognises; save it as {SAFE_FORMATS}.")
    allowed = _EXTENSIONS.get(p.suffix.lower())
    if allowed is not None and fmt not in allowed:
        raise DataFormatError(f"--model {str(p)!r} holds a {fmt} model but its extension says "
                              f"{' or '.join(allowed)}; rename it or save it in the format its name says.")
    return fmt


def _skops(p: Path) -> Any:
    try:
        import skops.io as sio
    except ImportError as exc:  # pragma: no cover - skops is in the audit extra
        raise MissingDependencyError("reading a .skops model needs skops: pip install 'scrutiny[audit]'") from exc
    untrusted = sio.get_untrusted_types(file=p)
    bad = [t for t in untrusted if not t.startswith(SKOPS_ALLOWED_PREFIXES)]
    if bad:
        raise DataFormatError(f"--model {str(p)!r} contains types outside the allow-list "
                              f"({', '.join(SKOPS_ALLOWED_PREFIXES)}): {', '.join(sorted(bad))}; scrutiny will not load them.")
    return sio.load(p, trusted=list(untrusted))


def _onnx(p: Path) -> Any:
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover
        raise MissingDependencyError("reading an .onnx model needs onnxruntime: pip install 'scrutiny[audit]'") from exc
    try:
        session = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise DataFormatError(f"--model {str(p)!r} is not a valid ONNX model ({exc}).") from exc
    inp = session.get_inputs()[0]
    outputs = session.get_outputs()
    # skl2onnx classifiers return (label, probabilities); take the float tensor of probabilities.
    pick = next((i for i, o in enumerate(outputs) if "prob" in o.name.lower()), len(outputs) - 1)
    proba = "prob" in outputs[pick].name.lower()

    def predict(X: np.ndarray) -> np.ndarray:
        out = session.run([outputs[pick].name], {inp.name: np.asarray(X, dtype=np.float32)})[0]
        if isinstance(out, list):  # ZipMap output: list of {class: prob}
            out = np.array([[d[k] for k in sorted(d)] for d in out])
        return np.asarray(out, dtype=np.float64)

    return predict, ("probability" if proba else "logit")


def _exported_class() -> Any:
    import torch

    class Exported(torch.nn.Module):
        """A ``torch.export`` program as a module: it refuses ``eval()``, so train/eval only set the flag.
        A program exported with a static batch size is called in chunks of that size (the last one padded)."""

        def __init__(self, program: Any, batch: int | None) -> None:
            super().__init__()
            self.program = program
            self.batch = batch

        def train(self, mode: bool = True) -> Any:
            self.training = mode
            return self

        def forward(self, x: Any) -> Any:
            try:
                return self.program(x)
            except Exception:  # a static batch dimension (the export's guard failed)
                if not self.batch:
                    raise
            b, n, outs = self.batch, x.shape[0], []
            for i in range(0, n, b):
                chunk = x[i:i + b]
                pad = b - chunk.shape[0]
                if pad:
                    chunk = torch.cat([chunk, chunk[-1:].expand(pad, *chunk.shape[1:])])
                outs.append(self.program(chunk)[: b - pad])
            return torch.cat(outs)

    return Exported


def _Exported(ep: Any) -> Any:
    example = getattr(ep, "example_inputs", None)
    try:
        batch = int(example[0][0].shape[0])
    except (TypeError, IndexError, AttributeError):
        batch = None
    return _exported_class()(ep.module(), batch)


def _torch_model(p: Path, fmt: str, arch: str | None, data: Any) -> Any:
    import torch

    if fmt == "torchscript":
        return torch.jit.load(str(p), map_location="cpu").eval()
    if fmt == "torch_export":
        return _Exported(torch.export.load(str(p)))
    if not arch:
        raise InvalidParameterError(f"--model {str(p)!r} is a state_dict; give its architecture with --arch "
                                    "(one of: logistic, mlp, cnn).")
    from ..zoo import make_model

    if data is None:
        raise InvalidParameterError("--arch needs the data to know the input shape; give --data.")
    shape = data.image_shape or (data.n_features,)
    net = make_model(arch, shape, int(data.n_classes))
    state = torch.load(str(p), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    try:
        net.load_state_dict(state)
    except (RuntimeError, TypeError) as exc:
        raise DataFormatError(f"--model {str(p)!r} does not fit --arch {arch!r} for inputs of shape {shape} "
                              f"and {data.n_classes} classes: {str(exc).splitlines()[0]}") from exc
    return net.eval()


def load_model(path: str | Path, *, arch: str | None = None, data: Any = None) -> LoadedModel:
    """Load a model file (see the module docstring) and wrap it with :func:`scrutiny.as_model`."""
    from ..models import CallableModel, as_model

    p = Path(path)
    fmt = sniff_model_format(p)
    if fmt == "skops":
        est = _skops(p)
        return LoadedModel("sklearn", fmt, est, as_model(est), str(p), sha256_file(p))
    if fmt == "onnx":
        fn, output = _onnx(p)
        return LoadedModel("onnx", fmt, fn, CallableModel(fn, output=output), str(p), sha256_file(p))
    net = _torch_model(p, fmt, arch, data)
    return LoadedModel("torch", fmt, net, as_model(net, output="logit"), str(p), sha256_file(p))


def _dataset(X: Any, y: Any, name: str, **kw: Any) -> Any:
    from ..data import Dataset

    return Dataset(np.asarray(X, dtype=np.float64), np.asarray(y), name=name, **kw)


def _table(p: Path, label: str | None) -> tuple[Any, str]:
    if p.suffix.lower() == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:  # pragma: no cover
            raise MissingDependencyError("reading Parquet needs pyarrow: pip install 'scrutiny[audit]'") from exc
        table = pq.read_table(p)
        cols = table.column_names
        lab = label or ("label" if "label" in cols else cols[-1])
        if lab not in cols:
            raise InvalidParameterError(f"--label {lab!r} is not a column of {str(p)!r}; columns: {', '.join(cols)}.")
        feats = [c for c in cols if c != lab]
        X = np.column_stack([table.column(c).to_numpy(zero_copy_only=False) for c in feats]).astype(np.float64)
        y = table.column(lab).to_numpy(zero_copy_only=False)
        return _dataset(X, y, p.stem, feature_names=tuple(feats)), "parquet"
    from ..data import load_csv

    import csv

    with open(p, encoding="utf-8-sig", newline="") as fh:
        header = next(csv.reader(fh), [])
    if label is not None and label not in header:
        raise InvalidParameterError(f"--label {label!r} is not a column of {str(p)!r}; columns: {', '.join(header)}.")
    target = label if label is not None else ("label" if "label" in header else -1)
    return load_csv(p, target), "csv"


def _png_folder(p: Path) -> Any:
    from PIL import Image

    labels_file = next((p / n for n in ("labels.csv", "labels.txt") if (p / n).exists()), None)
    if labels_file is None:
        raise InvalidParameterError(f"--data folder {str(p)!r} has no labels.csv or labels.txt "
                                    "(lines 'file.png,label').")
    rows = [ln.split(",") for ln in labels_file.read_text().splitlines() if ln.strip()]
    if rows and not rows[0][-1].strip().lstrip("-").isdigit():
        rows = rows[1:]  # header
    images, y = [], []
    for name, lab in ((r[0].strip(), r[-1].strip()) for r in rows):
        f = p / name
        if not f.exists():
            raise InvalidParameterError(f"{str(labels_file)!r} names {name!r}, which is not in {str(p)!r}.")
        arr = np.asarray(Image.open(f), dtype=np.float64) / 255.0
        images.append(arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0))
        y.append(int(lab))
    shapes = {a.shape for a in images}
    if len(shapes) != 1:
        raise DataFormatError(f"--data images in {str(p)!r} have different shapes {sorted(shapes)}; resize them to one.")
    return _dataset(np.stack(images), np.array(y), p.name)


def load_data(path: str | Path, *, label: str | None = None, labels: str | Path | None = None,
              what: str = "--data") -> LoadedData:
    """Read a data set: CSV/Parquet (``label`` column, default ``label`` or the last), ``.npz``
    (``X``, ``y``), IDX images (``labels``: the IDX label file) or a PNG folder with labels."""
    p = _existing(path, what)
    suffix = p.suffix.lower()
    if p.is_dir():
        ds, fmt = _png_folder(p), "png-folder"
    elif suffix in (".csv", ".parquet"):
        ds, fmt = _table(p, label)
    elif suffix == ".npz":
        with np.load(p, allow_pickle=False) as z:
            if "X" not in z or "y" not in z:
                raise DataFormatError(f"{what} {str(p)!r} must hold arrays 'X' and 'y'; it holds {', '.join(z.files)}.")
            X, y = z["X"], z["y"]
        if len(X) != len(y):
            raise DataFormatError(f"{what} {str(p)!r}: X has {len(X)} rows but y has {len(y)}; they must match.")
        ds, fmt = _dataset(X, y, p.stem), "npz"
    elif "idx" in suffix or p.name.endswith("-ubyte") or suffix == ".gz":
        from ..data import load_idx

        if labels is None:
            raise InvalidParameterError(f"{what} {str(p)!r} is an IDX image file; give the label file with --labels.")
        X = np.asarray(load_idx(p), dtype=np.float64)
        y = load_idx(labels)
        X = X / 255.0 if X.max() > 1 else X
        ds, fmt = _dataset(X[:, None] if X.ndim == 3 else X, y, p.stem), "idx"
    else:
        raise DataFormatError(f"{what} {str(p)!r}: unknown data format {suffix or '(no extension)'!r}; "
                              "use .csv, .parquet, .npz, IDX (+--labels) or a folder of PNG images.")
    return LoadedData(ds, str(p), sha256_file(p), fmt)


def check_compatible(model: LoadedModel, data: Any) -> None:
    """Raise DataFormatError naming both shapes when the model cannot take the data's rows."""
    try:
        out = model.adapter.predict(data.X[:2])
    except Exception as exc:  # any framework error means: wrong input shape or type
        raise DataFormatError(f"the model cannot take rows of shape {tuple(data.X.shape[1:])} from the data "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); check --data/--model.") from exc
    if data.n_classes is not None and out.shape[1] < int(data.y.max()) + 1:
        raise DataFormatError(f"the model has {out.shape[1]} outputs but the labels go up to {int(data.y.max())}; "
                              "check that --data and --model belong together.")
