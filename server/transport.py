"""The hub's WebSocket connection: a bounded send buffer and a keepalive that cannot hang.

websockets answers pings and writes close frames itself, so roomhub's own send-buffer check
(`Connection.write` in hub.py) never sees those bytes: a client that floods pings and never
reads would grow the hub's memory without bound. And websockets' keepalive waits in `drain()`
without a timeout, so a dead reader whose backlog pauses the transport is never evicted.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.protocol import State

log = logging.getLogger("roomhub.transport")


class GuardedConnection(ServerConnection):
    """A `ServerConnection` whose unsent bytes stay under `send_buffer_limit`, whoever
    writes them, and whose keepalive drops a peer that does not answer within ping_timeout."""

    send_buffer_limit = 4 * 1024 * 1024
    _dropped = False
    _reading_paused = False

    def send_data(self) -> None:
        """Write what the protocol produced (pongs, pings, close frames, the handshake), then
        check the backlog: past the limit an open connection is aborted; one already closing
        (roomhub's 4008 path, a close) stops being read, so the peer cannot add more."""
        if self._dropped:
            self.protocol.data_to_send()  # discarded: the transport is gone
            return
        super().send_data()
        if self.transport.get_write_buffer_size() <= self.send_buffer_limit:
            return
        if self.protocol.state is State.OPEN:
            size = self.transport.get_write_buffer_size()
            self._drop(f"{size} unsent bytes (limit {self.send_buffer_limit})")
        elif not self._reading_paused and not self.transport.is_closing():
            self._reading_paused = True
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._reading_paused and not self.transport.is_closing():
            self._reading_paused = False
            self.transport.resume_reading()

    def _drop(self, why: str) -> None:
        if self._dropped:
            return
        self._dropped = True
        log.warning("dropping %s: %s", _address(self), why)
        self.transport.abort()

    async def keepalive(self) -> None:
        """Ping every ping_interval; the whole ping — written, drained, answered — must take
        at most ping_timeout, else the peer is dropped (close 1011 if it can still go out)."""
        assert self.ping_interval is not None
        latency = 0.0
        try:
            while True:
                await asyncio.sleep(max(self.ping_interval - latency, 0))
                if self.protocol.state is not State.OPEN:
                    return  # the closing path (close_timeout, 4008 grace) ends it
                if self.ping_timeout is None:
                    await self.ping()
                    continue
                try:
                    async with asyncio.timeout(self.ping_timeout):
                        pong = await self.ping()
                        latency = await pong
                except TimeoutError:
                    self._timed_out()
                    return
        except ConnectionClosed:
            return
        except Exception:
            log.exception("keepalive of %s failed", _address(self))

    def _timed_out(self) -> None:
        if self.protocol.state is State.OPEN:
            self.protocol.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
        backlog = self.transport.get_write_buffer_size()
        if not self._dropped:
            self._dropped = True
            log.warning(
                "dropping %s: no pong within %.1fs (%d bytes unsent)",
                _address(self),
                self.ping_timeout,
                backlog,
            )
            super().send_data()
            if self.transport.get_write_buffer_size():
                self.transport.abort()  # the close cannot go out: the peer is not reading
            else:
                self.transport.close()


def connection_class(send_buffer_limit: int) -> type[GuardedConnection]:
    """The `create_connection` for `serve`, with the hub's send buffer limit."""
    return type("HubConnection", (GuardedConnection,), {"send_buffer_limit": send_buffer_limit})


def _address(conn: Any) -> str:
    try:
        host, port = conn.remote_address[:2]
        return f"{host}:{port}"
    except Exception:
        return "unknown"
