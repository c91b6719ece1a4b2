"""How many threads a CPU engine (torch, or another local engine) should use: the cores other work leaves free.

The choice, first match wins: an explicit request (``--threads N``), the ``RMR1_THREADS`` environment variable,
else the cores this process may run on minus the work of others (rounded), shared among the local ranks of a
multi-process run, at least one. The work of others is the 1-minute load average, or the cores busy right now
(``/proc/stat`` sampled over 0.2 s) when that is lower: the load average also holds this process's own work of
the last minute (a demo stage that just trained on both cores), which must not count against its next stage.
On a busy machine one thread beats several: threads that spin-wait for cores other processes hold slow everyone
down (measured in the demo: a LoRA step took 10 s on one thread and 23-47 s on two). ``apply_threads`` sets
torch's thread count and prints the choice once per process::

    using 2 torch threads (2 cores, load 0.3)
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from rmr1.errors import ConfigError

ENV = "RMR1_THREADS"
_announced: set[tuple[str, int]] = set()  # (engine, threads) already printed by this process


@dataclass(frozen=True)
class ThreadChoice:
    """A thread count and why it was chosen."""

    threads: int
    cores: int  # cores this process may run on
    load: float | None  # the 1-minute load average seen; None when the count was given
    source: str  # "auto", "--threads" or the environment variable's name
    ranks: int = 1  # local processes sharing the free cores

    def describe(self, engine: str = "torch") -> str:
        if self.source == "auto":
            shared = f", shared by {self.ranks} ranks" if self.ranks > 1 else ""
            why = f"{self.cores} cores, load {self.load or 0.0:.1f}{shared}"
        elif self.source == ENV:
            why = f"{ENV}={self.threads}"
        else:
            why = f"{self.source} {self.threads}"
        unit = "thread" if self.threads == 1 else "threads"
        return f"using {self.threads} {engine} {unit} ({why})"


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS says, else every core)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load_average() -> float:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # not every OS has one
        return 0.0


def _cpu_times(path: str) -> tuple[int, int]:
    """(all jiffies, idle + iowait jiffies) of the machine, from the first line of /proc/stat."""
    with open(path) as handle:
        fields = [int(x) for x in handle.readline().split()[1:9]]
    return sum(fields), fields[3] + fields[4]


def busy_cores(interval: float = 0.2, *, path: str = "/proc/stat") -> float | None:
    """Cores kept busy over the next ``interval`` seconds (this process sleeps meanwhile, so it is others'
    work); None where /proc/stat cannot be read."""
    try:
        total0, idle0 = _cpu_times(path)
        time.sleep(interval)
        total1, idle1 = _cpu_times(path)
    except (OSError, ValueError, IndexError):
        return None
    total = total1 - total0
    if total <= 0:
        return None
    return (total - (idle1 - idle0)) / total * (os.cpu_count() or 1)


def others_load() -> float:
    """What other work holds: the load average, or the cores busy right now when that is lower."""
    busy = busy_cores()
    load = load_average()
    return load if busy is None else min(load, busy)


def _positive(value: object, what: str) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        number = 0
    if number < 1:
        raise ConfigError(f"{what} must be a positive whole number of threads, got {value!r}")
    return number


def choose_threads(
    requested: int | None = None,
    *,
    cores: int | None = None,
    load: float | None = None,
    env: Mapping[str, str] | None = None,
) -> ThreadChoice:
    """The thread count (see the module doc); ``cores``, ``load`` and ``env`` default to this machine's."""
    env = os.environ if env is None else env
    cores = usable_cores() if cores is None else max(1, cores)
    if requested is not None:
        return ThreadChoice(_positive(requested, "--threads"), cores, None, "--threads")
    if env.get(ENV, "").strip():
        return ThreadChoice(_positive(env[ENV], ENV), cores, None, ENV)
    load = others_load() if load is None else max(0.0, load)
    # Ranks of one `accelerate launch` on this machine each call this; they split the free cores between them.
    ranks = max(1, int(env.get("LOCAL_WORLD_SIZE", "1") or 1))
    free = min(cores, cores - round(load))
    return ThreadChoice(max(1, free // ranks), cores, load, "auto", ranks)


def apply_threads(
    requested: int | None = None,
    *,
    engine: str = "torch",
    log: Callable[[str], object] | None = None,
) -> ThreadChoice:
    """Choose, set torch's thread count (``engine="torch"``), and print the choice on stderr once."""
    choice = choose_threads(requested)
    if engine == "torch":
        import torch

        if torch.get_num_threads() != choice.threads:
            torch.set_num_threads(choice.threads)
    if (engine, choice.threads) not in _announced:
        _announced.add((engine, choice.threads))
        (log or _to_stderr)(choice.describe(engine))
    return choice


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


__all__ = [
    "ENV",
    "ThreadChoice",
    "apply_threads",
    "busy_cores",
    "choose_threads",
    "load_average",
    "others_load",
    "usable_cores",
]
