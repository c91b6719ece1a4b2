"""``rmr1 demo``: the whole pipeline (distill -> SFT -> GRPO -> held-out evaluation) on this CPU."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rmr1.cli import app
from rmr1.cli.checks import at_least, writable_dir

if TYPE_CHECKING:
    from rmr1.demo import DemoResult


@app.command()
def demo(
    quick: Annotated[
        bool, typer.Option("--quick", help="Smaller everything: a few minutes on a laptop CPU.")
    ] = False,
    out: Annotated[Path, typer.Option(help="Folder for data, checkpoints, curves and report.html.")] = Path(
        "demo-output"
    ),
    model: Annotated[
        str | None, typer.Option(help="Base model (default: the embedded SmolLM2-135M).")
    ] = None,
    threads: Annotated[
        int | None, typer.Option(help="Torch threads (default: $RMR1_THREADS, else the free cores).")
    ] = None,
) -> None:
    """Run the RM-R1 pipeline small: scripted-teacher distillation, SFT, GRPO, held-out accuracy."""
    from rmr1.demo import LABELS, demo_config, format_difference, format_stage, run_demo

    at_least(1, threads=threads)
    writable_dir(out)

    cfg = demo_config(quick, out / ("quick" if quick else "full"), model, threads)
    result = run_demo(cfg, log=lambda line: typer.echo(line, err=True))
    _print_example(result)
    typer.echo(f"held-out accuracy ({cfg.test_pairs} pairs, both orders, 95% intervals):")
    for name, stage in result.stages.items():
        typer.echo(f"  {LABELS[name]:<9} {format_stage(stage)}")
    if result.comparisons:
        typer.echo("what each stage added, paired on the same pairs (rmr1 compare; 95% interval):")
        for difference in result.comparisons.values():
            typer.echo(f"  {format_difference(difference)}")
    typer.echo(
        "wall time: "
        + ", ".join(f"{k} {v:.0f}s" for k, v in result.seconds.items())
        + f" (total {sum(result.seconds.values()):.0f}s)"
    )
    typer.echo(f"summary: {cfg.out_dir / 'summary.json'}")
    typer.echo(f"report: {cfg.out_dir / 'report.html'}")


def _print_example(result: DemoResult) -> None:
    """One held-out decision's real traces, from the base model and from the last trained stage."""
    from rmr1.demo.report import examples

    shown = examples(result, limit=1)
    if not shown:
        return
    judged = shown[0].judgments
    last = "grpo" if "grpo" in judged else "sft"
    for label, name in (("base model", "base"), (f"after {last}", last)):
        j = judged.get(name)
        if j is None:
            continue
        verdict = j.verdict or f"unparsed ({j.parse_error})"
        outcome = {True: "right", False: "wrong", None: "no verdict"}[j.correct]
        typer.echo(f"--- held-out item {j.item_id} ({j.order}), {label}: verdict {verdict}, {outcome} ---")
        typer.echo(j.completion.strip() or "(empty output)")
