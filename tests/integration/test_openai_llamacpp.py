"""The openai backend against a real OpenAI-compatible server: llama-cpp-python serving the embedded GGUF.

The server runs as a subprocess on a free loopback port for the whole module and is always terminated at the
end; after every test it must still be alive (a llama.cpp build with kernels this CPU lacks answers /v1/models
and then dies on the first completion). The module makes 15 real completions: 2 + 2 + 1 in the first three
tests and 10 (5 pairs in both orders) through ``rmr1 judge --pairs``. Generations are kept short (16 to 64
tokens) so the file finishes within a few minutes on two CPU cores.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from rmr1.backends.openai import OpenAIBackend
from rmr1.judge import Judge, JudgeConfig
from rmr1.types import GenerationRequest, Message, PreferencePair, SamplingParams

pytestmark = pytest.mark.slow

SRC = Path(__file__).resolve().parents[2] / "src"
STARTUP_S = 120.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"llama_cpp.server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/models", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    pytest.fail(f"llama_cpp.server did not answer within {STARTUP_S:g}s: {log.read_text()[-2000:]}")


@dataclass(frozen=True)
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def assert_alive(self) -> None:
        assert self.proc.poll() is None, (
            f"llama_cpp.server died (exit {self.proc.returncode}): {self.log.read_text()[-2000:]}"
        )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama_cpp is not installed (pip install 'rmr1[llamacpp]')")
    from rmr1.errors import ModelLoadError
    from rmr1.models import embedded_gguf

    try:
        gguf = embedded_gguf()
    except ModelLoadError as exc:
        pytest.skip(str(exc))
    port = _free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
           "--port", str(port), "--n_ctx", "4096"]  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_ready(url, proc, log)
        yield Server(url, proc, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def llama_server(server: Server) -> Iterator[str]:
    """The server's base URL; the test fails if the server did not survive it."""
    yield server.url
    server.assert_alive()


def test_generate_returns_text_and_token_counts(llama_server: str) -> None:
    backend = OpenAIBackend(None, base_url=llama_server, timeout=60.0, max_retries=1)
    sampling = SamplingParams(max_new_tokens=16)
    questions = ["Name a colour.", "What is 2 + 3?"]
    outs = backend.generate([GenerationRequest((Message("user", q),), sampling) for q in questions])
    assert len(outs) == 2
    for out in outs:
        assert out.error is None and out.finish_reason in ("stop", "length")
        assert out.text.strip()
        assert out.prompt_tokens > 0 and 0 < out.completion_tokens <= 16
        assert out.latency_s > 0


def test_judge_with_cor_template(llama_server: str) -> None:
    backend = OpenAIBackend(None, base_url=llama_server, timeout=120.0, max_retries=1)
    pairs = [
        PreferencePair.from_texts("What is the capital of France?", "Paris.", "Berlin.", item_id="0"),
        PreferencePair.from_texts("Is 7 a prime number?", "Yes, 7 is prime.", "No, 7 = 2 * 3.", item_id="1"),
    ]
    judge = Judge(backend, "cor", JudgeConfig(max_new_tokens=64))
    judgments = list(judge.judge(pairs))
    assert [j.item_id for j in judgments] == ["0", "1"]
    for j in judgments:
        assert j.finish_reason in ("stop", "length"), j.parse_error  # a served answer, not a transport error
        assert j.verdict in ("A", "B", None)
        assert j.completion and j.completion_tokens > 0


def test_cli_judge_over_the_server(llama_server: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "rmr1", "judge", "--backend", "openai", "--base-url", llama_server,
           "--prompt", "What is 1 + 1?", "--response-a", "2", "--response-b", "3",
           "--max-new-tokens", "64"]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "verdict" in done.stdout and "tokens:" in done.stdout


def test_build_has_no_amx_kernels() -> None:
    # AMX kernels crash the server on Intel Xeon; the Makefile builds without them (docs/design/portable-builds.md)
    llama_cpp = pytest.importorskip("llama_cpp")
    info = llama_cpp.llama_print_system_info().decode()
    assert "AMX" not in info, info


def test_server_survives_ten_judge_completions(server: Server, tmp_path: Path) -> None:
    questions = [
        ("What is 2 + 2?", "4", "5"),
        ("Name the largest planet.", "Jupiter.", "Mars."),
        ("Is water wet?", "Yes, in the everyday sense.", "Water is a type of rock."),
        ("Spell 'cat' backwards.", "tac", "atc"),
        ("How many days are in a week?", "Seven.", "Ten."),
    ]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        "".join(json.dumps({"prompt": q, "chosen": c, "rejected": r}) + "\n" for q, c, r in questions)
    )
    out = tmp_path / "judgments.jsonl"
    env = {**os.environ, "PYTHONPATH": str(SRC), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "rmr1", "judge", "--backend", "openai", "--base-url", server.url,
           "--pairs", str(pairs), "--protocol", "both", "--max-new-tokens", "32", "--out", str(out)]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2 * len(questions)  # both orders: ten real completions
    for row in rows:
        assert row["finish_reason"] in ("stop", "length"), row  # served, not a transport error
        assert row["completion_tokens"] > 0
    server.assert_alive()
