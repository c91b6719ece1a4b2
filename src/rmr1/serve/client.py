"""A ``GroupScorer`` that asks an ``rmr1 serve`` server (``POST /v1/score``), for reward functions that run
apart from the judge: a TRL or veRL trainer on one machine, the judge on another (or in another process).

One call sends every group in one request; the server judges them together (one backend call per tournament
round). Connection failures and 5xx answers are retried (``rmr1.retry``: exponential backoff with jitter, a
``Retry-After`` honoured); a 4xx answer is the caller's fault and raises ``InputError`` with the server's
reason at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rmr1.errors import BackendError, InputError
from rmr1.retry import RetriesExhausted, Retry, RetryPolicy, aretry, parse_retry_after, retry
from rmr1.rewards import Group, GroupScore


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
        self, base_url: str, *, token: str | None = None, timeout: float = 600.0, retries: int = 2
    ) -> None:
        self.url = base_url.rstrip("/") + "/v1/score"
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.timeout = timeout
        self.retries = retries
        self.policy = RetryPolicy(max_retries=retries, backoff=0.5, max_backoff=10.0)
        self.requests = 0

    def _body(self, groups: Sequence[Group], method: str) -> dict[str, Any]:
        return {"groups": [_group_json(g) for g in groups], "method": method}

    def _parse(self, response: Any, groups: Sequence[Group]) -> list[GroupScore]:
        """Scores on success; ``Retry`` for a 5xx (the server's Retry-After honoured); raises for a 4xx."""
        if response.status_code >= 500:
            wait = parse_retry_after(response.headers.get("retry-after"))
            raise Retry(f"server error {response.status_code}", wait)
        if response.status_code >= 400:
            raise InputError(f"judge server answered {response.status_code}: {_reason(response)}")
        results = response.json()["results"]
        if len(results) != len(groups):
            raise BackendError(f"judge server returned {len(results)} results for {len(groups)} groups")
        return [GroupScore.from_dict(r) for r in results]

    def score(self, groups: Sequence[Group], method: str) -> list[GroupScore]:
        import httpx

        if not groups:
            return []
        with httpx.Client(timeout=self.timeout, headers=self.headers) as client:

            def attempt() -> list[GroupScore]:
                self.requests += 1
                try:
                    response = client.post(self.url, json=self._body(groups, method))
                except httpx.TransportError as exc:
                    raise Retry(f"{type(exc).__name__}: {exc}") from None
                return self._parse(response, groups)

            try:
                return retry(attempt, self.policy)
            except RetriesExhausted as exc:
                raise BackendError(
                    f"judge server at {self.url} failed after {exc.attempts} tries ({exc.why})"
                ) from None

    async def ascore(self, groups: Sequence[Group], method: str) -> list[GroupScore]:
        import httpx

        if not groups:
            return []
        async with httpx.AsyncClient(timeout=self.timeout, headers=self.headers) as client:

            async def attempt() -> list[GroupScore]:
                self.requests += 1
                try:
                    response = await client.post(self.url, json=self._body(groups, method))
                except httpx.TransportError as exc:
                    raise Retry(f"{type(exc).__name__}: {exc}") from None
                return self._parse(response, groups)

            try:
                return await aretry(attempt, self.policy)
            except RetriesExhausted as exc:
                raise BackendError(
                    f"judge server at {self.url} failed after {exc.attempts} tries ({exc.why})"
                ) from None


__all__ = ["RemoteScorer"]
