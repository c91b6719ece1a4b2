"""A ``GroupScorer`` that asks an ``rmr1 serve`` server (``POST /v1/score``), for reward functions that run
apart from the judge: a TRL or veRL trainer on one machine, the judge on another (or in another process).

One call sends every group in one request; the server judges them together (one backend call per tournament
round). Connection failures and 5xx answers are retried with a short backoff; a 4xx answer is the caller's
fault and raises ``InputError`` with the server's reason at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from rmr1.errors import BackendError, InputError
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
        self.requests = 0

    def _body(self, groups: Sequence[Group], method: str) -> dict[str, Any]:
        return {"groups": [_group_json(g) for g in groups], "method": method}

    def _parse(self, response: Any, groups: Sequence[Group]) -> list[GroupScore] | None:
        """Scores on success, None for a retryable failure; raises for a 4xx."""
        if response.status_code >= 500:
            return None
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
        last = "no attempt"
        with httpx.Client(timeout=self.timeout, headers=self.headers) as client:
            for attempt in range(self.retries + 1):
                try:
                    self.requests += 1
                    parsed = self._parse(client.post(self.url, json=self._body(groups, method)), groups)
                    if parsed is not None:
                        return parsed
                    last = "server error"
                except httpx.TransportError as exc:
                    last = f"{type(exc).__name__}: {exc}"
                time.sleep(0.5 * (attempt + 1))
        raise BackendError(f"judge server at {self.url} failed after {self.retries + 1} tries ({last})")

    async def ascore(self, groups: Sequence[Group], method: str) -> list[GroupScore]:
        import httpx

        if not groups:
            return []
        last = "no attempt"
        async with httpx.AsyncClient(timeout=self.timeout, headers=self.headers) as client:
            for attempt in range(self.retries + 1):
                try:
                    self.requests += 1
                    parsed = self._parse(await client.post(self.url, json=self._body(groups, method)), groups)
                    if parsed is not None:
                        return parsed
                    last = "server error"
                except httpx.TransportError as exc:
                    last = f"{type(exc).__name__}: {exc}"
                await asyncio.sleep(0.5 * (attempt + 1))
        raise BackendError(f"judge server at {self.url} failed after {self.retries + 1} tries ({last})")


__all__ = ["RemoteScorer"]
