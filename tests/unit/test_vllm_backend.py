"""The vllm backend's request/result mapping, on a fake ``vllm`` module (the real engine is in tests/engines).

The fake behaves like vLLM where the backend depends on it: it refuses a whole call when one prompt does not
fit the context window, echoes what it was asked so order and rendering can be checked, and its async engine
aborts a request whose consumer is cancelled.
"""

from __future__ import annotations

import asyncio
import importlib.machinery
import sys
import threading
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from jinja2 import TemplateError

from rmr1.judge_options import JudgeOptions
from rmr1.types import GenerationRequest, Message, PreferencePair, SamplingParams


class FakeTokenizer:
    """One token per character; the template marks roles so the rendered prompt can be read back."""

    def __init__(self, refuse_system: bool = False) -> None:
        self.refuse_system = refuse_system

    def apply_chat_template(
        self, messages: list[dict[str, str]], *, tokenize: bool, add_generation_prompt: bool
    ):
        assert tokenize is False and add_generation_prompt is True
        if self.refuse_system and any(m["role"] == "system" for m in messages):
            raise TemplateError("System role not supported")
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        assert add_special_tokens is False  # the template holds the BOS already
        return {"input_ids": [ord(c) for c in text]}


def decode(ids: list[int]) -> str:
    return "".join(chr(i) for i in ids)


@dataclass
class FakeSampling:
    max_tokens: int
    temperature: float
    top_p: float
    seed: int | None
    stop: list[str] | None
    include_stop_str_in_output: bool
    logprobs: int | None


def _output(ids: list[int], params: FakeSampling) -> Any:
    """What the fake model answers: the last user turn, upper-cased; 'LONG' prompts run out of tokens."""
    prompt = decode(ids)
    question = prompt.rsplit("<user>", 1)[-1].removesuffix("<assistant>")
    finish = "length" if "LONG" in question else ("abort" if "ABORT" in question else "stop")
    text = question.upper()[: params.max_tokens]
    sample = types.SimpleNamespace(text=text, finish_reason=finish, token_ids=list(range(len(text))))
    return types.SimpleNamespace(outputs=[sample], prompt_token_ids=ids)


@dataclass
class FakeLLM:
    kwargs: dict[str, Any]
    calls: list[tuple[list[dict[str, Any]], list[FakeSampling]]] = field(default_factory=list)

    @property
    def llm_engine(self) -> Any:
        max_len = self.kwargs.get("max_model_len") or 8192
        return types.SimpleNamespace(model_config=types.SimpleNamespace(max_model_len=max_len))

    def get_tokenizer(self) -> FakeTokenizer:
        return FakeTokenizer(refuse_system=self.kwargs["model"].endswith("gemma"))

    def generate(
        self, prompts: list[dict[str, Any]], params: list[FakeSampling], use_tqdm: bool
    ) -> list[Any]:
        limit = self.llm_engine.model_config.max_model_len
        if any(len(p["prompt_token_ids"]) >= limit for p in prompts):
            raise ValueError("This model's maximum context length is exceeded")  # vLLM fails the whole call
        self.calls.append((prompts, params))
        return [_output(p["prompt_token_ids"], s) for p, s in zip(prompts, params, strict=True)]


