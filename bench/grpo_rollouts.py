"""GRPO steps with LoRA: rollouts through PEFT's unmerged layers (TRL as is) vs merged (rmr1.train.rollouts).

Both arms are the demo's GRPO recipe (LoRA r16, fp32 or bf16 as the demo picks, groups of 4, 4 prompts a step,
128 new tokens at most) on the demo's pairs, from the same checkpoint and seed; they run alternately (A B, B A,
...) so a change in the machine's load hits both. Reported: seconds per step (TRL's own step timer, the first
step of each run left out as warm-up), the ratio, mean reward and completion length (the merged arm samples
from the same policy, so these should agree within noise), and the load average before and after.

    python bench/grpo_rollouts.py                           # the embedded model, 3 steps, 2 rounds
    python bench/grpo_rollouts.py --model runs/demo/sft     # a trained judge (what the demo's GRPO starts from)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from rmr1.demo.config import DemoConfig
from rmr1.demo.pipeline import prepare_task
from rmr1.demo.training import grpo_recipe
from rmr1.models import resolve_model
from rmr1.threads import load_average
from rmr1.train.grpo import run_grpo


def one_run(cfg: DemoConfig, model: str, out: Path, merged: bool) -> dict[str, Any]:
    data = cfg.out_dir / "data" / "rl_pairs.jsonl"
    lora = {"merge_for_rollouts": merged, "merge": False}  # no merged save: only the steps are timed
    recipe = grpo_recipe(cfg, model, data, out, lora=lora)
    run_grpo(recipe, log=lambda *_: None)
    rows = [json.loads(line) for line in (out / "curves.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "step_time" in r]
    return {
        "step_s": [r["step_time"] for r in steps[1:]],  # the first step warms up (allocations, caches)
        "reward": [r["reward"] for r in steps],
        "length": [r["completions/mean_length"] for r in steps],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint (default: the embedded model)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    args = parser.parse_args()
    args.model = resolve_model(args.model)
    print(f"load average before: {load_average()}  model: {args.model}", flush=True)
    results: dict[str, dict[str, list[float]]] = {
        arm: {"step_s": [], "reward": [], "length": []} for arm in ("unmerged", "merged")
    }
    with tempfile.TemporaryDirectory() as tmp:
        cfg = DemoConfig(
            out_dir=Path(tmp) / "demo",
            train_pairs=args.prompts * args.steps,
            distill_pairs=0,  # every pair goes to GRPO
            test_pairs=4,
            grpo_steps=args.steps,
            grpo_prompts=args.prompts,
            num_generations=args.generations,
            max_new_tokens=args.max_new_tokens,
        )
        prepare_task(cfg)
        for round_ in range(args.rounds):
            arms = ("unmerged", "merged") if round_ % 2 == 0 else ("merged", "unmerged")
            for arm in arms:
                out = Path(tmp) / f"{arm}-{round_}"
                got = one_run(cfg, args.model, out, merged=arm == "merged")
                for key, values in got.items():
                    results[arm][key].extend(values)
                print(f"round {round_} {arm}: {json.dumps(got)}  load {load_average()}", flush=True)
    means = {arm: {k: statistics.fmean(v) for k, v in r.items()} for arm, r in results.items()}
    for arm, m in means.items():
        print(f"{arm:9s} {m['step_s']:6.1f} s/step  reward {m['reward']:+.2f}  length {m['length']:.1f}")
    print(f"merged / unmerged step time: {means['merged']['step_s'] / means['unmerged']['step_s']:.2f}")
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
