"""Verdict probabilities: the slot, the two-token read, the verdict modes in the judge, and the hf read checked
against a softmax computed here from the model's own logits."""

from __future__ import annotations

import json
import math

import pytest

from rmr1.backends.mock import MockBackend
from rmr1.errors import ConfigError
from rmr1.judge import Judge, JudgeConfig, vote
from rmr1.probability import (
    VerdictRead,
    forced_prefix,
    p_a_from_tokens,
    p_a_from_top,
    two_way,
    verdict_slot,
)
from rmr1.types import GenerationRequest, Judgment, Message, PreferencePair

V = "<answer>[[{}]]</answer>"


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        (V.format("A"), "A"),
        ("<eval>x</eval>\n" + V.format("B"), "B"),
        # the last answer tag wins
        (V.format("A") + " then " + V.format("B"), "B"),
        # a verdict inside a quoted response is not the judge's
        ("<quote_A>" + V.format("B") + "</quote_A>\n" + V.format("A"), "A"),
        # an unclosed quote runs to the end: nothing after it counts
        (V.format("A") + "<quote_B>" + V.format("B"), "A"),
        # only the final section, after the last </think>, counts
        ("<think>" + V.format("B") + "</think>" + V.format("A"), "A"),
        # spacing and case forgiven, as the strict parser does
        ("< answer > [[ b ]]</answer>", "b"),
        # the verdict prefix alone is a slot too (the letter is still to come in a forced read)
        ("trace\n<answer>[[A", "A"),
    ],
)
def test_verdict_slot_points_at_the_letter(text: str, letter: str) -> None:
    slot = verdict_slot(text)
    assert slot is not None and text[slot] == letter


@pytest.mark.parametrize(
    "text",
    [
        "no verdict at all",
        "<think>" + V.format("A"),  # an unfinished thought has no verdict
        "<quote_A>" + V.format("A") + "</quote_A>",  # only a quoted one
        "<answer>A</answer>",  # no brackets
    ],
)
def test_verdict_slot_none(text: str) -> None:
    assert verdict_slot(text) is None


def test_two_way_is_the_two_token_softmax() -> None:
    assert two_way(math.log(0.3), math.log(0.1)) == pytest.approx(0.75)
    assert two_way(-1000.0, -1001.0) == pytest.approx(1 / (1 + math.exp(-1)))
    assert two_way(0.0, -math.inf) == 1.0 and two_way(-math.inf, 0.0) == 0.0
    assert two_way(-2.0, -2.0) == 0.5


def test_forced_prefix_closes_an_open_thought() -> None:
    assert forced_prefix("<eval>x</eval>") == "<eval>x</eval>\n<answer>[["
    assert forced_prefix("<think>still thinking") == "<think>still thinking\n</think>\n<answer>[["
    assert forced_prefix("") == "<answer>[["


def test_p_a_from_tokens_finds_the_letter_token_by_offsets() -> None:
    # "[[B" is one token here: the alternative is "[[A" in its top list.
    tokens = [
        ("<answer>", -0.1, {}),
        ("[[B", math.log(0.6), {"[[B": math.log(0.6), "[[A": math.log(0.2)}),
        ("]]</answer>", -0.01, {}),
    ]
    assert p_a_from_tokens(tokens) == pytest.approx(0.25)
    split = [("<answer>[[", -0.1, {}), ("A", math.log(0.9), {"A": math.log(0.9)}), ("]]", 0.0, {})]
    assert p_a_from_tokens(split) == 1.0  # B is not even in the top list
    assert p_a_from_tokens([("no verdict", 0.0, {})]) is None


def test_p_a_from_top_reads_the_first_token_after_the_prefix() -> None:
    top = {"A": math.log(0.5), " B": math.log(0.25), "B]]": math.log(0.1), "The": math.log(0.1)}
    assert p_a_from_top(top) == pytest.approx(2 / 3)  # the best B spelling counts
    assert p_a_from_top({"The": 0.0}) is None


def _pair(i: int = 0) -> PreferencePair:
    return PreferencePair.from_texts("q?", "good", "bad", item_id=f"i{i}")


def test_logprob_mode_reads_parsed_verdicts_only() -> None:
    backend = MockBackend(script=[V.format("A"), "no verdict"], p_a=0.8)
    judge = Judge(backend, "cor", JudgeConfig(verdict="logprob", batch_size=2, protocol="both"))
    ab, ba = list(judge.judge([_pair()]))
    assert ab.p_a == pytest.approx(0.8) and not ab.forced  # returned with the generation
    assert ba.p_a is None and ba.verdict is None  # logprob mode never forces
    assert backend.reads == 0


