"""Groups of completions -> one reward each, from a pairwise judge (the rule is in ``rmr1.rewards``)."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from rmr1 import pointwise
from rmr1.errors import ConfigError, InputError
from rmr1.judge import Judge
from rmr1.tournament import Match, TournamentResult, judge_matches, reference_reward, run_tournaments
from rmr1.types import CandidateSet, Message, PreferencePair, as_messages

METHODS = ("round_robin", "knockout", "reference", "rating", "bradley_terry_prob")


@dataclass(frozen=True)
class Group:
    """One prompt's completions; ``reference`` is needed by the ``reference`` method only."""

    prompt: tuple[Message, ...]
    responses: tuple[str, ...]
    reference: str | None = None


@dataclass(frozen=True)
class GroupScore:
    rewards: tuple[float, ...]  # one per response, in [-1, 1]
    comparisons: tuple[int, ...]  # judged comparisons each response took part in
    draws: tuple[int, ...]  # of those, draws (unparsed or split votes)
    unparsed: tuple[int, ...]  # of those, comparisons with no parsed verdict at all
    calls: int = 0  # backend requests made for this group

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GroupScore:
        return cls(
            tuple(float(x) for x in data["rewards"]),
            tuple(data["comparisons"]),
            tuple(data["draws"]),
            tuple(data["unparsed"]),
            int(data.get("calls", 0)),
        )


def _live(text: str) -> bool:
    return isinstance(text, str) and bool(text.strip())


def _item_id(index: int, group: Group) -> str:
    # Seeds each group's orders and bracket by its content, so equal inputs get equal treatment in any batch.
    digest = hashlib.sha256(repr((group.prompt, group.responses)).encode()).hexdigest()[:12]
    return f"g{index}-{digest}"


def _tally(n: int, matches: Sequence[Match], index: Sequence[int]) -> tuple[list[int], list[int], list[int]]:
    comparisons, draws, unparsed = [0] * n, [0] * n, [0] * n
    for m in matches:
        for k in (index[m.i], index[m.j]):
            comparisons[k] += 1
            draws[k] += m.winner is None
            unparsed[k] += m.unparsed
    return comparisons, draws, unparsed


def _tournament_score(group: Group, live: list[int], result: TournamentResult | None) -> GroupScore:
    n, empties = len(group.responses), len(group.responses) - len(live)
    if n == 1:
        return GroupScore((0.0,), (0,), (0,), (0,))
    rewards = [0.0] * n
    if result is not None and result.method == "knockout":
        rounds = result.rounds
        extra = 1 if empties else 0  # beating the empty responses counts as one more round
        for k, idx in enumerate(live):
            rewards[idx] = 2.0 * (result.scores[k] * rounds + extra) / (rounds + extra) - 1.0
        for idx in set(range(n)) - set(live):
            rewards[idx] = -1.0
    else:
        wins = [0.0] * n
        for k, idx in enumerate(live):
            wins[idx] = (result.wins[k] if result is not None else 0.0) + empties
        for idx in set(range(n)) - set(live):
            wins[idx] = 0.5 * (empties - 1)
        rewards = [2.0 * w / (n - 1) - 1.0 for w in wins]
    matches = result.matches if result is not None else ()
    comparisons, draws, unparsed = _tally(n, matches, live)
    calls = result.calls if result is not None else 0
    return GroupScore(tuple(rewards), tuple(comparisons), tuple(draws), tuple(unparsed), calls)


def _reference_scores(judge: Judge, groups: Sequence[Group]) -> list[GroupScore]:
    pairs, owners = [], []
    for g_index, group in enumerate(groups):
        if not isinstance(group.reference, str) or not group.reference.strip():
            raise InputError(f"group {g_index} has no reference response", field="reference")
        for k, response in enumerate(group.responses):
            if _live(response):
                pairs.append(
                    PreferencePair(_item_id(g_index, group), group.prompt, response, group.reference, pair=k)
                )
                owners.append((g_index, k))
    matches = judge_matches(judge, pairs)
    out = [[-1.0] * len(g.responses) for g in groups]  # empty responses lose to the reference
    stats = [[[0] * len(g.responses) for _ in range(3)] for g in groups]
    calls = [0] * len(groups)
    for (g_index, k), match in zip(owners, matches, strict=True):
        out[g_index][k] = reference_reward(match)
        stats[g_index][0][k] = 1
        stats[g_index][1][k] = int(match.winner is None)
        stats[g_index][2][k] = int(match.unparsed)
        calls[g_index] += len(match.judgments)
    return [
        GroupScore(tuple(r), tuple(s[0]), tuple(s[1]), tuple(s[2]), c)
        for r, s, c in zip(out, stats, calls, strict=True)
    ]


