"""Stop strings for the transformers backend that never fire inside a ``<think>`` block.

transformers' own ``stop_strings`` stop at the first match anywhere, so a thinking judge that drafts
``<answer>[[A]]</answer>`` while it thinks would be cut off mid-thought. This criterion reads each row's
decoded text with the same rule as ``rmr1.verdicts.stop_end``: a stop counts only outside a thought, and a row
whose prompt opened ``<think>`` starts inside one. Imported by ``HFBackend`` only when a batch has stop strings.

Cost: a stop string can only complete on a token that holds its last character, so each step looks up the
newest token of every row in a precomputed table (one tensor index for the batch) and decodes only the rows
whose token could end a stop: first a short tail, then, when the stop shows in it, the whole generated text.
"""

from __future__ import annotations

import functools
import string
from collections.abc import Sequence
from typing import Any

import torch
from transformers import StoppingCriteria

from rmr1.verdicts import stop_end

_THINK = "<think>"
# Characters that every tokenizer family writes literally in its token strings (byte-level BPE maps printable
# ASCII to itself, SentencePiece keeps it, byte-fallback pieces "<0x3E>" contain ">" anyway).
_LITERAL = set(string.ascii_letters + string.digits + string.punctuation)


@functools.lru_cache(maxsize=8)
def _can_end(tokenizer: Any, last_chars: frozenset[str]) -> torch.Tensor | None:
    """A table over token ids: True where the token's text holds one of ``last_chars``; None: cannot tell."""
    if not last_chars <= _LITERAL:
        return None  # e.g. a stop ending in a newline, which byte-level BPE spells differently
    vocab: dict[str, int] = tokenizer.get_vocab()
    table = torch.zeros(max(vocab.values(), default=0) + 1, dtype=torch.bool)
    for piece, index in vocab.items():
        if any(c in piece for c in last_chars):
            table[index] = True
    return table


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
        self.can_end = _can_end(tokenizer, frozenset(s[-1] for s in self.stops))

    def _stopped(self, row: torch.Tensor, k: int) -> bool:
        generated = row[self.width :]
        tail = self.tokenizer.decode(generated[-self.tail :].tolist(), skip_special_tokens=True)
        if not any(s in tail for s in self.stops):
            return False
        text = self.tokenizer.decode(generated.tolist(), skip_special_tokens=True)
        return stop_end(text, self.stops, think_opened=self.think_opened[k]) is not None

    def _candidates(self, input_ids: torch.Tensor) -> list[bool]:
        """Rows whose newest token could complete a stop string."""
        if self.can_end is None:
            return [True] * input_ids.shape[0]
        newest = input_ids[:, -1].cpu()
        known = newest < self.can_end.shape[0]
        hits = torch.where(known, self.can_end[newest.clamp(max=self.can_end.shape[0] - 1)], True)
        return [bool(h) for h in hits.tolist()]

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        for k, candidate in enumerate(self._candidates(input_ids)):
            if candidate and not self.done[k]:
                self.done[k] = self._stopped(input_ids[k], k)
        return torch.tensor(self.done, dtype=torch.bool, device=input_ids.device)  # type: ignore[return-value]


__all__ = ["StopOutsideThought", "prompt_opens_think"]
