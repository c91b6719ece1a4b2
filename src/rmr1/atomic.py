"""Files written whole or not at all, with the permissions any other file of the user gets.

Every file rmr1 replaces (a run's run.json, scores.json and report.html, a converted model, a GGUF export, the
CPU dtype cache, a screened or distilled dataset) is written to a uniquely named temporary file beside its
target, fsynced and renamed over it, so a kill leaves the old file or the new one, never half of one.

``tempfile`` creates those temporaries as 0600 (folders 0700) so that nobody else can read them while they are
written. Renamed into place they would keep that mode, and a teammate reading a shared results folder or
``$RMR1_HOME`` would find report.html and the converted model closed to them while judgments.jsonl, written by
a plain ``open``, is not. So a finished file gets ``0666 & ~umask`` (folders ``0777 & ~umask``): what ``open``
or ``mkdir`` would have given it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def umask() -> int:
    """The process's umask, read without changing it where Linux reports it (/proc), else set and restored."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    current = os.umask(0o022)
    os.umask(current)
    return current


def file_mode() -> int:
    return 0o666 & ~umask()


def dir_mode() -> int:
    return 0o777 & ~umask()


def replace_atomic(path: Path, fill: Callable[[IO[str]], object]) -> None:
    """Replace ``path`` by the text (UTF-8) that ``fill(handle)`` writes, as ``replace_atomic_path`` does."""

    def write(tmp: Path) -> None:
        with tmp.open("w", encoding="utf-8") as handle:
            fill(handle)

    replace_atomic_path(path, write)


def write_atomic(path: Path, text: str) -> None:
    replace_atomic(path, lambda handle: handle.write(text))


def write_json_atomic(path: Path, data: Any) -> None:
    """``data`` as indented UTF-8 JSON with a final newline (run.json, scores.json, summaries), atomically."""
    write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def replace_atomic_path(target: Path, write: Callable[[Path], None]) -> None:
    """Replace ``target`` by the file ``write(tmp)`` makes: a unique temporary file in the same folder (two
    writers never share one), given the usual mode, fsynced, renamed over ``target``, and the folder fsynced so
    the rename survives a crash. A failure leaves the old file and no temporary."""
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(handle)
    try:
        write(Path(name))
        os.chmod(name, file_mode())
        with open(name, "rb") as written:
            os.fsync(written.fileno())
        os.replace(name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise
    fsync_dir(target.parent)


def share_tree(folder: Path) -> None:
    """Give a folder made by ``tempfile.mkdtemp`` (0700) and everything in it the usual modes before it is
    renamed into place."""
    files, dirs = file_mode(), dir_mode()
    for root, _, names in os.walk(folder):
        os.chmod(root, dirs)
        for name in names:
            os.chmod(os.path.join(root, name), files)


def fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # some file systems cannot open or sync a folder
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
