"""Run directories shared by several processes: the writer's lock, atomic replaces, the served model on
resume, distill retrying failed teacher calls, and JudgeBench's two-order default."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import rmr1
from rmr1.atomic import write_atomic
from rmr1.backends.mock import MockBackend
from rmr1.errors import ConfigError
from rmr1.evaluation import rescore
from rmr1.evaluation.rundir import RunDir
from rmr1.train.distill import ATTEMPTS, DistillConfig, distill, read_attempts
from rmr1.types import Completion, GenerationRequest

SRC = Path(__file__).resolve().parents[2] / "src"


def write_pairs(path: Path, n: int = 4) -> Path:
    rows = [
        {"id": f"q{i}", "prompt": f"{i}+1?", "chosen": f"{i + 1}", "rejected": f"{i + 2}"} for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def mock_eval(out: Path, data: Path, **kw: Any) -> rmr1.evaluation.EvalResult:
    return rmr1.evaluate(
        "preference", out, data=str(data), backend="mock", model="always-a", report=False, **kw
    )


# --- the lock ------------------------------------------------------------------------------------------------


def test_a_held_run_dir_refuses_a_second_writer_with_the_holders_pid(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    with run.lock(), pytest.raises(ConfigError) as err, run.lock():
        pass
    message = str(err.value)
    assert str(tmp_path) in message and f"pid {os.getpid()}" in message and "\n" not in message
    with run.lock():  # released on exit: the next writer gets it
        pass


def test_eval_rescore_and_merge_into_a_locked_run_are_refused(tmp_path: Path) -> None:
    data, out = write_pairs(tmp_path / "pairs.jsonl"), tmp_path / "run"
    mock_eval(out, data)
    before = (out / "judgments.jsonl").read_bytes()
    with RunDir(out).lock():
        with pytest.raises(ConfigError, match="in use by another rmr1 process"):
            mock_eval(out, data)
        with pytest.raises(ConfigError, match="in use by another rmr1 process"):
            rescore(out)
    assert (out / "judgments.jsonl").read_bytes() == before
    rescore(out)  # free again


def test_merge_into_a_locked_folder_is_refused(tmp_path: Path) -> None:
    data = write_pairs(tmp_path / "pairs.jsonl")
    shards = [tmp_path / f"s{i}" for i in range(2)]
    for i, shard in enumerate(shards):
        mock_eval(shard, data, shard=f"{i}/2")
    target = tmp_path / "merged"
    target.mkdir()
    with RunDir(target).lock(), pytest.raises(ConfigError, match="in use by another rmr1 process"):
        rmr1.evaluation.merge_runs(shards, target, report=False)
    assert not (target / "judgments.jsonl").exists()
    whole = mock_eval(tmp_path / "whole", data).scores
    assert rmr1.evaluation.merge_runs(shards, target, report=False)["accuracy"] == whole["accuracy"]


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from rmr1.evaluation.rundir import RunDir\n"
            "with RunDir(sys.argv[1]).lock():\n    print('held', flush=True); time.sleep(60)",
            str(tmp_path),
        ],
        env={**os.environ, "PYTHONPATH": str(SRC)},
        stdout=subprocess.PIPE,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
    with pytest.raises(ConfigError, match=f"pid {holder.pid}"), RunDir(tmp_path).lock():
        pass
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    with RunDir(tmp_path).lock():  # the kernel dropped the dead process's lock
        pass


# --- atomic replaces -----------------------------------------------------------------------------------------


def test_concurrent_atomic_writes_never_share_a_temporary(tmp_path: Path) -> None:
    target = tmp_path / "scores.json"
    texts = [json.dumps({"writer": w, "pad": "x" * 5000}) for w in range(4)]
    errors: list[BaseException] = []

    def writer(text: str) -> None:
        try:
            for _ in range(50):
                write_atomic(target, text)
        except BaseException as exc:  # a shared temporary name shows up as a missing or torn file here
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert target.read_text() in texts  # whole, from one writer
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.json"]  # no temporary left behind


# --- the served model ----------------------------------------------------------------------------------------


class _Served(ThreadingHTTPServer):
    model_id = "judge-one"


class _Handler(BaseHTTPRequestHandler):
    server: _Served

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, payload: Any) -> None:
        raw = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:
        self._send({"object": "list", "data": [{"id": self.server.model_id, "object": "model"}]})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        message = {"role": "assistant", "content": "<answer>[[A]]</answer>"}
        self._send({"choices": [{"index": 0, "message": message, "finish_reason": "stop"}], "usage": {}})


@pytest.fixture()
def served() -> Iterator[_Served]:
    srv = _Served(("127.0.0.1", 0), _Handler)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def test_run_json_records_the_served_model_and_a_resume_on_another_is_refused(
    tmp_path: Path, served: _Served
) -> None:
    data, out = write_pairs(tmp_path / "pairs.jsonl"), tmp_path / "run"
    url = f"http://127.0.0.1:{served.server_address[1]}/v1"
    opts = {"backend": "openai", "model": "any-name", "base_url": url, "report": False}
    rmr1.evaluate("preference", out, data=str(data), limit=2, **opts)
    assert json.loads((out / "run.json").read_text())["served_model"] == "judge-one"
    served.model_id = "judge-two"  # the same URL now serves another model
    with pytest.raises(ConfigError) as err:
        rmr1.evaluate("preference", out, data=str(data), **opts)
    assert "served model: 'judge-one' -> 'judge-two'" in str(err.value) and "\n" not in str(err.value)
    served.model_id = "judge-one"
    assert rmr1.evaluate("preference", out, data=str(data), **opts).judged == 2  # same model: resumes


# --- distill ------------------------------------------------------------------------------------------------


class FlakyTeacher:
    """Fails every request of its first ``failing`` calls, then answers with the right verdict."""

    def __init__(self, failing: int) -> None:
        self.failing = failing
        self.requests: list[str] = []

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        self.requests.extend(r.key for r in requests)
        if self.failing > 0:
            self.failing -= 1
            return [Completion("", finish_reason="error", error="HTTP 503") for _ in requests]
        return [Completion("<answer>[[A]]</answer>") for _ in requests]


def test_distill_resume_retries_failed_teacher_calls(tmp_path: Path) -> None:
    items = [
        {"id": f"d{i}", "prompt": [{"role": "user", "content": f"q{i}"}], "winner": "model_a"}
        for i in range(3)
    ]
    config = DistillConfig(second_pass=False, batch_size=8)
    first = FlakyTeacher(failing=1)
    stats = distill(first, items, tmp_path, config)
    assert stats.kept == 0 and len(first.requests) == 3
    again = FlakyTeacher(failing=0)
    stats = distill(again, items, tmp_path, config)
    assert sorted(again.requests) == ["d0|1", "d1|1", "d2|1"]  # the failed calls were made again
    assert stats.kept == 3
    assert all(a["finish_reason"] == "stop" for a in read_attempts(tmp_path / ATTEMPTS).values())
    done = FlakyTeacher(failing=0)
    distill(done, items, tmp_path, config)
    assert done.requests == []  # answered calls are not made a third time


# --- JudgeBench's protocol -------------------------------------------------------------------------------------


def _judgebench(tmp_path: Path) -> Path:
    rows = [
        {"pair_id": f"p{i}", "original_id": str(i), "source": "mmlu-pro-math", "question": f"q{i}",
         "response_model": "m", "response_A": "a", "response_B": "b", "label": "A>B"}
        for i in range(3)
    ]  # fmt: skip
    path = tmp_path / "judgebench.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("benchmark", "protocol", "expected", "calls"),
    [
        ("judgebench", None, "both", 6),  # the official protocol when nothing is asked
        ("judgebench", "single", "single", 3),  # asked for: honoured
        ("preference", None, "single", 3),  # other benchmarks keep one order by default
    ],
)
def test_judgebench_judges_both_orders_unless_asked(
    tmp_path: Path, benchmark: str, protocol: str | None, expected: str, calls: int
) -> None:
    data = _judgebench(tmp_path) if benchmark == "judgebench" else write_pairs(tmp_path / "p.jsonl", 3)
    result = rmr1.evaluate(
        benchmark, tmp_path / "run", data=str(data), backend="mock", model="always-a", protocol=protocol,
        report=False,
    )  # fmt: skip
    assert json.loads((tmp_path / "run" / "run.json").read_text())["protocol"] == expected
    assert result.judged == calls


def test_a_judge_built_in_code_keeps_its_protocol_on_judgebench(tmp_path: Path) -> None:
    judge = rmr1.Judge(MockBackend("always-a"))
    result = rmr1.evaluate(
        "judgebench", tmp_path / "run", judge=judge, data=str(_judgebench(tmp_path)), report=False
    )
    assert result.judged == 3  # its JudgeConfig says single: an explicit choice
