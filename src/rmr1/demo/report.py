"""The demo's report.html: the demo-specific parts on top of each stage's own ``rmr1.report`` page.

Each stage's run directory already has its full report (scores with intervals, diagnostics, plots, the trace
browser), written by ``rmr1.evaluation``; this page links them and adds what only the demo knows: the stage
table (accuracy with its 95% interval, position consistency, parse failures, wall time), what each training
stage added (the paired difference against the stage before it), the distillation
counts, the SFT and GRPO training curves (``rmr1.report.plots.curves_plot``) and the same held-out decisions
before and after training, highlighted with ``rmr1.report.traces.highlight``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from markupsafe import Markup

from rmr1.atomic import write_atomic
from rmr1.demo.config import LABELS, DemoConfig, DemoResult, StageResult
from rmr1.evaluation.rundir import RunDir
from rmr1.report.stats import outcome
from rmr1.types import Judgment

# (training output folder, title, [(curves.jsonl key, label)])
CURVES = (
    ("sft", "SFT", [("loss", "training loss"), ("mean_token_accuracy", "token accuracy")]),
    (
        "grpo",
        "GRPO",
        [
            ("reward", "mean reward"),
            ("judge/accuracy", "rollout accuracy"),
            ("completions/mean_length", "completion length (tokens)"),
        ],
    ),
)


@dataclass(frozen=True)
class Example:
    """One held-out decision (item, pair, order) as each stage judged it."""

    item_id: str
    order: str
    judgments: dict[str, Judgment]  # by stage name


def examples(result: DemoResult, limit: int = 4) -> list[Example]:
    """The first ``limit`` decisions of the base run's log (both orders of the first pairs), per stage."""
    logged = {
        name: {j.key: j for j in RunDir(stage.run_dir).iter_judgments()}
        for name, stage in result.stages.items()
    }
    first = next(iter(logged.values()), {})
    out = []
    for key in list(first)[:limit]:
        by_stage = {name: judged[key] for name, judged in logged.items() if key in judged}
        out.append(Example(key[0], key[2], by_stage))
    return out


@dataclass(frozen=True)
class StageRow:
    label: str
    model: str
    accuracy: str
    consistency: str
    unparsed: str
    tokens: str
    train_seconds: str
    eval_seconds: str
    link: str  # the stage report, relative to the demo's folder


def _share(value: Any) -> str:
    return "—" if value is None else f"{value:.1%}"


def _row(stage: StageResult, out: Path) -> StageRow:
    d = stage.diagnostics
    interval = f" [{stage.interval[0]:.1%}, {stage.interval[1]:.1%}]" if stage.interval else ""
    tokens = d.get("mean_completion_tokens")
    return StageRow(
        label=LABELS.get(stage.name, stage.name),
        model=stage.model,
        accuracy=f"{stage.accuracy:.1%}{interval}",
        consistency=_share(d.get("position_consistency")),
        unparsed=_share(d.get("parse_failure_rate")),
        tokens="—" if tokens is None else f"{tokens:.0f}",
        train_seconds=f"{stage.train_seconds:.0f}s" if stage.train_seconds else "—",
        eval_seconds=f"{stage.eval_seconds:.0f}s",
        link=Path(os.path.relpath(stage.run_dir / "report.html", out)).as_posix(),
    )


def curve_images(out: Path) -> list[tuple[str, str]]:
    """(title, PNG data URI) for each training stage that logged curves."""
    from rmr1.report.plots import curves_plot
    from rmr1.train.runtime import read_curves

    images = []
    for folder, title, keys in CURVES:
        uri = curves_plot(read_curves(out / folder), keys, title)
        if uri is not None:
            images.append((title, uri))
    return images


def _example_view(example: Example) -> dict[str, Any]:
    from rmr1.report.traces import highlight

    cells = [
        {
            "label": LABELS.get(name, name),
            "outcome": outcome(j),
            "verdict": j.verdict or "-",
            "html": highlight(j.completion.strip()) if j.completion.strip() else Markup("(empty output)"),
        }
        for name, j in example.judgments.items()
    ]
    shown = "preferred shown as A" if example.order == "AB" else "preferred shown as B"
    return {"item_id": example.item_id, "shown": shown, "cells": cells}


def render_report(result: DemoResult, cfg: DemoConfig) -> str:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=FileSystemLoader(Path(__file__).parent),
        autoescape=select_autoescape(["j2", "html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    out = Path(result.out_dir)
    return str(
        env.get_template("report.html.j2").render(
            cfg=cfg,
            written=time.strftime("%Y-%m-%d %H:%M"),
            stages=[_row(stage, out) for stage in result.stages.values()],
            comparisons=[d.cells() for d in result.comparisons.values()],
            distill=result.distill,
            curves=curve_images(out),
            seconds=result.seconds,
            examples=[_example_view(e) for e in examples(result)],
        )
    )


def write_report(result: DemoResult, cfg: DemoConfig) -> Path:
    """Write OUT/report.html and return its path."""
    path = Path(result.out_dir) / "report.html"
    write_atomic(path, render_report(result, cfg))
    return path


__all__ = ["CURVES", "Example", "curve_images", "examples", "render_report", "write_report"]
