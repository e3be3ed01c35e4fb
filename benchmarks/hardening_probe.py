"""Issue 24's hardening probe: hostile and degenerate inputs, and what each one produces.

Each probe class runs a set of cases and counts their outcomes: ``ok`` (loaded / computed),
``warn:<Warning>``, ``scrutiny:<Error>`` (a scrutiny exception, the promise of the README) or
``RAW:<Error>`` / ``SILENT:<what>`` (a raw exception or a silently wrong value: a defect).
Run it against any checkout to compare before and after::

    PYTHONPATH=/work/main/src python benchmarks/hardening_probe.py --label before
    PYTHONPATH=src python benchmarks/hardening_probe.py --label after --json runs/probe.json

It also prints the Gauss-Legendre accuracy and time by ``n_steps`` (``--section quadrature``).
The KernelSHAP memory case runs in a child process under a 3 GB address-space limit, so a
checkout without the budget check fails there (MemoryError) instead of exhausting the machine.
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
import zipfile
from pathlib import Path

import numpy as np

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE))

from _common import format_table, write_json  # noqa: E402


def outcome(fn, silent=None) -> str:
    """Run ``fn()``; classify what happened. ``silent(result) -> str | None`` names a wrong value."""
    from scrutiny.exceptions import ScrutinyError

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = fn()
        except ScrutinyError as exc:
            return f"scrutiny:{type(exc).__name__}"
        except Exception as exc:  # noqa: BLE001 - the probe records raw errors
            return f"RAW:{type(exc).__name__}"
    ours = [w for w in caught if w.category.__module__.startswith("scrutiny")]
    if ours:
        return f"warn:{ours[0].category.__name__}"
    bad = silent(result) if silent else None
    return f"SILENT:{bad}" if bad else "ok"


def summary(outcomes: list[str]) -> str:
    counts = collections.Counter(outcomes)
    return ", ".join(f"{k} x{v}" if v > 1 else k for k, v in sorted(counts.items()))


# --------------------------------------------------------------------------- result files


def _explanation():
    from scrutiny.explanation import Explanation

    return Explanation(values=np.arange(12.0).reshape(3, 4), target=[0, 1, 0], method="demo",
                       params={"n": 8}, extras={"gap": np.array([0.1, 0.2, 0.3])})


def _npz(path, entries):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, value in entries.items():
            if isinstance(value, tuple):  # (shape,) of float64 zeros, streamed
                shape = value
                buf = io.BytesIO()
                np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": shape})
                with zf.open(name + ".npy", "w", force_zip64=True) as fh:
                    fh.write(buf.getvalue())
                    left = 8 * int(np.prod(shape))
                    chunk = bytes(2**20)
                    while left > 0:
                        fh.write(chunk[: min(left, len(chunk))])
                        left -= len(chunk)
            elif isinstance(value, bytes):
                zf.writestr(name + ".npy", value)
            else:
                buf = io.BytesIO()
                np.lib.format.write_array(buf, np.asarray(value), allow_pickle=False)
                zf.writestr(name + ".npy", buf.getvalue())
    return path


def probe_result_files(tmp: Path) -> list[tuple[str, int, str]]:
    from scrutiny.explanation import load_result

    rows = []
    raw = Path(_explanation().save(tmp / "valid.npz")).read_bytes()
    rng = np.random.default_rng(0)
    outs = []
    for i in range(300):
        buf = bytearray(raw)
        for _ in range(int(rng.integers(1, 4))):
            pos = int(rng.integers(len(buf)))
            buf[pos] = int(rng.integers(256))
        p = tmp / "mut.npz"
        p.write_bytes(bytes(buf))
        outs.append(outcome(lambda: load_result(p)))
    rows.append(("result file: byte mutations", 300, summary(outs)))

    base = {"type": "Explanation", "module": "scrutiny.explanation", "format_version": 1, "method": "m"}
    headers = {
        "a list": [1, 2], "a string": "x", "format_version '1'": {**base, "format_version": "1"},
        "unhashable type": {**base, "type": ["Explanation"]}, "missing method": {k: v for k, v in base.items() if k != "method"},
        "extras a list": {**base, "extras": [1]}, "ragged __array__": {**base, "params": {"a": {"__array__": [[1], [1, 2]]}}},
        "object dtype": {**base, "params": {"a": {"__array__": [1], "dtype": "O"}}},
        "bad __float__": {**base, "params": {"a": {"__float__": "x"}}},
    }
    outs = []
    arrays = {"values": np.ones((1, 2)), "target": np.zeros(1, dtype=np.int64)}
    for name, header in headers.items():
        p = _npz(tmp / "h.npz", {"__scrutiny_meta__": np.array(json.dumps(header)), **arrays})
        outs.append(outcome(lambda: load_result(p)))
    deep = '{"type": "Explanation", "format_version": 1, "method": "m", "params": {"a": ' + "[" * 5000 + "]" * 5000 + "}}"
    p = _npz(tmp / "deep.npz", {"__scrutiny_meta__": np.array(deep), **arrays})
    outs.append(outcome(lambda: load_result(p)))
    rows.append(("result file: malformed JSON headers", len(outs), summary(outs)))

    n = 2**25  # 256 MiB of zeros, ~260 kB deflated
    meta = np.array(json.dumps(base))
    for name, entries in [
        ("zip bomb: used entry (values)", {"__scrutiny_meta__": meta, "values": (1, n), "target": np.zeros(1, dtype=np.int64)}),
        ("zip bomb: unused entry", {"__scrutiny_meta__": meta, "values": np.ones((1, 2)),
                                    "target": np.zeros(1, dtype=np.int64), "junk": (n,)}),
    ]:
        p = _npz(tmp / "bomb.npz", entries)
        tracemalloc.start()
        res = outcome(lambda: load_result(p))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        rows.append((name, 1, f"{res}; peak {peak / 2**20:.0f} MiB (file {p.stat().st_size / 1e3:.0f} kB)"))
    hdr = io.BytesIO()
    np.lib.format.write_array_header_1_0(hdr, {"descr": "<f8", "fortran_order": False, "shape": (2**40,)})
    p = _npz(tmp / "huge.npz", {"__scrutiny_meta__": meta, "values": hdr.getvalue()})
    rows.append(("header declaring 8 TB", 1, outcome(lambda: load_result(p))))
    return rows


def probe_values(tmp: Path) -> list[tuple[str, int, str]]:
    from scrutiny.explanation import DataAttribution, Explanation, load_result

    def round_trip(e):
        return load_result(Path(e.save(tmp / "v.npz")))

    def differs(field, expected):
        def check(back):
            got = back.extras.get(field) if field in getattr(back, "extras", {}) else getattr(back, field)
            same = np.array_equal(np.asarray(got), np.asarray(expected)) if isinstance(expected, np.ndarray) else got == expected
            return None if same else f"{field} changed"
        return check

    cases = [
        ("complex values", lambda: round_trip(Explanation(values=np.ones((1, 2)) * (1 + 1j), target=[0], method="m")),
         lambda b: "imaginary part lost"),
        ("datetime values", lambda: round_trip(Explanation(values=np.array([["2020-01-01", "2021-01-01"]], dtype="datetime64[D]"),
                                                            target=[0], method="m")), lambda b: "dates lost"),
        ("NaN in Explanation", lambda: Explanation(values=np.array([[np.nan, 1.0]]), target=[0], method="m"),
         lambda b: "NaN accepted"),
        ("NaN in DataAttribution", lambda: DataAttribution(scores=np.array([[np.nan]]), method="m"), lambda b: "NaN accepted"),
        ("target 2**63", lambda: Explanation(values=np.ones((1, 2)), target=[2**63], method="m"),
         lambda b: None if b.target[0] == 2**63 else f"target became {b.target[0]}"),
        ("extras with '__float__' / '__array__' keys",
         lambda: round_trip(Explanation(values=np.ones((1, 2)), target=[0], method="m",
                                        extras={"k": {"__float__": 1.0, "__array__": [1]}})),
         differs("k", {"__float__": 1.0, "__array__": [1]})),
        ("save('')", lambda: _explanation().save(""), None),
    ]
    return [(name, 1, outcome(fn, silent)) for name, fn, silent in cases]


# --------------------------------------------------------------------------- cost cliffs


def probe_quadrature() -> list[tuple[str, int, str]]:
    from scrutiny.attribution import quadrature

    rows = []
    for n in (1000, 3000, 100_000):
        if n == 100_000 and rows and float(rows[-1][2].split()[0]) > 1.0:
            rows.append((f"IG gausslegendre nodes, n_steps={n}", 1, "skipped (the 3000-step rule took > 1 s: cubic)"))
            continue
        t = time.perf_counter()
        a, w = quadrature("gausslegendre", n)
        dt = time.perf_counter() - t
        err = abs(float(np.dot(w, np.cos(3 * a))) - np.sin(3.0) / 3)
        rows.append((f"IG gausslegendre nodes, n_steps={n}", 1, f"{dt:.3f} s, |int cos(3a) - sin(3)/3| = {err:.1e}"))
    return rows


_KSHAP_CHILD = """
import resource, numpy as np
resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))
from scrutiny.attribution import KernelSHAP
from scrutiny.exceptions import ScrutinyError
X = np.random.default_rng(0).normal(size=(3, 25))
try:
    KernelSHAP(lambda Z: Z.sum(1, keepdims=True), background=X, n_samples=2**25, random_state=0).explain(X[:1])
    print("ok")
