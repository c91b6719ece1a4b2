"""What an OpenAI-compatible server sends back, read: chat completion bodies and refusals for the context.

``parse_response`` turns one chat completion body into a ``Completion`` (raising ``Retry`` when the body is not
a usable answer, so the request is tried again); ``context_refusal`` recognises a 4xx that says the prompt does
not fit the model, with the numbers the server gave; ``window_from_models`` reads the window ``GET /models``
states. rmr1.backends.openai does the HTTP around them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from rmr1.probability import openai_tokens, p_a_from_tokens
from rmr1.retry import Retry
from rmr1.types import Completion

TOP_LOGPROBS = 20  # alternatives asked per token: the other verdict letter is almost always among them
_SNIPPET = 200  # characters of a server's error body kept in the one-line error
_CLOSING_TAG = re.compile(r"</([A-Za-z][\w-]*)>")


class Final(Exception):
    """An attempt failed in a way no retry will mend (a 4xx other than 429)."""


class TooLong(Exception):
    """The server refused the request for the model's context; the numbers it gave, when it gave them."""

    def __init__(self, why: str, prompt_tokens: int | None, window: int | None) -> None:
        super().__init__(why)
        self.prompt_tokens = prompt_tokens
        self.window = window


# How servers say a request does not fit: vLLM, OpenAI, SGLang, llama.cpp ("exceed_context_size_error").
_CONTEXT_ERROR = re.compile(
    r"context[ _](?:length|size|window)|maximum model length|exceed_context_size|longer than the model",
    re.IGNORECASE,
)
_WINDOW_SAYS = (
    re.compile(r"maximum context length is (\d+)", re.IGNORECASE),
    re.compile(r"maximum model length of (\d+)", re.IGNORECASE),
    re.compile(r"context length \((\d+) tokens\)", re.IGNORECASE),
    re.compile(r'"n_ctx"\s*:\s*(\d+)'),
)
_PROMPT_SAYS = (
    re.compile(r"(\d+) in the messages", re.IGNORECASE),
    re.compile(r"has (\d+) input tokens", re.IGNORECASE),
    re.compile(r"prompt \(length (\d+)\)", re.IGNORECASE),
    re.compile(r"messages resulted in (\d+) tokens", re.IGNORECASE),
    re.compile(r"input \((\d+) tokens\)", re.IGNORECASE),
    re.compile(r'"n_prompt_tokens"\s*:\s*(\d+)'),
)


def one_line(text: str) -> str:
    """A server's message flattened to one line and cut to ``_SNIPPET`` characters, for ``Completion.error``."""
    flat = " ".join(text.split())
    return flat if len(flat) <= _SNIPPET else flat[:_SNIPPET] + "..."


def _first_number(patterns: Sequence[re.Pattern[str]], text: str) -> int | None:
    for pattern in patterns:
        found = pattern.search(text)
        if found:
            return int(found.group(1))
    return None


def context_refusal(status: int, body: str) -> TooLong | None:
    """A 4xx that says the request does not fit the model's context, with the numbers it states."""
    if status not in (400, 413, 422) or not _CONTEXT_ERROR.search(body):
        return None
    return TooLong(one_line(body), _first_number(_PROMPT_SAYS, body), _first_number(_WINDOW_SAYS, body))


def window_from_models(data: Any, model: str | None) -> int | None:
    """The context window a ``GET /models`` answer states for ``model`` (else for its first model)."""
    listed = data.get("data") if isinstance(data, dict) else None
    entries = [e for e in listed or [] if isinstance(e, dict)]
    entry = next((e for e in entries if e.get("id") == model), entries[0] if entries else None)
    if entry is None:
        return None
    meta = entry.get("meta")
    meta = meta if isinstance(meta, dict) else {}
    for value in (
        entry.get("max_model_len"),
        entry.get("context_length"),
        meta.get("n_ctx"),
        meta.get("n_ctx_train"),
    ):
        if isinstance(value, int) and value > 0:
            return value
    return None


def _restore_stop(text: str, choice: Mapping[str, Any], stops: Sequence[str]) -> str:
    """Put back the stop string the server cut off, so ``</answer>`` survives as with the local backends.

    vLLM names the matched stop in ``stop_reason`` (None for end-of-turn), SGLang in ``matched_stop``. Other
    servers (llama.cpp, hosted APIs) say nothing, and a stop and an end-of-turn look alike; then only a
    closing-tag stop is put back, and only when the text leaves that tag open, so a model that simply ended
    its turn never gets a tag it did not write.
    """
    if not stops or any(text.endswith(s) for s in stops):
        return text
    for key in ("stop_reason", "matched_stop"):
        if key in choice:
            matched = choice[key]
            return text + matched if isinstance(matched, str) and matched in stops else text
    for stop in stops:
        closing = _CLOSING_TAG.fullmatch(stop)
        if closing and text.rfind(f"<{closing.group(1)}>") > text.rfind(stop):
            return text + stop
    return text


def parse_response(body: bytes, stops: Sequence[str] = ()) -> Completion:
    """Read one chat completion body; raises ``Retry`` when it is not a usable answer."""
    try:
        data = json.loads(body)
    except ValueError:
        raise Retry(f"malformed JSON body: {one_line(body.decode('utf-8', 'replace'))!r}") from None
    if not isinstance(data, dict):
        raise Retry("response body is not a JSON object")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        error = data.get("error")
        detail = f": {one_line(json.dumps(error))}" if error else ""
        raise Retry(f"response has no choices{detail}")
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        raise Retry("response choice has no message")
    text = message.get("content") or ""
    reasoning = message.get("reasoning_content") or message.get("reasoning") or None
    if not isinstance(text, str) or not isinstance(reasoning, (str, type(None))):
        raise Retry("response message content is not text")
    finish = "length" if choice.get("finish_reason") == "length" else "stop"
    if finish == "stop":
        text = _restore_stop(text, choice, stops)
    usage = data.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    tokens = openai_tokens(choice.get("logprobs"))
    return Completion(
        text=text,
        finish_reason=finish,
        prompt_tokens=_count(usage, "prompt_tokens"),
        completion_tokens=_count(usage, "completion_tokens"),
        reasoning=reasoning,
        p_a=p_a_from_tokens(tokens) if tokens else None,
    )


def _count(usage: Mapping[str, Any], key: str) -> int:
    value = usage.get(key)
    return value if isinstance(value, int) and value >= 0 else 0


__all__ = [
    "TOP_LOGPROBS",
    "Final",
    "TooLong",
    "context_refusal",
    "one_line",
    "parse_response",
    "window_from_models",
]
