"""Pointwise judging end to end on the mock backend: each response rated once, pairs decided by ratings, the
existing scorers, rescore, tournaments and rewards working from ratings."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from rmr1.backends.mock import MockBackend
from rmr1.errors import ConfigError
from rmr1.evaluation import evaluate, rescore
from rmr1.judge import Judge, JudgeConfig
from rmr1.judge_options import JudgeOptions
from rmr1.prompts.pointwise import RESPONSE_END, RESPONSE_START
from rmr1.rewards import Group, score_groups
from rmr1.tournament import rank
from rmr1.types import CandidateSet, GenerationRequest, Message, PreferencePair

CTX = (Message("user", "Which is best?"),)


def rated_text(request: GenerationRequest) -> str:
    body = request.messages[-1].content
    return body.split(RESPONSE_START + "\n", 1)[1].split("\n" + RESPONSE_END, 1)[0]


def rater(ratings: Mapping[str, float | None]) -> MockBackend:
    """A mock judge that rates each response by a table (None: an output with no score tag)."""

    def answer(request: GenerationRequest) -> str:
        value = ratings[rated_text(request)]
        ending = "I cannot decide." if value is None else f"<score>{value:g}</score>"
        return f"<principles>1. Be right.</principles>\n<critique>Checked.</critique>\n{ending}"

    return MockBackend(script=answer)


def pointwise_judge(backend: MockBackend, **config: object) -> Judge:
    return Judge(backend, "pointwise", JudgeConfig(mode="pointwise", record_latency=False, **config))  # type: ignore[arg-type]


def test_shared_responses_are_rated_once_across_batches() -> None:
    # an RM-Bench-like item: 3 chosen x 3 rejected = 9 pairs over 6 distinct responses
    chosen, rejected = ["c0", "c1", "c2"], ["r0", "r1", "r2"]
    table = {"c0": 9, "c1": 8, "c2": 5, "r0": 4, "r1": 8, "r2": 6}
    pairs = [
        PreferencePair("x", CTX, chosen[i], rejected[j], "chat", 3 * i + j)
        for i in range(3)
        for j in range(3)
    ]
    backend = rater(table)
    judgments = list(pointwise_judge(backend, batch_size=4).judge(pairs))
    assert backend.calls == 6  # not 18, although the 9 pairs went out in three batches
    assert len(judgments) == 9
    for j in judgments:
        pair = pairs[j.pair]
        a, b = (pair.chosen, pair.rejected) if j.order == "AB" else (pair.rejected, pair.chosen)
        assert (j.score_a, j.score_b) == (table[a], table[b])
        if table[a] == table[b]:  # c1 vs r1: an explicit tie
            assert j.verdict is None and j.correct is None and j.parse_error == "tie"
        else:
            assert j.verdict == ("A" if table[a] > table[b] else "B")
            assert j.correct == (table[pair.chosen] > table[pair.rejected])
        assert j.completion.endswith(f"<score>{table[a]}</score>")
        assert j.completion_b is not None and j.completion_b.endswith(f"<score>{table[b]}</score>")


def test_unrated_response_leaves_the_pair_undecided() -> None:
    backend = rater({"good": 7, "silent": None})
    [j] = pointwise_judge(backend).judge([PreferencePair("1", CTX, "good", "silent")])
    assert j.verdict is None and j.correct is None
    side = "B" if j.order == "AB" else "A"
    assert j.parse_error == f"unrated ({side}: no_score)"


def test_failed_calls_are_not_memoised() -> None:
    from rmr1.types import Completion

    class Flaky(MockBackend):
        def generate(self, requests):  # type: ignore[no-untyped-def]
            self.calls += len(requests)
            fail = self.calls <= 2
            return [
                Completion("", "error", error="boom") if fail else Completion("<score>5</score>")
                for _ in requests
            ]

    backend = Flaky()
    judge = pointwise_judge(backend)
    pair = PreferencePair("1", CTX, "good", "bad")
    [first] = judge.judge([pair])
    assert first.finish_reason == "error" and first.verdict is None
    assert first.parse_error == "unrated (A: boom, B: boom)"
    [second] = judge.judge([pair])
    assert backend.calls == 4 and second.parse_error == "tie"


def test_voting_samples_are_rated_separately() -> None:
    backend = rater({"good": 7, "bad": 3})
    judge = pointwise_judge(backend, samples=3)
    judgments = list(judge.judge([PreferencePair("1", CTX, "good", "bad")]))
    assert [j.sample for j in judgments] == [0, 1, 2]
    assert backend.calls == 6  # two responses x three samples
    seeds = {
        r.sampling.seed for r in [c.request for c in judge.plan(PreferencePair("1", CTX, "good", "bad"))]
    }
    assert len(seeds) == 3  # each sample its own seed


def rb2_file(path: Path) -> Path:
    def rec(rid: str, subset: str, chosen: list[str], rejected: list[str]) -> dict[str, object]:
        return {
            "id": rid,
            "prompt": f"question {rid}",
            "chosen": chosen,
            "rejected": rejected,
            "num_correct": len(chosen),
            "num_rejected": len(rejected),
            "total_completions": len(chosen) + len(rejected),
            "models": [],
            "subset": subset,
        }

    records = [
        rec("1", "Factuality", ["f1"], ["f2", "f3", "f4"]),
        rec("2", "Math", ["m1"], ["m2", "m3", "m4"]),
        rec("ref:1", "Ties", ["r1"], ["r2", "r3"]),
        rec("tied:1", "Ties", ["t1", "t2"], ["t3", "t4"]),
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


RB2_RATINGS = {
    "f1": 9, "f2": 3, "f3": 5, "f4": 8,  # chosen beats all three: Factuality 1
    "m1": 6, "m2": 6, "m3": 2, "m4": 1,  # a tie with m2: not a win, Math 0
    "r1": 8, "r2": 5, "r3": 6,  # gap 2
    "t1": 9, "t2": 7, "t3": 4, "t4": 6,  # diff 2, gap 1
}  # fmt: skip


def test_eval_rewardbench2_pointwise(tmp_path: Path) -> None:
    import math

    data = rb2_file(tmp_path / "rb2.jsonl")
    backend = rater(RB2_RATINGS)
    result = evaluate(
        "rewardbench2", tmp_path / "run", judge=pointwise_judge(backend), data=str(data), report=False
    )
    assert backend.calls == len(RB2_RATINGS)  # one rating per distinct response (15 of them)
    scores = result.scores
    assert scores["Factuality"] == 1.0 and scores["Math"] == 0.0
    # by hand: acc_ref 1, acc_tied 1; paired prompt 1: gap_ref 2, gap_tied 1, diff 2
    ties = 0.30 + 0.30 + 0.20 * (1 > 2) + 0.20 * (min(2, 1) > 2) + 0.01 * math.tanh(1 / 2 - 1)
    assert scores["Ties"] == pytest.approx(ties)
    assert scores["ties"]["scores_from"] == "ratings"
    assert scores["Average"] == pytest.approx((1.0 + 0.0 + ties) / 3)
    lines = [json.loads(x) for x in (tmp_path / "run" / "judgments.jsonl").read_text().splitlines()]
    assert len(lines) == 15 and all("score_a" in x and "completion_b" in x for x in lines)
    assert [x["parse_error"] for x in lines if x["item_id"] == "2" and x["pair"] == 0] == ["tie"]
    # the tie is counted as a tie, not as a parse failure
    assert scores["diagnostics"]["tie_rate"] == pytest.approx(1 / 15)
    assert scores["diagnostics"]["parse_failure_rate"] == 0.0
    # rescore reads both rating traces again and lands on the same numbers; a rerun makes no calls
    assert rescore(tmp_path / "run") == scores
    again = evaluate(
        "rewardbench2", tmp_path / "run", judge=pointwise_judge(backend), data=str(data), report=False
    )
    assert again.judged == 0 and backend.calls == len(RB2_RATINGS)


def test_options_pick_the_pointwise_template_and_refuse_mixups() -> None:
    opts = JudgeOptions(mode="pointwise", backend="mock", model="always-a")
    assert opts.template_name() == "pointwise"
    judge = opts.build_judge()
    assert judge.config.mode == "pointwise" and judge.template.name == "pointwise"
    with pytest.raises(ConfigError, match="pointwise mode needs a pointwise template"):
        JudgeOptions(mode="pointwise", template="cor").template_obj()
    with pytest.raises(ConfigError, match="use it with --mode pointwise"):
        JudgeOptions(template="pointwise").template_obj()
    with pytest.raises(ConfigError, match="unknown mode"):
        JudgeOptions(mode="listwise").judge_config()


def test_rating_tournament_ranks_by_rating() -> None:
    backend = rater({"a": 4, "b": 9, "c": None, "d": 4})
    result = rank(pointwise_judge(backend), CandidateSet("s", CTX, ("a", "b", "c", "d")), method="rating")
    assert backend.calls == 4
    assert result.ranking == (1, 2, 0, 3)  # b 9; the unrated c in the middle (0.5); a and d tie at 4
    assert result.scores[1] == pytest.approx(8 / 9) and result.scores[2] == 0.5  # (s - 1) / 9
    assert result.scores[0] == pytest.approx(3 / 9)
    assert result.rewards[1] == pytest.approx(2 * 8 / 9 - 1)
    assert result.wins == (0.5, 3.0, 2.0, 0.5)  # implied by the ratings: a tie is half a win


def test_round_robin_with_a_pointwise_judge_rates_each_candidate_once() -> None:
    backend = rater({"a": 2, "b": 9, "c": 5})
    result = rank(pointwise_judge(backend), CandidateSet("s", CTX, ("a", "b", "c")), method="round_robin")
    assert backend.calls == 3  # three comparisons decided from three ratings
    assert result.ranking == (1, 2, 0)


def test_rating_rewards() -> None:
    backend = rater({"great": 10, "poor": 1, "mid": 5.5, "mute": None})
    [score] = score_groups(
        pointwise_judge(backend), [Group(CTX, ("great", "poor", "mid", "mute", " "))], "rating"
    )
    assert score.rewards == (1.0, -1.0, 0.0, 0.0, -1.0)  # (s - 1) / 9 * 2 - 1; unrated 0; empty -1
    assert score.unparsed == (0, 0, 0, 1, 0)
    with pytest.raises(ConfigError, match="pointwise judge"):
        score_groups(Judge(MockBackend("always-a")), [Group(CTX, ("x", "y"))], "rating")


def test_pointwise_eval_on_the_hf_backend(tiny_model: Path, tmp_path: Path) -> None:
    # the real local backend path (chat template, stop strings, batching) with a tiny random model
    data = rb2_file(tmp_path / "rb2.jsonl")
    opts = JudgeOptions(model=str(tiny_model), mode="pointwise", max_new_tokens=4, dtype="float32")
    result = evaluate("rewardbench2", tmp_path / "run", judge=opts, data=str(data), limit=2, report=False)
    assert result.judged == 6  # two best-of-4 items: 3 pairs each
    lines = [json.loads(x) for x in (tmp_path / "run" / "judgments.jsonl").read_text().splitlines()]
    assert all(x["completion_b"] is not None and x["finish_reason"] in ("stop", "length") for x in lines)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["template"] == "pointwise"
    assert set(result.scores) >= {"Factuality", "Math", "Ties", "Average", "diagnostics"}


def test_compare_two_pointwise_rewardbench2_runs(tmp_path: Path) -> None:
    from rmr1.evaluation.compare import compare_runs

    data = str(rb2_file(tmp_path / "rb2.jsonl"))
    better = {**RB2_RATINGS, "m1": 7, "t2": 9}  # Math won outright; tied:1 diff 0, gap 3
    for name, table in (("a", RB2_RATINGS), ("b", better)):
        evaluate(
            "rewardbench2", tmp_path / name, judge=pointwise_judge(rater(table)), data=data, report=False
        )
    result = compare_runs(tmp_path / "a", tmp_path / "b", resamples=200)
    rows = result.rows
    assert rows["Math"].a == 0.0 and rows["Math"].b == 1.0
    a_scores = json.loads((tmp_path / "a" / "scores.json").read_text())
    b_scores = json.loads((tmp_path / "b" / "scores.json").read_text())
    # the comparison reads the same ratings the runs were scored with
    assert rows["Ties"].a == pytest.approx(a_scores["Ties"]) and rows["Ties"].b == pytest.approx(
        b_scores["Ties"]
    )
    assert b_scores["ties"]["preferred"] == 1.0  # gap_tied 3 > diff 0
