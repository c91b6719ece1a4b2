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

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rmr1.demo.task import DEMO_TEMPLATE, ArithmeticTeacher, make_task, preference_rows

if TYPE_CHECKING:
    from rmr1.train.config import GRPORecipe

STAGES = ("base", "sft", "grpo")
LABELS = {"base": "base", "sft": "SFT", "grpo": "SFT+GRPO"}
PROTOCOL = "both"  # each held-out pair judged as AB and BA, so position bias shows as inconsistency


@dataclass(frozen=True)
class DemoConfig:
    out_dir: Path = Path("demo-output")
    quick: bool = False
    model: str | None = None  # None: the embedded SmolLM2-135M-Instruct
    # labelled training pairs; the first distill_pairs go to the teacher, the rest to GRPO
    train_pairs: int = 512
    distill_pairs: int = 64  # the paper distilled ~12% of its data
    test_pairs: int = 300
    careless_share: float = 0.25  # the scripted teacher's first-pass slips (the paper's teacher: ~25%)
    sft_steps: int = 32  # one pass over the 128 distilled traces
    sft_batch: int = 4  # half the cost of a step of 8; the lookup needs the number of updates more than data
    sft_lr: float = 3e-3
    # about a minute each: what the 20-minute budget leaves after SFT and three evaluations
    grpo_steps: int = 9
    grpo_prompts: int = 4  # prompts per step: two pairs, each in both orders (paired_orders)
    num_generations: int = 4
    grpo_lr: float = 2e-4
    grpo_beta: float = 0.1  # KL to the SFT policy; without it GRPO drifts into always answering A
    # GRPO's pool screened by the SFT judge: only pairs it gets wrong in some order teach anything (0: off)
    screen_pairs: int = 0
    max_new_tokens: int = 128  # a teacher trace is about 100 tokens; room for a longer one to finish
    eval_batch: int | None = None  # requests per engine call; None: the backend's preferred window
    backend: str = "auto"  # the engine the held-out pairs are judged with (rmr1.backends.select)
    threads: int | None = None  # torch threads; None: rmr1.threads chooses from the free cores
    seed: int = 0


def demo_config(
    quick: bool = False,
    out_dir: str | Path = "demo-output",
    model: str | None = None,
    threads: int | None = None,
) -> DemoConfig:
    if quick:
        return DemoConfig(
            Path(out_dir),
            True,
            model,
            test_pairs=40,
            sft_steps=24,  # 10 steps of 8 (at lr 2e-3 or 5e-3) answered one letter
            grpo_steps=1,
            grpo_prompts=2,
            screen_pairs=0,  # one GRPO step: not worth a screening pass
            threads=threads,
        )
    return DemoConfig(Path(out_dir), False, model, threads=threads)


@dataclass(frozen=True)
class StageResult:
    """One stage's held-out evaluation, read from its run directory's scores.json."""

    name: str  # base | sft | grpo
    model: str  # the checkpoint judged
    run_dir: Path
    scores: dict[str, Any]
    train_seconds: float  # 0 for the base model
    eval_seconds: float

    @property
    def accuracy(self) -> float:
        return float(self.scores.get("accuracy") or 0.0)

    @property
    def interval(self) -> tuple[float, float] | None:
        found = (self.scores.get("intervals") or {}).get("accuracy")
        return (float(found[0]), float(found[1])) if found else None

    @property
    def diagnostics(self) -> dict[str, Any]:
        return dict(self.scores.get("diagnostics") or {})

    def to_summary(self) -> dict[str, Any]:
        """The stage's entry in summary.json (fractions; seconds = training + evaluation)."""
        low, high = self.interval or (None, None)
        d = self.diagnostics
        return {
            "accuracy": round(self.accuracy, 4),
            "low": low,
            "high": high,
            "seconds": round(self.train_seconds + self.eval_seconds, 1),
            "train_seconds": round(self.train_seconds, 1),
            "eval_seconds": round(self.eval_seconds, 1),
            "position_consistency": d.get("position_consistency"),
            "parse_failure_rate": d.get("parse_failure_rate"),
            "judgments": d.get("judgments"),
            "mean_completion_tokens": d.get("mean_completion_tokens"),
            "model": self.model,
            "run_dir": str(self.run_dir),
        }


