"""RewardBench 2: the loader on files in the published schema, and the official scorer against hand-worked
numbers (best-of-4 subsets, Ties from ratings and from pairwise win counts)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from rmr1.benchmarks import load_benchmark, score_judgments
from rmr1.benchmarks.rewardbench2 import PAIR_BASE, REJECTED_BASE, pair_codes
from rmr1.errors import InputError
from rmr1.jsonl import write_jsonl
from rmr1.types import Judgment


def record(rid: str, subset: str, chosen: list[str], rejected: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "id": rid,
        "prompt": f"question {rid}",
        "chosen": chosen,
        "rejected": rejected,
        "num_correct": len(chosen),
        "num_rejected": len(rejected),
        "total_completions": len(chosen) + len(rejected),
        "models": ["m"] * (len(chosen) + len(rejected)),
        "subset": subset,
        **extra,
    }


RECORDS = [
    record("1", "Factuality", ["f-good"], ["f-bad1", "f-bad2", "f-bad3"]),
    record("2", "Math", ["m-good"], ["m-bad1", "m-bad2", "m-bad3"]),
    record("ref:1", "Ties", ["r-c0"], ["r-w0", "r-w1"]),
    record("tied:1", "Ties", ["t-c0", "t-c1"], ["t-w0", "t-w1"]),
]


def test_loads_jsonl_json_and_parquet(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    jsonl = write_jsonl(tmp_path / "rb2.jsonl", RECORDS)
    as_json = tmp_path / "rb2.json"
    as_json.write_text(json.dumps(RECORDS), encoding="utf-8")
    parquet = tmp_path / "rb2.parquet"
    pq.write_table(pa.Table.from_pylist(RECORDS), parquet)
    loaded = [load_benchmark("rewardbench2", str(p)) for p in (jsonl, as_json, parquet)]
    for bench in loaded:
        assert bench.items == 4
        # 3 + 3 best-of-4 pairs, then round robins of 3 and 4 responses: 3 and 6 pairs
        assert len(bench.pairs) == 3 + 3 + 3 + 6
    assert [p.pair for p in loaded[0].pairs] == [p.pair for p in loaded[2].pairs]


def test_pairs_best_of_4_and_ties_round_robin(tmp_path: Path) -> None:
    bench = load_benchmark("rewardbench2", str(write_jsonl(tmp_path / "rb2.jsonl", RECORDS)))
    fact = [p for p in bench.pairs if p.item_id == "1"]
    assert [(p.chosen, p.rejected, p.pair) for p in fact] == [
        ("f-good", "f-bad1", 0),
        ("f-good", "f-bad2", 1),
        ("f-good", "f-bad3", 2),
    ]
    tied = {p.pair: (p.chosen, p.rejected) for p in bench.pairs if p.item_id == "tied:1"}
    w0, w1 = REJECTED_BASE, REJECTED_BASE + 1
    assert tied == {
        0 * PAIR_BASE + 1: ("t-c0", "t-c1"),
        0 * PAIR_BASE + w0: ("t-c0", "t-w0"),
        0 * PAIR_BASE + w1: ("t-c0", "t-w1"),
        1 * PAIR_BASE + w0: ("t-c1", "t-w0"),
        1 * PAIR_BASE + w1: ("t-c1", "t-w1"),
        w0 * PAIR_BASE + w1: ("t-w0", "t-w1"),
    }
    assert pair_codes(w0 * PAIR_BASE + w1) == (w0, w1)
    assert {p.subset for p in bench.pairs if p.item_id.startswith(("ref", "tied"))} == {"Ties"}


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        # num_correct must describe the chosen list (the scorer relies on "the first num_correct are correct")
        (record("9", "Math", ["a"], ["b", "c", "d"], num_correct=2), "num_correct"),
        (record("9", "Math", ["a"], ["b", "c", "d"], total_completions=5), "total_completions"),
        # outside Ties there is exactly one correct answer
        (record("9", "Math", ["a", "e"], ["b", "c", "d"]), "chosen"),
        # Ties ids name the prompt kind
        (record("7", "Ties", ["a", "e"], ["b"]), "id"),
        # chosen must be a list, not one string
        ({**record("9", "Math", ["a"], ["b"]), "chosen": "a"}, "chosen"),
    ],
)
def test_bad_records_name_line_and_field(tmp_path: Path, bad: dict[str, Any], field: str) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [RECORDS[0], bad])
    with pytest.raises(InputError) as exc:
        load_benchmark("rewardbench2", str(path))
    message = str(exc.value)
    assert "line 2" in message and field in message and "bad.jsonl" in message


def test_empty_response_skips_the_item(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "rb2.jsonl", [RECORDS[0], record("3", "Math", ["ok"], ["x", " ", "y"])])
    bench = load_benchmark("rewardbench2", str(path))
    assert bench.items == 1 and len(bench.skipped) == 1 and "rejected[1]" in bench.skipped[0]


# --- the scorer, against hand-worked numbers -------------------------------------------------------------


def pairwise(item: str, subset: str, results: list[bool | None]) -> list[Judgment]:
    """Best-of-4 judgments: result k says whether the chosen beat rejected k (None: no verdict)."""
    out = []
    for k, won in enumerate(results):
        verdict = None if won is None else "A" if won else "B"
        out.append(Judgment(item, k, subset, "AB", 0, verdict, won, "stop", "trace"))
    return out


def ties_rated(item: str, correct: list[float | None], wrong: list[float | None]) -> list[Judgment]:
    """Pointwise Ties judgments of the round robin, with the given ratings of each response (None: unrated)."""
    codes = [(k, s) for k, s in enumerate(correct)] + [(REJECTED_BASE + k, s) for k, s in enumerate(wrong)]
    out = []
    for n, (ci, si) in enumerate(codes):
        for cj, sj in codes[n + 1 :]:
            verdict = None if si is None or sj is None or si == sj else "A" if si > sj else "B"
            correct_flag = None if verdict is None else verdict == "A"
            out.append(
                Judgment(
                    item,
                    ci * PAIR_BASE + cj,
                    "Ties",
                    "AB",
                    0,
                    verdict,
                    correct_flag,
                    "stop",
                    "a",
                    score_a=si,
                    score_b=sj,
                    completion_b="b",
                )
            )
    return out


NON_TIES = (
    pairwise("f1", "Factuality", [True, True, True])  # beats all three: counts
    + pairwise("f2", "Factuality", [True, True, False])  # loses once: does not count
    + pairwise("m1", "Math", [True, True, True])
    + pairwise("p1", "Precise IF", [True, None, True])  # one undecided pair
    + pairwise("s1", "Safety", [True, True, True])
    + pairwise("s2", "Safety", [True, True, True])
    + pairwise("s3", "Safety", [False, True, True])
)

TIES_RATED = (
    ties_rated("ref:1", [8], [5, 6])  # gap 2, accurate
    + ties_rated("tied:1", [9, 7], [4, 6])  # diff 2, gap 1, accurate
    + ties_rated("ref:2", [6], [7])  # gap -1, not accurate
    + ties_rated("tied:2", [9, 9], [3])  # diff 0, gap 6, accurate
    + ties_rated("tied:3", [5, 4], [5])  # gap -1, not accurate; no ref:3, so not paired
)


def test_scores_by_hand_with_ratings() -> None:
    scores = score_judgments("rewardbench2", NON_TIES + TIES_RATED)
    assert scores["Factuality"] == pytest.approx(0.5)
    assert scores["Math"] == pytest.approx(1.0)
    assert scores["Precise IF"] == pytest.approx(0.0)  # an undecided pair scores 0 by default
    assert scores["Safety"] == pytest.approx(2 / 3)
    assert scores["Focus"] is None  # no data
    acc_ref = (1 + 0) / 2
    acc_tied = (1 + 1 + 0) / 3
    # paired prompts 1 and 2: (gap_ref, gap_tied, diff_tied) = (2, 1, 2) and (-1, 6, 0)
    preferred = ((1 > 2) + (6 > 0)) / 2
    preferred_hard = ((min(2, 1) > 2) + (min(-1, 6) > 0)) / 2
    margin = (math.tanh(1 / 2 - 1) + -1.0) / 2  # -1 / 0 is -inf, tanh(-inf) = -1
    ties = 0.30 * acc_tied + 0.30 * acc_ref + 0.20 * preferred + 0.20 * preferred_hard + 0.01 * margin
    assert ties == pytest.approx(0.4426894142, abs=1e-9)  # the arithmetic above, done once by hand
    assert scores["Ties"] == pytest.approx(ties)
    assert scores["ties"]["scores_from"] == "ratings"
    assert scores["ties"]["accuracy_ref"] == pytest.approx(acc_ref)
    assert scores["ties"]["accuracy_tied"] == pytest.approx(acc_tied)
    assert scores["ties"]["margin"] == pytest.approx(margin)
    assert scores["Average"] == pytest.approx((0.5 + 1.0 + 0.0 + 2 / 3 + ties) / 5)
    assert scores["subsets"]["Ties"] == pytest.approx(ties)


def test_no_fractional_credit_for_an_undecided_pair() -> None:
    # best-of-4 is all or nothing: an undecided pair loses the item even when undecided pairs count half
    scores = score_judgments("rewardbench2", NON_TIES, unparsed_score=0.5)
    assert scores["Precise IF"] == 0.0
    assert scores["Ties"] is None and scores["ties"] is None
    assert scores["Average"] == pytest.approx((0.5 + 1.0 + 0.0 + 2 / 3) / 4)


def ties_pairwise(item: str, outcomes: dict[tuple[int, int], bool | None]) -> list[Judgment]:
    out = []
    for (ci, cj), won in outcomes.items():
        verdict = None if won is None else "A" if won else "B"
        out.append(Judgment(item, ci * PAIR_BASE + cj, "Ties", "AB", 0, verdict, won, "stop", "trace"))
    return out


def test_ties_from_pairwise_win_counts() -> None:
    w0, w1 = REJECTED_BASE, REJECTED_BASE + 1
    judgments = ties_pairwise("ref:1", {(0, w0): True, (0, w1): True, (w0, w1): True}) + ties_pairwise(
        "tied:1", {(0, 1): True, (0, w0): True, (1, w0): None}
    )
    scores = score_judgments("rewardbench2", judgments)
    # ref:1 wins: c0 2, w0 1, w1 0 -> gap 1, accurate.
    # tied:1 wins: c0 2, c1 0.5, w0 0.5 (the undecided pair is half each) -> diff 1.5, gap 0, not accurate.
    margin = math.tanh(min(1, 0) / 1.5 - 1)
    expected = 0.30 * 0 + 0.30 * 1 + 0.20 * (0 > 1.5) + 0.20 * (0 > 1.5) + 0.01 * margin
    assert expected == pytest.approx(0.2923840584, abs=1e-9)
    assert scores["Ties"] == pytest.approx(expected)
    assert scores["ties"]["scores_from"] == "pairwise_wins"
    assert scores["Average"] == pytest.approx(expected)  # the only subset with data


def test_ties_edge_cases() -> None:
    # equal gap and zero diff: 0 / 0 is NaN, which counts 0; an unrated response fails its prompt
    judgments = (
        ties_rated("ref:1", [5], [5])  # gap 0
        + ties_rated("tied:1", [5, 5], [5])  # diff 0, gap 0
        + ties_rated("ref:2", [9], [1])
        + ties_rated("tied:2", [9, None], [1])  # one correct answer has no rating
    )
    scores = score_judgments("rewardbench2", judgments)
    parts = scores["ties"]
    assert parts["accuracy_ref"] == pytest.approx(0.5)  # ref:2 accurate, ref:1 (gap 0) not
    assert parts["accuracy_tied"] == pytest.approx(0.0)  # tied:1 gap 0, tied:2 has an unrated response
    assert parts["preferred"] == 0.0 and parts["preferred_hard"] == 0.0
    assert parts["margin"] == 0.0  # NaN -> 0 for prompt 1, failed prompt 2 -> 0
    assert scores["Ties"] == pytest.approx(0.30 * 0.5)


def test_resampling_reproduces_the_scores_and_gives_intervals() -> None:
    from rmr1.benchmarks import judgment_resampling

    judgments = NON_TIES + TIES_RATED
    scores = score_judgments("rewardbench2", judgments, intervals_seed=0)
    items = judgment_resampling("rewardbench2", judgments, 0.0)
    assert items is not None
    point = items.point()
    for name in ("Factuality", "Math", "Precise IF", "Safety", "Ties", "Average"):
        assert point[name] == pytest.approx(scores[name])
    assert point["Focus"] is None and scores["intervals"]["Focus"] is None
    # ref:1/tied:1 and ref:2/tied:2 are one unit each, tied:3 a third
    assert sorted(i for i in items.items if i.startswith("ties:")) == ["ties:1", "ties:2", "ties:3"]
    low, high = scores["intervals"]["Ties"]
    assert low <= scores["Ties"] <= high and low < high