class FakeAsyncEngine:
    """AsyncLLM's face: ``generate`` yields outputs as an async generator; cancelled requests are aborted."""

    def __init__(self, kwargs: dict[str, Any]) -> None:
        self.kwargs = kwargs
        self.started: list[str] = []
        self.aborted: list[str] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.shut_down = False
        self.model_config = types.SimpleNamespace(max_model_len=kwargs.get("max_model_len") or 8192)
        self.vllm_config = types.SimpleNamespace(scheduler_config=types.SimpleNamespace(max_num_seqs=256))

    def get_tokenizer(self) -> FakeTokenizer:
        return FakeTokenizer()

    async def generate(self, prompt: dict[str, Any], params: FakeSampling, request_id: str):
        self.started.append(request_id)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            question = decode(prompt["prompt_token_ids"])
            await asyncio.sleep(5.0 if "SLOW" in question else 0.05)
            yield _output(prompt["prompt_token_ids"], params)
        except asyncio.CancelledError:
            self.aborted.append(request_id)
            raise
        finally:
            self.in_flight -= 1

    def shutdown(self) -> None:
        self.shut_down = True


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> types.SimpleNamespace:
    """A ``vllm`` package in sys.modules and two checkpoint folders; returns a record of the engines built."""
    built = types.SimpleNamespace(llms=[], async_engines=[], on_cpu=True)
    for name in ("tiny", "gemma"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
    monkeypatch.chdir(tmp_path)  # the tests name the checkpoints by relative paths
    vllm = types.ModuleType("vllm")
    vllm.__spec__ = importlib.machinery.ModuleSpec("vllm", None)

    def make_llm(**kwargs: Any) -> FakeLLM:
        llm = FakeLLM(kwargs)
        built.llms.append(llm)
        return llm

    def from_engine_args(args: dict[str, Any]) -> FakeAsyncEngine:
        engine = FakeAsyncEngine(args)
        built.async_engines.append(engine)
        return engine

    vllm.LLM = make_llm  # type: ignore[attr-defined]
    vllm.SamplingParams = FakeSampling  # type: ignore[attr-defined]
    vllm.AsyncEngineArgs = dict  # type: ignore[attr-defined]
    vllm.AsyncLLMEngine = types.SimpleNamespace(from_engine_args=from_engine_args)  # type: ignore[attr-defined]
    platforms = types.ModuleType("vllm.platforms")
    platforms.current_platform = types.SimpleNamespace(is_cpu=lambda: built.on_cpu)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.platforms", platforms)
    return built


def _request(question: str, system: str = "Judge well.", **sampling: Any) -> GenerationRequest:
    messages = (Message("system", system), Message("user", question))
    return GenerationRequest(messages, SamplingParams(**sampling))


def _backend(model: str = "tiny", **options: Any) -> Any:
    from rmr1.backends.vllm import VLLMBackend

    return VLLMBackend(model, **options)


def test_engine_is_built_on_first_use_with_the_flags(fake_vllm: types.SimpleNamespace) -> None:
    backend = _backend(tensor_parallel_size=2, max_model_len=4096, gpu_memory_utilization=0.5, seed=3)
    assert fake_vllm.llms == []  # serve may build the async engine instead: nothing loads before use
    backend.generate([_request("hi")])
    (llm,) = fake_vllm.llms
    assert llm.kwargs == {
        "model": "tiny",
        "tensor_parallel_size": 2,
        "max_model_len": 4096,
        "gpu_memory_utilization": 0.5,
        "enable_prefix_caching": True,
        "seed": 3,
        "enforce_eager": True,  # the fake platform is a CPU
    }
    assert backend.context_length == 4096


def test_gpu_engine_keeps_graphs_and_prefix_caching_can_be_turned_off(
    fake_vllm: types.SimpleNamespace,
) -> None:
    fake_vllm.on_cpu = False
    _backend(prefix_caching=False).generate([_request("hi")])
    kwargs = fake_vllm.llms[0].kwargs
    assert "enforce_eager" not in kwargs and "max_model_len" not in kwargs
    assert kwargs["enable_prefix_caching"] is False


def test_all_requests_go_in_one_call_rendered_and_answered_in_order(fake_vllm: types.SimpleNamespace) -> None:
    backend = _backend()
    requests = [
        _request("first", max_new_tokens=64),
        _request("second LONG", max_new_tokens=6),
        _request("third", temperature=0.7, seed=11, stop=("</answer>",)),
    ]
    out = backend.generate(requests)
    (call,) = fake_vllm.llms[0].calls
    prompts, params = call
    assert [decode(p["prompt_token_ids"]) for p in prompts] == [
        f"<system>Judge well.<user>{q}<assistant>" for q in ("first", "second LONG", "third")
    ]
    assert [(p.max_tokens, p.temperature, p.seed, p.stop) for p in params] == [
        (64, 0.0, None, None),
        (6, 0.0, None, None),
        (1024, 0.7, 11, ["</answer>"]),
    ]
    assert all(p.include_stop_str_in_output and p.logprobs is None for p in params)
    assert [(c.text, c.finish_reason) for c in out] == [
        ("FIRST", "stop"),
        ("SECOND", "length"),
        ("THIRD", "stop"),
    ]
    assert out[0].prompt_tokens == len(prompts[0]["prompt_token_ids"]) and out[0].completion_tokens == 5


def test_an_aborted_request_is_an_error_not_a_verdict(fake_vllm: types.SimpleNamespace) -> None:
    (out,) = _backend().generate([_request("ABORT me")])
    assert out.finish_reason == "error" and "abort" in (out.error or "")


def test_prompts_over_the_context_are_not_sent_and_come_back_too_long(
    fake_vllm: types.SimpleNamespace,
) -> None:
    backend = _backend(max_model_len=60)
    fits = "short"
    overlong = "x" * 60
    out = backend.generate([_request(overlong), _request(fits), _request(overlong + "y")])
    (call,) = fake_vllm.llms[0].calls  # the fake, like vLLM, would have refused the whole call otherwise
    assert len(call[0]) == 1
    assert [c.finish_reason for c in out] == ["too_long", "stop", "too_long"]
    assert out[1].text == "SHORT"
    assert out[0].text == "" and out[0].prompt_tokens > 60 and "window of 60 tokens" in (out[0].error or "")


def test_a_call_with_only_overlong_prompts_never_reaches_the_engine(fake_vllm: types.SimpleNamespace) -> None:
    backend = _backend(max_model_len=10)
    out = backend.generate([_request("far too long for ten tokens")])
    assert out[0].finish_reason == "too_long" and fake_vllm.llms[0].calls == []
    assert backend.generate([]) == []


def test_a_template_that_refuses_system_turns_gets_them_folded(fake_vllm: types.SimpleNamespace) -> None:
    backend = _backend("gemma")
    backend.generate([_request("q1"), _request("q2")])
    prompts = fake_vllm.llms[0].calls[0][0]
    assert decode(prompts[0]["prompt_token_ids"]) == "<user>Judge well.\n\nq1<assistant>"
    assert decode(prompts[1]["prompt_token_ids"]) == "<user>Judge well.\n\nq2<assistant>"


def test_logprobs_are_asked_for_only_where_the_request_wants_them(fake_vllm: types.SimpleNamespace) -> None:
    from rmr1.backends.vllm import TOP_LOGPROBS, vllm_sampling

    assert vllm_sampling(SamplingParams(max_new_tokens=4, logprobs=True)).logprobs == TOP_LOGPROBS
    assert vllm_sampling(SamplingParams()).logprobs is None


def test_judge_options_give_vllm_large_windows_and_its_flags(fake_vllm: types.SimpleNamespace) -> None:
    assert JudgeOptions(backend="hf").judge_config().batch_size == 8  # the hf default is unchanged
    assert JudgeOptions(backend="vllm", batch_size=4).judge_config().batch_size == 4  # an explicit size wins
    opts = JudgeOptions(backend="vllm", model="tiny", max_model_len=2048, tensor_parallel_size=4)
    judge = opts.build_judge()
    assert judge.config.batch_size == 1024
    pairs = [PreferencePair.from_texts(f"question {i}", "good", "bad", item_id=str(i)) for i in range(40)]
    judgments = list(judge.judge(pairs))
    assert len(judgments) == 40
    (llm,) = fake_vllm.llms
    assert len(llm.calls) == 1 and len(llm.calls[0][0]) == 40  # the whole run in one engine call
    assert llm.kwargs["max_model_len"] == 2048 and llm.kwargs["tensor_parallel_size"] == 4


def test_serve_uses_the_async_engine_one_request_at_a_time(fake_vllm: types.SimpleNamespace) -> None:
    from rmr1.judge import Judge
    from rmr1.serve.app import ServeSettings, Service
    from rmr1.serve.vllm_engine import AsyncEngineBatcher

    service = Service(Judge(_backend(max_model_len=500)), ServeSettings())
    batcher = service.batcher
    assert isinstance(batcher, AsyncEngineBatcher)
    assert fake_vllm.llms == []  # the offline engine is never built beside the async one
    (engine,) = fake_vllm.async_engines
    results: dict[int, list[Any]] = {}

    def client(k: int) -> None:
        results[k] = batcher.generate([_request(f"client {k} a"), _request(f"client {k} b")])

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {k: [c.text for c in v] for k, v in results.items()} == {
        k: [f"CLIENT {k} A", f"CLIENT {k} B"] for k in range(4)
    }
    assert len(engine.started) == 8 and engine.most_in_flight > 2  # concurrent, not merged into our batches
    (too_long,) = batcher.generate([_request("z" * 600)])
    assert too_long.finish_reason == "too_long" and len(engine.started) == 8
    service.close()
    assert engine.shut_down


def test_a_request_past_its_deadline_is_aborted_in_the_engine(fake_vllm: types.SimpleNamespace) -> None:
    from rmr1.serve.batcher import Closed, DeadlineExceeded
    from rmr1.serve.vllm_engine import AsyncEngineBatcher

    batcher = AsyncEngineBatcher(_backend())
    engine = fake_vllm.async_engines[0]
    started = time.monotonic()
    with batcher.deadline(0.3), pytest.raises(DeadlineExceeded):
        batcher.generate([_request("SLOW one"), _request("quick one")])
    assert time.monotonic() - started < 3.0  # did not wait for the slow generation
    for _ in range(50):  # the cancellation lands on the engine's loop thread
        if engine.aborted:
            break
        time.sleep(0.02)
    assert engine.aborted == [engine.started[0]]
    assert batcher.pending == 0 and batcher.stats.expired == 1
    batcher.close()
    with pytest.raises(Closed):
        batcher.generate([_request("after close")])
