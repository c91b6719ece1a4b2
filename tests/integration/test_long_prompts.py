"""Over-long prompts mixed into a real eval with the embedded model (SmolLM2, an 8,192-token window).

The run must finish, log them as too_long and count them; running the same command again makes no model call
(the too_long judgments count as done, unlike failed calls) and leaves the log byte-identical.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORDS = ["apple", "river", "stone", "cloud", "seven", "window", "garden", "copper", "basket", "lantern"]


def _long_text(tokens: int) -> str:
    # Varied words with spaces: about one token each for SmolLM2's tokenizer, so this is over `tokens`.
    return " ".join(WORDS[(i * 7) % len(WORDS)] for i in range(tokens))


def _write(path: Path) -> Path:
    rows = [
        {"id": f"short{i}", "prompt": f"What is {i} plus 1?", "chosen": f"{i + 1}.", "rejected": f"{i + 2}."}
        for i in range(3)
    ]
    rows.insert(
        1, {"id": "one_long", "prompt": "Summarise.", "chosen": _long_text(9000), "rejected": "Short."}
    )
    # each response fits on its own; the two together do not
    rows.insert(
        3, {"id": "both_long", "prompt": "Which?", "chosen": _long_text(4500), "rejected": _long_text(4500)}
    )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _eval(data: Path, out: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    args = [sys.executable, "-m", "rmr1", "eval", "preference", "--data", str(data), "--out", str(out)]
    args += ["--max-new-tokens", "8", "--no-report"]
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=900)


@pytest.mark.slow
def test_over_long_prompts_do_not_break_a_real_run(embedded_model: Path, tmp_path: Path) -> None:
    data, out = _write(tmp_path / "pairs.jsonl"), tmp_path / "run"
    first = _eval(data, out)
    assert first.returncode == 0, first.stderr
    logged = [json.loads(line) for line in (out / "judgments.jsonl").read_text().splitlines()]
    by_id = {j["item_id"]: j for j in logged}
    assert len(logged) == 5
    for item in ("one_long", "both_long"):
        j = by_id[item]
        assert (j["finish_reason"], j["verdict"], j["correct"], j["completion"]) == (
            "too_long",
            None,
            None,
            "",
        )
        assert j["prompt_tokens"] >= 8192 and "8192" in j["parse_error"]
        # The OpenVINO engine (the default on a CPU) cuts its count at the window: it says so, as a lower bound.
        assert j["prompt_tokens"] > 8192 or "at least" in j["parse_error"]
    assert all(by_id[f"short{i}"]["finish_reason"] in ("stop", "length") for i in range(3))
    diagnostics = json.loads((out / "scores.json").read_text())["diagnostics"]
    assert (diagnostics["judgments"], diagnostics["too_long"]) == (5, 2)
    before = (out / "judgments.jsonl").read_bytes()
    again = _eval(data, out)
    assert again.returncode == 0, again.stderr
    assert "5 judgments already logged, 0 to go" in again.stderr
    assert (out / "judgments.jsonl").read_bytes() == before
    assert json.loads((out / "scores.json").read_text())["diagnostics"] == diagnostics
