"""Run by test_grpo_multiprocess.py on two CPU processes (``accelerate launch``): a tiny GRPO run whose
per-rank slices split prompt groups, with a scripted judge. Each rank logs, per reward call, what it was given
and what it returned, and which groups its scorer judged; the test checks them together."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rmr1.backends.mock import MockBackend
from rmr1.judge import Judge, JudgeConfig
from rmr1.rewards import AsyncJudgeReward, JudgeReward
from rmr1.rewards.groups import Group, GroupScore, LocalScorer
from rmr1.types import GenerationRequest

PROMPTS = [f"Question {i}: say something about the number {i}." for i in range(6)]


def _response(text: str, name: str) -> str:
    found = re.search(
        rf"=== Chatbot {name}: response begins ===\n(.*?)\n=== Chatbot {name}: response ends", text, re.S
    )
    return found.group(1) if found else ""


def longer_wins(request: GenerationRequest) -> str:
    """The scripted judge: the longer response wins (then the later in sort order); equal ones: no verdict."""
    text = request.messages[-1].content
    a, b = _response(text, "A"), _response(text, "B")
    if a == b:
        return "no verdict"
    return "<answer>[[A]]</answer>" if (len(a), a) > (len(b), b) else "<answer>[[B]]</answer>"


class Logged:
    """A scorer that records the groups it judges."""

    def __init__(self, inner: LocalScorer, log: Path) -> None:
        self.inner, self.log = inner, log

    def _note(self, groups: Sequence[Group]) -> None:
        with self.log.open("a") as out:
            out.write(json.dumps([[g.prompt[-1].content, list(g.responses)] for g in groups]) + "\n")

    def score(self, groups: Sequence[Group], method: str) -> list[GroupScore]:
        self._note(groups)
        return self.inner.score(groups, method)

    async def ascore(self, groups: Sequence[Group], method: str) -> list[GroupScore]:
        self._note(groups)
        return await self.inner.ascore(groups, method)


def recorded(reward: Any, log: Path) -> Any:
    """The reward, logging (prompts, completions, rewards) per call; async rewards stay async."""

    def write(prompts: Any, completions: Any, rewards: list[Any]) -> None:
        with log.open("a") as out:
            out.write(json.dumps({"prompts": prompts, "completions": completions, "rewards": rewards}) + "\n")

    if isinstance(reward, AsyncJudgeReward):

        async def arun(prompts: Any, completions: Any, **columns: Any) -> list[Any]:
            rewards = await reward(prompts, completions, **columns)
            write(prompts, completions, rewards)
            return rewards

        arun.__name__ = reward.__name__
        return arun

    def run(prompts: Any, completions: Any, **columns: Any) -> list[Any]:
        rewards = reward(prompts, completions, **columns)
        write(prompts, completions, rewards)
        return rewards

    run.__name__ = reward.__name__
    return run


def main(policy: str, out: Path) -> None:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    rank = int(os.environ["RANK"])
    judge = Judge(MockBackend(script=longer_wins), "plain", JudgeConfig(max_new_tokens=8))
    rewards = [
        # num_generations known: the 3-completion slices split a group, so the batch is gathered
        recorded(JudgeReward(Logged(LocalScorer(judge), out / f"scored-sync-{rank}.jsonl"),
                             num_generations=2, name="sync"), out / f"calls-sync-{rank}.jsonl"),
        # groups found by equal prompts: always gathered under several processes
        recorded(AsyncJudgeReward(Logged(LocalScorer(judge), out / f"scored-async-{rank}.jsonl"),
                                  name="async"), out / f"calls-async-{rank}.jsonl"),
    ]  # fmt: skip
    config = GRPOConfig(
        output_dir=str(out / "trainer"),
        use_cpu=True,
        bf16=False,
        fp16=False,
        per_device_train_batch_size=3,  # 2 ranks x 3 = 3 groups of 2: the middle group spans both ranks
        num_generations=2,
        max_completion_length=8,
        max_steps=2,
        learning_rate=1e-5,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=0,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    data = Dataset.from_dict({"prompt": PROMPTS})
    trainer = GRPOTrainer(model=policy, reward_funcs=rewards, args=config, train_dataset=data)
    trainer.train()
    world = trainer.accelerator.num_processes
    print(
        f"rank {rank} of {world} trained {trainer.state.global_step} steps ({trainer.accelerator.distributed_type})"
    )


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
