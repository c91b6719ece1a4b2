"""Evaluation runs with the mock backend: run directory, resume, refusals, rescore, shards, diagnostics."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

import rmr1
from rmr1.backends.mock import MockBackend
from rmr1.errors import ConfigError, InputError
from rmr1.evaluation import Diagnostics, RunDir, Shard, evaluate, merge_runs, rescore, shard_of
from rmr1.judge import Judge, JudgeConfig
from rmr1.testing import SUBSETS, write_addition_pairs
from rmr1.types import Completion, GenerationRequest, Judgment

CONTRACT_FIELDS = {
    "item_id",
    "pair",
    "subset",
    "order",
    "sample",
    "verdict",
    "correct",
    "finish_reason",
    "completion",
    "prompt_tokens",
    "completion_tokens",
    "latency_s",
}


def scripted(request: GenerationRequest) -> str:
    """A verdict fixed by the call's key, so every run of the same plan answers the same way."""
    kind = hashlib.sha256(request.key.encode()).digest()[0] % 4
    if kind == 3:
        return "<eval>both look fine</eval>"  # no verdict
    return f"<type>Chat</type>\n<eval>compared</eval>\n<answer>[[{'A' if kind < 2 else 'B'}]]</answer>"


def make_judge(script=scripted, **config) -> Judge:  # type: ignore[no-untyped-def]
    return Judge(MockBackend(script=script), "cor", JudgeConfig(**config))


def run(out: Path, data: Path, judge: Judge | None = None, **settings):  # type: ignore[no-untyped-def]
    settings.setdefault("report", False)
    return evaluate("preference", out, judge=judge or make_judge(protocol="both"), data=str(data), **settings)


def lines(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(raw) for raw in path.read_text(encoding="utf-8").splitlines() if raw.strip()]


def keys(records: list[dict]) -> list[tuple]:  # type: ignore[type-arg]
    return [(r["item_id"], r["pair"], r["order"], r["sample"]) for r in records]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_addition_pairs(tmp_path / "pairs.jsonl")


def test_a_run_writes_the_four_files_with_the_contract_fields(tmp_path: Path, data: Path) -> None:
    result = run(tmp_path / "run", data, report=True)
    out = RunDir(result.run_dir)
    for path in (out.run_json, out.judgments, out.scores, out.report):
        assert path.is_file() and path.stat().st_size > 0, path
    records = lines(out.judgments)
    assert len(records) == 24 and result.judged == 24  # 12 pairs x both orders
    assert all(set(r) >= CONTRACT_FIELDS for r in records)
    info = json.loads(out.run_json.read_text())
    for key in (
        "benchmark",
        "model",
        "backend",
        "template",
        "protocol",
        "samples",
        "seed",
        "data",
        "rmr1_version",
        "shard",
        "limit",
        "unparsed_score",
        "parse_mode",
        "max_new_tokens",
    ):
        assert key in info
    assert info["status"] == "complete" and info["protocol"] == "both"
    scores = json.loads(out.scores.read_text())
    assert set(scores) == {"accuracy", "subsets", "intervals", "diagnostics"}
    low, high = scores["intervals"]["accuracy"]
    assert low <= scores["accuracy"] <= high and low < high
    assert scores["diagnostics"]["judgments"] == 24
    assert set(scores["subsets"]) == set(SUBSETS)


