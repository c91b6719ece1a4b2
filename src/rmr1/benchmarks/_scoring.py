"""From judgments to per-pair outcomes: the part of scoring every benchmark shares.

Decision unit = (item_id, pair, order). Its samples are folded by majority vote (``rmr1.judge.vote``); a tie
or no parsed verdict leaves the decision undecided (``None``). A pair's value is the mean over its judged
orders, an undecided order counting ``unparsed_score``. Benchmarks with their own rule for undecided orders
(JudgeBench) read ``decisions`` directly.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rmr1.errors import InputError
from rmr1.judge import majority
from rmr1.types import Judgment

ORDERS = ("AB", "BA")


@dataclass(frozen=True)
class PairOutcome:
    """One compared pair: for each judged order, whether the preferred response won (None: undecided)."""

    item_id: str
    pair: int
    subset: str
    decisions: Mapping[str, bool | None]

    def value(self, unparsed_score: float) -> float:
        scores = [unparsed_score if d is None else float(d) for d in self.decisions.values()]
        return sum(scores) / len(scores)


def pair_outcomes(judgments: Iterable[Judgment]) -> list[PairOutcome]:
    """Group judgments by pair and order, vote each order; pairs come back sorted by (item_id, pair)."""
    # Only vote tallies are kept (right, wrong, unparsed per order), so memory grows with the number of pairs,
    # a few dozen bytes each, and never with the traces' text or the number of samples.
    tallies: dict[tuple[str, int], list[int]] = {}
    subsets: dict[tuple[str, int], str] = {}
    for j in judgments:
        if j.order not in ORDERS:
            raise InputError(
                f"must be AB or BA, got {j.order!r}", source=f"judgment of item {j.item_id}", field="order"
            )
        key = (sys.intern(str(j.item_id)), int(j.pair))
        tally = tallies.get(key)
        if tally is None:
            tally = tallies[key] = [0] * 6
        slot = 3 * ORDERS.index(j.order) + (2 if j.correct is None else 0 if j.correct else 1)
        tally[slot] += 1
        if j.subset or key not in subsets:
            subsets[key] = sys.intern(j.subset or "")
    out = []
    for key in sorted(tallies):
        tally = tallies[key]
        decisions = {
            order: majority(tally[3 * k], tally[3 * k + 1])
            for k, order in enumerate(ORDERS)
            if tally[3 * k] + tally[3 * k + 1] + tally[3 * k + 2]
        }
        out.append(PairOutcome(key[0], key[1], subsets[key], decisions))
    return out


def by_item(outcomes: Iterable[PairOutcome]) -> dict[str, list[PairOutcome]]:
    items: dict[str, list[PairOutcome]] = defaultdict(list)
    for outcome in outcomes:
        items[outcome.item_id].append(outcome)
    return dict(items)


def mean(values: Iterable[float | None]) -> float | None:
    """Mean of the values that exist; None when there are none."""
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def item_value(pairs: list[PairOutcome], unparsed_score: float) -> float:
    """An item's value: the mean over its pairs."""
    return sum(p.value(unparsed_score) for p in pairs) / len(pairs)


def won_outright(outcome: PairOutcome) -> bool:
    """Every judged order picked the preferred response: no split, no undecided order (no partial credit)."""
    return bool(outcome.decisions) and all(d is True for d in outcome.decisions.values())


def accuracy_by_subset(outcomes: Iterable[PairOutcome], unparsed_score: float) -> dict[str, float]:
    """Per-subset mean of item values, an item's value being the mean over its pairs."""
    per_subset: dict[str, list[float]] = defaultdict(list)
    for pairs in by_item(outcomes).values():
        per_subset[pairs[0].subset].append(item_value(pairs, unparsed_score))
    return {name: sum(v) / len(v) for name, v in sorted(per_subset.items())}
