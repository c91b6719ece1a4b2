"""TRL rewards on two CPU processes under ``accelerate launch``: groups split across ranks are judged whole
and every rank gets the rewards of its own completions (a scripted judge, a tiny policy, two GRPO steps).

``accelerate launch --cpu --num_processes 2`` starts ONE process unless an MPI hostfile is given (accelerate's
simple launcher); two real CPU ranks come from its torchrun launcher (``--multi_gpu``) with the trainer's
``use_cpu=True``, which makes accelerate pick MULTI_CPU over gloo. The script checks it got two ranks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("grpo_two_ranks.py")


def rows(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def expected_rewards(prompts: list[str], completions: list[str]) -> list[float]:
    """The rewards of the whole batch scored in one process, the way a single-GPU run would score it."""
    sys.path.insert(0, str(SCRIPT.parent))
    from grpo_two_ranks import longer_wins

    from rmr1.backends.mock import MockBackend
    from rmr1.judge import Judge, JudgeConfig
    from rmr1.rewards import JudgeReward

    judge = Judge(MockBackend(script=longer_wins), "plain", JudgeConfig(max_new_tokens=8))
    return [float(r) for r in JudgeReward(judge, num_generations=2)(prompts, completions)]  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_split_groups_are_scored_whole_on_two_processes(tiny_model: Path, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'src'}",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(free_port()), str(SCRIPT), str(tiny_model), str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rank 0 of 2 trained 2 steps" in done.stdout and "rank 1 of 2 trained 2 steps" in done.stdout
    for kind in ("sync", "async"):
        calls = [rows(tmp_path / f"calls-{kind}-{rank}.jsonl") for rank in (0, 1)]
        assert len(calls[0]) == len(calls[1]) == 2  # one call per step on each rank
        for first, second in zip(*calls, strict=True):
            assert len(first["prompts"]) == len(second["prompts"]) == 3
            prompts, completions = (
                first["prompts"] + second["prompts"],
                first["completions"] + second["completions"],
            )
            # TRL's layout: 3 groups of 2 consecutive completions, the middle one split across the ranks
            assert prompts[2] == prompts[3] and len(set(prompts)) == 3
            want = expected_rewards(prompts, completions)
            assert first["rewards"] + second["rewards"] == pytest.approx(want)
        # each group judged exactly once, whole, by one of the ranks
        scored = [
            g for rank in (0, 1) for call in rows(tmp_path / f"scored-{kind}-{rank}.jsonl") for g in call
        ]
        assert len(scored) == 2 * 3 and all(len(responses) == 2 for _, responses in scored)
        batch = [
            (p, c)
            for call in zip(*calls, strict=True)
            for part in call
            for p, c in zip(part["prompts"], part["completions"], strict=True)
        ]
        assert sorted((p, tuple(r)) for p, r in scored) == sorted(
            (batch[k][0], (batch[k][1], batch[k + 1][1])) for k in range(0, len(batch), 2)
        )
