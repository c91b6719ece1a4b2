"""Stage 1: SFT on teacher traces with TRL's SFTTrainer, loss on the assistant trace only.

The recipe's global batch is split over the devices at hand: gradient accumulation =
global batch / (per-device batch x world size). When that does not divide, the per-device batch is lowered to
the largest size that does, and the run says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rmr1.errors import ConfigError, InputError
from rmr1.train.config import GRPORecipe, SFTRecipe, world_size
from rmr1.train.mixes import load_rows
from rmr1.train.runtime import (
    apply_extra,
    common_args,
    fit_attention,
    load_tokenizer,
    lora_config,
    make_trl_config,
    prepare_process,
    require_training,
    save_final,
    training_callbacks,
)


@dataclass(frozen=True)
class TrainResult:
    output_dir: Path
    steps: int
    seconds: float
    metrics: dict[str, Any]
    notes: tuple[str, ...] = ()


def train_and_save(
    trainer: Any, recipe: SFTRecipe | GRPORecipe, tokenizer: Any, notes: list[str]
) -> TrainResult:
    """Run a built TRL trainer, save the final model, and report steps, time and metrics (both stages)."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # its raw dicts are in curves.jsonl; StepLines prints a line
    started = time.perf_counter()
    output = trainer.train()
    seconds = time.perf_counter() - started
    out = save_final(trainer, recipe, tokenizer)
    return TrainResult(out, trainer.state.global_step, seconds, dict(output.metrics), tuple(notes))


def split_batch(global_batch: int, per_device: int, world: int) -> tuple[int, int, list[str]]:
    """(per-device batch, gradient accumulation) whose product with ``world`` is ``global_batch``."""
    notes: list[str] = []
    if global_batch % world:
        raise ConfigError(f"global_batch_size {global_batch} is not divisible by the {world} processes")
    per_world = global_batch // world
    size = min(per_device, per_world)
    while per_world % size:
        size -= 1
    if size != per_device:
        notes.append(
            f"per_device_batch_size {per_device} -> {size} so that {global_batch} = {size} x "
            f"{per_world // size} accumulation x {world} processes"
        )
    return size, per_world // size, notes


def sft_args(recipe: SFTRecipe, world: int | None = None) -> tuple[dict[str, Any], list[str]]:
    """The SFTConfig keyword arguments for ``recipe`` on ``world`` processes, and notes on adjustments."""
    world = world or world_size()
    per_device, accumulation, notes = split_batch(
        recipe.global_batch_size, recipe.per_device_batch_size, world
    )
    args = common_args(recipe)
    scheduler_kwargs = (
        {"min_lr_rate": recipe.min_lr_ratio} if recipe.lr_scheduler == "cosine_with_min_lr" else {}
    )
    args.update(
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=accumulation,
        lr_scheduler_kwargs=scheduler_kwargs,
        adam_beta1=recipe.adam_beta1,
        adam_beta2=recipe.adam_beta2,
        weight_decay=recipe.weight_decay,
        max_length=recipe.max_length,
        packing=recipe.packing,
        assistant_only_loss=recipe.assistant_only_loss,
        dataset_num_proc=None,
    )
    from trl import SFTConfig

    return apply_extra(args, recipe.trl, SFTConfig), notes


def build_sft_config(recipe: SFTRecipe, world: int | None = None) -> tuple[Any, list[str]]:
    """The TRL SFTConfig object, as the trainer would receive it."""
    from trl import SFTConfig

    kwargs, notes = sft_args(recipe, world)
    return make_trl_config(SFTConfig, kwargs, "SFT"), notes


def load_sft_rows(recipe: SFTRecipe) -> Any:
    """The conversational dataset (``messages`` ending with the assistant trace), other columns dropped."""
    rows = load_rows(recipe.dataset, recipe.dataset_split)
    if "messages" not in rows.column_names:
        raise InputError(
            "missing: SFT data needs a 'messages' column (rmr1 distill writes one)",
            source=recipe.dataset,
            field="messages",
        )
    if recipe.limit is not None:
        rows = rows.select(range(min(recipe.limit, len(rows))))
    for i, messages in enumerate(rows["messages"]):
        if not messages or messages[-1].get("role") != "assistant":
            raise InputError(
                "the last message must be the assistant trace",
                source=recipe.dataset,
                line=i + 1,
                field="messages",
            )
    return rows.select_columns(["messages"])


def run_sft(recipe: SFTRecipe, *, log: Any = print) -> TrainResult:
    """Train, save the model (merged when LoRA) into ``recipe.output_dir``, return what happened."""
    require_training()
    from trl import SFTTrainer

    prepare_process(recipe)
    config, notes = build_sft_config(recipe)
    fit_attention(config, notes)
    for note in notes:
        log(f"note: {note}")
    tokenizer, model_path = load_tokenizer(recipe.model, recipe.chat_template_file, for_sft=True)
    rows = load_sft_rows(recipe)
    trainer = SFTTrainer(
        model=model_path,
        args=config,
        train_dataset=rows,
        processing_class=tokenizer,
        peft_config=lora_config(recipe.lora),
        callbacks=training_callbacks(recipe, log),
    )
    return train_and_save(trainer, recipe, tokenizer, notes)


__all__ = [
    "TrainResult",
    "build_sft_config",
    "load_sft_rows",
    "run_sft",
    "sft_args",
    "split_batch",
    "train_and_save",
]
