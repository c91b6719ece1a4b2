"""``rmr1 demo``: the whole RM-R1 pipeline, small, on a CPU, with the embedded SmolLM2-135M-Instruct.

Stages: a verifiable preference task made locally (``demo_task``) -> distillation with a scripted teacher
through ``rmr1.train.distill`` (the same code an LLM teacher goes through) -> held-out accuracy of the base
model -> SFT (LoRA) -> held-out accuracy -> GRPO with the paper's reward -> held-out accuracy -> a report.
Every stage is timed. ``quick`` shrinks every stage.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rmr1.train.demo_task import DEMO_TEMPLATE, ArithmeticTeacher, make_task
from rmr1.types import Judgment, PreferencePair


@dataclass(frozen=True)
class DemoConfig:
    out_dir: Path = Path("demo-output")
    quick: bool = False
    model: str | None = None  # None: the embedded SmolLM2-135M-Instruct
    train_pairs: int = 128
    test_pairs: int = 32
    careless_share: float = 0.2  # the scripted teacher's first-pass slips (the paper's teacher: ~25%)
    sft_steps: int = 24
    sft_batch: int = 8
    sft_lr: float = 2e-3
    grpo_steps: int = 4
    grpo_prompts: int = 2  # prompts per step
    num_generations: int = 4
    grpo_lr: float = 1e-4
    max_new_tokens: int = 72  # a teacher trace is about 65 tokens
    eval_batch: int = 16
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
            train_pairs=48,
            test_pairs=12,
            sft_steps=6,
            grpo_steps=1,
            eval_batch=12,
            threads=threads,
        )
    return DemoConfig(Path(out_dir), False, model, threads=threads)


@dataclass(frozen=True)
class EvalResult:
    name: str
    accuracy: float  # correct verdicts / all pairs (an unparsed verdict counts as wrong)
    parsed: float
    judgments: list[Judgment]
    seconds: float


@dataclass
class DemoResult:
    out_dir: Path
    evals: dict[str, EvalResult] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    distill: dict[str, Any] = field(default_factory=dict)


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def evaluate(name: str, model: str, pairs: list[PreferencePair], cfg: DemoConfig) -> EvalResult:
    """Held-out accuracy with ``rmr1.judge.Judge`` on the hf backend, greedy, one seeded order per pair."""
    from rmr1.backends import close_backend, make_backend
    from rmr1.judge import Judge, JudgeConfig

    started = time.perf_counter()
    backend = make_backend("hf", model=model, batch_size=cfg.eval_batch)
    judge = Judge(
        backend,
        DEMO_TEMPLATE,
        JudgeConfig(max_new_tokens=cfg.max_new_tokens, batch_size=cfg.eval_batch, seed=cfg.seed),
    )
    judgments = list(judge.judge(pairs))
    _write_jsonl(cfg.out_dir / "eval" / f"{name.replace('+', '-')}.jsonl", [j.to_dict() for j in judgments])
    close_backend(backend)
    del backend, judge
    gc.collect()
    right = sum(1 for j in judgments if j.correct)
    parsed = sum(1 for j in judgments if j.verdict is not None)
    return EvalResult(
        name, right / len(judgments), parsed / len(judgments), judgments, time.perf_counter() - started
    )


def _precision() -> str:
    import torch

    from rmr1.backends.hf import cpu_supports_bf16

    return "bf16" if torch.cuda.is_available() or cpu_supports_bf16() else "fp32"


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
        lora={"enabled": True, "r": 16, "alpha": 32},
    )
    return run_sft(recipe, log=lambda *_: None)


def _grpo(cfg: DemoConfig, model: str, data: Path, out: Path) -> Any:
    from rmr1.train.config import GRPORecipe, load_recipe
    from rmr1.train.grpo import run_grpo

    n = cfg.num_generations
    recipe = load_recipe(
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
        beta=0.0,
        lora={"enabled": True, "r": 16, "alpha": 32},
    )
    return run_grpo(recipe, log=lambda *_: None)


def _timed(result: DemoResult, stage: str, log: Callable[[str], None], fn: Callable[[], Any]) -> Any:
    log(f"[{stage}] ...")
    started = time.perf_counter()
    value = fn()
    result.seconds[stage] = round(time.perf_counter() - started, 1)
    log(f"[{stage}] done in {result.seconds[stage]:.1f}s")
    return value


def run_demo(cfg: DemoConfig, log: Callable[[str], None] = print) -> DemoResult:
    from rmr1.models import resolve_model
    from rmr1.threads import apply_threads
    from rmr1.train.distill import DistillConfig, distill
    from rmr1.train.mixes import build_judge_dataset

    out = cfg.out_dir
    out.mkdir(parents=True, exist_ok=True)
    result = DemoResult(out)
    apply_threads(cfg.threads)
    base = _timed(result, "model", log, lambda: resolve_model(cfg.model))
    task = make_task(cfg.train_pairs, cfg.test_pairs, seed=cfg.seed)
    prompts = build_judge_dataset(task.train, DEMO_TEMPLATE)
    _write_jsonl(out / "data" / "judge_prompts.jsonl", prompts)
    _write_jsonl(
        out / "data" / "test_pairs.jsonl",
        [
            {"id": p.item_id, "prompt": p.question, "chosen": p.chosen, "rejected": p.rejected}
            for p in task.test
        ],
    )
    teacher = ArithmeticTeacher(cfg.careless_share, seed=cfg.seed)
    stats = _timed(
        result,
        "distill",
        log,
        lambda: distill(
            teacher, prompts, out / "distill", DistillConfig(max_new_tokens=cfg.max_new_tokens, batch_size=32)
        ),
    )
    result.distill = stats.to_dict()
    log(
        f"  teacher pass 1: {stats.pass1_correct}/{stats.items} right; pass 2 repaired {stats.pass2_correct}/"
        f"{stats.pass2_attempted}; kept {stats.kept} traces (mean {stats.mean_chars:.0f} chars)"
    )
    result.evals["base"] = _timed(result, "eval base", log, lambda: evaluate("base", base, task.test, cfg))
    _timed(result, "sft", log, lambda: _sft(cfg, base, out / "distill" / "train.jsonl", out / "sft"))
    result.evals["sft"] = _timed(
        result, "eval sft", log, lambda: evaluate("sft", str(out / "sft"), task.test, cfg)
    )
    _timed(
        result,
        "grpo",
        log,
        lambda: _grpo(cfg, str(out / "sft"), out / "data" / "judge_prompts.jsonl", out / "grpo"),
    )
    result.evals["grpo"] = _timed(
        result, "eval grpo", log, lambda: evaluate("sft+grpo", str(out / "grpo"), task.test, cfg)
    )
    from rmr1.train.demo_report import write_report

    _timed(result, "report", log, lambda: write_report(result, cfg))
    return result


def summary(result: DemoResult, cfg: DemoConfig) -> dict[str, Any]:
    return {
        "quick": cfg.quick,
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
        "accuracy": {k: round(v.accuracy, 4) for k, v in result.evals.items()},
        "parsed": {k: round(v.parsed, 4) for k, v in result.evals.items()},
        "seconds": result.seconds,
        "total_seconds": round(sum(result.seconds.values()), 1),
        "distill": result.distill,
        "teacher": "scripted (deterministic arithmetic teacher, not an LLM)",
    }


__all__ = ["DemoConfig", "DemoResult", "EvalResult", "demo_config", "evaluate", "run_demo", "summary"]
