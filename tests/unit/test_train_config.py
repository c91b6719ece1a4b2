"""Recipes: YAML + key=value fill one dataclass; every preset reaches TRL with the paper's values."""

from __future__ import annotations

from pathlib import Path

import pytest

from rmr1.errors import ConfigError
from rmr1.train.config import GRPORecipe, SFTRecipe, load_recipe, parse_overrides, preset_names


def test_overrides_fill_typed_fields(tmp_path: Path) -> None:
    cfg = tmp_path / "r.yaml"
    cfg.write_text("stage: sft\ndataset: d.jsonl\nlearning_rate: 5e-6\nlora: true\n")
    recipe = load_recipe(SFTRecipe, cfg, ["learning_rate=1e-5", "max_steps=3", "lora.r=8", "packing=false"])
    assert recipe.learning_rate == pytest.approx(1e-5)  # "1e-5" is a string to YAML; the field type decides
    assert recipe.max_steps == 3 and recipe.packing is False
    assert recipe.lora.enabled is True and recipe.lora.r == 8


@pytest.mark.parametrize(
    "override, needle",
    [
        (["learnin_rate=1"], "learnin_rate"),  # a typo names the key
        (["lora.rank=4"], "lora.rank"),  # nested keys too
        (["max_steps=abc"], "max_steps"),  # a value of the wrong type names the key
        (["precision=int8"], "precision"),
        (["novalue"], "novalue"),
    ],
)
def test_bad_keys_raise_one_line_config_errors(override: list[str], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_recipe(SFTRecipe, None, ["dataset=x.jsonl", *override])
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_stage_mismatch_and_missing_dataset(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'grpo' config"):
        load_recipe(SFTRecipe, "tiny-cpu-grpo", ["dataset=x"])
    with pytest.raises(ConfigError, match="dataset"):
        load_recipe(SFTRecipe, "tiny-cpu-sft")
    with pytest.raises(ConfigError, match="neither a file nor a preset"):
        load_recipe(SFTRecipe, tmp_path / "absent.yaml")


def test_an_error_in_a_config_file_names_the_file(tmp_path: Path) -> None:
    unknown = tmp_path / "mine.yaml"
    unknown.write_text("stage: sft\nlearnig_rate: 1e-4\n")
    with pytest.raises(ConfigError, match=r"mine\.yaml: unknown config key 'learnig_rate'"):
        load_recipe(SFTRecipe, unknown, dataset="d.jsonl")
    typed = tmp_path / "typed.yaml"
    typed.write_text("lora:\n  r: sixteen\n")
    with pytest.raises(ConfigError, match=r"typed\.yaml: config key 'lora\.r': expected int"):
        load_recipe(SFTRecipe, typed, dataset="d.jsonl")
    # an override replaces a file's value whole; it is still checked on its own
    with pytest.raises(ConfigError, match=r"^config key 'lora\.r'"):
        load_recipe(SFTRecipe, None, ["lora.r=x"], dataset="d.jsonl")


def test_parse_overrides_nests_dotted_keys() -> None:
    assert parse_overrides(["a.b=1", "a.c=x", "d=true"]) == {"a": {"b": 1, "c": "x"}, "d": True}


def test_trl_extra_options_are_checked() -> None:
    from rmr1.train.sft import sft_args

    recipe = load_recipe(SFTRecipe, "tiny-cpu-sft", ["dataset=x", "trl.no_such_option=1"])
    with pytest.raises(ConfigError, match=r"trl\.no_such_option"):
        sft_args(recipe, 1)


PAPER_SFT_LR = {"7b": 5e-6, "14b": 3e-6, "32b": 2e-6}
PAPER_GRPO_LR = {
    ("qwen2.5", "7b"): 1e-6,
    ("qwen2.5", "14b"): 7e-7,
    ("qwen2.5", "32b"): 5e-7,
    ("deepseek", "7b"): 1e-6,
    ("deepseek", "14b"): 1e-6,
    ("deepseek", "32b"): 8e-7,
}
NODES = {"7b": 1, "14b": 2, "32b": 4}


def _size(name: str) -> str:
    return next(s for s in ("14b", "32b", "7b") if f"-{s}-" in name)


def test_every_preset_builds_trl_configs_with_the_paper_values() -> None:
    from rmr1.train.grpo import build_grpo_config
    from rmr1.train.sft import build_sft_config

    names = preset_names()
    assert len([n for n in names if n.endswith("-sft") and "qwen" in n]) == 3
    assert len([n for n in names if n.endswith("-grpo") and "deepseek" in n]) == 3
    for name in names:
        if name.startswith("tiny"):
            continue
        world = 8 * NODES[_size(name)]
        if name.endswith("-sft"):
            cfg, _ = build_sft_config(load_recipe(SFTRecipe, name), world)
            assert cfg.learning_rate == pytest.approx(PAPER_SFT_LR[_size(name)])
            assert cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps * world == 128
            assert cfg.lr_scheduler_type == "cosine_with_min_lr" and cfg.lr_scheduler_kwargs == {
                "min_lr_rate": 0.1
            }
            assert (cfg.adam_beta1, cfg.adam_beta2, cfg.weight_decay, cfg.max_grad_norm) == (
                0.9,
                0.95,
                0.0,
                1.0,
            )
            assert cfg.warmup_steps == pytest.approx(0.03) and cfg.num_train_epochs == 1
            assert cfg.max_length == 12288 and cfg.packing and cfg.assistant_only_loss and cfg.bf16
            assert cfg.model_init_kwargs == {"dtype": "bfloat16", "attn_implementation": "flash_attention_2"}
            continue
        recipe = load_recipe(GRPORecipe, name)
        cfg, _ = build_grpo_config(recipe, world)
        family = "deepseek" if name.startswith("deepseek") else "qwen2.5"
        assert cfg.learning_rate == pytest.approx(PAPER_GRPO_LR[(family, _size(name))])
        assert (
            cfg.num_generations == 7 and cfg.beta == pytest.approx(1e-3) and cfg.epsilon == pytest.approx(0.2)
        )
        assert (cfg.temperature, cfg.top_p, cfg.max_completion_length) == (1.0, 1.0, 8192)
        assert cfg.loss_type == "dapo" and cfg.scale_rewards == "group" and cfg.num_iterations == 1
        assert cfg.lr_scheduler_type == "constant" and cfg.use_vllm
        # 128 prompts x 7 completions per optimizer step, 1024 prompts per rollout (8 steps per rollout)
        assert cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps * world == 128 * 7
        assert cfg.per_device_train_batch_size * cfg.steps_per_generation * world == 1024 * 7
        assert recipe.max_prompt_length == 4096
        assert recipe.template == ("reasoning" if family == "deepseek" else "cor")


def test_tiny_presets_are_cpu_friendly() -> None:
    from rmr1.train.grpo import build_grpo_config
    from rmr1.train.sft import build_sft_config

    sft, _ = build_sft_config(load_recipe(SFTRecipe, "tiny-cpu-sft", ["dataset=x"]), 1)
    grpo, _ = build_grpo_config(load_recipe(GRPORecipe, "tiny-cpu-grpo", ["dataset=x"]), 1)
    for cfg in (sft, grpo):  # TRL's own defaults would be bf16 and gradient checkpointing
        assert not cfg.bf16 and not cfg.fp16 and not cfg.gradient_checkpointing


@pytest.mark.parametrize("enabled", [True, False])
def test_checkpointing_reaches_trl_without_a_deprecation_warning(enabled: bool) -> None:
    import warnings

    from rmr1.train.grpo import build_grpo_config
    from rmr1.train.sft import build_sft_config

    flag = [f"gradient_checkpointing={str(enabled).lower()}"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sft, _ = build_sft_config(load_recipe(SFTRecipe, "qwen2.5-7b-instruct-sft", flag), 8)
        grpo, _ = build_grpo_config(load_recipe(GRPORecipe, "qwen2.5-7b-instruct-grpo", flag), 8)
    assert not [w for w in caught if "checkpointing" in str(w.message)]
    for cfg in (sft, grpo):  # TRL's trainers read the old name; it must carry the recipe's value
        assert cfg.gradient_checkpointing is enabled
        kwargs = cfg.gradient_checkpointing_kwargs or {}
        assert kwargs.get("use_reentrant") is (False if enabled else None)


def test_grpo_batch_divisibility_is_adjusted_and_said() -> None:
    from rmr1.train.grpo import build_grpo_config

    recipe = load_recipe(
        GRPORecipe,
        "tiny-cpu-grpo",
        [
            "dataset=x",
            "num_generations=3",
            "mini_batch_prompts=2",
            "rollout_batch_prompts=4",
            "per_device_batch_size=4",
        ],
    )
    cfg, notes = build_grpo_config(recipe, 1)
    assert cfg.generation_batch_size % 3 == 0
    assert cfg.per_device_train_batch_size == 3 and notes and "per_device_batch_size 4 -> 3" in notes[0]
    with pytest.raises(ConfigError, match="multiple of mini_batch_prompts"):
        build_grpo_config(
            load_recipe(GRPORecipe, "tiny-cpu-grpo", ["dataset=x", "rollout_batch_prompts=3"]), 1
        )
    with pytest.raises(ConfigError, match="cannot be split"):
        build_grpo_config(
            load_recipe(
                GRPORecipe,
                "tiny-cpu-grpo",
                ["dataset=x", "num_generations=3", "mini_batch_prompts=1", "rollout_batch_prompts=1"],
            ),
            2,
        )


def test_a_training_process_leaves_no_process_group_behind(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import torch.distributed as dist

    from rmr1.train.runtime import end_distributed

    end_distributed()  # none yet: nothing to do
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    assert dist.is_initialized()
    end_distributed()
    assert not dist.is_initialized()
