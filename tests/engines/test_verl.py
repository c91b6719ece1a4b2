"""veRL's and OpenRLHF's own code judge our export: dataset loader, Hydra config, reward manager, RM client.

Runs in the engine virtualenv (``make test-engines``), with rmr1 on PYTHONPATH and RMR1_TOKENIZER pointing at
a local checkpoint (the embedded SmolLM2, whose end-of-turn token is ``<|im_end|>``).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shlex
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch

verl = pytest.importorskip("verl", reason="the engine venv (make test-engines) has veRL")
TOKENIZER = os.environ.get("RMR1_TOKENIZER", "")
pytestmark = pytest.mark.skipif(not TOKENIZER, reason="set RMR1_TOKENIZER to a local checkpoint")
UNIT = Path(__file__).resolve().parents[1] / "unit"
MAX_PROMPT = 256


def _load(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def judge_records(n: int = 24) -> list[dict[str, Any]]:
    """Judge prompts, every fourth one far longer than MAX_PROMPT tokens."""
    out = []
    for i in range(n):
        body = "Compare the two answers. " + ("The answer goes on and on. " * (120 if i % 4 == 0 else 3))
        prompt = [{"role": "system", "content": "You are a fair judge."}, {"role": "user", "content": body}]
        winner = "model_a" if i % 2 == 0 else "model_b"
        out.append({"id": f"q{i}", "prompt": prompt, "winner": winner, "source": "t", "multi_turn": False})
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from rmr1.train.config import GRPORecipe, load_recipe
    from rmr1.train.export_verl import VerlOptions, export_verl, write_parquet

    root = tmp_path_factory.mktemp("verl")
    data = root / "rl.jsonl"
    records = judge_records()
    data.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    overrides = [f"model={TOKENIZER}", f"max_prompt_length={MAX_PROMPT}", f"dataset={data}"]
    recipe = load_recipe(GRPORecipe, "qwen2.5-7b-instruct-grpo", overrides)
    result = export_verl(recipe, root / "out", VerlOptions(nnodes=1, val_fraction=0.1))
    write_parquet(records, "train", root / "all.parquet")  # nothing dropped: for veRL's own filter
    return {"result": result, "out": root / "out", "all": root / "all.parquet", "records": records}


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(TOKENIZER)


def script_overrides(out: Path) -> list[str]:
    """The Hydra overrides run_grpo.sh passes, as bash would split them."""
    text = (out / "run_grpo.sh").read_text(encoding="utf-8")
    body = text.split("python3 -m verl.trainer.main_ppo", 1)[1].replace('"$@"', "")
    return shlex.split(body.replace("$HERE", str(out)).replace("\\\n", " "))


def compose(overrides: list[str]) -> Any:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    config_dir = Path(verl.__file__).parent / "trainer" / "config"
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        return hydra_compose(config_name="ppo_trainer", overrides=overrides)


def test_config_composes_and_validates(exported: dict[str, Any]) -> None:
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    overrides = script_overrides(exported["out"])
    assert len(overrides) == len(exported["result"].overrides)
    cfg = compose(overrides)
    validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
    actor, rollout = cfg.actor_rollout_ref.actor, cfg.actor_rollout_ref.rollout
    assert cfg.algorithm.adv_estimator == "grpo" and cfg.algorithm.use_kl_in_reward is False
    assert (actor.use_kl_loss, actor.kl_loss_type, actor.kl_loss_coef) == (True, "low_var_kl", 0.001)
    assert (actor.clip_ratio_low, actor.clip_ratio_high, actor.entropy_coeff) == (0.2, 0.2, 0)
    assert (actor.optim.lr, actor.ppo_mini_batch_size, actor.ppo_epochs) == (1e-6, 128, 1)
    assert (rollout.n, rollout.name, rollout.tensor_model_parallel_size, rollout.temperature) == (
        7,
        "vllm",
        4,
        1,
    )
    assert (cfg.data.max_prompt_length, cfg.data.max_response_length) == (MAX_PROMPT, 8192)
    assert (cfg.data.train_batch_size, cfg.trainer.nnodes, cfg.trainer.n_gpus_per_node) == (1024, 1, 8)
    assert need_reference_policy(cfg) and not need_critic(cfg)  # KL loss needs the reference model
    assert Path(cfg.reward.custom_reward_function.path).is_file()


def test_an_unknown_key_fails_composition(exported: dict[str, Any]) -> None:
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException):
        compose([*script_overrides(exported["out"]), "actor_rollout_ref.actor.kl_loss_coeff=0.001"])


def test_rl_dataset_loads_and_filters_like_the_export(exported: dict[str, Any], tokenizer: Any) -> None:
    from verl.utils.dataset.rl_dataset import RLHFDataset

    cfg = compose(script_overrides(exported["out"]))
    result = exported["result"]
    train = RLHFDataset([str(exported["out"] / "train.parquet")], tokenizer, cfg.data)
    assert len(train) == result.train and result.dropped > 0  # veRL's filter finds nothing more to drop
    # veRL's own filter, on every prompt, drops exactly what the export dropped
    everything = RLHFDataset([str(exported["all"])], tokenizer, cfg.data)
    assert len(everything) == len(exported["records"]) - result.dropped
    item = train[0]
    kept = {r["id"]: r for r in exported["records"]}[item["extra_info"]["id"]]
    assert list(item["raw_prompt"]) == kept["prompt"]
    assert item["reward_model"]["ground_truth"] == kept["winner"] and item["data_source"] == "rmr1/rm_r1"
    ids = tokenizer.apply_chat_template(item["raw_prompt"], add_generation_prompt=True, tokenize=True)
    ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
    assert 0 < len(ids) <= MAX_PROMPT


def _item(tokenizer: Any, text: str, winner: str, ended: bool) -> Any:
    """One rollout as veRL's agent loop hands it over: left-padded prompt, right-padded response."""
    from verl import DataProto

    prompt = tokenizer("Judge this.", add_special_tokens=False)["input_ids"]
    response = tokenizer(text, add_special_tokens=False)["input_ids"]
    if ended:  # vLLM's output ids end with the stop token
        response = [*response, tokenizer.convert_tokens_to_ids("<|im_end|>")]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    p_len, r_len = len(prompt) + 3, len(response) + 5
    prompts = [pad] * (p_len - len(prompt)) + prompt
    responses = response + [pad] * (r_len - len(response))
    mask = [0] * (p_len - len(prompt)) + [1] * (len(prompt) + len(response)) + [0] * (r_len - len(response))
    tensors = {
        "prompts": torch.tensor([prompts]),
        "responses": torch.tensor([responses]),
        "attention_mask": torch.tensor([mask]),
    }
    non_tensors = {
        "data_source": np.array(["rmr1/rm_r1"], dtype=object),
        "reward_model": np.array([{"style": "rule", "ground_truth": winner}], dtype=object),
        "extra_info": np.array([{"index": 0, "split": "train"}], dtype=object),
    }
    return DataProto.from_dict(tensors=tensors, non_tensors=non_tensors)


