"""The HTTP API's request and response bodies (pydantic), at module level so the OpenAPI schema names them.

rmr1's own endpoints reject unknown fields (a misspelt option should not pass silently); the OpenRLHF and
OpenAI-compatible endpoints accept and ignore them, since their clients send fields rmr1 has no use for.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_STRICT = ConfigDict(extra="forbid")


class ChatTurn(BaseModel):
    model_config = _STRICT
    role: Literal["system", "user", "assistant"]
    content: str


class JudgeOptions(BaseModel):
    """Per-request overrides of the server's judge settings; unset fields keep the server's values."""

    model_config = _STRICT
    protocol: Literal["single", "both"] | None = Field(
        default=None, description="one seeded order, or AB and BA"
    )
    samples: int | None = Field(default=None, ge=1, description="samples per order (majority vote)")
    seed: int | None = Field(default=None, description="seed of the order and sampling")
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_new_tokens: int | None = Field(default=None, ge=1, description="capped by the server's own limit")
    parse_mode: Literal["strict", "paper"] | None = None
    template: str | None = Field(default=None, description="a built-in template name")
    verdict: Literal["generate", "logprob", "forced"] | None = Field(
        default=None, description="generate; logprob: also read P(A); forced: also force a missing verdict"
    )


def _one_prompt(prompt: str | None, messages: list[ChatTurn] | None) -> None:
    if (prompt is None) == (messages is None):
        raise ValueError("give exactly one of 'prompt' (a string) or 'messages' (a list of turns)")
    if prompt is not None and not prompt.strip():
        raise ValueError("'prompt' is empty")
    if messages is not None and not any(m.role == "user" for m in messages):
        raise ValueError("'messages' has no user turn")


def _no_blank(values: list[str]) -> list[str]:
    for k, text in enumerate(values):
        if not text.strip():
            raise ValueError(f"responses[{k}] is empty")
    return values


class JudgeRequest(BaseModel):
    model_config = _STRICT
    prompt: str | None = Field(default=None, description="the question, as one user turn")
    messages: list[ChatTurn] | None = Field(default=None, description="the conversation the responses answer")
    responses: list[str] = Field(min_length=2, max_length=2, description="[a, b]")
    options: JudgeOptions = Field(default_factory=lambda: JudgeOptions())

    _check_responses = field_validator("responses")(_no_blank)

    @model_validator(mode="after")
    def _prompt_given(self) -> JudgeRequest:
        _one_prompt(self.prompt, self.messages)
        return self


class RankRequest(BaseModel):
    model_config = _STRICT
    prompt: str | None = None
    messages: list[ChatTurn] | None = None
    responses: list[str] = Field(min_length=2, description="the n candidates")
    method: Literal["knockout", "round_robin"] = "knockout"
    scoring: Literal["win_rate", "bradley_terry", "elo"] = Field(
        default="win_rate", description="round robin scores"
    )
    options: JudgeOptions = Field(default_factory=lambda: JudgeOptions())

    _check_responses = field_validator("responses")(_no_blank)

    @model_validator(mode="after")
    def _prompt_given(self) -> RankRequest:
        _one_prompt(self.prompt, self.messages)
        return self


class ScoreGroup(BaseModel):
    model_config = _STRICT
    prompt: str | None = None
    messages: list[ChatTurn] | None = None
    responses: list[str] = Field(min_length=1, description="empty strings allowed: they lose by walkover")
    reference: str | None = Field(default=None, description="needed by method 'reference'")

    @model_validator(mode="after")
    def _prompt_given(self) -> ScoreGroup:
        _one_prompt(self.prompt, self.messages)
        return self


class ScoreRequest(BaseModel):
    model_config = _STRICT
    groups: list[ScoreGroup] = Field(min_length=1)
    method: Literal["round_robin", "knockout", "reference", "bradley_terry_prob"] = "round_robin"
    options: JudgeOptions = Field(default_factory=lambda: JudgeOptions())


class RewardRequest(BaseModel):
    """OpenRLHF's remote reward request: ``query`` = prompt + response, as the trainer decoded them."""

    model_config = ConfigDict(extra="allow")
    query: list[str] = Field(min_length=1)
    prompts: list[str] | None = None
    labels: list[Any] | None = None
    method: Literal["auto", "round_robin", "knockout", "reference"] = "auto"


