"""Load test of ``rmr1 serve`` on loopback: micro-batched versus one request per model call.

Two servers with the same settings except batching (``--max-batch 32 --batch-window-ms W`` against
``--max-batch 1 --batch-window-ms 0``) each take the same load: ``--clients`` concurrent clients send
``/v1/judge`` requests (distinct pairs) until ``--requests`` have been sent or ``--duration`` seconds have
passed. Reported per server: throughput, p50/p99 latency, errors (must be 0), the model calls the batcher
made, and the server process's resident memory before and after the load; then the throughput ratio.

    python bench/server_load.py                        # embedded SmolLM2-135M, hf backend, 16 new tokens
    python bench/server_load.py --model PATH --requests 64 --out bench-results.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from rmr1.serve.process import ServerProcess

QUESTIONS = ["What is {a} plus {b}?", "Is {a} larger than {b}?", "Name a number between {a} and {b}."]


def pair(k: int) -> dict[str, Any]:
    a, b = 10 + k, 40 + 2 * k
    return {
        "prompt": QUESTIONS[k % len(QUESTIONS)].format(a=a, b=b),
        "responses": [f"The answer involves {a} and {b}: {a + b}.", f"I think it is {a * 2}."],
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summary(latencies: list[float], errors: list[str], wall: float, rate: str) -> dict[str, Any]:
    """The numbers every load reports: answered and failed requests, wall time, ``rate`` (requests/s), p50/p99."""
    return {
        "completed": len(latencies),
        "errors": len(errors),
        "error_samples": errors[:3],
        "wall_s": wall,
        rate: len(latencies) / wall if wall else 0.0,
        "p50_s": percentile(latencies, 0.5),
        "p99_s": percentile(latencies, 0.99),
    }


async def drive(url: str, clients: int, requests: int, duration: float) -> dict[str, Any]:
    """``clients`` workers share a budget of ``requests`` requests and ``duration`` seconds."""
    latencies: list[float] = []
    errors: list[str] = []
    issued = 0
    started = time.perf_counter()

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal issued
        while issued < requests and time.perf_counter() - started < duration:
            k = issued
            issued += 1
            t0 = time.perf_counter()
            try:
                response = await http.post(url + "/v1/judge", json=pair(k))
                if response.status_code != 200:
                    errors.append(f"{response.status_code}: {response.text[:120]}")
                    continue
            except httpx.HTTPError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            latencies.append(time.perf_counter() - t0)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=duration + 600, limits=limits) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    result = summary(latencies, errors, time.perf_counter() - started, "throughput_rps")
    result["mean_s"] = statistics.fmean(latencies) if latencies else float("nan")
    return result


def run_server(label: str, serve_args: list[str], args: argparse.Namespace) -> dict[str, Any]:
    print(f"[{label}] starting rmr1 serve {' '.join(serve_args)}", file=sys.stderr, flush=True)
    with ServerProcess.start(serve_args, ready_timeout=600) as server:
        httpx.post(server.url + "/v1/judge", json=pair(10_000), timeout=600).raise_for_status()  # warm-up
        rss_before = server.rss_bytes()
        health_before = httpx.get(server.url + "/health").json()["batcher"]
        result = asyncio.run(drive(server.url, args.clients, args.requests, args.duration))
        health_after = httpx.get(server.url + "/health").json()["batcher"]
        rss_after = server.rss_bytes()
        exit_code = server.stop()
    calls = health_after["batches"] - health_before["batches"]
    served = health_after["requests"] - health_before["requests"]
    result.update(
        label=label,
        model_calls=calls,
        backend_requests=served,
        mean_batch=served / calls if calls else 0.0,
        largest_batch=health_after["largest_batch"],
        rss_before_mib=None if rss_before is None else rss_before / 2**20,
        rss_after_mib=None if rss_after is None else rss_after / 2**20,
        exit_code=exit_code,
    )
    print(f"[{label}] {json.dumps(result)}", file=sys.stderr, flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="judge model (default: the embedded SmolLM2-135M)")
    parser.add_argument("--backend", default="hf")
    parser.add_argument("--template", default="plain")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=32, help="requests per server")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load per server at most")
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--window-ms", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=None, help="also write the results here as JSON")
    args = parser.parse_args(argv)
    common = [
        "--backend",
        args.backend,
        "--template",
        args.template,
        "--max-new-tokens",
        str(args.max_new_tokens),
        "--batch-size",
        str(args.max_batch),
        "--max-concurrency",
        str(max(64, args.clients)),
        "--request-timeout",
        str(args.duration + 600),
    ]
    if args.model:
        common += ["--model", args.model]
    batched = run_server(
        "micro-batched",
        [*common, "--max-batch", str(args.max_batch), "--batch-window-ms", str(args.window_ms)],
        args,
    )
    single = run_server("one-at-a-time", [*common, "--max-batch", "1", "--batch-window-ms", "0"], args)
    ratio = batched["throughput_rps"] / single["throughput_rps"] if single["throughput_rps"] else float("nan")
    report = {
        "model": args.model or "embedded SmolLM2-135M-Instruct",
        "backend": args.backend,
        "template": args.template,
        "max_new_tokens": args.max_new_tokens,
        "clients": args.clients,
        "requests": args.requests,
        "results": [batched, single],
        "throughput_ratio": ratio,
    }
    print(
        f"{'server':<15}{'done':>6}{'err':>5}{'req/s':>9}{'p50 s':>9}{'p99 s':>9}{'calls':>7}{'batch':>7}"
        f"{'RSS MiB before/after':>24}"
    )
    for r in (batched, single):
        rss = f"{r['rss_before_mib'] or 0:.0f} / {r['rss_after_mib'] or 0:.0f}"
        print(
            f"{r['label']:<15}{r['completed']:>6}{r['errors']:>5}{r['throughput_rps']:>9.3f}{r['p50_s']:>9.2f}"
            f"{r['p99_s']:>9.2f}{r['model_calls']:>7}{r['mean_batch']:>7.1f}{rss:>24}"
        )
    print(f"throughput ratio (micro-batched / one-at-a-time): {ratio:.2f}x")
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
    return 0 if batched["errors"] == single["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
