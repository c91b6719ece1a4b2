"""The eval, rescore, report and merge commands, run as a user runs them (subprocesses), kills included."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rmr1.testing import write_addition_pairs

SRC = Path(__file__).resolve().parents[2] / "src"

# The real CLI with one extra mock rule, for tests only: slow enough to be killed mid-run, verdicts mixed.
SLOW_CLI = """
import hashlib, sys, time
import rmr1.backends.mock as mock

def slow(request):
    time.sleep(0.04)
    kind = hashlib.sha256(request.key.encode()).digest()[0] % 3
    return ("<answer>[[A]]</answer>", "<answer>[[B]]</answer>", "no verdict")[kind]

mock._RULES["slow-mixed"] = slow
from rmr1.cli import main
sys.argv = ["rmr1", *sys.argv[1:]]
main()
"""


def env() -> dict[str, str]:
    out = dict(os.environ)
    out["PYTHONPATH"] = os.pathsep.join([str(SRC), out.get("PYTHONPATH", "")])
    out.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return out


def rmr1(*args: str, slow_rule: bool = False) -> subprocess.CompletedProcess[str]:
    head = [sys.executable, "-c", SLOW_CLI] if slow_rule else [sys.executable, "-m", "rmr1"]
    return subprocess.run([*head, *args], capture_output=True, text=True, env=env(), timeout=600)


def records(run_dir: Path) -> list[dict]:  # type: ignore[type-arg]
    text = (run_dir / "judgments.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def keys(run_dir: Path) -> list[tuple]:  # type: ignore[type-arg]
    return [(r["item_id"], r["pair"], r["order"], r["sample"]) for r in records(run_dir)]


def scores(run_dir: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((run_dir / "scores.json").read_text())


MOCK = ("--backend", "mock", "--model", "always-a", "--protocol", "both")


def test_eval_writes_the_run_and_refuses_other_settings(tmp_path: Path) -> None:
    data, out = write_addition_pairs(tmp_path / "pairs.jsonl"), tmp_path / "run"
    done = rmr1("eval", "preference", "--out", str(out), "--data", str(data), *MOCK)
    assert done.returncode == 0, done.stderr
    assert {p.name for p in out.iterdir()} >= {"run.json", "judgments.jsonl", "scores.json", "report.html"}
    assert "accuracy" in done.stdout and scores(out)["accuracy"] == 0.5
    refused = rmr1("eval", "preference", "--out", str(out), "--data", str(data), *MOCK, "--seed", "3")
    assert refused.returncode == 2
    assert (
        refused.stderr.count("\n") == 1 and refused.stderr.startswith("error: ") and "seed" in refused.stderr
    )
    assert len(records(out)) == 24


def test_bad_input_fails_with_one_line(tmp_path: Path) -> None:
    data = write_addition_pairs(tmp_path / "pairs.jsonl")
    for args in (
        ("eval", "no-such-bench", "--out", str(tmp_path / "a"), "--data", str(data), *MOCK),
        ("eval", "preference", "--out", str(tmp_path / "b"), "--data", str(data), *MOCK, "--shard", "2/2"),
        ("rescore", str(tmp_path / "nowhere")),
    ):
        done = rmr1(*args)
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and done.stderr.startswith("error: "), (
            args
        )


def test_rescore_and_report_need_no_model(tmp_path: Path) -> None:
    data, out = write_addition_pairs(tmp_path / "pairs.jsonl"), tmp_path / "run"
    assert (
        rmr1("eval", "preference", "--out", str(out), "--data", str(data), *MOCK, "--no-report").returncode
        == 0
    )
    before = scores(out)
    (out / "scores.json").unlink()
    done = rmr1("rescore", str(out))
    assert done.returncode == 0, done.stderr
    assert scores(out) == before
    assert not (out / "report.html").exists()
    done = rmr1("report", str(out))
    assert done.returncode == 0 and Path(done.stdout.strip()) == out / "report.html"


def test_shards_merged_by_the_cli_equal_the_unsharded_run(tmp_path: Path) -> None:
    data = write_addition_pairs(tmp_path / "pairs.jsonl", n=15)
    common = ("--data", str(data), "--backend", "mock", "--model", "always-a", "--no-report")
    assert rmr1("eval", "preference", "--out", str(tmp_path / "whole"), *common).returncode == 0
    for i in range(3):
        done = rmr1("eval", "preference", "--out", str(tmp_path / f"s{i}"), *common, "--shard", f"{i}/3")
        assert done.returncode == 0, done.stderr
    done = rmr1(
        "merge",
        *(str(tmp_path / f"s{i}") for i in range(3)),
        "--out",
        str(tmp_path / "merged"),
        "--no-report",
    )
    assert done.returncode == 0, done.stderr
    assert scores(tmp_path / "merged") == scores(tmp_path / "whole")
    assert sorted(keys(tmp_path / "merged")) == sorted(keys(tmp_path / "whole"))


def kill_when(proc: subprocess.Popen[bytes], path: Path, lines: int, timeout: float = 300) -> None:
    """SIGKILL ``proc`` as soon as ``path`` holds at least ``lines`` lines."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and path.read_bytes().count(b"\n") >= lines:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            return
        if proc.poll() is not None:
            pytest.fail("the run finished before it could be killed")
        time.sleep(0.01)
    proc.kill()
    pytest.fail("no judgments appeared in time")


