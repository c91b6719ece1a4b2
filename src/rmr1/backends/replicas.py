"""Several OpenAI-compatible servers of one model (a vLLM or SGLang fleet) as one backend.

``--base-url`` given more than once (or as comma-separated URLs) builds a ``ReplicaBackend``: an
``OpenAIBackend`` (bodies, answers, retries, errors: all as with one server) whose HTTP transport routes each
attempt to a replica. An attempt goes to the replica with the fewest attempts outstanding (ties in turn,
round robin), so a slow replica gets less work. A replica that fails an attempt (connection refused or reset,
no answer in time, a 5xx) sits out ``DownPolicy.first`` seconds, doubling with each failure in a row up to
``DownPolicy.longest``; then one attempt at a time probes it, and the first answer brings it back. A 429 makes
it sit out its ``Retry-After`` (else ``first``) without counting as a failure. An attempt no replica could
take (refused connections) moves on to the next replica at once; any other failure goes back to the
backend's retry loop (``rmr1.retry``), whose budget is raised to at least one attempt per replica, so a
request ends ``finish_reason="error"`` only when every replica failed it. ``--concurrency`` is per replica.
See docs/design/replicas.md.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from rmr1.backends.openai import OpenAIBackend
from rmr1.errors import ConfigError
from rmr1.retry import RetriesExhausted, Retry, RetryPolicy, aretry, parse_retry_after
from rmr1.types import Completion, GenerationRequest


@dataclass(frozen=True)
class DownPolicy:
    """How long a failed replica sits out before a request probes it again."""

    first: float = 1.0  # seconds after its first failure in a row
    longest: float = 30.0  # cap; the wait doubles with each failure in a row

    def wait(self, failures: int) -> float:
        return min(self.longest, self.first * 2 ** max(0, failures - 1))


@dataclass
class Replica:
    """One server's state in the pool."""

    url: str
    outstanding: int = 0  # attempts sent and not yet answered
    failures: int = 0  # failed attempts in a row; > 0 means down or on probation
    down_until: float = 0.0  # clock time before which no request is sent to it
    served: int = 0  # attempts it answered
    failed: int = 0  # attempts it failed, all told


