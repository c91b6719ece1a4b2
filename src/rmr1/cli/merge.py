"""``rmr1 merge``: join the shard runs of one evaluation (``rmr1 eval --shard I/N``) into one run."""

from pathlib import Path
from typing import Annotated

import typer

from rmr1.cli import app
from rmr1.cli.checks import writable_dir
from rmr1.cli.eval import print_scores


@app.command()
def merge(
    run_dirs: Annotated[list[Path], typer.Argument(help="The shard run directories (all N of them).")],
    out: Annotated[Path, typer.Option(help="The merged run directory (must not hold a run yet).")],
    report: Annotated[bool, typer.Option(help="Write report.html for the merged run.")] = True,
) -> None:
    """Merge shard runs: checks their settings match and no judgment is in two shards, then scores."""
    from rmr1.evaluation import merge_runs

    writable_dir(out)
    scores = merge_runs(run_dirs, out, report=report)
    print_scores(scores, out)
