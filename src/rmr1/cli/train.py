"""``rmr1 train sft|grpo|data|screen|export|presets``: a training stage from a recipe (YAML or preset) + overrides."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, cast

import typer

from rmr1.cli import app
from rmr1.cli.checks import writable_dir, writable_file
from rmr1.cli.options import judge_options
from rmr1.judge_options import JudgeOptions

train_app = typer.Typer(
    no_args_is_help=True, help="Train a judge: SFT on traces, GRPO with verifiable rewards."
)
app.add_typer(train_app, name="train")

_CONFIG = typer.Option("--config", "-c", help="Recipe YAML file or preset name (see `rmr1 train presets`).")
_OVERRIDES = typer.Argument(help="key=value overrides, e.g. learning_rate=1e-5 lora.enabled=true")
_DRY = typer.Option(
    "--dry-run", help="Print the recipe and the TRL arguments, then stop (no model is loaded)."
)


def _show(recipe: Any, args: dict[str, Any], notes: list[str]) -> None:
    from rmr1.train.config import recipe_dict

    typer.echo(json.dumps({"recipe": recipe_dict(recipe), "trl": args}, indent=2, default=str))
    for note in notes:
        typer.echo(f"note: {note}", err=True)


def _finish(result: Any) -> None:
    """End a training command: tear the process group down on every rank (none may leave it to its
    destructor), then report on the main one."""
    from rmr1.train.runtime import end_distributed

    end_distributed()
    if os.environ.get("RANK", "0") != "0":
        return  # under a multi-process launch every rank returns; only the main one reports
    typer.echo(f"trained {result.steps} steps in {result.seconds:.1f}s; model saved to {result.output_dir}")
    typer.echo(f"curves: {Path(result.output_dir) / 'curves.csv'}")


@train_app.command()
def sft(
    config: Annotated[str, _CONFIG],
    overrides: Annotated[list[str] | None, _OVERRIDES] = None,
    dry_run: Annotated[bool, _DRY] = False,
) -> None:
    """Supervised fine-tuning on teacher traces (loss on the trace only)."""
    from rmr1.train.config import SFTRecipe, load_recipe

    recipe = load_recipe(SFTRecipe, config, overrides or [])
    if not dry_run:
        writable_dir(Path(recipe.output_dir), "output_dir")
    # TRL and torch take seconds to import: only for a recipe that passed its checks
    from rmr1.train.sft import run_sft, sft_args

    if dry_run:
        _show(recipe, *sft_args(recipe))
        return
    _finish(run_sft(recipe, log=lambda line: typer.echo(line, err=True)))


@train_app.command()
def grpo(
    config: Annotated[str, _CONFIG],
    overrides: Annotated[list[str] | None, _OVERRIDES] = None,
    dry_run: Annotated[bool, _DRY] = False,
) -> None:
    """GRPO with the paper's verifiable reward on judge prompts labelled with a winner."""
    from rmr1.train.config import GRPORecipe, load_recipe

    recipe = load_recipe(GRPORecipe, config, overrides or [])
    if not dry_run:
        writable_dir(Path(recipe.output_dir), "output_dir")
    # TRL and torch take seconds to import: only for a recipe that passed its checks
    from rmr1.train.grpo import grpo_args, run_grpo

    if dry_run:
        _show(recipe, *grpo_args(recipe))
        return
    _finish(run_grpo(recipe, log=lambda line: typer.echo(line, err=True)))


@train_app.command()
def presets() -> None:
    """List the shipped recipes."""
    from rmr1.train.config import PRESETS_DIR, preset_names, read_yaml

    for name in preset_names():
        data = read_yaml(PRESETS_DIR / f"{name}.yaml")
        typer.echo(f"{name:40s} {data.get('stage', '?'):5s} {data.get('model') or '(embedded model)'}")


def _excluded_ids(path: Path | None) -> set[str]:
    if path is None:
        return set()
    from rmr1.jsonl import read_jsonl

    return {str(record["id"]) for _, record in read_jsonl(path) if "id" in record}


