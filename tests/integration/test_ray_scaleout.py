"""Scale-out on a real local Ray cluster (2 CPUs, 2 worker actors): same judgments as one process, a killed
worker loses nothing, an interrupted driver resumes with only the missing calls."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rmr1.benchmarks import Benchmark, load_benchmark
from rmr1.evaluation import EvalConfig, run_eval
from rmr1.evaluation.ray_pool import RayConfig, RayPool
from rmr1.judge import Judge

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'rmr1[ray]'")

ITEMS = 20  # RM-Bench items: 9 comparisons each


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def rm_bench(benchmarks_dir: Path) -> Benchmark:
    path = benchmarks_dir / "rm-bench"
    if not path.is_dir():
        pytest.skip(f"{path} not present")
    return load_benchmark("rm-bench", str(path), limit=ITEMS)


def scripted(delay: float = 0.0) -> Callable[[], Judge]:
    """A judge factory for the workers: a mock backend whose verdict (A, B or none) is a hash of the prompt.
    Built as a closure so Ray ships it by value (the test module is not importable in a worker)."""

    def build() -> Judge:
        import hashlib
        import time

        from rmr1.backends.mock import MockBackend
        from rmr1.judge import Judge, JudgeConfig

        def answer(request: Any) -> str:
            time.sleep(delay)
            text = "".join(m.content for m in request.messages)
            kind = hashlib.sha256(text.encode()).digest()[0] % 3
            return ("<answer>[[A]]</answer>", "<answer>[[B]]</answer>", "no verdict")[kind] + f" {len(text)}"

        return Judge(MockBackend(script=answer), "cor", JudgeConfig(batch_size=4, record_latency=False))

    return build


def records(run_dir: Path) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The logged judgments by key; refuses a key logged twice."""
    lines = (run_dir / "judgments.jsonl").read_text(encoding="utf-8").splitlines()
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for line in lines:
        r = json.loads(line)
        key = (r["item_id"], r["pair"], r["order"], r["sample"])
        assert key not in out, f"{key} logged twice"
        out[key] = r
    return out


def same_judgments(got: Path, want: Path) -> None:
    a, b = records(got), records(want)
    assert set(a) == set(b)
    for key, r in a.items():
        assert (r["verdict"], r["completion"], r["correct"]) == (
            b[key]["verdict"],
            b[key]["completion"],
            b[key]["correct"],
        ), key
    assert json.loads((got / "scores.json").read_text()) == json.loads((want / "scores.json").read_text())


def config(out: Path) -> EvalConfig:
    return EvalConfig(benchmark="rm-bench", out=out, report=False)


