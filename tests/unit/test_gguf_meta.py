"""rmr1.backends.gguf_meta: the fast metadata reader agrees with gguf's own reader field by field."""

from __future__ import annotations

from pathlib import Path

import pytest

gguf = pytest.importorskip("gguf")

from rmr1.backends.gguf_meta import read_metadata  # noqa: E402
from rmr1.errors import ModelLoadError  # noqa: E402

TOKENS = ["<|endoftext|>", "a", "Ġthe", "é", "日本", ""]


def _write(path: Path, endian: object = None) -> Path:
    kwargs = {"endianess": endian} if endian is not None else {}
    writer = gguf.GGUFWriter(str(path), "llama", **kwargs)
    writer.add_context_length(8192)
    writer.add_uint8("t.u8", 200)
    writer.add_int8("t.i8", -3)
    writer.add_uint16("t.u16", 65000)
    writer.add_int16("t.i16", -32000)
    writer.add_int32("t.i32", -7)
    writer.add_float32("t.f32", 0.5)
    writer.add_bool("t.bool", True)
    writer.add_uint64("t.u64", 2**40)
    writer.add_int64("t.i64", -(2**40))
    writer.add_float64("t.f64", 1e-300)
    writer.add_string("t.str", "chat {{ template }}")
    writer.add_token_list(TOKENS)
    writer.add_array("t.ints", [1, 2, 3])
    writer.add_array("t.floats", [0.25, -1.5])
    writer.add_array("t.nested", [[1, 2], [3]])
    writer.add_uint32("t.after", 42)  # a scalar after the arrays: skipping them must land on it
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.mark.parametrize("endian", ["little", "big"])
def test_every_field_matches_ggufs_reader(tmp_path, endian):
    order = gguf.GGUFEndian.BIG if endian == "big" else None
    path = _write(tmp_path / "m.gguf", order)
    fields = gguf.GGUFReader(str(path)).fields
    theirs = {k: f.contents() for k, f in fields.items() if not k.startswith("GGUF.")}
    ours = read_metadata(path, arrays=list(theirs))
    assert ours.keys() == theirs.keys()
    # gguf's contents() flattens an array of arrays; the structure is what the file holds
    assert ours.pop("t.nested") == [[1, 2], [3]] and theirs.pop("t.nested") == [1, 2, 3]
    for key, value in theirs.items():
        assert ours[key] == pytest.approx(value) if isinstance(value, float) else ours[key] == value, key
    assert ours["tokenizer.ggml.tokens"] == TOKENS
    assert ours["llama.context_length"] == 8192 and ours["t.after"] == 42


def test_arrays_are_left_out_unless_named(tmp_path):
    path = _write(tmp_path / "m.gguf")
    plain = read_metadata(path)
    assert "tokenizer.ggml.tokens" not in plain and "t.nested" not in plain
    assert plain["t.after"] == 42 and plain["t.str"] == "chat {{ template }}"
    assert read_metadata(path, arrays={"t.ints"})["t.ints"] == [1, 2, 3]


def test_truncated_and_foreign_files_name_the_file(tmp_path):
    whole = _write(tmp_path / "m.gguf").read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ModelLoadError, match=r"cut\.gguf: not a readable GGUF file \(the file ends"):
        read_metadata(cut)
    other = tmp_path / "other.gguf"
    other.write_bytes(b"PK\x03\x04 not a model")
    with pytest.raises(ModelLoadError, match=r"other\.gguf: not a readable GGUF file \(no GGUF magic"):
        read_metadata(other)
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    with pytest.raises(ModelLoadError, match=r"empty\.gguf: not a readable GGUF file"):
        read_metadata(empty)
