"""``rmr1 distill``: teacher traces for judge prompts -> an SFT dataset (two passes, resumable)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from rmr1.cli import app
from rmr1.cli.checks import at_least, writable_dir
from rmr1.cli.progress import progress_bar


@app.command()
def distill(
    data: Annotated[
        str, typer.Option(help="Preference pairs (TRL formats) or judge prompts (prompt + winner).")
    ],
    out: Annotated[Path, typer.Option(help="Output folder: attempts.jsonl, train.jsonl, stats.json.")],
    teacher_backend: Annotated[
        str, typer.Option(help="Teacher backend: openai, vllm, hf (mock: tests).")
    ] = "openai",
    teacher_model: Annotated[str | None, typer.Option(help="Teacher model name / path.")] = None,
    repair_backend: Annotated[
        str | None, typer.Option(help="Pass-2 backend (default: the teacher's).")
    ] = None,
    repair_model: Annotated[
        str | None, typer.Option(help="Pass-2 model (the paper used a second teacher).")
    ] = None,
    base_url: Annotated[str | None, typer.Option(help="openai backend: server base URL.")] = None,
    api_key: Annotated[
        str | None, typer.Option(help="openai backend: API key (default $OPENAI_API_KEY).")
    ] = None,
    concurrency: Annotated[int, typer.Option(help="openai backend: requests in flight.")] = 8,
    template: Annotated[str, typer.Option(help="Judge template for preference pairs.")] = "cor",
    template_file: Annotated[Path | None, typer.Option(help="A YAML judge template.")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Teacher budget per trace (paper: 8192).")] = 8192,
    temperature: Annotated[float, typer.Option(help="Teacher sampling temperature.")] = 0.0,
    batch_size: Annotated[int, typer.Option(help="Requests per teacher batch (and per log append).")] = 16,
    limit: Annotated[int | None, typer.Option(help="Only the first N items.")] = None,
    sample: Annotated[
        int | None, typer.Option(help="A seeded random subset of N items (the paper: ~8.7K).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for --sample.")] = 0,
    second_pass: Annotated[
        bool, typer.Option(help="Retry failures with the correct verdict as a hint.")
    ] = True,
    parse_mode: Annotated[str, typer.Option(help="Verdict parsing: strict or paper.")] = "strict",
) -> None:
    """Teacher pass 1 with the judge template, pass 2 on the failures with a hint; keep verified traces."""
    from rmr1.train.distill import ATTEMPTS, DistillConfig, read_attempts

    writable_dir(out)
    at_least(1, concurrency=concurrency, sample=sample, limit=limit)
    config = DistillConfig(
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        batch_size=batch_size,
        parse_mode=parse_mode,
        second_pass=second_pass,
    )
    items = _items(data, template, template_file, limit, sample, seed)
    read_attempts(out / ATTEMPTS)  # a damaged log to resume from is refused before a teacher is built
    server = {"base_url": [base_url] if base_url else None, "api_key": api_key, "concurrency": concurrency}
    teacher = _backend(teacher_backend, teacher_model, batch_size=batch_size, **server)
    repair = None
    if repair_backend or repair_model:
        name, model = repair_backend or teacher_backend, repair_model or teacher_model
        repair = _backend(name, model, batch_size=batch_size, **server)
    _run(teacher, repair, items, out, config)


def _items(
    data: str, template: str, template_file: Path | None, limit: int | None, sample: int | None, seed: int
) -> list[Any]:
    """The judge prompts to distil: the first ``limit``, then a seeded subset of ``sample`` of them."""
    from rmr1.prompts import get_template
    from rmr1.train.mixes import judge_prompts

    items = judge_prompts(data, template=get_template(template, template_file), limit=limit)
    if sample is not None and sample < len(items):
        import random

        picked = sorted(random.Random(seed).sample(range(len(items)), sample))
        items = [items[i] for i in picked]
    return items


def _backend(name: str, model: str | None, **server: Any) -> Any:
    """A teacher backend from the shared judge options (server URL, key, concurrency, batch size)."""
    from rmr1.judge_options import JudgeOptions

    return JudgeOptions(model=model, backend=name, **server).make_backend()


def _run(teacher: Any, repair: Any, items: list[Any], out: Path, config: Any) -> None:
    """Both passes under a progress bar, then the counts."""
    from rmr1.train.distill import distill as run_distill

    with progress_bar(Console(stderr=True), len(items), "distilling") as advance:
        stats = run_distill(
            teacher, items, out, config, repair_teacher=repair, on_batch=lambda n: advance(n, None)
        )
    typer.echo(json.dumps(stats.to_dict(), indent=2))
    typer.echo(f"kept {stats.kept}/{stats.items} traces -> {out / 'train.jsonl'}")
