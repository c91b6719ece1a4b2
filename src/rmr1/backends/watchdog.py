"""Turn an engine call that stopped making progress into an error instead of a process that waits forever.

A native engine call can hang: once, after GRPO training in the same process, OpenVINO GenAI's
``ContinuousBatchingPipeline.generate`` waited on a future inside its sampler for ~13 minutes with every thread
asleep (docs/design/engine-stalls.md). Nothing in Python can interrupt a native call, so ``call_watched`` runs it
in a daemon thread and watches the process's CPU time from the calling thread: a healthy engine call burns CPU
the whole time (at least one core on a CPU device; the sampling between steps on any device), a stuck one burns
none. When the process has used less than ``min_cpu_s`` of CPU time for ``stall_s`` seconds while the call is
still running, the call is declared stalled and ``EngineStalledError`` is raised. The stuck thread is left to its
native wait (it holds no lock of ours and uses no CPU); the caller decides whether to retry on a fresh engine.

Progress is read from the whole process, so another busy thread can hide a stall (the call is then simply waited
for, as before), but an idle process cannot fake progress. The threshold is loose on purpose: 0.5 s of CPU in
120 s is under half a percent of one core, far below what any engine uses while it works, even on a machine
oversubscribed many times over.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from rmr1.errors import EngineStalledError

T = TypeVar("T")

DEFAULT_STALL_S = 120.0


def call_watched(
    fn: Callable[[], T],
    *,
    stall_s: float = DEFAULT_STALL_S,
    what: str = "engine call",
    min_cpu_s: float = 0.5,
    poll_s: float | None = None,
    cpu: Callable[[], float] = time.process_time,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """``fn()``, or ``EngineStalledError`` when the process used under ``min_cpu_s`` of CPU time for ``stall_s``
    seconds while ``fn`` ran. ``stall_s`` <= 0 calls ``fn`` directly, unwatched. ``fn``'s own exception is
    re-raised as is."""
    if stall_s <= 0:
        return fn()
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # handed to the caller's thread below
            outcome["error"] = exc

    worker = threading.Thread(target=target, name=f"rmr1 {what}", daemon=True)
    worker.start()
    poll = poll_s if poll_s is not None else min(5.0, stall_s / 10)
    mark_cpu, mark_time = cpu(), clock()
    while True:
        worker.join(poll)
        if not worker.is_alive():
            break
        now_cpu = cpu()
        if now_cpu - mark_cpu >= min_cpu_s:
            mark_cpu, mark_time = now_cpu, clock()
        elif clock() - mark_time >= stall_s:
            raise EngineStalledError(
                f"{what} stopped making progress: no CPU time used for {stall_s:g} s and it has not returned"
            )
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]
