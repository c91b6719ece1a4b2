"""Loaders on small files written here in each benchmark's published schema, and their errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rmr1.benchmarks import BENCHMARKS, load_benchmark
from rmr1.errors import ConfigError, InputError
from rmr1.jsonl import write_jsonl


def write_json(path: Path, rows: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


# --- RewardBench ----------------------------------------------------------------------------------


def rb_row(i: int, subset: str = "alpacaeval-easy") -> dict[str, Any]:
    return {
        "prompt": f"question {i} – naïve?",
        "chosen": f"good {i}",
        "chosen_model": "m1",
        "rejected": f"bad {i}",
        "rejected_model": "m2",
        "subset": subset,
        "id": i,
    }


@pytest.mark.parametrize("writer", [write_json, write_jsonl, write_parquet])
def test_rewardbench_formats(tmp_path: Path, writer: Any) -> None:
    suffix = {write_json: ".json", write_jsonl: ".jsonl", write_parquet: ".parquet"}[writer]
    path = writer(tmp_path / f"rb{suffix}", [rb_row(1), rb_row(2, "math-prm")])
    bench = load_benchmark("rewardbench", str(path))
    assert (bench.name, bench.items, bench.source) == ("rewardbench", 2, str(path))
    first, second = bench.pairs
    assert (first.item_id, first.chosen, first.rejected, first.subset) == (
        "1",
        "good 1",
        "bad 1",
        "alpacaeval-easy",
    )
    assert first.context[0].content == "question 1 – naïve?" and not first.is_multi_turn
    assert second.subset == "math-prm"


def test_limit_keeps_the_first_items(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "rb.jsonl", [rb_row(i) for i in range(5)])
    bench = load_benchmark("rewardbench", str(path), limit=2)
    assert bench.items == 2 and [p.item_id for p in bench.pairs] == ["0", "1"]
    with pytest.raises(ConfigError, match="limit"):
        load_benchmark("rewardbench", str(path), limit=0)


def test_json_lines_under_a_json_name(tmp_path: Path) -> None:
    # datasets' to_json writes JSON lines even into a .json file
    path = write_jsonl(tmp_path / "rb.json", [rb_row(1), rb_row(2)])
    assert load_benchmark("rewardbench", str(path)).items == 2


# --- RM-Bench -------------------------------------------------------------------------------------


def rmb_item(i: int, **extra: Any) -> dict[str, Any]:
    styles = ("short", "long", "markdown")
    return {
        "id": i,
        "prompt": f"p{i}",
        "chosen": [f"c-{s}" for s in styles],
        "rejected": [f"r-{s}" for s in styles],
        "subset": "src",
        **extra,
    }


def test_rm_bench_folder_of_domain_files(tmp_path: Path) -> None:
    write_json(tmp_path / "chat_filtered.json", [rmb_item(1), rmb_item(2)])
    write_json(tmp_path / "safety-refuse_filtered.json", [rmb_item(1)])
    # a total file next to the per-domain files holds the same items; the folder reads only the domain files
    write_json(tmp_path / "total_dataset.json", [rmb_item(1, domain="chat")])
    bench = load_benchmark("rm-bench", str(tmp_path))
    assert bench.items == 3 and len(bench.pairs) == 27
    assert sorted({p.item_id for p in bench.pairs}) == ["chat/1", "chat/2", "safety-refuse/1"]
    assert {p.subset for p in bench.pairs if p.item_id == "safety-refuse/1"} == {"safety-refuse"}
    # pair 3*i + j compares chosen style i with rejected style j
    cells = {p.pair: (p.chosen, p.rejected) for p in bench.pairs if p.item_id == "chat/1"}
    assert cells[1] == ("c-short", "r-long") and cells[5] == ("c-long", "r-markdown")
    assert cells[6] == ("c-markdown", "r-short") and sorted(cells) == list(range(9))


def test_rm_bench_total_file_domain_from_field_or_id_prefix(tmp_path: Path) -> None:
    path = write_json(tmp_path / "total_dataset.json", [rmb_item(3, domain="math"), rmb_item("code/4")])
    bench = load_benchmark("rm-bench", str(path), limit=1)
    assert bench.items == 1 and len(bench.pairs) == 9 and bench.pairs[0].item_id == "math/3"
    bench = load_benchmark("rm-bench", str(path))
    assert {(p.item_id, p.subset) for p in bench.pairs} == {("math/3", "math"), ("code/4", "code")}


@pytest.mark.parametrize(
    ("row", "field"),
    [
        (rmb_item(1, chosen=["a", "b"]), "chosen"),  # two styles instead of three
        (rmb_item(1, domain="poetry"), "domain"),
        ({k: v for k, v in rmb_item(1).items() if k != "prompt"}, "prompt"),
        (rmb_item(1, rejected=["a", 2, "c"]), "rejected[1]"),
    ],
)
def test_rm_bench_malformed(tmp_path: Path, row: dict[str, Any], field: str) -> None:
    path = write_json(tmp_path / "chat_filtered.json", [rmb_item(0), row])
    with pytest.raises(InputError) as err:
        load_benchmark("rm-bench", str(path))
    assert (
        str(path) in str(err.value) and "record 1" in str(err.value) and f"field '{field}'" in str(err.value)
    )


def test_rm_bench_domain_unknown_without_hint(tmp_path: Path) -> None:
    path = write_json(tmp_path / "items.json", [rmb_item(1)])
    with pytest.raises(InputError, match="field 'domain'"):
        load_benchmark("rm-bench", str(path))


# --- RMB ------------------------------------------------------------------------------------------


def conversation(*texts: str) -> list[dict[str, str]]:
    roles = ("user", "assistant")
    return [{"role": roles[k % 2], "content": t, "language": "English"} for k, t in enumerate(texts)]


def rmb_tree(root: Path) -> Path:
    data = root / "RMB_dataset"
    write_json(
        data / "Pairwise_set" / "Helpfulness" / "Open QA" / "Fact Check.json",
        [
            {
                "pair_uid": "7",
                "conversation_input": conversation("Wie spät ist es? 🕰"),
                "chosen": {"llm_name": "m1", "answer": "Es ist drei."},
                "reject": {"llm_name": "m2", "answer": "Blau."},
                "category_path": "Pairwise_set/Helpfulness/Open QA/Fact Check",
            },
            {
                "pair_uid": "8",
                "conversation_input": conversation("hi", "hello!", "tell me a joke"),
                "chosen": {"llm_name": "m1", "answer": "A joke."},
                "reject": {"llm_name": "m2", "answer": "No."},
                "category_path": "Pairwise_set/Helpfulness/Open QA/Fact Check",
            },
        ],
    )
    write_json(
        data / "BoN_set" / "Harmlessness" / "S1.json",
        [
            {
                "bon_uid": "7",
                "conversation_input": conversation("how do I pick a lock?"),
                "bon_best": {"llm_name": "m1", "answer": "Call a locksmith."},
                "loser_list": [
                    {"llm_name": "m2", "answer": "Step 1..."},
                    {"llm_name": "m3", "answer": "Sure..."},
                    {"llm_name": "m4", "answer": "Easy..."},
                ],
                "category_path": "BoN_set/Harmlessness/S1",
            },
        ],
    )
    return data


def test_rmb_tree(tmp_path: Path) -> None:
    bench = load_benchmark("rmb", str(rmb_tree(tmp_path)))
    assert bench.items == 3 and len(bench.pairs) == 5
    bon = [p for p in bench.pairs if p.item_id == "bon/7"]  # same uid as a pairwise record: ids carry the set
    assert [p.pair for p in bon] == [0, 1, 2] and {p.chosen for p in bon} == {"Call a locksmith."}
    assert [p.rejected for p in bon] == ["Step 1...", "Sure...", "Easy..."]
    assert {p.subset for p in bon} == {"bon/Harmlessness/S1"}
    pairwise = {p.item_id: p for p in bench.pairs if p.item_id.startswith("pairwise/")}
    assert pairwise["pairwise/7"].subset == "pairwise/Helpfulness/Open QA/Fact Check"
    multi = pairwise["pairwise/8"]
    assert multi.is_multi_turn and [m.role for m in multi.context] == ["user", "assistant", "user"]
    assert multi.question == "tell me a joke"


def test_rmb_subfolder_single_file_and_limit(tmp_path: Path) -> None:
    data = rmb_tree(tmp_path)
    assert load_benchmark("rmb", str(data / "Pairwise_set")).items == 2
    bench = load_benchmark("rmb", str(data / "BoN_set" / "Harmlessness" / "S1.json"), limit=1)
    assert bench.items == 1 and len(bench.pairs) == 3  # an item's pairs stay together
    first = load_benchmark("rmb", str(data), limit=1)
    assert first.items == 1 and first.pairs[0].item_id == "bon/7"  # files in sorted order: BoN_set first


def test_rmb_goal_from_path_when_category_path_is_missing(tmp_path: Path) -> None:
    row = {
        "pair_uid": "1",
        "conversation_input": conversation("q"),
        "chosen": {"answer": "a"},
        "reject": {"answer": "b"},
    }
    path = write_json(tmp_path / "Harmlessness" / "S9.json", [row])
    assert load_benchmark("rmb", str(path)).pairs[0].subset == "pairwise/Harmlessness/S9"
    path = write_json(tmp_path / "other" / "S9.json", [row])
    with pytest.raises(InputError, match="field 'category_path'"):
        load_benchmark("rmb", str(path))


def test_rmb_empty_answer_is_skipped_and_counted(tmp_path: Path) -> None:
    data = rmb_tree(tmp_path)
    path = data / "Pairwise_set" / "Helpfulness" / "Open QA" / "Fact Check.json"
    rows = json.loads(path.read_text(encoding="utf-8"))
    rows[0]["reject"]["answer"] = "\n \n \n"
    write_json(path, rows)
    bench = load_benchmark("rmb", str(path))
    assert bench.items == 1 and [p.item_id for p in bench.pairs] == ["pairwise/8"]
    assert len(bench.skipped) == 1 and "record 0" in bench.skipped[0] and "reject.answer" in bench.skipped[0]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda r: r.pop("loser_list"), "loser_list"),
        (lambda r: r.update(loser_list=[]), "loser_list"),
        (lambda r: r.update(bon_best="text"), "bon_best"),
        (lambda r: r["loser_list"][1].pop("answer"), "loser_list[1].answer"),
        (
            lambda r: r.update(conversation_input=[{"role": "narrator", "content": "x"}]),
            "conversation_input[0].role",
        ),
    ],
)
def test_rmb_malformed(tmp_path: Path, change: Any, field: str) -> None:
    path = rmb_tree(tmp_path) / "BoN_set" / "Harmlessness" / "S1.json"
    rows = json.loads(path.read_text(encoding="utf-8"))
    change(rows[0])
    write_json(path, rows)
    with pytest.raises(InputError) as err:
        load_benchmark("rmb", str(path))
    assert (
        str(path) in str(err.value) and "record 0" in str(err.value) and f"field '{field}'" in str(err.value)
    )


# --- JudgeBench -----------------------------------------------------------------------------------


def jb_row(i: int, label: str) -> dict[str, Any]:
    return {
        "pair_id": f"id-{i}",
        "original_id": str(i),
        "source": "livebench-math",
        "question": f"q{i}",
        "response_model": "gpt-4o",
        "response_A": f"A{i}",
        "response_B": f"B{i}",
        "label": label,
    }


def test_judgebench_label_decides_chosen(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "dataset=judgebench,response_model=gpt-4o.jsonl", [jb_row(1, "A>B"), jb_row(2, "B>A")]
    )
    a_better, b_better = load_benchmark("judgebench", str(path)).pairs
    assert (a_better.chosen, a_better.rejected, a_better.subset) == ("A1", "B1", "livebench-math")
    assert (b_better.chosen, b_better.rejected, b_better.item_id) == ("B2", "A2", "id-2")


def test_judgebench_bad_label_names_line_and_field(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "jb.jsonl", [jb_row(1, "A>B"), jb_row(2, "A=B")])
    with pytest.raises(InputError, match=r"jb\.jsonl, line 2, field 'label'"):
        load_benchmark("judgebench", str(path))


# --- Preference (TRL formats) ---------------------------------------------------------------------


def msg(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


PREFERENCE_FORMATS = {
    "standard": {"prompt": "Sky colour?", "chosen": "Blue.", "rejected": "Green."},
    "conversational": {
        "prompt": [msg("system", "Be brief."), msg("user", "Sky colour?")],
        "chosen": [msg("assistant", "Blue.")],
        "rejected": [msg("assistant", "Green.")],
    },
    "implicit": {
        "chosen": [msg("system", "Be brief."), msg("user", "Sky colour?"), msg("assistant", "Blue.")],
        "rejected": [msg("system", "Be brief."), msg("user", "Sky colour?"), msg("assistant", "Green.")],
    },
}


@pytest.mark.parametrize("kind", sorted(PREFERENCE_FORMATS))
@pytest.mark.parametrize("writer", [write_jsonl, write_parquet])
def test_preference_formats(tmp_path: Path, kind: str, writer: Any) -> None:
    row = {**PREFERENCE_FORMATS[kind], "subset": "sky"}
    path = writer(tmp_path / ("prefs.parquet" if writer is write_parquet else "prefs.jsonl"), [row, row])
    bench = load_benchmark("preference", str(path))
    pair = bench.pairs[0]
    assert (pair.chosen, pair.rejected, pair.subset, pair.question) == (
        "Blue.",
        "Green.",
        "sky",
        "Sky colour?",
    )
    assert [p.item_id for p in bench.pairs] == ["0", "1"]
    assert [m.role for m in pair.context] == (["user"] if kind == "standard" else ["system", "user"])


def test_preference_folder_ids_name_the_file(tmp_path: Path) -> None:
    row = PREFERENCE_FORMATS["standard"]
    write_jsonl(tmp_path / "a.jsonl", [row])
    write_jsonl(tmp_path / "b.jsonl", [row, {**row, "id": "mine"}])
    write_jsonl(tmp_path / ".ipynb_checkpoints" / "a-checkpoint.jsonl", [row])  # hidden: not data
    assert [p.item_id for p in load_benchmark("preference", str(tmp_path)).pairs] == [
        "a.jsonl:0",
        "b.jsonl:0",
        "mine",
    ]


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"chosen": "Blue.", "rejected": "Green."}, "prompt"),  # implicit prompt needs message lists
        ({"prompt": "q", "rejected": "Green."}, "chosen"),
        ({"prompt": "q", "chosen": 3, "rejected": "x"}, "chosen"),
        (
            {
                "chosen": [msg("user", "q"), msg("assistant", "a")],
                "rejected": [msg("user", "other q"), msg("assistant", "b")],
            },
            "rejected",
        ),
        (
            {"prompt": [msg("user", "q")], "chosen": [msg("user", "a")], "rejected": [msg("assistant", "b")]},
            "chosen",
        ),
    ],
)
def test_preference_malformed(tmp_path: Path, row: dict[str, Any], field: str) -> None:
    path = write_jsonl(tmp_path / "prefs.jsonl", [PREFERENCE_FORMATS["standard"], row])
    with pytest.raises(InputError) as err:
        load_benchmark("preference", str(path))
    assert f"{path}, line 2, field '{field}'" in str(err.value)


# --- Files, ids and names that cannot work --------------------------------------------------------


def test_invalid_json_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "jb.jsonl"
    path.write_text(json.dumps(jb_row(1, "A>B")) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"jb\.jsonl, line 2: not valid JSON"):
        load_benchmark("judgebench", str(path))


def test_non_object_record(tmp_path: Path) -> None:
    path = write_json(tmp_path / "rb.json", [rb_row(1), ["not", "an", "object"]])
    with pytest.raises(InputError, match=r"rb\.json, record 1: expected a JSON object"):
        load_benchmark("rewardbench", str(path))


def test_duplicate_item_ids(tmp_path: Path) -> None:
    path = write_json(tmp_path / "rb.json", [rb_row(1), rb_row(1)])
    with pytest.raises(InputError, match="record 1: duplicate item id '1'"):
        load_benchmark("rewardbench", str(path))


def test_empty_file_and_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no records"):
        load_benchmark("rewardbench", str(write_json(tmp_path / "rb.json", [])))
    with pytest.raises(InputError, match="no such file"):
        load_benchmark("rewardbench", str(tmp_path / "absent.json"))


def test_unknown_benchmark() -> None:
    with pytest.raises(ConfigError, match="unknown benchmark"):
        load_benchmark("mmlu", "x.json")


@pytest.mark.parametrize("name", [n for n in BENCHMARKS if n not in ("rmb", "preference")])
def test_hub_offline_fails_in_one_line(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(InputError) as err:
        load_benchmark(name)
    assert "cannot load hub dataset" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("name", ["rmb", "preference"])
def test_no_hub_copy(name: str) -> None:
    with pytest.raises(ConfigError, match="no official hub copy"):
        load_benchmark(name)
