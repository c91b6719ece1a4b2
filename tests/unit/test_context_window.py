"""Prompts longer than the model's window (issue 8, part 3): never sent, logged as too_long, counted, kept on
resume; budgets that do not fit are clamped. On the mock backend, the tiny model, a vLLM-like HTTP server and a
stand-in vLLM engine."""

from __future__ import annotations

import json
import sys
import threading
import types
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from rmr1.backends.mock import MockBackend
from rmr1.backends.openai import OpenAIBackend, context_refusal, window_from_models
from rmr1.backends.window import context_length, fit_budget, window_from_config
from rmr1.evaluation import RunDir, evaluate
from rmr1.judge import PROMPT_TOO_LONG, Judge, JudgeConfig
from rmr1.types import FINISH_REASONS, GenerationRequest, Message, PreferencePair, SamplingParams

LONG = "word " * 400  # 400 mock tokens: over any window used below


def _req(text: str, max_new_tokens: int = 16, **sampling: Any) -> GenerationRequest:
    return GenerationRequest(
        (Message("user", text),), SamplingParams(max_new_tokens=max_new_tokens, **sampling)
    )


# --- the rule -----------------------------------------------------------------------------------------------

# (id, prompt tokens, max_new_tokens, window, budget)
BUDGETS = [
    ("fits", 10, 16, 100, 16),
    # no room left for the whole budget: clamped to what the window leaves
    ("clamped", 90, 16, 100, 10),
    # exactly one token of room: still sent, with a budget of one
    ("one_left", 99, 16, 100, 1),
    # the prompt fills the window: nothing could be generated, so it is not sent
    ("full", 100, 16, 100, None),
    ("over", 150, 16, 100, None),
    # an unknown window checks nothing
    ("unknown_window", 10**6, 16, None, 16),
]


@pytest.mark.parametrize(
    ("prompt", "budget", "window", "want"), [b[1:] for b in BUDGETS], ids=[b[0] for b in BUDGETS]
)
def test_fit_budget(prompt: int, budget: int, window: int | None, want: int | None) -> None:
    assert fit_budget(prompt, budget, window) == want


def test_window_from_config_prefers_the_config_and_ignores_the_tokenizers_sentinel() -> None:
    tok = types.SimpleNamespace(model_max_length=int(1e30))
    assert window_from_config(types.SimpleNamespace(max_position_embeddings=8192), tok) == 8192
    assert window_from_config(types.SimpleNamespace(n_positions=1024), tok) == 1024  # GPT-2's name for it
    assert window_from_config(types.SimpleNamespace(), tok) is None
    assert window_from_config(types.SimpleNamespace(), types.SimpleNamespace(model_max_length=2048)) == 2048


def test_too_long_is_a_finish_reason() -> None:
    assert "too_long" in FINISH_REASONS


# --- the mock backend and the judge -------------------------------------------------------------------------


def _pairs() -> list[PreferencePair]:
    short = [PreferencePair.from_texts(f"Q{i}?", f"yes {i}", f"no {i}", item_id=f"s{i}") for i in range(3)]
    long = [PreferencePair.from_texts("Q?", LONG, "short", item_id="long0")]
    return [short[0], long[0], short[1], short[2]]


def test_over_long_prompts_become_too_long_judgments_and_cost_nothing() -> None:
    backend = MockBackend("always-a", context_length=200)
    judge = Judge(backend, "plain", JudgeConfig(protocol="both", batch_size=8))
    judgments = list(judge.judge(_pairs()))
    assert len(judgments) == 8  # one per call, in plan order, the batch survived
    long = [j for j in judgments if j.item_id == "long0"]
    assert [j.finish_reason for j in long] == ["too_long", "too_long"]
    for j in long:
        assert (j.verdict, j.correct, j.completion, j.completion_tokens) == (None, None, "", 0)
        assert j.prompt_tokens > 400  # measured: the response alone has 400 words
        assert "window of 200 tokens" in (j.parse_error or "")
    assert all(j.finish_reason == "stop" and j.verdict == "A" for j in judgments if j.item_id != "long0")
    assert backend.calls == 6  # the two over-long calls never reached the model


