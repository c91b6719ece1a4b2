"""The bad-input table: every command, fed what users get wrong, ends in one line and touches nothing.

Each CLI case builds its files in a fresh folder, runs the real command line in-process (``rmr1.cli.failures.run``,
the same code the console script runs) on the mock or replay backend, and checks: exit code 2, exactly one line
on stderr and it starts with ``error:``, no traceback, and every file in the folder byte-identical afterwards,
with no new file (a half-written output counts as damage). A few cases run as real subprocesses to prove the
path end to end. The HTTP cases hit the app factory through FastAPI's TestClient: a 4xx with a JSON error, and
the server still answers the next good request.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from rmr1.cli import app
from rmr1.cli.failures import run

SRC = str(Path(__file__).resolve().parents[2] / "src")
MOCK = ["--backend", "mock", "--model", "always-a"]
BAD_UTF8 = b'{"id": "p0", "prompt": "q", "chosen": "caf\xe9", "rejected": "bad"}\n'
Setup = Callable[[Path], None]


def pair_line(i: int, **fields: object) -> str:
    return (
        json.dumps({"id": f"p{i}", "prompt": f"q{i}", "chosen": "good", "rejected": "bad", **fields}) + "\n"
    )


def pairs(t: Path, name: str = "pairs.jsonl", rows: int = 3) -> Path:
    (t / name).write_text("".join(pair_line(i) for i in range(rows)), encoding="utf-8")
    return t / name


def write(name: str, data: str | bytes) -> Setup:
    def setup(t: Path) -> None:
        (t / name).parent.mkdir(parents=True, exist_ok=True)
        (t / name).write_bytes(data.encode() if isinstance(data, str) else data)

    return setup


def both(*setups: Setup) -> Setup:
    def setup(t: Path) -> None:
        for s in setups:
            s(t)

    return setup


def good_pairs(t: Path) -> None:
    pairs(t)


def judge_prompts(t: Path) -> None:
    """A judge-prompt dataset (what ``rmr1 distill`` reads), made by ``rmr1 train data``."""
    assert (
        run(app, ["train", "data", "--pairs", str(pairs(t, "src.jsonl")), "--out", str(t / "jp.jsonl")]) == 0
    )


def a_run(t: Path) -> None:
    """A finished run directory made by ``rmr1 eval`` on the mock backend."""
    data = pairs(t, "data.jsonl")
    argv = ["eval", "preference", "--data", str(data), "--out", str(t / "run"), "--no-report", *MOCK]
    assert run(app, argv) == 0


def edit_judgments(change: Callable[[list[dict[str, object]]], None]) -> Setup:
    def setup(t: Path) -> None:
        a_run(t)
        path = t / "run" / "judgments.jsonl"
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        change(rows)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

    return setup


def field(name: str, value: object, row: int = 1) -> Setup:
    def change(rows: list[dict[str, object]]) -> None:
        rows[row][name] = value

    return edit_judgments(change)


def drop(name: str) -> Setup:
    return edit_judgments(lambda rows: rows[0].pop(name))


def run_file(name: str, data: bytes) -> Setup:
    return both(a_run, write(f"run/{name}", data))


def attempts(row: bytes) -> Setup:
    return both(judge_prompts, write("d/attempts.jsonl", row))


YAML_SFT = "stage: sft\ndataset: x.jsonl\n"
DISTILL = ["distill", "--data", "{t}/jp.jsonl", "--teacher-backend", "mock", "--teacher-model", "always-a"]
RESCORE = ["rescore", "{t}/run"]
SERVE = ["serve", *MOCK]

# (case id, argv with {t} for the folder, files made first)
CASES: list[tuple[str, list[str], Setup | None]] = [
    # rmr1 judge
    ("judge-no-input", ["judge", *MOCK], None),
    ("judge-pairs-and-prompt", ["judge", "--pairs", "{t}/pairs.jsonl", "--prompt", "q", *MOCK], good_pairs),
    ("judge-pairs-missing", ["judge", "--pairs", "{t}/none.jsonl", *MOCK], None),
    (
        "judge-pairs-bad-utf8",
        ["judge", "--pairs", "{t}/p.jsonl", *MOCK],
        write("p.jsonl", pair_line(1).encode() + BAD_UTF8),
    ),
    (
        "judge-pairs-bad-json",
        ["judge", "--pairs", "{t}/p.jsonl", *MOCK],
        write("p.jsonl", pair_line(0) + '{"id": \n'),
    ),
    ("judge-pairs-not-object", ["judge", "--pairs", "{t}/p.jsonl", *MOCK], write("p.jsonl", "[1, 2]\n")),
    (
        "judge-pairs-missing-field",
        ["judge", "--pairs", "{t}/p.jsonl", *MOCK],
        write("p.jsonl", '{"prompt": "q", "chosen": "a"}\n'),
    ),
    (
        "judge-pairs-wrong-type",
        ["judge", "--pairs", "{t}/p.jsonl", *MOCK],
        write("p.jsonl", pair_line(0, chosen=5)),
    ),
    ("judge-pairs-empty-file", ["judge", "--pairs", "{t}/p.jsonl", *MOCK], write("p.jsonl", "\n")),
    (
        "judge-pairs-duplicate-id",
        ["judge", "--pairs", "{t}/p.jsonl", *MOCK],
        write("p.jsonl", pair_line(0) * 2),
    ),
    (
        "judge-empty-response",
        ["judge", "--prompt", "q", "--response-a", "a", "--response-b", " ", *MOCK],
        None,
    ),
    ("judge-out-is-folder", ["judge", "--pairs", "{t}/pairs.jsonl", "--out", "{t}", *MOCK], good_pairs),
    (
        "judge-out-under-a-file",
        ["judge", "--pairs", "{t}/pairs.jsonl", "--out", "{t}/pairs.jsonl/o.jsonl", *MOCK],
        good_pairs,
    ),
    (
        "judge-unknown-backend",
        ["judge", "--prompt", "q", "--response-a", "a", "--response-b", "b", "--backend", "nope"],
        None,
    ),
    (
        "judge-unknown-mock-rule",
        ["judge", "--pairs", "{t}/pairs.jsonl", "--backend", "mock", "--model", "nope"],
        good_pairs,
    ),
    (
        "judge-unknown-template",
        ["judge", "--pairs", "{t}/pairs.jsonl", "--template", "nope", *MOCK],
        good_pairs,
    ),
    (
        "judge-template-bad-utf8",
        ["judge", "--pairs", "{t}/pairs.jsonl", "--template-file", "{t}/t.yaml", *MOCK],
        both(good_pairs, write("t.yaml", b"user: caf\xe9 {question}\n")),
    ),
    (
        "judge-template-bad-yaml",
        ["judge", "--pairs", "{t}/pairs.jsonl", "--template-file", "{t}/t.yaml", *MOCK],
        both(good_pairs, write("t.yaml", "user: [unclosed\n")),
    ),
    (
        "judge-template-no-user",
        ["judge", "--pairs", "{t}/pairs.jsonl", "--template-file", "{t}/t.yaml", *MOCK],
        both(good_pairs, write("t.yaml", "system: hi\n")),
    ),
    (
        "judge-bad-protocol",
        ["judge", "--pairs", "{t}/pairs.jsonl", "--protocol", "triple", *MOCK],
        good_pairs,
    ),
    ("judge-zero-samples", ["judge", "--pairs", "{t}/pairs.jsonl", "--samples", "0", *MOCK], good_pairs),
    (
        "judge-tokens-not-int",
        ["judge", "--pairs", "{t}/pairs.jsonl", "--max-new-tokens", "many", *MOCK],
        good_pairs,
    ),
    ("judge-unknown-flag", ["judge", "--pairs", "{t}/pairs.jsonl", "--temprature", "1", *MOCK], good_pairs),
    # every call fails (the recording holds none of these pairs): exit 2 and no --out file at all
    (
        "judge-all-calls-failed",
        [
            "judge",
            "--pairs",
            "{t}/pairs.jsonl",
            "--backend",
            "replay",
            "--model",
            "{t}/rec.jsonl",
            "--out",
            "{t}/o.jsonl",
        ],
        both(
            good_pairs,
            write(
                "rec.jsonl", json.dumps({"item_id": "zz", "pair": 0, "order": "AB", "completion": "x"}) + "\n"
            ),
        ),
    ),
    (
        "judge-replay-bad-utf8",
        ["judge", "--pairs", "{t}/pairs.jsonl", "--backend", "replay", "--model", "{t}/rec.jsonl"],
        both(good_pairs, write("rec.jsonl", b'{"item_id": "p0", "completion": "\xff"}\n')),
    ),
    # rmr1 eval
    ("eval-unknown-benchmark", ["eval", "nope", "--out", "{t}/run", *MOCK], None),
    (
        "eval-data-missing",
        ["eval", "preference", "--data", "{t}/none.jsonl", "--out", "{t}/run", *MOCK],
        None,
    ),
    (
        "eval-data-bad-utf8",
        ["eval", "preference", "--data", "{t}/p.jsonl", "--out", "{t}/run", *MOCK],
        write("p.jsonl", pair_line(1).encode() + BAD_UTF8),
    ),
    (
        "eval-data-bad-json-array",
        ["eval", "preference", "--data", "{t}/p.json", "--out", "{t}/run", *MOCK],
        write("p.json", '[{"id": 1,}]'),
    ),
    (
        "eval-data-missing-field",
        ["eval", "preference", "--data", "{t}/p.jsonl", "--out", "{t}/run", *MOCK],
        write("p.jsonl", '{"id": "a", "prompt": "q", "chosen": "x"}\n'),
    ),
    (
        "eval-out-is-a-file",
        ["eval", "preference", "--data", "{t}/pairs.jsonl", "--out", "{t}/pairs.jsonl", *MOCK],
        good_pairs,
    ),
    (
        "eval-out-under-a-file",
        ["eval", "preference", "--data", "{t}/pairs.jsonl", "--out", "{t}/pairs.jsonl/run", *MOCK],
        good_pairs,
    ),
    (
        "eval-limit-zero",
        ["eval", "preference", "--data", "{t}/pairs.jsonl", "--out", "{t}/run", "--limit", "0", *MOCK],
        good_pairs,
    ),
    (
        "eval-bad-shard",
        ["eval", "preference", "--data", "{t}/pairs.jsonl", "--out", "{t}/run", "--shard", "one", *MOCK],
        good_pairs,
    ),
    (
        "eval-bad-unparsed-score",
        [
            "eval",
            "preference",
            "--data",
            "{t}/pairs.jsonl",
            "--out",
            "{t}/run",
            "--unparsed-score",
            "0.3",
            *MOCK,
        ],
        good_pairs,
    ),
    (
        "eval-resume-other-settings",
        ["eval", "preference", "--data", "{t}/data.jsonl", "--out", "{t}/run", "--protocol", "both", *MOCK],
        a_run,
    ),
    (
        "eval-resume-pair-not-int",
        ["eval", "preference", "--data", "{t}/data.jsonl", "--out", "{t}/run", *MOCK],
        field("pair", "zero"),
    ),
    (
        "eval-resume-run-json-bad-utf8",
        ["eval", "preference", "--data", "{t}/data.jsonl", "--out", "{t}/run", *MOCK],
        run_file("run.json", b'{"benchmark": "\xff"}'),
    ),
    # rmr1 rescore
    ("rescore-missing-folder", ["rescore", "{t}/none"], None),
    ("rescore-not-a-run", RESCORE, write("run/notes.txt", "hi")),
    ("rescore-run-json-bad-json", RESCORE, run_file("run.json", b'{"benchmark": ')),
    ("rescore-run-json-bad-utf8", RESCORE, run_file("run.json", b'{"benchmark": "\xff"}')),
    ("rescore-run-json-not-object", RESCORE, run_file("run.json", b"[]")),
    (
        "rescore-judgments-bad-utf8",
        RESCORE,
        run_file("judgments.jsonl", b'{"item_id": "p0", "completion": "\xff"}\n{}\n'),
    ),
    ("rescore-pair-not-int", RESCORE, field("pair", "zero")),
    ("rescore-pair-is-bool", RESCORE, field("pair", True)),
    ("rescore-sample-not-int", RESCORE, field("sample", 0.5)),
    ("rescore-order-not-ab-ba", RESCORE, field("order", "XY")),
    ("rescore-verdict-not-a-b", RESCORE, field("verdict", "C")),
    ("rescore-completion-not-text", RESCORE, field("completion", 7)),
    ("rescore-missing-completion", RESCORE, drop("completion")),
    ("rescore-duplicate-judgment", RESCORE, edit_judgments(lambda rows: rows.append(dict(rows[0])))),
    ("rescore-bad-unparsed-score", [*RESCORE, "--unparsed-score", "0.3"], a_run),
    # rmr1 report
    ("report-not-a-run", ["report", "{t}"], None),
    ("report-zero-traces", ["report", "{t}/run", "--max-traces", "0"], a_run),
    ("report-pair-not-int", ["report", "{t}/run"], field("pair", [0])),
    # rmr1 merge
    ("merge-shard-missing", ["merge", "{t}/none", "--out", "{t}/merged"], None),
    ("merge-out-holds-a-run", ["merge", "{t}/run", "--out", "{t}/run"], a_run),
    ("merge-out-is-a-file", ["merge", "{t}/run", "--out", "{t}/data.jsonl"], a_run),
    # rmr1 distill
    (
        "distill-data-missing",
        ["distill", "--data", "{t}/none.jsonl", "--out", "{t}/d", "--teacher-backend", "mock"],
        None,
    ),
    (
        "distill-data-bad-utf8",
        ["distill", "--data", "{t}/p.jsonl", "--out", "{t}/d", "--teacher-backend", "mock"],
        write("p.jsonl", BAD_UTF8),
    ),
    ("distill-out-under-a-file", [*DISTILL, "--out", "{t}/jp.jsonl/d"], judge_prompts),
    ("distill-attempt-without-fields", [*DISTILL, "--out", "{t}/d"], attempts(b'{"id": "p0"}\n')),
    (
        "distill-attempt-bad-pass",
        [*DISTILL, "--out", "{t}/d"],
        attempts(
            b'{"id": "p0", "pass": 3, "verdict": "A", "correct": true, "finish_reason": "stop", "completion": "x"}\n'
        ),
    ),
    ("distill-attempts-bad-utf8", [*DISTILL, "--out", "{t}/d"], attempts(b'{"id": "\xff"}\n{}\n')),
    ("distill-bad-parse-mode", [*DISTILL, "--out", "{t}/d", "--parse-mode", "loose"], judge_prompts),
    ("distill-zero-batch", [*DISTILL, "--out", "{t}/d", "--batch-size", "0"], judge_prompts),
    (
        "distill-unknown-teacher",
        ["distill", "--data", "{t}/jp.jsonl", "--out", "{t}/d", "--teacher-backend", "nope"],
        judge_prompts,
    ),
    # rmr1 train
    ("train-data-no-input", ["train", "data", "--out", "{t}/o.jsonl"], None),
    (
        "train-data-pairs-bad-utf8",
        ["train", "data", "--pairs", "{t}/p.jsonl", "--out", "{t}/o.jsonl"],
        write("p.jsonl", BAD_UTF8),
    ),
    ("train-data-out-is-folder", ["train", "data", "--pairs", "{t}/pairs.jsonl", "--out", "{t}"], good_pairs),
    (
        "train-data-out-under-a-file",
        ["train", "data", "--pairs", "{t}/pairs.jsonl", "--out", "{t}/pairs.jsonl/o"],
        good_pairs,
    ),
    (
        "train-data-exclude-missing",
        [
            "train",
            "data",
            "--pairs",
            "{t}/pairs.jsonl",
            "--out",
            "{t}/o.jsonl",
            "--exclude",
            "{t}/none.jsonl",
        ],
        good_pairs,
    ),
    (
        "train-data-unknown-template",
        ["train", "data", "--pairs", "{t}/pairs.jsonl", "--out", "{t}/o.jsonl", "--template", "nope"],
        good_pairs,
    ),
    ("train-sft-config-missing", ["train", "sft", "--config", "{t}/none.yaml"], None),
    (
        "train-sft-config-bad-utf8",
        ["train", "sft", "--config", "{t}/c.yaml"],
        write("c.yaml", b"stage: sft\nlearning_rate: \xff\n"),
    ),
    (
        "train-sft-config-bad-yaml",
        ["train", "sft", "--config", "{t}/c.yaml"],
        write("c.yaml", "stage: [sft\n"),
    ),
    (
        "train-sft-unknown-key",
        ["train", "sft", "--config", "{t}/c.yaml", "learnng_rate=1"],
        write("c.yaml", YAML_SFT),
    ),
    (
        "train-sft-bad-value",
        ["train", "sft", "--config", "{t}/c.yaml", "learning_rate=fast"],
        write("c.yaml", YAML_SFT),
    ),
    (
        "train-sft-override-without-equals",
        ["train", "sft", "--config", "{t}/c.yaml", "epochs"],
        write("c.yaml", YAML_SFT),
    ),
    (
        "train-sft-output-under-a-file",
        ["train", "sft", "--config", "{t}/c.yaml", "output_dir={t}/c.yaml/out"],
        write("c.yaml", YAML_SFT),
    ),
    (
        "train-grpo-output-under-a-file",
        ["train", "grpo", "--config", "tiny-cpu-grpo", "dataset={t}/c.yaml", "output_dir={t}/c.yaml/out"],
        write("c.yaml", YAML_SFT),
    ),
    ("train-presets-extra-argument", ["train", "presets", "extra"], None),
    # rmr1 demo
    ("demo-out-under-a-file", ["demo", "--quick", "--out", "{t}/f/demo"], write("f", "x")),
    ("demo-zero-threads", ["demo", "--quick", "--out", "{t}/demo", "--threads", "0"], None),
    # rmr1 serve: refused before the model loads or a port is bound
    ("serve-max-batch-zero", [*SERVE, "--max-batch", "0"], None),
    ("serve-max-concurrency-zero", [*SERVE, "--max-concurrency", "0"], None),
    ("serve-timeout-zero", [*SERVE, "--request-timeout", "0"], None),
    ("serve-body-limit-zero", [*SERVE, "--max-body-bytes", "0"], None),
    ("serve-negative-window", [*SERVE, "--batch-window-ms", "-1"], None),
    ("serve-port-out-of-range", [*SERVE, "--port", "70000"], None),
    ("serve-bad-log-level", [*SERVE, "--log-level", "loud"], None),
    ("serve-unknown-template", [*SERVE, "--template", "nope"], None),
    # the program itself
    ("unknown-command", ["jugde"], None),
]


def snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under ``root``: files by content hash, folders by name."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        found[rel] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "<dir>"
    return found


@pytest.fixture(autouse=True)
def _no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """A serve case that slipped through its checks must fail the test, not block it on a port."""
    import uvicorn

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the server started")

    monkeypatch.setattr(uvicorn, "run", refuse)


def test_the_table_is_big_and_covers_every_command() -> None:
    assert len(CASES) >= 40
    assert len({case_id for case_id, _, _ in CASES}) == len(CASES)
    commands = {argv[0] if argv[0] != "train" else f"train {argv[1]}" for _, argv, _ in CASES}
    for command in ("judge", "eval", "rescore", "report", "merge", "distill", "demo", "serve"):
        assert command in commands
    assert {"train data", "train sft", "train grpo", "train presets"} <= commands


@pytest.mark.parametrize(("argv", "setup"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_touches_nothing(
    argv: list[str], setup: Setup | None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if setup is not None:
        setup(tmp_path)
    before = snapshot(tmp_path)
    capsys.readouterr()
    code = run(app, [a.replace("{t}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    assert snapshot(tmp_path) == before


def test_the_errors_name_file_line_and_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    field("pair", "zero", row=2)(tmp_path)
    assert run(app, ["rescore", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {tmp_path / 'run' / 'judgments.jsonl'}, line 3, field 'pair': "
        'must be a non-negative integer, got "zero"'
    )
    (tmp_path / "p.jsonl").write_bytes(pair_line(0).encode() + BAD_UTF8)
    assert run(app, ["judge", "--pairs", str(tmp_path / "p.jsonl"), *MOCK]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {tmp_path / 'p.jsonl'}, line 2: not valid UTF-8 (byte 0xe9 at column 43)"
    )
    judge_prompts(tmp_path)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "attempts.jsonl").write_text('{"id": "p0", "pass": 1}\n')
    argv = [a.replace("{t}", str(tmp_path)) for a in [*DISTILL, "--out", "{t}/d"]]
    assert run(app, argv) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {tmp_path / 'd' / 'attempts.jsonl'}, line 1, field 'verdict': missing"
    )


def test_partial_failures_keep_what_succeeded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two of three pairs were recorded: their judgments are written, the third is counted on stderr."""
    a_run(tmp_path)
    recorded = (tmp_path / "run" / "judgments.jsonl").read_text().splitlines()
    (tmp_path / "rec.jsonl").write_text("\n".join(recorded[:2]) + "\n")
    pairs(tmp_path, "data.jsonl")
    argv = ["judge", "--pairs", str(tmp_path / "data.jsonl"), "--backend", "replay", "--model"]
    code = run(app, [*argv, str(tmp_path / "rec.jsonl"), "--out", str(tmp_path / "o.jsonl"), "--seed", "0"])
    err = capsys.readouterr().err
    assert code == 0, err
    written = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert len(written) == 2 and all(j["finish_reason"] == "stop" for j in written)
    assert "warning: 1 of 3 judge calls failed and were not written" in err


