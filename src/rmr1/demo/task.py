"""The demo's verifiable preference task and its scripted teacher.

Task: one-digit additions ("What is 7 + 5?"); the preferred response states the right sum, the rejected one a
subtly wrong sum (off by one or two, or by ten). Held-out questions use number pairs that never occur in
training. Prompts use a short Chain-of-Rubrics template so a 135M model on a CPU judges them quickly.

The scripted teacher stands in for the LLM teacher of the paper (Claude, then o3): it implements the backend
protocol, reads the judge prompt like any teacher would, and writes a short Chain-of-Rubrics trace
(type, solution, evaluation, verdict). To exercise the second pass it is careless on a fixed share of first
attempts (its sum lands on the wrong response's number); when the prompt carries the pass-2 note it
works the sum out with care.
"""

from __future__ import annotations

import hashlib
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from rmr1.prompts import JudgeTemplate
from rmr1.prompts.layout import QUESTION_HEADER, response_end, response_start
from rmr1.train.distill import HINT_MARKER
from rmr1.types import Completion, GenerationRequest, Message, PreferencePair

DEMO_SYSTEM = (
    "Judge which chatbot answered correctly. Give the task type in <type>, solve it in <solution>, compare "
    "the answers in <eval>, then end with <answer>[[A]]</answer> or <answer>[[B]]</answer>."
)
DEMO_TEMPLATE = JudgeTemplate("demo-arithmetic", DEMO_SYSTEM, "{pair}", "short CoR template for the CPU demo")

_QUESTIONS = ("What is {a} + {b}?", "Compute {a} + {b}.", "Add {a} and {b}.")
_ANSWERS = ("{a} + {b} = {c}.", "The answer is {c}.", "It is {c}.")
_OFFSETS = (-2, -1, 1, 2, 10, -10)
_NUMBER = re.compile(r"-?\d+")


@dataclass(frozen=True)
class TaskSplit:
    train: list[PreferencePair]
    test: list[PreferencePair]


def _pair(rng: random.Random, a: int, b: int, item_id: str, subset: str) -> PreferencePair:
    right = a + b
    wrong = right + rng.choice([d for d in _OFFSETS if right + d > 0])
    style = rng.choice(_ANSWERS)
    question = rng.choice(_QUESTIONS).format(a=a, b=b)
    return PreferencePair(
        item_id,
        (Message("user", question),),
        style.format(a=a, b=b, c=right),
        style.format(a=a, b=b, c=wrong),
        subset=subset,
    )


def preference_rows(pairs: Sequence[PreferencePair]) -> list[dict[str, str]]:
    """Pairs as rows of a preference file (TRL's standard format plus id and subset), which the ``preference``
    benchmark reads back into the same pairs."""
    return [
        {
            "id": p.item_id,
            "prompt": p.question,
            "chosen": p.chosen,
            "rejected": p.rejected,
            "subset": p.subset,
        }
        for p in pairs
    ]


def make_task(n_train: int, n_test: int, seed: int = 0, held_out_share: float = 0.25) -> TaskSplit:
    """Training and held-out pairs; the held-out split uses (a, b) combinations never seen in training."""
    rng = random.Random(seed)
    combos = [(a, b) for a in range(1, 10) for b in range(1, 10)]
    rng.shuffle(combos)
    cut = max(1, int(len(combos) * held_out_share))
    held, seen = combos[:cut], combos[cut:]
    train = [_pair(rng, *seen[i % len(seen)], f"train-{i}", "addition") for i in range(n_train)]
    test = [_pair(rng, *held[i % len(held)], f"test-{i}", "addition") for i in range(n_test)]
    rng.shuffle(train)
    return TaskSplit(train, test)


@dataclass(frozen=True)
class ShownPair:
    """What a judge prompt shows: the question and the two responses."""

    question: str
    response_a: str
    response_b: str


def read_prompt(text: str) -> ShownPair | None:
    """Pull the question and both responses out of a single-turn judge prompt."""
    try:
        question = text.split(QUESTION_HEADER, 1)[1].split(response_start("A"), 1)[0].strip()
        a = text.split(response_start("A"), 1)[1].split(response_end("A"), 1)[0].strip()
        b = text.split(response_start("B"), 1)[1].split(response_end("B"), 1)[0].strip()
    except IndexError:
        return None
    return ShownPair(question, a, b)


def _last_number(text: str) -> int | None:
    found = _NUMBER.findall(text)
    return int(found[-1]) if found else None


def trace_for(shown: ShownPair, careless: bool = False) -> str:
    """A short Chain-of-Rubrics trace; ``careless`` botches the sum into the wrong response's number."""
    numbers = [int(n) for n in _NUMBER.findall(shown.question)][:2]
    a_says, b_says = _last_number(shown.response_a), _last_number(shown.response_b)
    if len(numbers) < 2 or a_says is None or b_says is None:
        return "<type>Chat</type>\n<eval>The answers cannot be compared.</eval>\n<answer>[[A]]</answer>"
    x, y = numbers
    total = x + y
    if careless:  # the slip a hurried judge makes: it lands on the other chatbot's number
        total = b_says if a_says == total else a_says
    winner = "A" if total == a_says else "B"
    # Each answer is tied to its chatbot ("9 is A's answer") before the solution's number is looked up among
    # them, so the verdict follows from the trace by copying, a step even a small model learns quickly.
    return (
        f"<type>Reasoning</type>\n<solution>{x} + {y} = {total}</solution>\n"
        f"<eval>{a_says} is A's answer. {b_says} is B's answer. "
        f"Solution: {total} is {winner}'s answer.</eval>\n"
        f"<answer>[[{winner}]]</answer>"
    )


class ArithmeticTeacher:
    """A deterministic teacher for the demo task, usable wherever a backend is (``generate``)."""

    def __init__(self, careless_share: float = 0.2, seed: int = 0) -> None:
        self.careless_share = careless_share
        self.seed = seed
        self.calls = 0

    def _careless(self, text: str) -> bool:
        digest = hashlib.sha256(f"{self.seed}\x1f{text}".encode()).digest()
        return int.from_bytes(digest[:4], "big") / 2**32 < self.careless_share

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        out = []
        for request in requests:
            started = time.perf_counter()
            self.calls += 1
            user = next(m.content for m in reversed(request.messages) if m.role == "user")
            shown = read_prompt(user.split(HINT_MARKER)[0])
            if shown is None:
                out.append(Completion("", "error", error="not a single-turn judge prompt"))
                continue
            second_look = HINT_MARKER in user
            text = trace_for(shown, careless=not second_look and self._careless(user))
            out.append(
                Completion(
                    text,
                    "stop",
                    prompt_tokens=len(user.split()),
                    completion_tokens=len(text.split()),
                    latency_s=time.perf_counter() - started,
                )
            )
        return out


__all__ = [
    "DEMO_TEMPLATE",
    "ArithmeticTeacher",
    "ShownPair",
    "TaskSplit",
    "make_task",
    "preference_rows",
    "read_prompt",
    "trace_for",
]
