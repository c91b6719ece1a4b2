"""``rmr1 eval``: judge a benchmark into a run directory (resumable), score it and write the report."""

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from rmr1.cli import app
from rmr1.cli.checks import writable_dir
from rmr1.cli.failures import OPTIONAL_VALUES
from rmr1.cli.options import judge_options
from rmr1.cli.progress import progress_bar
from rmr1.evaluation.run import Advance
from rmr1.judge_options import JudgeOptions


def _number(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, list):  # an interval [low, high]
        return "[" + ", ".join(_number(v) for v in value) + "]"
    return str(value)


def print_scores(scores: dict[str, Any], where: Path) -> None:
    """The official numbers and the diagnostics as two small tables."""
    console = Console()
    official = Table(title="scores", caption=str(where / "scores.json"), show_header=False)
    for key, value in scores.items():
        if not isinstance(value, dict):
            official.add_row(key, _number(value))
        elif key != "diagnostics":
            for name, sub in value.items():
                if isinstance(sub, dict):  # RM-Bench by_domain: domain -> easy / normal / hard
                    for level, number in sub.items():
                        official.add_row(f"{key}/{name}/{level}", _number(number))
                else:
                    official.add_row(f"{key}/{name or '(none)'}", _number(sub))
    diagnostics = Table(title="diagnostics", show_header=False)
    for key, value in (scores.get("diagnostics") or {}).items():
        diagnostics.add_row(key, _number(value))
    console.print(official)
    console.print(diagnostics)


def _progress(label: str) -> Any:
    console = Console(stderr=True)

    def factory(total: int, done: int) -> AbstractContextManager[Advance]:
        @contextmanager
        def bar() -> Iterator[Advance]:
            if done:
                console.print(f"resuming: {done} judgments already logged, {total} to go")
            with progress_bar(console, total, label) as advance:
                yield advance

        return bar()

    return factory


OPTIONAL_VALUES["--ray"] = "local"

_SCALE = "Scale-out"  # the help panel of the Ray options
RayAddress = Annotated[
    str | None,
    typer.Option(
        help="Judge on Ray workers: --ray alone starts (or joins $RAY_ADDRESS) a local cluster; "
        "--ray auto or --ray HOST:PORT joins a running one. Put it after the benchmark name.",
        rich_help_panel=_SCALE,
    ),
]
RayWorkers = Annotated[
    int, typer.Option(help="Ray worker actors, each with its own model replica.", rich_help_panel=_SCALE)
]
RayCpus = Annotated[float, typer.Option(help="Ray CPUs each worker reserves.", rich_help_panel=_SCALE)]
RayGpus = Annotated[float, typer.Option(help="Ray GPUs each worker reserves.", rich_help_panel=_SCALE)]
RayRestarts = Annotated[
    int, typer.Option(help="Dead Ray workers replaced over the run.", rich_help_panel=_SCALE)
]


@app.command("eval")
@judge_options
def eval_command(
    opts: JudgeOptions,
    benchmark: Annotated[str, typer.Argument(help="rewardbench, rm-bench, rmb, judgebench or preference.")],
    out: Annotated[Path, typer.Option(help="The run directory (created; run again to resume).")],
    data: Annotated[
        str | None,
        typer.Option(help="Local file or folder in the benchmark's own format (default: its hub id)."),
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N items.")] = None,
    shard: Annotated[
        str | None,
        typer.Option(help="Judge shard I of N (I/N, split by item); join the shards with rmr1 merge."),
    ] = None,
    unparsed_score: Annotated[
        float,
        typer.Option(
            help="Score of a decision with no parsed verdict: 0 (the paper) or 0.5 (RewardBench's harness)."
        ),
    ] = 0.0,
    report: Annotated[bool, typer.Option(help="Write report.html at the end.")] = True,
    ray: RayAddress = None,
    ray_workers: RayWorkers = 2,
    ray_cpus_per_worker: RayCpus = 1.0,
    ray_gpus_per_worker: RayGpus = 0.0,
    ray_restarts: RayRestarts = 1,
) -> None:
    """Evaluate a judge on a benchmark: run.json, judgments.jsonl, scores.json and report.html in --out."""
    from rmr1.evaluation import evaluate

    writable_dir(out)  # before the benchmark or the model loads
    if benchmark == "judgebench" and opts.protocol == "single":
        typer.echo(
            "warning: judgebench judged in one order only; its official protocol is both orders "
            "(the default without --protocol)",
            err=True,
        )
    scale = _ray_config(ray, ray_workers, ray_cpus_per_worker, ray_gpus_per_worker, ray_restarts)
    with _resumable_on_interrupt(out):
        result = evaluate(
            benchmark,
            out,
            judge=opts,
            ray=scale,
            progress=_progress(f"eval {benchmark}"),
            data=data,
            limit=limit,
            shard=shard,
            unparsed_score=unparsed_score,
            report=report,
        )
    print_scores(result.scores, result.run_dir)
    if report:
        typer.echo(f"report: {result.run_dir / 'report.html'}", err=True)


def _ray_config(address: str | None, workers: int, cpus: float, gpus: float, restarts: int) -> Any:
    """The Ray scale-out settings, or None to judge in this process."""
    if address is None:
        return None
    from rmr1.evaluation.ray_pool import RayConfig

    return RayConfig(
        address=address, workers=workers, cpus_per_worker=cpus, gpus_per_worker=gpus, restarts=restarts
    )


@contextmanager
def _resumable_on_interrupt(out: Path) -> Iterator[None]:
    """Ctrl-C ends the run with exit code 130 and says how to resume it, without a traceback."""
    try:
        yield
    except KeyboardInterrupt:
        typer.echo(
            f"interrupted: the judgments so far are saved in {out}; run the same command again to resume",
            err=True,
        )
        raise typer.Exit(130) from None
