"""How long loading and scoring the real benchmark copies takes, against reading the same JSON with no checks.

    python bench/load_benchmarks.py [SHARED_BENCHMARKS_DIR]

Baseline: ``json.loads`` of every file of the benchmark (the least any loader must do). Reported: seconds
for the baseline, for ``load_benchmark`` and for ``score_judgments`` on one judgment per pair, and the ratio
of the load to the baseline (best of 3 runs each).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from rmr1.benchmarks import load_benchmark, score_judgments
from rmr1.types import Judgment


def best_of(runs: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def raw_json(folder: Path) -> None:
    for file in sorted(folder.rglob("*.json")):
        json.loads(file.read_text(encoding="utf-8"))


def main(root: Path) -> None:
    for name, folder in (("rmb", root / "rmb"), ("rm-bench", root / "rm-bench")):
        bench = load_benchmark(name, str(folder))
        judgments = [
            Judgment(p.item_id, p.pair, p.subset, "AB", 0, "A", True, "stop", "") for p in bench.pairs
        ]
        baseline = best_of(3, lambda folder=folder: raw_json(folder))
        load = best_of(3, lambda name=name, folder=folder: load_benchmark(name, str(folder)))
        score = best_of(3, lambda name=name, judgments=judgments: score_judgments(name, judgments))
        print(
            f"{name}: {bench.items} items, {len(bench.pairs)} pairs, {len(bench.skipped)} skipped | "
            f"json.loads {baseline:.2f}s, load_benchmark {load:.2f}s ({load / baseline:.1f}x), "
            f"score_judgments {score:.2f}s"
        )


if __name__ == "__main__":
    default = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else default)
