"""What the SFT and GRPO stages share: precision, LoRA, tokenizer, the curves log and the final save."""

from __future__ import annotations

import csv
import dataclasses
import json
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from rmr1.errors import ConfigError, require
from rmr1.models import check_causal_lm, resolve_model
from rmr1.train.config import GRPORecipe, LoraSettings, SFTRecipe, world_size

CURVES_JSONL, CURVES_CSV = "curves.jsonl", "curves.csv"


def require_training() -> None:
    require("trl", what="training", extra="training")
    require("peft", what="training", extra="training")


def prepare_process(recipe: SFTRecipe | GRPORecipe) -> None:
    """What a training run sets up in its process before TRL builds a trainer: the torch threads, TRL's
    fused LM head scoring only the labelled positions on CPU too (rmr1.train.fused_head), and quiet for a
    deprecation only our dependencies can act on: peft 0.21 and TRL 1.16 read the model's
    ``is_gradient_checkpointing``, which transformers 5.23 renamed (our own arguments use the new name:
    ``checkpointing_args``)."""
    from rmr1.threads import apply_threads
    from rmr1.train import fused_head

    apply_threads(recipe.threads)
    fused_head.compact_on_cpu()
    warnings.filterwarnings(
        "ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning
    )


def end_distributed() -> None:
    """At the end of a training process: wait for every rank (the main one may still be saving), then tear the
    process group down. A rank that exits with its gloo group alive can abort in the group's destructor
    ("terminate called without an active exception", exit -6) after a run that trained and saved fine; seen
    once in the two-process accelerate test. Nothing to do in a single process."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def precision_args(precision: str) -> dict[str, Any]:
    """TrainingArguments switches for a precision; TRL defaults to bf16, so each one is set explicitly."""
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


def model_dtype(precision: str) -> str:
    return {"bf16": "bfloat16", "fp16": "float16"}.get(precision, "float32")


_FLASH = ("flash_attention_2", "flash_attention_3")


def attention_for_machine(requested: str | None) -> tuple[str | None, str | None]:
    """(attn_implementation to use, a note when it differs): flash attention needs flash_attn and CUDA.

    The paper presets ask for flash_attention_2; on a machine without it transformers would stop the run at
    model load, while sdpa computes the same attention, only with more memory.
    """
    if requested not in _FLASH:
        return requested, None
    import importlib.util

    missing = [
        why
        for why, absent in (
            ("the flash_attn package is not installed", importlib.util.find_spec("flash_attn") is None),
            ("no CUDA device", not _has_gpu()),
        )
        if absent
    ]
    if not missing:
        return requested, None
    return "sdpa", f"attn_implementation {requested} -> sdpa: {' and '.join(missing)}"


def fit_attention(config: Any, notes: list[str]) -> None:
    """Swap flash attention for sdpa in a built TRL config when this machine cannot run it, with a note.

    Done at run time, not in the config builders, so a config built for the paper's cluster keeps its values.
    """
    init = dict(getattr(config, "model_init_kwargs", None) or {})
    attn, note = attention_for_machine(init.get("attn_implementation"))
    if note:
        config.model_init_kwargs = {**init, "attn_implementation": attn}
        notes.append(note)


def checkpointing_args(enabled: bool) -> dict[str, Any]:
    """The activation checkpointing switch under the name this transformers reads. transformers 5.23 renamed
    ``gradient_checkpointing[_kwargs]`` to ``activation_checkpointing[_kwargs]`` and warns whenever the new name
    is unset, which TRL's configs (whose own default sets the old name to True) always leave it; the old names
    then mirror the new one, so TRL's trainers, which read the old name, see the value given. Earlier
    releases know only the old names."""
    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    key = "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"
    args: dict[str, Any] = {key: enabled}
    if enabled:
        args[f"{key}_kwargs"] = {"use_reentrant": False}
    return args


def common_args(recipe: SFTRecipe | GRPORecipe) -> dict[str, Any]:
    """TrainingArguments values both stages set the same way."""
    init_kwargs: dict[str, Any] = {"dtype": model_dtype(recipe.precision)}
    if recipe.attn_implementation:
        init_kwargs["attn_implementation"] = recipe.attn_implementation
    args: dict[str, Any] = {
        "output_dir": recipe.output_dir,
        "num_train_epochs": recipe.num_train_epochs,
        "max_steps": recipe.max_steps,
        "learning_rate": recipe.learning_rate,
        "lr_scheduler_type": recipe.lr_scheduler,
        "warmup_steps": recipe.warmup_ratio,  # < 1: a ratio
        "max_grad_norm": recipe.max_grad_norm,
        "seed": recipe.seed,
        "logging_steps": recipe.logging_steps,
        "save_strategy": recipe.save_strategy,
        "report_to": recipe.report_to,
        "deepspeed": recipe.deepspeed,
        "disable_tqdm": True,
        "model_init_kwargs": init_kwargs,
        **precision_args(recipe.precision),
        **checkpointing_args(recipe.gradient_checkpointing),
    }
    if not _has_gpu():
        # bf16 autocast on a CPU needs it (TrainingArguments refuses bf16 without a GPU otherwise), and under
        # torchrun-style launches (`accelerate launch --multi_gpu` on a CPU box) it makes accelerate run the
        # ranks as MULTI_CPU over gloo instead of looking for GPUs.
        args["use_cpu"] = True
    return args


def _has_gpu() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def apply_extra(args: dict[str, Any], extra: Mapping[str, Any], config_cls: type) -> dict[str, Any]:
    """Recipe ``trl:`` options go through after a check that TRL knows each one."""
    known = {f.name for f in dataclasses.fields(config_cls)}
    for key in extra:
        if key not in known:
            raise ConfigError(f"unknown config key 'trl.{key}': {config_cls.__name__} has no such option")
    return {**args, **extra}


def make_trl_config(config_cls: type, kwargs: dict[str, Any], stage: str) -> Any:
    """Build a TRL config object; TRL's own validation errors become one-line ConfigErrors."""
    try:
        return config_cls(**kwargs)
    except ValueError as exc:
        raise ConfigError(f"TRL rejected the {stage} settings: {str(exc).splitlines()[0]}") from None


