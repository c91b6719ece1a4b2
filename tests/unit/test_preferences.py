"""The one preference parser: every format users bring, read the same way by judge, eval and train data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rmr1.benchmarks import load_benchmark
from rmr1.errors import InputError
from rmr1.jsonl import pair_from_record
from rmr1.preferences import Unjudgeable, hh_turns, parse_preference
from rmr1.train import mixes


def msg(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


def hh(*turns: str) -> str:
    """An HH transcript from alternating Human / Assistant turns."""
    return "".join(f"\n\n{'Human' if k % 2 == 0 else 'Assistant'}: {t}" for k, t in enumerate(turns))


SYS, USER = msg("system", "Be brief."), msg("user", "Sky colour?")

# (row, format, context as (role, content) pairs, chosen, rejected)
GOOD: list[tuple[str, dict[str, Any], str, list[tuple[str, str]], str, str]] = [
    ("standard", {"prompt": "Sky colour?", "chosen": "Blue.", "rejected": "Green."}, "standard",
     [("user", "Sky colour?")], "Blue.", "Green."),
    ("conversational",
     {"prompt": [SYS, USER], "chosen": [msg("assistant", "Blue.")], "rejected": [msg("assistant", "Green.")]},
     "conversational", [("system", "Be brief."), ("user", "Sky colour?")], "Blue.", "Green."),
    # a message-list prompt with plain-text responses is still conversational
    ("conversational prompt, text sides", {"prompt": [USER], "chosen": "Blue.", "rejected": "Green."},
     "conversational", [("user", "Sky colour?")], "Blue.", "Green."),
    # the case the old jsonl reader got wrong: a multi-turn prompt list must stay a conversation
    ("conversational multi-turn",
     {"prompt": [msg("user", "Hi"), msg("assistant", "Hello."), USER],
      "chosen": [msg("assistant", "Blue.")], "rejected": [msg("assistant", "Green.")]},
     "conversational", [("user", "Hi"), ("assistant", "Hello."), ("user", "Sky colour?")], "Blue.", "Green."),
    ("implicit with system",
     {"chosen": [SYS, USER, msg("assistant", "Blue.")], "rejected": [SYS, USER, msg("assistant", "Green.")]},
     "implicit", [("system", "Be brief."), ("user", "Sky colour?")], "Blue.", "Green."),
    # identical responses: the prefix stops before the final turn, so it is still a (tied) pair
    ("implicit identical sides",
     {"chosen": [USER, msg("assistant", "Blue.")], "rejected": [USER, msg("assistant", "Blue.")]},
     "implicit", [("user", "Sky colour?")], "Blue.", "Blue."),
    ("hh single turn", {"chosen": hh("Sky colour?", "Blue."), "rejected": hh("Sky colour?", "Green.")}, "hh",
     [("user", "Sky colour?")], "Blue.", "Green."),
    ("hh multi turn",
     {"chosen": hh("Hi", "Hello.", "Sky colour?", "Blue.\n\nIt is blue."),
      "rejected": hh("Hi", "Hello.", "Sky colour?", "Green.")},
     "hh", [("user", "Hi"), ("assistant", "Hello."), ("user", "Sky colour?")], "Blue.\n\nIt is blue.", "Green."),
    # TRL-processed HH: the prompt keeps the transcript with an open "Assistant:" slot
    ("hh prompt string",
     {"prompt": hh("Sky colour?") + "\n\nAssistant:", "chosen": " Blue.", "rejected": " Green."},
     "standard", [("user", "Sky colour?")], " Blue.", " Green."),
    ("unlabelled", {"prompt": "Sky colour?", "response_a": "Blue.", "response_b": "Green."}, "unlabelled",
     [("user", "Sky colour?")], "Blue.", "Green."),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "row", "kind", "context", "chosen", "rejected"), GOOD, ids=[g[0] for g in GOOD]
)
def test_every_format_reads_to_the_same_pair(
    name: str, row: dict[str, Any], kind: str, context: list[tuple[str, str]], chosen: str, rejected: str
) -> None:
    parsed = parse_preference(row, source="p.jsonl", line=3, allow_unlabelled=True)
    assert parsed.format == kind
    assert parsed.labelled == (kind != "unlabelled")
    assert [(m.role, m.content) for m in parsed.pair.context] == context
    assert (parsed.pair.chosen, parsed.pair.rejected) == (chosen, rejected)


# (row, field named in the error, a phrase of the message)
BAD: list[tuple[str, dict[str, Any], str, str]] = [
    ("no chosen", {"prompt": "q", "rejected": "b"}, "chosen", "missing"),
    ("plain text, no prompt", {"chosen": "a", "rejected": "b"}, "prompt", "need a prompt"),
    ("wrong type", {"prompt": "q", "chosen": 3, "rejected": "b"}, "chosen", "must be a string or a list"),
    ("mixed kinds", {"chosen": [USER, msg("assistant", "a")], "rejected": hh("q", "b")}, "rejected", "same way"),
    ("bad message", {"prompt": [{"role": "user"}], "chosen": "a", "rejected": "b"}, "prompt[0]", "role"),
    # implicit conversations that diverge before the final assistant turn
    ("implicit no shared prefix",
     {"chosen": [msg("user", "q"), msg("assistant", "a")], "rejected": [msg("user", "other"), msg("assistant", "b")]},
     "rejected", "no common context"),
    ("implicit system in one side only",
     {"chosen": [SYS, USER, msg("assistant", "a")], "rejected": [USER, msg("assistant", "b")]},
     "rejected", "no common context"),
    ("side ends on a user turn", {"prompt": [USER], "chosen": [msg("user", "a")], "rejected": "b"}, "chosen",
     "assistant turn"),
    ("hh no shared prefix", {"chosen": hh("q1", "a"), "rejected": hh("q2", "b")}, "rejected", "no common context"),
    # HH rows whose dialogues differ in length: one side runs on past the shared turns
    ("hh different turn counts", {"chosen": hh("q", "a", "more?", "yes"), "rejected": hh("q", "b")}, "chosen",
     "continues the conversation for 3 turns"),
    ("hh ends with human", {"chosen": hh("q", "a", "q2"), "rejected": hh("q", "a", "q3")}, "chosen",
     "assistant turn"),
    ("hh text before first turn", {"chosen": "Human: q\n\nAssistant: a", "rejected": "intro" + hh("q", "b")},
     "rejected", "not an HH transcript"),
    ("bad id", {"id": True, "prompt": "q", "chosen": "a", "rejected": "b"}, "id", "non-empty string"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "row", "field", "phrase"), BAD, ids=[b[0] for b in BAD])
def test_bad_rows_name_file_line_and_field(name: str, row: dict[str, Any], field: str, phrase: str) -> None:
    with pytest.raises(InputError) as info:
        parse_preference(row, source="p.jsonl", line=7)
    text = str(info.value)
    assert text.startswith(f"p.jsonl, line 7, field '{field}")
    assert phrase in text and "\n" not in text


@pytest.mark.parametrize(
    "row",
    [
        {"chosen": hh("q", "a"), "rejected": hh("q", "")},  # an empty final HH turn
        {"chosen": hh("q", "a"), "rejected": hh("q") + "\n\nAssistant:"},  # the same, with no space
        {"prompt": "q", "chosen": "  ", "rejected": "b"},
    ],
)
def test_empty_response_is_unjudgeable(row: dict[str, Any]) -> None:
    with pytest.raises(Unjudgeable, match=r"p\.jsonl, line 2, field '(chosen|rejected)': is empty"):
        parse_preference(row, source="p.jsonl", line=2)


def test_unlabelled_rows_only_where_allowed() -> None:
    row = {"prompt": "q", "response_a": "a", "response_b": "b"}
    with pytest.raises(InputError, match="field 'chosen'"):
        parse_preference(row)
    assert not parse_preference(row, allow_unlabelled=True).labelled


def test_hh_turns_keep_inner_blank_lines_and_roles() -> None:
    turns = hh_turns("\n\nHuman: line one\n\nline two\n\nAssistant: ok", "chosen")
    assert [(t.role, t.content) for t in turns] == [("user", "line one\n\nline two"), ("assistant", "ok")]


def test_ids_and_subsets() -> None:
    base = {"prompt": "q", "chosen": "a", "rejected": "b"}
    assert parse_preference(base, default_id="d").pair.item_id == "d"
    assert parse_preference({**base, "id": 0}).pair.item_id == "0"  # 0 is an id, not "no id"
    assert parse_preference({**base, "item_id": "x"}).pair.item_id == "x"
    assert parse_preference(base, subset="s").pair.subset == "s"
    assert parse_preference({**base, "subset": "t"}, subset="s").pair.subset == "t"


# --- the three callers read the same rows the same way ----------------------------------------------------

HH_ROW = {
    "chosen": hh("Hi", "Hello.", "Sky colour?", "Blue."),
    "rejected": hh("Hi", "Hello.", "Sky colour?", "Green."),
}


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("row", [g[1] for g in GOOD if g[2] != "unlabelled"], ids=[g[0] for g in GOOD[:-1]])
def test_judge_eval_and_train_agree(tmp_path: Path, row: dict[str, Any]) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [row])
    from_judge, labelled = pair_from_record(row, str(path), 1, default_id="0")
    from_eval = load_benchmark("preference", str(path)).pairs[0]
    from_train = next(mixes.preference_pairs(mixes.load_rows(str(path)), str(path)))
    assert labelled
    assert from_judge == from_eval == from_train


def test_eval_reads_an_hh_file_and_skips_empty_turns(tmp_path: Path) -> None:
    empty = {"chosen": hh("q", "a"), "rejected": hh("q", "")}
    bench = load_benchmark("preference", str(write_jsonl(tmp_path / "hh.jsonl", [HH_ROW, empty])))
    assert [p.question for p in bench.pairs] == ["Sky colour?"]
    assert bench.pairs[0].is_multi_turn
    assert len(bench.skipped) == 1 and "line 2, field 'rejected'" in bench.skipped[0]


def test_eval_error_names_the_file_line_and_field(tmp_path: Path) -> None:
    bad = {"chosen": hh("q", "a", "more?", "yes"), "rejected": hh("q", "b")}
    path = write_jsonl(tmp_path / "hh.jsonl", [HH_ROW, bad])
    with pytest.raises(InputError, match=rf"^{path}, line 2, field 'chosen': continues"):
        load_benchmark("preference", str(path))


def test_train_data_reads_hh(tmp_path: Path) -> None:
    records = mixes.judge_prompts(str(write_jsonl(tmp_path / "hh.jsonl", [HH_ROW, HH_ROW])))
    assert [r["winner"] for r in records] == ["model_a", "model_b"]
    assert all(r["multi_turn"] for r in records)
    assert "Blue." in records[0]["prompt"][-1]["content"] and "Green." in records[0]["prompt"][-1]["content"]
