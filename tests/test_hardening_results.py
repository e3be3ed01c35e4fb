"""The one result reader on hostile files, and the result types' refusal of silent-wrong values."""

import io
import json
import tracemalloc
import zipfile

import numpy as np
import pytest

from scrutiny.exceptions import DataFormatError, InvalidParameterError
from scrutiny.explanation import DataAttribution, Explanation, MetricResult, load_result


def small():
    return Explanation(values=np.arange(6.0).reshape(2, 3), target=[0, 1], method="demo",
                       params={"n": 3}, extras={"gap": np.array([0.1, 0.2]), "note": "x"})


def write_npz(path, entries, compression=zipfile.ZIP_DEFLATED):
    """Write a zip of .npy entries by hand (values: arrays or raw bytes)."""
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, value in entries.items():
            if isinstance(value, bytes):
                zf.writestr(name + ".npy", value)
            else:
                buf = io.BytesIO()
                np.lib.format.write_array(buf, np.asarray(value), allow_pickle=False)
                zf.writestr(name + ".npy", buf.getvalue())
    return path


def _npy(arr):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=False)
    return buf.getvalue()


def meta(**overrides):
    m = {"type": "Explanation", "module": "scrutiny.explanation", "format_version": 1, "method": "demo",
         "params": {}, "extras": {}}
    m.update(overrides)
    return np.array(json.dumps(m))


def write_zeros_entry(zf, name, shape):
    """A deflated .npy entry of float64 zeros, streamed in 1 MiB chunks (a zip bomb, cheaply)."""
    with zf.open(name + ".npy", "w", force_zip64=True) as fh:
        fh.write(npy_header(shape))
        left, chunk = 8 * int(np.prod(shape)), bytes(2**20)
        while left > 0:
            fh.write(chunk[: min(left, len(chunk))])
            left -= len(chunk)


def npy_header(shape, dtype="<f8"):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue()


# --------------------------------------------------------------------------- zip bombs and sizes


BOMB = 2**24  # float64 zeros: 128 MiB inflated, ~130 kB deflated, over the default 64 MiB floor


