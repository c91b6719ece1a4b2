"""JSONL in and out, with errors that name the file and line, and appends that survive a kill.

``read_jsonl`` yields (line number, object). ``tolerate_torn_tail`` skips a last line that has no newline and
does not parse (what a SIGKILL mid-write leaves); any other bad line is an error.
``JsonlAppender`` writes whole lines with one ``write`` + flush, and first cuts off a torn tail so a resumed
run never appends after half a record.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from rmr1.errors import InputError
from rmr1.textio import decode_utf8
from rmr1.types import Message, PreferencePair, as_messages


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


class JsonlAppender:
    """Append JSON objects as whole lines: each batch is one ``write`` system call on an ``O_APPEND``
    descriptor, so a SIGKILL leaves the batch wholly on disk or not at all (and a torn tail, should a huge
    write be split, is cut by the next appender)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        cut_torn_tail(self.path)
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

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


def _text(record: Mapping[str, Any], key: str, source: str, line: int) -> str:
    value = record[key]
    if isinstance(value, list):  # a message list whose last turn is the response
        try:
            messages = as_messages(value, field_name=key)
        except InputError as exc:
            raise exc.located(source, line) from None
        value = messages[-1].content if messages else ""
    if not isinstance(value, str):
        raise InputError(f"must be a string, got {type(value).__name__}", source=source, line=line, field=key)
    if not value.strip():
        raise InputError("is empty", source=source, line=line, field=key)
    return value


def pair_from_record(
    record: Mapping[str, Any], source: str, line: int, *, default_id: str | None = None
) -> tuple[PreferencePair, bool]:
    """A pair from {prompt, chosen, rejected} (labelled) or {prompt, response_a, response_b} (unlabelled).

    Returns the pair and whether it was labelled. Unlabelled pairs put response_a in the chosen slot.
    """
    if "chosen" in record or "rejected" in record:
        keys, labelled = ("chosen", "rejected"), True
    else:
        keys, labelled = ("response_a", "response_b"), False
    for key in ("prompt", *keys):
        if key not in record:
            raise InputError("missing", source=source, line=line, field=key)
    try:
        context: tuple[Message, ...] = as_messages(record["prompt"], field_name="prompt")
    except InputError as exc:
        raise exc.located(source, line) from None
    first, second = (_text(record, k, source, line) for k in keys)
    raw_id = record.get("id", record.get("item_id", default_id if default_id is not None else str(line)))
    try:
        pair = PreferencePair(
            item_id=str(raw_id),
            context=context,
            chosen=first,
            rejected=second,
            subset=str(record.get("subset", "")),
        )
    except InputError as exc:
        raise exc.located(source, line) from None
    return pair, labelled
