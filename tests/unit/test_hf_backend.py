"""The transformers backend on a tiny random model: batching, padding, stops, token accounting."""

from __future__ import annotations

from pathlib import Path

import pytest

from rmr1.backends.hf import HFBackend
from rmr1.types import GenerationRequest, Message, SamplingParams

PROMPTS = [
    "What is 12 plus 30?",
    "Which response is better and why?",
    "The quick brown fox jumps over the lazy dog. " * 6,
    "Hi",
    "0 1 2 3 4 5 6 7 8 9",
]


def requests(max_new_tokens: int = 12, stop: tuple[str, ...] = ()) -> list[GenerationRequest]:
    sampling = SamplingParams(max_new_tokens=max_new_tokens, stop=stop)
    return [GenerationRequest((Message("user", p),), sampling, key=str(i)) for i, p in enumerate(PROMPTS)]


@pytest.fixture(scope="module")
def backend(tiny_model: Path) -> HFBackend:
    return HFBackend(str(tiny_model), batch_size=8, dtype="float32")


def test_batched_greedy_equals_one_at_a_time(backend: HFBackend) -> None:
    batched = backend.generate(requests())
    singles = [backend.generate([r])[0] for r in requests()]
    assert [c.text for c in batched] == [c.text for c in singles]
    assert [c.completion_tokens for c in batched] == [c.completion_tokens for c in singles]
    assert [c.prompt_tokens for c in batched] == [c.prompt_tokens for c in singles]


def test_results_come_back_in_request_order(backend: HFBackend) -> None:
    forward = backend.generate(requests())
    backward = backend.generate(list(reversed(requests())))
    assert [c.text for c in forward] == [c.text for c in reversed(backward)]


def test_prompt_has_a_single_bos(backend: HFBackend) -> None:
    ids = backend.prompt_ids(requests()[0])
    bos = backend.tokenizer.bos_token_id
    assert ids[0] == bos and ids[1] != bos


def test_length_finish_and_token_budget(backend: HFBackend) -> None:
    for completion in backend.generate(requests(max_new_tokens=5)):
        assert completion.completion_tokens <= 5
        if completion.finish_reason == "length":
            assert completion.completion_tokens == 5


def _finish(backend: HFBackend, text: str, stop: tuple[str, ...], budget: int = 50, eos: bool = False):
    ids = backend.tokenizer(text, add_special_tokens=False)["input_ids"]
    if eos:
        ids = [*ids, backend.tokenizer.eos_token_id]
    return backend._finish(ids, 3, SamplingParams(max_new_tokens=budget, stop=stop), 0.1)


def test_stop_string_cuts_right_after_it(backend: HFBackend) -> None:
    done = _finish(backend, "<eval>x</eval><answer>[[A]]</answer> trailing words", ("</answer>",))
    assert done.text == "<eval>x</eval><answer>[[A]]</answer>" and done.finish_reason == "stop"


def test_eos_ends_the_row(backend: HFBackend) -> None:
    done = _finish(backend, "Hello there", (), eos=True)
    assert (done.text, done.finish_reason) == ("Hello there", "stop")
    assert (
        done.completion_tokens
        == len(backend.tokenizer("Hello there", add_special_tokens=False)["input_ids"]) + 1
    )


def test_running_out_of_budget_is_length(backend: HFBackend) -> None:
    ids_len = len(backend.tokenizer("Hello there friend", add_special_tokens=False)["input_ids"])
    done = _finish(backend, "Hello there friend", (), budget=ids_len)
    assert done.finish_reason == "length"


def test_stop_strings_halt_generation_in_a_batch(backend: HFBackend) -> None:
    # the tiny model writes something; whatever it writes, the returned text never runs past a stop string
    out = backend.generate(requests(max_new_tokens=20, stop=("e",)))
    for completion in out:
        assert completion.text.count("e") <= 1
        if "e" in completion.text:
            assert completion.text.endswith("e") and completion.finish_reason == "stop"
