"""report.html: escaping, part highlighting, self-containment, plots and the capped trace browser."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from rmr1.backends.mock import MockBackend
from rmr1.evaluation import evaluate
from rmr1.judge import Judge, JudgeConfig
from rmr1.report import ReportConfig, render_report, score_tables
from rmr1.report.traces import highlight
from rmr1.testing import write_addition_pairs
from rmr1.types import GenerationRequest

COR = (
    "<type>Chat</type>\n<rubric>\n1. Correct sum (70%)\n2. Clear (30%)\n<justify>why</justify>\n</rubric>\n"
    '<eval>A says <quote_A>x < y & "z"</quote_A> <script>alert(1)</script></eval>\n'
    "<answer>[[{label}]]</answer>"
)


def script(request: GenerationRequest) -> str:
    kind = hashlib.sha256(request.key.encode()).digest()[0] % 3
    return COR.format(label="AB"[kind]) if kind < 2 else "no verdict <img src=x onerror=alert(2)>"


def make_run(tmp_path: Path, samples: int = 1) -> Path:
    data = write_addition_pairs(tmp_path / "pairs.jsonl")
    judge = Judge(MockBackend(script=script), "cor", JudgeConfig(protocol="both", samples=samples))
    return evaluate("preference", tmp_path / "run", judge=judge, data=str(data), report=False).run_dir


def test_highlight_escapes_model_text_and_wraps_parts() -> None:
    html = str(highlight('<rubric>1. a<b>bold</b></rubric> <quote_A>"q" & r</quote_A><answer>[[A]]</answer>'))
    assert "<b>" not in html and "&lt;b&gt;bold&lt;/b&gt;" in html
    assert '<span class="part p-rubric">' in html and '<span class="part p-quote_a">' in html
    assert "&#34;q&#34; &amp; r" in html
    assert html.count("<span") == html.count("</span>")


@pytest.mark.parametrize(
    "text",
    [
        "<eval>opened, never closed <quote_A>nor this",  # truncated trace
        "</rubric> stray close <type>Chat</eval></type>",  # crossed and stray tags
        "<EVAL>upper case</Eval>",  # case of the tag names is forgiven, as by the parser
    ],
)
def test_highlight_keeps_the_page_balanced_on_broken_traces(text: str) -> None:
    html = str(highlight(text))
    assert html.count("<span") == html.count("</span>")
    assert re.sub(r"<[^>]+>", "", html).replace("&lt;", "<").replace("&gt;", ">") == text


def test_report_is_self_contained_and_escapes_everything(tmp_path: Path) -> None:
    html = render_report(make_run(tmp_path))
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)" in html
    assert "<img src=x" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<link" not in html
    assert html.count('src="data:image/png;base64,') == 3  # subsets, position, length (no voting)
    assert html.count('<details class="trace"') == 24
    for outcome in ("correct", "wrong", "unparsed"):
        assert re.search(f'<details class="trace"[^>]*data-outcome="{outcome}"', html)


def test_report_shows_the_official_numbers_and_diagnostics(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    html = render_report(run)
    scores = json.loads((run / "scores.json").read_text())
    assert f"{scores['accuracy']:.1%}" in html
    tables = score_tables(scores)
    assert [t.title for t in tables] == ["Official scores", "subsets", "Diagnostics"]
    low, high = scores["intervals"]["accuracy"]
    assert ("accuracy", f"{scores['accuracy']:.1%} [{low:.1%}, {high:.1%}]") in tables[0].rows
    assert ("judgments", "24") in tables[-1].rows


def test_the_trace_browser_is_capped_and_keeps_every_outcome(tmp_path: Path) -> None:
    html = render_report(make_run(tmp_path), ReportConfig(cap=6, max_chars=20))
    assert html.count('<details class="trace"') == 6
    assert "The run has 24 judgments; the browser holds 6" in html
    for outcome in ("correct", "wrong", "unparsed"):
        assert len(re.findall(f'<details class="trace"[^>]*data-outcome="{outcome}"', html)) == 2
    assert "more characters not shown" in html


def test_voting_runs_get_the_confidence_plot_and_calibration(tmp_path: Path) -> None:
    html = render_report(make_run(tmp_path, samples=3))
    assert html.count('src="data:image/png;base64,') == 5
    assert "Verdict confidence" in html and "Reliability diagram" in html
    assert 'id="deciles"' in html


def test_single_sample_runs_without_probabilities_have_no_calibration(tmp_path: Path) -> None:
    html = render_report(make_run(tmp_path))
    assert "Reliability diagram" not in html and 'id="deciles"' not in html
