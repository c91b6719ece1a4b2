"""GRPO advantages with both orders of a pair in one group (``advantage_group="pair"``).

TRL groups a prompt's ``n`` rollouts and takes each rollout's advantage against its group's mean. A judge prompt
comes in two orders (the preferred response shown as A, then as B), and per-prompt groups cannot see a judge
that answers one letter whatever the order: each order's group is unanimous (all right in one order, all wrong
in the other), so every advantage is zero and GRPO has no way out (docs/design/grpo-stalls.md). With the ``2n``
rollouts of both orders in one group, the same judge gets +1 for the letter that was right in its order and -1
for the letter that was wrong in the other: the gradient points away from the position bias. When the judge is
position-consistent nothing changes in kind: a pair it always gets right (or always wrong) is still a zero-
advantage group.

The baseline is the mean reward of the pair's ``2n`` rollouts (the scale, by TRL's ``scale_rewards``: the pair's
std for "group", the batch's for "batch", none for "none"). It needs both orders of each pair in the same
generation batch, which the paired layout gives (rmr1.train.consistency); a rollout whose pair has one order
only in the batch is grouped with its own order's rollouts, as in TRL.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

EPS = 1e-4  # TRL's: added to the std before dividing


def pair_advantages(rewards: Any, keys: Sequence[str], scale: str = "group") -> tuple[Any, float]:
    """(advantage per rollout, share of rollouts in a group with no reward spread) for ``rewards``, a 1-D
    float tensor with NaN for unscorable rollouts, grouped by ``keys`` (one per rollout: the pair id).

    Unscorable rollouts are left out of their group's mean and std and get advantage 0."""
    import torch

    if len(keys) != rewards.numel():
        raise ValueError(f"{len(keys)} pair keys for {rewards.numel()} rewards")
    groups: dict[str, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        groups[key].append(i)
    mean = torch.zeros_like(rewards)
    std = torch.zeros_like(rewards)
    for members in groups.values():
        index = torch.tensor(members, device=rewards.device)
        values = rewards[index]
        live = values[~torch.isnan(values)]
        mean[index] = live.mean() if live.numel() else 0.0
        std[index] = live.std(unbiased=True) if live.numel() > 1 else 0.0
    zero_spread = torch.isclose(std, torch.zeros_like(std)).float().mean().item()
    if scale == "batch":
        live = rewards[~torch.isnan(rewards)]
        std = (live.std(unbiased=True) if live.numel() > 1 else torch.tensor(0.0)).expand_as(rewards)
    advantages = rewards - mean
    if scale != "none":
        advantages = advantages / (std + EPS)
    return torch.nan_to_num(advantages, nan=0.0), zero_spread


def pair_baseline_trainer(trainer_cls: type) -> type:
    """A subclass of TRL's GRPOTrainer whose advantages are taken over both orders of each pair.

    The rewards are those TRL computed and gathered (all processes); the pair ids are gathered in the same
    order, so the grouping holds however the pairs fall across processes."""

    class PairBaselineGRPOTrainer(trainer_cls):  # type: ignore[misc, valid-type]
        def _calculate_rewards(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
            from accelerate.utils import gather_object

            rewards_per_func = super()._calculate_rewards(inputs, *args, **kwargs)
            self._pair_rewards = rewards_per_func
            self._pair_keys = gather_object([str(row["pair_id"]) for row in inputs])
            return rewards_per_func

        def _generate_and_score_completions(self, inputs: Any) -> Any:
            import torch

            output = super()._generate_and_score_completions(inputs)
            per_func = self._pair_rewards
            weights = self.reward_weights.to(per_func.device).unsqueeze(0)
            rewards = (per_func * weights).nansum(dim=1)
            rewards[torch.isnan(per_func).all(dim=1)] = torch.nan
            advantages, zero_spread = pair_advantages(rewards, self._pair_keys, self.scale_rewards)
            local = output["advantages"]
            start = self.accelerator.process_index * len(local)
            output["advantages"] = advantages[start : start + len(local)].to(local.device, local.dtype)
            mode = "train" if self.model.training else "eval"
            self._metrics[mode][PAIR_ZERO_STD].append(zero_spread)
            return output

    return PairBaselineGRPOTrainer


PAIR_ZERO_STD = "frac_pair_reward_zero_std"  # the share of rollouts whose pair group had no reward spread

__all__ = ["PAIR_ZERO_STD", "pair_advantages", "pair_baseline_trainer"]
