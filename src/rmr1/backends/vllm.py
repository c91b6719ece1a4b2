"""vLLM backend for GPU judging. Imported lazily: without vLLM installed, building it names the extra.

The whole request list goes to one ``LLM.chat`` call (vLLM schedules and batches internally); greedy unless the
sampling params say otherwise; stop strings are kept in the output so the verdict tag survives.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from rmr1.errors import require
from rmr1.models import resolve_model
from rmr1.types import Completion, GenerationRequest, SamplingParams


class VLLMBackend:
    def __init__(
        self,
        model: str | None = None,
        *,
        tensor_parallel_size: int = 1,
        max_model_len: int | None = None,
        gpu_memory_utilization: float = 0.9,
        **_: object,
    ) -> None:
        require("vllm", what="the vllm backend", extra="vllm")
        from vllm import LLM

        kwargs: dict[str, Any] = {
            "tensor_parallel_size": tensor_parallel_size,
            "gpu_memory_utilization": gpu_memory_utilization,
        }
        if max_model_len:
            kwargs["max_model_len"] = max_model_len
        self.llm = LLM(model=resolve_model(model), **kwargs)

    @staticmethod
    def _params(sampling: SamplingParams) -> Any:
        from vllm import SamplingParams as VSampling

        return VSampling(
            max_tokens=sampling.max_new_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            seed=sampling.seed,
            stop=list(sampling.stop) or None,
            include_stop_str_in_output=True,
        )

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        started = time.perf_counter()
        outputs = self.llm.chat(
            [[m.to_dict() for m in r.messages] for r in requests],
            [self._params(r.sampling) for r in requests],
            use_tqdm=False,
        )
        latency = time.perf_counter() - started
        out = []
        for result in outputs:
            first = result.outputs[0]
            finish = "length" if first.finish_reason == "length" else "stop"
            out.append(
                Completion(
                    text=first.text,
                    finish_reason=finish,
                    prompt_tokens=len(result.prompt_token_ids or []),
                    completion_tokens=len(first.token_ids),
                    latency_s=latency,
                )
            )
        return out
