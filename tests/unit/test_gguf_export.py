"""Writing a transformers checkpoint as GGUF (rmr1.backends.gguf_export): names, rotary layout, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rmr1.backends.gguf_export import export_gguf, gguf_name, to_rotary_layout
from rmr1.errors import ModelLoadError


@pytest.mark.parametrize(
    ("hf", "gguf"),
    [
        ("model.embed_tokens.weight", "token_embd.weight"),
        ("model.norm.weight", "output_norm.weight"),
        ("lm_head.weight", "output.weight"),
        ("model.layers.0.self_attn.q_proj.weight", "blk.0.attn_q.weight"),
        ("model.layers.29.mlp.down_proj.weight", "blk.29.ffn_down.weight"),
        ("model.layers.3.post_attention_layernorm.weight", "blk.3.ffn_norm.weight"),
        ("model.layers.3.self_attn.rotary_emb.inv_freq", None),  # recomputed from the config, not stored
    ],
)
def test_tensor_names(hf: str, gguf: str | None) -> None:
    assert gguf_name(hf) == gguf


@pytest.mark.parametrize(("heads", "kv_heads"), [(9, 3), (4, 4)])
def test_the_rotary_layout_is_what_transformers_undoes_on_load(heads: int, kv_heads: int) -> None:
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    head_dim, hidden = 8, 24
    undo = LlamaTensorProcessor({"num_attention_heads": heads, "num_key_value_heads": kv_heads})
    rng = np.random.default_rng(0)
    q = rng.standard_normal((heads * head_dim, hidden)).astype(np.float32)
    k = rng.standard_normal((kv_heads * head_dim, hidden)).astype(np.float32)
    q_back = undo.process(to_rotary_layout(q, heads), "blk.0.attn_q.weight").weights
    k_back = undo.process(to_rotary_layout(k, kv_heads), "blk.0.attn_k.weight").weights
    assert np.array_equal(q_back, q) and np.array_equal(k_back, k)
    assert not np.array_equal(to_rotary_layout(q, heads), q)  # it does move rows


def test_other_families_and_other_vocabularies_are_refused(tmp_path: Path, tiny_model: Path) -> None:
    from rmr1.models import embedded_gguf

    qwen = tmp_path / "qwen"
    qwen.mkdir()
    (qwen / "config.json").write_text(json.dumps({"model_type": "qwen2"}), encoding="utf-8")
    with pytest.raises(ModelLoadError, match=r"llama-family checkpoints only.*convert_hf_to_gguf"):
        export_gguf(qwen, tmp_path / "q.gguf", embedded_gguf())
    # The tiny test model is a llama with its own small vocabulary: not the embedded model's tokenizer.
    with pytest.raises(ModelLoadError, match="vocabulary is not the one of"):
        export_gguf(tiny_model, tmp_path / "t.gguf", embedded_gguf())
