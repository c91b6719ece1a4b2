"""veRL custom reward functions backed by an rmr1 judge (see verl_reward.yaml beside this file).

veRL loads a function from this file by name:
- ``verl_compute_score``: the policy's solution judged against ``ground_truth`` (a reference response):
  +1 better, -1 worse, 0 for a draw or an unparsed verdict; the question is ``extra_info["question"]``.
- ``verl_compute_score_async``: the same as a coroutine, for veRL's async reward loop; against a server, the
  concurrent calls share the server's micro-batches.
- ``verl_compute_score_batch``: the batched form (``reward_model.reward_manager=batch``).
- ``verl_rm_r1_score``: for *training* a judge the RM-R1 way: ``ground_truth`` is model_a / model_b and the
  reward is the paper's rule on the judge's own output.
``reward_kwargs`` choose the judge: ``judge_url`` (an ``rmr1 serve`` server, with ``judge_token``), or
``model``, ``backend``, ``template``, ``max_new_tokens`` for a judge inside each reward worker.
"""

from rmr1.rewards import (
    verl_compute_score,
    verl_compute_score_async,
    verl_compute_score_batch,
    verl_rm_r1_score,
)

__all__ = ["verl_compute_score", "verl_compute_score_async", "verl_compute_score_batch", "verl_rm_r1_score"]
