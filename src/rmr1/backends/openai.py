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
worker thread when the caller already has a loop running. See docs/design/openai-backend.md.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import httpx

from rmr1.backends.window import fit_budget, too_long
from rmr1.errors import ConfigError
from rmr1.probability import VerdictRead, openai_tokens, p_a_from_tokens, p_a_from_top
from rmr1.retry import RetriesExhausted, Retry, RetryPolicy, aretry, parse_retry_after
from rmr1.types import Completion, GenerationRequest

TOP_LOGPROBS = 20  # alternatives asked per token: the other verdict letter is almost always among them
_SNIPPET = 200  # characters of a server's error body kept in the one-line error
_CLOSING_TAG = re.compile(r"</([A-Za-z][\w-]*)>")


_Retry = Retry  # an attempt failed in a way another attempt may mend (rmr1.retry)


class _Final(Exception):
    """An attempt failed in a way no retry will mend (a 4xx other than 429)."""


class _TooLong(Exception):
    """The server refused the request for the model's context; the numbers it gave, when it gave them."""

    def __init__(self, why: str, prompt_tokens: int | None, window: int | None) -> None:
        super().__init__(why)
        self.prompt_tokens = prompt_tokens
        self.window = window


# How servers say a request does not fit: vLLM, OpenAI, SGLang, llama.cpp ("exceed_context_size_error").
_CONTEXT_ERROR = re.compile(
    r"context[ _](?:length|size|window)|maximum model length|exceed_context_size|longer than the model",
    re.IGNORECASE,
)
_WINDOW_SAYS = (
    re.compile(r"maximum context length is (\d+)", re.IGNORECASE),
    re.compile(r"maximum model length of (\d+)", re.IGNORECASE),
    re.compile(r"context length \((\d+) tokens\)", re.IGNORECASE),
    re.compile(r'"n_ctx"\s*:\s*(\d+)'),
)
_PROMPT_SAYS = (
    re.compile(r"(\d+) in the messages", re.IGNORECASE),
    re.compile(r"has (\d+) input tokens", re.IGNORECASE),
    re.compile(r"prompt \(length (\d+)\)", re.IGNORECASE),
    re.compile(r"messages resulted in (\d+) tokens", re.IGNORECASE),
    re.compile(r"input \((\d+) tokens\)", re.IGNORECASE),
    re.compile(r'"n_prompt_tokens"\s*:\s*(\d+)'),
)


def _first_number(patterns: Sequence[re.Pattern[str]], text: str) -> int | None:
    for pattern in patterns:
        found = pattern.search(text)
        if found:
            return int(found.group(1))
    return None


def context_refusal(status: int, body: str) -> _TooLong | None:
    """A 4xx that says the request does not fit the model's context, with the numbers it states."""
    if status not in (400, 413, 422) or not _CONTEXT_ERROR.search(body):
        return None
    return _TooLong(_one_line(body), _first_number(_PROMPT_SAYS, body), _first_number(_WINDOW_SAYS, body))


def window_from_models(data: Any, model: str | None) -> int | None:
    """The context window a ``GET /models`` answer states for ``model`` (else for its first model)."""
    listed = data.get("data") if isinstance(data, dict) else None
    entries = [e for e in listed or [] if isinstance(e, dict)]
    entry = next((e for e in entries if e.get("id") == model), entries[0] if entries else None)
    if entry is None:
        return None
    meta = entry.get("meta")
    meta = meta if isinstance(meta, dict) else {}
    for value in (
        entry.get("max_model_len"),
        entry.get("context_length"),
        meta.get("n_ctx"),
        meta.get("n_ctx_train"),
    ):
        if isinstance(value, int) and value > 0:
            return value
    return None


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _SNIPPET else flat[:_SNIPPET] + "..."


def _restore_stop(text: str, choice: Mapping[str, Any], stops: Sequence[str]) -> str:
    """Put back the stop string the server cut off, so ``</answer>`` survives as with the local backends.

    vLLM names the matched stop in ``stop_reason`` (None for end-of-turn), SGLang in ``matched_stop``. Other
    servers (llama.cpp, hosted APIs) say nothing, and a stop and an end-of-turn look alike; then only a
    closing-tag stop is put back, and only when the text leaves that tag open, so a model that simply ended
    its turn never gets a tag it did not write.
    """
    if not stops or any(text.endswith(s) for s in stops):
        return text
    for key in ("stop_reason", "matched_stop"):
        if key in choice:
            matched = choice[key]
            return text + matched if isinstance(matched, str) and matched in stops else text
    for stop in stops:
        closing = _CLOSING_TAG.fullmatch(stop)
        if closing and text.rfind(f"<{closing.group(1)}>") > text.rfind(stop):
            return text + stop
    return text


def _parse_response(body: bytes, stops: Sequence[str] = ()) -> Completion:
    """Read one chat completion body; raises ``_Retry`` when it is not a usable answer."""
    try:
        data = json.loads(body)
    except ValueError:
        raise _Retry(f"malformed JSON body: {_one_line(body.decode('utf-8', 'replace'))!r}") from None
    if not isinstance(data, dict):
        raise _Retry("response body is not a JSON object")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        error = data.get("error")
        detail = f": {_one_line(json.dumps(error))}" if error else ""
        raise _Retry(f"response has no choices{detail}")
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        raise _Retry("response choice has no message")
    text = message.get("content") or ""
    reasoning = message.get("reasoning_content") or message.get("reasoning") or None
    if not isinstance(text, str) or not isinstance(reasoning, (str, type(None))):
        raise _Retry("response message content is not text")
    finish = "length" if choice.get("finish_reason") == "length" else "stop"
    if finish == "stop":
        text = _restore_stop(text, choice, stops)
    usage = data.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    tokens = openai_tokens(choice.get("logprobs"))
    return Completion(
        text=text,
        finish_reason=finish,
        prompt_tokens=_count(usage, "prompt_tokens"),
        completion_tokens=_count(usage, "completion_tokens"),
        reasoning=reasoning,
        p_a=p_a_from_tokens(tokens) if tokens else None,
    )


