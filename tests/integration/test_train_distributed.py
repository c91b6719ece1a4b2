"""SFT for a few steps in two CPU processes under ``accelerate launch`` (the scale-out path, small)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_sft_under_accelerate_launch_with_two_cpu_processes(tiny_model: Path, tmp_path: Path) -> None:
    data = tmp_path / "sft.jsonl"
    data.write_text(
        "".join(
            json.dumps(
                {
                    "messages": [
                        {"role": "user", "content": f"Which is better, {i}?"},
                        {"role": "assistant", "content": f"<answer>[[{'AB'[i % 2]}]]</answer>"},
                    ]
                }
            )
            + "\n"
            for i in range(16)
        )
    )
    out = tmp_path / "out"
    env = {
        **os.environ,
        "PYTHONPATH": SRC,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        # `--cpu --num_processes 2` starts ONE process without an MPI hostfile (accelerate's simple launcher);
        # the torchrun launcher gives two real ranks, which the recipe's use_cpu turns into MULTI_CPU/gloo.
        "--multi_gpu",
        "--main_process_port",
        str(_free_port()),
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "rmr1",
        "train",
        "sft",
        "--config",
        "tiny-cpu-sft",
        f"model={tiny_model}",
        f"dataset={data}",
        f"output_dir={out}",
        "max_steps=3",
        "global_batch_size=8",
        "per_device_batch_size=4",
        "learning_rate=1e-2",
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "trained 3 steps" in done.stdout
    assert done.stdout.count("trained 3 steps") == 1  # only the main process reports
    rows = [json.loads(line) for line in (out / "curves.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3]  # one process logs: no duplicated rows
    recipe = json.loads((out / "recipe.json").read_text())
    assert recipe["global_batch_size"] == 8
    assert recipe["num_processes"] == 2  # two real ranks, not one process with a 2-process config
    assert (out / "model.safetensors").is_file()
