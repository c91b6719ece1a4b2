"""Stop strings for the transformers backend that never fire inside a ``<think>`` block.

transformers' own ``stop_strings`` stop at the first match anywhere, so a thinking judge that drafts
``<answer>[[A]]</answer>`` while it thinks would be cut off mid-thought. This criterion reads each row's
decoded text with the same rule as ``rmr1.verdicts.stop_end``: a stop counts only outside a thought, and a row
whose prompt opened ``<think>`` starts inside one. Imported by ``HFBackend`` only when a batch has stop strings.

Cost: each step decodes only the last few tokens of each live row; the whole generated text is decoded only
when a stop string shows up in that tail.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import StoppingCriteria

from rmr1.verdicts import stop_end

_THINK = "<think>"


def prompt_opens_think(tokenizer: Any, ids: Sequence[int]) -> bool:
    """Whether the rendered prompt ends inside an opened thought (chat templates of thinking models do this)."""
    tail = tokenizer.decode(list(ids[-8:]), skip_special_tokens=False)
    return str(tail).rstrip().lower().endswith(_THINK)


class StopOutsideThought(StoppingCriteria):
    """Per row: done once a stop string has been generated outside any ``<think>`` block."""

    def __init__(
        self, tokenizer: Any, stops: Sequence[str], prompt_width: int, think_opened: Sequence[bool]
    ) -> None:
        self.tokenizer = tokenizer
        self.stops = tuple(s for s in stops if s)
        self.width = prompt_width
        self.think_opened = list(think_opened)
        self.done = [False] * len(self.think_opened)
        # Every token decodes to at least one character (or a byte of one), so this many tokens cover a stop.
        self.tail = max((len(s) for s in self.stops), default=1) + 2

    def _stopped(self, row: torch.Tensor, k: int) -> bool:
        generated = row[self.width :]
        tail = self.tokenizer.decode(generated[-self.tail :].tolist(), skip_special_tokens=True)
        if not any(s in tail for s in self.stops):
            return False
        text = self.tokenizer.decode(generated.tolist(), skip_special_tokens=True)
        return stop_end(text, self.stops, think_opened=self.think_opened[k]) is not None

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        for k, row in enumerate(input_ids):
            if not self.done[k]:
                self.done[k] = self._stopped(row, k)
        return torch.tensor(self.done, dtype=torch.bool, device=input_ids.device)  # type: ignore[return-value]


__all__ = ["StopOutsideThought", "prompt_opens_think"]
