"""Pointwise judging: each response is rated alone (principles, critique, ``<score>1-10</score>``) and pairwise
decisions are derived from two ratings, so every benchmark scorer, tournament and reward works unchanged.

- A ``Judge`` whose ``config.mode`` is ``"pointwise"`` hands its planning and running to this module. A planned
  ``Call`` is still one (pair, order, sample); its ``request`` is the rating request of the response shown as A
  (B's is built beside it). Running a batch rates every response it needs once: ratings are memoised per judge
  by (item id, response text, sample), so a response shared by several comparisons of one item (RM-Bench's 3x3,
  a best-of-n set, a round robin) costs one model call, also when the item's pairs span two batches.
- The decision: the higher rating wins; equal ratings are an explicit tie (``verdict`` null, ``parse_error``
  ``"tie"``); a missing rating leaves the pair undecided (``"unrated (A: no_score)"``). The logged judgment keeps
  the contract fields and adds ``score_a``/``score_b`` and ``completion_b`` (``completion`` is A's trace);
  tokens and latency are the two ratings' sum (a shared rating is counted in every pair that uses it).
- Tournaments: ``rating_tournaments`` ranks n candidates by their ratings (n calls); rewards: ``rating_rewards``
  gives each completion its normalised rating in [-1, 1] (an unrated one 0, like a draw; an empty one -1).
"""

from __future__ import annotations

import hashlib
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from rmr1.errors import ConfigError
from rmr1.prompts.pointwise import render_rating
from rmr1.types import (
    Completion,
    GenerationRequest,
    Judgment,
    Message,
    PreferencePair,
    is_correct,
)
from rmr1.verdicts import SCORE_MAX, SCORE_MIN, UNRATED, decide, parse_score

if TYPE_CHECKING:
    from rmr1.judge import Call, Judge
    from rmr1.prompts import JudgeTemplate
    from rmr1.rewards.groups import Group, GroupScore
    from rmr1.tournament import TournamentResult
    from rmr1.types import CandidateSet

JUDGE_MODES = ("pairwise", "pointwise")
STOP = ("</score>",)
MEMO_SIZE = 1024  # ratings kept per judge; an item has at most a few dozen responses
PAIRWISE_TEMPLATES = ("cor", "reasoning", "cor-notype", "plain")
POINTWISE_DEFAULT = "pointwise"
# The worse of the two ratings' finish reasons is logged; too_long is worst: that pair can never be decided, and
# logging it (not "error") keeps a resume from asking again for a rating that will not fit.
_FINISH_RANK = {"stop": 0, "length": 2, "error": 3, "too_long": 4}


def check_template(mode: str, template: JudgeTemplate) -> None:
    """Refuse a built-in template of the other family (a file template is the user's to choose)."""
    if mode == "pointwise" and template.name in PAIRWISE_TEMPLATES:
        raise ConfigError(
            f"template {template.name!r} compares two responses; pointwise mode needs a pointwise template "
            "(pointwise, pointwise-reasoning) or --template-file"
        )
    if mode == "pairwise" and template.name in ("pointwise", "pointwise-reasoning"):
        raise ConfigError(f"template {template.name!r} rates one response; use it with --mode pointwise")


@dataclass(frozen=True)
class Rating:
    """One response's rating: ``score`` None when no score could be read, ``reason`` saying why."""

    score: float | None
    reason: str | None
    completion: Completion
    neutralised: bool = False

    @property
    def normalised(self) -> float | None:
        """The rating mapped onto [0, 1]."""
        return None if self.score is None else (self.score - SCORE_MIN) / (SCORE_MAX - SCORE_MIN)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def rating_key(item_id: str, response: str, sample: int) -> str:
    """Identifies one rating call: the same response of the same item is rated once per sample."""
    return f"{item_id}|r:{_digest(response)}|{sample}"


def rating_request(
    judge: Judge, context: tuple[Message, ...], response: str, item_id: str, sample: int
) -> tuple[GenerationRequest, bool]:
    cfg = judge.config
    key = rating_key(item_id, response, sample)
    messages, neutralised = render_rating(judge.template, context, response)
    sampling = cfg.sampling(key, STOP, thinking=judge.template.thinking)
    return GenerationRequest(messages, sampling, key), neutralised


def _sides(call: Call) -> tuple[str, str]:
    pair = call.pair
    return (pair.chosen, pair.rejected) if call.order == "AB" else (pair.rejected, pair.chosen)


def plan(judge: Judge, pair: PreferencePair) -> list[Call]:
    """The pointwise calls of one pair: one per order and sample, as the pairwise plan has."""
    from rmr1.judge import Call

    check_template("pointwise", judge.template)
    calls = []
    for order in judge.orders(pair):
        a, b = (pair.chosen, pair.rejected) if order == "AB" else (pair.rejected, pair.chosen)
        for sample in range(judge.config.samples):
            request, neutral_a = rating_request(judge, pair.context, a, pair.item_id, sample)
            neutral_b = render_rating(judge.template, pair.context, b)[1]
            calls.append(Call(pair, order, sample, request, neutral_a or neutral_b))
    return calls


