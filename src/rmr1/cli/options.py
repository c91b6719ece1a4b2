"""The judge options shared by ``judge``, ``eval`` and ``serve``, declared once.

``@judge_options`` appends the shared options to a command's signature and hands the command one
``JudgeOptions`` object (as ``opts``), so each command lists only its own flags.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Annotated, Any, TypeVar, get_type_hints

import typer

from rmr1.backends import BACKENDS, Backend, make_backend
from rmr1.errors import ConfigError
from rmr1.judge import Judge, JudgeConfig
from rmr1.models import DEFAULT_MODEL
from rmr1.prompts import JudgeTemplate, get_template


@dataclass
class JudgeOptions:
    model: str | None = None
    backend: str = "hf"
    template: str | None = None
    template_file: str | None = None
    protocol: str = "single"
    samples: int = 1
    seed: int = 0
    max_new_tokens: int = 1024
    temperature: float | None = None
    parse_mode: str = "strict"
    batch_size: int = 8
    base_url: str | None = None
    api_key: str | None = None
    concurrency: int = 8
    timeout: float = 600.0
    dtype: str = "auto"
    record_latency: bool = True

    def judge_config(self) -> JudgeConfig:
        return JudgeConfig(
            protocol=self.protocol,
            samples=self.samples,
            seed=self.seed,
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            parse_mode=self.parse_mode,
            batch_size=self.batch_size,
            record_latency=self.record_latency,
        )

    def template_obj(self) -> JudgeTemplate:
        return get_template(self.template, self.template_file)

    def template_name(self) -> str:
        return self.template_file or self.template or "cor"

    def model_name(self) -> str:
        return self.model or DEFAULT_MODEL

    def make_backend(self) -> Backend:
        if self.backend not in BACKENDS:
            raise ConfigError(f"unknown backend {self.backend!r}; choose one of {', '.join(BACKENDS)}")
        extra: dict[str, Any] = {}
        if self.backend == "hf":
            extra = {"batch_size": self.batch_size, "dtype": self.dtype}
        elif self.backend == "openai":
            extra = {
                "base_url": self.base_url,
                "api_key": self.api_key,
                "concurrency": self.concurrency,
                "timeout": self.timeout,
            }
        return make_backend(self.backend, self.model, **extra)

    def build_judge(self) -> Judge:
        template = self.template_obj()  # validate before loading a model
        config = self.judge_config()
        return Judge(self.make_backend(), template, config)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("api_key", None)  # never written to run files
        return data


_HELP = {
    "model": "Model: hub id, local checkpoint, or empty for the embedded SmolLM2-135M-Instruct "
    "(openai: the served model name; replay: a judgments.jsonl).",
    "backend": f"Inference backend: {', '.join(BACKENDS)}.",
    "template": "Built-in judge template: cor, reasoning, cor-notype, plain.",
    "template_file": "A YAML template file with 'user' (and optional 'system') texts.",
    "protocol": "single: one seeded order per pair; both: judge AB and BA.",
    "samples": "Samples per order (more than one means majority voting).",
    "seed": "Seed for the pair orders and sampling.",
    "max_new_tokens": "Generation budget per judge call.",
    "temperature": "Sampling temperature (default: 0 for one sample, 1.0 when voting).",
    "parse_mode": "Verdict parsing: strict (final answer tag) or paper (released RM-R1 rule).",
    "batch_size": "Requests per backend batch.",
    "base_url": "openai backend: the server's base URL, e.g. http://127.0.0.1:8080/v1.",
    "api_key": "openai backend: API key (default: $OPENAI_API_KEY).",
    "concurrency": "openai backend: requests in flight at once.",
    "timeout": "openai backend: seconds per request before it is retried.",
    "dtype": "hf backend: auto, float32, bfloat16 or float16.",
    "record_latency": "Record each call's latency_s (turn off for byte-identical reruns).",
}

_DEFAULTS = JudgeOptions()
_TYPES = get_type_hints(JudgeOptions)
_NAMES = [f.name for f in fields(JudgeOptions)]

F = TypeVar("F", bound=Callable[..., Any])


def _parameter(name: str) -> inspect.Parameter:
    annotation = _TYPES[name]
    flag = "--" + name.replace("_", "-")
    if annotation is bool:
        flag = f"{flag}/--no-{flag[2:]}"
    option = typer.Option(flag, help=_HELP[name], rich_help_panel="Judge options")
    return inspect.Parameter(
        name,
        inspect.Parameter.KEYWORD_ONLY,
        default=getattr(_DEFAULTS, name),
        annotation=Annotated[annotation, option],
    )


def judge_options(fn: F) -> F:
    """Add the shared judge options to a Typer command; the command receives them as ``opts``."""
    signature = inspect.signature(fn)
    # Resolve string annotations (``from __future__ import annotations``) in the command's own module, keeping
    # the Annotated[..., typer.Option(...)] extras; otherwise Typer would see bare strings and drop the options.
    hints = get_type_hints(fn, include_extras=True)
    own = [
        p.replace(annotation=hints.get(p.name, p.annotation))
        for p in signature.parameters.values()
        if p.name != "opts"
    ]
    shared = [_parameter(name) for name in _NAMES]

    @functools.wraps(fn)
    def wrapper(**kwargs: Any) -> Any:
        opts = JudgeOptions(**{name: kwargs.pop(name) for name in _NAMES})
        return fn(opts=opts, **kwargs)

    wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + shared
    )
    wrapper.__annotations__ = {p.name: p.annotation for p in own + shared}
    return wrapper  # type: ignore[return-value]
