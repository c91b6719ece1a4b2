"""Real TRL steps on the tiny model: SFT and GRPO each change the weights; marked templates are supplied."""

from __future__ import annotations

import dataclasses
import json
from contextlib import contextmanager
from pathlib import Path

import pytest

from rmr1.errors import ConfigError
from rmr1.train.config import GRPORecipe, SFTRecipe, load_recipe

# A training run prints no deprecation the user cannot act on (rmr1.train.runtime.checkpointing_args and
# prepare_process): any FutureWarning fails these tests.
pytestmark = pytest.mark.filterwarnings("error::FutureWarning")

CPU = ["precision=fp32", "gradient_checkpointing=false", "logging_steps=1"]


def _weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def _changed(before: dict, after: dict) -> int:
    import torch

    return sum(1 for k in before if not torch.equal(before[k].float(), after[k].float()))


def _pairs(path: Path, n: int) -> Path:
    path.write_text(
        "".join(
            json.dumps({"prompt": f"Which is better, {i}?", "chosen": f"good {i}", "rejected": f"bad {i}"})
            + "\n"
            for i in range(n)
        )
    )
    return path


def _template(folder: Path) -> Path:
    """A very short judge template, so the tiny model's prompts stay short."""
    path = folder / "short.yaml"
    path.write_text('user: "{pair}"\n')
    return path


