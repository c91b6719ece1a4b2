"""The demo's report: ``summary.json``, curve plots (PNG) and ``report.html`` with example traces."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from rmr1.train.runtime import read_curves

_CURVES = {
    "sft_curves.png": ("sft", [("loss", "training loss"), ("mean_token_accuracy", "token accuracy")]),
    "grpo_curves.png": (
        "grpo",
        [
            ("reward", "mean reward"),
            ("judge/accuracy", "rollout accuracy"),
            ("completions/mean_length", "completion length (tokens)"),
        ],
    ),
}


def plot_curves(out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for name, (stage, keys) in _CURVES.items():
        rows = [r for r in read_curves(out / stage) if any(k in r for k, _ in keys)]
        if not rows:
            continue
        fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3))
        for ax, (key, label) in zip(axes, keys, strict=True):
            points = [(r["step"], r[key]) for r in rows if key in r]
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o")
            ax.set_title(label)
            ax.set_xlabel("step")
        fig.suptitle(stage.upper())
        fig.tight_layout()
        fig.savefig(out / name, dpi=80)
        plt.close(fig)
        written.append(out / name)
    return written


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def _examples(result: Any, limit: int = 4) -> str:
    rows = []
    stages = list(result.evals.values())
    for k in range(min(limit, len(stages[0].judgments))):
        cells = []
        for ev in stages:
            j = ev.judgments[k]
            mark = "right" if j.correct else ("unparsed" if j.verdict is None else "wrong")
            cells.append(
                f"<td><b>{html.escape(ev.name)}</b> ({mark})<pre>{html.escape(j.completion)}</pre></td>"
            )
        shown = "chosen shown as A" if stages[0].judgments[k].order == "AB" else "chosen shown as B"
        rows.append(
            f"<tr><td>{html.escape(stages[0].judgments[k].item_id)}<br>{shown}</td>{''.join(cells)}</tr>"
        )
    return "<table>" + "".join(rows) + "</table>"


def write_report(result: Any, cfg: Any) -> Path:
    from rmr1.train.demo import summary

    out = Path(result.out_dir)
    data = summary(result, cfg)
    (out / "summary.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    plots = plot_curves(out)
    acc = "".join(
        f"<tr><td>{html.escape(ev.name)}</td><td>{ev.accuracy:.1%}</td><td>{ev.parsed:.1%}</td>"
        f"<td>{ev.seconds:.1f}s</td></tr>"
        for ev in result.evals.values()
    )
    times = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.1f}s</td></tr>" for k, v in result.seconds.items())
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>rmr1 demo</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{border:1px solid #ccc;padding:4px;vertical-align:top}}
table{{border-collapse:collapse;margin-bottom:1.5em}} pre{{white-space:pre-wrap;max-width:32em}}</style>
</head><body>
<h1>rmr1 demo: distill, SFT, GRPO on SmolLM2-135M-Instruct ({"quick" if cfg.quick else "full"})</h1>
<p>Task: which response gets a one-digit addition right (held-out number pairs never seen in training).
Teacher: a deterministic scripted teacher (not an LLM) run through <code>rmr1.train.distill</code>;
it slips on about {cfg.careless_share:.0%} of first attempts, which pass 2 repairs.</p>
<h2>Held-out accuracy ({cfg.test_pairs} pairs, greedy, unparsed counts as wrong)</h2>
<table><tr><th>model</th><th>accuracy</th><th>verdict parsed</th><th>eval time</th></tr>{acc}</table>
<h2>Distillation</h2><pre>{html.escape(json.dumps(result.distill, indent=1))}</pre>
<h2>Curves</h2>{"".join(_img(p) for p in plots)}
<h2>Wall time per stage</h2><table>{times}</table>
<h2>Example traces (held-out), before and after training</h2>{_examples(result)}
</body></html>"""
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


__all__ = ["plot_curves", "write_report"]
