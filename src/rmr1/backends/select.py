"""Which backend ``--backend auto`` (the default of ``judge``, ``eval`` and ``serve``) judges with.

- ``--base-url`` given: ``openai`` (the server is the engine);
- a verdict read that needs log-probabilities (``--verdict logprob|forced``): ``hf``, since the fast CPU engine
  returns none;
- a GPU present: ``hf`` (``--backend vllm`` is the GPU engine, asked for by name);
- otherwise, on a CPU: the fast CPU engine, OpenVINO GenAI, when it is installed and takes the model (the
  embedded GGUF, a .gguf file, an IR folder, or a llama-family checkpoint sharing the embedded vocabulary,
  exported once: ``openvino_weights``); else ``hf``, which also stays the engine for training.

Measured on this project's 2-core CPU (docs/design/cpu-engine.md, bench/judge_throughput.py), OpenVINO judges
several times faster than transformers batched bf16 with greedy verdicts that agree on most pairs; the
choice is printed once per process, and ``RMR1_FAST_CPU_ENGINE=0`` (or ``--backend hf``) keeps transformers.
A resumed run keeps the backend recorded in its run.json, so an ``auto`` run never changes engine midway.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from collections.abc import Callable, Mapping

from rmr1.errors import Rmr1Error

AUTO = "auto"
ENV = "RMR1_FAST_CPU_ENGINE"
_log = logging.getLogger("rmr1.backends.select")
_announced: set[tuple[str, str]] = set()


def fast_engine_wanted(env: Mapping[str, str] | None = None) -> bool:
    """False only when ``RMR1_FAST_CPU_ENGINE`` says no (0, false, no, off)."""
    value = (os.environ if env is None else env).get(ENV, "").strip().lower()
    return value not in ("0", "false", "no", "off")


def _openvino_ready(model: str | None) -> bool:
    """openvino-genai installed and the model convertible (a cached conversion makes this instant)."""
    if importlib.util.find_spec("openvino_genai") is None:
        return False
    from rmr1.backends.openvino_weights import locate

    try:
        locate(model)
    except Rmr1Error as exc:
        _log.info("openvino cannot take %s (%s): judging with transformers", model or "the model", exc)
        return False
    return True


def _has_gpu() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def default_cpu_backend(
    model: str | None = None,
    *,
    prefer_fast: bool | None = None,
    ready: Callable[[str | None], bool] = _openvino_ready,
) -> str:
    """The backend name to judge ``model`` with on a CPU: ``"openvino"`` when wanted and ready, else ``"hf"``.

    ``prefer_fast`` None reads ``RMR1_FAST_CPU_ENGINE``; ``ready`` is the readiness probe (tests swap it).
    """
    wanted = fast_engine_wanted() if prefer_fast is None else prefer_fast
    return "openvino" if wanted and ready(model) else "hf"


def resolve_backend(
    backend: str,
    *,
    model: str | None = None,
    verdict: str = "generate",
    base_url: object = None,
    previous: str | None = None,
    gpu: Callable[[], bool] | None = None,
    cpu_choice: Callable[[str | None], str] | None = None,
) -> str:
    """``backend`` itself, or for ``auto`` the backend picked by the rules in the module doc; ``previous`` is
    the backend a resumed run was made with (kept); ``gpu`` and ``cpu_choice`` replace the probes (tests).
    Prints an ``auto`` choice on stderr once per process."""
    if backend != AUTO:
        return backend
    if previous and previous != AUTO:
        name, why = previous, "the backend this run was started with"
    elif base_url:
        name, why = "openai", "--base-url given"
    elif verdict != "generate":
        name, why = "hf", f"--verdict {verdict} needs log-probabilities"
    elif (gpu or _has_gpu)():
        name, why = "hf", "a GPU is present (--backend vllm for vLLM)"
    else:
        name = (cpu_choice or default_cpu_backend)(model)
        why = "the fast CPU engine" if name == "openvino" else "no fast CPU engine for this model here"
    if (name, why) not in _announced:
        _announced.add((name, why))
        print(f"backend: {name} ({why}; --backend to choose)", file=sys.stderr, flush=True)
    return name


__all__ = ["AUTO", "ENV", "default_cpu_backend", "fast_engine_wanted", "resolve_backend"]
