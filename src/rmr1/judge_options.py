"""The settings that build a judge, declared once: ``JudgeOptions`` is filled by the CLI flags, by
``rmr1.evaluate(**settings)`` and by configs, and builds the backend, template and ``Judge``.

``HELP`` documents each field once; the CLI turns the fields into flags with these texts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import Any

from rmr1.backends import BACKENDS, Backend, make_backend, preferred_batch_size
from rmr1.backends.select import AUTO, resolve_backend
from rmr1.errors import ConfigError
from rmr1.judge import Judge, JudgeConfig
from rmr1.models import DEFAULT_MODEL
from rmr1.pointwise import POINTWISE_DEFAULT, check_template
from rmr1.prompts import JudgeTemplate, get_template

DEFAULT_BATCH_SIZE = 8


@dataclass
class JudgeOptions:
    model: str | None = None
    backend: str = AUTO  # resolved by rmr1.backends.select when the judge is built
    template: str | None = None
    template_file: str | None = None
    protocol: str | None = None  # None: unset, so eval can pick the benchmark's own protocol
    samples: int = 1
    seed: int = 0
    max_new_tokens: int = 1024
    temperature: float | None = None
    parse_mode: str = "strict"
    batch_size: int | None = None  # None: the backend's preferred_batch_size, else 8
    base_url: list[str] | None = None  # a str is accepted too (comma-separated URLs)
    api_key: str | None = None
    concurrency: int = 8
    timeout: float = 600.0
    dtype: str = "auto"
    threads: int | None = None
    record_latency: bool = True
    cache: str | None = None
    verdict: str = "generate"
    score_forced: bool = False
    mode: str = "pairwise"
    tensor_parallel_size: int = 1
    max_model_len: int | None = None
    gpu_memory_utilization: float = 0.9
    prefix_caching: bool = True

    def __post_init__(self) -> None:
        # Pointwise mode rates with the pointwise template unless the user names another.
        if self.mode == "pointwise" and self.template is None and self.template_file is None:
            self.template = POINTWISE_DEFAULT

    def judge_config(self) -> JudgeConfig:
        return JudgeConfig(
            protocol=self.protocol or "single",
            samples=self.samples,
            seed=self.seed,
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            parse_mode=self.parse_mode,
            batch_size=self.resolved_batch_size(),
            record_latency=self.record_latency,
            verdict=self.verdict,
            score_forced=self.score_forced,
            mode=self.mode,
        )

    def resolved_batch_size(self) -> int:
        """--batch-size, or the backend's preferred window (vllm: large, so its own batching works), or 8."""
        if self.batch_size is not None:
            return self.batch_size
        return preferred_batch_size(self.backend) or DEFAULT_BATCH_SIZE

    def template_obj(self) -> JudgeTemplate:
        template = get_template(self.template, self.template_file)
        check_template(self.mode, template)
        return template

    def template_name(self) -> str:
        return self.template_file or self.template or "cor"

    def model_name(self) -> str:
        return self.model or DEFAULT_MODEL

    def resolved(self, previous: str | None = None) -> JudgeOptions:
        """These options with ``backend="auto"`` replaced by the backend it picks here (rmr1.backends.select);
        ``previous``: the backend a resumed run recorded, which it keeps."""
        if self.backend != AUTO:
            return self
        name = resolve_backend(
            AUTO, model=self.model, verdict=self.verdict, base_url=self.base_url, previous=previous
        )
        return dataclasses.replace(self, backend=name)

    def make_backend(self) -> Backend:
        if self.backend == AUTO:
            return self.resolved().make_backend()
        if self.backend not in BACKENDS:
            raise ConfigError(f"unknown backend {self.backend!r}; choose one of {', '.join(BACKENDS)}")
        extra: dict[str, Any] = {}
        if self.backend == "hf":
            extra = {"batch_size": self.resolved_batch_size(), "dtype": self.dtype, "threads": self.threads}
        elif self.backend == "openvino":
            extra = {"threads": self.threads}
        elif self.backend == "openai":
            extra = {
                "base_url": self.base_url,
                "api_key": self.api_key,
                "concurrency": self.concurrency,
                "timeout": self.timeout,
            }
        elif self.backend == "vllm":
            extra = {
                "tensor_parallel_size": self.tensor_parallel_size,
                "max_model_len": self.max_model_len,
                "gpu_memory_utilization": self.gpu_memory_utilization,
                "prefix_caching": self.prefix_caching,
                "seed": self.seed,
            }
        return make_backend(self.backend, self.model, **extra)

    def build_judge(self) -> Judge:
        if self.backend == AUTO:
            return self.resolved().build_judge()
        template = self.template_obj()  # validate before loading a model
        config = self.judge_config()
        backend = self.make_backend()
        if self.cache:
            from rmr1.cache import CachedBackend
            from rmr1.evaluation.settings import template_sha

            backend = CachedBackend(
                backend,
                self.cache,
                model_id=f"{self.backend}:{self.model_name()}",
                namespace=template_sha(template.system, template.user),
            )
        return Judge(backend, template, config)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("api_key", None)  # never written to run files
        return data


