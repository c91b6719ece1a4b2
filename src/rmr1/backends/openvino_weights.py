"""Where the openvino backend's weights come from: a GGUF file, as shipped or widened to fp16, or an IR folder.

OpenVINO GenAI reads a GGUF file directly (llama-family models; F32/F16/Q4_0/Q4_1/Q8_0/K-quant blocks), so the
embedded model needs no exporter: no optimum-intel (which pins an older transformers) and no torch tracing.

Weight formats:

- ``f16``: every quantized tensor of the GGUF is de-quantized once into fp16 and the file is rewritten with the
  ``gguf`` package (a core dependency already). Measured faster here than decompressing quantized blocks on
  every matmul (bf16 compute on AMX), and it holds the very values the transformers backend computes with
  (its checkpoint is de-quantized from the same file), so outputs differ only by arithmetic. Cached under
  ``$RMR1_HOME/openvino`` keyed by the source file's name and size and the format, written to a temporary
  file and renamed into place under a file lock, so a crash never leaves half a file and two processes never
  convert at once.
- ``native``: the GGUF as shipped (the embedded model's Q4_1/Q8_0 blocks), nothing converted.
- a transformers checkpoint folder of a llama-family model that shares the embedded model's vocabulary (a judge
  trained from it, or SmolLM2 from the hub): written once as an fp16 GGUF by ``gguf_export`` and cached under
  ``$RMR1_HOME/openvino/exports`` keyed by a hash of its weights, config and chat template, so a retrained
  checkpoint at the same path is exported again and an unchanged one is not. Its format is ``f16``.
- ``ir``: a folder holding an OpenVINO IR (``openvino_model.xml``, e.g. from ``optimum-cli export openvino``);
  its weights are whatever the export chose.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

from rmr1.atomic import replace_atomic_path
from rmr1.errors import ConfigError, ModelLoadError
from rmr1.models import DEFAULT_MODEL, FileKey, embedded_gguf, file_key, locked, rmr1_home

WEIGHT_FORMATS = ("f16", "native")
_IR_FILE = "openvino_model.xml"


@dataclass(frozen=True)
class Weights:
    """What the pipeline loads: ``path`` (a .gguf file or an IR folder) and the format it holds."""

    path: Path
    weight_format: str  # "f16", "native" or "ir"
    source: str  # the model as the user named it, for run.json
    context_length: int | None  # positions the model was built for, when the files say


def locate(model: str | None, weight_format: str = "f16") -> Weights:
    """Resolve ``--model`` for the openvino backend, converting (once, cached) when the format asks for it."""
    if weight_format not in WEIGHT_FORMATS:
        raise ConfigError(
            f"unknown weight format {weight_format!r}; choose one of {', '.join(WEIGHT_FORMATS)}"
        )
    if model is None or model in ("", "default") or model.startswith("embedded:"):
        gguf, source = embedded_gguf(), model or DEFAULT_MODEL
    else:
        path = _local(model)
        if path.is_dir() and (path / _IR_FILE).is_file():
            return Weights(path, "ir", model, _ir_window(path))
        if path.is_dir() and (path / "config.json").is_file():
            exported = cached_export(path)
            return Weights(exported, "f16", model, gguf_window(exported))
        if not (path.is_file() and path.suffix == ".gguf"):
            raise ModelLoadError(
                f"the openvino backend reads the embedded model, a .gguf file, a llama-family checkpoint "
                f"folder or an OpenVINO IR folder (with {_IR_FILE}); {model!r} is none of these"
            )
        gguf, source = path, model
    window = gguf_window(gguf)
    if weight_format == "native":
        return Weights(gguf, "native", source, window)
    return Weights(cached_f16(gguf), "f16", source, window)


def _local(model: str) -> Path:
    """``model`` as a local path: itself, or a hub id's snapshot already in the local hub cache."""
    path = Path(model).expanduser()
    if path.exists() or model.count("/") != 1:
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model, local_files_only=True))
    except Exception:  # not cached, or no hub client: the caller's error names the model
        return path


