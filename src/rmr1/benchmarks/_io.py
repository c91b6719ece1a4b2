"""Records in, from local files (JSON, JSONL, Parquet) or a hub dataset, each able to name where it came from.

A ``Record`` is one row of a benchmark file with its location, so any loader can raise an ``InputError`` that
names the file, the record (a line for JSONL, an index for JSON arrays and Parquet rows) and the field.
A record that genuinely cannot be judged (an empty response) is not an error: the loader raises ``Skip``
and the driver counts it (see docs/design/benchmarks.md).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rmr1.errors import InputError
from rmr1.jsonl import read_jsonl
from rmr1.textio import read_text
from rmr1.types import Message, as_messages

FILE_SUFFIXES = (".json", ".jsonl", ".parquet")
# owner/name with an optional ":split"; local paths win when they exist, so this only decides what a
# non-existing path means.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(?::[\w.-]+)?$")
_FIELD_PREFIXES = re.compile(r"^((?:field '[^']*': )+)(.*)$", re.DOTALL)
_FROM_RECORD: Any = object()  # "read the value from the record" (None is a real JSON value)


@dataclass(frozen=True)
class Record:
    """One row of a benchmark source: its fields and where it lives."""

    data: Mapping[str, Any]
    source: str  # the file path or hub id
    index: int  # 0-based position in the source
    line: int | None = None  # 1-based line for JSONL files
    path: Path | None = None  # the file, when local

    @property
    def where(self) -> str:
        return f"line {self.line}" if self.line is not None else f"record {self.index}"

    def error(self, message: str, field: str | None = None) -> InputError:
        if self.line is not None:
            return InputError(message, source=self.source, line=self.line, field=field)
        return InputError(message, source=f"{self.source}, record {self.index}", field=field)

    def locate(self, exc: InputError) -> InputError:
        """``exc`` with this record's location, unless it already names a source."""
        return exc if exc.source else self.error(*_unwrap(exc))

    def get(self, key: str) -> Any:
        """A required field."""
        if key not in self.data:
            raise self.error("missing", field=key)
        return self.data[key]

    def text(self, key: str, value: Any = _FROM_RECORD, *, allow_empty: bool = False) -> str:
        """A string field (or ``value`` reported as ``key``); empty text raises ``Skip`` unless allowed."""
        value = self.get(key) if value is _FROM_RECORD else value
        if not isinstance(value, str):
            raise self.error(f"must be a string, got {type(value).__name__}", field=key)
        if not allow_empty and not value.strip():
            raise Skip("empty response", self, key)
        return value

    def messages(self, key: str, value: Any = _FROM_RECORD) -> tuple[Message, ...]:
        value = self.get(key) if value is _FROM_RECORD else value
        try:
            return as_messages(value, field_name=key)
        except InputError as exc:
            message, field = _unwrap(exc)
            raise self.error(message, field=field or key) from None

    def item_id(self, key: str, value: Any = _FROM_RECORD) -> str:
        value = self.get(key) if value is _FROM_RECORD else value
        if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value) == "":
            raise self.error(f"must be a non-empty string or integer, got {value!r}", field=key)
        return str(value)


class Skip(Exception):
    """This record cannot be judged; the driver skips it and counts it."""

    def __init__(self, reason: str, record: Record, field: str) -> None:
        super().__init__(reason)
        self.reason, self.record, self.field = reason, record, field

    def describe(self) -> str:
        return f"{self.record.source}, {self.record.where}, field '{self.field}': {self.reason}"


def _unwrap(exc: InputError) -> tuple[str, str | None]:
    """An unlocated InputError's message and field path: "field 'prompt[0]': field 'role': bad" becomes
    ("bad", "prompt[0].role"), ready to be re-raised with the record's location."""
    match = _FIELD_PREFIXES.match(str(exc))
    if not match:
        return str(exc), exc.field
    return match.group(2), ".".join(re.findall(r"field '([^']*)'", match.group(1)))


def is_hub_id(path: str) -> bool:
    return not Path(path).exists() and bool(_HUB_ID.match(path)) and not path.endswith(FILE_SUFFIXES)


def files_under(root: Path, pattern: str = "*") -> list[Path]:
    """Benchmark files below ``root`` in a stable order (sorted by relative path), hidden ones left out
    (editor backups, ``.ipynb_checkpoints``, macOS ``._`` files would otherwise read as records)."""
    found = [
        p
        for p in root.rglob(pattern)
        if p.is_file()
        and p.suffix in FILE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def read_file(path: Path) -> Iterator[Record]:
    """The records of one file: a JSON array, JSON lines (also under a .json name), or Parquet."""
    if not path.is_file():
        raise InputError("file not found", source=str(path))
    if path.suffix == ".parquet":
        yield from _read_parquet(path)
        return
    text = read_text(path)
    if path.suffix == ".json" and text.lstrip()[:1] in ("[", "{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            if exc.msg != "Extra data":  # "Extra data": JSON lines stored under a .json name
                raise InputError(
                    f"not valid JSON ({exc.msg} at line {exc.lineno})", source=str(path)
                ) from None
        else:
            yield from _json_records(value, path)
            return
    yield from _jsonl_records(path)


def _json_records(value: Any, path: Path) -> Iterator[Record]:
    if isinstance(value, dict):
        lists = [v for v in value.values() if isinstance(v, list)]
        # {"data": [...]}: the only list is the record list; otherwise one object is one record
        value = lists[0] if len(lists) == 1 else [value]
    if not isinstance(value, list):
        raise InputError(f"expected a JSON array of records, got {type(value).__name__}", source=str(path))
    for index, row in enumerate(value):
        if not isinstance(row, dict):
            raise InputError(
                f"expected a JSON object, got {type(row).__name__}", source=f"{path}, record {index}"
            )
        yield Record(row, str(path), index, path=path)


def _jsonl_records(path: Path) -> Iterator[Record]:
    # rmr1.jsonl.read_jsonl is the one JSONL reader: its errors name the line, as every other file's do.
    for index, (number, row) in enumerate(read_jsonl(path)):
        yield Record(row, str(path), index, line=number, path=path)


def _read_parquet(path: Path) -> Iterator[Record]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise InputError(f"not a readable Parquet file ({exc})".splitlines()[0], source=str(path)) from None
    for index, row in enumerate(table.to_pylist()):
        yield Record(row, str(path), index, path=path)


def read_hub(hub_id: str, split: str) -> Iterator[Record]:
    """Rows of a hub dataset (``owner/name`` or ``owner/name:split``), via ``datasets``."""
    name, _, explicit = hub_id.partition(":")
    split = explicit or split
    import datasets

    try:
        rows = datasets.load_dataset(name, split=split)
    except Exception as exc:  # offline, unknown id, unknown split: all end here, told in one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = " (offline mode is on: pass a local file or folder instead)" if _offline() else ""
        raise InputError(f"cannot load hub dataset split {split!r}: {first}{hint}", source=name) from None
    label = f"{name}:{split}"
    for index, row in enumerate(rows):
        yield Record(dict(row), label, index)


def _offline() -> bool:
    import os

    return any(
        os.environ.get(k, "").lower() in ("1", "true", "yes", "on")
        for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )
