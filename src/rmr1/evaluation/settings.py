"""What a run is: its settings (run.json), which of them change results, and how items are split into shards.

A run directory holds the judgments of exactly one set of result-changing settings. Resuming with other such
settings would silently mix two experiments in one file, so it is refused; settings that only change speed or
bookkeeping (backend, batch size, the unparsed score, a larger limit) may change between invocations.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rmr1.errors import ConfigError, InputError

if TYPE_CHECKING:
    from rmr1.judge_options import JudgeOptions

# Settings whose change would make old and new judgments incomparable.
RESULT_KEYS = (
    "benchmark",
    "data",
    "model",
    "template",
    "template_sha",
    "protocol",
    "samples",
    "seed",
    "temperature",
    "top_p",
    "parse_mode",
    "max_new_tokens",
    "shard",
    "verdict",
)


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count``: the items whose id hashes to ``index`` modulo ``count``.

    Splitting by item (not by pair) keeps all comparisons of one item, and so its official score, together.
    """

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigError(f"bad shard {self.index}/{self.count}: need 0 <= I < N")

    @classmethod
    def parse(cls, text: str) -> Shard:
        try:
            index, count = (int(part) for part in text.split("/"))
        except ValueError:
            raise ConfigError(f"bad shard {text!r}: write it as I/N, e.g. 0/4") from None
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def contains(self, item_id: str) -> bool:
        return shard_of(item_id, self.count) == self.index


def shard_of(item_id: str, count: int) -> int:
    """Stable across processes and machines (unlike ``hash``), so every shard agrees on the split."""
    return int.from_bytes(hashlib.sha256(item_id.encode()).digest()[:8], "big") % count


@dataclass(frozen=True)
class RunSettings:
    """The settings recorded in run.json. Fields in RESULT_KEYS must match for a run to be resumed."""

    benchmark: str
    data: str | None  # the --data path as given; None: the benchmark's hub id
    model: str
    backend: str
    template: str
    template_sha: str  # hash of the template texts, so an edited template file is noticed
    protocol: str
    samples: int
    seed: int
    temperature: float | None
    top_p: float
    parse_mode: str
    max_new_tokens: int
    shard: str | None  # "I/N" or None
    limit: int | None
    unparsed_score: float
    rmr1_version: str
    # The model id the server reported serving (openai backend), None for local backends; older run.json
    # files lack it. Compared on resume apart from RESULT_KEYS, see check_resumable.
    served_model: str | None = None
    verdict: str = "generate"  # generate | logprob | forced (rmr1.probability); older runs: generate
    score_forced: bool = False  # scores count forced verdicts (else they score as unparsed)
    # The local engine that generated ("transformers", "openvino", ...) and its weight format ("bfloat16",
    # "f16", ...), from the backend's ``engine`` / ``weight_format`` attributes; None where a backend does not
    # say (remote servers, mock, replay) and in older run.json files. Compared on resume like served_model.
    engine: str | None = None
    weight_format: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str) -> RunSettings:
        required = [f.name for f in fields(cls) if f.default is MISSING]
        missing = [n for n in required if n not in data]
        if missing:
            raise InputError("missing in run.json", source=source, field=missing[0])
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})

    def differences(self, other: RunSettings) -> list[str]:
        """Result-changing settings that differ, as ``name: old -> new``."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [f"{k}: {mine[k]!r} -> {theirs[k]!r}" for k in RESULT_KEYS if mine[k] != theirs[k]]


def _items(limit: int | None) -> float:
    return float("inf") if limit is None else limit


def check_resumable(old: RunSettings, new: RunSettings, source: str) -> None:
    """Refuse to resume a run under settings that would change its results."""
    diffs = old.differences(new)
    # The served model is compared only when both invocations could ask (a server that does not say, or a
    # run from before it was recorded, is not refused), so one run never mixes two judges behind one name.
    if old.served_model and new.served_model and old.served_model != new.served_model:
        diffs.append(f"served model: {old.served_model!r} -> {new.served_model!r}")
    # Engines and weight formats change outputs (greedy included), so one run never mixes two.
    for what, before, after in (
        ("engine", old.engine, new.engine),
        ("weight format", old.weight_format, new.weight_format),
    ):
        if before and after and before != after:
            diffs.append(f"{what}: {before!r} -> {after!r}")
    if diffs:
        raise ConfigError(
            f"{source} was made with other settings ({'; '.join(diffs)}); "
            "use another --out or the original settings"
        )
    if _items(new.limit) < _items(old.limit):
        raise ConfigError(
            f"{source} already covers more items (limit {old.limit}); "
            "give at least that --limit or use another --out"
        )


def engine_of(backend: object) -> tuple[str | None, str | None]:
    """(engine, weight_format) a backend declares, looking through a cache wrapper; None where it does not."""
    inner = getattr(backend, "inner", backend)
    engine, weights = getattr(inner, "engine", None), getattr(inner, "weight_format", None)
    return (engine if isinstance(engine, str) else None, weights if isinstance(weights, str) else None)


def template_sha(system: str, user: str) -> str:
    return hashlib.sha256(f"{system}\x1f{user}".encode()).hexdigest()[:16]


def default_protocol(benchmark: str, protocol: str | None) -> str:
    """The protocol when none was asked for: JudgeBench's official one judges both orders; others one."""
    if protocol is not None:
        return protocol
    return "both" if benchmark == "judgebench" else "single"


def recorded_backend(out: str | Path) -> str | None:
    """The backend an existing run directory's run.json names, if any (a resume keeps it)."""
    try:
        data = json.loads((Path(out) / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    backend = data.get("backend") if isinstance(data, dict) else None
    return backend if isinstance(backend, str) else None


def judge_options_for(
    judge: Any, judge_settings: dict[str, Any], benchmark: str, cache: Any
) -> JudgeOptions | None:
    """The judge as ``JudgeOptions`` with the benchmark's protocol and the cache; None for a built ``Judge``."""
    from rmr1.judge_options import JudgeOptions

    if isinstance(judge, JudgeOptions):
        opts = judge
    elif judge is None:
        opts = JudgeOptions(**judge_settings)
    else:
        return None
    return dataclasses.replace(
        opts, protocol=default_protocol(benchmark, opts.protocol), cache=cache or opts.cache
    )


__all__ = [
    "RESULT_KEYS",
    "RunSettings",
    "Shard",
    "check_resumable",
    "default_protocol",
    "engine_of",
    "judge_options_for",
    "recorded_backend",
    "shard_of",
    "template_sha",
]
