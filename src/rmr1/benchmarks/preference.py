"""A generic preference file (JSON, JSONL or Parquet; a file or a folder of files), in any format
``rmr1.preferences`` reads: TRL's standard, conversational and implicit-prompt formats, and Anthropic HH
transcripts (``chosen`` / ``rejected`` whole ``\n\nHuman: ... \n\nAssistant: ...`` dialogues).

The context is the conversation both sides share; each side adds one assistant turn (the response judged).
Optional columns: ``id`` (default: the record's position; ``<file>:<position>`` in a folder) and ``subset``
(default ""). A record with an empty response is skipped and counted. Scores: ``accuracy`` and per-subset
``subsets``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rmr1.benchmarks._io import Record, Skip, files_under, read_file
from rmr1.benchmarks._scoring import PairOutcome, accuracy_by_subset, by_item, item_value
from rmr1.errors import InputError
from rmr1.preferences import Unjudgeable, parse_preference
from rmr1.stats import Resampling, Sums
from rmr1.types import PreferencePair

HUB = None  # a user's file; a hub id given as the path is loaded from its "train" split (or "id:split")


def read(path: Path) -> Iterator[Record]:
    if not path.is_dir():
        yield from read_file(path)
        return
    for file in files_under(path):
        name = file.relative_to(path).as_posix()
        for record in read_file(file):
            if record.data.get("id") is None:  # positions repeat across files: name the file in the id
                record = dataclasses.replace(record, data={**record.data, "id": f"{name}:{record.index}"})
            yield record


def to_pairs(record: Record) -> list[PreferencePair]:
    try:
        parsed = parse_preference(record.data, default_id=str(record.index))
    except Unjudgeable as exc:  # an empty response: counted as skipped, like the other benchmarks
        raise Skip(exc.bare, record, exc.field or "chosen") from None
    except InputError as exc:
        raise record.error(exc.bare, exc.field) from None
    return [parsed.pair]


def score(outcomes: list[PairOutcome], unparsed_score: float) -> dict[str, Any]:
    items = by_item(outcomes)
    values = [item_value(pairs, unparsed_score) for pairs in items.values()]
    return {
        "accuracy": sum(values) / len(values) if values else None,
        "subsets": accuracy_by_subset(outcomes, unparsed_score),
    }


def _headline(sums: Sums) -> dict[str, np.ndarray]:
    return {"accuracy": sums.ratio("v", "n")}


def resampling(outcomes: list[PairOutcome], unparsed_score: float) -> Resampling:
    """Items resampled as one pool: the accuracy is the mean of item values."""
    out = Resampling(_headline)
    for item_id, pairs in by_item(outcomes).items():
        out.add(item_id, {"v": item_value(pairs, unparsed_score), "n": 1.0})
    return out
