"""Any OpenAI-compatible chat server (vLLM serve, llama.cpp server, SGLang, hosted APIs) over plain HTTP.

One ``httpx.AsyncClient`` per batch posts ``{base_url}/chat/completions`` for every request, with a semaphore
capping the requests in flight. Each request is tried at most ``max_retries + 1`` times: 429, 5xx, connection
errors, timeouts and unreadable bodies are retried after an exponential, jittered delay (a ``Retry-After``
header replaces the computed delay); other 4xx answers are final. A request that still fails comes back as
``Completion(finish_reason="error", error=...)`` so one bad request never costs the batch. A 400 saying the
prompt does not fit the model's context is final too, as ``finish_reason="too_long"`` (never retried); when the
server's message gives the numbers and the prompt fits but the budget does not, it is sent once more with the
budget clamped. ``context_length`` is read from ``GET /models`` (vLLM's ``max_model_len``, llama.cpp's
``meta.n_ctx_train``) when the server says. Requests marked ``thinking`` are sent without stop strings.

``generate`` is the synchronous face of ``agenerate``: it runs the coroutine in its own event loop, in a
worker thread when the caller already has a loop running. What the server's answers mean (bodies, context
refusals, ``GET /models``) is read in rmr1.backends.openai_wire. See docs/design/openai-backend.md.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

import httpx

from rmr1.backends.openai_wire import (
    TOP_LOGPROBS,
    Final,
    TooLong,
    context_refusal,
    one_line,
    parse_response,
    window_from_models,
)
from rmr1.backends.window import fit_budget, too_long
from rmr1.errors import ConfigError
from rmr1.probability import VerdictRead, openai_tokens, p_a_from_top
from rmr1.retry import RetriesExhausted, Retry, RetryPolicy, aretry, parse_retry_after
from rmr1.types import Completion, GenerationRequest

# The names this module had before the wire format moved to rmr1.backends.openai_wire (tests import them).
_Retry = Retry  # an attempt failed in a way another attempt may mend (rmr1.retry)
_parse_response = parse_response

T = TypeVar("T")
R = TypeVar("R")


def _run_sync(make: Callable[[], Coroutine[Any, Any, R]]) -> R:
    """Run a coroutine to its end from synchronous code, whether or not this thread already runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    # A loop is already running in this thread (a notebook, an async server): it cannot be re-entered, so
    # the coroutine runs in a fresh loop on a worker thread while this thread waits.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


