"""OpenRLHF custom reward function backed by an rmr1 judge server.

    rmr1 serve --model JUDGE --port 8000 [--token T]          # the judge, on its own GPU or machine
    ... --remote_rm_url examples/openrlhf_reward_func.py [--label_key reference]

OpenRLHF calls ``reward_func(queries, prompts, labels)`` with each decoded prompt + response. This file sends
the batch to the server's ``/get_reward`` in one request and returns what OpenRLHF expects: ``rewards`` (for
the advantages), ``scores`` (in [0, 1], for dynamic filtering) and ``extra_logs`` (per sample, logged).

With labels (reference responses) each response is judged against its label: +1 / -1 / 0 for a draw or an
unparsed verdict. Without labels, the responses that share a prompt play a round robin: 2 * win rate - 1.
Settings come from the environment: RMR1_URL (default http://127.0.0.1:8000), RMR1_TOKEN, RMR1_TIMEOUT
(seconds, default 600: long-thinking judges need more than OpenRLHF's own 180 s), RMR1_METHOD (auto,
round_robin, knockout, reference; default auto).
"""

from __future__ import annotations

import os
import time
from typing import Any

import httpx


def _post(body: dict[str, Any]) -> dict[str, Any]:
    url = os.environ.get("RMR1_URL", "http://127.0.0.1:8000").rstrip("/") + "/get_reward"
    token = os.environ.get("RMR1_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    timeout = float(os.environ.get("RMR1_TIMEOUT", "600"))
    problem = ""
    for attempt in range(3):
        try:
            response = httpx.post(url, json=body, headers=headers, timeout=timeout)
        except httpx.TransportError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        else:
            if response.status_code < 500:
                if response.status_code >= 400:  # the request itself is wrong: retrying will not help
                    raise ValueError(f"{url} answered {response.status_code}: {response.text[:300]}")
                answer: dict[str, Any] = response.json()
                return answer
            problem = f"HTTP {response.status_code}"
        time.sleep(1.0 + attempt)
    raise RuntimeError(f"the rmr1 judge server at {url} failed three times ({problem})")


def reward_func(queries: list[str], prompts: list[str], labels: list[Any] | None = None) -> dict[str, Any]:
    import torch

    answer = _post(
        {
            "query": list(queries),
            "prompts": list(prompts),
            "labels": None if labels is None else list(labels),
            "method": os.environ.get("RMR1_METHOD", "auto"),
        }
    )
    return {
        "rewards": torch.tensor(answer["rewards"], dtype=torch.float32),
        "scores": torch.tensor(answer["scores"], dtype=torch.float32),
        "extra_logs": {k: torch.tensor(v, dtype=torch.float32) for k, v in answer["extra_logs"].items()},
    }
