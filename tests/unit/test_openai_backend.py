"""The openai backend against a real HTTP server on loopback that misbehaves on purpose.

Each request's last message carries ``mode=<name>``; the server counts hits per distinct message, so a mode
like ``500-then-ok`` fails the first hit of that message and answers the second. Backoffs are tiny so the
whole file runs in a few seconds.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from rmr1.backends import make_backend
from rmr1.backends.openai import OpenAIBackend, RetryPolicy, parse_retry_after
from rmr1.errors import ConfigError
from rmr1.judge import Judge, JudgeConfig
from rmr1.types import GenerationRequest, Message, PreferencePair, SamplingParams

_MODE = re.compile(r"mode=(\S+)")
HANG_S = 2.0  # how long a "hang" answer stalls; far beyond the backend's timeout in these tests


class FaultServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), FaultHandler)
        self.lock = threading.Lock()
        self.hits: dict[str, list[float]] = defaultdict(list)  # message -> arrival times
        self.bodies: list[dict[str, Any]] = []
        self.headers_seen: list[dict[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.released = threading.Event()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that gave up on a hanging answer close their socket; that is expected here

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class FaultHandler(BaseHTTPRequestHandler):
    server: FaultServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without this, Nagle + delayed ACK add ~40 ms per answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:
        self._send(200, {"object": "list", "data": [{"id": "served-model", "object": "model"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        content = body["messages"][-1]["content"]
        srv = self.server
        with srv.lock:
            srv.hits[content].append(time.monotonic())
            hit = len(srv.hits[content])
            srv.bodies.append(body)
            srv.headers_seen.append(dict(self.headers))
            srv.in_flight += 1
            srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
        try:
            found = _MODE.search(content)
            self._answer(found.group(1) if found else "ok", hit, content)
        except OSError:
            pass  # the client hung up first
        finally:
            with srv.lock:
                srv.in_flight -= 1

    def _answer(self, mode: str, hit: int, content: str) -> None:
        first = hit == 1
        if mode == "slow":
            time.sleep(0.15)
        if mode == "429-then-ok" and first:
            return self._send(429, {"error": {"message": "slow down"}}, {"Retry-After": "0.3"})
        if mode == "always-429":
            return self._send(429, {"error": {"message": "slow down"}}, {"Retry-After": "0"})
        if (mode == "500-then-ok" and first) or mode == "always-500":
            return self._send(500, {"error": {"message": "boom\nsecond line"}})
        if mode == "400":
            return self._send(400, {"error": {"message": "bad request"}})
        if (mode == "hang-then-ok" and first) or mode == "hang":
            self.server.released.wait(HANG_S)
        if (mode == "malformed-then-ok" and first) or mode == "malformed":
            return self._send(200, b'{"choices": [ {"message": oops')
        if mode == "no-choices":
            return self._send(200, {"id": "x", "object": "chat.completion"})
        if (mode == "close-then-ok" and first) or mode == "close":
            self.close_connection = True  # read the request, answer nothing, hang up
            return None
        if mode == "truncated":
            self.wfile.write(b'HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n{"choices"')
            self.close_connection = True
            return None
        return self._send(200, _reply(mode, content))


def _reply(mode: str, content: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": f"echo: {content}"}
    finish = "stop"
    if mode == "reasoning":
        message["reasoning_content"] = "thinking it over"
    elif mode == "reasoning-alt":
        message["reasoning"] = "other field"
    elif mode == "length":
        finish = "length"
    elif mode == "verdict-stripped":  # what llama.cpp sends for a request stopped at "</answer>"
        message["content"] = "<eval>fine</eval>\n<answer>[[A]]"
    elif mode == "verdict-eos":  # vLLM: stop_reason None means the model ended its turn itself
        message["content"] = "<answer>[[B]]"
    elif mode == "plain-eos":  # llama.cpp after an end-of-turn: nothing says whether a stop string matched
        message["content"] = "The answer is 2."
    choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": finish}
    if mode == "verdict-eos":
        choice["stop_reason"] = None
    return {
        "id": "c1",
        "object": "chat.completion",
        "choices": [choice],
        "usage": {"prompt_tokens": len(content), "completion_tokens": 7, "total_tokens": len(content) + 7},
    }


@pytest.fixture()
def server() -> Iterator[FaultServer]:
    srv = FaultServer()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.released.set()
        srv.shutdown()
        srv.server_close()


def _backend(server: FaultServer, **kw: Any) -> OpenAIBackend:
    opts: dict[str, Any] = {
        "base_url": server.url,
        "timeout": 0.5,
        "max_retries": 2,
        "backoff": 0.001,
        "max_backoff": 0.5,
    }
    model = kw.pop("model", None)
    opts.update(kw)
    return OpenAIBackend(model, **opts)


def _req(text: str, **sampling: Any) -> GenerationRequest:
    return GenerationRequest(messages=(Message("user", text),), sampling=SamplingParams(**sampling))


# --- faults: every request ends answered or as a reported error, attempts bounded ---------------------------


@pytest.mark.parametrize("mode", ["500-then-ok", "malformed-then-ok", "close-then-ok", "hang-then-ok"])
def test_transient_fault_is_retried_to_success(server: FaultServer, mode: str) -> None:
    text = f"mode={mode}"
    [out] = _backend(server, timeout=0.3).generate([_req(text)])
    assert out.finish_reason == "stop" and out.error is None
    assert out.text == f"echo: {text}"
    assert len(server.hits[text]) == 2


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        ("always-500", "HTTP 500"),
        ("always-429", "HTTP 429"),
        ("malformed", "malformed JSON"),
        ("no-choices", "no choices"),
        ("close", "connection error"),
        ("truncated", "connection error"),
        ("hang", "no response within"),
    ],
)
def test_persistent_fault_ends_as_error_after_exactly_max_retries_plus_one(
    server: FaultServer, mode: str, why: str
) -> None:
    text = f"mode={mode}"
    [out] = _backend(server, max_retries=3, timeout=0.2).generate([_req(text)])
    assert out.finish_reason == "error" and out.text == ""
    assert out.error is not None and why in out.error and "after 4 attempts" in out.error
    assert "\n" not in out.error
    assert len(server.hits[text]) == 4


def test_client_error_is_not_retried(server: FaultServer) -> None:
    [out] = _backend(server, max_retries=3).generate([_req("mode=400")])
    assert out.finish_reason == "error" and out.error is not None and out.error.startswith("HTTP 400")
    assert len(server.hits["mode=400"]) == 1


def test_retry_after_is_honoured(server: FaultServer) -> None:
    [out] = _backend(server, backoff=0.001, max_backoff=5.0).generate([_req("mode=429-then-ok")])
    assert out.finish_reason == "stop"
    first, second = server.hits["mode=429-then-ok"]
    assert second - first >= 0.28  # the server asked for 0.3 s; the computed backoff alone is ~1 ms


def test_mixed_batch_keeps_order_and_every_request_ends(server: FaultServer) -> None:
    modes = ["ok", "always-500", "500-then-ok", "reasoning", "400", "malformed", "close-then-ok", "length"]
    texts = [f"mode={m} #{i}" for i, m in enumerate(modes)]
    outs = _backend(server, concurrency=3).generate([_req(t) for t in texts])
    assert len(outs) == len(texts)
    for text, mode, out in zip(texts, modes, outs, strict=True):
        failed = mode in ("always-500", "400", "malformed")
        assert (out.finish_reason == "error") == failed, (mode, out)
        assert (out.error is not None) == failed
        if not failed:
            assert out.text == f"echo: {text}"  # the answer to this very request, not a neighbour's
            assert out.prompt_tokens == len(text) and out.completion_tokens == 7
            assert out.latency_s > 0
        assert 1 <= len(server.hits[text]) <= 3
    assert outs[-1].finish_reason == "length"


def test_concurrency_cap_is_reached_and_never_exceeded(server: FaultServer) -> None:
    texts = [f"mode=slow #{i}" for i in range(9)]
    outs = _backend(server, concurrency=3).generate([_req(t) for t in texts])
    assert [o.text for o in outs] == [f"echo: {t}" for t in texts]
    assert server.max_in_flight == 3


# --- what is sent and read ----------------------------------------------------------------------------------


def test_reasoning_field_is_read_into_completion(server: FaultServer) -> None:
    a, b = _backend(server).generate([_req("mode=reasoning"), _req("mode=reasoning-alt")])
    assert a.reasoning == "thinking it over" and a.text == "echo: mode=reasoning"
    assert a.full_text.startswith("<think>\nthinking it over\n</think>\n")
    assert b.reasoning == "other field"


def test_payload_carries_sampling_model_and_key(server: FaultServer) -> None:
    backend = _backend(server, model="judge-7b", api_key="sk-test", extra_body={"top_k": 20})
    backend.generate([_req("hi", max_new_tokens=33, temperature=0.7, top_p=0.9, seed=5, stop=("</answer>",))])
    [body] = server.bodies
    assert body["model"] == "judge-7b" and body["messages"] == [{"role": "user", "content": "hi"}]
    assert (body["max_tokens"], body["temperature"], body["top_p"], body["seed"]) == (33, 0.7, 0.9, 5)
    assert body["stop"] == ["</answer>"] and body["top_k"] == 20
    assert server.headers_seen[0]["Authorization"] == "Bearer sk-test"


def test_unnamed_model_takes_the_servers_first_model(server: FaultServer, monkeypatch: Any) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    _backend(server).generate([_req("hi")])
    assert server.bodies[0]["model"] == "served-model" and "seed" not in server.bodies[0]
    assert "stop" not in server.bodies[0] and "Authorization" not in server.headers_seen[0]


def test_stop_string_cut_by_the_server_is_restored(server: FaultServer) -> None:
    modes = ["verdict-stripped", "verdict-eos", "plain-eos"]
    stripped, eos, plain = _backend(server).generate([_req(f"mode={m}", stop=("</answer>",)) for m in modes])
    assert stripped.text.endswith("<answer>[[A]]</answer>")  # the answer tag was left open: the stop matched
    assert eos.text == "<answer>[[B]]"  # the server said the model ended its turn, so nothing is added
    assert plain.text == "The answer is 2."  # no open tag: nothing to close, nothing invented


def test_judge_over_a_faulty_server_judges_or_reports_every_call(server: FaultServer) -> None:
    questions = ["mode=verdict-stripped q0", "mode=always-500 q1", "mode=500-then-ok q2", "mode=hang q3"]
    pairs = [PreferencePair.from_texts(q, "good", "bad", item_id=str(i)) for i, q in enumerate(questions)]
    judge = Judge(_backend(server, timeout=0.2, max_retries=1), "plain", JudgeConfig(protocol="both"))
    judgments = list(judge.judge(pairs))
    assert len(judgments) == 8
    for j in judgments:
        q = questions[int(j.item_id)]
        if "always-500" in q or "hang" in q:
            assert j.finish_reason == "error" and j.verdict is None and j.parse_error
        else:
            assert j.finish_reason == "stop"
    assert {j.verdict for j in judgments if j.item_id == "0"} == {"A"}


# --- bridging and configuration -----------------------------------------------------------------------------


def test_generate_works_inside_a_running_event_loop(server: FaultServer) -> None:
    backend = _backend(server)

    async def caller() -> list[str]:
        return [c.text for c in backend.generate([_req("in loop")])]

    assert asyncio.run(caller()) == ["echo: in loop"]


def test_agenerate_and_worker_threads(server: FaultServer) -> None:
    backend = _backend(server)
    assert [c.text for c in asyncio.run(backend.agenerate([_req("a"), _req("b")]))] == ["echo: a", "echo: b"]
    results: list[str] = []
    worker = threading.Thread(target=lambda: results.extend(c.text for c in backend.generate([_req("t")])))
    worker.start()
    worker.join(10)
    assert results == ["echo: t"]
    assert backend.generate([]) == []


def test_base_url_from_environment_or_one_line_error(server: FaultServer, monkeypatch: Any) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_BASE_URL"):
        OpenAIBackend(None)
    with pytest.raises(ConfigError, match="http"):
        OpenAIBackend(None, base_url="127.0.0.1:8000/v1")
    with pytest.raises(ConfigError):
        OpenAIBackend(None, base_url=server.url, concurrency=0)
    monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/")
    backend = make_backend("openai", "m", backoff=0.001)
    assert [c.text for c in backend.generate([_req("env")])] == ["echo: env"]


def test_unreachable_server_reports_instead_of_raising() -> None:
    backend = OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", max_retries=1, backoff=0.001)
    [out] = backend.generate([_req("hi")])
    assert out.finish_reason == "error" and out.error is not None and "connection error" in out.error


def test_retry_policy_delays() -> None:
    policy = RetryPolicy(max_retries=5, backoff=0.1, max_backoff=1.0)
    for retry in range(8):
        ceiling = min(1.0, 0.1 * 2**retry)
        assert ceiling / 2 <= policy.delay(retry) <= ceiling
    assert policy.delay(0, retry_after=0.7) == 0.7
    assert policy.delay(0, retry_after=120.0) == 1.0  # a server cannot stall the run past max_backoff


def test_parse_retry_after() -> None:
    assert parse_retry_after("2") == 2.0 and parse_retry_after("0.25") == 0.25
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    later = parse_retry_after(formatdate(time.time() + 30, usegmt=True))
    assert later is not None and 25 <= later <= 31
    assert parse_retry_after(formatdate(time.time() - 30, usegmt=True)) == 0.0
