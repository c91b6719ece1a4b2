"""The demo's settings and results: what each stage is given and what it leaves, shared by the stages.

``DemoConfig`` holds every size and rate (``demo_config`` gives the full and the quick demo); ``DemoResult``
collects each step's wall time, the distillation and screening counts, GRPO's steps and the held-out
``StageResult`` of each stage.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STAGES = ("base", "sft", "grpo")
LABELS = {"base": "base", "sft": "SFT", "grpo": "SFT+GRPO"}
PREVIOUS = {"sft": "base", "grpo": "sft"}  # each training stage is compared with the stage it started from
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
    # the most GRPO steps (30-55 s each on 2 cores); budget_seconds ends GRPO sooner on a slower machine
    grpo_steps: int = 16
    # 16 rollouts a step as four pairs in both orders x 2 samples, with advantages over each pair's 4 rollouts:
    # from the same SFT judge, one pair x 8 samples moved held-out accuracy by -3.7 to +3.5 over three seeds
    # (one problem steers each update), four pairs by +1.5 to +3.8 (docs/design/demo.md)
    grpo_prompts: int = 8  # prompts per step: pairs in both orders (paired_orders)
    num_generations: int = 2
    advantage_group: str = "pair"  # a pair's rollouts in both orders share a baseline (pair-advantages.md)
    # 1e-4 gained on every one of five sampling seeds; 2e-4 averaged nil (the seed table: docs/design/demo.md)
    grpo_lr: float = 1e-4
    grpo_beta: float = 0.1  # KL to the SFT policy; without it GRPO drifts into always answering A
    # GRPO's pool screened by the SFT judge: only pairs it gets wrong in some order teach anything (0: off)
    screen_pairs: int = 160
    # the demo's wall time (18 min: 20 less the venv setup of `make demo` on a fresh clone); GRPO stops
    # before a step that would leave too little for its evaluation
    budget_seconds: float | None = 1080.0
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
            num_generations=4,  # 8 rollouts: the one step stays within the 5 minutes on a slow machine
            screen_pairs=0,  # one GRPO step: not worth a screening pass
            budget_seconds=None,  # one GRPO step: nothing to trim
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


@dataclass(frozen=True)
class StageDifference:
    """A later stage against an earlier one on the same held-out pairs: the paired difference in accuracy
    (``rmr1.evaluation.compare``, what ``rmr1 compare`` prints) and whether the stages' own intervals are
    apart."""

    later: str
    earlier: str
    diff: float
    low: float
    high: float
    p_value: float
    shared: int  # pairs both stages judged
    separate: bool  # the two stages' own 95% intervals do not overlap

    @property
    def key(self) -> str:
        return f"{self.later}_vs_{self.earlier}"

    def cells(self) -> dict[str, str]:
        """The difference as the CLI line and the report's table show it (points, to one decimal)."""
        return {
            "label": f"{LABELS[self.later]} - {LABELS[self.earlier]}",
            "diff": f"{100 * self.diff:+.1f} points [{100 * self.low:+.1f}, {100 * self.high:+.1f}]",
            "p_value": f"{self.p_value:.3f}",
            "pairs": str(self.shared),
            "apart": "apart" if self.separate else "overlap",
        }

    def to_summary(self) -> dict[str, Any]:
        return {
            "diff": round(self.diff, 4),
            "low": round(self.low, 4),
            "high": round(self.high, 4),
            "p_value": round(self.p_value, 4),
            "pairs": self.shared,
            "separate_intervals": self.separate,
        }


@dataclass
class DemoResult:
    out_dir: Path
    stages: dict[str, StageResult] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # per step, in the order run
    distill: dict[str, Any] = field(default_factory=dict)
    screen: dict[str, Any] = field(default_factory=dict)
    grpo: dict[str, Any] = field(default_factory=dict)  # steps trained, and the limits they ran under
    comparisons: dict[str, StageDifference] = field(default_factory=dict)  # by StageDifference.key


def timed(result: DemoResult, step: str, log: Callable[[str], None], fn: Callable[[], Any]) -> Any:
    log(f"[{step}] ...")
    started = time.perf_counter()
    value = fn()
    result.seconds[step] = round(time.perf_counter() - started, 1)
    log(f"[{step}] done in {result.seconds[step]:.1f}s")
    return value


def judge_settings(cfg: DemoConfig, model: str) -> dict[str, Any]:
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


__all__ = [
    "LABELS",
    "PREVIOUS",
    "PROTOCOL",
    "STAGES",
    "DemoConfig",
    "DemoResult",
    "StageDifference",
    "StageResult",
    "demo_config",
    "judge_settings",
    "timed",
]