def test_zip_bomb_in_a_used_entry_is_refused_before_inflating(tmp_path):
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("__scrutiny_meta__.npy", _npy(meta()))
        write_zeros_entry(zf, "values", (1, BOMB))
        zf.writestr("target.npy", _npy(np.zeros(1, dtype=np.int64)))
    tracemalloc.start()
    with pytest.raises(DataFormatError, match=r"bomb\.npz: the arrays would take 134,217,\d+ bytes .*max_bytes"):
        load_result(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 8 * 2**20


def test_entries_the_format_does_not_use_are_refused_unread(tmp_path):
    path = small().save(tmp_path / "e.npz")
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        write_zeros_entry(zf, "unused", (BOMB,))  # an entry the format does not use
    tracemalloc.start()
    with pytest.raises(DataFormatError, match=r"entries a saved Explanation does not have: \['unused.npy'\]"):
        load_result(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 8 * 2**20  # never inflated


def test_header_declaring_8_terabytes_is_refused_without_allocating(tmp_path):
    data = npy_header((2**40,))  # 8 TB of float64, no data behind it
    path = write_npz(tmp_path / "huge.npz", {"__scrutiny_meta__": meta(), "values": data})
    with pytest.raises(DataFormatError, match=r"huge\.npz: entry 'values' declares shape \(1099511627776,\).*corrupted"):
        load_result(path)


def test_max_bytes_is_honoured_and_validated(tmp_path):
    path = small().save(tmp_path / "e.npz")
    with pytest.raises(DataFormatError, match="over the (remaining )?limit of .*larger max_bytes"):
        load_result(path, max_bytes=100)
    assert load_result(path, max_bytes=10_000).method == "demo"
    with pytest.raises(InvalidParameterError, match="max_bytes must be a positive int"):
        load_result(path, max_bytes=0)


# --------------------------------------------------------------------------- raw errors become DataFormatError


def test_truncated_and_garbage_files_raise_data_format_error(tmp_path):
    raw = small().save(tmp_path / "e.npz").read_bytes()
    for i, blob in enumerate([raw[: len(raw) // 2], b"", b"PK\x03\x04garbage", raw[:-30]]):
        p = tmp_path / f"bad{i}.npz"
        p.write_bytes(blob)
        with pytest.raises(DataFormatError, match=f"bad{i}.npz"):
            load_result(p)
    with pytest.raises(DataFormatError, match="no such result file"):
        load_result(tmp_path / "missing.npz")


@pytest.mark.parametrize(
    "header,match",
    [
        ([1, 2], "must be a JSON object; got a list"),
        ("text", "must be a JSON object; got a str"),
        ({"type": ["Explanation"]}, "must name its result type as a string"),
        ({"type": "Explanation", "format_version": "1"}, "malformed format_version '1'"),
        ({"type": "Explanation", "format_version": 1}, r"lacks the required field\(s\) \['method'\]"),
        ({"type": "Explanation", "format_version": 1, "method": "m", "extras": [1]}, "'extras' must be a JSON object"),
        ({"type": "Explanation", "format_version": 1, "method": "m", "params": {"a": {"__array__": [[1], [1, 2]]}}},
         "not a regular float64 array"),
        ({"type": "Explanation", "format_version": 1, "method": "m", "params": {"a": {"__array__": [1], "dtype": "O"}}},
         "dtype object"),
        ({"type": "Explanation", "format_version": 1, "method": "m", "params": {"a": {"__float__": "x"}}},
         "'__float__' entry must be"),
        ({"type": "Nope", "format_version": 1}, "unknown result type 'Nope'"),
    ],
)
def test_malformed_headers_name_the_problem(tmp_path, header, match):
    path = write_npz(tmp_path / "h.npz", {"__scrutiny_meta__": np.array(json.dumps(header)),
                                          "values": np.ones((1, 2)), "target": np.zeros(1, dtype=np.int64)})
    with pytest.raises(DataFormatError, match=match):
        load_result(path)


def test_deeply_nested_header_is_refused(tmp_path):
    deep = '{"type": "Explanation", "format_version": 1, "method": "m", "params": {"a": ' + "[" * 5000 + "]" * 5000 + "}}"
    path = write_npz(tmp_path / "deep.npz", {"__scrutiny_meta__": np.array(deep)})
    with pytest.raises(DataFormatError, match="nested"):
        load_result(path)
    with pytest.raises(DataFormatError, match="nested deeper than 64"):
        Explanation.from_dict({**small().to_dict(), "params": {"a": json.loads("[" * 100 + "]" * 100)}})  # 100 < recursion limit


def test_from_dict_with_bad_arrays_is_a_data_format_error():
    d = small().to_dict()
    d["arrays"]["values"]["shape"] = [5, 5]
    with pytest.raises(DataFormatError, match="array 'values' is not a regular float64 array"):
        Explanation.from_dict(d)


# --------------------------------------------------------------------------- values that used to go wrong silently


def test_complex_and_datetime_values_are_refused():
    with pytest.raises(InvalidParameterError, match="values must be a real numeric array.*complex128"):
        Explanation(values=np.ones((1, 2)) * 1j, target=[0], method="m")
    with pytest.raises(InvalidParameterError, match="datetime64"):
        Explanation(values=np.array([["2020-01-01"]], dtype="datetime64[D]"), target=[0], method="m")
    with pytest.raises(InvalidParameterError, match=r"extras\['z'\] has dtype complex128"):
        Explanation(values=np.ones((1, 2)), target=[0], method="m", extras={"z": np.ones(2) * 1j})


def test_nan_is_refused_by_explanation_and_data_attribution():
    with pytest.raises(InvalidParameterError, match="values must be finite; got 1 NaN/inf"):
        Explanation(values=np.array([[1.0, np.nan]]), target=[0], method="m")
    with pytest.raises(InvalidParameterError, match="scores must be finite"):
        DataAttribution(scores=np.array([[np.nan]]), method="m")
    with pytest.raises(InvalidParameterError, match="values must be finite"):
        MetricResult(name="m", values=[np.nan], higher_is_better=True)


def test_targets_beyond_int64_are_refused_not_wrapped():
    for bad in ([2**63], [float(2**63)], np.array([2**63], dtype=np.uint64)):
        with pytest.raises(InvalidParameterError, match="target must fit in int64"):
            Explanation(values=np.ones((1, 2)), target=bad, method="m")
    with pytest.raises(InvalidParameterError, match="target must hold integers"):
        Explanation(values=np.ones((1, 2)), target=[0.5], method="m")
    assert Explanation(values=np.ones((1, 2)), target=[2**63 - 1], method="m").target[0] == 2**63 - 1


def test_extras_keys_colliding_with_json_tags_round_trip(tmp_path):
    tricky = {"__float__": 1.0, "__array__": [1, 2], "dtype": "x", "__dict__": {"__result__": 3}}
    e = Explanation(values=np.ones((1, 2)), target=[0], method="m",
                    extras={"nested": tricky, "__array__": "top"}, params={"p": tricky})
    for back in (load_result(e.save(tmp_path / "t.npz")), Explanation.from_dict(json.loads(json.dumps(e.to_dict())))):
        assert back.extras["nested"] == tricky
        assert back.extras["__array__"] == "top"
        assert back.params["p"] == tricky


def test_save_to_an_empty_path_is_a_scrutiny_error():
    with pytest.raises(InvalidParameterError, match="path must name a file to write"):
        small().save("")
