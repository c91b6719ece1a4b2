"""The stall watchdog (rmr1.backends.watchdog): a call that stops using CPU becomes an error, a busy one is not."""

from __future__ import annotations

import threading
import time

import pytest

from rmr1.backends.watchdog import call_watched
from rmr1.errors import BackendError, EngineStalledError


def test_a_call_returns_its_value_from_a_worker_thread() -> None:
    caller = threading.current_thread()
    assert call_watched(lambda: threading.current_thread() is not caller, stall_s=5) is True


def test_off_runs_the_call_inline() -> None:
    caller = threading.current_thread()
    assert call_watched(lambda: threading.current_thread() is caller, stall_s=0) is True


def test_the_calls_own_error_reaches_the_caller_unchanged() -> None:
    def fails() -> None:
        raise KeyError("engine said no")

    with pytest.raises(KeyError, match="engine said no"):
        call_watched(fails, stall_s=5)


def test_a_call_that_waits_without_cpu_is_a_stall_error_within_the_window() -> None:
    release = threading.Event()
    started = time.monotonic()
    try:
        with pytest.raises(EngineStalledError) as caught:
            call_watched(
                lambda: release.wait(30), stall_s=0.4, poll_s=0.05, what="fake generate (3 requests)"
            )
    finally:
        release.set()  # let the abandoned thread end
    waited = time.monotonic() - started
    assert 0.4 <= waited < 5
    assert isinstance(caught.value, BackendError)  # the CLI prints it as one line and exits non-zero
    message = str(caught.value)
    assert "fake generate (3 requests)" in message and "0.4 s" in message and "\n" not in message


def test_a_call_that_keeps_the_cpu_busy_is_waited_for_past_the_window() -> None:
    def busy() -> int:
        end, n = time.monotonic() + 1.2, 0
        while time.monotonic() < end:
            n += 1
        return n

    assert call_watched(busy, stall_s=0.3, poll_s=0.05, min_cpu_s=0.02) > 0


def test_progress_resets_the_window_and_only_a_quiet_stretch_counts() -> None:
    # A fake clock and CPU meter: the call "works" for 3 polls, then goes quiet for good.
    release = threading.Event()
    ticks = {"now": 0.0, "cpu": 0.0}

    def clock() -> float:
        ticks["now"] += 1.0
        if ticks["now"] <= 3:
            ticks["cpu"] += 1.0
        return ticks["now"]

    try:
        with pytest.raises(EngineStalledError):
            call_watched(
                lambda: release.wait(30), stall_s=4, poll_s=0.001, clock=clock, cpu=lambda: ticks["cpu"]
            )
    finally:
        release.set()
    assert ticks["now"] >= 3 + 4  # the quiet stretch counted from the last progress, not from the start
