"""Stage 2: RLVR with TRL's GRPOTrainer and the paper's verifiable reward.

The paper's settings in TRL's terms:
- group size n -> ``num_generations``; temperature 1, top-p 1; KL as a loss term (TRL's k3 estimate) with
  ``beta`` 1e-3; clip ``epsilon`` 0.2; token-mean loss -> ``loss_type="dapo"`` (normalised by the active
  tokens of the global batch); advantages scaled by the group std -> ``scale_rewards="group"``.
- a rollout of R prompts and mini-batches of M prompts, on W processes with B completions per device:
  ``steps_per_generation`` = R*n / (B*W) and ``gradient_accumulation_steps`` = M*n / (B*W), so one rollout
  feeds R/M optimizer steps, as in the paper. The generation batch is then R*n, always divisible by n. When B
  does not divide the mini-batch, B is lowered to a size that does, and the run says so.
- max prompt 4,096 tokens: longer prompts are dropped from the dataset before training (TRL no longer cuts
  prompts); max completion 8,192 tokens.

The reward reads the completion decoded with its special tokens (the paper's rule looks at the last 80
characters of exactly that text); a completion that never reached an end-of-turn token is truncated and
gets -1.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from rmr1.errors import ConfigError, require
from rmr1.prompts import get_template
from rmr1.train.config import GRPORecipe, world_size
from rmr1.train.consistency import consistency_rewards, paired_layout
from rmr1.train.greedy_member import greedy_member_trainer
from rmr1.train.mixes import judge_prompts
from rmr1.train.pair_baseline import pair_baseline_trainer
from rmr1.train.rollouts import merged_rollout_trainer
from rmr1.train.runtime import (
    apply_extra,
    common_args,
    fit_attention,
    load_tokenizer,
    lora_config,
    make_trl_config,
    prepare_process,
    read_curves,
    require_training,
    training_callbacks,
)
from rmr1.train.sft import TrainResult, train_and_save
from rmr1.train.stalls import stalled_stretches
from rmr1.verdicts import parse_verdict, rm_r1_reward, strict_reward

# "consistent": each rollout is judged by the paper's rule, then paired across orders (rmr1.train.consistency).
REWARDS: dict[str, Callable[..., float]] = {
    "rm_r1": rm_r1_reward,
    "strict": strict_reward,
    "consistent": rm_r1_reward,
}


class JudgeReward:
    """A TRL reward function: ``f(prompts, completions, completion_ids, winner, ...) -> list[float]``."""

    def __init__(self, tokenizer: Any, kind: str = "rm_r1", stop_ids: Sequence[int] | None = None) -> None:
        if kind not in REWARDS:
            raise ConfigError(f"unknown reward {kind!r}; choose {', '.join(REWARDS)}")
        self.tokenizer = tokenizer
        self.kind = kind
        self.__name__ = f"{kind}_reward"
        ids = set(stop_ids or ())
        for extra in (tokenizer.eos_token_id, tokenizer.pad_token_id):
            if extra is not None:
                ids.add(int(extra))
        self.stop_ids = ids

    def truncated(self, ids: Sequence[int]) -> bool:
        return not ids or int(ids[-1]) not in self.stop_ids

    def score(self, ids: Sequence[int], winner: str) -> float:
        text = self.tokenizer.decode(list(ids), skip_special_tokens=False)
        return REWARDS[self.kind](text, winner, truncated=self.truncated(ids))

    def __call__(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        completion_ids: Sequence[Sequence[int]],
        winner: Sequence[str],
        log_metric: Callable[[str, float], None] | None = None,
        **_: Any,
    ) -> list[float | None]:
        rewards: list[float | None] = [
            self.score(ids, w) for ids, w in zip(completion_ids, winner, strict=True)
        ]
        if self.kind == "consistent":
            rewards = self._consistent(rewards, _.get("pair_id"), _.get("order"), log_metric)
        if log_metric is not None and rewards:
            texts = [self.tokenizer.decode(list(ids), skip_special_tokens=True) for ids in completion_ids]
            labels = [parse_verdict(t).label for t in texts]
            right = [lab == ("A" if w == "model_a" else "B") for lab, w in zip(labels, winner, strict=True)]
            log_metric("judge/accuracy", sum(right) / len(right))
            log_metric("judge/parsed", sum(lab is not None for lab in labels) / len(labels))
            log_metric("judge/truncated", sum(self.truncated(ids) for ids in completion_ids) / len(rewards))
        return rewards

    @staticmethod
    def _consistent(
        rewards: Sequence[float | None],
        pair_ids: Sequence[str] | None,
        orders: Sequence[str] | None,
        log_metric: Callable[[str, float], None] | None,
    ) -> list[float | None]:
        if pair_ids is None or orders is None:
            raise ConfigError("reward=consistent needs the dataset's pair_id and order columns")
        paired, unpaired = consistency_rewards([r is not None and r > 0 for r in rewards], pair_ids, orders)
        if log_metric is not None and paired:
            log_metric("judge/unpaired", unpaired / len(paired))
        return list(paired)


def split_rollout(recipe: GRPORecipe, world: int) -> tuple[int, int, int, list[str]]:
    """(per-device batch, gradient accumulation, steps per generation) for the recipe's prompt batches."""
    n, rollout, mini = recipe.num_generations, recipe.rollout_batch_prompts, recipe.mini_batch_prompts
    if rollout % mini:
        raise ConfigError(f"rollout_batch_prompts {rollout} must be a multiple of mini_batch_prompts {mini}")
    if (mini * n) % world:
        raise ConfigError(
            f"mini_batch_prompts x num_generations = {mini * n} completions cannot be split over "
            f"{world} processes; change mini_batch_prompts or the number of processes"
        )
    per_world = mini * n // world
    size = max(1, min(recipe.per_device_batch_size, per_world))
    while per_world % size:
        size -= 1
    notes = []
    if size != recipe.per_device_batch_size:
        notes.append(
            f"per_device_batch_size {recipe.per_device_batch_size} -> {size}: a mini-batch of {mini} "
            f"prompts x {n} generations = {mini * n} completions over {world} processes needs a divisor "
            f"of {per_world}"
        )
    return size, per_world // size, rollout * n // (size * world), notes


