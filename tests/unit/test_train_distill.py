"""Distillation end to end with a scripted teacher (mock backend) that is wrong on a known share of items."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rmr1.backends import make_backend
from rmr1.errors import InputError
from rmr1.train.distill import ATTEMPTS, HINT_MARKER, STATS, TRAIN, DistillConfig, distill
from rmr1.train.mixes import build_judge_dataset
from rmr1.types import GenerationRequest, PreferencePair
from rmr1.verdicts import parse_verdict

N, WRONG_EVERY = 20, 4  # the teacher's first attempt is wrong on every 4th item: 5 of 20


def _items() -> list[dict]:
    pairs = [
        PreferencePair.from_texts(
            f"Question number {i}?", f"right answer {i}", f"wrong answer {i}", item_id=f"q{i}"
        )
        for i in range(N)
    ]
    return build_judge_dataset(pairs, "cor")


def _truth(request: GenerationRequest) -> tuple[str, int]:
    """Which label the chosen ("right answer") response sits under, and the item number."""
    text = request.messages[-1].content.split(HINT_MARKER)[0]
    number = int(text.split("Question number ")[1].split("?")[0])
    a_block = text.split("Chatbot A: response begins")[1].split("Chatbot A: response ends")[0]
    return ("A" if "right answer" in a_block else "B"), number


def scripted(request: GenerationRequest) -> str:
    """Right unless the item is a planned slip and no hint is given; with a hint it follows the hint."""
    label, number = _truth(request)
    hinted = HINT_MARKER in request.messages[-1].content
    if number % WRONG_EVERY == 0 and not hinted:
        label = "B" if label == "A" else "A"
    return f"<type>Chat</type>\n<eval>Trace for item {number}.</eval>\n<answer>[[{label}]]</answer>"


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_pass_two_repairs_the_failures_and_hides_the_hint(tmp_path: Path) -> None:
    teacher = make_backend("mock", script=scripted)
    stats = distill(teacher, _items(), tmp_path, DistillConfig(batch_size=6))
    assert stats.pass1_correct == N - N // WRONG_EVERY and stats.pass2_attempted == N // WRONG_EVERY
    assert stats.pass2_correct == N // WRONG_EVERY and stats.kept == N
    assert teacher.calls == N + N // WRONG_EVERY  # pass 2 only for the failures
    rows = _read(tmp_path / TRAIN)
    assert {r["pass"] for r in rows if r["id"] in {f"q{i}" for i in range(0, N, WRONG_EVERY)}} == {2}
    for row in rows:
        prompt_text = json.dumps(row["messages"][:-1])
        assert HINT_MARKER not in prompt_text and "Reviewer" not in prompt_text  # the hint is never saved
        assert row["messages"][-1]["role"] == "assistant"
        label = parse_verdict(row["messages"][-1]["content"]).label
        assert label == ("A" if row["winner"] == "model_a" else "B")  # only right traces are kept
    saved = json.loads((tmp_path / STATS).read_text())
    assert saved["pass1_rate"] == pytest.approx(0.75) and saved["repair_rate"] == 1.0
    assert saved["mean_chars"] > 0


def test_unrepaired_items_are_dropped(tmp_path: Path) -> None:
    teacher = make_backend("mock", script=lambda req: "<answer>[[A]]</answer>")
    stats = distill(teacher, _items(), tmp_path)
    assert stats.kept == N // 2 and stats.pass2_attempted == N // 2 and stats.pass2_correct == 0
    assert all(r["winner"] == "model_a" for r in _read(tmp_path / TRAIN))


class Dies(RuntimeError):
    pass


def test_a_killed_run_resumes_without_redoing_work(tmp_path: Path) -> None:
    calls = {"n": 0}

    def dying(request: GenerationRequest) -> str:
        calls["n"] += 1
        if calls["n"] > 8:  # the process dies in the middle of its second batch
            raise Dies()
        return scripted(request)

    with pytest.raises(Dies):
        distill(make_backend("mock", script=dying), _items(), tmp_path, DistillConfig(batch_size=4))
    assert len(_read(tmp_path / ATTEMPTS)) == 8  # two whole batches were logged before the kill
    with (tmp_path / ATTEMPTS).open("a") as handle:
        handle.write('{"id": "q9", "pa')  # and a torn line, as a SIGKILL mid-write leaves
    teacher = make_backend("mock", script=scripted)
    stats = distill(teacher, _items(), tmp_path, DistillConfig(batch_size=4))
    assert teacher.calls == (N - 8) + N // WRONG_EVERY
    assert stats.kept == N and len(_read(tmp_path / TRAIN)) == N
    again = make_backend("mock", script=scripted)
    distill(again, _items(), tmp_path)
    assert again.calls == 0  # everything is done: nothing is asked twice


def test_bad_items_and_hints_are_rejected(tmp_path: Path) -> None:
    items = _items()
    items[3] = {**items[3], "winner": "A"}
    with pytest.raises(InputError, match="winner"):
        distill(make_backend("mock"), items, tmp_path)
    from rmr1.errors import ConfigError

    with pytest.raises(ConfigError, match="previous"):
        DistillConfig(hint="the answer is {verdict}")
