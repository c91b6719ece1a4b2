"""GRPO rollouts with the LoRA adapter folded into the weights.

TRL generates a LoRA policy's rollouts through PEFT's unmerged layers: every decoding step of every linear
layer runs the base matmul and the two low-rank ones beside it. Generation is most of a GRPO step on CPU, and
with the demo's bf16 weights and fp32 adapter it took 1.15x the time it takes with the weights merged
(docs/design/merged-rollouts.md). Here the adapter is merged for the rollouts only, into fresh tensors
(PEFT's ``safe_merge``), and the original weight and bias tensors are put back afterwards. So the trained
weights are never rounded by a merge and an unmerge, and the loss, log-probs and reference pass still run
through the unmerged adapter. With bf16 weights the rollouts sample from the merged weights rounded to bf16,
the same small mismatch as rollouts from an inference engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def adapters_merged(model: Any) -> Iterator[int]:
    """Within the block, ``model``'s plain LoRA layers compute with merged weights; yields how many were merged.

    Layers already merged, with adapters switched off, or with a LoRA variant (DoRA) are left as they are.
    """
    from peft.tuners.lora import LoraLayer

    kept: list[tuple[Any, Any, Any, Any]] = []  # (layer, base layer, its weight tensor, its bias tensor)
    try:
        for module in model.modules():
            if not isinstance(module, LoraLayer) or module.merged or module.disable_adapters:
                continue
            if any(name in module.lora_variant for name in module.active_adapters):
                continue
            base = module.get_base_layer()
            bias = getattr(base, "bias", None)
            kept.append((module, base, base.weight.data, None if bias is None else bias.data))
            module.merge(safe_merge=True)  # new tensors; the kept ones stay untouched
        yield len(kept)
    finally:
        for module, base, weight, bias in reversed(kept):
            base.weight.data = weight
            if bias is not None:
                base.bias.data = bias
            module.merged_adapters.clear()


def merged_rollout_trainer(trainer_cls: type) -> type:
    """A subclass of TRL's GRPOTrainer whose transformers-generated rollouts use merged adapters.

    vLLM rollouts, TRL's continuous batching and sharded models (DeepSpeed, FSDP) keep TRL's own path: there
    the weights are not whole tensors on this process, or another engine holds them.
    """

    class MergedRolloutGRPOTrainer(trainer_cls):  # type: ignore[misc, valid-type]
        def _generate_single_turn(self, *args: Any, **kwargs: Any) -> Any:
            own_path = (
                self.use_vllm
                or self.use_transformers_continuous_batching
                or self.is_deepspeed_enabled
                or self.is_fsdp_enabled
            )
            if own_path:
                return super()._generate_single_turn(*args, **kwargs)
            with adapters_merged(self.accelerator.unwrap_model(self.model)):
                return super()._generate_single_turn(*args, **kwargs)

    return MergedRolloutGRPOTrainer


__all__ = ["adapters_merged", "merged_rollout_trainer"]
