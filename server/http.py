"""The node's HTTP side: /healthz, /readyz, /metrics for operators, the server API
(server/api.py) for the apps' backends, and the vendors' dialects (server/dialects/).

A Starlette app on uvicorn, in the hub's process and event loop (a task of the node), on a
socket the node binds itself (honouring --reuse-port). uvicorn installs no signal handler and
configures no logging here: the node's own SIGTERM handling and log setup stay in charge.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from . import __version__, console, dialects
from .api import ServerApi

if TYPE_CHECKING:
    from .hub import Hub

log = logging.getLogger("roomhub.http")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # the Prometheus text format
KEEP_ALIVE_SECONDS = 75  # how long an idle keep-alive connection stays open


class ListenError(OSError):
    """A port the node could not bind; `where` is host:port and which side."""

    def __init__(self, exc: OSError, where: str) -> None:
        super().__init__(exc.errno, exc.strerror or str(exc))
        self.where = where


def bind(host: str, port: int, reuse_port: bool) -> socket.socket:
    """A listening TCP socket on host:port (0 = any free port), SO_REUSEPORT if asked."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(address)
            sock.listen(128)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
    except socket.gaierror as exc:
        raise ListenError(OSError(errno.EADDRNOTAVAIL, str(exc)), f"{host}:{port} (HTTP)") from None
    except OSError as exc:
        raise ListenError(exc, f"{host}:{port} (HTTP)") from None
    return sock


class _Server(uvicorn.Server):
    """uvicorn without its signal handling (older versions: install_signal_handlers), and
    without its fixed pauses: its main loop wakes every 0.1 s and its shutdown sleeps 0.1 s
    even with no connection open; the node's stops at once when told (`wake`)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.wake = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def install_signal_handlers(self) -> None:
        return None

    async def main_loop(self) -> None:
        """A tick a second (the Date header's resolution), or at once when told to stop."""
        while not await self.on_tick(0):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), 1.0)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.server_state.connections or self.server_state.tasks:
            await super().shutdown(sockets)  # uvicorn's: lets the requests under way finish
            return
        for server in self.servers:
            server.close()
        for server in self.servers:
            await server.wait_closed()


_pings: set[asyncio.Future[None]] = set()  # referenced until they end (a cancel may take a while)


def _forget(ping: asyncio.Future[None]) -> None:
    _pings.discard(ping)
    if not ping.cancelled():
        ping.exception()  # retrieved: not logged as never retrieved


async def readiness(hub: Hub) -> dict[str, str]:
    """Each check's outcome: "ok", or what failed. Redis must answer PING within the redis
    timeout; the pub/sub connections must be up and none may have missed its last probe."""
    checks: dict[str, str] = {}
    timeout = hub.settings.redis_timeout
    # Not wait_for: a cancelled PING may take a while to unwind (older redis-py on a hung
    # Redis), and the answer must not wait for it.
    ping = asyncio.ensure_future(hub.store.ping())
    _pings.add(ping)
    ping.add_done_callback(_forget)
    done, _ = await asyncio.wait({ping}, timeout=timeout)
    if not done:
        ping.cancel()
        checks["redis"] = f"no answer to PING within {timeout:g}s"
    elif ping.exception() is not None:
        checks["redis"] = f"PING failed: {type(ping.exception()).__name__}"
    else:
        checks["redis"] = "ok"
    checks["pubsub"] = hub.fanout.subscriber.unready() or "ok"
    return checks


def app(hub: Hub, side: HttpSide) -> Starlette:
    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok", "node": hub.settings.node_id, "version": __version__})

    async def readyz(_: Request) -> Response:
        if side.draining:
            return JSONResponse({"status": "draining", "failed": ["draining"]}, 503)
        checks = await readiness(hub)
        failed = [name for name, outcome in checks.items() if outcome != "ok"]
        status = "unready" if failed else "ready"
        return JSONResponse(
            {"status": status, "failed": failed, "checks": checks}, 503 if failed else 200
        )

    async def metrics(_: Request) -> Response:
        if hub.metrics is None:
            return PlainTextResponse("metrics are off on this node (--metrics false)\n", 404)
        return Response(hub.metrics.exposition(), media_type=CONTENT_TYPE)

    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        *ServerApi(hub).routes(),
        *console.routes(hub),  # GET /console, the live room console (server/console/)
        *dialects.routes(hub),  # the vendors' paths (docs/dialects.md), after the server API
    ]
    return Starlette(routes=routes)


class HttpSide:
    """The HTTP listener of one node: `start` binds (a ListenError if it cannot), `stop`
    ends it. `draining`: the node is stopping, /readyz answers 503."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.draining = False
        self._socket: socket.socket | None = None
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def host(self) -> str:
        settings = self.hub.settings
        return settings.http_host or settings.host

    @property
    def port(self) -> int:
        assert self._socket is not None
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        host = self.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}/"

    async def start(self) -> None:
        settings = self.hub.settings
        self._socket = bind(self.host, settings.http_port, settings.reuse_port)
        config = uvicorn.Config(
            app(self.hub, self),
            lifespan="off",
            log_config=None,  # roomhub's logging, not uvicorn's
            log_level="warning",
            access_log=False,
            http="httptools",
            ws="none",
            proxy_headers=False,
            server_header=False,
            headers=[("server", f"roomhub/{__version__}")],
            timeout_graceful_shutdown=2,
            # Longer than a backend's connection pool keeps an idle connection (httpx 5 s,
            # aiohttp 15 s), so the server is not the side that closes one just as a POST is
            # written on it (uvicorn's default is 5 s).
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
        )
        self._server = _Server(config)
        self._task = asyncio.create_task(
            self._server.serve(sockets=[self._socket]), name="roomhub-http"
        )

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        self._server.wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), 5)
        except TimeoutError:
            self._server.force_exit = True
            self._task.cancel()
        except Exception:
            log.exception("the HTTP side failed")
        finally:
            if self._socket is not None:
                self._socket.close()
