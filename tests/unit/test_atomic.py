"""Files replaced whole, with the permissions a plain open() would give them (rmr1.atomic)."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

import rmr1
from rmr1.atomic import (
    replace_atomic,
    replace_atomic_path,
    share_tree,
    umask,
    write_atomic,
    write_json_atomic,
)
from rmr1.jsonl import read_jsonl, write_jsonl
from rmr1.testing import write_addition_pairs


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o022, 0o002, 0o077])
def process_umask(request: pytest.FixtureRequest) -> Iterator[int]:
    before = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(before)


def test_umask_is_read_without_changing_it(process_umask: int) -> None:
    assert umask() == process_umask
    assert umask() == process_umask


def test_replaced_files_get_the_mode_open_gives(tmp_path: Path, process_umask: int) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    write_atomic(tmp_path / "a.json", "{}\n")
    replace_atomic_path(tmp_path / "b.bin", lambda p: p.write_bytes(b"\0" * 10))
    write_jsonl(tmp_path / "sub" / "c.jsonl", [{"k": 1}])
    for name in ("a.json", "b.bin", "sub/c.jsonl"):
        assert mode(tmp_path / name) == mode(plain) == 0o666 & ~process_umask, name


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "scores.json"
    write_atomic(target, "old\n")

    def half(handle: object) -> None:
        handle.write("new, half")  # type: ignore[attr-defined]
        raise KeyboardInterrupt

    def half_path(path: Path) -> None:
        path.write_text("new, half")
        raise OSError("disk full")

    with pytest.raises(KeyboardInterrupt):
        replace_atomic(target, half)
    with pytest.raises(OSError, match="disk full"):
        replace_atomic_path(target, half_path)
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["scores.json"]


def test_share_tree_opens_a_mkdtemp_folder_like_mkdir_would(tmp_path: Path, process_umask: int) -> None:
    import tempfile

    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    (folder / "inner").mkdir()
    (folder / "inner" / "weights.bin").write_bytes(b"1")
    os.chmod(folder / "inner" / "weights.bin", 0o600)
    share_tree(folder)
    assert mode(folder) == mode(folder / "inner") == 0o777 & ~process_umask
    assert mode(folder / "inner" / "weights.bin") == 0o666 & ~process_umask


def test_write_jsonl_round_trips_and_replaces(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "rows.jsonl", [{"id": "1", "text": "naïve"}, {"id": "2"}])
    write_jsonl(path, [{"id": "3", "text": "é"}])
    assert [row for _, row in read_jsonl(path)] == [{"id": "3", "text": "é"}]
    assert "é" in path.read_text(encoding="utf-8")  # UTF-8, not \\u escapes


def test_a_run_directory_is_readable_by_whoever_can_read_its_judgments(tmp_path: Path) -> None:
    before = os.umask(0o022)
    try:
        data = write_addition_pairs(tmp_path / "pairs.jsonl", 3)
        run = rmr1.evaluate("preference", tmp_path / "run", data=str(data), backend="mock", model="always-a")
    finally:
        os.umask(before)
    files = ("judgments.jsonl", "run.json", "scores.json", "report.html")
    assert {name: mode(run.run_dir / name) for name in files} == dict.fromkeys(files, 0o644)


def test_write_json_atomic_writes_readable_utf8_json_with_a_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    write_json_atomic(path, {"model": "modèle", "n": [1, 2]})
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n") and "modèle" in text  # not escaped to \u00e8
    assert json.loads(text) == {"model": "modèle", "n": [1, 2]}
    assert mode(path) == 0o666 & ~umask()
