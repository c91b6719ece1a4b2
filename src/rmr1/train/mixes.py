"""Training data: judge prompts with a ``winner`` label, from any preference dataset or the RL mixture.

Positions follow the paper exactly: one global counter runs over every item of a build; an even index shows
the chosen response as Chatbot A (``winner = model_a``), an odd index shows it as Chatbot B. Single-turn items
get the single-turn layout and multi-turn items the multi-turn one (``JudgeTemplate.render`` decides).

A judge record is a TRL conversational prompt dataset row::

    {"id": ..., "prompt": [{"role": ..., "content": ...}, ...], "winner": "model_a" | "model_b",
     "source": ..., "multi_turn": bool}

The paper's mixture comes from three hub sources, each read in its own published schema:
- Skywork-Reward-Preference-80K-v0.2: implicit-prompt conversations ``chosen``/``rejected`` and ``source``;
  items whose source is ``magpie_ultra`` are left out.
- Code-Preference-Pairs: ``input``/``accepted``/``rejected``; shuffled with seed 42, first 8,000 kept.
- Math-Step-DPO-10K: ``prompt``; responses are ``initial_reason_steps`` + ``full_chosen`` / ``full_rejected``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rmr1.errors import ConfigError, InputError
from rmr1.jsonl import read_jsonl
from rmr1.preferences import parse_preference
from rmr1.prompts import JudgeTemplate, get_template
from rmr1.textio import check_utf8
from rmr1.types import Message, PreferencePair, as_messages

WINNERS = ("model_a", "model_b")
SKYWORK = "Skywork/Skywork-Reward-Preference-80K-v0.2"
CODE_PAIRS = "Vezora/Code-Preference-Pairs"
MATH_STEP = "xinlai/Math-Step-DPO-10K"
SKYWORK_EXCLUDED = ("magpie_ultra",)
CODE_SEED, CODE_LIMIT = 42, 8000


# --- reading rows ------------------------------------------------------------------------------------------


def load_rows(spec: str, split: str = "train") -> Any:
    """A ``datasets.Dataset`` from a local file (.jsonl/.json/.parquet/.csv), a folder, or a hub id."""
    import datasets

    datasets.disable_progress_bars()
    path = Path(spec).expanduser()
    builders = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
    try:
        if path.is_file():
            if path.suffix not in builders:
                raise InputError(
                    f"unsupported file type {path.suffix!r} (use .jsonl, .json, .parquet or .csv)",
                    source=str(path),
                )
            if path.suffix == ".jsonl":
                _check_jsonl(path)
            elif path.suffix != ".parquet":
                check_utf8(path)
            return datasets.load_dataset(builders[path.suffix], data_files=str(path), split="train")
        if path.is_dir():
            if (path / "dataset_info.json").is_file() and (path / "state.json").is_file():
                return datasets.load_from_disk(str(path))
            return datasets.load_dataset(str(path), split=split)
        if path.suffix in builders or "/" not in spec:
            raise InputError("file not found", source=str(path))
        return datasets.load_dataset(spec, split=split)
    except (InputError, ConfigError):
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"cannot load dataset {spec!r} (offline, or not a dataset?): {first}") from None


def _check_jsonl(path: Path) -> None:
    """Read a JSON Lines file once with rmr1's reader before ``datasets`` does: a bad line is then reported
    with its number (``datasets`` names neither), and an empty file is an error rather than a StopIteration."""
    if sum(1 for _ in read_jsonl(path)) == 0:
        raise InputError("no records in file", source=str(path))


def _messages(value: Any, source: str, line: int, name: str) -> tuple[Message, ...]:
    try:
        return as_messages(value, field_name=name)
    except InputError as exc:
        raise InputError(
            str(exc).split(": ", 1)[-1], source=source, line=line, field=exc.field or name
        ) from None


def pair_from_preference(
    record: Mapping[str, Any], *, source: str, line: int, default_id: str, subset: str = ""
) -> PreferencePair:
    """A pair from a preference row in any format ``rmr1.preferences`` reads (TRL's, Anthropic HH)."""
    return parse_preference(record, source=source, line=line, default_id=default_id, subset=subset).pair


def preference_pairs(
    rows: Iterable[Mapping[str, Any]], source: str, prefix: str = ""
) -> Iterator[PreferencePair]:
    for i, row in enumerate(rows):
        yield pair_from_preference(row, source=source, line=i + 1, default_id=f"{prefix}{i}")


# --- the paper's three sources ------------------------------------------------------------------------------


def skywork_pairs(
    rows: Iterable[Mapping[str, Any]], source: str = SKYWORK, exclude: Sequence[str] = SKYWORK_EXCLUDED
) -> Iterator[PreferencePair]:
    for i, row in enumerate(rows):
        origin = str(row.get("source", ""))
        if origin in exclude:
            continue
        yield pair_from_preference(row, source=source, line=i + 1, default_id=f"skywork-{i}", subset=origin)


def _text_field(row: Mapping[str, Any], key: str, source: str, line: int) -> str:
    value = row.get(key)
    if not isinstance(value, str):
        raise InputError("missing or not a string", source=source, line=line, field=key)
    return value


def code_preference_pairs(
    rows: Iterable[Mapping[str, Any]], source: str = CODE_PAIRS
) -> Iterator[PreferencePair]:
    for i, row in enumerate(rows):
        question = _text_field(row, "input", source, i + 1)
        accepted = _text_field(row, "accepted", source, i + 1)
        rejected = _text_field(row, "rejected", source, i + 1)
        try:
            yield PreferencePair(
                str(row.get("id", f"code-{i}")),
                (Message("user", question),),
                accepted,
                rejected,
                subset="code-preference-pairs",
            )
        except InputError as exc:
            raise InputError(
                str(exc).split(": ", 1)[-1], source=source, line=i + 1, field=exc.field
            ) from None


def math_step_pairs(rows: Iterable[Mapping[str, Any]], source: str = MATH_STEP) -> Iterator[PreferencePair]:
    for i, row in enumerate(rows):
        line = i + 1
        prompt = _text_field(row, "prompt", source, line)
        steps = _text_field(row, "initial_reason_steps", source, line)
        chosen = steps + _text_field(row, "full_chosen", source, line)
        rejected = steps + _text_field(row, "full_rejected", source, line)
        try:
            yield PreferencePair(
                f"math-step-{i}",
                (Message("user", prompt),),
                chosen,
                rejected,
                subset=str(row.get("dataset", "math-step-dpo")),
            )
        except InputError as exc:
            raise InputError(str(exc).split(": ", 1)[-1], source=source, line=line, field=exc.field) from None


def first_after_shuffle(dataset: Any, *, seed: int = CODE_SEED, limit: int = CODE_LIMIT) -> Any:
    """``datasets`` shuffle with the seed, then the first ``limit`` rows (the Code-Preference-Pairs cut)."""
    shuffled = dataset.shuffle(seed=seed)
    return shuffled.select(range(min(limit, len(shuffled))))


# --- judge records ------------------------------------------------------------------------------------------


def order_for(index: int) -> str:
    """The paper's global position rule: even -> chosen shown as A, odd -> as B."""
    return "AB" if index % 2 == 0 else "BA"


def judge_record(
    pair: PreferencePair, index: int, template: JudgeTemplate, source: str = "", order: str | None = None
) -> dict[str, Any]:
    """One judge prompt; ``order`` (AB/BA) overrides the paper's position rule for ``index``."""
    order = order or order_for(index)
    a, b = (pair.chosen, pair.rejected) if order == "AB" else (pair.rejected, pair.chosen)
    messages, _ = template.render(pair.context, a, b)
    return {
        "id": pair.item_id,
        "prompt": [m.to_dict() for m in messages],
        "winner": WINNERS[0] if order == "AB" else WINNERS[1],
        "source": source or pair.subset,
        "multi_turn": pair.is_multi_turn,
    }


def build_judge_dataset(
    pairs: Iterable[PreferencePair],
    template: JudgeTemplate | str | None = None,
    *,
    start: int = 0,
    both_orders: bool = False,
) -> list[dict[str, Any]]:
    """Judge records for ``pairs``, positions by one counter starting at ``start``; ids made unique.

    ``both_orders``: two records per pair, the preferred response shown as A and as B, with ``order`` and a
    shared ``pair_id`` (the data of the consistency reward, rmr1.train.consistency); ids get ``#AB``/``#BA``.
    """
    tmpl = template if isinstance(template, JudgeTemplate) else get_template(template)
    records, seen = [], set()
    for k, pair in enumerate(pairs):
        record = judge_record(pair, start + k, tmpl)
        if record["id"] in seen:
            record["id"] = f"{record['id']}#{start + k}"
        seen.add(record["id"])
        if not both_orders:
            records.append(record)
            continue
        for order in ("AB", "BA"):
            twin = judge_record(pair, start + k, tmpl, order=order)
            records.append({**twin, "id": f"{record['id']}#{order}", "pair_id": record["id"], "order": order})
    return records


@dataclass(frozen=True)
class MixtureSources:
    """Where the three sources come from: hub ids by default, or local files in the same schemas."""

    skywork: str = SKYWORK
    code: str = CODE_PAIRS
    math: str = MATH_STEP
    split: str = "train"


def paper_pairs(sources: MixtureSources = MixtureSources()) -> Iterator[PreferencePair]:
    """The RL mixture's pairs in a fixed order: Skywork (no magpie_ultra), code (8,000), math (all)."""
    yield from skywork_pairs(load_rows(sources.skywork, sources.split), sources.skywork)
    yield from code_preference_pairs(
        first_after_shuffle(load_rows(sources.code, sources.split)), sources.code
    )
    yield from math_step_pairs(load_rows(sources.math, sources.split), sources.math)


def paper_mixture(
    sources: MixtureSources = MixtureSources(), template: JudgeTemplate | str | None = "cor"
) -> list[dict[str, Any]]:
    return build_judge_dataset(paper_pairs(sources), template)


def is_judge_dataset(columns: Sequence[str]) -> bool:
    return "prompt" in columns and "winner" in columns


def judge_prompts(
    spec: str,
    *,
    split: str = "train",
    template: JudgeTemplate | str | None = "cor",
    limit: int | None = None,
    both_orders: bool = False,
) -> list[dict[str, Any]]:
    """Judge records from a file or hub dataset of judge prompts, or of preference pairs to convert
    (``both_orders``: each pair in both orders, see build_judge_dataset)."""
    rows = load_rows(spec, split)
    if limit is not None:
        rows = rows.select(range(min(limit, len(rows))))
    if is_judge_dataset(rows.column_names):
        out = []
        for i, row in enumerate(rows):
            if row["winner"] not in WINNERS:
                raise InputError(
                    f"must be one of {', '.join(WINNERS)}, got {row['winner']!r}",
                    source=spec,
                    line=i + 1,
                    field="winner",
                )
            _messages(row["prompt"], spec, i + 1, "prompt")
            out.append(dict(row))
        return out
    if "chosen" in rows.column_names:
        return build_judge_dataset(preference_pairs(rows, spec), template, both_orders=both_orders)
    raise InputError(
        "expected columns prompt + winner (judge prompts) or chosen/rejected (preference pairs)",
        source=spec,
        field="prompt",
    )


__all__ = [
    "CODE_PAIRS",
    "MATH_STEP",
    "SKYWORK",
    "WINNERS",
    "MixtureSources",
    "build_judge_dataset",
    "code_preference_pairs",
    "first_after_shuffle",
    "judge_prompts",
    "judge_record",
    "load_rows",
    "math_step_pairs",
    "order_for",
    "pair_from_preference",
    "paper_mixture",
    "paper_pairs",
    "preference_pairs",
    "skywork_pairs",
]
