"""ServerProcess cleans up the temporary log it made for itself, and only when nothing went wrong."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from rmr1.serve.process import ServerProcess, free_port

# A stand-in for `rmr1 serve`: answers /health on the port it is given, prints one line, exits on SIGTERM.
HEALTH_SERVER = """
import http.server, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
    def log_message(self, *args):
        pass
print("listening", flush=True)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def _launch(log: Path | None = None) -> ServerProcess:
    port = free_port()
    return ServerProcess.launch(
        [sys.executable, "-c", HEALTH_SERVER, str(port)], port=port, ready_timeout=30, log=log
    )


def test_a_clean_exit_removes_the_temporary_log() -> None:
    with _launch() as server:
        assert httpx.get(server.url + "/health").status_code == 200
        log = server.log
        assert log.exists() and "listening" in server.tail()
    assert not log.exists()


def test_an_error_inside_the_block_keeps_the_log_for_reading() -> None:
    with pytest.raises(RuntimeError), _launch() as server:
        log = server.log
        raise RuntimeError("the test failed")
    assert server.proc.poll() is not None  # stopped all the same
    assert "listening" in log.read_text()
    log.unlink()


def test_a_log_path_given_by_the_caller_is_never_removed(tmp_path: Path) -> None:
    with _launch(tmp_path / "serve.log") as server:
        assert server.url.startswith("http://127.0.0.1:")
    assert "listening" in (tmp_path / "serve.log").read_text()
