"""A preset asking for flash attention on a machine without it trains with sdpa and says so."""

from __future__ import annotations

import importlib.util

import pytest

from rmr1.train import runtime
from rmr1.train.config import SFTRecipe, load_recipe
from rmr1.train.runtime import attention_for_machine, fit_attention


def _machine(monkeypatch: pytest.MonkeyPatch, *, flash_attn: bool, cuda: bool) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: object, **kwargs: object) -> object:
        if name == "flash_attn":
            return object() if flash_attn else None
        return real(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setattr(runtime, "_has_gpu", lambda: cuda)


@pytest.mark.parametrize(
    ("flash_attn", "cuda", "reasons"),
    [
        (False, True, ["flash_attn package is not installed"]),
        (True, False, ["no CUDA device"]),
        (False, False, ["flash_attn package is not installed", "no CUDA device"]),
    ],
)
def test_flash_attention_falls_back_to_sdpa_with_a_note(
    monkeypatch: pytest.MonkeyPatch, flash_attn: bool, cuda: bool, reasons: list[str]
) -> None:
    _machine(monkeypatch, flash_attn=flash_attn, cuda=cuda)
    attn, note = attention_for_machine("flash_attention_2")
    assert attn == "sdpa" and note is not None and "\n" not in note
    assert note.startswith("attn_implementation flash_attention_2 -> sdpa")
    assert all(reason in note for reason in reasons)


@pytest.mark.parametrize("requested", ["flash_attention_2", "sdpa", "eager", None])
def test_a_machine_that_can_keeps_the_request(monkeypatch: pytest.MonkeyPatch, requested: str | None) -> None:
    _machine(monkeypatch, flash_attn=True, cuda=True)
    assert attention_for_machine(requested) == (requested, None)


def test_other_implementations_are_never_touched(monkeypatch: pytest.MonkeyPatch) -> None:
    _machine(monkeypatch, flash_attn=False, cuda=False)
    assert attention_for_machine("eager") == ("eager", None)


def test_fit_attention_rewrites_a_built_sft_config(monkeypatch: pytest.MonkeyPatch) -> None:
    from rmr1.train.sft import build_sft_config

    recipe = load_recipe(SFTRecipe, "tiny-cpu-sft", ["dataset=x", "attn_implementation=flash_attention_2"])
    config, notes = build_sft_config(recipe, 1)
    assert config.model_init_kwargs["attn_implementation"] == "flash_attention_2"  # the recipe's own value
    _machine(monkeypatch, flash_attn=False, cuda=False)
    fit_attention(config, notes)
    assert config.model_init_kwargs["attn_implementation"] == "sdpa"
    assert config.model_init_kwargs["dtype"] == "float32"  # the rest of the init kwargs stay
    assert sum("-> sdpa" in n for n in notes) == 1
