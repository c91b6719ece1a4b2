"""Which local backend judges by default on a CPU: the hook for making the fast CPU engine the default.

Off by default: until the engine is measured on an idle machine (docs/design/cpu-engine.md), judging stays on
transformers unless asked. Asked (``prefer_fast=True``, or ``RMR1_FAST_CPU_ENGINE=1``), the choice is OpenVINO
GenAI when it is installed and the model converts into a form it loads, else transformers, which also stays
the engine for training and on a GPU.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable, Mapping

from rmr1.errors import Rmr1Error

ENV = "RMR1_FAST_CPU_ENGINE"
_log = logging.getLogger("rmr1.backends.select")


def fast_engine_wanted(env: Mapping[str, str] | None = None) -> bool:
    value = (os.environ if env is None else env).get(ENV, "").strip().lower()
    return value in ("1", "true", "yes", "on")


def _openvino_ready(model: str | None) -> bool:
    """openvino-genai installed and the model convertible (a cached conversion makes this instant)."""
    if importlib.util.find_spec("openvino_genai") is None:
        return False
    from rmr1.backends.openvino_weights import locate

    try:
        locate(model)
    except Rmr1Error as exc:
        _log.warning("openvino cannot take %s (%s): judging with transformers", model or "the model", exc)
        return False
    return True


def default_cpu_backend(
    model: str | None = None,
    *,
    prefer_fast: bool | None = None,
    ready: Callable[[str | None], bool] = _openvino_ready,
) -> str:
    """The backend name to judge ``model`` with on a CPU: ``"openvino"`` when wanted and ready, else ``"hf"``.

    ``prefer_fast`` None reads ``RMR1_FAST_CPU_ENGINE``; ``ready`` is the readiness probe (tests swap it).
    """
    wanted = fast_engine_wanted() if prefer_fast is None else prefer_fast
    return "openvino" if wanted and ready(model) else "hf"


__all__ = ["ENV", "default_cpu_backend", "fast_engine_wanted"]
