"""RemoteScorer against a real uvicorn on loopback: retries through a server that is not up yet or is
saturated, fails at once on a caller's error, and gives up after its bounded retries."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from rmr1.backends.mock import MockBackend
from rmr1.errors import BackendError, InputError
from rmr1.judge import Judge, JudgeConfig
from rmr1.rewards import Group
from rmr1.serve import ServeSettings, create_app
from rmr1.serve.client import RemoteScorer
from rmr1.serve.process import free_port
from rmr1.types import GenerationRequest, as_messages


def by_quality(request: GenerationRequest) -> str:
    """Prefers the response with the higher q=N (the one shown first is A)."""
    a, b = (int(x) for x in re.findall(r"q=(\d+)", request.messages[-1].content)[-2:])
    return f"<answer>[[{'A' if a > b else 'B'}]]</answer>"


class Serving:
    """The app under a uvicorn thread, started and stopped at will on one port."""

    def __init__(self, port: int, script: object = by_quality) -> None:
        self.port, self.script = port, script
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        judge = Judge(MockBackend(script=self.script), "plain", JudgeConfig(max_new_tokens=32))  # type: ignore[arg-type]
        app = create_app(judge, ServeSettings(token="t0k"))
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.server is not None and self.thread is not None:
            self.server.should_exit = True
            self.thread.join(10)


@pytest.fixture
def port() -> Iterator[int]:
    yield free_port()


def groups() -> list[Group]:
    # quality (g + k) % 4 in group g: round-robin rewards are 2 * quality / 3 - 1
    return [Group(as_messages(f"Q{g}?"), tuple(f"r q={(g + k) % 4}" for k in range(4))) for g in range(5)]


def expected() -> list[float]:
    return [2 * ((g + k) % 4) / 3 - 1 for g in range(5) for k in range(4)]


def test_a_reward_call_waits_for_a_server_that_comes_up_late(port: int) -> None:
    serving = Serving(port)
    timer = threading.Timer(1.0, serving.start)  # the first attempts find the port closed
    timer.start()
    scorer = RemoteScorer(f"http://127.0.0.1:{port}", token="t0k", backoff=0.2, max_backoff=0.5, retries=30)
    try:
        scores = scorer.score(groups(), "round_robin")
    finally:
        timer.join()
        serving.stop()
    assert [r for s in scores for r in s.rewards] == pytest.approx(expected())
    assert scorer.retried >= 1 and scorer.requests == scorer.retried + 1


def test_a_caller_error_is_not_retried(port: int) -> None:
    serving = Serving(port)
    serving.start()
    time.sleep(0.5)
    try:
        scorer = RemoteScorer(f"http://127.0.0.1:{port}", token="wrong", backoff=0.01)
        with pytest.raises(InputError, match="401"):
            scorer.score(groups(), "round_robin")
        assert scorer.requests == 1
    finally:
        serving.stop()


def test_a_judge_fault_is_not_retried_and_names_the_reason(port: int) -> None:
    def broken(request: GenerationRequest) -> str:
        raise RuntimeError("CUDA error: device-side assert")

    serving = Serving(port, broken)
    serving.start()
    time.sleep(0.5)
    try:
        scorer = RemoteScorer(f"http://127.0.0.1:{port}", token="t0k", backoff=0.01)
        with pytest.raises(BackendError, match=r"500.*device-side assert"):
            scorer.score(groups(), "round_robin")
        assert scorer.requests == 1
    finally:
        serving.stop()


def test_retries_are_bounded(port: int) -> None:
    scorer = RemoteScorer(f"http://127.0.0.1:{port}", backoff=0.01, max_backoff=0.02, retries=3)
    started = time.monotonic()
    with pytest.raises(BackendError, match=r"failed after 4 tries.*ConnectError"):
        scorer.score(groups(), "round_robin")
    assert scorer.requests == 4 and time.monotonic() - started < 5


def test_the_async_path_retries_too(port: int) -> None:
    serving = Serving(port)
    timer = threading.Timer(0.8, serving.start)
    timer.start()
    scorer = RemoteScorer(f"http://127.0.0.1:{port}", token="t0k", backoff=0.2, max_backoff=0.5, retries=30)
    try:
        scores = asyncio.run(scorer.ascore(groups(), "round_robin"))
    finally:
        timer.join()
        serving.stop()
    assert [r for s in scores for r in s.rewards] == pytest.approx(expected())
    assert scorer.retried >= 1
