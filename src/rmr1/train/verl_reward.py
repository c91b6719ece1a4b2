"""The RM-R1 reward as a veRL ``compute_score``; ``rmr1 train export --engine verl`` copies this file as reward.py.

It needs nothing but Python on the cluster: it uses ``rmr1.rm_r1_reward`` when rmr1 is installed and otherwise
the same rule written out below (the tests hold the two equal on the reward case table).

How veRL hands us the response. Its reward managers decode the valid response ids (which include the
end-of-turn token vLLM stopped on) with ``skip_special_tokens=True``, so the end-of-turn token is gone and a
truncated response looks like a finished one. The paper's rule reads the last 80 characters of the response
decoded *with* special tokens, end-of-turn included, and gives a truncated response -1. Two ways in:

- through ``RmR1RewardManager`` (reward_manager.py, what run_grpo.sh selects): the text keeps its special
  tokens and ``extra_info`` carries ``KEPT_FLAG``; a response that does not end in a stop token was cut at
  max_response_length and scores -1. This is the paper's rule exactly.
- through veRL's stock manager: the end-of-turn token is put back before the tail is taken (so the window
  holds 80 - len(end-of-turn) characters of text, as in the paper); truncation cannot be seen, so a response
  cut right after a correct verdict tag would score +1 instead of -1.
"""

from __future__ import annotations

from typing import Any

# The export rewrites the next two lines with the model's own tokens (from its tokenizer).
END_OF_TURN = "<|im_end|>"  # what a finished response ends with, as decoded
STOP_TOKENS: tuple[str, ...] = ("<|im_end|>", "<|endoftext|>")  # any of these ends a response
KEPT_FLAG = "rmr1_special_tokens_kept"  # set in extra_info by RmR1RewardManager
WINDOW = 80


def _embedded_rule(completion: str, winner: str, *, truncated: bool = False) -> float:
    """rmr1.verdicts.rm_r1_reward, written out so this file runs without rmr1."""
    label = str(winner).strip().lower()
    if label not in ("model_a", "model_b", "a", "b"):
        raise ValueError(f"winner must be model_a or model_b, got {winner!r}")
    right = "A" if label in ("model_a", "a") else "B"
    wrong = "B" if right == "A" else "A"
    if truncated:
        return -1.0
    tail = completion[-WINDOW:]
    good, bad = f"<answer>[[{right}]]</answer>", f"<answer>[[{wrong}]]</answer>"
    return 1.0 if good in tail and bad not in tail else -1.0


try:
    from rmr1.verdicts import rm_r1_reward as _rule
except ImportError:  # the cluster has veRL but not rmr1
    _rule = _embedded_rule


def compute_score(
    data_source: str, solution_str: str, ground_truth: str, extra_info: dict[str, Any] | None = None
) -> float:
    """+1 when the last 80 characters of the decoded response hold the right verdict tag and not the other."""
    info = extra_info if isinstance(extra_info, dict) else {}
    if info.get(KEPT_FLAG):
        return float(_rule(solution_str, ground_truth, truncated=not solution_str.endswith(STOP_TOKENS)))
    text = solution_str if solution_str.endswith(STOP_TOKENS) else solution_str + END_OF_TURN
    return float(_rule(text, ground_truth))
