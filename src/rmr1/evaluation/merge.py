"""``rmr1 merge``: join the shards of one run (``--shard I/N`` runs) into one run directory.

Shards must be one experiment: equal result-changing settings and limit, the same N, every index 0..N-1 once,
each finished. Each judgment must belong to its shard's items and no key may appear twice; the merged run is
then scored from its joined log exactly like an unsharded run.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rmr1.errors import ConfigError, InputError
from rmr1.evaluation.rundir import Key, RunDir, judgment_record
from rmr1.evaluation.scoring import score_run
from rmr1.evaluation.settings import RunSettings, Shard, shard_of
from rmr1.jsonl import JsonlAppender


def _check_shards(runs: list[RunDir], settings: list[RunSettings]) -> list[Shard]:
    base = dataclasses.replace(settings[0], shard=None)
    shards: list[Shard] = []
    for run, s in zip(runs, settings, strict=True):
        if s.shard is None:
            raise ConfigError(f"{run.path} is not a shard (made without --shard)")
        diffs = base.differences(dataclasses.replace(s, shard=None))
        if diffs or s.limit != base.limit:
            diffs = diffs or [f"limit: {base.limit!r} -> {s.limit!r}"]
            raise ConfigError(f"{run.path} does not match {runs[0].path}: {'; '.join(diffs)}")
        info = run.read_info() or {}
        if info.get("status") != "complete":
            raise ConfigError(
                f"{run.path} is not finished (status {info.get('status')!r}); run its eval again"
            )
        shards.append(Shard.parse(s.shard))
    count = shards[0].count
    if any(sh.count != count for sh in shards):
        raise ConfigError("the runs are shards of different splits (different N in I/N)")
    indices = sorted(sh.index for sh in shards)
    if len(set(indices)) != len(indices):
        raise ConfigError("a shard is given twice")
    missing = sorted(set(range(count)) - set(indices))
    if missing:
        raise ConfigError(f"shard {missing[0]}/{count} is missing; merge needs all {count} shards")
    return shards


def _join_logs(runs: list[RunDir], shards: list[Shard], target: RunDir) -> None:
    """Write the shards' judgments into ``target``'s log (via a temporary, renamed when whole)."""
    tmp = target.path / f".{target.judgments.name}.merging"
    tmp.unlink(missing_ok=True)
    seen: set[Key] = set()
    with JsonlAppender(tmp) as writer:
        for run, shard in zip(runs, shards, strict=True):
            batch: list[Mapping[str, Any]] = []
            for line, j in run.iter_numbered():
                if shard_of(j.item_id, shard.count) != shard.index:
                    raise InputError(
                        f"item {j.item_id!r} does not belong to shard {shard}",
                        source=str(run.judgments),
                        line=line,
                    )
                if j.key in seen:
                    raise InputError(
                        f"judgment {'|'.join(map(str, j.key))} is in two shards",
                        source=str(run.judgments),
                        line=line,
                    )
                seen.add(j.key)
                batch.append(judgment_record(j))
                if len(batch) >= 1024:
                    writer.write(batch)
                    batch = []
            writer.write(batch)
    os.replace(tmp, target.judgments)


def merge_runs(sources: Sequence[str | Path], out: str | Path, *, report: bool = True) -> dict[str, Any]:
    """Merge finished shard runs into ``out``; returns the merged scores."""
    if not sources:
        raise ConfigError("give the shard run directories to merge")
    runs = [RunDir(s) for s in sources]
    settings = [r.read_settings() for r in runs]
    checked = [s for s in settings if s is not None]
    shards = _check_shards(runs, checked)
    target = RunDir(out)
    target.path.mkdir(parents=True, exist_ok=True)
    with target.lock():  # checked under the lock, so two merges into one folder cannot both pass
        if target.run_json.exists() or target.judgments.exists():
            raise ConfigError(f"{target.path} already holds a run; merge into a new directory")
        _join_logs(runs, shards, target)
        infos = [r.read_info() or {} for r in runs]
        target.write_info(
            dataclasses.replace(checked[0], shard=None),
            status="complete",
            merged_from=[str(r.path) for r in runs],
            source=infos[0].get("source"),
            items=infos[0].get("items"),
            pairs=sum(int(i.get("pairs") or 0) for i in infos),
            planned_judgments=sum(int(i.get("planned_judgments") or 0) for i in infos),
        )
        scores = score_run(target.path, check_duplicates=False)
        if report:
            from rmr1.report import write_report

            write_report(target.path)
    return scores


__all__ = ["merge_runs"]
