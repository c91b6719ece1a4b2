"""Several --base-url replicas: the pool's choice and down/probe logic on a fake clock, then the backend against
real HTTP servers on loopback (one refusing connections, one killed between batches, one answering 429)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from rmr1.backends import make_backend
from rmr1.backends.openai import OpenAIBackend, split_urls
from rmr1.backends.replicas import DownPolicy, ReplicaBackend, ReplicaPool
from rmr1.errors import ConfigError
from rmr1.judge_options import JudgeOptions
from rmr1.types import GenerationRequest, Message, SamplingParams


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# --- the pool -----------------------------------------------------------------------------------------------


def test_least_outstanding_wins_and_ties_go_round_robin() -> None:
    pool = ReplicaPool(["a", "b", "c"], clock=FakeClock())
    first = [pool.pick() for _ in range(3)]
    assert [r.url for r in first if r] == ["a", "b", "c"]  # all idle: in turn
    pool.release(first[1], "ok")  # b is now the least loaded
    b = pool.pick()
    assert b is not None and b.url == "b"
    for replica in (*first[::2], b):
        assert replica is not None
        pool.release(replica, "ok")
    # All idle again: the turn goes on after b, not back to a.
    assert [r.url for r in (pool.pick(), pool.pick(), pool.pick()) if r] == ["c", "a", "b"]
    assert [r.outstanding for r in pool.replicas] == [1, 1, 1]


def test_an_attempt_skips_replicas_it_has_tried() -> None:
    pool = ReplicaPool(["a", "b"], clock=FakeClock())
    busy = [pool.pick() for _ in range(3)]  # a, b, a: a has 2 outstanding, b 1
    assert [r.url for r in busy if r] == ["a", "b", "a"]
    chosen = pool.pick(avoid={"b"})
    assert chosen is not None and chosen.url == "a"  # b is less loaded but was tried
    assert pool.pick(avoid={"a", "b"}) is None
    assert [r.outstanding for r in pool.replicas] == [3, 1]


def test_a_failed_replica_sits_out_then_one_probe_at_a_time_with_doubling_waits() -> None:
    clock = FakeClock()
    pool = ReplicaPool(["a", "b"], down=DownPolicy(first=1.0, longest=4.0), clock=clock)
    a, b = pool.replicas
    pool.release(pool.pick(avoid={"b"}) or a, "down")
    assert a.down_until == 1.0 and a.failures == 1
    assert [pool.pick().url for _ in range(3)] == ["b", "b", "b"]  # type: ignore[union-attr]
    assert pool.pick(avoid={"b"}) is None  # b is up, a is not

    clock.now = 1.0  # due for a probe: it takes one request although b is busier...
    probe = pool.pick()
    assert probe is a
    assert pool.pick() is b  # ...and only one: a second request does not follow the probe
    pool.release(a, "down")  # the probe failed: twice as long
    assert a.down_until == 3.0
    clock.now = 2.9
    assert pool.pick(avoid={"b"}) is None
    clock.now = 3.0
    pool.release(pool.pick(avoid={"b"}) or b, "down")
    assert a.down_until == 7.0  # 4 s, the cap
    clock.now = 7.0
    pool.release(pool.pick(avoid={"b"}) or b, "down")
    assert a.down_until == 11.0  # still 4 s: capped
    clock.now = 11.0
    pool.release(pool.pick(avoid={"b"}) or b, "ok")  # the probe answered: back in the pool
    assert (a.failures, a.down_until, a.served, a.failed) == (0, 0.0, 1, 4)
    assert [pool.pick(avoid={"b"}) for _ in range(2)] == [a, a]  # no probation: several at once


def test_attempts_that_fail_together_count_as_one_failure() -> None:
    clock = FakeClock()
    pool = ReplicaPool(["a", "b"], down=DownPolicy(first=1.0, longest=30.0), clock=clock)
    a = pool.replicas[0]
    in_flight = [pool.pick(avoid={"b"}) for _ in range(5)]
    clock.now = 0.2
    for replica in in_flight:
        assert replica is a
        pool.release(replica, "down")
    assert (a.failures, a.down_until, a.failed, a.outstanding) == (1, 1.2, 5, 0)


def test_every_replica_down_means_no_pick_until_the_first_is_due() -> None:
    clock = FakeClock()
    pool = ReplicaPool(["a", "b"], down=DownPolicy(first=2.0), clock=clock)
    pool.release(pool.pick() or pool.replicas[0], "down")  # a, down until 2
    clock.now = 0.5
    pool.release(pool.pick() or pool.replicas[1], "down")  # b, down until 2.5
    assert pool.pick() is None
    clock.now = 1.99
    assert pool.pick() is None
    clock.now = 2.0
    assert pool.pick() is pool.replicas[0]


def test_a_busy_replica_sits_out_its_retry_after_without_a_failure() -> None:
    clock = FakeClock()
    pool = ReplicaPool(["a", "b"], down=DownPolicy(first=1.0, longest=5.0), clock=clock)
    a = pool.replicas[0]
    pool.release(pool.pick() or a, "busy", 2.5)  # 429 with Retry-After: 2.5
    assert (a.failures, a.down_until, a.served, a.outstanding) == (0, 2.5, 0, 0)
    assert pool.pick(avoid={"b"}) is None
    clock.now = 2.5
    second = pool.pick(avoid={"b"})
    assert second is a and pool.pick(avoid={"b"}) is a  # no probation: it never failed
    pool.release(a, "busy", None)  # no Retry-After: the first wait
    pool.release(a, "busy", 600.0)  # an absurd Retry-After: capped
    assert a.down_until == 7.5 and a.outstanding == 0


def test_urls_from_repeated_flags_and_commas() -> None:
    assert split_urls(None) == [] and split_urls("http://a/v1") == ["http://a/v1"]
    assert split_urls(["http://a/v1, http://b/v1", "http://c/v1", " "]) == [
        "http://a/v1",
        "http://b/v1",
        "http://c/v1",
    ]


# --- the backend over real HTTP -----------------------------------------------------------------------------


class Replica(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, model: str = "judge-7b") -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.model, self.mode = model, "ok"
        self.lock = threading.Lock()
        self.answered: list[str] = []  # contents answered with a completion
        self.hits = 0  # chat requests that arrived, answered or not
        self.paths: set[str] = set()
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass

    def kill(self) -> None:
        """Refuse new connections and drop the open keep-alive ones, as a killed process would."""
        self.mode = "dead"
        self.shutdown()
        self.server_close()


class Handler(BaseHTTPRequestHandler):
    server: Replica
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, payload: Any) -> None:
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:
        self._send(200, {"object": "list", "data": [{"id": self.server.model, "object": "model"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        content = body["messages"][-1]["content"]
        srv = self.server
        with srv.lock:
            srv.hits += 1
            srv.paths.add(self.path)
        if srv.mode == "hang":
            time.sleep(1.0)  # far past the client's timeout
            return
        if srv.mode == "dead":
            self.close_connection = True  # read it, answer nothing, hang up
            return
        if srv.mode in ("500", "429"):
            return self._send(int(srv.mode), {"error": {"message": srv.mode}})
        with srv.lock:
            srv.answered.append(content)
        self._send(200, {"choices": [{"message": {"content": f"re: {content}"}, "finish_reason": "stop"}]})


@pytest.fixture()
def replicas() -> Iterator[list[Replica]]:
    servers = [Replica(), Replica()]
    yield servers
    for srv in servers:
        if srv.mode != "dead":
            srv.shutdown()
            srv.server_close()


def dead_url() -> str:
    with socket.socket() as sock:  # a port nobody listens on: connection refused
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


def requests(n: int, tag: str = "q") -> list[GenerationRequest]:
    sp = SamplingParams(max_new_tokens=4)
    return [GenerationRequest(messages=(Message("user", f"{tag}{i}"),), sampling=sp) for i in range(n)]


def fleet(urls: list[str], **kw: Any) -> ReplicaBackend:
    opts: dict[str, Any] = {"timeout": 5.0, "backoff": 0.01, "max_backoff": 0.05, "concurrency": 4, **kw}
    backend = make_backend("openai", "judge-7b", base_url=urls, **opts)
    assert isinstance(backend, ReplicaBackend)
    return backend


def test_one_url_keeps_the_single_server_backend(replicas: list[Replica]) -> None:
    assert isinstance(make_backend("openai", None, base_url=replicas[0].url), OpenAIBackend)
    opts = JudgeOptions(backend="openai", base_url=[f"{replicas[0].url},{replicas[1].url}"])
    backend = opts.make_backend()
    assert isinstance(backend, ReplicaBackend) and backend.base_urls == [r.url for r in replicas]


def test_requests_spread_over_replicas(replicas: list[Replica]) -> None:
    backend = fleet([r.url for r in replicas])
    out = backend.generate(requests(40))
    assert [c.text for c in out] == [f"re: q{i}" for i in range(40)]
    counts = [len(r.answered) for r in replicas]
    assert sum(counts) == 40 and min(counts) >= 10, counts
    assert backend.served_model() == "judge-7b"


def test_a_refusing_replica_costs_no_request(replicas: list[Replica]) -> None:
    backend = fleet([dead_url(), replicas[0].url], max_retries=0)  # budget raised to one try per replica
    out = backend.generate(requests(30))
    assert all(c.finish_reason == "stop" for c in out), [c.error for c in out if c.error]
    dead, live = backend.replica_stats().values()
    assert dead["served"] == 0 and 1 <= dead["failed"] <= 4  # the first burst only; then it sat out
    assert live["served"] == 30 and len(replicas[0].answered) == 30


def test_a_replica_killed_between_batches(replicas: list[Replica]) -> None:
    backend = fleet([r.url for r in replicas])
    first = backend.generate(requests(20, "a"))
    assert len(replicas[0].answered) > 0 and len(replicas[1].answered) > 0
    replicas[0].kill()
    second = backend.generate(requests(20, "b"))
    assert [c.finish_reason for c in first + second] == ["stop"] * 40
    assert not any(t.startswith("b") for t in replicas[0].answered)


def test_a_replica_answering_500_is_marked_down_and_429_is_not(replicas: list[Replica]) -> None:
    replicas[0].mode = "500"
    backend = fleet([r.url for r in replicas], down=DownPolicy(first=60.0))
    assert all(c.finish_reason == "stop" for c in backend.generate(requests(8)))
    assert backend.pool.replicas[0].failures == 1 and len(replicas[1].answered) == 8
    replicas[0].mode, replicas[0].hits = "429", 0
    backend = fleet([r.url for r in replicas])
    assert all(c.finish_reason == "stop" for c in backend.generate(requests(8)))
    assert backend.pool.replicas[0].failures == 0 and replicas[0].hits >= 1  # asked, busy, still up


def test_a_replica_that_does_not_answer_in_time_is_marked_down(replicas: list[Replica]) -> None:
    replicas[0].mode = "hang"
    backend = fleet([r.url for r in replicas], timeout=0.3, down=DownPolicy(first=60.0))
    assert all(c.finish_reason == "stop" for c in backend.generate(requests(6)))
    assert backend.pool.replicas[0].failures == 1 and len(replicas[1].answered) == 6


def test_a_request_fails_only_when_every_replica_failed_it(replicas: list[Replica]) -> None:
    for srv in replicas:
        srv.mode = "500"
    backend = fleet([r.url for r in replicas], max_retries=1, down=DownPolicy(first=0.01, longest=0.01))
    (out,) = backend.generate(requests(1))
    assert out.finish_reason == "error" and out.error and "HTTP 500" in out.error and "\n" not in out.error
    assert [srv.hits for srv in replicas] == [1, 1]  # the budget, one try each, went to both


def test_replicas_serving_different_models_are_refused(replicas: list[Replica]) -> None:
    replicas[1].model = "judge-14b"
    backend = fleet([r.url for r in replicas])
    with pytest.raises(ConfigError) as err:
        backend.served_model()
    message = str(err.value)
    assert "\n" not in message and "'judge-7b'" in message and "'judge-14b'" in message
    assert replicas[1].url in message
    with pytest.raises(ConfigError):
        backend.generate(requests(1))
    assert sum(srv.hits for srv in replicas) == 0  # nothing judged by the wrong model


def test_replicas_without_a_path_prefix(replicas: list[Replica]) -> None:
    roots = [r.url.removesuffix("/v1") for r in replicas]
    assert all(c.finish_reason == "stop" for c in fleet(roots).generate(requests(6)))
    assert [srv.paths for srv in replicas] == [{"/chat/completions"}] * 2


def test_a_url_given_twice_is_refused(replicas: list[Replica]) -> None:
    with pytest.raises(ConfigError, match="given twice"):
        fleet([replicas[0].url, replicas[0].url + "/"])
