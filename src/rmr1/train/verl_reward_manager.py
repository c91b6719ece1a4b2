"""A veRL reward manager that decodes responses with their special tokens; copied as reward_manager.py.

veRL's naive manager decodes with ``skip_special_tokens=True``, which drops the end-of-turn token the paper's
80-character window counts and hides truncation. This subclass changes only the decoding and marks each item
so that ``compute_score`` (reward.py) knows the text is complete. Runs on the cluster, where veRL is installed;
rmr1 never imports it.
"""

from __future__ import annotations

from typing import Any

from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager

KEPT_FLAG = "rmr1_special_tokens_kept"  # must match reward.py


class _KeepSpecialTokens:
    """The tokenizer, except that ``decode`` keeps special tokens whatever the caller asks."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer

    def decode(self, ids: Any, skip_special_tokens: bool = False, **kwargs: Any) -> str:
        text: str = self._tokenizer.decode(ids, skip_special_tokens=False, **kwargs)
        return text

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tokenizer, name)


class RmR1RewardManager(NaiveRewardManager):  # type: ignore[misc]
    """veRL's naive manager with the paper's decoding (special tokens kept)."""

    def __init__(self, config: Any, tokenizer: Any, compute_score: Any, **kwargs: Any) -> None:
        super().__init__(config, _KeepSpecialTokens(tokenizer), compute_score, **kwargs)

    async def run_single(self, data: Any) -> dict[str, Any]:
        # the base class reads extra_info from these same dict objects
        for info in data.non_tensor_batch.get("extra_info", ()):
            if isinstance(info, dict):
                info[KEPT_FLAG] = True
        result: dict[str, Any] = await super().run_single(data)
        return result
