"""``rmr1 compare RUN_A RUN_B``: the paired difference B - A on the shared items, with interval and p-value."""

import json
from pathlib import Path
from typing import Annotated

import typer

from rmr1.cli import app


def _pct(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:+.1%}" if signed else f"{value:.1%}"


@app.command()
def compare(
    run_a: Annotated[Path, typer.Argument(help="The baseline run directory (A).")],
    run_b: Annotated[Path, typer.Argument(help="The run compared with it (B).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap resampling.")] = 0,
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 1000,
) -> None:
    """Paired difference B - A per headline number on the items both runs judged (paired bootstrap)."""
    from rich.console import Console
    from rich.table import Table

    from rmr1.evaluation.compare import DIRECTION, METHOD, compare_runs

    result = compare_runs(run_a, run_b, seed=seed, resamples=resamples)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    left_out = f" ({result.only_a} only in A, {result.only_b} only in B: left out)"
    typer.echo(f"{result.benchmark}: A = {run_a}, B = {run_b}")
    typer.echo(
        f"{DIRECTION} on {result.shared} shared items" + (left_out if result.only_a or result.only_b else "")
    )
    typer.echo(f"95% interval and p: {METHOD}, {result.resamples} resamples, seed {result.seed}")
    table = Table()
    for column in ("score", "A", "B", DIRECTION, "95% interval", "p"):
        table.add_column(column, justify="left" if column == "score" else "right")
    for name, d in result.rows.items():
        interval = "—" if d.interval is None else f"[{d.interval[0]:+.1%}, {d.interval[1]:+.1%}]"
        p_value = "—" if d.p_value is None else f"{d.p_value:.3f}"
        table.add_row(name, _pct(d.a), _pct(d.b), _pct(d.diff, signed=True), interval, p_value)
    Console(width=120).print(table)