def test_judge_names_the_reason_when_a_backend_gives_none() -> None:
    from rmr1.types import Completion

    class Refuses:
        def generate(self, requests: Any) -> list[Completion]:
            return [Completion("", finish_reason="too_long", prompt_tokens=9) for _ in requests]

    [j] = Judge(Refuses(), "plain").judge(_pairs()[:1])  # type: ignore[arg-type]
    assert (j.finish_reason, j.parse_error, j.verdict, j.prompt_tokens) == (
        "too_long",
        PROMPT_TOO_LONG,
        None,
        9,
    )


def test_mock_clamps_nothing_it_cannot_measure_without_a_window() -> None:
    backend = MockBackend("always-b")
    [out] = backend.generate([_req(LONG)])
    assert out.finish_reason == "stop" and context_length(backend) is None


# --- a run: counted in diagnostics, not retried on resume (errors are) --------------------------------------


def _write(path: Path) -> Path:
    rows = [
        {"id": f"q{i}", "prompt": f"What is {i}?", "chosen": f"{i}", "rejected": f"{i + 1}"} for i in range(4)
    ]
    rows.insert(2, {"id": "huge", "prompt": "Summarise.", "chosen": LONG, "rejected": LONG})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _eval(out: Path, data: Path) -> tuple[Any, MockBackend]:
    backend = MockBackend("always-a", context_length=300)
    judge = Judge(backend, "plain", JudgeConfig(protocol="both"))
    return evaluate("preference", out, judge=judge, data=str(data), report=False), backend


def test_a_run_counts_too_long_and_a_resume_does_not_retry_it(tmp_path: Path) -> None:
    data, out = _write(tmp_path / "pairs.jsonl"), tmp_path / "run"
    first, backend = _eval(out, data)
    diagnostics = first.scores["diagnostics"]
    assert (first.judged, backend.calls, diagnostics["too_long"]) == (10, 8, 2)
    assert diagnostics["parse_failure_rate"] == pytest.approx(2 / 10)  # unparsed, with its own count
    assert diagnostics["error_rate"] == 0.0
    log = RunDir(out).judgments
    before = log.read_bytes()
    again, backend = _eval(out, data)
    assert (again.judged, again.resumed, backend.calls) == (0, 10, 0)
    assert log.read_bytes() == before and again.scores == first.scores
    # a failed call is different: it is made again on resume (and only it)
    records = [json.loads(line) for line in before.decode().splitlines()]
    records[0].update(finish_reason="error", verdict=None, correct=None, parse_error="connection refused")
    log.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    healed, backend = _eval(out, data)
    assert (healed.judged, backend.calls) == (1, 1)
    assert healed.scores["diagnostics"]["too_long"] == 2


def test_diagnostics_leave_too_long_out_when_there_is_none(tmp_path: Path) -> None:
    data = tmp_path / "pairs.jsonl"
    data.write_text(json.dumps({"id": "a", "prompt": "Q?", "chosen": "x", "rejected": "y"}) + "\n")
    result, _ = _eval(tmp_path / "run", data)
    assert "too_long" not in result.scores["diagnostics"]


def test_rescore_keeps_too_long_judgments_as_they_were(tmp_path: Path) -> None:
    from rmr1.evaluation import rescore

    data, out = _write(tmp_path / "pairs.jsonl"), tmp_path / "run"
    first, _ = _eval(out, data)
    assert rescore(out) == first.scores
    too_long = [j for j in RunDir(out).iter_judgments() if j.finish_reason == "too_long"]
    assert too_long and all("window" in (j.parse_error or "") for j in too_long)


# --- the transformers backend on the tiny model -------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tiny_model: Path) -> Any:
    from rmr1.backends.hf import HFBackend

    return HFBackend(str(tiny_model), batch_size=4, dtype="float32")


def test_hf_reads_its_window_from_the_config(tiny: Any) -> None:
    assert context_length(tiny) == tiny.model.config.max_position_embeddings == 4096