def check_killed_run_resumes(tmp_path: Path, args: list[str], head: list[str], at: int, total: int) -> Path:
    """Kill a run after ``at`` judgments, resume it, compare with an unbroken run; returns the run dir."""
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    proc = subprocess.Popen(
        [*head, *args, "--out", str(killed)], env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    kill_when(proc, killed / "judgments.jsonl", at)
    assert proc.returncode == -signal.SIGKILL
    assert at <= len(records(killed)) < total  # killed mid-run, the batches on disk kept
    assert not (killed / "scores.json").exists()
    resumed = subprocess.run([*head, *args, "--out", str(killed)], env=env(), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    done = subprocess.run([*head, *args, "--out", str(whole)], env=env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    got = keys(killed)
    assert len(got) == len(set(got)) == total  # none twice, none missing
    assert set(got) == set(keys(whole))
    assert scores(killed) == scores(whole)
    return killed


def test_a_sigkilled_eval_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    data = write_addition_pairs(tmp_path / "pairs.jsonl")
    args = [
        "eval",
        "preference",
        "--data",
        str(data),
        "--backend",
        "mock",
        "--model",
        "slow-mixed",
        "--protocol",
        "both",
        "--batch-size",
        "2",
        "--no-report",
    ]
    check_killed_run_resumes(tmp_path, args, [sys.executable, "-c", SLOW_CLI], at=6, total=24)


@pytest.mark.slow
def test_a_sigkilled_hf_eval_resumes_with_identical_completions(tmp_path: Path, tiny_model: Path) -> None:
    data = write_addition_pairs(tmp_path / "pairs.jsonl", n=6)
    args = [
        "eval",
        "preference",
        "--data",
        str(data),
        "--backend",
        "hf",
        "--model",
        str(tiny_model),
        "--protocol",
        "both",
        "--batch-size",
        "1",
        "--max-new-tokens",
        "48",
        "--no-report",
    ]
    killed = check_killed_run_resumes(tmp_path, args, [sys.executable, "-m", "rmr1"], at=3, total=12)
    by_key = {(r["item_id"], r["pair"], r["order"]): r["completion"] for r in records(killed)}
    whole = {(r["item_id"], r["pair"], r["order"]): r["completion"] for r in records(tmp_path / "whole")}
    assert by_key == whole  # greedy decoding: the resumed calls wrote exactly what an unbroken run writes


SLOW_ARGS = ("--backend", "mock", "--model", "slow-mixed", "--protocol", "both", "--batch-size", "2")


def test_two_evals_racing_on_one_folder_one_is_refused_nothing_duplicated(tmp_path: Path) -> None:
    # 200 calls of 0.04 s: the first run outlasts the second one's start-up.
    data, out = write_addition_pairs(tmp_path / "pairs.jsonl", n=100), tmp_path / "run"
    args = ["eval", "preference", "--data", str(data), *SLOW_ARGS, "--no-report", "--out", str(out)]
    head = [sys.executable, "-c", SLOW_CLI]
    first = subprocess.Popen([*head, *args], env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (out / "judgments.jsonl").is_file() and time.monotonic() < deadline:
        time.sleep(0.01)  # the first holds the folder once it writes judgments
    second = subprocess.run([*head, *args], env=env(), capture_output=True, text=True, timeout=120)
    assert first.poll() is None, "the first run ended before the second started"
    assert first.wait(timeout=300) == 0
    assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr
    assert f"pid {first.pid}" in second.stderr and str(out) in second.stderr
    got = keys(out)
    assert len(got) == len(set(got)) == 200
    again = subprocess.run([*head, *args], env=env(), capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and keys(out) == got  # free after the first ended; nothing to redo


def judge_file(tmp_path: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    data = write_addition_pairs(tmp_path / "pairs.jsonl")
    return rmr1("judge", "--pairs", str(data), *SLOW_ARGS, "--out", str(out), *extra, slow_rule=True)


def test_judge_out_run_twice_neither_duplicates_nor_loses(tmp_path: Path) -> None:
    out = tmp_path / "judged.jsonl"
    assert judge_file(tmp_path, out).returncode == 0
    once = out.read_bytes()
    again = judge_file(tmp_path, out)
    assert again.returncode == 0 and "(24 already there)" in " ".join(again.stderr.split())
    assert out.read_bytes() == once  # nothing appended twice, nothing lost
    other = judge_file(tmp_path, out, "--seed", "5")
    assert other.returncode == 2 and other.stderr.count("\n") == 1 and "other settings" in other.stderr
    assert out.read_bytes() == once


def test_a_sigkilled_judge_out_leaves_whole_lines_and_resumes(tmp_path: Path) -> None:
    data, out, whole = (
        write_addition_pairs(tmp_path / "pairs.jsonl"),
        tmp_path / "killed.jsonl",
        tmp_path / "whole.jsonl",
    )
    args = [sys.executable, "-c", SLOW_CLI, "judge", "--pairs", str(data), *SLOW_ARGS, "--no-record-latency"]
    proc = subprocess.Popen(
        [*args, "--out", str(out)], env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    kill_when(proc, out, 5)
    lines = out.read_text().splitlines()
    assert 5 <= len(lines) < 24 and all(json.loads(line) for line in lines)  # whole lines only
    assert subprocess.run([*args, "--out", str(out)], env=env(), capture_output=True).returncode == 0
    assert subprocess.run([*args, "--out", str(whole)], env=env(), capture_output=True).returncode == 0
    got = [json.loads(line) for line in out.read_text().splitlines()]
    want = [json.loads(line) for line in whole.read_text().splitlines()]
    key = lambda r: (r["item_id"], r["pair"], r["order"], r["sample"])  # noqa: E731
    assert len(got) == len({key(r) for r in got}) == 24
    assert sorted(got, key=key) == sorted(want, key=key)


def test_judgebench_single_order_only_when_asked_with_a_warning(tmp_path: Path) -> None:
    row = {
        "pair_id": "p",
        "source": "s",
        "question": "q",
        "response_A": "a",
        "response_B": "b",
        "label": "A>B",
    }
    data = tmp_path / "jb.jsonl"
    data.write_text(json.dumps(row) + "\n", encoding="utf-8")
    base = ["eval", "judgebench", "--data", str(data), "--backend", "mock", "--no-report"]
    default = rmr1(*base, "--out", str(tmp_path / "both"))
    assert default.returncode == 0 and "warning" not in default.stderr
    assert len(records(tmp_path / "both")) == 2
    single = rmr1(*base, "--protocol", "single", "--out", str(tmp_path / "single"))
    assert single.returncode == 0 and len(records(tmp_path / "single")) == 1
    assert "warning: judgebench judged in one order only" in single.stderr
