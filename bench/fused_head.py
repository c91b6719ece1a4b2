"""SFT and GRPO steps with TRL's fused LM head projecting every position (TRL on CPU) vs only the labelled ones.

Both arms are the demo's recipes (LoRA r16, bf16 where the CPU has it) on the demo's distilled traces and GRPO
pairs, from the same checkpoint and seed. They run alternately (A B, B A, ...) in this process, so a change in
the machine's load hits both. The "every position" arm restores TRL's own path choice; the "labelled" arm is
what rmr1.train.fused_head makes of it. Reported: seconds per SFT step (the run's train_runtime over its
steps), seconds per GRPO step (TRL's step timer, the first step left out as warm-up), the ratios, whether the
losses agree, and the load average before and after.

    python bench/fused_head.py                   # 6 SFT steps and 3 GRPO steps a run, 2 rounds
    python bench/fused_head.py --grpo-steps 0    # SFT only (about 3 minutes)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import trl.trainer.utils as trl_utils

from rmr1.demo.config import DemoConfig
from rmr1.demo.pipeline import prepare_task
from rmr1.demo.task import ArithmeticTeacher
from rmr1.demo.training import grpo_recipe, sft
from rmr1.models import resolve_model
from rmr1.threads import load_average
from rmr1.train import fused_head
from rmr1.train.distill import DistillConfig, distill
from rmr1.train.grpo import run_grpo
from rmr1.train.runtime import read_curves

TRL_CHOICE = trl_utils._use_triton
ARMS = ("every", "labelled")


@contextmanager
def arm(name: str) -> Iterator[None]:
    """Within the block TRL chooses the path ("every") or rmr1's switch does ("labelled"); TRL's own choice
    is back afterwards either way."""
    switch = fused_head.compact_on_cpu
    if name == "every":
        fused_head.compact_on_cpu = lambda: False  # type: ignore[assignment]
    try:
        yield
    finally:
        fused_head.compact_on_cpu = switch
        trl_utils._use_triton = TRL_CHOICE


def sft_run(cfg: DemoConfig, model: str, data: Path, out: Path) -> dict[str, Any]:
    sft(cfg, model, data, out, log=lambda _: None)
    rows = read_curves(out)
    done = [r for r in rows if "train_runtime" in r][-1]
    return {
        "step_s": [done["train_runtime"] / cfg.sft_steps],
        "loss": [r["loss"] for r in rows if "loss" in r],
    }


def grpo_run(cfg: DemoConfig, model: str, data: Path, out: Path) -> dict[str, Any]:
    recipe = grpo_recipe(cfg, model, data, out)
    run_grpo(
        dataclasses.replace(recipe, lora=dataclasses.replace(recipe.lora, merge=False)), log=lambda _: None
    )
    steps = [r for r in read_curves(out) if "step_time" in r]
    return {"step_s": [r["step_time"] for r in steps[1:]], "loss": [r["loss"] for r in steps]}


def compare(name: str, rounds: int, run: Callable[[str, Path], dict[str, Any]], root: Path) -> None:
    got: dict[str, dict[str, list[float]]] = {arm: {"step_s": [], "loss": []} for arm in ARMS}
    for round_ in range(rounds):
        for which in ARMS if round_ % 2 == 0 else ARMS[::-1]:
            with arm(which):
                one = run(which, root / f"{name}-{which}-{round_}")
            for key, values in one.items():
                got[which][key].extend(values)
            print(f"{name} round {round_} {which}: {json.dumps(one)}  load {load_average()}", flush=True)
    every, labelled = (statistics.fmean(got[arm]["step_s"]) for arm in ARMS)
    pairs = zip(got["every"]["loss"], got["labelled"]["loss"], strict=True)
    same = all(abs(a - b) <= 1e-3 * max(1.0, abs(a)) for a, b in pairs)
    print(
        f"{name}: every position {every:.1f} s/step, labelled only {labelled:.1f} s/step, "
        f"ratio {labelled / every:.2f}, losses {'agree' if same else 'DIFFER'}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint (default: the embedded model)")
    parser.add_argument("--sft-steps", type=int, default=6)
    parser.add_argument("--grpo-steps", type=int, default=3, help="0: SFT only")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    model = resolve_model(args.model)
    print(f"load average before: {load_average()}  model: {model}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cfg = DemoConfig(out_dir=root / "demo", sft_steps=args.sft_steps, grpo_steps=args.grpo_steps)
        prompts = prepare_task(cfg)
        teacher = ArithmeticTeacher(cfg.careless_share, seed=cfg.seed)
        distill(teacher, prompts, cfg.out_dir / "distill", DistillConfig(max_new_tokens=cfg.max_new_tokens))
        traces = cfg.out_dir / "distill" / "train.jsonl"
        compare("SFT", args.rounds, lambda arm, out: sft_run(cfg, model, traces, out), root)
        if args.grpo_steps:
            # GRPO from a judge that answers in the format (the last SFT run), as the demo's GRPO does
            judge = str(next(p for p in sorted(root.glob("SFT-labelled-*")) if (p / "config.json").exists()))
            pairs = cfg.out_dir / "data" / "rl_pairs.jsonl"
            compare("GRPO", args.rounds, lambda arm, out: grpo_run(cfg, judge, pairs, out), root)
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
