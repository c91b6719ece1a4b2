"""OpenRLHF's remote reward shape: ``{"query", "prompts", "labels"}`` in,
``{"rewards", "scores", "extra_logs"}`` out. ``POST /get_reward`` and ``examples/openrlhf_reward_func.py``
speak it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rmr1.errors import InputError
from rmr1.judge import Judge
from rmr1.rewards.groups import Group, GroupScorer, as_scorer, prompt_messages


def _split_query(query: str, prompt: str) -> tuple[str, bool]:
    """The response in ``query`` (prompt + response); (the query, False) if the prompt is not in it."""
    at = query.find(prompt) if prompt else -1
    if at < 0:
        return query, False
    return query[at + len(prompt) :], True


def openrlhf_rewards(
    scorer: GroupScorer | Judge,
    queries: Sequence[str],
    prompts: Sequence[str] | None,
    labels: Sequence[Any] | None = None,
    method: str = "auto",
) -> dict[str, Any]:
    """OpenRLHF's remote reward shape: ``{"rewards", "scores", "extra_logs"}`` as lists, one entry per query.

    ``auto``: against the labels (reference responses) when every label is a non-empty string, else round
    robin among the queries that share a prompt. ``scores`` = (reward + 1) / 2, in [0, 1], for dynamic
    filtering.
    """
    if prompts is None:
        raise InputError("needed to split each query into prompt and response", field="prompts")
    if len(prompts) != len(queries) or (labels is not None and len(labels) != len(queries)):
        raise InputError("query, prompts and labels must have the same length", field="prompts")
    if method == "auto":
        labelled = labels is not None and all(isinstance(x, str) and x.strip() for x in labels)
        method = "reference" if labelled else "round_robin"
    members: dict[tuple[str, Any], list[int]] = {}
    for k, prompt in enumerate(prompts):
        members.setdefault((prompt, labels[k] if method == "reference" and labels else None), []).append(k)
    split = [_split_query(q, p) for q, p in zip(queries, prompts, strict=True)]
    groups = [
        Group(prompt_messages(p, "prompts"), tuple(split[k][0] for k in idx), ref)
        for (p, ref), idx in members.items()
    ]
    scores = as_scorer(scorer).score(groups, method)
    n = len(queries)
    out: dict[str, list[float]] = {key: [0.0] * n for key in ("rewards", "draws", "unparsed", "comparisons")}
    for idx, score in zip(members.values(), scores, strict=True):
        for pos, k in enumerate(idx):
            out["rewards"][k] = score.rewards[pos]
            out["draws"][k] = float(score.draws[pos])
            out["unparsed"][k] = float(score.unparsed[pos])
            out["comparisons"][k] = float(score.comparisons[pos])
    return {
        "rewards": out["rewards"],
        "scores": [(r + 1.0) / 2.0 for r in out["rewards"]],
        "extra_logs": {
            "judge_draws": out["draws"],
            "judge_unparsed": out["unparsed"],
            "judge_comparisons": out["comparisons"],
            "prompt_not_in_query": [0.0 if found else 1.0 for _, found in split],
        },
        "method": method,
    }
