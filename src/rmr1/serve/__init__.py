"""``rmr1 serve``: the judge over HTTP.

``create_app(judge, settings)`` builds the FastAPI app; ``ServeSettings`` holds its limits. Endpoints:
``POST /v1/judge`` (one pair), ``POST /v1/rank`` (n candidates: knockout or round robin), ``POST /v1/score``
(groups -> RL rewards, what ``RemoteScorer`` calls), ``POST /get_reward`` (OpenRLHF's remote reward shape),
``POST /v1/chat/completions`` and ``GET /v1/models`` (OpenAI-compatible), ``GET /health``, ``/openapi.json``.
Concurrent requests share model calls through ``MicroBatcher``. Needs the ``serving`` extra.
"""

from __future__ import annotations

from typing import Any

from rmr1.errors import require

__all__ = ["RemoteScorer", "ServeSettings", "create_app"]


def __getattr__(name: str) -> Any:
    # FastAPI loads only when the server is asked for, and a missing extra names itself.
    if name in ("create_app", "ServeSettings"):
        require("fastapi", what="rmr1 serve", extra="serving")
        from rmr1.serve import app

        return getattr(app, name)
    if name == "RemoteScorer":
        from rmr1.serve.client import RemoteScorer

        return RemoteScorer
    raise AttributeError(f"module 'rmr1.serve' has no attribute {name!r}")
