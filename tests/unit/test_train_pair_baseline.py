"""Advantages over both orders of a pair (advantage_group=pair): the arithmetic and the trainer hook."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import pytest
import torch

from rmr1.errors import ConfigError
from rmr1.train.config import GRPORecipe, check_recipe
from rmr1.train.grpo import pairs_both_orders
from rmr1.train.pair_baseline import PAIR_ZERO_STD, pair_advantages, pair_baseline_trainer
from rmr1.train.stalls import stalled_stretches

NAN = float("nan")


def test_a_one_letter_judge_gets_a_gradient_that_per_order_groups_would_not_give() -> None:
    # the judge says A in both orders: right in every AB rollout, wrong in every BA one
    rewards = torch.tensor([1.0] * 4 + [-1.0] * 4)
    advantages, zero = pair_advantages(rewards, ["p"] * 8)
    assert zero == 0.0
    assert all(a > 0.9 for a in advantages[:4]) and all(a < -0.9 for a in advantages[4:])
    # per order (TRL's grouping) the same rollouts have no spread at all
    _, per_order_zero = pair_advantages(rewards, ["AB"] * 4 + ["BA"] * 4)
    assert per_order_zero == 1.0


def test_each_pair_is_its_own_group() -> None:
    rewards = torch.tensor([1.0, -1.0, 1.0, 1.0, 1.0, 1.0, -1.0, -1.0])
    advantages, zero = pair_advantages(rewards, ["a"] * 4 + ["b"] * 4, scale="none")
    assert advantages[:4].tolist() == pytest.approx([0.5, -1.5, 0.5, 0.5])
    assert advantages[4:].tolist() == pytest.approx([1.0, 1.0, -1.0, -1.0])
    assert zero == 0.0
    solved, zero = pair_advantages(torch.ones(4), ["a"] * 4)
    assert solved.tolist() == [0.0] * 4 and zero == 1.0  # a pair right in both orders teaches nothing


def test_group_scaling_divides_by_the_pairs_std_and_batch_by_the_batchs() -> None:
    rewards = torch.tensor([1.0, -1.0, 1.0, 1.0])
    group, _ = pair_advantages(rewards, ["a", "a", "b", "b"], scale="group")
    assert group[:2].tolist() == pytest.approx([1 / (math.sqrt(2) + 1e-4), -1 / (math.sqrt(2) + 1e-4)])
    assert group[2:].tolist() == [0.0, 0.0]
    batch, _ = pair_advantages(rewards, ["a", "a", "b", "b"], scale="batch")
    assert batch[0].item() == pytest.approx(1 / (rewards.std().item() + 1e-4))


def test_unscorable_rollouts_stay_out_of_the_mean_and_get_no_advantage() -> None:
    advantages, _ = pair_advantages(torch.tensor([1.0, NAN, -1.0, 1.0]), ["a"] * 4, scale="none")
    assert advantages.tolist() == pytest.approx([2 / 3, 0.0, -4 / 3, 2 / 3])


def test_keys_must_match_the_rewards() -> None:
    with pytest.raises(ValueError, match="3 pair keys for 4 rewards"):
        pair_advantages(torch.zeros(4), ["a"] * 3)


class _FakeTrainer:
    """Stands in for TRL's trainer: per-prompt advantages of zero, two processes' worth of rewards."""

    def __init__(self, process_index: int) -> None:
        self.accelerator = type("Acc", (), {"process_index": process_index})()
        self.model = type("M", (), {"training": True})()
        self.reward_weights = torch.tensor([1.0])
        self.scale_rewards = "none"
        self._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}

    def _calculate_rewards(self, inputs: Any, *args: Any) -> torch.Tensor:
        return torch.tensor([[1.0], [1.0], [-1.0], [-1.0]])  # the gathered batch: AB right, BA wrong

    def _generate_and_score_completions(self, inputs: Any) -> dict[str, Any]:
        self._calculate_rewards(inputs)
        return {"advantages": torch.zeros(len(inputs))}


def test_the_trainer_replaces_each_process_slice_of_advantages(monkeypatch: pytest.MonkeyPatch) -> None:
    import accelerate.utils

    gathered = ["p", "p", "p", "p"]  # both processes' pair ids, in process order
    monkeypatch.setattr(accelerate.utils, "gather_object", lambda local: gathered)
    cls = pair_baseline_trainer(_FakeTrainer)
    second = cls(process_index=1)
    out = second._generate_and_score_completions([{"pair_id": "p"}, {"pair_id": "p"}])
    assert out["advantages"].tolist() == [-1.0, -1.0]  # the BA half, against the pair's mean of 0
    first = cls(process_index=0)
    assert first._generate_and_score_completions([{"pair_id": "p"}] * 2)["advantages"].tolist() == [1.0, 1.0]
    assert second._metrics["train"][PAIR_ZERO_STD] == [0.0]


def test_stalls_read_the_pair_groups_when_a_run_logged_them() -> None:
    rows = [{"step": s, "frac_reward_zero_std": 1.0, PAIR_ZERO_STD: 0.0} for s in (1, 2, 3, 4)]
    assert stalled_stretches(rows) == []  # unanimous per order, but each pair's orders disagree
    for row in rows:
        row[PAIR_ZERO_STD] = 1.0
    assert [(s.first, s.last) for s in stalled_stretches(rows)] == [(1, 4)]


def test_the_recipe_key_is_checked_and_implies_paired_orders() -> None:
    recipe = GRPORecipe(dataset="x.jsonl", advantage_group="pair", rollout_batch_prompts=2)
    check_recipe(recipe)
    assert pairs_both_orders(recipe)
    assert not pairs_both_orders(GRPORecipe(dataset="x.jsonl"))
    with pytest.raises(ConfigError, match="'advantage_group': choose prompt or pair"):
        check_recipe(GRPORecipe(dataset="x.jsonl", advantage_group="order"))
    with pytest.raises(ConfigError, match="rollout_batch_prompts"):
        check_recipe(GRPORecipe(dataset="x.jsonl", advantage_group="pair", rollout_batch_prompts=3))
