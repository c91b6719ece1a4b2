"""The HTTP app on a scripted judge, through FastAPI's in-process client: shapes, limits and errors."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from rmr1.backends.mock import MockBackend
from rmr1.judge import Judge, JudgeConfig
from rmr1.serve import ServeSettings, create_app
from rmr1.types import GenerationRequest

QUALITY = re.compile(r"q=(\d+)")


def by_quality(request: GenerationRequest) -> str:
    """A fair judge with a Chain-of-Rubrics shaped trace: prefers the higher q=N (shown first is A)."""
    found = QUALITY.findall(request.messages[-1].content)
    if len(found) < 2:
        return "no pair here"
    a, b = (int(x) for x in found[-2:])
    label = "A" if a > b else "B"
    return (
        "<type>Chat</type>\n<rubric>1. correctness (60%)\n2. clarity (40%)\n"
        "<justify>why</justify></rubric>\n"
        f"<eval><quote_A>q={a}</quote_A> vs <quote_B>q={b}</quote_B></eval>\n<answer>[[{label}]]</answer>"
    )


def client_for(script: object = by_quality, **settings: object) -> tuple[TestClient, MockBackend]:
    backend = MockBackend(script=script)  # type: ignore[arg-type]
    app = create_app(Judge(backend, "plain", JudgeConfig(max_new_tokens=64)), ServeSettings(**settings))  # type: ignore[arg-type]
    return TestClient(app), backend


@pytest.fixture
def client() -> Iterator[TestClient]:
    c, _ = client_for()
    with c:
        yield c


def test_judge_maps_the_verdict_back_to_the_given_responses(client: TestClient) -> None:
    for responses, winner in ((["x q=9", "x q=1"], 0), (["x q=1", "x q=9"], 1)):
        for seed in range(3):  # seeds change the shown order; the answer must not change
            body = client.post(
                "/v1/judge", json={"prompt": "Which?", "responses": responses, "options": {"seed": seed}}
            ).json()
            assert body["winner"] == winner and body["verdict"] == "AB"[winner]
            (j,) = body["judgments"]
            assert j["preferred"] == winner and j["parse_status"] == "parsed"
            assert j["trace"]["type"] == "Chat" and len(j["trace"]["rubric_items"]) == 2
            assert body["usage"]["total_tokens"] == j["prompt_tokens"] + j["completion_tokens"] > 0


def test_judge_both_orders_and_messages_input(client: TestClient) -> None:
    body = client.post(
        "/v1/judge",
        json={
            "messages": [{"role": "system", "content": "be fair"}, {"role": "user", "content": "Which?"}],
            "responses": ["x q=2", "x q=5"],
            "options": {"protocol": "both"},
        },
    ).json()
    assert [j["order"] for j in body["judgments"]] == ["AB", "BA"]
    assert body["winner"] == 1 and body["confidence"] == 1.0


def test_unparsed_verdict_is_reported_not_guessed() -> None:
    c, _ = client_for(lambda r: "I cannot decide.")
    body = c.post("/v1/judge", json={"prompt": "Which?", "responses": ["a", "b"]}).json()
    assert body["verdict"] is None and body["parse_status"] == "unparsed" and body["unparsed"] == 1
    assert body["judgments"][0]["parse_error"] == "no_verdict"


def test_rank_knockout_and_round_robin(client: TestClient) -> None:
    responses = [f"r q={q}" for q in (3, 7, 1, 5, 2)]
    ko = client.post("/v1/rank", json={"prompt": "Which?", "responses": responses}).json()
    assert ko["comparisons"] == 4 == ko["calls"] and ko["best"] == 1 and ko["method"] == "knockout"
    rr = client.post(
        "/v1/rank",
        json={
            "prompt": "Which?",
            "responses": responses,
            "method": "round_robin",
            "scoring": "bradley_terry",
        },
    ).json()
    assert rr["comparisons"] == 10 and rr["ranking"] == [1, 3, 0, 4, 2] and rr["scoring"] == "bradley_terry"


def test_score_endpoint_and_openrlhf_shape(client: TestClient) -> None:
    body = client.post(
        "/v1/score",
        json={
            "method": "reference",
            "groups": [{"prompt": "Which?", "responses": ["a q=9", "a q=1", ""], "reference": "ref q=5"}],
        },
    ).json()
    assert body["results"][0]["rewards"] == [1.0, -1.0, -1.0]
    reward = client.post(
        "/get_reward",
        json={"query": ["P q=1", "P q=8", "P q=4"], "prompts": ["P"] * 3, "labels": [None, None, None]},
    ).json()
    assert reward["rewards"] == [-1.0, 1.0, 0.0] and reward["scores"] == [0.0, 1.0, 0.5]
    assert set(reward["extra_logs"]) >= {"judge_draws", "judge_unparsed"}
    labelled = client.post(
        "/get_reward",
        json={"query": ["P q=1", "P q=8"], "prompts": ["P", "P"], "labels": ["gold q=5", "gold q=5"]},
    ).json()
    assert labelled["rewards"] == [-1.0, 1.0] and labelled["method"] == "reference"


def test_health_and_openapi(client: TestClient) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["batcher"]["max_batch"] == 32
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/judge", "/v1/rank", "/v1/score", "/get_reward", "/health", "/v1/chat/completions"} <= set(
        paths
    )


def test_bearer_token() -> None:
    c, _ = client_for(token="s3cret")
    body = {"prompt": "Which?", "responses": ["a q=1", "b q=2"]}
    missing = c.post("/v1/judge", json=body)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert "token" in missing.json()["error"]["message"]
    assert c.post("/v1/judge", json=body, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert c.post("/v1/judge", json=body, headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert c.get("/health").status_code == 200  # liveness stays open


@pytest.mark.parametrize(
    ("payload", "status", "reason"),
    [
        (b"{not json", 422, "JSON"),
        (b'{"prompt": "x"}', 422, "responses"),
        (b'{"prompt": "x", "responses": ["a", "b"], "optoins": {}}', 422, "optoins"),
        (b'{"prompt": "x", "responses": ["a", "  "]}', 422, "responses[1] is empty"),
        (
            b'{"prompt": "x", "messages": [{"role": "user", "content": "y"}], "responses": ["a", "b"]}',
            422,
            "exactly one",
        ),
        (b'{"prompt": "x", "responses": ["a", "b"], "options": {"samples": 99}}', 400, "samples"),
        (b'{"prompt": "x", "responses": ["a", "b"], "options": {"template": "nope"}}', 400, "template"),
        (b'{"prompt": "x", "responses": ["a", "b"], "options": {"max_new_tokens": 100000}}', 400, "limit"),
        (b"[1, 2, 3]", 422, "body"),
    ],
)
def test_malformed_requests_get_4xx_with_a_reason(
    client: TestClient, payload: bytes, status: int, reason: str
) -> None:
    response = client.post("/v1/judge", content=payload, headers={"content-type": "application/json"})
    assert response.status_code == status
    assert reason in response.json()["error"]["message"]
    assert client.get("/health").status_code == 200  # and the server carries on


def test_oversized_requests_get_413() -> None:
    c, backend = client_for(max_body_bytes=2000, max_candidates=4)
    big = {"prompt": "x" * 5000, "responses": ["a", "b"]}
    assert c.post("/v1/judge", json=big).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams in
        yield b'{"prompt": "'
        for _ in range(10):
            yield b"y" * 500
        yield b'", "responses": ["a", "b"]}'

    streamed = c.post("/v1/judge", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413 and "limit of 2000 bytes" in streamed.json()["error"]["message"]
    many = c.post("/v1/rank", json={"prompt": "x", "responses": [f"r{k}" for k in range(5)]})
    assert many.status_code == 413 and "5 responses" in many.json()["error"]["message"]
    assert backend.calls == 0


def test_slow_judging_times_out_with_504() -> None:
    c, _ = client_for(lambda r: time.sleep(1.0) or "late", request_timeout=0.2)
    response = c.post("/v1/judge", json={"prompt": "x", "responses": ["a", "b"]})
    assert response.status_code == 504 and "timeout" in response.json()["error"]["message"]


def test_backend_fault_is_a_500_with_reason_and_the_server_survives() -> None:
    calls = {"n": 0}

    def flaky(request: GenerationRequest) -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("GPU fell off the bus")
        return "<answer>[[A]]</answer>"

    c, _ = client_for(flaky)
    first = c.post("/v1/judge", json={"prompt": "x", "responses": ["a", "b"]})
    assert first.status_code == 500 and "GPU fell off the bus" in first.json()["error"]["message"]
    assert c.post("/v1/judge", json={"prompt": "x", "responses": ["a", "b"]}).status_code == 200


def test_concurrent_requests_are_micro_batched() -> None:
    c, backend = client_for(batch_window_ms=300)
    codes: list[int] = []

    def one(k: int) -> None:
        r = c.post("/v1/judge", json={"prompt": "x", "responses": [f"a q={k}", f"b q={k + 1}"]})
        codes.append(r.status_code)

    threads = [threading.Thread(target=one, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [200] * 6
    assert max(backend.batches) > 1 and sum(backend.batches) == 6


def test_chat_completions_openai_shape(client: TestClient) -> None:
    body = client.post(
        "/v1/chat/completions",
        json={
            "model": "anything",
            "messages": [{"role": "user", "content": "pair: q=1 and q=2"}],
            "max_tokens": 16,
            "temperature": 0,
        },
    ).json()
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["role"] == "assistant"
    assert body["choices"][0]["finish_reason"] == "stop" and body["rmr1"][0]["verdict"] == "B"
    assert client.get("/v1/models").json()["data"][0]["id"] == "rmr1-judge"
    stream = client.post(
        "/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}], "stream": True}
    )
    assert stream.status_code == 400 and "stream" in stream.json()["error"]["message"]
    bad_role = client.post("/v1/chat/completions", json={"messages": [{"role": "robot", "content": "x"}]})
    assert bad_role.status_code == 422


def test_cli_refuses_a_bad_port_before_loading_a_model() -> None:
    from typer.testing import CliRunner

    from rmr1.cli import app
    from rmr1.errors import ConfigError

    result = CliRunner().invoke(app, ["serve", "--port", "70000", "--backend", "mock", "--model", "always-a"])
    assert isinstance(result.exception, ConfigError) and "port" in str(result.exception)
