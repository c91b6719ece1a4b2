"""The one retry helper, sync and async, and the judge-server client that uses it."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from rmr1.errors import BackendError, InputError
from rmr1.retry import RetriesExhausted, Retry, RetryPolicy, aretry, retry
from rmr1.rewards import Group
from rmr1.serve.client import RemoteScorer
from rmr1.types import Message


class Flaky:
    """Fails with ``Retry`` the first ``failures`` times (asking for ``retry_after``), then returns "ok"."""

    def __init__(
        self, failures: int, retry_after: float | None = None, final: Exception | None = None
    ) -> None:
        self.failures, self.retry_after, self.final, self.calls = failures, retry_after, final, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.final is not None:
            raise self.final
        if self.calls <= self.failures:
            raise Retry(f"failure {self.calls}", self.retry_after)
        return "ok"

    async def acall(self) -> str:
        return self()


POLICY = RetryPolicy(max_retries=3, backoff=0.1, max_backoff=1.0)


# (failures before success, retry_after, result or the exhaustion, sleeps that must happen)
CASES = [
    (0, None, "ok", 0),  # first attempt works: no wait at all
    (2, None, "ok", 2),
    (3, None, "ok", 3),  # the last allowed attempt works
    (4, None, RetriesExhausted, 3),  # never a wait after the last attempt
    (1, 0.7, "ok", 1),  # the server's Retry-After replaces the backoff
]


@pytest.mark.parametrize(("failures", "retry_after", "result", "sleeps"), CASES)
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_bounded_attempts_and_waits(
    kind: str, failures: int, retry_after: float | None, result: Any, sleeps: int
) -> None:
    waits: list[float] = []
    flaky = Flaky(failures, retry_after)

    async def asleep(seconds: float) -> None:
        waits.append(seconds)

    def run() -> str:
        if kind == "sync":
            return retry(flaky, POLICY, sleep=waits.append)
        return asyncio.run(aretry(flaky.acall, POLICY, sleep=asleep))

    if result is RetriesExhausted:
        with pytest.raises(RetriesExhausted, match="gave up after 4 attempts: failure 4") as info:
            run()
        assert (info.value.attempts, info.value.why) == (4, "failure 4")
    else:
        assert run() == result
    assert flaky.calls == min(failures + 1, POLICY.attempts)
    assert len(waits) == sleeps
    for k, wait in enumerate(waits):  # exponential with jitter: within [ceiling/2, ceiling]
        ceiling = retry_after if retry_after is not None else min(1.0, 0.1 * 2**k)
        assert (ceiling / 2 if retry_after is None else ceiling) <= wait <= ceiling


def test_other_errors_end_the_loop_at_once() -> None:
    flaky = Flaky(0, final=KeyError("boom"))
    with pytest.raises(KeyError):
        retry(flaky, POLICY, sleep=lambda s: None)
    assert flaky.calls == 1


def test_jitter_spreads_waits() -> None:
    assert len({RetryPolicy(backoff=1.0).delay(2) for _ in range(20)}) > 1


# --- RemoteScorer against a small local server ------------------------------------------------------------


class Script(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, answers: list[tuple[int, dict[str, str]]]) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.answers, self.hits = answers, 0


class Handler(BaseHTTPRequestHandler):
    server: Script

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        status, headers = self.server.answers[min(self.server.hits, len(self.server.answers) - 1)]
        self.server.hits += 1
        n = len(body["groups"][0]["responses"])
        result = {"rewards": [0.5] * n, "comparisons": [1] * n, "draws": [0] * n, "unparsed": [0] * n}
        raw = json.dumps({"results": [result]} if status == 200 else {"error": {"message": "nope"}}).encode()
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[Script] = []

    def start(answers: list[tuple[int, dict[str, str]]]) -> Script:
        server = Script(answers)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()


GROUP = [Group((Message("user", "q"),), ("a", "b"))]
BUSY = (503, {"Retry-After": "0"})  # what the server's queue guard answers, with a wait of 0 here


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_remote_scorer_retries_busy_answers(serve: Any, kind: str) -> None:
    server = serve([BUSY, BUSY, (200, {})])
    scorer = RemoteScorer(f"http://127.0.0.1:{server.server_address[1]}", retries=2)
    scores = (
        scorer.score(GROUP, "round_robin")
        if kind == "sync"
        else asyncio.run(scorer.ascore(GROUP, "round_robin"))
    )
    assert scores[0].rewards == (0.5, 0.5)
    assert server.hits == scorer.requests == 3


def test_remote_scorer_gives_up_and_does_not_retry_a_4xx(serve: Any) -> None:
    busy = serve([BUSY])
    url = f"http://127.0.0.1:{busy.server_address[1]}"
    with pytest.raises(BackendError, match=r"failed after 2 tries \(server error 503\)"):
        RemoteScorer(url, retries=1).score(GROUP, "round_robin")
    assert busy.hits == 2
    bad = serve([(422, {})])
    with pytest.raises(InputError, match="answered 422: nope"):
        RemoteScorer(f"http://127.0.0.1:{bad.server_address[1]}", retries=3).score(GROUP, "round_robin")
    assert bad.hits == 1
