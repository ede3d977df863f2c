"""The server API (docs/http.md): `POST /api/v1/{op}` for every op of the table but auth.

A route per op is generated from `ops.OPS`; each authenticates the request with the same app
keys and tokens as the WebSocket, admits it through the same rate limits (the app's ceiling
is shared by both doors and every node) and runs it through `Hub.call`, the WebSocket's own
way in. Replies carry exactly the WebSocket's result or error object, under an HTTP status
from the one table, protocol/errors.py HTTP_STATUS.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from roomhub.protocol import ops
from roomhub.protocol.errors import HTTP_STATUS, ErrorCode, RoomError, invalid

from . import __version__, openapi
from .openapi import PREFIX, TOO_LARGE, op_path
from .service import Caller
from .sse import EventStream

if TYPE_CHECKING:
    from .hub import Hub

JSON = "application/json"
IDEMPOTENCY_HEADER = "idempotency-key"
KEY_HEADER = "x-roomhub-key"
# The interactive page's assets: Swagger UI from a CDN, pinned.
SWAGGER = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5.17.14"
DOCS_CSP = (
    f"default-src 'none'; script-src 'self' {SWAGGER}; style-src {SWAGGER} 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'"
)


class TooLarge(RoomError):
    """A request body over max_frame_bytes: 413, with the error of a too-large frame."""

    def __init__(self, limit: int) -> None:
        super().__init__(ErrorCode.MALFORMED_FRAME, f"the request body exceeds {limit} bytes")


async def read_json(request: Request, max_bytes: int) -> Any:
    """The request's JSON body ({} when it has no bytes at all), at most `max_bytes` like a
    WebSocket frame (TooLarge past it, before reading it all); not JSON (whitespace alone
    included): 100013. Any JSON value: the caller checks its shape. The one body reader of
    the server API and the dialects."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise TooLarge(max_bytes)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise TooLarge(max_bytes)
    if not body:
        return {}
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RoomError(ErrorCode.MALFORMED_FRAME, f"the body is not JSON: {exc}") from None


def http_status(error: RoomError) -> int:
    """The HTTP status of an error: the table's, or 413 for a body over the cap."""
    return TOO_LARGE if isinstance(error, TooLarge) else HTTP_STATUS[error.code]


def retry_after(error: RoomError) -> int | None:
    """The Retry-After of an error, in whole seconds rounded up (at least 1), if it has one."""
    if error.retry_after_ms is None:
        return None
    return max(1, math.ceil(error.retry_after_ms / 1000))


def error_response(error: RoomError) -> Response:
    """The WebSocket's error object under its HTTP status (Retry-After for 100009)."""
    status = http_status(error)
    headers: dict[str, str] = {}
    seconds = retry_after(error)
    if seconds is not None:
        headers["retry-after"] = str(seconds)
    if error.code is ErrorCode.UNAUTHENTICATED:
        headers["www-authenticate"] = 'Bearer realm="roomhub"'
    return Response(orjson.dumps({"error": error.to_wire()}), status, headers, JSON)


def _result_response(result: dict[str, Any]) -> Response:
    return Response(orjson.dumps({"result": result}), 200, media_type=JSON)


