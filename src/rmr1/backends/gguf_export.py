"""A transformers checkpoint of a llama-family model written as a GGUF file, for the engines that read GGUF.

The fast CPU engine (OpenVINO GenAI) builds its model from a GGUF file. The embedded model arrives as one; a
judge trained from it (``rmr1 train sft|grpo``, ``rmr1 demo``) is saved as a transformers checkpoint. This
module writes such a checkpoint back as GGUF so the same engine can judge with it:

- tensors are renamed to GGUF's names (``model.layers.3.self_attn.q_proj.weight`` -> ``blk.3.attn_q.weight``),
  matrices stored as fp16, norm weights as f32 (as llama.cpp's own converter writes them);
- the query and key projections are re-ordered into GGUF's rotary layout (the inverse of the permutation
  transformers undoes when it loads a GGUF file), so a checkpoint de-quantized from a GGUF and exported again
  gives back the very same tensors;
- the tokenizer and the rest of the metadata come from a GGUF of the same family (the embedded model's), after
  checking that the checkpoint's vocabulary is token for token the same: a trained judge keeps its base
  model's tokenizer, and a checkpoint with another vocabulary is refused rather than silently mis-tokenized.
  The architecture fields are written from the checkpoint's own config.

Other families (Qwen, Mistral...) are converted by llama.cpp's ``convert_hf_to_gguf.py``; the file it writes is
accepted as ``--model`` directly.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

from rmr1.errors import ModelLoadError
from rmr1.models import FileKey, file_key

_TOP = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}
_LAYER = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
_LAYER_NAME = re.compile(r"model\.layers\.(\d+)\.(.+)")
_MARKERS = re.compile(r"\{%-?\s*(end)?generation\s*-?%\}")


def gguf_name(hf_name: str) -> str | None:
    """GGUF's name for a transformers tensor name, or None for one GGUF does not store."""
    if hf_name in _TOP:
        return _TOP[hf_name]
    found = _LAYER_NAME.fullmatch(hf_name)
    if found and found.group(2) in _LAYER:
        return f"blk.{found.group(1)}.{_LAYER[found.group(2)]}"
    return None


