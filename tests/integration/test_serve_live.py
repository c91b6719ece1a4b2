"""`rmr1 serve` as a real process on loopback, with a real (tiny) model: the openai client, httpx, the
OpenRLHF reward file, bad requests, concurrency and a graceful shutdown."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rmr1.rewards import Group
from rmr1.serve.client import RemoteScorer
from rmr1.serve.process import ServerProcess, free_port
from rmr1.types import as_messages

pytestmark = pytest.mark.slow
TOKEN = "live-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def server(tiny_model: Path) -> Iterator[ServerProcess]:
    args = [
        "--model",
        str(tiny_model),
        "--max-new-tokens",
        "12",
        "--template",
        "plain",
        "--dtype",
        "float32",
        "--token",
        TOKEN,
        "--max-body-bytes",
        "65536",
        "--batch-window-ms",
        "50",
    ]
    with ServerProcess.start(args) as proc:
        yield proc


def test_openai_client_works(server: ServerProcess) -> None:
    import openai

    client = openai.OpenAI(base_url=server.url + "/v1", api_key=TOKEN, max_retries=0)
    reply = client.chat.completions.create(
        model="whatever", max_tokens=6, messages=[{"role": "user", "content": "What is 12 plus 30?"}]
    )
    assert reply.object == "chat.completion" and reply.choices[0].message.role == "assistant"
    assert isinstance(reply.choices[0].message.content, str)
    assert reply.choices[0].finish_reason in ("stop", "length") and reply.usage is not None
    assert reply.usage.completion_tokens <= 6
    assert [m.id for m in client.models.list().data] == ["model"]
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server.url + "/v1", api_key="wrong", max_retries=0).models.list()
    with pytest.raises(openai.BadRequestError, match="limit"):
        client.chat.completions.create(
            model="m", max_tokens=500, messages=[{"role": "user", "content": "hi"}]
        )


def test_httpx_judge_rank_and_reward(server: ServerProcess) -> None:
    judged = httpx.post(
        server.url + "/v1/judge",
        headers=AUTH,
        timeout=120,
        json={
            "prompt": "What is 12 plus 30?",
            "responses": ["It is 42.", "It is 41."],
            "options": {"protocol": "both"},
        },
    ).json()
    assert len(judged["judgments"]) == 2 and judged["usage"]["completion_tokens"] > 0
    # The tiny random judge rarely finishes a verdict in 12 tokens; whatever it says has a defined status.
    assert all(j["parse_status"] in ("parsed", "unparsed", "truncated") for j in judged["judgments"])
    ranked = httpx.post(
        server.url + "/v1/rank",
        headers=AUTH,
        timeout=120,
        json={"prompt": "Say hello.", "responses": ["hello", "hi there", "good day", "hey", "greetings"]},
    ).json()
    assert ranked["comparisons"] == 4 and sorted(ranked["ranking"]) == [0, 1, 2, 3, 4]


def test_openrlhf_reward_file_against_the_server(
    server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = Path(__file__).resolve().parents[2] / "examples" / "openrlhf_reward_func.py"
    spec = importlib.util.spec_from_file_location("openrlhf_reward_func", path)
    assert spec is not None and spec.loader is not None
    module: Any = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setenv("RMR1_URL", server.url)
    monkeypatch.setenv("RMR1_TOKEN", TOKEN)
    out = module.reward_func(
        ["Q: add. A: 42", "Q: add. A: 41", "Q: hi. A: hello"], ["Q: add. A:", "Q: add. A:", "Q: hi. A:"], None
    )
    assert out["rewards"].shape == (3,) and out["scores"].shape == (3,)
    assert float(out["rewards"][2]) == 0.0  # alone under its prompt: no peers, no comparison
    assert set(out["extra_logs"]) >= {"judge_draws", "judge_unparsed", "judge_comparisons"}


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"content": b"{broken"}, 422),
        ({"json": {"prompt": "x", "responses": ["only one"]}}, 422),
        ({"json": {"prompt": "x" * 70000, "responses": ["a", "b"]}}, 413),
        ({"json": {"prompt": "x", "responses": [f"r{k}" for k in range(100)]}, "path": "/v1/rank"}, 413),
    ],
)
def test_bad_requests_get_4xx_with_a_reason(
    server: ServerProcess, kwargs: dict[str, Any], status: int
) -> None:
    path = kwargs.pop("path", "/v1/judge")
    response = httpx.post(
        server.url + path, headers={**AUTH, "content-type": "application/json"}, timeout=60, **kwargs
    )
    assert response.status_code == status and response.json()["error"]["message"]
    assert httpx.get(server.url + "/health").json()["status"] == "ok"


def test_concurrent_clients_share_model_calls(server: ServerProcess) -> None:
    before = httpx.get(server.url + "/health").json()["batcher"]

    async def burst() -> list[int]:
        async with httpx.AsyncClient(headers=AUTH, timeout=120) as client:
            calls = [
                client.post(
                    server.url + "/v1/judge", json={"prompt": f"Question {k}?", "responses": ["yes", "no"]}
                )
                for k in range(8)
            ]
            return [r.status_code for r in await asyncio.gather(*calls)]

    assert asyncio.run(burst()) == [200] * 8
    after = httpx.get(server.url + "/health").json()["batcher"]
    assert after["requests"] - before["requests"] == 8
    assert after["batches"] - before["batches"] < 8  # some requests shared a model call


def test_graceful_shutdown_finishes_in_flight_requests(tiny_model: Path, tmp_path: Path) -> None:
    proc = ServerProcess.start(
        ["--model", str(tiny_model), "--max-new-tokens", "16", "--dtype", "float32", "--max-batch", "8"],
        log=tmp_path / "serve.log",
    )
    answers: list[int] = []

    def long_request() -> None:  # 45 comparisons in six model calls of at most 8: a few seconds
        body = {
            "prompt": "Pick one.",
            "responses": [f"option {k}" for k in range(10)],
            "method": "round_robin",
        }
        answers.append(httpx.post(proc.url + "/v1/rank", json=body, timeout=300).status_code)

    worker = threading.Thread(target=long_request)
    worker.start()
    while httpx.get(proc.url + "/health").json()["in_flight"] == 0:
        time.sleep(0.05)
    assert proc.stop() == 0  # SIGTERM, then a clean exit
    worker.join()
    assert answers == [200]
    assert "Traceback" not in proc.tail()


# --- RL-scale load and crash recovery ----------------------------------------------------------------------

# A server on a scripted judge that takes 2 ms per comparison, so a kill can land in the middle of a batch.
SLOW_MOCK_SERVER = """
import re, sys, time
import uvicorn
from rmr1.backends.mock import MockBackend
from rmr1.judge import Judge, JudgeConfig
from rmr1.serve import ServeSettings, create_app

