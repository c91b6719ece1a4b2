"""MicroBatcher: concurrent callers share backend calls; deadlines, failures and shutdown."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from rmr1.backends.mock import MockBackend
from rmr1.serve.batcher import Closed, DeadlineExceeded, MicroBatcher, Overloaded
from rmr1.types import Completion, GenerationRequest, Message


def req(text: str) -> GenerationRequest:
    return GenerationRequest((Message("user", text),))


def run_threads(batcher: MicroBatcher, sizes: Sequence[int]) -> list[list[str]]:
    out: list[list[str]] = [[] for _ in sizes]

    def call(k: int) -> None:
        out[k] = [c.text for c in batcher.generate([req(f"{k}.{m}") for m in range(sizes[k])])]

    threads = [threading.Thread(target=call, args=(k,)) for k in range(len(sizes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return out


def test_concurrent_callers_share_one_backend_call_and_get_their_own_answers() -> None:
    backend = MockBackend(script="echo")
    batcher = MicroBatcher(backend, window_ms=300, max_batch=64)
    out = run_threads(batcher, [1, 2, 1, 3, 1, 1, 2, 1])
    assert backend.batches == [12]
    assert out[3] == ["3.0", "3.1", "3.2"] and out[6] == ["6.0", "6.1"]
    assert batcher.stats.batches == 1 and batcher.stats.submissions == 8
    batcher.close()


def test_max_batch_one_runs_requests_alone_and_never_splits_a_submission() -> None:
    backend = MockBackend(script="echo")
    batcher = MicroBatcher(backend, window_ms=50, max_batch=1)
    run_threads(batcher, [1, 1, 3, 1])
    assert sorted(backend.batches) == [1, 1, 1, 3]
    batcher.close()


class Slow:
    def __init__(self, seconds: float) -> None:
        self.seconds, self.seen = seconds, 0

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        time.sleep(self.seconds)
        self.seen += len(requests)
        return [Completion(text="ok") for _ in requests]


def test_a_request_queued_past_its_deadline_is_dropped_unrun() -> None:
    backend = Slow(0.4)
    batcher = MicroBatcher(backend, window_ms=0, max_batch=1)
    first = threading.Thread(target=batcher.generate, args=([req("busy")],))
    first.start()
    time.sleep(0.05)  # the worker is now busy with the first request
    with batcher.deadline(0.1), pytest.raises(DeadlineExceeded):
        batcher.generate([req("late")])
    first.join()
    assert backend.seen == 1 and batcher.stats.expired == 1
    batcher.close()


class Broken:
    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        raise RuntimeError("device lost")


def test_a_failing_backend_fails_its_callers_and_the_worker_lives_on() -> None:
    batcher = MicroBatcher(Broken(), window_ms=0)
    with pytest.raises(RuntimeError, match="device lost"):
        batcher.generate([req("x")])
    batcher.backend = MockBackend(script="echo")
    assert [c.text for c in batcher.generate([req("y")])] == ["y"]
    assert batcher.stats.failed_batches == 1
    batcher.close()


def test_full_queue_is_overloaded() -> None:
    batcher = MicroBatcher(Slow(0.3), window_ms=0, max_batch=1, max_queue=2)
    busy = threading.Thread(target=batcher.generate, args=([req("a")],))
    busy.start()
    time.sleep(0.05)
    with pytest.raises(Overloaded):
        batcher.generate([req("b"), req("c"), req("d")])
    busy.join()
    batcher.close()


def test_close_drains_queued_work_then_refuses_new_work() -> None:
    backend = Slow(0.2)
    batcher = MicroBatcher(backend, window_ms=0, max_batch=1)
    results: list[int] = []
    threads = [
        threading.Thread(target=lambda: results.append(len(batcher.generate([req("a")])))) for _ in range(3)
    ]
    for t in threads:
        t.start()
    time.sleep(0.05)
    batcher.close(drain=True)
    for t in threads:
        t.join()
    assert results == [1, 1, 1] and backend.seen == 3
    with pytest.raises(Closed):
        batcher.generate([req("late")])
