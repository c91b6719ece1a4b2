"""Rewards from verdict probabilities: Bradley-Terry fitted on pairwise P(i beats j).

Each comparison of a round robin gives one number ``P(i beats j)``: the mean over its judgments of the
order-corrected P(A) (``Judgment.p_preferred``: ``p_a`` when ``i`` was shown as A, ``1 - p_a`` when shown as B),
so with both orders the two reads are averaged and the position bias of each cancels. A comparison with no
probability read falls back to its vote: 1 win, 0 loss, 0.5 draw (so a judge without log-probabilities fits
Bradley-Terry on win rates).

The fit is the Bradley-Terry maximum likelihood with fractional wins (``w_ij = P(i beats j)``, Hunter's MM
updates, no prior), so with two candidates the score difference is exactly ``logit(p)``. Probabilities are
clamped to [``EPS``, 1 - ``EPS``] so a sure winner keeps a finite score. Scores are log-strengths with mean 0.

The reward of candidate k is its expected win rate against the rest of the group under the fitted model,
mapped to [-1, 1]: ``2 * mean_j sigmoid(s_k - s_j) - 1`` (two candidates: ``2p - 1`` and ``1 - 2p``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rmr1.standings import Match, centred_logs

EPS = 1e-3  # probabilities are clamped to [EPS, 1 - EPS] before the fit
_TOLERANCE = 1e-12
_ITERATIONS = 20_000

Outcome = tuple[int, int, float]  # (i, j, P(i beats j))


def match_probability(match: Match) -> float:
    """P(candidate ``i`` beats ``j``) from one comparison (see the module doc)."""
    probs = [p for p in (j.p_preferred for j in match.judgments) if p is not None]
    if probs:
        return sum(probs) / len(probs)
    return match.points(match.i)


def bradley_terry_probabilities(n: int, outcomes: Sequence[Outcome]) -> list[float]:
    """Bradley-Terry log-strengths (mean 0) from fractional pairwise wins; a candidate in no comparison gets 0."""
    wins = [[0.0] * n for _ in range(n)]
    for i, j, p in outcomes:
        p = min(1.0 - EPS, max(EPS, p))
        wins[i][j] += p
        wins[j][i] += 1.0 - p
    strength = [1.0] * n
    for _ in range(_ITERATIONS):
        new = []
        for i in range(n):
            games = [(k, wins[i][k] + wins[k][i]) for k in range(n) if k != i and wins[i][k] + wins[k][i] > 0]
            den = sum(g / (strength[i] + strength[k]) for k, g in games)
            new.append(sum(wins[i]) / den if den else strength[i])
        # Hunter's MM is scale-free: fix the scale each step so the tolerance means the same thing throughout.
        scale = math.exp(sum(math.log(x) for x in new) / n)
        new = [x / scale for x in new]
        done = max(abs(a - b) for a, b in zip(new, strength, strict=True)) < _TOLERANCE
        strength = new
        if done:
            break
    return centred_logs(strength)


def expected_win_rewards(scores: Sequence[float]) -> list[float]:
    """Each candidate's expected win rate against the others under the fitted model, mapped to [-1, 1]."""
    n = len(scores)
    if n < 2:
        return [0.0] * n
    return [
        2.0 * sum(1.0 / (1.0 + math.exp(scores[j] - scores[k])) for j in range(n) if j != k) / (n - 1) - 1.0
        for k in range(n)
    ]


def outcomes_of(matches: Sequence[Match]) -> list[Outcome]:
    return [(m.i, m.j, match_probability(m)) for m in matches]


__all__ = [
    "EPS",
    "Outcome",
    "bradley_terry_probabilities",
    "expected_win_rewards",
    "match_probability",
    "outcomes_of",
]
