"""Scale-out on Ray: a run's planned calls judged by N worker actors, each holding its own backend replica.

    with RayPool(opts.build_judge, RayConfig(workers=4, gpus_per_worker=1)) as pool:
        run_eval(config, pool.judge, bench, executor=pool.execute)

Each worker builds its judge (a vLLM engine on its GPUs, or a CPU engine such as hf) from the same factory. The
driver, the process running ``evaluate``, plans the calls, hands them out in batches of whole items (an item's
comparisons share a prompt prefix, which an engine with a prefix cache then computes once), keeps at most
``in_flight`` batches queued per worker so none waits for work, and yields each batch's judgments as it
returns. Only the driver writes the run directory, so the run stays resumable and no call is judged twice.

A worker that dies (``RayActorError``: a killed process, a lost node) has its unfinished batches put back at the
front of the queue for the others and, while ``restarts`` allows, is replaced by a new actor. Results of a
dead worker are never half-used: a batch counts only when all of its judgments came back.

Ray is an optional extra (``pip install 'rmr1[ray]'``), imported only here.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rmr1.cache import CacheStats, cache_stats
from rmr1.errors import ConfigError, MissingDependencyError, Rmr1Error
from rmr1.evaluation.run import JudgeLabels, labels_for, served_model_of
from rmr1.judge import Call, Judge
from rmr1.judge_options import JudgeOptions
from rmr1.types import Completion, GenerationRequest, Judgment

LOCAL = "local"  # the CLI's ``--ray`` without an address


@dataclass(frozen=True)
class RayConfig:
    """How the Ray workers are started and fed."""

    address: str | None = None  # None or "local": start a local cluster (or join $RAY_ADDRESS); "auto" or
    # host:port joins a running one
    workers: int = 2  # worker actors, each with its own backend replica
    cpus_per_worker: float = 1.0  # Ray CPUs each worker reserves; also its CPU engine's threads
    gpus_per_worker: float = 0.0  # Ray GPUs each worker reserves (a vLLM replica's devices)
    batch_calls: int | None = None  # calls per batch handed to a worker (whole items); None: --batch-size
    in_flight: int = 2  # batches queued per worker: one running, the next waiting
    restarts: int = 1  # dead workers replaced over the run; beyond that the others take their batches
    max_tries: int = 3  # a batch whose worker died this many times stops the run (it may be what kills them)

    def __post_init__(self) -> None:
        if self.workers < 1 or self.in_flight < 1 or self.max_tries < 1:
            raise ConfigError("ray workers, in-flight batches and tries must be at least 1")
        if self.cpus_per_worker < 0 or self.gpus_per_worker < 0 or self.restarts < 0:
            raise ConfigError("ray CPUs, GPUs per worker and restarts cannot be negative")
        if self.batch_calls is not None and self.batch_calls < 1:
            raise ConfigError("ray batch calls must be at least 1")


def item_batches(calls: Iterable[Call], size: int) -> Iterator[list[Call]]:
    """Batches of at least ``size`` calls that never split an item (the last one may be smaller)."""
    batch: list[Call] = []
    for call in calls:
        if len(batch) >= size and call.pair.item_id != batch[-1].pair.item_id:
            yield batch
            batch = []
        batch.append(call)
    if batch:
        yield batch


def portable(opts: JudgeOptions) -> JudgeOptions:
    """The options with local paths made absolute, since a worker's working folder is not the driver's (on
    other nodes the files must be at the same path, e.g. a shared file system)."""

    def absolute(value: str | None) -> str | None:
        return str(Path(value).resolve()) if value and Path(value).exists() else value

    cache = str(Path(opts.cache).resolve()) if opts.cache else None  # created on first use: always a path
    return dataclasses.replace(
        opts, model=absolute(opts.model), template_file=absolute(opts.template_file), cache=cache
    )


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MissingDependencyError("--ray", "ray", "ray") from None
    return ray


class _Worker:
    """The actor: one judge replica. Errors building it come back as text, since not every exception
    pickles across processes."""

    def __init__(self, build: Callable[[], Judge], threads: int) -> None:
        import os

        # A CPU engine uses the CPUs Ray reserved for this worker (unless --threads or $RMR1_THREADS say
        # otherwise), not every core minus the load: N workers on one node would each take them all.
        os.environ.setdefault("RMR1_THREADS", str(threads))
        self._build = build
        self._judge: Judge | None = None

    def start(self) -> tuple[str, Any]:
        try:
            judge = self._judge = self._build()
        except Rmr1Error as exc:
            return "error", str(exc)
        stats = cache_stats(judge.backend)
        labels = labels_for(judge)
        return "ok", (judge.template, judge.config, labels, served_model_of(judge.backend), stats is not None)

    def run(self, calls: list[Call]) -> tuple[str, Any]:
        """The batch's judgments in call order, plus the cache hits and misses it caused."""
        assert self._judge is not None, "start() first"
        stats = cache_stats(self._judge.backend)
        hits, misses = (stats.hits, stats.misses) if stats else (0, 0)
        try:
            judgments = list(self._judge.run(calls))
        except Rmr1Error as exc:  # e.g. a server that kept failing: one line for the user, as without Ray
            return "error", str(exc)
        if stats:
            hits, misses = stats.hits - hits, stats.misses - misses
        return "ok", (judgments, hits, misses)

    def close(self) -> None:
        from rmr1.backends import close_backend

        if self._judge is not None:
            close_backend(self._judge.backend)


