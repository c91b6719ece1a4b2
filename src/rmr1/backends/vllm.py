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
from rmr1.probability import TokenLogprob, p_a_from_tokens, p_a_from_top
from rmr1.types import Completion, GenerationRequest, SamplingParams

TOP_LOGPROBS = 20  # alternatives kept per token: the other verdict letter is almost always among them


class VLLMBackend:
    supports_logprobs = True  # top-k logprobs with the generation; forced reads continue the message

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
            logprobs=TOP_LOGPROBS if sampling.logprobs else None,
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
                    p_a=p_a_from_tokens(_tokens(first)) if first.logprobs else None,
                )
            )
        return out

    def read_verdicts(self, reads: Sequence[Any]) -> list[float | None]:
        """P(A) after each prefix: the assistant message is continued by one token, with its top logprobs."""
        from vllm import SamplingParams as VSampling

        if not reads:
            return []
        conversations = [
            [m.to_dict() for m in r.request.messages] + [{"role": "assistant", "content": r.prefix}]
            for r in reads
        ]
        outputs = self.llm.chat(
            conversations,
            VSampling(max_tokens=1, temperature=0.0, logprobs=TOP_LOGPROBS),
            use_tqdm=False,
            add_generation_prompt=False,
            continue_final_message=True,
        )
        values: list[float | None] = []
        for result in outputs:
            tokens = _tokens(result.outputs[0])
            values.append(p_a_from_top(tokens[0][2]) if tokens else None)
        return values


def _tokens(output: Any) -> list[TokenLogprob]:
    """vLLM's per-position {token id: Logprob} dicts as (token text, logprob, {alternative text: logprob})."""
    out: list[TokenLogprob] = []
    for token_id, position in zip(output.token_ids, output.logprobs or [], strict=False):
        top = {lp.decoded_token: lp.logprob for lp in position.values() if lp.decoded_token is not None}
        chosen = position.get(token_id)
        text = chosen.decoded_token if chosen is not None and chosen.decoded_token is not None else ""
        out.append((text, chosen.logprob if chosen is not None else 0.0, top))
    return out
