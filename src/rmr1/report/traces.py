"""Traces as the report shows them: model text escaped, Chain-of-Rubrics parts highlighted.

Everything from the model is HTML-escaped before any markup is added; the only markup is ours (spans around
the known part tags). Tags are matched as an open/close stack, so stray or crossed tags in a broken trace
show as plain text and never unbalance the page. The verdict itself is read by ``rmr1.verdicts``, not here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from markupsafe import Markup, escape

from rmr1.report.stats import Shown, outcome
from rmr1.types import Judgment
from rmr1.verdicts import parse_trace

PART_TAGS = (
    "think",
    "type",
    "rubric",
    "justify",
    "solution",
    "eval",
    "quote_a",
    "quote_b",
    "summary_a",
    "summary_b",
    "answer",
)
_TAG = re.compile(r"<(/?)(" + "|".join(PART_TAGS) + r")\s*>", re.IGNORECASE)


def highlight(text: str) -> Markup:
    """Escaped ``text`` with each known part wrapped in ``<span class="part p-NAME">``."""
    out: list[str] = []
    stack: list[str] = []
    pos = 0
    for match in _TAG.finditer(text):
        out.append(str(escape(text[pos : match.start()])))
        pos = match.end()
        closing, name = match.group(1) == "/", match.group(2).lower()
        shown = str(escape(match.group(0)))
        if not closing:
            stack.append(name)
            out.append(f'<span class="part p-{name}"><span class="tag">{shown}</span>')
        elif name in stack:
            while stack:
                inner = stack.pop()
                if inner == name:
                    out.append(f'<span class="tag">{shown}</span></span>')
                    break
                out.append("</span>")  # an unclosed inner part ends with its parent
        else:
            out.append(shown)
    out.append(str(escape(text[pos:])))
    out.extend("</span>" for _ in stack)
    return Markup("".join(out))


@dataclass(frozen=True)
class TraceView:
    index: int
    item_id: str
    pair: int
    subset: str
    order: str
    sample: int
    outcome: str
    verdict: str
    finish_reason: str
    completion_tokens: int
    parts: list[str]  # short labels of the parts found, e.g. "type: Chat", "rubric: 4 items"
    html: Markup
    cut: int


def _parts(j: Judgment, mode: str) -> list[str]:
    trace = parse_trace(j.completion, mode)
    parts = []
    if trace.think:
        parts.append("think")
    if trace.type:
        parts.append(f"type: {trace.type}")
    if trace.rubric:
        weights = [i.weight for i in trace.rubric_items if i.weight is not None]
        total = f", weights sum {sum(weights):.0%}" if weights else ""
        parts.append(f"rubric: {len(trace.rubric_items)} items{total}")
    if trace.solution:
        parts.append("solution")
    if trace.eval:
        parts.append("eval")
    quotes = len(trace.quotes_a) + len(trace.quotes_b) + len(trace.summaries_a) + len(trace.summaries_b)
    if quotes:
        parts.append(
            f"quotes: A {len(trace.quotes_a) + len(trace.summaries_a)}, "
            f"B {len(trace.quotes_b) + len(trace.summaries_b)}"
        )
    # The logged verdict, not the shown text's: the report may show a trace cut before its answer.
    parts.append(f"answer: [[{j.verdict}]]" if j.verdict else f"no verdict ({j.parse_error or 'none'})")
    return parts


def trace_view(shown: Shown, mode: str) -> TraceView:
    j = shown.judgment
    return TraceView(
        index=shown.index,
        item_id=j.item_id,
        pair=j.pair,
        subset=j.subset,
        order=j.order,
        sample=j.sample,
        outcome=outcome(j),
        verdict=j.verdict or "-",
        finish_reason=j.finish_reason,
        completion_tokens=j.completion_tokens,
        parts=_parts(j, mode),
        html=highlight(j.completion),
        cut=shown.cut,
    )


__all__ = ["PART_TAGS", "TraceView", "highlight", "trace_view"]
