"""``rmr1 demo``: the whole pipeline (distill -> SFT -> GRPO -> held-out evaluation) on this CPU."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rmr1.cli import app
from rmr1.cli.checks import at_least, writable_dir

if TYPE_CHECKING:
    from rmr1.train.demo import DemoResult


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
        int | None, typer.Option(help="Torch threads (default: 1 on a busy machine, else all).")
    ] = None,
) -> None:
    """Run the RM-R1 pipeline small: scripted-teacher distillation, SFT, GRPO, held-out accuracy."""
    import warnings

    from rmr1.train.demo import demo_config, run_demo, summary

    at_least(1, threads=threads)
    writable_dir(out)

    # transformers' renaming notices (gradient vs activation checkpointing) say nothing about the demo
    warnings.filterwarnings("ignore", category=FutureWarning)

    cfg = demo_config(quick, out / ("quick" if quick else "full"), model, threads)
    result = run_demo(cfg, log=lambda line: typer.echo(line, err=True))
    data = summary(result, cfg)
    _print_example(result)
    typer.echo(
        f"held-out accuracy ({cfg.test_pairs} pairs): "
        + ", ".join(f"{name} {value:.1%}" for name, value in data["accuracy"].items())
    )
    typer.echo(
        "wall time: "
        + ", ".join(f"{k} {v:.0f}s" for k, v in data["seconds"].items())
        + f" (total {data['total_seconds']:.0f}s)"
    )
    typer.echo(f"report: {cfg.out_dir / 'report.html'}")


def _print_example(result: DemoResult) -> None:
    """One held-out item's real traces, from the base model and from the last trained stage."""
    first, last = result.evals.get("base"), result.evals.get("grpo") or result.evals.get("sft")
    if first is None or last is None or not first.judgments or not last.judgments:
        return
    for label, evaluation in (("base model", first), (f"after {last.name}", last)):
        j = evaluation.judgments[0]
        verdict = j.verdict or f"unparsed ({j.parse_error})"
        outcome = {True: "right", False: "wrong", None: "no verdict"}[j.correct]
        typer.echo(f"--- held-out item {j.item_id}, {label}: verdict {verdict}, {outcome} ---")
        typer.echo(j.completion.strip() or "(empty output)")
