"""scores.json from run.json + judgments.jsonl alone: the benchmark's official numbers plus diagnostics.

The judgments are streamed from the file, never held as a list, so scoring a large run costs what the
benchmark's own scorer keeps (per-item state), not the completions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from rmr1 import pointwise
from rmr1.atomic import write_json_atomic
from rmr1.benchmarks import score_judgments
from rmr1.evaluation.diagnostics import Diagnostics
from rmr1.evaluation.rundir import RunDir
from rmr1.evaluation.settings import RunSettings
from rmr1.types import Judgment, is_correct
from rmr1.verdicts import parse_verdict


def reparse(judgment: Judgment, mode: str) -> Judgment:
    """The judgment with its verdict read again from the logged completion (failed and unsent calls stay so)."""
    if judgment.finish_reason in ("error", "too_long"):
        return judgment
    if judgment.completion_b is not None:  # a pointwise decision: read both ratings again
        return pointwise.reparse(judgment)
    verdict = parse_verdict(judgment.completion, mode)
    if judgment.forced and verdict.label is None:
        return judgment  # still no written verdict: the forced read stands
    return dataclasses.replace(
        judgment,
        verdict=verdict.label,
        correct=is_correct(verdict.label, judgment.order),
        parse_error=verdict.reason,
        forced=False,
    )


def strict_view(judgment: Judgment) -> Judgment:
    """A forced verdict as the strict parse saw it: unparsed (what scores see unless ``score_forced``)."""
    if not judgment.forced:
        return judgment
    return dataclasses.replace(judgment, verdict=None, correct=None)


def _reparsed(judgments: Iterable[Judgment], mode: str) -> Iterator[Judgment]:
    for j in judgments:
        yield reparse(j, mode)


def score_stream(settings: RunSettings, judgments: Iterable[Judgment]) -> dict[str, Any]:
    """Official numbers + diagnostics from one pass over ``judgments``."""
    diagnostics = Diagnostics(
        both_orders=settings.protocol == "both", samples=settings.samples, forced=settings.verdict == "forced"
    )
    stream = diagnostics.tap(judgments)
    if not settings.score_forced:
        stream = (strict_view(j) for j in stream)
    scores = dict(
        score_judgments(
            settings.benchmark, stream, unparsed_score=settings.unparsed_score, intervals_seed=settings.seed
        )
    )
    for _ in stream:  # a scorer that stopped early must not shorten the diagnostics
        pass
    scores["diagnostics"] = diagnostics.result()
    return scores


def score_run(
    run_dir: str | Path,
    *,
    reparse_mode: bool = False,
    check_duplicates: bool = False,
    unparsed_score: float | None = None,
) -> dict[str, Any]:
    """Compute and write RUN_DIR/scores.json.

    ``reparse_mode`` reads every verdict again with the run's parse mode (what ``rmr1 rescore`` does, so a
    fixed parser reaches old runs); ``check_duplicates`` refuses a key logged twice; ``unparsed_score``
    overrides the run's (and is recorded in run.json).
    """
    run = RunDir(run_dir)
    settings = run.read_settings()
    assert settings is not None
    if unparsed_score is not None and unparsed_score != settings.unparsed_score:
        settings = dataclasses.replace(settings, unparsed_score=unparsed_score)
        run.update_info(unparsed_score=unparsed_score)
    judgments: Iterable[Judgment] = run.iter_checked() if check_duplicates else run.iter_judgments()
    if reparse_mode:
        judgments = _reparsed(judgments, settings.parse_mode)
    scores = with_bookkeeping(score_stream(settings, judgments), run.read_info() or {})
    write_scores(run, scores)
    return scores


BOOKKEEPING = ("cache_hits", "cache_misses")  # counted by the run loop, kept in run.json


def with_bookkeeping(scores: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    """Add run.json's counters (judgment-cache hits and misses) to the diagnostics, so a rescore keeps them."""
    extra = {k: info[k] for k in BOOKKEEPING if info.get(k) is not None}
    if extra:
        scores["diagnostics"] = {**scores.get("diagnostics", {}), **extra}
    return scores


def write_scores(run: RunDir, scores: dict[str, Any]) -> None:
    write_json_atomic(run.scores, scores)


def rescore(run_dir: str | Path, *, unparsed_score: float | None = None) -> dict[str, Any]:
    """``rmr1 rescore``: scores.json again from the logged completions alone, no model (refused while an
    eval is writing the run)."""
    run = RunDir(run_dir)
    run.read_settings()  # not a run directory: say so before taking its lock
    with run.lock():
        return score_run(run_dir, reparse_mode=True, check_duplicates=True, unparsed_score=unparsed_score)


__all__ = [
    "reparse",
    "rescore",
    "score_run",
    "score_stream",
    "strict_view",
    "with_bookkeeping",
    "write_scores",
]
