"""The J1-style consistency reward for GRPO: a verdict earns +1 only when the judge is right in both orders.

Data: each pair appears twice, once with the preferred response shown as A (``order`` "AB") and once as B
("BA"), both rows sharing a ``pair_id`` (``rmr1 train data --both-orders`` writes them; preference pairs given
straight to ``rmr1 train grpo`` are expanded the same way).

Pairing rule, inside one call of the reward function (TRL calls it on one process's generation batch): the
rollouts are grouped by ``pair_id``; a rollout of order o is *right* by the paper's rule (``rm_r1_reward`` > 0:
the right verdict tag in the last 80 characters, not truncated), and its reward is

    +1  when it is right and more than half of the rollouts of the opposite order of the same pair are right,
    -1  otherwise.

A rollout whose pair has no rollouts of the opposite order in the call is *unpaired*: it gets the paper's rule
alone (+1 right, -1 wrong) and is counted in the ``judge/unpaired`` metric. To keep pairs together the GRPO
dataset is laid out pair by pair (AB then BA, the pairs shuffled with the recipe's seed) and TRL's own
shuffle is turned off; TRL then hands each generation batch whole prompts in dataset order, so on one process
every pair is complete when ``rollout_batch_prompts`` is even, and on W processes when each process's slice
(``per_device_batch_size`` completions) holds whole pairs, i.e. is a multiple of 2 x ``num_generations``.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from rmr1.errors import InputError

ORDERS = ("AB", "BA")


def consistency_rewards(
    right: Sequence[bool], pair_ids: Sequence[str], orders: Sequence[str]
) -> tuple[list[float], int]:
    """(reward per rollout, how many rollouts were unpaired) by the pairing rule in the module doc."""
    tally: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for ok, pid, order in zip(right, pair_ids, orders, strict=True):
        tally[(str(pid), order)].append(bool(ok))
    rewards, unpaired = [], 0
    for ok, pid, order in zip(right, pair_ids, orders, strict=True):
        other = tally.get((str(pid), "BA" if order == "AB" else "AB"), [])
        if not other:
            unpaired += 1
            rewards.append(1.0 if ok else -1.0)
        else:
            rewards.append(1.0 if ok and 2 * sum(other) > len(other) else -1.0)
    return rewards, unpaired


def paired_layout(records: Sequence[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """Records arranged pair by pair (AB, then BA), pairs in a seeded random order; pairs missing an order
    are dropped (e.g. one order's prompt ran over the length limit)."""
    by_pair: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for i, record in enumerate(records):
        if "pair_id" not in record or record.get("order") not in ORDERS:
            raise InputError(
                "reward=consistent and paired_orders need both orders of each pair with pair_id and order columns "
                "(build the data with `rmr1 train data --both-orders`)",
                line=i + 1,
                field="pair_id",
            )
        by_pair[str(record["pair_id"])][record["order"]] = record
    complete = sorted(pid for pid, orders in by_pair.items() if len(orders) == 2)
    random.Random(seed).shuffle(complete)
    return [by_pair[pid][order] for pid in complete for order in ORDERS]


__all__ = ["ORDERS", "consistency_rewards", "paired_layout"]
