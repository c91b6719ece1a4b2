"""The training commands, run as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src")


def rmr1(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": SRC, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "rmr1", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


def test_unknown_key_is_one_line_and_nonzero() -> None:
    done = rmr1("train", "sft", "--config", "tiny-cpu-sft", "dataset=x.jsonl", "learnng_rate=1", "--dry-run")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["error: unknown config key 'learnng_rate' for SFTRecipe"]


def test_dry_run_shows_what_reaches_trl() -> None:
    done = rmr1(
        "train", "grpo", "--config", "qwen2.5-7b-instruct-grpo", "per_device_batch_size=5", "--dry-run"
    )
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["trl"]["num_generations"] == 7 and shown["trl"]["beta"] == 0.001
    assert shown["trl"]["per_device_train_batch_size"] == 4  # 5 does not divide 128 x 7: lowered, and said
    assert "per_device_batch_size 5 -> 4" in done.stderr


def test_data_then_distill_from_the_command_line(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        "".join(
            json.dumps({"id": f"p{i}", "prompt": f"q{i}", "chosen": "good", "rejected": "bad"}) + "\n"
            for i in range(6)
        )
    )
    done = rmr1("train", "data", "--pairs", str(pairs), "--out", str(tmp_path / "judge.jsonl"))
    assert done.returncode == 0, done.stderr
    assert "wrote 6 judge prompts" in done.stdout and "chosen shown as A: 50.0%" in done.stdout
    done = rmr1(
        "distill",
        "--data",
        str(tmp_path / "judge.jsonl"),
        "--out",
        str(tmp_path / "distill"),
        "--teacher-backend",
        "mock",
        "--teacher-model",
        "always-a",
    )
    assert done.returncode == 0, done.stderr
    stats = json.loads((tmp_path / "distill" / "stats.json").read_text())
    assert stats["items"] == 6 and stats["pass1_correct"] == 3 and stats["kept"] == 3
    assert "kept 3/6 traces" in done.stdout


def test_screen_from_the_command_line(tmp_path: Path) -> None:
    pairs = tmp_path / "pool.jsonl"
    rows = [
        {"id": f"p{i}", "prompt": f"Q{i}?", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(5)
    ]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "hard.jsonl"
    done = rmr1(
        "train",
        "screen",
        "--data",
        str(pairs),
        "--out",
        str(out),
        "--backend",
        "mock",
        "--model",
        "always-a",
        "--limit",
        "4",
    )
    assert done.returncode == 0, done.stderr
    # a judge that always answers A is right in one order of every pair: each of the 4 is kept
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["p0", "p1", "p2", "p3"]
    assert "kept 4 of 4 pairs (0 wrong in every order; 4 answered A and 0 B in every order)" in done.stdout
    assert (tmp_path / "hard-screen" / "judgments.jsonl").is_file()
    bad = rmr1(
        "train", "screen", "--data", str(tmp_path / "nope.jsonl"), "--out", str(out), "--backend", "mock"
    )
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert "nope.jsonl" in bad.stderr
