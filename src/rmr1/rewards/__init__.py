"""Rewards for RL: the paper's rule for training a judge, and adapters that turn a pairwise judge into the
scalar rewards that TRL, veRL and OpenRLHF expect.

A ``Group`` is one prompt's completions (and optionally a reference response). A ``GroupScorer`` turns groups
into ``GroupScore`` s: ``LocalScorer(judge)`` judges in this process, ``rmr1.serve.client.RemoteScorer(url)``
asks an ``rmr1 serve`` server (``POST /v1/score``). Methods:

- ``round_robin``: 2 * win rate - 1 inside the group (a draw is half a win; see ``rmr1.tournament``);
- ``knockout``: 2 * (share of rounds got through) - 1, with n-1 comparisons instead of n(n-1)/2;
- ``reference``: each completion against the group's reference: +1 win, -1 loss, 0 draw;
- ``bradley_terry_prob``: round robin, then Bradley-Terry fitted on P(i beats j) from the verdict
  probabilities (both orders averaged; the votes where no probability was read), the reward being the
  expected win rate in the group, 2 * rate - 1 (see ``rmr1.rewards.probabilistic``). Judge with
  ``verdict="logprob"`` or ``"forced"`` to get the probabilities.
- ``rating`` (a pointwise judge, ``--mode pointwise``): each completion's own 1-10 rating mapped onto [-1, 1]
  (an unrated one 0, counted in ``unparsed``). A pointwise judge under the other methods decides each
  comparison by the two ratings, rating every completion once.

An unparsed verdict is a draw, so every completion gets a defined reward, and the draws and unparsed
comparisons are counted per completion. Empty completions are not sent to the judge: they lose to any
non-empty one and draw with each other (so they score -1 against a reference). A group of one completion has
no peers and scores 0.
"""

from rmr1.rewards.groups import (
    METHODS,
    Group,
    GroupScore,
    GroupScorer,
    LocalScorer,
    as_scorer,
    completion_text,
    prompt_messages,
    score_groups,
)
from rmr1.rewards.openrlhf import openrlhf_rewards
from rmr1.rewards.trl import AsyncJudgeReward, JudgeReward, TRLSpec
from rmr1.rewards.verl import (
    scorer_from_options,
    verl_compute_score,
    verl_compute_score_async,
    verl_compute_score_batch,
    verl_group,
    verl_rm_r1_score,
)
from rmr1.verdicts import rm_r1_reward

__all__ = [
    "METHODS",
    "AsyncJudgeReward",
    "Group",
    "GroupScore",
    "GroupScorer",
    "JudgeReward",
    "LocalScorer",
    "TRLSpec",
    "as_scorer",
    "completion_text",
    "openrlhf_rewards",
    "prompt_messages",
    "rm_r1_reward",
    "score_groups",
    "scorer_from_options",
    "verl_compute_score",
    "verl_compute_score_async",
    "verl_compute_score_batch",
    "verl_group",
    "verl_rm_r1_score",
]
