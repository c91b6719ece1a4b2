"""How a pair is laid out inside a judge prompt: the single-turn and multi-turn layouts.

Single turn: a ``[Client Question]`` block, then each response between start/end marker lines naming the chatbot.
Multi turn: each side's whole conversation, flattened as ``User: ...`` / ``Chatbot A: ...`` lines, between
start/end marker lines.

A response (or question) may itself contain a line that looks like one of our markers, by accident or as an
attack on the judge. Such lines are neutralised (a ``\\`` is put in front) so the prompt keeps its structure,
and the render records that it happened.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rmr1.types import Message

QUESTION_HEADER = "[Client Question]"


def response_start(name: str) -> str:
    return f"=== Chatbot {name}: response begins ==="


def response_end(name: str) -> str:
    return f"=== Chatbot {name}: response ends ==="


def conversation_start(name: str) -> str:
    return f"=== Conversation with Chatbot {name} begins ==="


def conversation_end(name: str) -> str:
    return f"=== Conversation with Chatbot {name} ends ==="


# Any line that could be mistaken for a marker: our '=== ... ===' lines, the question header, and the
# bracketed "[The Start/End of ...]" style many judge prompts use.
_MARKER_LINE = re.compile(
    r"^[ \t]*(?:={3}.*chatbot.*={3}|\[\s*client\s+question\s*\]|\[\s*the\s+(?:start|end)\s+of\b.*\])[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)


def neutralise(text: str) -> tuple[str, bool]:
    """Escape lines that imitate the prompt's markers; return the text and whether anything changed."""
    if "===" not in text and "[" not in text:  # fast path: no marker can be present (most texts)
        return text, False
    changed = False

    def escape(match: re.Match[str]) -> str:
        nonlocal changed
        changed = True
        return "\\" + match.group(0).lstrip()

    return _MARKER_LINE.sub(escape, text), changed


@dataclass(frozen=True)
class RenderedPair:
    """The pair block of a prompt, and whether any text had to be neutralised."""

    question: str
    block: str
    neutralised: bool


class Neutraliser:
    """Neutralises the texts of one prompt and remembers whether any of them had to change."""

    def __init__(self) -> None:
        self.changed = False

    def __call__(self, text: str) -> str:
        out, changed = neutralise(text)
        self.changed = self.changed or changed
        return out


def split_turns(context: tuple[Message, ...]) -> tuple[list[Message], str]:
    """The context's non-system turns, and the single-turn layout's question (the one user turn)."""
    turns = [m for m in context if m.role != "system"]
    return turns, turns[0].content if turns else context[-1].content


def _speaker(message: Message, name: str) -> str:
    return {"user": "User", "assistant": f"Chatbot {name}", "system": "System"}[message.role]


def render_pair(context: tuple[Message, ...], response_a: str, response_b: str) -> RenderedPair:
    """Lay out the pair in the single-turn layout when the context is one user turn, else multi-turn."""
    turns, asked = split_turns(context)
    clean = Neutraliser()
    if len(turns) <= 1:
        question = clean(asked)
        block = "\n".join(
            [
                QUESTION_HEADER,
                question,
                "",
                response_start("A"),
                clean(response_a),
                response_end("A"),
                "",
                response_start("B"),
                clean(response_b),
                response_end("B"),
            ]
        )
        return RenderedPair(question, block, clean.changed)

    sides = []
    for name, response in (("A", response_a), ("B", response_b)):
        lines = [conversation_start(name)]
        for m in context:
            lines.append(f"{_speaker(m, name)}: {clean(m.content)}")
        lines.append(f"Chatbot {name}: {clean(response)}")
        lines.append(conversation_end(name))
        sides.append("\n".join(lines))
    question = turns[-1].content
    return RenderedPair(question, "\n\n".join(sides), clean.changed)