def gguf_window(path: Path) -> int | None:
    """``<arch>.context_length`` from the GGUF's metadata (``gguf_meta``: scalars only, arrays skipped).
    Remembered per process while the file is unchanged, since ``auto``'s readiness probe and the backend it
    builds both ask."""
    return _window(file_key(path))


@functools.lru_cache(maxsize=32)
def _window(key: FileKey) -> int | None:
    from rmr1.backends.gguf_meta import read_metadata

    fields = read_metadata(key[0])
    value = fields.get(f"{fields.get('general.architecture', '')}.context_length")
    return value if isinstance(value, int) and value > 0 else None


def _ir_window(folder: Path) -> int | None:
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = config.get("max_position_embeddings")
    return value if isinstance(value, int) and value > 0 else None


def cached_f16(gguf: Path) -> Path:
    """The fp16 copy of ``gguf`` under ``$RMR1_HOME/openvino``, written on first use."""
    target = rmr1_home() / "openvino" / f"{gguf.stem}-{gguf.stat().st_size}.f16.gguf"
    if target.is_file():
        return target
    with locked(target.parent / f".{target.name}.lock"):
        if not target.is_file():
            _write_f16(gguf, target)
    return target


def _fingerprint(checkpoint: Path) -> str:
    """A hash of what the export reads: the weights, the config and the tokenizer files. Remembered per
    process while the files' sizes and mtimes stay the same, since ``auto``'s readiness probe and the backend
    it then builds both locate the model, and hashing reads every weight."""
    names = ("config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja")
    files = sorted(checkpoint.glob("*.safetensors")) + [checkpoint / n for n in names]
    return _hash_files(tuple(file_key(f) for f in files if f.is_file()))


@functools.lru_cache(maxsize=32)
def _hash_files(keys: tuple[FileKey, ...]) -> str:
    import hashlib

    digest = hashlib.sha256()
    for path, _, _ in keys:
        digest.update(Path(path).name.encode() + b"\0")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def cached_export(checkpoint: Path) -> Path:
    """The fp16 GGUF of a transformers checkpoint under ``$RMR1_HOME/openvino/exports``, written on first use
    with the embedded model's tokenizer (``gguf_export``)."""
    from rmr1.backends.gguf_export import check_exportable, export_gguf

    check_exportable(checkpoint, embedded_gguf())  # before hashing what may be many GB of weights
    target = rmr1_home() / "openvino" / "exports" / f"{checkpoint.name}-{_fingerprint(checkpoint)}.f16.gguf"
    if target.is_file():
        return target
    with locked(target.parent / f".{target.name}.lock"):
        if not target.is_file():
            replace_atomic_path(target, lambda tmp: export_gguf(checkpoint, tmp, embedded_gguf()))
    return target


def _write_f16(source: Path, target: Path) -> None:
    """Rewrite ``source`` with every non-f32 tensor as fp16; metadata (tokenizer, chat template) unchanged."""
    replace_atomic_path(target, lambda tmp: _widen(source, tmp))


def _widen(source: Path, tmp: Path) -> None:
    import numpy as np
    from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter
    from gguf.quants import dequantize

    reader = GGUFReader(str(source))
    arch = str(reader.fields["general.architecture"].contents())
    writer = GGUFWriter(str(tmp), arch)
    for key, field in reader.fields.items():
        # The writer adds the header fields and the architecture itself.
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        value = 1 if key == "general.file_type" else field.contents()  # 1: "mostly F16" in llama.cpp terms
        sub = field.types[1] if field.types[0] == GGUFValueType.ARRAY and len(field.types) > 1 else None
        writer.add_key_value(key, value, field.types[0], sub_type=sub)
    for tensor in reader.tensors:
        values = dequantize(tensor.data, tensor.tensor_type)
        # Norm weights stay f32 as llama.cpp writes them; matrices become fp16.
        wide = tensor.tensor_type == GGMLQuantizationType.F32
        writer.add_tensor(tensor.name, values.astype(np.float32 if wide else np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


__all__ = ["WEIGHT_FORMATS", "Weights", "cached_export", "cached_f16", "gguf_window", "locate"]