def lora_config(settings: LoraSettings) -> Any:
    if not settings.enabled:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_modules,
        task_type="CAUSAL_LM",
    )


def load_tokenizer(model: str, template_file: str | None = None, *, for_sft: bool = False) -> tuple[Any, str]:
    """The tokenizer (with a marked training chat template for SFT) and the resolved model path."""
    from transformers import AutoTokenizer

    from rmr1.train.chat_template import training_chat_template

    path = resolve_model(model or None)
    check_causal_lm(path)  # a wrong checkpoint fails here in one line, not deep inside TRL
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    if for_sft or template_file:
        tokenizer.chat_template = training_chat_template(tokenizer, template_file)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, path


class CurveLogger(TrainerCallback):  # type: ignore[misc]
    """Appends every logged metric row to ``curves.jsonl`` and rewrites ``curves.csv`` at the end."""

    def __init__(self, out_dir: str | Path) -> None:
        self.path = Path(out_dir) / CURVES_JSONL
        self.rows: list[dict[str, Any]] = []

    def on_log(
        self, args: Any, state: Any, control: Any, logs: Mapping[str, Any] | None = None, **_: Any
    ) -> None:
        if not state.is_world_process_zero or not logs:
            return
        row = {"step": state.global_step, **{k: v for k, v in logs.items() if isinstance(v, (int, float))}}
        self.rows.append(row)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")

    def on_train_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        if state.is_world_process_zero:
            write_csv(self.rows, self.path.with_name(CURVES_CSV))


