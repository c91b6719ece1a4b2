"""`rmr1 eval` on the real benchmark files with the real embedded model: all four run files, contract keys.

Kept small (one item, a few new tokens) so it runs in every `make test`; the full-size runs are in the README.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

EXPECTED = {
    "rm-bench": {"chat", "math", "code", "safety", "easy", "normal", "hard", "average"},
    "rmb": {
        "helpfulness_pairwise",
        "harmlessness_pairwise",
        "helpfulness_bon",
        "harmlessness_bon",
        "average",
    },
}
DIAGNOSTICS = {
    "judgments",
    "parse_failure_rate",
    "truncation_rate",
    "position_consistency",
    "a_rate",
    "mean_completion_tokens",
}


@pytest.mark.slow
@pytest.mark.shared
@pytest.mark.parametrize(
    ("benchmark", "folder", "judgments"), [("rm-bench", "rm-bench", 9), ("rmb", "rmb", None)]
)
def test_real_benchmark_run_writes_all_files(
    benchmarks_dir: Path,
    embedded_model: Path,
    tmp_path: Path,
    benchmark: str,
    folder: str,
    judgments: int | None,
) -> None:
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1"}
    args = [
        sys.executable,
        "-m",
        "rmr1",
        "eval",
        benchmark,
        "--data",
        str(benchmarks_dir / folder),
        "--limit",
        "1",
        "--out",
        str(out),
        "--max-new-tokens",
        "8",
    ]
    result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stderr
    for name in ("run.json", "judgments.jsonl", "scores.json", "report.html"):
        assert (out / name).is_file(), name
    scores = json.loads((out / "scores.json").read_text())
    assert EXPECTED[benchmark] <= set(scores)
    assert set(scores["diagnostics"]) >= DIAGNOSTICS
    logged = [json.loads(line) for line in (out / "judgments.jsonl").read_text().splitlines()]
    assert scores["diagnostics"]["judgments"] == len(logged) > 0
    if judgments is not None:  # RM-Bench: all nine style comparisons of the item
        assert sorted(j["pair"] for j in logged) == list(range(judgments))
    run = json.loads((out / "run.json").read_text())
    assert run["benchmark"] == benchmark and run["status"] == "complete"
