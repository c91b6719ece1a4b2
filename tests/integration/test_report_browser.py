"""report.html in a real headless browser: the page's script runs, filters apply, the page renders."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from rmr1.backends.mock import MockBackend
from rmr1.evaluation import evaluate
from rmr1.judge import Judge, JudgeConfig
from rmr1.types import GenerationRequest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).is_file(), reason="chromium is not installed (apt-get install chromium)"
    ),
]

TRACE = (
    "<type>Chat</type>\n<rubric>\n1. Right sum (70%)\n2. Clear (30%)\n</rubric>\n"
    "<eval><quote_A>It is 3.</quote_A> <script>document.title='pwned'</script></eval>\n"
    "<answer>[[{}]]</answer>"
)


def script(request: GenerationRequest) -> str:
    kind = hashlib.sha256(request.key.encode()).digest()[0] % 3
    return TRACE.format("AB"[kind]) if kind < 2 else "<eval>undecided</eval>"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    rows = [
        {
            "id": f"q{i}",
            "prompt": f"What is {i} + 1?",
            "chosen": f"It is {i + 1}.",
            "rejected": f"It is {i + 2}.",
            "subset": ("chat", "math", "code")[i % 3],
        }
        for i in range(12)
    ]
    data = root / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    judge = Judge(MockBackend(script=script), "cor", JudgeConfig(protocol="both"))
    return evaluate("preference", root / "run", judge=judge, data=str(data)).run_dir


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def dom(tmp_path: Path, run_dir: Path, fragment: str = "") -> str:
    done = chromium(tmp_path, "--dump-dom", f"file://{run_dir / 'report.html'}{fragment}")
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def expected(run_dir: Path, outcome: str, subset: str) -> int:
    rows = [json.loads(x) for x in (run_dir / "judgments.jsonl").read_text().splitlines()]
    kind = {True: "correct", False: "wrong", None: "unparsed"}
    return sum(1 for r in rows if kind[r["correct"]] == outcome and r["subset"] == subset)


def test_the_script_runs_and_counts_every_trace(tmp_path: Path, run_dir: Path) -> None:
    page = dom(tmp_path, run_dir)
    assert 'data-js="ready"' in page
    assert "Showing 24 of 24 traces" in page
    assert "<title>rmr1 report" in page  # the model's <script> never ran (it would retitle the page)


@pytest.mark.parametrize("outcome,subset", [("wrong", "math"), ("correct", "chat"), ("unparsed", "code")])
def test_filters_from_the_address_apply(tmp_path: Path, run_dir: Path, outcome: str, subset: str) -> None:
    page = dom(tmp_path, run_dir, f"#outcome={outcome}&subset={subset}")
    want = expected(run_dir, outcome, subset)
    assert f"Showing {want} of 24 traces" in page
    assert page.count('<details class="trace"') - page.count("hidden=") == want


def test_the_page_renders_to_a_screenshot(tmp_path: Path, run_dir: Path) -> None:
    shot = tmp_path / "report.png"
    done = chromium(
        tmp_path,
        "--window-size=1280,2000",
        f"--screenshot={shot}",
        f"file://{run_dir / 'report.html'}#outcome=wrong",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000  # a rendered page, not a blank one
