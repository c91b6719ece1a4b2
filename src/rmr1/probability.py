"""Verdict probabilities: where the verdict letter sits, and P(A) read from the two verdict tokens there.

``p_a = exp(l_A) / (exp(l_A) + exp(l_B))`` where ``l_X`` is the model's log-probability of the token for
letter X at the verdict slot: the position of the letter right after the last ``<answer>[[`` of the final
section (after the last ``</think>``, outside quoted response text), as the strict parser reads it.

Tokenizers split ``[[A]]`` in different ways (``[[`` ``A`` ``]]``, ``[[A`` ``]]``, ``[A`` ...). The slot is
found in tokens, not characters: the trace up to the letter is tokenized once with ``A]]</answer>`` after it
and once with ``B]]</answer>``; the first token where the two differ is the verdict token, the tokens before
it are the shared context, and its two ids are the A and B tokens as this tokenizer writes them there.

Backends that can read log-probabilities say so with ``supports_logprobs = True`` and implement
``read_verdicts(reads) -> list[float | None]``: for each ``VerdictRead`` (the judge prompt and the assistant
text so far, ending right before the letter), P(A) at the next token. The judge calls it through
``probe_batch`` for the ``logprob`` and ``forced`` verdict modes (see docs/design/verdict-probabilities.md).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rmr1.types import Completion, GenerationRequest
from rmr1.verdicts import parse_verdict

VERDICT_MODES = ("generate", "logprob", "forced")
VERDICT_PREFIX = "<answer>[["
_TAIL = "]]</answer>"  # what follows the letter, so the letter is tokenized as in a real verdict

_THINK_CLOSE = re.compile(r"</think\s*>", re.IGNORECASE)
_THINK_OPEN = re.compile(r"<think\s*>", re.IGNORECASE)
_QUOTED = re.compile(r"<(quote|summary)_([ab])>.*?(?:</\1_\2>|\Z)", re.IGNORECASE | re.DOTALL)
_SLOT = re.compile(r"<\s*answer\s*>\s*\[\[\s*([ab])", re.IGNORECASE)


@dataclass(frozen=True)
class VerdictRead:
    """One read of P(A): the judge prompt, and the assistant text that ends right before the verdict letter."""

    request: GenerationRequest
    prefix: str


@dataclass(frozen=True)
class Probe:
    """What the verdict modes add to one completion."""

    p_a: float | None = None
    forced: bool = False


def two_way(logprob_a: float, logprob_b: float) -> float:
    """exp(l_A) / (exp(l_A) + exp(l_B)), stable for any magnitudes (and -inf for a token never seen)."""
    if logprob_a == logprob_b:
        return 0.5
    if math.isinf(logprob_a) or math.isinf(logprob_b):
        return 1.0 if logprob_a > logprob_b else 0.0
    return 1.0 / (1.0 + math.exp(logprob_b - logprob_a))


def verdict_slot(text: str) -> int | None:
    """Character offset of the verdict letter in ``text`` (see the module doc), or None when there is none."""
    closes = list(_THINK_CLOSE.finditer(text))
    start = closes[-1].end() if closes else 0
    if not closes and _THINK_OPEN.search(text):
        return None  # an unfinished thought has no verdict
    section = text[start:]
    # Blank quoted text out with spaces of the same length, so offsets still point into ``text``.
    masked = _QUOTED.sub(lambda m: " " * len(m.group(0)), section)
    matches = list(_SLOT.finditer(masked))
    return start + matches[-1].start(1) if matches else None


def forced_prefix(text: str) -> str:
    """The trace with the verdict prefix after it; an unclosed thought is closed first."""
    body = text.rstrip()
    if _THINK_OPEN.search(body) and not _THINK_CLOSE.search(body):
        body += "\n</think>"
    return f"{body}\n{VERDICT_PREFIX}" if body else VERDICT_PREFIX


def letter_tokens(tokenizer: Any, prefix: str) -> tuple[list[int], int, int]:
    """(shared context ids, id of the A token, id of the B token) for the letter right after ``prefix``."""
    ids_a: list[int] = tokenizer(prefix + "A" + _TAIL, add_special_tokens=False)["input_ids"]
    ids_b: list[int] = tokenizer(prefix + "B" + _TAIL, add_special_tokens=False)["input_ids"]
    k = next((i for i, (x, y) in enumerate(zip(ids_a, ids_b, strict=False)) if x != y), None)
    if k is None:  # cannot happen for a tokenizer that tells A from B
        raise ValueError("the tokenizer writes A and B the same way")
    return ids_a[:k], ids_a[k], ids_b[k]


def hf_read(
    model: Any, tokenizer: Any, rows: Sequence[tuple[list[int], str]], *, device: str, batch_size: int = 8
) -> list[float | None]:
    """P(A) for each (prompt ids, assistant prefix) with one forward pass per batch of rows.

    Rows are right-padded: a causal model's logits at a row's last real token never see the padding after
    it, and positions stay 0..n-1, so a batched read equals a read of that row alone.
    """
    import torch

    prepared = []
    for prompt_ids, prefix in rows:
        context, id_a, id_b = letter_tokens(tokenizer, prefix)
        prepared.append((list(prompt_ids) + context, id_a, id_b))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out: list[float | None] = []
    for start in range(0, len(prepared), max(1, batch_size)):
        chunk = prepared[start : start + batch_size]
        width = max(len(ids) for ids, _, _ in chunk)
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _, _ in chunk], device=device)
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _, _ in chunk], device=device)
        with torch.inference_mode():
            out.extend(_two_logits(model, input_ids, mask, chunk))
    return out


def _two_logits(
    model: Any, input_ids: Any, mask: Any, chunk: Sequence[tuple[list[int], int, int]]
) -> list[float]:
    """P(A) per row from the A and B logits at the row's last real token.

    In bfloat16 the logits themselves are rounded to ~0.1 at their usual size, which would leave P(A) on a
    coarse grid; so where the model is a plain decoder + linear head, the last hidden state is multiplied by
    the two head rows in float64. Heads that change logits after the product (soft-capping, a logit scale)
    take the model's own logits.
    """
    head = model.get_output_embeddings()
    body: Any = getattr(model, "base_model", None)
    config = getattr(model, "config", None)
    plain = (
        head is not None
        and body is not None
        and body is not model
        and getattr(head, "bias", None) is None
        and not getattr(config, "final_logit_softcapping", None)
        and getattr(config, "logit_scale", None) is None
    )
    rows = [len(ids) - 1 for ids, _, _ in chunk]
    if plain:
        hidden = body(input_ids=input_ids, attention_mask=mask).last_hidden_state
        values = []
        for row, (_, id_a, id_b) in enumerate(chunk):
            weights = head.weight[[id_a, id_b]].double()
            la, lb = (weights @ hidden[row, rows[row]].double()).tolist()
            values.append(two_way(la, lb))
        return values
    logits = model(input_ids=input_ids, attention_mask=mask).logits
    return [
        two_way(float(logits[row, rows[row], a].double()), float(logits[row, rows[row], b].double()))
        for row, (_, a, b) in enumerate(chunk)
    ]


# --- log-probabilities returned with a generation (OpenAI-compatible servers, vLLM) -------------------------

TokenLogprob = tuple[str, float, Mapping[str, float]]  # (token text, its logprob, top alternatives)


def _swap(token: str, offset: int) -> str:
    letter = token[offset]
    other = {"A": "B", "B": "A", "a": "b", "b": "a"}[letter]
    return token[:offset] + other + token[offset + 1 :]


def p_a_from_tokens(tokens: Sequence[TokenLogprob]) -> float | None:
    """P(A) at the verdict slot of a generated text, from per-token logprobs with their top alternatives.

    The slot is found in the text the tokens spell; the other letter's token is the chosen token with the
    letter swapped. An alternative missing from the top list is below all of them: taken as -inf.
    """
    text = "".join(t for t, _, _ in tokens)
    slot = verdict_slot(text)
    if slot is None:
        return None
    pos = 0
    for token, logprob, top in tokens:
        if pos <= slot < pos + len(token):
            other = top.get(_swap(token, slot - pos), -math.inf)
            p_chosen = two_way(top.get(token, logprob), other)
            return p_chosen if token[slot - pos] in "Aa" else 1.0 - p_chosen
        pos += len(token)
    return None


def openai_tokens(logprobs: Any) -> list[TokenLogprob] | None:
    """The ``choices[i].logprobs`` object of an OpenAI-compatible chat answer as TokenLogprobs."""
    content = logprobs.get("content") if isinstance(logprobs, Mapping) else None
    if not isinstance(content, list):
        return None
    out: list[TokenLogprob] = []
    for entry in content:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("token"), str):
            return None
        top = {
            t["token"]: float(t["logprob"])
            for t in entry.get("top_logprobs") or []
            if isinstance(t, Mapping) and isinstance(t.get("token"), str) and t.get("logprob") is not None
        }
        out.append((entry["token"], float(entry.get("logprob") or 0.0), top))
    return out


def p_a_from_top(top: Mapping[str, float]) -> float | None:
    """P(A) from the top alternatives of the first token after the verdict prefix (a forced read)."""
    best: dict[str, float] = {}
    for token, logprob in top.items():
        core = token.strip()
        if not core or core[0].upper() not in "AB" or core[1:].strip("]") != "":
            continue
        letter = core[0].upper()
        best[letter] = max(best.get(letter, -math.inf), logprob)
    if not best:
        return None
    return two_way(best.get("A", -math.inf), best.get("B", -math.inf))


# --- the judge's side ---------------------------------------------------------------------------------------


def supports_logprobs(backend: Any) -> bool:
    return bool(getattr(backend, "supports_logprobs", False)) and callable(
        getattr(backend, "read_verdicts", None)
    )


def forced_label(p_a: float) -> str:
    """The verdict a forced read gives: A when P(A) >= 0.5."""
    return "A" if p_a >= 0.5 else "B"


def probe_batch(
    backend: Any,
    requests: Sequence[GenerationRequest],
    completions: Sequence[Completion],
    mode: str,
    parse_mode: str = "strict",
) -> list[Probe]:
    """One Probe per completion: P(A) as the mode asks, with one batched ``read_verdicts`` call at most.

    ``generate`` keeps what the backend returned; ``logprob`` also reads the verdict slot of each parsed
    trace that came back without P(A); ``forced`` also reads, after the verdict prefix, each trace that
    returned without a verdict (failed calls and prompts never sent are left alone).
    """
    probes = [Probe(c.p_a) for c in completions]
    if mode == "generate":
        return probes
    wanted: list[tuple[int, VerdictRead, bool]] = []
    for i, (req, comp) in enumerate(zip(requests, completions, strict=True)):
        if comp.finish_reason not in ("stop", "length"):
            continue
        text = comp.full_text
        # A <think> the prompt opened is in full_text for the parser, but the read continues the prompt.
        lead = (
            len(text) - len(comp.text) if getattr(comp, "think_opened", False) and not comp.reasoning else 0
        )
        parsed = parse_verdict(text, parse_mode).label is not None
        slot = verdict_slot(text) if parsed else None
        if slot is not None and comp.p_a is None:
            wanted.append((i, VerdictRead(req, text[lead:slot]), False))
        elif not parsed and mode == "forced":
            wanted.append((i, VerdictRead(req, forced_prefix(text)[lead:]), True))
    if wanted:
        values = backend.read_verdicts([read for _, read, _ in wanted])
        for (i, _, forced), p_a in zip(wanted, values, strict=True):
            probes[i] = Probe(p_a, forced and p_a is not None)
    return probes


__all__ = [
    "VERDICT_MODES",
    "VERDICT_PREFIX",
    "Probe",
    "TokenLogprob",
    "VerdictRead",
    "forced_label",
    "forced_prefix",
    "hf_read",
    "letter_tokens",
    "openai_tokens",
    "p_a_from_tokens",
    "p_a_from_top",
    "probe_batch",
    "supports_logprobs",
    "two_way",
    "verdict_slot",
]
