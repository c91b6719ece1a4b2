"""Evaluation runs: a benchmark judged into a run directory, resumable, shardable, scored and reported.

    from rmr1.evaluation import evaluate
    result = evaluate("preference", "runs/x", data="pairs.jsonl", backend="hf", protocol="both")
    result.scores["accuracy"], result.scores["diagnostics"]

A run directory (CONTRACTS.md) holds ``run.json`` (settings), ``judgments.jsonl`` (one line per model call,
appended as results arrive), ``scores.json`` (official numbers + diagnostics) and ``report.html``.
Running the same evaluation again resumes it; other result-changing settings are refused.
``rescore`` recomputes scores from the log alone; ``merge_runs`` joins ``--shard I/N`` runs.
"""

from rmr1.evaluation.diagnostics import Diagnostics
from rmr1.evaluation.merge import merge_runs
from rmr1.evaluation.run import EvalConfig, EvalResult, JudgeLabels, evaluate, run_eval
from rmr1.evaluation.rundir import RunDir
from rmr1.evaluation.scoring import reparse, rescore, score_run
from rmr1.evaluation.settings import RESULT_KEYS, RunSettings, Shard, shard_of

__all__ = [
    "RESULT_KEYS",
    "Diagnostics",
    "EvalConfig",
    "EvalResult",
    "JudgeLabels",
    "RunDir",
    "RunSettings",
    "Shard",
    "evaluate",
    "merge_runs",
    "reparse",
    "rescore",
    "run_eval",
    "score_run",
    "shard_of",
]
