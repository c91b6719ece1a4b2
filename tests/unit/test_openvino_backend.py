"""The openvino backend's request/result mapping, against a fake ``openvino_genai`` (no engine, fast).

The fake tokenizer is word-level (one token per space-separated word, id 0 the end of turn); the fake pipeline
answers each prompt from a script and records the prompts and generation configs it was handed.
"""

from __future__ import annotations

import importlib.machinery
import json
import sys
import threading
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from rmr1.backends import make_backend
from rmr1.errors import EngineStalledError, MissingDependencyError, ModelLoadError
from rmr1.types import GenerationRequest, Message, SamplingParams

EOS = 0


class FakeTokenizer:
    def __init__(self) -> None:
        self.vocab: dict[str, int] = {"<eos>": EOS}
        self.words: dict[int, str] = {EOS: "<eos>"}

    def id_of(self, word: str) -> int:
        if word not in self.vocab:
            self.vocab[word] = len(self.vocab)
            self.words[self.vocab[word]] = word
        return self.vocab[word]

    def apply_chat_template(self, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
        turns = " ".join(f"<{m['role']}> {m['content']}" for m in messages)
        return f"{turns} <assistant>" if add_generation_prompt else turns

    def encode(self, text: str, add_special_tokens: bool = True) -> Any:
        assert add_special_tokens is False  # the template already holds every special token
        ids = np.array([[self.id_of(w) for w in text.split()]], dtype=np.int64)
        return types.SimpleNamespace(input_ids=types.SimpleNamespace(data=ids))

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return " ".join(self.words[i] for i in ids if not (skip_special_tokens and i == EOS))

    def get_eos_token_id(self) -> int:
        return EOS


class FakePipeline:
    script: Callable[[list[str], Any], list[str]] = staticmethod(lambda prompt, config: ["ok", "<eos>"])
    last: FakePipeline | None = None

    def __init__(self, path: str, scheduler: Any, device: str, properties: dict[str, Any]) -> None:
        self.path, self.scheduler, self.device, self.properties = path, scheduler, device, properties
        self.tokenizer = FakeTokenizer()
        self.calls: list[list[tuple[list[str], Any]]] = []
        FakePipeline.last = self

    def get_tokenizer(self) -> FakeTokenizer:
        return self.tokenizer

    def generate(self, prompts: list[Any], configs: list[Any]) -> list[Any]:
        assert len(prompts) == len(configs)
        batch = [
            ([self.tokenizer.words[int(i)] for i in p.array[0]], c)
            for p, c in zip(prompts, configs, strict=True)
        ]
        self.calls.append(batch)
        out = []
        for words, config in batch:
            answer = [self.tokenizer.id_of(w) for w in type(self).script(words, config)][
                : config.max_new_tokens
            ]
            out.append(types.SimpleNamespace(m_generation_ids=[answer]))
        return out


class Config:
    """Attribute bag like the engine's GenerationConfig and SchedulerConfig."""

    def __init__(self) -> None:
        self.do_sample = False
        self.stop_strings: set[str] = set()
        self.include_stop_str_in_output = False
        self.rng_seed = 42


@pytest.fixture
def fake_engine(monkeypatch: pytest.MonkeyPatch) -> type[FakePipeline]:
    genai = types.ModuleType("openvino_genai")
    genai.__spec__ = importlib.machinery.ModuleSpec("openvino_genai", None)
    genai.SchedulerConfig = Config  # type: ignore[attr-defined]
    genai.GenerationConfig = Config  # type: ignore[attr-defined]
    genai.ContinuousBatchingPipeline = FakePipeline  # type: ignore[attr-defined]
    runtime = types.ModuleType("openvino")
    runtime.Tensor = lambda array: types.SimpleNamespace(array=array)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "openvino_genai", genai)
    monkeypatch.setitem(sys.modules, "openvino", runtime)
    monkeypatch.setattr(FakePipeline, "script", staticmethod(lambda words, config: ["ok", "<eos>"]))
    return FakePipeline


@pytest.fixture
def ir_folder(tmp_path: Path) -> Path:
    """An IR folder as an exporter writes it: the engine (faked) reads it, its config gives the window."""
    (tmp_path / "openvino_model.xml").write_text("<net/>")
    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 12}))
    return tmp_path


def ask(text: str, **sampling: Any) -> GenerationRequest:
    return GenerationRequest(messages=(Message("user", text),), sampling=SamplingParams(**sampling))


