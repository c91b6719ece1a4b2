"""Run ``rmr1 serve`` as a child process on a free loopback port: for integration tests, benchmarks and
scripts that need a live server and a clean shutdown.

    with ServerProcess.start(["--model", path, "--max-new-tokens", "8"]) as server:
        httpx.get(server.url + "/health")
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from rmr1.errors import BackendError


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """A running ``rmr1 serve``; ``stop()`` sends SIGTERM (graceful shutdown) and returns the exit code.

    Without a ``log`` path the server's output goes to a temporary file, which leaving a ``with`` block
    without an error removes; after an error it stays for reading (its path is ``self.log``).
    """

    def __init__(self, proc: subprocess.Popen[bytes], url: str, log: Path, *, owns_log: bool = False) -> None:
        self.proc, self.url, self.log, self.owns_log = proc, url, log, owns_log

    @classmethod
    def start(
        cls,
        args: Sequence[str],
        *,
        port: int | None = None,
        env: dict[str, str] | None = None,
        ready_timeout: float = 300.0,
        log: Path | None = None,
    ) -> ServerProcess:
        """Start ``rmr1 serve`` with ``args`` (serve options) and wait until /health answers."""
        port = port or free_port()
        argv = [sys.executable, "-m", "rmr1", "serve", "--port", str(port), *args, "--log-level", "warning"]
        return cls.launch(argv, port=port, env=env, ready_timeout=ready_timeout, log=log)

    @classmethod
    def launch(
        cls,
        argv: Sequence[str],
        *,
        port: int,
        env: dict[str, str] | None = None,
        ready_timeout: float = 300.0,
        log: Path | None = None,
    ) -> ServerProcess:
        """Run ``argv`` (any command that serves the app on 127.0.0.1:``port``) and wait until /health answers."""
        import tempfile

        owns_log = log is None
        log = log or Path(tempfile.mkstemp(prefix="rmr1-serve-", suffix=".log")[1])
        child_env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", **(env or {})}
        src = str(Path(__file__).resolve().parents[2])  # this checkout's code, whatever the venv points at
        child_env["PYTHONPATH"] = os.pathsep.join(x for x in (src, child_env.get("PYTHONPATH")) if x)
        with open(log, "ab") as handle:
            proc = subprocess.Popen(list(argv), stdout=handle, stderr=subprocess.STDOUT, env=child_env)
        server = cls(proc, f"http://127.0.0.1:{port}", log, owns_log=owns_log)
        server.wait_ready(ready_timeout)
        return server

    def wait_ready(self, timeout: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BackendError(f"rmr1 serve exited with {self.proc.returncode}: {self.tail()}")
            try:
                if httpx.get(self.url + "/health", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise BackendError(f"rmr1 serve did not answer within {timeout:g} s: {self.tail()}")

    def rss_bytes(self) -> int | None:
        """Resident memory of the server process (Linux), or None where it cannot be read."""
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def tail(self, chars: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> int:
        """SIGKILL: the process dies mid-work, as in a crash or an OOM kill."""
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.wait()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        if exc is None and self.owns_log:
            self.log.unlink(missing_ok=True)


__all__ = ["ServerProcess", "free_port"]
