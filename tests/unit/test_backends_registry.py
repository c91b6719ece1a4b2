"""Backends are addressed by name and imported lazily; a missing optional part names its extra."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from rmr1.backends import BACKENDS, Backend, make_backend
from rmr1.backends.mock import MockBackend
from rmr1.errors import ConfigError, MissingDependencyError


def test_import_rmr1_stays_light() -> None:
    # the heavy parts load on first use, not at `import rmr1`
    code = "import sys, rmr1; print(any(m in sys.modules for m in ('torch', 'transformers', 'datasets')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_unknown_backend_names_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown backend 'tpu'.*hf, openai, vllm, replay, mock"):
        make_backend("tpu")


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
def test_vllm_without_the_package_names_the_extra() -> None:
    with pytest.raises(MissingDependencyError, match=r"pip install 'rmr1\[vllm\]'"):
        make_backend("vllm", "some/model")


def test_backends_satisfy_the_protocol() -> None:
    assert "mock" in BACKENDS and isinstance(make_backend("mock", "always-b"), Backend)
    assert isinstance(MockBackend(script=["x"]), Backend)
