"""Many candidates, one pairwise judge: knockout, round robin, best-of-n, scoring against a reference, and the
mapping from pairwise verdicts to one scalar per candidate (what an RL trainer needs).

Every comparison is a ``PreferencePair`` with candidate ``i`` as ``chosen`` and ``j`` as ``rejected``, judged
by a ``Judge`` under its own protocol (one seeded order, or both orders) and voting, so ``correct=True`` means
``i`` won. All comparisons of one round, across every candidate set in the call, go to the backend in one
``generate`` call.

Draws (the rule; every result counts them):
- a comparison whose vote names no winner is a *draw*: either no verdict could be parsed at all (counted in
  ``unparsed``) or the votes split evenly, e.g. the two orders disagree (position bias);
- round robin: a draw gives each side half a win;
- knockout: a draw is settled by a coin flip seeded by (seed, item id, i, j), counted in ``coin_flips``;
- against a reference: a win scores +1, a loss -1, a draw 0.

Costs: knockout makes exactly n-1 comparisons, round robin n(n-1)/2; each comparison is one backend request
per order and sample (x2 under the ``both`` protocol).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from rmr1 import pointwise
from rmr1.errors import ConfigError
from rmr1.judge import Judge, vote
from rmr1.probability import probe_batch
from rmr1.standings import (
    SCORINGS,
    Match,
    TournamentResult,
    bradley_terry,
    check_scoring,
    elo,
    ranked,
    reference_reward,
    score_matches,
    win_rates,
    wins_of,
)
from rmr1.types import CandidateSet, Judgment, Message, PreferencePair

METHODS = ("knockout", "round_robin", "rating")  # rating: a pointwise judge's 1-10 ratings (rmr1.pointwise)


# --- judging one round ------------------------------------------------------------------------------------


def _pair(cset: CandidateSet, i: int, j: int) -> PreferencePair:
    n = len(cset.responses)
    return PreferencePair(
        cset.item_id, cset.context, cset.responses[i], cset.responses[j], cset.subset, pair=i * n + j
    )


def judge_round(judge: Judge, pairs: Sequence[PreferencePair]) -> list[tuple[Judgment, ...]]:
    """Judge every pair with one backend call; the judgments of each pair, in pair order."""
    if judge.config.mode == "pointwise":  # decisions from ratings, each response rated once
        return pointwise.judge_round(judge, pairs)
    plans = [judge.plan(p) for p in pairs]
    calls = [c for plan in plans for c in plan]
    if not calls:
        return [() for _ in pairs]
    requests = [c.request for c in calls]
    completions = judge.backend.generate(requests)
    if len(completions) != len(calls):
        raise RuntimeError(f"backend returned {len(completions)} completions for {len(calls)} requests")
    cfg = judge.config
    probes = probe_batch(judge.backend, requests, completions, cfg.verdict, cfg.parse_mode)
    judged = iter(
        judge.to_judgment(c, comp, pr) for c, comp, pr in zip(calls, completions, probes, strict=True)
    )
    return [tuple(next(judged) for _ in plan) for plan in plans]


def _match(i: int, j: int, judgments: tuple[Judgment, ...], round_: int) -> Match:
    outcome = vote(judgments).correct
    winner = None if outcome is None else (i if outcome else j)
    return Match(i, j, winner, judgments, round_)


def _coin(seed: int, item_id: str, i: int, j: int) -> int:
    digest = hashlib.sha256(f"coin\x1f{seed}\x1f{item_id}\x1f{i}\x1f{j}".encode()).digest()
    return i if digest[0] % 2 == 0 else j


def _permutation(seed: int, item_id: str, n: int) -> list[int]:
    """A seeded shuffle of range(n) that depends only on (seed, item id, n)."""

    def key(k: int) -> bytes:
        return hashlib.sha256(f"draw\x1f{seed}\x1f{item_id}\x1f{k}".encode()).digest()

    return sorted(range(n), key=key)


# --- tournaments ------------------------------------------------------------------------------------------


def round_robin(
    judge: Judge, sets: Sequence[CandidateSet], *, scoring: str = "win_rate"
) -> list[TournamentResult]:
    """Every pair of candidates once (n(n-1)/2 comparisons per set), all sets in one backend call.

    ``rewards`` are 2 * win rate - 1 whatever the ``scoring``; ``ranking`` follows ``scores`` (ties: lower
    index first).
    """
    check_scoring(scoring)
    index = [
        (s, i, j)
        for s, cset in enumerate(sets)
        for i in range(len(cset.responses))
        for j in range(i + 1, len(cset.responses))
    ]
    judged = judge_round(judge, [_pair(sets[s], i, j) for s, i, j in index])
    per_set: list[list[Match]] = [[] for _ in sets]
    for (s, i, j), judgments in zip(index, judged, strict=True):
        per_set[s].append(_match(i, j, judgments, 0))
    results = []
    for cset, matches in zip(sets, per_set, strict=True):
        n = len(cset.responses)
        scores = score_matches(scoring, n, matches)
        rewards = tuple(2.0 * r - 1.0 for r in win_rates(n, matches))
        results.append(
            TournamentResult(
                "round_robin",
                scoring,
                ranked(scores),
                tuple(scores),
                rewards,
                wins_of(n, matches),
                tuple(matches),
            )
        )
    return results


@dataclass
class _Bracket:
    cset: CandidateSet
    draw: list[int]  # the seeded bracket order
    alive: list[int]
    survived: list[int]  # rounds each candidate got through
    matches: list[Match]
    coin_flips: int = 0

    def next_round(self) -> list[tuple[int, int]]:
        return [(self.alive[k], self.alive[k + 1]) for k in range(0, len(self.alive) - 1, 2)]


def knockout(
    judge: Judge, sets: Sequence[CandidateSet], *, seed: int | None = None
) -> list[TournamentResult]:
    """Single elimination: exactly n-1 comparisons per set; round r of every set goes out in one backend call.

    The bracket is a seeded shuffle of the candidates; with an odd number left, the last one gets a bye.
    ``scores`` are the share of rounds a candidate got through (the champion 1.0), ``rewards`` 2 * score - 1,
    so candidates knocked out in the same round tie.
    """
    seed = judge.config.seed if seed is None else seed
    brackets = []
    for c in sets:
        draw = _permutation(seed, c.item_id, len(c.responses))
        brackets.append(_Bracket(c, draw, list(draw), [0] * len(c.responses), []))
    round_ = 0
    while True:
        planned = [(b, i, j) for b in brackets for i, j in b.next_round()]
        if not planned:
            break
        judged = judge_round(judge, [_pair(b.cset, i, j) for b, i, j in planned])
        for (b, i, j), judgments in zip(planned, judged, strict=True):
            match = _match(i, j, judgments, round_)
            if match.winner is None:
                b.coin_flips += 1
            b.matches.append(match)
        for b in brackets:
            if len(b.alive) > 1:  # a finished bracket waits for the others
                b.alive = _advance(b, seed, round_)
        round_ += 1
    return [_knockout_result(b) for b in brackets]


def _advance(b: _Bracket, seed: int, round_: int) -> list[int]:
    outcome = {(m.i, m.j): m.winner for m in b.matches if m.round == round_}
    nxt = []
    for k in range(0, len(b.alive), 2):
        if k + 1 == len(b.alive):
            nxt.append(b.alive[k])  # a bye
            continue
        i, j = b.alive[k], b.alive[k + 1]
        winner = outcome[(i, j)]
        nxt.append(winner if winner is not None else _coin(seed, b.cset.item_id, i, j))
    for k in nxt:
        b.survived[k] += 1
    return nxt


def _knockout_result(b: _Bracket) -> TournamentResult:
    n = len(b.cset.responses)
    rounds = max(b.survived) or 1
    scores = tuple(s / rounds for s in b.survived)
    rewards = tuple(2.0 * s - 1.0 for s in scores)
    # Candidates out in the same round tie; their bracket positions order them, so the ranking stays seeded.
    position = {k: pos for pos, k in enumerate(b.draw)}
    ranking = tuple(sorted(range(n), key=lambda k: (-scores[k], position[k])))
    return TournamentResult(
        "knockout",
        "rounds",
        ranking,
        scores,
        rewards,
        wins_of(n, b.matches),
        tuple(b.matches),
        b.coin_flips,
        rounds,
    )


def rank(
    judge: Judge, cset: CandidateSet, *, method: str = "knockout", scoring: str = "win_rate"
) -> TournamentResult:
    """Rank one candidate set by ``method`` (knockout or round_robin)."""
    return run_tournaments(judge, [cset], method=method, scoring=scoring)[0]


def run_tournaments(
    judge: Judge, sets: Sequence[CandidateSet], *, method: str = "knockout", scoring: str = "win_rate"
) -> list[TournamentResult]:
    if method == "knockout":
        return knockout(judge, sets)
    if method == "round_robin":
        return round_robin(judge, sets, scoring=scoring)
    if method == "rating":
        return pointwise.rating_tournaments(judge, sets)
    raise ConfigError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")


def best_of_n(judge: Judge, cset: CandidateSet, *, method: str = "knockout") -> int:
    """The index of the best candidate (knockout: n-1 comparisons; round robin: n(n-1)/2)."""
    return rank(judge, cset, method=method).winner


def against_reference(
    judge: Judge, context: Sequence[Message], responses: Sequence[str], reference: str, *, item_id: str = "0"
) -> list[Match]:
    """Each response judged against ``reference``: ``Match.winner`` is 0 (the response), 1 (the reference) or
    None (a draw); the reward is ``reference_reward(match)``."""
    pairs = [PreferencePair(item_id, tuple(context), r, reference, pair=k) for k, r in enumerate(responses)]
    return judge_matches(judge, pairs)


def judge_matches(judge: Judge, pairs: Sequence[PreferencePair]) -> list[Match]:
    """Judge pairs with one backend call: one Match per pair, candidate 0 = ``chosen``, 1 = ``rejected``."""
    return [_match(0, 1, js, 0) for js in judge_round(judge, pairs)]


__all__ = [
    "METHODS",
    "SCORINGS",
    "Match",
    "TournamentResult",
    "against_reference",
    "best_of_n",
    "bradley_terry",
    "elo",
    "judge_matches",
    "judge_round",
    "knockout",
    "rank",
    "reference_reward",
    "round_robin",
    "run_tournaments",
    "win_rates",
]
