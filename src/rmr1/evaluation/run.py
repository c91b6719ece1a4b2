"""``evaluate``: judge a benchmark into a run directory, resumably, then score it and write the report.

The run loop plans calls lazily, pair by pair, skips those already logged, and hands the judge one batch at a
time; each batch's judgments are appended to judgments.jsonl in one write as soon as it returns. Nothing about
finished judgments stays in memory, so a kill loses at most the batch in flight and memory does not grow with
the run.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rmr1.benchmarks import Benchmark, load_benchmark
from rmr1.cache import cached_judge
from rmr1.errors import ConfigError
from rmr1.evaluation.rundir import Key, RunDir, judgment_record
from rmr1.evaluation.scoring import score_stream, with_bookkeeping, write_scores
from rmr1.evaluation.settings import (
    RunSettings,
    Shard,
    check_resumable,
    default_protocol,
    engine_of,
    judge_options_for,
    recorded_backend,
    template_sha,
)
from rmr1.jsonl import JsonlAppender
from rmr1.judge import Call, Judge
from rmr1.types import Judgment, PreferencePair

if TYPE_CHECKING:
    from rmr1.evaluation.ray_pool import RayConfig

Advance = Callable[[int, Judgment | None], None]
# An executor turns planned calls into judgments: it pulls calls from the iterator as it needs them and yields
# each batch's judgments as the batch returns, every call exactly once, batches in any order. The default judges
# in this process; rmr1.evaluation.ray_pool judges on Ray workers.
Executor = Callable[[Judge, Iterator[Call]], Iterator[list[Judgment]]]
# progress(total still to judge, already judged) -> a context manager yielding advance(n, judgment)
ProgressFactory = Callable[[int, int], AbstractContextManager[Advance]]


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate and how the run directory is kept (the judge's own settings live in the Judge)."""

    benchmark: str  # one of rmr1.benchmarks.BENCHMARKS
    out: Path  # the run directory
    data: str | None = None  # local file or folder; None: the benchmark's hub id
    limit: int | None = None  # the first N items (an item's pairs stay together)
    shard: Shard | None = None  # judge only this shard's items (split by a hash of item_id)
    unparsed_score: float = 0.0  # what a decision with no parsed verdict scores (the paper: 0)
    report: bool = True  # write report.html at the end
    retry_errors: bool = True  # on resume, make failed calls (finish_reason "error") again

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise ConfigError("limit must be at least 1")
        if self.unparsed_score not in (0.0, 0.5):
            raise ConfigError(f"unparsed score must be 0 or 0.5, got {self.unparsed_score}")


@dataclass(frozen=True)
class JudgeLabels:
    """How the judge is named in run.json."""

    model: str
    backend: str
    template: str


@dataclass(frozen=True)
class EvalResult:
    run_dir: Path
    scores: dict[str, Any]
    judged: int  # calls made by this invocation
    resumed: int  # judgments that were already logged


def labels_for(judge: Judge) -> JudgeLabels:
    """Names for a Judge built in code: backends say what they serve through ``model_name`` or ``source``
    (or, standing in for remote replicas, name them all through ``labels``)."""
    if isinstance(getattr(judge.backend, "labels", None), JudgeLabels):
        return judge.backend.labels  # type: ignore[attr-defined]
    backend = getattr(judge.backend, "inner", judge.backend)  # look through a cache wrapper
    model = getattr(backend, "model_name", None) or getattr(backend, "source", None) or type(backend).__name__
    kind = type(backend).__module__.rsplit(".", 1)[-1]
    return JudgeLabels(str(model), kind, judge.template.name)


def _settings(config: EvalConfig, judge: Judge, labels: JudgeLabels) -> RunSettings:
    from rmr1 import __version__

    jc = judge.config
    engine, weight_format = engine_of(judge.backend)
    return RunSettings(
        benchmark=config.benchmark,
        data=config.data,
        model=labels.model,
        backend=labels.backend,
        template=labels.template,
        template_sha=template_sha(judge.template.system, judge.template.user),
        protocol=jc.protocol,
        samples=jc.samples,
        seed=jc.seed,
        temperature=jc.effective_temperature,
        top_p=jc.top_p,
        parse_mode=jc.parse_mode,
        max_new_tokens=jc.max_new_tokens,
        shard=str(config.shard) if config.shard else None,
        limit=config.limit,
        unparsed_score=config.unparsed_score,
        rmr1_version=__version__,
        served_model=served_model_of(judge.backend),
        verdict=jc.verdict,
        score_forced=jc.score_forced,
        engine=engine,
        weight_format=weight_format,
    )


def served_model_of(backend: Any) -> str | None:
    """The model id a server says it serves (openai backend: GET /models), or None for local backends."""
    served = getattr(backend, "served_model", None)
    return served() if callable(served) else None


def _keys(judge: Judge, pair: PreferencePair) -> Iterator[Key]:
    for order in judge.orders(pair):
        for sample in range(judge.config.samples):
            yield (pair.item_id, pair.pair, order, sample)


