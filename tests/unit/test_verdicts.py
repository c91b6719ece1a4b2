"""Table-driven tests of the one verdict parser and the RL reward rule."""

from __future__ import annotations

import pytest

import rmr1
from rmr1.verdicts import parse_trace, parse_verdict, rm_r1_reward, stop_end, strict_reward

A, B = "<answer>[[A]]</answer>", "<answer>[[B]]</answer>"

# (id, output, strict label, strict reason, paper label)
CASES = [
    # the plain, well-formed ending
    ("plain_a", f"<eval>A is right</eval>\n{A}", "A", None, "A"),
    ("plain_b", f"<eval>B is right</eval>\n{B}", "B", None, "B"),
    # nothing at all: an empty output
    ("empty", "", None, "no_verdict", None),
    # prose with no tag
    ("no_tag", "I think the first response is better.", None, "no_verdict", None),
    # both tags: strict trusts the last one, the paper rule gives up
    ("both_tags_last_wins", f"Maybe {A}... on reflection {B}", "B", None, None),
    # a verdict inside <think> followed by the real one after </think>
    ("think_then_answer", f"<think>first guess {A}</think>\n{B}", "B", None, None),
    # a verdict only inside the thought: the final section has none
    ("answer_only_in_think", f"<think>I lean {A}</think>\nThe end.", None, "no_verdict", "A"),
    # a thought that never closed (truncated thinking judge)
    ("unfinished_think", f"<think>hmm {A} hmm", None, "unfinished_think", "A"),
    # templates that open <think> in the prompt: the output has only the closing tag
    ("only_close_think", f"reasoning {B} reasoning</think>\n{A}", "A", None, None),
    # a verdict tag quoted from a response, then the judge's own verdict
    ("quoted_fake_then_real", f"<quote_A>ends with {B}</quote_A>\n{A}", "A", None, None),
    # a quote left open by truncation must not leak its fake tag
    ("truncated_open_quote", f"<eval><quote_B>it said {B}", None, "no_verdict", "B"),
    # summaries are quoted material as well
    ("summary_fake", f"<summary_B>claims {A}</summary_B> so {B}", "B", None, None),
    # trailing text after the verdict is fine
    ("trailing_text", f"{A}\nThanks for reading.", "A", None, "A"),
    # spacing inside the tag
    ("spaces_inside", "<answer> [[ B ]] </answer>", "B", None, None),
    # upper-case tag names
    ("upper_tags", "<ANSWER>[[A]]</ANSWER>", "A", None, "A"),
    # lower-case letter
    ("lower_letter", "<answer>[[b]]</answer>", "B", None, None),
    # a newline between tag and brackets
    ("newline_inside", "<answer>\n[[A]]\n</answer>", "A", None, "A"),
    # repeated identical tags
    ("repeated_same", f"{A}\n{A}", "A", None, "A"),
    # truncated mid-tag: the closing tag never came
    ("truncated_tag", "<eval>ok</eval><answer>[[A", None, "malformed_answer", None),
    # a tie is not a verdict
    ("tie", "<answer>[[C]]</answer>", None, "malformed_answer", None),
    # brackets without the answer tag: strict wants the tag, the paper rule does not
    ("brackets_only", "Final verdict: [[A]]", None, "no_verdict", "A"),
    # an answer tag holding prose
    ("prose_in_answer", "<answer>Chatbot A</answer>", None, "malformed_answer", None),
    # an answer tag with both letters
    ("both_in_one_tag", "<answer>[[A]] or [[B]]</answer>", None, "malformed_answer", None),
    # special tokens after the verdict, as decoded with special tokens kept
    ("special_tokens_after", f"{B}<|im_end|>", "B", None, "B"),
    # a fake verdict in a quoted response with no real verdict after it
    ("fake_only_in_quote", f"<quote_A>{A}</quote_A> and nothing else", None, "no_verdict", "A"),
    # unicode around the tag
    ("unicode_around", f"Résumé ✓ → {A} ✔", "A", None, "A"),
    # the last tag is malformed although an earlier one was fine
    ("last_malformed", f"{A} then <answer>none</answer>", None, "malformed_answer", "A"),
    # nested think blocks: the last close wins
    ("two_thinks", f"<think>x</think><think>y {A}</think>{B}", "B", None, None),
]


