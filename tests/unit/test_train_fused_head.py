"""TRL's fused LM head on CPU after rmr1.train.fused_head: it projects only the labelled positions, and the
log-probabilities, entropies and gradients are those of the full projection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trl")


@pytest.fixture
def trl_utils(monkeypatch: pytest.MonkeyPatch) -> Any:
    """TRL's trainer utilities, with whatever the test does to ``_use_triton`` undone afterwards."""
    import trl.trainer.utils as utils

    monkeypatch.setattr(utils, "_use_triton", utils._use_triton)
    return utils


def _rows_projected(monkeypatch: pytest.MonkeyPatch, utils: Any) -> list[int]:
    """Record how many rows each call of TRL's chunked log-prob function projects."""
    kernel = utils._ChunkedLogProbFunction
    real_apply = kernel.apply
    rows: list[int] = []

    def counting_apply(hidden: Any, *args: Any) -> Any:
        rows.append(int(hidden.shape[0]))
        return real_apply(hidden, *args)

    monkeypatch.setattr(kernel, "apply", counting_apply)
    return rows


def _fused_pass(model: Any, ids: Any, labels: Any) -> tuple[Any, Any, Any]:
    """log-probs, entropies and the input embeddings' gradient of one fused forward and backward."""
    model.zero_grad()
    out = model(input_ids=ids, labels=labels, fused_lm_head=True)
    out.loss.backward()
    grad = model.get_input_embeddings().weight.grad.clone()
    return out.log_probs.detach(), out.entropy.detach(), grad


def test_cpu_projects_only_labelled_positions_with_the_same_numbers(
    tiny_model: Path, trl_utils: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from rmr1.train.fused_head import compact_on_cpu

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    trl_utils.add_fused_lm_head(model, outputs=("log_probs", "entropy"))
    ids = torch.randint(3, 100, (3, 12))
    labels = ids.clone()
    labels[:, :7] = -100  # a prompt of 7 tokens
    labels[2, 10:] = -100  # and padding after a shorter completion
    labelled = int((labels[:, 1:] != -100).sum())
    rows = _rows_projected(monkeypatch, trl_utils)

    full = _fused_pass(model, ids, labels)
    assert rows == [3 * 11]  # TRL on CPU: every position
    assert compact_on_cpu() is True
    compact = _fused_pass(model, ids, labels)
    assert rows[1:] == [labelled]  # now only the labelled ones
    for before, after in zip(full, compact, strict=True):
        torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-6)
    assert (compact[0][labels[:, 1:] == -100] == 0).all()  # masked positions still read zero


def test_idempotent_and_other_devices_keep_trl_choice(trl_utils: Any) -> None:
    import torch

    from rmr1.train.fused_head import compact_on_cpu

    original = trl_utils._use_triton
    assert compact_on_cpu() is True
    wrapped = trl_utils._use_triton
    assert compact_on_cpu() is True
    assert trl_utils._use_triton is wrapped  # not wrapped twice
    assert wrapped(torch.device("cpu")) is True
    assert wrapped(torch.device("meta")) is original(torch.device("meta"))


def test_nothing_changes_when_trl_picks_the_path_another_way(
    trl_utils: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rmr1.train import fused_head

    original = trl_utils._use_triton
    monkeypatch.setattr(fused_head, "_DECISION", "compact = some_other_rule(")
    assert fused_head.compact_on_cpu() is False
    assert trl_utils._use_triton is original
