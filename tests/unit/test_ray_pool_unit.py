"""The parts of Ray scale-out that need no cluster: batching by item, the --ray flag, settings, the missing
extra."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from rmr1.backends.mock import MockBackend
from rmr1.benchmarks import load_benchmark
from rmr1.cli.failures import fill_optional_values
from rmr1.errors import ConfigError, MissingDependencyError
from rmr1.evaluation.ray_pool import RayConfig, RayPool, item_batches, portable
from rmr1.judge import Judge, JudgeConfig
from rmr1.judge_options import JudgeOptions
from rmr1.types import PreferencePair


def plan(items: dict[str, int], protocol: str = "single") -> list:  # type: ignore[type-arg]
    judge = Judge(MockBackend(), "cor", JudgeConfig(protocol=protocol))
    pairs = [
        PreferencePair.from_texts(f"q {item}", f"good {k}", f"bad {k}", item_id=item, pair=k)
        for item, n in items.items()
        for k in range(n)
    ]
    return [call for pair in pairs for call in judge.plan(pair)]


def test_batches_hold_whole_items_and_at_least_the_batch_size() -> None:
    calls = plan({"a": 3, "b": 1, "c": 5, "d": 2, "e": 1})
    batches = list(item_batches(calls, 4))
    assert [c for b in batches for c in b] == calls  # every call once, in plan order
    items = [[c.pair.item_id for c in b] for b in batches]
    assert items == [["a"] * 3 + ["b"], ["c"] * 5, ["d"] * 2 + ["e"]]  # the last one may be short
    # an item larger than the batch size is one batch of its own, both orders together
    assert [len(b) for b in item_batches(plan({"x": 6, "y": 1}, "both"), 4)] == [12, 2]


def test_rm_bench_plans_an_items_comparisons_next_to_each_other(benchmarks_dir: Path) -> None:
    # The batching above keeps items whole only if the plan lists an item's 9 comparisons together.
    bench = load_benchmark("rm-bench", str(benchmarks_dir / "rm-bench"), limit=30)
    seen: list[str] = []
    for pair in bench.pairs:
        if not seen or seen[-1] != pair.item_id:
            assert pair.item_id not in seen, f"{pair.item_id} comes back after another item"
            seen.append(pair.item_id)
    assert len(seen) == 30 and len(bench.pairs) == 270


@pytest.mark.parametrize(
    ("args", "want"),
    [
        (["eval", "x", "--ray"], ["eval", "x", "--ray", "local"]),
        (["eval", "x", "--ray", "--limit", "3"], ["eval", "x", "--ray", "local", "--limit", "3"]),
        (["eval", "x", "--ray", "auto"], ["eval", "x", "--ray", "auto"]),
        (["eval", "x", "--ray", "10.0.0.1:6379"], ["eval", "x", "--ray", "10.0.0.1:6379"]),
        (["eval", "x", "--ray-workers", "3"], ["eval", "x", "--ray-workers", "3"]),  # another flag
    ],
)
def test_ray_without_an_address_means_a_local_cluster(args: list[str], want: list[str]) -> None:
    import rmr1.cli  # registers the eval command's optional-value flag  # noqa: F401

    assert fill_optional_values(args) == want


@pytest.mark.parametrize(
    "bad",
    [dict(workers=0), dict(in_flight=0), dict(cpus_per_worker=-1), dict(restarts=-1), dict(batch_calls=0)],
)
def test_impossible_ray_settings_are_refused(bad: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError):
        RayConfig(**bad)


def test_a_missing_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails as if not installed
    with pytest.raises(MissingDependencyError, match=r"pip install 'rmr1\[ray\]'"):
        RayPool(JudgeOptions(backend="mock").build_judge, RayConfig())


def test_workers_get_absolute_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ckpt").mkdir()
    opts = portable(JudgeOptions(model="ckpt", cache="judgments.sqlite", backend="hf"))
    assert opts.model == str(tmp_path / "ckpt")
    assert opts.cache == str(tmp_path / "judgments.sqlite")  # not there yet, but a path all the same
    assert portable(JudgeOptions(model="org/hub-model")).model == "org/hub-model"


def test_a_worker_uses_the_cpus_ray_reserved_for_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from rmr1.evaluation.ray_pool import _Worker
    from rmr1.threads import choose_threads

    monkeypatch.setenv("RMR1_THREADS", "")  # so the variable the worker sets is undone after the test
    monkeypatch.delenv("RMR1_THREADS")
    worker = _Worker(JudgeOptions(backend="mock").build_judge, 3)
    assert choose_threads().threads == 3  # what a CPU engine built in this worker will use
    assert worker.start()[0] == "ok"
    monkeypatch.setenv("RMR1_THREADS", "5")  # the user's own setting wins
    _Worker(JudgeOptions(backend="mock").build_judge, 3)
    assert os.environ["RMR1_THREADS"] == "5"
