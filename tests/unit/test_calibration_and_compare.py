"""Calibration in scores.json and report.html from replayed judgments; ``rmr1 compare`` against a hand count."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rmr1.backends.mock import MockBackend
from rmr1.evaluation import RunDir, evaluate, rescore
from rmr1.evaluation.compare import compare_runs
from rmr1.judge import Judge, JudgeConfig
from rmr1.report import render_report
from rmr1.types import GenerationRequest


def write_pairs(path: Path, n: int, benchmark_subset: str = "s") -> Path:
    rows = [
        {
            "id": f"q{i}",
            "prompt": f"{i} + 1?",
            "chosen": f"{i + 1}",
            "rejected": f"{i + 2}",
            "subset": benchmark_subset,
        }
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def answer(label: str) -> str:
    return f"<eval>x</eval>\n<answer>[[{label}]]</answer>"


def by_rule(right: object) -> object:
    """A mock script: picks the preferred response when ``right(item, order, sample)`` says so."""

    def script(request: GenerationRequest) -> str:
        item, _, order, sample = request.key.split("|")
        preferred, other = ("A", "B") if order == "AB" else ("B", "A")
        return answer(preferred if right(item, order, int(sample)) else other)  # type: ignore[operator]

    return script


def make_run(out: Path, data: Path, right: object, **config: object) -> Path:
    judge = Judge(MockBackend(script=by_rule(right)), "cor", JudgeConfig(**config))  # type: ignore[arg-type]
    return evaluate("preference", out, judge=judge, data=str(data), report=False).run_dir


# --- calibration ------------------------------------------------------------------------------------------

P_A = {("q0", "AB"): 0.9, ("q0", "BA"): 0.2, ("q1", "AB"): 0.35, ("q1", "BA"): 0.6}


def test_p_a_gives_ece_and_brier_by_hand(tmp_path: Path) -> None:
    run = make_run(
        tmp_path / "run", write_pairs(tmp_path / "d.jsonl", 2), lambda i, o, s: True, protocol="both"
    )
    log = RunDir(run).judgments
    records = [json.loads(line) for line in log.read_text().splitlines()]
    for r in records:
        r["p_a"] = P_A[(r["item_id"], r["order"])]
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    scores = rescore(run)
    # P(chosen wins): q0 AB .9, q0 BA 1-.2 = .8, q1 AB .35, q1 BA 1-.6 = .4
    # top label: (.9, right) (.8, right) (.65, wrong) (.6, wrong); bins .9 | .8 | .6 (two: mean .625, acc 0)
    assert scores["diagnostics"]["ece"] == pytest.approx((0.1 + 0.2 + 2 * 0.625) / 4)
    assert scores["diagnostics"]["brier"] == pytest.approx((0.1**2 + 0.2**2 + 0.65**2 + 0.6**2) / 4)
    html = render_report(run)
    assert "Reliability diagram" in html and 'id="deciles"' in html
    assert f"ECE <b>{scores['diagnostics']['ece']:.3f}</b>" in html


def test_vote_shares_give_ece_and_brier_by_hand(tmp_path: Path) -> None:
    # q0: all 3 samples right in each order (share 1); q1: 1 of 3 right (share 1/3, so confidence 2/3, wrong)
    right = lambda item, order, sample: item == "q0" or sample == 0  # noqa: E731
    run = make_run(tmp_path / "run", write_pairs(tmp_path / "d.jsonl", 2), right, protocol="both", samples=3)
    diagnostics = json.loads(RunDir(run).scores.read_text())["diagnostics"]
    assert diagnostics["ece"] == pytest.approx(2 * (2 / 3) / 4)
    assert diagnostics["brier"] == pytest.approx(2 * (2 / 3) ** 2 / 4)


def test_no_probabilities_and_no_votes_means_no_calibration_keys(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", write_pairs(tmp_path / "d.jsonl", 2), lambda i, o, s: True)
    diagnostics = json.loads(RunDir(run).scores.read_text())["diagnostics"]
    assert "ece" not in diagnostics and "brier" not in diagnostics


# --- compare ----------------------------------------------------------------------------------------------

N = 60
A_RIGHT = {f"q{i}" for i in range(N) if i % 2 == 0}  # 30 / 60
B_RIGHT = {f"q{i}" for i in range(N) if i % 2 == 0 or i % 3 == 0}  # adds i = 3, 9, 15, ...: 40 / 60


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("compare")
    data = write_pairs(root / "d.jsonl", N)
    a = make_run(root / "a", data, lambda i, o, s: i in A_RIGHT)
    # B judged only the first 45 items: the comparison must pair on those
    b = make_run(root / "b", write_pairs(root / "d45.jsonl", 45), lambda i, o, s: i in B_RIGHT)
    return a, b, root


def rmr1(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rmr1", *args], capture_output=True, text=True, timeout=120)


def test_compare_matches_a_hand_computation(two_runs: tuple[Path, Path, Path]) -> None:
    a, b, _ = two_runs
    shared = [f"q{i}" for i in range(45)]
    a_acc = sum(i in A_RIGHT for i in shared) / 45
    b_acc = sum(i in B_RIGHT for i in shared) / 45
    done = rmr1("compare", str(a), str(b), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["direction"] == "B - A" and result["shared_items"] == 45 and result["only_a"] == 15
    row = result["rows"]["accuracy"]
    assert row["a"] == pytest.approx(a_acc) and row["b"] == pytest.approx(b_acc)
    assert row["diff"] == pytest.approx(b_acc - a_acc)
    # the interval, by a plain loop over resamples of the per-item differences (another random stream)
    d = np.array([(i in B_RIGHT) - (i in A_RIGHT) for i in shared], dtype=float)
    rng = np.random.default_rng(12345)
    means = [d[rng.integers(0, 45, 45)].mean() for _ in range(4000)]
    low, high = np.percentile(means, [2.5, 97.5])
    # the differences move in steps of 1/45: the two streams may land one step apart
    assert row["interval"][0] == pytest.approx(low, abs=1.5 / 45)
    assert row["interval"][1] == pytest.approx(high, abs=1.5 / 45)
    # B is right wherever A is and on 7 more of the 45 (odd multiples of 3): far from chance
    assert b_acc - a_acc == pytest.approx(7 / 45)
    assert row["p_value"] < 0.01
    table = rmr1("compare", str(a), str(b))
    assert table.returncode == 0 and "B - A" in table.stdout and f"{b_acc - a_acc:+.1%}" in table.stdout


def test_compare_is_seeded_and_symmetric(two_runs: tuple[Path, Path, Path]) -> None:
    a, b, _ = two_runs
    ab, again, ba = compare_runs(a, b), compare_runs(a, b), compare_runs(b, a)
    assert ab.rows == again.rows
    assert ba.rows["accuracy"].diff == pytest.approx(-(ab.rows["accuracy"].diff or 0))


def test_compare_refuses_disjoint_runs_and_other_benchmarks(two_runs: tuple[Path, Path, Path]) -> None:
    a, _, root = two_runs
    other = root / "other.jsonl"
    other.write_text(json.dumps({"id": "z1", "prompt": "p", "chosen": "c", "rejected": "r"}) + "\n")
    disjoint = make_run(root / "z", other, lambda i, o, s: True)
    done = rmr1("compare", str(a), str(disjoint))
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and "share no items" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    info = json.loads((disjoint / "run.json").read_text())
    info["benchmark"] = "judgebench"
    (disjoint / "run.json").write_text(json.dumps(info))
    done = rmr1("compare", str(a), str(disjoint))
    assert done.returncode == 2 and "same benchmark" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
