"""``rmr1 train export --engine verl``: a ready veRL GRPO run from a recipe and judge prompts.

Writes into one folder:
- ``train.parquet`` / ``val.parquet`` in veRL's RL dataset format (chat ``prompt``, ``data_source``,
  ``ability``, ``reward_model`` = {"style": "rule", "ground_truth": winner}, ``extra_info``);
- ``reward.py`` (``compute_score``, the paper's last-80-characters rule) and ``reward_manager.py`` (veRL's
  naive manager decoding with special tokens kept, so the window and truncation are the paper's);
- ``run_grpo.sh``: ``python3 -m verl.trainer.main_ppo`` with the recipe mapped onto veRL's Hydra keys;
- ``README.md`` and ``export.json`` (counts, what was dropped, the overrides).

Prompts longer than ``max_prompt_length`` are dropped here when the model's tokenizer can be loaded (counted in
export.json); veRL's own filter (``data.filter_overlong_prompts=True``) stays on as the backstop and does the
whole job when the tokenizer is not available at export time.
"""

from __future__ import annotations

import json
import random
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rmr1.errors import ConfigError
from rmr1.prompts import get_template
from rmr1.train.config import GRPORecipe, recipe_dict
from rmr1.train.mixes import judge_prompts

DATA_SOURCE = "rmr1/rm_r1"
ABILITY = "reward_judgement"
HERE = Path(__file__).parent
# The paper's cluster: 1 / 2 / 4 nodes of 8 GPUs for 7B / 14B / 32B.
NODES_BY_SIZE = {"7b": 1, "14b": 2, "32b": 4}
# End-of-turn tokens by model family, for when the tokenizer cannot be loaded at export time.
FAMILY_STOPS = (
    ("deepseek-r1-distill", ("<｜end▁of▁sentence｜>",)),
    ("qwen", ("<|im_end|>", "<|endoftext|>")),
)


@dataclass
class VerlOptions:
    """What the recipe does not say: the cluster, the validation split and the tokenizer."""

    nnodes: int | None = None  # None: the paper's 1/2/4 nodes, read from the model size in its name
    gpus_per_node: int = 8
    val_fraction: float = 0.01  # share of prompts held out for veRL's validation pass
    seed: int = 42  # for the train/validation split
    tokenizer: str | None = None  # checkpoint or hub id for lengths and end-of-turn; default: the model
    end_of_turn: str | None = None  # the response's end token as decoded, when no tokenizer loads


@dataclass
class VerlExport:
    out: Path
    train: int
    val: int
    dropped: int  # prompts over max_prompt_length removed here (0 when veRL's filter does it)
    length_check: str  # "export" (tokenizer loaded) or "verl" (left to data.filter_overlong_prompts)
    stop_tokens: tuple[str, ...]
    overrides: list[str]
    notes: list[str] = field(default_factory=list)


def nodes_for(model: str) -> int:
    sizes = re.findall(r"(\d+)b\b", model.lower())
    return NODES_BY_SIZE.get(f"{sizes[-1]}b", 1) if sizes else 1


def model_path(model: str) -> str:
    """The recipe's model; empty means the embedded SmolLM2 checkpoint, as in `rmr1 train grpo`."""
    if model:
        return model
    from rmr1.models import embedded_checkpoint

    return str(embedded_checkpoint())


def _load_tokenizer(name: str) -> Any | None:
    """The tokenizer when it is on this machine (offline hub cache or a local folder), else None."""
    try:
        from rmr1.train.runtime import load_tokenizer

        return load_tokenizer(name)[0]
    except Exception:  # a hub id not cached here, or a stage-1 output that does not exist yet
        return None


def stop_tokens(tokenizer: Any | None, model: str, end_of_turn: str | None) -> tuple[str, ...]:
    """What a finished response ends with, first entry the usual end-of-turn token."""
    if end_of_turn:
        return (end_of_turn,)
    if tokenizer is not None:
        ids = [tokenizer.eos_token_id, tokenizer.pad_token_id]
        names = [str(tokenizer.convert_ids_to_tokens(int(i))) for i in ids if i is not None]
        return tuple(dict.fromkeys(n for n in names if n))
    for family, tokens in FAMILY_STOPS:
        if family in model.lower():
            return tokens
    raise ConfigError(
        f"cannot tell the end-of-turn token of model {model!r}: give --tokenizer PATH or --end-of-turn TOKEN"
    )


