"""One reader for preference rows, whatever format the user brings (used by judge, eval and train data).

Accepted rows (``None`` counts as absent, so a table that mixes formats reads too):

- TRL standard, explicit prompt: ``prompt``, ``chosen``, ``rejected`` as strings;
- TRL conversational, explicit prompt: ``prompt`` a message list, ``chosen`` / ``rejected`` message lists
  (usually one assistant message each);
- TRL implicit prompt: no ``prompt``; ``chosen`` / ``rejected`` whole conversations, split at their longest
  common prefix of messages;
- Anthropic HH: no ``prompt``; ``chosen`` / ``rejected`` whole dialogues as ``\\n\\nHuman: ...\\n\\nAssistant:
  ...`` text, split into turns and then read like the implicit-prompt format (an HH-style ``prompt`` string is
  split into turns too);
- unlabelled: ``prompt``, ``response_a``, ``response_b`` (what ``rmr1 judge --pairs`` takes).

In every case the context is the shared conversation and each side must add exactly one assistant turn to it.
Optional columns: ``id`` (or ``item_id``) and ``subset``. Errors are ``InputError`` naming file, line and field;
an empty response raises ``Unjudgeable`` (an ``InputError``), which a benchmark loader may count and skip.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rmr1.errors import InputError
from rmr1.types import Message, PreferencePair, as_messages

FORMATS = ("standard", "conversational", "implicit", "hh", "unlabelled")
_HH_TURN = re.compile(r"(?:^|\n\n)(Human|Assistant):[ \t]?")
_HH_ROLES = {"Human": "user", "Assistant": "assistant"}


class Unjudgeable(InputError):
    """A well-formed row that cannot be judged (an empty response): loaders may skip and count it."""


@dataclass(frozen=True)
class ParsedPreference:
    """A parsed row: the pair, whether it carries a label (chosen/rejected), and which format it was in."""

    pair: PreferencePair
    labelled: bool
    format: str  # one of FORMATS


def looks_like_hh(text: str) -> bool:
    """True for an Anthropic HH transcript: text that opens with a ``Human:`` turn."""
    return bool(re.match(r"\s*Human:", text))


def hh_turns(text: str, field: str) -> tuple[Message, ...]:
    """An HH transcript as messages (Human -> user, Assistant -> assistant); text before the first marker
    is an error, since it would silently fall out of the conversation."""
    stripped = text.lstrip("\n")
    marks = list(_HH_TURN.finditer(stripped))
    if not marks or marks[0].start() != 0:
        raise InputError("not an HH transcript (expected it to open with 'Human:')", field=field)
    turns = []
    for k, mark in enumerate(marks):
        end = marks[k + 1].start() if k + 1 < len(marks) else len(stripped)
        turns.append(Message(_HH_ROLES[mark.group(1)], stripped[mark.end() : end].strip()))
    return tuple(turns)


def _side(value: Any, field: str) -> tuple[str, tuple[Message, ...] | str]:
    """('text', str) or ('messages', messages) for one response column."""
    if isinstance(value, str):
        return "text", value
    if isinstance(value, (list, tuple)):
        return "messages", as_messages(value, field_name=field)
    raise InputError(f"must be a string or a list of messages, got {type(value).__name__}", field=field)


def _prompt(value: Any) -> tuple[Message, ...]:
    if isinstance(value, str) and looks_like_hh(value):
        turns = hh_turns(value, "prompt")
        # "...\n\nAssistant:" with nothing after it is the slot the responses fill, not a turn
        return turns[:-1] if turns[-1].role == "assistant" and not turns[-1].content else turns
    return as_messages(value, field_name="prompt")


def _shared_length(a: Sequence[Message], b: Sequence[Message]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def split_conversations(
    first: Sequence[Message], second: Sequence[Message], keys: tuple[str, str] = ("chosen", "rejected")
) -> tuple[tuple[Message, ...], str, str]:
    """The shared context and each side's final assistant turn, from two whole conversations.

    The context is the longest common prefix of messages, but never the final turn itself (two identical
    responses are still a pair); each side must then hold exactly one assistant message.
    """
    shared = min(_shared_length(first, second), len(first) - 1, len(second) - 1)
    if shared <= 0:
        for key, conv in zip(keys, (first, second), strict=True):
            if not conv:
                raise InputError("the conversation is empty", field=key)
        raise InputError(f"shares no turns with '{keys[0]}' (no common context)", field=keys[1])
    responses = []
    for key, conv in zip(keys, (first, second), strict=True):
        rest = conv[shared:]
        if len(rest) != 1:
            raise InputError(
                f"continues the conversation for {len(rest)} turns after the {shared} it shares with the "
                "other side (only the final assistant turns may differ)",
                field=key,
            )
        if rest[0].role != "assistant":
            raise InputError(f"must end with an assistant turn, got {rest[0].role!r}", field=key)
        responses.append(rest[0].content)
    return tuple(first[:shared]), responses[0], responses[1]


def _keys(record: Mapping[str, Any], allow_unlabelled: bool) -> tuple[tuple[str, str], bool]:
    if record.get("chosen") is not None or record.get("rejected") is not None or not allow_unlabelled:
        pair = ("chosen", "rejected")
    elif record.get("response_a") is not None or record.get("response_b") is not None:
        return ("response_a", "response_b"), False
    else:
        raise InputError("missing (give chosen/rejected, or response_a/response_b)", field="chosen")
    return pair, True


def _conversations(
    record: Mapping[str, Any], keys: tuple[str, str]
) -> tuple[str, tuple[Message, ...], tuple[Message, ...]]:
    """The format's name and both sides as whole conversations (context included)."""
    (kind_a, a), (kind_b, b) = (_side(record[k], k) for k in keys)
    prompt = record.get("prompt")
    if prompt is not None:
        context = _prompt(prompt)
        full_a = context + ((Message("assistant", a),) if isinstance(a, str) else a)
        full_b = context + ((Message("assistant", b),) if isinstance(b, str) else b)
        kind = "standard" if isinstance(prompt, str) and kind_a == kind_b == "text" else "conversational"
        return kind, full_a, full_b
    if kind_a != kind_b:
        raise InputError(
            f"is a {kind_b} but '{keys[0]}' is a {kind_a} (give both the same way)", field=keys[1]
        )
    if kind_a == "messages":
        assert not isinstance(a, str) and not isinstance(b, str)
        return "implicit", a, b
    assert isinstance(a, str) and isinstance(b, str)
    if not looks_like_hh(a):
        raise InputError(
            "missing: plain-text chosen/rejected need a prompt, unless they are whole HH transcripts "
            "('\\n\\nHuman: ... \\n\\nAssistant: ...') or message lists (implicit prompt)",
            field="prompt",
        )
    return "hh", hh_turns(a, keys[0]), hh_turns(b, keys[1])


