"""A ``GroupScorer`` that asks an ``rmr1 serve`` server (``POST /v1/score``), for reward functions that run
apart from the judge: a TRL or veRL trainer on one machine, the judge on another (or in another process).

One call sends every group in one request; the server judges them together (one backend call per tournament
round). A reward call survives a server restart: a connection failure (refused, reset, dropped mid-answer)
or a 502/503/429 is retried with bounded, jittered exponential backoff (a ``Retry-After`` is honoured up to
the cap). The whole request is sent again, which is safe because scoring is stateless on the server: the
caller gets each group's reward exactly once, in order, or one ``BackendError``. A 4xx is the caller's fault
and raises ``InputError`` at once; a 500 (a fault of the judge) and a 504 (the work is over the server's
timeout) would fail again the same way and raise ``BackendError`` at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from rmr1.errors import BackendError, InputError
from rmr1.retry import RetriesExhausted, Retry, RetryPolicy, aretry, parse_retry_after, retry
from rmr1.rewards import Group, GroupScore

_RETRY_STATUS = frozenset({429, 502, 503})
# A read that timed out is not retried: the server may still be working on it, and a slow server stays slow.
_RETRY_TRANSPORT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)


def _group_json(group: Group) -> dict[str, Any]:
    data: dict[str, Any] = {
        "messages": [m.to_dict() for m in group.prompt],
        "responses": list(group.responses),
    }
    if group.reference is not None:
        data["reference"] = group.reference
    return data


def _reason(response: Any) -> str:
    try:
        return str(response.json()["error"]["message"])
    except Exception:
        return response.text[:200]


class RemoteScorer:
    """Scores groups on a server: ``RemoteScorer("http://127.0.0.1:8000", token=...)``."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 600.0,  # seconds for one attempt (connect, send, judge, answer)
        retries: int = 10,  # attempts after the first; at the defaults about 30-60 s of waiting in all
        backoff: float = 0.5,  # seconds before the first retry; doubles each time
        max_backoff: float = 10.0,  # cap on any single wait, a server's Retry-After included
    ) -> None:
        if timeout <= 0 or retries < 0 or backoff < 0 or max_backoff < 0:
            raise InputError("RemoteScorer: timeout must be positive, retries and backoffs not negative")
        self.url = base_url.rstrip("/") + "/v1/score"
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.timeout = timeout
        self.policy = RetryPolicy(max_retries=retries, backoff=backoff, max_backoff=max_backoff)
        self.requests = 0  # HTTP attempts made
        self.retried = 0  # attempts that failed and were tried again

    def _body(self, groups: Sequence[Group], method: str) -> dict[str, Any]:
        return {"groups": [_group_json(g) for g in groups], "method": method}

    def _outcome(self, response: httpx.Response, groups: Sequence[Group]) -> list[GroupScore]:
        """Scores on success; ``Retry`` for a failure worth retrying; raises for the rest."""
        status = response.status_code
        if status in _RETRY_STATUS:
            raise Retry(
                f"{status}: {_reason(response)}", parse_retry_after(response.headers.get("retry-after"))
            )
        if 400 <= status < 500:
            raise InputError(f"judge server answered {status}: {_reason(response)}")
        if status >= 500:
            raise BackendError(f"judge server at {self.url} answered {status}: {_reason(response)}")
        results = response.json()["results"]
        if len(results) != len(groups):
            raise BackendError(f"judge server returned {len(results)} results for {len(groups)} groups")
        return [GroupScore.from_dict(r) for r in results]

    def _gave_up(self, exc: RetriesExhausted) -> BackendError:
        return BackendError(f"judge server at {self.url} failed after {exc.attempts} tries (last: {exc.why})")

    def score(self, groups: Sequence[Group], method: str) -> list[GroupScore]:
        if not groups:
            return []
        body = self._body(groups, method)
        with httpx.Client(timeout=self.timeout, headers=self.headers) as client:
            tries = 0

            def attempt() -> list[GroupScore]:
                nonlocal tries
                self.requests += 1
                tries += 1
                self.retried += tries > 1  # every attempt after a call's first is a retry
                try:
                    response = client.post(self.url, json=body)
                except _RETRY_TRANSPORT as exc:
                    raise Retry(f"{type(exc).__name__}: {exc}") from None
                return self._outcome(response, groups)

            try:
                return retry(attempt, self.policy)
            except RetriesExhausted as exc:
                raise self._gave_up(exc) from None

    async def ascore(self, groups: Sequence[Group], method: str) -> list[GroupScore]:
        if not groups:
            return []
        body = self._body(groups, method)
        async with httpx.AsyncClient(timeout=self.timeout, headers=self.headers) as client:
            tries = 0

            async def attempt() -> list[GroupScore]:
                nonlocal tries
                self.requests += 1
                tries += 1
                self.retried += tries > 1
                try:
                    response = await client.post(self.url, json=body)
                except _RETRY_TRANSPORT as exc:
                    raise Retry(f"{type(exc).__name__}: {exc}") from None
                return self._outcome(response, groups)

            try:
                return await aretry(attempt, self.policy)
            except RetriesExhausted as exc:
                raise self._gave_up(exc) from None


__all__ = ["RemoteScorer"]