def verl_row(record: dict[str, Any], index: int, split: str) -> dict[str, Any]:
    return {
        "data_source": DATA_SOURCE,
        "prompt": [{"role": m["role"], "content": m["content"]} for m in record["prompt"]],
        "ability": ABILITY,
        "reward_model": {"style": "rule", "ground_truth": record["winner"]},
        "extra_info": {
            "index": index,
            "split": split,
            "id": str(record.get("id", index)),
            "source": str(record.get("source") or ""),
            "multi_turn": bool(record.get("multi_turn", False)),
        },
    }


def split_records(
    records: list[dict[str, Any]], fraction: float, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train, val): a seeded sample of ``fraction`` (at least one prompt) held out, order kept."""
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"--val-fraction must be between 0 and 1, got {fraction}")
    if len(records) < 2:
        raise ConfigError(f"need at least 2 prompts for a train and a validation file, got {len(records)}")
    size = max(1, round(len(records) * fraction))
    held = set(random.Random(seed).sample(range(len(records)), size))
    return [r for i, r in enumerate(records) if i not in held], [
        r for i, r in enumerate(records) if i in held
    ]


def write_parquet(records: list[dict[str, Any]], split: str, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([verl_row(r, i, split) for i, r in enumerate(records)]), path)


def _policy_values(recipe: GRPORecipe) -> list[tuple[str, Any]]:
    """Algorithm, data, model and actor (policy loss) keys."""
    actor, micro = "actor_rollout_ref.actor", recipe.per_device_batch_size
    return [
        ("algorithm.adv_estimator", "grpo"),
        ("algorithm.norm_adv_by_std_in_grpo", recipe.scale_rewards == "group"),
        ("algorithm.use_kl_in_reward", False),
        ("data.train_files", "$HERE/train.parquet"),
        ("data.val_files", "$HERE/val.parquet"),
        ("data.prompt_key", "prompt"),
        ("data.max_prompt_length", recipe.max_prompt_length),
        ("data.max_response_length", recipe.max_completion_length),
        ("data.train_batch_size", recipe.rollout_batch_prompts),
        ("data.filter_overlong_prompts", True),
        ("data.truncation", "error"),
        ("data.seed", recipe.seed),
        ("actor_rollout_ref.model.path", model_path(recipe.model)),
        ("actor_rollout_ref.model.enable_gradient_checkpointing", recipe.gradient_checkpointing),
        (f"{actor}.optim.lr", recipe.learning_rate),
        (f"{actor}.optim.lr_scheduler_type", _scheduler(recipe.lr_scheduler)),
        (f"{actor}.optim.lr_warmup_steps_ratio", recipe.warmup_ratio),
        (f"{actor}.optim.weight_decay", 0.0),  # TRL's default, as in `rmr1 train grpo`
        (f"{actor}.optim.clip_grad", recipe.max_grad_norm),
        (f"{actor}.ppo_mini_batch_size", recipe.mini_batch_prompts),
        (f"{actor}.ppo_micro_batch_size_per_gpu", micro),
        (f"{actor}.ppo_epochs", recipe.num_iterations),
        (f"{actor}.use_kl_loss", True),
        (f"{actor}.kl_loss_type", "low_var_kl"),
        (f"{actor}.kl_loss_coef", recipe.beta),
        (f"{actor}.clip_ratio", recipe.epsilon),
        (f"{actor}.clip_ratio_low", recipe.epsilon),  # veRL reads low/high first; they default to 0.2
        (f"{actor}.clip_ratio_high", recipe.epsilon),
        (f"{actor}.entropy_coeff", recipe.entropy_coef),
        (f"{actor}.loss_agg_mode", "token-mean"),
        ("actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu", micro),
    ]


def launch_overrides(recipe: GRPORecipe, options: VerlOptions) -> list[str]:
    """Hydra overrides for verl/trainer/config/ppo_trainer.yaml; ``$HERE`` is the export folder."""
    nnodes = options.nnodes or nodes_for(recipe.model)
    micro = recipe.per_device_batch_size
    rollout = "actor_rollout_ref.rollout"
    values = [
        *_policy_values(recipe),
        (f"{rollout}.name", "vllm"),
        (f"{rollout}.n", recipe.num_generations),
        (f"{rollout}.temperature", recipe.temperature),
        (f"{rollout}.top_p", recipe.top_p),
        (f"{rollout}.tensor_model_parallel_size", recipe.vllm_tensor_parallel_size),
        (f"{rollout}.gpu_memory_utilization", recipe.vllm_gpu_memory_utilization),
        (f"{rollout}.log_prob_micro_batch_size_per_gpu", micro),
        ("reward.custom_reward_function.path", "$HERE/reward.py"),
        ("reward.custom_reward_function.name", "compute_score"),
        ("reward.reward_manager.source", "importlib"),
        ("reward.reward_manager.name", "RmR1RewardManager"),
        ("reward.reward_manager.module.path", "$HERE/reward_manager.py"),
        ("trainer.nnodes", nnodes),
        ("trainer.n_gpus_per_node", options.gpus_per_node),
        ("trainer.total_epochs", max(1, round(recipe.num_train_epochs))),
        ("trainer.project_name", "rmr1"),
        ("trainer.experiment_name", Path(recipe.output_dir).name or "grpo"),
        ("trainer.default_local_dir", recipe.output_dir),
        ("trainer.save_freq", 10),  # also saves at the last step
        ("trainer.test_freq", 10),
        ("trainer.logger", "[console]"),
    ]
    if recipe.max_steps > 0:
        values.append(("trainer.total_training_steps", recipe.max_steps))
    if recipe.lora.enabled:
        lora = recipe.lora
        values += [
            ("actor_rollout_ref.model.lora_rank", lora.r),
            ("actor_rollout_ref.model.lora_alpha", lora.alpha),
            ("actor_rollout_ref.model.target_modules", lora.target_modules),
        ]
    return [f"{key}={_hydra_value(value)}" for key, value in values]


def _scheduler(name: str) -> str:
    """veRL knows constant and cosine (warmup by ratio, cosine floor via min_lr_ratio)."""
    if name not in ("constant", "cosine"):
        raise ConfigError(f"config key 'lr_scheduler': veRL runs constant or cosine, got {name!r}")
    return name


def _hydra_value(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def launch_script(overrides: list[str]) -> str:
    lines = "".join(f"    {_shell_quote(item)} \\\n" for item in overrides)
    return (
        "#!/usr/bin/env bash\n"
        "# GRPO on veRL with the RM-R1 recipe, written by `rmr1 train export --engine verl`.\n"
        "# Extra Hydra overrides go after the script's name: bash run_grpo.sh trainer.nnodes=2\n"
        "set -euo pipefail\n"
        'HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"\n'
        "python3 -m verl.trainer.main_ppo \\\n"
        f'{lines}    "$@"\n'
    )


def _shell_quote(item: str) -> str:
    """Quote for bash but leave ``$HERE`` expandable."""
    if "$HERE" in item:
        return '"' + item.replace('"', '\\"') + '"'
    return shlex.quote(item)


def reward_sources(stops: tuple[str, ...]) -> dict[str, str]:
    """reward.py and reward_manager.py, with the model's end-of-turn tokens written in."""
    reward = (HERE / "verl_reward.py").read_text(encoding="utf-8")
    reward = re.sub(r"(?m)^END_OF_TURN = .*$", f"END_OF_TURN = {stops[0]!r}", reward, count=1)
    reward = re.sub(r"(?m)^STOP_TOKENS: .*$", f"STOP_TOKENS: tuple[str, ...] = {stops!r}", reward, count=1)
    manager = (HERE / "verl_reward_manager.py").read_text(encoding="utf-8")
    return {"reward.py": reward, "reward_manager.py": manager}