@dataclass
class DemoResult:
    out_dir: Path
    stages: dict[str, StageResult] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # per step, in the order run
    distill: dict[str, Any] = field(default_factory=dict)
    screen: dict[str, Any] = field(default_factory=dict)


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def _write_template(path: Path) -> None:
    import yaml

    data = {
        "name": DEMO_TEMPLATE.name,
        "description": DEMO_TEMPLATE.description,
        "system": DEMO_TEMPLATE.system,
        "user": DEMO_TEMPLATE.user,
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


def _judge_settings(cfg: DemoConfig, model: str) -> dict[str, Any]:
    """How the demo judges with ``model``: its template, both orders, greedy, on the fast engine."""
    return {
        "model": model,
        "backend": cfg.backend,
        "template_file": str(cfg.out_dir / "data" / "template.yaml"),
        "protocol": PROTOCOL,
        "seed": cfg.seed,
        "max_new_tokens": cfg.max_new_tokens,
        "batch_size": cfg.eval_batch,
        "threads": cfg.threads,
    }


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
        "preference", run_dir, data=str(data / "test_pairs.jsonl"), **_judge_settings(cfg, model)
    )
    seconds = time.perf_counter() - started
    return StageResult(name, model, result.run_dir, result.scores, train_seconds, seconds)


def _precision() -> str:
    import torch

    from rmr1.backends.cpu_dtype import cpu_supports_bf16

    return "bf16" if torch.cuda.is_available() or cpu_supports_bf16() else "fp32"


LORA = {"enabled": True, "r": 16, "alpha": 32}  # both stages


def _sft(cfg: DemoConfig, model: str, data: Path, out: Path) -> Any:
    from rmr1.train.config import SFTRecipe, load_recipe
    from rmr1.train.sft import run_sft

    recipe = load_recipe(
        SFTRecipe,
        "tiny-cpu-sft",
        model=model,
        dataset=str(data),
        output_dir=str(out),
        max_steps=cfg.sft_steps,
        learning_rate=cfg.sft_lr,
        global_batch_size=cfg.sft_batch,
        per_device_batch_size=cfg.sft_batch,
        precision=_precision(),
        seed=cfg.seed,
        threads=cfg.threads,
        lora=LORA,
    )
    return run_sft(recipe, log=lambda *_: None)


def grpo_recipe(
    cfg: DemoConfig, model: str, data: Path, out: Path, *, lora: dict[str, Any] | None = None
) -> GRPORecipe:
    """The demo's GRPO recipe (bench/grpo_rollouts.py times it too); ``lora`` changes LoRA settings."""
    from rmr1.train.config import GRPORecipe, load_recipe

    n = cfg.num_generations
    return load_recipe(
        GRPORecipe,
        "tiny-cpu-grpo",
        model=model,
        dataset=str(data),
        output_dir=str(out),
        max_steps=cfg.grpo_steps,
        learning_rate=cfg.grpo_lr,
        num_generations=n,
        rollout_batch_prompts=cfg.grpo_prompts,
        mini_batch_prompts=cfg.grpo_prompts,
        per_device_batch_size=cfg.grpo_prompts * n,
        max_completion_length=cfg.max_new_tokens,
        precision=_precision(),
        seed=cfg.seed,
        threads=cfg.threads,
        beta=cfg.grpo_beta,
        template=str(cfg.out_dir / "data" / "template.yaml"),
        paired_orders=True,
        lora={**LORA, **(lora or {})},
    )


def _grpo(cfg: DemoConfig, model: str, data: Path, out: Path) -> Any:
    from rmr1.train.grpo import run_grpo

    return run_grpo(grpo_recipe(cfg, model, data, out), log=lambda *_: None)


def _timed(result: DemoResult, step: str, log: Callable[[str], None], fn: Callable[[], Any]) -> Any:
    log(f"[{step}] ...")
    started = time.perf_counter()
    value = fn()
    result.seconds[step] = round(time.perf_counter() - started, 1)
    log(f"[{step}] done in {result.seconds[step]:.1f}s")
    return value


def prepare_task(cfg: DemoConfig) -> list[dict[str, Any]]:
    """The task's files: judge prompts of every training pair, the pairs GRPO trains on, the held-out pairs and
    the template to judge them with. Returns the prompts the teacher distils: the first ``distill_pairs``
    pairs, each in both orders, so SFT cannot learn a favourite position from them."""
    from rmr1.train.mixes import build_judge_dataset

    data = cfg.out_dir / "data"
    task = make_task(cfg.train_pairs, cfg.test_pairs, seed=cfg.seed)
    _write_jsonl(data / "judge_prompts.jsonl", build_judge_dataset(task.train, DEMO_TEMPLATE))
    # GRPO's pairs: the labelled pairs not distilled, as a preference file, so each can be judged in both
    # orders side by side (paired_orders).
    _write_jsonl(data / "rl_pairs.jsonl", preference_rows(task.train[cfg.distill_pairs :]))
    _write_jsonl(data / "test_pairs.jsonl", preference_rows(task.test))
    _write_template(data / "template.yaml")
    return build_judge_dataset(task.train[: cfg.distill_pairs], DEMO_TEMPLATE, both_orders=True)


