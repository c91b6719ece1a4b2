"""``rmr1 judge``: one pair from flags (a readable trace) or a JSONL file of pairs (judgments out)."""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Collection
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.panel import Panel

from rmr1.atomic import replace_atomic
from rmr1.cli import app
from rmr1.cli.checks import writable_file
from rmr1.cli.options import judge_options
from rmr1.cli.progress import progress_bar
from rmr1.errors import BackendError, InputError
from rmr1.evaluation.rundir import hold_lock
from rmr1.jsonl import JsonlAppender, cut_torn_tail, pair_from_record, read_jsonl
from rmr1.judge import Judge
from rmr1.judge_options import JudgeOptions
from rmr1.types import Judgment, PreferencePair


def _winner(j: Judgment) -> str | None:
    """Map a verdict back to the user's own labels (response_a played the chosen role)."""
    if j.correct is None:
        return None
    return "response_a" if j.correct else "response_b"


def _show(console: Console, judgments: list[Judgment], seconds: float) -> None:
    for j in judgments:
        shown = "response_a as A, response_b as B" if j.order == "AB" else "response_b as A, response_a as B"
        console.print(
            Panel(j.completion or "(empty output)", title=f"trace ({shown}, sample {j.sample})", expand=False)
        )
        if j.verdict is None:
            console.print(
                f"[bold red]verdict: could not be parsed[/] ({j.parse_error}; "
                f"finish_reason={j.finish_reason})"
            )
        else:
            console.print(f"[bold green]verdict: {j.verdict}[/] -> {_winner(j)} is better")
        console.print(
            f"tokens: {j.prompt_tokens} prompt + {j.completion_tokens} completion, {j.latency_s:.2f}s"
        )
    console.print(f"total time: {seconds:.2f}s")


def _read_pairs(path: Path) -> list[tuple[PreferencePair, bool]]:
    pairs = [pair_from_record(rec, str(path), line) for line, rec in read_jsonl(path)]
    if not pairs:
        raise InputError("no pairs in file", source=str(path))
    seen: set[str] = set()
    for pair, _ in pairs:
        if pair.item_id in seen:
            raise InputError(f"duplicate id {pair.item_id!r}", source=str(path), field="id")
        seen.add(pair.item_id)
    return pairs


def _record(j: Judgment, labelled: bool, settings: str | None = None) -> dict[str, Any]:
    data = j.to_dict()
    if not labelled:
        data["winner"] = _winner(j)
        data["correct"] = None
    if settings is not None:
        data["settings"] = settings
    return data


def _fingerprint(opts: JudgeOptions, judge_: Judge) -> str:
    """A short hash of what decides the judgments in an --out file, written on each line so a rerun with
    another model, template or sampling is refused rather than mixed in."""
    from rmr1.evaluation.run import served_model_of
    from rmr1.evaluation.settings import engine_of, template_sha

    jc = judge_.config
    decisive = [
        opts.model_name(),
        served_model_of(judge_.backend),
        *engine_of(judge_.backend),  # engines and weight formats change greedy outputs too
        template_sha(judge_.template.system, judge_.template.user),
        jc.protocol,
        jc.samples,
        jc.seed,
        jc.effective_temperature,
        jc.top_p,
        jc.parse_mode,
        jc.max_new_tokens,
    ]
    return hashlib.sha256(json.dumps(decisive).encode()).hexdigest()[:16]


def _resume(out: Path, settings: str) -> set[tuple[str, int, str, int]]:
    """Keys already judged in ``out`` (made resumable: torn tail cut, failed calls dropped to be made
    again); refuses a file judged under other settings."""
    if not out.is_file():
        return set()
    cut_torn_tail(out)
    done, failed = set(), False
    for line, rec in read_jsonl(out):
        if rec.get("settings") != settings:
            raise InputError(
                "judged with other settings (model, engine, template, protocol, samples, seed or sampling); "
                "use another --out or the original settings",
                source=str(out),
                line=line,
            )
        key = (str(rec.get("item_id")), rec.get("pair", 0), str(rec.get("order")), rec.get("sample", 0))
        failed = failed or rec.get("finish_reason") == "error"
        if rec.get("finish_reason") != "error":
            done.add(key)
    if failed:
        replace_atomic(out, lambda dst: _copy_done(out, dst))
    return done


