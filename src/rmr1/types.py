"""The nouns of the flow, as frozen dataclasses validated where they are built.

``PreferencePair`` is the unit a judge compares: a conversation context (one user turn or several) and two
responses, one preferred. ``CandidateSet`` holds two or more responses to one context (best-of-n, tournaments)
and expands into pairs. A ``Completion`` is what a backend returns for one ``GenerationRequest``; a ``Judgment``
is one model call's outcome as logged in ``judgments.jsonl``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from rmr1.errors import InputError

Role = Literal["system", "user", "assistant"]
Order = Literal["AB", "BA"]
Label = Literal["A", "B"]
# "too_long": the prompt does not fit the model's window, so it was never sent (see rmr1.backends.window).
FinishReason = Literal["stop", "length", "error", "too_long"]
ROLES: tuple[str, ...] = ("system", "user", "assistant")
FINISH_REASONS: tuple[str, ...] = ("stop", "length", "error", "too_long")


@dataclass(frozen=True)
class Message:
    role: str
    content: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise InputError(f"role must be one of {', '.join(ROLES)}, got {self.role!r}", field="role")
        if not isinstance(self.content, str):
            raise InputError(f"content must be a string, got {type(self.content).__name__}", field="content")

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


def as_messages(value: Any, *, field_name: str = "prompt") -> tuple[Message, ...]:
    """Accept a plain string (one user turn) or a list of {role, content} dicts / Messages."""
    if isinstance(value, str):
        return (Message("user", value),)
    if isinstance(value, Message):
        return (value,)
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        out: list[Message] = []
        for i, item in enumerate(value):
            if isinstance(item, Message):
                out.append(item)
            elif isinstance(item, Mapping):
                if "role" not in item or "content" not in item:
                    raise InputError("each message needs 'role' and 'content'", field=f"{field_name}[{i}]")
                try:
                    out.append(Message(str(item["role"]), item["content"]))
                except InputError as exc:
                    raise InputError(exc.bare, field=f"{field_name}[{i}].{exc.field}") from None
            else:
                raise InputError(
                    f"expected a message object, got {type(item).__name__}", field=f"{field_name}[{i}]"
                )
        return tuple(out)
    raise InputError(f"expected a string or a list of messages, got {type(value).__name__}", field=field_name)


def _check_text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise InputError(f"must be a string, got {type(value).__name__}", field=name)
    if not value.strip():
        raise InputError("is empty", field=name)
    return value


@dataclass(frozen=True)
class PreferencePair:
    """Two responses to one context; ``chosen`` is the preferred one.

    ``context`` ends with the user turn the responses answer; earlier turns make it multi-turn.
    ``pair`` tells comparisons inside one benchmark item apart (RM-Bench style cells, BoN loser index).
    """

    item_id: str
    context: tuple[Message, ...]
    chosen: str
    rejected: str
    subset: str = ""
    pair: int = 0
    metadata: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.item_id, str) or not self.item_id:
            raise InputError("must be a non-empty string", field="item_id")
        if not self.context:
            raise InputError("the conversation is empty", field="prompt")
        if not any(m.role == "user" for m in self.context):
            raise InputError("the conversation has no user turn", field="prompt")
        _check_text(self.chosen, "chosen")
        _check_text(self.rejected, "rejected")

    @property
    def is_multi_turn(self) -> bool:
        return sum(1 for m in self.context if m.role != "system") > 1

    @property
    def question(self) -> str:
        """The last user turn: the question both responses answer."""
        return next(m.content for m in reversed(self.context) if m.role == "user")

    @classmethod
    def from_texts(
        cls, prompt: Any, chosen: str, rejected: str, *, item_id: str = "0", subset: str = "", pair: int = 0
    ) -> PreferencePair:
        return cls(
            item_id=item_id,
            context=as_messages(prompt),
            chosen=chosen,
            rejected=rejected,
            subset=subset,
            pair=pair,
        )


@dataclass(frozen=True)
class CandidateSet:
    """Two or more responses to one context; ``best`` indexes the preferred one when known."""

    item_id: str
    context: tuple[Message, ...]
    responses: tuple[str, ...]
    best: int | None = None
    subset: str = ""

    def __post_init__(self) -> None:
        if len(self.responses) < 2:
            raise InputError("needs at least two responses", field="responses")
        for i, r in enumerate(self.responses):
            _check_text(r, f"responses[{i}]")
        if self.best is not None and not 0 <= self.best < len(self.responses):
            raise InputError(f"index {self.best} is out of range", field="best")

    def pairs_against_best(self) -> list[PreferencePair]:
        """Best vs each other response, ``pair`` = loser index (0-based over the losers)."""
        if self.best is None:
            raise InputError("the best response is unknown", field="best")
        losers = [r for i, r in enumerate(self.responses) if i != self.best]
        return [
            PreferencePair(self.item_id, self.context, self.responses[self.best], loser, self.subset, k)
            for k, loser in enumerate(losers)
        ]


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int = 1024
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    logprobs: bool = False  # ask for token log-probabilities, so the verdict's P(A) can be read (p_a)
    # The model may think first: a stop string counts only outside a <think> block. Backends whose stops
    # cannot tell the two apart (server-side stop strings: vLLM, OpenAI-compatible servers) then send none.
    thinking: bool = False


@dataclass(frozen=True)
class GenerationRequest:
    """One chat to complete. ``key`` identifies the call (used by the replay backend and in logs)."""

    messages: tuple[Message, ...]
    sampling: SamplingParams = SamplingParams()
    key: str = ""


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    reasoning: str | None = None
    error: str | None = None
    p_a: float | None = None  # P(A) at the verdict slot, from the two verdict tokens (rmr1.probability)
    # The prompt itself opened a <think> block (chat templates of thinking models do), so ``text`` starts
    # inside a thought and its first </think> closes it.
    think_opened: bool = False

    @property
    def full_text(self) -> str:
        """Reasoning (when a server sends it apart) and the answer, as one trace.

        A thought the prompt opened gets its ``<think>`` back, so the trace reads the same to the verdict
        parser (and to a rescore of the log) as one where the model wrote the tag itself.
        """
        if self.reasoning:
            return f"<think>\n{self.reasoning}\n</think>\n{self.text}"
        if self.think_opened and not self.text.lstrip().lower().startswith("<think"):
            return f"<think>\n{self.text}"
        return self.text


@dataclass(frozen=True)
class Verdict:
    """A parsed verdict: ``label`` is None when no verdict could be read, and ``reason`` says why."""

    label: str | None
    mode: str = "strict"
    reason: str | None = None

    @property
    def parsed(self) -> bool:
        return self.label is not None


@dataclass(frozen=True)
class Judgment:
    """One model call on one ordered pair, as a line of judgments.jsonl."""

    item_id: str
    pair: int
    subset: str
    order: str
    sample: int
    verdict: str | None
    correct: bool | None
    finish_reason: str
    completion: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    parse_error: str | None = None
    neutralised: bool = False
    p_a: float | None = None  # P(A) at the verdict position, when the backend gives log-probabilities
    score_a: float | None = None  # pointwise mode: the 1-10 rating of the response shown as A
    score_b: float | None = None  # pointwise mode: the rating of the response shown as B
    completion_b: str | None = None  # pointwise mode: B's rating trace (``completion`` holds A's)
    forced: bool = False  # the verdict was read by forcing the verdict prefix after the trace

    @property
    def key(self) -> tuple[str, int, str, int]:
        return (self.item_id, self.pair, self.order, self.sample)

    @property
    def p_preferred(self) -> float | None:
        """P(the preferred response wins), order-corrected from ``p_a``."""
        if self.p_a is None:
            return None
        return self.p_a if self.order == "AB" else 1.0 - self.p_a

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if data["p_a"] is None:
            del data["p_a"]  # CONTRACTS.md: absent when the backend gave no log-probabilities
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Judgment:
        known = {f for f in cls.__dataclass_fields__}
        missing = [
            k for k in ("item_id", "pair", "order", "sample", "verdict", "completion") if k not in data
        ]
        if missing:
            raise InputError(f"missing {', '.join(missing)}", field=missing[0])
        _check_judgment_fields(data)
        values = {k: v for k, v in data.items() if k in known}
        values.setdefault("subset", "")
        values.setdefault("correct", None)
        values.setdefault("finish_reason", "stop")
        values["item_id"] = str(values["item_id"])
        return cls(**values)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true is not a pair index


# field -> (accepted, what the error says): a hand-edited or foreign log fails here, on its line, not later
# inside scoring with a bare TypeError.
_JUDGMENT_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "item_id": (lambda v: isinstance(v, (str, int)) and not isinstance(v, bool), "a string or integer"),
    "pair": (lambda v: _is_int(v) and v >= 0, "a non-negative integer"),
    "sample": (lambda v: _is_int(v) and v >= 0, "a non-negative integer"),
    "order": (lambda v: v in ("AB", "BA"), '"AB" or "BA"'),
    "verdict": (lambda v: v is None or v in ("A", "B"), '"A", "B" or null'),
    "correct": (lambda v: v is None or isinstance(v, bool), "true, false or null"),
    "completion": (lambda v: isinstance(v, str), "a string"),
    "subset": (lambda v: isinstance(v, str), "a string"),
    "finish_reason": (lambda v: isinstance(v, str), "a string"),
    "prompt_tokens": (lambda v: _is_int(v), "an integer"),
    "completion_tokens": (lambda v: _is_int(v), "an integer"),
    "latency_s": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number"),
    "p_a": (
        lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)),
        "a number or null",
    ),
    "forced": (lambda v: isinstance(v, bool), "true or false"),
}


def _check_judgment_fields(data: Mapping[str, Any]) -> None:
    for name, (accepted, expected) in _JUDGMENT_CHECKS.items():
        if name in data and not accepted(data[name]):
            raise InputError(f"must be {expected}, got {json.dumps(data[name])[:40]}", field=name)


def preferred_label(order: str) -> str:
    """The label the preferred response was shown under."""
    return "A" if order == "AB" else "B"


def is_correct(verdict: str | None, order: str) -> bool | None:
    return None if verdict is None else verdict == preferred_label(order)
