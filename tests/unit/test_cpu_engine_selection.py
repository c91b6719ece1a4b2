"""Engines as result-changing settings (run.json), the fp16 GGUF cache, and the CPU engine selection hook."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import rmr1
from rmr1.backends.mock import MockBackend
from rmr1.backends.openvino_weights import cached_f16, gguf_window, locate
from rmr1.backends.select import default_cpu_backend, fast_engine_wanted
from rmr1.errors import ConfigError
from rmr1.evaluation.run import EvalResult
from rmr1.evaluation.settings import RunSettings, check_resumable, engine_of
from rmr1.judge import Judge


class EngineMock(MockBackend):
    """A mock that says which engine and weights it stands for, as local backends do."""

    def __init__(self, engine: str, weight_format: str) -> None:
        super().__init__("always-a")
        self.engine, self.weight_format = engine, weight_format


def write_pairs(path: Path) -> Path:
    rows = [{"id": f"q{i}", "prompt": f"{i}+1?", "chosen": f"{i + 1}", "rejected": "0"} for i in range(3)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def evaluate(out: Path, data: Path, backend: MockBackend, limit: int | None = None) -> EvalResult:
    return rmr1.evaluate("preference", out, data=str(data), judge=Judge(backend), limit=limit, report=False)


def test_run_json_records_the_engine_and_a_resume_on_another_engine_or_format_is_refused(tmp_path: Path):
    data, out = write_pairs(tmp_path / "pairs.jsonl"), tmp_path / "run"
    evaluate(out, data, EngineMock("transformers", "bfloat16"), limit=2)
    recorded = json.loads((out / "run.json").read_text())
    assert (recorded["engine"], recorded["weight_format"]) == ("transformers", "bfloat16")
    for engine, weights, why in [
        ("openvino", "bfloat16", "engine: 'transformers' -> 'openvino'"),
        ("transformers", "float32", "weight format: 'bfloat16' -> 'float32'"),
    ]:
        with pytest.raises(ConfigError) as err:
            evaluate(out, data, EngineMock(engine, weights))
        assert why in str(err.value) and "\n" not in str(err.value)
    assert evaluate(out, data, EngineMock("transformers", "bfloat16")).judged == 1  # same engine: resumes


def test_older_run_json_without_engine_loads_and_resumes() -> None:
    base = {
        "benchmark": "preference", "data": "x", "model": "m", "backend": "hf", "template": "cor",
        "template_sha": "s", "protocol": "single", "samples": 1, "seed": 0, "temperature": 0.0, "top_p": 1.0,
        "parse_mode": "strict", "max_new_tokens": 8, "shard": None, "limit": None, "unparsed_score": 0.0,
        "rmr1_version": "0.1.0",
    }  # fmt: skip
    old = RunSettings.from_dict(base, "run.json")
    assert (old.engine, old.weight_format) == (None, None)
    # A run that did not record its engine cannot be told apart, so it is not refused.
    check_resumable(old, replace(old, engine="openvino", weight_format="f16"), "run.json")


def test_engine_of_looks_through_a_cache_wrapper() -> None:
    class Wrapper:
        inner = EngineMock("openvino", "f16")

    assert engine_of(Wrapper()) == ("openvino", "f16")
    assert engine_of(MockBackend()) == (None, None)  # mock, replay, remote servers do not say


def tiny_gguf(path: Path, window: int = 64) -> Path:
    """A GGUF holding one Q8_0 matrix and one f32 vector, with the metadata the engine reads."""
    from gguf import GGMLQuantizationType, GGUFWriter
    from gguf.quants import quantize

    writer = GGUFWriter(str(path), "llama")
    writer.add_context_length(window)
    writer.add_string("tokenizer.chat_template", "{{ messages }}")
    writer.add_file_type(7)  # Q8_0
    matrix = np.linspace(-1, 1, 2 * 64, dtype=np.float32).reshape(2, 64)
    packed = quantize(matrix, GGMLQuantizationType.Q8_0)
    writer.add_tensor("blk.0.w", packed, raw_shape=packed.shape, raw_dtype=GGMLQuantizationType.Q8_0)
    writer.add_tensor("blk.0.norm", np.ones(64, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_f16_copy_is_dequantized_once_cached_and_keeps_the_metadata(tmp_path, monkeypatch):
    from gguf import GGMLQuantizationType, GGUFReader

    monkeypatch.setenv("RMR1_HOME", str(tmp_path / "home"))
    source = tiny_gguf(tmp_path / "tiny.Q8_0.gguf")
    first = cached_f16(source)
    reader = GGUFReader(str(first))
    kinds = {t.name: t.tensor_type for t in reader.tensors}
    assert kinds == {"blk.0.w": GGMLQuantizationType.F16, "blk.0.norm": GGMLQuantizationType.F32}
    widened = next(t for t in reader.tensors if t.name == "blk.0.w").data
    expected = np.linspace(-1, 1, 128, dtype=np.float32).reshape(2, 64)
    assert np.abs(widened.astype(np.float32) - expected).max() < 0.01  # Q8_0's error, nothing more
    assert reader.fields["tokenizer.chat_template"].contents() == "{{ messages }}"
    assert gguf_window(first) == 64
    stamp = os.stat(first).st_mtime_ns
    assert cached_f16(source) == first and os.stat(first).st_mtime_ns == stamp  # not converted again
    assert sorted(p.name for p in first.parent.iterdir() if not p.name.endswith(".lock")) == [first.name]


def test_a_gguf_window_is_remembered_until_the_file_changes(tmp_path, monkeypatch):
    import rmr1.backends.gguf_meta as gguf_meta

    path = tiny_gguf(tmp_path / "w.gguf", window=64)
    assert gguf_window(path) == 64
    opened = []
    real = gguf_meta.read_metadata
    monkeypatch.setattr(gguf_meta, "read_metadata", lambda *a, **k: opened.append(a) or real(*a, **k))
    assert gguf_window(path) == 64 and not opened  # unchanged file: not parsed again
    tiny_gguf(path, window=96)
    os.utime(path, ns=(1, 1))  # a rewrite within the clock's resolution still changes the key
    assert gguf_window(path) == 96 and len(opened) == 1


def test_locate_native_uses_the_file_as_shipped_and_rejects_unknown_formats(tmp_path):
    source = tiny_gguf(tmp_path / "tiny.gguf")
    weights = locate(str(source), "native")
    assert (weights.path, weights.weight_format, weights.context_length) == (source, "native", 64)
    with pytest.raises(ConfigError, match="unknown weight format 'int3'"):
        locate(str(source), "int3")


@pytest.mark.parametrize(
    ("prefer", "ready", "expected"),
    [
        (False, True, "hf"),  # off: transformers even where the fast engine would work
        (True, True, "openvino"),
        (True, False, "hf"),  # not installed, or the model does not convert: the fallback
    ],
)
def test_default_cpu_backend(prefer: bool, ready: bool, expected: str) -> None:
    assert default_cpu_backend("m", prefer_fast=prefer, ready=lambda model: ready) == expected


def test_the_fast_engine_is_the_default_unless_the_environment_says_no(monkeypatch) -> None:
    monkeypatch.delenv("RMR1_FAST_CPU_ENGINE", raising=False)
    assert fast_engine_wanted()
    assert default_cpu_backend(ready=lambda model: True) == "openvino"
    for no in ("0", "false", "off", "No"):
        monkeypatch.setenv("RMR1_FAST_CPU_ENGINE", no)
        assert default_cpu_backend(ready=lambda model: True) == "hf"


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"backend": "hf"}, "hf"),  # named: never second-guessed
        ({"backend": "vllm", "gpu": True}, "vllm"),
        ({}, "openvino"),  # a CPU with the fast engine ready
        ({"cpu": "hf"}, "hf"),  # the fast engine missing, or the model not convertible
        ({"base_url": ["http://127.0.0.1:1/v1"]}, "openai"),  # a server is the engine
        ({"verdict": "logprob"}, "hf"),  # openvino gives no log-probabilities
        ({"verdict": "forced"}, "hf"),
        ({"gpu": True}, "hf"),
        ({"previous": "hf"}, "hf"),  # a resumed run keeps its engine
        ({"previous": "openvino", "gpu": True}, "openvino"),
    ],
)
def test_auto_resolution_rules(settings: dict, expected: str) -> None:
    from rmr1.backends.select import resolve_backend

    gpu, cpu = settings.pop("gpu", False), settings.pop("cpu", "openvino")
    backend = settings.pop("backend", "auto")
    chosen = resolve_backend(backend, gpu=lambda: gpu, cpu_choice=lambda model: cpu, **settings)
    assert chosen == expected


def test_judge_options_resolve_auto_once_and_keep_named_backends(monkeypatch) -> None:
    from rmr1.backends import select
    from rmr1.judge_options import JudgeOptions

    monkeypatch.setattr(select, "_has_gpu", lambda: False)
    monkeypatch.setattr(select, "default_cpu_backend", lambda model: "openvino")
    assert JudgeOptions().backend == "auto"
    resolved = JudgeOptions(model="m").resolved()
    assert (resolved.backend, resolved.model) == ("openvino", "m")
    assert resolved.resolved() is resolved
    assert JudgeOptions(backend="mock").resolved().backend == "mock"
    assert JudgeOptions().resolved(previous="hf").backend == "hf"
