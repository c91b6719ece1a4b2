"""A scripted backend for unit tests and harness checks: no model, deterministic answers.

The script is a callable ``request -> text``, a list of texts used in turn, or one of the named rules
``"always-a"``, ``"always-b"``, ``"echo"``. Named rules make ``--backend mock --model always-a`` usable from
the CLI. A prompt's tokens are its words; with ``context_length`` set, the window rule of
``rmr1.backends.window`` applies as on the real backends (over-long prompts come back ``too_long`` unanswered).

``p_a`` scripts verdict probabilities: with it the backend ``supports_logprobs``, returns ``p_a`` on
completions that carry a verdict when the request asks for log-probabilities, and answers ``read_verdicts``
(counted in ``reads``).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from typing import Any

from rmr1.backends.window import fit_budget, too_long
from rmr1.errors import ConfigError
from rmr1.types import Completion, GenerationRequest

Script = Callable[[GenerationRequest], str] | Sequence[str] | str
# P(A) for a request and the assistant text before the verdict letter (a constant, or a function of both).
ProbScript = Callable[[GenerationRequest, str], float] | float


def _verdict(label: str) -> str:
    return f"<type>Chat</type>\n<eval>scripted</eval>\n<answer>[[{label}]]</answer>"


_RULES: dict[str, Callable[[GenerationRequest], str]] = {
    "always-a": lambda req: _verdict("A"),
    "always-b": lambda req: _verdict("B"),
    "echo": lambda req: req.messages[-1].content,
}


class MockBackend:
    """Answers from a script; counts calls so tests can assert how many were made."""

    def __init__(
        self,
        model: Script | None = None,
        *,
        script: Script | None = None,
        p_a: ProbScript | None = None,
        context_length: int | None = None,
        **_: object,
    ) -> None:
        chosen = script if script is not None else (model if model is not None else "always-a")
        if isinstance(chosen, str):
            if chosen not in _RULES:
                raise ConfigError(f"unknown mock rule {chosen!r}; choose one of {', '.join(_RULES)}")
            self._fn: Callable[[GenerationRequest], str] = _RULES[chosen]
        elif callable(chosen):
            self._fn = chosen
        else:
            texts = itertools.cycle(list(chosen))
            self._fn = lambda req: next(texts)
        self.context_length = context_length
        self.calls = 0  # requests answered by the script (too_long ones never reach it)
        self._p_a = p_a
        self.supports_logprobs = p_a is not None
        self.reads = 0
        self.batches: list[int] = []
        self._lock = threading.Lock()

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        with self._lock:
            self.batches.append(len(requests))
        out = []
        for req in requests:
            prompt_tokens = sum(len(m.content.split()) for m in req.messages)
            budget = fit_budget(prompt_tokens, req.sampling.max_new_tokens, self.context_length)
            if budget is None:
                out.append(too_long(prompt_tokens, self.context_length))
                continue
            with self._lock:
                self.calls += 1
            text = self._fn(req)
            out.append(
                Completion(
                    text=text,
                    finish_reason="stop",
                    prompt_tokens=prompt_tokens,
                    completion_tokens=len(text.split()),
                    p_a=self._scripted_p_a(req, text) if req.sampling.logprobs else None,
                )
            )
        return out

    def _p(self, request: GenerationRequest, prefix: str) -> float:
        assert self._p_a is not None
        return float(self._p_a(request, prefix) if callable(self._p_a) else self._p_a)

    def _scripted_p_a(self, request: GenerationRequest, text: str) -> float | None:
        from rmr1.probability import verdict_slot

        slot = verdict_slot(text) if self._p_a is not None else None
        return None if slot is None else self._p(request, text[:slot])

    def read_verdicts(self, reads: Sequence[Any]) -> list[float | None]:
        if self._p_a is None:
            raise ConfigError("this mock backend has no scripted p_a")
        with self._lock:
            self.reads += len(reads)
        return [self._p(r.request, r.prefix) for r in reads]
