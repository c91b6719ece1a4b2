"""Replay recorded completions from a judgments.jsonl file: re-score, re-report or bench without a model.

A request is matched by its ``key`` (item id, pair, order, sample: what the judge sets); a request whose key was
never recorded comes back as an error completion, so a partial recording shows up as such in diagnostics.

Recorded verdict probabilities replay too: ``p_a`` comes back on the completion, and a forced read
(``forced: true``) is answered by ``read_verdicts`` under the same key, so ``--verdict logprob|forced`` runs
replay as they were made.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rmr1.errors import InputError
from rmr1.jsonl import read_jsonl
from rmr1.types import Completion, GenerationRequest


def _record_key(record: dict[str, object], source: str, line: int) -> str:
    try:
        return f"{record['item_id']}|{record['pair']}|{record['order']}|{record.get('sample', 0)}"
    except KeyError as exc:
        raise InputError("missing", source=source, line=line, field=str(exc.args[0])) from None


class ReplayBackend:
    """Answers each request with the completion recorded under the same key."""

    def __init__(self, model: str | None = None, *, path: str | None = None, **_: object) -> None:
        file = Path(path or model or "")
        if file.is_dir():
            file = file / "judgments.jsonl"
        if not file.is_file():
            raise InputError("replay needs a judgments.jsonl file (pass it as --model)", source=str(file))
        self.records: dict[str, Completion] = {}
        self.reads: dict[str, float] = {}  # forced reads, by key
        # read_jsonl skips a torn last line (an interrupted run) and names the line of bad JSON or UTF-8.
        for number, record in read_jsonl(file, tolerate_torn_tail=True):
            if not isinstance(record.get("completion"), str):
                raise InputError("missing or not a string", source=str(file), line=number, field="completion")
            key = _record_key(record, str(file), number)
            p_a = record.get("p_a")
            p_a = float(p_a) if isinstance(p_a, (int, float)) else None
            if record.get("forced") and p_a is not None:
                self.reads[key], p_a = p_a, None
            self.records[key] = Completion(
                text=record["completion"],
                finish_reason=str(record.get("finish_reason", "stop")),
                prompt_tokens=int(record.get("prompt_tokens", 0)),
                completion_tokens=int(record.get("completion_tokens", 0)),
                latency_s=float(record.get("latency_s", 0.0)),
                p_a=p_a,
            )
        self.source = str(file)
        self.supports_logprobs = bool(self.reads) or any(c.p_a is not None for c in self.records.values())

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        missing = Completion(text="", finish_reason="error", error="not in the replayed recording")
        return [self.records.get(req.key, missing) for req in requests]

    def read_verdicts(self, reads: Sequence[Any]) -> list[float | None]:
        """Recorded forced reads by the request's key; a read never recorded has no P(A)."""
        return [self.reads.get(r.request.key) for r in reads]