class TimeBudget(TrainerCallback):  # type: ignore[misc]
    """Ends training before a step that would finish past ``seconds`` of training (the next step is
    expected to take as long as the mean step so far). At least one step always runs; the model is saved
    as after any run. One process only: ranks timing themselves could disagree on when to stop."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = 0.0
        self.stopped_early = False

    def on_train_begin(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        self.started = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        elapsed = time.perf_counter() - self.started
        step_time = elapsed / max(1, state.global_step)
        if state.global_step < state.max_steps and elapsed + step_time > self.seconds:
            control.should_training_stop = True
            self.stopped_early = True


# what a step's line shows, in this order (every logged value is in curves.jsonl)
STEP_FIELDS = (
    ("loss", "loss"),
    ("reward", "reward"),
    ("judge/accuracy", "rollout accuracy"),
    ("kl", "kl"),
    ("completions/mean_length", "length"),
    ("step_time", "time"),
)


def step_line(step: int, max_steps: int, logs: Mapping[str, Any]) -> str | None:
    """'step 3/16: loss 0.0219, reward 0.125, rollout accuracy 56%, kl 0.00123, length 93, time 27.3s',
    or None for a row without any of the step fields (the closing summary)."""
    parts = []
    for key, label in STEP_FIELDS:
        value = logs.get(key)
        if not isinstance(value, (int, float)):
            continue
        if key == "judge/accuracy":
            parts.append(f"{label} {value:.0%}")
        elif key == "step_time":
            parts.append(f"{label} {value:.1f}s")
        else:
            parts.append(f"{label} {value:.3g}")
    return f"step {step}/{max_steps}: " + ", ".join(parts) if parts else None


class StepLines(TrainerCallback):  # type: ignore[misc]
    """One short line per logged step through the run's ``log``, in place of the metrics dict transformers
    prints when its progress bar is off (train_and_save removes that printer)."""

    def __init__(self, log: Callable[[str], Any]) -> None:
        self.log = log

    def on_log(
        self, args: Any, state: Any, control: Any, logs: Mapping[str, Any] | None = None, **_: Any
    ) -> None:
        if not state.is_world_process_zero or not logs or "train_runtime" in logs:
            return
        line = step_line(state.global_step, state.max_steps, logs)
        if line is not None:
            self.log(line)


def training_callbacks(recipe: SFTRecipe | GRPORecipe, log: Callable[[str], Any] | None = None) -> list[Any]:
    """The curves log, a line per step through ``log`` when given, and the time budget when the recipe sets
    ``max_seconds``."""
    callbacks: list[Any] = [CurveLogger(recipe.output_dir)]
    if log is not None:
        callbacks.append(StepLines(log))
    if recipe.max_seconds is not None:
        if recipe.max_seconds <= 0:
            raise ConfigError(f"max_seconds must be positive, got {recipe.max_seconds}")
        if world_size() > 1:
            raise ConfigError("max_seconds is for single-process runs; set max_steps for a launch of several")
        callbacks.append(TimeBudget(recipe.max_seconds))
    return callbacks


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def read_curves(out_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(out_dir) / CURVES_JSONL
    if not path.is_file():
        return []
    from rmr1.jsonl import read_jsonl

    return [row for _, row in read_jsonl(path, tolerate_torn_tail=True)]  # a run killed mid-write


def save_final(trainer: Any, recipe: SFTRecipe | GRPORecipe, tokenizer: Any) -> Path:
    """Save the trained model (LoRA merged unless told otherwise), tokenizer and recipe into output_dir."""
    out = Path(recipe.output_dir)
    model = trainer.model
    sharded = trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled  # merge the gathered weights offline
    if recipe.lora.enabled and recipe.lora.merge and not sharded and hasattr(model, "merge_and_unload"):
        if trainer.accelerator.is_main_process:
            merged = trainer.accelerator.unwrap_model(model).merge_and_unload()
            merged.save_pretrained(str(out))
    else:
        trainer.save_model(str(out))
    if trainer.accelerator.is_main_process:
        tokenizer.save_pretrained(str(out))
        # The processes that trained it, so a multi-process run can be told from one that fell back to one.
        info = {**dataclasses.asdict(recipe), "num_processes": trainer.accelerator.num_processes}
        (out / "recipe.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return out


__all__ = [
    "CURVES_CSV",
    "CURVES_JSONL",
    "CurveLogger",
    "StepLines",
    "TimeBudget",
    "apply_extra",
    "attention_for_machine",
    "common_args",
    "fit_attention",
    "load_tokenizer",
    "lora_config",
    "model_dtype",
    "precision_args",
    "prepare_process",
    "read_curves",
    "require_training",
    "save_final",
    "step_line",
    "training_callbacks",
    "write_csv",
]
