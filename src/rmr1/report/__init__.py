"""report.html: one self-contained page per run (inline CSS and JS, plots as base64 PNG, no external URLs).

    from rmr1.report import write_report
    write_report("runs/x")          # reads run.json, scores.json, judgments.jsonl; writes runs/x/report.html

The page holds the official scores and diagnostics, the plots (accuracy per subset, position bias, trace
length, accuracy by vote confidence when voting, a reliability diagram and accuracy per confidence decile when
probabilities or votes exist) and a trace browser with the Chain-of-Rubrics parts
highlighted and filters by subset, outcome, order and text. The browser holds at most ``cap`` traces so a
large run still opens quickly.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rmr1 import stats as statistics
from rmr1.atomic import write_atomic
from rmr1.evaluation.rundir import RunDir
from rmr1.evaluation.scoring import score_run
from rmr1.report.plots import all_plots
from rmr1.report.stats import ReportStats, gather
from rmr1.report.traces import trace_view

_COUNTS = ("judgments", "too_long")  # counts, not rates
_PLAIN = ("mean_completion_tokens",)


@dataclass(frozen=True)
class ReportConfig:
    cap: int = 2000  # traces kept in the browser
    max_chars: int = 12000  # characters of each trace shown


@dataclass(frozen=True)
class ScoreTable:
    title: str
    rows: list[tuple[str, str]]


def _fmt(name: str, value: Any) -> str:
    if value is None:
        return "—"
    if name in _COUNTS or isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if name in _PLAIN:
        return f"{value:.1f}"
    return f"{value:.1%}"


def _rows(breakdown: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """Rows of a breakdown; a second level (RM-Bench's by_domain: domain -> easy/normal/hard) becomes
    'chat · easy' rows rather than a printed dict."""
    for key, value in breakdown.items():
        name = str(key) or "(none)"
        if isinstance(value, dict):
            yield from ((f"{name} · {sub}", _fmt(str(sub), v)) for sub, v in value.items())
        else:
            yield name, _fmt(name, value)


def _with_interval(name: str, value: Any, interval: Any) -> str:
    if value is None or not isinstance(interval, list) or len(interval) != 2:
        return _fmt(name, value)
    return f"{_fmt(name, value)} [{interval[0]:.1%}, {interval[1]:.1%}]"


def score_tables(scores: dict[str, Any]) -> list[ScoreTable]:
    """The official numbers first (with their 95% intervals), then each nested breakdown (subsets, by_source),
    then diagnostics."""
    intervals = scores.get("intervals") or {}
    top = [(k, _with_interval(k, v, intervals.get(k))) for k, v in scores.items() if not isinstance(v, dict)]
    tables = [ScoreTable("Official scores", top)] if top else []
    for key, value in scores.items():
        if isinstance(value, dict) and key not in ("diagnostics", "intervals"):
            tables.append(ScoreTable(key, list(_rows(value))))
    diagnostics = scores.get("diagnostics") or {}
    tables.append(ScoreTable("Diagnostics", [(k, _fmt(k, v)) for k, v in diagnostics.items()]))
    return tables


@dataclass(frozen=True)
class Calibration:
    ece: float | None
    brier: float | None
    decisions: int
    deciles: list[statistics.Bin]


def calibration(stats: ReportStats) -> Calibration | None:
    """ECE, Brier and accuracy per confidence decile, when probabilities or votes exist."""
    values = stats.calibration.values()
    if not values:
        return None
    return Calibration(
        statistics.ece(values), statistics.brier(values), len(values), statistics.deciles(values)
    )


def _environment() -> Any:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    return Environment(
        loader=FileSystemLoader(Path(__file__).parent),
        autoescape=select_autoescape(["j2", "html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_report(run_dir: str | Path, config: ReportConfig | None = None) -> str:
    """The report page of a run as HTML text."""
    cfg = config or ReportConfig()
    run = RunDir(run_dir)
    settings = run.read_settings()
    assert settings is not None
    info = run.read_info() or {}
    scores = (
        json.loads(run.scores.read_text(encoding="utf-8")) if run.scores.is_file() else score_run(run.path)
    )
    stats = gather(run.iter_judgments(), samples=settings.samples, cap=cfg.cap, max_chars=cfg.max_chars)
    traces = [trace_view(s, settings.parse_mode) for s in stats.shown()]
    template = _environment().get_template("report.html.j2")
    return str(
        template.render(
            run=settings,
            status=info.get("status", "unknown"),
            written=time.strftime("%Y-%m-%d %H:%M"),
            diagnostics=scores.get("diagnostics", {"judgments": stats.total}),
            score_tables=score_tables(scores),
            plots=all_plots(stats),
            calibration=calibration(stats),
            subsets=sorted(stats.by_subset),
            traces=traces,
            total=stats.total,
            capped=len(traces) < stats.total,
            max_chars=cfg.max_chars,
            samples=settings.samples,
            settings=[(k, v if isinstance(v, str) else json.dumps(v)) for k, v in info.items()],
        )
    )


def write_report(run_dir: str | Path, config: ReportConfig | None = None) -> Path:
    """Write RUN_DIR/report.html and return its path."""
    run = RunDir(run_dir)
    write_atomic(run.report, render_report(run_dir, config))
    return run.report


__all__ = ["Calibration", "ReportConfig", "calibration", "render_report", "score_tables", "write_report"]