def _count_remaining(judge: Judge, pairs: list[PreferencePair], done: set[Key], source: str) -> int:
    """Calls still to make; refuses a log holding judgments this plan would never make (other data)."""
    per_pair = (2 if judge.config.protocol == "both" else 1) * judge.config.samples
    if not done:
        return per_pair * len(pairs)
    matched = sum(key in done for pair in pairs for key in _keys(judge, pair))
    if matched < len(done):
        raise ConfigError(
            f"{source} holds {len(done) - matched} judgments of pairs not in this benchmark's "
            "plan (was the data changed?); use another --out"
        )
    return per_pair * len(pairs) - matched


def _calls(judge: Judge, pairs: Iterable[PreferencePair], done: set[Key]) -> Iterator[Call]:
    for pair in pairs:
        # Render only pairs with work left: a resumed run skips finished pairs without building prompts.
        if done and all(key in done for key in _keys(judge, pair)):
            continue
        for call in judge.plan(pair):
            if call.key not in done:
                yield call


def local_executor(judge: Judge, calls: Iterator[Call]) -> Iterator[list[Judgment]]:
    """Judge in this process, ``batch_size`` calls at a time, in plan order."""
    while batch := list(itertools.islice(calls, judge.config.batch_size)):
        yield list(judge.run(batch))


def _quiet(total: int, done: int) -> AbstractContextManager[Advance]:
    return contextlib.nullcontext(lambda n, j=None: None)


@dataclass
class _Progress:
    judged: int = 0


def _judged(
    run: RunDir,
    judge: Judge,
    calls: Iterator[Call],
    writer: JsonlAppender,
    advance: Advance,
    tally: _Progress,
    executor: Executor,
) -> Iterator[Judgment]:
    """What earlier invocations logged, then each new batch as soon as it is judged and appended."""
    yield from run.iter_judgments()
    for judgments in executor(judge, calls):
        writer.write([judgment_record(j) for j in judgments])
        tally.judged += len(judgments)
        for j in judgments:
            advance(1, j)
        yield from judgments


def run_eval(
    config: EvalConfig,
    judge: Judge,
    bench: Benchmark,
    *,
    labels: JudgeLabels | None = None,
    progress: ProgressFactory | None = None,
    executor: Executor | None = None,
) -> EvalResult:
    """Judge ``bench`` into ``config.out`` (resuming what is there), score it and write the report.

    The run directory is locked for the whole run, so a second process on the same ``--out`` is refused.
    ``executor`` makes the model calls (default: ``local_executor``); this process alone writes the run.
    """
    run = RunDir(config.out)
    run.path.mkdir(parents=True, exist_ok=True)
    with run.lock():
        result = _run_locked(
            config, judge, bench, run, labels or labels_for(judge), progress, executor or local_executor
        )
        if config.report:
            from rmr1.report import write_report

            write_report(run.path)
    return result


def _run_locked(
    config: EvalConfig,
    judge: Judge,
    bench: Benchmark,
    run: RunDir,
    labels: JudgeLabels,
    progress: ProgressFactory | None,
    executor: Executor,
) -> EvalResult:
    """The run under its lock. The scorer pulls judgments from the run loop itself, so scoring needs no
    second read of the log."""
    # No copy of the pair list for an unsharded run: memory must not grow with the run.
    pairs = [p for p in bench.pairs if config.shard.contains(p.item_id)] if config.shard else bench.pairs
    settings = _settings(config, judge, labels)
    old = run.read_settings(required=False)
    if old is not None:
        check_resumable(old, settings, str(run.run_json))
    elif run.has_judgments():
        raise ConfigError(f"{run.judgments} exists without run.json; use another --out")
    done = run.prepare_resume(retry_errors=config.retry_errors)
    remaining = _count_remaining(judge, pairs, done, str(run.judgments))
    before = run.read_info() or {}
    run.write_info(
        settings,
        status="running",
        source=bench.source,
        items=bench.items,
        pairs=len(pairs),
        planned_judgments=remaining + len(done),
    )
    tally = _Progress()
    try:
        with JsonlAppender(run.judgments) as writer, (progress or _quiet)(remaining, len(done)) as advance:
            stream = _judged(run, judge, _calls(judge, pairs, done), writer, advance, tally, executor)
            scores = score_stream(settings, stream)
    except BaseException:
        run.update_info(status="interrupted", **_cache_counts(before, judge))
        raise
    run.update_info(status="complete", **_cache_counts(before, judge))
    write_scores(run, with_bookkeeping(scores, run.read_info() or {}))
    return EvalResult(run.path, scores, tally.judged, len(done))


