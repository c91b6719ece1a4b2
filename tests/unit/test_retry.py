"""The one retry helper, sync and async."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rmr1.retry import RetriesExhausted, Retry, RetryPolicy, aretry, retry


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