# --- responses --------------------------------------------------------------------------------------------


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class RubricLine(BaseModel):
    text: str
    weight: float | None


class Trace(BaseModel):
    """The Chain-of-Rubrics parts of one judge output (labels A/B as shown, see ``order``)."""

    think: str = ""
    type: str | None = None
    rubric: str = ""
    rubric_items: list[RubricLine] = Field(default_factory=list)
    justify: str = ""
    solution: str = ""
    eval: str = ""
    quotes_a: list[str] = Field(default_factory=list)
    quotes_b: list[str] = Field(default_factory=list)
    summaries_a: list[str] = Field(default_factory=list)
    summaries_b: list[str] = Field(default_factory=list)


class JudgmentOut(BaseModel):
    order: str = Field(description="AB: responses[0] was shown as A; BA: as B")
    sample: int
    verdict: Literal["A", "B"] | None = Field(description="the label as shown")
    preferred: int | None = Field(description="index into responses of the preferred one")
    parse_status: Literal["parsed", "unparsed", "truncated", "error"]
    parse_error: str | None
    finish_reason: str
    completion: str
    trace: Trace
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    p_a: float | None = Field(default=None, description="P(A) at the verdict slot, when read")
    forced: bool = Field(default=False, description="the verdict was read after a forced verdict prefix")


class JudgeResponse(BaseModel):
    verdict: Literal["A", "B"] | None = Field(
        description="A: responses[0] is better; B: responses[1]; null: none"
    )
    winner: int | None
    confidence: float
    probability: float | None = Field(
        default=None, description="mean P(responses[0] is better) over the samples that read P(A)"
    )
    parse_status: Literal["parsed", "unparsed"] = Field(description="whether the vote named a winner")
    votes: int
    unparsed: int
    judgments: list[JudgmentOut]
    usage: Usage
    model: str


class MatchOut(BaseModel):
    i: int
    j: int
    winner: int | None
    unparsed: bool
    round: int


class RankResponse(BaseModel):
    method: str
    scoring: str
    ranking: list[int] = Field(description="indices into responses, best first")
    scores: list[float]
    rewards: list[float] = Field(description="one scalar per response in [-1, 1]")
    wins: list[float]
    best: int
    comparisons: int
    calls: int
    draws: int
    unparsed: int
    coin_flips: int
    matches: list[MatchOut]
    usage: Usage
    model: str


class GroupScoreOut(BaseModel):
    rewards: list[float]
    comparisons: list[int]
    draws: list[int]
    unparsed: list[int]
    calls: int


class ScoreResponse(BaseModel):
    method: str
    results: list[GroupScoreOut]


class RewardResponse(BaseModel):
    rewards: list[float]
    scores: list[float]
    extra_logs: dict[str, list[float]]
    method: str


class BatcherOut(BaseModel):
    window_ms: float
    max_batch: int
    pending: int
    batches: int
    requests: int
    largest_batch: int
    expired: int = Field(description="submissions dropped at their deadline")
    cancelled: int = Field(description="submissions dropped because their client gave up")
    not_started: int = Field(description="requests not begun because their client had already given up")
    dropped_requests: int = Field(description="backend requests never run because of the three above")
    failed_batches: int
    rerun_alone: int = Field(description="submissions re-run on their own after a merged model call raised")
    busy_s: float


class HealthResponse(BaseModel):
    status: Literal["ok", "shutting_down"]
    model: str
    backend: str
    version: str
    uptime_s: float
    in_flight: int
    batcher: BatcherOut


# --- OpenAI-compatible chat -------------------------------------------------------------------------------


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "user", "assistant"]
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str | None = None
    messages: list[ChatMessageIn] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int = Field(default=1, ge=1)
    stream: bool = False


class ChatMessageOut(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int
    message: ChatMessageOut
    finish_reason: str
    logprobs: None = None


class ChatVerdict(BaseModel):
    """rmr1's extra field: the verdict in each choice, read by the strict parser (null when none)."""

    verdict: Literal["A", "B"] | None
    parse_error: str | None


class ChatResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    rmr1: list[ChatVerdict]


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "rmr1"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    code: int


class ErrorResponse(BaseModel):
    error: ErrorDetail