except ScrutinyError as exc:
    print("scrutiny:" + type(exc).__name__)
except BaseException as exc:
    print("RAW:" + type(exc).__name__)
"""


def probe_budget() -> list[tuple[str, int, str]]:
    res = subprocess.run([sys.executable, "-c", _KSHAP_CHILD], capture_output=True, text=True, env=os.environ)
    out = (res.stdout.strip().splitlines() or [f"RAW:exit {res.returncode}"])[-1]
    return [("KernelSHAP n_samples=2**25, 25 features (3 GB limit)", 1, out)]


# --------------------------------------------------------------------------- silent wrong values, unwrapped errors


def _net(d=4, c=2):
    import torch

    net = torch.nn.Sequential(torch.nn.Linear(d, c)).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.as_tensor(np.arange(d * c, dtype=np.float64).reshape(c, d) / 10))
        net[0].bias.zero_()
    return net


def probe_silent() -> list[tuple[str, int, str]]:
    import torch

    from scrutiny.attribution import LIME, KernelSHAP, SmoothGrad
    from scrutiny.data_attribution import InfluenceFunctions, fit_to_optimum
    from scrutiny.nnk import NNK
    from scrutiny.surrogate import DMMMEN

    X = np.random.default_rng(0).normal(size=(30, 4))
    y = (X[:, 0] > 0).astype(np.int64)
    cases = [
        ("InfluenceFunctions CE, labels y + 0.9",
         lambda: InfluenceFunctions(_net(), "cross_entropy", l2=1e-2, check_optimum="ignore").fit(X, y + 0.9).attribute(X[:2]),
         lambda r: "labels floored"),
        ("fit_to_optimum at max_iter=1", lambda: fit_to_optimum(_net(), "cross_entropy", X, y, l2=1e-2, max_iter=1, newton=False),
         lambda r: "stopped unconverged" if r["grad_norm"] > 1e-6 else None),
        ("KernelSHAP, outputs +-1.7e308",
         lambda: KernelSHAP(lambda Z: np.sign(Z[:, :1]) * 1.7e308, background=X,
                            n_samples=64, space="raw", random_state=0).explain(X[:1]),
         lambda r: "NaN attributions" if not np.isfinite(r.values).all() else None),
        ("DMM-MEN, response x 1e300",
         lambda: DMMMEN(n_components=2, n_iter=50, n_burnin=20, random_state=0).fit(X, X @ np.ones(4) * 1e300),
         lambda r: "NaN diagnostics"),
        ("NNK gaussian, features x 1e200", lambda: NNK(k=5, kernel="gaussian").fit(X * 1e200, y).predict(X[:3] * 1e200),
         lambda r: "all-zero weights"),
        ("SmoothGrad, single feature", lambda: SmoothGrad(torch.nn.Linear(1, 2), n_samples=4, random_state=0).explain(
            np.ones((2, 1), dtype=np.float32)), lambda r: "no noise added"),
        ("LIME, constant model", lambda: LIME(lambda Z: np.full((len(Z), 1), 3.0), training_data=X, n_samples=300,
                                              random_state=0).explain(X[:3]),
         lambda r: None if np.all(r.extras["score"] >= 0) else f"score {float(np.min(r.extras['score'])):.3g}"),
    ]
    return [(name, 1, outcome(fn, silent)) for name, fn, silent in cases]


def probe_unwrapped(tmp: Path) -> list[tuple[str, int, str]]:
    import torch

    from scrutiny.attribution import IntegratedGradients, Saliency
    from scrutiny.data import load_csv, load_idx
    from scrutiny.data_attribution import InfluenceFunctions, RepresenterPoints
    from scrutiny.models import as_model

    X = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)

    class Argmax(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 3)

        def forward(self, x):
            return torch.nn.functional.one_hot(self.lin(x).argmax(1), 3).float()

    class Constant(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.b = torch.nn.Parameter(torch.zeros(2))

        def forward(self, x):
            return self.b.expand(x.shape[0], 2)

    class BrokenFeatures(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.head = torch.nn.Linear(4, 3), torch.nn.Linear(3, 2)

        def features(self, x):
            raise RuntimeError("boom")

        def forward(self, x):
            return self.head(self.body(x))

    class FailsLater(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin, self.calls = torch.nn.Linear(4, 2), 0

        def forward(self, x):
            self.calls += 1
            if self.calls > 1:
                raise ValueError("boom")
            return self.lin(x)

    idx = tmp / "deep.idx"
    idx.write_bytes(bytes([0, 0, 0x08, 65]) + struct.pack(">65i", *([1] * 65)) + b"\x00")
    csv = tmp / "latin1.csv"
    csv.write_bytes("caf\u00e9,label\n1,0\n2,1\n".encode("latin-1"))
    cases = [
        ("torch module on the meta device", lambda: Saliency(torch.nn.Linear(4, 2, device="meta")).explain(X[:2])),
        ("Saliency on an argmax model", lambda: Saliency(Argmax()).explain(X[:2], target=[0, 1])),
        ("IntegratedGradients on a constant model", lambda: IntegratedGradients(Constant()).explain(X[:2], target=[0, 1])),
        ("model raising inside features()", lambda: as_model(BrokenFeatures()).features(X)),
        ("model raising inside RepresenterPoints.fit", lambda: RepresenterPoints(BrokenFeatures()).fit(X, y)),
        ("model raising inside InfluenceFunctions.fit",
         lambda: InfluenceFunctions(FailsLater(), "cross_entropy", l2=1e-2, check_optimum="ignore").fit(X, y)),
        ("IDX file with 65 dimensions", lambda: load_idx(idx)),
        ("CSV file that is not UTF-8", lambda: load_csv(csv, target="label")),
    ]
    return [(name, 1, outcome(fn)) for name, fn in cases]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--label", default="", help="column title (e.g. before / after)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    import scrutiny

    rows: list[tuple[str, int, str]] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for section, fn in [("result files", lambda: probe_result_files(tmp)), ("values", lambda: probe_values(tmp)),
                            ("quadrature", probe_quadrature), ("budget", probe_budget),
                            ("silent", probe_silent), ("unwrapped", lambda: probe_unwrapped(tmp))]:
            rows.extend(fn())
    print(f"scrutiny from {Path(scrutiny.__file__).parent}")
    print(format_table(["probe", "cases", f"outcome {args.label}".strip()], [(a, str(b), c) for a, b, c in rows], right=[1]))
    if args.json:
        write_json(args.json, {"label": args.label, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
