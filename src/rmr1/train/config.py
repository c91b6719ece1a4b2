"""Training recipes: one dataclass per stage is the single source of truth; YAML files and ``key=value``
overrides only fill it.

A recipe speaks the paper's language (global batch, rollout and mini-batch sizes in prompts, group size); the
stage modules translate it into TRL's options for the world size at hand. ``--config`` takes a YAML path or
the name of a preset shipped in ``rmr1/train/presets`` (``rmr1 train sft --config tiny-cpu-sft``).
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from rmr1.errors import ConfigError
from rmr1.textio import read_text

PRESETS_DIR = Path(__file__).parent / "presets"
PRECISIONS = ("bf16", "fp16", "fp32")


@dataclass
class LoraSettings:
    """Optional LoRA (peft); off unless ``lora=true``."""

    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: str = "all-linear"
    merge: bool = True  # save the merged model (a plain checkpoint) rather than the adapter alone
    # GRPO: generate rollouts with the adapter merged (rmr1.train.rollouts); holds a second copy of the adapted
    # weights while generating, so turn it off when memory is tight
    merge_for_rollouts: bool = True


@dataclass
class SFTRecipe:
    """Stage 1: supervised fine-tuning on teacher traces (loss on the assistant trace only)."""

    dataset: str = ""  # JSONL/JSON/Parquet file, folder or hub id with a 'messages' column
    model: str = ""  # hub id, local checkpoint, or empty for the embedded SmolLM2-135M-Instruct
    output_dir: str = "runs/sft"
    dataset_split: str = "train"
    limit: int | None = None  # use the first N rows only
    chat_template_file: str | None = None  # a Jinja file with {% generation %} markers, overrides the model's
    num_train_epochs: float = 1.0
    max_steps: int = -1  # > 0 overrides epochs
    max_seconds: float | None = None  # stop before a step that would end past this much training time
    learning_rate: float = 5e-6
    lr_scheduler: str = "cosine_with_min_lr"
    min_lr_ratio: float = 0.1  # cosine floor as a fraction of the peak lr
    warmup_ratio: float = 0.03
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    global_batch_size: int = 128  # sequences per optimizer step, over all devices
    per_device_batch_size: int = 1
    max_length: int = 12288
    packing: bool = True
    assistant_only_loss: bool = True
    precision: str = "bf16"  # bf16, fp16 or fp32 (CPU: fp32)
    attn_implementation: str | None = None  # e.g. flash_attention_2 (what packing without padding wants)
    gradient_checkpointing: bool = True
    lora: LoraSettings = field(default_factory=LoraSettings)
    deepspeed: str | None = None  # a DeepSpeed JSON (or use an accelerate config with DeepSpeed)
    seed: int = 42
    threads: int | None = None  # CPU torch threads; None: rmr1.threads chooses from the free cores
    logging_steps: int = 1
    save_strategy: str = "no"  # the final model is always saved; "steps"/"epoch" add checkpoints
    report_to: str = "none"
    trl: dict[str, Any] = field(default_factory=dict)  # any further SFTConfig option, passed as is


@dataclass
class GRPORecipe:
    """Stage 2: RL with verifiable rewards (GRPO) on judge prompts labelled with ``winner``."""

    dataset: str = ""  # judge prompts (prompt + winner) or preference pairs (converted with ``template``)
    model: str = ""
    output_dir: str = "runs/grpo"
    dataset_split: str = "train"
    limit: int | None = None
    template: str = "cor"  # judge template for preference-pair datasets: cor, reasoning, ... or a YAML file
    # rm_r1 (the paper's last-80-characters rule), strict (the strict parser) or consistent (J1-style: +1 only
    # when right in both orders of the pair, rmr1.train.consistency; the data then holds both orders)
    reward: str = "rm_r1"
    # Each pair in both orders, side by side in one rollout (AB then BA), whatever the reward: a batch whose
    # positions balance pair by pair, so a drift toward one letter earns nothing (always on for consistent)
    paired_orders: bool = False
    # prompt: each prompt's rollouts form a GRPO group (TRL's); pair: both orders of a pair form one group of
    # 2n, so a judge that answers one letter whatever the order still gets a gradient (rmr1.train.pair_baseline;
    # implies paired_orders)
    advantage_group: str = "prompt"
    # the first rollout of each prompt's group is the policy's greedy answer, not a sample, so the answer the
    # evaluation would give is rewarded or penalised directly (rmr1.train.greedy_member; transformers rollouts)
    greedy_member: bool = False
    num_generations: int = 7  # group size n
    rollout_batch_prompts: int = 1024  # prompts per generation round
    mini_batch_prompts: int = 128  # prompts per optimizer step
    per_device_batch_size: int = 4  # completions per device per forward pass
    num_iterations: int = 1  # PPO epochs over each rollout
    num_train_epochs: float = 1.0
    max_steps: int = -1
    max_seconds: float | None = None  # stop before a step that would end past this much training time
    learning_rate: float = 1e-6
    lr_scheduler: str = "constant"
    warmup_ratio: float = 0.0
    beta: float = 1e-3  # KL coefficient (k3 estimator, as a loss term)
    epsilon: float = 0.2  # clip range
    loss_type: str = "dapo"  # token-mean over the global batch
    scale_rewards: str = "group"  # advantage = (r - group mean) / (group std + eps)
    entropy_coef: float = 0.0
    temperature: float = 1.0
    top_p: float = 1.0
    max_prompt_length: int = 4096  # longer prompts are dropped before training
    max_completion_length: int = 8192
    max_grad_norm: float = 1.0
    precision: str = "bf16"
    attn_implementation: str | None = None
    gradient_checkpointing: bool = True
    lora: LoraSettings = field(default_factory=LoraSettings)
    use_vllm: bool = False  # generate with vLLM (when installed)
    vllm_mode: str = "colocate"  # colocate or server
    vllm_tensor_parallel_size: int = 1
    vllm_gpu_memory_utilization: float = 0.3
    deepspeed: str | None = None
    seed: int = 42
    threads: int | None = None  # CPU torch threads; None: rmr1.threads chooses from the free cores
    logging_steps: int = 1
    save_strategy: str = "no"
    report_to: str = "none"
    trl: dict[str, Any] = field(default_factory=dict)  # any further GRPOConfig option, passed as is


R = TypeVar("R", SFTRecipe, GRPORecipe)


def world_size() -> int:
    """Processes in this run, as ``accelerate launch`` / torchrun announce them."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def resolve_config_path(config: str | Path) -> Path:
    """A YAML path, or a preset name shipped with rmr1."""
    path = Path(config)
    if path.is_file():
        return path
    preset = PRESETS_DIR / f"{config}.yaml"
    if preset.is_file():
        return preset
    raise ConfigError(
        f"config {str(config)!r} is neither a file nor a preset; presets: {', '.join(preset_names())}"
    )


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Turn a YAML or command-line value into the field's type, or raise naming the key."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        empty = value is None or (isinstance(value, str) and value.lower() in ("none", "null", ""))
        if empty and type(None) in options:
            return None
        inner = [t for t in options if t is not type(None)]
        return _coerce(value, inner[0], key)
    if origin is dict or tp is dict:
        if isinstance(value, str):
            value = yaml.safe_load(value) or {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key '{key}': expected a mapping, got {value!r}")
        return dict(value)
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("true", "yes", "on", "1"):
                return True
            if text in ("false", "no", "off", "0"):
                return False
            raise ValueError
        if tp is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(float(value)) if isinstance(value, str) and "e" in value.lower() else int(value)
        if tp is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if tp is str:
            if isinstance(value, (Mapping, list)):
                raise ValueError
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"config key '{key}': expected {_type_name(tp)}, got {value!r}") from None
    return value


