"""JudgeBench: JSONL records {pair_id, original_id, source, question, response_model, response_A, response_B,
label "A>B" | "B>A"}; the chosen response is the one the label puts first. Subset = ``source``.

Scoring, JudgeBench's own two-order rule: each judged order's (voted) decision scores +1 when it picks the
better response, -1 when it picks the worse, 0 when undecided; a pair is correct when the sum is > 0. So a
pair judged in both orders with opposite picks is wrong, and an undecided order never earns credit: the rule
decides what "unparsed" is worth here, and ``unparsed_score`` does not apply. ``by_category`` groups the
sources into the four categories JudgeBench reports (knowledge = mmlu-pro-*, reasoning, math, coding).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rmr1.benchmarks._io import Record, files_under, read_file
from rmr1.benchmarks._scoring import PairOutcome, by_item
from rmr1.stats import Resampling, Sums
from rmr1.types import PreferencePair

HUB = ("ScalerLab/JudgeBench", "gpt")
LABELS = {"A>B": ("response_A", "response_B"), "B>A": ("response_B", "response_A")}
_CATEGORY_PREFIXES = (
    ("mmlu-pro", "knowledge"),
    ("livebench-reasoning", "reasoning"),
    ("livebench-math", "math"),
    ("livecodebench", "coding"),
)


def read(path: Path) -> Iterator[Record]:
    for file in files_under(path) if path.is_dir() else [path]:
        yield from read_file(file)


def to_pairs(record: Record) -> list[PreferencePair]:
    label = record.get("label")
    if label not in LABELS:
        raise record.error(f"must be 'A>B' or 'B>A', got {label!r}", "label")
    better, worse = LABELS[label]
    meta = {k: record.data[k] for k in ("original_id", "response_model") if k in record.data}
    return [
        PreferencePair(
            item_id=record.item_id("pair_id"),
            context=record.messages("question"),
            chosen=record.text(better),
            rejected=record.text(worse),
            subset=record.text("source", allow_empty=True),
            metadata={**meta, "label": label},
        )
    ]


def category(source: str) -> str:
    for prefix, name in _CATEGORY_PREFIXES:
        if source.startswith(prefix):
            return name
    return source


def pair_correct(outcome: PairOutcome) -> bool:
    total = sum(0 if d is None else (1 if d else -1) for d in outcome.decisions.values())
    return total > 0


def score(outcomes: list[PairOutcome], unparsed_score: float) -> dict[str, Any]:
    del unparsed_score  # JudgeBench's rule fixes an undecided order at 0 points (see the module docstring)
    groups: dict[str, dict[str, list[bool]]] = {
        "by_source": defaultdict(list),
        "by_category": defaultdict(list),
    }
    results: list[bool] = []
    for pairs in by_item(outcomes).values():
        correct = all(pair_correct(p) for p in pairs)  # one pair per item; all() keeps odd inputs safe
        source = pairs[0].subset
        results.append(correct)
        groups["by_source"][source].append(correct)
        groups["by_category"][category(source)].append(correct)
    out: dict[str, Any] = {"accuracy": sum(results) / len(results) if results else None}
    for key, values in groups.items():
        out[key] = {name: sum(v) / len(v) for name, v in sorted(values.items())}
    return out


def _headline(sums: Sums) -> dict[str, np.ndarray]:
    return {"accuracy": sums.ratio("correct", "n")}


def resampling(outcomes: list[PairOutcome], unparsed_score: float) -> Resampling:
    """Items (one pair each) resampled as one pool: the accuracy is a plain mean over pairs."""
    del unparsed_score  # as in ``score``
    out = Resampling(_headline)
    for item_id, pairs in by_item(outcomes).items():
        out.add(item_id, {"correct": float(all(pair_correct(p) for p in pairs)), "n": 1.0})
    return out