def test_hf_skips_over_long_prompts_inside_a_mixed_batch(tiny: Any) -> None:
    window = tiny.context_length
    huge = "the quick brown fox " * (window // 2)
    batch = [_req("Hi", 4), _req(huge, 4), _req("What is 2 plus 2?", 4)]
    out = tiny.generate(batch)
    assert [c.finish_reason for c in out][1] == "too_long"
    assert out[1].prompt_tokens == len(tiny.prompt_ids(batch[1])) > window and out[1].text == ""
    assert [c.finish_reason in ("stop", "length") for c in (out[0], out[2])] == [True, True]
    assert out[0].text == tiny.generate([batch[0]])[0].text  # the short rows are untouched by the long one


def test_hf_clamps_a_budget_the_window_cannot_hold(tiny_model: Path) -> None:
    from rmr1.backends.hf import HFBackend

    probe = HFBackend(str(tiny_model), dtype="float32")
    prompt_len = len(probe.prompt_ids(_req("What is 2 plus 2?")))
    small = HFBackend(str(tiny_model), dtype="float32", context_length=prompt_len + 5)
    [clamped] = small.generate([_req("What is 2 plus 2?", 40)])
    assert clamped.finish_reason in ("stop", "length") and clamped.completion_tokens <= 5
    [exact] = small.generate([_req("What is 2 plus 2? " * 3, 40)])
    assert exact.finish_reason == "too_long"


# --- an OpenAI-compatible server that refuses like vLLM and llama.cpp ---------------------------------------

WINDOW = 64


class WindowServer(ThreadingHTTPServer):
    """Counts words as tokens and refuses what does not fit a 64-token window, in the server's own words."""

    def __init__(self, style: str) -> None:
        super().__init__(("127.0.0.1", 0), WindowHandler)
        self.style = style
        self.seen: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class WindowHandler(BaseHTTPRequestHandler):
    server: WindowServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.server.style == "vllm":
            self._send(200, {"data": [{"id": "m", "max_model_len": WINDOW}]})
        else:
            self._send(200, {"data": [{"id": "m", "meta": {"n_ctx_train": WINDOW, "n_vocab": 10}}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.seen.append(body)
        prompt = sum(len(m["content"].split()) for m in body["messages"])
        if prompt + body["max_tokens"] > WINDOW:
            return self._send(400, self._refusal(prompt, body["max_tokens"]))
        reply = {
            "message": {"role": "assistant", "content": "<answer>[[A]]</answer>"},
            "finish_reason": "stop",
        }
        self._send(200, {"choices": [reply], "usage": {"prompt_tokens": prompt, "completion_tokens": 3}})

    def _refusal(self, prompt: int, budget: int) -> dict[str, Any]:
        if self.server.style == "vllm":
            message = (
                f"This model's maximum context length is {WINDOW} tokens. However, you requested "
                f"{prompt + budget} tokens ({prompt} in the messages, {budget} in the completion). "
                "Please reduce the length of the messages or completion."
            )
            return {"object": "error", "message": message, "type": "BadRequestError", "code": 400}
        # llama.cpp checks the prompt only (it stops at the window while generating)
        error = {
            "code": 400,
            "message": "the request exceeds the available context size, try increasing it",
            "type": "exceed_context_size_error",
            "n_prompt_tokens": prompt,
            "n_ctx": WINDOW,
        }
        return {"error": error}


@pytest.fixture(params=["vllm", "llamacpp"])
def window_server(request: pytest.FixtureRequest) -> Iterator[WindowServer]:
    srv = WindowServer(request.param)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def _client(srv: WindowServer) -> OpenAIBackend:
    return OpenAIBackend("m", base_url=srv.url, timeout=5.0, max_retries=3, backoff=0.001)


def test_openai_declares_the_servers_window(window_server: WindowServer) -> None:
    assert context_length(_client(window_server)) == WINDOW


def test_openai_maps_a_context_refusal_to_too_long_without_retrying(window_server: WindowServer) -> None:
    over = "w " * (WINDOW + 10)
    out = _client(window_server).generate([_req(over, 8), _req("short question", 8)])
    assert [c.finish_reason for c in out] == ["too_long", "stop"]
    assert out[0].prompt_tokens == WINDOW + 10 and "server said" in (out[0].error or "")
    over_sent = [b for b in window_server.seen if len(b["messages"][0]["content"].split()) > WINDOW]
    assert len(over_sent) == 1  # final at once: no retry, no clamped second try (nothing would fit)


def test_openai_clamps_the_budget_when_the_server_gives_the_numbers() -> None:
    srv = WindowServer("vllm")
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        [out] = _client(srv).generate([_req("w " * 60, 16)])
    finally:
        srv.shutdown()
        srv.server_close()
    assert out.finish_reason == "stop" and out.text == "<answer>[[A]]</answer>"
    assert [b["max_tokens"] for b in srv.seen] == [16, WINDOW - 60]


# (id, status, body, prompt tokens read, window read); None: not a context refusal
REFUSALS = [
    (
        "vllm_old",
        400,
        "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens "
        "(8000 in the messages, 1000 in the completion).",
        8000,
        8192,
    ),
    (
        "vllm_new",
        400,
        "'max_tokens' or 'max_completion_tokens' is too large: 1000. This model's maximum context length is "
        "8192 tokens and your request has 8000 input tokens (1000 > 8192 - 8000).",
        8000,
        8192,
    ),
    (
        "vllm_prompt",
        400,
        "The decoder prompt (length 9000) is longer than the maximum model length of 8192.",
        9000,
        8192,
    ),
    ("openai", 400, '{"error": {"code": "context_length_exceeded", "message": "..."}}', None, None),
    (
        "sglang",
        400,
        "The input (9000 tokens) is longer than the model's context length (8192 tokens).",
        9000,
        8192,
    ),
    # other bad requests stay ordinary failures
    ("other_400", 400, '{"error": "temperature must be positive"}', "no", "no"),
    # a 500 that mentions the context is a server fault, retried as such
    ("server_fault", 500, "context length exceeded while allocating", "no", "no"),
]


@pytest.mark.parametrize(
    ("status", "body", "prompt", "window"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_context_refusals_are_recognised(status: int, body: str, prompt: Any, window: Any) -> None:
    refusal = context_refusal(status, body)
    if prompt == "no":
        assert refusal is None
    else:
        assert refusal is not None and (refusal.prompt_tokens, refusal.window) == (prompt, window)


def test_window_from_models() -> None:
    assert (
        window_from_models(
            {"data": [{"id": "x", "max_model_len": 10}, {"id": "m", "max_model_len": 20}]}, "m"
        )
        == 20
    )
    assert window_from_models({"data": [{"id": "x", "meta": {"n_ctx_train": 4096}}]}, None) == 4096
    assert window_from_models({"data": [{"id": "x"}]}, "x") is None
    assert window_from_models({"object": "list"}, None) is None


def test_openai_sends_no_stop_for_thinking_requests() -> None:
    backend = OpenAIBackend("m", base_url="http://127.0.0.1:9")
    assert backend.payload("m", _req("q", stop=("</answer>",)))["stop"] == ["</answer>"]
    assert "stop" not in backend.payload("m", _req("q", stop=("</answer>",), thinking=True))


# --- the vLLM backend, on a stand-in engine (vLLM itself needs a GPU build) ---------------------------------


class FakeEngine:
    """What VLLMBackend uses of ``vllm.LLM``: the tokenizer, max_model_len and ``generate`` (token-id prompts)."""

    def __init__(self, tokenizer: Any, max_model_len: int, refuse_batches: bool = False) -> None:
        self.tokenizer = tokenizer
        self.llm_engine = types.SimpleNamespace(
            model_config=types.SimpleNamespace(max_model_len=max_model_len)
        )
        self.refuse_batches = refuse_batches
        self.calls: list[list[dict[str, Any]]] = []

    def get_tokenizer(self) -> Any:
        return self.tokenizer

    def generate(
        self, conversations: list[Any], params: list[dict[str, Any]], use_tqdm: bool = False
    ) -> list[Any]:
        if self.refuse_batches and len(conversations) > 1:
            raise ValueError(
                "The decoder prompt (length 99999) is longer than the maximum model length of 10."
            )
        self.calls.append(params)
        return [
            types.SimpleNamespace(
                prompt_token_ids=[1, 2, 3],
                outputs=[
                    types.SimpleNamespace(
                        text="<answer>[[B]]</answer>", finish_reason="stop", token_ids=[5, 6]
                    )
                ],
            )
            for _ in conversations
        ]


@pytest.fixture()
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(SamplingParams=lambda **kw: kw))


def _vllm(tiny_model: Path, window: int, **kw: Any) -> Any:
    from transformers import AutoTokenizer

    from rmr1.backends.vllm import VLLMBackend

    backend = VLLMBackend.__new__(VLLMBackend)  # the engine is the stand-in; nothing else is built
    backend._llm = FakeEngine(AutoTokenizer.from_pretrained(tiny_model), window, **kw)
    backend._renderer = None
    return backend


def test_vllm_skips_over_long_prompts_and_clamps_budgets(tiny_model: Path, fake_vllm: None) -> None:
    backend = _vllm(tiny_model, 60)
    prompt_len = len(backend.renderer.ids(_req("What is 2 plus 2?")))
    assert context_length(backend) == 60 and prompt_len < 60
    out = backend.generate([_req("What is 2 plus 2?", 8), _req(LONG, 8), _req("What is 2 plus 2?", 100)])
    assert [c.finish_reason for c in out] == ["stop", "too_long", "stop"]
    assert out[1].prompt_tokens > 60
    [params] = backend.llm.calls  # one engine call, without the over-long prompt
    assert [p["max_tokens"] for p in params] == [8, 60 - prompt_len]


def test_vllm_sends_no_stop_for_thinking_requests(tiny_model: Path, fake_vllm: None) -> None:
    backend = _vllm(tiny_model, 4096)
    backend.generate([_req("q", stop=("</answer>",)), _req("q", stop=("</answer>",), thinking=True)])
    [params] = backend.llm.calls
    assert [p["stop"] for p in params] == [["</answer>"], None]


def test_vllm_isolates_a_prompt_the_engine_refuses(tiny_model: Path, fake_vllm: None) -> None:
    backend = _vllm(tiny_model, 4096, refuse_batches=True)
    out = backend.generate([_req("a"), _req("b")])  # the batch is refused; each prompt alone is answered
    assert [c.finish_reason for c in out] == ["stop", "stop"] and len(backend.llm.calls) == 2


def test_the_report_shows_too_long_as_a_count(tmp_path: Path) -> None:
    from rmr1.report import score_tables

    data, out = _write(tmp_path / "pairs.jsonl"), tmp_path / "run"
    result, _ = _eval(out, data)
    assert ("too_long", "2") in score_tables(result.scores)[-1].rows


def test_the_cache_sees_the_window_and_replays_a_prompt_opened_thought(tmp_path: Path) -> None:
    from rmr1.cache import CachedBackend
    from rmr1.types import Completion

    class OpensThink:
        context_length = 4096
        calls = 0

        def generate(self, requests: Any) -> list[Completion]:
            OpensThink.calls += len(requests)
            return [
                Completion(f"draft {PROMPT_TOO_LONG}</think>\nfinal", think_opened=True) for _ in requests
            ]

    cached = CachedBackend(OpensThink(), tmp_path / "c.sqlite", model_id="m")  # type: ignore[arg-type]
    assert context_length(cached) == 4096
    [first] = cached.generate([_req("q")])
    [hit] = cached.generate([_req("q")])
    assert (
        OpensThink.calls == 1 and hit.full_text == first.full_text and first.full_text.startswith("<think>\n")
    )
    cached.close()


def test_pointwise_judging_logs_an_over_long_rating_as_too_long() -> None:
    backend = MockBackend(lambda req: "<score>7</score>", context_length=300)
    judge = Judge(backend, "pointwise", JudgeConfig(mode="pointwise"))
    pair = PreferencePair.from_texts("Q?", LONG, "short answer", item_id="p")
    [j] = judge.judge([pair])
    assert (j.finish_reason, j.verdict, j.correct) == ("too_long", None, None)
    assert "window of 300 tokens" in (j.parse_error or "")
