"""How often a CPU engine's greedy judgments agree with transformers' on real RM-Bench pairs.

The first N RM-Bench chat items, chosen[0] vs rejected[0], the ``cor`` template, one seeded order, greedy, a
small budget; each engine judges them all and the judgments are compared call by call. Engines and weight
formats change arithmetic, so greedy outputs can part ways at a near tie and then differ everywhere after it:
the verdict and the parse outcome are what a benchmark score sees. Prints one JSON line:

    {"engine": "openvino", "pairs": 20, "same_verdict": 0.95, "same_parse_outcome": 1.0, "same_text": 0.6, ...}

``same_verdict``: both gave the same label, or both gave none; ``same_parse_outcome``: both parsed or both
did not; ``accuracy_*``: each engine's share of correct verdicts.

    python bench/engine_agreement.py [--engine openvino] [--pairs 20] [--max-new-tokens 128] [--parse-mode paper]
                                  [--template plain | --template-file F.yaml] [--model CHECKPOINT]
                                  [--preference PAIRS.jsonl]

``--model``: a judge that writes verdicts (a checkpoint trained by ``rmr1 train``/``rmr1 demo``; the openvino
engine exports it to GGUF once) makes ``same_verdict`` mean something: the embedded 135M model writes none.
``--preference``: judge the first N pairs of a preference file (e.g. the demo's ``OUT/data/test_pairs.jsonl``)
instead of RM-Bench.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from engines import DEFAULT_DATA, available_engines, first_pairs
from rmr1.benchmarks import load_benchmark
from rmr1.judge import Call, Judge, JudgeConfig
from rmr1.prompts import get_template
from rmr1.threads import choose_threads, load_average
from rmr1.types import Judgment


def judged(
    engine: str, threads: int, calls: list[Call], judge: Judge, model: str | None
) -> tuple[list[Judgment], float]:
    judge = Judge(available_engines()[engine](threads, model), judge.template, judge.config)
    started = time.perf_counter()
    out = list(judge.run(calls))
    return out, time.perf_counter() - started


def share(flags: list[bool]) -> float:
    return round(sum(flags) / len(flags), 3) if flags else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--engine", default="openvino")
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--parse-mode", default="strict", help="strict or paper (rmr1.verdicts)")
    parser.add_argument("--template", default="cor", help="cor, plain, ... (rmr1.prompts)")
    parser.add_argument("--template-file", default=None, help="a YAML template (overrides --template)")
    parser.add_argument("--model", default=None, help="default: the embedded model")
    parser.add_argument("--preference", type=Path, default=None, help="a preference file instead of RM-Bench")
    args = parser.parse_args()
    if args.engine not in available_engines():
        raise SystemExit(
            f"engine {args.engine!r} is not installed; installed: {', '.join(available_engines())}"
        )
    pairs = (
        load_benchmark("preference", str(args.preference), limit=args.pairs).pairs
        if args.preference
        else first_pairs(args.data, args.pairs)
    )
    config = JudgeConfig(
        max_new_tokens=args.max_new_tokens, batch_size=len(pairs), parse_mode=args.parse_mode
    )
    template = get_template(args.template, args.template_file)
    planner = Judge(None, template, config)  # type: ignore[arg-type]  # plans; each engine judges
    calls = [call for pair in pairs for call in planner.plan(pair)]
    threads = choose_threads(args.threads).threads
    load_before = load_average()
    base, base_s = judged("hf", threads, calls, planner, args.model)
    other, other_s = judged(args.engine, threads, calls, planner, args.model)
    both = list(zip(base, other, strict=True))
    line = {
        "engine": args.engine,
        "baseline": "hf",
        "pairs": len(both),
        "data": str(args.preference or args.data),
        "template": args.template_file or args.template,
        "model": args.model or "embedded",
        "max_new_tokens": args.max_new_tokens,
        "parse_mode": args.parse_mode,
        "same_verdict": share([a.verdict == b.verdict for a, b in both]),
        "same_parse_outcome": share([(a.verdict is None) == (b.verdict is None) for a, b in both]),
        "same_text": share([a.completion == b.completion for a, b in both]),
        "parsed_hf": share([a.verdict is not None for a in base]),
        "parsed_engine": share([b.verdict is not None for b in other]),
        "accuracy_hf": share([a.correct is True for a in base]),
        "accuracy_engine": share([b.correct is True for b in other]),
        "seconds_hf": round(base_s, 2),
        "seconds_engine": round(other_s, 2),
        "threads": threads,
        "load_before": round(load_before, 2),
        "load_after": round(load_average(), 2),
    }
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
