"""The GRPO reward on decoded token ids: the paper's last-80-characters rule, and the strict variant."""

from __future__ import annotations

from pathlib import Path

import pytest

from rmr1.train.grpo import JudgeReward

TAG_A, TAG_B = "<answer>[[A]]</answer>", "<answer>[[B]]</answer>"
EOS = "<|im_end|>"  # the tiny model's end-of-turn token: decoded with the completion, it takes 10 of the 80


@pytest.fixture(scope="module")
def tokenizer(tiny_model: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def _ids(tokenizer, text: str, *, ended: bool = True) -> list[int]:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return [*ids, tokenizer.convert_tokens_to_ids(EOS)] if ended else ids


CASES = [
    # (completion text, winner, ended with EOS, rm_r1 reward, strict reward)
    ("<eval>A is right.</eval>\n" + TAG_A, "model_a", True, 1.0, 1.0),
    ("<eval>B is right.</eval>\n" + TAG_B, "model_a", True, -1.0, -1.0),  # wrong verdict
    ("<eval>B is right.</eval>\n" + TAG_B, "model_b", True, 1.0, 1.0),
    (
        TAG_A + "\n" + TAG_B,
        "model_b",
        True,
        -1.0,
        1.0,
    ),  # both tags in the tail: -1; strict reads the last one
    (TAG_A + "x" * 48, "model_a", True, 1.0, 1.0),  # exactly 80 characters with the EOS: the whole tag counts
    (TAG_A + "x" * 49, "model_a", True, -1.0, 1.0),  # one more and the tag's "<" falls out: too early
    (TAG_A + " and then a long afterthought " + "y" * 80, "model_a", True, -1.0, 1.0),  # tag far too early
    ("<eval>A is right.</eval>\n" + TAG_A, "model_a", False, -1.0, -1.0),  # truncated: no end-of-turn token
    ("no verdict at all", "model_b", True, -1.0, -1.0),
    ("<quote_B>" + TAG_B + "</quote_B>" + TAG_A, "model_a", True, -1.0, 1.0),  # the rule sees the quoted tag
]


@pytest.mark.parametrize("text, winner, ended, paper, strict", CASES)
def test_reward_case_table(
    tokenizer, text: str, winner: str, ended: bool, paper: float, strict: float
) -> None:
    ids = _ids(tokenizer, text, ended=ended)
    assert tokenizer.decode(ids, skip_special_tokens=False) == text + (EOS if ended else "")
    assert JudgeReward(tokenizer, "rm_r1").score(ids, winner) == paper
    assert JudgeReward(tokenizer, "strict").score(ids, winner) == strict


def test_trl_call_shape_and_logged_metrics(tokenizer) -> None:
    reward = JudgeReward(tokenizer)
    logged: dict[str, float] = {}
    completions = [
        _ids(tokenizer, TAG_A),
        _ids(tokenizer, TAG_B),
        _ids(tokenizer, TAG_A, ended=False),
        _ids(tokenizer, "nothing"),
    ]
    out = reward(
        prompts=["p"] * 4,
        completions=["c"] * 4,
        completion_ids=completions,
        winner=["model_a"] * 4,
        log_metric=lambda k, v: logged.__setitem__(k, v),
        trainer_state=None,
    )
    assert out == [1.0, -1.0, -1.0, -1.0]
    assert (
        logged["judge/accuracy"] == 0.5
        and logged["judge/parsed"] == 0.75
        and logged["judge/truncated"] == 0.25
    )
    assert reward.__name__ == "rm_r1_reward"
