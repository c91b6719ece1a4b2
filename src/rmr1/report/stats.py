"""What the report shows, gathered in one streaming pass over judgments.jsonl.

Counts per subset and per order, completion lengths per outcome, vote confidence per decision (when voting),
P(chosen wins) per decision for calibration (when probabilities or votes exist), and a bounded sample of
traces for the browser. The sample takes traces from each outcome in turn (correct, wrong, unparsed), so wrong
and unparsed traces are still there to read in a large, mostly correct run.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from rmr1.evaluation.diagnostics import Confidence
from rmr1.judge import vote
from rmr1.types import Judgment

OUTCOMES = ("correct", "wrong", "unparsed")


def outcome(j: Judgment) -> str:
    if j.verdict is None or j.correct is None:
        return "unparsed"
    return "correct" if j.correct else "wrong"


@dataclass
class Tally:
    n: int = 0
    correct: int = 0
    wrong: int = 0
    unparsed: int = 0
    said_a: int = 0

    def add(self, j: Judgment, kind: str) -> None:
        self.n += 1
        setattr(self, kind, getattr(self, kind) + 1)
        self.said_a += j.verdict == "A"

    @property
    def parsed(self) -> int:
        return self.correct + self.wrong


@dataclass
class Shown:
    """One judgment as the trace browser shows it (text already cut to the report's limit)."""

    index: int
    judgment: Judgment
    cut: int  # characters left out of the shown text


@dataclass
class ReportStats:
    samples: int = 1
    cap: int = 2000
    max_chars: int = 12000
    total: int = 0
    by_subset: dict[str, Tally] = field(default_factory=dict)
    by_order: dict[str, Tally] = field(default_factory=dict)
    lengths: dict[str, array] = field(default_factory=lambda: {k: array("l") for k in OUTCOMES})
    confidence: Counter[tuple[float, bool]] = field(default_factory=Counter)
    _pool: dict[str, list[Shown]] = field(default_factory=lambda: {k: [] for k in OUTCOMES})
    _units: dict[tuple[str, int, str], list[Judgment]] = field(default_factory=dict)
    calibration: Confidence = field(init=False)

    def __post_init__(self) -> None:
        self.calibration = Confidence(votes=self.samples > 1)

    def add(self, j: Judgment) -> None:
        self.calibration.add(j)
        kind = outcome(j)
        self.by_subset.setdefault(j.subset, Tally()).add(j, kind)
        self.by_order.setdefault(j.order, Tally()).add(j, kind)
        if j.finish_reason != "error":
            self.lengths[kind].append(j.completion_tokens)
        pool = self._pool[kind]
        if len(pool) < self.cap:
            text = j.completion
            cut = max(0, len(text) - self.max_chars)
            if cut:
                j = Judgment(**{**j.to_dict(), "completion": text[: self.max_chars]})
            pool.append(Shown(self.total, j, cut))
        self.total += 1
        if self.samples > 1:
            unit = self._units.setdefault((j.item_id, j.pair, j.order), [])
            unit.append(j)
            if len(unit) == self.samples:
                self._vote(self._units.pop((j.item_id, j.pair, j.order)))

    def _vote(self, unit: list[Judgment]) -> None:
        v = vote(unit)
        if v.correct is not None:
            self.confidence[(round(v.confidence, 3), v.correct)] += 1

    def finish(self) -> None:
        for unit in self._units.values():
            self._vote(unit)
        self._units.clear()

    def shown(self) -> list[Shown]:
        """Up to ``cap`` traces, taking from each outcome in turn, in log order."""
        pools = {k: list(v) for k, v in self._pool.items()}
        picked: list[Shown] = []
        while len(picked) < self.cap and any(pools.values()):
            for kind in OUTCOMES:
                if pools[kind] and len(picked) < self.cap:
                    picked.append(pools[kind].pop(0))
        return sorted(picked, key=lambda s: s.index)


def gather(judgments: Iterable[Judgment], *, samples: int, cap: int, max_chars: int) -> ReportStats:
    stats = ReportStats(samples=samples, cap=cap, max_chars=max_chars)
    for j in judgments:
        stats.add(j)
    stats.finish()
    return stats


__all__ = ["OUTCOMES", "ReportStats", "Shown", "Tally", "gather", "outcome"]