class ReplicaPool:
    """Picks a replica for each attempt and keeps the up/down state; ``clock`` is injectable for tests."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        down: DownPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not urls:
            raise ConfigError("a replica pool needs at least one base URL")
        self.replicas = [Replica(url) for url in urls]
        self.down = down or DownPolicy()
        self.clock = clock
        self._turn = 0  # where the round robin among equally loaded replicas starts next
        self._lock = threading.Lock()  # generate may be called from several threads, each with its own loop

    def _usable(self, replica: Replica, now: float) -> bool:
        if replica.down_until > now:
            return False
        # A replica back from a failure takes one probe at a time, so a still-dead one costs one request.
        return replica.failures == 0 or replica.outstanding == 0

    def pick(self, avoid: Collection[str] = ()) -> Replica | None:
        """The usable replica with the fewest outstanding attempts, leaving out ``avoid`` (those this attempt
        already tried); None when there is none. Counts the attempt as outstanding."""
        with self._lock:
            now = self.clock()
            count = len(self.replicas)
            order = [self.replicas[(self._turn + k) % count] for k in range(count)]
            candidates = [r for r in order if self._usable(r, now) and r.url not in avoid]
            if not candidates:
                return None
            chosen = min(candidates, key=lambda r: r.outstanding)  # min keeps the first of equals: in turn
            self._turn = (self.replicas.index(chosen) + 1) % count
            chosen.outstanding += 1
            return chosen

    def release(self, replica: Replica, outcome: str, wait: float | None = None) -> None:
        """End an attempt: ``"ok"`` (the server answered), ``"down"`` (it failed), ``"busy"`` (a 429: it
        sits out ``wait`` seconds, else ``DownPolicy.first``, without counting as a failure)."""
        with self._lock:
            replica.outstanding -= 1
            if outcome == "busy":
                pause = self.down.first if wait is None else min(self.down.longest, wait)
                replica.down_until = max(replica.down_until, self.clock() + pause)
            elif outcome == "ok":
                replica.served += 1
                replica.failures, replica.down_until = 0, 0.0
            elif outcome == "down":
                replica.failed += 1
                now = self.clock()
                # The attempts in flight when a replica dies all fail together: that is one failure, not a
                # burst that would push its wait to the cap at once. Only a failed probe waits longer.
                if replica.down_until <= now:
                    replica.failures += 1
                    replica.down_until = now + self.down.wait(replica.failures)


class _Routing(httpx.AsyncBaseTransport):
    """One batch's transport: each request goes to the replica the pool picks, the outcome goes back to it.

    The client writes its requests against the first replica's URL (``home``); the path after it is sent to
    the chosen replica. Bodies are read here, so a connection that breaks mid-answer counts against the
    replica that broke it.
    """

    def __init__(self, pool: ReplicaPool, home: str, limits: httpx.Limits) -> None:
        self.pool, self.home_path = pool, httpx.URL(home).raw_path.decode().rstrip("/")
        self.transports = {r.url: httpx.AsyncHTTPTransport(limits=limits) for r in pool.replicas}
        # Refused connections move on to the next replica at once: nothing was sent, nothing to wait out.
        self.failover = RetryPolicy(max_retries=len(pool.replicas) - 1, backoff=0.0, max_backoff=0.0)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        tried: set[str] = set()
        content = await request.aread()
        try:
            return await aretry(lambda: self._send(request, content, tried), self.failover)
        except RetriesExhausted as exc:
            raise httpx.ConnectError(f"no replica took the request: {exc.why}", request=request) from None

    async def _send(self, request: httpx.Request, content: bytes, tried: set[str]) -> httpx.Response:
        replica = self.pool.pick(avoid=tried)
        if replica is None:
            raise httpx.ConnectError(f"all {len(self.transports)} replicas are down", request=request)
        tried.add(replica.url)
        tail = request.url.raw_path.decode()[len(self.home_path) :]
        forwarded = httpx.Request(
            request.method,
            replica.url + tail,
            headers=[(k, v) for k, v in request.headers.raw if k.lower() != b"host"],
            content=content,
            extensions=request.extensions,
        )
        outcome, wait = (
            "down",
            None,
        )  # anything that escapes below (a reset, a timeout's cancellation) is down
        try:
            response = await self.transports[replica.url].handle_async_request(forwarded)
            try:
                body = await response.aread()
            finally:
                await response.aclose()
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            self.pool.release(replica, "down")
            raise Retry(f"{replica.url}: {type(exc).__name__}: {exc}") from None
        except BaseException:
            self.pool.release(replica, "down")
            raise
        status = response.status_code
        if status == 429:
            outcome, wait = "busy", parse_retry_after(response.headers.get("retry-after"))
        elif status < 500:
            outcome = "ok"
        self.pool.release(replica, outcome, wait)
        return httpx.Response(status, headers=response.headers, content=body, request=request)

    async def aclose(self) -> None:
        for transport in self.transports.values():
            await transport.aclose()


class ReplicaBackend:
    """One model on several OpenAI-compatible servers; see the module doc. Anything else an
    ``OpenAIBackend`` offers is reached through ``single``."""

    def __init__(
        self,
        model: str | None = None,
        *,
        base_urls: Sequence[str],
        down: DownPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        **options: Any,
    ) -> None:
        # One OpenAIBackend per URL checks it and asks it, alone, which model it serves.
        self.servers = [OpenAIBackend(model, base_url=url, **options) for url in base_urls]
        urls = [s.base_url for s in self.servers]
        repeated = sorted({u for u in urls if urls.count(u) > 1})
        if repeated:
            raise ConfigError(f"--base-url {repeated[0]} is given twice; give each replica once")
        self.pool = ReplicaPool(urls, down=down, clock=clock)
        first = self.servers[0]
        self._limits = httpx.Limits(
            max_connections=first.concurrency, max_keepalive_connections=first.concurrency
        )
        # At least one attempt per replica, so a request is given up only after each replica had its turn.
        retries = max(first.retry.max_retries, len(urls) - 1)
        options = {**options, "concurrency": first.concurrency * len(urls), "max_retries": retries}
        self.single = OpenAIBackend(model, base_url=urls[0], transport=self._transport, **options)
        self._served: str | None = None
        self._checked = False

    def _transport(self) -> httpx.AsyncBaseTransport:
        return _Routing(self.pool, self.servers[0].base_url, self._limits)

    def __getattr__(self, name: str) -> Any:
        if name == "single":  # not set yet: __init__ failed part way
            raise AttributeError(name)
        return getattr(self.single, name)

    @property
    def base_urls(self) -> list[str]:
        return [r.url for r in self.pool.replicas]

    def replica_stats(self) -> dict[str, dict[str, int]]:
        """Per replica: attempts answered, failed, and outstanding now."""
        return {
            r.url: {"served": r.served, "failed": r.failed, "outstanding": r.outstanding}
            for r in self.pool.replicas
        }

    def served_model(self) -> str | None:
        """The model every replica serves (each asked once, GET /models); refuses replicas that serve
        different models. A replica that does not say (or cannot be reached now) is not counted."""
        if not self._checked:
            said = {s.base_url: s.served_model() for s in self.servers}
            models = {m for m in said.values() if m}
            if len(models) > 1:
                listing = ", ".join(f"{url} serves {m!r}" for url, m in said.items() if m)
                raise ConfigError(
                    f"the --base-url replicas serve different models ({listing}); give one model's servers"
                )
            self._served, self._checked = (models.pop() if models else None), True
        return self._served

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        """Complete each request over the replicas; one Completion per request, in request order."""
        if requests:
            self.served_model()  # never judge with a fleet that mixes models
        return self.single.generate(requests)

    async def agenerate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        if requests:
            await asyncio.to_thread(self.served_model)
        return await self.single.agenerate(requests)


__all__ = ["DownPolicy", "Replica", "ReplicaBackend", "ReplicaPool"]
