"""From pairwise matches to standings: what one comparison decided (``Match``), what a tournament gives back
for one candidate set (``TournamentResult``), and the scorings that turn matches into one number per
candidate (win rate, Bradley-Terry, Elo, Bradley-Terry on probabilities). rmr1.tournament runs the matches;
the draw rules are in its module doc.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rmr1.errors import ConfigError
from rmr1.types import Judgment

SCORINGS = ("win_rate", "bradley_terry", "elo", "bradley_terry_prob")
ELO_K = 32.0
ELO_START = 1000.0


@dataclass(frozen=True)
class Match:
    """One comparison of candidates ``i`` and ``j`` (``i`` played the chosen role)."""

    i: int
    j: int
    winner: int | None  # None: a draw (see the module doc)
    judgments: tuple[Judgment, ...]
    round: int = 0

    @property
    def unparsed(self) -> bool:
        """No judgment of this comparison had a parsed verdict."""
        return all(j.correct is None for j in self.judgments)

    def points(self, k: int) -> float:
        """What candidate ``k`` earned from this match: 1 win, 0 loss, 0.5 draw."""
        if self.winner is None:
            return 0.5
        return 1.0 if self.winner == k else 0.0


@dataclass(frozen=True)
class TournamentResult:
    """The outcome for one candidate set. Per-candidate tuples are indexed like ``CandidateSet.responses``."""

    method: str
    scoring: str
    ranking: tuple[int, ...]  # candidate indices, best first
    scores: tuple[
        float, ...
    ]  # by ``scoring``: win rate, Bradley-Terry log-strength, Elo rating, rounds share
    rewards: tuple[float, ...]  # one scalar per candidate in [-1, 1]
    wins: tuple[float, ...]  # draws count half
    matches: tuple[Match, ...]
    coin_flips: int = 0
    rounds: int = 0  # knockout: rounds played (the champion got through all of them)

    @property
    def winner(self) -> int:
        return self.ranking[0]

    @property
    def comparisons(self) -> int:
        return len(self.matches)

    @property
    def calls(self) -> int:
        return sum(len(m.judgments) for m in self.matches)

    @property
    def draws(self) -> int:
        return sum(1 for m in self.matches if m.winner is None)

    @property
    def unparsed(self) -> int:
        return sum(1 for m in self.matches if m.unparsed)


def win_rates(n: int, matches: Sequence[Match]) -> list[float]:
    wins, played = [0.0] * n, [0] * n
    for m in matches:
        for k in (m.i, m.j):
            wins[k] += m.points(k)
            played[k] += 1
    return [w / p if p else 0.5 for w, p in zip(wins, played, strict=True)]


def bradley_terry(
    n: int, matches: Sequence[Match], *, prior: float = 0.5, iterations: int = 500
) -> list[float]:
    """Bradley-Terry log-strengths (mean 0) by Hunter's MM updates; draws count half a win each way.

    Each candidate also plays ``prior`` wins and ``prior`` losses against a virtual opponent of strength 1, so
    an unbeaten candidate keeps a finite strength and the scale is fixed.
    """
    w = [[0.0] * n for _ in range(n)]
    for m in matches:
        w[m.i][m.j] += m.points(m.i)
        w[m.j][m.i] += m.points(m.j)
    p = [1.0] * n
    for _ in range(iterations):
        new = []
        for i in range(n):
            num = sum(w[i]) + prior
            den = sum((w[i][j] + w[j][i]) / (p[i] + p[j]) for j in range(n) if j != i) + 2 * prior / (
                p[i] + 1
            )
            new.append(num / den)
        done = max(abs(a - b) for a, b in zip(new, p, strict=True)) < 1e-10
        p = new
        if done:
            break
    return centred_logs(p)


def centred_logs(strengths: Sequence[float]) -> list[float]:
    """Bradley-Terry strengths as log-strengths with mean 0 (the fit fixes them only up to a common factor)."""
    logs = [math.log(x) for x in strengths]
    mean = sum(logs) / len(logs)
    return [x - mean for x in logs]


def elo(n: int, matches: Sequence[Match], *, k: float = ELO_K, start: float = ELO_START) -> list[float]:
    """Elo ratings after one pass over the matches in the order they were judged (Elo is order-dependent)."""
    r = [start] * n
    for m in matches:
        expected = 1.0 / (1.0 + 10 ** ((r[m.j] - r[m.i]) / 400.0))
        delta = k * (m.points(m.i) - expected)
        r[m.i] += delta
        r[m.j] -= delta
    return r


def score_matches(scoring: str, n: int, matches: Sequence[Match]) -> list[float]:
    """One score per candidate by ``scoring`` (one of ``SCORINGS``)."""
    if scoring == "win_rate":
        return win_rates(n, matches)
    if scoring == "bradley_terry":
        return bradley_terry(n, matches)
    if scoring == "elo":
        return elo(n, matches)
    if scoring == "bradley_terry_prob":  # on P(i beats j) where read, else on the votes
        from rmr1.rewards.probabilistic import bradley_terry_probabilities, outcomes_of

        return bradley_terry_probabilities(n, outcomes_of(matches))
    raise ConfigError(f"unknown scoring {scoring!r}; choose one of {', '.join(SCORINGS)}")


def wins_of(n: int, matches: Sequence[Match]) -> tuple[float, ...]:
    """Each candidate's wins, draws counting half."""
    wins = [0.0] * n
    for m in matches:
        wins[m.i] += m.points(m.i)
        wins[m.j] += m.points(m.j)
    return tuple(wins)


def ranked(scores: Sequence[float]) -> tuple[int, ...]:
    """Candidate indices by score, best first; ties: lower index first."""
    return tuple(sorted(range(len(scores)), key=lambda k: (-scores[k], k)))


def reference_reward(match: Match) -> float:
    """+1 when the response beat the reference, -1 when it lost, 0 for a draw."""
    if match.winner is None:
        return 0.0
    return 1.0 if match.winner == match.i else -1.0


def check_scoring(scoring: str) -> None:
    """Refuse an unknown scoring before any comparison is judged."""
    if scoring not in SCORINGS:
        raise ConfigError(f"unknown scoring {scoring!r}; choose one of {', '.join(SCORINGS)}")


__all__ = [
    "ELO_K",
    "ELO_START",
    "SCORINGS",
    "Match",
    "TournamentResult",
    "bradley_terry",
    "centred_logs",
    "check_scoring",
    "elo",
    "ranked",
    "reference_reward",
    "score_matches",
    "win_rates",
    "wins_of",
]
