"""The model's context window: prompts that do not fit are not sent, budgets that do not fit are clamped.

Every backend declares ``context_length`` (tokens, or None when it cannot know) and applies one rule before it
generates, so an over-long prompt never costs the batch it is in:

- a prompt needs room for at least one new token: ``prompt_tokens + 1 > window`` comes back at once as a
  ``Completion(finish_reason="too_long")`` with ``prompt_tokens`` measured and ``error`` saying so;
- a prompt that fits but leaves less than ``max_new_tokens`` generates ``window - prompt_tokens`` tokens.

``too_long`` is final: a resumed run keeps it (it would not fit the next time either), unlike ``error``.
"""

from __future__ import annotations

from typing import Any

from rmr1.types import Completion

# tokenizer.model_max_length when the tokenizer does not know it (transformers' VERY_LARGE_INTEGER is 1e30).
_NO_LIMIT = 10**9
# Config fields that hold the positions a model was built for, by model family.
_CONFIG_FIELDS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx")


def context_length(backend: object) -> int | None:
    """A backend's declared window in tokens; None when it does not say (nothing is checked then)."""
    value = getattr(backend, "context_length", None)
    return value if isinstance(value, int) and value > 0 else None


def window_from_config(config: Any, tokenizer: Any = None) -> int | None:
    """The window of a transformers model: its config's position count, else the tokenizer's limit when real."""
    for name in _CONFIG_FIELDS:
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    return limit if isinstance(limit, int) and 0 < limit < _NO_LIMIT else None


def fit_budget(prompt_tokens: int, max_new_tokens: int, window: int | None) -> int | None:
    """The generation budget this prompt can have; None when the prompt leaves no room for one new token."""
    if window is None:
        return max_new_tokens
    if prompt_tokens + 1 > window:
        return None
    return min(max_new_tokens, window - prompt_tokens)


def too_long(prompt_tokens: int, window: int | None, detail: str = "") -> Completion:
    """The completion of a prompt that was not sent because it does not fit the window."""
    size = f"the model's window of {window} tokens" if window else "the model's window"
    what = f"prompt of {prompt_tokens} tokens" if prompt_tokens else "prompt"
    why = f"{what} leaves no room in {size}; not sent"
    return Completion(
        text="",
        finish_reason="too_long",
        prompt_tokens=prompt_tokens,
        error=f"{why} ({detail})" if detail else why,
    )


__all__ = ["context_length", "fit_budget", "too_long", "window_from_config"]