def _distill(
    cfg: DemoConfig, rows: list[dict[str, Any]], result: DemoResult, log: Callable[[str], None]
) -> Path:
    from rmr1.train.distill import DistillConfig, distill

    teacher = ArithmeticTeacher(cfg.careless_share, seed=cfg.seed)
    settings = DistillConfig(max_new_tokens=cfg.max_new_tokens, batch_size=32)
    stats = _timed(result, "distill", log, lambda: distill(teacher, rows, cfg.out_dir / "distill", settings))
    result.distill = stats.to_dict()
    log(
        f"  teacher pass 1: {stats.pass1_correct}/{stats.items} right; pass 2 repaired {stats.pass2_correct}/"
        f"{stats.pass2_attempted}; kept {stats.kept} traces (mean {stats.mean_chars:.0f} chars)"
    )
    return cfg.out_dir / "distill" / "train.jsonl"


def _screen(cfg: DemoConfig, model: str, result: DemoResult, log: Callable[[str], None]) -> Path:
    """The pairs GRPO trains on: those of the first ``screen_pairs`` the SFT judge does not solve in both
    orders (rmr1.train.screen), or the whole pool when screening is off or leaves nothing."""
    from rmr1.train.screen import screen_pairs

    data = cfg.out_dir / "data"
    pool = data / "rl_pairs.jsonl"
    if not cfg.screen_pairs:
        return pool
    run_dir = cfg.out_dir / "runs" / "screen"
    shutil.rmtree(run_dir, ignore_errors=True)  # judged by an earlier demo's checkpoint
    stats = _timed(
        result,
        "screen",
        log,
        lambda: screen_pairs(
            pool,
            data / "rl_unsolved.jsonl",
            run_dir,
            limit=cfg.screen_pairs,
            report=False,
            **_judge_settings(cfg, model),
        ),
    )
    result.screen = stats.to_dict()
    log(
        f"  screened {stats.screened} pairs with the SFT judge: {stats.kept} not solved in both orders "
        f"({stats.wrong_every_order} wrong in both)"
    )
    return stats.out if stats.kept else pool


def _stage(
    result: DemoResult, cfg: DemoConfig, name: str, model: str, log: Callable[[str], None]
) -> StageResult:
    train_seconds = result.seconds.get(name, 0.0)
    stage = _timed(result, f"eval {name}", log, lambda: evaluate_stage(name, model, cfg, train_seconds))
    result.stages[name] = stage
    log(f"  {LABELS[name]}: {format_stage(stage)}")
    return stage


def run_demo(cfg: DemoConfig, log: Callable[[str], None] = print) -> DemoResult:
    """Run every stage into ``cfg.out_dir``; writes summary.json and report.html there."""
    from rmr1.models import resolve_model
    from rmr1.threads import apply_threads

    out = cfg.out_dir
    out.mkdir(parents=True, exist_ok=True)
    result = DemoResult(out)
    apply_threads(cfg.threads)
    base = _timed(result, "model", log, lambda: resolve_model(cfg.model))
    prompts = prepare_task(cfg)
    sft_data = _distill(cfg, prompts, result, log)
    _stage(result, cfg, "base", base, log)
    _timed(result, "sft", log, lambda: _sft(cfg, base, sft_data, out / "sft"))
    _stage(result, cfg, "sft", str(out / "sft"), log)
    rl_data = _screen(cfg, str(out / "sft"), result, log)
    _timed(result, "grpo", log, lambda: _grpo(cfg, str(out / "sft"), rl_data, out / "grpo"))
    _stage(result, cfg, "grpo", str(out / "grpo"), log)
    write_summary(result, cfg)
    from rmr1.demo.report import write_report

    _timed(result, "report", log, lambda: write_report(result, cfg))
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


def summary(result: DemoResult, cfg: DemoConfig) -> dict[str, Any]:
    """What summary.json holds: per stage accuracy with its 95% interval and wall time, and the run's facts."""
    return {
        "quick": cfg.quick,
        "protocol": PROTOCOL,
        "test_pairs": cfg.test_pairs,
        "stages": {name: stage.to_summary() for name, stage in result.stages.items()},
        "seconds": result.seconds,
        "total_seconds": round(sum(result.seconds.values()), 1),
        "distill": result.distill,
        "screen": result.screen,
        "teacher": "scripted (deterministic arithmetic teacher, not an LLM)",
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
    }


def write_summary(result: DemoResult, cfg: DemoConfig) -> Path:
    path = result.out_dir / "summary.json"
    path.write_text(json.dumps(summary(result, cfg), indent=2) + "\n", encoding="utf-8")
    return path


__all__ = [
    "LABELS",
    "PROTOCOL",
    "STAGES",
    "DemoConfig",
    "DemoResult",
    "StageResult",
    "demo_config",
    "evaluate_stage",
    "format_stage",
    "prepare_task",
    "run_demo",
    "summary",
    "write_summary",
]
