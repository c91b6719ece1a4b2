"""GRPO rollouts with merged LoRA adapters: the same function as the unmerged layers, and afterwards the very
same weight tensors, so training never sees a merge's rounding."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("peft")
# peft 0.21 reads the model's renamed `is_gradient_checkpointing` when it wraps it; training runs silence the
# same notice (rmr1.train.runtime.prepare_process), these tests wrap models directly
pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")


def _lora_model(tiny_model: Path, dtype: str = "float32"):  # type: ignore[no-untyped-def]
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=getattr(torch, dtype))
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    for name, param in peft_model.named_parameters():
        if "lora_B" in name:  # B starts at zero; give the adapter something to add
            torch.nn.init.normal_(param, std=0.05)
    return peft_model


def _logits(model, ids):  # type: ignore[no-untyped-def]
    import torch

    with torch.no_grad():
        return model(input_ids=ids).logits


# How far merged logits may be from the unmerged ones, as a share of what the adapter changes: bf16 rounds the
# merged weight (measured: 0.7%), fp32 only reorders a sum (measured: 3e-7).
@pytest.mark.parametrize(("dtype", "share"), [("float32", 1e-4), ("bfloat16", 2e-2)])
def test_merged_layers_compute_what_the_adapter_does(tiny_model: Path, dtype: str, share: float) -> None:
    import torch

    from rmr1.train.rollouts import adapters_merged

    model = _lora_model(tiny_model, dtype)  # bf16: the merged weight rounds the adapter's delta to bf16
    ids = torch.tensor([[1, 5, 9, 3, 7, 2]])
    unmerged = _logits(model, ids)
    with model.disable_adapter():
        plain = _logits(model, ids)
    effect = (unmerged.float() - plain.float()).abs().max().item()
    assert effect > 0.1  # the adapter does change the output
    with adapters_merged(model) as count:
        assert count > 0
        merged = _logits(model, ids)
    assert (merged.float() - unmerged.float()).abs().max().item() < share * effect


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_the_same_tensors_come_back_untouched(tiny_model: Path, dtype: str) -> None:
    import torch
    from peft.tuners.lora import LoraLayer

    from rmr1.train.rollouts import adapters_merged

    model = _lora_model(tiny_model, dtype)
    layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
    before = [(m.get_base_layer().weight.data, m.get_base_layer().weight.data.clone()) for m in layers]
    with adapters_merged(model):
        assert all(m.merged for m in layers)
        assert any(
            not torch.equal(m.get_base_layer().weight.data, kept)
            for m, (_, kept) in zip(layers, before, strict=True)
        )
    for m, (tensor, kept) in zip(layers, before, strict=True):
        assert not m.merged
        assert m.get_base_layer().weight.data_ptr() == tensor.data_ptr()  # the very same storage
        assert torch.equal(tensor, kept)  # bit for bit, even in bf16


def test_an_error_inside_still_restores_the_weights(tiny_model: Path) -> None:
    import torch

    from rmr1.train.rollouts import adapters_merged

    model = _lora_model(tiny_model)
    ids = torch.tensor([[4, 8, 15, 16]])
    expected = _logits(model, ids)
    with pytest.raises(RuntimeError, match="generation failed"), adapters_merged(model):
        raise RuntimeError("generation failed")
    assert torch.equal(_logits(model, ids), expected)


def test_layers_with_the_adapter_switched_off_are_left_alone(tiny_model: Path) -> None:
    from rmr1.train.rollouts import adapters_merged

    model = _lora_model(tiny_model)
    with model.disable_adapter(), adapters_merged(model) as count:
        assert count == 0
