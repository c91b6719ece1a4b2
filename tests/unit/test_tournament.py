"""Tournaments on a scripted judge: call counts, rankings, and the draw rule."""

from __future__ import annotations

import math
import re

import pytest

from rmr1.backends.mock import MockBackend
from rmr1.errors import ConfigError
from rmr1.judge import Judge, JudgeConfig
from rmr1.tournament import (
    against_reference,
    best_of_n,
    bradley_terry,
    elo,
    knockout,
    rank,
    reference_reward,
    round_robin,
    win_rates,
)
from rmr1.types import CandidateSet, GenerationRequest, Message

QUALITY = re.compile(r"q=(\d+)")


def by_quality(request: GenerationRequest) -> str:
    """A fair judge: prefers the response with the higher q=N (the one shown first is A)."""
    a, b = (int(x) for x in QUALITY.findall(request.messages[-1].content)[-2:])
    return f"<type>Chat</type><eval>compared</eval>\n<answer>[[{'A' if a > b else 'B'}]]</answer>"


def make(script: object, **config: object) -> tuple[Judge, MockBackend]:
    backend = MockBackend(script=script)  # type: ignore[arg-type]
    return Judge(backend, "plain", JudgeConfig(**config)), backend  # type: ignore[arg-type]


def cset(qualities: list[int], item_id: str = "item") -> CandidateSet:
    return CandidateSet(
        item_id, (Message("user", "Which is best?"),), tuple(f"answer q={q}" for q in qualities)
    )


@pytest.mark.parametrize("n", [2, 3, 5, 8, 13])
def test_knockout_makes_n_minus_1_comparisons_one_batch_per_round(n: int) -> None:
    judge, backend = make(by_quality)
    qualities = [(7 * k) % n for k in range(n)]  # a shuffled 0..n-1
    result = knockout(judge, [cset(qualities)])[0]
    assert backend.calls == n - 1
    assert result.comparisons == n - 1
    assert len(backend.batches) == math.ceil(math.log2(n)) == result.rounds
    assert qualities[result.winner] == n - 1
    assert result.scores[result.winner] == 1.0 and result.rewards[result.winner] == 1.0
    assert min(result.rewards) == -1.0


@pytest.mark.parametrize(
    ("n", "protocol", "samples", "per_pair"),
    [(4, "single", 1, 1), (5, "both", 1, 2), (4, "single", 3, 3), (3, "both", 2, 4)],
)
def test_round_robin_call_counts(n: int, protocol: str, samples: int, per_pair: int) -> None:
    judge, backend = make(by_quality, protocol=protocol, samples=samples)
    result = round_robin(judge, [cset(list(range(n)))])[0]
    assert result.comparisons == n * (n - 1) // 2
    assert backend.calls == n * (n - 1) // 2 * per_pair
    assert backend.batches == [backend.calls]  # one backend call for the whole round robin


def test_round_robin_ranks_by_quality_with_every_scoring() -> None:
    qualities = [3, 9, 1, 5]
    for scoring in ("win_rate", "bradley_terry", "elo"):
        judge, _ = make(by_quality)
        result = round_robin(judge, [cset(qualities)], scoring=scoring)[0]
        assert [qualities[k] for k in result.ranking] == [9, 5, 3, 1], scoring
        assert result.rewards == pytest.approx((-1 / 3, 1.0, -1.0, 1 / 3)), scoring


def test_many_sets_share_backend_calls() -> None:
    judge, backend = make(by_quality)
    results = knockout(judge, [cset([1, 2, 3, 4], "x"), cset([5, 1], "y"), cset([2, 8, 4], "z")])
    assert [r.comparisons for r in results] == [3, 1, 2]
    assert len(backend.batches) == 2  # rounds of the largest bracket, not the sum over sets
    assert backend.batches == [4, 2]
    assert [r.winner for r in results] == [3, 0, 1]


def test_unparsed_verdicts_are_draws_half_a_win_in_round_robin() -> None:
    judge, _ = make("echo")  # echoes the prompt: never a verdict
    result = round_robin(judge, [cset([1, 2, 3, 4])])[0]
    assert result.unparsed == result.draws == 6
    assert win_rates(4, result.matches) == [0.5] * 4
    assert result.rewards == (0.0,) * 4


def test_unparsed_verdicts_are_seeded_coin_flips_in_knockout() -> None:
    champions = set()
    for seed in range(8):
        judge, backend = make("echo", seed=seed)
        first = knockout(judge, [cset([1, 2, 3, 4, 5])])[0]
        again = knockout(make("echo", seed=seed)[0], [cset([1, 2, 3, 4, 5])])[0]
        assert first.coin_flips == 4 and first.unparsed == 4 and backend.calls == 4
        assert first.ranking == again.ranking  # the seed decides, not chance
        champions.add(first.winner)
    assert len(champions) > 1  # and different seeds decide differently


def test_split_orders_are_draws_but_not_unparsed() -> None:
    judge, _ = make("always-a", protocol="both")  # position bias: A in both orders
    result = round_robin(judge, [cset([1, 2, 3])])[0]
    assert result.draws == 3 and result.unparsed == 0
    assert result.wins == (1.0, 1.0, 1.0)


def test_bradley_terry_and_elo_follow_the_evidence() -> None:
    judge, _ = make(by_quality)
    matches = round_robin(judge, [cset([1, 2, 3])])[0].matches
    bt = bradley_terry(3, matches)
    assert bt[2] > bt[1] > bt[0] and abs(sum(bt)) < 1e-9
    assert all(math.isfinite(x) for x in bt)  # the prior keeps the unbeaten finite
    ratings = elo(3, matches)
    assert ratings[2] > ratings[1] > ratings[0] and abs(sum(ratings) - 3000) < 1e-6


def test_best_of_n_and_rank_methods_agree_on_a_clear_best() -> None:
    judge, _ = make(by_quality)
    assert best_of_n(judge, cset([4, 8, 2, 6])) == 1
    assert best_of_n(judge, cset([4, 8, 2, 6]), method="round_robin") == 1
    assert rank(judge, cset([4, 8, 2, 6]), method="round_robin").ranking == (1, 3, 0, 2)


def test_against_reference_scores_win_loss_draw() -> None:
    judge, backend = make(by_quality)
    matches = against_reference(judge, (Message("user", "q?"),), ["a q=9", "a q=1"], "ref q=5")
    assert [reference_reward(m) for m in matches] == [1.0, -1.0]
    assert backend.batches == [2]
    judge, _ = make("echo")
    (draw,) = against_reference(judge, (Message("user", "q?"),), ["a q=9"], "ref q=5")
    assert reference_reward(draw) == 0.0 and draw.unparsed


def test_unknown_method_or_scoring_is_a_config_error() -> None:
    judge, _ = make(by_quality)
    with pytest.raises(ConfigError, match="method"):
        rank(judge, cset([1, 2]), method="swiss")
    with pytest.raises(ConfigError, match="scoring"):
        round_robin(judge, [cset([1, 2])], scoring="glicko")