class _Remote:
    """The driver's stand-in backend: it plans but never generates, and carries what the workers report."""

    def __init__(self, labels: JudgeLabels, served: str | None, cached: bool) -> None:
        self.labels = labels  # what labels_for reports: the workers' backend, not this stand-in
        self._served = served
        self.stats = CacheStats() if cached else None

    def served_model(self) -> str | None:
        return self._served

    def generate(self, requests: list[GenerationRequest]) -> list[Completion]:
        raise RuntimeError("this judge plans for Ray workers; its calls are made by RayPool.execute")


@dataclass
class _Batch:
    calls: list[Call]
    tries: int = 0


@dataclass
class _Slot:
    actor: Any
    name: str  # worker-N, numbered in start order (replacements get new numbers)
    pending: list[Any] = dataclasses.field(default_factory=list)  # object refs of its batches in flight


class RayPool:
    """Worker actors built by ``build``; ``judge`` plans for them and ``execute`` is an eval executor."""

    def __init__(self, build: Callable[[], Judge], config: RayConfig) -> None:
        self.ray = _ray()
        self.config = config
        self._build = build
        self.slots: list[_Slot] = []
        self.replaced = 0  # workers started to replace dead ones
        self.requeued = 0  # batches handed out again after their worker died
        self.sent = 0  # calls handed to workers
        self.judged_by: Counter[str] = Counter()  # calls judged, by worker name (worker-0, ...)
        self._started = 0
        self._own_cluster = not self.ray.is_initialized()
        if self._own_cluster:
            self._connect()
        try:
            self._check_resources()
            self.slots = [self._spawn() for _ in range(config.workers)]
            self.judge, self.labels = self._describe(self.slots[0])
        except BaseException:
            self.close()
            raise

    @property
    def workers(self) -> list[Any]:
        """The live worker actors (for tests and monitoring)."""
        return [slot.actor for slot in self.slots]

    def _connect(self) -> None:
        import logging

        address = None if self.config.address in (None, LOCAL) else self.config.address
        self.ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)

    def _check_resources(self) -> None:
        """A local cluster cannot grow: asking it for more than it has would wait forever."""
        if not self._own_cluster or self.config.address not in (None, LOCAL):
            return
        have = self.ray.cluster_resources()
        for name, each in (("CPU", self.config.cpus_per_worker), ("GPU", self.config.gpus_per_worker)):
            need = each * self.config.workers
            if need > have.get(name, 0.0):
                raise ConfigError(
                    f"{self.config.workers} Ray workers need {need:g} {name}s; the local cluster has "
                    f"{have.get(name, 0.0):g} (lower --ray-workers or the per-worker {name}s)"
                )

    def _spawn(self) -> _Slot:
        actor_class = self.ray.remote(_Worker).options(
            num_cpus=self.config.cpus_per_worker, num_gpus=self.config.gpus_per_worker
        )
        actor = actor_class.remote(self._build, max(1, round(self.config.cpus_per_worker)))
        slot = _Slot(actor, f"worker-{self._started}")
        self._started += 1
        slot.pending.append(actor.start.remote())  # the replica loads while the next worker is created
        return slot

    def _describe(self, slot: _Slot) -> tuple[Judge, JudgeLabels]:
        """The first worker's own template and settings, so the driver plans exactly what workers judge."""
        status, info = self.ray.get(slot.pending.pop(0))
        if status == "error":
            raise ConfigError(f"Ray {slot.name}: {info}")
        template, config, labels, served, cached = info
        return Judge(_Remote(labels, served, cached), template, config), labels  # type: ignore[arg-type]

    def execute(self, judge: Judge, calls: Iterator[Call]) -> Iterator[list[Judgment]]:
        """An executor (rmr1.evaluation.run.Executor): batches out to the workers, judgments back as each
        batch returns. Batches still out when the caller stops are dropped (a resume makes them again)."""
        size = self.config.batch_calls or judge.config.batch_size
        fresh = item_batches(calls, size)
        retry: deque[_Batch] = deque()
        owner: dict[Any, tuple[_Slot, _Batch | None]] = {
            ref: (slot, None) for slot in self.slots for ref in slot.pending
        }
        try:
            while True:
                self._feed(owner, fresh, retry)
                if not owner:
                    return
                [ref], _ = self.ray.wait(list(owner), num_returns=1)
                slot, batch = owner.pop(ref)
                slot.pending.remove(ref)
                try:
                    result = self.ray.get(ref)
                except self.ray.exceptions.RayActorError:
                    self._lost(slot, batch, owner, retry)
                    continue
                status, payload = result
                if status == "error":
                    raise (ConfigError if batch is None else Rmr1Error)(f"Ray {slot.name}: {payload}")
                if batch is None:  # a replica finished loading
                    continue
                self.judged_by[slot.name] += len(payload[0])
                yield self._count(judge, payload)
        finally:
            for ref in owner:  # queued batches are dropped; close() stops the running ones with the actors
                with contextlib.suppress(Exception):
                    self.ray.cancel(ref)

    def _feed(self, owner: dict[Any, Any], fresh: Iterator[list[Call]], retry: deque[_Batch]) -> None:
        for slot in self.slots:
            while len(slot.pending) < self.config.in_flight:
                batch = retry.popleft() if retry else next((_Batch(c) for c in fresh), None)
                if batch is None:
                    return
                ref = slot.actor.run.remote(batch.calls)
                slot.pending.append(ref)
                owner[ref] = (slot, batch)
                self.sent += len(batch.calls)

    def _count(self, judge: Judge, result: tuple[list[Judgment], int, int]) -> list[Judgment]:
        judgments, hits, misses = result
        stats = cache_stats(judge.backend)
        if stats is not None:
            stats.hits += hits
            stats.misses += misses
        return judgments

    def _lost(self, slot: _Slot, batch: _Batch | None, owner: dict[Any, Any], retry: deque[_Batch]) -> None:
        """A worker died: its batches go back to the front of the queue; a replacement starts if allowed."""
        lost = [batch] + [owner.pop(ref)[1] for ref in slot.pending]
        slot.pending.clear()
        self.slots.remove(slot)
        for item in reversed([b for b in lost if b is not None]):
            item.tries += 1
            if item.tries >= self.config.max_tries:
                raise Rmr1Error(
                    f"a batch of {len(item.calls)} calls (item {item.calls[0].pair.item_id}) lost its Ray "
                    f"worker {item.tries} times; the judgments so far are saved, run again to resume"
                )
            retry.appendleft(item)
            self.requeued += 1
        if self.replaced < self.config.restarts:
            self.replaced += 1
            fresh = self._spawn()
            self.slots.append(fresh)
            owner[fresh.pending[0]] = (fresh, None)
        if not self.slots:
            raise Rmr1Error("every Ray worker died; the judgments so far are saved, run again to resume")

    def close(self) -> None:
        """Stop the workers (and the local cluster this pool started)."""
        for slot in self.slots:
            with contextlib.suppress(Exception):  # a dead or stuck worker is killed below either way
                self.ray.get(slot.actor.close.remote(), timeout=30)
            self.ray.kill(slot.actor)
        self.slots = []
        if self._own_cluster:
            self.ray.shutdown()

    def __enter__(self) -> RayPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["LOCAL", "RayConfig", "RayPool", "item_batches", "portable"]
