"""The FastAPI app: ``create_app(judge, settings)``.

Each request's judging runs in a worker thread (the judge, tournaments and rewards are plain synchronous
code); their backend calls meet in one ``MicroBatcher``, which runs the model once for whatever concurrent
requests have arrived. A request has ``request_timeout`` seconds: past it the client gets 504 and its queued
work is dropped. Shutdown (SIGINT/SIGTERM under uvicorn) stops taking work, lets what is queued finish, then
stops the batcher; the caller closes the backend it made.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import Depends, FastAPI, Request

from rmr1.backends import Backend
from rmr1.errors import ConfigError, InputError, Rmr1Error
from rmr1.judge import Judge, vote
from rmr1.prompts import get_template
from rmr1.rewards import Group, openrlhf_rewards, score_groups
from rmr1.serve import schemas as s
from rmr1.serve.batcher import Cancelled, Closed, DeadlineExceeded, MicroBatcher, Overloaded, Ticket
from rmr1.serve.guards import BodyLimit, TooLarge, bearer_check, install_error_handlers, protected_docs
from rmr1.tournament import run_tournaments
from rmr1.types import CandidateSet, Judgment, Message, as_messages
from rmr1.verdicts import parse_trace

if TYPE_CHECKING:
    from rmr1.serve.vllm_engine import AsyncEngineBatcher

T = TypeVar("T")


@dataclass(frozen=True)
class ServeSettings:
    """How the server listens and protects itself. Limits answer 413; time limits 504."""

    host: str = "127.0.0.1"  # loopback unless told otherwise
    port: int = 8000
    token: str | None = None  # when set, every endpoint but /health needs "Authorization: Bearer <token>"
    max_body_bytes: int = 8 * 1024 * 1024
    batch_window_ms: float = 10.0  # how long the batcher waits for company after the oldest queued request
    max_batch: int = 32  # backend requests per model call
    request_timeout: float = 300.0  # seconds per HTTP request
    max_candidates: int = 64  # responses per /v1/rank request or /v1/score group
    max_items: int = 4096  # groups per /v1/score, queries per /get_reward
    max_samples: int = 8  # samples (voting) or n (chat) per request
    max_new_tokens: int | None = None  # cap on per-request budgets (default: the judge's own max_new_tokens)
    max_concurrency: int = 64  # requests worked on at once; more wait for a worker thread
    max_queue: int = 4096  # backend requests waiting for a batch before new ones get 503
    model_name: str = "rmr1-judge"  # the name /v1/models and chat responses report


class JudgeFailure(Rmr1Error):
    """An unexpected fault while judging, reported as 500 with its reason."""


# asyncio.TimeoutError is the builtin TimeoutError only from Python 3.11; before, all three are distinct.
_TIMEOUTS = (TimeoutError, asyncio.TimeoutError, concurrent.futures.TimeoutError)


def _result(future: asyncio.Future[T]) -> T:
    """The worker's answer, its failure mapped onto the error kinds the handlers turn into statuses."""
    try:
        return future.result()
    except Rmr1Error:
        raise
    except _TIMEOUTS as exc:  # a backend's own timeout (an upstream server) is a timeout for our client too
        raise DeadlineExceeded(f"the backend timed out: {str(exc)[:300] or type(exc).__name__}") from None
    except ValueError as exc:  # rmr1's own checks raise InputError; a bare ValueError is bad input too
        raise InputError(str(exc)) from None
    except Exception as exc:
        raise JudgeFailure(f"{type(exc).__name__}: {str(exc)[:300]}") from exc


