"""A generic preference file in TRL's formats (JSON, JSONL or Parquet; a file or a folder of files):

- standard: ``prompt``, ``chosen``, ``rejected`` as strings;
- conversational: ``prompt`` a message list, ``chosen`` / ``rejected`` assistant message lists (usually one);
- implicit prompt: no ``prompt``; ``chosen`` / ``rejected`` are whole conversations sharing every turn but the
  last assistant message.

In every case the context is all turns before the final assistant message, which must be the same for both
sides. Optional columns: ``id`` (default: the record's position; ``<file>:<position>`` in a folder) and
``subset`` (default ""). Scores: ``accuracy`` and per-subset ``subsets``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rmr1.benchmarks._io import Record, files_under, read_file
from rmr1.benchmarks._scoring import PairOutcome, accuracy_by_subset, by_item, item_value
from rmr1.stats import Resampling, Sums
from rmr1.types import Message, PreferencePair

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


def _side(record: Record, key: str) -> tuple[tuple[Message, ...], bool]:
    """One response side as messages, and whether it was given as plain text."""
    value = record.get(key)
    if isinstance(value, str):
        return (Message("assistant", value),), True
    if not isinstance(value, list):
        raise record.error(f"must be a string or a list of messages, got {type(value).__name__}", key)
    return record.messages(key), False


def to_pairs(record: Record) -> list[PreferencePair]:
    chosen, chosen_plain = _side(record, "chosen")
    rejected, rejected_plain = _side(record, "rejected")
    prompt = record.data.get("prompt")
    if prompt is None and chosen_plain and rejected_plain:
        raise record.error(
            "missing: plain-text chosen/rejected need a prompt (the implicit-prompt format "
            "needs message lists)",
            "prompt",
        )
    prefix = record.messages("prompt") if prompt is not None else ()
    full_chosen, full_rejected = prefix + chosen, prefix + rejected
    for key, conversation in (("chosen", full_chosen), ("rejected", full_rejected)):
        if not conversation or conversation[-1].role != "assistant":
            raise record.error("must end with an assistant message (the response being judged)", key)
    if full_chosen[:-1] != full_rejected[:-1]:
        raise record.error(
            "continues a different conversation than 'chosen' (all turns before the last "
            "assistant message must match)",
            "rejected",
        )
    raw_id = record.data.get("id")
    subset = record.data.get("subset")
    return [
        PreferencePair(
            item_id=record.item_id("id") if raw_id is not None else str(record.index),
            context=full_chosen[:-1],
            chosen=record.text("chosen", full_chosen[-1].content),
            rejected=record.text("rejected", full_rejected[-1].content),
            subset="" if subset is None else str(subset),
        )
    ]


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