def test_forced_mode_forces_a_missing_verdict_and_marks_it() -> None:
    seen: list[str] = []

    def p_a(request: GenerationRequest, prefix: str) -> float:
        seen.append(prefix)
        return 0.3

    backend = MockBackend(script=["ran out of tok"], p_a=p_a)
    judge = Judge(backend, "cor", JudgeConfig(verdict="forced", protocol="both"))
    ab, ba = list(judge.judge([_pair()]))
    assert seen == ["ran out of tok\n<answer>[["] * 2
    assert ab.forced and ab.verdict == "B" and ab.correct is False  # P(A)=0.3 -> B; chosen was A
    assert ba.forced and ba.verdict == "B" and ba.correct is True
    assert backend.reads == 2
    v = vote([ab, ba])
    assert v.probability == pytest.approx((0.3 + 0.7) / 2)  # order-corrected P(preferred)


def test_generate_mode_asks_for_nothing() -> None:
    backend = MockBackend(script=["nothing"], p_a=0.9)
    (j,) = list(Judge(backend, "cor").judge([_pair()]))
    assert j.p_a is None and not j.forced and backend.reads == 0


def test_a_backend_without_logprobs_is_refused_in_one_line() -> None:
    with pytest.raises(ConfigError, match="log-probabilities"):
        Judge(MockBackend("always-a"), "cor", JudgeConfig(verdict="forced"))
    with pytest.raises(ConfigError, match="verdict mode"):
        JudgeConfig(verdict="maybe")


def test_judgment_line_omits_absent_p_a_and_reads_back() -> None:
    backend = MockBackend(script=["x"], p_a=0.25)
    (forced,) = list(Judge(backend, "cor", JudgeConfig(verdict="forced")).judge([_pair()]))
    line = json.loads(json.dumps(forced.to_dict()))
    assert line["forced"] is True and line["p_a"] == 0.25
    assert Judgment.from_dict(line) == forced
    (plain,) = list(Judge(MockBackend("always-a"), "cor").judge([_pair()]))
    assert "p_a" not in plain.to_dict() and plain.to_dict()["forced"] is False
    assert Judgment.from_dict(plain.to_dict()) == plain


# --- the hf read, against a softmax computed here --------------------------------------------------------


def _direct_p_a(backend: object, request: GenerationRequest, prefix: str) -> float:
    """P(A) from one forward pass over prompt + prefix, the letter's token found by its character offsets."""
    import torch

    tok, model = backend.tokenizer, backend.model  # type: ignore[attr-defined]
    prompt = tok.apply_chat_template(
        [m.to_dict() for m in request.messages], tokenize=False, add_generation_prompt=True
    )
    prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    ids = {}
    for letter in "AB":
        enc = tok(prefix + letter + "]]</answer>", add_special_tokens=False, return_offsets_mapping=True)
        k = next(i for i, (s, e) in enumerate(enc["offset_mapping"]) if s <= len(prefix) < e)
        ids[letter] = (enc["input_ids"][:k], enc["input_ids"][k])
    context = ids["A"][0]
    assert context == ids["B"][0]
    with torch.no_grad():
        logits = model(torch.tensor([prompt_ids + context])).logits[0, -1].double()
    probs = torch.softmax(logits[[ids["A"][1], ids["B"][1]]], dim=0)
    return float(probs[0])


def test_hf_forced_p_a_equals_a_direct_softmax(tiny_model: object) -> None:
    from rmr1.backends.hf import HFBackend

    backend = HFBackend(str(tiny_model), dtype="float32", device="cpu", batch_size=4)
    pairs = [_pair(i) for i in range(3)]
    judge = Judge(backend, "plain", JudgeConfig(verdict="forced", max_new_tokens=6, batch_size=4))
    judgments = list(judge.judge(pairs))
    calls = [c for p in pairs for c in judge.plan(p)]
    assert all(j.forced for j in judgments)  # a random model writes no verdict
    for call, j in zip(calls, judgments, strict=True):
        direct = _direct_p_a(backend, call.request, forced_prefix(j.completion))
        assert j.p_a == pytest.approx(direct, abs=1e-5)


def test_hf_read_at_a_written_verdict_skips_quoted_tags(tiny_model: object) -> None:
    from rmr1.backends.hf import HFBackend

    backend = HFBackend(str(tiny_model), dtype="float32", device="cpu", batch_size=2)
    request = GenerationRequest((Message("user", "which is better?"),))
    texts = [
        "<quote_A>" + V.format("B") + "</quote_A><eval>ok</eval>\n" + V.format("A"),
        "short <answer>[[B]]</answer>",
    ]
    reads = []
    for text in texts:
        slot = verdict_slot(text)
        assert slot is not None
        reads.append(VerdictRead(request, text[:slot]))
    batched = backend.read_verdicts(reads)  # right-padded together
    for read, p_a in zip(reads, batched, strict=True):
        assert p_a == pytest.approx(_direct_p_a(backend, request, read.prefix), abs=1e-5)
        assert backend.read_verdicts([read])[0] == pytest.approx(p_a, abs=1e-6)


