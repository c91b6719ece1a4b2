"""`rmr1 judge` run as a user runs it: a subprocess, real files, real exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def rmr1(*args: str, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "rmr1", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


GOOD = json.dumps({"id": "a", "prompt": "2+2?", "chosen": "4", "rejected": "5"})


@pytest.mark.parametrize(
    ("lines", "fragment"),
    [
        ([GOOD, "{not json"], ":line 2: not valid JSON"),
        ([GOOD, json.dumps({"id": "b", "prompt": "q", "chosen": "x"})], "line 2, field 'rejected': missing"),
        (
            [json.dumps({"id": "b", "prompt": "q", "chosen": "", "rejected": "y"})],
            "line 1, field 'chosen': is empty",
        ),
        (
            [json.dumps({"id": "b", "prompt": "q", "chosen": 7, "rejected": "y"})],
            "line 1, field 'chosen': must be a string",
        ),
        ([json.dumps({"id": "b", "prompt": 5, "chosen": "x", "rejected": "y"})], "line 1, field 'prompt'"),
        (["[1, 2]"], "line 1: expected a JSON object"),
        ([GOOD, GOOD], "duplicate id 'a'"),
    ],
)
def test_bad_pairs_file_gives_one_line_error(tmp_path: Path, lines: list[str], fragment: str) -> None:
    pairs = write_lines(tmp_path / "pairs.jsonl", lines)
    out = tmp_path / "out.jsonl"
    result = rmr1("judge", "--backend", "mock", "--pairs", str(pairs), "--out", str(out))
    assert result.returncode != 0
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert message.startswith("error: ") and str(pairs).replace(":", "") in message.replace(":", "")
    assert fragment.lstrip(":") in message
    assert not out.exists()  # nothing half-written


def test_unknown_template_and_backend(tmp_path: Path) -> None:
    for flags, fragment in (
        (["--template", "fancy"], "unknown template 'fancy'"),
        (["--backend", "magic"], "unknown backend 'magic'"),
    ):
        result = rmr1(
            "judge",
            *flags,
            "--backend" if "--backend" not in flags else "--seed",
            "mock" if "--backend" not in flags else "0",
            "--prompt",
            "q",
            "--response-a",
            "a",
            "--response-b",
            "b",
        )
        assert (
            result.returncode != 0
            and fragment in result.stderr
            and len(result.stderr.strip().splitlines()) == 1
        )


def test_missing_flags_and_empty_response() -> None:
    result = rmr1("judge", "--backend", "mock", "--prompt", "q", "--response-a", "a")
    assert result.returncode != 0 and "give --pairs FILE" in result.stderr
    result = rmr1("judge", "--backend", "mock", "--prompt", "q", "--response-a", "a", "--response-b", " ")
    assert result.returncode != 0 and "field 'rejected': is empty" in result.stderr


def test_mock_judging_a_file_writes_judgments(tmp_path: Path) -> None:
    pairs = write_lines(
        tmp_path / "pairs.jsonl",
        [
            GOOD,
            json.dumps(
                {
                    "id": "u",
                    "prompt": [{"role": "user", "content": "hi"}],
                    "response_a": "hello",
                    "response_b": "go away",
                }
            ),
        ],
    )
    out = tmp_path / "out.jsonl"
    result = rmr1(
        "judge",
        "--backend",
        "mock",
        "--model",
        "always-a",
        "--protocol",
        "both",
        "--pairs",
        str(pairs),
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 4 and {r["order"] for r in records} == {"AB", "BA"}
    unlabelled = [r for r in records if r["item_id"] == "u"]
    assert {r["winner"] for r in unlabelled} == {"response_a", "response_b"}
    assert all(r["correct"] is None for r in unlabelled)


@pytest.mark.slow
def test_embedded_model_judges_a_pair_and_says_when_unparsed(embedded_model: Path) -> None:
    result = rmr1(
        "judge",
        "--prompt",
        "What is 12*3?",
        "--response-a",
        "36",
        "--response-b",
        "38",
        "--max-new-tokens",
        "48",
    )
    assert result.returncode == 0, result.stderr
    assert "trace (" in result.stdout and "total time:" in result.stdout
    assert (
        "verdict: A" in result.stdout
        or "verdict: B" in result.stdout
        or "verdict: could not be parsed" in result.stdout
    )


@pytest.mark.slow
def test_local_checkpoint_path_and_byte_identical_reruns(embedded_model: Path, tmp_path: Path) -> None:
    pairs = write_lines(
        tmp_path / "pairs.jsonl",
        [
            json.dumps(
                {
                    "id": str(i),
                    "prompt": f"What is {i}+{i}?",
                    "chosen": str(2 * i),
                    "rejected": str(2 * i + 1),
                }
            )
            for i in range(3)
        ],
    )
    outputs = []
    for run in range(2):
        out = tmp_path / f"run{run}.jsonl"
        result = rmr1(
            "judge",
            "--model",
            str(embedded_model),
            "--pairs",
            str(pairs),
            "--out",
            str(out),
            "--seed",
            "11",
            "--max-new-tokens",
            "32",
            "--no-record-latency",
        )
        assert result.returncode == 0, result.stderr
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    records = [json.loads(line) for line in outputs[0].decode().splitlines()]
    assert len(records) == 3 and all(r["completion_tokens"] > 0 for r in records)
