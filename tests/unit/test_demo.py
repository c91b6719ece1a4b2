"""The demo package: its task files, scripted teacher, stage run directories, summary.json and report page.

The stage evaluations here use the tiny random model (tests/conftest.py), so they exercise the real
``rmr1.evaluation`` + hf path in seconds; the whole pipeline on the real model is
tests/integration/test_train_demo.py.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from rmr1.benchmarks import load_benchmark
from rmr1.demo import (
    DEMO_TEMPLATE,
    ArithmeticTeacher,
    DemoConfig,
    DemoResult,
    StageResult,
    evaluate_stage,
    format_difference,
    make_task,
)
from rmr1.demo.pipeline import compare_stages, prepare_task, summary, write_summary
from rmr1.demo.report import examples, write_report
from rmr1.evaluation import RunDir
from rmr1.evaluation.compare import compare_runs
from rmr1.train.distill import HINT_MARKER
from rmr1.types import GenerationRequest, Message


def test_held_out_pairs_read_back_through_the_preference_benchmark(tmp_path: Path) -> None:
    cfg = DemoConfig(tmp_path, train_pairs=10, distill_pairs=10, test_pairs=6)
    prompts = prepare_task(cfg)
    task = make_task(10, 6, seed=0)
    bench = load_benchmark("preference", str(tmp_path / "data" / "test_pairs.jsonl"))
    assert [(p.item_id, p.question, p.chosen, p.rejected, p.subset) for p in bench.pairs] == [
        (p.item_id, p.question, p.chosen, p.rejected, p.subset) for p in task.test
    ]
    # the teacher distils the first distill_pairs pairs, each in both orders
    assert len(prompts) == 2 * cfg.distill_pairs == 2 * 10 and {r["order"] for r in prompts} == {"AB", "BA"}
    assert (tmp_path / "data" / "judge_prompts.jsonl").is_file()
    assert len((tmp_path / "data" / "rl_pairs.jsonl").read_text().splitlines()) == 0
    # the held-out split never shares a number pair with training
    numbers = {tuple(re.findall(r"\d+", p.question)) for p in task.train}
    assert not numbers & {tuple(re.findall(r"\d+", p.question)) for p in task.test}


def _ask(teacher: ArithmeticTeacher, pair_text: str) -> str:
    return teacher.generate([GenerationRequest((Message("user", pair_text),))])[0].text


@pytest.mark.parametrize("order", ["AB", "BA"])
def test_teacher_is_right_when_careful_and_repairs_a_slip_on_the_second_look(order: str) -> None:
    pair = make_task(1, 1, seed=3).test[0]
    a, b = (pair.chosen, pair.rejected) if order == "AB" else (pair.rejected, pair.chosen)
    messages, _ = DEMO_TEMPLATE.render(pair.context, a, b)
    user = messages[-1].content
    right = "A" if order == "AB" else "B"
    assert _ask(ArithmeticTeacher(careless_share=0.0), user).endswith(f"[[{right}]]</answer>")
    careless = ArithmeticTeacher(careless_share=1.0)
    assert not _ask(careless, user).endswith(f"[[{right}]]</answer>")
    assert _ask(careless, f"{user}\n{HINT_MARKER}\nan earlier trace").endswith(f"[[{right}]]</answer>")


@pytest.fixture(scope="module")
def stage_run(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    out = tmp_path_factory.mktemp("demo")
    cfg = DemoConfig(
        out, train_pairs=8, test_pairs=4, max_new_tokens=6, eval_batch=8, backend="hf", threads=1
    )
    prepare_task(cfg)
    result = DemoResult(out, seconds={"sft": 1.5})
    result.stages["base"] = evaluate_stage("base", str(tiny_model), cfg)
    result.stages["sft"] = evaluate_stage("sft", str(tiny_model), cfg, train_seconds=1.5)
    return result


def test_a_stage_is_an_ordinary_run_directory_judged_in_both_orders(stage_run: DemoResult) -> None:
    stage = stage_run.stages["base"]
    assert stage.run_dir == stage_run.out_dir / "runs" / "base"
    run = RunDir(stage.run_dir)
    settings = run.read_settings()
    assert settings is not None and settings.benchmark == "preference" and settings.protocol == "both"
    assert settings.template == str(stage_run.out_dir / "data" / "template.yaml")
    judged = list(run.iter_judgments())
    assert len(judged) == 8 and {j.order for j in judged} == {"AB", "BA"}
    scores = json.loads(run.scores.read_text())
    assert stage.scores == scores and (stage.run_dir / "report.html").is_file()
    entry = stage.to_summary()
    assert entry["low"] <= entry["accuracy"] <= entry["high"]
    assert entry["parse_failure_rate"] == scores["diagnostics"]["parse_failure_rate"]
    assert entry["position_consistency"] == scores["diagnostics"]["position_consistency"]


def test_a_stage_run_again_judges_afresh_instead_of_resuming(stage_run: DemoResult, tiny_model: Path) -> None:
    cfg = DemoConfig(stage_run.out_dir, test_pairs=4, max_new_tokens=6, eval_batch=8, backend="hf", threads=1)
    log = RunDir(stage_run.out_dir / "runs" / "base").judgments
    log.write_text(log.read_text() + log.read_text().splitlines(keepends=True)[0])  # a stale extra line
    again = evaluate_stage("base", str(tiny_model), cfg)
    assert len(list(RunDir(again.run_dir).iter_judgments())) == 8
    assert again.scores["diagnostics"]["judgments"] == 8


def test_summary_and_report_come_from_the_stage_runs(stage_run: DemoResult) -> None:
    out = stage_run.out_dir
    cfg = DemoConfig(out, test_pairs=4)
    (out / "grpo").mkdir(exist_ok=True)
    rows = [
        {"step": s, "reward": 0.1 * s, "judge/accuracy": 0.5, "completions/mean_length": 40 + s}
        for s in (1, 2)
    ]
    (out / "grpo" / "curves.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = json.loads(write_summary(stage_run, cfg).read_text())
    assert data == json.loads(json.dumps(summary(stage_run, cfg)))
    assert set(data["stages"]) == {"base", "sft"}
    sft = data["stages"]["sft"]
    assert sft["seconds"] == pytest.approx(1.5 + stage_run.stages["sft"].eval_seconds, abs=0.1)
    assert sft["accuracy"] == pytest.approx(stage_run.stages["sft"].scores["accuracy"], abs=1e-4)
    page = write_report(stage_run, cfg).read_text()
    links = re.findall(r'href="([^"]+)"', page)
    assert links == ["runs/base/report.html", "runs/sft/report.html"]
    assert all((out / link).is_file() for link in links)
    assert page.count("data:image/png;base64") == 1  # GRPO logged curves, SFT did not
    shown = examples(stage_run, limit=2)
    assert [e.order for e in shown] == [
        j.order for j in list(RunDir(out / "runs" / "base").iter_judgments())[:2]
    ]
    assert all(set(e.judgments) == {"base", "sft"} for e in shown)
    assert f"{stage_run.stages['base'].accuracy:.1%}" in page


def test_a_summary_cut_off_mid_write_leaves_the_last_one_whole(
    stage_run: DemoResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = DemoConfig(stage_run.out_dir, test_pairs=4)
    before = write_summary(stage_run, cfg).read_text()
    monkeypatch.setitem(stage_run.seconds, "report", 0.25)  # something new to write

    def disk_full(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("rmr1.atomic.os.fsync", disk_full)
    with pytest.raises(OSError, match="disk full"):
        write_summary(stage_run, cfg)
    assert (stage_run.out_dir / "summary.json").read_text() == before
    assert not list(stage_run.out_dir.glob(".summary.json.*"))  # no temporary left behind


def _always_right(stage: StageResult, out: Path) -> StageResult:
    """A copy of ``stage``'s run whose every verdict picks the preferred response, as a later stage."""
    shutil.copytree(stage.run_dir, out)
    rows = [json.loads(line) for line in (out / "judgments.jsonl").read_text().splitlines()]
    for row in rows:
        row.update(verdict=row["order"][0], correct=True, parse_error=None)
    (out / "judgments.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    scores = {"accuracy": 1.0, "intervals": {"accuracy": [1.0, 1.0]}}
    return StageResult("sft", "trained", out, scores, 1.0, 1.0)


def test_each_training_stage_is_compared_with_the_one_before_on_the_same_pairs(
    stage_run: DemoResult, tmp_path: Path
) -> None:
    base = stage_run.stages["base"]
    assert base.interval is not None and base.interval[1] < 1.0  # the tiny model is not always right
    better = _always_right(base, tmp_path / "better")
    difference = compare_stages(base, better)
    paired = compare_runs(base.run_dir, better.run_dir).rows["accuracy"]  # what `rmr1 compare` prints
    assert (difference.key, difference.shared) == ("sft_vs_base", 4)
    assert difference.diff == pytest.approx(1.0 - base.accuracy) == paired.diff
    assert [difference.low, difference.high] == paired.interval and difference.p_value == paired.p_value
    assert difference.separate  # the base interval ends below 1.0
    assert not compare_stages(base, base).separate and compare_stages(base, base).diff == 0.0
    line = format_difference(difference)
    assert line.startswith(f"SFT - base: {100 * difference.diff:+.1f} points [") and "apart" in line

    result = DemoResult(stage_run.out_dir, stages={"base": base, "sft": better})
    result.comparisons[difference.key] = difference
    cfg = DemoConfig(stage_run.out_dir, test_pairs=4)
    entry = summary(result, cfg)["comparisons"]["sft_vs_base"]
    assert entry["diff"] == pytest.approx(difference.diff, abs=1e-4) and entry["separate_intervals"] is True
    assert (entry["low"], entry["high"], entry["pairs"]) == (
        pytest.approx(difference.low, abs=1e-4),
        pytest.approx(difference.high, abs=1e-4),
        4,
    )
    page = write_report(result, cfg).read_text()
    assert f"{100 * difference.diff:+.1f} points" in page and "what a stage added" in page


def test_grpo_steps_spread_their_rollouts_over_pairs_in_both_orders(tmp_path: Path) -> None:
    from rmr1.demo import demo_config
    from rmr1.demo.training import grpo_recipe
    from rmr1.train.grpo import grpo_args

    for quick in (False, True):
        cfg = demo_config(quick, tmp_path)
        recipe = grpo_recipe(cfg, "model", tmp_path / "rl.jsonl", tmp_path / "grpo")
        args, notes = grpo_args(recipe, world=1)
        rollouts = cfg.grpo_prompts * cfg.num_generations
        # one update per rollout batch, which holds whole pairs in both orders, kept together unshuffled
        assert recipe.advantage_group == "pair" and recipe.paired_orders and cfg.grpo_prompts % 2 == 0
        assert args["per_device_train_batch_size"] * args["gradient_accumulation_steps"] == rollouts
        assert args["steps_per_generation"] == args["gradient_accumulation_steps"] and not notes
        assert args["shuffle_dataset"] is False


def test_splits_do_not_move_when_the_other_split_grows() -> None:
    small, large = make_task(10, 20, seed=5), make_task(300, 40, seed=5)
    assert [p.question for p in small.test] == [p.question for p in large.test[:20]]
    assert [(p.question, p.chosen, p.rejected) for p in small.train] == [
        (p.question, p.chosen, p.rejected) for p in large.train[:10]
    ]


def test_distractors_are_close_wrong_sums_of_their_kind() -> None:
    import random

    from rmr1.demo.task import DISTRACTORS, distractor

    rng = random.Random(0)
    assert distractor(47, 38, "carry", rng) == 75 and distractor(41, 38, "carry", rng) is None
    assert distractor(47, 38, "swap", rng) == 58 and distractor(45, 55, "swap", rng) is None
    assert abs(distractor(47, 38, "ones", rng) - 85) in (1, 2)  # type: ignore[operator]
    assert abs(distractor(47, 38, "tens", rng) - 85) == 10  # type: ignore[operator]
    task = make_task(200, 0, seed=1)
    assert {p.subset for p in task.train} == set(DISTRACTORS)
    for pair in task.train:
        a, b = (int(n) for n in re.findall(r"\d+", pair.question)[:2])
        right, wrong = (int(re.findall(r"\d+", text)[-1]) for text in (pair.chosen, pair.rejected))
        assert right == a + b and wrong != right and abs(wrong - right) < 100


@pytest.mark.parametrize(("x", "y"), [(47, 38), (12, 31), (99, 99), (50, 50)])
def test_column_working_adds_up_and_a_slip_changes_only_the_carry(x: int, y: int) -> None:
    from rmr1.demo.task import column_sum

    working, total = column_sum(x, y)
    assert total == x + y and working.endswith(f"Total: {x + y}.")
    carried = (x % 10 + y % 10) >= 10
    _, slipped = column_sum(x, y, -1 if carried else 1)
    assert slipped == x + y + (-10 if carried else 10)


def test_a_careless_trace_stays_consistent_with_its_own_wrong_total() -> None:
    from rmr1.demo.task import ShownPair, trace_for

    shown = ShownPair("What is 47 + 38?", "The sum is 85.", "The sum is 75.")
    careful, careless = trace_for(shown), trace_for(shown, careless=True)
    assert "Total: 85." in careful and "85 is A's answer. 75 is B's answer. My total 85 is A's" in careful
    assert careful.endswith("[[A]]</answer>")
    assert "Total: 75." in careless and "My total 75 is B's" in careless
    assert careless.endswith("[[B]]</answer>")


def test_grpo_trains_on_the_pairs_the_sft_judge_does_not_solve(tmp_path: Path, tiny_model: Path) -> None:
    from rmr1.demo.training import screen

    out = tmp_path
    cfg = DemoConfig(
        out,
        train_pairs=8,
        distill_pairs=2,
        test_pairs=4,
        max_new_tokens=6,
        eval_batch=8,
        backend="hf",
        threads=1,
        screen_pairs=3,
    )
    prepare_task(cfg)
    result = DemoResult(out)
    chosen = screen(cfg, str(tiny_model), result, lambda _: None)
    pool = [json.loads(line) for line in (out / "data" / "rl_pairs.jsonl").read_text().splitlines()]
    # the random model never gives a verdict: every screened pair is unsolved, and only the first three are judged
    assert chosen == out / "data" / "rl_unsolved.jsonl"
    assert [json.loads(line) for line in chosen.read_text().splitlines()] == pool[:3]
    assert result.screen["screened"] == 3 and result.screen["kept"] == 3 and "screen" in result.seconds
    assert len(list(RunDir(out / "runs" / "screen").iter_judgments())) == 6
    off = DemoConfig(out, screen_pairs=0)
    assert screen(off, str(tiny_model), DemoResult(out), lambda _: None) == out / "data" / "rl_pairs.jsonl"


def test_grpo_gets_what_the_budget_leaves_after_the_last_evaluation() -> None:
    from rmr1.demo import demo_config
    from rmr1.demo.training import grpo_seconds

    cfg = DemoConfig(Path("x"), budget_seconds=1000.0)
    spent = DemoResult(Path("x"), seconds={"eval base": 50.0, "sft": 150.0, "eval sft": 100.0})
    assert grpo_seconds(cfg, spent) == pytest.approx(1000 - 300 - 100 - 15)
    late = DemoResult(Path("x"), seconds={"sft": 990.0, "eval sft": 100.0})
    assert grpo_seconds(cfg, late) == 1.0  # past the budget already: GRPO's one step still runs
    assert grpo_seconds(DemoConfig(Path("x"), budget_seconds=None), spent) is None
    assert demo_config(quick=True).budget_seconds is None and demo_config().budget_seconds is not None


def test_grpo_records_and_warns_of_steps_that_taught_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rmr1.train.grpo
    from rmr1.demo.training import grpo
    from rmr1.train.sft import TrainResult

    def fake_run_grpo(recipe: Any, log: Any = None) -> TrainResult:  # the curves a collapsed run logs
        out = Path(recipe.output_dir)
        out.mkdir(parents=True)
        zero = [0.5, 0.0, 1.0, 1.0, 1.0, 1.0]
        rows = [
            {"step": i + 1, "frac_reward_zero_std": z, "judge/accuracy": 0.5 if z == 1.0 else 0.4}
            for i, z in enumerate(zero)
        ]
        (out / "curves.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return rmr1.train.grpo.with_stall_notes(TrainResult(out, len(zero), 1.0, {}), recipe, log)

    monkeypatch.setattr(rmr1.train.grpo, "run_grpo", fake_run_grpo)
    cfg = DemoConfig(tmp_path, grpo_steps=6, budget_seconds=None)
    result, lines = DemoResult(tmp_path), []
    grpo(cfg, "model", tmp_path / "pairs.jsonl", result, lines.append)
    assert result.grpo["stalled_steps"] == [[3, 6]] and result.grpo["steps"] == 6
    assert any(
        line.startswith("  GRPO warning:") and "steps 3-6" in line and "one position" in line
        for line in lines
    )
