"""The server's engine for a vLLM backend: vLLM's own async engine (``AsyncLLM``) instead of the micro-batcher.

vLLM batches continuously: a request joins the running batch at the next step and leaves when it finishes, so
waiting for company (``MicroBatcher``'s window) would only add latency, and a whole batch would wait for its
longest generation. ``AsyncEngineBatcher`` therefore hands every request to the engine as it arrives. It has the
micro-batcher's face (``generate``, ``watch``/``cancel`` of a caller's ``Ticket``, ``deadline``, ``pending``,
``stats``, ``close``), so the app, the judge,
tournaments and rewards run on it unchanged.

The engine runs on an event loop in its own thread; request threads submit coroutines to it and wait. A caller
past its deadline cancels its coroutine, and vLLM aborts a cancelled request, so no model time is spent on an
answer nobody waits for. Prompts are rendered and checked against the context window exactly as the offline
backend does (``rmr1.backends.vllm.PromptRenderer``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import threading
import time
from collections.abc import Sequence
from typing import Any

from rmr1.backends.vllm import PromptRenderer, VLLMBackend, on_cpu, to_completion, vllm_sampling
from rmr1.serve.batcher import BatcherStats, Cancelled, Closed, DeadlineExceeded, Overloaded, Ticket
from rmr1.serve.tickets import TicketWatch
from rmr1.types import Completion, GenerationRequest


class AsyncEngineBatcher(TicketWatch):
    """A Backend whose requests go one by one to a vLLM ``AsyncLLM`` built from ``backend``'s settings."""

    supports_logprobs = True

    def __init__(self, backend: VLLMBackend, *, max_queue: int = 4096) -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be positive")
        self.max_queue = max_queue
        self.window_s = 0.0  # no batching window: the engine admits requests at its next step
        self.stats = BatcherStats()
        self._pending = 0
        self._lock = threading.Lock()
        self._closed = False
        self._local = threading.local()
        self._ids = itertools.count()
        self._running: dict[int, set[concurrent.futures.Future[Any]]] = {}  # id(ticket) -> its engine work
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="rmr1-vllm-engine", daemon=True)
        self._thread.start()
        try:
            self.engine = self._call(self._build(backend)).result()
        except BaseException:
            self._stop_loop()
            raise
        self.max_batch = int(self.engine.vllm_config.scheduler_config.max_num_seqs)
        self.renderer = PromptRenderer(
            self.engine.get_tokenizer(), int(self.engine.model_config.max_model_len)
        )

    async def _build(self, backend: VLLMBackend) -> Any:
        # Built on the engine's own loop: AsyncLLM ties its output handler to the loop it first runs on.
        from vllm import AsyncEngineArgs, AsyncLLMEngine

        kwargs = backend.settings.engine_kwargs(backend.model_path, on_cpu=on_cpu())
        return AsyncLLMEngine.from_engine_args(AsyncEngineArgs(**kwargs))

    def _call(self, coro: Any) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    # -- the Backend side --------------------------------------------------------------------------------
    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        if not requests:
            return []
        with self._lock:
            if self._closed:
                raise Closed("the server is shutting down")
            if self._pending + len(requests) > self.max_queue:
                raise Overloaded(
                    f"{self._pending} requests already wait for the model (limit {self.max_queue})"
                )
            self._pending += len(requests)
        started = time.perf_counter()
        try:
            return self._generate(requests)
        finally:
            with self._lock:
                self._pending -= len(requests)
                self.stats.busy_s += time.perf_counter() - started

    def _generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        results: list[Completion | None] = [None] * len(requests)
        sent: list[tuple[int, list[int], GenerationRequest, bool]] = []
        for i, request in enumerate(requests):
            prepared = self.renderer.prepare(request)
            if isinstance(prepared, Completion):
                results[i] = prepared
            else:
                sent.append((i, *prepared))
        if sent:
            ticket: Ticket | None = getattr(self._local, "ticket", None)
            if ticket is not None and ticket.cancelled:
                raise Cancelled("the client gave up; its work was not started")
            future = self._call(self._all([(ids, fitted, opened) for _, ids, fitted, opened in sent]))
            mine = self._running.setdefault(id(ticket), set()) if ticket is not None else set()
            mine.add(future)
            left = ticket.remaining() if ticket is not None else None
            try:
                outputs = future.result(None if left is None else max(0.0, left))
            except concurrent.futures.TimeoutError:
                future.cancel()  # cancels the engine requests too: vLLM aborts a cancelled generate()
                self.stats.expired += 1
                raise DeadlineExceeded("the request ran past its deadline") from None
            except concurrent.futures.CancelledError:
                self.stats.dropped_requests += len(sent)
                raise Cancelled("the client gave up; its engine requests were aborted") from None
            except Exception:
                self.stats.failed_batches += 1
                raise
            finally:
                mine.discard(future)
                if ticket is not None and not mine:
                    self._running.pop(id(ticket), None)
            for (i, *_), completion in zip(sent, outputs, strict=True):
                results[i] = completion
        self._count(len(requests))
        return [r for r in results if r is not None]

    async def _all(self, work: list[tuple[list[int], GenerationRequest, bool]]) -> list[Completion]:
        return list(await asyncio.gather(*(self._one(*item) for item in work)))

    async def _one(self, ids: list[int], request: GenerationRequest, opened: bool) -> Completion:
        started = time.perf_counter()
        final = None
        request_id = f"rmr1-{next(self._ids)}"
        prompt = {"prompt_token_ids": ids}  # vLLM's TokensPrompt
        async for output in self.engine.generate(prompt, vllm_sampling(request.sampling), request_id):
            final = output
        if final is None:
            return Completion(text="", finish_reason="error", error="vLLM returned no output")
        return to_completion(final, time.perf_counter() - started, opened)

    def _count(self, size: int) -> None:
        with self._lock:
            self.stats.batches += 1
            self.stats.submissions += 1
            self.stats.requests += size
            self.stats.largest_batch = max(self.stats.largest_batch, size)

    def cancel(self, ticket: Ticket) -> None:
        """The caller gave up: abort its requests in the engine and start none of its later work."""
        ticket.cancelled = True
        for future in list(self._running.get(id(ticket), ())):
            future.cancel()

    @property
    def pending(self) -> int:
        with self._lock:
            return self._pending

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self, *, drain: bool = True, timeout: float | None = 30.0) -> None:
        """Stop taking work; let requests in flight finish (``drain``, up to ``timeout``), then stop the engine."""
        with self._lock:
            self._closed = True
        end = time.monotonic() + (timeout if timeout is not None else float("inf"))
        while drain and self.pending and time.monotonic() < end:
            time.sleep(0.05)
        self.engine.shutdown()
        self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5.0)


__all__ = ["AsyncEngineBatcher"]
