"""Micro-batching: concurrent ``generate`` calls from many request threads become one real backend call.

``MicroBatcher`` is itself a ``Backend``, so a ``Judge`` (and every tournament or reward built on it) runs on
it unchanged. Each caller's requests wait in a queue; one worker thread takes what has arrived, waiting at
most ``window_ms`` after the oldest waiting request for company, up to ``max_batch`` requests, and runs the
wrapped backend once. With one worker, the wrapped backend is never called from two threads at once.

Back-pressure, not refusal: a submission enters the queue one chunk (at most ``max_batch`` requests) at a
time, and its next chunk only once the previous one has been taken by the worker, so one RL batch of
thousands of comparisons streams through the model while a small caller arriving meanwhile waits behind at
most one chunk of it. ``max_queue`` bounds the requests waiting at once; a chunk that finds no room waits its
turn (first come, first served) until room frees up. A caller only fails for lack of room if its deadline
passes before any of its requests got in (``Overloaded``).

A caller may carry a ``Ticket`` (``with batcher.watch(ticket):``, or ``with batcher.deadline(seconds):``);
once its deadline passes or ``cancel(ticket)`` is called (the HTTP client gave up), its queued chunks are
dropped and its later calls are not started, so abandoned work costs no model time. A backend call that
raises on a merged batch is re-run per caller, so one bad request fails only its own caller.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from rmr1.backends import Backend
from rmr1.errors import Rmr1Error
from rmr1.serve.tickets import (
    BatcherStats,
    Cancelled,
    Chunk,
    Closed,
    DeadlineExceeded,
    Overloaded,
    Submission,
    Ticket,
    TicketWatch,
)
from rmr1.types import Completion, GenerationRequest


class MicroBatcher(TicketWatch):
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
        self._queue: deque[Chunk] = deque()
        self._line: deque[Submission] = deque()  # submissions waiting for queue room, in arrival order
        self._queued = 0  # requests waiting
        self._subs: set[Submission] = set()  # generate calls not yet returned
        self._drain = True
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
        ticket: Ticket = getattr(self._local, "ticket", None) or Ticket()
        sub = Submission(list(requests), ticket, [None] * len(requests), unanswered=len(requests))
        with self._cond:
            if self._closed:
                raise Closed("the server is shutting down")
            if ticket.given_up:
                self.stats.not_started += 1
                self.stats.dropped_requests += len(sub.requests)
                raise self._give_up_error(ticket)
            ticket.started = True
            self._subs.add(sub)
            try:
                self._feed_until_answered(sub)
            finally:
                self._subs.discard(sub)
                self._cond.notify_all()
        if sub.error is not None:
            raise sub.error
        return [c for c in sub.results if c is not None]

    def _feed_until_answered(self, sub: Submission) -> None:
        """Queue ``sub`` chunk by chunk as room frees up; return once answered, failed or given up."""
        ticket = sub.ticket
        while not sub.finished:
            if self._admit(sub):
                continue
            if ticket.given_up:
                self._drop(sub, expired=not ticket.cancelled)
                sub.error = self._give_up_error(ticket)
                return
            if self._closed and not self._thread.is_alive():
                sub.error = Closed("the server shut down before this request ran")
                return
            self._cond.wait(ticket.remaining())

    def _admit(self, sub: Submission) -> bool:
        """Queue the next chunk of ``sub`` if less than a chunk of it waits and its turn for room has come.

        Up to two chunks of one caller may wait, so the worker can fill a batch after splitting a chunk.
        """
        if sub.next >= len(sub.requests) or sub.queued >= self.max_batch or sub.ticket.given_up:
            return False
        if self._closed and not self._drain:
            return False
        size = min(self.max_batch, self.max_queue, len(sub.requests) - sub.next)
        first_in_line = not self._line or self._line[0] is sub
        if self._queued + size > self.max_queue or not first_in_line:
            if not sub.waiting:  # the queue is full (or others already wait for room): take a place in line
                sub.waiting = sub.ticket.waited_for_room = True
                self._line.append(sub)
            return False
        if sub.waiting:
            self._line.popleft()
            sub.waiting = False
        self._queue.append(Chunk(sub, sub.next, sub.next + size))
        sub.next += size
        sub.queued += size
        sub.ticket.admitted += size
        self._queued += size
        self._cond.notify_all()
        return True

    def _drop(self, sub: Submission, *, expired: bool) -> None:
        """Forget every queued or unqueued request of a given-up ``sub`` and count it (under the lock)."""
        self.stats.dropped_requests += sub.queued + len(sub.requests) - sub.next
        self._drop_rest(sub)
        if expired:
            self.stats.expired += 1
        else:
            self.stats.cancelled += 1
        self._cond.notify_all()

    @staticmethod
    def _give_up_error(ticket: Ticket) -> Rmr1Error:
        if ticket.cancelled:
            return Cancelled("the client gave up; its queued work was dropped")
        if ticket.admitted == 0 and ticket.waited_for_room:
            return Overloaded("the model's queue stayed full for the whole request deadline")
        return DeadlineExceeded("the request reached its deadline (timeout) before the model answered")

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

    def cancel(self, ticket: Ticket) -> None:
        """The caller gave up: drop its queued chunks now and start none of its later work."""
        with self._cond:
            ticket.cancelled = True
            self._cond.notify_all()  # its waiting thread wakes, drops its chunks and returns

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

    def _next_batch(self) -> list[Chunk] | None:
        """Wait for work, then for the window to fill; None once closed and drained."""
        with self._cond:
            while not self._queue:
                if self._closed and not self._subs:
                    return None
                self._cond.wait(0.5 if self._closed else None)
            while self._queued < self.max_batch and not self._closed and self._queue:
                remaining = self.window_s - (time.monotonic() - self._queue[0].arrived)
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return self._take()

    def _take(self) -> list[Chunk]:
        """Up to ``max_batch`` queued requests in arrival order, splitting the last chunk if need be."""
        taken: list[Chunk] = []
        size = 0
        while self._queue and size < self.max_batch:
            chunk = self._queue[0]
            room = self.max_batch - size
            if chunk.end - chunk.start > room:
                part = Chunk(chunk.sub, chunk.start, chunk.start + room, chunk.arrived)
                chunk.start += room
            else:
                part = self._queue.popleft()
            n = part.end - part.start
            part.sub.queued -= n
            self._queued -= n
            if part.sub.ticket.given_up or part.sub.finished:
                self.stats.dropped_requests += n  # its caller wakes, counts the give-up and leaves
                continue
            taken.append(part)
            size += n
        self._cond.notify_all()  # callers whose chunk was taken may queue their next one
        return taken

    def _call(self, chunks: Sequence[Chunk]) -> list[Completion]:
        requests = [r for c in chunks for r in c.sub.requests[c.start : c.end]]
        started = time.perf_counter()
        try:
            completions = self.backend.generate(requests)
        finally:
            self.stats.busy_s += time.perf_counter() - started
        if len(completions) != len(requests):
            raise RuntimeError(
                f"backend returned {len(completions)} completions for {len(requests)} requests"
            )
        return completions

    def _run(self, batch: list[Chunk]) -> None:
        try:
            completions = self._call(batch)
        except Exception as exc:  # reported to the callers; the worker lives on
            self.stats.failed_batches += 1
            owners = list(dict.fromkeys(c.sub for c in batch))
            if len(owners) == 1:
                self._finish(batch, None, exc)
                return
            for owner in owners:  # one bad request must not fail the other callers: re-run each alone
                self.stats.rerun_alone += 1
                mine = [c for c in batch if c.sub is owner]
                try:
                    self._finish(mine, self._call(mine), None)
                except Exception as alone:
                    self.stats.failed_batches += 1
                    self._finish(mine, None, alone)
            return
        self.stats.batches += 1
        self.stats.largest_batch = max(self.stats.largest_batch, len(completions))
        self._finish(batch, completions, None)

    def _finish(
        self, chunks: Sequence[Chunk], completions: list[Completion] | None, error: BaseException | None
    ) -> None:
        with self._cond:
            at = 0
            for c in chunks:
                sub, n = c.sub, c.end - c.start
                if error is not None:
                    if sub.error is None:
                        sub.error = error
                        self._drop_rest(sub)
                    continue
                assert completions is not None
                sub.results[c.start : c.end] = completions[at : at + n]
                at += n
                sub.unanswered -= n
                self.stats.requests += n
                if sub.unanswered == 0:
                    self.stats.submissions += 1
            self._cond.notify_all()

    def _drop_rest(self, sub: Submission) -> None:
        """Take ``sub``'s waiting chunks out of the queue and queue no more of it (under the lock)."""
        self._queue = deque(c for c in self._queue if c.sub is not sub)
        self._queued -= sub.queued
        sub.queued = 0
        sub.next = len(sub.requests)
        if sub.waiting:
            self._line.remove(sub)
            sub.waiting = False

    def close(self, *, drain: bool = True, timeout: float | None = 30.0) -> None:
        """Stop taking work; finish what is under way (``drain``) or fail it with ``Closed``."""
        with self._cond:
            self._closed = True
            self._drain = drain
            if not drain:
                for sub in self._subs:
                    if not sub.finished:
                        sub.error = Closed("the server shut down before this request ran")
                        self._drop_rest(sub)
            self._cond.notify_all()
        self._thread.join(timeout)

    @property
    def closed(self) -> bool:
        return self._closed


__all__ = [
    "BatcherStats",
    "Cancelled",
    "Closed",
    "DeadlineExceeded",
    "MicroBatcher",
    "Overloaded",
    "Ticket",
]
