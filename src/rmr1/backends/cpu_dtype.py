"""What ``--dtype auto`` means on a CPU: bfloat16 only where it was measured to be faster and sound here.

CPU flags are not enough: a CPU may advertise ``avx512_bf16`` while torch's bf16 kernels on it are slower than
float32 for the small matrices a judge multiplies, or give wrong numbers on a new instruction path. So the first
``auto`` load on a machine times a short matmul block in both dtypes and checks that the bf16 output is finite
and close to float32's; the answer is cached in ``$RMR1_HOME/cpu-dtype.json`` under a key of what decides it
(CPU model and bf16 flags, torch version, thread count) and reused afterwards. ``RMR1_CPU_DTYPE`` (float32 or
bfloat16) skips the measurement. Numbers and method: docs/design/portable-builds.md.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from rmr1.atomic import write_atomic
from rmr1.errors import ConfigError
from rmr1.models import rmr1_home

ENV_OVERRIDE = "RMR1_CPU_DTYPE"
CACHE_FILE = "cpu-dtype.json"
CPU_DTYPES = ("float32", "bfloat16")
# bf16 must win clearly: a tie goes to float32, which is exact and never the slower bet on a loaded machine.
MIN_SPEEDUP = 1.15
MAX_REL_ERROR = 0.05


@dataclass(frozen=True)
class Measurement:
    """One timing of the probe block on this machine."""

    bf16_s: float  # best-of-n seconds for the block in bfloat16
    f32_s: float  # the same in float32
    rel_error: float  # max |bf16 - f32| / max |f32| over the block's output (inf when bf16 gave inf/nan)

    def choice(self) -> str:
        sound = self.rel_error <= MAX_REL_ERROR
        return "bfloat16" if sound and self.f32_s >= self.bf16_s * MIN_SPEEDUP else "float32"


@functools.cache
def _proc_cpuinfo() -> str:
    """/proc/cpuinfo, read once per process (the CPU does not change under it); empty where there is none."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def _cpu_info() -> tuple[str, bool]:
    """(CPU model name, whether the flags claim native bf16)."""
    text = _proc_cpuinfo()
    model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), "")
    return model or "unknown", "avx512_bf16" in text or "amx_bf16" in text


def cpu_supports_bf16() -> bool:
    return _cpu_info()[1]


def cpu_has_amx() -> bool:
    """Whether the CPU has Intel AMX tiles (``amx_bf16``): engines pick other kernels there."""
    return "amx_bf16" in _proc_cpuinfo()


def machine_key() -> str:
    """What the dtype answer depends on; a new CPU, torch or thread count measures again."""
    import torch

    model, bf16 = _cpu_info()
    return f"{model} | bf16 flags {int(bf16)} | torch {torch.__version__} | threads {torch.get_num_threads()}"


def measure(reps: int = 5, budget_s: float = 0.5) -> Measurement:
    """Time a judge-sized MLP block (prefill and decode shapes) in both dtypes; a fraction of a second.

    One thread, and the dtypes take turns: on a busy machine a barrier between threads costs a whole time slice
    per op, and a load spike would otherwise land on one dtype only. Best of ``reps`` rounds, fewer when the
    rounds run past ``budget_s``.
    """
    import torch

    gen = torch.Generator().manual_seed(0)
    up, down = torch.randn(576, 1536, generator=gen) / 24, torch.randn(1536, 576, generator=gen) / 40
    inputs = [torch.randn(rows, 576, generator=gen) for rows in (128, 8)]
    dtypes = (torch.float32, torch.bfloat16)
    cast = {dt: (up.to(dt), down.to(dt), [x.to(dt) for x in inputs]) for dt in dtypes}
    best = dict.fromkeys(dtypes, float("inf"))
    first: dict[torch.dtype, torch.Tensor] = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        started = time.perf_counter()
        with torch.inference_mode():
            for rep in range(reps + 1):  # round 0 warms the kernels up and is not counted
                for dt in dtypes:
                    w1, w2, xs = cast[dt]
                    tick = time.perf_counter()
                    outs = [torch.nn.functional.silu(x @ w1) @ w2 for x in xs]
                    if rep:
                        best[dt] = min(best[dt], time.perf_counter() - tick)
                    first[dt] = outs[0].float()
                if rep and time.perf_counter() - started > budget_s:
                    break
    finally:
        torch.set_num_threads(threads)
    reference, approx = first[torch.float32], first[torch.bfloat16]
    bf16_s, f32_s = best[torch.bfloat16], best[torch.float32]
    if not bool(torch.isfinite(approx).all()):
        return Measurement(bf16_s, f32_s, float("inf"))
    scale = float(reference.abs().max()) or 1.0
    return Measurement(bf16_s, f32_s, float((approx - reference).abs().max()) / scale)


def _read(path: Path) -> dict[str, dict[str, object]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # missing or damaged: measure again and rewrite it
    return data if isinstance(data, dict) else {}


def _write(path: Path, data: dict[str, dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True))


def auto_cpu_dtype(
    *, measure_fn: Callable[[], Measurement] = measure, cache: Path | None = None, key: str | None = None
) -> str:
    """``float32`` or ``bfloat16`` for ``--dtype auto`` on this CPU: override, cached answer, or a new measurement."""
    override = os.environ.get(ENV_OVERRIDE, "").strip()
    if override:
        if override not in CPU_DTYPES:
            raise ConfigError(f"{ENV_OVERRIDE}={override!r}: choose one of {', '.join(CPU_DTYPES)}")
        return override
    if not cpu_supports_bf16():
        return "float32"  # bf16 would be emulated: always slower, no need to time it
    path = cache or rmr1_home() / CACHE_FILE
    key = key or machine_key()
    known = _read(path)
    entry = known.get(key)
    if entry and entry.get("dtype") in CPU_DTYPES:
        return str(entry["dtype"])
    found = measure_fn()
    known[key] = {"dtype": found.choice(), **asdict(found)}
    with contextlib.suppress(OSError):  # a read-only home only costs a new measurement next time
        _write(path, known)
    return found.choice()


__all__ = [
    "CPU_DTYPES",
    "ENV_OVERRIDE",
    "Measurement",
    "auto_cpu_dtype",
    "cpu_has_amx",
    "cpu_supports_bf16",
    "measure",
]