class OpenAIBackend:
    """Chat completions from an OpenAI-compatible server; see the module doc for the retry policy."""

    # Verdict probabilities from ``logprobs``/``top_logprobs``; forced reads continue the assistant message
    # (vLLM's ``continue_final_message``), see rmr1.probability and read_verdicts.
    supports_logprobs = True

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        concurrency: int = 8,
        timeout: float = 600.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        extra_body: Mapping[str, Any] | None = None,
        transport: Callable[[], httpx.AsyncBaseTransport] | None = None,
        **_: object,
    ) -> None:
        url = base_url or os.environ.get("OPENAI_BASE_URL")
        if not url:
            raise ConfigError("the openai backend needs a server: pass --base-url or set OPENAI_BASE_URL")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"base URL must start with http:// or https://, got {url!r}")
        if concurrency < 1 or timeout <= 0 or max_retries < 0 or backoff < 0 or max_backoff < 0:
            raise ConfigError(
                "openai backend: concurrency and timeout must be positive, retries and backoffs not negative"
            )
        self.base_url = url.rstrip("/")
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY") or None
        self.model = model
        self.concurrency = concurrency
        self.timeout = timeout
        self.retry = RetryPolicy(max_retries=max_retries, backoff=backoff, max_backoff=max_backoff)
        self.extra_body = dict(extra_body or {})
        # Makes each batch's HTTP transport; rmr1.backends.replicas routes over several servers through it.
        self.transport = transport
        self._served: str | None = None
        self._listed: list[str] | None = None  # ids from GET /models, once asked (see served_model)
        self._window: int | None = None
        self._window_read = False

    @property
    def context_length(self) -> int | None:
        """The model's window as ``GET /models`` states it (asked once); None when the server does not say."""
        if not self._window_read:
            self._window_read = True
            try:
                self._window = window_from_models(self._get_models(10.0), self.model or self._served)
            except Exception:  # a server without /models (or a body that is not JSON) leaves it unknown
                self._window = None
        return self._window

    @property
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def _get_models(self, longest: float) -> Any:
        """``GET {base_url}/models`` as JSON, waiting ``longest`` seconds at most; raises when it cannot."""
        return httpx.get(
            f"{self.base_url}/models", headers=self._headers, timeout=min(self.timeout, longest)
        ).json()

    # --- sync face ------------------------------------------------------------------------------------------

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        """Complete each request; one Completion per request, in request order."""
        if not requests:
            return []
        return _run_sync(lambda: self.agenerate(requests))

    def served_model(self) -> str | None:
        """The model id the server says it serves (GET {base_url}/models, asked once), for run.json: the
        named model when the server lists it, else the server's first (a one-model server such as llama.cpp
        answers under any name); None when the server does not say."""
        if self._listed is None:
            self._listed = []
            try:
                listed = self._get_models(30.0).get("data") or []
                self._listed = [
                    m["id"] for m in listed if isinstance(m, dict) and isinstance(m.get("id"), str)
                ]
            except Exception:  # a server without /models still answers chat requests
                pass
        if self.model and self.model in self._listed:
            return self.model
        return self._listed[0] if self._listed else None

    # --- async core -----------------------------------------------------------------------------------------

    async def agenerate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        """Complete each request concurrently (``concurrency`` at most in flight), in request order."""
        if not requests:
            return []
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        transport = self.transport() if self.transport else None
        return await self._each(self._complete, requests, limits=limits, transport=transport)

    async def _each(
        self,
        work: Callable[[httpx.AsyncClient, asyncio.Semaphore, str, T], Awaitable[R]],
        items: Sequence[T],
        **client_options: Any,
    ) -> list[R]:
        """``work`` on every item concurrently over one client, ``concurrency`` at most in flight, in order."""
        async with httpx.AsyncClient(
            base_url=self.base_url + "/",
            headers=self._headers,
            timeout=httpx.Timeout(self.timeout),
            **client_options,
        ) as client:
            model = await self._model_name(client)
            gate = asyncio.Semaphore(self.concurrency)
            return list(await asyncio.gather(*(work(client, gate, model, item) for item in items)))

    async def _model_name(self, client: httpx.AsyncClient) -> str:
        """The named model, else the server's first listed model, else "default" (servers with one model)."""
        if self.model:
            return self.model
        if self._served is None:
            try:
                response = await asyncio.wait_for(client.get("models"), min(self.timeout, 30.0))
                listed = response.json().get("data") or []
                first = listed[0].get("id") if listed and isinstance(listed[0], dict) else None
                if isinstance(first, str) and first:
                    self._served = first
            except Exception:  # a server without /models still answers chat requests
                pass
        return self._served or "default"

    def payload(self, model: str, request: GenerationRequest) -> dict[str, Any]:
        """The JSON body for one request."""
        sp = request.sampling
        body: dict[str, Any] = {
            "model": model,
            "messages": [m.to_dict() for m in request.messages],
            "max_tokens": sp.max_new_tokens,
            "temperature": sp.temperature,
            "top_p": sp.top_p,
        }
        if sp.seed is not None:
            body["seed"] = sp.seed
        if sp.stop and not sp.thinking:  # a server-side stop would also fire on a verdict drafted in thought
            body["stop"] = list(sp.stop)
        if sp.logprobs:
            body.update(logprobs=True, top_logprobs=TOP_LOGPROBS)
        body.update(self.extra_body)
        return body

    # --- verdict reads (rmr1.probability) -------------------------------------------------------------------

    def read_verdicts(self, reads: Sequence[VerdictRead]) -> list[float | None]:
        """P(A) after each prefix: one continuation request each, asking for one token's top logprobs."""
        if not reads:
            return []
        return _run_sync(lambda: self._each(self._read, reads))

    async def _read(
        self, client: httpx.AsyncClient, gate: asyncio.Semaphore, model: str, read: VerdictRead
    ) -> float | None:
        body = self.payload(model, read.request)
        body.pop("stop", None)
        body.pop("seed", None)
        body.update(
            messages=body["messages"] + [{"role": "assistant", "content": read.prefix}],
            max_tokens=1,
            temperature=0.0,
            logprobs=True,
            top_logprobs=TOP_LOGPROBS,
            continue_final_message=True,
            add_generation_prompt=False,
        )

        async def attempt() -> httpx.Response:
            try:
                async with gate:
                    response = await client.post("chat/completions", json=body)
            except httpx.HTTPError as exc:
                raise Retry(type(exc).__name__) from None
            if response.status_code == 429 or response.status_code >= 500:
                raise Retry(
                    f"HTTP {response.status_code}", parse_retry_after(response.headers.get("retry-after"))
                )
            return response

        try:
            response = await aretry(attempt, self.retry)
        except RetriesExhausted:
            return None  # a read that never succeeds leaves p_a unknown, it does not stop the run
        if response.status_code >= 400:
            raise ConfigError(
                f"{self.base_url} cannot continue an assistant message (continue_final_message): "
                f"HTTP {response.status_code}; forced verdicts need a vLLM-style server, use --verdict logprob"
            )
        tokens = openai_tokens((response.json().get("choices") or [{}])[0].get("logprobs"))
        return p_a_from_top(tokens[0][2]) if tokens else None

    async def _complete(
        self, client: httpx.AsyncClient, gate: asyncio.Semaphore, model: str, request: GenerationRequest
    ) -> Completion:
        body = self.payload(model, request)
        started = time.perf_counter()

        async def attempt() -> Completion:
            async with gate:  # held per attempt, so a request waiting out its backoff frees its slot
                return await self._attempt(client, body, request.sampling.stop)

        try:
            result = await aretry(attempt, self.retry)
        except (Final, RetriesExhausted) as exc:
            return self._failed(str(exc), started)
        except TooLong as exc:
            return await self._refused_for_context(client, gate, body, exc, started)
        except Exception as exc:  # a surprise in one response must not lose the other requests
            return self._failed(f"unexpected {type(exc).__name__}: {exc}", started)
        return replace(result, latency_s=time.perf_counter() - started)

    async def _attempt(
        self, client: httpx.AsyncClient, body: dict[str, Any], stops: Sequence[str]
    ) -> Completion:
        try:
            # httpx's timeout bounds each socket read; wait_for bounds the whole exchange, so a server that
            # trickles bytes forever is cut off too.
            response = await asyncio.wait_for(client.post("chat/completions", json=body), self.timeout)
        except (asyncio.TimeoutError, httpx.TimeoutException):
            raise Retry(f"no response within {self.timeout:g}s") from None
        except httpx.TransportError as exc:
            raise Retry(f"connection error: {type(exc).__name__}: {one_line(str(exc))}") from None
        except httpx.HTTPError as exc:
            raise Final(f"request failed: {type(exc).__name__}: {one_line(str(exc))}") from None
        status = response.status_code
        if status == 429 or status >= 500:
            raise Retry(
                f"HTTP {status}: {one_line(response.text)}",
                parse_retry_after(response.headers.get("retry-after")),
            )
        refusal = context_refusal(status, response.text)
        if refusal is not None:
            raise refusal
        if status >= 400:
            raise Final(f"HTTP {status}: {one_line(response.text)}")
        return parse_response(response.content, stops if "stop" in body else ())

    async def _refused_for_context(
        self,
        client: httpx.AsyncClient,
        gate: asyncio.Semaphore,
        body: dict[str, Any],
        refusal: TooLong,
        started: float,
    ) -> Completion:
        """A context refusal is final; only a prompt that fits with a smaller budget is sent once more."""
        prompt, window = refusal.prompt_tokens, refusal.window or self._window
        asked = int(body.get("max_tokens") or 0)
        budget = fit_budget(prompt, asked, window) if prompt else None
        if prompt is None or budget is None or budget >= asked:
            return too_long(prompt or 0, window, f"server said: {refusal}")
        try:
            async with gate:
                clamped = {**body, "max_tokens": budget}
                result = await self._attempt(client, clamped, tuple(body.get("stop") or ()))
        except TooLong as again:
            return too_long(again.prompt_tokens or prompt, again.window or window, f"server said: {again}")
        except (Retry, Final) as exc:
            return self._failed(f"after clamping max_tokens to {budget}: {exc}", started)
        return replace(result, latency_s=time.perf_counter() - started)

    @staticmethod
    def _failed(why: str, started: float) -> Completion:
        return Completion(
            text="", finish_reason="error", latency_s=time.perf_counter() - started, error=one_line(why)
        )


def split_urls(value: str | Sequence[str] | None) -> list[str]:
    """``--base-url`` values as a list: repeated flags and comma-separated URLs alike, blanks dropped."""
    items = [value] if isinstance(value, str) else list(value or [])
    return [url.strip() for item in items for url in item.split(",") if url.strip()]


def openai_backend(
    model: str | None = None, *, base_url: str | Sequence[str] | None = None, **options: Any
) -> Any:
    """The registry's ``openai`` factory: one server, or a fleet of replicas when several URLs are given."""
    urls = split_urls(base_url or os.environ.get("OPENAI_BASE_URL"))
    if len(urls) > 1:
        from rmr1.backends.replicas import ReplicaBackend

        return ReplicaBackend(model, base_urls=urls, **options)
    return OpenAIBackend(model, base_url=urls[0] if urls else None, **options)


__all__ = ["OpenAIBackend", "RetryPolicy", "openai_backend", "parse_retry_after", "split_urls"]
