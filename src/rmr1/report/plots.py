"""The report's plots, drawn with matplotlib (Agg, no display) and embedded as base64 PNG data URIs."""

from __future__ import annotations

import base64
import io
from typing import Any

from rmr1 import stats as statistics
from rmr1.report.stats import ReportStats

COLOURS = {"correct": "#2e7d32", "wrong": "#c62828", "unparsed": "#9e9e9e"}
MAX_SUBSETS = 40


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    _pyplot().close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def subsets_plot(stats: ReportStats) -> str | None:
    """Per subset: shares of correct / wrong / unparsed judgments, the largest subsets first."""
    tallies = sorted(stats.by_subset.items(), key=lambda kv: (-kv[1].n, kv[0]))[:MAX_SUBSETS]
    if not tallies:
        return None
    plt = _pyplot()
    names = [name or "(none)" for name, _ in tallies][::-1]
    fig, ax = plt.subplots(figsize=(7.5, 0.9 + 0.32 * len(names)))
    left = [0.0] * len(names)
    for kind in ("correct", "wrong", "unparsed"):
        shares = [getattr(t, kind) / t.n for _, t in tallies][::-1]
        ax.barh(names, shares, left=left, color=COLOURS[kind], label=kind)
        left = [a + b for a, b in zip(left, shares, strict=True)]
    for y, (_, t) in enumerate(tallies[::-1]):
        ax.text(1.01, y, f"{t.correct / t.n:.1%} (n={t.n})", va="center", fontsize=8)
    ax.set_xlim(0, 1.3)
    ax.set_xlabel("share of judgments")
    ax.set_title("Accuracy per subset (per judgment)", pad=22)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, fontsize=8, frameon=False)
    return _png(fig)


def position_plot(stats: ReportStats) -> str | None:
    """A-rate by where the preferred response was shown, and accuracy by order: a fair judge is symmetric."""
    orders = [o for o in ("AB", "BA") if o in stats.by_order]
    if not orders:
        return None
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3))
    labels = {"AB": "preferred shown as A", "BA": "preferred shown as B"}
    tallies = [stats.by_order[o] for o in orders]
    a_rates = [t.said_a / t.parsed if t.parsed else 0.0 for t in tallies]
    left.bar([labels[o] for o in orders], a_rates, color="#1565c0")
    left.set_ylim(0, 1)
    left.set_title("verdict A rate (parsed verdicts)", fontsize=10)
    accuracy = [t.correct / t.n for t in tallies]
    right.bar([labels[o] for o in orders], accuracy, color=COLOURS["correct"])
    right.set_ylim(0, 1)
    right.set_title("accuracy by order", fontsize=10)
    for ax, values in ((left, a_rates), (right, accuracy)):
        for x, v in enumerate(values):
            ax.text(x, v + 0.02, f"{v:.1%}", ha="center", fontsize=9)
        ax.tick_params(axis="x", labelsize=8)
    return _png(fig)


def length_plot(stats: ReportStats) -> str | None:
    """Completion length of correct vs wrong (and unparsed) judgments."""
    series = {k: list(v) for k, v in stats.lengths.items() if len(v)}
    if not series:
        return None
    plt = _pyplot()
    top = max(max(v) for v in series.values())
    bins = max(1, min(40, top + 1))
    fig, ax = plt.subplots(figsize=(7.5, 3))
    for kind, values in series.items():
        ax.hist(
            values, bins=bins, range=(0, max(top, 1)), histtype="stepfilled", alpha=0.3, color=COLOURS[kind]
        )
        ax.hist(
            values,
            bins=bins,
            range=(0, max(top, 1)),
            histtype="step",
            linewidth=1.6,
            color=COLOURS[kind],
            label=f"{kind} (n={len(values)})",
        )
    ax.set_xlabel("completion tokens")
    ax.set_ylabel("judgments")
    ax.set_title("Trace length")
    ax.legend(fontsize=8)
    return _png(fig)


def confidence_plot(stats: ReportStats) -> str | None:
    """Accuracy of voted decisions grouped by their vote share (only when voting with samples > 1)."""
    if stats.samples <= 1 or not stats.confidence:
        return None
    plt = _pyplot()
    levels = sorted({c for c, _ in stats.confidence})
    totals = [stats.confidence[(c, True)] + stats.confidence[(c, False)] for c in levels]
    accuracy = [stats.confidence[(c, True)] / t for c, t in zip(levels, totals, strict=True)]
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar([f"{c:.0%}" for c in levels], accuracy, color="#6a1b9a")
    for x, (acc, n) in enumerate(zip(accuracy, totals, strict=True)):
        ax.text(x, acc + 0.02, f"{acc:.0%} (n={n})", ha="center", fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.set_xlabel("share of samples agreeing with the majority")
    ax.set_ylabel("accuracy")
    ax.set_title("Accuracy by verdict confidence")
    return _png(fig)


def reliability_plot(stats: ReportStats) -> str | None:
    """Reliability diagram: accuracy against mean confidence in equal-width confidence bins."""
    values = stats.calibration.values()
    if not values:
        return None
    bins = [b for b in statistics.reliability(values) if b.count]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    width = 1 / statistics.BINS
    ax.bar(
        [b.low for b in bins],
        [b.accuracy for b in bins],
        width=width,
        align="edge",
        color="#00838f",
        edgecolor="white",
        label="accuracy",
    )
    # the confidence of the picked response is never below 0.5, so the diagram starts there
    ax.plot([0.5, 1], [0.5, 1], linestyle="--", color="#555", linewidth=1, label="perfect calibration")
    ax.plot([b.confidence for b in bins], [b.accuracy for b in bins], "o", color="#004d40", markersize=4)
    for b in bins:
        ax.text(b.low + width / 2, (b.accuracy or 0) + 0.02, f"n={b.count}", ha="center", fontsize=7)
    ax.set_xlim(0.5, 1)
    ax.set_ylim(0, 1.1)
    ax.set_xlabel("confidence of the picked response")
    ax.set_ylabel("accuracy")
    ece = statistics.ece(values)
    ax.set_title(f"Reliability (ECE {ece:.3f}, {len(values)} decisions)", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    return _png(fig)


def curves_plot(rows: list[dict[str, Any]], keys: list[tuple[str, str]], title: str) -> str | None:
    """Training curves: one panel per (metric key, label) against ``step``; None when no row has any key."""
    panels = [
        (label, [(r["step"], r[key]) for r in rows if "step" in r and r.get(key) is not None])
        for key, label in keys
    ]
    panels = [(label, points) for label, points in panels if points]
    if not panels:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 2.8), squeeze=False)
    for ax, (label, points) in zip(axes[0], panels, strict=True):
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", color="#1565c0")
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("step")
    fig.suptitle(title)
    fig.tight_layout()
    return _png(fig)


def all_plots(stats: ReportStats) -> list[tuple[str, str]]:
    """(title, data URI) for each plot that has data."""
    drawn = [
        ("Accuracy per subset", subsets_plot(stats)),
        ("Position bias", position_plot(stats)),
        ("Trace length", length_plot(stats)),
        ("Verdict confidence", confidence_plot(stats)),
        ("Reliability diagram", reliability_plot(stats)),
    ]
    return [(title, uri) for title, uri in drawn if uri is not None]


__all__ = [
    "all_plots",
    "confidence_plot",
    "curves_plot",
    "length_plot",
    "position_plot",
    "reliability_plot",
    "subsets_plot",
]
