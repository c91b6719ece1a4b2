"""GRPO with a pairwise judge as the reward, small enough to finish on a laptop CPU (TRL + rmr1).

    python examples/trl_grpo_judge.py --policy POLICY --judge-model JUDGE [--out runs/grpo-judge]
    python examples/trl_grpo_judge.py --policy POLICY --judge-url http://127.0.0.1:8000

Each prompt's completions play a round robin judged by the rmr1 judge (win rate -> reward in [-1, 1]; a draw
or an unparsed verdict is half a win, so every completion gets a defined reward). The judge runs in this
process (``--judge-model``) or on an ``rmr1 serve`` server (``--judge-url``). Without ``--policy`` a tiny
random policy is built (``rmr1.testing.build_tiny_model``), which shows the plumbing, not learning.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

PROMPTS = [
    ("What is 12 plus 30?", "12 plus 30 is 42."),
    ("Name a colour of the sky.", "The sky is often blue."),
    ("Say hello politely.", "Hello, it is nice to meet you."),
    ("Which is larger, 3 or 5?", "5 is larger than 3."),
]


def make_reward(
    *,
    judge_model: str | None = None,
    judge_url: str | None = None,
    method: str = "round_robin",
    num_generations: int = 2,
    max_new_tokens: int = 8,
    token: str | None = None,
) -> Any:
    """A TRL reward function backed by a local judge or a judge server."""
    from rmr1.rewards import JudgeReward

    if judge_url:
        from rmr1.serve.client import RemoteScorer

        return JudgeReward(
            RemoteScorer(judge_url, token=token), method=method, num_generations=num_generations
        )
    from rmr1.backends import make_backend
    from rmr1.judge import Judge, JudgeConfig

    judge = Judge(
        make_backend("hf", judge_model, dtype="float32"), "plain", JudgeConfig(max_new_tokens=max_new_tokens)
    )
    return JudgeReward(judge, method=method, num_generations=num_generations)


def train(
    policy: str,
    reward_funcs: list[Any],
    out_dir: str,
    *,
    num_generations: int = 2,
    max_steps: int = 2,
    max_completion_length: int = 16,
) -> Any:
    """A short CPU GRPO run; returns the trainer (its ``state.log_history`` holds the rewards)."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    data = Dataset.from_dict({"prompt": [p for p, _ in PROMPTS], "reference": [r for _, r in PROMPTS]})
    config = GRPOConfig(
        output_dir=out_dir,
        use_cpu=True,
        bf16=False,
        fp16=False,
        activation_checkpointing=False,
        per_device_train_batch_size=2 * num_generations,  # two prompts per step, each with its group
        num_generations=num_generations,
        max_completion_length=max_completion_length,
        max_steps=max_steps,
        learning_rate=1e-5,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=0,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = GRPOTrainer(model=policy, reward_funcs=reward_funcs, args=config, train_dataset=data)
    trainer.train()
    return trainer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--policy", help="policy checkpoint (default: a tiny random one)")
    parser.add_argument(
        "--judge-model", help="judge checkpoint for an in-process judge (default: the policy)"
    )
    parser.add_argument("--judge-url", help="an rmr1 serve URL instead of an in-process judge")
    parser.add_argument("--token", help="bearer token of the judge server")
    parser.add_argument("--method", default="round_robin", choices=["round_robin", "knockout", "reference"])
    parser.add_argument("--max-steps", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="rmr1-grpo-"))
    policy = args.policy
    if policy is None:
        from rmr1.testing import build_tiny_model

        policy = str(build_tiny_model(work / "policy"))
    reward = make_reward(
        judge_model=args.judge_model or policy, judge_url=args.judge_url, method=args.method, token=args.token
    )
    trainer = train(policy, [reward], args.out or str(work / "out"), max_steps=args.max_steps)
    for row in trainer.state.log_history:
        if "reward" in row:
            print(f"step {row.get('step')}: reward {row['reward']:.3f}")


if __name__ == "__main__":
    main()
