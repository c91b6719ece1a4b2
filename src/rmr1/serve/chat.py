"""The OpenAI-compatible surface: ``POST /v1/chat/completions`` and ``GET /v1/models``.

Decision: the chat endpoint is a plain pass-through to the judge's model. It does not look for a pair inside
free text; a client that wants a verdict renders the judge prompt itself (rmr1's own ``openai`` backend does,
so ``rmr1 judge --backend openai --base-url http://127.0.0.1:8000/v1`` can use this server as its model) or
calls ``/v1/judge``. Its completions share the micro-batcher with the judge endpoints. As a convenience each
response carries an extra ``rmr1`` list: the verdict the strict parser reads in each choice (null when none).

Differences from the OpenAI API: greedy decoding unless ``temperature`` is given; no streaming (400); ``n``
and ``max_tokens`` are capped by the server (400 past the caps); the ``model`` field is accepted whatever it
names and the response reports the served model's name.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from typing import Any

from fastapi import FastAPI, Request

from rmr1.errors import InputError
from rmr1.rewards import prompt_messages
from rmr1.serve import schemas as s
from rmr1.serve.app import JudgeFailure, Service
from rmr1.types import Completion, GenerationRequest, SamplingParams
from rmr1.verdicts import parse_verdict


def sampling_for(body: s.ChatRequest, service: Service) -> SamplingParams:
    """The chat request's sampling, within the server's caps; greedy unless the client asks otherwise."""
    budget = body.max_completion_tokens or body.max_tokens or service.max_new_tokens
    if budget > service.max_new_tokens:
        raise InputError(
            f"{budget} is over the server's limit of {service.max_new_tokens}", field="max_tokens"
        )
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    return SamplingParams(
        max_new_tokens=budget,
        temperature=body.temperature or 0.0,
        top_p=body.top_p if body.top_p is not None else 1.0,
        seed=body.seed,
        stop=stop,
    )


def chat_requests(body: s.ChatRequest, service: Service) -> list[GenerationRequest]:
    if body.stream:
        raise InputError("streaming is not supported; send stream=false", field="stream")
    if body.n > service.settings.max_samples:
        raise InputError(f"at most {service.settings.max_samples} choices per request", field="n")
    messages = prompt_messages([m.model_dump() for m in body.messages], "messages")
    base = sampling_for(body, service)
    out = []
    for k in range(body.n):
        # Greedy choices would all be equal; sampled ones get distinct seeds so they differ reproducibly.
        seed = None if base.temperature == 0 else (base.seed or 0) + k
        out.append(GenerationRequest(messages, dataclasses.replace(base, seed=seed), key=f"chat-{k}"))
    return out


def chat_response(completions: list[Completion], model: str) -> s.ChatResponse:
    failed = [c for c in completions if c.finish_reason == "error"]
    if failed:
        raise JudgeFailure(f"the model failed: {failed[0].error or 'unknown error'}")
    prompt_tokens = completions[0].prompt_tokens if completions else 0
    completion_tokens = sum(c.completion_tokens for c in completions)
    choices = [
        s.ChatChoice(index=k, message=s.ChatMessageOut(content=c.full_text), finish_reason=c.finish_reason)
        for k, c in enumerate(completions)
    ]
    verdicts = []
    for c in completions:
        v = parse_verdict(c.full_text, "strict")
        verdicts.append(s.ChatVerdict(verdict=v.label, parse_error=v.reason))  # type: ignore[arg-type]
    return s.ChatResponse(
        id=f"chatcmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        model=model,
        choices=choices,
        rmr1=verdicts,
        usage=s.Usage(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
        ),
    )


def chat_routes(app: FastAPI, service: Service, auth: list[Any]) -> None:
    model = service.settings.model_name
    created = int(time.time())

    @app.post("/v1/chat/completions", response_model=s.ChatResponse, dependencies=auth, tags=["openai"])
    async def chat_completions(body: s.ChatRequest, request: Request) -> s.ChatResponse:
        requests = chat_requests(body, service)
        completions = await service.run(lambda: service.batcher.generate(requests), request)
        return chat_response(completions, model)

    @app.get("/v1/models", response_model=s.ModelList, dependencies=auth, tags=["openai"])
    async def models() -> s.ModelList:
        return s.ModelList(data=[s.ModelCard(id=model, created=created)])


__all__ = ["chat_requests", "chat_response", "chat_routes", "sampling_for"]