def _item_id(record: Mapping[str, Any], default_id: str) -> str:
    for key in ("id", "item_id"):
        value = record.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value) == "":
            raise InputError(f"must be a non-empty string or integer, got {value!r}", field=key)
        return str(value)
    return default_id


def _parse(
    record: Mapping[str, Any], default_id: str, subset: str, allow_unlabelled: bool
) -> ParsedPreference:
    keys, labelled = _keys(record, allow_unlabelled)
    for key in keys:
        if record.get(key) is None:
            raise InputError("missing", field=key)
    kind, first, second = _conversations(record, keys)
    context, a, b = split_conversations(first, second, keys)
    for key, text in zip(keys, (a, b), strict=True):
        if not text.strip():
            raise Unjudgeable("is empty", field=key)
    raw_subset = record.get("subset")
    pair = PreferencePair(
        item_id=_item_id(record, default_id),
        context=context,
        chosen=a,
        rejected=b,
        subset=subset if raw_subset is None or raw_subset == "" else str(raw_subset),
    )
    return ParsedPreference(pair, labelled, kind if labelled else "unlabelled")


def parse_preference(
    record: Mapping[str, Any],
    *,
    source: str | None = None,
    line: int | None = None,
    default_id: str = "0",
    subset: str = "",
    allow_unlabelled: bool = False,
) -> ParsedPreference:
    """Read one preference row in any of the module's formats.

    ``source`` / ``line`` locate errors (leave them out to locate the error yourself); ``default_id`` is the
    id when the row has none; ``subset`` the subset when the row has none. ``allow_unlabelled`` accepts
    {prompt, response_a, response_b} rows, parsed with response_a in the chosen slot and ``labelled=False``.
    """
    try:
        return _parse(record, default_id, subset, allow_unlabelled)
    except Unjudgeable as exc:
        raise Unjudgeable(exc.bare, source=source, line=line, field=exc.field) from None
    except InputError as exc:
        if source is None and line is None:
            raise
        raise exc.located(source, line) from None


__all__ = [
    "FORMATS",
    "ParsedPreference",
    "Unjudgeable",
    "hh_turns",
    "looks_like_hh",
    "parse_preference",
    "split_conversations",
]
