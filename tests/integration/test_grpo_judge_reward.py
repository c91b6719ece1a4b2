"""A real (tiny) GRPO run whose reward comes from an rmr1 judge: in process, and through `rmr1 serve`."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from rmr1.backends import make_backend
from rmr1.judge import Judge, JudgeConfig
from rmr1.serve.process import ServerProcess
from rmr1.types import Completion, GenerationRequest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
pytestmark = pytest.mark.slow


def load_example(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"rmr1_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Counted:
    """Counts the requests reaching a real backend."""

    def __init__(self, backend: Any) -> None:
        self.backend, self.requests = backend, 0

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        self.requests += len(requests)
        return self.backend.generate(requests)


def rewards_logged(trainer: Any) -> list[float]:
    return [row["reward"] for row in trainer.state.log_history if "reward" in row]


def test_grpo_with_an_in_process_judge(tiny_model: Path, tmp_path: Path) -> None:
    from rmr1.rewards import JudgeReward

    example = load_example("trl_grpo_judge")
    backend = Counted(make_backend("hf", str(tiny_model), dtype="float32"))
    judge = Judge(backend, "plain", JudgeConfig(max_new_tokens=8))  # too short to finish a verdict: draws
    reward = JudgeReward(judge, method="round_robin", num_generations=2)
    trainer = example.train(str(tiny_model), [reward], str(tmp_path / "out"), max_steps=2)
    assert trainer.state.global_step == 2
    # 2 steps x 2 prompts x one comparison per group of 2, less any walkover (an empty completion)
    assert 0 < backend.requests <= 2 * 2
    logged = rewards_logged(trainer)
    assert logged and all(math.isfinite(r) and -1.0 <= r <= 1.0 for r in logged)


def test_grpo_through_the_server(tiny_model: Path, tmp_path: Path, live_server: str) -> None:
    example = load_example("trl_grpo_judge")
    openrlhf = load_example("openrlhf_reward_func")
    trl_reward = example.make_reward(judge_url=live_server, method="reference", num_generations=2)

    def openrlhf_shaped(prompts: list[str], completions: list[str], **_: Any) -> list[float]:
        # The OpenRLHF reward file as a TRL reward: its request goes to /get_reward.
        out = openrlhf.reward_func([p + c for p, c in zip(prompts, completions, strict=True)], prompts, None)
        return [float(x) for x in out["rewards"]]

    before = httpx.get(f"{live_server}/health").json()["batcher"]["requests"]
    trainer = example.train(
        str(tiny_model), [trl_reward, openrlhf_shaped], str(tmp_path / "out"), max_steps=2
    )
    assert trainer.state.global_step == 2
    after = httpx.get(f"{live_server}/health").json()["batcher"]["requests"]
    # Per step: 4 completions against their references + 2 round-robin comparisons (2 prompts x pairs of 2),
    # less any walkover (an empty completion is not sent to the judge).
    assert 0 < after - before <= 2 * (4 + 2)
    assert all(math.isfinite(r) for r in rewards_logged(trainer))


@pytest.fixture
def live_server(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    args = ["--model", str(tiny_model), "--max-new-tokens", "8", "--template", "plain", "--dtype", "float32"]
    with ServerProcess.start(args) as server:
        monkeypatch.setenv("RMR1_URL", server.url)
        yield server.url
