"""rmr1.stats and the intervals in scores.json: coverage, seeding, speed, agreement with the official scorers."""

from __future__ import annotations

import math
import random
import time

import numpy as np
import pytest

from rmr1 import stats
from rmr1.benchmarks import resampling, score_judgments
from rmr1.benchmarks._scoring import pair_outcomes
from rmr1.types import Judgment


def judgment(
    item: str, outcome: bool | None, *, pair: int = 0, subset: str = "", order: str = "AB", sample: int = 0
) -> Judgment:
    preferred, other = ("A", "B") if order == "AB" else ("B", "A")
    verdict = None if outcome is None else (preferred if outcome else other)
    return Judgment(item, pair, subset, order, sample, verdict, outcome, "stop", "")


def coin_flips(n: int = 1000, seed: int = 7) -> list[Judgment]:
    """Exactly half of n items right, in a shuffled order."""
    outcomes = [True] * (n // 2) + [False] * (n - n // 2)
    random.Random(seed).shuffle(outcomes)
    return [judgment(f"q{i:04d}", o) for i, o in enumerate(outcomes)]


def test_a_judge_at_exactly_half_on_1000_coin_flips_gets_a_0_06_wide_interval() -> None:
    scores = score_judgments("preference", coin_flips(), intervals_seed=0)
    assert scores["accuracy"] == 0.5
    low, high = scores["intervals"]["accuracy"]
    assert low < 0.5 < high
    # 95% of a binomial mean at p = 0.5, n = 1000: 2 * 1.96 * sqrt(0.25 / 1000) = 0.062
    assert high - low == pytest.approx(0.06, abs=0.01)


def test_intervals_are_seeded() -> None:
    first = score_judgments("preference", coin_flips(), intervals_seed=3)["intervals"]
    again = score_judgments("preference", coin_flips(), intervals_seed=3)["intervals"]
    other = score_judgments("preference", coin_flips(), intervals_seed=4)["intervals"]
    assert first == again
    assert first != other


def test_no_data_gives_no_interval() -> None:
    scores = score_judgments("rewardbench", [judgment("1", True, subset="math-prm")], intervals_seed=0)
    assert scores["intervals"]["Chat"] is None and scores["Chat"] is None
    assert scores["intervals"]["Reasoning"] == [1.0, 1.0]
    assert score_judgments("preference", [], intervals_seed=0)["intervals"] == {"accuracy": None}


def random_judgments(benchmark: str, n: int, rng: random.Random) -> list[Judgment]:
    """Every benchmark's shape, with right, wrong and unparsed verdicts in both orders and 2 samples."""
    shapes = {
        "rewardbench": [
            (str(i), 0, rng.choice(["alpacaeval-easy", "llmbar-natural", "math-prm", "hep-go"]))
            for i in range(n)
        ],
        "rm-bench": [
            (f"{d}/{i}", p, d)
            for i in range(n)
            for d in [rng.choice(["chat", "math", "safety-refuse", "safety-response"])]
            for p in range(9)
        ],
        "rmb": [
            (f"pairwise/{i}", 0, rng.choice(["pairwise/Helpfulness/a", "pairwise/Harmlessness/b"]))
            for i in range(n)
        ]
        + [(f"bon/{i}", k, "bon/Helpfulness/c") for i in range(n // 2) for k in range(3)],
        "judgebench": [(str(i), 0, rng.choice(["mmlu-pro-x", "livebench-math"])) for i in range(n)],
        "preference": [(str(i), 0, rng.choice(["a", "b"])) for i in range(n)],
    }
    out = []
    for item, pair, subset in shapes[benchmark]:
        for order in ("AB", "BA"):
            for sample in range(2):
                outcome = rng.choice([True, True, False, None])
                out.append(judgment(item, outcome, pair=pair, subset=subset, order=order, sample=sample))
    return out


@pytest.mark.parametrize("benchmark", ["rewardbench", "rm-bench", "rmb", "judgebench", "preference"])
@pytest.mark.parametrize("unparsed", [0.0, 0.5])
def test_every_scorer_resampling_reproduces_its_official_numbers(benchmark: str, unparsed: float) -> None:
    # the bootstrap's vectorised headline, with every item drawn once, must be the official scorer
    judgments = random_judgments(benchmark, 60, random.Random(hash((benchmark, unparsed)) % 1000))
    official = score_judgments(benchmark, judgments, unparsed_score=unparsed, intervals_seed=1)
    items = resampling(benchmark, pair_outcomes(judgments), unparsed)
    assert items is not None
    point = items.point()
    assert set(point) == set(official["intervals"])
    assert any(v is None for v in point.values()) == (benchmark in ("rewardbench", "rm-bench", "rmb"))
    for name, value in point.items():
        if value is None:  # a section / domain / set with no data: null, and no interval
            assert official[name] is None and official["intervals"][name] is None, name
            continue
        assert value == pytest.approx(official[name], abs=1e-12), name
        low, high = official["intervals"][name]
        assert low <= value <= high, name


def test_stratified_resamples_keep_each_stratum_size() -> None:
    strata = ["a"] * 5 + ["b"] * 3 + ["c"] * 1
    for weights in stats.weight_chunks(strata, resamples=50, seed=0):
        assert weights.shape == (50, 9)
        assert (weights[:, :5].sum(axis=1) == 5).all()
        assert (weights[:, 5:8].sum(axis=1) == 3).all()
        assert (weights[:, 8] == 1).all()


def test_rm_bench_resamples_whole_items() -> None:
    # an item's 9 comparisons are one row: 3 items -> 3 rows, each holding its 9 cells
    judgments = [judgment(f"chat/{i}", True, pair=p, subset="chat") for i in range(3) for p in range(9)]
    items = resampling("rm-bench", pair_outcomes(judgments), 0.0)
    assert items is not None and items.items == ["chat/0", "chat/1", "chat/2"]
    assert items.columns().sum() == 3 * 18


def test_a_3000_item_benchmark_gets_its_intervals_in_well_under_a_second() -> None:
    rng = random.Random(0)
    subsets = ["alpacaeval-easy", "mt-bench-hard", "donotanswer", "math-prm", "hep-go", "llmbar-natural"]
    judgments = [judgment(str(i), rng.random() < 0.7, subset=subsets[i % 6]) for i in range(3000)]
    items = resampling("rewardbench", pair_outcomes(judgments), 0.0)
    assert items is not None
    start = time.perf_counter()
    stats.bootstrap_intervals(items, resamples=stats.RESAMPLES)
    elapsed = time.perf_counter() - start
    assert stats.RESAMPLES >= 1000
    assert elapsed < 1.0, f"{elapsed:.2f}s"


def test_paired_bootstrap_of_a_run_with_itself_is_zero() -> None:
    items = resampling("preference", pair_outcomes(coin_flips(200)), 0.0)
    assert items is not None
    row = stats.paired_bootstrap(items, items, resamples=300)["accuracy"]
    assert row.diff == 0.0 and row.interval == [0.0, 0.0] and row.p_value == 1.0


def test_paired_bootstrap_finds_a_clear_difference() -> None:
    a = coin_flips(400)
    b = [
        judgment(j.item_id, True if i % 5 else j.correct) for i, j in enumerate(a)
    ]  # B fixes 4/5 of A's errors
    ra, rb = (resampling("preference", pair_outcomes(x), 0.0) for x in (a, b))
    assert ra is not None and rb is not None
    row = stats.paired_bootstrap(ra, rb, resamples=1000)["accuracy"]
    assert row.a == 0.5 and row.diff is not None and row.diff > 0.3
    assert row.interval is not None and 0 < row.interval[0] < row.diff < row.interval[1]
    assert row.p_value is not None and row.p_value < 0.01


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        # 1 discordant pair favours A, 5 favour B: 2 * (C(6,0) + C(6,1)) / 2^6
        ([1, 0, 0, 0, 0, 0, 1, 1], [0, 1, 1, 1, 1, 1, 1, 1], 2 * 7 / 64),
        # no discordant pairs: nothing to test
        ([1, 0, 1], [1, 0, 1], 1.0),
        # 3 vs 3: the tail is over half, capped at 1
        ([1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1], 1.0),
        # 0 vs 4: 2 / 16
        ([0, 0, 0, 0], [1, 1, 1, 1], 2 / 16),
    ],
)
def test_mcnemar_by_hand(a: list[int], b: list[int], expected: float) -> None:
    assert stats.mcnemar([bool(x) for x in a], [bool(x) for x in b]) == pytest.approx(expected)


def test_calibration_by_hand() -> None:
    # P(chosen wins) -> top-label confidence / right: 0.9 -> .9/1, 0.95 -> .95/1, 0.8 -> .8/1, 0.3 -> .7/0,
    # 0.4 -> .6/0, 0.5 -> .5/half
    p = [0.9, 0.95, 0.8, 0.3, 0.4, 0.5]
    # bins: [.9,1]: conf .925 acc 1 (2); [.8,.9): .8 / 1; [.7,.8): .7 / 0; [.6,.7): .6 / 0; [.5,.6): .5 / .5
    expected_ece = (2 * 0.075 + 0.2 + 0.7 + 0.6 + 0.0) / 6
    assert stats.ece(p) == pytest.approx(expected_ece)
    assert stats.brier(p) == pytest.approx((0.01 + 0.0025 + 0.04 + 0.49 + 0.36 + 0.25) / 6)
    bins = stats.reliability(p)
    assert [b.count for b in bins] == [0, 0, 0, 0, 0, 1, 1, 1, 1, 2]
    assert bins[9].confidence == pytest.approx(0.925) and bins[9].accuracy == 1.0
    assert stats.ece([]) is None and stats.brier([]) is None


def test_deciles_cut_decisions_into_ten_equal_groups() -> None:
    p = [0.5 + i / 200 for i in range(100)]  # confidences 0.5 .. 0.995, the upper half right
    groups = stats.deciles(p)
    assert [g.count for g in groups] == [10] * 10
    assert groups[0].low == 0.5 and math.isclose(groups[-1].high, 0.995)
    assert groups[0].accuracy == pytest.approx(0.95)  # 0.5 counts half, the other nine are right
    assert all(g.accuracy == 1.0 for g in groups[1:])


def test_nanmean_is_the_mean_of_what_exists() -> None:
    rows = stats.nanmean([np.array([1.0, np.nan]), np.array([0.0, np.nan])], 2)
    assert rows[0] == 0.5 and np.isnan(rows[1])