def test_resume_after_a_torn_tail_judges_only_what_is_missing(tmp_path: Path, data: Path) -> None:
    full = run(tmp_path / "full", data)
    partial = tmp_path / "partial"
    run(partial, data)
    judgments = RunDir(partial).judgments
    raw = judgments.read_text(encoding="utf-8").splitlines(keepends=True)
    judgments.write_text("".join(raw[:7]) + raw[7][: len(raw[7]) // 2], encoding="utf-8")  # a kill mid-write
    judge = make_judge(protocol="both")
    again = run(partial, data, judge)
    assert judge.backend.calls == 24 - 7  # type: ignore[attr-defined]
    assert again.resumed == 7 and again.judged == 17
    records = lines(judgments)
    assert len(records) == 24 and len(set(keys(records))) == 24
    assert set(keys(records)) == set(keys(lines(RunDir(full.run_dir).judgments)))
    assert again.scores == full.scores


def test_an_interrupted_run_resumes_to_the_same_scores(tmp_path: Path, data: Path) -> None:
    full = run(tmp_path / "full", data)
    made = 0

    def dies_after_ten(request: GenerationRequest) -> str:
        nonlocal made
        made += 1
        if made > 10:
            raise KeyboardInterrupt
        return scripted(request)

    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run(out, data, make_judge(dies_after_ten, protocol="both", batch_size=4))
    assert json.loads(RunDir(out).run_json.read_text())["status"] == "interrupted"
    assert len(lines(RunDir(out).judgments)) == 8  # two whole batches of 4 reached the disk
    again = run(out, data)
    assert again.judged == 16 and again.scores == full.scores
    assert len(set(keys(lines(RunDir(out).judgments)))) == 24


@pytest.mark.parametrize(
    "change",
    [{"samples": 3}, {"protocol": "single"}, {"seed": 1}, {"max_new_tokens": 9}, {"parse_mode": "paper"}],
)
def test_settings_that_change_results_are_refused(tmp_path: Path, data: Path, change: dict) -> None:  # type: ignore[type-arg]
    out = tmp_path / "run"
    run(out, data)
    before = RunDir(out).judgments.read_bytes()
    with pytest.raises(ConfigError, match="other settings"):
        run(out, data, make_judge(**{"protocol": "both", **change}))
    assert RunDir(out).judgments.read_bytes() == before


def test_other_data_shard_or_a_smaller_limit_are_refused(tmp_path: Path, data: Path) -> None:
    out = tmp_path / "run"
    run(out, data, limit=6)
    with pytest.raises(ConfigError, match="limit"):
        run(out, data, limit=4)
    with pytest.raises(ConfigError, match="shard"):
        run(out, data, limit=6, shard="0/2")
    with pytest.raises(ConfigError, match="data"):
        run(out, write_addition_pairs(tmp_path / "other.jsonl"), limit=6)
    grown = run(out, data, limit=12)  # a larger limit extends the run
    assert grown.resumed == 12 and grown.judged == 12


def test_a_log_of_other_pairs_is_refused(tmp_path: Path, data: Path) -> None:
    out = tmp_path / "run"
    run(out, data)
    write_addition_pairs(data, start=100)  # the same path now holds other items
    with pytest.raises(ConfigError, match="not in this benchmark's plan"):
        run(out, data)


def test_a_judgments_file_without_run_json_is_refused(tmp_path: Path, data: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "judgments.jsonl").write_text('{"item_id": "x"}\n')
    with pytest.raises(ConfigError, match=r"without run\.json"):
        run(out, data)


def test_backend_and_unparsed_score_may_change_on_resume(tmp_path: Path, data: Path) -> None:
    out = tmp_path / "run"
    first = run(out, data)
    again = run(out, data, unparsed_score=0.5)
    assert again.judged == 0
    assert json.loads(RunDir(out).run_json.read_text())["unparsed_score"] == 0.5
    # unparsed decisions now count half: accuracy can only go up, by half the unparsed share
    assert again.scores["accuracy"] >= first.scores["accuracy"]


class FailingBackend:
    """Fails every call until healed, like a server that was down."""

    def __init__(self) -> None:
        self.healed = False
        self.mock = MockBackend(script=scripted)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        if self.healed:
            return self.mock.generate(requests)
        return [Completion("", finish_reason="error", error="connection refused") for _ in requests]


def test_failed_calls_are_logged_then_retried_on_resume(tmp_path: Path, data: Path) -> None:
    backend = FailingBackend()
    judge = Judge(backend, "cor", JudgeConfig(protocol="both"))
    out = tmp_path / "run"
    failed = run(out, data, judge)
    assert failed.scores["diagnostics"]["error_rate"] == 1.0
    assert failed.scores["diagnostics"]["parse_failure_rate"] == 1.0
    backend.healed = True
    healed = run(out, data, judge)
    assert healed.judged == 24
    records = lines(RunDir(out).judgments)
    assert len(records) == 24 and all(r["finish_reason"] == "stop" for r in records)
    assert healed.scores == run(tmp_path / "clean", data).scores


def test_rescore_equals_the_original_and_rereads_verdicts(tmp_path: Path, data: Path) -> None:
    out = tmp_path / "run"
    original = run(out, data)
    assert rescore(out) == original.scores
    path = RunDir(out).judgments
    records = lines(path)
    first = next(r for r in records if r["verdict"] is not None)
    first["completion"] = "<answer>[[B]]</answer>" if first["verdict"] == "A" else "<answer>[[A]]</answer>"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    changed = rescore(out)  # the logged verdict is stale; rescore reads the completion again
    assert changed["diagnostics"]["a_rate"] != original.scores["diagnostics"]["a_rate"]
    assert json.loads(RunDir(out).scores.read_text()) == changed


def test_rescore_refuses_a_key_logged_twice(tmp_path: Path, data: Path) -> None:
    out = tmp_path / "run"
    run(out, data)
    path = RunDir(out).judgments
    first = path.read_text().splitlines()[0]
    with path.open("a") as handle:
        handle.write(first + "\n")
    with pytest.raises(InputError, match="logged twice"):
        rescore(out)


def test_shards_partition_items_and_merge_to_the_unsharded_run(tmp_path: Path, data: Path) -> None:
    whole = run(tmp_path / "whole", data)
    shards = [run(tmp_path / f"s{i}", data, shard=f"{i}/2") for i in range(2)]
    items = [{r["item_id"] for r in lines(RunDir(s.run_dir).judgments)} for s in shards]
    assert items[0] and items[1] and not items[0] & items[1]
    assert all(shard_of(item, 2) == i for i, group in enumerate(items) for item in group)
    merged = merge_runs([s.run_dir for s in shards], tmp_path / "merged", report=False)
    assert merged == whole.scores
    merged_keys = keys(lines(RunDir(tmp_path / "merged").judgments))
    assert sorted(merged_keys) == sorted(keys(lines(RunDir(whole.run_dir).judgments)))
    resumed = run(tmp_path / "merged", data)  # the merged run is a normal, finished run
    assert resumed.judged == 0 and resumed.scores == whole.scores


def test_merge_refuses_missing_repeated_or_mismatched_shards(tmp_path: Path, data: Path) -> None:
    s0 = run(tmp_path / "s0", data, shard="0/2").run_dir
    s1 = run(tmp_path / "s1", data, shard="1/2").run_dir
    other = run(tmp_path / "o1", data, make_judge(protocol="both", seed=5), shard="1/2").run_dir
    with pytest.raises(ConfigError, match="missing"):
        merge_runs([s0], tmp_path / "m1")
    with pytest.raises(ConfigError, match="twice"):
        merge_runs([s0, s0], tmp_path / "m2")
    with pytest.raises(ConfigError, match="seed"):
        merge_runs([s0, other], tmp_path / "m3")
    merge_runs([s0, s1], tmp_path / "m4", report=False)
    with pytest.raises(ConfigError, match="already holds"):
        merge_runs([s0, s1], tmp_path / "m4")


def test_shard_parsing_and_stability() -> None:
    assert Shard.parse("1/4") == Shard(1, 4) and str(Shard(1, 4)) == "1/4"
    for bad in ("4/4", "-1/2", "x", "1/0"):
        with pytest.raises(ConfigError):
            Shard.parse(bad)
    # sha256-based: the same split in every process (a builtin hash() would change per process)
    assert [shard_of(f"q{i}", 3) for i in range(6)] == [shard_of(f"q{i}", 3) for i in range(6)]
    assert len({shard_of(f"q{i}", 3) for i in range(60)}) == 3


def j(
    item: str, order: str, verdict: str | None, *, sample: int = 0, finish: str = "stop", tokens: int = 10
) -> Judgment:
    correct = None if verdict is None else verdict == ("A" if order == "AB" else "B")
    return Judgment(item, 0, "", order, sample, verdict, correct, finish, "text", completion_tokens=tokens)


def test_diagnostics_by_hand() -> None:
    judgments = [
        j("1", "AB", "A", tokens=10),
        j("1", "BA", "B", tokens=20),  # right both times: consistent
        j("2", "AB", "A", tokens=30),
        j("2", "BA", "A", tokens=40),  # always A: inconsistent
        j("3", "AB", None, finish="length", tokens=50),
        j("3", "BA", "B", tokens=60),  # one order undecided
        j("4", "AB", None, finish="error", tokens=0),
        j("4", "BA", "A", tokens=70),
    ]
    d = Diagnostics(both_orders=True, samples=1)
    for x in judgments:
        d.add(x)
    result = d.result()
    assert result["judgments"] == 8
    assert result["parse_failure_rate"] == 2 / 8
    assert result["truncation_rate"] == 1 / 8
    assert result["error_rate"] == 1 / 8
    assert result["position_consistency"] == 1 / 2  # pairs 1 and 2 are decided in both orders
    assert result["a_rate"] == 4 / 6  # A in: 1AB, 2AB, 2BA, 4BA of 6 parsed
    assert (
        result["mean_completion_tokens"] == (10 + 20 + 30 + 40 + 50 + 60 + 70) / 7
    )  # the failed call has none


def test_diagnostics_vote_over_samples_and_stay_null_for_one_order() -> None:
    voted = Diagnostics(both_orders=True, samples=3)
    for x in [j("1", "AB", v, sample=s) for s, v in enumerate("AAB")] + [
        j("1", "BA", v, sample=s) for s, v in enumerate("BBA")
    ]:
        voted.add(x)
    assert voted.result()["position_consistency"] == 1.0  # majority right in both orders
    single = Diagnostics(both_orders=False, samples=1)
    single.add(j("1", "AB", "A"))
    assert single.result()["position_consistency"] is None


def test_evaluate_takes_judge_settings_and_is_exported_lazily(tmp_path: Path, data: Path) -> None:
    assert rmr1.evaluate is evaluate
    result = evaluate(
        "preference",
        tmp_path / "run",
        data=str(data),
        backend="mock",
        model="always-a",
        protocol="both",
        report=False,
    )
    info = json.loads(RunDir(result.run_dir).run_json.read_text())
    assert (info["backend"], info["model"], info["template"]) == ("mock", "always-a", "cor")
    assert result.scores["accuracy"] == 0.5  # always A: right in AB, wrong in BA
    assert result.scores["diagnostics"]["position_consistency"] == 0.0
    with pytest.raises(TypeError, match="unexpected keyword"):
        evaluate("preference", tmp_path / "x", data=str(data), modle="always-a")
    with pytest.raises(ConfigError, match="unparsed score"):
        evaluate("preference", tmp_path / "y", data=str(data), backend="mock", unparsed_score=0.3)
