"""Checks a command makes on its flags before any model loads or any file is touched.

They only look (``os.access`` and the file types along the path); nothing is created, so a refused command
leaves the disk as it found it.
"""

from __future__ import annotations

import os
from pathlib import Path

from rmr1.errors import ConfigError, InputError


def _creatable(path: Path, flag: str) -> None:
    """``path`` does not exist yet: its nearest existing parent must be a folder we may write in."""
    for parent in path.absolute().parents:
        if not parent.exists():
            continue
        if not parent.is_dir():
            raise InputError(f"{flag} cannot be created: {parent} is a file, not a folder", source=str(path))
        if not os.access(parent, os.W_OK | os.X_OK):
            raise InputError(f"{flag} cannot be created: {parent} is not writable", source=str(path))
        return


def writable_file(path: Path | None, flag: str = "--out") -> None:
    """An output file that can be written (or created)."""
    if path is None:
        return
    if path.is_dir():
        raise InputError(f"{flag} is a folder; give a file name", source=str(path))
    if path.exists():
        if not os.access(path, os.W_OK):
            raise InputError(f"{flag} is not writable", source=str(path))
        return
    _creatable(path, flag)


def writable_dir(path: Path, flag: str = "--out") -> None:
    """An output folder that can be written in (or created)."""
    if path.exists():
        if not path.is_dir():
            raise InputError(f"{flag} must be a folder, but a file is there", source=str(path))
        if not os.access(path, os.W_OK | os.X_OK):
            raise InputError(f"{flag} is not writable", source=str(path))
        return
    _creatable(path, flag)


def at_least(minimum: float, **values: float | None) -> None:
    """Each named flag (``max_batch=0`` stands for ``--max-batch``) is at least ``minimum`` when given."""
    for name, value in values.items():
        if value is not None and value < minimum:
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"{flag} must be at least {minimum:g}, got {value:g}")


def positive(**values: float | None) -> None:
    """Each named flag is above zero when given (timeouts, sizes)."""
    for name, value in values.items():
        if value is not None and value <= 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {value:g}")


__all__ = ["at_least", "positive", "writable_dir", "writable_file"]
