"""A GGUF file's metadata, read without parsing the rest of the file.

``gguf.GGUFReader`` builds a numpy view of every field and every tensor's info when it opens a file: about
3 s for the embedded model, most of it the 49k-entry vocabulary and merges arrays. The openvino backend
only needs a few scalars (the architecture and its context window) and, for a trained checkpoint, the
vocabulary; an evaluation of a new checkpoint used to spend ~4 s of each run in that parse. This reader
walks the key-value section with ``struct`` over a memory map: scalars are decoded, arrays are skipped
(a string array by its length prefixes) unless asked for by key. Tensor data is never touched.

Layout (GGUF v2 and v3; v1's 32-bit counts are refused): magic ``GGUF``, version u32, tensor count u64,
key-value count u64, then each key as a u64-length string, a u32 value type and the value; an array is an
item type u32, a u64 count and the items. Files written big-endian are read too (the version tells).
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Collection
from pathlib import Path
from typing import Any

from rmr1.errors import ModelLoadError

# value type -> struct format of a scalar of that type; 8 (string) and 9 (array) are read separately
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9
_MAGIC = b"GGUF"


class _Cursor:
    """A position in the mapped file and the byte order it is read in."""

    def __init__(self, data: mmap.mmap, order: str) -> None:
        self.data, self.order, self.at = data, order, 0

    def advance(self, size: int) -> int:
        """Move past ``size`` bytes; returns where they start. Past the end of the file is EOFError."""
        start = self.at
        self.at += size
        if self.at > len(self.data):
            raise EOFError
        return start

    def scalar(self, kind: int) -> Any:
        fmt = self.order + _SCALARS[kind]
        return struct.unpack_from(fmt, self.data, self.advance(struct.calcsize(fmt)))[0]

    def string(self, keep: bool = True) -> str | None:
        size = self.scalar(10)
        start = self.advance(size)
        return bytes(self.data[start : start + size]).decode("utf-8") if keep else None

    def value(self, kind: int, keep: bool) -> Any:
        """The value of ``kind`` at the cursor; with ``keep`` False an array is skipped and None returned."""
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            item, count = self.scalar(4), self.scalar(10)
            if keep:
                return [self.value(item, True) for _ in range(count)]
            if item in _SCALARS:
                self.advance(count * struct.calcsize(_SCALARS[item]))
            elif item == _STRING:  # by their length prefixes, nothing copied
                for _ in range(count):
                    self.string(keep=False)
            else:  # arrays of arrays, item by item
                for _ in range(count):
                    self.value(item, False)
            return None
        if kind not in _SCALARS:
            raise ValueError(f"unknown value type {kind}")
        return self.scalar(kind)


def read_metadata(path: str | Path, *, arrays: Collection[str] = ()) -> dict[str, Any]:
    """Every key-value field of the GGUF file at ``path``: scalars and strings as Python values, the arrays
    named in ``arrays`` as lists, other arrays left out. Raises ModelLoadError naming the file when it is not
    a GGUF file or ends inside its metadata."""
    path = Path(path)
    try:
        with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _read(data, set(arrays))
    except (OSError, ValueError, EOFError, struct.error, UnicodeDecodeError) as exc:
        reason = "the file ends inside its metadata" if isinstance(exc, EOFError | struct.error) else exc
        raise ModelLoadError(f"{path}: not a readable GGUF file ({reason})") from None


def _read(data: mmap.mmap, arrays: set[str]) -> dict[str, Any]:
    if data[:4] != _MAGIC:
        raise ValueError("no GGUF magic at the start")
    version = struct.unpack_from("<I", data, 4)[0]
    order = "<"
    if version & 0xFFFF == 0:  # written big-endian: the version's bytes come out reversed
        order, version = ">", struct.unpack_from(">I", data, 4)[0]
    if version < 2:
        raise ValueError(f"GGUF version {version} (only 2 and 3 are read)")
    cursor = _Cursor(data, order)
    cursor.advance(16)  # magic, version and the tensor count, which the metadata does not need
    out: dict[str, Any] = {}
    for _ in range(cursor.scalar(10)):
        key = str(cursor.string())
        value = cursor.value(cursor.scalar(4), key in arrays)
        if value is not None:
            out[key] = value
    return out


__all__ = ["read_metadata"]
