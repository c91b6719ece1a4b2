"""Several OpenAI-compatible servers of one model (a vLLM or SGLang fleet) as one backend.

``--base-url`` given more than once (or as comma-separated URLs) builds a ``ReplicaBackend``: one
``OpenAIBackend`` per replica builds the bodies and reads the answers, and this module decides where each
attempt goes. A request goes to the replica with the fewest requests outstanding (ties in turn, round
robin), so a slow replica gets less work. A replica that fails an attempt (connection refused or reset, no
answer in time, a 5xx) sits out ``DownPolicy.first`` seconds, doubling with each failure in a row up to
``DownPolicy.longest``; then one request at a time probes it, and the first success brings it back. The failed
request goes at once to a replica it has not tried yet; only when every replica is down does it wait,
until the first one is due for a probe. Attempts are bounded by the shared retry helper (``rmr1.retry``),
with at least one attempt per replica, so a request ends ``finish_reason="error"`` only when every replica
failed it. ``--concurrency`` is per replica. See docs/design/replicas.md.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any

import httpx

from rmr1.backends.openai import OpenAIBackend, _Final, _one_line, _Unreachable
from rmr1.errors import ConfigError
from rmr1.retry import RetriesExhausted, Retry, aretry
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
        """The usable replica with the fewest outstanding attempts, preferring those not in ``avoid``
        (the replicas this request already tried); None when every replica is down. Counts the attempt."""
        with self._lock:
            now = self.clock()
            count = len(self.replicas)
            order = [self.replicas[(self._turn + k) % count] for k in range(count)]
            usable = [r for r in order if self._usable(r, now)]
            fresh = [r for r in usable if r.url not in avoid]
            candidates = fresh or usable
            if not candidates:
                return None
            chosen = min(candidates, key=lambda r: r.outstanding)  # min keeps the first of equals: in turn
            self._turn = (self.replicas.index(chosen) + 1) % count
            chosen.outstanding += 1
            return chosen

    def release(self, replica: Replica, outcome: str) -> None:
        """End an attempt: ``"ok"`` (the server answered), ``"down"`` (it failed), ``"other"`` (a 429 or an
        unreadable body: the server is alive but this answer was no use, so its state stays)."""
        with self._lock:
            replica.outstanding -= 1
            if outcome == "ok":
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

    def any_usable(self, avoid: Collection[str] = ()) -> bool:
        with self._lock:
            now = self.clock()
            return any(self._usable(r, now) and r.url not in avoid for r in self.replicas)

    def next_due(self) -> float:
        """Seconds until the first down replica may be probed (0 when one is usable now)."""
        with self._lock:
            return max(0.0, min(r.down_until for r in self.replicas) - self.clock())


class ReplicaBackend:
    """One model on several OpenAI-compatible servers; see the module doc."""

    def __init__(
        self,
        model: str | None = None,
        *,
        base_urls: Sequence[str],
        down: DownPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        **options: Any,
    ) -> None:
        self.servers = [OpenAIBackend(model, base_url=url, **options) for url in base_urls]
        urls = [s.base_url for s in self.servers]
        repeated = sorted({u for u in urls if urls.count(u) > 1})
        if repeated:
            raise ConfigError(f"--base-url {repeated[0]} is given twice; give each replica once")
        self.pool = ReplicaPool(urls, down=down, clock=clock)
        self._by_url = dict(zip(urls, self.servers, strict=True))
        first = self.servers[0]
        self.model, self.timeout, self.concurrency = model, first.timeout, first.concurrency
        # At least one attempt per replica, so a request is given up only after each replica had its turn.
        self.retry = replace(first.retry, max_retries=max(first.retry.max_retries, len(urls) - 1))
        self._served: str | None = None
        self._checked = False

    @property
    def base_urls(self) -> list[str]:
        return [s.base_url for s in self.servers]

    def stats(self) -> dict[str, dict[str, int]]:
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
        """Complete each request; one Completion per request, in request order."""
        if not requests:
            return []
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.agenerate(requests))
        with concurrent.futures.ThreadPoolExecutor(
            max_workers=1
        ) as pool:  # a running loop cannot be re-entered
            return pool.submit(lambda: asyncio.run(self.agenerate(requests))).result()

    async def agenerate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        """Complete each request concurrently over the replicas, in request order."""
        if not requests:
            return []
        served = await asyncio.to_thread(self.served_model)
        model = self.model or served or "default"
        async with contextlib.AsyncExitStack() as stack:
            clients = {s.base_url: await stack.enter_async_context(self._client(s)) for s in self.servers}
            gate = asyncio.Semaphore(self.concurrency * len(self.servers))
            return list(await asyncio.gather(*(self._complete(clients, gate, model, r) for r in requests)))

    def _client(self, server: OpenAIBackend) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {server.api_key}"} if server.api_key else {}
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        return httpx.AsyncClient(
            base_url=server.base_url + "/",
            headers=headers,
            limits=limits,
            timeout=httpx.Timeout(self.timeout),
        )

    async def _complete(
        self,
        clients: dict[str, httpx.AsyncClient],
        gate: asyncio.Semaphore,
        model: str,
        request: GenerationRequest,
    ) -> Completion:
        body = self.servers[0].payload(model, request)
        started = time.perf_counter()
        tried: set[str] = set()

        async def attempt() -> Completion:
            async with gate:  # held per attempt, so a request waiting for a replica frees its slot
                return await self._attempt_on_one(clients, body, request, tried)

        try:
            result = await aretry(attempt, self.retry)
        except (_Final, RetriesExhausted) as exc:
            return _failed(str(exc), started)
        except Exception as exc:  # a surprise in one response must not lose the other requests
            return _failed(f"unexpected {type(exc).__name__}: {exc}", started)
        return replace(result, latency_s=time.perf_counter() - started)

    async def _attempt_on_one(
        self,
        clients: dict[str, httpx.AsyncClient],
        body: dict[str, Any],
        request: GenerationRequest,
        tried: set[str],
    ) -> Completion:
        replica = self.pool.pick(avoid=tried)
        if replica is None:
            # Wait for the first replica due for a probe; when a probe is already out, the usual backoff.
            due = self.pool.next_due()
            raise Retry(f"all {len(self.servers)} replicas are down", due if due > 0 else None)
        tried.add(replica.url)
        outcome = "other"
        try:
            server = self._by_url[replica.url]
            result = await server._attempt(clients[replica.url], body, request.sampling.stop)
            outcome = "ok"
            return result
        except _Final:
            outcome = "ok"  # the server answered; the request is at fault
            raise
        except Retry as exc:
            if isinstance(exc, _Unreachable):
                outcome = "down"
            # Another replica that can take it now: go at once instead of waiting out a backoff.
            elsewhere = self.pool.any_usable(avoid={replica.url})
            raise Retry(f"{replica.url}: {exc}", 0.0 if elsewhere else exc.retry_after) from None
        finally:
            self.pool.release(replica, outcome)


def _failed(why: str, started: float) -> Completion:
    return Completion(
        text="", finish_reason="error", latency_s=time.perf_counter() - started, error=_one_line(why)
    )


__all__ = ["DownPolicy", "Replica", "ReplicaBackend", "ReplicaPool"]