class ServerApi:
    """The routes of the server API of one hub node."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.max_bytes = hub.settings.max_frame_bytes
        self._openapi = orjson.dumps(openapi.document(__version__))

    def routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = [
            Route(op_path(spec.name), self._endpoint(spec), methods=["POST"])
            for spec in openapi.served_ops()
            if not spec.stream
        ]
        routes.append(Route(op_path(openapi.STREAMED), self.watch, methods=["POST"]))
        routes += [
            Route(f"{PREFIX}/openapi.json", self.openapi_json, methods=["GET"]),
            Route(f"{PREFIX}/docs", self.docs, methods=["GET"]),
            Route(f"{PREFIX}/docs.js", self.docs_js, methods=["GET"]),
            Route(f"{PREFIX}/{{op:path}}", self.unknown, methods=["POST"]),
        ]
        return routes

    def _endpoint(self, spec: ops.OpSpec) -> Callable[[Request], Awaitable[Response]]:
        hub = self.hub

        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            try:
                raw = await self._args(request, spec)  # 100013 outranks 100010 (§7)
                caller = self._caller(request)
            except RoomError as exc:
                hub.count(spec.name, exc.code, started)
                return error_response(exc)
            try:
                result = await hub.run(caller, spec, raw, started)  # counted by the hub
            except RoomError as exc:
                return error_response(exc)
            return _result_response(result)

        endpoint.__name__ = spec.name
        return endpoint

    async def watch(self, request: Request) -> Response:
        """room.watch as a stream of Server-Sent Events: the room, then its messages; a
        Last-Event-ID (the last seq read) resumes after it, as `after_seq` does."""
        hub, spec = self.hub, ops.OPS[openapi.STREAMED]
        started = time.perf_counter()
        try:
            raw = await self._args(request, spec)
            caller = self._caller(request)
            last = request.headers.get("last-event-id")
            if last is not None and isinstance(raw, dict):
                if not last.isdigit():
                    raise invalid("after_seq", "Last-Event-ID must be a seq")
                raw = {**raw, "after_seq": int(last)}
        except RoomError as exc:
            hub.count(spec.name, exc.code, started)
            return error_response(exc)
        stream = EventStream(hub.settings.send_buffer_limit)
        try:
            room = await hub.run(caller, spec, raw, started, stream)
        except RoomError as exc:
            return error_response(exc)
        stream.begin(room)
        stream.release(room["id"])

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in stream.body():
                    yield chunk
            finally:
                hub.fanout.unwatch(caller.app, room["id"], stream)

        return StreamingResponse(
            body(),
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
            background=BackgroundTask(hub.fanout.unwatch, caller.app, room["id"], stream),
        )

    def _caller(self, request: Request) -> Caller:
        key = request.headers.get(KEY_HEADER)
        authorization = request.headers.get("authorization")
        if not key or not authorization:
            raise RoomError(
                ErrorCode.UNAUTHENTICATED,
                "requests need the app key in X-Roomhub-Key and 'Authorization: Bearer <token>'",
            )
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise RoomError(ErrorCode.UNAUTHENTICATED, "Authorization must be 'Bearer <token>'")
        return self.hub.auth.verify(key, token.strip())

    async def _args(self, request: Request, spec: ops.OpSpec) -> Any:
        """The op's args from the JSON body (empty: none), at most max_frame_bytes like a
        WebSocket frame, and the Idempotency-Key header."""
        args = await read_json(request, self.max_bytes)  # no map: 100002 from validate_args
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is not None and isinstance(args, dict):
            given = args.get("idempotency_key")
            if given is not None and given != key:
                raise invalid(
                    "idempotency_key", "the Idempotency-Key header and the body's key differ"
                )
            args = {**args, "idempotency_key": key}
        return args

    async def unknown(self, request: Request) -> Response:
        op = request.path_params["op"]
        if op == "auth":
            message = "auth is the WebSocket's handshake: send the token in Authorization"
        elif op in ops.OPS and ops.OPS[op].stream:
            message = (
                f"{op} is the WebSocket's; over HTTP, a room.watch ends as its stream is closed"
            )
        else:
            message = f"unknown op '{op}'"
        return error_response(RoomError(ErrorCode.UNKNOWN_OP, message))

    async def openapi_json(self, _: Request) -> Response:
        return Response(self._openapi, media_type=JSON)

    async def docs(self, _: Request) -> Response:
        page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>roomhub server API</title>
<link rel="stylesheet" href="{SWAGGER}/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="{SWAGGER}/swagger-ui-bundle.js"></script>
<script src="{PREFIX}/docs.js"></script></body></html>
"""
        return HTMLResponse(page, headers={"content-security-policy": DOCS_CSP})

    async def docs_js(self, _: Request) -> Response:
        script = (
            f'window.ui = SwaggerUIBundle({{url: "{PREFIX}/openapi.json", '
            'dom_id: "#swagger-ui", deepLinking: true, persistAuthorization: false});\n'
        )
        return Response(script, media_type="text/javascript")
