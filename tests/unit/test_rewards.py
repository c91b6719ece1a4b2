"""Reward adapters (TRL, veRL, OpenRLHF) on a scripted judge."""

from __future__ import annotations

import asyncio
import inspect
import re

import pytest

import rmr1.verdicts
from rmr1 import rewards
from rmr1.backends.mock import MockBackend
from rmr1.errors import InputError
from rmr1.judge import Judge, JudgeConfig
from rmr1.rewards import (
    AsyncJudgeReward,
    Group,
    JudgeReward,
    openrlhf_rewards,
    score_groups,
    verl_compute_score,
    verl_compute_score_async,
    verl_compute_score_batch,
    verl_rm_r1_score,
)
from rmr1.types import GenerationRequest, Message

QUALITY = re.compile(r"q=(\d+)")
Q = (Message("user", "Which is best?"),)


def by_quality(request: GenerationRequest) -> str:
    """A fair judge: prefers the response with the higher q=N (the one shown first is A)."""
    a, b = (int(x) for x in QUALITY.findall(request.messages[-1].content)[-2:])
    return f"<answer>[[{'A' if a > b else 'B'}]]</answer>"


def make(script: object = by_quality, **config: object) -> tuple[Judge, MockBackend]:
    backend = MockBackend(script=script)  # type: ignore[arg-type]
    return Judge(backend, "plain", JudgeConfig(**config)), backend  # type: ignore[arg-type]


def test_rm_r1_reward_is_the_verdicts_function() -> None:
    assert rewards.rm_r1_reward is rmr1.verdicts.rm_r1_reward


def test_round_robin_group_rewards_with_an_empty_completion() -> None:
    judge, backend = make()
    (score,) = score_groups(judge, [Group(Q, ("a q=1", "  ", "a q=3"))], "round_robin")
    # q=3 beats q=1 and the empty one; q=1 beats only the empty one; the empty one loses both (walkovers).
    assert score.rewards == (0.0, -1.0, 1.0)
    assert score.comparisons == (1, 0, 1) and backend.calls == 1 == score.calls


def test_knockout_group_rewards_count_the_empty_round() -> None:
    judge, backend = make()
    (score,) = score_groups(judge, [Group(Q, ("a q=1", "a q=4", "", "a q=2", "a q=3"))], "knockout")
    assert backend.calls == 3  # n-1 among the four non-empty ones
    assert score.rewards[1] == 1.0 and score.rewards[2] == -1.0
    assert all(-1.0 < score.rewards[k] < 1.0 for k in (0, 3, 4))  # beat the empty one, lost a real match


def test_degenerate_groups_have_defined_rewards() -> None:
    judge, backend = make()
    scores = score_groups(judge, [Group(Q, ("alone q=1",)), Group(Q, ("", "")), Group(Q, ("", "x q=1"))])
    assert [s.rewards for s in scores] == [(0.0,), (0.0, 0.0), (-1.0, 1.0)]
    assert backend.calls == 0


def test_reference_method_win_loss_draw_and_empty() -> None:
    judge, backend = make()
    (score,) = score_groups(judge, [Group(Q, ("a q=9", "a q=1", ""), "ref q=5")], "reference")
    assert score.rewards == (1.0, -1.0, -1.0) and backend.calls == 2
    (draw,) = score_groups(make("echo")[0], [Group(Q, ("a q=9",), "ref q=5")], "reference")
    assert draw.rewards == (0.0,) and draw.unparsed == (1,) and draw.draws == (1,)
    with pytest.raises(InputError, match="reference"):
        score_groups(judge, [Group(Q, ("a q=9",))], "reference")


def test_trl_reward_groups_consecutive_completions() -> None:
    judge, backend = make()
    reward = JudgeReward(judge, num_generations=3)
    prompts = ["p1"] * 3 + ["p2"] * 3
    completions = ["q=1", "q=3", "q=2", "q=7", "q=5", "q=6"]
    assert reward(prompts=prompts, completions=completions) == [-1.0, 1.0, 0.0, 1.0, -1.0, 0.0]
    assert backend.batches == [6]  # both groups' round robins in one backend call
    # Without num_generations, runs of equal prompts are the groups.
    assert JudgeReward(judge)(prompts=prompts, completions=completions) == [-1.0, 1.0, 0.0, 1.0, -1.0, 0.0]
    with pytest.raises(InputError, match="num_generations"):
        JudgeReward(judge, num_generations=4)(prompts=prompts, completions=completions)


