"""JudgeReward on several ranks, with threads standing in for processes and a barrier for the collectives."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from rmr1.errors import BackendError, ConfigError
from rmr1.rewards import AsyncJudgeReward, JudgeReward
from rmr1.rewards import trl as trl_rewards
from rmr1.rewards.groups import Group, GroupScore


class Scripted:
    """A scorer whose reward for a response is its length over the group's total: it depends on the whole
    group, so a group judged in pieces gives different numbers."""

    def __init__(self, fail: bool = False) -> None:
        self.seen: list[tuple[str, ...]] = []
        self.fail = fail
        self._lock = threading.Lock()

    def score(self, groups: Sequence[Group], method: str) -> list[GroupScore]:
        with self._lock:
            self.seen.extend(g.responses for g in groups)
        if self.fail:
            raise BackendError("judge server down")
        out = []
        for g in groups:
            total = sum(len(r) for r in g.responses)
            n = len(g.responses)
            out.append(
                GroupScore(tuple(len(r) / total for r in g.responses), (n - 1,) * n, (0,) * n, (0,) * n)
            )
        return out

    async def ascore(self, groups: Sequence[Group], method: str) -> list[GroupScore]:
        return self.score(groups, method)


class FakeProcessGroup:
    """all_gather_object for threads: each rank drops its object in a slot, all wait, all read every slot."""

    def __init__(self, size: int) -> None:
        self.size, self.gathers = size, 0
        self.slots: list[Any] = [None] * size
        self.barrier = threading.Barrier(size, timeout=10)
        self.local = threading.local()

    def world(self) -> trl_rewards._World:
        rank = self.local.rank
        return trl_rewards._World(rank, self.size, lambda obj: self._gather(rank, obj))

    def _gather(self, rank: int, obj: Any) -> list[Any]:
        self.slots[rank] = obj
        self.barrier.wait()
        out = list(self.slots)
        if rank == 0:
            self.gathers += 1
        self.barrier.wait()  # nobody overwrites a slot before every rank has read them all
        return out

    def run(self, call: Callable[[int], Any]) -> list[Any]:
        results: list[Any] = [None] * self.size

        def body(rank: int) -> None:
            self.local.rank = rank
            try:
                results[rank] = call(rank)
            except Exception as exc:
                results[rank] = exc

        threads = [threading.Thread(target=body, args=(r,)) for r in range(self.size)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results


# 3 prompts x 2 completions, laid out by TRL consecutively; sliced 3 per rank, the middle group is split
PROMPTS = ["p0", "p0", "p1", "p1", "p2", "p2"]
COMPLETIONS = ["a", "bbb", "cc", "dddddd", "e", "e"]


def sliced(size: int) -> list[tuple[list[str], list[str]]]:
    n = len(PROMPTS) // size
    return [(PROMPTS[r * n : (r + 1) * n], COMPLETIONS[r * n : (r + 1) * n]) for r in range(size)]


@pytest.mark.parametrize("num_generations", [2, None])
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_split_groups_are_gathered_and_each_rank_gets_its_slice(
    monkeypatch: pytest.MonkeyPatch, num_generations: int | None, kind: str
) -> None:
    whole = JudgeReward(Scripted(), num_generations=num_generations)(PROMPTS, COMPLETIONS)
    assert whole[2:4] == [2 / 8, 6 / 8]  # the split group's rewards depend on both of its completions
    group, scorer = FakeProcessGroup(2), Scripted()
    monkeypatch.setattr(trl_rewards, "_world", group.world)
    parts = sliced(2)
    if kind == "sync":
        reward: Any = JudgeReward(scorer, num_generations=num_generations)
        results = group.run(lambda r: reward(*parts[r]))
    else:
        areward = AsyncJudgeReward(scorer, num_generations=num_generations)
        results = group.run(lambda r: asyncio.run(areward(*parts[r])))
    assert results[0] + results[1] == whole
    assert sorted(scorer.seen) == sorted([("a", "bbb"), ("cc", "dddddd"), ("e", "e")])  # whole, each once


def test_ranks_holding_whole_groups_gather_only_their_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    whole = JudgeReward(Scripted(), num_generations=2)(PROMPTS, COMPLETIONS)
    group, scorer = FakeProcessGroup(3), Scripted()
    monkeypatch.setattr(trl_rewards, "_world", group.world)
    reward = JudgeReward(scorer, num_generations=2)
    results = group.run(lambda r: reward(*sliced(3)[r]))
    assert [x for part in results for x in part] == whole
    assert group.gathers == 1  # the slice sizes, nothing more


def test_a_failure_on_one_rank_is_raised_on_every_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    group = FakeProcessGroup(2)
    monkeypatch.setattr(trl_rewards, "_world", group.world)
    scorers = [Scripted(), Scripted(fail=True)]
    rewards = [JudgeReward(s, num_generations=2) for s in scorers]
    results = group.run(lambda r: rewards[r](*sliced(2)[r]))
    for result in results:  # rank 0 must not hang waiting for rank 1's scores
        assert isinstance(result, BackendError) and "rank 1: judge server down" in str(result)


def test_split_groups_without_a_process_group_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trl_rewards, "_world", lambda: trl_rewards._World(0, 2, None))
    with pytest.raises(ConfigError, match="this rank holds 3 completions") as info:
        JudgeReward(Scripted(), num_generations=2)(*sliced(2)[0])
    assert "\n" not in str(info.value)
    # whole groups on the rank need no gathering
    assert JudgeReward(Scripted(), num_generations=2)(PROMPTS[:4], COMPLETIONS[:4]) == [
        0.25,
        0.75,
        0.25,
        0.75,
    ]


def test_world_reads_the_environment_without_a_process_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    world = trl_rewards._world()
    assert (world.rank, world.size) == (3, 4)  # torch.distributed is not initialised in the unit tests
    assert world.gather is None