def _count(usage: Mapping[str, Any], key: str) -> int:
    value = usage.get(key)
    return value if isinstance(value, int) and value >= 0 else 0


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
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            try:
                answer = httpx.get(
                    f"{self.base_url}/models", headers=headers, timeout=min(self.timeout, 10.0)
                )
                self._window = window_from_models(answer.json(), self.model or self._served)
            except Exception:  # a server without /models (or a body that is not JSON) leaves it unknown
                self._window = None
        return self._window

    # --- sync face ------------------------------------------------------------------------------------------

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        """Complete each request; one Completion per request, in request order."""
        if not requests:
            return []
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.agenerate(requests))
        # A loop is already running in this thread (a notebook, an async server): it cannot be re-entered, so
        # the batch runs in a fresh loop on a worker thread while this thread waits.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(lambda: asyncio.run(self.agenerate(requests))).result()

    def served_model(self) -> str | None:
        """The model id the server says it serves (GET {base_url}/models, asked once), for run.json: the
        named model when the server lists it, else the server's first (a one-model server such as llama.cpp
        answers under any name); None when the server does not say."""
        if self._listed is None:
            self._listed = []
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            try:
                data = httpx.get(f"{self.base_url}/models", headers=headers, timeout=min(self.timeout, 30.0))
                listed = data.json().get("data") or []
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
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        async with httpx.AsyncClient(
            base_url=self.base_url + "/",
            headers=headers,
            limits=limits,
            timeout=httpx.Timeout(self.timeout),
            transport=self.transport() if self.transport else None,
        ) as client:
            model = await self._model_name(client)
            gate = asyncio.Semaphore(self.concurrency)
            return list(await asyncio.gather(*(self._complete(client, gate, model, r) for r in requests)))

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

        async def all_reads() -> list[float | None]:
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            async with httpx.AsyncClient(
                base_url=self.base_url + "/", headers=headers, timeout=httpx.Timeout(self.timeout)
            ) as client:
                model = await self._model_name(client)
                gate = asyncio.Semaphore(self.concurrency)
                return list(await asyncio.gather(*(self._read(client, gate, model, r) for r in reads)))

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(all_reads())
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(lambda: asyncio.run(all_reads())).result()

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
        for attempt in range(self.retry.max_retries + 1):
            try:
                async with gate:
                    response = await client.post("chat/completions", json=body)
            except httpx.HTTPError:
                await asyncio.sleep(self.retry.delay(attempt))
                continue  # a read that never succeeds leaves p_a unknown, it does not stop the run
            if response.status_code == 429 or response.status_code >= 500:
                await asyncio.sleep(
                    self.retry.delay(attempt, parse_retry_after(response.headers.get("retry-after")))
                )
                continue
            if response.status_code >= 400:
                raise ConfigError(
                    f"{self.base_url} cannot continue an assistant message (continue_final_message): "
                    f"HTTP {response.status_code}; forced verdicts need a vLLM-style server, use --verdict logprob"
                )
            tokens = openai_tokens((response.json().get("choices") or [{}])[0].get("logprobs"))
            return p_a_from_top(tokens[0][2]) if tokens else None
        return None

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
        except (_Final, RetriesExhausted) as exc:
            return self._failed(str(exc), started)
        except _TooLong as exc:
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
            raise _Retry(f"no response within {self.timeout:g}s") from None
        except httpx.TransportError as exc:
            raise _Retry(f"connection error: {type(exc).__name__}: {_one_line(str(exc))}") from None
        except httpx.HTTPError as exc:
            raise _Final(f"request failed: {type(exc).__name__}: {_one_line(str(exc))}") from None
        status = response.status_code
        if status == 429 or status >= 500:
            raise _Retry(
                f"HTTP {status}: {_one_line(response.text)}",
                parse_retry_after(response.headers.get("retry-after")),
            )
        refusal = context_refusal(status, response.text)
        if refusal is not None:
            raise refusal
        if status >= 400:
            raise _Final(f"HTTP {status}: {_one_line(response.text)}")
        return _parse_response(response.content, stops if "stop" in body else ())

    async def _refused_for_context(
        self,
        client: httpx.AsyncClient,
        gate: asyncio.Semaphore,
        body: dict[str, Any],
        refusal: _TooLong,
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
        except _TooLong as again:
            return too_long(again.prompt_tokens or prompt, again.window or window, f"server said: {again}")
        except (_Retry, _Final) as exc:
            return self._failed(f"after clamping max_tokens to {budget}: {exc}", started)
        return replace(result, latency_s=time.perf_counter() - started)

    @staticmethod
    def _failed(why: str, started: float) -> Completion:
        return Completion(
            text="", finish_reason="error", latency_s=time.perf_counter() - started, error=_one_line(why)
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