def _quiet(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


async def _client_gone(request: Request) -> None:
    """Return once the HTTP client has disconnected (polled: Starlette offers no callback)."""
    while not await request.is_disconnected():
        await asyncio.sleep(0.2)


class Service:
    """The state one app holds: the judge's settings, the batcher, the worker threads."""

    def __init__(self, judge: Judge, settings: ServeSettings) -> None:
        self.judge = judge
        self.settings = settings
        self.batcher = _pick_batcher(judge.backend, settings)
        self.executor = ThreadPoolExecutor(settings.max_concurrency, thread_name_prefix="rmr1-request")
        self.max_new_tokens = settings.max_new_tokens or judge.config.max_new_tokens
        self.started = time.monotonic()
        self.in_flight = 0

    def judge_for(self, options: s.JudgeOptions) -> Judge:
        """A judge on the batcher with this request's overrides of the server's settings."""
        chosen = options.model_dump(exclude_none=True)
        template = get_template(chosen.pop("template")) if "template" in chosen else self.judge.template
        if chosen.get("samples", 1) > self.settings.max_samples:
            raise InputError(
                f"at most {self.settings.max_samples} samples per request", field="options.samples"
            )
        if chosen.get("max_new_tokens", 0) > self.max_new_tokens:
            raise InputError(
                f"over the server's limit of {self.max_new_tokens}", field="options.max_new_tokens"
            )
        config = dataclasses.replace(self.judge.config, **chosen)
        return Judge(self.batcher, template, config)

    async def run(self, fn: Callable[[], T], request: Request | None = None) -> T:
        """Run ``fn`` on a worker thread under the request timeout, dropping its work if the client leaves."""
        timeout = self.settings.request_timeout
        if self.batcher.closed:
            raise Closed("the server is shutting down")
        ticket = Ticket.within(timeout)

        def work() -> T:
            with self.batcher.watch(ticket):
                if ticket.given_up:  # it waited for a worker thread longer than its caller did
                    self.batcher.stats.not_started += 1
                    raise Cancelled("the caller gave up before its work began")
                ticket.started = True  # from here a timeout is slowness (504), not saturation (503)
                return fn()

        self.in_flight += 1
        future = asyncio.get_running_loop().run_in_executor(self.executor, work)
        gone = asyncio.ensure_future(_client_gone(request)) if request is not None else None
        try:
            done, _ = await asyncio.wait(
                {future} | ({gone} if gone else set()), timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if future in done:
                return _result(future)
            self.batcher.cancel(ticket)
            future.add_done_callback(_quiet)  # its late failure is expected; nobody reads it
            if gone is not None and gone in done:
                raise Cancelled("the client closed the connection; its work was dropped")
            if ticket.saturated:
                raise Overloaded(f"the server stayed saturated for the request timeout of {timeout:g} s")
            raise DeadlineExceeded(f"no answer within the server's request timeout of {timeout:g} s")
        except asyncio.CancelledError:  # uvicorn gave up on the request (shutdown past its grace period)
            self.batcher.cancel(ticket)
            future.add_done_callback(_quiet)
            raise
        finally:
            if gone is not None:
                gone.cancel()
            self.in_flight -= 1

    def check_size(self, count: int, limit: int, what: str) -> None:
        if count > limit:
            raise TooLarge(f"{count} {what} is over the server's limit of {limit}")

    def close(self) -> None:
        self.batcher.close(drain=True)
        self.executor.shutdown(wait=False, cancel_futures=True)


def _pick_batcher(backend: Backend, settings: ServeSettings) -> MicroBatcher | AsyncEngineBatcher:
    """vLLM batches continuously by itself: its requests go straight to its async engine, unmerged."""
    from rmr1.backends.vllm import VLLMBackend

    if isinstance(backend, VLLMBackend):
        from rmr1.serve.vllm_engine import AsyncEngineBatcher

        return AsyncEngineBatcher(backend, max_queue=settings.max_queue)
    return MicroBatcher(
        backend,
        window_ms=settings.batch_window_ms,
        max_batch=settings.max_batch,
        max_queue=settings.max_queue,
    )


def _context(prompt: str | None, messages: list[s.ChatTurn] | None) -> tuple[Message, ...]:
    return as_messages(prompt if prompt is not None else [m.model_dump() for m in messages or []])


def _usage(judgments: list[Judgment]) -> s.Usage:
    p = sum(j.prompt_tokens for j in judgments)
    c = sum(j.completion_tokens for j in judgments)
    return s.Usage(prompt_tokens=p, completion_tokens=c, total_tokens=p + c)


def _status(j: Judgment) -> str:
    if j.finish_reason == "error":
        return "error"
    if j.verdict is not None:
        return "parsed"
    return "truncated" if j.finish_reason == "length" else "unparsed"


def judgment_out(j: Judgment, parse_mode: str) -> s.JudgmentOut:
    trace = parse_trace(j.completion, parse_mode)
    preferred = None if j.correct is None else (0 if j.correct else 1)
    parts = {k: v for k, v in dataclasses.asdict(trace).items() if k != "verdict"}
    parts["rubric_items"] = [{"text": r.text, "weight": r.weight} for r in trace.rubric_items]
    return s.JudgmentOut(
        order=j.order,
        sample=j.sample,
        verdict=j.verdict,  # type: ignore[arg-type]
        preferred=preferred,
        parse_status=_status(j),  # type: ignore[arg-type]
        parse_error=j.parse_error,
        finish_reason=j.finish_reason,
        completion=j.completion,
        trace=s.Trace(**parts),
        prompt_tokens=j.prompt_tokens,
        completion_tokens=j.completion_tokens,
        latency_s=j.latency_s,
        p_a=j.p_a,
        forced=j.forced,
    )


def _judge_response(judgments: list[Judgment], judge: Judge, model: str) -> s.JudgeResponse:
    v = vote(judgments)
    winner = None if v.correct is None else (0 if v.correct else 1)
    return s.JudgeResponse(
        verdict=None if winner is None else "AB"[winner],  # type: ignore[arg-type]
        winner=winner,
        confidence=v.confidence,
        probability=v.probability,
        parse_status="parsed" if winner is not None else "unparsed",
        votes=v.votes,
        unparsed=v.unparsed,
        judgments=[judgment_out(j, judge.config.parse_mode) for j in judgments],
        usage=_usage(judgments),
        model=model,
    )


def create_app(judge: Judge, settings: ServeSettings | None = None) -> FastAPI:
    """The HTTP app around ``judge`` (its backend is wrapped in a micro-batcher; see the module doc)."""
    settings = settings or ServeSettings()
    if settings.max_body_bytes < 1 or settings.request_timeout <= 0:
        raise ConfigError("max_body_bytes and request_timeout must be positive")
    service = Service(judge, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await asyncio.to_thread(service.close)

    from rmr1 import __version__

    app = FastAPI(
        title="rmr1 judge server",
        version=__version__,
        lifespan=lifespan,
        description="Pairwise reasoning judge: verdicts, rankings, RL rewards (OpenRLHF shape) and an "
        "OpenAI-compatible chat endpoint.",
        # with a token, the schema and its pages are served behind it instead (protected_docs)
        openapi_url=None if settings.token else "/openapi.json",
        docs_url=None if settings.token else "/docs",
        redoc_url=None if settings.token else "/redoc",
    )
    app.state.service = service
    install_error_handlers(app)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    auth = [Depends(bearer_check(settings.token))]
    if settings.token:
        protected_docs(app, auth)
    _health_route(app, service)
    _judge_routes(app, service, auth)
    _reward_routes(app, service, auth)
    from rmr1.serve.chat import chat_routes

    chat_routes(app, service, auth)
    return app


def _health_route(app: FastAPI, service: Service) -> None:
    model = service.settings.model_name

    @app.get("/health", response_model=s.HealthResponse, tags=["server"])
    async def health() -> s.HealthResponse:
        st = service.batcher.stats
        batcher = s.BatcherOut(
            window_ms=service.batcher.window_s * 1000,
            max_batch=service.batcher.max_batch,
            pending=service.batcher.pending,
            **dataclasses.asdict(st),
        )
        from rmr1 import __version__

        return s.HealthResponse(
            status="shutting_down" if service.batcher.closed else "ok",
            model=model,
            backend=type(service.judge.backend).__name__,
            version=__version__,
            uptime_s=round(time.monotonic() - service.started, 3),
            in_flight=service.in_flight,
            batcher=batcher,
        )


def _judge_routes(app: FastAPI, service: Service, auth: list[Any]) -> None:
    model = service.settings.model_name

    @app.post("/v1/judge", response_model=s.JudgeResponse, dependencies=auth, tags=["judge"])
    async def judge_pair(body: s.JudgeRequest, request: Request) -> s.JudgeResponse:
        judge = service.judge_for(body.options)
        context = _context(body.prompt, body.messages)
        judgments = await service.run(
            lambda: judge.judge_pair(context, body.responses[0], body.responses[1]), request
        )
        return _judge_response(judgments, judge, model)

    @app.post("/v1/rank", response_model=s.RankResponse, dependencies=auth, tags=["judge"])
    async def rank(body: s.RankRequest, request: Request) -> s.RankResponse:
        service.check_size(len(body.responses), service.settings.max_candidates, "responses")
        judge = service.judge_for(body.options)
        cset = CandidateSet("rank", _context(body.prompt, body.messages), tuple(body.responses))
        result = (
            await service.run(
                lambda: run_tournaments(judge, [cset], method=body.method, scoring=body.scoring), request
            )
        )[0]
        judgments = [j for m in result.matches for j in m.judgments]
        return s.RankResponse(
            method=result.method,
            scoring=result.scoring,
            ranking=list(result.ranking),
            scores=list(result.scores),
            rewards=list(result.rewards),
            wins=list(result.wins),
            best=result.winner,
            comparisons=result.comparisons,
            calls=result.calls,
            draws=result.draws,
            unparsed=result.unparsed,
            coin_flips=result.coin_flips,
            matches=[
                s.MatchOut(i=m.i, j=m.j, winner=m.winner, unparsed=m.unparsed, round=m.round)
                for m in result.matches
            ],
            usage=_usage(judgments),
            model=model,
        )


def _reward_routes(app: FastAPI, service: Service, auth: list[Any]) -> None:
    @app.post("/v1/score", response_model=s.ScoreResponse, dependencies=auth, tags=["rewards"])
    async def score(body: s.ScoreRequest, request: Request) -> s.ScoreResponse:
        service.check_size(len(body.groups), service.settings.max_items, "groups")
        for g in body.groups:
            service.check_size(len(g.responses), service.settings.max_candidates, "responses in a group")
        judge = service.judge_for(body.options)
        groups = [Group(_context(g.prompt, g.messages), tuple(g.responses), g.reference) for g in body.groups]
        scores = await service.run(lambda: score_groups(judge, groups, body.method), request)
        return s.ScoreResponse(method=body.method, results=[s.GroupScoreOut(**x.to_dict()) for x in scores])

    @app.post("/get_reward", response_model=s.RewardResponse, dependencies=auth, tags=["rewards"])
    async def get_reward(body: s.RewardRequest, request: Request) -> s.RewardResponse:
        service.check_size(len(body.query), service.settings.max_items, "queries")
        judge = Judge(service.batcher, service.judge.template, service.judge.config)
        result = await service.run(
            lambda: openrlhf_rewards(judge, body.query, body.prompts, body.labels, body.method), request
        )
        return s.RewardResponse(**result)


__all__ = ["ServeSettings", "Service", "create_app"]
