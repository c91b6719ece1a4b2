"""Judge-prompt datasets: the paper's position rule, layouts, and the three RL sources in their schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rmr1.errors import InputError
from rmr1.prompts import get_template
from rmr1.train import mixes
from rmr1.types import PreferencePair


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def _conv(user: str, reply: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]


def test_positions_alternate_by_one_global_counter() -> None:
    pairs = [PreferencePair.from_texts(f"q{i}", f"good {i}", f"bad {i}", item_id=str(i)) for i in range(5)]
    records = mixes.build_judge_dataset(pairs, "cor")
    assert [r["winner"] for r in records] == ["model_a", "model_b", "model_a", "model_b", "model_a"]
    first, second = records[0]["prompt"][-1]["content"], records[1]["prompt"][-1]["content"]
    assert first.index("good 0") < first.index("bad 0")  # even index: chosen shown as A
    assert second.index("bad 1") < second.index("good 1")  # odd index: chosen shown as B
    later = mixes.build_judge_dataset(pairs[:2], "cor", start=1)  # the counter continues across builds
    assert [r["winner"] for r in later] == ["model_b", "model_a"]


def test_prompt_messages_come_from_the_template_render() -> None:
    pair = PreferencePair.from_texts("What is 2+2?", "4", "5", item_id="x")
    template = get_template("cor")
    record = mixes.judge_record(pair, 0, template)
    expected, _ = template.render(pair.context, "4", "5")
    assert record["prompt"] == [m.to_dict() for m in expected]
    assert mixes.judge_record(pair, 0, get_template("reasoning"))["prompt"][0]["role"] == "user"


def test_multi_turn_items_use_the_multi_turn_layout(tmp_path: Path) -> None:
    context = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "and now?"},
    ]
    rows = [
        {
            "chosen": [*context, {"role": "assistant", "content": "fine"}],
            "rejected": [*context, {"role": "assistant", "content": "bad"}],
        },
        {"prompt": "single", "chosen": "yes", "rejected": "no"},
    ]
    records = mixes.judge_prompts(_jsonl(tmp_path / "p.jsonl", rows))
    assert records[0]["multi_turn"] and "Conversation with Chatbot A" in records[0]["prompt"][-1]["content"]
    assert not records[1]["multi_turn"] and "[Client Question]" in records[1]["prompt"][-1]["content"]


def test_explicit_conversational_format() -> None:
    row = {
        "prompt": [{"role": "user", "content": "q"}],
        "chosen": [{"role": "assistant", "content": "a"}],
        "rejected": [{"role": "assistant", "content": "b"}],
    }
    pair = mixes.pair_from_preference(row, source="f", line=1, default_id="0")
    assert (pair.question, pair.chosen, pair.rejected) == ("q", "a", "b")


@pytest.mark.parametrize(
    "row, field",
    [
        ({"prompt": "q", "chosen": "a"}, "rejected"),
        ({"chosen": "a", "rejected": "b"}, "prompt"),  # plain texts need an explicit prompt
        ({"chosen": _conv("q", "a"), "rejected": _conv("other q", "b")}, "rejected"),  # prefixes differ
        ({"prompt": "q", "chosen": "a", "rejected": "  "}, "rejected"),
    ],
)
def test_bad_rows_name_line_and_field(row: dict[str, Any], field: str) -> None:
    with pytest.raises(InputError) as info:
        mixes.pair_from_preference(row, source="data.jsonl", line=7, default_id="0")
    text = str(info.value)
    assert "data.jsonl" in text and "line 7" in text and f"'{field}'" in text


def test_skywork_source_drops_magpie_ultra(tmp_path: Path) -> None:
    rows = [
        {"chosen": _conv(f"q{i}", "good"), "rejected": _conv(f"q{i}", "bad"), "source": src}
        for i, src in enumerate(
            ["magpie_pro_llama3.1", "magpie_ultra", "offset_bias", "magpie_ultra", "helpsteer2"]
        )
    ]
    pairs = list(mixes.skywork_pairs(mixes.load_rows(_jsonl(tmp_path / "sky.jsonl", rows))))
    assert [p.subset for p in pairs] == ["magpie_pro_llama3.1", "offset_bias", "helpsteer2"]
    assert [p.question for p in pairs] == ["q0", "q2", "q4"]


def test_code_pairs_shuffle_seed_42_then_first_n(tmp_path: Path) -> None:
    import datasets

    rows = [{"input": f"task {i}", "accepted": f"ok {i}", "rejected": f"bug {i}"} for i in range(40)]
    loaded = mixes.load_rows(_jsonl(tmp_path / "code.jsonl", rows))
    cut = mixes.first_after_shuffle(loaded, limit=10)
    kept = [r["input"] for r in cut]
    assert len(kept) == 10 and kept != [f"task {i}" for i in range(10)]
    reference = datasets.Dataset.from_list(rows).shuffle(seed=42)["input"][:10]
    assert kept == reference  # the seed is the paper's, so the same 8,000 come out of the full set
    pairs = list(mixes.code_preference_pairs(cut))
    assert pairs[0].chosen.startswith("ok") and pairs[0].rejected.startswith("bug")


def test_math_step_response_is_initial_steps_plus_full_continuation(tmp_path: Path) -> None:
    rows = [
        {
            "dataset": "MATH",
            "prompt": "Solve x+1=2.",
            "initial_reason_steps": "Step 1: subtract 1.\n",
            "chosen": "Step 2: x=1.",
            "rejected": "Step 2: x=3.",
            "full_chosen": "Step 2: x=1.\nAnswer: 1",
            "full_rejected": "Step 2: x=3.\nAnswer: 3",
            "answer": "1",
        }
    ]
    pair = next(mixes.math_step_pairs(mixes.load_rows(_jsonl(tmp_path / "m.jsonl", rows))))
    assert pair.chosen == "Step 1: subtract 1.\nStep 2: x=1.\nAnswer: 1"
    assert pair.rejected == "Step 1: subtract 1.\nStep 2: x=3.\nAnswer: 3"
    with pytest.raises(InputError, match="full_chosen"):
        next(mixes.math_step_pairs([{"prompt": "p", "initial_reason_steps": "s", "full_rejected": "r"}]))


def test_paper_mixture_from_local_files_is_balanced(tmp_path: Path) -> None:
    sky = [
        {
            "chosen": _conv(f"s{i}", "g"),
            "rejected": _conv(f"s{i}", "b"),
            "source": "magpie_ultra" if i == 0 else "helpsteer2",
        }
        for i in range(4)
    ]
    code = [{"input": f"c{i}", "accepted": "g", "rejected": "b"} for i in range(3)]
    math = [
        {"prompt": f"m{i}", "initial_reason_steps": "s ", "full_chosen": "g", "full_rejected": "b"}
        for i in range(2)
    ]
    sources = mixes.MixtureSources(
        _jsonl(tmp_path / "s.jsonl", sky),
        _jsonl(tmp_path / "c.jsonl", code),
        _jsonl(tmp_path / "m.jsonl", math),
    )
    records = mixes.paper_mixture(sources)
    assert len(records) == 3 + 3 + 2
    assert [r["winner"] for r in records] == ["model_a", "model_b"] * 4
    assert len({r["id"] for r in records}) == len(records)


def test_judge_prompt_files_are_checked(tmp_path: Path) -> None:
    good = [{"prompt": [{"role": "user", "content": "x"}], "winner": "model_b"}]
    assert mixes.judge_prompts(_jsonl(tmp_path / "g.jsonl", good))[0]["winner"] == "model_b"
    bad = [{"prompt": [{"role": "user", "content": "x"}], "winner": "B"}]
    with pytest.raises(InputError, match=r"line 1.*winner"):
        mixes.judge_prompts(_jsonl(tmp_path / "b.jsonl", bad))
    with pytest.raises(InputError, match="file not found"):
        mixes.load_rows(str(tmp_path / "absent.jsonl"))


def test_a_bad_jsonl_line_is_named_before_datasets_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "prefs.jsonl"
    path.write_text('{"prompt": "q", "chosen": "a", "rejected": "b"}\n{"prompt": "q", \n')
    with pytest.raises(InputError, match=r"prefs\.jsonl, line 2: not valid JSON"):
        mixes.load_rows(str(path))
    path.write_text('{"prompt": "q", "chosen": "a", "rejected": "b"}\n[1, 2]\n')
    with pytest.raises(InputError, match=r"line 2: expected a JSON object"):
        mixes.load_rows(str(path))
    path.write_text("\n")
    with pytest.raises(InputError, match=r"prefs\.jsonl: no records"):
        mixes.load_rows(str(path))
