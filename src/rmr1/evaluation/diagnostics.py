"""Diagnostics beside the official numbers, computed in one streaming pass over the judgments.

- ``parse_failure_rate``: judgments with no verdict (failed calls included) / judgments.
- ``truncation_rate``: judgments that ran out of tokens (``finish_reason == "length"``) / judgments.
- ``error_rate``: failed calls / judgments.
- ``too_long``: calls whose prompt did not fit the model's window (``finish_reason == "too_long"``, never
  sent; unparsed, so also in ``parse_failure_rate``). A count, present only when there are some.
- ``position_consistency``: over pairs judged in both orders where each order reached a decision (majority
  over its samples, ``rmr1.judge.vote``), the share whose two decisions picked the same response. Pairs where
  an order has no decision are left out (they already count as parse failures); null when none qualifies.
- ``a_rate``: parsed verdicts saying A / parsed verdicts.
- ``mean_completion_tokens``: over calls that returned (failed and unsent calls have no tokens).
- ``forced_rate`` (runs with ``--verdict forced``): judgments whose verdict was forced / judgments. Forced
  verdicts count as parsed here (``parse_failure_rate``, ``a_rate``, ``position_consistency``); the scores see
  them as unparsed unless ``score_forced``.
- ``tie_rate`` (pointwise runs with ties only): pairs whose two ratings were equal / judgments. A tie has no
  verdict but is not a parse failure, so it is counted here and not in ``parse_failure_rate``.
- ``ece``, ``brier`` (only when probabilities or votes exist): calibration of each decision's confidence, see
  ``Confidence`` and ``rmr1.stats`` (10 equal-width bins of top-label confidence for ECE).

Memory stays flat: a pair's judgments are held only until both orders have all their samples, which in a run's
log is a few lines later.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from rmr1 import stats
from rmr1.judge import vote
from rmr1.types import Judgment
from rmr1.verdicts import TIE


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


class Confidence:
    """P(chosen wins) per decision (item, pair, order), for calibration.

    From ``p_a`` when the decision's samples carry it (the mean over those samples, turned round when the
    preferred response was shown as B); otherwise, when voting (``votes``), the share of parsed samples that
    picked the preferred response. A decision with neither has no confidence and is left out. Only four numbers
    are kept per decision, never the judgments.
    """

    def __init__(self, *, votes: bool) -> None:
        self.votes = votes
        self._units: dict[
            tuple[str, int, str], list[float]
        ] = {}  # [sum of P(chosen), samples with p_a, right, wrong]

    def add(self, j: Judgment) -> None:
        if j.p_a is None and not self.votes:
            return
        unit = self._units.setdefault((j.item_id, j.pair, j.order), [0.0, 0.0, 0.0, 0.0])
        if j.p_a is not None:
            unit[0] += j.p_a if j.order == "AB" else 1.0 - j.p_a
            unit[1] += 1
        if j.correct is not None:
            unit[2 if j.correct else 3] += 1

    def values(self) -> list[float]:
        out = []
        for p_sum, p_count, right, wrong in self._units.values():
            if p_count:
                out.append(p_sum / p_count)
            elif self.votes and right + wrong:
                out.append(right / (right + wrong))
        return out

    def result(self) -> dict[str, Any]:
        values = self.values()
        if not values:
            return {}
        return {"ece": stats.ece(values), "brier": stats.brier(values)}


class Diagnostics:
    """Feed judgments with ``add``; read the numbers with ``result``."""

    def __init__(self, *, both_orders: bool, samples: int, forced: bool = False) -> None:
        self.both_orders = both_orders
        self.report_forced = forced
        self.forced = 0
        self.samples = samples
        self.count = self.unparsed = self.truncated = self.errors = self.too_long = 0
        self.parsed = self.said_a = 0
        self.tokens = self.returned = 0
        self.ties = 0
        self.consistent = self.compared = 0
        self._pending: dict[tuple[str, int], list[Judgment]] = {}
        self.confidence = Confidence(votes=samples > 1)

    def add(self, j: Judgment) -> None:
        self.count += 1
        self.forced += j.forced
        self.confidence.add(j)
        if j.verdict is None and j.parse_error == TIE and j.completion_b is not None:
            self.ties += 1
        elif j.verdict is None:
            self.unparsed += 1
        else:
            self.parsed += 1
            self.said_a += j.verdict == "A"
        if j.finish_reason == "length":
            self.truncated += 1
        if j.finish_reason == "error":
            self.errors += 1
        elif j.finish_reason == "too_long":
            self.too_long += 1
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
        ties = {"tie_rate": _share(self.ties, self.count)} if self.ties else {}
        too_long = {"too_long": self.too_long} if self.too_long else {}
        return {
            "judgments": self.count,
            "parse_failure_rate": _share(self.unparsed, self.count),
            "truncation_rate": _share(self.truncated, self.count),
            "error_rate": _share(self.errors, self.count),
            "position_consistency": _share(self.consistent, self.compared),
            "a_rate": _share(self.said_a, self.parsed),
            "mean_completion_tokens": (self.tokens / self.returned) if self.returned else None,
            **extra,
            **self.confidence.result(),
            **ties,
            **too_long,
        }

    def tap(self, judgments: Iterable[Judgment]) -> Iterator[Judgment]:
        """Pass judgments through while counting them, so scoring and diagnostics share one read."""
        for j in judgments:
            self.add(j)
            yield j


__all__ = ["Confidence", "Diagnostics"]
