"""Benchmarks: load one into preference pairs, and score judgments of those pairs the official way.

Each benchmark is a module imported on first use (``rewardbench``, ``rewardbench2``, ``rm_bench``, ``rmb``,
``judgebench``, ``preference``) with four names:

- ``HUB``: ``(hub id, split)`` used when no path is given; None when there is no official hub copy;
- ``read(path)``: the records of a local file or folder in the benchmark's own published layout;
- ``to_pairs(record)``: one record -> the pairs of one item (``Skip`` for a record that cannot be judged);
- ``score(outcomes, unparsed_score)``: per-pair outcomes -> the official numbers (CONTRACTS.md keys);
- ``resampling(outcomes, unparsed_score)`` (optional): the same outcomes as an ``rmr1.stats.Resampling`` (per
  item sums and a vectorised headline function), from which the bootstrap intervals and ``rmr1 compare`` come.

A module that needs more than pair outcomes (RewardBench 2's Ties reads pointwise ratings) also defines
``score_judgments(judgments, unparsed_score)``, which is then used instead.

Scoring rules, record quirks and the skip-versus-error decisions: docs/design/benchmarks.md.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from rmr1.benchmarks._io import Record, Skip, is_hub_id, read_hub
from rmr1.benchmarks._scoring import PairOutcome, pair_outcomes
from rmr1.errors import ConfigError, InputError
from rmr1.stats import Resampling, bootstrap_intervals
from rmr1.types import Judgment, PreferencePair

BENCHMARKS = ("rewardbench", "rewardbench2", "rm-bench", "rmb", "judgebench", "preference")
_MODULES = {
    "rewardbench": "rewardbench",
    "rewardbench2": "rewardbench2",
    "rm-bench": "rm_bench",
    "rmb": "rmb",
    "judgebench": "judgebench",
    "preference": "preference",
}
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Benchmark:
    name: str  # one of BENCHMARKS
    pairs: list[PreferencePair]  # every comparison to judge; an item's pairs are adjacent
    source: str  # the path or hub id loaded
    items: int  # number of benchmark items (before expansion into pairs)
    skipped: tuple[str, ...] = ()  # records left out because they cannot be judged, each with its location


def _module(name: str) -> ModuleType:
    if name not in _MODULES:
        raise ConfigError(f"unknown benchmark {name!r}; choose one of {', '.join(BENCHMARKS)}")
    return importlib.import_module(f"rmr1.benchmarks.{_MODULES[name]}")


def _records(name: str, module: ModuleType, path: str | None) -> tuple[Iterator[Record], str]:
    hub: tuple[str, str] | None = module.HUB
    if path is None:
        if hub is None:
            raise ConfigError(f"{name} has no official hub copy; pass the path of a local copy (--data PATH)")
        return read_hub(*hub), hub[0]
    if is_hub_id(path):
        return read_hub(path, hub[1] if hub else "train"), path
    local = Path(path)
    if not local.exists():
        raise InputError("no such file or folder", source=path)
    return module.read(local), path


def load_benchmark(name: str, path: str | None = None, *, limit: int | None = None) -> Benchmark:
    """Load a benchmark from a local file/folder or (no path, or a hub id) from the hub.

    ``limit`` keeps the first N items; an item's pairs stay together.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"limit must be a positive integer, got {limit!r}")
    module = _module(name)
    records, source = _records(name, module, path)
    pairs: list[PreferencePair] = []
    seen: dict[tuple[str, int], str] = {}
    skipped: list[str] = []
    items = 0
    for record in records:
        if limit is not None and items >= limit:
            break
        try:
            item_pairs: list[PreferencePair] = module.to_pairs(record)
        except Skip as skip:
            skipped.append(skip.describe())
            continue
        except InputError as exc:  # e.g. PreferencePair's own checks, which know the field but not the file
            raise record.locate(exc) from None
        for pair in item_pairs:
            key = (pair.item_id, pair.pair)
            if key in seen:
                raise record.error(f"duplicate item id {pair.item_id!r} (first seen at {seen[key]})")
            seen[key] = f"{record.source}, {record.where}"
        pairs.extend(item_pairs)
        items += 1
    if skipped:
        _log.warning(
            "%s: skipped %d record(s) that cannot be judged, first: %s", name, len(skipped), skipped[0]
        )
    if not items:
        what = f"no judgeable records ({len(skipped)} skipped)" if skipped else "no records found"
        raise InputError(what, source=source)
    return Benchmark(name=name, pairs=pairs, source=source, items=items, skipped=tuple(skipped))


def resampling(name: str, outcomes: list[PairOutcome], unparsed_score: float) -> Resampling | None:
    """The benchmark's items as a bootstrap ``Resampling``; None for a scorer that has none."""
    build = getattr(_module(name), "resampling", None)
    return None if build is None else build(outcomes, unparsed_score)  # type: ignore[no-any-return]


def judgment_resampling(name: str, judgments: Iterable[Judgment], unparsed_score: float) -> Resampling | None:
    """``resampling`` from judgments, for scorers that read more than pair outcomes (RewardBench 2's Ties)."""
    own = getattr(_module(name), "judgment_resampling", None)
    if own is not None:
        return own(judgments, unparsed_score)  # type: ignore[no-any-return]
    return resampling(name, pair_outcomes(judgments), unparsed_score)


def score_judgments(
    name: str,
    judgments: Iterable[Judgment],
    *,
    unparsed_score: float = 0.0,
    intervals_seed: int | None = None,
) -> dict[str, Any]:
    """The benchmark's official numbers (fractions; null where there is no data), without diagnostics.

    With ``intervals_seed``, also ``intervals``: a seeded bootstrap 95% interval of each headline number.
    """
    if not 0.0 <= unparsed_score <= 1.0:
        raise ConfigError(f"unparsed_score must be within [0, 1], got {unparsed_score}")
    module = _module(name)
    if hasattr(module, "score_judgments"):  # a scorer that reads more than pair outcomes
        own: dict[str, Any] = module.score_judgments(judgments, unparsed_score, intervals_seed)
        return own
    outcomes = pair_outcomes(judgments)
    result: dict[str, Any] = module.score(outcomes, unparsed_score)
    if intervals_seed is not None:
        items = resampling(name, outcomes, unparsed_score)
        if items is not None:
            result["intervals"] = bootstrap_intervals(items, seed=intervals_seed)
    return result


__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "judgment_resampling",
    "load_benchmark",
    "resampling",
    "score_judgments",
]
