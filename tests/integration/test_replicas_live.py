"""Issue 9's acceptance for several servers: `rmr1 eval` over two `rmr1 serve` replicas, one killed with SIGKILL
mid-run, finishes every call with no errors, and both replicas had served requests before the kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from rmr1.serve.process import ServerProcess

pytestmark = pytest.mark.slow
SRC = Path(__file__).resolve().parents[2] / "src"
PAIRS = 300
# The micro-batcher waits this long for company, which makes each call take a while, so the kill lands mid-run.
REPLICA = ["--backend", "mock", "--model", "always-a", "--batch-window-ms", "40"]


def served(server: ServerProcess) -> int:
    return int(httpx.get(server.url + "/health", timeout=5.0).json()["batcher"]["requests"])


def test_eval_survives_a_replica_killed_mid_run(tmp_path: Path) -> None:
    data = tmp_path / "pairs.jsonl"
    rows = [
        {"id": f"q{i}", "prompt": f"{i}+1?", "chosen": f"{i + 1}", "rejected": f"{i + 2}"}
        for i in range(PAIRS)
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    with ServerProcess.start(REPLICA) as doomed, ServerProcess.start(REPLICA) as survivor:
        urls = [f"{doomed.url}/v1", f"{survivor.url}/v1"]
        args = ["eval", "preference", "--data", str(data), "--out", str(out), "--no-report"]
        args += ["--backend", "openai", "--base-url", urls[0], "--base-url", urls[1]]
        proc = subprocess.Popen(
            [sys.executable, "-m", "rmr1", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        log, deadline = out / "judgments.jsonl", time.monotonic() + 120
        while not (log.is_file() and log.read_bytes().count(b"\n") >= PAIRS // 3):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no judgments in time"
            time.sleep(0.01)
        before = (served(doomed), served(survivor))
        doomed.proc.send_signal(signal.SIGKILL)
        doomed.proc.wait(timeout=30)
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr.decode()[-2000:]
        after = served(survivor)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(records) == PAIRS and len({r["item_id"] for r in records}) == PAIRS
    errors = [r for r in records if r["finish_reason"] == "error"]
    assert not errors, errors[0]
    assert min(before) > 0, before  # the load was spread: both replicas served before the kill
    assert after > before[1]  # and the survivor took the rest
    print(f"served before the kill {before}, survivor after {after}, judgments {len(records)}")