def pairs_both_orders(recipe: GRPORecipe) -> bool:
    """Both orders of each pair side by side in the data (and TRL's shuffle off to keep them so)."""
    return recipe.reward == "consistent" or recipe.paired_orders or recipe.advantage_group == "pair"


def grpo_args(recipe: GRPORecipe, world: int | None = None) -> tuple[dict[str, Any], list[str]]:
    world = world or world_size()
    per_device, accumulation, steps_per_generation, notes = split_rollout(recipe, world)
    args = common_args(recipe)
    args.update(
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=accumulation,
        steps_per_generation=steps_per_generation,
        num_generations=recipe.num_generations,
        num_iterations=recipe.num_iterations,
        beta=recipe.beta,
        epsilon=recipe.epsilon,
        loss_type=recipe.loss_type,
        scale_rewards=recipe.scale_rewards,
        entropy_coef=recipe.entropy_coef,
        temperature=recipe.temperature,
        top_p=recipe.top_p,
        max_completion_length=recipe.max_completion_length,
        use_vllm=recipe.use_vllm,
        # Paired orders (and the consistency reward) need both orders of a pair in one batch: the dataset is
        # laid out pair by pair and shuffled by pair already (rmr1.train.consistency), so TRL keeps that order.
        shuffle_dataset=not pairs_both_orders(recipe),
    )
    if recipe.greedy_member and (recipe.use_vllm or recipe.deepspeed):
        raise ConfigError(
            "greedy_member needs TRL's transformers rollouts on whole weights: set use_vllm: false and no "
            "deepspeed, or greedy_member: false"
        )
    if recipe.use_vllm:
        args.update(
            vllm_mode=recipe.vllm_mode,
            vllm_tensor_parallel_size=recipe.vllm_tensor_parallel_size,
            vllm_gpu_memory_utilization=recipe.vllm_gpu_memory_utilization,
        )
    from trl import GRPOConfig

    return apply_extra(args, recipe.trl, GRPOConfig), notes


def build_grpo_config(recipe: GRPORecipe, world: int | None = None) -> tuple[Any, list[str]]:
    from trl import GRPOConfig

    kwargs, notes = grpo_args(recipe, world)
    return make_trl_config(GRPOConfig, kwargs, "GRPO"), notes


