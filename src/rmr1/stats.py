"""The statistics in one place: bootstrap intervals, paired comparisons and calibration.

Bootstrap design. A scorer hands over a ``Resampling``: one row per benchmark item, holding that item's
contributions to a few named sums (``v:chat`` = summed pair values of the item in chat, ``n:chat`` = its
pair count, ...), and a ``headline`` function from those sums to the scorer's headline numbers. Every official
number here is a function of such sums (ratios, weighted means of ratios), so a resample of items is just a
weight vector (how often each item was drawn), its sums a matrix product, and 1,000+ resamples one BLAS call.
``headline`` takes a ``Sums`` whose columns have one entry per resample, so it is written vectorised once and
serves the point estimate (all weights 1), the intervals and ``rmr1 compare`` alike.

Resampling can be stratified: items are drawn with replacement within each stratum, which keeps each
stratum's size. Scorers whose numbers are fixed-weight means over groups (RewardBench's subsets with their
official counts, RM-Bench's domains, RMB's four sets) stratify by that group, so every resample has data
where the original has.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

RESAMPLES = 1000  # bootstrap resamples: enough for stable 2.5% / 97.5% percentiles (Efron's rule of thumb)
LEVEL = 0.95
DEFAULT_SEED = 0  # used when a run has no seed of its own
_CHUNK_CELLS = 4_000_000  # resamples x items held at once, so memory stays flat on large benchmarks
BINS = 10  # equal-width confidence bins for ECE and the reliability diagram


class Sums:
    """Named column sums over items, one entry per resample; a name no item contributed to sums to 0."""

    def __init__(self, matrix: np.ndarray, index: dict[str, int]) -> None:
        self.matrix = matrix
        self.index = index

    @property
    def rows(self) -> int:
        return int(self.matrix.shape[0])

    def __getitem__(self, name: str) -> np.ndarray:
        k = self.index.get(name)
        return self.matrix[:, k] if k is not None else np.zeros(self.rows)

    def ratio(self, numerator: str, denominator: str) -> np.ndarray:
        """numerator / denominator per resample; NaN where the denominator is 0 (no data)."""
        num, den = self[numerator], self[denominator]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def nanmean(arrays: Sequence[np.ndarray], rows: int) -> np.ndarray:
    """Row-wise mean of the arrays that are not NaN (the ``mean`` of values that exist); NaN if none."""
    if not arrays:
        return np.full(rows, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: NaN is the answer
        return np.asarray(np.nanmean(np.stack(arrays), axis=0))


Headline = Callable[[Sums], dict[str, np.ndarray]]


@dataclass
class Resampling:
    """What a scorer hands the bootstrap. Build rows with ``add``; ``headline`` maps sums to numbers."""

    headline: Headline
    items: list[str] = field(default_factory=list)  # item ids, one per row
    strata: list[str] = field(default_factory=list)  # each row's stratum ("" = one pool)
    _rows: list[dict[str, float]] = field(default_factory=list)
    _names: dict[str, int] = field(default_factory=dict)
    _matrix: np.ndarray | None = None

    def add(self, item_id: str, values: dict[str, float], stratum: str = "") -> None:
        """One item: its contribution to each named sum, and the stratum it is resampled within."""
        self.items.append(item_id)
        self.strata.append(stratum)
        self._rows.append(values)
        for name in values:
            self._names.setdefault(name, len(self._names))
        self._matrix = None

    def columns(self) -> np.ndarray:
        """items x sums: each item's contribution to each named sum."""
        if self._matrix is None:
            out = np.zeros((len(self._rows), len(self._names)))
            for r, values in enumerate(self._rows):
                for name, value in values.items():
                    out[r, self._names[name]] = value
            self._matrix = out
        return self._matrix

    def restrict(self, keep: Iterable[str]) -> Resampling:
        """The same scorer on only the items in ``keep``, in ``keep``'s order (for paired comparisons)."""
        where = {item: r for r, item in enumerate(self.items)}
        out = Resampling(self.headline)
        for item in keep:
            r = where[item]
            out.add(item, self._rows[r], self.strata[r])
        return out

    def point(self) -> dict[str, float | None]:
        """The headline numbers on the items as they are (every weight 1)."""
        sums = Sums(self.columns().sum(axis=0, keepdims=True), self._names)
        return {name: _finite(values[0]) for name, values in self.headline(sums).items()}

    @property
    def names(self) -> dict[str, int]:
        """Column of each named sum."""
        return self._names

    def resampled(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """Headline numbers for each row of ``weights`` (resamples x items: how often each item was drawn)."""
        return self.headline(Sums(weights @ self.columns(), self._names))


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def weight_chunks(
    strata: Sequence[str], *, resamples: int = RESAMPLES, seed: int = DEFAULT_SEED
) -> Iterable[np.ndarray]:
    """Bootstrap weights (resamples x items, draw counts) in chunks; items drawn within their stratum.

    The same (strata, resamples, seed) always gives the same weights, so a rescored run keeps its intervals.
    """
    n = len(strata)
    rng = np.random.default_rng(seed)
    groups: dict[str, list[int]] = {}
    for r, stratum in enumerate(strata):
        groups.setdefault(stratum, []).append(r)
    members = [np.asarray(rows) for _, rows in sorted(groups.items())]
    chunk = max(1, min(resamples, _CHUNK_CELLS // max(n, 1)))
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        offsets = (np.arange(size) * n)[:, None]
        draws = [offsets + rows[rng.integers(0, len(rows), (size, len(rows)))] for rows in members]
        flat = np.concatenate([d.ravel() for d in draws]) if draws else np.zeros(0, dtype=np.int64)
        yield np.bincount(flat, minlength=size * n).reshape(size, n).astype(np.float64)


def _sums(resampling: Resampling, weights: Iterable[np.ndarray]) -> Sums:
    """The named sums of every resample (resamples x sums), chunk by chunk."""
    columns = resampling.columns()
    parts = [w @ columns for w in weights]
    matrix = np.concatenate(parts) if parts else np.zeros((0, columns.shape[1]))
    return Sums(matrix, resampling.names)


def _percentiles(values: np.ndarray, level: float) -> list[float] | None:
    finite = values[~np.isnan(values)]
    if not finite.size:
        return None
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return [round(float(low), 6), round(float(high), 6)]


def bootstrap_intervals(
    resampling: Resampling, *, seed: int = DEFAULT_SEED, resamples: int = RESAMPLES, level: float = LEVEL
) -> dict[str, list[float] | None]:
    """Percentile bootstrap interval of each headline number (None where there is no data)."""
    point = resampling.point()
    if not resampling.items:
        return dict.fromkeys(point)
    draws = resampling.headline(
        _sums(resampling, weight_chunks(resampling.strata, resamples=resamples, seed=seed))
    )
    return {name: None if point[name] is None else _percentiles(draws[name], level) for name in point}


@dataclass(frozen=True)
class Difference:
    """B - A on shared items: the point difference, its percentile interval and a two-sided p-value."""

    a: float | None
    b: float | None
    diff: float | None
    interval: list[float] | None
    p_value: float | None


def paired_bootstrap(
    a: Resampling,
    b: Resampling,
    *,
    seed: int = DEFAULT_SEED,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
) -> dict[str, Difference]:
    """Paired bootstrap of B - A: both runs resampled with the same item weights (a and b share rows).

    The p-value is two-sided, from the bootstrap distribution centred on the observed difference (the null
    of no difference): the share of resampled differences at least as far from the observed one as the
    observed one is from 0.
    """
    if a.items != b.items:
        raise ValueError("paired resamplings must list the same items in the same order")
    pa, pb = a.point(), b.point()
    chunks = list(weight_chunks(a.strata, resamples=resamples, seed=seed))
    ra, rb = a.headline(_sums(a, chunks)), b.headline(_sums(b, chunks))
    out = {}
    for name in pa:
        va, vb = pa[name], pb.get(name)
        if va is None or vb is None:
            out[name] = Difference(va, vb, None, None, None)
            continue
        diffs = rb[name] - ra[name]
        diffs = diffs[~np.isnan(diffs)]
        observed = vb - va
        extreme = np.abs(diffs - observed) >= abs(observed) - 1e-12
        p = float((extreme.sum() + 1) / (diffs.size + 1))  # +1: a bootstrap p-value is never exactly 0
        out[name] = Difference(va, vb, observed, _percentiles(diffs, level), min(1.0, p))
    return out


def mcnemar(a_correct: Sequence[bool], b_correct: Sequence[bool]) -> float:
    """Exact two-sided McNemar p-value on paired right/wrong outcomes (binomial test on discordant pairs)."""
    if len(a_correct) != len(b_correct):
        raise ValueError("McNemar needs paired outcomes of equal length")
    only_a = sum(1 for x, y in zip(a_correct, b_correct, strict=True) if x and not y)
    only_b = sum(1 for x, y in zip(a_correct, b_correct, strict=True) if y and not x)
    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


# --- calibration ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bin:
    """One confidence bin: its range, how many decisions fell in it, their mean confidence and accuracy."""

    low: float
    high: float
    count: int
    confidence: float | None
    accuracy: float | None


def top_label(p_chosen: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, correctness) of the label each decision picks, from P(chosen wins).

    The judge picks the chosen response when P > 0.5 and is then right; at exactly 0.5 it has no preference
    and is right half the time (a fair coin), so such a decision counts 0.5.
    """
    p = np.asarray(p_chosen, dtype=np.float64)
    confidence = np.maximum(p, 1 - p)
    correct = np.where(p > 0.5, 1.0, np.where(p < 0.5, 0.0, 0.5))
    return confidence, correct


def brier(p_chosen: Sequence[float]) -> float | None:
    """Mean squared error of P(chosen wins) against the truth (the chosen response always is the better)."""
    p = np.asarray(p_chosen, dtype=np.float64)
    return float(np.mean((1 - p) ** 2)) if p.size else None


def reliability(p_chosen: Sequence[float], bins: int = BINS) -> list[Bin]:
    """Equal-width bins of top-label confidence over [0, 1] (the last bin closed at 1)."""
    confidence, correct = top_label(p_chosen)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        mask = which == b
        count = int(mask.sum())
        out.append(
            Bin(
                b / bins,
                (b + 1) / bins,
                count,
                float(confidence[mask].mean()) if count else None,
                float(correct[mask].mean()) if count else None,
            )
        )
    return out


def ece(p_chosen: Sequence[float], bins: int = BINS) -> float | None:
    """Expected calibration error: the count-weighted mean |accuracy - confidence| over equal-width bins."""
    table = reliability(p_chosen, bins)
    total = sum(b.count for b in table)
    if not total:
        return None
    gaps = (
        b.count * abs(b.accuracy - b.confidence)
        for b in table
        if b.accuracy is not None and b.confidence is not None
    )
    return float(sum(gaps) / total)


def deciles(p_chosen: Sequence[float]) -> list[Bin]:
    """Accuracy per confidence decile: decisions sorted by confidence, cut into ten groups of equal size."""
    confidence, correct = top_label(p_chosen)
    order = np.argsort(confidence, kind="stable")
    out = []
    for group in np.array_split(order, 10):
        if not group.size:
            continue
        c = confidence[group]
        out.append(
            Bin(
                float(c.min()), float(c.max()), int(group.size), float(c.mean()), float(correct[group].mean())
            )
        )
    return out


__all__ = [
    "BINS",
    "DEFAULT_SEED",
    "RESAMPLES",
    "Bin",
    "Difference",
    "Resampling",
    "Sums",
    "bootstrap_intervals",
    "brier",
    "deciles",
    "ece",
    "mcnemar",
    "nanmean",
    "paired_bootstrap",
    "reliability",
    "top_label",
    "weight_chunks",
]
