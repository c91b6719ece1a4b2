"""`rmr1 train export --engine verl` without veRL: files, columns, dropped prompts, script, reward module.

veRL's own code checks the same output in tests/engines/test_verl.py (make test-engines).
"""

from __future__ import annotations

import importlib.util
import json
import shlex
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from test_train_reward import CASES, EOS
from typer.testing import CliRunner

from rmr1.cli import app
from rmr1.cli.failures import run
from rmr1.errors import ConfigError
from rmr1.train.config import GRPORecipe, load_recipe
from rmr1.train.export_verl import VerlOptions, export_verl, nodes_for
from rmr1.verdicts import rm_r1_reward


def write_prompts(path: Path, n: int = 12, long_every: int = 4) -> list[dict[str, Any]]:
    records = []
    for i in range(n):
        words = "word " * (600 if i % long_every == 0 else 5)
        prompt = [{"role": "system", "content": "Judge."}, {"role": "user", "content": f"Q{i}: {words}"}]
        winner = "model_a" if i % 2 == 0 else "model_b"
        records.append(
            {"id": f"q{i}", "prompt": prompt, "winner": winner, "source": "s", "multi_turn": False}
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return records


def load_module(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"exported_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def exported(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, list]:
    root = tmp_path_factory.mktemp("export")
    records = write_prompts(root / "rl.jsonl")
    args = [
        "--config",
        "qwen2.5-32b-instruct-grpo",
        "--data",
        str(root / "rl.jsonl"),
        "--out",
        str(root / "out"),
    ]
    overrides = [f"model={tiny_model}", "max_prompt_length=200", "--val-fraction", "0.25"]
    result = CliRunner().invoke(app, ["train", "export", *args, *overrides])
    assert result.exit_code == 0, result.output
    return root / "out", json.loads((root / "out" / "export.json").read_text()), records


def test_files_and_counts(exported: tuple[Path, Any, list]) -> None:
    out, summary, records = exported
    names = {"train.parquet", "val.parquet", "reward.py", "reward_manager.py", "run_grpo.sh", "README.md"}
    assert names <= {p.name for p in out.iterdir()}
    long_ones = sum(1 for i in range(len(records)) if i % 4 == 0)
    assert summary["dropped"] == long_ones and summary["length_check"] == "export"
    assert summary["train"] + summary["val"] == len(records) - long_ones
    assert summary["val"] == round((len(records) - long_ones) * 0.25)
    assert summary["stop_tokens"][0] == EOS


def test_parquet_rows_are_verl_rl_rows(exported: tuple[Path, Any, list]) -> None:
    out, summary, records = exported
    by_id = {r["id"]: r for r in records}
    for split in ("train", "val"):
        rows = pq.read_table(out / f"{split}.parquet").to_pylist()
        assert len(rows) == summary[split]
        for k, row in enumerate(rows):
            assert set(row) == {"data_source", "prompt", "ability", "reward_model", "extra_info"}
            source = by_id[row["extra_info"]["id"]]
            assert row["prompt"] == source["prompt"] and row["data_source"] == "rmr1/rm_r1"
            assert row["reward_model"] == {"style": "rule", "ground_truth": source["winner"]}
            assert row["extra_info"]["index"] == k and row["extra_info"]["split"] == split
    train_ids = {r["extra_info"]["id"] for r in pq.read_table(out / "train.parquet").to_pylist()}
    val_ids = {r["extra_info"]["id"] for r in pq.read_table(out / "val.parquet").to_pylist()}
    assert not train_ids & val_ids


def script_values(out: Path) -> dict[str, str]:
    text = (out / "run_grpo.sh").read_text(encoding="utf-8")
    assert "python3 -m verl.trainer.main_ppo" in text and text.rstrip().endswith('"$@"')
    body = text.split("python3 -m verl.trainer.main_ppo", 1)[1].replace('"$@"', "").replace("\\\n", " ")
    return dict(item.split("=", 1) for item in shlex.split(body.replace("$HERE", str(out))))


def test_script_maps_the_recipe(exported: tuple[Path, Any, list], tiny_model: Path) -> None:
    out, _, _ = exported
    values = script_values(out)
    expected = {
        "algorithm.adv_estimator": "grpo",
        "algorithm.use_kl_in_reward": "False",
        "actor_rollout_ref.rollout.n": "7",
        "actor_rollout_ref.actor.use_kl_loss": "True",
        "actor_rollout_ref.actor.kl_loss_type": "low_var_kl",
        "actor_rollout_ref.actor.kl_loss_coef": "0.001",
        "actor_rollout_ref.actor.optim.lr": "5e-07",
        "actor_rollout_ref.actor.clip_ratio_low": "0.2",
        "actor_rollout_ref.actor.entropy_coeff": "0.0",
        "actor_rollout_ref.actor.ppo_mini_batch_size": "128",
        "data.max_prompt_length": "200",
        "data.max_response_length": "8192",
        "data.train_batch_size": "1024",
        "data.filter_overlong_prompts": "True",
        "actor_rollout_ref.rollout.name": "vllm",
        "actor_rollout_ref.rollout.tensor_model_parallel_size": "4",
        "actor_rollout_ref.model.path": str(tiny_model),
        "reward.custom_reward_function.path": str(out / "reward.py"),
        "reward.custom_reward_function.name": "compute_score",
        "reward.reward_manager.module.path": str(out / "reward_manager.py"),
        "trainer.n_gpus_per_node": "8",
    }
    assert {k: values.get(k) for k in expected} == expected
    assert values["trainer.nnodes"] == "1"  # the tiny model's name says no size: the override did not either


def test_reward_module_is_the_paper_rule(exported: tuple[Path, Any, list]) -> None:
    out, _, _ = exported
    reward = load_module(out / "reward.py")
    kept = {reward.KEPT_FLAG: True}
    for text, winner, ended, paper, _ in CASES:
        decoded = text + (EOS if ended else "")  # what RmR1RewardManager hands over
        assert reward.compute_score("rmr1/rm_r1", decoded, winner, kept) == paper
        assert reward._embedded_rule(decoded, winner, truncated=not ended) == paper
        # veRL's stock decoding drops the end-of-turn token; it is put back for the window
        if ended:
            assert reward.compute_score("rmr1/rm_r1", text, winner, {}) == paper
    assert reward._rule is rm_r1_reward  # rmr1 installed: the one rule is used


def test_reward_module_runs_without_rmr1(exported: tuple[Path, Any, list], monkeypatch) -> None:
    import builtins

    out, _, _ = exported
    real_import = builtins.__import__

    def no_rmr1(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("rmr1"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_rmr1)
    reward = load_module(out / "reward.py")
    assert reward._rule is reward._embedded_rule
    assert reward.compute_score("s", "ok <answer>[[B]]</answer>", "model_b") == 1.0


def test_without_a_tokenizer_verl_filters_and_the_family_gives_the_token(tmp_path: Path) -> None:
    write_prompts(tmp_path / "rl.jsonl")
    model = "not-cached/DeepSeek-R1-Distill-Qwen-14B"
    recipe = load_recipe(
        GRPORecipe,
        "deepseek-r1-distill-qwen-14b-grpo",
        [f"model={model}"],
        dataset=str(tmp_path / "rl.jsonl"),
    )
    result = export_verl(recipe, tmp_path / "out", VerlOptions(val_fraction=0.1))
    assert result.length_check == "verl" and result.dropped == 0 and result.train + result.val == 12
    assert result.stop_tokens == ("<｜end▁of▁sentence｜>",)
    assert script_values(tmp_path / "out")["trainer.nnodes"] == "2"  # the paper's 14B cluster
    assert "END_OF_TURN = '<｜end▁of▁sentence｜>'" in (tmp_path / "out" / "reward.py").read_text(
        encoding="utf-8"
    )


def test_unknown_model_family_needs_an_end_of_turn(tmp_path: Path) -> None:
    write_prompts(tmp_path / "rl.jsonl")
    recipe = load_recipe(
        GRPORecipe, "tiny-cpu-grpo", ["model=acme/judge-7b"], dataset=str(tmp_path / "rl.jsonl")
    )
    with pytest.raises(ConfigError, match="end-of-turn"):
        export_verl(recipe, tmp_path / "a")
    result = export_verl(recipe, tmp_path / "b", VerlOptions(end_of_turn="</s>"))
    assert result.stop_tokens == ("</s>",)


def test_keys_veRL_cannot_take_are_named_in_the_notes(tmp_path: Path) -> None:
    write_prompts(tmp_path / "rl.jsonl")
    overrides = [
        "model=acme/judge-7b",
        "advantage_group=pair",
        "reward=consistent",
        "rollout_batch_prompts=2",
    ]
    recipe = load_recipe(GRPORecipe, "tiny-cpu-grpo", overrides, dataset=str(tmp_path / "rl.jsonl"))
    result = export_verl(recipe, tmp_path / "out", VerlOptions(end_of_turn="</s>"))
    assert any("advantage_group=pair is not carried over" in note for note in result.notes)
    assert any("reward=consistent is not carried over" in note for note in result.notes)
    plain = load_recipe(
        GRPORecipe, "tiny-cpu-grpo", ["model=acme/judge-7b"], dataset=str(tmp_path / "rl.jsonl")
    )
    notes = export_verl(plain, tmp_path / "b", VerlOptions(end_of_turn="</s>")).notes
    assert not any("carried over" in note for note in notes)


def test_nodes_follow_the_model_size() -> None:
    assert [nodes_for(m) for m in ("Qwen/Qwen2.5-7B-Instruct", "runs/qwen2.5-14b-sft", "x-32B", "tiny")] == [
        1,
        2,
        4,
        1,
    ]


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_prompts(tmp_path / "rl.jsonl")
    base = ["train", "export", "--config", "tiny-cpu-grpo", "--data", str(tmp_path / "rl.jsonl")]
    assert run(app, [*base, "--out", str(tmp_path / "o"), "--engine", "torchtitan"]) == 2
    assert run(app, [*base, "--out", str(tmp_path / "o"), "no_such_key=1"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and "only verl" in errors[0] and "no_such_key" in errors[1]
    assert not (tmp_path / "o").exists()
