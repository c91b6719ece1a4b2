"""The server at RL batch sizes and under faults: big /v1/score submissions, a bad request among good ones,
callers that give up (timeout, disconnect), timeout mapping, and the docs behind the token."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import random
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from rmr1.backends.mock import MockBackend
from rmr1.judge import Judge, JudgeConfig
from rmr1.serve import ServeSettings, create_app
from rmr1.serve.app import Service
from rmr1.serve.batcher import Overloaded
from rmr1.serve.process import free_port
from rmr1.types import GenerationRequest, as_messages

QUALITY = re.compile(r"q=(\d+)")


def by_quality(request: GenerationRequest) -> str:
    """A fair judge: prefers the response with the higher q=N (the one shown first is A)."""
    a, b = (int(x) for x in QUALITY.findall(request.messages[-1].content)[-2:])
    return f"<answer>[[{'A' if a > b else 'B'}]]</answer>"


def make_app(script: object = by_quality, **settings: object) -> tuple[TestClient, MockBackend]:
    backend = MockBackend(script=script)  # type: ignore[arg-type]
    judge = Judge(backend, "plain", JudgeConfig(max_new_tokens=64))
    return TestClient(create_app(judge, ServeSettings(**settings))), backend  # type: ignore[arg-type]


def shuffled_groups(count: int, size: int, seed: int) -> tuple[list[dict[str, object]], list[list[float]]]:
    """Groups whose responses carry distinct qualities in a random order, and the round-robin rewards."""
    rng = random.Random(seed)
    groups: list[dict[str, object]] = []
    expected: list[list[float]] = []
    for g in range(count):
        qualities = rng.sample(range(100), size)
        groups.append({"prompt": f"Question {g}?", "responses": [f"answer {g} q={q}" for q in qualities]})
        # round robin: reward = 2 * win rate - 1, and a response beats exactly those of lower quality
        ranks = [sorted(qualities).index(q) for q in qualities]
        expected.append([2 * r / (size - 1) - 1 for r in ranks])
    return groups, expected


def flat(rows: list[list[float]]) -> list[float]:
    return [x for row in rows for x in row]


def test_score_1024_groups_of_7_round_robin_is_answered_in_full() -> None:
    client, backend = make_app()
    groups, expected = shuffled_groups(1024, 7, seed=1)
    with client:
        response = client.post("/v1/score", json={"groups": groups, "method": "round_robin"})
        assert response.status_code == 200, response.text[:300]
        results = response.json()["results"]
        assert flat([r["rewards"] for r in results]) == pytest.approx(flat(expected))
        assert all(r["comparisons"] == [6] * 7 for r in results)
        stats = client.get("/health").json()["batcher"]
    comparisons = 1024 * 21  # 21,504 backend requests: over five times the default queue limit of 4096
    assert backend.calls == comparisons == stats["requests"]
    assert stats["largest_batch"] <= 32 and stats["dropped_requests"] == 0


def test_concurrent_big_submissions_share_a_small_queue_without_503() -> None:
    client, backend = make_app(max_queue=40, max_batch=16, batch_window_ms=1)
    jobs = [shuffled_groups(64, 7, seed=k) for k in range(4)]
    codes: list[int] = []
    answers: list[list[list[float]]] = [[] for _ in jobs]

    def post(k: int) -> None:
        response = client.post("/v1/score", json={"groups": jobs[k][0]})
        codes.append(response.status_code)
        if response.status_code == 200:
            answers[k] = [r["rewards"] for r in response.json()["results"]]

    with client:
        threads = [threading.Thread(target=post, args=(k,)) for k in range(len(jobs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert codes == [200] * 4
    for k, (_, expected) in enumerate(jobs):
        assert flat(answers[k]) == pytest.approx(flat(expected))
    assert max(backend.batches) <= 16 and backend.calls == 4 * 64 * 21


def test_a_request_the_backend_rejects_fails_alone_in_a_shared_batch() -> None:
    def picky(request: GenerationRequest) -> str:
        if "poison" in request.messages[-1].content:
            raise ValueError("this prompt cannot be tokenized")
        return by_quality(request)

    client, backend = make_app(picky, batch_window_ms=300)
    bodies = {
        "good": {"prompt": "Which?", "responses": ["a q=1", "b q=2"]},
        "bad": {"prompt": "Which?", "responses": ["poison q=1", "b q=2"]},
        "also_good": {"prompt": "Which?", "responses": ["a q=5", "b q=2"]},
    }
    out: dict[str, Any] = {}

    def post(name: str) -> None:
        out[name] = client.post("/v1/judge", json=bodies[name])

    with client:
        threads = [threading.Thread(target=post, args=(n,)) for n in bodies]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        stats = client.get("/health").json()["batcher"]
    assert out["good"].status_code == 200 and out["good"].json()["winner"] == 1
    assert out["also_good"].status_code == 200 and out["also_good"].json()["winner"] == 0
    assert out["bad"].status_code == 400 and "tokenized" in out["bad"].json()["error"]["message"]
    assert backend.batches[0] == 3 and stats["rerun_alone"] == 3


@pytest.mark.parametrize(
    "kind",
    [TimeoutError, asyncio.TimeoutError, concurrent.futures.TimeoutError],
    ids=["builtin", "asyncio", "futures"],
)
def test_every_timeout_class_maps_to_504(kind: type[Exception]) -> None:
    def upstream_times_out(request: GenerationRequest) -> str:
        raise kind("upstream judge did not answer")

    client, _ = make_app(upstream_times_out)
    response = client.post("/v1/judge", json={"prompt": "x", "responses": ["a", "b"]})
    assert response.status_code == 504 and "timed out" in response.json()["error"]["message"]


def test_a_request_that_waited_past_its_timeout_for_a_worker_is_503_and_never_runs() -> None:
    backend = MockBackend(script=by_quality)
    service = Service(Judge(backend, "plain"), ServeSettings(max_concurrency=1, request_timeout=0.2))
    release = threading.Event()
    ran: list[str] = []

    async def scenario() -> None:
        service.executor.submit(release.wait, 5)  # the only worker thread is busy with someone else's work
        with pytest.raises(Overloaded, match="saturated"):
            await service.run(lambda: ran.append("judged"))
        release.set()
        await asyncio.sleep(0.2)  # the thread frees up and finds the request abandoned

    asyncio.run(scenario())
    service.close()
    assert ran == [] and service.batcher.stats.not_started == 1 and backend.calls == 0


def test_overloaded_is_503_with_retry_after() -> None:
    def full(request: GenerationRequest) -> str:
        raise Overloaded("the model's queue stayed full")

    client, _ = make_app(full)
    response = client.post("/v1/judge", json={"prompt": "x", "responses": ["a", "b"]})
    assert response.status_code == 503 and response.headers["retry-after"] == "1"


@pytest.fixture
def live_server() -> Iterator[tuple[str, MockBackend]]:
    """A real uvicorn on loopback in this process, on a slow judge (0.05 s per model call)."""
    backend = MockBackend(script=lambda r: by_quality(r))
    slow = _SlowBackend(backend, 0.05)
    app = create_app(Judge(slow, "plain", JudgeConfig(max_new_tokens=64)), ServeSettings(max_batch=8))  # type: ignore[arg-type]
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", backend
    server.should_exit = True
    thread.join(10)


class _SlowBackend:
    def __init__(self, inner: MockBackend, seconds: float) -> None:
        self.inner, self.seconds = inner, seconds

    def generate(self, requests: list[GenerationRequest]) -> list[object]:
        time.sleep(self.seconds)
        return self.inner.generate(requests)  # type: ignore[return-value]


def test_a_client_that_disconnects_stops_consuming_the_model(live_server: tuple[str, MockBackend]) -> None:
    url, backend = live_server
    groups, _ = shuffled_groups(100, 7, seed=3)  # 2,100 comparisons: 263 model calls of 8, ~13 s
    body = json.dumps({"groups": groups}).encode()
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        head = f"POST /v1/score HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        sock.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        time.sleep(0.8)  # judging is under way
    deadline = time.monotonic() + 20  # generous: a loaded machine notices late
    stats: dict[str, int] = {}
    while time.monotonic() < deadline:
        stats = httpx.get(url + "/health").json()["batcher"]
        if stats["cancelled"]:
            break
        time.sleep(0.1)
    at_cancel = backend.calls
    time.sleep(0.5)  # the one batch already on the model when the cancel landed may still finish
    settled = backend.calls
    time.sleep(0.5)
    assert stats["cancelled"] == 1 and stats["dropped_requests"] > 1500
    assert settled - at_cancel <= 8  # at most that batch (max_batch 8)
    assert backend.calls == settled < 2100 // 4  # and nothing more ran after the drop


def test_docs_and_schema_need_the_token_when_one_is_set() -> None:
    locked, _ = make_app(token="s3cret")
    auth = {"Authorization": "Bearer s3cret"}
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert locked.get(path).status_code == 401, path
        assert locked.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401, path
        assert locked.get(path, headers=auth).status_code == 200, path
    assert "/v1/score" in locked.get("/openapi.json", headers=auth).json()["paths"]
    assert '"/v1/score"' in locked.get("/docs", headers=auth).text  # the schema travels inside the page
    assert locked.get("/health").status_code == 200
    open_app, _ = make_app()
    assert all(open_app.get(p).status_code == 200 for p in ("/docs", "/redoc", "/openapi.json"))


def test_a_request_task_cancelled_by_the_server_drops_its_queued_work() -> None:
    slow = _SlowBackend(MockBackend(script=by_quality), 0.05)
    service = Service(Judge(slow, "plain"), ServeSettings(max_batch=2))  # type: ignore[arg-type]
    requests = [GenerationRequest(as_messages(f"q={k} q={k + 1}")) for k in range(200)]

    async def scenario() -> None:
        task = asyncio.ensure_future(service.run(lambda: service.batcher.generate(requests)))
        await asyncio.sleep(0.3)
        task.cancel()  # what uvicorn does to requests still running past its shutdown grace period
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.3)

    asyncio.run(scenario())
    service.close()
    stats = service.batcher.stats
    assert stats.cancelled == 1 and stats.requests < 40 and stats.requests + stats.dropped_requests == 200
