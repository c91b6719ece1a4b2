"""``rmr1 judge``: one pair from flags (a readable trace) or a JSONL file of pairs (judgments out)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.panel import Panel

from rmr1.cli import app
from rmr1.cli.checks import writable_file
from rmr1.cli.options import judge_options
from rmr1.cli.progress import progress_bar
from rmr1.errors import BackendError, InputError
from rmr1.jsonl import JsonlAppender, pair_from_record, read_jsonl
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


def _record(j: Judgment, labelled: bool) -> dict[str, Any]:
    data = j.to_dict()
    if not labelled:
        data["winner"] = _winner(j)
        data["correct"] = None
    return data


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
    _judge_file(judge_, loaded, out)


def _refuse_all_failed(failed: list[Judgment], total: int) -> None:
    """A run where no call reached the model (dead server, bad key) is a failure, not an empty success."""
    if failed and len(failed) == total and all(j.finish_reason == "error" for j in failed):
        raise BackendError(f"all {total} judge calls failed; the first: {failed[0].parse_error}")


def _judge_file(judge_: Judge, loaded: list[tuple[PreferencePair, bool]], out: Path | None) -> None:
    """Stream the judgments out as they come; failed calls are counted, not written, so a rerun makes them."""
    console = Console(stderr=True)
    labelled = {p.item_id: lab for p, lab in loaded}
    total = sum(len(judge_.orders(p)) * judge_.config.samples for p, _ in loaded)
    writer: JsonlAppender | None = None  # opened at the first success: a run that fails whole writes nothing
    failed: list[Judgment] = []
    with progress_bar(console, total, "judging") as advance:
        for j in judge_.judge(p for p, _ in loaded):
            advance(1, j)
            if j.finish_reason == "error":
                failed.append(j)
                continue
            record = _record(j, labelled[j.item_id])
            if out is None:
                sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
                sys.stdout.flush()
                continue
            writer = writer or JsonlAppender(out)
            writer.write(record)
    _refuse_all_failed(failed, total)
    if writer is not None:
        writer.close()
        console.print(f"wrote {total - len(failed)} judgments to {out}")
    if failed:
        console.print(
            f"warning: {len(failed)} of {total} judge calls failed and were not written "
            f"(the first: {failed[0].parse_error})"
        )
