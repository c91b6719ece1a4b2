"""Text files in, with invalid UTF-8 reported as one line that names the file and the line.

Python's own ``UnicodeDecodeError`` names neither the file nor the line, so every reader of a user's text file
(JSONL, JSON, YAML templates and recipes, run.json) decodes through here.
"""

from __future__ import annotations

import codecs
from pathlib import Path

from rmr1.errors import InputError


def utf8_error(
    source: str | Path, data: bytes, exc: UnicodeDecodeError, *, line: int | None = None
) -> InputError:
    """An InputError for bytes that are not UTF-8: the line (counted from ``line``, or 1) and the column."""
    before = data[: exc.start]
    number = (line or 1) + before.count(b"\n")
    column = exc.start - (before.rfind(b"\n") + 1) + 1
    bad = data[exc.start : exc.start + 1].hex()
    return InputError(f"not valid UTF-8 (byte 0x{bad} at column {column})", source=str(source), line=number)


def decode_utf8(data: bytes, source: str | Path, *, line: int | None = None, bom: bool = False) -> str:
    """``data`` as text; ``bom`` drops a leading byte-order mark (the start of a file)."""
    # The BOM is cut by hand: the utf-8-sig codec would count error offsets from after it.
    if bom and data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise utf8_error(source, data, exc, line=line) from None


def read_text(path: str | Path) -> str:
    """The whole file as text (a leading byte-order mark dropped); bad UTF-8 names the file and line."""
    p = Path(path)
    return decode_utf8(p.read_bytes(), p, bom=True)


def check_utf8(path: str | Path, chunk_bytes: int = 1 << 20) -> None:
    """Refuse a file that is not UTF-8 text, naming its line, without holding the whole file in memory.

    For files handed to readers that do not check (``datasets``' JSON builder defers the error to the first
    row read, deep inside a training-data build)."""
    p = Path(path)
    lines = 0
    with p.open("rb") as handle:
        while chunk := handle.read(chunk_bytes):
            chunk += handle.readline()  # end on a line boundary: no character is split between chunks
            decode_utf8(chunk, p, line=lines + 1, bom=lines == 0)
            lines += chunk.count(b"\n")


__all__ = ["check_utf8", "decode_utf8", "read_text", "utf8_error"]
