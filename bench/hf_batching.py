"""Batched vs sequential generation with the hf backend on real RM-Bench judge prompts.

Both runs use the same backend object, the same prompts (the `cor` template over RM-Bench chat pairs, concise
styles so prompts stay short) and greedy decoding, side by side in one process. Prints throughput of each and
the ratio, and checks the outputs are identical.

    python bench/hf_batching.py [--data ../shared/benchmarks/rm-bench/chat_filtered.json] [--n 8]
                                [--max-new-tokens 64] [--batch-size 8] [--dtype auto] [--model PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rmr1.backends.hf import HFBackend
from rmr1.judge import Judge, JudgeConfig
from rmr1.types import GenerationRequest, PreferencePair

DEFAULT_DATA = (
    Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "rm-bench" / "chat_filtered.json"
)


def load_requests(path: Path, n: int, max_new_tokens: int) -> list[GenerationRequest]:
    records = json.loads(path.read_text(encoding="utf-8"))[:n]
    judge = Judge(
        backend=None,
        template="cor",  # type: ignore[arg-type]  # only plans, never generates
        config=JudgeConfig(max_new_tokens=max_new_tokens),
    )
    pairs = [
        PreferencePair.from_texts(r["prompt"], r["chosen"][0], r["rejected"][0], item_id=str(r["id"]))
        for r in records
    ]
    return [call.request for p in pairs for call in judge.plan(p)]


def timed(backend: HFBackend, reqs: list[GenerationRequest], batch_size: int) -> tuple[float, list[str], int]:
    backend.batch_size = batch_size
    started = time.perf_counter()
    # batch size 1 sends each request alone; otherwise the backend batches the whole list itself
    out = [backend.generate([r])[0] for r in reqs] if batch_size == 1 else backend.generate(reqs)
    seconds = time.perf_counter() - started
    return seconds, [c.text for c in out], sum(c.completion_tokens for c in out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    if not args.data.is_file():
        raise SystemExit(f"RM-Bench file not found: {args.data} (pass --data)")
    reqs = load_requests(args.data, args.n, args.max_new_tokens)
    backend = HFBackend(args.model, batch_size=args.batch_size, dtype=args.dtype)
    timed(backend, reqs[:1], 1)  # warm-up: first-call allocations are not part of either run
    seq_s, seq_text, seq_tokens = timed(backend, reqs, 1)
    bat_s, bat_text, bat_tokens = timed(backend, reqs, args.batch_size)
    prompt_tokens = [len(backend.prompt_ids(r)) for r in reqs]
    print(
        f"prompts: {len(reqs)} RM-Bench chat pairs, prompt tokens {min(prompt_tokens)}..{max(prompt_tokens)}, "
        f"max_new_tokens {args.max_new_tokens}, dtype {backend.model.dtype}"
    )
    print(f"{'mode':<12}{'seconds':>10}{'gen tok/s':>12}{'req/s':>10}")
    print(f"{'sequential':<12}{seq_s:>10.2f}{seq_tokens / seq_s:>12.1f}{len(reqs) / seq_s:>10.3f}")
    print(f"{'batched':<12}{bat_s:>10.2f}{bat_tokens / bat_s:>12.1f}{len(reqs) / bat_s:>10.3f}")
    print(
        f"batched/sequential throughput ratio: {seq_s / bat_s:.2f}x; identical outputs: {seq_text == bat_text}"
    )


if __name__ == "__main__":
    main()
