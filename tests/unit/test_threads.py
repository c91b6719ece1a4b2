"""The thread chooser: free cores from injected core counts and load averages, the overrides, the one line."""

from __future__ import annotations

from pathlib import Path

import pytest

import rmr1.threads
from rmr1.errors import ConfigError
from rmr1.threads import ENV, apply_threads, choose_threads


@pytest.mark.parametrize(
    ("cores", "load", "ranks", "threads"),
    [
        (16, 0.0, 1, 16),  # an idle machine: every core
        (16, 3.4, 1, 13),  # 3.4 cores busy elsewhere: 13 left (rounded)
        (2, 0.3, 1, 2),  # a light load rounds away
        (2, 1.6, 1, 1),  # busy: the one core left
        (2, 9.4, 1, 1),  # overloaded (this machine on a bad day): still one, never zero
        (16, 0.0, 4, 4),  # four ranks of one launch share the idle cores
        (16, 6.0, 4, 2),  # ... and the free ones
        (2, 0.0, 4, 1),  # more ranks than cores: one each
    ],
)
def test_the_free_cores_decide(cores: int, load: float, ranks: int, threads: int) -> None:
    env = {"LOCAL_WORLD_SIZE": str(ranks)} if ranks > 1 else {}
    choice = choose_threads(cores=cores, load=load, env=env)
    assert (choice.threads, choice.source, choice.ranks) == (threads, "auto", ranks)


def test_the_flag_beats_the_variable_which_beats_the_load() -> None:
    assert choose_threads(3, cores=2, load=5.0, env={ENV: "8"}).threads == 3
    choice = choose_threads(cores=2, load=5.0, env={ENV: " 8 "})
    assert (choice.threads, choice.source) == (8, ENV)
    assert choose_threads(cores=2, load=5.0, env={ENV: ""}).source == "auto"  # empty means unset


@pytest.mark.parametrize(("requested", "env"), [(0, {}), (-2, {}), (None, {ENV: "many"}), (None, {ENV: "0"})])
def test_a_bad_count_is_one_line(requested: int | None, env: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as err:
        choose_threads(requested, cores=2, load=0.0, env=env)
    assert "\n" not in str(err.value) and ("--threads" in str(err.value) or ENV in str(err.value))


def test_the_line_says_why() -> None:
    assert choose_threads(cores=2, load=0.3, env={}).describe() == "using 2 torch threads (2 cores, load 0.3)"
    shared = choose_threads(cores=16, load=0.0, env={"LOCAL_WORLD_SIZE": "2"}).describe()
    assert shared == "using 8 torch threads (16 cores, load 0.0, shared by 2 ranks)"
    assert choose_threads(1, cores=2, env={}).describe("openvino") == "using 1 openvino thread (--threads 1)"
    assert choose_threads(cores=2, env={ENV: "4"}).describe() == "using 4 torch threads (RMR1_THREADS=4)"


def test_apply_sets_torch_and_prints_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    before = torch.get_num_threads()
    lines: list[str] = []
    monkeypatch.setattr(rmr1.threads, "_announced", set())  # earlier tests in this process printed theirs
    try:
        monkeypatch.setenv(ENV, "1")
        assert apply_threads(log=lines.append).threads == 1 and torch.get_num_threads() == 1
        apply_threads(log=lines.append)  # the same choice again (a second backend): no second line
        assert apply_threads(2, log=lines.append).threads == 2 and torch.get_num_threads() == 2
        assert lines.count("using 1 torch thread (RMR1_THREADS=1)") == 1
        assert lines[-1] == "using 2 torch threads (--threads 2)"
    finally:
        torch.set_num_threads(before)


def test_the_judge_option_reaches_the_hf_backend(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    from rmr1.judge_options import JudgeOptions

    before = torch.get_num_threads()
    monkeypatch.setattr(rmr1.threads, "_announced", set())
    monkeypatch.setenv(ENV, "2")  # the flag wins over the variable
    try:
        JudgeOptions(model=str(tiny_model), backend="hf", dtype="float32", threads=1).make_backend()
        assert torch.get_num_threads() == 1
        assert capsys.readouterr().err.splitlines() == ["using 1 torch thread (--threads 1)"]
    finally:
        torch.set_num_threads(before)


def test_busy_cores_reads_the_machine_work_between_two_samples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rmr1.threads as threads

    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal: 400 jiffies pass, 100 of them idle or iowait
    snapshots = iter(["cpu 100 0 100 700 100 0 0 0\n", "cpu 250 0 250 780 120 0 0 0\n"])
    stat.write_text(next(snapshots))
    monkeypatch.setattr(threads.time, "sleep", lambda _s: stat.write_text(next(snapshots)))
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    assert threads.busy_cores(path=str(stat)) == pytest.approx(2 * 300 / 400)
    assert threads.busy_cores(path=str(tmp_path / "missing")) is None  # no /proc: fall back to the load


def test_a_process_own_recent_work_does_not_count_against_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import rmr1.threads as threads

    # the load average still holds the stage this process just ran; right now nothing else is busy
    monkeypatch.setattr(threads, "load_average", lambda: 1.6)
    monkeypatch.setattr(threads, "busy_cores", lambda: 0.1)
    assert threads.others_load() == pytest.approx(0.1)
    monkeypatch.setattr(threads, "busy_cores", lambda: 1.9)  # another process holds a core: the lower figure
    assert threads.others_load() == pytest.approx(1.6)
    monkeypatch.setattr(threads, "busy_cores", lambda: None)
    assert threads.others_load() == pytest.approx(1.6)
    monkeypatch.setattr(threads, "busy_cores", lambda: 0.1)
    assert threads.choose_threads(cores=2, env={}).threads == 2