# --- openai: logprobs with the generation, forced reads by continuing the message, on a loopback server ---


class _LogprobServer:
    """Answers chat requests: a trace without a verdict, or (a continuation) one token with top logprobs."""

    def __init__(self, continuation_status: int = 200) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        bodies: list[dict[str, object]] = []
        status = continuation_status

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                bodies.append(body)
                if body.get("continue_final_message"):
                    code = status
                    top = [{"token": "A", "logprob": math.log(0.2)}, {"token": "B", "logprob": math.log(0.6)}]
                    content = [{"token": "B", "logprob": math.log(0.6), "top_logprobs": top}]
                    answer = {"choices": [{"message": {"content": "B"}, "logprobs": {"content": content}}]}
                else:
                    code = 200
                    answer = {"choices": [{"message": {"content": "cut off"}, "finish_reason": "length"}]}
                data = json.dumps(answer).encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.bodies = bodies
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_openai_forced_read_continues_the_assistant_message() -> None:
    from rmr1.backends.openai import OpenAIBackend

    server = _LogprobServer()
    try:
        backend = OpenAIBackend("m", base_url=server.url, max_retries=0)
        judge = Judge(backend, "cor", JudgeConfig(verdict="forced"))
        (j,) = list(judge.judge([_pair()]))
    finally:
        server.close()
    first, read = server.bodies
    assert first["logprobs"] is True and first["top_logprobs"] == 20
    assert read["continue_final_message"] is True and read["max_tokens"] == 1
    assert read["messages"][-1] == {"role": "assistant", "content": "cut off\n<answer>[["}  # type: ignore[index]
    assert j.forced and j.finish_reason == "length"
    assert j.p_a == pytest.approx(0.25) and j.verdict == "B"


def test_openai_server_without_continuation_says_so_in_one_line() -> None:
    from rmr1.backends.openai import OpenAIBackend

    server = _LogprobServer(continuation_status=400)
    try:
        backend = OpenAIBackend("m", base_url=server.url, max_retries=0)
        with pytest.raises(ConfigError, match="continue_final_message"):
            list(Judge(backend, "cor", JudgeConfig(verdict="forced")).judge([_pair()]))
    finally:
        server.close()


def test_openai_logprobs_with_the_generation_give_p_a() -> None:
    from rmr1.backends.openai import _parse_response

    content = [
        {"token": "<answer>[[", "logprob": -0.1, "top_logprobs": []},
        {"token": "A", "logprob": math.log(0.7), "top_logprobs": [{"token": "B", "logprob": math.log(0.1)}]},
        {"token": "]]</answer>", "logprob": 0.0, "top_logprobs": []},
    ]
    body = {"choices": [{"message": {"content": "<answer>[[A]]</answer>"}, "logprobs": {"content": content}}]}
    assert _parse_response(json.dumps(body).encode()).p_a == pytest.approx(0.875)


# --- runs: forced verdicts in diagnostics, kept out of scores unless asked, replayed as made -------------


def _write_pairs(path, n: int = 8):  # type: ignore[no-untyped-def]
    path.write_text(
        "".join(
            json.dumps({"id": f"q{i}", "prompt": f"q{i}?", "chosen": f"right {i}", "rejected": f"wrong {i}"})
            + "\n"
            for i in range(n)
        )
    )
    return path


def _half_cut(request: GenerationRequest) -> str:
    """Items q0..q3 get a right written verdict (A where the right answer is shown first), q4..q7 none."""
    text = request.messages[-1].content
    if any(f"q{i}?" in text for i in range(4)):
        first = "A" if text.index("right") < text.index("wrong") else "B"
        return V.format(first)
    return "<eval>cut"


def _p_right(request: GenerationRequest, prefix: str) -> float:
    text = request.messages[-1].content
    return 0.8 if text.index("right") < text.index("wrong") else 0.2  # forced reads pick the right one


