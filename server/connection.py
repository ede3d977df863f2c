"""The socket side of a client connection: the only module that reaches into websockets'
`ws.protocol` and `ws.transport`.

`Connection` frames replies and events and hands them to the transport without awaiting
(replies and events alike, so they stay ordered), through the hub's `Flusher`, and closes a
client whose unsent bytes pile up past the limit instead of buffering forever. What it is
written of the system messages is decided by its base, `delivery.Inbox`.

`GuardedConnection` is websockets' own connection object, bounded the same way: websockets
answers pings and writes close frames itself, so `Connection.write` never sees those bytes,
and a client that floods pings and never reads would grow the hub's memory without bound.
And websockets' keepalive waits in `drain()` without a timeout, so a dead reader whose
backlog pauses the transport would never be evicted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from roomhub.protocol import codec
from roomhub.protocol.codec import Encoding
from roomhub.protocol.errors import CloseCode, RoomError

from . import wsframe
from .delivery import Inbox
from .ratelimit import SlidingWindow
from .service import Caller
from .settings import Settings

if TYPE_CHECKING:
    from .metrics import Metrics

log = logging.getLogger("roomhub.hub")
transport_log = logging.getLogger("roomhub.transport")

SLOW_CONSUMER_GRACE = 5.0  # seconds a slow consumer has to read its backlog and the close


class Flusher:
    """Writes the frames connections were given, for the whole hub: one `send` per connection
    for everything it got meanwhile, and one loop callback per flush, not one per connection.

    The write waits `MAX_TURNS` turns of the event loop (at most `MAX_DELAY` seconds): each
    turn polls the sockets again, so messages that arrive meanwhile join the same write. An
    idle hub's turns take microseconds, so this costs it no latency; a busy hub's turns are
    long, so several messages per connection share one `send` system call, which is most of
    what a delivery costs."""

    MAX_TURNS = 8
    MAX_DELAY = 0.02

    __slots__ = ("_deadline", "_dirty", "_loop", "_turns", "metrics")

    def __init__(self, metrics: Metrics | None = None) -> None:
        self._dirty: list[Connection] = []
        self._turns = 0
        self._deadline = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self.metrics = metrics  # counted once per flush, never per connection

    def mark(self, conn: Connection) -> None:
        if not self._dirty:
            loop = self._loop = asyncio.get_running_loop()
            self._turns = 0
            self._deadline = loop.time() + self.MAX_DELAY
            loop.call_soon(self._turn)
        self._dirty.append(conn)

    def _turn(self) -> None:
        loop = self._loop
        assert loop is not None
        if self._turns < self.MAX_TURNS and loop.time() < self._deadline:
            self._turns += 1
            loop.call_soon(self._turn)
            return
        self.flush()

    def flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        if self.metrics is not None:
            self.metrics.socket_writes.inc(len(dirty))
        for conn in dirty:
            try:
                conn.flush()
            except Exception:  # one broken transport must not cost the others their turn
                log.exception("write to %s failed", conn.ws.remote_address)


class Connection(Inbox):
    """One client: its encoding, identity, and the non-blocking write path."""

    __slots__ = ("_flusher", "_out", "caller", "inflight", "rate", "send_buffer_limit", "ws")

    def __init__(
        self, ws: ServerConnection, encoding: Encoding, settings: Settings, flusher: Flusher
    ) -> None:
        super().__init__(encoding)
        self.ws = ws
        self.caller: Caller | None = None
        self.send_buffer_limit = settings.send_buffer_limit
        self.inflight = asyncio.Semaphore(settings.max_inflight)
        self.rate: SlidingWindow | None = None  # user connections only (§8)
        # Frames waiting for the next flush of the hub's Flusher, written together in one send.
        self._out: list[bytes] = []
        self._flusher = flusher

    def push(self, data: bytes) -> None:
        """Write one frame's payload to this client, framed for its encoding."""
        self.write(wsframe.frame(data, text=self.encoding is Encoding.JSON))

    def write(self, framed: bytes) -> None:
        """Write an already framed WebSocket frame, without waiting for the client. The
        connection's state and send buffer are checked once per flush, by the first write."""
        out = self._out
        if not out:
            ws = self.ws
            if ws.protocol.state is not State.OPEN:
                return
            if ws.transport.get_write_buffer_size() > self.send_buffer_limit:
                self._drop_slow_consumer()
                return
            self._flusher.mark(self)
        out.append(framed)

    def _drop_slow_consumer(self) -> None:
        """Queue the close behind the backlog (nothing more is written: the state is no longer
        OPEN) and drop the connection if the client does not read it in time."""
        ws = self.ws
        log.warning("closing slow consumer %s", ws.remote_address)
        if self._flusher.metrics is not None:
            self._flusher.metrics.slow_consumer_drops.inc()
        ws.protocol.send_close(CloseCode.SLOW_CONSUMER, "slow consumer: send buffer full")
        ws.send_data()
        asyncio.get_running_loop().call_later(SLOW_CONSUMER_GRACE, ws.transport.abort)

    def flush(self) -> None:
        if not self._out:
            return  # already flushed by close()
        out, self._out = self._out, []
        if self.ws.protocol.state is State.OPEN:
            self.ws.transport.write(out[0] if len(out) == 1 else b"".join(out))

    async def close(self, code: int, reason: str) -> None:
        """Close after what is already written (e.g. the error that explains the close)."""
        self.flush()
        await self.ws.close(code, reason)

    def reply(self, re: Any, result: Any) -> None:
        self.push(codec.encode({"re": re, "ok": True, "result": result}, self.encoding))

    def error(self, re: Any, error: RoomError) -> None:
        self.push(codec.encode({"re": re, "ok": False, "error": error.to_wire()}, self.encoding))


def close_code(ws: ServerConnection) -> int | str:
    """The close code as the node saw it: the one it sent (its own, or the echo of the
    client's), else the one it got, else 1006 (no close frame); "none" while still open."""
    sent = ws.protocol.close_sent
    if sent is not None:
        return int(sent.code)
    return ws.close_code if ws.close_code is not None else "none"


def send_buffers(conns: Iterable[ServerConnection]) -> tuple[int, int]:
    """(unsent bytes of all `conns` together, of the fullest one)."""
    sizes = [ws.transport.get_write_buffer_size() for ws in conns if ws.transport is not None]
    return sum(sizes), max(sizes, default=0)


def when_lost(ws: ServerConnection, callback: Callable[[], None]) -> None:
    """Call `callback` once the TCP connection is gone (whether or not the handshake was)."""
    ws.connection_lost_waiter.add_done_callback(lambda _: callback())


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
        transport_log.warning("dropping %s: %s", _peer(self), why)
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
            transport_log.exception("keepalive of %s failed", _peer(self))

    def _timed_out(self) -> None:
        if self.protocol.state is State.OPEN:
            self.protocol.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
        backlog = self.transport.get_write_buffer_size()
        if not self._dropped:
            self._dropped = True
            transport_log.warning(
                "dropping %s: no pong within %.1fs (%d bytes unsent)",
                _peer(self),
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


def _peer(conn: Any) -> str:
    try:
        host, port = conn.remote_address[:2]
        return f"{host}:{port}"
    except Exception:
        return "unknown"