def _sft_rows(path: Path, n: int) -> Path:
    """The short judge prompts of ``_pairs``, answered with a verdict that is right for about half of them."""
    from rmr1.prompts import get_template
    from rmr1.train.mixes import judge_prompts

    template = get_template(file=_template(path.parent))
    records = judge_prompts(str(_pairs(path.with_suffix(".pairs.jsonl"), n)), template=template)
    rows = [
        {
            "messages": [
                *r["prompt"],
                {"role": "assistant", "content": f"<answer>[[{'AB'[i % 3 % 2]}]]</answer>"},
            ]
        }
        for i, r in enumerate(records)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_sft_step_changes_weights_and_logs_curves(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rmr1.train.sft import run_sft

    recipe = load_recipe(
        SFTRecipe,
        "tiny-cpu-sft",
        [
            f"model={tiny_model}",
            f"dataset={_sft_rows(tmp_path / 'sft.jsonl', 8)}",
            f"output_dir={tmp_path / 'out'}",
            "max_steps=1",
            "learning_rate=1e-2",
            "global_batch_size=4",
            "per_device_batch_size=4",
            *CPU,
        ],
    )
    lines: list[str] = []
    result = run_sft(recipe, log=lines.append)
    assert result.steps == 1
    assert _changed(_weights(tiny_model), _weights(result.output_dir)) > 0
    assert [line.split(",")[0].rsplit(" ", 1)[0] for line in lines] == ["step 1/1: loss"]
    assert "{'loss'" not in capsys.readouterr().out  # transformers' raw dict printer is off
    curves = (result.output_dir / "curves.jsonl").read_text().splitlines()
    assert curves and "loss" in json.loads(curves[0])
    assert (result.output_dir / "curves.csv").is_file() and (result.output_dir / "recipe.json").is_file()


@pytest.fixture(scope="module")
def verdict_model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model taught to answer with a verdict tag (A or B at about even odds)."""
    from rmr1.train.sft import run_sft

    tmp = tmp_path_factory.mktemp("verdict")
    recipe = load_recipe(
        SFTRecipe,
        "tiny-cpu-sft",
        [
            f"model={tiny_model}",
            f"dataset={_sft_rows(tmp / 'sft.jsonl', 16)}",
            f"output_dir={tmp / 'out'}",
            "max_steps=30",
            "learning_rate=2e-2",
            "lr_scheduler=constant",
            "global_batch_size=8",
            "per_device_batch_size=8",
            *CPU,
        ],
    )
    return run_sft(recipe, log=lambda *_: None).output_dir


def _grpo_recipe(model: Path, tmp_path: Path, *overrides: str) -> GRPORecipe:
    """Groups of 8 over 2 prompts a step, 16 new tokens: enough for the taught model's groups to disagree."""
    return load_recipe(
        GRPORecipe,
        "tiny-cpu-grpo",
        [
            f"model={model}",
            f"dataset={_pairs(tmp_path / 'pairs.jsonl', 8)}",
            f"output_dir={tmp_path / 'out'}",
            f"template={_template(tmp_path)}",
            "learning_rate=1e-2",
            "max_completion_length=16",
            "num_generations=8",
            "rollout_batch_prompts=2",
            "mini_batch_prompts=2",
            "per_device_batch_size=16",
            *CPU,
            *overrides,
        ],
    )


@pytest.mark.slow  # 30 SFT steps first, so the tiny model emits verdicts the reward can tell apart
def test_grpo_step_changes_weights(verdict_model: Path, tmp_path: Path) -> None:
    from rmr1.train.grpo import run_grpo

    result = run_grpo(_grpo_recipe(verdict_model, tmp_path, "max_steps=1"), log=lambda *_: None)
    rows = [json.loads(line) for line in (result.output_dir / "curves.jsonl").read_text().splitlines()]
    assert "reward" in rows[0] and "judge/accuracy" in rows[0] and "completions/mean_length" in rows[0]
    assert rows[0]["reward_std"] > 0  # the group disagreed, so there was something to learn from
    assert _changed(_weights(verdict_model), _weights(result.output_dir)) > 0


@pytest.mark.slow  # uses the taught verdict model above
def test_grpo_with_lora_generates_with_merged_adapters_and_trains(
    verdict_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rmr1.train.rollouts as rollouts
    from rmr1.train.grpo import run_grpo

    merged_layers: list[int] = []
    real = rollouts.adapters_merged

    @contextmanager
    def watched(model):  # type: ignore[no-untyped-def]
        with real(model) as count:
            merged_layers.append(count)
            yield count

    monkeypatch.setattr(rollouts, "adapters_merged", watched)
    recipe = _grpo_recipe(verdict_model, tmp_path, "max_steps=2", "lora.enabled=true", "lora.r=4")
    result = run_grpo(recipe, log=lambda *_: None)
    assert len(merged_layers) == 2 and all(n > 0 for n in merged_layers)  # each step's rollouts, merged
    assert (
        _changed(_weights(verdict_model), _weights(result.output_dir)) > 0
    )  # the adapter trained and was saved


@pytest.mark.slow  # uses the taught verdict model above
def test_grpo_with_pair_groups_takes_advantages_over_both_orders(
    verdict_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rmr1.train.pair_baseline as pair_baseline
    from rmr1.train.grpo import run_grpo

    keys_seen: list[list[str]] = []
    real = pair_baseline.pair_advantages

    def watched(rewards, keys, scale="group"):  # type: ignore[no-untyped-def]
        keys_seen.append(list(keys))
        return real(rewards, keys, scale)

    monkeypatch.setattr(pair_baseline, "pair_advantages", watched)
    recipe = _grpo_recipe(verdict_model, tmp_path, "max_steps=1", "advantage_group=pair")
    result = run_grpo(recipe, log=lambda *_: None)
    assert len(keys_seen) == 1 and len(keys_seen[0]) == 16  # one rollout: 2 prompts x 8 generations
    assert len(set(keys_seen[0])) == 1  # the two prompts were one pair's two orders, grouped as one
    rows = [json.loads(line) for line in (result.output_dir / "curves.jsonl").read_text().splitlines()]
    assert pair_baseline.PAIR_ZERO_STD in rows[0]


@pytest.mark.slow  # uses the taught verdict model above
def test_grpo_with_a_greedy_member_makes_each_groups_first_rollout_greedy(
    verdict_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rmr1.train.greedy_member as greedy_member
    from rmr1.train.grpo import run_grpo

    seen: list[greedy_member.ArgmaxRows] = []
    real = greedy_member.greedy_rows_in_generate

    @contextmanager
    def watched(model, rows):  # type: ignore[no-untyped-def]
        with real(model, rows) as processor:
            seen.append(processor)
            yield processor

    monkeypatch.setattr(greedy_member, "greedy_rows_in_generate", watched)
    recipe = _grpo_recipe(verdict_model, tmp_path, "max_steps=1", "greedy_member=true", "lora.enabled=true")
    result = run_grpo(recipe, log=lambda *_: None)
    assert len(seen) == 1 and seen[0].rows == [0, 8]  # 2 prompts x 8: the first of each group
    assert seen[0].calls > 0  # the processor was applied at each decoding step of the rollout
    assert _changed(_weights(verdict_model), _weights(result.output_dir)) > 0


def test_overlong_prompts_are_dropped(tiny_model: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from rmr1.train.grpo import drop_long_prompts

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    records = [
        {"prompt": [{"role": "user", "content": "short"}], "winner": "model_a"},
        {"prompt": [{"role": "user", "content": "long " * 300}], "winner": "model_b"},
    ]
    kept, dropped = drop_long_prompts(records, tokenizer, 64)
    assert [r["winner"] for r in kept] == ["model_a"] and dropped == 1


def test_chatml_template_without_markers_gets_an_equivalent_marked_one(tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    from rmr1.train.chat_template import has_generation_markers, training_chat_template

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    # SmolLM2's own template: ChatML without markers, with a default system prompt
    tokenizer.chat_template = (
        "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
        "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, "
        "trained by Hugging Face<|im_end|>\n' }}"
        "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )
    marked = training_chat_template(tokenizer)
    assert has_generation_markers(marked)
    chat = [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "<answer>[[A]]</answer>"}]
    assert tokenizer.apply_chat_template(
        chat, tokenize=False, chat_template=marked
    ) == tokenizer.apply_chat_template(chat, tokenize=False)
    out = tokenizer.apply_chat_template(
        chat, chat_template=marked, return_dict=True, return_assistant_tokens_mask=True
    )
    trained = [t for t, m in zip(out["input_ids"], out["assistant_masks"], strict=True) if m]
    assert (
        tokenizer.decode(trained) == "<answer>[[A]]</answer><|im_end|>"
    )  # the trace and its end, nothing else


def test_unknown_template_without_markers_is_a_config_error(tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    from rmr1.train.chat_template import training_chat_template

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    tokenizer.chat_template = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
    with pytest.raises(ConfigError, match="chat_template_file"):
        training_chat_template(tokenizer)


def test_time_budget_stops_before_a_step_that_would_overrun(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from rmr1.train import runtime

    clock = iter([0.0, 10.0, 20.0, 30.0])
    monkeypatch.setattr(runtime.time, "perf_counter", lambda: next(clock))
    budget = runtime.TimeBudget(35.0)
    state, control = SimpleNamespace(global_step=0, max_steps=10), SimpleNamespace(should_training_stop=False)
    budget.on_train_begin(None, state, control)
    state.global_step = 1
    budget.on_step_end(None, state, control)  # 10 s done, ~10 s a step: 20 fits
    assert not control.should_training_stop
    state.global_step = 2
    budget.on_step_end(None, state, control)  # 20 s: a third step would end at 30, inside 35
    assert not control.should_training_stop
    state.global_step = 3
    budget.on_step_end(None, state, control)  # 30 s: a fourth would end at 40, past 35
    assert control.should_training_stop and budget.stopped_early


def test_sft_with_a_time_budget_stops_early_and_saves(tiny_model: Path, tmp_path: Path) -> None:
    from rmr1.train.sft import run_sft

    recipe = load_recipe(
        SFTRecipe,
        "tiny-cpu-sft",
        [
            f"model={tiny_model}",
            f"dataset={_sft_rows(tmp_path / 'sft.jsonl', 8)}",
            f"output_dir={tmp_path / 'out'}",
            "max_steps=500",
            "max_seconds=1e-3",  # less than any step: exactly one runs
            "global_batch_size=4",
            "per_device_batch_size=4",
            *CPU,
        ],
    )
    result = run_sft(recipe, log=lambda *_: None)
    assert result.steps == 1 and (result.output_dir / "recipe.json").is_file()
    bad = dataclasses.replace(recipe, max_seconds=0.0)
    with pytest.raises(ConfigError, match="max_seconds must be positive"):
        run_sft(bad, log=lambda *_: None)


def test_a_step_line_shows_the_main_values_briefly() -> None:
    from rmr1.train.runtime import step_line

    logs = {"loss": 0.02192, "reward": 0.125, "judge/accuracy": 0.5625, "kl": 0.0012251, "step_time": 27.26}
    line = step_line(4, 16, {**logs, "completions/mean_length": 93.31, "epoch": 0.1})
    assert line == (
        "step 4/16: loss 0.0219, reward 0.125, rollout accuracy 56%, kl 0.00123, length 93.3, time 27.3s"
    )
    assert step_line(1, 2, {"loss": 1.5}) == "step 1/2: loss 1.5"
    assert step_line(2, 2, {"train_loss": 1.0, "epoch": 1.0}) is None  # the closing summary
