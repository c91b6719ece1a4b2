"""``rmr1 serve``: the judge over HTTP (see ``rmr1.serve`` for the endpoints)."""

from __future__ import annotations

import ipaddress
import os
import signal
from typing import TYPE_CHECKING, Annotated

import typer

from rmr1.backends import close_backend
from rmr1.cli import app
from rmr1.cli.checks import at_least, positive
from rmr1.cli.options import judge_options
from rmr1.errors import ConfigError, require
from rmr1.judge_options import JudgeOptions

if TYPE_CHECKING:
    from rmr1.serve.app import ServeSettings


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command()
@judge_options
def serve(
    opts: JudgeOptions,
    host: Annotated[
        str, typer.Option(help="Address to bind; anything but loopback exposes the judge.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="RMR1_SERVE_TOKEN",
            show_envvar=True,
            help="Require 'Authorization: Bearer TOKEN' on every endpoint but /health.",
        ),
    ] = None,
    max_body_bytes: Annotated[int, typer.Option(help="Larger request bodies get 413.")] = 8 * 1024 * 1024,
    batch_window_ms: Annotated[
        float,
        typer.Option(
            help="How long a queued request waits for others to share its model call (0: no waiting)."
        ),
    ] = 10.0,
    max_batch: Annotated[
        int, typer.Option(help="Backend requests per model call (1: no micro-batching).")
    ] = 32,
    request_timeout: Annotated[float, typer.Option(help="Seconds per HTTP request before 504.")] = 300.0,
    max_concurrency: Annotated[int, typer.Option(help="Requests worked on at once.")] = 64,
    model_name: Annotated[
        str | None, typer.Option(help="Name reported by /v1/models (default: the model).")
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the judge over HTTP: /v1/judge, /v1/rank, /v1/score, /get_reward, /v1/chat/completions."""
    require("fastapi", what="rmr1 serve", extra="serving")
    require("uvicorn", what="rmr1 serve", extra="serving")
    from rmr1.serve import ServeSettings

    settings = ServeSettings(
        host=host,
        port=port,
        token=token,
        max_body_bytes=max_body_bytes,
        batch_window_ms=batch_window_ms,
        max_batch=max_batch,
        request_timeout=request_timeout,
        max_concurrency=max_concurrency,
        model_name=model_name or os.path.basename(opts.model_name().rstrip("/")),
    )
    _check(settings, log_level)
    _run(opts, settings, log_level)


def _check(settings: ServeSettings, log_level: str) -> None:
    """Sizes and time limits are checked before the model loads, so a typo is one line, not a server that
    starts and then fails every request."""
    from uvicorn.config import LOG_LEVELS

    if not 0 < settings.port < 65536:
        raise ConfigError(f"port must be in 1..65535, got {settings.port}")
    at_least(
        1,
        max_batch=settings.max_batch,
        max_concurrency=settings.max_concurrency,
        max_body_bytes=settings.max_body_bytes,
    )
    at_least(0, batch_window_ms=settings.batch_window_ms)
    positive(request_timeout=settings.request_timeout)
    if log_level not in LOG_LEVELS:
        raise ConfigError(f"--log-level must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}")
    if not _loopback(settings.host) and not settings.token:
        typer.echo(
            f"warning: serving on {settings.host} without --token: anyone who can reach it can use the judge",
            err=True,
        )


def _run(opts: JudgeOptions, settings: ServeSettings, log_level: str) -> None:
    """Build the judge, serve it until stopped, then release its backend."""
    import uvicorn

    from rmr1.serve import create_app

    opts = opts.resolved()
    judge = opts.build_judge()
    # uvicorn finishes in-flight requests on SIGTERM, then re-raises the signal; this handler turns that last
    # signal into a clean exit (code 0) so supervisors see a graceful stop as one.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        server_app = create_app(judge, settings)
        typer.echo(
            f"rmr1 serve: {settings.model_name} ({opts.backend}) on http://{settings.host}:{settings.port} "
            f"(batch window {settings.batch_window_ms:g} ms, max batch {settings.max_batch}"
            f"{', token required' if settings.token else ''})",
            err=True,
        )
        uvicorn.run(
            server_app,
            host=settings.host,
            port=settings.port,
            log_level=log_level,
            timeout_graceful_shutdown=30,
        )
    finally:
        close_backend(judge.backend)
