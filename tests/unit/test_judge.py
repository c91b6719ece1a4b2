"""The judge with a scripted backend: order protocol, voting, batching, correctness bookkeeping."""

from __future__ import annotations

from collections import Counter

import pytest

from rmr1.backends.mock import MockBackend
from rmr1.errors import ConfigError
from rmr1.judge import Judge, JudgeConfig, seeded_order, vote
from rmr1.types import GenerationRequest, Judgment, PreferencePair


def pairs(n: int) -> list[PreferencePair]:
    return [
        PreferencePair.from_texts(f"q{i}", f"good {i}", f"bad {i}", item_id=f"item-{i}") for i in range(n)
    ]


def picks_good(req: GenerationRequest) -> str:
    """A perfect judge: finds which chatbot's response starts with 'good'."""
    body = req.messages[-1].content
    a_part = body.split("=== Chatbot A: response begins ===")[1]
    return "<answer>[[A]]</answer>" if a_part.lstrip().startswith("good") else "<answer>[[B]]</answer>"


def test_seeded_order_is_stable_and_balanced() -> None:
    orders = [seeded_order(7, f"id{i}", 0) for i in range(2000)]
    assert orders == [seeded_order(7, f"id{i}", 0) for i in range(2000)]
    share = Counter(orders)["AB"] / len(orders)
    assert 0.45 < share < 0.55
    assert orders != [seeded_order(8, f"id{i}", 0) for i in range(2000)]


def test_order_does_not_depend_on_batching() -> None:
    small = Judge(MockBackend(script=picks_good), config=JudgeConfig(seed=3, batch_size=1))
    large = Judge(MockBackend(script=picks_good), config=JudgeConfig(seed=3, batch_size=64))
    one = [(j.item_id, j.order) for j in small.judge(pairs(30))]
    many = [(j.item_id, j.order) for j in large.judge(pairs(30))]
    assert one == many
    # a subset of the items keeps each item's order
    some = {(j.item_id, j.order) for j in large.judge(pairs(30)[10:20])}
    assert some <= set(one)


def test_perfect_judge_is_always_correct_in_both_orders() -> None:
    judge = Judge(MockBackend(script=picks_good), config=JudgeConfig(protocol="both"))
    result = list(judge.judge(pairs(5)))
    assert len(result) == 10
    assert {j.order for j in result} == {"AB", "BA"}
    assert all(j.correct for j in result)


def test_always_a_is_right_only_when_chosen_is_shown_first() -> None:
    judge = Judge(MockBackend("always-a"), config=JudgeConfig(protocol="both"))
    for j in judge.judge(pairs(3)):
        assert j.verdict == "A" and j.correct == (j.order == "AB")


def test_unparsed_output_is_its_own_outcome() -> None:
    judge = Judge(MockBackend(script=["I cannot decide."]))
    (j,) = judge.judge(pairs(1))
    assert (j.verdict, j.correct, j.parse_error) == (None, None, "no_verdict")


def test_calls_are_batched_across_items() -> None:
    backend = MockBackend("always-a")
    judge = Judge(backend, config=JudgeConfig(protocol="both", samples=3, batch_size=8))
    assert len(list(judge.judge(pairs(5)))) == 30
    assert backend.batches == [8, 8, 8, 6]


def test_voting_samples_use_distinct_seeds_and_temperature() -> None:
    seen: list[GenerationRequest] = []

    def record(req: GenerationRequest) -> str:
        seen.append(req)
        return "<answer>[[A]]</answer>"

    judge = Judge(MockBackend(script=record), config=JudgeConfig(samples=4))
    result = list(judge.judge(pairs(1)))
    assert [j.sample for j in result] == [0, 1, 2, 3]
    assert all(r.sampling.temperature == 1.0 for r in seen)
    assert len({r.sampling.seed for r in seen}) == 4
    greedy = Judge(MockBackend(script=record), config=JudgeConfig()).plan(pairs(1)[0])
    assert greedy[0].request.sampling.temperature == 0.0 and greedy[0].request.sampling.seed is None


def test_skip_avoids_repeating_logged_calls() -> None:
    backend = MockBackend("always-a")
    judge = Judge(backend, config=JudgeConfig(protocol="both"))
    done = {("item-0", 0, "AB", 0), ("item-1", 0, "BA", 0)}
    result = list(judge.judge(pairs(2), skip=done))
    assert {j.key for j in result}.isdisjoint(done) and len(result) == 2 and backend.calls == 2


def _j(correct: bool | None) -> Judgment:
    verdict = None if correct is None else ("A" if correct else "B")
    return Judgment("1", 0, "", "AB", 0, verdict, correct, "stop", "")


@pytest.mark.parametrize(
    ("votes", "correct", "confidence"),
    [
        ([True, True, False], True, 2 / 3),
        ([False, False, None], False, 1.0),
        ([True, False], None, 0.5),  # a tie decides nothing
        ([None, None], None, 0.0),  # nothing parsed
    ],
)
def test_vote(votes: list[bool | None], correct: bool | None, confidence: float) -> None:
    result = vote([_j(v) for v in votes])
    assert result.correct == correct and result.confidence == pytest.approx(confidence)


def test_bad_config_is_rejected() -> None:
    with pytest.raises(ConfigError, match="protocol"):
        JudgeConfig(protocol="triple")
    with pytest.raises(ConfigError, match="samples"):
        JudgeConfig(samples=0)