def _copy_done(src: Path, dst: Any) -> None:
    for _, rec in read_jsonl(src):
        if rec.get("finish_reason") != "error":
            dst.write(json.dumps(rec, ensure_ascii=False) + "\n")


@app.command()
@judge_options
def judge(
    opts: JudgeOptions,
    pairs: Annotated[
        Path | None,
        typer.Option(help="JSONL of {prompt, chosen, rejected} or {prompt, response_a, response_b}."),
    ] = None,
    prompt: Annotated[str | None, typer.Option(help="The question (with --response-a/-b).")] = None,
    response_a: Annotated[str | None, typer.Option(help="First response.")] = None,
    response_b: Annotated[str | None, typer.Option(help="Second response.")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write judgments here as JSONL (default: stdout for --pairs).")
    ] = None,
) -> None:
    """Judge one pair (readable trace) or a file of pairs (JSONL judgments)."""
    if pairs is None and (prompt is None or response_a is None or response_b is None):
        raise InputError("give --pairs FILE, or all of --prompt, --response-a and --response-b")
    if pairs is not None and prompt is not None:
        raise InputError("give either --pairs or --prompt/--response-a/--response-b, not both")
    writable_file(out)  # before the model loads: an unwritable --out must not cost a model load
    loaded = _read_pairs(pairs) if pairs is not None else None
    if loaded is None:
        PreferencePair.from_texts(prompt, response_a or "", response_b or "")  # validate before the model
    opts = opts.resolved()
    judge_ = opts.build_judge()
    if loaded is None:
        started = time.perf_counter()
        result = judge_.judge_pair(prompt, response_a or "", response_b or "")
        _refuse_all_failed(result, len(result))
        _show(Console(), result, time.perf_counter() - started)
        if out is not None:
            with JsonlAppender(out) as single:
                single.write([_record(j, False) for j in result])
        return
    console = Console(stderr=True)
    if out is None:
        _judge_file(judge_, loaded, console, None, None)
        return
    settings = _fingerprint(opts, judge_)
    out.parent.mkdir(parents=True, exist_ok=True)
    # The lock lives beside the file (not on it): a resume may replace the file, and the lock must outlast that.
    with hold_lock(out.parent / f".{out.name}.lock", out):
        done = _resume(out, settings)
        made = _judge_file(judge_, loaded, console, out, settings, done)
    already = f" ({len(done)} already there)" if done else ""
    console.print(f"wrote {made} judgments to {out}{already}")


def _refuse_all_failed(failed: list[Judgment], total: int) -> None:
    """A run where no call reached the model (dead server, bad key) is a failure, not an empty success."""
    if failed and len(failed) == total and all(j.finish_reason == "error" for j in failed):
        raise BackendError(f"all {total} judge calls failed; the first: {failed[0].parse_error}")


def _judge_file(
    judge_: Judge,
    loaded: list[tuple[PreferencePair, bool]],
    console: Console,
    out: Path | None,
    settings: str | None,
    done: Collection[tuple[str, int, str, int]] = (),
) -> int:
    """Judge the file's pairs (skipping ``done`` keys) into ``out`` or stdout; returns the judgments written.

    Failed calls are counted, not written, so a rerun makes them again; the file is opened at the first
    success, so a run that fails whole writes nothing."""
    labelled = {p.item_id: lab for p, lab in loaded}
    samples = range(judge_.config.samples)
    total = sum(
        (p.item_id, p.pair, order, k) not in done
        for p, _ in loaded
        for order in judge_.orders(p)
        for k in samples
    )
    writer: JsonlAppender | None = None
    failed: list[Judgment] = []
    try:
        with progress_bar(console, total, "judging") as advance:
            for j in judge_.judge((p for p, _ in loaded), skip=done):
                advance(1, j)
                if j.finish_reason == "error":
                    failed.append(j)
                    continue
                record = _record(j, labelled[j.item_id], settings)
                if out is None:
                    sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
                    sys.stdout.flush()
                    continue
                writer = writer or JsonlAppender(out)
                writer.write(record)
    finally:
        if writer is not None:
            writer.close()
    _refuse_all_failed(failed, total)
    if failed:
        console.print(
            f"warning: {len(failed)} of {total} judge calls failed and were not written "
            f"(the first: {failed[0].parse_error})"
        )
    return total - len(failed)
