"""GRPO stretches that taught nothing, found in a run's curves.

GRPO's advantage is a rollout's reward less its group's mean, so a group whose rollouts all got the same reward
(TRL's ``frac_reward_zero_std`` = 1 for the step) contributes no gradient beyond the KL term. A few such steps
in a row mean the policy has stopped exploring: every sample agrees, right or wrong. When the judge's rollout
accuracy is also exactly one half at each of those steps and the data holds both orders of each pair, the
likely cause is a judge that gives the same letter whatever the order (it is right in one order and wrong in
the other, unanimously), which GRPO cannot leave by itself. A run reports such stretches as notes instead of
letting the held-out evaluation find out later.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rmr1.train.pair_baseline import PAIR_ZERO_STD

ZERO_STD = "frac_reward_zero_std"
ACCURACY = "judge/accuracy"
MIN_STEPS = 3  # one or two unanimous steps happen in healthy runs (a pair every sample gets right)


@dataclass(frozen=True)
class Stall:
    first: int  # the first and last step of the stretch, as logged
    last: int
    half_right: bool  # the judge's rollout accuracy was exactly 1/2 at every step of the stretch

    @property
    def steps(self) -> int:
        return self.last - self.first + 1

    def describe(self, both_orders: bool) -> str:
        text = (
            f"GRPO steps {self.first}-{self.last}: every group's rollouts got the same reward, so the "
            "advantages were zero and those steps taught nothing"
        )
        if self.half_right and both_orders:
            text += (
                "; rollout accuracy stayed at 50% with both orders of each pair, the mark of a judge that "
                "answers one position whatever the order"
            )
        return text + " (try a lower learning_rate, a larger num_generations or a stronger SFT checkpoint)"


def stalled_stretches(rows: Iterable[Mapping[str, Any]], min_steps: int = MIN_STEPS) -> list[Stall]:
    """The runs of at least ``min_steps`` consecutive logged steps in which every group was unanimous.

    ``rows`` are the curves a run logged (rmr1.train.runtime.read_curves); rows without
    ``frac_reward_zero_std`` (SFT, or the trainer's closing summary) are skipped. With pair groups
    (``advantage_group="pair"``) a group is the pair's rollouts in both orders, read from their own metric."""
    stalls: list[Stall] = []
    run: list[Mapping[str, Any]] = []
    for row in rows:
        key = PAIR_ZERO_STD if PAIR_ZERO_STD in row else ZERO_STD
        if key not in row:
            continue
        if float(row[key]) >= 1.0:
            run.append(row)
            continue
        stalls.extend(_close(run, min_steps))
        run = []
    stalls.extend(_close(run, min_steps))
    return stalls


def _close(run: list[Mapping[str, Any]], min_steps: int) -> list[Stall]:
    if len(run) < max(1, min_steps):
        return []
    half = all(row.get(ACCURACY) is not None and abs(float(row[ACCURACY]) - 0.5) < 1e-9 for row in run)
    return [Stall(int(run[0]["step"]), int(run[-1]["step"]), half)]


__all__ = ["MIN_STEPS", "Stall", "stalled_stretches"]
