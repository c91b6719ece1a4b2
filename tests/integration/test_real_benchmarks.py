"""The real benchmark copies in ../shared/benchmarks load as they are; counts match the raw files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rmr1.benchmarks import load_benchmark, score_judgments
from rmr1.types import Judgment

pytestmark = pytest.mark.shared


def raw_rows(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    return rows


def all_right(pairs: list[Any]) -> list[Judgment]:
    return [
        Judgment(
            item_id=p.item_id,
            pair=p.pair,
            subset=p.subset,
            order="AB",
            sample=0,
            verdict="A",
            correct=True,
            finish_reason="stop",
            completion="",
        )
        for p in pairs
    ]


def test_rm_bench_every_file(benchmarks_dir: Path) -> None:
    folder = benchmarks_dir / "rm-bench"
    files = sorted(folder.glob("*.json"))
    assert files
    total = 0
    for file in files:
        bench = load_benchmark("rm-bench", str(file))
        rows = raw_rows(file)
        domain = file.name.removesuffix("_filtered.json")
        assert bench.items == len(rows) and len(bench.pairs) == 9 * len(rows) and not bench.skipped
        assert {p.subset for p in bench.pairs} == {domain}
        assert sorted(p.pair for p in bench.pairs[:9]) == list(range(9))
        total += len(rows)
    whole = load_benchmark("rm-bench", str(folder))
    assert whole.items == total and len({p.item_id for p in whole.pairs}) == total
    scores = score_judgments("rm-bench", all_right(whole.pairs))
    present = {d for d in ("chat", "math", "code", "safety") if scores[d] is not None}
    assert all(scores[d] == 1.0 for d in present) and scores["average"] == 1.0
    assert present == {"chat", "code", "safety"}  # our copy has no math file


def _expected(row: dict[str, Any]) -> tuple[int, bool]:
    """(pairs the raw record gives, whether an empty answer gets it skipped)."""
    answers = [row["chosen"], row["reject"]] if "pair_uid" in row else [row["bon_best"], *row["loser_list"]]
    empty = any(not a["answer"].strip() for a in answers)
    return len(answers) - 1, empty


def test_rmb_every_file(benchmarks_dir: Path) -> None:
    files = sorted((benchmarks_dir / "rmb").rglob("*.json"))
    assert files
    for file in files:
        bench = load_benchmark("rmb", str(file))
        expected = [_expected(row) for row in raw_rows(file)]
        kept = [n for n, empty in expected if not empty]
        assert bench.items == len(kept) and len(bench.pairs) == sum(kept), file
        assert len(bench.skipped) == len(expected) - len(kept), file
        kind = "bon" if "BoN_set" in file.parts else "pairwise"
        goal = "Helpfulness" if "Helpfulness" in file.parts else "Harmlessness"
        assert all(p.subset.startswith(f"{kind}/{goal}/") for p in bench.pairs), file


def test_rmb_whole_tree(benchmarks_dir: Path) -> None:
    bench = load_benchmark("rmb", str(benchmarks_dir / "rmb"))
    kinds = {p.item_id.split("/")[0] for p in bench.pairs}
    assert kinds == {"pairwise", "bon"}
    assert any(p.is_multi_turn for p in bench.pairs)
    bon_sizes: dict[str, int] = {}
    for p in bench.pairs:
        if p.item_id.startswith("bon/"):
            bon_sizes[p.item_id] = bon_sizes.get(p.item_id, 0) + 1
    assert set(bon_sizes.values()) <= set(range(2, 7))  # 2-6 losers per BoN item
    scores = score_judgments("rmb", all_right(bench.pairs))
    assert [
        scores[k]
        for k in (
            "helpfulness_pairwise",
            "harmlessness_pairwise",
            "helpfulness_bon",
            "harmlessness_bon",
            "average",
        )
    ] == [1.0] * 5