def test_trl_reward_reads_conversational_completions_and_logs_metrics() -> None:
    judge, _ = make()
    logged: dict[str, float] = {}
    prompts = [[{"role": "user", "content": [{"type": "text", "text": "Which?"}]}]] * 2
    completions = [[{"role": "assistant", "content": "x q=2"}], [{"role": "assistant", "content": "x q=8"}]]
    out = JudgeReward(judge, name="judge")(
        prompts=prompts, completions=completions, trainer_state=None, log_metric=logged.__setitem__
    )
    assert out == [-1.0, 1.0]
    assert logged == {"judge/draw_rate": 0.0, "judge/unparsed_rate": 0.0}


def test_trl_reward_against_a_reference_column() -> None:
    judge, _ = make()
    reward = JudgeReward(judge, method="reference", reference_column="gold")
    out = reward(prompts=["p", "p"], completions=["q=9", "q=1"], gold=["g q=5", "g q=5"])
    assert out == [1.0, -1.0]
    with pytest.raises(InputError, match="gold"):
        reward(prompts=["p"], completions=["q=9"])


def test_async_trl_reward_matches_the_sync_one() -> None:
    judge, _ = make()
    reward = AsyncJudgeReward(judge, num_generations=2)
    # TRL's test for an async reward (trl.trainer.utils.is_async_callable; importing trl here costs seconds).
    assert inspect.iscoroutinefunction(reward.__call__)
    assert not inspect.iscoroutinefunction(JudgeReward(judge).__call__)
    out = asyncio.run(reward(prompts=["a", "a", "b", "b"], completions=["q=1", "q=2", "q=4", "q=3"]))
    assert out == [-1.0, 1.0, 1.0, -1.0]


def test_verl_functions() -> None:
    opts = {"backend": "mock", "model": by_quality}
    info = {"question": "Which is best?"}
    assert verl_compute_score("src", "mine q=9", "gold q=5", info, **opts)["score"] == 1.0
    assert asyncio.run(verl_compute_score_async("src", "mine q=1", "gold q=5", info, **opts))["score"] == -1.0
    batch = verl_compute_score_batch(["s", "s"], ["q=9", "q=1"], ["q=5", "q=5"], [info, info], **opts)
    assert [b["score"] for b in batch] == [1.0, -1.0]
    with pytest.raises(InputError, match=r"extra_info\.question"):
        verl_compute_score("src", "q=9", "q=5", {}, **opts)
    assert verl_rm_r1_score("src", "... <answer>[[B]]</answer>", "model_b") == 1.0
    assert verl_rm_r1_score("src", "... <answer>[[B]]</answer>", "model_a") == -1.0


def test_openrlhf_shape_by_reference_and_by_prompt_groups() -> None:
    judge, _ = make()
    by_ref = openrlhf_rewards(judge, ["P: q=9", "P: q=1"], ["P: ", "P: "], ["gold q=5", "gold q=5"])
    assert (
        by_ref["rewards"] == [1.0, -1.0]
        and by_ref["scores"] == [1.0, 0.0]
        and by_ref["method"] == "reference"
    )
    # No labels: the queries that share a prompt compete, wherever they sit in the batch.
    grouped = openrlhf_rewards(judge, ["A q=1", "B q=5", "A q=3", "B q=2"], ["A", "B", "A", "B"], None)
    assert grouped["rewards"] == [-1.0, 1.0, 1.0, -1.0] and grouped["method"] == "round_robin"
    assert set(grouped["extra_logs"]) == {
        "judge_draws",
        "judge_unparsed",
        "judge_comparisons",
        "prompt_not_in_query",
    }
    assert all(len(v) == 4 for v in grouped["extra_logs"].values())
    with pytest.raises(InputError, match="prompts"):
        openrlhf_rewards(judge, ["x"], None)
    with pytest.raises(InputError, match="same length"):
        openrlhf_rewards(judge, ["x", "y"], ["x"])