class _Memo:
    """The most recent ratings of one judge, oldest dropped first."""

    def __init__(self, size: int = MEMO_SIZE) -> None:
        self.size = size
        self.ratings: OrderedDict[str, Rating] = OrderedDict()

    def get(self, key: str) -> Rating | None:
        rating = self.ratings.get(key)
        if rating is not None:
            self.ratings.move_to_end(key)
        return rating

    def put(self, key: str, rating: Rating) -> None:
        self.ratings[key] = rating
        self.ratings.move_to_end(key)
        while len(self.ratings) > self.size:
            self.ratings.popitem(last=False)


_MEMOS: weakref.WeakKeyDictionary[Judge, _Memo] = weakref.WeakKeyDictionary()


def _memo(judge: Judge) -> _Memo:
    memo = _MEMOS.get(judge)
    if memo is None:
        memo = _MEMOS[judge] = _Memo()
    return memo


def to_rating(completion: Completion, neutralised: bool = False) -> Rating:
    if completion.finish_reason in ("error", "too_long"):
        return Rating(None, completion.error or completion.finish_reason, completion, neutralised)
    score = parse_score(completion.full_text)
    return Rating(score.value, score.reason, completion, neutralised)


def rate(judge: Judge, requests: dict[str, tuple[GenerationRequest, bool]]) -> dict[str, Rating]:
    """Rate each keyed request, ``batch_size`` requests per backend call; memoised ratings are not asked again."""
    memo = _memo(judge)
    out: dict[str, Rating] = {}
    todo = []
    for key, item in requests.items():
        known = memo.get(key)
        if known is not None:
            out[key] = known
        else:
            todo.append((key, item))
    size = judge.config.batch_size
    for start in range(0, len(todo), size):
        chunk = todo[start : start + size]
        completions = judge.backend.generate([request for _, (request, _) in chunk])
        if len(completions) != len(chunk):
            raise RuntimeError(f"backend returned {len(completions)} completions for {len(chunk)} requests")
        for (key, (_, neutralised)), completion in zip(chunk, completions, strict=True):
            out[key] = to_rating(completion, neutralised)
            if completion.finish_reason != "error":  # a failed call is asked again next time
                memo.put(key, out[key])
    return out


def _unrated_reason(a: Rating, b: Rating) -> str:
    missing = [f"{side}: {r.reason}" for side, r in (("A", a), ("B", b)) if r.score is None]
    return f"{UNRATED} ({', '.join(missing)})"


def to_judgment(judge: Judge, call: Call, a: Rating, b: Rating) -> Judgment:
    """The pair decision from the ratings of its A and B responses."""
    verdict, reason = decide(a.score, b.score)
    if reason == UNRATED:
        reason = _unrated_reason(a, b)
    ca, cb = a.completion, b.completion
    finish = max(ca.finish_reason, cb.finish_reason, key=lambda f: _FINISH_RANK.get(f, 1))
    latency = round(ca.latency_s + cb.latency_s, 4) if judge.config.record_latency else 0.0
    return call.judgment(
        verdict,
        finish_reason=finish,
        completion=ca.full_text,
        prompt_tokens=ca.prompt_tokens + cb.prompt_tokens,
        completion_tokens=ca.completion_tokens + cb.completion_tokens,
        latency_s=latency,
        parse_error=reason,
        score_a=a.score,
        score_b=b.score,
        completion_b=cb.full_text,
    )


def _run_batch(judge: Judge, batch: Sequence[Call]) -> list[Judgment]:
    needed: dict[str, tuple[GenerationRequest, bool]] = {}
    keys = []
    for call in batch:
        pair_keys = []
        for response in _sides(call):
            key = rating_key(call.pair.item_id, response, call.sample)
            if key not in needed:
                needed[key] = rating_request(
                    judge, call.pair.context, response, call.pair.item_id, call.sample
                )
            pair_keys.append(key)
        keys.append(pair_keys)
    ratings = rate(judge, needed)
    return [
        to_judgment(judge, call, ratings[ka], ratings[kb]) for call, (ka, kb) in zip(batch, keys, strict=True)
    ]


def run(judge: Judge, calls: Iterable[Call]) -> Iterator[Judgment]:
    """Judge planned pointwise calls ``batch_size`` pairs at a time, yielding judgments in call order."""
    batch: list[Call] = []
    for call in calls:
        batch.append(call)
        if len(batch) >= judge.config.batch_size:
            yield from _run_batch(judge, batch)
            batch = []
    if batch:
        yield from _run_batch(judge, batch)


