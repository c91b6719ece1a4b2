"""Bradley-Terry on pairwise probabilities: hand-computable fits, order correction, and the reward method."""

from __future__ import annotations

import math

import pytest

from rmr1.backends.mock import MockBackend
from rmr1.judge import Judge, JudgeConfig
from rmr1.rewards import Group, score_groups
from rmr1.rewards.probabilistic import (
    EPS,
    bradley_terry_probabilities,
    expected_win_rewards,
    match_probability,
)
from rmr1.tournament import Match
from rmr1.types import GenerationRequest, Judgment, Message


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


@pytest.mark.parametrize("p", [0.5, 0.8, 0.3, 0.97])
def test_two_candidates_score_difference_is_logit_p(p: float) -> None:
    s = bradley_terry_probabilities(2, [(0, 1, p)])
    assert s[0] - s[1] == pytest.approx(_logit(p), abs=1e-8)
    assert s[0] + s[1] == pytest.approx(0.0, abs=1e-12)
    assert expected_win_rewards(s) == pytest.approx([2 * p - 1, 1 - 2 * p], abs=1e-8)


def test_consistent_probabilities_give_back_the_strengths() -> None:
    strengths = [1.0, 0.0, -1.0]  # mean 0 already
    outcomes = [
        (i, j, 1 / (1 + math.exp(strengths[j] - strengths[i]))) for i in range(3) for j in range(i + 1, 3)
    ]
    assert bradley_terry_probabilities(3, outcomes) == pytest.approx(strengths, abs=1e-7)


def test_a_sure_win_is_clamped_to_a_finite_score() -> None:
    s = bradley_terry_probabilities(2, [(0, 1, 1.0)])
    assert s[0] - s[1] == pytest.approx(_logit(1 - EPS), abs=1e-8)


def _judgment(order: str, p_a: float | None, correct: bool | None = None) -> Judgment:
    return Judgment("x", 0, "", order, 0, None, correct, "stop", "", p_a=p_a)


def test_match_probability_averages_the_order_corrected_reads() -> None:
    # i shown as A says 0.7; i shown as B gets P(A)=0.4, i.e. P(i)=0.6
    m = Match(0, 1, None, (_judgment("AB", 0.7), _judgment("BA", 0.4)))
    assert match_probability(m) == pytest.approx(0.65)


def test_without_probabilities_the_vote_decides() -> None:
    assert match_probability(Match(0, 1, 0, (_judgment("AB", None, True),))) == 1.0
    assert match_probability(Match(0, 1, None, (_judgment("AB", None),))) == 0.5


def _by_content(request: GenerationRequest, prefix: str) -> float:
    """P(A) = 0.9 when the strong response is shown as A, else 0.2 (a judge with a pull towards B)."""
    text = request.messages[-1].content
    return 0.9 if text.index("strong") < text.index("weak") else 0.2


def test_reward_method_fits_the_averaged_probabilities() -> None:
    backend = MockBackend("always-a", p_a=_by_content)
    judge = Judge(backend, "cor", JudgeConfig(protocol="both", verdict="logprob"))
    group = Group((Message("user", "q?"),), ("strong answer", "weak answer", ""))
    (score,) = score_groups(judge, [group], "bradley_terry_prob")
    p = (0.9 + (1 - 0.2)) / 2  # strong as A: 0.9; strong as B: 1 - 0.2
    s = bradley_terry_probabilities(3, [(0, 1, p), (0, 2, 1.0), (1, 2, 1.0)])
    assert score.rewards == pytest.approx(tuple(expected_win_rewards(s)))
    assert score.rewards[0] > score.rewards[1] > score.rewards[2]
    assert score.comparisons == (1, 1, 0) and score.calls == 2


def test_reward_method_on_votes_alone() -> None:
    # an always-A judge in both orders: every comparison is a draw, so every live response scores the same
    judge = Judge(MockBackend("always-a"), "cor", JudgeConfig(protocol="both"))
    group = Group((Message("user", "q?"),), ("one", "two", "three"))
    (score,) = score_groups(judge, [group], "bradley_terry_prob")
    assert score.rewards == pytest.approx((0.0, 0.0, 0.0), abs=1e-9)
    assert score.draws == (2, 2, 2)
