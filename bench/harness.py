"""Harness overhead: judgments scored and logged per second through the full eval path, with no model.

The replay backend answers from a recording, so what is timed is rmr1's own work: planning each call (order,
prompt rendering), the replay lookup, verdict parsing, appending judgments.jsonl, then scoring and diagnostics
streamed from the file. The baseline, in the same process, is the judge alone (plan + replay + parse into a
sink): the ratio full / baseline is what the run directory costs on top.

Memory: tracemalloc peak while ``evaluate`` runs, measured above what is already held when it starts (the
benchmark's pairs and the replay recording, which any run needs): once with a scorer that keeps nothing (the
harness alone, which should not grow from 10k to 100k) and once with the benchmark's own scorer (which keeps
per-pair state by design). Wall-clock rates suffer when other processes share the CPU; the cpu-s columns
(process time) do not.

    python bench/harness.py                 # 10k and 100k
    python bench/harness.py --sizes 2000    # a quick look
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from rmr1.backends import make_backend
from rmr1.benchmarks import Benchmark
from rmr1.evaluation import evaluate
from rmr1.judge import Judge, JudgeConfig, seeded_order
from rmr1.types import Message, PreferencePair

SUBSETS = ("chat", "math", "code", "safety")
BATCH = 16  # the judge's default batch size: one write per batch


def synthetic_pairs(n: int) -> list[PreferencePair]:
    pairs = []
    for i in range(n):
        question = f"Question {i}: what is {i} + {i % 97}? Explain the steps briefly."
        pairs.append(
            PreferencePair(
                item_id=f"item-{i}",
                context=(Message("user", question),),
                chosen=f"The answer is {i + i % 97}. First add the units, then carry. " * 3,
                rejected=f"The answer is {i + i % 97 + 1}. Adding gives this directly. " * 3,
                subset=SUBSETS[i % len(SUBSETS)],
            )
        )
    return pairs


def trace(i: int, label: str) -> str:
    return (
        f"<type>Chat</type>\n<rubric>\n1. Correctness of the sum (60%)\n2. Clarity of the steps (40%)\n"
        f"<justify>Item {i} has one right answer, so correctness weighs most.</justify>\n</rubric>\n"
        f"<eval>Chatbot A writes <quote_A>The answer is {i}.</quote_A> and Chatbot B writes "
        f"<quote_B>Adding gives this directly.</quote_B>; <summary_B>B skips the steps</summary_B>.</eval>\n"
        f"<answer>[[{label}]]</answer>"
    )


def record(pairs: list[PreferencePair], path: Path, seed: int = 0) -> None:
    """A recording where about 80% of verdicts are right, 5% unparsed, 2% truncated."""
    with path.open("w", encoding="utf-8") as handle:
        for i, p in enumerate(pairs):
            order = seeded_order(seed, p.item_id, p.pair)
            right = "A" if order == "AB" else "B"
            label = right if i % 5 else ("B" if right == "A" else "A")
            text = trace(i, label) if i % 20 != 7 else "I think both are fine."
            handle.write(
                json.dumps(
                    {
                        "item_id": p.item_id,
                        "pair": p.pair,
                        "order": order,
                        "sample": 0,
                        "completion": text,
                        "finish_reason": "length" if i % 50 == 3 else "stop",
                        "prompt_tokens": 300,
                        "completion_tokens": 90 + i % 40,
                    }
                )
                + "\n"
            )


def setup(n: int, root: Path) -> tuple[Benchmark, Judge]:
    pairs = synthetic_pairs(n)
    recording = root / "recording.jsonl"
    record(pairs, recording)
    bench = Benchmark(name="preference", pairs=pairs, source="synthetic", items=n)
    judge = Judge(make_backend("replay", str(recording)), "cor", JudgeConfig(batch_size=BATCH))
    return bench, judge


def _count_only(name: str, judgments: Any, *, unparsed_score: float = 0.0) -> dict[str, Any]:
    """A scorer that keeps nothing: isolates the harness's own memory from the benchmark scorer's."""
    return {"accuracy": None, "counted": sum(1 for _ in judgments)}


def worker(n: int, mode: str) -> dict[str, Any]:
    # Imported by evaluate; imported here so import time stays out of the timings.
    import rmr1.evaluation.scoring as scoring
    import rmr1.judge_options
    import rmr1.report  # noqa: F401

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bench, judge = setup(n, root)
        if mode == "baseline":
            started, cpu = time.perf_counter(), time.process_time()
            count = sum(1 for _ in judge.judge(bench.pairs))
            return {"n": count, "seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu}
        if mode == "memory-harness":
            scoring.score_judgments = _count_only  # type: ignore[assignment]
        tracing = mode.startswith("memory")
        if tracing:
            tracemalloc.start()
            base = tracemalloc.get_traced_memory()[0]
        started, cpu = time.perf_counter(), time.process_time()
        result = evaluate(bench, root / "run", judge=judge, report=False, data="synthetic")
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        out: dict[str, Any] = {"n": result.scores["diagnostics"]["judgments"], "seconds": seconds, "cpu": cpu}
        if tracing:
            out["peak_mib"] = (tracemalloc.get_traced_memory()[1] - base) / 2**20
            tracemalloc.stop()
            return out
        started = time.perf_counter()
        from rmr1.report import write_report

        write_report(root / "run")
        out["report_s"] = time.perf_counter() - started
        return out


def measure(n: int, mode: str) -> dict[str, Any]:
    """Each measurement in a fresh process, so one size's garbage never counts against the next."""
    done = subprocess.run(
        [sys.executable, __file__, "--worker", str(n), "--mode", mode],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="speed", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.mode)))
        return
    rows = []
    for n in args.sizes:
        base, full = measure(n, "baseline"), measure(n, "speed")
        harness_mem, full_mem = measure(n, "memory-harness"), measure(n, "memory")
        rows.append(
            {
                "n": n,
                "judge": n / base["seconds"],
                "judge_cpu": n / base["cpu"],
                "full": n / full["seconds"],
                "full_cpu": n / full["cpu"],
                "report": full["report_s"],
                "mem_harness": harness_mem["peak_mib"],
                "mem_full": full_mem["peak_mib"],
            }
        )
    header = (
        "judgments",
        "judge/s",
        "judge/cpu-s",
        "eval/s",
        "eval/cpu-s",
        "eval/judge",
        "report s",
        "harness MiB",
        "+scorer MiB",
    )
    print(" ".join(f"{h:>12}" for h in header))
    for r in rows:
        cells = (
            f"{r['n']}",
            f"{r['judge']:,.0f}",
            f"{r['judge_cpu']:,.0f}",
            f"{r['full']:,.0f}",
            f"{r['full_cpu']:,.0f}",
            f"{r['full'] / r['judge']:.2f}",
            f"{r['report']:.2f}",
            f"{r['mem_harness']:.2f}",
            f"{r['mem_full']:.2f}",
        )
        print(" ".join(f"{c:>12}" for c in cells))
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        print(
            f"{last['n'] / first['n']:.0f}x the judgments: "
            f"eval throughput x{last['full'] / first['full']:.2f} "
            f"(cpu x{last['full_cpu'] / first['full_cpu']:.2f}), harness peak memory "
            f"x{last['mem_harness'] / max(first['mem_harness'], 1e-9):.2f}, with the benchmark scorer "
            f"x{last['mem_full'] / max(first['mem_full'], 1e-9):.2f}"
        )


if __name__ == "__main__":
    main()
