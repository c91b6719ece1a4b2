"""`rmr1 serve` as a real process on loopback, with a real (tiny) model: the openai client, httpx, the
OpenRLHF reward file, bad requests, concurrency and a graceful shutdown."""

from __future__ import annotations

import asyncio
import importlib.util
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rmr1.serve.process import ServerProcess

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


def test_graceful_shutdown_finishes_in_flight_requests(tiny_model: Path) -> None:
    proc = ServerProcess.start(
        ["--model", str(tiny_model), "--max-new-tokens", "16", "--dtype", "float32", "--max-batch", "1"]
    )
    answers: list[int] = []

    def long_request() -> None:  # 45 comparisons, one model call each: a few seconds
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
