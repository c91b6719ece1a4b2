"""The demo's stages, each timed: task -> distillation with the scripted teacher -> held-out evaluation of the
base model -> SFT (LoRA) -> evaluation -> GRPO with the paper's reward -> evaluation -> summary and report.

A held-out evaluation is an ordinary run of ``rmr1.evaluation.evaluate``: the ``preference`` benchmark on
``OUT/data/test_pairs.jsonl``, the demo's template as ``OUT/data/template.yaml``, the ``auto`` backend (the fast CPU
engine where it runs) on the stage's checkpoint, both orders. Its run directory ``OUT/runs/<stage>`` holds run.json,
judgments.jsonl, scores.json (accuracy with its bootstrap interval, position consistency, parse failures) and
report.html, so ``rmr1 rescore`` / ``rmr1 report`` / ``rmr1 compare`` work on it and ``rmr1 eval`` with the same
flags reproduces it.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rmr1.atomic import write_atomic, write_json_atomic
from rmr1.demo.config import (
    LABELS,
    PREVIOUS,
    PROTOCOL,
    DemoConfig,
    DemoResult,
    StageDifference,
    StageResult,
    judge_settings,
    timed,
)
from rmr1.demo.task import DEMO_TEMPLATE, ArithmeticTeacher, make_task, preference_rows
from rmr1.demo.training import grpo, screen, sft
from rmr1.jsonl import write_jsonl


def _write_template(path: Path) -> None:
    import yaml

    data = {
        "name": DEMO_TEMPLATE.name,
        "description": DEMO_TEMPLATE.description,
        "system": DEMO_TEMPLATE.system,
        "user": DEMO_TEMPLATE.user,
    }
    write_atomic(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def evaluate_stage(name: str, model: str, cfg: DemoConfig, train_seconds: float = 0.0) -> StageResult:
    """Judge the held-out pairs with ``model`` into OUT/runs/<name> through ``rmr1.evaluation``."""
    from rmr1.evaluation import evaluate

    data = cfg.out_dir / "data"
    run_dir = cfg.out_dir / "runs" / name
    # The checkpoint at this path was just (re)trained, so judgments left by an earlier demo are stale:
    # resuming them would report the old model.
    shutil.rmtree(run_dir, ignore_errors=True)
    started = time.perf_counter()
    result = evaluate(
        "preference", run_dir, data=str(data / "test_pairs.jsonl"), **judge_settings(cfg, model)
    )
    seconds = time.perf_counter() - started
    return StageResult(name, model, result.run_dir, result.scores, train_seconds, seconds)


def prepare_task(cfg: DemoConfig) -> list[dict[str, Any]]:
    """The task's files: judge prompts of every training pair, the pairs GRPO trains on, the held-out pairs and
    the template to judge them with. Returns the prompts the teacher distils: the first ``distill_pairs``
    pairs, each in both orders, so SFT cannot learn a favourite position from them."""
    from rmr1.train.mixes import build_judge_dataset

    data = cfg.out_dir / "data"
    task = make_task(cfg.train_pairs, cfg.test_pairs, seed=cfg.seed)
    write_jsonl(data / "judge_prompts.jsonl", build_judge_dataset(task.train, DEMO_TEMPLATE))
    # GRPO's pairs: the labelled pairs not distilled, as a preference file, so each can be judged in both
    # orders side by side (paired_orders).
    write_jsonl(data / "rl_pairs.jsonl", preference_rows(task.train[cfg.distill_pairs :]))
    write_jsonl(data / "test_pairs.jsonl", preference_rows(task.test))
    _write_template(data / "template.yaml")
    return build_judge_dataset(task.train[: cfg.distill_pairs], DEMO_TEMPLATE, both_orders=True)


def _distill(
    cfg: DemoConfig, rows: list[dict[str, Any]], result: DemoResult, log: Callable[[str], None]
) -> Path:
    from rmr1.train.distill import DistillConfig, distill

    teacher = ArithmeticTeacher(cfg.careless_share, seed=cfg.seed)
    settings = DistillConfig(max_new_tokens=cfg.max_new_tokens, batch_size=32)
    stats = timed(result, "distill", log, lambda: distill(teacher, rows, cfg.out_dir / "distill", settings))
    result.distill = stats.to_dict()
    log(
        f"  teacher pass 1: {stats.pass1_correct}/{stats.items} right; pass 2 repaired {stats.pass2_correct}/"
        f"{stats.pass2_attempted}; kept {stats.kept} traces (mean {stats.mean_chars:.0f} chars)"
    )
    return cfg.out_dir / "distill" / "train.jsonl"


def _stage(
    result: DemoResult, cfg: DemoConfig, name: str, model: str, log: Callable[[str], None]
) -> StageResult:
    train_seconds = result.seconds.get(name, 0.0)
    stage = timed(result, f"eval {name}", log, lambda: evaluate_stage(name, model, cfg, train_seconds))
    result.stages[name] = stage
    log(f"  {LABELS[name]}: {format_stage(stage)}")
    earlier = result.stages.get(PREVIOUS.get(name, ""))
    if earlier is not None:
        difference = compare_stages(earlier, stage)
        result.comparisons[difference.key] = difference
        log(f"  {format_difference(difference)}")
    return stage


def compare_stages(earlier: StageResult, later: StageResult) -> StageDifference:
    """``later`` - ``earlier`` in accuracy, paired on the held-out pairs both judged (``rmr1 compare``'s
    bootstrap with its default seed, so the command gives the same numbers from the run directories)."""
    from rmr1.evaluation.compare import compare_runs

    compared = compare_runs(earlier.run_dir, later.run_dir)
    row = compared.rows["accuracy"]
    assert row.diff is not None and row.interval is not None and row.p_value is not None
    apart = False
    if earlier.interval and later.interval:
        apart = later.interval[0] > earlier.interval[1] or later.interval[1] < earlier.interval[0]
    return StageDifference(
        later.name,
        earlier.name,
        row.diff,
        row.interval[0],
        row.interval[1],
        row.p_value,
        compared.shared,
        apart,
    )


def run_demo(cfg: DemoConfig, log: Callable[[str], None] = print) -> DemoResult:
    """Run every stage into ``cfg.out_dir``; writes summary.json and report.html there."""
    from rmr1.models import resolve_model
    from rmr1.threads import apply_threads

    out = cfg.out_dir
    out.mkdir(parents=True, exist_ok=True)
    result = DemoResult(out)
    apply_threads(cfg.threads)
    base = timed(result, "model", log, lambda: resolve_model(cfg.model))
    prompts = prepare_task(cfg)
    sft_data = _distill(cfg, prompts, result, log)
    _stage(result, cfg, "base", base, log)
    timed(result, "sft", log, lambda: sft(cfg, base, sft_data, out / "sft", log))
    _stage(result, cfg, "sft", str(out / "sft"), log)
    rl_data = screen(cfg, str(out / "sft"), result, log)
    grpo(cfg, str(out / "sft"), rl_data, result, log)
    _stage(result, cfg, "grpo", str(out / "grpo"), log)
    write_summary(result, cfg)
    from rmr1.demo.report import write_report

    timed(result, "report", log, lambda: write_report(result, cfg))
    write_summary(result, cfg)  # again, so the report's own time is in it
    return result


def format_stage(stage: StageResult) -> str:
    """'62.5% [45.8%, 79.2%], consistent 75.0%, unparsed 4.2%, 120s' for logs and the CLI."""
    interval = f" [{stage.interval[0]:.1%}, {stage.interval[1]:.1%}]" if stage.interval else ""
    d = stage.diagnostics
    consistency = d.get("position_consistency")
    shown = "n/a" if consistency is None else f"{consistency:.1%}"
    return (
        f"{stage.accuracy:.1%}{interval}, position-consistent {shown}, "
        f"unparsed {d.get('parse_failure_rate') or 0.0:.1%}, "
        f"{stage.train_seconds + stage.eval_seconds:.0f}s"
    )


def format_difference(d: StageDifference) -> str:
    """'SFT+GRPO - SFT: +4.0 points [+1.5, +6.7], p = 0.006 (paired, 300 pairs); stage intervals overlap'."""
    c = d.cells()
    return (
        f"{c['label']}: {c['diff']}, p = {c['p_value']} (paired, {c['pairs']} pairs); "
        f"stage intervals {c['apart']}"
    )


def summary(result: DemoResult, cfg: DemoConfig) -> dict[str, Any]:
    """What summary.json holds: per stage accuracy with its 95% interval and wall time, and the run's facts."""
    return {
        "quick": cfg.quick,
        "protocol": PROTOCOL,
        "test_pairs": cfg.test_pairs,
        "stages": {name: stage.to_summary() for name, stage in result.stages.items()},
        "comparisons": {key: d.to_summary() for key, d in result.comparisons.items()},
        "seconds": result.seconds,
        "total_seconds": round(sum(result.seconds.values()), 1),
        "distill": result.distill,
        "screen": result.screen,
        "grpo": result.grpo,
        "teacher": "scripted (deterministic arithmetic teacher, not an LLM)",
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
    }


def write_summary(result: DemoResult, cfg: DemoConfig) -> Path:
    path = result.out_dir / "summary.json"
    # atomic: written twice per demo, and a script polling it must never read half a file
    write_json_atomic(path, summary(result, cfg))
    return path


__all__ = [
    "compare_stages",
    "evaluate_stage",
    "format_difference",
    "format_stage",
    "prepare_task",
    "run_demo",
    "summary",
    "write_summary",
]