def _prompts(recipe: GRPORecipe) -> list[dict[str, Any]]:
    path = recipe.template
    template = get_template(file=path) if path.endswith((".yaml", ".yml")) else get_template(path)
    return judge_prompts(recipe.dataset, split=recipe.dataset_split, template=template, limit=recipe.limit)


def _unmapped(recipe: GRPORecipe) -> list[str]:
    """Notes for the recipe keys the veRL run does not carry over."""
    notes = []
    if recipe.reward == "consistent":
        notes.append("reward=consistent is not carried over: the reward module applies the paper's rule")
    if recipe.advantage_group == "pair":
        notes.append("advantage_group=pair is not carried over: veRL groups the rollouts of each prompt")
    return notes


def export_verl(recipe: GRPORecipe, out: Path, options: VerlOptions | None = None) -> VerlExport:
    """Write the veRL run for ``recipe`` (its dataset = judge prompts with a winner) into ``out``."""
    options = options or VerlOptions()
    records = _prompts(recipe)
    source = options.tokenizer or model_path(recipe.model)
    tokenizer = _load_tokenizer(source)
    stops = stop_tokens(tokenizer, source, options.end_of_turn)
    notes, dropped = _unmapped(recipe), 0
    if tokenizer is not None:
        from rmr1.train.grpo import drop_long_prompts

        records, dropped = drop_long_prompts(records, tokenizer, recipe.max_prompt_length)
        if not records:
            raise ConfigError(
                f"every prompt is longer than max_prompt_length={recipe.max_prompt_length} tokens"
            )
        notes.append(f"dropped {dropped} prompts longer than {recipe.max_prompt_length} tokens")
    else:
        notes.append(
            f"tokenizer of {source!r} not available here: prompts over "
            f"{recipe.max_prompt_length} tokens are left to veRL's data.filter_overlong_prompts"
        )
    train, val = split_records(records, options.val_fraction, options.seed)
    out.mkdir(parents=True, exist_ok=True)
    write_parquet(train, "train", out / "train.parquet")
    write_parquet(val, "val", out / "val.parquet")
    for name, text in reward_sources(stops).items():
        (out / name).write_text(text, encoding="utf-8")
    overrides = launch_overrides(recipe, options)
    script = out / "run_grpo.sh"
    script.write_text(launch_script(overrides), encoding="utf-8")
    script.chmod(0o755)
    result = VerlExport(
        out, len(train), len(val), dropped, "export" if tokenizer else "verl", stops, overrides, notes
    )
    (out / "README.md").write_text(readme(recipe, result), encoding="utf-8")
    summary = {k: v for k, v in vars(result).items() if k != "out"}
    summary["recipe"] = recipe_dict(recipe)
    (out / "export.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return result


def readme(recipe: GRPORecipe, result: VerlExport) -> str:
    nodes = next(o.split("=", 1)[1] for o in result.overrides if o.startswith("trainer.nnodes="))
    return f"""# veRL GRPO run (RM-R1 recipe), written by `rmr1 train export --engine verl`

Model: `{recipe.model}`; {result.train} training and {result.val} validation prompts
({result.dropped} dropped over {recipe.max_prompt_length} tokens; length check: {result.length_check}).

## Launch
On the head node of a Ray cluster of {nodes} node(s) with veRL (0.9.x) and vLLM installed:

    bash run_grpo.sh                       # the recipe as exported
    bash run_grpo.sh trainer.nnodes=2      # any further Hydra override goes at the end

Every path in the script is relative to this folder, so it can be copied as a whole.

## Reward
`reward.py` holds `compute_score`, the paper's rule: +1 when the last 80 characters of the response, decoded
with special tokens (end-of-turn `{result.stop_tokens[0]}` included), hold the right verdict tag and not the
other; -1 otherwise, and -1 for a response cut at max_response_length. The script selects
`reward_manager.py`, veRL's naive manager decoding with special tokens kept (veRL's own skips them, which
would drop the end-of-turn token and hide truncation). It needs only Python and veRL; rmr1 is used when
installed, else the same rule written out in the file.
"""


__all__ = [
    "DATA_SOURCE",
    "VerlExport",
    "VerlOptions",
    "export_verl",
    "launch_overrides",
    "launch_script",
    "nodes_for",
    "reward_sources",
    "stop_tokens",
    "verl_row",
]
