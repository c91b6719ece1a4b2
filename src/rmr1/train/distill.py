"""Distillation: teacher traces for judge prompts, checked against the label, as an SFT dataset.

Pass 1 sends each judge prompt (``rmr1.train.mixes`` records) to the teacher as is. A trace whose verdict
(``rmr1.verdicts.parse_verdict``) matches ``winner`` is kept. Pass 2 goes back to the failures only: the same
prompt plus a hint that names the correct verdict and shows the earlier wrong judgement (the paper gave these
to a second, stronger teacher; ``repair_teacher`` may be another backend). The hint lives only in the request:
the saved training example is the original judge prompt and the trace.

Files in ``out_dir``:
- ``attempts.jsonl``: every teacher call, appended as results arrive. A rerun skips what it holds (resume).
- ``train.jsonl``: the kept traces as a TRL conversational dataset (``messages`` = prompt + assistant trace).
- ``stats.json``: pass rates and trace lengths.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

from rmr1.atomic import write_json_atomic
from rmr1.backends import Backend
from rmr1.errors import ConfigError, InputError
from rmr1.jsonl import JsonlAppender, read_jsonl, write_jsonl
from rmr1.types import Completion, GenerationRequest, Message, SamplingParams
from rmr1.verdicts import MODES, parse_verdict

ATTEMPTS, TRAIN, STATS = "attempts.jsonl", "train.jsonl", "stats.json"

HINT_MARKER = "[Earlier judgement]"  # opens the earlier trace inside the pass-2 note
DEFAULT_HINT = (
    "Reviewer's note for this comparison: the correct final verdict is {verdict}. An earlier judgement "
    "of the same pair, shown below, reached the wrong verdict. Write your own complete and careful "
    "judgement in the format required above, reason your way to the correct verdict on the merits of the "
    "responses, and do not mention this note or the earlier judgement.\n\n"
    f"{HINT_MARKER}\n{{previous}}\n[End of earlier judgement]"
)


@dataclass(frozen=True)
class DistillConfig:
    max_new_tokens: int = 8192
    temperature: float = 0.0
    top_p: float = 1.0
    batch_size: int = 16  # requests handed to the teacher at once (and appended together)
    parse_mode: str = "strict"  # how the trace's verdict is read (see rmr1.verdicts)
    second_pass: bool = True  # retry the failures with the correct verdict as a hint
    keep_truncated: bool = False  # keep traces cut by the token budget when their verdict is right
    hint: str = DEFAULT_HINT  # pass-2 note; {verdict} and {previous} are filled in

    def __post_init__(self) -> None:
        if self.parse_mode not in MODES:
            raise ConfigError(f"unknown parse mode {self.parse_mode!r}; choose strict or paper")
        for name in ("{verdict}", "{previous}"):
            if name not in self.hint:
                raise ConfigError(f"the pass-2 hint must contain {name}")
        if self.batch_size < 1 or self.max_new_tokens < 1:
            raise ConfigError("batch_size and max_new_tokens must be positive")


@dataclass(frozen=True)
class DistillStats:
    items: int
    pass1_correct: int
    pass2_attempted: int
    pass2_correct: int
    kept: int
    unparsed: int  # attempts whose verdict could not be read
    truncated: int  # attempts cut by the token budget
    mean_chars: float
    median_chars: float
    max_chars: int
    mean_tokens: float
    max_tokens: int

    @property
    def pass1_rate(self) -> float:
        return self.pass1_correct / self.items if self.items else 0.0

    @property
    def repair_rate(self) -> float:
        return self.pass2_correct / self.pass2_attempted if self.pass2_attempted else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            pass1_rate=round(self.pass1_rate, 4),
            repair_rate=round(self.repair_rate, 4),
            kept_rate=round(self.kept / self.items, 4) if self.items else 0.0,
        )
        return data


def _label(winner: str) -> str:
    return "A" if winner == "model_a" else "B"


def _check(items: Sequence[Mapping[str, Any]]) -> None:
    seen: set[str] = set()
    for i, item in enumerate(items):
        for key in ("id", "prompt", "winner"):
            if key not in item:
                raise InputError("missing", line=i + 1, field=key)
        if item["winner"] not in ("model_a", "model_b"):
            raise InputError(
                f"must be model_a or model_b, got {item['winner']!r}", line=i + 1, field="winner"
            )
        if str(item["id"]) in seen:
            raise InputError(f"duplicate id {item['id']!r}", line=i + 1, field="id")
        seen.add(str(item["id"]))


def prompt_messages(item: Mapping[str, Any]) -> tuple[Message, ...]:
    return tuple(Message(m["role"], m["content"]) for m in item["prompt"])


def with_hint(messages: tuple[Message, ...], hint: str, verdict: str, previous: str) -> tuple[Message, ...]:
    """The pass-2 request: the last user turn gains the note (the saved example never does)."""
    note = hint.format(verdict=f"<answer>[[{verdict}]]</answer>", previous=previous.strip() or "(empty)")
    last = max(i for i, m in enumerate(messages) if m.role == "user")
    changed = Message("user", f"{messages[last].content}\n\n{note}")
    return (*messages[:last], changed, *messages[last + 1 :])


def _attempt(
    item: Mapping[str, Any], stage: int, completion: Completion, config: DistillConfig
) -> dict[str, Any]:
    text = completion.full_text
    verdict = parse_verdict(text, config.parse_mode).label
    return {
        "id": str(item["id"]),
        "pass": stage,
        "winner": item["winner"],
        "verdict": verdict,
        "correct": verdict == _label(item["winner"]),
        "finish_reason": completion.finish_reason,
        "completion": text,
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "latency_s": round(completion.latency_s, 4),
        "error": completion.error,
    }


# What a resumed run reads of each logged attempt, and what it must hold: a row written by hand or by another
# tool fails on its own line here, not later as a KeyError inside the dataset writer.
_ATTEMPT_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "id": (lambda v: isinstance(v, (str, int)) and not isinstance(v, bool), "a string or integer"),
    "pass": (lambda v: v in (1, 2) and not isinstance(v, bool), "1 or 2"),
    "verdict": (lambda v: v is None or v in ("A", "B"), '"A", "B" or null'),
    "correct": (lambda v: isinstance(v, bool), "true or false"),
    "finish_reason": (lambda v: isinstance(v, str), "a string"),
    "completion": (lambda v: isinstance(v, str), "a string"),
}


def _checked_attempt(record: dict[str, Any], source: str, line: int) -> dict[str, Any]:
    for name, (accepted, expected) in _ATTEMPT_FIELDS.items():
        if name not in record:
            raise InputError("missing", source=source, line=line, field=name)
        if not accepted(record[name]):
            raise InputError(f"must be {expected}", source=source, line=line, field=name)
    return {**record, "id": str(record["id"])}


def read_attempts(path: Path) -> dict[tuple[str, int], dict[str, Any]]:
    if not path.is_file():
        return {}
    attempts = {}
    for line, record in read_jsonl(path, tolerate_torn_tail=True):
        checked = _checked_attempt(record, str(path), line)
        attempts[(checked["id"], int(checked["pass"]))] = checked
    return attempts


def _usable(attempt: Mapping[str, Any] | None, config: DistillConfig) -> bool:
    if attempt is None or not attempt["correct"]:
        return False
    return attempt["finish_reason"] == "stop" or (
        config.keep_truncated and attempt["finish_reason"] == "length"
    )


def _run_pass(
    teacher: Backend,
    jobs: list[tuple[Mapping[str, Any], tuple[Message, ...]]],
    stage: int,
    config: DistillConfig,
    log: JsonlAppender,
    on_batch: Callable[[int], None] | None,
) -> list[dict[str, Any]]:
    sampling = SamplingParams(
        max_new_tokens=config.max_new_tokens,
        temperature=config.temperature,
        top_p=config.top_p,
        seed=0 if config.temperature > 0 else None,
    )
    done = []
    for start in range(0, len(jobs), config.batch_size):
        chunk = jobs[start : start + config.batch_size]
        requests = [GenerationRequest(msgs, sampling, key=f"{item['id']}|{stage}") for item, msgs in chunk]
        completions = teacher.generate(requests)
        if len(completions) != len(chunk):
            raise RuntimeError(f"teacher returned {len(completions)} completions for {len(chunk)} requests")
        records = [_attempt(item, stage, c, config) for (item, _), c in zip(chunk, completions, strict=True)]
        log.write(cast(list[Mapping[str, Any]], records))
        done.extend(records)
        if on_batch:
            on_batch(len(chunk))
    return done


def distill(
    teacher: Backend,
    items: Sequence[Mapping[str, Any]],
    out_dir: str | Path,
    config: DistillConfig = DistillConfig(),
    *,
    repair_teacher: Backend | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> DistillStats:
    """Run both passes (resuming from ``attempts.jsonl``), then write ``train.jsonl`` and ``stats.json``."""
    _check(items)
    out = Path(out_dir)
    # A bad log is refused before anything is created. A failed teacher call is not done: a rerun makes it
    # again (the log keeps both lines; the later one wins).
    attempts = {k: a for k, a in read_attempts(out / ATTEMPTS).items() if a.get("finish_reason") != "error"}
    out.mkdir(parents=True, exist_ok=True)
    with JsonlAppender(out / ATTEMPTS) as log:
        first = [(it, prompt_messages(it)) for it in items if (str(it["id"]), 1) not in attempts]
        for record in _run_pass(teacher, first, 1, config, log, on_batch):
            attempts[(record["id"], 1)] = record
        if config.second_pass:
            second = []
            for it in items:
                key = str(it["id"])
                earlier = attempts[(key, 1)]
                if _usable(earlier, config) or (key, 2) in attempts:
                    continue
                hinted = with_hint(
                    prompt_messages(it), config.hint, _label(it["winner"]), earlier["completion"]
                )
                second.append((it, hinted))
            for record in _run_pass(repair_teacher or teacher, second, 2, config, log, on_batch):
                attempts[(record["id"], 2)] = record
    return write_dataset(items, attempts, out, config)


def _kept_trace(
    key: str, attempts: Mapping[tuple[str, int], Mapping[str, Any]], config: DistillConfig
) -> Mapping[str, Any] | None:
    for stage in (1, 2):
        attempt = attempts.get((key, stage))
        if _usable(attempt, config):
            return attempt
    return None


def write_dataset(
    items: Sequence[Mapping[str, Any]],
    attempts: Mapping[tuple[str, int], Mapping[str, Any]],
    out: Path,
    config: DistillConfig,
) -> DistillStats:
    rows = []
    for it in items:
        kept = _kept_trace(str(it["id"]), attempts, config)
        if kept is None:
            continue
        messages = [dict(m) for m in it["prompt"]] + [{"role": "assistant", "content": kept["completion"]}]
        rows.append(
            {
                "id": str(it["id"]),
                "messages": messages,
                "winner": it["winner"],
                "pass": kept["pass"],
                "source": it.get("source", ""),
            }
        )
    write_jsonl(out / TRAIN, rows)
    stats = compute_stats(items, attempts, rows)
    write_json_atomic(out / STATS, stats.to_dict())
    return stats


def compute_stats(
    items: Sequence[Mapping[str, Any]],
    attempts: Mapping[tuple[str, int], Mapping[str, Any]],
    rows: Iterable[Mapping[str, Any]],
) -> DistillStats:
    ids = {str(it["id"]) for it in items}
    mine = [a for (key, _), a in attempts.items() if key in ids]
    first = [a for a in mine if a["pass"] == 1]
    second = [a for a in mine if a["pass"] == 2]
    kept = list(rows)
    chars = [len(r["messages"][-1]["content"]) for r in kept]
    by_id = {(a["id"], a["pass"]): a for a in mine}
    tokens = [int(by_id[(r["id"], r["pass"])].get("completion_tokens") or 0) for r in kept]
    return DistillStats(
        items=len(ids),
        pass1_correct=sum(1 for a in first if a["correct"]),
        pass2_attempted=len(second),
        pass2_correct=sum(1 for a in second if a["correct"]),
        kept=len(kept),
        unparsed=sum(1 for a in mine if a["verdict"] is None),
        truncated=sum(1 for a in mine if a["finish_reason"] == "length"),
        mean_chars=round(statistics.fmean(chars), 1) if chars else 0.0,
        median_chars=float(statistics.median(chars)) if chars else 0.0,
        max_chars=max(chars, default=0),
        mean_tokens=round(statistics.fmean(tokens), 1) if tokens else 0.0,
        max_tokens=max(tokens, default=0),
    )


__all__ = [
    "ATTEMPTS",
    "DEFAULT_HINT",
    "HINT_MARKER",
    "STATS",
    "TRAIN",
    "DistillConfig",
    "DistillStats",
    "compute_stats",
    "distill",
    "prompt_messages",
    "read_attempts",
    "with_hint",
    "write_dataset",
]
