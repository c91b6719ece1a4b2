"""GRPO stretches with every group unanimous (rmr1.train.stalls) and the notes a run gets for them."""

from __future__ import annotations

import json
from pathlib import Path

from rmr1.train.config import GRPORecipe
from rmr1.train.grpo import with_stall_notes
from rmr1.train.sft import TrainResult
from rmr1.train.stalls import stalled_stretches


def rows(zero_std: list[float], accuracy: list[float] | None = None) -> list[dict[str, float]]:
    acc = accuracy or [0.75] * len(zero_std)
    return [
        {"step": i + 1, "frac_reward_zero_std": z, "judge/accuracy": a}
        for i, (z, a) in enumerate(zip(zero_std, acc, strict=True))
    ]


def test_a_healthy_run_has_no_stall() -> None:
    assert stalled_stretches(rows([0.5, 0.0, 1.0, 0.5, 1.0, 1.0, 0.0])) == []


def test_three_unanimous_steps_in_a_row_are_a_stall() -> None:
    found = stalled_stretches(rows([0.5, 1.0, 1.0, 1.0, 0.5, 1.0, 1.0]))
    assert [(s.first, s.last, s.steps) for s in found] == [(2, 4, 3)]


def test_a_stall_running_to_the_end_is_closed() -> None:
    found = stalled_stretches(rows([0.0, 0.5, 1.0, 1.0, 1.0, 1.0]))
    assert [(s.first, s.last) for s in found] == [(3, 6)]


def test_min_steps_sets_the_length() -> None:
    data = rows([1.0, 1.0, 0.0, 1.0])
    assert [(s.first, s.last) for s in stalled_stretches(data, min_steps=2)] == [(1, 2)]
    assert [(s.first, s.last) for s in stalled_stretches(data, min_steps=1)] == [(1, 2), (4, 4)]


def test_rows_without_the_metric_are_skipped() -> None:
    data = [*rows([1.0, 1.0]), {"step": 3, "loss": 0.1}, *rows([1.0])]
    data[-1]["step"] = 4
    data.append({"step": 4, "train_steps_per_second": 0.03})
    assert [(s.first, s.last) for s in stalled_stretches(data)] == [(1, 4)]


def test_half_right_marks_a_one_position_judge() -> None:
    stuck = stalled_stretches(rows([1.0, 1.0, 1.0], [0.5, 0.5, 0.5]))[0]
    mixed = stalled_stretches(rows([1.0, 1.0, 1.0], [0.5, 1.0, 0.5]))[0]
    assert stuck.half_right and not mixed.half_right
    assert "one position" in stuck.describe(both_orders=True)
    assert "one position" not in stuck.describe(both_orders=False)
    assert "one position" not in mixed.describe(both_orders=True)
    assert "steps 1-3" in stuck.describe(both_orders=True)


def write_curves(out: Path, data: list[dict[str, float]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "curves.jsonl").write_text("".join(json.dumps(r) + "\n" for r in data), encoding="utf-8")


def test_a_run_gets_a_note_and_a_warning_per_stall(tmp_path: Path) -> None:
    out = tmp_path / "grpo"
    write_curves(out, rows([0.5, 1.0, 1.0, 1.0, 1.0], [0.6, 0.5, 0.5, 0.5, 0.5]))
    recipe = GRPORecipe(output_dir=str(out), paired_orders=True)
    logged: list[str] = []
    result = with_stall_notes(TrainResult(out, 5, 1.0, {}, ("earlier note",)), recipe, logged.append)
    assert result.notes[0] == "earlier note"
    assert len(result.notes) == 2 and "steps 2-5" in result.notes[1] and "one position" in result.notes[1]
    assert logged == [f"warning: {result.notes[1]}"]


def test_a_run_without_stalls_is_returned_as_is(tmp_path: Path) -> None:
    out = tmp_path / "grpo"
    write_curves(out, rows([0.5, 1.0, 0.0]))
    before = TrainResult(out, 3, 1.0, {})
    logged: list[str] = []
    assert with_stall_notes(before, GRPORecipe(output_dir=str(out)), logged.append) is before
    assert logged == []