@pytest.fixture(scope="module")
def reference(rm_bench: Benchmark, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same evaluation in one process."""
    out = tmp_path_factory.mktemp("one-process") / "run"
    run_eval(config(out), scripted()(), rm_bench)
    return out


def every(n: int, act: Callable[[], None]) -> Any:
    """A progress factory calling ``act`` once, when the n-th new judgment is logged."""

    @contextlib.contextmanager
    def factory(total: int, done: int) -> Iterator[Callable[..., None]]:
        seen = [0]

        def advance(k: int, judgment: Any = None) -> None:
            seen[0] += k
            if seen[0] == n:
                act()

        yield advance

    return factory


def test_two_workers_judge_what_one_process_judges(
    cluster: None, rm_bench: Benchmark, reference: Path, tmp_path: Path
) -> None:
    started = time.monotonic()
    with RayPool(scripted(0.002), RayConfig(workers=2)) as pool:
        result = run_eval(config(tmp_path / "run"), pool.judge, rm_bench, executor=pool.execute)
        spread = dict(pool.judged_by)
    assert result.judged == len(rm_bench.pairs) == 9 * ITEMS
    assert len(spread) == 2 and all(n > 0 for n in spread.values()), spread  # both workers did work
    same_judgments(tmp_path / "run", reference)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "complete" and info["backend"] == "mock"
    print(f"2 Ray workers: {time.monotonic() - started:.2f} s, calls per worker {sorted(spread.values())}")


@pytest.mark.parametrize("restarts", [0, 1])
def test_a_killed_worker_loses_nothing_and_judges_nothing_twice(
    cluster: None, rm_bench: Benchmark, reference: Path, tmp_path: Path, restarts: int
) -> None:
    with RayPool(scripted(0.01), RayConfig(workers=2, restarts=restarts)) as pool:
        victim = pool.workers[0]
        kill = every(20, lambda: ray.kill(victim))
        result = run_eval(
            config(tmp_path / "run"), pool.judge, rm_bench, progress=kill, executor=pool.execute
        )
        assert pool.requeued >= 1  # the victim had batches in flight: they were judged elsewhere
        assert victim not in pool.workers and len(pool.workers) == 1 + restarts
        assert pool.replaced == restarts
    assert result.judged == 9 * ITEMS
    same_judgments(tmp_path / "run", reference)


def test_an_interrupted_driver_resumes_with_only_the_missing_calls(
    cluster: None, rm_bench: Benchmark, reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"

    def interrupt() -> None:
        raise KeyboardInterrupt

    with RayPool(scripted(0.005), RayConfig(workers=2)) as pool, pytest.raises(KeyboardInterrupt):
        run_eval(config(out), pool.judge, rm_bench, progress=every(40, interrupt), executor=pool.execute)
    logged = len(records(out))
    assert 40 <= logged < 9 * ITEMS
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    with RayPool(scripted(), RayConfig(workers=2)) as pool:
        result = run_eval(config(out), pool.judge, rm_bench, executor=pool.execute)
        assert pool.sent == result.judged == 9 * ITEMS - logged  # nothing asked twice
    assert result.resumed == logged
    same_judgments(out, reference)


def test_the_eval_command_runs_on_ray(cluster: None, benchmarks_dir: Path, tmp_path: Path) -> None:
    from rmr1.cli import main

    out = tmp_path / "run"
    args = ["eval", "rm-bench", "--ray", "--ray-workers", "2", "--out", str(out), "--limit", "3"]
    args += ["--data", str(benchmarks_dir / "rm-bench"), "--backend", "mock", "--model", "always-a"]
    with pytest.raises(SystemExit) as done:
        main([*args, "--no-report"])
    assert done.value.code == 0
    assert len(records(out)) == 27
    assert json.loads((out / "run.json").read_text())["status"] == "complete"


@pytest.mark.slow
def test_two_hf_workers_judge_what_one_process_judges(
    cluster: None, tiny_model: Path, benchmarks_dir: Path, tmp_path: Path
) -> None:
    """The real transformers engine on a tiny random model, greedy, one request per batch so neither side's
    batching pads a prompt differently."""
    from rmr1.evaluation import evaluate

    settings: dict[str, Any] = dict(
        data=str(benchmarks_dir / "rm-bench"),
        limit=ITEMS,
        backend="hf",
        model=str(tiny_model),
        max_new_tokens=8,
        batch_size=1,
        dtype="float32",
        record_latency=False,
        report=False,
    )
    timings = {}
    for name, ray_config in (("one", None), ("two", RayConfig(workers=2))):
        started = time.monotonic()
        evaluate("rm-bench", tmp_path / name, ray=ray_config, **settings)
        timings[name] = round(time.monotonic() - started, 2)
    same_judgments(tmp_path / "two", tmp_path / "one")
    print(f"hf tiny model, {9 * ITEMS} calls: seconds {timings}")


def test_a_replica_that_cannot_be_built_is_one_line(
    cluster: None, rm_bench: Benchmark, tmp_path: Path
) -> None:
    from rmr1.errors import ConfigError
    from rmr1.evaluation import evaluate

    with pytest.raises(ConfigError, match=r"^Ray worker-0: unknown mock rule 'no-such-rule'"):
        evaluate(rm_bench, tmp_path / "run", backend="mock", model="no-such-rule", ray=RayConfig(workers=2))
    assert not (tmp_path / "run" / "judgments.jsonl").exists()
