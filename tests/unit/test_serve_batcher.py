"""MicroBatcher: concurrent callers share backend calls; deadlines, failures and shutdown."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from rmr1.backends.mock import MockBackend
from rmr1.serve.batcher import Cancelled, Closed, DeadlineExceeded, MicroBatcher, Overloaded, Ticket
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


def test_max_batch_bounds_every_model_call_and_each_caller_gets_its_answers_in_order() -> None:
    backend = MockBackend(script="echo")
    batcher = MicroBatcher(backend, window_ms=50, max_batch=1)
    out = run_threads(batcher, [1, 1, 3, 1])
    assert backend.batches == [1] * 6
    assert out == [["0.0"], ["1.0"], ["2.0", "2.1", "2.2"], ["3.0"]]
    batcher.close()


def test_a_submission_far_larger_than_the_queue_streams_through_in_chunks() -> None:
    backend = MockBackend(script="echo")
    batcher = MicroBatcher(backend, window_ms=5, max_batch=8, max_queue=20)
    texts = [c.text for c in batcher.generate([req(f"r{k}") for k in range(500)])]
    assert texts == [f"r{k}" for k in range(500)]
    assert max(backend.batches) <= 8 and sum(backend.batches) == 500
    assert batcher.stats.submissions == 1 and batcher.stats.requests == 500 and batcher.pending == 0
    batcher.close()


class Recording:
    """Sleeps per call and records which callers (the text before the dot) each model call served."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.calls: list[set[str]] = []

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        time.sleep(self.seconds)
        self.calls.append({r.messages[-1].content.split(".")[0] for r in requests})
        return [Completion(text=r.messages[-1].content) for r in requests]


def test_a_small_caller_is_served_while_a_big_submission_is_still_streaming() -> None:
    backend = Recording(0.02)
    batcher = MicroBatcher(backend, window_ms=0, max_batch=4, max_queue=8)
    big = threading.Thread(target=batcher.generate, args=([req(f"big.{k}") for k in range(200)],))
    big.start()
    time.sleep(0.1)  # the big one has had a few model calls already
    assert [c.text for c in batcher.generate([req("small.0"), req("small.1")])] == ["small.0", "small.1"]
    big.join(20)
    served_small = next(k for k, who in enumerate(backend.calls) if "small" in who)
    assert served_small < len(backend.calls) - 10  # it did not wait for the 50 calls of the big one to end
    assert batcher.stats.submissions == 2 and batcher.stats.requests == 202


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


def test_a_caller_that_never_finds_room_before_its_deadline_is_overloaded() -> None:
    batcher = MicroBatcher(Slow(0.3), window_ms=0, max_batch=1, max_queue=1)
    busy = [threading.Thread(target=batcher.generate, args=([req("a"), req("b")],)) for _ in range(2)]
    for t in busy:
        t.start()
    time.sleep(0.05)  # one request runs, one waits: the queue is full
    with batcher.deadline(0.2), pytest.raises(Overloaded, match="stayed full"):
        batcher.generate([req("c")])
    for t in busy:
        t.join()
    assert batcher.stats.expired == 1
    batcher.close()


class Poisoned:
    """Raises on any call that holds a request saying 'poison', like a backend rejecting one bad prompt."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        self.calls.append(len(requests))
        if any("poison" in r.messages[-1].content for r in requests):
            raise ValueError("prompt has an invalid token")
        return [Completion(text=r.messages[-1].content) for r in requests]


def test_one_bad_request_in_a_merged_batch_fails_only_its_own_caller() -> None:
    backend = Poisoned()
    batcher = MicroBatcher(backend, window_ms=300, max_batch=64)
    outcomes: dict[str, object] = {}

    def call(name: str) -> None:
        try:
            outcomes[name] = [c.text for c in batcher.generate([req(f"{name}.0"), req(f"{name}.1")])]
        except ValueError as exc:
            outcomes[name] = exc

    threads = [threading.Thread(target=call, args=(n,)) for n in ("good", "poison", "fine")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert backend.calls[0] == 6  # one merged call first, then each caller alone
    assert outcomes["good"] == ["good.0", "good.1"] and outcomes["fine"] == ["fine.0", "fine.1"]
    assert isinstance(outcomes["poison"], ValueError)
    assert batcher.stats.rerun_alone == 3 and batcher.stats.failed_batches == 2
    batcher.close()


def test_cancel_drops_the_queued_chunks_of_a_caller_that_gave_up() -> None:
    backend = Recording(0.05)
    batcher = MicroBatcher(backend, window_ms=0, max_batch=4)
    ticket = Ticket()
    raised: list[BaseException] = []

    def call() -> None:
        with batcher.watch(ticket):
            try:
                batcher.generate([req(f"x.{k}") for k in range(400)])
            except Cancelled as exc:
                raised.append(exc)

    worker = threading.Thread(target=call)
    worker.start()
    time.sleep(0.2)
    batcher.cancel(ticket)
    worker.join(5)
    assert raised and not worker.is_alive()
    time.sleep(0.15)  # a call already running may finish; nothing after it starts
    run = len(backend.calls)
    assert run < 10 and batcher.pending == 0
    assert batcher.stats.cancelled == 1 and batcher.stats.dropped_requests >= 400 - 4 * run
    with batcher.watch(ticket), pytest.raises(Cancelled):  # later rounds of the same caller never start
        batcher.generate([req("x.later")])
    assert batcher.stats.not_started == 1 and len(backend.calls) == run
    batcher.close()


def test_close_without_drain_fails_waiting_callers() -> None:
    batcher = MicroBatcher(Slow(0.2), window_ms=0, max_batch=1)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            batcher.generate([req(f"r{k}") for k in range(10)])
        except Closed as exc:
            errors.append(exc)

    worker = threading.Thread(target=call)
    worker.start()
    time.sleep(0.05)
    batcher.close(drain=False)
    worker.join(5)
    assert len(errors) == 1 and batcher.stats.requests <= 2


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
