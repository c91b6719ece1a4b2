"""``rmr1 demo --quick``: the whole pipeline on the embedded model finishes, judges each stage into a run directory
in both orders and reports three accuracies with their intervals in summary.json."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

LABELS = {"base": "base", "sft": "SFT", "grpo": "SFT+GRPO"}
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
    folder = tmp_path / "quick"
    summary = json.loads((folder / "summary.json").read_text())
    stages = summary["stages"]
    assert set(stages) == {"base", "sft", "grpo"}
    for name, stage in stages.items():
        assert 0.0 <= stage["low"] <= stage["accuracy"] <= stage["high"] <= 1.0
        assert stage["seconds"] > 0 and stage["judgments"] == 2 * summary["test_pairs"]  # both orders
        # each stage's held-out evaluation is an ordinary run directory, scored and reported by rmr1.evaluation
        run = folder / "runs" / name
        scores = json.loads((run / "scores.json").read_text())
        assert scores["accuracy"] == pytest.approx(stage["accuracy"], abs=1e-4)
        assert scores["intervals"]["accuracy"] == [stage["low"], stage["high"]]
        assert json.loads((run / "run.json").read_text())["protocol"] == "both"
        assert (run / "report.html").is_file()
        line = next(x for x in done.stdout.splitlines() if x.strip().startswith(LABELS[name] + " "))
        assert f"{stage['accuracy']:.1%} [{stage['low']:.1%}, {stage['high']:.1%}]" in line
    assert stages["sft"]["parse_failure_rate"] < stages["base"]["parse_failure_rate"]  # SFT taught the format
    # each training stage against the one before it, paired on the same held-out pairs (rmr1 compare)
    comparisons = summary["comparisons"]
    for later, earlier in (("sft", "base"), ("grpo", "sft")):
        c = comparisons[f"{later}_vs_{earlier}"]
        diff = stages[later]["accuracy"] - stages[earlier]["accuracy"]
        assert c["diff"] == pytest.approx(diff, abs=1e-3) and c["pairs"] == summary["test_pairs"]
        assert c["low"] <= c["diff"] <= c["high"] and 0.0 < c["p_value"] <= 1.0
        line = next(x for x in done.stdout.splitlines() if x.strip().startswith(f"{LABELS[later]} - "))
        shown = re.search(r": ([-+][\d.]+) points \[([-+][\d.]+), ([-+][\d.]+)\]", line)
        assert shown is not None, line
        # the line shows points to 0.1, summary.json fractions to 4 places: they agree to the line's rounding
        for printed, key in zip(shown.groups(), ("diff", "low", "high"), strict=True):
            assert float(printed) == pytest.approx(100 * c[key], abs=0.051)
    assert comparisons["sft_vs_base"]["low"] > 0  # SFT learned, by more than its paired interval
    assert {"distill", "sft", "grpo", "eval base", "eval sft", "eval grpo"} <= set(summary["seconds"])
    assert summary["distill"]["kept"] > 0 and summary["distill"]["pass2_attempted"] > 0
    report = (folder / "report.html").read_text()
    assert "Held-out accuracy" in report and "data:image/png;base64" in report
    assert 'href="runs/grpo/report.html"' in report
    assert (folder / "grpo" / "curves.csv").is_file()