def by_quality(request):
    time.sleep(0.002)
    a, b = (int(x) for x in re.findall(r"q=(\\d+)", request.messages[-1].content)[-2:])
    return "<answer>[[%s]]</answer>" % ("A" if a > b else "B")

judge = Judge(MockBackend(script=by_quality), "plain", JudgeConfig(max_new_tokens=32))
app = create_app(judge, ServeSettings(max_batch=8))
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def _quality_groups(count: int, size: int) -> tuple[list[Group], list[float]]:
    groups, expected = [], []
    for g in range(count):
        qualities = [(g * 5 + k * 3) % size for k in range(size)]  # a permutation of range(size)
        groups.append(Group(as_messages(f"Question {g}?"), tuple(f"answer q={q}" for q in qualities)))
        expected += [2 * q / (size - 1) - 1 for q in qualities]
    return groups, expected


def test_a_reward_call_survives_the_server_being_killed_mid_batch_and_restarted(tmp_path: Path) -> None:
    port = free_port()
    argv = [sys.executable, "-c", SLOW_MOCK_SERVER, str(port)]
    first = ServerProcess.launch(argv, port=port, ready_timeout=60, log=tmp_path / "first.log")
    groups, expected = _quality_groups(64, 7)  # 1,344 comparisons, about 3 s of judging
    scorer = RemoteScorer(first.url, backoff=0.2, max_backoff=1.0, retries=60)
    out: list[Any] = []
    worker = threading.Thread(target=lambda: out.append(scorer.score(groups, "round_robin")))
    worker.start()
    try:
        while httpx.get(first.url + "/health").json()["batcher"]["requests"] < 100:
            time.sleep(0.02)
        first.kill()  # SIGKILL with the request half judged
        second = ServerProcess.launch(argv, port=port, ready_timeout=60, log=tmp_path / "second.log")
        worker.join(120)
        done = httpx.get(second.url + "/health").json()["batcher"]["requests"]
        second.stop()
    finally:
        first.kill()
    assert not worker.is_alive() and len(out) == 1
    assert [r for score in out[0] for r in score.rewards] == pytest.approx(expected)  # once each, in order
    assert scorer.retried >= 1 and done == 64 * 21  # the new server judged the batch exactly once


def test_embedded_model_serves_64_groups_of_4_to_8_concurrent_clients(embedded_model: Path) -> None:
    args = ["--model", str(embedded_model), "--template", "plain", "--max-new-tokens", "8"]
    with ServerProcess.start([*args, "--request-timeout", "900"], ready_timeout=600) as server:
        batches = [_quality_groups(8, 4)[0] for _ in range(8)]  # 8 clients x 8 groups = 64 groups of 4
        errors: list[str] = []
        results: list[Any] = [None] * 8

        def client(k: int) -> None:
            try:
                results[k] = RemoteScorer(server.url, timeout=900).score(batches[k], "round_robin")
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(900)
        stats = httpx.get(server.url + "/health").json()["batcher"]
    assert errors == []
    assert all(len(r) == 8 and all(len(s.rewards) == 4 for s in r) for r in results)
    assert all(-1.0 <= x <= 1.0 for r in results for s in r for x in s.rewards)
    assert stats["requests"] == 64 * 6 and stats["failed_batches"] == 0