@pytest.mark.parametrize("score_forced", [False, True])
def test_forced_run_counts_forced_and_scores_them_only_when_asked(tmp_path, score_forced: bool) -> None:  # type: ignore[no-untyped-def]
    from rmr1.backends.replay import ReplayBackend
    from rmr1.evaluation import evaluate

    data = _write_pairs(tmp_path / "pairs.jsonl")
    config = JudgeConfig(verdict="forced", score_forced=score_forced)
    judge = Judge(MockBackend(script=_half_cut, p_a=_p_right), "cor", config)
    result = evaluate("preference", tmp_path / "run", judge=judge, data=str(data), report=False)
    diag = result.scores["diagnostics"]
    assert diag["forced_rate"] == 0.5 and diag["parse_failure_rate"] == 0.0
    assert result.scores["accuracy"] == (1.0 if score_forced else 0.5)
    lines = [json.loads(x) for x in (tmp_path / "run" / "judgments.jsonl").read_text().splitlines()]
    assert all("p_a" in x for x in lines) and sum(x["forced"] for x in lines) == 4
    from rmr1.evaluation import rescore

    assert rescore(tmp_path / "run")["accuracy"] == result.scores["accuracy"]  # a rescore keeps forced reads
    # the replay backend gives the same judgments back, forced reads included
    replay = Judge(ReplayBackend(str(tmp_path / "run")), "cor", config)
    again = evaluate("preference", tmp_path / "again", judge=replay, data=str(data), report=False)
    assert again.scores["accuracy"] == result.scores["accuracy"]
    relines = [json.loads(x) for x in (tmp_path / "again" / "judgments.jsonl").read_text().splitlines()]
    strip = lambda x: {k: v for k, v in x.items() if k != "latency_s"}  # noqa: E731
    assert sorted(map(json.dumps, map(strip, relines))) == sorted(map(json.dumps, map(strip, lines)))


def test_cache_keeps_p_a_and_forced_reads(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    from rmr1.cache import CachedBackend

    pairs = [PreferencePair.from_texts(f"q{i}?", "good", "bad", item_id=f"i{i}") for i in range(3)]
    script = [V.format("A"), "cut", V.format("B")]
    results = []
    for _ in range(2):
        inner = MockBackend(script=script, p_a=0.6)
        backend = CachedBackend(inner, tmp_path / "c.sqlite", model_id="mock")
        judge = Judge(backend, "cor", JudgeConfig(verdict="forced", batch_size=3))
        results.append((list(judge.judge(pairs)), inner.calls, inner.reads, backend.stats))
        backend.close()
    (first, calls1, reads1, _), (second, calls2, reads2, stats) = results
    assert (calls1, reads1) == (3, 1) and (calls2, reads2) == (0, 0)
    assert first == second and [j.forced for j in second] == [False, True, False]
    assert stats.hits == 3 and stats.read_hits == 1
    # a cache file from before the p_a column gets it on open
    old = tmp_path / "old.sqlite"
    with sqlite3.connect(old) as db:
        db.execute(
            "CREATE TABLE completions (key TEXT PRIMARY KEY, model TEXT NOT NULL, text TEXT NOT NULL, "
            "reasoning TEXT, finish_reason TEXT NOT NULL, prompt_tokens INTEGER NOT NULL, "
            "completion_tokens INTEGER NOT NULL)"
        )
    backend = CachedBackend(MockBackend(script=script, p_a=0.6), old, model_id="mock")
    assert len(list(Judge(backend, "cor", JudgeConfig(verdict="logprob")).judge(pairs))) == 3
    backend.close()


def test_server_options_verdict_forced() -> None:
    from fastapi.testclient import TestClient

    from rmr1.serve import create_app

    app = create_app(Judge(MockBackend(script=["cut"], p_a=0.75), "plain", JudgeConfig(max_new_tokens=64)))
    with TestClient(app) as client:
        body = {"prompt": "q?", "responses": ["x", "y"], "options": {"verdict": "forced", "protocol": "both"}}
        answer = client.post("/v1/judge", json=body).json()
        plain = client.post("/v1/judge", json={"prompt": "q?", "responses": ["x", "y"]}).json()
    assert [(j["order"], j["forced"], j["p_a"], j["verdict"]) for j in answer["judgments"]] == [
        ("AB", True, 0.75, "A"),
        ("BA", True, 0.75, "A"),
    ]
    assert answer["probability"] == pytest.approx(0.5)  # 0.75 for x as A, 0.25 for x as B
    assert plain["judgments"][0]["p_a"] is None and plain["probability"] is None


def test_a_thought_the_prompt_opened_is_not_sent_again() -> None:
    from rmr1.probability import probe_batch
    from rmr1.types import Completion

    backend = MockBackend(script=["x"], p_a=0.4)
    request = GenerationRequest((Message("user", "q"),))
    cut = Completion(text="still thinking", finish_reason="length", think_opened=True)
    done = Completion(text="ok</think>\n" + V.format("B"), think_opened=True)
    seen: list[str] = []
    backend._p_a = lambda req, prefix: seen.append(prefix) or 0.4  # type: ignore[assignment]
    probes = probe_batch(backend, [request, request], [cut, done], "forced")
    assert seen == ["still thinking\n</think>\n<answer>[[", "ok</think>\n<answer>[["]
    assert [p.forced for p in probes] == [True, False] and probes[1].p_a == 0.4
