"""The one verdict parser: benchmark scoring, RL rewards and the server all call these functions.

Modes
- ``strict``: the judge's final ``<answer>[[X]]</answer>`` tag, read after the last ``</think>`` and outside any
  quoted response text (``<quote_A>``/``<summary_A>`` blocks), so a verdict tag inside a quoted response or an
  unfinished thought never counts. Tag names, spacing and the letter's case are forgiven. A quote the judge
  never closed ends at the next structural tag or at a verdict line that ends the output
  (docs/design/verdict-parsing.md).
- ``paper``: the released RM-R1 evaluation rule: ``[[A]]`` and ``[[B]]`` both anywhere -> unparsed; else the one
  that occurs; else unparsed.

An unparsed verdict is its own outcome (``label=None``) with a ``reason``; nothing here scores it.

``stop_end`` is the generation-side twin of the think rule: where a backend may stop on a stop string, which
is only outside a thought, so a thinking judge that drafts a verdict while thinking is not cut short.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from rmr1.types import Verdict

MODES = ("strict", "paper")

# Reasons an output has no verdict.
NO_VERDICT = "no_verdict"
AMBIGUOUS = "ambiguous"
UNFINISHED_THINK = "unfinished_think"
MALFORMED_ANSWER = "malformed_answer"

_THINK_CLOSE = re.compile(r"</think\s*>", re.IGNORECASE)
_THINK_OPEN = re.compile(r"<think\s*>", re.IGNORECASE)
_ANSWER = re.compile(r"<\s*answer\s*>(.*?)<\s*/\s*answer\s*>", re.IGNORECASE | re.DOTALL)
_ANSWER_OPEN = re.compile(r"<\s*answer\s*>", re.IGNORECASE)
_BRACKET = re.compile(r"^\s*\[\[\s*([ab])\s*\]\]\s*$", re.IGNORECASE)
_THINK_TAG = re.compile(r"<(/?)think\s*>", re.IGNORECASE)
_QUOTE_OPEN = re.compile(r"<(quote|summary)_([ab])>", re.IGNORECASE)
# What ends a quote the judge never closed: any quote/summary tag (the judge moved on) or the end of <eval>.
_QUOTE_BOUNDARY = re.compile(r"</?(?:quote|summary)_[ab]>|<\s*/\s*eval\s*>", re.IGNORECASE)
# A verdict on its own line that ends the output (whitespace and special tokens such as <|im_end|> may follow).
_FINAL_VERDICT_LINE = re.compile(
    r"(?:\A|\n)[ \t]*<\s*answer\s*>[^<]*<\s*/\s*answer\s*>(?:\s|<\|[^|<>\s]*\|>|</s>)*\Z", re.IGNORECASE
)


def _final_section(text: str) -> tuple[str | None, str | None]:
    """The text after the last ``</think>``; (None, reason) when a thought was opened and never closed."""
    closes = list(_THINK_CLOSE.finditer(text))
    if closes:
        return text[closes[-1].end() :], None
    if _THINK_OPEN.search(text):
        return None, UNFINISHED_THINK
    return text, None


def _quote_end(section: str, opened: re.Match[str], verdict_at: int) -> int:
    """Where a quote that starts at ``opened`` ends: after its closing tag, or (never closed) at the next
    boundary tag, else at the final verdict line, else at the end of the text (a quote cut by truncation)."""
    close = f"</{opened.group(1)}_{opened.group(2)}>".lower()
    boundary = _QUOTE_BOUNDARY.search(section, opened.end())
    if boundary is not None and boundary.start() < verdict_at:
        return boundary.end() if boundary.group(0).lower() == close else boundary.start()
    return verdict_at


def _drop_quotes(section: str) -> str:
    """The text with quoted response material (``<quote_X>``/``<summary_X>`` blocks) taken out."""
    final = _FINAL_VERDICT_LINE.search(section)
    verdict_at = final.start() if final else len(section)
    parts: list[str] = []
    pos = 0
    while (opened := _QUOTE_OPEN.search(section, pos)) is not None:
        parts.append(section[pos : opened.start()])
        parts.append(" ")
        pos = max(_quote_end(section, opened, verdict_at), opened.end())
    parts.append(section[pos:])
    return "".join(parts)


def _strict(text: str) -> Verdict:
    section, reason = _final_section(text)
    if section is None:
        return Verdict(None, "strict", reason)
    section = _drop_quotes(section)
    answers = list(_ANSWER.finditer(section))
    if not answers:
        return Verdict(None, "strict", MALFORMED_ANSWER if _ANSWER_OPEN.search(section) else NO_VERDICT)
    match = _BRACKET.match(answers[-1].group(1))
    if not match:
        return Verdict(None, "strict", MALFORMED_ANSWER)
    return Verdict(match.group(1).upper(), "strict", None)


def _paper(text: str) -> Verdict:
    has_a, has_b = "[[A]]" in text, "[[B]]" in text
    if has_a and has_b:
        return Verdict(None, "paper", AMBIGUOUS)
    if has_a:
        return Verdict("A", "paper", None)
    if has_b:
        return Verdict("B", "paper", None)
    return Verdict(None, "paper", NO_VERDICT)


def parse_verdict(text: str, mode: str = "strict") -> Verdict:
    """Read the verdict of one judge output. ``mode`` is ``strict`` or ``paper`` (see the module doc)."""
    if mode == "strict":
        return _strict(text or "")
    if mode == "paper":
        return _paper(text or "")
    raise ValueError(f"unknown parse mode {mode!r}; choose one of {', '.join(MODES)}")


def in_thought(text: str, pos: int, *, think_opened: bool = False) -> bool:
    """Whether ``text[pos]`` lies inside a ``<think>`` block; ``think_opened``: the text starts inside one."""
    inside = think_opened
    for tag in _THINK_TAG.finditer(text, 0, pos):
        inside = tag.group(1) == ""
    return inside


def stop_end(text: str, stops: Sequence[str], *, think_opened: bool = False) -> int | None:
    """The index just after the first stop string that occurs outside a thought, or None when there is none.

    Generation stops there; a stop string inside ``<think>...</think>`` (a drafted verdict) does not count.
    """
    best: int | None = None
    for stop in stops:
        if not stop:
            continue
        found = text.find(stop)
        while found >= 0 and (best is None or found + len(stop) < best):
            if not in_thought(text, found, think_opened=think_opened):
                best = found + len(stop)
                break
            found = text.find(stop, found + 1)
    return best


def verdict_tag(label: str) -> str:
    return f"<answer>[[{label}]]</answer>"


def rm_r1_reward(completion: str, winner: str, *, truncated: bool = False) -> float:
    """The paper's RL reward: +1 when the last 80 characters hold the right verdict tag and not the other.

    ``winner`` is ``model_a``/``model_b`` (or ``A``/``B``). Special tokens stay in ``completion`` as decoded;
    a truncated response scores -1 whatever it says.
    """
    right = _winner_label(winner)
    wrong = "B" if right == "A" else "A"
    if truncated:
        return -1.0
    tail = completion[-80:]
    return 1.0 if verdict_tag(right) in tail and verdict_tag(wrong) not in tail else -1.0


def strict_reward(completion: str, winner: str, *, truncated: bool = False) -> float:
    """A variant of the RL reward that reads the verdict with the strict parser instead of the tail rule."""
    if truncated:
        return -1.0
    return 1.0 if parse_verdict(completion, "strict").label == _winner_label(winner) else -1.0


def _winner_label(winner: str) -> str:
    w = str(winner).strip().lower()
    if w in ("model_a", "a"):
        return "A"
    if w in ("model_b", "b"):
        return "B"
    raise ValueError(f"winner must be model_a or model_b, got {winner!r}")


# --- trace structure, for reports -------------------------------------------------------------------------


@dataclass(frozen=True)
class RubricItem:
    text: str
    weight: float | None


@dataclass(frozen=True)
class Trace:
    """The Chain-of-Rubrics parts of a judge output; empty where the judge skipped a part."""

    think: str = ""
    type: str | None = None
    rubric: str = ""
    rubric_items: tuple[RubricItem, ...] = ()
    justify: str = ""
    solution: str = ""
    eval: str = ""
    quotes_a: tuple[str, ...] = field(default=())
    quotes_b: tuple[str, ...] = field(default=())
    summaries_a: tuple[str, ...] = field(default=())
    summaries_b: tuple[str, ...] = field(default=())
    verdict: Verdict = field(default=Verdict(None, "strict", NO_VERDICT))


def _blocks(tag: str, text: str) -> list[str]:
    pattern = re.compile(rf"<{tag}>(.*?)</{tag}>", re.IGNORECASE | re.DOTALL)
    return [m.group(1).strip() for m in pattern.finditer(text)]


def _first(tag: str, text: str) -> str:
    found = _blocks(tag, text)
    return found[0] if found else ""


_WEIGHT = re.compile(r"(\d+(?:\.\d+)?)\s*(%)?")
_ITEM_LINE = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+(.*\S)\s*$")


def _rubric_items(rubric: str) -> tuple[RubricItem, ...]:
    """Numbered or bulleted rubric lines, each with the weight it states (``30%`` -> 0.30, ``0.3`` -> 0.3)."""
    items = []
    for line in rubric.splitlines():
        m = _ITEM_LINE.match(line)
        if not m:
            continue
        text = m.group(1)
        weight = None
        for w in _WEIGHT.finditer(text):
            if w.group(2):
                weight = float(w.group(1)) / 100.0
            elif "weight" in text.lower() and float(w.group(1)) <= 1.0:
                weight = float(w.group(1))
        items.append(RubricItem(text=text, weight=weight))
    return tuple(items)


def parse_trace(text: str, mode: str = "strict") -> Trace:
    """Split a judge output into its Chain-of-Rubrics parts (type, rubric, solution, eval, quotes, verdict)."""
    text = text or ""
    think = _first("think", text)
    if not think and _THINK_CLOSE.search(text) and not _THINK_OPEN.search(text):
        think = _THINK_CLOSE.split(text)[0].strip()  # templates that open <think> in the prompt
    rubric = _first("rubric", text)
    kind = _first("type", text)
    return Trace(
        think=think,
        type=kind or None,
        rubric=rubric,
        rubric_items=_rubric_items(rubric),
        justify=_first("justify", text),
        solution=_first("solution", text),
        eval=_first("eval", text),
        quotes_a=tuple(_blocks("quote_A", text)),
        quotes_b=tuple(_blocks("quote_B", text)),
        summaries_a=tuple(_blocks("summary_A", text)),
        summaries_b=tuple(_blocks("summary_B", text)),
        verdict=parse_verdict(text, mode),
    )


__all__ = [
    "MODES",
    "RubricItem",
    "Trace",
    "in_thought",
    "parse_trace",
    "parse_verdict",
    "rm_r1_reward",
    "stop_end",
    "strict_reward",
    "verdict_tag",
]


# --- pointwise scores -------------------------------------------------------------------------------------
# A pointwise judge rates one response and ends with <score>N</score>, N from SCORE_MIN to SCORE_MAX. The rules
# mirror the strict verdict parser: only the final section counts (after the last </think>, outside quoted
# response text), the last score tag wins, and anything doubtful is unparsed with a reason, never a guess.

SCORE_MIN = 1.0
SCORE_MAX = 10.0
NO_SCORE = "no_score"
MALFORMED_SCORE = "malformed_score"
OUT_OF_RANGE = "out_of_range"

_SCORE = re.compile(r"<\s*score\s*>(.*?)<\s*/\s*score\s*>", re.IGNORECASE | re.DOTALL)
_SCORE_OPEN = re.compile(r"<\s*score\s*>", re.IGNORECASE)
# The number, optionally bold/bracketed and written as "7/10" or "7 out of 10"; nothing else may be in the tag.
_SCORE_VALUE = re.compile(
    r"^[\s*\[(]*(\d{1,3}(?:\.\d+)?)\s*(?:/\s*10|out\s+of\s+10)?[\s*\])]*\.?\s*$", re.IGNORECASE
)
# A pointwise trace quotes the response in <quote>...</quote>; pairwise-style quote tags are stripped as well.
_QUOTED_ONE = re.compile(r"<(quote|summary)(?:_[ab])?>.*?(?:</\1(?:_[ab])?>|\Z)", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class Score:
    """A parsed rating: ``value`` in [SCORE_MIN, SCORE_MAX], or None with a ``reason``."""

    value: float | None
    reason: str | None = None

    @property
    def parsed(self) -> bool:
        return self.value is not None


def parse_score(text: str) -> Score:
    """Read the 1-10 rating of one pointwise judge output (rules in the section comment above)."""
    section, reason = _final_section(text or "")
    if section is None:
        return Score(None, reason)
    section = _QUOTED_ONE.sub(" ", section)
    tags = list(_SCORE.finditer(section))
    if not tags:
        return Score(None, MALFORMED_SCORE if _SCORE_OPEN.search(section) else NO_SCORE)
    match = _SCORE_VALUE.match(tags[-1].group(1))
    if not match:
        return Score(None, MALFORMED_SCORE)
    value = float(match.group(1))
    if not SCORE_MIN <= value <= SCORE_MAX:
        return Score(None, OUT_OF_RANGE)
    return Score(value, None)


def score_tag(value: float) -> str:
    return f"<score>{value:g}</score>"


TIE = "tie"
UNRATED = "unrated"


def decide(score_a: float | None, score_b: float | None) -> tuple[str | None, str | None]:
    """A pairwise verdict from two ratings: the higher one wins; equal ratings are an explicit tie (no
    verdict, reason ``tie``) and a missing rating leaves the pair undecided (reason ``unrated``)."""
    if score_a is None or score_b is None:
        return None, UNRATED
    if score_a == score_b:
        return None, TIE
    return ("A" if score_a > score_b else "B"), None


__all__ += ["SCORE_MAX", "SCORE_MIN", "Score", "decide", "parse_score", "score_tag"]
