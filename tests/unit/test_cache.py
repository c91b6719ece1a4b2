"""The judgment cache: hits cost no model call, only finished answers are kept, the key covers what decides
a completion, several processes may write at once, and a repeated eval is free and scores the same."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import rmr1
from rmr1.backends.mock import MockBackend
from rmr1.cache import CachedBackend, cached_judge
from rmr1.evaluation import rescore
from rmr1.judge_options import JudgeOptions
from rmr1.types import Completion, GenerationRequest, Message, SamplingParams


def req(text: str, **sampling: object) -> GenerationRequest:
    return GenerationRequest((Message("user", text),), SamplingParams(**sampling), key=text)  # type: ignore[arg-type]


def test_hits_skip_the_model_and_misses_go_in_one_call(tmp_path: Path) -> None:
    inner = MockBackend("echo")
    cache = CachedBackend(inner, tmp_path / "c.sqlite", model_id="mock:echo")
    first = cache.generate([req("a"), req("b")])
    assert [c.text for c in first] == ["a", "b"] and inner.batches == [2]
    again = cache.generate([req("b"), req("c"), req("a")])
    assert [c.text for c in again] == ["b", "c", "a"]  # request order kept around the hits
    assert inner.batches == [2, 1]  # only "c" reached the model
    assert (cache.stats.hits, cache.stats.misses) == (2, 3)
    assert again[0].latency_s == 0.0 and again[0].completion_tokens == first[1].completion_tokens


class Scripted:
    """Answers each request with the finish reason named in its text."""

    def __init__(self) -> None:
        self.calls = 0

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        self.calls += len(requests)
        out = []
        for r in requests:
            reason = r.messages[-1].content
            out.append(Completion("t", finish_reason=reason, error="boom" if reason == "error" else None))
        return out


def test_failed_and_unsent_calls_are_not_cached(tmp_path: Path) -> None:
    inner = Scripted()
    cache = CachedBackend(inner, tmp_path / "c.sqlite", model_id="m")
    texts = ["stop", "length", "error", "too_long"]
    cache.generate([req(t) for t in texts])
    cache.generate([req(t) for t in texts])
    assert inner.calls == 4 + 2  # "error" and "too_long" are asked again; answers are kept
    assert (cache.stats.hits, cache.stats.misses) == (2, 6)


@pytest.mark.parametrize(
    ("model_id", "namespace", "request_"),
    [
        ("other-model", "t1", req("q", seed=1)),  # another judge
        ("m", "t2", req("q", seed=1)),  # another template
        ("m", "t1", req("q", seed=2)),  # another sampling seed
        ("m", "t1", req("q", seed=1, temperature=0.7)),  # another temperature
        ("m", "t1", req("q", seed=1, max_new_tokens=9)),  # another budget
        ("m", "t1", req("q ", seed=1)),  # another prompt, however small the change
    ],
)
def test_the_key_covers_model_template_prompt_and_sampling(
    tmp_path: Path, model_id: str, namespace: str, request_: GenerationRequest
) -> None:
    path = tmp_path / "c.sqlite"
    CachedBackend(MockBackend("echo"), path, model_id="m", namespace="t1").generate([req("q", seed=1)])
    inner = MockBackend("echo")
    CachedBackend(inner, path, model_id=model_id, namespace=namespace).generate([request_])
    assert inner.calls == 1
    same = MockBackend("echo")
    CachedBackend(same, path, model_id="m", namespace="t1").generate([req("q", seed=1)])
    assert same.calls == 0  # the bookkeeping key is not part of it: the same content hits


def _writer(path: str, start: int, count: int) -> None:
    cache = CachedBackend(MockBackend("echo"), path, model_id="m")
    for i in range(start, start + count, 10):
        cache.generate([req(f"r{j}") for j in range(i, i + 10)])


def test_two_processes_writing_at_once(tmp_path: Path) -> None:
    path = str(tmp_path / "c.sqlite")
    ctx = multiprocessing.get_context("spawn")
    # Overlapping ranges: both store r100..r199, so INSERT OR IGNORE meets real conflicts.
    procs = [
        ctx.Process(target=_writer, args=(path, 0, 200)),
        ctx.Process(target=_writer, args=(path, 100, 200)),
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    with sqlite3.connect(path) as db:
        rows = dict(db.execute("SELECT text, finish_reason FROM completions").fetchall())
    assert sorted(rows) == sorted(f"r{j}" for j in range(300)) and set(rows.values()) == {"stop"}


_OLD_SCHEMA = (  # the table as files made before the p_a column have it
    "CREATE TABLE completions (key TEXT PRIMARY KEY, model TEXT NOT NULL, text TEXT NOT NULL, reasoning TEXT,"
    " finish_reason TEXT NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL)"
)


def _old_file(path: Path) -> None:
    first = CachedBackend(MockBackend("echo"), path, model_id="m")
    first.generate([req("kept")])
    row = first._db.execute("SELECT * FROM completions").fetchone()
    first._db.close()
    path.unlink()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode = WAL")  # as every cache file is
        db.execute(_OLD_SCHEMA)
        db.execute("INSERT INTO completions VALUES (?, ?, ?, ?, ?, ?, ?)", row[:7])


def test_a_file_made_before_the_probability_column_gets_it_and_keeps_its_answers(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    _old_file(path)
    inner = MockBackend("echo")
    assert [c.text for c in CachedBackend(inner, path, model_id="m").generate([req("kept")])] == ["kept"]
    assert inner.calls == 0
    with sqlite3.connect(path) as db:
        assert "p_a" in {row[1] for row in db.execute("PRAGMA table_info(completions)")}


def test_another_process_cannot_add_the_column_between_our_check_and_our_alter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.sqlite"
    _old_file(path)
    other_met: list[str] = []

    class Interleaved(sqlite3.Connection):
        """Lets another process try its own migration right after this one has read the schema."""

        def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
            cursor = super().execute(sql, *args)
            if sql.startswith("PRAGMA table_info"):
                other = sqlite3.connect(path, timeout=0.2, isolation_level=None)
                try:
                    other.execute("ALTER TABLE completions ADD COLUMN p_a REAL")
                    other_met.append("added")
                except sqlite3.OperationalError as exc:
                    other_met.append(str(exc))
                finally:
                    other.close()
            return cursor

    real_connect = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: real_connect(*a, factory=Interleaved, **k))
    cache = CachedBackend(MockBackend("echo"), path, model_id="m")  # before the fix: "duplicate column name"
    assert other_met == ["database is locked"]  # it waits for our transaction instead
    assert cache.generate([req("kept")])[0].text == "kept"


def test_opening_waits_while_another_process_holds_the_file_it_must_switch_to_wal(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE t (a)")
    other.execute(
        "BEGIN IMMEDIATE"
    )  # a writer mid-transaction: SQLite refuses the WAL switch at once, no busy wait
    threading.Timer(0.3, lambda: other.execute("COMMIT")).start()
    cache = CachedBackend(MockBackend("echo"), path, model_id="m")  # before the retry: "database is locked"
    assert cache.generate([req("a")])[0].text == "a"
    assert cache._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def _pairs(path: Path, n: int = 6) -> Path:
    rows = [{"id": f"q{i}", "prompt": f"{i}?", "chosen": f"{i}", "rejected": f"-{i}"} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _official(scores: dict[str, object]) -> dict[str, object]:
    diag = dict(scores["diagnostics"])  # type: ignore[call-overload]
    diag.pop("cache_hits"), diag.pop("cache_misses")
    return {**scores, "diagnostics": diag}


def test_a_second_identical_eval_makes_no_model_call_and_scores_the_same(tmp_path: Path) -> None:
    data, db = _pairs(tmp_path / "pairs.jsonl"), tmp_path / "judge.sqlite"
    scripts = {"q0": "[[B]]", "q3": "no verdict"}  # a wrong verdict and an unparsed one, kept as such

    def script(r: GenerationRequest) -> str:
        return f"<answer>{scripts.get(r.key.split('|')[0], '[[A]]')}</answer>"

    runs = []
    for name in ("first", "second"):
        model = MockBackend(script)
        result = rmr1.evaluate(
            "preference",
            tmp_path / name,
            judge=rmr1.Judge(model, config=rmr1.judge.JudgeConfig(protocol="both")),
            cache=db,
            data=str(data),
            report=False,
        )
        runs.append((model.calls, result.scores))
    (first_calls, first), (second_calls, second) = runs
    assert (first_calls, second_calls) == (12, 0)
    assert (first["diagnostics"]["cache_misses"], first["diagnostics"]["cache_hits"]) == (12, 0)
    assert (second["diagnostics"]["cache_misses"], second["diagnostics"]["cache_hits"]) == (0, 12)
    assert _official(first) == _official(second)
    assert json.loads((tmp_path / "second" / "scores.json").read_text()) == second
    assert rescore(tmp_path / "second")["diagnostics"]["cache_hits"] == 12  # kept in run.json for rescore
    verdicts = [json.loads(line)["verdict"] for line in (tmp_path / "second" / "judgments.jsonl").open()]
    assert verdicts.count(None) == 2 and verdicts.count("B") >= 1


def test_judge_options_and_reward_judges_get_the_cache(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite"
    judge = JudgeOptions(backend="mock", model="always-a", cache=str(db)).build_judge()
    assert isinstance(judge.backend, CachedBackend) and judge.backend.model_id == "mock:always-a"
    pair = rmr1.PreferencePair.from_texts("q", "a", "b")
    list(judge.judge([pair]))
    mock = MockBackend("always-b")  # a different script under the same name would be served from the cache
    reward_judge = cached_judge(rmr1.Judge(mock), db, model_id="mock:always-a")
    [j] = list(reward_judge.judge([pair]))
    assert mock.calls == 0 and j.verdict == "A"