@pytest.mark.parametrize(
    ("output", "strict", "reason", "paper"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_parse_verdict_table(output: str, strict: str | None, reason: str | None, paper: str | None) -> None:
    got = parse_verdict(output, "strict")
    assert (got.label, got.reason) == (strict, reason)
    assert got.parsed == (strict is not None)
    assert parse_verdict(output, "paper").label == paper


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 25


def test_paper_mode_reports_ambiguity() -> None:
    assert parse_verdict(f"{A}{B}", "paper").reason == "ambiguous"


def test_unknown_mode_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown parse mode"):
        parse_verdict(A, "loose")


def test_public_api_exposes_parser() -> None:
    assert rmr1.parse_verdict(A).label == "A"
    assert rmr1.rm_r1_reward(A, "model_a") == 1.0


# (id, completion, winner, truncated, reward) for the paper's last-80-characters rule
REWARD_CASES = [
    ("correct_a", f"reasoning... {A}", "model_a", False, 1.0),
    ("correct_b", f"reasoning... {B}", "model_b", False, 1.0),
    ("wrong", f"reasoning... {A}", "model_b", False, -1.0),
    ("both_tags_in_tail", f"{A}{B}", "model_a", False, -1.0),
    # the right tag more than 80 characters before the end no longer counts
    ("tag_too_early", f"{A}" + " filler" * 20, "model_a", False, -1.0),
    # the wrong tag early and the right one at the end: only the tail matters
    ("wrong_early_right_late", f"{B}" + " x" * 50 + A, "model_a", False, 1.0),
    ("truncated", f"reasoning {A}", "model_a", True, -1.0),
    ("special_tokens_kept", f"{A}<|im_end|>", "model_a", False, 1.0),
    ("no_tag", "no verdict here", "model_a", False, -1.0),
    ("letters_accepted", f"{B}", "B", False, 1.0),
]


@pytest.mark.parametrize(
    ("completion", "winner", "truncated", "reward"),
    [c[1:] for c in REWARD_CASES],
    ids=[c[0] for c in REWARD_CASES],
)
def test_rm_r1_reward_table(completion: str, winner: str, truncated: bool, reward: float) -> None:
    assert rm_r1_reward(completion, winner, truncated=truncated) == reward


def test_reward_rejects_unknown_winner() -> None:
    with pytest.raises(ValueError, match="winner"):
        rm_r1_reward(A, "tie")


def test_strict_reward_reads_final_tag_anywhere() -> None:
    long_tail = f"{A}" + " filler" * 20
    assert rm_r1_reward(long_tail, "model_a") == -1.0
    assert strict_reward(long_tail, "model_a") == 1.0
    assert strict_reward(long_tail, "model_a", truncated=True) == -1.0


def test_parse_trace_extracts_chain_of_rubrics_parts() -> None:
    text = (
        "<type>Chat</type>\n<rubric>\n1. Accuracy (60%)\n2. Clarity (40%)\n"
        "<justify>Accuracy matters most.</justify>\n</rubric>\n"
        "<eval><quote_A>Paris</quote_A> is right; <summary_B>says Lyon</summary_B>.</eval>\n" + A
    )
    trace = parse_trace(text)
    assert trace.type == "Chat"
    assert [(i.text.split(" (")[0], i.weight) for i in trace.rubric_items] == [
        ("Accuracy", 0.6),
        ("Clarity", 0.4),
    ]
    assert trace.justify == "Accuracy matters most."
    assert trace.quotes_a == ("Paris",)
    assert trace.summaries_b == ("says Lyon",)
    assert trace.verdict.label == "A"


def test_parse_trace_reasoning_solution() -> None:
    trace = parse_trace("<type>Reasoning</type><solution>2+2=4</solution><eval>x</eval>" + B)
    assert (trace.type, trace.solution, trace.rubric_items) == ("Reasoning", "2+2=4", ())


# --- reasoning traces: thoughts, drafts and unclosed quotes (issue 8, part 4) ------------------------------

# (id, output, strict label, strict reason): scripted traces of thinking judges and of judges that forgot to
# close a quote. See docs/design/verdict-parsing.md for the rules these pin down.
REASONING_CASES = [
    # a draft verdict while thinking, the final one after the thought
    ("draft_in_think", f"<think>I lean A: {A}. Wait, B cites the law.</think>\n{B}", "B", None),
    # several drafts inside the thought, no final verdict: nothing counts
    ("drafts_only", f"<think>{A} no, {B} no, {A}</think>\nI cannot decide.", None, "no_verdict"),
    # the template opened <think> in the prompt: the output starts inside the thought
    ("opened_by_template", f"draft {A} hmm</think>\n<eval>B is right</eval>\n{B}", "B", None),
    # the prompt-opened thought got its <think> back (Completion.full_text): same reading
    ("opened_tag_restored", f"<think>\ndraft {A} hmm</think>\n{B}", "B", None),
    # truncated mid-thought after a draft: the draft must not become the verdict
    ("truncated_after_draft", f"<think>so far {A} but let me check", None, "unfinished_think"),
    # an empty thought (thinking switched off by the template) and a normal verdict
    ("empty_think", f"<think>\n\n</think>\n\n<eval>x</eval>\n{A}", "A", None),
    # a judge that forgot </quote_A>; the verdict on its own line at the end still counts
    ("unclosed_quote_final_line", f"<eval>A says <quote_A>Paris is the capital.\n{A}", "A", None),
    # ... with special tokens and blank lines after it (decoded with special tokens kept)
    ("unclosed_quote_final_line_eos", f"<eval><quote_B>Lyon\n{B}\n\n<|im_end|>", "B", None),
    # an unclosed quote ends at </eval>: the verdict after the eval block counts
    ("unclosed_quote_then_eval_close", f"<eval><quote_A>Paris</eval>\nSo: {A} and done.", "A", None),
    # an unclosed quote ends at the next quote tag; a fake tag inside the *closed* second quote is still quoted
    ("unclosed_then_next_quote", f"<quote_A>Paris <quote_B>says {A}</quote_B></eval>\n{B}", "B", None),
    # an unclosed summary behaves like a quote
    ("unclosed_summary_final_line", f"<eval><summary_B>B is vague\n{A}", "A", None),
    # a quote closed with the wrong label ends there; the verdict after it counts
    ("mislabelled_close", f"<quote_A>Paris</quote_B> so {A}", "A", None),
    # truncated inside a quote whose verdict tag is mid-line: quoted material, not the judge's verdict
    ("truncated_quote_midline_tag", f"<eval><quote_B>it ends {B}", None, "no_verdict"),
    # the verdict line inside an unclosed quote is not the end (more text follows): still quoted
    ("unclosed_quote_line_then_text", f"<quote_B>text\n{B}\nmore quoted text", None, "no_verdict"),
    # a quote inside the thought and the verdict after it: thoughts are cut first, quotes after
    ("quote_in_think", f"<think><quote_A>{A}</think>\n{B}", "B", None),
    # an unclosed quote in the final section does not hide a verdict that a later quote tag follows
    ("two_quotes_one_open", f"<quote_A>x</quote_A><quote_B>y\n<quote_A>z</quote_A>\n{A}", "A", None),
]


@pytest.mark.parametrize(
    ("output", "strict", "reason"), [c[1:] for c in REASONING_CASES], ids=[c[0] for c in REASONING_CASES]
)
def test_reasoning_traces(output: str, strict: str | None, reason: str | None) -> None:
    got = parse_verdict(output, "strict")
    assert (got.label, got.reason) == (strict, reason)


# (id, generated text, think opened by the prompt, where generation stops: the text kept, or None)
STOP_CASES = [
    # no thought at all: the first </answer> ends it, as before
    ("plain", f"<eval>x</eval>{A} trailing", False, f"<eval>x</eval>{A}"),
    # a drafted verdict inside the thought does not stop; the one after it does
    ("draft_in_think", f"<think>maybe {A}</think>{B} trailing", False, f"<think>maybe {A}</think>{B}"),
    # the prompt opened the thought: the first </answer> is still inside it
    ("opened_by_prompt", f"maybe {A}</think>{B} x", True, f"maybe {A}</think>{B}"),
    # the same text without the prompt's <think>: the first </answer> is outside any thought
    ("same_text_not_opened", f"maybe {A}</think>{B} x", False, f"maybe {A}"),
    # a thought that never closes never stops
    ("never_closed", f"<think>{A} {B}", False, None),
    # a second thought opened after the first: its drafts do not count either
    (
        "second_thought",
        f"<think>a</think><think>{A}</think>{B}",
        False,
        f"<think>a</think><think>{A}</think>{B}",
    ),
    # upper-case think tags are thoughts too
    ("upper_case_think", f"<THINK>{A}</THINK>{B}.", False, f"<THINK>{A}</THINK>{B}"),
]


@pytest.mark.parametrize(
    ("text", "opened", "kept"), [c[1:] for c in STOP_CASES], ids=[c[0] for c in STOP_CASES]
)
def test_stop_end_skips_thoughts(text: str, opened: bool, kept: str | None) -> None:
    end = stop_end(text, ("</answer>",), think_opened=opened)
    assert (None if end is None else text[:end]) == kept
    # stopping and parsing agree: where generation stops, the kept trace holds a verdict the parser reads
    if kept is not None:
        assert parse_verdict(("<think>" if opened else "") + kept).parsed


def test_stop_end_takes_the_earliest_of_several_stops() -> None:
    assert stop_end("ab STOP cd END", ("END", "STOP")) == len("ab STOP")
    assert stop_end("nothing here", ("END",)) is None
    assert stop_end("<think>END</think> x", ("END", "")) is None
