"""The demo's training steps: SFT on the distilled traces, the SFT judge screening GRPO's pool
(rmr1.train.screen), and GRPO within what the demo's time budget leaves."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rmr1.demo.config import DemoConfig, DemoResult, judge_settings, timed

if TYPE_CHECKING:
    from rmr1.train.config import GRPORecipe


def _precision() -> str:
    import torch

    from rmr1.backends.cpu_dtype import cpu_supports_bf16

    return "bf16" if torch.cuda.is_available() or cpu_supports_bf16() else "fp32"


LORA = {"enabled": True, "r": 16, "alpha": 32}  # both stages


def sft(cfg: DemoConfig, model: str, data: Path, out: Path, log: Callable[[str], None]) -> Any:
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
    return run_sft(recipe, log=lambda line: log(f"  SFT {line}"))


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
        advantage_group=cfg.advantage_group,
        lora={**LORA, **(lora or {})},
    )


def grpo_seconds(cfg: DemoConfig, result: DemoResult) -> float | None:
    """GRPO's share of the time budget: what is left after the steps so far and the last evaluation, which
    takes about as long as SFT's did (a few seconds more for saving the model)."""
    if cfg.budget_seconds is None:
        return None
    spent = sum(result.seconds.values())
    return max(1.0, cfg.budget_seconds - spent - result.seconds.get("eval sft", 0.0) - 15.0)


def grpo(cfg: DemoConfig, model: str, data: Path, result: DemoResult, log: Callable[[str], None]) -> None:
    from rmr1.train.grpo import run_grpo
    from rmr1.train.runtime import read_curves
    from rmr1.train.stalls import stalled_stretches

    seconds = grpo_seconds(cfg, result)
    recipe = dataclasses.replace(grpo_recipe(cfg, model, data, cfg.out_dir / "grpo"), max_seconds=seconds)
    # each step's line, and a warning for each stretch of steps that taught nothing (rmr1.train.stalls)
    trained = timed(result, "grpo", log, lambda: run_grpo(recipe, log=lambda line: log(f"  GRPO {line}")))
    stalls = stalled_stretches(read_curves(cfg.out_dir / "grpo"))
    result.grpo = {
        "steps": trained.steps,
        "max_steps": cfg.grpo_steps,
        "max_seconds": seconds,
        "stalled_steps": [[s.first, s.last] for s in stalls],  # every group unanimous: nothing learned
    }
    if seconds is not None and trained.steps < cfg.grpo_steps:
        log(f"  GRPO: {trained.steps} of {cfg.grpo_steps} steps, the rest would not fit the time budget")


def screen(cfg: DemoConfig, model: str, result: DemoResult, log: Callable[[str], None]) -> Path:
    """The pairs GRPO trains on: those of the first ``screen_pairs`` the SFT judge does not solve in both
    orders (rmr1.train.screen), or the whole pool when screening is off or leaves nothing."""
    from rmr1.train.screen import screen_pairs

    data = cfg.out_dir / "data"
    pool = data / "rl_pairs.jsonl"
    if not cfg.screen_pairs:
        return pool
    run_dir = cfg.out_dir / "runs" / "screen"
    shutil.rmtree(run_dir, ignore_errors=True)  # judged by an earlier demo's checkpoint
    stats = timed(
        result,
        "screen",
        log,
        lambda: screen_pairs(
            pool,
            data / "rl_unsolved.jsonl",
            run_dir,
            limit=cfg.screen_pairs,
            report=False,
            **judge_settings(cfg, model),
        ),
    )
    result.screen = stats.to_dict()
    log(
        f"  screened {stats.screened} pairs with the SFT judge: {stats.kept} not solved in both orders "
        f"({stats.wrong_every_order} wrong in both, {stats.same_letter_text('both')})"
    )
    return stats.out if stats.kept else pool


__all__ = ["LORA", "grpo", "grpo_recipe", "grpo_seconds", "screen", "sft"]
