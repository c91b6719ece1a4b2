"""TRL reward functions: ``f(prompts, completions, **columns) -> list[float | None]``, sync and async.

TRL lays each prompt's ``num_generations`` completions out consecutively; completions are strings or lists of
messages. Nothing here imports TRL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rmr1.errors import ConfigError, InputError
from rmr1.judge import Judge
from rmr1.rewards.groups import (
    METHODS,
    Group,
    GroupScore,
    GroupScorer,
    as_scorer,
    completion_text,
    prompt_messages,
)


def _spans(prompts: Sequence[Any], refs: Sequence[Any] | None, size: int | None) -> list[tuple[int, int]]:
    n = len(prompts)
    if size:
        if n % size:
            raise InputError(f"{n} completions do not split into groups of {size}", field="num_generations")
        return [(a, a + size) for a in range(0, n, size)]
    spans, start = [], 0
    for k in range(1, n + 1):
        if k == n or prompts[k] != prompts[start] or (refs is not None and refs[k] != refs[start]):
            spans.append((start, k))
            start = k
    return spans


@dataclass(frozen=True)
class TRLSpec:
    """How a TRL batch becomes groups. ``num_generations=None``: consecutive equal prompts form a group."""

    method: str = "round_robin"
    reference_column: str = "reference"
    num_generations: int | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"unknown reward method {self.method!r}; choose one of {', '.join(METHODS)}")

    def groups(
        self, prompts: Sequence[Any], completions: Sequence[Any], columns: Mapping[str, Any]
    ) -> list[Group]:
        if len(prompts) != len(completions):
            raise InputError(
                f"{len(prompts)} prompts but {len(completions)} completions", field="completions"
            )
        refs = None
        if self.method == "reference":
            if self.reference_column not in columns:
                raise InputError("the dataset has no such column", field=self.reference_column)
            refs = list(columns[self.reference_column])
        return [
            Group(
                prompt_messages(prompts[a]),
                tuple(completion_text(c, f"completions[{a + k}]") for k, c in enumerate(completions[a:b])),
                None if refs is None else refs[a],
            )
            for a, b in _spans(prompts, refs, self.num_generations)
        ]


def _flatten(scores: Sequence[GroupScore], columns: Mapping[str, Any], name: str) -> list[float | None]:
    log_metric = columns.get("log_metric")
    if callable(log_metric):
        comparisons = sum(sum(s.comparisons) for s in scores) or 1
        log_metric(f"{name}/draw_rate", sum(sum(s.draws) for s in scores) / comparisons)
        log_metric(f"{name}/unparsed_rate", sum(sum(s.unparsed) for s in scores) / comparisons)
    return [r for s in scores for r in s.rewards]


class JudgeReward:
    """A TRL reward function ``f(prompts, completions, **columns) -> list[float]`` from a pairwise judge.

    ``method``: ``round_robin`` or ``knockout`` inside each prompt's group of completions (TRL lays a prompt's
    ``num_generations`` completions out consecutively), or ``reference`` against the ``reference_column``.
    """

    def __init__(
        self,
        scorer: GroupScorer | Judge,
        *,
        method: str = "round_robin",
        reference_column: str = "reference",
        num_generations: int | None = None,
        name: str = "rmr1_judge",
    ) -> None:
        self.scorer = as_scorer(scorer)
        self.spec = TRLSpec(method, reference_column, num_generations)
        self.__name__ = name  # TRL logs each reward under its function's name

    def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], **columns: Any
    ) -> list[float | None]:
        groups = self.spec.groups(prompts, completions, columns)
        return _flatten(self.scorer.score(groups, self.spec.method), columns, self.__name__)


class AsyncJudgeReward:
    """``JudgeReward`` as a coroutine: TRL runs async reward functions concurrently on its own event loop.

    Takes the same arguments as ``JudgeReward`` and shares its grouping; only the scorer call is awaited.
    """

    def __init__(self, scorer: GroupScorer | Judge, **options: Any) -> None:
        self._sync = JudgeReward(scorer, **options)
        self.scorer, self.spec = self._sync.scorer, self._sync.spec
        self.__name__ = self._sync.__name__

    async def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], **columns: Any
    ) -> list[float | None]:
        groups = self.spec.groups(prompts, completions, columns)
        return _flatten(await self.scorer.ascore(groups, self.spec.method), columns, self.__name__)