def to_rotary_layout(weights: Any, heads: int) -> Any:
    """Rows of a q/k projection from transformers' half-split rotary order into GGUF's interleaved one."""
    rows = weights.shape[0]
    return (
        weights.reshape(heads, 2, rows // heads // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def _config(checkpoint: Path) -> dict[str, Any]:
    try:
        config: dict[str, Any] = json.loads((checkpoint / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{checkpoint}: no readable config.json ({exc})") from None
    if config.get("model_type") != "llama":
        raise ModelLoadError(
            f"{checkpoint}: rmr1 writes GGUF for llama-family checkpoints only (this one is "
            f"{config.get('model_type')!r}); convert it with llama.cpp's convert_hf_to_gguf.py and pass the .gguf"
        )
    return config


def _arch_fields(config: dict[str, Any]) -> dict[str, Any]:
    heads = int(config["num_attention_heads"])
    hidden = int(config["hidden_size"])
    rope = config.get("rope_parameters") or {}
    theta = config.get("rope_theta") or rope.get("rope_theta") or 10000.0
    return {
        "llama.block_count": int(config["num_hidden_layers"]),
        "llama.context_length": int(config.get("max_position_embeddings") or 2048),
        "llama.embedding_length": hidden,
        "llama.feed_forward_length": int(config["intermediate_size"]),
        "llama.attention.head_count": heads,
        "llama.attention.head_count_kv": int(config.get("num_key_value_heads") or heads),
        "llama.rope.freq_base": float(theta),
        "llama.attention.layer_norm_rms_epsilon": float(config.get("rms_norm_eps") or 1e-6),
        "llama.vocab_size": int(config["vocab_size"]),
        "llama.rope.dimension_count": int(config.get("head_dim") or hidden // heads),
    }


def _source_tokens(source: Path) -> tuple[str, ...]:
    """The source GGUF's vocabulary in id order, read once per process while the file is unchanged (every
    evaluation of a trained checkpoint checks against it, twice under ``auto``)."""
    return _tokens(file_key(source))


@functools.lru_cache(maxsize=8)
def _tokens(key: FileKey) -> tuple[str, ...]:
    from rmr1.backends.gguf_meta import read_metadata

    field = "tokenizer.ggml.tokens"
    tokens = read_metadata(key[0], arrays={field}).get(field)
    if not isinstance(tokens, list):
        raise ModelLoadError(f"{key[0]}: the GGUF file has no {field} array to check a vocabulary against")
    return tuple(str(t) for t in tokens)


def _check_vocabulary(checkpoint: Path, theirs: tuple[str, ...], source: Path) -> None:
    """The checkpoint's tokens, in id order, must be the source GGUF's."""
    try:
        data = json.loads((checkpoint / "tokenizer.json").read_text(encoding="utf-8"))
        vocab: dict[str, int] = data["model"]["vocab"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ModelLoadError(f"{checkpoint}: no tokenizer.json with a BPE vocabulary to check") from None
    ours = tuple(token for token, _ in sorted(vocab.items(), key=lambda kv: kv[1]))
    if ours != theirs[: len(ours)] or len(theirs) - len(ours) > len(data.get("added_tokens") or ()):
        raise ModelLoadError(
            f"{checkpoint}: its vocabulary is not the one of {source.name}; convert it with llama.cpp's "
            "convert_hf_to_gguf.py and pass the .gguf"
        )


def _chat_template(checkpoint: Path) -> str | None:
    """The checkpoint's chat template without TRL's ``{% generation %}`` markers (they only mark the loss)."""
    jinja = checkpoint / "chat_template.jinja"
    template: str | None = None
    if jinja.is_file():
        template = jinja.read_text(encoding="utf-8")
    else:
        try:
            config = json.loads((checkpoint / "tokenizer_config.json").read_text(encoding="utf-8"))
            template = config.get("chat_template") if isinstance(config.get("chat_template"), str) else None
        except (OSError, ValueError):
            template = None
    return _MARKERS.sub("", template) if template else None


def _tensors(checkpoint: Path) -> dict[str, Any]:
    """Every tensor of the checkpoint as a float32 numpy array (bf16 files too, which numpy cannot hold)."""
    import torch
    from safetensors.torch import load_file

    files = sorted(checkpoint.glob("*.safetensors"))
    if not files:
        raise ModelLoadError(f"{checkpoint}: no *.safetensors weights to export")
    tensors: dict[str, Any] = {}
    for file in files:
        tensors.update({k: v.to(torch.float32).numpy() for k, v in load_file(str(file)).items()})
    return tensors


def check_exportable(checkpoint: Path, source: Path) -> None:
    """Raise a one-line ModelLoadError unless ``checkpoint`` is a llama-family folder sharing ``source``'s
    vocabulary (cheap: reads the config and the tokenizer, not the weights)."""
    _config(checkpoint)
    _check_vocabulary(checkpoint, _source_tokens(source), source)


def export_gguf(checkpoint: Path, target: Path, source: Path) -> None:
    """Write ``checkpoint`` (a llama-family transformers folder) as an fp16 GGUF file at ``target``, with the
    tokenizer of ``source`` (a GGUF whose vocabulary the checkpoint shares). Not atomic: callers write to a
    temporary path and rename."""
    import numpy as np
    from gguf import GGUFReader, GGUFValueType, GGUFWriter

    config = _config(checkpoint)
    reader = GGUFReader(str(source))
    _check_vocabulary(checkpoint, _source_tokens(source), source)
    arch = _arch_fields(config)
    template = _chat_template(checkpoint)
    writer = GGUFWriter(str(target), "llama")
    for key, field in reader.fields.items():
        if key.startswith(("GGUF.", "llama.")) or key == "general.architecture":
            continue  # the header, and the architecture written from the config below
        if key == "tokenizer.chat_template" and template:
            continue
        value = 1 if key == "general.file_type" else field.contents()  # 1: "mostly F16"
        sub = field.types[1] if field.types[0] == GGUFValueType.ARRAY and len(field.types) > 1 else None
        writer.add_key_value(key, value, field.types[0], sub_type=sub)
    for key, value in arch.items():
        kind = GGUFValueType.FLOAT32 if isinstance(value, float) else GGUFValueType.UINT32
        writer.add_key_value(key, value, kind)
    if template:
        writer.add_key_value("tokenizer.chat_template", template, GGUFValueType.STRING)
    heads, kv_heads = arch["llama.attention.head_count"], arch["llama.attention.head_count_kv"]
    for name, tensor in _tensors(checkpoint).items():
        target_name = gguf_name(name)
        if target_name is None or (target_name == "output.weight" and config.get("tie_word_embeddings")):
            continue
        values = tensor
        if target_name.endswith("attn_q.weight"):
            values = to_rotary_layout(values, heads)
        elif target_name.endswith("attn_k.weight"):
            values = to_rotary_layout(values, kv_heads)
        writer.add_tensor(target_name, values.astype(np.float32 if values.ndim == 1 else np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


__all__ = ["check_exportable", "export_gguf", "gguf_name", "to_rotary_layout"]