HELP = {
    "model": "Model: hub id, local checkpoint, or empty for the embedded SmolLM2-135M-Instruct "
    "(openai: the served model name; replay: a judgments.jsonl).",
    "backend": f"Inference backend: auto, {', '.join(BACKENDS)}. auto: openai with --base-url, else on a CPU the "
    "fast engine (openvino) when installed and the model allows, else hf.",
    "template": "Built-in judge template: cor, reasoning, cor-notype, plain.",
    "template_file": "A YAML template file with 'user' (and optional 'system') texts.",
    "protocol": "single: one seeded order per pair; both: judge AB and BA "
    "(default: single; both for eval judgebench, its official protocol).",
    "samples": "Samples per order (more than one means majority voting).",
    "seed": "Seed for the pair orders and sampling.",
    "max_new_tokens": "Generation budget per judge call.",
    "temperature": "Sampling temperature (default: 0 for one sample, 1.0 when voting).",
    "parse_mode": "Verdict parsing: strict (final answer tag) or paper (released RM-R1 rule).",
    "batch_size": "Requests per backend batch (default: 8; vllm: 1024, so its scheduler sees the run's work).",
    "base_url": "openai backend: the server's base URL, e.g. http://127.0.0.1:8080/v1; repeat the flag or "
    "separate URLs with commas to spread requests over several replicas of one model.",
    "api_key": "openai backend: API key (default: $OPENAI_API_KEY).",
    "concurrency": "openai backend: requests in flight at once (per replica).",
    "timeout": "openai backend: seconds per request before it is retried.",
    "dtype": "hf backend: auto, float32, bfloat16 or float16.",
    "threads": "CPU threads for the local engine (default: $RMR1_THREADS, else the cores left free).",
    "record_latency": "Record each call's latency_s (turn off for byte-identical reruns).",
    "cache": "SQLite judgment cache: a request answered before (same model, template, prompt and "
    "sampling) costs no model call.",
    "verdict": "generate: the verdict as written; logprob: also read P(A) at the verdict (p_a); forced: "
    "also force a verdict after a trace that has none (needs a backend with log-probabilities).",
    "score_forced": "Count forced verdicts in the benchmark scores (default: they score as unparsed).",
    "mode": "pairwise: compare two responses; pointwise: rate each response 1-10 alone (template "
    "pointwise or pointwise-reasoning) and decide pairs by the ratings.",
    "tensor_parallel_size": "vllm backend: GPUs one engine spans (tensor parallelism).",
    "max_model_len": "vllm backend: context window in tokens (default: the model's); longer prompts are "
    "not sent and logged as too_long.",
    "gpu_memory_utilization": "vllm backend: share of each GPU's memory the engine may take.",
    "prefix_caching": "vllm backend: reuse the KV cache of shared prompt prefixes (the judge's system "
    "prompt, a question compared several times).",
}


__all__ = ["HELP", "JudgeOptions"]
