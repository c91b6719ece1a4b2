"""The demo's verifiable preference task and its scripted teacher.

Task: two-digit additions ("What is 47 + 38?"). The preferred response states the right sum; the rejected one
a close wrong sum of the kinds people and small models actually produce: the carry dropped (75), a ones digit
off by one or two (84, 87), a tens digit off by one (95), or the last two digits swapped (58). Every distractor
shares most digits with the right sum, so a judge cannot pick by shape or size: it has to do the addition.
Held-out questions use number pairs that never occur in training.

The reference trace reasons rather than looks up: it adds column by column (ones, carry, tens), then ties each
chatbot's number to its letter and finds its own total among them. Every step is a one-digit fact or a copy, which a
135M model can learn, but the chain is long enough that a model trained on a few dozen traces still slips, which
leaves room for reinforcement learning on the labelled pairs.

The scripted teacher stands in for the LLM teacher of the paper (Claude, then o3): it implements the backend
protocol, reads the judge prompt like any teacher would and writes the trace. To exercise the second pass it is
careless on a fixed share of first attempts (it drops or invents a carry, or slips on a digit, and so lands on
the wrong chatbot's number); when the prompt carries the pass-2 note it works the sum out with care.
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
    "Judge which chatbot answered correctly. Give the task type in <type>, add the numbers column by column "
    "in <solution>, check each answer against your total in <eval>, then end with <answer>[[A]]</answer> or "
    "<answer>[[B]]</answer>."
)
DEMO_TEMPLATE = JudgeTemplate("demo-arithmetic", DEMO_SYSTEM, "{pair}", "short CoR template for the CPU demo")

_QUESTIONS = ("What is {a} + {b}?", "Compute {a} + {b}.", "Add {a} and {b}.", "What do {a} and {b} sum to?")
_ANSWERS = ("{a} + {b} = {c}.", "The answer is {c}.", "It is {c}.", "The sum is {c}.")
DISTRACTORS = ("carry", "ones", "tens", "swap")
_NUMBER = re.compile(r"-?\d+")


@dataclass(frozen=True)
class TaskSplit:
    train: list[PreferencePair]
    test: list[PreferencePair]


def distractor(a: int, b: int, kind: str, rng: random.Random) -> int | None:
    """A close wrong sum of ``kind``, or None when that kind does not apply to ``a + b``."""
    right = a + b
    carry = (a % 10 + b % 10) >= 10
    if kind == "carry":
        return right - 10 if carry else None
    if kind == "ones":
        return right + rng.choice((-2, -1, 1, 2))
    if kind == "tens":
        return right + rng.choice((-10, 10))
    if kind == "swap":
        text = str(right)
        swapped = int(text[:-2] + text[-1] + text[-2])
        return swapped if swapped != right and text[-2] != "0" else None
    raise ValueError(f"unknown distractor kind {kind!r}")


def _pair(rng: random.Random, a: int, b: int, item_id: str) -> PreferencePair:
    kinds = list(DISTRACTORS)
    rng.shuffle(kinds)
    kind, wrong = next((k, w) for k in kinds if (w := distractor(a, b, k, rng)) is not None)
    style = rng.choice(_ANSWERS)
    question = rng.choice(_QUESTIONS).format(a=a, b=b)
    return PreferencePair(
        item_id,
        (Message("user", question),),
        style.format(a=a, b=b, c=a + b),
        style.format(a=a, b=b, c=wrong),
        subset=kind,
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


HELD_OUT_POOL = 2000  # (a, b) combinations set aside for held-out pairs, whatever the sizes asked for


def make_task(n_train: int, n_test: int, seed: int = 0) -> TaskSplit:
    """Training and held-out pairs; the held-out split uses (a, b) combinations never seen in training, and
    the same seed gives the same pairs in each split whatever the other split's size."""
    rng = random.Random(seed)
    combos = [(a, b) for a in range(10, 100) for b in range(10, 100)]
    rng.shuffle(combos)
    if n_test > HELD_OUT_POOL or n_train > len(combos) - HELD_OUT_POOL:
        raise ValueError(f"at most {HELD_OUT_POOL} held-out and {len(combos) - HELD_OUT_POOL} training pairs")
    held, seen = combos[:n_test], combos[HELD_OUT_POOL : HELD_OUT_POOL + n_train]
    test_rng, train_rng = random.Random(seed + 1), random.Random(seed + 2)
    train = [_pair(train_rng, a, b, f"train-{i}") for i, (a, b) in enumerate(seen)]
    test = [_pair(test_rng, a, b, f"test-{i}") for i, (a, b) in enumerate(held)]
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


def column_sum(x: int, y: int, slip: int = 0) -> tuple[str, int]:
    """The column-by-column working of ``x + y`` and its total; ``slip`` (+-1) miscounts the carry."""
    ones = x % 10 + y % 10
    carry = max(0, min(1, ones // 10 + slip))
    tens = x // 10 + y // 10 + carry
    total = tens * 10 + ones % 10
    carried = f", carry {carry}" if carry else ""
    plus_carry = f" + {carry}" if carry else ""
    return (
        f"Ones: {x % 10} + {y % 10} = {ones}{carried}. Tens: {x // 10} + {y // 10}{plus_carry} = {tens}. "
        f"Total: {total}.",
        total,
    )


def trace_for(shown: ShownPair, careless: bool = False) -> str:
    """A short Chain-of-Rubrics trace; ``careless`` slips on the carry (or, with no carry to slip on, on the
    sum itself) and lands on the wrong chatbot's number."""
    numbers = [int(n) for n in _NUMBER.findall(shown.question)][:2]
    a_says, b_says = _last_number(shown.response_a), _last_number(shown.response_b)
    if len(numbers) < 2 or a_says is None or b_says is None:
        return "<type>Chat</type>\n<eval>The answers cannot be compared.</eval>\n<answer>[[A]]</answer>"
    x, y = numbers
    working, total = column_sum(x, y)
    if careless:  # the slip a hurried judge makes: it ends on the other chatbot's number
        wrong = b_says if a_says == total else a_says
        slipped = [column_sum(x, y, slip) for slip in (-1, 1)]
        working, total = next(
            ((w, t) for w, t in slipped if t == wrong),
            (working.rsplit(" Total: ", 1)[0] + f" Total: {wrong}.", wrong),
        )
    verdict = "A" if a_says == total else "B" if b_says == total else "A"
    # Each answer is tied to its chatbot before the lookup, so naming the winner is finding the total among
    # them: a lookup a small model learns from few traces (the earlier "A says N: right." form left SFT
    # answering one letter whatever its own check found).
    checks = f"{a_says} is A's answer. {b_says} is B's answer. My total {total} is {verdict}'s answer."
    return (
        f"<type>Reasoning</type>\n<solution>{working}</solution>\n<eval>{checks}</eval>\n"
        f"<answer>[[{verdict}]]</answer>"
    )


class ArithmeticTeacher:
    """A deterministic teacher for the demo task, usable wherever a backend is (``generate``)."""

    def __init__(self, careless_share: float = 0.25, seed: int = 0) -> None:
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
    "DISTRACTORS",
    "ArithmeticTeacher",
    "ShownPair",
    "TaskSplit",
    "column_sum",
    "distractor",
    "make_task",
    "preference_rows",
    "read_prompt",
    "trace_for",
]
