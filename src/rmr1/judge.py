"""The judge: pairs in, judgments out.

Order protocol
- ``single``: each pair is judged in one order, derived from (seed, item id, pair index) by a hash, so the order
  does not depend on batching, sharding, concurrency or what else is in the run.
- ``both``: each pair is judged as AB and as BA.

Voting: ``samples`` K > 1 asks for K samples per order (temperature 1.0 unless set); each sample is a judgment
and ``vote`` folds them into one label with a confidence.

All pending calls are batched across items: ``judge`` plans every call first and hands the backend ``batch_size``
requests at a time, yielding judgments as each batch returns (callers log them as they arrive).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from rmr1 import pointwise
from rmr1.backends import Backend
from rmr1.errors import ConfigError
from rmr1.probability import VERDICT_MODES, Probe, forced_label, probe_batch, supports_logprobs
from rmr1.prompts import JudgeTemplate, get_template
from rmr1.types import (
    Completion,
    GenerationRequest,
    Judgment,
    PreferencePair,
    SamplingParams,
    is_correct,
)
from rmr1.verdicts import MODES, parse_verdict

PROTOCOLS = ("single", "both")
# Backends stop on it only outside a <think> block; for thinking templates servers get no stop at all.
STOP = ("</answer>",)
PROMPT_TOO_LONG = "prompt_too_long"  # parse_error of a call whose prompt did not fit the model's window


@dataclass(frozen=True)
class JudgeConfig:
    """How each pair is judged."""

    protocol: str = "single"  # "single" (one seeded order per pair) or "both" (AB and BA)
    samples: int = 1  # samples per order; more than one means voting
    seed: int = 0  # drives the order of each pair and the sampling seeds
    max_new_tokens: int = 1024  # generation budget per call
    temperature: float | None = None  # None: 0 (greedy) for one sample, 1.0 when voting
    top_p: float = 1.0
    parse_mode: str = "strict"  # "strict" or "paper", see rmr1.verdicts
    batch_size: int = 16  # requests handed to the backend at once
    stop_at_verdict: bool = True  # end generation right after a </answer> outside any <think> block
    record_latency: bool = True  # False writes latency_s as 0 so reruns are byte-identical
    verdict: str = "generate"  # generate | logprob (read P(A) at the verdict) | forced (also force one)
    score_forced: bool = False  # benchmark scores count forced verdicts (default: as unparsed)
    mode: str = "pairwise"  # "pairwise", or "pointwise": rate each response alone (rmr1.pointwise)

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"unknown protocol {self.protocol!r}; choose single or both")
        if self.samples < 1:
            raise ConfigError("samples must be at least 1")
        if self.parse_mode not in MODES:
            raise ConfigError(f"unknown parse mode {self.parse_mode!r}; choose strict or paper")
        if self.max_new_tokens < 1 or self.batch_size < 1:
            raise ConfigError("max_new_tokens and batch_size must be positive")
        if self.verdict not in VERDICT_MODES:
            raise ConfigError(f"unknown verdict mode {self.verdict!r}; choose {', '.join(VERDICT_MODES)}")
        if self.mode not in ("pairwise", "pointwise"):
            raise ConfigError(f"unknown mode {self.mode!r}; choose pairwise or pointwise")
        if self.mode == "pointwise" and self.verdict != "generate":
            raise ConfigError(
                "--verdict logprob|forced reads an A/B verdict; pointwise mode has ratings instead"
            )

    @property
    def effective_temperature(self) -> float:
        if self.temperature is not None:
            return self.temperature
        return 0.0 if self.samples == 1 else 1.0

    def sampling(
        self, key: str, stop: tuple[str, ...], *, thinking: bool, logprobs: bool = False
    ) -> SamplingParams:
        """How the call named ``key`` samples: seeded by the key when it samples at all, ``stop`` when
        ``stop_at_verdict``."""
        temperature = self.effective_temperature
        return SamplingParams(
            max_new_tokens=self.max_new_tokens,
            temperature=temperature,
            top_p=self.top_p,
            seed=_sample_seed(self.seed, key) if temperature > 0 else None,
            stop=stop if self.stop_at_verdict else (),
            logprobs=logprobs,
            thinking=thinking,
        )


def seeded_order(seed: int, item_id: str, pair: int) -> str:
    """The order a pair is shown in under the single protocol: stable across processes and batchings."""
    digest = hashlib.sha256(f"{seed}\x1f{item_id}\x1f{pair}".encode()).digest()
    return "AB" if digest[0] % 2 == 0 else "BA"


def _sample_seed(seed: int, key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}\x1f{key}".encode()).digest()[:4], "big")


@dataclass(frozen=True)
class Call:
    """One planned model call: a pair in one order, one sample."""

    pair: PreferencePair
    order: str
    sample: int
    request: GenerationRequest
    neutralised: bool

    @property
    def key(self) -> tuple[str, int, str, int]:
        return (self.pair.item_id, self.pair.pair, self.order, self.sample)

    def judgment(self, verdict: str | None, **fields: Any) -> Judgment:
        """The Judgment answering this call: its pair, order and sample, ``verdict`` and whether it is correct;
        ``fields`` give the rest (text, tokens, finish reason, ...)."""
        return Judgment(
            item_id=self.pair.item_id,
            pair=self.pair.pair,
            subset=self.pair.subset,
            order=self.order,
            sample=self.sample,
            neutralised=self.neutralised,
            verdict=verdict,
            correct=is_correct(verdict, self.order),
            **fields,
        )


def call_key(item_id: str, pair: int, order: str, sample: int) -> str:
    return f"{item_id}|{pair}|{order}|{sample}"


class Judge:
    """A backend and a template, applied to preference pairs under a JudgeConfig."""

    def __init__(
        self, backend: Backend, template: JudgeTemplate | str | None = None, config: JudgeConfig | None = None
    ) -> None:
        self.backend = backend
        self.template = template if isinstance(template, JudgeTemplate) else get_template(template)
        self.config = config or JudgeConfig()
        if self.config.verdict != "generate" and not supports_logprobs(backend):
            raise ConfigError(
                f"--verdict {self.config.verdict} needs token log-probabilities, which the "
                f"{type(backend).__name__} backend does not give; use --verdict generate"
            )

    def orders(self, pair: PreferencePair) -> list[str]:
        if self.config.protocol == "both":
            return ["AB", "BA"]
        return [seeded_order(self.config.seed, pair.item_id, pair.pair)]

    def plan(self, pair: PreferencePair) -> list[Call]:
        if self.config.mode == "pointwise":
            return pointwise.plan(self, pair)
        cfg = self.config
        calls = []
        for order in self.orders(pair):
            a, b = (pair.chosen, pair.rejected) if order == "AB" else (pair.rejected, pair.chosen)
            messages, neutralised = self.template.render(pair.context, a, b)
            for sample in range(cfg.samples):
                key = call_key(pair.item_id, pair.pair, order, sample)
                sampling = cfg.sampling(
                    key, STOP, thinking=self.template.thinking, logprobs=cfg.verdict != "generate"
                )
                calls.append(
                    Call(pair, order, sample, GenerationRequest(messages, sampling, key), neutralised)
                )
        return calls

    def to_judgment(self, call: Call, completion: Completion, probe: Probe | None = None) -> Judgment:
        text = completion.full_text
        # A prompt over the window was never sent: there is nothing to parse, and the backend says why.
        label: str | None = None
        reason: str | None = completion.error or PROMPT_TOO_LONG
        if completion.finish_reason != "too_long":
            verdict = parse_verdict(text, self.config.parse_mode)
            label = verdict.label
            reason = completion.error if completion.finish_reason == "error" else verdict.reason
        probe = probe or Probe(completion.p_a)
        if probe.forced and probe.p_a is not None:
            label = forced_label(probe.p_a)
        return call.judgment(
            label,
            finish_reason=completion.finish_reason,
            completion=text,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            latency_s=round(completion.latency_s, 4) if self.config.record_latency else 0.0,
            parse_error=reason,
            p_a=probe.p_a,
            forced=probe.forced,
        )

    def run(self, calls: Iterable[Call]) -> Iterator[Judgment]:
        """Send calls to the backend ``batch_size`` at a time; yield judgments in call order per batch."""
        if self.config.mode == "pointwise":
            yield from pointwise.run(self, calls)
            return
        batch: list[Call] = []
        for call in calls:
            batch.append(call)
            if len(batch) >= self.config.batch_size:
                yield from self._run_batch(batch)
                batch = []
        if batch:
            yield from self._run_batch(batch)

    def _run_batch(self, batch: Sequence[Call]) -> Iterator[Judgment]:
        requests = [c.request for c in batch]
        completions = self.backend.generate(requests)
        if len(completions) != len(batch):
            raise RuntimeError(f"backend returned {len(completions)} completions for {len(batch)} requests")
        cfg = self.config
        probes = probe_batch(self.backend, requests, completions, cfg.verdict, cfg.parse_mode)
        for call, completion, probe in zip(batch, completions, probes, strict=True):
            yield self.to_judgment(call, completion, probe)

    def judge(
        self, pairs: Iterable[PreferencePair], skip: Collection[tuple[str, int, str, int]] = ()
    ) -> Iterator[Judgment]:
        """Judge every pair; calls whose key is in ``skip`` (already logged) are not made again."""
        calls = (c for p in pairs for c in self.plan(p) if c.key not in skip)
        yield from self.run(calls)

    def judge_pair(
        self,
        prompt: object,
        response_a: str,
        response_b: str,
        on_judgment: Callable[[Judgment], None] | None = None,
    ) -> list[Judgment]:
        """Judge one ad-hoc pair. ``correct`` then means "preferred response_a" (it plays the chosen role)."""
        pair = PreferencePair.from_texts(prompt, response_a, response_b, item_id="adhoc")
        out = []
        for judgment in self.judge([pair]):
            if on_judgment:
                on_judgment(judgment)
            out.append(judgment)
        return out


@dataclass(frozen=True)
class Vote:
    """Majority over several judgments of one pair, in terms of the preferred response."""

    correct: bool | None  # True: the preferred response won; None: no parsed verdicts or a tie
    confidence: float  # share of parsed votes for the winning side
    votes: int
    unparsed: int
    probability: float | None = None  # mean P(preferred response) over the samples that read P(A)


def vote(judgments: Sequence[Judgment]) -> Vote:
    result = vote_values([j.correct for j in judgments])
    probs = [p for p in (j.p_preferred for j in judgments) if p is not None]
    if not probs:
        return result
    return dataclasses.replace(result, probability=sum(probs) / len(probs))


def vote_values(values: Sequence[bool | None]) -> Vote:
    """Majority over the ``correct`` values of one decision's samples (None = unparsed)."""
    counts = Counter(v for v in values if v is not None)
    unparsed = sum(1 for v in values if v is None)
    parsed = counts[True] + counts[False]
    winner = majority(counts[True], counts[False])
    if winner is None:
        return Vote(None, 0.5 if parsed else 0.0, parsed, unparsed)
    return Vote(winner, max(counts[True], counts[False]) / parsed, parsed, unparsed)


def majority(right: int, wrong: int) -> bool | None:
    """The voting rule on counts: the preferred response won, lost, or (a tie, nothing parsed) no decision."""
    return None if right == wrong else right > wrong


__all__ = [
    "PROTOCOLS",
    "Call",
    "Judge",
    "JudgeConfig",
    "Vote",
    "call_key",
    "seeded_order",
    "vote",
    "vote_values",
]