def judge_round(judge: Judge, pairs: Sequence[PreferencePair]) -> list[tuple[Judgment, ...]]:
    """``rmr1.tournament.judge_round`` for a pointwise judge: each pair's judgments, in pair order."""
    plans = [plan(judge, p) for p in pairs]
    judged = iter(_run_batch(judge, [c for p in plans for c in p]))
    return [tuple(next(judged) for _ in p) for p in plans]


def reparse(judgment: Judgment) -> Judgment:
    """A logged pointwise judgment decided again from its two rating traces (``rmr1 rescore``)."""
    if judgment.finish_reason in ("error", "too_long") or judgment.completion_b is None:
        return judgment
    a, b = parse_score(judgment.completion), parse_score(judgment.completion_b)
    verdict, reason = decide(a.value, b.value)
    if reason == UNRATED:
        missing = [f"{side}: {s.reason}" for side, s in (("A", a), ("B", b)) if s.value is None]
        reason = f"{UNRATED} ({', '.join(missing)})"
    return replace(
        judgment,
        verdict=verdict,
        correct=is_correct(verdict, judgment.order),
        parse_error=reason,
        score_a=a.value,
        score_b=b.value,
    )


# --- many candidates: tournaments and rewards -------------------------------------------------------------


def _require_pointwise(judge: Judge) -> None:
    if judge.config.mode != "pointwise":
        raise ConfigError("rating needs a pointwise judge (--mode pointwise)")


def rate_responses(
    judge: Judge, item_id: str, context: tuple[Message, ...], responses: Sequence[str]
) -> list[Rating]:
    """Each response rated once (the first sample; voting judges average their samples)."""
    _require_pointwise(judge)
    requests: dict[str, tuple[GenerationRequest, bool]] = {}
    keys = []
    for sample in range(judge.config.samples):
        for response in responses:
            key = rating_key(item_id, response, sample)
            requests.setdefault(key, rating_request(judge, context, response, item_id, sample))
            keys.append(key)
    ratings = rate(judge, requests)
    n = len(responses)
    return [_mean_rating([ratings[keys[s * n + k]] for s in range(judge.config.samples)]) for k in range(n)]


def _mean_rating(samples: Sequence[Rating]) -> Rating:
    scores = [r.score for r in samples if r.score is not None]
    if not scores:
        return samples[0]
    return Rating(sum(scores) / len(scores), None, samples[0].completion, samples[0].neutralised)


def _wins(values: Sequence[float]) -> tuple[float, ...]:
    """Implied round-robin wins: one per candidate rated lower, half per candidate rated the same."""
    return tuple(
        sum(1.0 if v > w else 0.5 if v == w else 0.0 for k, w in enumerate(values) if k != i)
        for i, v in enumerate(values)
    )


def rating_tournaments(judge: Judge, sets: Sequence[CandidateSet]) -> list[TournamentResult]:
    """Rank each set by its ratings: ``scores`` are normalised ratings in [0, 1] (an unrated candidate sits
    in the middle, 0.5, like a draw), ``rewards`` 2 * score - 1, ``matches`` empty (nothing was compared)."""
    from rmr1.tournament import TournamentResult

    results = []
    for cset in sets:
        ratings = rate_responses(judge, cset.item_id, cset.context, cset.responses)
        scores = tuple(0.5 if r.normalised is None else r.normalised for r in ratings)
        ranking = tuple(sorted(range(len(scores)), key=lambda k: (-scores[k], k)))
        rewards = tuple(2.0 * s - 1.0 for s in scores)
        results.append(TournamentResult("rating", "rating", ranking, scores, rewards, _wins(scores), ()))
    return results


def rating_rewards(judge: Judge, groups: Sequence[Group], item_ids: Sequence[str]) -> list[GroupScore]:
    """Each completion's normalised rating in [-1, 1]; unrated 0 (counted in ``unparsed``), empty -1."""
    from rmr1.rewards.groups import GroupScore

    out = []
    for group, item_id in zip(groups, item_ids, strict=True):
        live = [k for k, r in enumerate(group.responses) if isinstance(r, str) and r.strip()]
        rated = rate_responses(judge, item_id, group.prompt, [group.responses[k] for k in live])
        ratings = dict(zip(live, rated, strict=True))
        rewards, unparsed = [], []
        for k in range(len(group.responses)):
            rating = ratings.get(k)
            value = None if rating is None else rating.normalised
            rewards.append(-1.0 if rating is None else 0.0 if value is None else 2.0 * value - 1.0)
            unparsed.append(int(rating is not None and value is None))
        zeros = (0,) * len(group.responses)
        out.append(
            GroupScore(tuple(rewards), zeros, zeros, tuple(unparsed), len(live) * judge.config.samples)
        )
    return out


__all__ = [
    "JUDGE_MODES",
    "Rating",
    "check_template",
    "judge_round",
    "plan",
    "rate",
    "rate_responses",
    "rating_key",
    "rating_rewards",
    "rating_tournaments",
    "reparse",
    "run",
    "to_judgment",
]