def test_debug_shows_the_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["rescore", str(tmp_path / "none")]
    assert run(app, [*argv, "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("error: ")
    monkeypatch.setenv("RMR1_DEBUG", "1")
    assert run(app, argv) == 2
    assert "Traceback" in capsys.readouterr().err


def test_an_internal_error_is_one_line_that_points_at_debug(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import rmr1.train.config as config

    def broken() -> list[str]:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(config, "preset_names", broken)
    assert run(app, ["train", "presets"]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "error: internal error (ZeroDivisionError: a bug); run again with --debug (or RMR1_DEBUG=1) "
        "to see the traceback"
    ]


def rmr1(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": SRC, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env.pop("RMR1_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "rmr1", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120
    )


SUBPROCESS_CASES = [
    "judge-pairs-bad-utf8",
    "rescore-pair-not-int",
    "serve-max-batch-zero",
    "train-sft-config-bad-utf8",
]


@pytest.mark.parametrize("case_id", SUBPROCESS_CASES)
def test_as_a_real_process(case_id: str, tmp_path: Path) -> None:
    _, argv, setup = next(c for c in CASES if c[0] == case_id)
    if setup is not None:
        setup(tmp_path)
    before = snapshot(tmp_path)
    done = rmr1(*[a.replace("{t}", str(tmp_path)) for a in argv], cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in done.stderr
    assert snapshot(tmp_path) == before


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_judge_against_a_dead_server_exits_2(tmp_path: Path) -> None:
    """The openai backend retries a refused connection, then every call has failed: exit 2, no output file."""
    pairs(tmp_path, rows=1)
    url = f"http://127.0.0.1:{free_port()}/v1"
    done = rmr1(
        "judge",
        "--pairs",
        "pairs.jsonl",
        "--backend",
        "openai",
        "--model",
        "m",
        "--base-url",
        url,
        "--out",
        "o.jsonl",
        "--timeout",
        "2",
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: all 1 judge calls failed; the first: ")
    assert "connection" in lines[0] and not (tmp_path / "o.jsonl").exists()


# ---- HTTP: the app factory on a scripted judge ------------------------------------------------------------

TOKEN = {"Authorization": "Bearer s3cret"}
GOOD = {"prompt": "2+2?", "responses": ["4", "5"]}
HTTP_CASES: list[tuple[str, str, dict[str, object], dict[str, str], int]] = [
    # (case id, endpoint, request kwargs for TestClient.post, headers, expected status)
    ("malformed-json", "/v1/judge", {"content": b'{"prompt": '}, {"Content-Type": "application/json"}, 422),
    ("not-json-at-all", "/v1/judge", {"content": b"\xff\xfe"}, {"Content-Type": "application/json"}, 422),
    ("responses-not-a-list", "/v1/judge", {"json": {"prompt": "q", "responses": "ab"}}, {}, 422),
    ("three-responses", "/v1/judge", {"json": {"prompt": "q", "responses": ["a", "b", "c"]}}, {}, 422),
    ("missing-responses", "/v1/judge", {"json": {"prompt": "q"}}, {}, 422),
    ("unknown-field", "/v1/judge", {"json": {**GOOD, "temperature": 2}}, {}, 422),
    ("bad-option-type", "/v1/judge", {"json": {**GOOD, "options": {"samples": "many"}}}, {}, 422),
    (
        "bad-role",
        "/v1/judge",
        {"json": {"messages": [{"role": "robot", "content": "q"}], "responses": ["a", "b"]}},
        {},
        422,
    ),
    (
        "rank-bad-method",
        "/v1/rank",
        {"json": {"prompt": "q", "responses": ["a", "b"], "method": "lottery"}},
        {},
        422,
    ),
    ("score-no-groups", "/v1/score", {"json": {"groups": []}}, {}, 422),
    ("reward-query-not-list", "/get_reward", {"json": {"query": "text"}}, {}, 422),
    ("oversize-body", "/v1/judge", {"json": {"prompt": "q" * 5000, "responses": ["a", "b"]}}, {}, 413),
    ("wrong-token", "/v1/judge", {"json": GOOD}, {"Authorization": "Bearer wrong"}, 401),
    ("no-token", "/v1/judge", {"json": GOOD}, {"Authorization": ""}, 401),
]


@pytest.fixture(scope="module")
def client() -> object:
    from fastapi.testclient import TestClient

    from rmr1.backends.mock import MockBackend
    from rmr1.judge import Judge, JudgeConfig
    from rmr1.serve import ServeSettings, create_app

    judge = Judge(MockBackend("always-a"), "plain", JudgeConfig(max_new_tokens=64))
    with TestClient(create_app(judge, ServeSettings(token="s3cret", max_body_bytes=4000))) as c:
        yield c


@pytest.mark.parametrize(
    ("path", "kwargs", "headers", "status"), [c[1:] for c in HTTP_CASES], ids=[c[0] for c in HTTP_CASES]
)
def test_bad_request_is_a_json_4xx_and_the_server_keeps_serving(
    client: object, path: str, kwargs: dict[str, object], headers: dict[str, str], status: int
) -> None:
    answer = client.post(path, headers={**TOKEN, **headers}, **kwargs)  # type: ignore[attr-defined]
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == status and isinstance(error["message"], str) and "\n" not in error["message"]
    after = client.post("/v1/judge", headers=TOKEN, json=GOOD)  # type: ignore[attr-defined]
    assert after.status_code == 200 and after.json()["verdict"] == "A"


def test_http_table_is_big_enough() -> None:
    assert len(HTTP_CASES) >= 10
