"""Stops on the transformers backend do not cut a thinking judge short (issue 8, part 4).

The tiny model's forward pass is scripted: each row emits the tokens of a given trace, then end-of-turn, so
real ``generate`` runs with the backend's stopping criterion and we can see where it ends each row.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from rmr1.backends.hf import HFBackend
from rmr1.judge import Judge, JudgeConfig
from rmr1.types import GenerationRequest, Message, PreferencePair, SamplingParams

A, B = "<answer>[[A]]</answer>", "<answer>[[B]]</answer>"
TAIL = " and some words after the verdict that a stop must cut off"
# The tiny model's chat template with a generation prompt that opens a thought, as DeepSeek-R1's does.
OPENS_THINK = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}"
)


@pytest.fixture()
def backend(tiny_model: Path) -> HFBackend:
    return HFBackend(str(tiny_model), batch_size=4, dtype="float32")


def script(backend: HFBackend, traces: Sequence[str]) -> list[list[int]]:
    """Make the model emit ``traces[k]`` on row k (rows in the order the backend batches them)."""
    tok = backend.tokenizer
    rows = [tok(t, add_special_tokens=False)["input_ids"] for t in traces]
    original = backend.model.forward
    step = {"n": 0}

    def forward(*args: Any, **kwargs: Any) -> Any:
        out = original(*args, **kwargs)
        logits = out.logits
        logits[:, -1, :] = -1e9
        for k, ids in enumerate(rows[: logits.shape[0]]):
            nxt = ids[step["n"]] if step["n"] < len(ids) else tok.eos_token_id
            logits[k, -1, nxt] = 0.0
        step["n"] += 1
        return out

    backend.model.forward = forward  # type: ignore[method-assign]
    return rows


def _req(budget: int = 200) -> GenerationRequest:
    return GenerationRequest(
        (Message("user", "Which is better?"),), SamplingParams(budget, stop=("</answer>",))
    )


# (id, trace the model writes, prompt opens <think>, text kept, finish_reason)
CASES = [
    # an instruct judge: the first </answer> ends generation, the words after it are never generated
    ("plain", f"<eval>A is right</eval>\n{A}{TAIL}", False, f"<eval>A is right</eval>\n{A}", "stop"),
    # a verdict drafted while thinking does not end it; the one after the thought does
    (
        "draft_in_think",
        f"<think>first {A} then</think>\n{B}{TAIL}",
        False,
        f"<think>first {A} then</think>\n{B}",
        "stop",
    ),
    # the chat template opened the thought: the text starts inside it, its first </answer> is a draft
    (
        "template_opens_think",
        f"draft {A} hmm</think>\n{B}{TAIL}",
        True,
        f"draft {A} hmm</think>\n{B}",
        "stop",
    ),
    # a thought that never closes runs to the budget (the draft inside it never stops it)
    ("never_closed", f"<think>{A}" + " more" * 80, False, None, "length"),
]


@pytest.mark.parametrize(
    ("trace", "opens", "kept", "finish"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_stop_only_outside_thought(
    backend: HFBackend, trace: str, opens: bool, kept: str | None, finish: str
) -> None:
    if opens:
        backend.tokenizer.chat_template = OPENS_THINK
    [ids] = script(backend, [trace])
    [out] = backend.generate([_req(budget=40 if kept is None else 200)])
    assert out.finish_reason == finish and out.think_opened == opens
    if kept is not None:
        assert out.text == kept
        kept_ids = len(backend.tokenizer(kept, add_special_tokens=False)["input_ids"])
        assert out.completion_tokens <= kept_ids + 1 < len(ids)  # it stopped there, it was not cut afterwards
    else:
        assert out.completion_tokens == 40


def test_rows_of_one_batch_stop_each_at_their_own_verdict(backend: HFBackend) -> None:
    traces = [f"{A}{TAIL}", f"<think>{A}{TAIL}</think>{B}{TAIL}"]
    script(backend, traces)
    out = backend.generate([_req(), _req()])  # same prompt length: the batch keeps request order
    assert [c.text for c in out] == [A, f"<think>{A}{TAIL}</think>{B}"]


def test_a_reasoning_judge_on_a_thinking_template_is_read_after_its_thought(backend: HFBackend) -> None:
    backend.tokenizer.chat_template = OPENS_THINK
    script(backend, [f"A looks right, {A}... but B cites the source.</think>\n{B}{TAIL}"])
    judge = Judge(backend, "reasoning", JudgeConfig(max_new_tokens=200))
    pair = PreferencePair.from_texts("Q?", "chosen text", "rejected text", item_id="q")
    [j] = judge.judge([pair])
    assert j.completion.startswith("<think>\n") and j.completion.endswith(B)  # the prompt's <think> restored
    assert j.verdict == "B" and j.finish_reason == "stop"


def test_the_template_says_whether_it_expects_a_thinking_model() -> None:
    from rmr1.prompts import get_template

    assert get_template("reasoning").thinking and not get_template("cor").thinking
    pair = PreferencePair.from_texts("Q?", "x", "y")
    [call] = Judge(object(), "reasoning").plan(pair)  # type: ignore[arg-type]
    assert call.request.sampling.thinking and call.request.sampling.stop == ("</answer>",)


def test_a_stop_ending_in_a_newline_still_stops(backend: HFBackend) -> None:
    # the fast table of tokens that can end a stop only covers printable characters; this one is a newline
    script(backend, [f"<think>x</eval>\ny</think><eval>z</eval>\n{TAIL}"])
    request = GenerationRequest((Message("user", "Q"),), SamplingParams(200, stop=("</eval>\n",)))
    [out] = backend.generate([request])
    assert (out.text, out.finish_reason) == ("<think>x</eval>\ny</think><eval>z</eval>\n", "stop")


def test_the_pointwise_thinking_template_is_marked_too() -> None:
    from rmr1.prompts import get_template

    pair = PreferencePair.from_texts("Q?", "x", "y")
    judge = Judge(object(), "pointwise-reasoning", JudgeConfig(mode="pointwise"))  # type: ignore[arg-type]
    assert get_template("pointwise-reasoning").thinking
    calls = judge.plan(pair)
    assert calls and all(c.request.sampling.thinking for c in calls)
