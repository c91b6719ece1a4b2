"""``rmr1 compare``: two runs of one benchmark, paired on the items both judged.

The difference is B - A for every headline number, each run scored by its own settings (unparsed score) from
its logged verdicts. Its 95% interval and two-sided p-value come from a paired bootstrap: the same resampled
items for both runs (``rmr1.stats.paired_bootstrap``), so what the two judges have in common (hard items,
easy items) cancels out of the difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rmr1 import stats
from rmr1.benchmarks import judgment_resampling
from rmr1.errors import ConfigError, InputError
from rmr1.evaluation.rundir import RunDir
from rmr1.evaluation.settings import RunSettings

DIRECTION = "B - A"
METHOD = "paired bootstrap (two-sided, centred on the observed difference)"


@dataclass(frozen=True)
class Comparison:
    benchmark: str
    run_a: str
    run_b: str
    shared: int  # items judged in both runs
    only_a: int  # items only run A judged (left out)
    only_b: int
    resamples: int
    seed: int
    rows: dict[str, stats.Difference]

    def to_dict(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark,
            "run_a": self.run_a,
            "run_b": self.run_b,
            "direction": DIRECTION,
            "method": METHOD,
            "shared_items": self.shared,
            "only_a": self.only_a,
            "only_b": self.only_b,
            "resamples": self.resamples,
            "seed": self.seed,
            "rows": {
                name: {"a": d.a, "b": d.b, "diff": d.diff, "interval": d.interval, "p_value": d.p_value}
                for name, d in self.rows.items()
            },
        }


def _load(path: str | Path) -> tuple[RunSettings, stats.Resampling]:
    run = RunDir(path)
    settings = run.read_settings()
    assert settings is not None
    items = judgment_resampling(settings.benchmark, run.iter_judgments(), settings.unparsed_score)
    if items is None:
        raise ConfigError(f"{settings.benchmark} has no item resampling; it cannot be compared")
    return settings, items


def compare_runs(
    run_a: str | Path, run_b: str | Path, *, seed: int = stats.DEFAULT_SEED, resamples: int = stats.RESAMPLES
) -> Comparison:
    """B - A per headline number on the shared items, with a paired-bootstrap interval and p-value."""
    if resamples < 1:
        raise ConfigError(f"resamples must be at least 1, got {resamples}")
    settings_a, items_a = _load(run_a)
    settings_b, items_b = _load(run_b)
    if settings_a.benchmark != settings_b.benchmark:
        raise ConfigError(
            f"{run_a} is {settings_a.benchmark} but {run_b} is {settings_b.benchmark}: "
            "compare two runs of the same benchmark"
        )
    in_b = set(items_b.items)
    shared = [item for item in items_a.items if item in in_b]
    if not shared:
        raise InputError(
            f"the runs share no items ({len(items_a.items)} in A, {len(items_b.items)} in B): "
            "were they made from the same data?",
            source=f"{run_a} vs {run_b}",
        )
    rows = stats.paired_bootstrap(
        items_a.restrict(shared), items_b.restrict(shared), seed=seed, resamples=resamples
    )
    return Comparison(
        benchmark=settings_a.benchmark,
        run_a=str(run_a),
        run_b=str(run_b),
        shared=len(shared),
        only_a=len(items_a.items) - len(shared),
        only_b=len(items_b.items) - len(shared),
        resamples=resamples,
        seed=seed,
        rows=rows,
    )


__all__ = ["DIRECTION", "METHOD", "Comparison", "compare_runs"]
