"""``rmr1 demo --quick``: the whole pipeline on the embedded model finishes and reports three accuracies."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.mark.slow
def test_quick_demo_runs_end_to_end(embedded_model: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": SRC, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "rmr1", "demo", "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("held-out accuracy"))
    assert re.search(r"base [\d.]+%, sft [\d.]+%, grpo [\d.]+%", line)
    folder = tmp_path / "quick"
    summary = json.loads((folder / "summary.json").read_text())
    assert set(summary["accuracy"]) == {"base", "sft", "grpo"}
    assert {"distill", "sft", "grpo", "eval base", "eval sft", "eval grpo"} <= set(summary["seconds"])
    assert summary["distill"]["kept"] > 0 and summary["distill"]["pass2_attempted"] > 0
    assert summary["parsed"]["sft"] > summary["parsed"]["base"]  # SFT taught the verdict format
    report = (folder / "report.html").read_text()
    assert "Held-out accuracy" in report and "data:image/png;base64" in report
    assert (folder / "grpo_curves.png").is_file() and (folder / "grpo" / "curves.csv").is_file()
