"""What stands between the network and the judge: body size limit, bearer token, and one error shape.

Every error leaves as ``{"error": {"message", "type", "code"}}`` (the OpenAI error shape, which the ``openai``
client reads), with a status a client can act on: 400 bad input, 401 token, 413 too large, 422 schema,
503 overloaded or shutting down, 504 timed out, 499 the client went away, 500 only for a fault of rmr1's own
(and then the reason).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rmr1.errors import ConfigError, InputError, Rmr1Error
from rmr1.serve.batcher import Cancelled, Closed, DeadlineExceeded, Overloaded

log = logging.getLogger("rmr1.serve")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    499: "client_closed_request",
    422: "invalid_request_error",
    503: "overloaded_error",
    504: "timeout_error",
    500: "server_error",
}


class TooLarge(InputError):
    """A request within the byte limit that still asks for too much (too many candidates or items): 413."""


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": _TYPES.get(status, "error"), "code": status}}


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message), status_code=status, headers=headers)


class BodyLimit:
    """Reject request bodies over ``limit`` bytes with 413 before the app reads them.

    A declared Content-Length over the limit is refused at once; a chunked body is counted as it arrives and
    refused as soon as it passes the limit. A body within the limit is replayed to the app unchanged.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._reject(
                send,
                f"the request body ({declared.decode(errors='replace')} bytes) is over the "
                f"server's limit of {self.limit} bytes",
            )
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.limit:
                await self._reject(send, f"the request body is over the server's limit of {self.limit} bytes")
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, send: Send, reason: str) -> None:
        payload = json.dumps(error_body(413, reason)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"connection", b"close"),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def bearer_check(token: str | None) -> Callable[[Request], Awaitable[None]]:
    """A FastAPI dependency: with a token set, every request must say ``Authorization: Bearer <token>``."""
    expected = token.encode() if token else None

    async def check(request: Request) -> None:
        if expected is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), expected):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    return check


def _inline_json(data: Any) -> str:
    """JSON safe inside a <script> element."""
    return json.dumps(data).replace("</", "<\\/")


def protected_docs(app: FastAPI, auth: list[Any]) -> None:
    """``/openapi.json``, ``/docs`` and ``/redoc`` behind the token (FastAPI's own would be open to anyone).

    The two pages carry the schema inline, since the browser's own fetch of /openapi.json has no token.
    """
    from fastapi.openapi.docs import get_swagger_ui_html

    @app.get("/openapi.json", include_in_schema=False, dependencies=auth)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=auth)
    async def docs() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - docs",
            swagger_ui_parameters={"spec": app.openapi()},
        )
        return HTMLResponse(page.body)

    @app.get("/redoc", include_in_schema=False, dependencies=auth)
    async def redoc() -> HTMLResponse:
        return HTMLResponse(
            f"<!DOCTYPE html><html><head><title>{app.title} - ReDoc</title><meta charset='utf-8'></head>"
            "<body><div id='redoc'></div>"
            "<script src='https://cdn.jsdelivr.net/npm/redoc@2/bundles/redoc.standalone.js'></script>"
            f"<script>Redoc.init({_inline_json(app.openapi())}, {{}}, document.getElementById('redoc'))"
            "</script></body></html>"
        )


def _validation_reason(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    more = len(exc.errors()) - 3
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, _validation_reason(exc))

    @app.exception_handler(Rmr1Error)
    async def _rmr1(request: Request, exc: Rmr1Error) -> JSONResponse:
        if isinstance(exc, TooLarge):
            return error_response(413, str(exc))
        if isinstance(exc, (InputError, ConfigError)):
            return error_response(400, str(exc))
        if isinstance(exc, DeadlineExceeded):
            return error_response(504, str(exc))
        if isinstance(exc, Cancelled):  # nobody reads it; the status keeps access logs honest
            return error_response(499, str(exc))
        if isinstance(exc, (Overloaded, Closed)):
            return error_response(503, str(exc), {"Retry-After": "1"})
        log.exception("judge failure on %s", request.url.path)
        return error_response(500, f"{type(exc).__name__}: {exc}")

    @app.exception_handler(Exception)
    async def _fault(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):  # distinct classes before Python 3.11
            return error_response(504, f"timed out: {type(exc).__name__}")
        log.exception("unexpected failure on %s", request.url.path)
        return error_response(500, f"internal error: {type(exc).__name__}: {str(exc)[:300]}")


__all__ = [
    "BodyLimit",
    "TooLarge",
    "bearer_check",
    "error_body",
    "error_response",
    "install_error_handlers",
    "protected_docs",
]
