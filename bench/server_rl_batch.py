"""RL-sized reward batches against ``rmr1 serve``: throughput, latency and the server's peak memory.

Two workloads, each on its own server process on loopback:

- ``mock``: the scripted judge (no model), ``--mock-groups`` groups of ``--mock-size`` responses per
  ``/v1/score`` request, round robin (1,024 x 7 = 21,504 comparisons a request), ``--mock-requests`` requests
  one after the other. This measures the server itself: chunked admission, batching, JSON.
- ``model``: the embedded SmolLM2-135M on the hf backend, ``--clients`` concurrent clients each sending
  ``--model-groups`` groups of ``--model-size`` (8 x 8 groups of 4 = 64 groups, 384 comparisons a round),
  ``--rounds`` rounds.

Reported per workload: requests/s, comparisons/s, p50/p99 request latency, errors (must be 0), the model calls
the batcher made, and the peak resident memory of the server process (sampled every 50 ms). The load average
(``os.getloadavg()``) is printed before and after each workload, since the numbers mean little without it.

    python bench/server_rl_batch.py                      # both workloads
    python bench/server_rl_batch.py --only mock --out rl-batch.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from rmr1.serve.process import ServerProcess
from server_load import summary  # the sibling script (bench/ is on sys.path when this file runs)


def groups(count: int, size: int, salt: int) -> list[dict[str, Any]]:
    return [
        {
            "prompt": f"Question {salt}.{g}: what is {g} plus {size}?",
            "responses": [f"It is {g + size + k - size // 2}." for k in range(size)],
        }
        for g in range(count)
    ]


class PeakRss:
    """Samples a process's resident memory in a thread; ``peak_mib`` is the highest seen."""

    def __init__(self, server: ServerProcess, every_s: float = 0.05) -> None:
        self.server, self.every_s, self.peak = server, every_s, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.server.rss_bytes() or 0)
            self._stop.wait(self.every_s)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mib(self) -> float:
        return self.peak / 2**20


def load(url: str, bodies: list[list[dict[str, Any]]], clients: int, timeout: float) -> dict[str, Any]:
    """Send the bodies (one list per client, each sent in turn) from ``clients`` threads; time each request."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        with httpx.Client(timeout=timeout) as http:
            for body in bodies[k]:
                t0 = time.perf_counter()
                try:
                    response = http.post(url + "/v1/score", json=body)
                    ok = response.status_code == 200 and len(response.json()["results"]) == len(
                        body["groups"]
                    )
                    why = "" if ok else f"{response.status_code}: {response.text[:120]}"
                except httpx.HTTPError as exc:
                    why = f"{type(exc).__name__}: {exc}"
                with lock:
                    if why:
                        errors.append(why)
                    else:
                        latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return summary(latencies, errors, time.perf_counter() - started, "requests_per_s")


def workload(
    label: str, serve_args: list[str], per_client: list[list[dict[str, Any]]], size: int
) -> dict[str, Any]:
    load_before = os.getloadavg()
    print(f"[{label}] load average before: {load_before}; rmr1 serve {' '.join(serve_args)}", file=sys.stderr)
    with ServerProcess.start([*serve_args, "--request-timeout", "3600"], ready_timeout=900) as server:
        with PeakRss(server) as rss:
            idle_mib = (server.rss_bytes() or 0) / 2**20
            result = load(server.url, per_client, len(per_client), timeout=3600)
        stats = httpx.get(server.url + "/health").json()["batcher"]
        exit_code = server.stop()
    comparisons = (
        sum(len(body["groups"]) for bodies in per_client for body in bodies) * size * (size - 1) // 2
    )
    result.update(
        label=label,
        clients=len(per_client),
        comparisons=comparisons,
        comparisons_per_s=comparisons / result["wall_s"] if result["errors"] == 0 else None,
        model_calls=stats["batches"],
        largest_batch=stats["largest_batch"],
        dropped_requests=stats["dropped_requests"],
        rss_idle_mib=idle_mib,
        rss_peak_mib=rss.peak_mib,
        exit_code=exit_code,
        load_average_before=load_before,
        load_average_after=os.getloadavg(),
        cpus=os.cpu_count(),
    )
    print(f"[{label}] {json.dumps(result)}", file=sys.stderr, flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=["mock", "model"], default=None)
    parser.add_argument("--mock-groups", type=int, default=1024)
    parser.add_argument("--mock-size", type=int, default=7)
    parser.add_argument("--mock-requests", type=int, default=3)
    parser.add_argument("--model", default=None, help="judge model (default: the embedded SmolLM2-135M)")
    parser.add_argument("--model-groups", type=int, default=8, help="groups per client request")
    parser.add_argument("--model-size", type=int, default=4)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1, help="requests per client")
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--out", type=Path, default=None, help="also write the results here as JSON")
    args = parser.parse_args(argv)
    results = []
    if args.only in (None, "mock"):
        bodies = [
            [{"groups": groups(args.mock_groups, args.mock_size, r)} for r in range(args.mock_requests)]
        ]
        results.append(workload("mock", ["--backend", "mock", "--model", "always-a"], bodies, args.mock_size))
    if args.only in (None, "model"):
        serve = ["--template", "plain", "--max-new-tokens", str(args.max_new_tokens)]
        serve += ["--model", args.model] if args.model else []
        bodies = [
            [{"groups": groups(args.model_groups, args.model_size, c * 1000 + r)} for r in range(args.rounds)]
            for c in range(args.clients)
        ]
        results.append(workload("model", serve, bodies, args.model_size))
    print(
        f"{'workload':<8}{'clients':>8}{'done':>6}{'err':>5}{'req/s':>8}{'cmp/s':>9}{'p50 s':>8}{'p99 s':>8}"
        f"{'calls':>7}{'RSS MiB idle/peak':>19}  load avg (before -> after)"
    )
    for r in results:
        rss = f"{r['rss_idle_mib']:.0f} / {r['rss_peak_mib']:.0f}"
        before, after = (
            " ".join(f"{x:.2f}" for x in r[k]) for k in ("load_average_before", "load_average_after")
        )
        print(
            f"{r['label']:<8}{r['clients']:>8}{r['completed']:>6}{r['errors']:>5}{r['requests_per_s']:>8.3f}"
            f"{r['comparisons_per_s'] or 0:>9.1f}{r['p50_s']:>8.2f}{r['p99_s']:>8.2f}{r['model_calls']:>7}"
            f"{rss:>19}  {before} -> {after}"
        )
    print(f"on {os.cpu_count()} CPUs; load average now {os.getloadavg()}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return 0 if all(r["errors"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
