"""Screen GRPO's pairs with the policy that will train on them: keep the pairs it does not already solve.

GRPO learns only from a group whose rollouts disagree: when every sample of a prompt earns the same reward,
the group's advantages are all zero and the prompt costs a generation and a backward pass for nothing. A
judge fresh from SFT is already right, in both orders and nearly every sample, on most pairs, so most groups
teach nothing. Screening judges each pair with the starting policy through ``rmr1.evaluation`` (a fast
engine, both orders by default) and keeps the pairs with a wrong or unparsed judgment in either order: the
ones where its rollouts can disagree. The judgments stay in an ordinary run directory, so an interrupted
screen resumes and ``rmr1 report`` can show what the policy got wrong. docs/design/screening.md has the
measurements.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rmr1.benchmarks import preference
from rmr1.benchmarks._io import Record, Skip
from rmr1.errors import InputError
from rmr1.evaluation.rundir import RunDir
from rmr1.jsonl import write_jsonl
from rmr1.judge import Judge
from rmr1.judge_options import JudgeOptions


@dataclass(frozen=True)
class ScreenResult:
    out: Path
    run_dir: Path
    screened: int  # pairs judged
    kept: int  # pairs written to ``out``: a wrong or unparsed judgment in some order
    wrong_every_order: int  # of the kept: wrong in every judgment
    # of the kept: one letter in every order (right in one, wrong in the other), by letter; a pool made
    # mostly of one letter's failures can teach that letter as a shortcut (docs/design/screening.md)
    same_letter: dict[str, int]
    skipped: int  # pairs with no judgment on record (a backend error), left out
    seconds: float

    def same_letter_text(self, orders: str = "every order") -> str:
        """The one-letter failures among the kept pairs, as the CLI and the demo print them."""
        return f"{self.same_letter['A']} answered A and {self.same_letter['B']} B in {orders}"

    def to_dict(self) -> dict[str, Any]:
        fields = dataclasses.asdict(self)
        return {
            **fields,
            "out": str(self.out),
            "run_dir": str(self.run_dir),
            "seconds": round(self.seconds, 1),
        }


@dataclass
class Outcome:
    """What the judge did on one pair: judgments right and made, and the letters it named."""

    right: int = 0
    made: int = 0
    letters: set[str | None] = dataclasses.field(default_factory=set)

    @property
    def one_letter(self) -> str | None:
        """The letter named in every judgment of a pair judged in more than one, wrong in some; else None."""
        if self.made < 2 or not 0 < self.right < self.made or len(self.letters) != 1:
            return None
        return next(iter(self.letters))


def outcomes(run_dir: Path) -> dict[str, Outcome]:
    """Per judged pair, what the judge did, from a run directory's judgments."""
    tally: dict[str, Outcome] = {}
    for judgment in RunDir(run_dir).iter_judgments():
        seen = tally.setdefault(judgment.item_id, Outcome())
        seen.right += bool(judgment.correct)
        seen.made += 1
        seen.letters.add(judgment.verdict)
    return tally


def _records(data: Path, limit: int | None) -> Iterator[tuple[str, Record]]:
    """(item id, record) of the first ``limit`` judgeable records, with the ids the evaluation gives them
    (``load_benchmark`` counts its limit the same way: a record that cannot be judged is not an item)."""
    count = 0
    for record in preference.read(data):
        if limit is not None and count >= limit:
            return
        try:
            pairs = preference.to_pairs(record)
        except Skip:
            continue
        count += 1
        yield pairs[0].item_id, record


def screen_pairs(
    data: str | Path,
    out: str | Path,
    run_dir: str | Path,
    *,
    limit: int | None = None,
    judge: Judge | JudgeOptions | None = None,
    progress: Any = None,
    **judge_settings: Any,
) -> ScreenResult:
    """Judge the first ``limit`` pairs of the preference file ``data`` into ``run_dir`` and write those not
    solved (some judgment wrong or unparsed) to ``out`` as they were read, in their order.

    The judge: ``judge`` (a ``Judge`` or ``JudgeOptions``) or ``judge_settings`` for
    ``rmr1.evaluation.evaluate`` (``model``, ``backend``, ``template`` or ``template_file``,
    ``max_new_tokens``, ``threads``, ...); an unset ``protocol`` means both orders. Running it again over
    the same ``run_dir`` resumes the judgments.
    """
    from rmr1.evaluation import evaluate

    data, out, run_dir = Path(data), Path(out), Path(run_dir)
    if not data.exists():
        raise InputError("no such file or folder (screening reads a local preference file)", source=str(data))
    if data.resolve() == out.resolve():
        raise InputError("would overwrite the pairs being screened; choose another --out", source=str(out))
    started = time.perf_counter()
    if isinstance(judge, JudgeOptions) and judge.protocol is None:
        judge = dataclasses.replace(judge, protocol="both")
    elif judge is None and judge_settings.get("protocol") is None:
        judge_settings["protocol"] = "both"
    result = evaluate(
        "preference", run_dir, judge=judge, progress=progress, data=str(data), limit=limit, **judge_settings
    )
    tally = outcomes(result.run_dir)
    screened = kept = wrong_all = skipped = 0
    same_letter = {"A": 0, "B": 0}
    rows: list[dict[str, Any]] = []
    for item_id, record in _records(data, limit):
        seen = tally.get(item_id, Outcome())
        if not seen.made:
            skipped += 1
            continue
        screened += 1
        if seen.right < seen.made:
            kept += 1
            wrong_all += seen.right == 0
            letter = seen.one_letter
            if letter is not None and letter in same_letter:
                same_letter[letter] += 1
            rows.append(dict(record.data))
    write_jsonl(out, rows)
    return ScreenResult(
        out, result.run_dir, screened, kept, wrong_all, same_letter, skipped, time.perf_counter() - started
    )


__all__ = ["Outcome", "ScreenResult", "outcomes", "screen_pairs"]
