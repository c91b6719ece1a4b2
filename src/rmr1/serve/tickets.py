"""A caller's claim on the micro-batcher (``Ticket``), the ways a claim ends without an answer, and the
batcher's own bookkeeping: what waits in its queue (``Submission``, ``Chunk``) and what it counts
(``BatcherStats``). rmr1.serve.batcher does the queueing and the batching with them.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from rmr1.errors import Rmr1Error
from rmr1.types import Completion, GenerationRequest


class Overloaded(Rmr1Error):
    """The queue stayed full for the caller's whole deadline: none of its requests got in."""


class DeadlineExceeded(Rmr1Error):
    """A request's deadline passed before its answer was ready."""


class Cancelled(Rmr1Error):
    """The caller gave up (its HTTP client went away); its remaining work was dropped."""


class Closed(Rmr1Error):
    """The batcher is shutting down and takes no new work."""


@dataclass
class Ticket:
    """One caller's claim on the batcher, shared by all its ``generate`` calls (one per tournament round)."""

    deadline: float | None = None  # time.monotonic() past which nobody waits for the answer
    cancelled: bool = False  # set through MicroBatcher.cancel
    started: bool = False  # a generate call under this ticket has begun
    admitted: int = 0  # requests of this caller that entered the queue
    waited_for_room: bool = False  # some chunk found the queue full and had to wait

    @classmethod
    def within(cls, seconds: float) -> Ticket:
        return cls(deadline=time.monotonic() + seconds)

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    @property
    def given_up(self) -> bool:
        left = self.remaining()
        return self.cancelled or (left is not None and left <= 0)

    @property
    def saturated(self) -> bool:
        """Whether a give-up is the server's fullness (503) rather than slowness (504)."""
        return not self.started or (self.admitted == 0 and self.waited_for_room)


class TicketWatch:
    """``watch`` and ``deadline`` for a batcher: the ticket each calling thread carries (the batcher sets
    ``_local`` to a ``threading.local()``)."""

    _local: threading.local

    @contextlib.contextmanager
    def watch(self, ticket: Ticket) -> Iterator[Ticket]:
        """Make ``ticket`` this thread's claim for the calls inside the block (its deadline and cancellation)."""
        previous = getattr(self._local, "ticket", None)
        self._local.ticket = ticket
        try:
            yield ticket
        finally:
            self._local.ticket = previous

    def deadline(self, seconds: float) -> contextlib.AbstractContextManager[Ticket]:
        """Give up on this thread's requests after ``seconds``: queued ones are dropped, running ones aborted
        where the engine can."""
        return self.watch(Ticket.within(seconds))


@dataclass(eq=False)
class Submission:
    requests: list[GenerationRequest]
    ticket: Ticket
    results: list[Completion | None] = field(default_factory=list)
    next: int = 0  # first request not yet queued
    queued: int = 0  # requests waiting in the queue
    unanswered: int = 0
    error: BaseException | None = None
    waiting: bool = False  # in the line for queue room

    @property
    def finished(self) -> bool:
        return self.error is not None or self.unanswered == 0


@dataclass
class Chunk:
    sub: Submission
    start: int
    end: int
    arrived: float = field(default_factory=time.monotonic)


@dataclass
class BatcherStats:
    batches: int = 0  # backend calls that succeeded
    requests: int = 0  # requests answered
    submissions: int = 0  # generate calls answered
    largest_batch: int = 0
    expired: int = 0  # submissions dropped because their deadline passed
    cancelled: int = 0  # submissions dropped because their caller gave up
    not_started: int = 0  # work skipped because its caller gave up before it began
    dropped_requests: int = 0  # requests never run because of the three above
    failed_batches: int = 0  # backend calls that raised
    rerun_alone: int = 0  # submissions re-run on their own after a merged call raised
    busy_s: float = 0.0


__all__ = ["BatcherStats", "Cancelled", "Closed", "DeadlineExceeded", "Overloaded", "Ticket", "TicketWatch"]