def test_one_completion_per_request_in_order_with_prompt_counted(fake_engine, ir_folder):
    fake_engine.script = staticmethod(lambda words, config: [words[1].upper(), "<eos>"])
    backend = make_backend("openvino", str(ir_folder), threads=1)
    out = backend.generate([ask("first"), ask("second words"), ask("third")])
    assert [c.text for c in out] == ["FIRST", "SECOND", "THIRD"]
    assert [c.prompt_tokens for c in out] == [3, 4, 3]  # "<user> ... <assistant>"
    assert all(c.finish_reason == "stop" and c.completion_tokens == 2 for c in out)
    assert len(fake_engine.last.calls) == 1  # one engine call for the whole list: the engine batches


def test_engine_settings_threads_prefix_cache_and_labels(fake_engine, ir_folder):
    backend = make_backend("openvino", str(ir_folder), threads=3, prefix_caching=False)
    pipe = fake_engine.last
    assert pipe.properties == {"INFERENCE_NUM_THREADS": 3}
    assert pipe.scheduler.enable_prefix_caching is False
    assert pipe.path == str(ir_folder)
    assert (backend.engine, backend.weight_format, backend.context_length) == ("openvino", "ir", 12)
    assert backend.logprobs is False


@pytest.mark.parametrize(
    ("threads", "amx", "expected"),
    [
        (1, True, {"INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": "f32"}),  # bf16 there: SIGFPE
        (2, True, {"INFERENCE_NUM_THREADS": 2}),
        (1, False, {"INFERENCE_NUM_THREADS": 1}),
    ],
)
def test_one_thread_on_an_amx_cpu_runs_in_f32(fake_engine, ir_folder, monkeypatch, threads, amx, expected):
    import rmr1.backends.cpu_dtype as cpu_dtype

    flags = "flags\t: fpu avx512f avx512_bf16" + (" amx_bf16 amx_tile" if amx else "") + "\n"
    monkeypatch.setattr(cpu_dtype, "_proc_cpuinfo", lambda: flags)
    make_backend("openvino", str(ir_folder), threads=threads)
    assert fake_engine.last.properties == expected


def test_over_long_prompt_comes_back_too_long_unsent_and_budget_is_clamped(fake_engine, ir_folder):
    backend = make_backend("openvino", str(ir_folder), threads=1)
    long = ask(" ".join(["w"] * 11))  # 13 tokens with the template: no room in a 12-token window
    fits = ask("a b c d e f g", max_new_tokens=50)  # 9 tokens: room for 3 new ones
    out = backend.generate([long, fits])
    assert out[0].finish_reason == "too_long" and out[0].prompt_tokens == 13 and out[0].error
    (sent,) = fake_engine.last.calls[0]
    assert sent[0][1] == "a" and sent[1].max_new_tokens == 3


def test_explicit_window_only_shrinks_the_models(fake_engine, ir_folder):
    assert make_backend("openvino", str(ir_folder), threads=1, context_length=5).context_length == 5
    assert make_backend("openvino", str(ir_folder), threads=1, context_length=99).context_length == 12


def test_greedy_and_seeded_sampling_configs(fake_engine, ir_folder):
    backend = make_backend("openvino", str(ir_folder), threads=1)
    backend.generate([ask("x"), ask("y", temperature=0.7, top_p=0.9, seed=5), ask("z", temperature=1.0)])
    greedy, seeded, unseeded = (config for _, config in fake_engine.last.calls[0])
    assert greedy.do_sample is False
    assert (seeded.do_sample, seeded.temperature, seeded.top_p, seeded.rng_seed) == (True, 0.7, 0.9, 5)
    assert unseeded.do_sample is True and unseeded.rng_seed == 42  # the engine's own default seed, untouched


def test_stop_string_cut_exactly_and_kept(fake_engine, ir_folder):
    fake_engine.script = staticmethod(lambda words, config: ["<answer>[[A]]</answer>tail", "more"])
    backend = make_backend("openvino", str(ir_folder), threads=1)
    (out,) = backend.generate([ask("q", stop=("</answer>",), max_new_tokens=8)])
    ((_, config),) = fake_engine.last.calls[0]
    assert config.stop_strings == {"</answer>"} and config.include_stop_str_in_output is True
    assert (out.text, out.finish_reason, out.completion_tokens) == ("<answer>[[A]]</answer>", "stop", 2)


