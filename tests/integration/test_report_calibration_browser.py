"""The reliability diagram and decile table of report.html, rendered by a real headless Chromium."""

from __future__ import annotations

import hashlib
import json
import re
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


def script(request: GenerationRequest) -> str:
    """Votes of varied confidence: each call picks A or B from its key's hash."""
    label = "AB"[hashlib.sha256(request.key.encode()).digest()[0] % 2]
    return f"<eval>compared</eval>\n<answer>[[{label}]]</answer>"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("calibration")
    rows = [{"id": f"q{i}", "prompt": f"{i}?", "chosen": "yes", "rejected": "no"} for i in range(30)]
    data = root / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    judge = Judge(MockBackend(script=script), "cor", JudgeConfig(protocol="both", samples=3))
    return evaluate("preference", root / "run", judge=judge, data=str(data)).run_dir


def dump_dom(tmp_path: Path, page: Path) -> str:
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--virtual-time-budget=5000",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--dump-dom",
        f"file://{page}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_reliability_diagram_decodes_and_the_deciles_show(tmp_path: Path, run_dir: Path) -> None:
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    page = dump_dom(tmp_path, run_dir / "report.html")
    assert 'data-js="ready"' in page and 'id="calibration"' in page
    assert len(re.findall(r"<tr><td>\d+</td>", page.split('id="deciles"')[1].split("</table>")[0])) == 10
    # the diagram's PNG, loaded on its own page that records what the browser decoded
    uri = re.search(r'<img alt="Reliability diagram" src="(data:image/png;base64,[^"]+)"', html)
    assert uri is not None
    probe = tmp_path / "probe.html"
    probe.write_text(
        f'<html><body><img id="r" src="{uri.group(1)}" '
        "onload=\"document.body.setAttribute('data-size', this.naturalWidth + 'x' + this.naturalHeight)\">"
        "</body></html>",
        encoding="utf-8",
    )
    size = re.search(r'data-size="(\d+)x(\d+)"', dump_dom(tmp_path, probe))
    assert size is not None, "Chromium could not decode the reliability diagram"
    width, height = int(size.group(1)), int(size.group(2))
    assert width > 300 and height > 250