def _cache_counts(before: dict[str, Any], judge: Judge) -> dict[str, int]:
    """run.json's cache counters: the earlier invocations' plus this one's (nothing without a cache)."""
    from rmr1.cache import cache_stats

    stats = cache_stats(judge.backend)
    if stats is None:
        return {}
    return {
        "cache_hits": int(before.get("cache_hits") or 0) + stats.hits,
        "cache_misses": int(before.get("cache_misses") or 0) + stats.misses,
    }


def _split_settings(settings: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    from rmr1.judge_options import JudgeOptions

    own = {f.name for f in fields(EvalConfig)} - {"benchmark", "out"}
    judge_names = {f.name for f in fields(JudgeOptions)}  # ``cache`` among them
    unknown = sorted(set(settings) - own - judge_names)
    if unknown:
        raise TypeError(f"evaluate() got an unexpected keyword argument {unknown[0]!r}")
    return (
        {k: v for k, v in settings.items() if k in own},
        {k: v for k, v in settings.items() if k not in own},
    )


def _on_ray(
    config: EvalConfig,
    opts: Any,
    bench: Benchmark,
    labels: JudgeLabels | None,
    progress: ProgressFactory | None,
    ray: RayConfig,
) -> EvalResult:
    """The run judged by Ray workers, each building its replica from ``opts`` (a JudgeOptions). The labels
    are the options' own, as in a local run, so either kind of run resumes the other."""
    from rmr1.evaluation.ray_pool import RayPool, portable

    if opts is None:
        raise ConfigError("ray needs judge settings (or JudgeOptions) to build its replicas, not a Judge")
    with RayPool(portable(opts).build_judge, ray) as pool:
        return run_eval(config, pool.judge, bench, labels=labels, progress=progress, executor=pool.execute)


def _eval_config(benchmark: str | Benchmark, out: str | Path, own: dict[str, Any]) -> EvalConfig:
    """The run's own settings; a loaded benchmark names itself and its source."""
    if isinstance(own.get("shard"), str):
        own["shard"] = Shard.parse(own["shard"])
    if isinstance(benchmark, Benchmark):
        own.setdefault("data", benchmark.source)
    name = benchmark.name if isinstance(benchmark, Benchmark) else benchmark
    return EvalConfig(benchmark=name, out=Path(out), **own)


def evaluate(
    benchmark: str | Benchmark,
    out: str | Path,
    *,
    judge: Any = None,
    progress: ProgressFactory | None = None,
    ray: RayConfig | None = None,
    **settings: Any,
) -> EvalResult:
    """Evaluate a judge on a benchmark into the run directory ``out``; running it again resumes.

    ``benchmark``: a name (loaded with ``data``/``limit``) or a loaded ``Benchmark``. ``judge``: a ``Judge``,
    a ``JudgeOptions``, or None to build one from judge settings given here (``model``, ``backend``,
    ``template``, ``protocol``, ``samples``, ``seed``, ``max_new_tokens``, ``parse_mode``, ...). Other
    settings are ``EvalConfig`` fields: ``data``, ``limit``, ``shard`` ("I/N" or Shard), ``unparsed_score``,
    ``report``, ``retry_errors``. ``cache``: an SQLite judgment cache (see rmr1.cache), also with a ``Judge``.
    JudgeBench is judged in both orders (its official protocol) unless ``protocol`` says otherwise.
    ``ray``: judge on Ray worker actors, each building its own replica from the judge settings (see
    rmr1.evaluation.ray_pool); this process plans the calls and alone writes the run directory.
    """
    cache = settings.pop("cache", None)
    own, judge_settings = _split_settings(settings)
    if judge is not None and judge_settings:
        raise TypeError(f"pass judge settings ({', '.join(judge_settings)}) or a judge, not both")
    config = _eval_config(benchmark, out, own)
    opts = judge_options_for(judge, judge_settings, config.benchmark, cache)
    labels = None
    if opts is not None:
        opts.template_obj()  # a bad template fails before the model loads
    elif cache:
        labels = labels_for(judge)
        judge = cached_judge(judge, cache, model_id=f"{labels.backend}:{labels.model}")
    bench = (
        benchmark
        if isinstance(benchmark, Benchmark)
        else load_benchmark(config.benchmark, config.data, limit=config.limit)
    )
    if opts is not None:  # ``auto`` picks its backend once the input is known good; a resume keeps its own
        opts = opts.resolved(previous=recorded_backend(config.out))
        labels = JudgeLabels(opts.model_name(), opts.backend, opts.template_name())
    if ray is not None:
        return _on_ray(config, opts, bench, labels, progress, ray)
    built: Judge = opts.build_judge() if opts is not None else judge
    try:
        return run_eval(config, built, bench, labels=labels, progress=progress)
    finally:
        if opts is not None:
            from rmr1.backends import close_backend

            close_backend(built.backend)


__all__ = [
    "EvalConfig",
    "EvalResult",
    "Executor",
    "JudgeLabels",
    "ProgressFactory",
    "default_protocol",
    "evaluate",
    "labels_for",
    "local_executor",
    "run_eval",
    "served_model_of",
]
