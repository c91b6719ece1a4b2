"""Micro-batching: concurrent ``generate`` calls from many request threads become one real backend call.

``MicroBatcher`` is itself a ``Backend``, so a ``Judge`` (and every tournament or reward built on it) runs on
it unchanged. Each caller's requests wait in a queue; one worker thread takes what has arrived, waiting at
most ``window_ms`` after the oldest waiting request for company, up to ``max_batch`` requests, and runs the
wrapped backend once. A caller's requests are never split across batches (a submission larger than
``max_batch`` runs alone). With one worker, the wrapped backend is never called from two threads at once.

A caller may set a deadline (``with batcher.deadline(seconds):``); a submission still queued at its deadline
is dropped with ``DeadlineExceeded`` instead of spending model time on an answer nobody waits for.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from rmr1.backends import Backend
from rmr1.errors import Rmr1Error
from rmr1.types import Completion, GenerationRequest


class Overloaded(Rmr1Error):
    """Too many requests are waiting for the backend."""


class DeadlineExceeded(Rmr1Error):
    """A request's deadline passed before its answer was ready."""


class Closed(Rmr1Error):
    """The batcher is shutting down and takes no new work."""


@dataclass
class _Submission:
    requests: list[GenerationRequest]
    deadline: float | None
    arrived: float = field(default_factory=time.monotonic)
    future: Future[list[Completion]] = field(default_factory=Future)


@dataclass
class BatcherStats:
    batches: int = 0
    requests: int = 0
    submissions: int = 0
    largest_batch: int = 0
    expired: int = 0
    failed_batches: int = 0
    busy_s: float = 0.0


class MicroBatcher:
    """A Backend that merges concurrent ``generate`` calls into single calls of ``backend``."""

    def __init__(
        self, backend: Backend, *, window_ms: float = 10.0, max_batch: int = 32, max_queue: int = 4096
    ) -> None:
        if max_batch < 1 or max_queue < 1 or window_ms < 0:
            raise ValueError("max_batch and max_queue must be positive and window_ms not negative")
        self.backend = backend
        self.window_s = window_ms / 1000.0
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.stats = BatcherStats()
        self._queue: deque[_Submission] = deque()
        self._queued = 0  # requests waiting
        self._cond = threading.Condition()
        self._closed = False
        self._local = threading.local()
        self._read_lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name="rmr1-batcher", daemon=True)
        self._thread.start()

    # -- the Backend side --------------------------------------------------------------------------------
    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        if not requests:
            return []
        sub = _Submission(list(requests), getattr(self._local, "deadline", None))
        with self._cond:
            if self._closed:
                raise Closed("the server is shutting down")
            if self._queued + len(sub.requests) > self.max_queue:
                raise Overloaded(
                    f"{self._queued} requests already wait for the model (limit {self.max_queue})"
                )
            self._queue.append(sub)
            self._queued += len(sub.requests)
            self._cond.notify_all()
        return sub.future.result()

    @property
    def supports_logprobs(self) -> bool:
        from rmr1.probability import supports_logprobs

        return supports_logprobs(self.backend)

    def read_verdicts(self, reads: Sequence[Any]) -> list[float | None]:
        """Verdict reads go straight to the backend: they are few (one per forced or read verdict) and
        short (one forward pass), so they are not merged across requests."""
        with self._read_lock:
            result: list[float | None] = self.backend.read_verdicts(reads)  # type: ignore[attr-defined]
        return result

    @contextlib.contextmanager
    def deadline(self, seconds: float) -> Iterator[None]:
        """Give up on this thread's queued requests after ``seconds``."""
        previous = getattr(self._local, "deadline", None)
        self._local.deadline = time.monotonic() + seconds
        try:
            yield
        finally:
            self._local.deadline = previous

    @property
    def pending(self) -> int:
        with self._cond:
            return self._queued

    # -- the worker --------------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            if batch:
                self._run(batch)

    def _next_batch(self) -> list[_Submission] | None:
        """Wait for work, then for the window to fill; None once closed and drained."""
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                self._cond.wait()
            while self._queued < self.max_batch and not self._closed:
                remaining = self.window_s - (time.monotonic() - self._queue[0].arrived)
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return self._take()

    def _take(self) -> list[_Submission]:
        taken: list[_Submission] = []
        size = 0
        now = time.monotonic()
        while self._queue:
            sub = self._queue[0]
            if taken and size + len(sub.requests) > self.max_batch:
                break
            self._queue.popleft()
            self._queued -= len(sub.requests)
            if sub.deadline is not None and now > sub.deadline:
                self.stats.expired += 1
                sub.future.set_exception(DeadlineExceeded("the request waited past its deadline"))
                continue
            taken.append(sub)
            size += len(sub.requests)
        return taken

    def _run(self, batch: list[_Submission]) -> None:
        requests = [r for sub in batch for r in sub.requests]
        started = time.perf_counter()
        try:
            completions = self.backend.generate(requests)
            if len(completions) != len(requests):
                raise RuntimeError(
                    f"backend returned {len(completions)} completions for {len(requests)} requests"
                )
        except Exception as exc:  # every waiting caller hears of the failure; the worker lives on
            self.stats.failed_batches += 1
            for sub in batch:
                sub.future.set_exception(exc)
            return
        finally:
            self.stats.busy_s += time.perf_counter() - started
        self.stats.batches += 1
        self.stats.requests += len(requests)
        self.stats.submissions += len(batch)
        self.stats.largest_batch = max(self.stats.largest_batch, len(requests))
        start = 0
        for sub in batch:
            sub.future.set_result(completions[start : start + len(sub.requests)])
            start += len(sub.requests)

    def close(self, *, drain: bool = True, timeout: float | None = 30.0) -> None:
        """Stop taking work; finish what is queued (``drain``) or fail it with ``Closed``."""
        with self._cond:
            self._closed = True
            if not drain:
                while self._queue:
                    sub = self._queue.popleft()
                    sub.future.set_exception(Closed("the server shut down before this request ran"))
                self._queued = 0
            self._cond.notify_all()
        self._thread.join(timeout)

    @property
    def closed(self) -> bool:
        return self._closed


__all__ = ["BatcherStats", "Closed", "DeadlineExceeded", "MicroBatcher", "Overloaded"]
