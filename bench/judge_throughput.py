"""Judge throughput of every installed CPU engine against transformers batched bf16, on RM-Bench prompts.

Each round times, per engine, the baseline and then the engine on the same workload (ABAB...), so a machine
whose load changes during the run moves both sides of a ratio; the 1-minute load average is printed before
each round (numbers taken under load mean little: see docs/design/cpu-engine.md). Generation ignores the
verdict stop, so every engine gets the same budget (128 new tokens; ``--quick``: 32) and the end-of-turn token
alone ends a row. Prints one JSON line per engine and workload:

    {"engine": "openvino", "workload": "w16", "seconds": 9.5, "tokens_per_s": 215.0, "ratio_vs_hf": 1.97, ...}

``seconds`` is the engine's median over the rounds, ``ratio_vs_hf`` the baseline's median in the same rounds
over it. Workloads and engines: see bench/engines.py. Where both ``openvino`` and ``openvino-noprefix`` ran, a
last line per prefix workload (w9, bon) gives what prefix reuse is worth: the no-reuse engine's median over
the reusing one's, ``{"prefix_reuse": "w9", "ratio": 2.1, ...}``.

    python bench/judge_throughput.py [--rounds 3] [--quick] [--engines hf,openvino] [--pairs 16] [--items 1]
                                     [--bon-sets 4] [--workloads w16,w9,bon] [--model PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from engines import DEFAULT_BON, DEFAULT_DATA, available_engines, bon_sets, first_pairs, plan, three_by_three
from rmr1.threads import choose_threads, load_average
from rmr1.types import GenerationRequest


def timed(backend: Any, requests: list[GenerationRequest]) -> tuple[float, int]:
    started = time.perf_counter()
    out = backend.generate(requests)
    seconds = time.perf_counter() - started
    bad = [c for c in out if c.finish_reason in ("error", "too_long")]
    if bad:
        raise SystemExit(f"{type(backend).__name__}: {len(bad)} requests failed: {bad[0].error}")
    return seconds, sum(c.completion_tokens for c in out)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--bon-data", type=Path, default=DEFAULT_BON)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=16, help="items in the w16 workload")
    parser.add_argument("--items", type=int, default=1, help="RM-Bench items whose 3x3 make the w9 workload")
    parser.add_argument("--bon-sets", type=int, default=4, help="RMB best-of-n sets in the bon workload")
    parser.add_argument("--workloads", default="w16,w9,bon")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--engines", default="", help="comma-separated; default: every installed engine")
    parser.add_argument("--model", default=None, help="default: the embedded model")
    parser.add_argument("--threads", type=int, default=None, help="default: rmr1.threads' choice")
    parser.add_argument("--quick", action="store_true", help="1 round, 4 pairs, 32 new tokens: a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.pairs, args.bon_sets, args.max_new_tokens = 1, 4, 2, 32
    return args


def workloads(args: argparse.Namespace) -> dict[str, list[GenerationRequest]]:
    builders = {
        "w16": lambda: first_pairs(args.data, args.pairs),
        "w9": lambda: three_by_three(args.data, args.items),
        "bon": lambda: bon_sets(args.bon_data, args.bon_sets),
    }
    wanted = [w for w in args.workloads.split(",") if w]
    unknown = [w for w in wanted if w not in builders]
    if unknown:
        raise SystemExit(f"unknown workloads: {', '.join(unknown)}; choose from {', '.join(builders)}")
    return {
        name: [c.request for c in plan(builders[name](), args.max_new_tokens, stop_at_verdict=False)]
        for name in wanted
    }


def measure(
    args: argparse.Namespace, backends: dict[str, Any], loads: dict[str, list[GenerationRequest]]
) -> dict[tuple[str, str], list[tuple[float, int, float]]]:
    """(engine, workload) -> [(seconds, tokens, the baseline's seconds beside it)], engines interleaved with
    the baseline round by round."""
    others = [e for e in backends if e != "hf"]
    times: dict[tuple[str, str], list[tuple[float, int, float]]] = {}
    for round_no in range(1, args.rounds + 1):
        print(f"# round {round_no}/{args.rounds}: load average {load_average():.2f}", file=sys.stderr)
        for workload, requests in loads.items():
            for name in others or ["hf"]:
                base_s, base_tokens = timed(backends["hf"], requests)
                times.setdefault(("hf", workload), []).append((base_s, base_tokens, base_s))
                if name != "hf":
                    seconds, tokens = timed(backends[name], requests)
                    times.setdefault((name, workload), []).append((seconds, tokens, base_s))
    return times


def report(
    times: dict[tuple[str, str], list[tuple[float, int, float]]],
    loads: dict[str, list[GenerationRequest]],
    threads: int,
) -> None:
    medians: dict[tuple[str, str], float] = {}
    for (name, workload), rows in times.items():
        seconds = statistics.median(r[0] for r in rows)
        medians[(name, workload)] = seconds
        tokens = statistics.median(r[1] for r in rows)
        baseline = statistics.median(r[2] for r in rows)
        line = {
            "engine": name,
            "workload": workload,
            "seconds": round(seconds, 3),
            "tokens_per_s": round(tokens / seconds, 1),
            "ratio_vs_hf": round(baseline / seconds, 3),
            "tokens": int(tokens),
            "requests": len(loads[workload]),
            "runs": len(rows),  # the baseline runs once beside each engine in a round
            "threads": threads,
            "load_after": round(load_average(), 2),
        }
        print(json.dumps(line), flush=True)
    for workload in ("w9", "bon"):
        reuse, plain = medians.get(("openvino", workload)), medians.get(("openvino-noprefix", workload))
        if reuse and plain:
            line = {"prefix_reuse": workload, "ratio": round(plain / reuse, 3), "with_s": round(reuse, 3)}
            print(json.dumps({**line, "without_s": round(plain, 3)}), flush=True)


def main() -> None:
    args = parse_args()
    installed = available_engines()
    # default: every installed engine but hf-fp32 (the agreement yardstick, known to be about half hf's speed)
    wanted = [e for e in args.engines.split(",") if e] or [e for e in installed if e != "hf-fp32"]
    unknown = [e for e in wanted if e not in installed]
    if unknown:
        raise SystemExit(f"not installed here: {', '.join(unknown)}; installed: {', '.join(installed)}")
    loads = workloads(args)
    threads = choose_threads(args.threads).threads
    sizes = ", ".join(f"{name} ({len(requests)} requests)" for name, requests in loads.items())
    print(f"# {threads} threads for every engine; workloads: {sizes}", file=sys.stderr)
    backends = {name: installed[name](threads, args.model) for name in dict.fromkeys(["hf", *wanted])}
    warm = next(iter(loads.values()))[:1]
    for backend in backends.values():
        backend.generate(warm)  # warm-up: first-call allocations belong to no round
    report(measure(args, backends, loads), loads, threads)


if __name__ == "__main__":
    main()