def drop_long_prompts(
    records: list[dict[str, Any]], tokenizer: Any, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """Keep the records whose templated prompt fits in ``limit`` tokens (the paper drops, never cuts)."""
    kept = []
    for record in records:
        text = tokenizer.apply_chat_template(record["prompt"], tokenize=False, add_generation_prompt=True)
        if len(tokenizer(text, add_special_tokens=False)["input_ids"]) <= limit:
            kept.append(record)
    return kept, len(records) - len(kept)


def grpo_dataset(recipe: GRPORecipe, tokenizer: Any) -> tuple[Any, int]:
    """The judge-prompt dataset (prompt, winner) with overlong prompts dropped, and how many were dropped."""
    from datasets import Dataset

    path = recipe.template
    template = get_template(file=path) if path.endswith((".yaml", ".yml")) else get_template(path)
    both = pairs_both_orders(recipe)
    records = judge_prompts(
        recipe.dataset,
        split=recipe.dataset_split,
        template=template,
        limit=recipe.limit,
        both_orders=both,
    )
    kept, dropped = drop_long_prompts(records, tokenizer, recipe.max_prompt_length)
    columns = ("prompt", "winner", "pair_id", "order") if both else ("prompt", "winner")
    if both:
        kept = paired_layout(kept, recipe.seed)  # a pair that lost one order to the length limit goes too
        dropped = len(records) - len(kept)
    if not kept:
        raise ConfigError(f"every prompt is longer than max_prompt_length={recipe.max_prompt_length} tokens")
    return Dataset.from_list([{c: r[c] for c in columns} for r in kept]), dropped


def _eos_ids(model_path: str) -> list[int]:
    """The model's end-of-turn ids as its generation config lists them (several for some models)."""
    from transformers import GenerationConfig

    try:
        ids = GenerationConfig.from_pretrained(model_path).eos_token_id
    except OSError:
        return []
    if ids is None:
        return []
    return [int(i) for i in (ids if isinstance(ids, list) else [ids])]


def run_grpo(recipe: GRPORecipe, *, log: Any = print) -> TrainResult:
    require_training()
    if recipe.use_vllm:
        require(
            "vllm", what="use_vllm=true (or set use_vllm=false to generate with transformers)", extra="vllm"
        )
    from trl import GRPOTrainer

    prepare_process(recipe)
    config, notes = build_grpo_config(recipe)
    fit_attention(config, notes)
    tokenizer, model_path = load_tokenizer(recipe.model)
    dataset, dropped = grpo_dataset(recipe, tokenizer)
    if dropped:
        notes.append(f"dropped {dropped} prompts longer than {recipe.max_prompt_length} tokens")
    for note in notes:
        log(f"note: {note}")
    reward = JudgeReward(tokenizer, recipe.reward, stop_ids=_eos_ids(model_path))
    trainer_cls: type = GRPOTrainer
    if recipe.lora.enabled and recipe.lora.merge_for_rollouts:
        trainer_cls = merged_rollout_trainer(GRPOTrainer)
    if recipe.greedy_member:
        trainer_cls = greedy_member_trainer(trainer_cls)
    if recipe.advantage_group == "pair":
        trainer_cls = pair_baseline_trainer(trainer_cls)
    trainer = trainer_cls(
        model=model_path,
        reward_funcs=[reward],
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora_config(recipe.lora),
        callbacks=training_callbacks(recipe, log),
    )
    result = train_and_save(trainer, recipe, tokenizer, notes)
    return with_stall_notes(result, recipe, log)


def with_stall_notes(result: TrainResult, recipe: GRPORecipe, log: Any = print) -> TrainResult:
    """``result`` with a note (also logged) for each stretch of steps in which every group was unanimous."""
    found = [s.describe(pairs_both_orders(recipe)) for s in stalled_stretches(read_curves(recipe.output_dir))]
    for note in found:
        log(f"warning: {note}")
    return dataclasses.replace(result, notes=(*result.notes, *found)) if found else result


__all__ = [
    "REWARDS",
    "JudgeReward",
    "build_grpo_config",
    "drop_long_prompts",
    "grpo_args",
    "grpo_dataset",
    "run_grpo",
    "split_rollout",
    "with_stall_notes",
]
