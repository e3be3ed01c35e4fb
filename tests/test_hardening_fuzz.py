"""Fuzzing the readers of untrusted files: every case loads or raises a scrutiny exception.

Seeded and derandomized (the same cases every run), a few hundred examples per target; peak
Python memory is measured with tracemalloc over every case of a target and must stay small
(the readers check declared sizes before allocating).
"""

import gzip
import io
import json
import os
import shutil
import tempfile
import tracemalloc

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from scrutiny.data import load_csv, load_idx, save_idx  # noqa: E402
from scrutiny.exceptions import ScrutinyError  # noqa: E402
from scrutiny.explanation import DataAttribution, Explanation, load_result  # noqa: E402

FUZZ = settings(max_examples=300, derandomize=True, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))
PEAK_BYTES = 16 * 2**20  # far below the 64 MiB floor of max_bytes: nothing large is ever allocated
_DIR = tempfile.mkdtemp(prefix="scrutiny-fuzz-")  # one folder per run (hypothesis reuses no pytest fixtures)


@pytest.fixture(scope="module", autouse=True)
def _remove_the_folder():
    yield
    shutil.rmtree(_DIR, ignore_errors=True)


def _bytes_of(save):
    path = os.path.join(_DIR, "seed")
    written = save(path)
    with open(written, "rb") as fh:
        return fh.read()


def _valid_result_bytes():
    e = Explanation(values=np.arange(12.0).reshape(3, 4), target=[0, 1, 0], method="demo",
                    base_values=[0.5, 0.25, 0.0], params={"n_steps": 8, "tag": {"a": [1, 2]}},
                    extras={"gap": np.array([0.1, 0.2, 0.3]), "note": "x"})
    return _bytes_of(e.save)


RESULT = _valid_result_bytes()
IDX = _bytes_of(lambda p: save_idx(p + ".idx", np.arange(60, dtype=np.uint8).reshape(3, 4, 5)))
IDX_GZ = gzip.compress(IDX, mtime=0)
CSV = b"a,b,label\n1.5,2,0\n-3,4e2,1\n0,0.25,1\n"


def mutate(data: bytes, edits) -> bytes:
    """Apply (kind, position, value) edits: overwrite a byte, delete a byte, insert a byte, truncate."""
    buf = bytearray(data)
    for kind, pos, value in edits:
        if not buf:
            break
        pos %= len(buf)
        if kind == 0:
            buf[pos] = value
        elif kind == 1:
            del buf[pos]
        elif kind == 2:
            buf.insert(pos, value)
        else:
            del buf[pos:]
    return bytes(buf)


EDITS = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2**31), st.integers(0, 255)), min_size=1, max_size=4)


class _Peak:
    """The largest tracemalloc peak over the reader calls of one test (hypothesis's own
    bookkeeping is outside the measured window)."""

    def __init__(self):
        self.peak = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def load(self, reader, path):
        """Run ``reader(path)``: it must load or raise a ScrutinyError."""
        tracemalloc.start()
        try:
            reader(path)
        except ScrutinyError:
            pass
        finally:
            self.peak = max(self.peak, tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()


def _write(name: str, data: bytes) -> str:
    path = os.path.join(_DIR, name)
    with open(path, "wb") as fh:
        fh.write(data)
    return path


def test_result_file_byte_mutations():
    p = _Peak()

    @FUZZ
    @given(EDITS)
    def case(edits):
        p.load(load_result, _write("r.npz", mutate(RESULT, edits)))

    case()
    assert p.peak < PEAK_BYTES


def test_idx_file_byte_mutations():
    p = _Peak()

    @FUZZ
    @given(EDITS, st.booleans())
    def case(edits, gz):
        p.load(load_idx, _write("m.idx.gz" if gz else "m.idx", mutate(IDX_GZ if gz else IDX, edits)))

    case()
    assert p.peak < PEAK_BYTES


def test_csv_file_byte_mutations():
    p = _Peak()

    @FUZZ
    @given(EDITS)
    def case(edits):
        p.load(lambda q: load_csv(q, target="label"), _write("m.csv", mutate(CSV, edits)))

    case()
    assert p.peak < PEAK_BYTES


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=8)
    | st.sampled_from(["__array__", "__float__", "__result__", "__dict__", "Explanation", "float64", "O"]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["type", "format_version", "method", "params", "extras", "__array__",
                                       "dtype", "__float__", "__dict__", "__result__", "arrays", "data", "shape"])
                      | st.text(max_size=4), children, max_size=4),
    max_leaves=12,
)
FIELDS = ["type", "module", "format_version", "method", "params", "extras", "feature_names", "convention", "arrays"]


def test_generated_malformed_json_headers():
    valid = Explanation(values=np.ones((2, 3)), target=[0, 1], method="m").to_dict()
    valid_da = DataAttribution(scores=np.ones((2, 3)), method="m").to_dict()
    arrays = {"values": np.ones((2, 3)), "target": np.zeros(2, dtype=np.int64)}
    p = _Peak()

    @FUZZ
    @given(st.sampled_from([valid, valid_da]), st.sampled_from(FIELDS), JSON, st.booleans())
    def case(base, field, value, whole):
        header = value if whole else {**base, field: value}
        p.load(Explanation.from_dict, header)  # the dict form (a non-dict is refused too)
        buf = io.BytesIO()  # the file form: the header as the JSON entry of a result file
        np.savez_compressed(buf, __scrutiny_meta__=np.array(json.dumps(header)), **arrays)
        p.load(load_result, _write("h.npz", buf.getvalue()))

    case()
    assert p.peak < PEAK_BYTES
