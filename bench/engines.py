"""What the engine benchmarks share: RM-Bench judge workloads and the engines installed in this interpreter.

Workloads (``cor`` template, single order, greedy; the judge system prompt is the same in every request):

- ``w16``: the first N RM-Bench chat items, chosen[0] vs rejected[0];
- ``w9``: the 3x3 comparisons (chosen[i] vs rejected[j]) of one item, whose question is shared too: the
  prefix-reuse workload (``--items N``: the nine of each of the first N items);
- ``bon``: RMB best-of-n sets (Helpfulness/Chat), the best response against each loser: the question and the
  best response are shared within a set.

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
_RMB_BON = Path("shared") / "benchmarks" / "rmb" / "RMB_dataset" / "BoN_set" / "Helpfulness" / "Chat"


def _beside_checkout(relative: Path) -> Path:
    """../shared beside the checkout, or beside the folder of worktrees a checkout may sit in."""
    parents = Path(__file__).resolve().parents
    return next((p / relative for p in parents[2:4] if (p / relative).exists()), parents[2] / relative)


DEFAULT_DATA = _beside_checkout(_RM_BENCH)
DEFAULT_BON = _beside_checkout(_RMB_BON)


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


def three_by_three(path: Path, items: int = 1) -> list[PreferencePair]:
    """The nine comparisons (RM-Bench's official cells) of each of the first ``items`` items."""
    return [
        PreferencePair.from_texts(
            record["prompt"], chosen, rejected, item_id=str(record["id"]), pair=3 * i + j
        )
        for record in rm_bench_items(path, items)
        for i, chosen in enumerate(record["chosen"][:3])
        for j, rejected in enumerate(record["rejected"][:3])
    ]


def bon_sets(path: Path, sets: int) -> list[PreferencePair]:
    """The pairs (best vs each loser) of the first ``sets`` RMB best-of-n sets under ``path``."""
    from rmr1.benchmarks import load_benchmark

    if not path.exists():
        raise SystemExit(f"RMB best-of-n folder not found: {path} (pass --bon-data)")
    pairs = load_benchmark("rmb", str(path)).pairs
    wanted = list(dict.fromkeys(p.item_id for p in pairs))[:sets]
    return [p for p in pairs if p.item_id in set(wanted)]


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


Builder = Callable[[int, "str | None"], Any]  # (threads, model) -> backend


def _openvino(**options: Any) -> Builder:
    def build(threads: int, model: str | None = None) -> Any:
        from rmr1.backends.openvino import OpenVINOBackend

        return OpenVINOBackend(model, threads=threads, **options)

    return build


def _hf(threads: int, model: str | None = None) -> Any:
    from rmr1.backends.cpu_dtype import cpu_supports_bf16
    from rmr1.backends.hf import HFBackend

    dtype = "bfloat16" if cpu_supports_bf16() else "float32"
    return HFBackend(model, batch_size=16, dtype=dtype, threads=threads)


def _hf_fp32(threads: int, model: str | None = None) -> Any:
    """transformers in float32: how far two precisions of one engine drift apart is the yardstick for the
    agreement of two engines."""
    from rmr1.backends.hf import HFBackend

    return HFBackend(model, batch_size=16, dtype="float32", threads=threads)


def _vllm(threads: int, model: str | None = None) -> Any:
    from rmr1.backends.vllm import VLLMBackend

    return VLLMBackend(model, max_model_len=8192)


def available_engines() -> dict[str, Builder]:
    """Engine name -> builder(threads, model), for the engines importable in this interpreter; ``hf`` first."""
    engines: dict[str, Builder] = {"hf": _hf, "hf-fp32": _hf_fp32}
    if importlib.util.find_spec("openvino_genai") is not None:
        engines["openvino"] = _openvino()
        engines["openvino-native"] = _openvino(weight_format="native")
        engines["openvino-noprefix"] = _openvino(prefix_caching=False)
    if importlib.util.find_spec("vllm") is not None:
        engines["vllm"] = _vllm
    return engines
