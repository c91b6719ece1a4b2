"""Diagnostics beside the official numbers, computed in one streaming pass over the judgments.

- ``parse_failure_rate``: judgments with no verdict (failed calls included) / judgments.
- ``truncation_rate``: judgments that ran out of tokens (``finish_reason == "length"``) / judgments.
- ``error_rate``: failed calls / judgments.
- ``position_consistency``: over pairs judged in both orders where each order reached a decision (majority
  over its samples, ``rmr1.judge.vote``), the share whose two decisions picked the same response. Pairs where
  an order has no decision are left out (they already count as parse failures); null when none qualifies.
- ``a_rate``: parsed verdicts saying A / parsed verdicts.
- ``mean_completion_tokens``: over calls that returned (failed calls have no tokens).
- ``forced_rate`` (runs with ``--verdict forced``): judgments whose verdict was forced / judgments. Forced
  verdicts count as parsed here (``parse_failure_rate``, ``a_rate``, ``position_consistency``); the scores see
  them as unparsed unless ``score_forced``.

Memory stays flat: a pair's judgments are held only until both orders have all their samples, which in a run's
log is a few lines later.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from rmr1.judge import vote
from rmr1.types import Judgment


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


class Diagnostics:
    """Feed judgments with ``add``; read the numbers with ``result``."""

    def __init__(self, *, both_orders: bool, samples: int, forced: bool = False) -> None:
        self.both_orders = both_orders
        self.report_forced = forced
        self.forced = 0
        self.samples = samples
        self.count = self.unparsed = self.truncated = self.errors = 0
        self.parsed = self.said_a = 0
        self.tokens = self.returned = 0
        self.consistent = self.compared = 0
        self._pending: dict[tuple[str, int], list[Judgment]] = {}

    def add(self, j: Judgment) -> None:
        self.count += 1
        self.forced += j.forced
        if j.verdict is None:
            self.unparsed += 1
        else:
            self.parsed += 1
            self.said_a += j.verdict == "A"
        if j.finish_reason == "length":
            self.truncated += 1
        if j.finish_reason == "error":
            self.errors += 1
        else:
            self.returned += 1
            self.tokens += j.completion_tokens
        if self.both_orders:
            group = self._pending.setdefault((j.item_id, j.pair), [])
            group.append(j)
            if len(group) == 2 * self.samples:
                self._compare(self._pending.pop((j.item_id, j.pair)))

    def _compare(self, group: list[Judgment]) -> None:
        ab = vote([j for j in group if j.order == "AB"]).correct
        ba = vote([j for j in group if j.order == "BA"]).correct
        if ab is not None and ba is not None:
            self.compared += 1
            self.consistent += ab == ba

    def result(self) -> dict[str, Any]:
        for group in self._pending.values():  # pairs with missing samples: compare what is there
            self._compare(group)
        self._pending.clear()
        extra = {"forced_rate": _share(self.forced, self.count)} if self.report_forced else {}
        return {
            "judgments": self.count,
            "parse_failure_rate": _share(self.unparsed, self.count),
            "truncation_rate": _share(self.truncated, self.count),
            "error_rate": _share(self.errors, self.count),
            "position_consistency": _share(self.consistent, self.compared),
            "a_rate": _share(self.said_a, self.parsed),
            "mean_completion_tokens": (self.tokens / self.returned) if self.returned else None,
            **extra,
        }

    def tap(self, judgments: Iterable[Judgment]) -> Iterator[Judgment]:
        """Pass judgments through while counting them, so scoring and diagnostics share one read."""
        for j in judgments:
            self.add(j)
            yield j


__all__ = ["Diagnostics"]