def _manager(exported: dict[str, Any], tokenizer: Any, extra: list[str]) -> Any:
    from verl.trainer.ppo.reward import load_reward_manager

    return load_reward_manager(compose([*script_overrides(exported["out"]), *extra]), tokenizer)


def _score(manager: Any, data: Any) -> float:
    return float(manager.loop.run_until_complete(manager.run_single(data))["reward_score"])


def test_reward_manager_matches_the_case_table(exported: dict[str, Any], tokenizer: Any) -> None:
    cases = _load(UNIT / "test_train_reward.py", "reward_cases").CASES
    manager = _manager(exported, tokenizer, [])
    assert type(manager).__name__ == "RmR1RewardManager"
    for text, winner, ended, paper, _strict in cases:
        assert _score(manager, _item(tokenizer, text, winner, ended)) == paper, (text, ended)


def test_stock_manager_keeps_the_window_but_cannot_see_truncation(
    exported: dict[str, Any], tokenizer: Any
) -> None:
    cases = _load(UNIT / "test_train_reward.py", "reward_cases").CASES
    from rmr1.verdicts import rm_r1_reward

    register = ["reward.reward_manager.source=register", "reward.reward_manager.name=naive"]
    stock = _manager(exported, tokenizer, register)
    assert type(stock).__name__ == "NaiveRewardManager"
    for text, winner, ended, paper, _strict in cases:
        got = _score(stock, _item(tokenizer, text, winner, ended))
        # with the end-of-turn token put back, the 80-character window is the paper's (the 48/49 cases);
        # a truncated response reads as finished (documented in reward.py)
        assert got == (paper if ended else rm_r1_reward(text + "<|im_end|>", winner)), (text, ended)


def test_openrlhf_remote_rm_client_gets_rewards_from_rmr1_serve() -> None:
    from openrlhf.utils.agent import SingleTurnAgentExecutor

    from rmr1.serve.process import ServerProcess

    prompt = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    responses = ["4<|im_end|>", "5<|im_end|>", "four<|im_end|>"]
    queries = [prompt + r for r in responses]
    with ServerProcess.start(["--backend", "mock", "--model", "always-a", "--template", "plain"]) as server:
        url = f"{server.url}/get_reward"
        client = SingleTurnAgentExecutor(remote_rm_url=url)
        answers = asyncio.run(client._fetch_rewards_via_http(queries, [prompt] * 3, ["4"] * 3))
        direct = httpx.post(url, json={"query": queries, "prompts": [prompt] * 3, "labels": ["4"] * 3}).json()
    assert len(answers) == 1 and answers[0]["rewards"] == direct["rewards"]
    rewards = answers[0]["rewards"]
    assert len(rewards) == 3 and all(-1.0 <= r <= 1.0 for r in rewards)
    assert answers[0]["scores"] == [(r + 1) / 2 for r in rewards]
