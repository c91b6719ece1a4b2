"""OpenVINO GenAI backend: the fast CPU engine for judging. Imported lazily; without openvino-genai installed,
building it names the extra (``pip install 'rmr1[openvino]'``).

One ``ContinuousBatchingPipeline`` holds the model; every call hands it all its requests at once (the engine
schedules them in continuous batches under a KV-cache budget) with prefix caching on, so the judge system
prompt every request repeats, and the question an item's comparisons share, are computed once. Requests are
handed over sorted by their token ids, which puts requests with a shared prefix next to each other.

Prompts are rendered with the model's own chat template (the generation prompt added) and tokenized without
adding special tokens again, as the transformers backend does, and sent as token ids: the prompt counted for
the window is exactly the prompt generated from. The window rule of ``rmr1.backends.window`` applies (over-long
prompts come back ``too_long`` unsent). Stops are exact: the engine stops on the stop strings (none for
``thinking`` requests, whose drafted verdicts must not end them) and the text is then cut right after the first
stop outside a thought with the same rule as every backend (``verdicts.stop_end``). Greedy unless the sampling
params say otherwise; a seeded sampling request is reproducible (the engine's per-request ``rng_seed``).

Weights: see ``openvino_weights`` (the embedded GGUF widened to fp16 by default, or as shipped). The engine and
weight format are reported as ``engine`` and ``weight_format`` so a run is never resumed on another engine.
Log-probabilities: not offered (the engine returns sequence scores, not per-position alternatives).
Every generate runs under the stall watchdog (``rmr1.backends.watchdog``): a call that stops using CPU is retried
once on a freshly built pipeline, then fails with ``EngineStalledError`` (docs/design/engine-stalls.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rmr1.backends.openvino_weights import locate
from rmr1.backends.watchdog import DEFAULT_STALL_S, call_watched
from rmr1.backends.window import fit_budget, too_long
from rmr1.errors import EngineStalledError, ModelLoadError, require
from rmr1.types import Completion, GenerationRequest, SamplingParams
from rmr1.verdicts import stop_end

_THINK = "<think>"
_log = logging.getLogger("rmr1.backends.openvino")


@dataclass(frozen=True)
class _Sent:
    index: int
    ids: list[int]
    budget: int
    sampling: SamplingParams
    think_opened: bool


def engine_properties(threads: int, device: str = "CPU") -> dict[str, Any]:
    """The CPU plugin's properties for ``threads``. On a CPU with AMX tiles, OpenVINO 2026.4's default bf16
    path dies with SIGFPE while compiling the model on one thread (measured on an Intel Xeon: fp16 weights,
    every time; upstream openvinotoolkit/openvino#33300, open), which no ``except`` can catch; f32 runs there
    (docs/design/openvino-one-thread-amx.md). Two threads and more keep the default."""
    from rmr1.backends.cpu_dtype import cpu_has_amx

    properties: dict[str, Any] = {"INFERENCE_NUM_THREADS": threads}
    if threads == 1 and device.upper().startswith("CPU") and cpu_has_amx():
        properties["INFERENCE_PRECISION_HINT"] = "f32"
    return properties


class OpenVINOBackend:
    """Local generation with OpenVINO GenAI on the CPU. ``threads`` is chosen by ``rmr1.threads`` when None;
    ``cache_gb`` is the KV-cache budget the engine schedules within."""

    engine = "openvino"
    logprobs = False  # no per-position log-probabilities (see the module doc)
    preferred_batch_size = 1024  # the engine schedules a run's requests itself: hand it many at once

    def __init__(
        self,
        model: str | None = None,
        *,
        weight_format: str = "f16",
        threads: int | None = None,
        prefix_caching: bool = True,
        cache_gb: float = 1.0,
        context_length: int | None = None,
        device: str = "CPU",
        stall_seconds: float = DEFAULT_STALL_S,
        **_: object,
    ) -> None:
        require("openvino_genai", what="the openvino backend", extra="openvino")
        import openvino_genai as og

        from rmr1.threads import apply_threads

        self._og = og
        self.weights = locate(model, weight_format)
        self.model_name = self.weights.source
        self.weight_format = self.weights.weight_format
        self.prefix_caching = prefix_caching
        self.threads = apply_threads(threads, engine="openvino").threads
        self.stall_seconds = stall_seconds
        self._device, self._cache_gb = device, cache_gb
        self._open_engine()
        self._eos = self.tokenizer.get_eos_token_id()
        # One generate at a time: a server's threads share this pipeline, and the engine batches within a call.
        self._lock = threading.Lock()
        # An explicit window may only shrink the model's: past it the engine's tokenizer stops counting.
        own = self.weights.context_length
        self.context_length: int | None = (
            min(context_length, own) if context_length and own else (context_length or own)
        )

    def _open_engine(self) -> None:
        """Build the pipeline (at start, and again after a stall) and take its tokenizer."""
        self.pipe = self._build_pipeline()
        self.tokenizer = self.pipe.get_tokenizer()

    def _build_pipeline(self) -> Any:
        scheduler = self._og.SchedulerConfig()
        scheduler.enable_prefix_caching = self.prefix_caching
        scheduler.cache_size = max(1, round(self._cache_gb))  # whole GB: the engine's unit
        try:
            return self._og.ContinuousBatchingPipeline(
                str(self.weights.path), scheduler, self._device, engine_properties(self.threads, self._device)
            )
        except RuntimeError as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ModelLoadError(f"OpenVINO cannot load {self.weights.path}: {first}") from None

    def render(self, request: GenerationRequest) -> str:
        messages = [m.to_dict() for m in request.messages]
        return str(self.tokenizer.apply_chat_template(messages, add_generation_prompt=True))

    def prompt_ids(self, request: GenerationRequest) -> tuple[list[int], bool]:
        """Token ids of the rendered prompt, and whether it ends inside an opened thought."""
        text = self.render(request)
        encoded = self.tokenizer.encode(text, add_special_tokens=False)
        ids = [int(t) for t in encoded.input_ids.data[0]]
        return ids, text.rstrip().lower().endswith(_THINK)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        results: list[Completion | None] = [None] * len(requests)
        sent: list[_Sent] = []
        for i, request in enumerate(requests):
            ids, opened = self.prompt_ids(request)
            budget = fit_budget(len(ids), request.sampling.max_new_tokens, self.context_length)
            if budget is None:
                results[i] = too_long(len(ids), self.context_length, self._counted(len(ids)))
                continue
            sent.append(_Sent(i, ids, budget, request.sampling, opened))
        if sent:
            # Requests that share a prefix (the system prompt, an item's question and first response) go to
            # the engine side by side, so its prefix cache still holds the shared blocks when the next one
            # comes: sorting the token ids puts every shared prefix in one run.
            sent.sort(key=lambda item: item.ids)
            for item, completion in zip(sent, self._run(sent), strict=True):
                results[item.index] = completion
        return [r for r in results if r is not None]

    def _counted(self, tokens: int) -> str:
        # The engine's tokenizer truncates at the model's window whatever it is asked: a count that reaches
        # it is a lower bound.
        own = self.weights.context_length
        return (
            f"at least {tokens} tokens: counting stops at the model's window" if own and tokens >= own else ""
        )

    def _config(self, item: _Sent) -> Any:
        config = self._og.GenerationConfig()
        config.max_new_tokens = item.budget
        sampling = item.sampling
        if sampling.temperature > 0:
            config.do_sample = True
            config.temperature = sampling.temperature
            config.top_p = sampling.top_p
            if sampling.seed is not None:
                config.rng_seed = sampling.seed
        else:
            config.do_sample = False
        if sampling.stop and not sampling.thinking:
            config.stop_strings = set(sampling.stop)
            config.include_stop_str_in_output = True
        return config

    def _run(self, sent: list[_Sent]) -> list[Completion]:
        import numpy as np
        import openvino as ov

        prompts = [ov.Tensor(np.array([item.ids], dtype=np.int64)) for item in sent]
        configs = [self._config(item) for item in sent]
        with self._lock:
            started = time.perf_counter()
            outputs = self._generate_watched(prompts, configs)
            latency = time.perf_counter() - started
        return [
            self._finish(item, [int(t) for t in out.m_generation_ids[0]], latency)
            for item, out in zip(sent, outputs, strict=True)
        ]

    def _generate_watched(self, prompts: list[Any], configs: list[Any]) -> Any:
        """The engine's generate under the stall watchdog (``rmr1.backends.watchdog``). A stalled call is left
        to its thread with the pipeline it holds; the batch is retried once on a freshly built pipeline, and a
        second stall is an ``EngineStalledError``."""
        what = f"OpenVINO generate ({len(prompts)} request{'' if len(prompts) == 1 else 's'})"

        def call() -> Any:
            return self.pipe.generate(prompts, configs)

        try:
            return call_watched(call, stall_s=self.stall_seconds, what=what)
        except EngineStalledError as exc:
            _log.warning("warning: %s; retrying the batch once on a freshly built engine", exc)
        self._open_engine()
        return call_watched(call, stall_s=self.stall_seconds, what=what)

    def _finish(self, item: _Sent, new: list[int], latency: float) -> Completion:
        ended = bool(new) and new[-1] == self._eos
        text = str(self.tokenizer.decode(new[:-1] if ended else new, skip_special_tokens=True))
        finish = "stop" if ended or len(new) < item.budget else "length"
        cut = stop_end(text, item.sampling.stop, think_opened=item.think_opened)
        if cut is not None:
            text, finish = text[:cut], "stop"
        return Completion(
            text=text,
            finish_reason=finish,
            prompt_tokens=len(item.ids),
            completion_tokens=len(new),
            latency_s=latency,
            think_opened=item.think_opened,
        )

    def close(self) -> None:
        self.pipe = None
