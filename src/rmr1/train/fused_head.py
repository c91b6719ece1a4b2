"""TRL's fused LM head on CPU: project only the positions that have a label.

TRL's SFT and GRPO trainers get per-token log-probabilities from a fused LM head (``add_fused_lm_head`` in
``trl.trainer.utils``): the hidden states are projected onto the vocabulary in tiles, folded into running
log-sum-exp statistics, and the ``(batch, seq, vocab)`` logits are never held at once. On CUDA and XPU it
projects only the positions whose label is not -100. Everywhere else it projects every position and masks
the result, because on a compiled device (TRL names Neuron) a number of positions that changes with each
batch would recompile the graph. Eager CPU compiles nothing, so the masked positions are only waste: an SFT
example's prompt (about 140 of the 240 positions of a demo SFT sequence), a GRPO rollout's prompt and padding.

``compact_on_cpu`` makes the head take its compact path on CPU too. The numbers are unchanged (the same
tiles, over fewer rows; tests/unit/test_train_fused_head.py), and the demo's SFT step takes 0.66x and its
GRPO step 0.72x the time (docs/design/fused-head-cpu.md, bench/fused_head.py). TRL decides the path with
one call to its private ``_use_triton`` in that module, so this wraps that one name and does nothing when
TRL's source no longer matches.
"""

from __future__ import annotations

import inspect
from typing import Any

_MARK = "_rmr1_compact_cpu"
_DECISION = "compact = _use_triton("  # the line in add_fused_lm_head that picks the path


def _trl_utils() -> Any | None:
    try:
        import trl.trainer.utils as trl_utils
    except ImportError:
        return None
    return trl_utils


def _decides_by_use_triton(trl_utils: Any) -> bool:
    """Whether ``_use_triton`` in TRL's trainer utilities does nothing but choose the fused head's path."""
    try:
        source = inspect.getsource(trl_utils)
    except (OSError, TypeError):
        return False
    return source.count("_use_triton(") == 1 and _DECISION in source


def compact_on_cpu() -> bool:
    """Make TRL's fused LM head score only labelled positions on CPU; True when it now does.

    Idempotent. Other devices keep TRL's own choice. False (and nothing changed) without TRL, or when this
    TRL version picks the path some other way.
    """
    trl_utils = _trl_utils()
    if trl_utils is None:
        return False
    current = getattr(trl_utils, "_use_triton", None)
    if current is None:
        return False
    if getattr(current, _MARK, False):
        return True
    if not _decides_by_use_triton(trl_utils):
        return False

    def use_compact(device: Any) -> bool:
        return device.type == "cpu" or bool(current(device))

    setattr(use_compact, _MARK, True)
    trl_utils._use_triton = use_compact
    return True


__all__ = ["compact_on_cpu"]