@train_app.command()
def data(
    out: Annotated[Path, typer.Option(help="Write the judge-prompt dataset here (JSONL).")],
    pairs: Annotated[
        list[str] | None, typer.Option(help="Preference file(s) or hub ids in TRL formats.")
    ] = None,
    paper_mixture: Annotated[
        bool, typer.Option(help="The paper's RL mixture from its three sources.")
    ] = False,
    skywork: Annotated[
        str | None, typer.Option(help="Skywork-Reward-Preference-80K-v0.2 file or hub id.")
    ] = None,
    code: Annotated[str | None, typer.Option(help="Code-Preference-Pairs file or hub id.")] = None,
    math: Annotated[str | None, typer.Option(help="Math-Step-DPO-10K file or hub id.")] = None,
    template: Annotated[str, typer.Option(help="Judge template name (cor, reasoning, ...).")] = "cor",
    template_file: Annotated[Path | None, typer.Option(help="A YAML judge template.")] = None,
    both_orders: Annotated[
        bool,
        typer.Option(
            help="Write each pair twice (preferred shown as A and as B) with a shared pair_id: "
            "the data of reward=consistent."
        ),
    ] = False,
    exclude: Annotated[
        Path | None,
        typer.Option(
            help="Drop items whose id is in this JSONL (e.g. the distilled subset, distill/train.jsonl)."
        ),
    ] = None,
) -> None:
    """Build judge prompts with a `winner` label (positions balanced by the paper's global counter)."""
    from rmr1.errors import InputError
    from rmr1.jsonl import JsonlAppender
    from rmr1.prompts import get_template
    from rmr1.train import mixes

    if not pairs and not paper_mixture:
        raise InputError("give --pairs FILE (repeatable) or --paper-mixture")
    writable_file(out)
    tmpl = get_template(template, template_file)
    chosen: list[Any] = []
    if paper_mixture:
        defaults = mixes.MixtureSources()
        sources = mixes.MixtureSources(
            skywork or defaults.skywork, code or defaults.code, math or defaults.math
        )
        chosen.extend(mixes.paper_pairs(sources))
    for spec in pairs or []:
        chosen.extend(mixes.preference_pairs(mixes.load_rows(spec), spec, prefix=f"{Path(spec).stem}-"))
    skip = _excluded_ids(exclude)
    kept = [p for p in chosen if p.item_id not in skip]
    records = mixes.build_judge_dataset(kept, tmpl, both_orders=both_orders)
    if out.exists():
        out.unlink()
    with JsonlAppender(out) as writer:
        writer.write(cast(list[Mapping[str, Any]], records))
    a_share = sum(r["winner"] == "model_a" for r in records) / max(1, len(records))
    typer.echo(
        f"wrote {len(records)} judge prompts to {out} (chosen shown as A: {a_share:.1%}; "
        f"excluded {len(chosen) - len(kept)})"
    )


@train_app.command()
def export(
    config: Annotated[str, _CONFIG],
    data: Annotated[Path, typer.Option(help="Judge prompts with a winner (`rmr1 train data` output).")],
    out: Annotated[Path, typer.Option(help="Write the engine's run folder here.")],
    overrides: Annotated[list[str] | None, _OVERRIDES] = None,
    engine: Annotated[str, typer.Option(help="Training engine to export for: verl.")] = "verl",
    val_fraction: Annotated[float, typer.Option(help="Share of prompts held out for validation.")] = 0.01,
    nnodes: Annotated[
        int | None, typer.Option(help="Nodes (default: the paper's 1/2/4 for 7B/14B/32B models).")
    ] = None,
    gpus_per_node: Annotated[int, typer.Option(help="GPUs per node.")] = 8,
    tokenizer: Annotated[
        str | None, typer.Option(help="Tokenizer for prompt lengths and end-of-turn (default: the model).")
    ] = None,
    end_of_turn: Annotated[
        str | None, typer.Option(help="The response's end token, when no tokenizer loads here.")
    ] = None,
) -> None:
    """Write a ready GRPO run for another engine (veRL): data files, reward module, launch script."""
    from rmr1.errors import ConfigError
    from rmr1.train.config import GRPORecipe, load_recipe

    if engine != "verl":
        raise ConfigError(f"--engine: only verl is supported, got {engine!r}")
    recipe = load_recipe(GRPORecipe, config, overrides or [], dataset=str(data))
    writable_dir(out, "--out")
    from rmr1.train.export_verl import VerlOptions, export_verl

    options = VerlOptions(nnodes, gpus_per_node, val_fraction, tokenizer=tokenizer, end_of_turn=end_of_turn)
    result = export_verl(recipe, out, options)
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo(
        f"wrote {result.train} train + {result.val} val prompts, reward.py and run_grpo.sh to {out}; "
        f"launch: bash {out / 'run_grpo.sh'}"
    )


@train_app.command()
@judge_options
def screen(
    opts: JudgeOptions,
    data: Annotated[Path, typer.Option(help="The preference pairs GRPO would train on (a local file).")],
    out: Annotated[Path, typer.Option(help="Write the pairs the model does not solve here (JSONL).")],
    run: Annotated[
        Path | None,
        typer.Option(help="Run directory for the screening judgments (default: OUT's name + '-screen')."),
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Only screen the first N pairs.")] = None,
) -> None:
    """Keep the pairs the starting policy gets wrong in some order: GRPO learns only where rollouts disagree."""
    from rmr1.train.screen import screen_pairs

    writable_file(out)
    run_dir = run or out.with_name(f"{out.stem}-screen")
    writable_dir(run_dir, "--run")
    result = screen_pairs(data, out, run_dir, limit=limit, judge=opts)
    typer.echo(
        f"kept {result.kept} of {result.screened} pairs ({result.wrong_every_order} wrong in every order; "
        f"{result.same_letter_text()}) "
        f"in {out}; judgments in {result.run_dir}; {result.seconds:.0f}s"
    )
