"""Training: data mixes, distillation, SFT and GRPO (TRL by composition), presets; the CPU demo is ``rmr1.demo``.

- ``mixes``: judge-prompt datasets with a ``winner`` label (paper's position rule, RL mixture sources).
- ``distill``: teacher traces in two passes, resumable, into a TRL conversational SFT dataset.
- ``sft`` / ``grpo``: recipes (``config``) turned into TRL configs and trainers; ``runtime``: shared parts.
- ``presets/*.yaml``: the paper's recipes and CPU tiny ones; ``accelerate/*.yaml``: DeepSpeed ZeRO-3, FSDP.

Heavy imports (torch, TRL) happen inside the functions that need them.
"""

from rmr1.train.config import GRPORecipe, LoraSettings, SFTRecipe, load_recipe, preset_names

__all__ = ["GRPORecipe", "LoraSettings", "SFTRecipe", "load_recipe", "preset_names"]
