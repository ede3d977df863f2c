"""The WebSocket handshake: which requests are served at all, and in which encoding."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import NegotiationError
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from roomhub.protocol import codec
from roomhub.protocol.codec import Encoding

from .connection import when_lost
from .settings import Settings

log = logging.getLogger("roomhub.hub")

SUBPROTOCOLS = [Subprotocol(p) for p in codec.SUBPROTOCOLS]


def select_subprotocol(_conn: ServerConnection, offered: Any) -> Subprotocol | None:
    """No offer: msgpack. An offer with none of ours: refuse the handshake (HTTP 400)."""
    if not offered:
        return None
    for name in offered:
        if name in codec.SUBPROTOCOLS:
            return Subprotocol(name)
    raise NegotiationError(
        f"unsupported subprotocols {', '.join(offered)}; use {' or '.join(codec.SUBPROTOCOLS)}"
    )


def encoding_of(ws: ServerConnection) -> Encoding:
    return Encoding(ws.subprotocol) if ws.subprotocol else Encoding.MSGPACK


class OpenCounts:
    """Open connections per key (an address, a user), for the connection caps."""

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: dict[Any, int] = {}

    def claim(self, key: Any, cap: int) -> bool:
        """Count one more for `key`, unless `cap` (0 = none) are open already."""
        open_now = self._counts.get(key, 0)
        if cap and open_now >= cap:
            return False
        self._counts[key] = open_now + 1
        return True

    def release(self, key: Any) -> None:
        left = self._counts.get(key, 0) - 1
        if left > 0:
            self._counts[key] = left
        else:
            self._counts.pop(key, None)


class RequestCheck:
    """`process_request`: refuse, before the handshake, what is not ours to serve: another
    path, a browser Origin not allowed, an address past its connection cap."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.per_address = OpenCounts()  # open connections per remote address

    def __call__(self, conn: ServerConnection, request: Request) -> Response | None:
        if request.path.split("?", 1)[0] != "/ws":
            return conn.respond(HTTPStatus.NOT_FOUND, "roomhub serves WebSocket at /ws\n")
        origin = request.headers.get("Origin")
        allowed = self.settings.allowed_origins
        if origin is not None and allowed and origin not in allowed:
            log.warning("refused Origin %r from %s", origin, address(conn))
            return conn.respond(HTTPStatus.FORBIDDEN, "Origin not allowed\n")
        peer = address(conn)
        cap = self.settings.max_connections_per_ip
        if not self.per_address.claim(peer, cap):
            log.warning("refused %s: %d connections open from that address", peer, cap)
            return conn.respond(
                HTTPStatus.TOO_MANY_REQUESTS, "too many connections from this address\n"
            )
        release = self.per_address.release
        when_lost(conn, lambda: release(peer))
        return None


def address(ws: ServerConnection) -> str:
    """The peer's host (the key of the per-address cap)."""
    peer = ws.remote_address
    return str(peer[0]) if isinstance(peer, tuple) else str(peer)
