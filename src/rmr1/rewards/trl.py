"""TRL reward functions: ``f(prompts, completions, **columns) -> list[float | None]``, sync and async.

TRL lays each prompt's ``num_generations`` completions out consecutively; completions are strings or lists of
messages. Nothing here imports TRL.

Under several processes (``accelerate launch``) each rank holds a slice of the batch, and a group can be split
across two ranks. Then every rank gathers the prompts and completions (``torch.distributed``), the groups are
formed over the whole batch, each rank judges its share of whole groups, the scores are gathered again and
each rank returns the rewards of its own slice. When every rank already holds whole groups (``num_generations``
set and dividing every slice), nothing is gathered. Without an initialised process group a split batch is
refused in one line. See docs/design/trl-rewards-multiprocess.md.
"""

from __future__ import annotations

import asyncio
import os
import sys
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rmr1.errors import BackendError, ConfigError, InputError, Rmr1Error
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


@dataclass(frozen=True)
class _World:
    """This process's rank among ``size``; ``gather`` all-gathers one picklable object per rank (None: no
    process group to gather through)."""

    rank: int = 0
    size: int = 1
    gather: Callable[[Any], list[Any]] | None = None


def _world() -> _World:
    torch = sys.modules.get("torch")  # only a process that already imported torch can be in a process group
    dist = getattr(torch, "distributed", None)
    if dist is not None and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:

        def gather(obj: Any) -> list[Any]:
            out: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(out, obj)
            return out

        return _World(dist.get_rank(), dist.get_world_size(), gather)
    size = int(os.environ.get("WORLD_SIZE") or 1)
    return _World(int(os.environ.get("RANK") or 0), size)


@dataclass(frozen=True)
class _Shared:
    """A batch gathered from every rank: all groups in order, the ones this rank judges, and its slice."""

    groups: list[Group]
    mine: range  # indices into groups
    start: int  # where this rank's completions begin in the gathered order
    count: int  # how many completions this rank holds


def _share(
    world: _World,
    spec: TRLSpec,
    prompts: Sequence[Any],
    completions: Sequence[Any],
    columns: Mapping[str, Any],
) -> _Shared | None:
    """Gather a batch whose groups may be split across ranks; None when each rank holds whole groups."""
    size = spec.num_generations
    if world.gather is None:
        if size and len(prompts) % size == 0:
            return None
        raise ConfigError(
            f"TRL reward on {world.size} processes: this rank holds {len(prompts)} completions, which may split "
            f"a prompt's group across ranks, and no torch.distributed process group is there to gather them; "
            "launch with accelerate (or torchrun), or make per_device_train_batch_size a multiple of "
            "num_generations and pass num_generations"
        )
    counts = world.gather(len(prompts))
    if size and all(c % size == 0 for c in counts):
        return None
    refs = (
        list(columns[spec.reference_column])
        if spec.method == "reference" and spec.reference_column in columns
        else None
    )
    parts = world.gather((list(prompts), list(completions), refs))
    every = [x for part in parts for x in part[0]], [x for part in parts for x in part[1]]
    extra = {} if refs is None else {spec.reference_column: [x for part in parts for x in part[2]]}
    groups = spec.groups(every[0], every[1], extra)
    per_rank = -(-len(groups) // world.size)  # contiguous shares, so gathered scores are already in order
    mine = range(min(len(groups), world.rank * per_rank), min(len(groups), (world.rank + 1) * per_rank))
    return _Shared(groups, mine, sum(counts[: world.rank]), len(prompts))


def _combine(
    world: _World, shared: _Shared, mine: list[GroupScore] | str, columns: Mapping[str, Any], name: str
) -> list[float | None]:
    """Gather every rank's scores (or its one-line failure, so no rank waits forever) and keep this slice."""
    assert world.gather is not None
    parts = world.gather(mine)
    for rank, part in enumerate(parts):
        if isinstance(part, str):
            raise BackendError(f"TRL reward: scoring failed on rank {rank}: {part}")
    scores = [score for part in parts for score in part]
    rewards = _flatten(scores, columns, name)
    return rewards[shared.start : shared.start + shared.count]


def _failure(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return (
        text[0] if isinstance(exc, Rmr1Error) and text else f"{type(exc).__name__}: {text[0] if text else ''}"
    )


# One lock per event loop: with two async rewards on several ranks, their collectives must run in the same
# order everywhere, and TRL starts the coroutines in one fixed order, so the first to take the lock goes first.
_LOOP_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def _loop_lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _LOOP_LOCKS.get(loop)
    if lock is None:
        lock = _LOOP_LOCKS[loop] = asyncio.Lock()
    return lock


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
        world = _world()
        shared = _share(world, self.spec, prompts, completions, columns) if world.size > 1 else None
        if shared is None:
            groups = self.spec.groups(prompts, completions, columns)
            return _flatten(self.scorer.score(groups, self.spec.method), columns, self.__name__)
        try:
            mine: list[GroupScore] | str = self.scorer.score(
                [shared.groups[i] for i in shared.mine], self.spec.method
            )
        except Exception as exc:  # told to every rank by _combine, which raises it everywhere
            mine = _failure(exc)
        return _combine(world, shared, mine, columns, self.__name__)


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
        world = _world()
        if world.size == 1:
            groups = self.spec.groups(prompts, completions, columns)
            return _flatten(await self.scorer.ascore(groups, self.spec.method), columns, self.__name__)
        async with _loop_lock():
            shared = _share(world, self.spec, prompts, completions, columns)
            if shared is None:
                groups = self.spec.groups(prompts, completions, columns)
                return _flatten(await self.scorer.ascore(groups, self.spec.method), columns, self.__name__)
            try:
                mine: list[GroupScore] | str = await self.scorer.ascore(
                    [shared.groups[i] for i in shared.mine], self.spec.method
                )
            except Exception as exc:
                mine = _failure(exc)
            return _combine(world, shared, mine, columns, self.__name__)
