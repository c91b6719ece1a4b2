"""Loading checks of the hf backend: one-line errors for checkpoints a judge cannot use, and chat templates
that refuse the system role. Tiny configs in tmp dirs, no weights needed for the refusals."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from rmr1.backends.hf import HFBackend, fold_system
from rmr1.errors import ModelLoadError
from rmr1.models import check_causal_lm
from rmr1.types import GenerationRequest, Message, SamplingParams

SMALL = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}


def _checkpoint(root: Path, name: str, config: dict[str, object]) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"vocab_size": 100, **SMALL, **config}))
    return folder


BAD = [
    # (folder, config.json, words the one-line message must hold)
    ("bert-mlm", {"model_type": "bert", "architectures": ["BertForMaskedLM"]}, "BertForMaskedLM"),
    # no architectures: transformers would quietly build a BertLMHeadModel from an encoder
    ("bert-bare", {"model_type": "bert"}, "encoder model"),
    (
        "t5",
        {"model_type": "t5", "d_model": 32, "num_layers": 1, "num_heads": 2, "d_ff": 64},
        "encoder-decoder",
    ),
    # a scalar reward model is a classifier, not a generative judge
    (
        "llama-rm",
        {"model_type": "llama", "architectures": ["LlamaForSequenceClassification"]},
        "not a causal",
    ),
    (
        "custom",
        {
            "model_type": "my_custom_lm",
            "architectures": ["MyForCausalLM"],
            "auto_map": {
                "AutoConfig": "configuration_my.MyConfig",
                "AutoModelForCausalLM": "modeling_my.MyLM",
            },
        },
        "trust_remote_code",
    ),
]


@pytest.mark.parametrize(("name", "config", "needle"), BAD, ids=[b[0] for b in BAD])
def test_unusable_checkpoints_fail_in_one_line(
    tmp_path: Path, name: str, config: dict[str, object], needle: str
) -> None:
    folder = _checkpoint(tmp_path, name, config)
    with pytest.raises(ModelLoadError) as info:
        HFBackend(str(folder), dtype="float32")
    message = str(info.value)
    assert needle in message and str(folder) in message and "\n" not in message


def test_a_causal_lm_passes_the_check(tiny_model: Path) -> None:
    check_causal_lm(str(tiny_model))  # the tiny Llama is what every other test loads


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        (
            [("system", "Judge well."), ("user", "Q?")],
            [("user", "Judge well.\n\nQ?")],
        ),
        # only the first user turn takes the system text; later turns stay as they are
        (
            [("system", "S"), ("user", "one"), ("assistant", "a"), ("user", "two")],
            [("user", "S\n\none"), ("assistant", "a"), ("user", "two")],
        ),
        # no user turn at all: the system text becomes one
        ([("system", "S")], [("user", "S")]),
        ([("user", "plain")], [("user", "plain")]),
    ],
)
def test_fold_system(messages: list[tuple[str, str]], expected: list[tuple[str, str]]) -> None:
    given = [{"role": r, "content": c} for r, c in messages]
    assert fold_system(given) == [{"role": r, "content": c} for r, c in expected]
    assert given[0]["content"] == messages[0][1]  # the caller's list is left alone


NO_SYSTEM = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@pytest.fixture(scope="module")
def gemma_like(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> HFBackend:
    """The tiny model with a chat template that raises on a system turn, as Gemma's does."""
    folder = tmp_path_factory.mktemp("no-system") / "model"
    shutil.copytree(tiny_model, folder)
    settings = folder / "tokenizer_config.json"
    data = json.loads(settings.read_text())
    data["chat_template"] = NO_SYSTEM
    settings.write_text(json.dumps(data))
    (folder / "chat_template.jinja").write_text(NO_SYSTEM)  # newer transformers keeps the template here
    return HFBackend(str(folder), dtype="float32")


def _request(*messages: tuple[str, str]) -> GenerationRequest:
    return GenerationRequest(tuple(Message(r, c) for r, c in messages), SamplingParams(max_new_tokens=4))


def test_system_turn_is_folded_into_the_user_turn_and_said_once(
    gemma_like: HFBackend, caplog: pytest.LogCaptureFixture
) -> None:
    with_system = _request(("system", "You are a fair judge."), ("user", "Which is better?"))
    folded = _request(("user", "You are a fair judge.\n\nWhich is better?"))
    with caplog.at_level(logging.WARNING, logger="rmr1.backends.hf"):
        first = gemma_like.prompt_ids(with_system)
        second = gemma_like.prompt_ids(with_system)
        out = gemma_like.generate([with_system, folded])
    assert first == second == gemma_like.prompt_ids(folded)
    assert len(out) == 2 and all(c.error is None for c in out)
    notes = [r.getMessage() for r in caplog.records if "system role" in r.getMessage()]
    assert len(notes) == 1 and "first user turn" in notes[0]


def test_other_template_errors_are_not_hidden(tiny_model: Path) -> None:
    from jinja2 import TemplateError

    backend = HFBackend(str(tiny_model), dtype="float32")
    backend.tokenizer.chat_template = "{{ raise_exception('Conversation roles must alternate') }}"
    with pytest.raises(TemplateError, match="alternate"):
        backend.prompt_ids(_request(("system", "S"), ("user", "Q")))
