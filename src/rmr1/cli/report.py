"""``rmr1 report``: (re)write RUN_DIR/report.html, one self-contained page."""

from pathlib import Path
from typing import Annotated

import typer

from rmr1.cli import app
from rmr1.cli.checks import at_least, writable_dir


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by rmr1 eval or rmr1 merge.")],
    max_traces: Annotated[int, typer.Option(help="Traces kept in the page's browser.")] = 2000,
    max_chars: Annotated[int, typer.Option(help="Characters shown of each trace.")] = 12000,
) -> None:
    """Write RUN_DIR/report.html: score tables, plots and a filterable trace browser."""
    from rmr1.report import ReportConfig, write_report

    at_least(1, max_traces=max_traces, max_chars=max_chars)
    writable_dir(run_dir, "RUN_DIR")
    path = write_report(run_dir, ReportConfig(cap=max_traces, max_chars=max_chars))
    typer.echo(str(path))
