"""Screening GRPO's pairs with the starting policy (rmr1.train.screen), on the mock backend."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rmr1.backends.mock import MockBackend
from rmr1.errors import InputError
from rmr1.judge import Judge, JudgeConfig
from rmr1.testing import write_addition_pairs
from rmr1.train.screen import outcomes, screen_pairs
from rmr1.types import GenerationRequest

# pair i: i % 3 == 0 always right, 1 always answers A (right in one order), 2 always wrong
KIND = {0: "right", 1: "always-a", 2: "wrong"}


def script(request: GenerationRequest) -> str:
    text = "\n".join(m.content for m in request.messages)
    i = int(re.search(r"What is (\d+) \+ 1\?", text).group(1))  # type: ignore[union-attr]
    right_first = text.index(f"It is {i + 1}.") < text.index(f"It is {i + 2}.")
    kind = KIND[i % 3]
    if kind == "always-a":
        return "<answer>[[A]]</answer>"
    letter = "A" if right_first == (kind == "right") else "B"
    return f"<answer>[[{letter}]]</answer>"


def judge() -> Judge:
    return Judge(MockBackend(script=script), "cor", JudgeConfig(protocol="both"))


def test_keeps_the_pairs_not_solved_in_both_orders(tmp_path: Path) -> None:
    data = write_addition_pairs(tmp_path / "pool.jsonl", 9)
    result = screen_pairs(data, tmp_path / "hard.jsonl", tmp_path / "run", judge=judge(), report=False)
    kept = [json.loads(line) for line in (tmp_path / "hard.jsonl").read_text().splitlines()]
    assert [r["id"] for r in kept] == ["q1", "q2", "q4", "q5", "q7", "q8"]
    assert kept[0] == json.loads(data.read_text().splitlines()[1])  # written as read
    assert (result.screened, result.kept, result.wrong_every_order, result.skipped) == (9, 6, 3, 0)
    # the always-A pairs (1, 4, 7) failed in one order by naming A in both; the always-wrong ones named both
    assert result.same_letter == {"A": 3, "B": 0}
    solved, one_letter, wrong = (outcomes(result.run_dir)[f"q{i}"] for i in range(3))
    assert (solved.right, solved.made, solved.one_letter) == (2, 2, None)
    assert (one_letter.right, one_letter.made, one_letter.one_letter) == (1, 2, "A")
    assert (wrong.right, wrong.made, wrong.letters, wrong.one_letter) == (0, 2, {"A", "B"}, None)


def test_limit_screens_only_the_first_pairs_and_a_rerun_resumes(tmp_path: Path) -> None:
    data = write_addition_pairs(tmp_path / "pool.jsonl", 9)
    first = screen_pairs(
        data, tmp_path / "hard.jsonl", tmp_path / "run", judge=judge(), limit=4, report=False
    )
    assert (first.screened, first.kept) == (4, 2)
    calls: list[str] = []

    def counting(request: GenerationRequest) -> str:
        calls.append(request.key)
        return script(request)

    again = Judge(MockBackend(script=counting), "cor", JudgeConfig(protocol="both"))
    second = screen_pairs(data, tmp_path / "hard.jsonl", tmp_path / "run", judge=again, limit=6, report=False)
    assert (second.screened, second.kept) == (6, 4)
    assert len(calls) == 4  # only pairs 5 and 6, in both orders


def test_refuses_to_overwrite_its_input_and_a_missing_file(tmp_path: Path) -> None:
    data = write_addition_pairs(tmp_path / "pool.jsonl", 3)
    with pytest.raises(InputError, match="would overwrite"):
        screen_pairs(data, data, tmp_path / "run", judge=judge())
    assert len(data.read_text().splitlines()) == 3
    with pytest.raises(InputError, match="no such file"):
        screen_pairs(tmp_path / "missing.jsonl", tmp_path / "out.jsonl", tmp_path / "run", judge=judge())


def test_judge_options_without_a_protocol_screen_both_orders(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from rmr1.judge_options import JudgeOptions
    from rmr1.train import screen

    seen = {}

    def fake_evaluate(benchmark, out, *, judge=None, **settings):  # type: ignore[no-untyped-def]
        seen["protocol"] = judge.protocol
        raise RuntimeError("stop")

    monkeypatch.setattr("rmr1.evaluation.evaluate", fake_evaluate)
    data = write_addition_pairs(tmp_path / "pool.jsonl", 3)
    with pytest.raises(RuntimeError):
        screen.screen_pairs(data, tmp_path / "o.jsonl", tmp_path / "run", judge=JudgeOptions(model="m"))
    assert seen["protocol"] == "both"
    with pytest.raises(RuntimeError):
        screen.screen_pairs(
            data, tmp_path / "o.jsonl", tmp_path / "run", judge=JudgeOptions(model="m", protocol="single")
        )
    assert seen["protocol"] == "single"