def test_budget_spent_is_length_and_eos_at_the_last_token_is_stop(fake_engine, ir_folder):
    backend = make_backend("openvino", str(ir_folder), threads=1)
    fake_engine.script = staticmethod(lambda words, config: ["one", "two", "three"])
    (spent,) = backend.generate([ask("q", max_new_tokens=3)])
    fake_engine.script = staticmethod(lambda words, config: ["one", "two", "<eos>"])
    (ended,) = backend.generate([ask("q", max_new_tokens=3)])
    assert (spent.text, spent.finish_reason) == ("one two three", "length")
    assert (ended.text, ended.finish_reason, ended.completion_tokens) == ("one two", "stop", 3)


def test_thinking_request_gets_no_engine_stops_and_is_cut_after_the_thought(fake_engine, ir_folder):
    fake_engine.script = staticmethod(
        lambda words, config: ["<think>", "<answer>[[B]]</answer>", "</think>", "<answer>[[A]]</answer>", "x"]
    )
    backend = make_backend("openvino", str(ir_folder), threads=1)
    (out,) = backend.generate([ask("q", stop=("</answer>",), thinking=True)])
    ((_, config),) = fake_engine.last.calls[0]
    assert config.stop_strings == set()  # the engine would stop on the drafted verdict inside the thought
    assert out.text.endswith("</think> <answer>[[A]]</answer>") and out.finish_reason == "stop"


def test_missing_engine_names_the_extra(monkeypatch, ir_folder):
    monkeypatch.setitem(sys.modules, "openvino_genai", None)
    with pytest.raises(MissingDependencyError, match=r"rmr1\[openvino\]"):
        make_backend("openvino", str(ir_folder))


def test_a_model_it_cannot_read_is_one_line(fake_engine, tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "qwen2"}')  # a checkpoint it cannot export
    with pytest.raises(ModelLoadError, match=r"llama-family checkpoints only .*convert_hf_to_gguf"):
        make_backend("openvino", str(tmp_path))
    (tmp_path / "config.json").unlink()
    with pytest.raises(
        ModelLoadError, match=r"a \.gguf file, a llama-family checkpoint folder or an OpenVINO"
    ):
        make_backend("openvino", str(tmp_path))


class StuckOnce(FakePipeline):
    """Pipelines whose generate waits forever (without CPU) while ``stuck`` says so: the hang seen once after
    training in the same process. Each pipeline built takes the next entry of ``plan``."""

    plan: ClassVar[list[bool]] = []
    built: ClassVar[list[StuckOnce]] = []
    release = threading.Event()

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.stuck = type(self).plan.pop(0)
        if type(self).built:  # the same model files: the same vocabulary
            self.tokenizer = type(self).built[0].tokenizer
        type(self).built.append(self)

    def generate(self, prompts: list[Any], configs: list[Any]) -> list[Any]:
        if self.stuck:
            type(self).release.wait(30)
            return []
        return super().generate(prompts, configs)


@pytest.fixture
def stuck_engine(fake_engine: type[FakePipeline], monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(sys.modules["openvino_genai"], "ContinuousBatchingPipeline", StuckOnce)
    StuckOnce.built, StuckOnce.release = [], threading.Event()
    yield StuckOnce
    StuckOnce.release.set()  # the abandoned threads end


def test_a_stalled_generate_is_retried_once_on_a_fresh_engine(stuck_engine, ir_folder, caplog):
    stuck_engine.plan = [True, False]
    stuck_engine.script = staticmethod(lambda words, config: [words[1].upper(), "<eos>"])
    backend = make_backend("openvino", str(ir_folder), threads=1, stall_seconds=0.3)
    with caplog.at_level("WARNING", logger="rmr1.backends.openvino"):
        out = backend.generate([ask("first"), ask("second")])
    assert [c.text for c in out] == ["FIRST", "SECOND"]
    assert len(stuck_engine.built) == 2 and backend.pipe is stuck_engine.built[1]
    assert "stopped making progress" in caplog.text and "freshly built engine" in caplog.text
    # The fresh engine serves later calls directly.
    assert [c.text for c in backend.generate([ask("third")])] == ["THIRD"]
    assert len(stuck_engine.built) == 2


def test_a_second_stall_is_a_one_line_error(stuck_engine, ir_folder):
    stuck_engine.plan = [True, True]
    backend = make_backend("openvino", str(ir_folder), threads=1, stall_seconds=0.3)
    with pytest.raises(EngineStalledError, match=r"OpenVINO generate \(1 request\) stopped making progress"):
        backend.generate([ask("first")])
    assert len(stuck_engine.built) == 2
