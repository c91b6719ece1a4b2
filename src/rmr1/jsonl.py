"""JSONL in and out, with errors that name the file and line, and appends that survive a kill.

``read_jsonl`` yields (line number, object). ``tolerate_torn_tail`` skips a last line that has no newline and
does not parse (what a SIGKILL mid-write leaves); any other bad line is an error.
``write_jsonl`` writes a whole file atomically. ``JsonlAppender`` writes whole lines with one ``write`` +
flush, and first cuts off a torn tail so a resumed run never appends after half a record.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from rmr1.atomic import write_atomic
from rmr1.errors import InputError
from rmr1.preferences import parse_preference
from rmr1.textio import decode_utf8
from rmr1.types import PreferencePair


def read_jsonl(path: str | Path, *, tolerate_torn_tail: bool = False) -> Iterator[tuple[int, dict[str, Any]]]:
    p = Path(path)
    if not p.is_file():
        raise InputError("file not found", source=str(p))
    # Bytes, decoded line by line: bad UTF-8 is reported with its line, and a torn tail cut inside a
    # multi-byte character is as tolerable as one cut inside a JSON value.
    with p.open("rb") as handle:
        for number, data in enumerate(handle, start=1):
            torn = tolerate_torn_tail and not data.endswith(b"\n")
            try:
                raw = decode_utf8(data, p, line=number, bom=number == 1)
            except InputError:
                if torn:
                    return
                raise
            if not raw.strip():
                continue
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as exc:
                if torn:
                    return
                raise InputError(f"not valid JSON ({exc.msg})", source=str(p), line=number) from None
            if not isinstance(value, dict):
                raise InputError(
                    f"expected a JSON object, got {type(value).__name__}", source=str(p), line=number
                )
            yield number, value


def cut_torn_tail(path: Path) -> None:
    """Drop a final partial line (no trailing newline) left by an interrupted writer."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with path.open("rb+") as handle:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) == b"\n":
            return
        handle.seek(0)
        data = handle.read()
        keep = data.rfind(b"\n") + 1
        handle.truncate(keep)


def write_jsonl(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write ``rows`` as a whole JSONL file (its folder created), replacing any earlier one atomically."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(p, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return p


class JsonlAppender:
    """Append JSON objects as whole lines: each batch is one ``write`` system call on an ``O_APPEND``
    descriptor, so a SIGKILL leaves the batch wholly on disk or not at all (and a torn tail, should a huge
    write be split, is cut by the next appender)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        cut_torn_tail(self.path)
        # 0666 less the umask, what open() gives a new file
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)

    def write(self, records: list[Mapping[str, Any]] | Mapping[str, Any]) -> None:
        batch = [records] if isinstance(records, Mapping) else records
        if self._fd is None:
            raise ValueError(f"{self.path}: write after close")
        if not batch:
            return
        data = memoryview("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in batch).encode("utf-8"))
        while data:  # a regular file takes the whole buffer at once; the loop covers a short write
            written = os.write(self._fd, data)
            data = data[written:]

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def pair_from_record(
    record: Mapping[str, Any], source: str, line: int, *, default_id: str | None = None
) -> tuple[PreferencePair, bool]:
    """A pair from any preference row ``rmr1.preferences`` reads, or {prompt, response_a, response_b}.

    Returns the pair and whether it was labelled. Unlabelled pairs put response_a in the chosen slot.
    """
    parsed = parse_preference(
        record,
        source=source,
        line=line,
        default_id=default_id if default_id is not None else str(line),
        allow_unlabelled=True,
    )
    return parsed.pair, parsed.labelled
