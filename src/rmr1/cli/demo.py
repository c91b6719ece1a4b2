"""``rmr1 demo``: the whole pipeline (distill -> SFT -> GRPO -> held-out evaluation) on this CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rmr1.cli import app


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
    from rmr1.train.demo import demo_config, run_demo, summary

    cfg = demo_config(quick, out / ("quick" if quick else "full"), model, threads)
    result = run_demo(cfg, log=lambda line: typer.echo(line, err=True))
    data = summary(result, cfg)
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
