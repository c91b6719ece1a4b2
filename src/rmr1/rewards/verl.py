"""veRL reward functions: ``compute_score(data_source, solution_str, ground_truth, extra_info)`` and its async
and batched forms, plus the paper's rule for training a judge with veRL."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from rmr1.errors import InputError
from rmr1.judge import Judge
from rmr1.rewards.groups import Group, GroupScore, GroupScorer, LocalScorer, prompt_messages
from rmr1.verdicts import rm_r1_reward

_SCORERS: dict[tuple[Any, ...], GroupScorer] = {}
_SCORERS_LOCK = threading.Lock()


def scorer_from_options(options: Mapping[str, Any]) -> GroupScorer:
    """The scorer a veRL ``reward_kwargs`` (or the environment) names, built once per process.

    ``judge_url`` / ``$RMR1_JUDGE_URL``: an ``rmr1 serve`` server (``judge_token`` / ``$RMR1_JUDGE_TOKEN``);
    otherwise a local judge from ``model`` / ``$RMR1_JUDGE_MODEL``, ``backend`` (hf), ``template``,
    ``max_new_tokens``. Other keys (veRL passes its own) are ignored.
    """
    url = options.get("judge_url") or os.environ.get("RMR1_JUDGE_URL")
    if url:
        token = options.get("judge_token") or os.environ.get("RMR1_JUDGE_TOKEN")
        key: tuple[Any, ...] = ("remote", url, token, float(options.get("timeout", 600.0)))
    else:
        key = (
            "local",
            options.get("model") or os.environ.get("RMR1_JUDGE_MODEL"),
            options.get("backend", "hf"),
            options.get("template"),
            int(options.get("max_new_tokens", 1024)),
        )
    with _SCORERS_LOCK:
        if key not in _SCORERS:
            _SCORERS[key] = _build_scorer(key)
        return _SCORERS[key]


def _build_scorer(key: tuple[Any, ...]) -> GroupScorer:
    if key[0] == "remote":
        from rmr1.serve.client import RemoteScorer

        return RemoteScorer(key[1], token=key[2], timeout=key[3])
    from rmr1.backends import make_backend
    from rmr1.judge import JudgeConfig

    _, model, backend, template, max_new_tokens = key
    return LocalScorer(
        Judge(make_backend(backend, model), template, JudgeConfig(max_new_tokens=max_new_tokens))
    )


def verl_group(solution_str: str, ground_truth: Any, extra_info: Mapping[str, Any] | None) -> Group:
    """The policy's solution and the reference (``ground_truth``); the question comes from ``extra_info``."""
    info = extra_info if isinstance(extra_info, Mapping) else {}
    question = info.get("question", info.get("prompt"))
    if question is None:
        raise InputError(
            "put the question in extra_info['question'] (a string or messages)", field="extra_info.question"
        )
    return Group(prompt_messages(question, "extra_info.question"), (solution_str,), str(ground_truth))


def _verl_result(score: GroupScore) -> dict[str, float]:
    return {
        "score": score.rewards[0],
        "judge_draw": float(score.draws[0]),
        "judge_unparsed": float(score.unparsed[0]),
    }


def verl_compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, float]:
    """veRL custom reward: the solution judged against ``ground_truth`` (a reference response): +1/-1/0."""
    scorer = scorer_from_options(kwargs)
    return _verl_result(scorer.score([verl_group(solution_str, ground_truth, extra_info)], "reference")[0])


async def verl_compute_score_async(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, float]:
    """The same for veRL's async reward loop; against a server, concurrent calls share its micro-batches."""
    scorer = scorer_from_options(kwargs)
    group = verl_group(solution_str, ground_truth, extra_info)
    return _verl_result((await scorer.ascore([group], "reference"))[0])


def verl_compute_score_batch(
    data_sources: Sequence[str],
    solution_strs: Sequence[str],
    ground_truths: Sequence[Any],
    extra_infos: Sequence[Mapping[str, Any] | None],
    **kwargs: Any,
) -> list[dict[str, float]]:
    """veRL's batched form (BatchRewardManager): every solution of the batch in one scorer call."""
    groups = [verl_group(s, g, e) for s, g, e in zip(solution_strs, ground_truths, extra_infos, strict=True)]
    return [_verl_result(s) for s in scorer_from_options(kwargs).score(groups, "reference")]


def verl_rm_r1_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> float:
    """veRL reward for *training* a judge by the paper's rule: ``ground_truth`` is model_a / model_b."""
    return rm_r1_reward(solution_str, str(ground_truth))
