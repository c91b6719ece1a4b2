"""The J1-style consistency reward: pairing rollouts across orders, the both-orders data, the GRPO dataset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rmr1.errors import ConfigError, InputError
from rmr1.train.config import GRPORecipe, check_recipe
from rmr1.train.consistency import consistency_rewards, paired_layout
from rmr1.train.grpo import JudgeReward
from rmr1.train.mixes import build_judge_dataset
from rmr1.types import PreferencePair

TAG_A, TAG_B = "<answer>[[A]]</answer>", "<answer>[[B]]</answer>"
EOS = "<|im_end|>"


def test_pairing_rule_on_a_scripted_batch() -> None:
    # pair p: AB rollouts right, right, wrong; BA rollouts right, wrong (not a majority: 1 of 2)
    # pair q: AB right; BA right, right, wrong (a majority)
    # pair r: only AB rollouts in this batch (unpaired: the paper's rule alone)
    right = [True, True, False, True, False, True, True, True, False, True, False]
    pairs = ["p", "p", "p", "p", "p", "q", "q", "q", "q", "r", "r"]
    orders = ["AB", "AB", "AB", "BA", "BA", "AB", "BA", "BA", "BA", "AB", "AB"]
    rewards, unpaired = consistency_rewards(right, pairs, orders)
    assert rewards == [
        -1.0,  # right, but only 1 of 2 BA rollouts is right
        -1.0,
        -1.0,  # wrong
        1.0,  # right, and 2 of 3 AB rollouts are right
        -1.0,  # wrong
        1.0,  # right, 2 of 3 BA right
        1.0,  # right, the one AB rollout is right
        1.0,
        -1.0,
        1.0,  # unpaired, right
        -1.0,  # unpaired, wrong
    ]
    assert unpaired == 2


@pytest.fixture(scope="module")
def tokenizer(tiny_model: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def test_consistent_reward_in_the_trl_call(tokenizer) -> None:
    def ids(text: str) -> list[int]:
        return [*tokenizer(text, add_special_tokens=False)["input_ids"], tokenizer.convert_tokens_to_ids(EOS)]

    reward = JudgeReward(tokenizer, "consistent")
    logged: dict[str, float] = {}
    # pair x: AB says A (right), BA says B (right) -> both +1; pair y: AB right, BA wrong -> both -1
    out = reward(
        prompts=["p"] * 4,
        completions=["c"] * 4,
        completion_ids=[ids(TAG_A), ids(TAG_B), ids(TAG_A), ids(TAG_A)],
        winner=["model_a", "model_b", "model_a", "model_b"],
        pair_id=["x", "x", "y", "y"],
        order=["AB", "BA", "AB", "BA"],
        log_metric=lambda k, v: logged.__setitem__(k, v),
    )
    assert out == [1.0, 1.0, -1.0, -1.0]
    assert logged["judge/unpaired"] == 0.0
    # the paper's rule on the same batch gives the right-but-inconsistent rollout +1
    assert JudgeReward(tokenizer, "rm_r1")(
        prompts=["p"] * 4,
        completions=["c"] * 4,
        completion_ids=[ids(TAG_A), ids(TAG_B), ids(TAG_A), ids(TAG_A)],
        winner=["model_a", "model_b", "model_a", "model_b"],
    ) == [1.0, 1.0, 1.0, -1.0]
    with pytest.raises(ConfigError, match="pair_id"):
        reward(prompts=["p"], completions=["c"], completion_ids=[ids(TAG_A)], winner=["model_a"])


def _pairs(n: int) -> list[PreferencePair]:
    return [PreferencePair.from_texts(f"q{i}", f"good {i}", f"bad {i}", item_id=f"p{i}") for i in range(n)]


def test_both_orders_data_share_a_pair_id() -> None:
    records = build_judge_dataset(_pairs(3), "cor", both_orders=True)
    assert [r["id"] for r in records[:2]] == ["p0#AB", "p0#BA"]
    assert [(r["pair_id"], r["order"], r["winner"]) for r in records[:2]] == [
        ("p0", "AB", "model_a"),
        ("p0", "BA", "model_b"),
    ]
    ab, ba = records[0]["prompt"][-1]["content"], records[1]["prompt"][-1]["content"]
    assert ab.index("good 0") < ab.index("bad 0") and ba.index("bad 0") < ba.index("good 0")
    assert len(records) == 6 and len({r["id"] for r in records}) == 6


def test_paired_layout_keeps_pairs_adjacent_and_drops_half_pairs() -> None:
    records = build_judge_dataset(_pairs(6), "cor", both_orders=True)
    laid = paired_layout([r for r in records if r["id"] != "p4#BA"], seed=1)
    assert len(laid) == 10
    for a, b in zip(laid[::2], laid[1::2], strict=True):
        assert a["pair_id"] == b["pair_id"] and (a["order"], b["order"]) == ("AB", "BA")
    assert "p4" not in {r["pair_id"] for r in laid}
    assert paired_layout(records, seed=1) == paired_layout(records, seed=1)
    assert [r["pair_id"] for r in paired_layout(records, seed=1)] != [
        r["pair_id"] for r in paired_layout(records, seed=2)
    ]
    with pytest.raises(InputError, match="both-orders"):
        paired_layout(build_judge_dataset(_pairs(2), "cor"), seed=1)


def test_recipe_accepts_consistent_with_an_even_rollout() -> None:
    check_recipe(GRPORecipe(dataset="x.jsonl", reward="consistent", rollout_batch_prompts=8))
    with pytest.raises(ConfigError, match="even"):
        check_recipe(GRPORecipe(dataset="x.jsonl", reward="consistent", rollout_batch_prompts=7))
    with pytest.raises(ConfigError, match="paired_orders"):
        check_recipe(GRPORecipe(dataset="x.jsonl", paired_orders=True, rollout_batch_prompts=7))


def test_paired_orders_lays_out_both_orders_with_the_paper_reward() -> None:
    from rmr1.train.grpo import pairs_both_orders

    assert pairs_both_orders(GRPORecipe(dataset="x.jsonl", paired_orders=True))
    assert pairs_both_orders(GRPORecipe(dataset="x.jsonl", reward="consistent"))
    assert not pairs_both_orders(GRPORecipe(dataset="x.jsonl"))


def test_train_data_both_orders_from_the_command_line(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        "".join(
            json.dumps({"id": f"p{i}", "prompt": f"q{i}", "chosen": "good", "rejected": "bad"}) + "\n"
            for i in range(3)
        )
    )
    out = tmp_path / "judge.jsonl"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rmr1",
            "train",
            "data",
            "--pairs",
            str(pairs),
            "--out",
            str(out),
            "--both-orders",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "wrote 6 judge prompts" in done.stdout and "excluded 0" in done.stdout
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["pair_id"] for r in rows} == {"p0", "p1", "p2"}
    assert sorted(r["order"] for r in rows) == ["AB"] * 3 + ["BA"] * 3


def test_grpo_dataset_for_consistent_keeps_pairs_adjacent(
    tmp_path: Path, tiny_model: Path, tokenizer
) -> None:
    from rmr1.train.grpo import grpo_args, grpo_dataset

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        "".join(
            json.dumps({"id": f"p{i}", "prompt": f"q{i}", "chosen": "good", "rejected": "bad"}) + "\n"
            for i in range(5)
        )
    )
    recipe = GRPORecipe(
        dataset=str(pairs), model=str(tiny_model), reward="consistent", rollout_batch_prompts=4
    )
    dataset, dropped = grpo_dataset(recipe, tokenizer)
    assert dropped == 0 and set(dataset.column_names) == {"prompt", "winner", "pair_id", "order"}
    rows = list(dataset)
    assert len(rows) == 10
    for a, b in zip(rows[::2], rows[1::2], strict=True):
        assert a["pair_id"] == b["pair_id"] and (a["winner"], b["winner"]) == ("model_a", "model_b")
    args, _ = grpo_args(
        GRPORecipe(dataset="x", reward="consistent", rollout_batch_prompts=4, mini_batch_prompts=2), world=1
    )
    assert args["shuffle_dataset"] is False
