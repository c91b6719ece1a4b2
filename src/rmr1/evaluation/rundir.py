"""The run directory on disk: run.json, judgments.jsonl, scores.json, report.html.

Files other than judgments.jsonl are replaced atomically (written to a uniquely named file beside, fsynced,
then renamed), so a kill never leaves a half-written run.json or scores.json. judgments.jsonl is only ever
appended to in whole lines, except when a resume drops failed calls (``finish_reason == "error"``), which
rewrites it atomically too. Calls whose prompt did not fit the model (``"too_long"``) are kept: they would not
fit the next time either.

A process that writes a run holds ``RunDir.lock()`` (an exclusive ``flock`` on ``.lock``): a second eval, a
rescore or a merge into the same folder is refused instead of interleaving its lines. The kernel drops the
lock when its holder dies, so a killed run never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

from rmr1.atomic import replace_atomic, write_json_atomic
from rmr1.errors import ConfigError, InputError
from rmr1.evaluation.settings import RunSettings
from rmr1.jsonl import cut_torn_tail, read_jsonl
from rmr1.textio import read_text
from rmr1.types import Judgment

Key = tuple[str, int, str, int]
RUN_FILE, JUDGMENTS_FILE, SCORES_FILE, REPORT_FILE, LOCK_FILE = (
    "run.json",
    "judgments.jsonl",
    "scores.json",
    "report.html",
    ".lock",
)
_FIELDS = tuple(f.name for f in fields(Judgment))


def judgment_record(judgment: Judgment) -> dict[str, Any]:
    """``Judgment.to_dict()`` without ``asdict``'s deep copy (the fields are all scalars): same keys, same
    order, several times faster on the hot path."""
    values = getattr(judgment, "__dict__", None)
    if values is not None and len(values) == len(_FIELDS):
        return values  # read-only use: it is only encoded
    return {name: getattr(judgment, name) for name in _FIELDS}


@contextlib.contextmanager
def hold_lock(lock_file: Path, what: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_file`` (created, holding our pid) while writing ``what``.

    A second holder, in this process or another, is refused with one line naming ``what`` and the holder's
    pid. The kernel releases the lock when the descriptor closes or its process dies, so it never goes stale.
    The holder removes the file before it lets go, so a finished command leaves nothing behind; a process that
    opened the file just before it was removed notices (the path no longer names its inode) and starts over.
    """
    fd = _acquire(lock_file, what)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        with contextlib.suppress(OSError):
            lock_file.unlink()
        os.close(fd)  # closing the descriptor releases the flock


def _acquire(lock_file: Path, what: Path) -> int:
    while True:
        try:
            fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(
                f"{what}: cannot create the lock file {lock_file.name} ({exc.strerror})"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise ConfigError(
                f"{what} is in use by another rmr1 process (pid {holder}); "
                "wait for it to finish or use another --out"
            ) from None
        try:
            current = os.stat(lock_file).st_ino
        except FileNotFoundError:
            current = -1
        if current == os.fstat(fd).st_ino:
            return fd
        os.close(fd)  # the file was removed by the holder we raced with: take the new one


class RunDir:
    """Paths and file access for one run directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.run_json = self.path / RUN_FILE
        self.judgments = self.path / JUDGMENTS_FILE
        self.scores = self.path / SCORES_FILE
        self.report = self.path / REPORT_FILE

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """Hold the run directory (which must exist) for writing; see ``hold_lock``."""
        return hold_lock(self.path / LOCK_FILE, self.path)

    # -- run.json -----------------------------------------------------------------------------------------
    def read_info(self) -> dict[str, Any] | None:
        """run.json as a dict, or None when there is none yet."""
        if not self.run_json.is_file():
            return None
        try:
            data = json.loads(read_text(self.run_json))
        except json.JSONDecodeError as exc:
            raise InputError(
                f"not valid JSON ({exc.msg})", source=str(self.run_json), line=exc.lineno
            ) from None
        if not isinstance(data, dict):
            raise InputError("expected a JSON object", source=str(self.run_json))
        return data

    def read_settings(self, *, required: bool = True) -> RunSettings | None:
        info = self.read_info()
        if info is None:
            if required:
                raise InputError("not a run directory (no run.json)", source=str(self.path))
            return None
        return RunSettings.from_dict(info, str(self.run_json))

    def write_info(self, settings: RunSettings, **extra: Any) -> None:
        """Write run.json: the settings plus bookkeeping (status, counts, times); keeps ``created``."""
        old = self.read_info() or {}
        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        info = {**settings.to_dict(), "created": old.get("created", now), "updated": now, **extra}
        self.path.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.run_json, info)

    def update_info(self, **extra: Any) -> None:
        info = self.read_info() or {}
        info.update(extra, updated=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        write_json_atomic(self.run_json, info)

    # -- judgments.jsonl ----------------------------------------------------------------------------------
    def has_judgments(self) -> bool:
        return self.judgments.is_file() and self.judgments.stat().st_size > 0

    def iter_numbered(self) -> Iterator[tuple[int, Judgment]]:
        """Stream (line, judgment); a torn last line (a kill mid-write) is skipped."""
        if not self.judgments.is_file():
            return
        source = str(self.judgments)
        for line, record in read_jsonl(self.judgments, tolerate_torn_tail=True):
            try:
                yield line, Judgment.from_dict(record)
            except InputError as exc:
                raise exc.located(source, line) from None
            except TypeError as exc:  # a field the dataclass does not take as given
                raise InputError(str(exc), source=source, line=line) from None

    def iter_judgments(self) -> Iterator[Judgment]:
        for _, judgment in self.iter_numbered():
            yield judgment

    def iter_checked(self) -> Iterator[Judgment]:
        """Like ``iter_judgments`` but refuses a key logged twice (files joined or edited by hand)."""
        seen: set[Key] = set()
        for line, judgment in self.iter_numbered():
            if judgment.key in seen:
                raise InputError(
                    f"judgment {'|'.join(map(str, judgment.key))} is logged twice",
                    source=str(self.judgments),
                    line=line,
                )
            seen.add(judgment.key)
            yield judgment

    def prepare_resume(self, *, retry_errors: bool) -> set[Key]:
        """Make judgments.jsonl safe to append to and return the keys already judged.

        Cuts a torn tail first (the appender would cut it too, and its key must not count as done), and with
        ``retry_errors`` drops failed calls so they are made again. ``too_long`` calls count as done: retrying
        a prompt that cannot fit would only fail again, on every resume.
        """
        if not self.judgments.is_file():
            return set()
        cut_torn_tail(self.judgments)
        keys: set[Key] = set()
        failed = 0
        for judgment in self.iter_checked():
            if retry_errors and judgment.finish_reason == "error":
                failed += 1
            else:
                keys.add(judgment.key)
        if failed:
            self._drop_errors()
        return keys

    def _drop_errors(self) -> None:
        def keep(dst: Any) -> None:
            with self.judgments.open(encoding="utf-8") as src:
                for raw in src:
                    if raw.strip() and json.loads(raw).get("finish_reason") != "error":
                        dst.write(raw)

        replace_atomic(self.judgments, keep)


__all__ = [
    "JUDGMENTS_FILE",
    "LOCK_FILE",
    "REPORT_FILE",
    "RUN_FILE",
    "SCORES_FILE",
    "Key",
    "RunDir",
    "hold_lock",
    "judgment_record",
]
