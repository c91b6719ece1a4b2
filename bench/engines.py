"""What the engine benchmarks share: RM-Bench judge workloads and the engines installed in this interpreter.

Workloads (``cor`` template, single order, greedy; the judge system prompt is the same in every request):

- ``w16``: the first N RM-Bench chat items, chosen[0] vs rejected[0];
- ``w9``: the 3x3 comparisons (chosen[i] vs rejected[j]) of one item, whose question is shared too: the
  prefix-reuse workload.

Engines: ``hf`` (transformers, batched, bf16 where the CPU has it: the baseline), ``openvino`` (fp16 weights),
``openvino-native`` (the GGUF's own quantized blocks), ``openvino-noprefix`` (fp16, prefix caching off: what
reuse is worth), and ``vllm`` when importable here.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rmr1.judge import Call, Judge, JudgeConfig
from rmr1.types import PreferencePair

_RM_BENCH = Path("shared") / "benchmarks" / "rm-bench" / "chat_filtered.json"
# ../shared beside the checkout, or beside the folder of worktrees a checkout may sit in.
DEFAULT_DATA = next(
    (p / _RM_BENCH for p in Path(__file__).resolve().parents[2:4] if (p / _RM_BENCH).is_file()),
    Path(__file__).resolve().parents[2] / _RM_BENCH,
)


def rm_bench_items(path: Path, n: int) -> list[dict[str, Any]]:
    if not path.is_file():
        raise SystemExit(f"RM-Bench file not found: {path} (pass --data)")
    items: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))[:n]
    return items


def first_pairs(path: Path, n: int) -> list[PreferencePair]:
    """chosen[0] vs rejected[0] of the first ``n`` items."""
    return [
        PreferencePair.from_texts(r["prompt"], r["chosen"][0], r["rejected"][0], item_id=str(r["id"]))
        for r in rm_bench_items(path, n)
    ]


def three_by_three(path: Path, item: int = 0) -> list[PreferencePair]:
    """The nine comparisons of one item (RM-Bench's official cells)."""
    record = rm_bench_items(path, item + 1)[item]
    return [
        PreferencePair.from_texts(
            record["prompt"], chosen, rejected, item_id=str(record["id"]), pair=3 * i + j
        )
        for i, chosen in enumerate(record["chosen"][:3])
        for j, rejected in enumerate(record["rejected"][:3])
    ]


def plan(
    pairs: list[PreferencePair],
    max_new_tokens: int,
    *,
    stop_at_verdict: bool = True,
    template: str = "cor",
    config: JudgeConfig | None = None,
) -> list[Call]:
    """The calls a judge makes for ``pairs`` (``config`` wins over ``max_new_tokens``/``stop_at_verdict``)."""
    config = config or JudgeConfig(max_new_tokens=max_new_tokens, stop_at_verdict=stop_at_verdict)
    judge = Judge(backend=None, template=template, config=config)  # type: ignore[arg-type]  # only plans
    return [call for pair in pairs for call in judge.plan(pair)]


def _openvino(**options: Any) -> Callable[[int], Any]:
    def build(threads: int) -> Any:
        from rmr1.backends.openvino import OpenVINOBackend

        return OpenVINOBackend(None, threads=threads, **options)

    return build


def _hf(threads: int) -> Any:
    from rmr1.backends.cpu_dtype import cpu_supports_bf16
    from rmr1.backends.hf import HFBackend

    dtype = "bfloat16" if cpu_supports_bf16() else "float32"
    return HFBackend(None, batch_size=16, dtype=dtype, threads=threads)


def _vllm(threads: int) -> Any:
    from rmr1.backends.vllm import VLLMBackend

    return VLLMBackend(None, max_model_len=8192)


def available_engines() -> dict[str, Callable[[int], Any]]:
    """Engine name -> builder(threads), for the engines importable in this interpreter; ``hf`` first."""
    engines: dict[str, Callable[[int], Any]] = {"hf": _hf}
    if importlib.util.find_spec("openvino_genai") is not None:
        engines["openvino"] = _openvino()
        engines["openvino-native"] = _openvino(weight_format="native")
        engines["openvino-noprefix"] = _openvino(prefix_caching=False)
    if importlib.util.find_spec("vllm") is not None:
        engines["vllm"] = _vllm
    return engines
