"""vLLM backend for GPU judging. Imported lazily: without vLLM installed, building it names the extra.

The whole request list goes to one ``LLM.chat`` call (vLLM schedules and batches internally); greedy unless the
sampling params say otherwise; stop strings are kept in the output so the verdict tag survives. vLLM's stop
strings cannot tell a thought from the answer, so requests marked ``thinking`` are sent without any.

The window is vLLM's ``max_model_len``. Each prompt is rendered with the model's chat template and counted
first: one that does not fit comes back ``too_long`` unsent (vLLM would refuse the whole call for it), and a
budget that does not fit is clamped (``rmr1.backends.window``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

from rmr1.backends.window import fit_budget, too_long
from rmr1.errors import require
from rmr1.models import resolve_model
from rmr1.probability import TokenLogprob, p_a_from_tokens, p_a_from_top
from rmr1.types import Completion, GenerationRequest, SamplingParams

TOP_LOGPROBS = 20  # alternatives kept per token: the other verdict letter is almost always among them
_THINK = "<think>"


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

    @property
    def context_length(self) -> int | None:
        """vLLM's ``max_model_len``: what the engine was started with, never more than the model has."""
        length = getattr(getattr(self.llm.llm_engine, "model_config", None), "max_model_len", None)
        return length if isinstance(length, int) and length > 0 else None

    def measure(self, request: GenerationRequest) -> tuple[int, bool]:
        """Prompt tokens under the model's chat template, and whether the rendered prompt opens a thought."""
        tokenizer = self.llm.get_tokenizer()
        messages = [m.to_dict() for m in request.messages]
        text = str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
        # Special tokens are added when counting: where the template already holds the BOS this counts one
        # token too many, the safe side of the window.
        ids = tokenizer(text)["input_ids"]
        return len(ids), text.rstrip().lower().endswith(_THINK)

    @staticmethod
    def _params(sampling: SamplingParams) -> Any:
        from vllm import SamplingParams as VSampling

        return VSampling(
            max_tokens=sampling.max_new_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            seed=sampling.seed,
            stop=None if sampling.thinking else list(sampling.stop) or None,
            include_stop_str_in_output=True,
            logprobs=TOP_LOGPROBS if sampling.logprobs else None,
        )

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        window = self.context_length
        results: list[Completion | None] = [None] * len(requests)
        sent: list[tuple[int, GenerationRequest, bool]] = []
        for i, request in enumerate(requests):
            prompt_tokens, opened = self.measure(request)
            budget = fit_budget(prompt_tokens, request.sampling.max_new_tokens, window)
            if budget is None:
                results[i] = too_long(prompt_tokens, window)
                continue
            sampling = dataclasses.replace(request.sampling, max_new_tokens=budget)
            sent.append((i, dataclasses.replace(request, sampling=sampling), opened))
        if sent:
            for (i, _, _), completion in zip(sent, self._chat(sent), strict=True):
                results[i] = completion
        return [r for r in results if r is not None]

    def _chat(self, sent: list[tuple[int, GenerationRequest, bool]]) -> list[Completion]:
        started = time.perf_counter()
        try:
            outputs = self.llm.chat(
                [[m.to_dict() for m in r.messages] for _, r, _ in sent],
                [self._params(r.sampling) for _, r, _ in sent],
                use_tqdm=False,
            )
        except ValueError as exc:  # vLLM refuses a whole call for one prompt it will not take
            if len(sent) > 1:
                return [c for item in sent for c in self._chat([item])]
            return [self._refused(sent[0][1], str(exc))]
        latency = time.perf_counter() - started
        out = []
        for (_, _, opened), result in zip(sent, outputs, strict=True):
            first = result.outputs[0]
            finish = "length" if first.finish_reason == "length" else "stop"
            out.append(
                Completion(
                    text=first.text,
                    finish_reason=finish,
                    prompt_tokens=len(result.prompt_token_ids or []),
                    completion_tokens=len(first.token_ids),
                    latency_s=latency,
                    p_a=p_a_from_tokens(_tokens(first)) if getattr(first, "logprobs", None) else None,
                    think_opened=opened,
                )
            )
        return out

    def _refused(self, request: GenerationRequest, why: str) -> Completion:
        first = " ".join(why.split())[:200]
        if "length" in why.lower():  # "prompt (length N) is longer than the maximum model length of M"
            return too_long(self.measure(request)[0], self.context_length, first)
        return Completion(text="", finish_reason="error", error=f"vLLM refused the request: {first}")

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
