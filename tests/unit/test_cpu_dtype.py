"""``--dtype auto`` on a CPU: measured once per machine key, cached in $RMR1_HOME, overridable. No timing asserts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from rmr1.backends import cpu_dtype
from rmr1.backends.cpu_dtype import ENV_OVERRIDE, Measurement, auto_cpu_dtype
from rmr1.errors import ConfigError

FAST_BF16 = Measurement(bf16_s=0.001, f32_s=0.003, rel_error=0.004)
SLOW_BF16 = Measurement(bf16_s=0.004, f32_s=0.003, rel_error=0.004)


class Probe:
    """A measurement stand-in that counts how often it was asked."""

    def __init__(self, result: Measurement) -> None:
        self.result, self.calls = result, 0

    def __call__(self) -> Measurement:
        self.calls += 1
        return self.result


@pytest.fixture(autouse=True)
def _bf16_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_OVERRIDE, raising=False)
    monkeypatch.setattr(cpu_dtype, "_cpu_info", lambda: ("Test CPU 9000", True))


@pytest.mark.parametrize(
    ("measured", "expected"),
    [
        (FAST_BF16, "bfloat16"),
        (SLOW_BF16, "float32"),
        # 5% faster is within noise on a shared machine: float32 keeps the tie
        (Measurement(bf16_s=0.00095, f32_s=0.001, rel_error=0.004), "float32"),
        # fast but wrong numbers (a broken kernel path) never wins
        (Measurement(bf16_s=0.001, f32_s=0.003, rel_error=0.5), "float32"),
        (Measurement(bf16_s=0.001, f32_s=0.003, rel_error=math.inf), "float32"),
    ],
)
def test_choice_needs_a_clear_and_sound_win(measured: Measurement, expected: str) -> None:
    assert measured.choice() == expected


@pytest.mark.parametrize("measured", [FAST_BF16, SLOW_BF16])
def test_measures_once_then_reuses_the_cache(tmp_path: Path, measured: Measurement) -> None:
    cache, probe = tmp_path / "cpu-dtype.json", Probe(measured)
    first = auto_cpu_dtype(measure_fn=probe, cache=cache, key="k1")
    again = auto_cpu_dtype(measure_fn=probe, cache=cache, key="k1")
    assert first == again == measured.choice() and probe.calls == 1
    stored = json.loads(cache.read_text())["k1"]
    assert stored["dtype"] == measured.choice() and stored["bf16_s"] == measured.bf16_s


def test_a_new_key_measures_again_and_keeps_the_old_entry(tmp_path: Path) -> None:
    cache = tmp_path / "cpu-dtype.json"
    assert auto_cpu_dtype(measure_fn=Probe(FAST_BF16), cache=cache, key="amd") == "bfloat16"
    probe = Probe(SLOW_BF16)
    assert auto_cpu_dtype(measure_fn=probe, cache=cache, key="intel") == "float32"
    assert probe.calls == 1 and set(json.loads(cache.read_text())) == {"amd", "intel"}


def test_a_damaged_cache_is_measured_again_and_rewritten(tmp_path: Path) -> None:
    cache = tmp_path / "cpu-dtype.json"
    cache.write_text("{not json")
    probe = Probe(FAST_BF16)
    assert auto_cpu_dtype(measure_fn=probe, cache=cache, key="k") == "bfloat16" and probe.calls == 1
    assert json.loads(cache.read_text())["k"]["dtype"] == "bfloat16"


def test_cache_defaults_to_rmr1_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RMR1_HOME", str(tmp_path))
    auto_cpu_dtype(measure_fn=Probe(SLOW_BF16), key="k")
    assert json.loads((tmp_path / "cpu-dtype.json").read_text())["k"]["dtype"] == "float32"


def test_an_unwritable_cache_still_answers(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")  # a file where the cache folder should be
    assert (
        auto_cpu_dtype(measure_fn=Probe(FAST_BF16), cache=blocker / "cpu-dtype.json", key="k") == "bfloat16"
    )


@pytest.mark.parametrize("value", ["float32", "bfloat16"])
def test_env_override_skips_the_measurement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(ENV_OVERRIDE, value)
    probe = Probe(FAST_BF16)
    assert auto_cpu_dtype(measure_fn=probe, cache=tmp_path / "c.json", key="k") == value
    assert probe.calls == 0 and not (tmp_path / "c.json").exists()


def test_bad_env_override_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_OVERRIDE, "fp8")
    with pytest.raises(ConfigError, match=f"{ENV_OVERRIDE}='fp8'") as info:
        auto_cpu_dtype(measure_fn=Probe(FAST_BF16))
    assert "\n" not in str(info.value)


def test_cpu_without_bf16_flags_is_float32_unmeasured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cpu_dtype, "_cpu_info", lambda: ("Old CPU", False))
    probe = Probe(FAST_BF16)
    assert auto_cpu_dtype(measure_fn=probe, cache=tmp_path / "c.json", key="k") == "float32"
    assert probe.calls == 0


def test_machine_key_follows_cpu_torch_and_threads() -> None:
    import torch

    threads = torch.get_num_threads()
    key = cpu_dtype.machine_key()
    assert "Test CPU 9000" in key and torch.__version__ in key
    try:
        torch.set_num_threads(threads + 1)
        assert cpu_dtype.machine_key() != key
    finally:
        torch.set_num_threads(threads)


def test_real_measurement_is_sane() -> None:
    import torch

    threads = torch.get_num_threads()
    found = cpu_dtype.measure(reps=1)
    assert torch.get_num_threads() == threads  # the probe runs on one thread and gives the others back
    assert found.bf16_s > 0 and found.f32_s > 0
    assert found.rel_error < 0.05  # bf16 keeps ~3 significant digits on this block on every CPU we know


def test_hf_pick_dtype_auto_on_cpu_uses_the_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from rmr1.backends.hf import _pick_dtype

    monkeypatch.setenv(ENV_OVERRIDE, "float32")
    assert _pick_dtype("auto", "cpu") is torch.float32
    monkeypatch.setenv(ENV_OVERRIDE, "bfloat16")
    assert _pick_dtype("auto", "cpu") is torch.bfloat16
    assert _pick_dtype("float32", "cpu") is torch.float32  # an explicit --dtype wins over the env
