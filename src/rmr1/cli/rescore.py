"""``rmr1 rescore``: scores.json again from run.json + judgments.jsonl alone (verdicts re-read), no model."""

from pathlib import Path
from typing import Annotated

import typer

from rmr1.cli import app
from rmr1.cli.eval import print_scores


@app.command()
def rescore(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by rmr1 eval or rmr1 merge.")],
    unparsed_score: Annotated[
        float | None,
        typer.Option(help="Change the score of an unparsed decision (0 or 0.5; recorded in run.json)."),
    ] = None,
) -> None:
    """Recompute RUN_DIR/scores.json from the logged completions (and refresh report.html if present)."""
    from rmr1.evaluation import RunDir, rescore

    if unparsed_score is not None and unparsed_score not in (0.0, 0.5):
        raise typer.BadParameter("must be 0 or 0.5", param_hint="--unparsed-score")
    scores = rescore(run_dir, unparsed_score=unparsed_score)
    if RunDir(run_dir).report.is_file():
        from rmr1.report import write_report

        write_report(run_dir)
    print_scores(scores, run_dir)
