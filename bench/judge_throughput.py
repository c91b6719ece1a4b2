"""Judge throughput of every installed CPU engine against transformers batched bf16, on RM-Bench prompts.

Each round times, per engine, the baseline and then the engine on the same workload (ABAB...), so a machine
whose load changes during the run moves both sides of a ratio; the 1-minute load average is printed before
each round (numbers taken under load mean little: see docs/design/cpu-engine.md). Generation ignores the
verdict stop, so every engine gets the same budget (128 new tokens; ``--quick``: 32) and the end-of-turn token
alone ends a row. Prints one JSON line per engine and workload:

    {"engine": "openvino", "workload": "w16", "seconds": 9.5, "tokens_per_s": 215.0, "ratio_vs_hf": 1.97, ...}

``seconds`` is the engine's median over the rounds, ``ratio_vs_hf`` the baseline's median in the same rounds
over it. Workloads and engines: see bench/engines.py.

    python bench/judge_throughput.py [--rounds 3] [--quick] [--engines hf,openvino] [--pairs 16]
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

from engines import DEFAULT_DATA, available_engines, first_pairs, plan, three_by_three
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
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=16, help="items in the w16 workload")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--engines", default="", help="comma-separated; default: every installed engine")
    parser.add_argument("--threads", type=int, default=None, help="default: rmr1.threads' choice")
    parser.add_argument("--quick", action="store_true", help="1 round, 4 pairs, 32 new tokens: a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.pairs, args.max_new_tokens = 1, 4, 32
    return args


def main() -> None:
    args = parse_args()
    installed = available_engines()
    wanted = [e for e in args.engines.split(",") if e] or list(installed)
    unknown = [e for e in wanted if e not in installed]
    if unknown:
        raise SystemExit(f"not installed here: {', '.join(unknown)}; installed: {', '.join(installed)}")
    others = [e for e in wanted if e != "hf"]
    workloads = {
        "w16": [
            c.request
            for c in plan(first_pairs(args.data, args.pairs), args.max_new_tokens, stop_at_verdict=False)
        ],
        "w9": [
            c.request for c in plan(three_by_three(args.data), args.max_new_tokens, stop_at_verdict=False)
        ],
    }
    threads = choose_threads(args.threads).threads
    sizes = ", ".join(f"{name} ({len(requests)} requests)" for name, requests in workloads.items())
    print(f"# {threads} threads for every engine; workloads: {sizes}", file=sys.stderr)
    backends = {name: installed[name](threads) for name in ["hf", *others]}
    for backend in backends.values():
        backend.generate(workloads["w9"][:1])  # warm-up: first-call allocations belong to no round
    times: dict[
        tuple[str, str], list[tuple[float, int, float]]
    ] = {}  # (engine, workload) -> (s, tokens, hf s)
    for round_no in range(1, args.rounds + 1):
        print(f"# round {round_no}/{args.rounds}: load average {load_average():.2f}", file=sys.stderr)
        for workload, requests in workloads.items():
            for name in others or ["hf"]:
                base_s, base_tokens = timed(backends["hf"], requests)
                times.setdefault(("hf", workload), []).append((base_s, base_tokens, base_s))
                if name != "hf":
                    seconds, tokens = timed(backends[name], requests)
                    times.setdefault((name, workload), []).append((seconds, tokens, base_s))
    for (name, workload), rows in times.items():
        seconds = statistics.median(r[0] for r in rows)
        tokens = statistics.median(r[1] for r in rows)
        baseline = statistics.median(r[2] for r in rows)
        line = {
            "engine": name,
            "workload": workload,
            "seconds": round(seconds, 3),
            "tokens_per_s": round(tokens / seconds, 1),
            "ratio_vs_hf": round(baseline / seconds, 3),
            "tokens": int(tokens),
            "requests": len(workloads[workload]),
            "runs": len(rows),  # the baseline runs once beside each engine in a round
            "threads": threads,
            "load_after": round(load_average(), 2),
        }
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
