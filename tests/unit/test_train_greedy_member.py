"""The greedy member of GRPO groups (rmr1.train.greedy_member): rows chosen in one sampled generate are greedy."""

from __future__ import annotations

from pathlib import Path

import pytest

from rmr1.errors import ConfigError
from rmr1.train.config import GRPORecipe
from rmr1.train.greedy_member import ArgmaxRows, first_rows, greedy_rows_in_generate


def test_first_rows_are_where_each_group_of_identical_prompts_starts() -> None:
    assert first_rows([[1, 2], [1, 2], [3], [3], [1, 2], [1, 2]]) == [0, 2, 4]
    assert first_rows([]) == []


def test_only_the_chosen_rows_are_closed_to_all_but_their_argmax() -> None:
    import torch

    scores = torch.tensor([[0.1, 2.0, 0.5], [3.0, 0.0, 1.0], [0.2, 0.1, 0.9]])
    out = ArgmaxRows([0, 2])(None, scores.clone())
    inf = float("-inf")
    assert out[0].tolist() == [inf, 2.0, inf] and out[2].tolist() == [inf, inf, pytest.approx(0.9)]
    assert out[1].tolist() == [3.0, 0.0, 1.0]


def test_in_a_sampled_generate_the_chosen_rows_are_the_greedy_answers(tiny_model: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    prompts = ["the judge reads", "the judge reads", "two answers here", "two answers here"]
    inputs = tokenizer(prompts, return_tensors="pt", padding=True)
    settings = {"max_new_tokens": 12, "pad_token_id": tokenizer.pad_token_id or 0}
    greedy = model.generate(**inputs, do_sample=False, **settings)
    torch.manual_seed(0)
    with greedy_rows_in_generate(model, first_rows(inputs["input_ids"].tolist())) as processor:
        sampled = model.generate(**inputs, do_sample=True, temperature=1.0, **settings)
    assert processor.rows == [0, 2] and processor.calls == 12
    assert torch.equal(sampled[0], greedy[0]) and torch.equal(sampled[2], greedy[2])
    assert not torch.equal(sampled[1], greedy[1]) or not torch.equal(sampled[3], greedy[3])  # still sampled
    assert "generate" not in model.__dict__  # the model's own generate is back


def test_greedy_member_is_refused_where_the_processor_cannot_reach_the_rollouts() -> None:
    from rmr1.train.grpo import grpo_args

    recipe = GRPORecipe(dataset="x.jsonl", model="m", greedy_member=True, use_vllm=True, precision="fp32")
    with pytest.raises(ConfigError, match="greedy_member needs TRL's transformers rollouts"):
        grpo_args(recipe, world=1)
