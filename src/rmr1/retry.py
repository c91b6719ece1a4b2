"""One retry loop for every network call rmr1 makes (the OpenAI-compatible backend, the judge server client).

An attempt is a function of no arguments. It returns its result, raises ``Retry`` when another attempt may
mend the failure (a 429 or 5xx answer, a connection error, a timeout), or raises anything else, which ends
the loop at once. ``retry`` / ``aretry`` try at most ``policy.max_retries + 1`` times, waiting an exponential,
jittered delay between attempts (a server's ``Retry-After`` replaces it, capped by ``max_backoff``), and never
after the last one; then they raise ``RetriesExhausted`` with the last reason::

    def attempt() -> Response:
        response = client.post(url, json=body)
        if response.status_code >= 500:
            raise Retry(f"HTTP {response.status_code}", parse_retry_after(response.headers.get("retry-after")))
        return response

    response = retry(attempt, RetryPolicy(max_retries=2))
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failed call is tried again."""

    max_retries: int = 4  # retries after the first attempt
    backoff: float = 0.5  # seconds before the first retry; doubles each time
    max_backoff: float = 30.0  # cap on any single wait, a server's Retry-After included

    @property
    def attempts(self) -> int:
        return self.max_retries + 1

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (0-based)."""
        if retry_after is not None:
            return min(self.max_backoff, max(0.0, retry_after))
        ceiling = min(self.max_backoff, self.backoff * (2**retry))
        # Jitter spreads the retries of many calls that failed together (a burst of 429s) over time.
        return ceiling * (0.5 + 0.5 * random.random())


class Retry(Exception):
    """An attempt failed in a way another attempt may mend; ``retry_after`` is the server's wish, in seconds."""

    def __init__(self, why: str, retry_after: float | None = None) -> None:
        super().__init__(why)
        self.retry_after = retry_after


class RetriesExhausted(Exception):
    """Every attempt raised ``Retry``; ``why`` is the last reason."""

    def __init__(self, attempts: int, why: str) -> None:
        super().__init__(f"gave up after {attempts} attempts: {why}")
        self.attempts, self.why = attempts, why


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: a number (fractions accepted) or an HTTP date; None when absent or odd."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def retry(
    attempt: Callable[[], T], policy: RetryPolicy, *, sleep: Callable[[float], object] = time.sleep
) -> T:
    """``attempt()`` until it returns, at most ``policy.attempts`` times (see the module doc)."""
    why = ""
    for number in range(policy.attempts):
        try:
            return attempt()
        except Retry as exc:
            why = str(exc)
            if number + 1 < policy.attempts:
                sleep(policy.delay(number, exc.retry_after))
    raise RetriesExhausted(policy.attempts, why)


async def aretry(
    attempt: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> T:
    """``retry`` for coroutines: ``await attempt()``, waiting with ``await sleep(...)`` in between."""
    why = ""
    for number in range(policy.attempts):
        try:
            return await attempt()
        except Retry as exc:
            why = str(exc)
            if number + 1 < policy.attempts:
                await sleep(policy.delay(number, exc.retry_after))
    raise RetriesExhausted(policy.attempts, why)


__all__ = ["RetriesExhausted", "Retry", "RetryPolicy", "aretry", "parse_retry_after", "retry"]
