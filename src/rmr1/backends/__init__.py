"""Backends turn chat requests into completions. One required method: ``generate``.

Backends are addressed by name and imported lazily, so ``import rmr1`` stays light and a missing optional
dependency names the extra to install:

    backend = make_backend("hf", model="path/or/hub-id")
    completions = backend.generate([GenerationRequest(messages=(Message("user", "hi"),))])

Every backend returns exactly one ``Completion`` per request, in request order. A request that failed after
retries comes back with ``finish_reason="error"`` and ``error`` set, never as an exception that loses the batch.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from rmr1.errors import ConfigError
from rmr1.types import Completion, GenerationRequest


@runtime_checkable
class Backend(Protocol):
    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        """Complete each request; one Completion per request, same order."""
        ...


# name -> (module, factory attribute). Factories take (model: str | None, **options).
_REGISTRY: dict[str, tuple[str, str]] = {
    "hf": ("rmr1.backends.hf", "HFBackend"),
    "openai": ("rmr1.backends.openai", "openai_backend"),  # several --base-url values: a replica fleet
    "vllm": ("rmr1.backends.vllm", "VLLMBackend"),
    "replay": ("rmr1.backends.replay", "ReplayBackend"),
    "mock": ("rmr1.backends.mock", "MockBackend"),
    "openvino": ("rmr1.backends.openvino", "OpenVINOBackend"),  # the fast CPU engine (openvino-genai)
}

BACKENDS: tuple[str, ...] = tuple(_REGISTRY)


def make_backend(name: str, model: str | None = None, **options: Any) -> Backend:
    """Build a backend by name; ``options`` go to its constructor."""
    if name not in _REGISTRY:
        raise ConfigError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    module_name, attr = _REGISTRY[name]
    factory = getattr(importlib.import_module(module_name), attr)
    backend: Backend = factory(model, **options)
    return backend


def preferred_batch_size(name: str) -> int | None:
    """The request window a backend asks the judge for (``preferred_batch_size`` on its class), if any.

    Read from the class without building the backend, so the judge's settings are known before a model loads.
    """
    if name not in _REGISTRY:
        return None
    module_name, attr = _REGISTRY[name]
    value = getattr(getattr(importlib.import_module(module_name), attr), "preferred_batch_size", None)
    return int(value) if value else None


def close_backend(backend: Backend) -> None:
    """Release a backend's resources when it has a ``close`` method."""
    close = getattr(backend, "close", None)
    if callable(close):
        close()


__all__ = ["BACKENDS", "Backend", "close_backend", "make_backend", "preferred_batch_size"]