def _fill(cls: type, values: Mapping[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if key not in known:
            raise ConfigError(f"unknown config key '{name}' for {cls.__name__}")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            if isinstance(value, bool):  # ``lora: true`` switches LoRA on with its defaults
                value = {"enabled": value}
            if not isinstance(value, Mapping):
                raise ConfigError(f"config key '{name}': expected a mapping")
            kwargs[key] = _fill(tp, value, f"{name}.")  # type: ignore[arg-type]
        else:
            kwargs[key] = _coerce(value, tp, name)
    return cls(**kwargs)


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``key=value`` strings into a nested mapping (``lora.r=8`` -> {"lora": {"r": "8"}})."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not key=value")
        parts = key.strip().split(".")
        node = out
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r} conflicts with an earlier one")
            node = child
        node[parts[-1]] = yaml.safe_load(value) if value.strip() else ""
    return out


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), bool):
            merged[key] = {
                "enabled": merged[key]
            }  # ``lora: true`` in the file, ``lora.r=8`` on the command line
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(read_text(path)) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{where} not valid YAML") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys")
    return data


def load_recipe(
    cls: type[R], config: str | Path | None = None, overrides: Sequence[str] = (), **values: Any
) -> R:
    """Build a recipe from a YAML file or preset, then ``key=value`` overrides, then keyword values."""
    data: dict[str, Any] = {}
    stage = "sft" if cls is SFTRecipe else "grpo"
    if config is not None:
        path = resolve_config_path(config)
        data = read_yaml(path)
        declared = data.pop("stage", stage)
        if declared != stage:
            raise ConfigError(f"{path}: this is a '{declared}' config, not '{stage}'")
        try:  # the file's own keys and values, so an error names the file it is in
            _fill(cls, data)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    data = _merge(_merge(data, parse_overrides(overrides)), values)
    recipe: R = _fill(cls, data)
    check_recipe(recipe)
    return recipe


def check_recipe(recipe: SFTRecipe | GRPORecipe) -> None:
    if recipe.precision not in PRECISIONS:
        raise ConfigError(
            f"config key 'precision': choose one of {', '.join(PRECISIONS)}, got {recipe.precision!r}"
        )
    if not recipe.dataset:
        raise ConfigError("config key 'dataset' is required (a file, folder or hub id)")
    if isinstance(recipe, GRPORecipe):
        if recipe.reward not in ("rm_r1", "strict", "consistent"):
            raise ConfigError(
                f"config key 'reward': choose rm_r1, strict or consistent, got {recipe.reward!r}"
            )
        if recipe.advantage_group not in ("prompt", "pair"):
            raise ConfigError(
                f"config key 'advantage_group': choose prompt or pair, got {recipe.advantage_group!r}"
            )
        paired = recipe.reward == "consistent" or recipe.paired_orders or recipe.advantage_group == "pair"
        if paired and recipe.rollout_batch_prompts % 2:
            raise ConfigError(
                "config key 'rollout_batch_prompts': reward=consistent, paired_orders and advantage_group=pair "
                "need an even number (both orders of each pair in one rollout)"
            )
        if recipe.num_generations < 2:
            raise ConfigError("config key 'num_generations': GRPO needs at least 2 completions per prompt")


def recipe_dict(recipe: SFTRecipe | GRPORecipe) -> dict[str, Any]:
    return dataclasses.asdict(recipe)


__all__ = [
    "PRESETS_DIR",
    "GRPORecipe",
    "LoraSettings",
    "SFTRecipe",
    "check_recipe",
    "load_recipe",
    "parse_overrides",
    "preset_names",
    "recipe_dict",
    "resolve_config_path",
    "world_size",
]
