"""rmr1: reasoning reward models (RM-R1), to judge, evaluate, train and serve LLM judges.

The public API. Heavy parts (backends, benchmarks, training) load on first use, so ``import rmr1`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

from rmr1.errors import InputError, Rmr1Error
from rmr1.types import CandidateSet, Completion, Judgment, Message, PreferencePair, Verdict
from rmr1.verdicts import parse_trace, parse_verdict, rm_r1_reward, strict_reward

__version__ = "0.1.0"

_LAZY = {
    "Judge": "rmr1.judge",
    "JudgeConfig": "rmr1.judge",
    "make_backend": "rmr1.backends",
    "get_template": "rmr1.prompts",
    "load_benchmark": "rmr1.benchmarks",
    "evaluate": "rmr1.evaluation",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rmr1' has no attribute {name!r}")


__all__ = [
    "CandidateSet",
    "Completion",
    "InputError",
    "Judge",
    "JudgeConfig",
    "Judgment",
    "Message",
    "PreferencePair",
    "Rmr1Error",
    "Verdict",
    "__version__",
    "evaluate",
    "get_template",
    "load_benchmark",
    "make_backend",
    "parse_trace",
    "parse_verdict",
    "rm_r1_reward",
    "strict_reward",
]