def _bt_prob_score(group: Group, live: list[int], result: TournamentResult | None) -> GroupScore:
    """Bradley-Terry on P(i beats j) over the round robin (rmr1.rewards.probabilistic); an empty response
    loses to every non-empty one for sure and draws with the other empty ones."""
    from rmr1.rewards.probabilistic import bradley_terry_probabilities, expected_win_rewards, outcomes_of

    n = len(group.responses)
    if n == 1:
        return GroupScore((0.0,), (0,), (0,), (0,))
    matches = result.matches if result is not None else ()
    outcomes = [(live[i], live[j], p) for i, j, p in outcomes_of(matches)]
    empty = [k for k in range(n) if k not in live]
    outcomes += [(k, e, 1.0) for k in live for e in empty]
    outcomes += [(a, b, 0.5) for x, a in enumerate(empty) for b in empty[x + 1 :]]
    rewards = expected_win_rewards(bradley_terry_probabilities(n, outcomes))
    comparisons, draws, unparsed = _tally(n, matches, live)
    calls = result.calls if result is not None else 0
    return GroupScore(tuple(rewards), tuple(comparisons), tuple(draws), tuple(unparsed), calls)


def score_groups(judge: Judge, groups: Sequence[Group], method: str = "round_robin") -> list[GroupScore]:
    """Score every group; the comparisons of all groups share backend calls (one per tournament round)."""
    if method not in METHODS:
        raise ConfigError(f"unknown reward method {method!r}; choose one of {', '.join(METHODS)}")
    if method == "reference":
        return _reference_scores(judge, groups)
    if method == "rating":  # a pointwise judge: each completion's own normalised rating
        return pointwise.rating_rewards(judge, groups, [_item_id(i, g) for i, g in enumerate(groups)])
    tournament = "round_robin" if method == "bradley_terry_prob" else method
    live = [[k for k, r in enumerate(g.responses) if _live(r)] for g in groups]
    runnable = [i for i, idx in enumerate(live) if len(idx) >= 2]
    sets = [
        CandidateSet(_item_id(i, groups[i]), groups[i].prompt, tuple(groups[i].responses[k] for k in live[i]))
        for i in runnable
    ]
    results = dict(zip(runnable, run_tournaments(judge, sets, method=tournament), strict=True))
    if method == "bradley_terry_prob":
        return [_bt_prob_score(g, live[i], results.get(i)) for i, g in enumerate(groups)]
    return [_tournament_score(g, live[i], results.get(i)) for i, g in enumerate(groups)]


class GroupScorer(Protocol):
    def score(self, groups: Sequence[Group], method: str) -> list[GroupScore]: ...

    async def ascore(self, groups: Sequence[Group], method: str) -> list[GroupScore]: ...


class LocalScorer:
    """Judges in this process. One call at a time: local backends are not thread-safe."""

    def __init__(self, judge: Judge) -> None:
        self.judge = judge
        self._lock = threading.Lock()

    def score(self, groups: Sequence[Group], method: str) -> list[GroupScore]:
        with self._lock:
            return score_groups(self.judge, groups, method)

    async def ascore(self, groups: Sequence[Group], method: str) -> list[GroupScore]:
        return await asyncio.to_thread(self.score, groups, method)


def as_scorer(scorer: GroupScorer | Judge) -> GroupScorer:
    """A Judge becomes a LocalScorer; a scorer stays itself."""
    return LocalScorer(scorer) if isinstance(scorer, Judge) else scorer


def _content_text(content: Any, field: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):  # OpenAI-style content parts: keep the text ones
        return "".join(
            str(p.get("text", "")) for p in content if isinstance(p, Mapping) and p.get("type") == "text"
        )
    raise InputError(
        f"message content must be a string or a list of parts, got {type(content).__name__}", field=field
    )


def completion_text(completion: Any, field: str = "completions") -> str:
    """A TRL completion as text: a string, or a list of messages whose assistant turns are joined."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        return _content_text(completion.get("content"), field)
    if isinstance(completion, Sequence):
        parts = []
        for k, message in enumerate(completion):
            if not isinstance(message, Mapping):
                raise InputError(
                    f"expected a message object, got {type(message).__name__}", field=f"{field}[{k}]"
                )
            if message.get("role", "assistant") == "assistant":
                parts.append(_content_text(message.get("content"), f"{field}[{k}].content"))
        return "".join(parts)
    raise InputError(f"expected a string or a list of messages, got {type(completion).__name__}", field=field)


def prompt_messages(prompt: Any, field: str = "prompt") -> tuple[Message, ...]:
    """A prompt (string or messages, content as text or parts) as Messages."""
    if isinstance(prompt, Sequence) and not isinstance(prompt, str):
        prompt = [
            {**m, "content": _content_text(m.get("content"), f"{field}[{k}].content")}
            if isinstance(m, Mapping)
            else m
            for k, m in enumerate(prompt)
        ]
    return as_messages(prompt, field_name=field)
