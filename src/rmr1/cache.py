"""The judgment cache: a Backend wrapper that answers repeated requests from an SQLite file.

A request is keyed by content, not by where it came from: (model id, template hash, the rendered messages,
the sampling settings including the seed). Eval, judge, serve and the reward adapters build the same request
for the same pair under the same settings, so a judgment paid for once is free everywhere after:

    backend = CachedBackend(make_backend("hf", model), "judgments.sqlite", model_id="hf:my-model")
    judge = cached_judge(Judge(backend_without_cache, template), "judgments.sqlite")   # same, for a Judge

Only finished answers are stored (``finish_reason`` "stop" or "length"): a failed call or a prompt that was
not sent (``too_long``) is asked again next time. Several processes may share one file: WAL mode lets readers
run beside one writer, a busy timeout waits out another writer's transaction, and ``INSERT OR IGNORE`` makes
two processes storing the same answer harmless (the first one stays).
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rmr1.errors import ConfigError
from rmr1.types import Completion, GenerationRequest

if TYPE_CHECKING:
    from rmr1.backends import Backend
    from rmr1.judge import Judge

CACHED_REASONS = ("stop", "length")
_BUSY_MS = 30_000  # how long a writer waits for another process's transaction before giving up

_SCHEMA = """
CREATE TABLE IF NOT EXISTS completions (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    text TEXT NOT NULL,
    reasoning TEXT,
    finish_reason TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    p_a REAL
)
"""
# Added later: files made before it get the column on open (NULL for the answers already there).
_P_A_COLUMN = "ALTER TABLE completions ADD COLUMN p_a REAL"
_READS = """
CREATE TABLE IF NOT EXISTS verdict_reads (
    key TEXT PRIMARY KEY,
    p_a REAL
)
"""


def _write_ahead_log(db: sqlite3.Connection) -> None:
    """Switch to WAL; SQLite answers "locked" at once (no busy wait) while another process writes or switches."""
    deadline = time.monotonic() + _BUSY_MS / 1000
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01 + 0.04 * random.random())  # jittered, so the processes do not retry in step


def request_key(model_id: str, namespace: str, request: GenerationRequest) -> str:
    """A stable hash of everything that decides a completion (never the call's bookkeeping ``key``)."""
    sp = request.sampling
    content: dict[str, Any] = {
        "model": model_id,
        "template": namespace,
        "messages": [[m.role, m.content] for m in request.messages],
        "sampling": [sp.max_new_tokens, sp.temperature, sp.top_p, sp.seed, list(sp.stop)],
    }
    if sp.logprobs:  # only then, so the keys of answers stored before the flag existed stay the same
        content["logprobs"] = True
    return hashlib.sha256(json.dumps(content, ensure_ascii=False).encode()).hexdigest()


@dataclass
class CacheStats:
    hits: int = 0  # requests answered from the file
    misses: int = 0  # requests sent to the wrapped backend
    read_hits: int = 0  # verdict reads (rmr1.probability) answered from the file
    read_misses: int = 0  # verdict reads sent to the wrapped backend


class CachedBackend:
    """Wraps a backend: hits come from the SQLite file, the misses go to ``inner`` in one ``generate``."""

    def __init__(self, inner: Backend, path: str | Path, *, model_id: str, namespace: str = "") -> None:
        self.inner = inner
        self.path = Path(path)
        self.model_id = model_id  # who answers (backend and model); a served model id is added when known
        self.namespace = namespace  # the template's hash, so an edited template never reuses old answers
        self.stats = CacheStats()
        self._lock = threading.Lock()  # one connection, used by the serve worker threads in turn
        self._resolved: str | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=_BUSY_MS / 1000, check_same_thread=False)
            self._db.execute(f"PRAGMA busy_timeout = {_BUSY_MS}")
            _write_ahead_log(self._db)
            # Under the write lock, so two processes opening one file at once cannot both add the column.
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(_SCHEMA)
            self._db.execute(_READS)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(completions)")}
            if "p_a" not in columns:
                self._db.execute(_P_A_COLUMN)
            self._db.commit()
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"{self.path}: cannot open the judgment cache ({exc})") from None

    @property
    def model_name(self) -> str | None:
        """What the wrapped backend serves, so run labels look through the cache."""
        return getattr(self.inner, "model_name", None) or getattr(self.inner, "source", None)

    @property
    def context_length(self) -> int | None:
        """The wrapped backend's window (rmr1.backends.window), so callers see through the cache."""
        from rmr1.backends.window import context_length

        return context_length(self.inner)

    def served_model(self) -> str | None:
        served = getattr(self.inner, "served_model", None)
        return served() if callable(served) else None

    def _model(self) -> str:
        if self._resolved is None:
            served = self.served_model()
            self._resolved = f"{self.model_id}@{served}" if served else self.model_id
        return self._resolved

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        model = self._model()
        keys = [request_key(model, self.namespace, r) for r in requests]
        found = self._lookup(keys)
        missing = [i for i, k in enumerate(keys) if k not in found]
        out: list[Completion | None] = [found.get(k) for k in keys]
        if missing:
            fresh = self.inner.generate([requests[i] for i in missing])
            if len(fresh) != len(missing):
                raise RuntimeError(f"backend returned {len(fresh)} completions for {len(missing)} requests")
            for i, completion in zip(missing, fresh, strict=True):
                out[i] = completion
            self._store(model, [(keys[i], c) for i, c in zip(missing, fresh, strict=True)])
        with self._lock:
            self.stats.hits += len(requests) - len(missing)
            self.stats.misses += len(missing)
        return [c for c in out if c is not None]

    def _lookup(self, keys: list[str]) -> dict[str, Completion]:
        wanted = sorted(set(keys))
        found: dict[str, Completion] = {}
        with self._lock:
            for start in range(0, len(wanted), 500):  # SQLite caps the parameters of one statement
                chunk = wanted[start : start + 500]
                rows = self._db.execute(
                    "SELECT key, text, reasoning, finish_reason, prompt_tokens, completion_tokens, p_a "
                    f"FROM completions WHERE key IN ({','.join('?' * len(chunk))})",
                    chunk,
                ).fetchall()
                for key, text, reasoning, finish, prompt_tokens, completion_tokens, p_a in rows:
                    # latency_s stays 0: a hit costs no model time
                    found[key] = Completion(
                        text=text,
                        finish_reason=finish,
                        prompt_tokens=prompt_tokens,
                        completion_tokens=completion_tokens,
                        reasoning=reasoning,
                        p_a=p_a,
                    )
        return found

    def _store(self, model: str, results: list[tuple[str, Completion]]) -> None:
        # A thought the prompt opened is stored with its <think> put back (``full_text``): a hit then reads,
        # and is logged, exactly as the first answer was.
        rows = [
            (
                key,
                model,
                _stored_text(c),
                c.reasoning,
                c.finish_reason,
                c.prompt_tokens,
                c.completion_tokens,
                c.p_a,
            )
            for key, c in results
            if c.finish_reason in CACHED_REASONS and c.error is None
        ]
        if not rows:
            return
        with self._lock, self._db:  # one transaction per batch; the context manager commits
            self._db.executemany(
                "INSERT OR IGNORE INTO completions (key, model, text, reasoning, finish_reason, prompt_tokens, "
                "completion_tokens, p_a) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    # -- verdict reads (rmr1.probability): cached like completions, keyed by prompt and prefix -------------
    @property
    def supports_logprobs(self) -> bool:
        from rmr1.probability import supports_logprobs

        return supports_logprobs(self.inner)

    def read_verdicts(self, reads: Sequence[Any]) -> list[float | None]:
        model = self._model()
        keys = [f"read:{request_key(model, self.namespace, r.request)}:{_sha(r.prefix)}" for r in reads]
        with self._lock:
            found = (
                dict(
                    self._db.execute(
                        f"SELECT key, p_a FROM verdict_reads WHERE key IN ({','.join('?' * len(keys))})", keys
                    ).fetchall()
                )
                if keys
                else {}
            )
        missing = [i for i, k in enumerate(keys) if k not in found]
        out: list[float | None] = [found.get(k) for k in keys]
        if missing:
            fresh = self.inner.read_verdicts([reads[i] for i in missing])  # type: ignore[attr-defined]
            for i, p_a in zip(missing, fresh, strict=True):
                out[i] = p_a
            with self._lock, self._db:
                self._db.executemany(
                    "INSERT OR IGNORE INTO verdict_reads VALUES (?, ?)",
                    [(keys[i], p) for i, p in zip(missing, fresh, strict=True) if p is not None],
                )
        with self._lock:
            self.stats.read_hits += len(reads) - len(missing)
            self.stats.read_misses += len(missing)
        return out

    def close(self) -> None:
        from rmr1.backends import close_backend

        with self._lock:
            self._db.close()
        close_backend(self.inner)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _stored_text(completion: Completion) -> str:
    return completion.full_text if completion.think_opened and not completion.reasoning else completion.text


def cache_stats(backend: Any) -> CacheStats | None:
    """The counters of a cached backend (None when the backend has no cache)."""
    stats = getattr(backend, "stats", None)
    return stats if isinstance(stats, CacheStats) else None


def cached_judge(judge: Judge, path: str | Path, model_id: str | None = None) -> Judge:
    """The same judge with its backend behind the cache at ``path`` (for judges built in code, e.g. the
    reward adapters'). ``model_id`` names the model in the key; default: what the backend says it serves."""
    from rmr1.evaluation.settings import template_sha
    from rmr1.judge import Judge

    backend = judge.backend
    if model_id is None:
        named = getattr(backend, "model_name", None) or getattr(backend, "source", None)
        model_id = f"{type(backend).__name__}:{named or ''}"
    wrapped = CachedBackend(
        backend, path, model_id=model_id, namespace=template_sha(judge.template.system, judge.template.user)
    )
    return Judge(wrapped, judge.template, judge.config)


__all__ = ["CACHED_REASONS", "CacheStats", "CachedBackend", "cache_stats", "cached_judge", "request_key"]
