"""The WebSocket endpoint: handshake, first-frame auth, request dispatch, replies.

All writes to a client go through `Connection.push`, which frames the bytes and hands them
to the transport without awaiting (replies and events alike, so they stay ordered), and
closes a client whose unsent bytes pile up past the limit instead of buffering forever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, NegotiationError
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.typing import Subprotocol

from roomhub.protocol import codec, ops
from roomhub.protocol.codec import Encoding
from roomhub.protocol.errors import CloseCode, ErrorCode, RoomError

from . import __version__, wsframe
from .auth import Authenticator
from .fanout import Fanout, Message, visible_to
from .ratelimit import SlidingWindow
from .service import Caller, Service
from .settings import Settings
from .store import ScriptError, Store, is_unavailable
from .transport import connection_class

log = logging.getLogger("roomhub.hub")

SLOW_CONSUMER_GRACE = 5.0  # seconds a slow consumer has to read its backlog and the close
GARBAGE_LIMIT = 16  # consecutive undecodable frames before close 4400


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


class Flusher:
    """Writes the frames connections were given, for the whole hub: one `send` per connection
    for everything it got meanwhile, and one loop callback per flush, not one per connection.

    The write waits `MAX_TURNS` turns of the event loop (at most `MAX_DELAY` seconds): each
    turn polls the sockets again, so messages that arrive meanwhile join the same write. An
    idle hub's turns take microseconds, so this costs it no latency; a busy hub's turns are
    long, so several messages per connection share one `send` system call, which is most of
    what a delivery costs (measured: 10 x 100 at 11.5 -> 9.5 us of hub CPU per delivery,
    1 x 1,000 at 2.1 -> 1.3 us; p50 ack at 200 ops/s unchanged, about 3 ms)."""

    MAX_TURNS = 8
    MAX_DELAY = 0.02

    __slots__ = ("_deadline", "_dirty", "_loop", "_turns")

    def __init__(self) -> None:
        self._dirty: list[Connection] = []
        self._turns = 0
        self._deadline = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None

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
        for conn in dirty:
            try:
                conn.flush()
            except Exception:  # one broken transport must not cost the others their turn
                log.exception("write to %s failed", conn.ws.remote_address)


class Connection:
    """One client: its encoding, identity, and the non-blocking write path."""

    __slots__ = (
        "_flusher",
        "_out",
        "caller",
        "encoding",
        "floor",
        "inflight",
        "opening",
        "rate",
        "send_buffer_limit",
        "ws",
    )

    def __init__(
        self, ws: ServerConnection, encoding: Encoding, settings: Settings, flusher: Flusher
    ) -> None:
        self.ws = ws
        self.encoding = encoding
        self.caller: Caller | None = None
        self.send_buffer_limit = settings.send_buffer_limit
        self.inflight = asyncio.Semaphore(settings.max_inflight)
        self.rate: SlidingWindow | None = None  # user connections only (§8)
        # Until the auth reply (and any resume replay) is written, events wait here: a client
        # sees its auth reply first, and replayed messages before live ones.
        self.opening: list[Callable[[], None]] | None = []
        # Rooms resumed: the seq the replay reached. This node's feed may still be behind it
        # (pub/sub lags the log), so live messages up to it are already written: drop them.
        self.floor: dict[str, int] = {}
        # Frames waiting for the next flush of the hub's Flusher, written together in one send.
        self._out: list[bytes] = []
        self._flusher = flusher

    def deliver(self, message: Message) -> None:
        if self.opening is not None:
            self.opening.append(lambda: self.deliver(message))
            return
        if self.floor:
            floor = self.floor.get(message.room)
            if floor is not None:
                if message.seq <= floor:
                    return
                del self.floor[message.room]  # the feed caught up: in order from here on
        self.write(message.frame(self.encoding))

    def resync(self, room: str, seq: int) -> None:
        if self.opening is not None:
            self.opening.append(lambda: self.resync(room, seq))
            return
        self.push(_resync_frame(room, seq, self.encoding))

    def open(self) -> None:
        """The auth reply and replays are written: deliver what arrived meanwhile, then live."""
        waiting, self.opening = self.opening or [], None
        for send in waiting:
            send()

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


class Hub:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.service = Service(store, settings)
        self.fanout = Fanout(store, settings.node_id, settings.pubsub_probe_interval)
        self.auth = Authenticator(settings.apps)
        self.server: Server | None = None
        self._flusher = Flusher()
        self._inflight: set[asyncio.Task[None]] = set()  # referenced so they are never GC'd
        self._per_address = OpenCounts()  # open connections per remote address
        self._per_user = OpenCounts()  # open user connections on this node, per (app, user)
        self._handlers = {name: self.service.handler(name) for name in ops.OPS if name != "auth"}

    async def start(self) -> Server:
        await self.fanout.start()
        origins: Any = None
        if self.settings.allowed_origins:
            origins = [*self.settings.allowed_origins, None]  # None: non-browser clients
        self.server = await serve(
            self.handle,
            self.settings.host,
            self.settings.port,
            subprotocols=[Subprotocol(p) for p in codec.SUBPROTOCOLS],
            select_subprotocol=select_subprotocol,
            process_request=self._check_request,
            origins=origins,
            max_size=self.settings.max_frame_bytes,
            compression=None,
            ping_interval=self.settings.ping_interval,
            ping_timeout=self.settings.ping_timeout,
            server_header=f"roomhub/{__version__}",
            create_connection=connection_class(self.settings.send_buffer_limit),
        )
        return self.server

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self, drain_timeout: float = 10.0) -> None:
        """Stop accepting, close clients with 1001 (they reconnect elsewhere), and let the
        ops already running finish, so every op a client sent is either applied and
        acknowledged, or not applied."""
        if self.server is not None:
            self.server.close(close_connections=True)
            await self.server.wait_closed()
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=drain_timeout)
        await self.fanout.close()

    def _check_request(self, conn: ServerConnection, request: Request) -> Response | None:
        """Refuse, before the handshake, what is not ours to serve: another path, a browser
        Origin not allowed, an address past its connection cap."""
        if request.path.split("?", 1)[0] != "/ws":
            return conn.respond(HTTPStatus.NOT_FOUND, "roomhub serves WebSocket at /ws\n")
        origin = request.headers.get("Origin")
        allowed = self.settings.allowed_origins
        if origin is not None and allowed and origin not in allowed:
            log.warning("refused Origin %r from %s", origin, _address(conn))
            return conn.respond(HTTPStatus.FORBIDDEN, "Origin not allowed\n")
        address = _address(conn)
        cap = self.settings.max_connections_per_ip
        if not self._per_address.claim(address, cap):
            log.warning("refused %s: %d connections open from that address", address, cap)
            return conn.respond(
                HTTPStatus.TOO_MANY_REQUESTS, "too many connections from this address\n"
            )
        release = self._per_address.release
        conn.connection_lost_waiter.add_done_callback(lambda _: release(address))
        return None

    # connection lifecycle -------------------------------------------------------------------

    async def handle(self, ws: ServerConnection) -> None:
        encoding = Encoding(ws.subprotocol) if ws.subprotocol else Encoding.MSGPACK
        conn = Connection(ws, encoding, self.settings, self._flusher)
        address = _address(ws)
        log.info("connection from %s opened (%s)", address, encoding.value)
        caller: Caller | None = None
        try:
            try:
                caller = await self._authenticate(conn)
            except TimeoutError:
                await conn.close(CloseCode.UNAUTHENTICATED, "auth deadline passed")
                return
            if caller is None:
                await conn.close(CloseCode.UNAUTHENTICATED, "not authenticated")
                return
            conn.caller = caller
            if not caller.server and self.settings.conn_rate_limit > 0:
                conn.rate = SlidingWindow(self.settings.conn_rate_limit)
            await self._serve(conn)
        except ConnectionClosed:
            pass
        finally:
            if caller is not None and not caller.server:
                self.fanout.detach(caller.app, caller.user, conn)
                self._release_user(caller)
            log.info(
                "connection from %s closed (user %s, code %s)",
                address,
                _who(caller),
                ws.close_code if ws.close_code is not None else "none",
            )

    def _claim_user(self, caller: Caller) -> None:
        """Count a user connection on this node, or refuse it past the per-user cap."""
        if caller.server:
            return
        cap = self.settings.max_connections_per_user
        if not self._per_user.claim((caller.app, caller.user), cap):
            raise RoomError(
                ErrorCode.RATE_LIMITED,
                f"user '{caller.user}' has {cap} connections open on this node already",
            )

    def _release_user(self, caller: Caller) -> None:
        self._per_user.release((caller.app, caller.user))

    async def _authenticate(self, conn: Connection) -> Caller | None:
        """Read frames until a good `auth` (None: close with 4401), within the deadline.

        Exactly one reply per auth request: everything the reply depends on (registration,
        subscriptions, the room list, resume reads) is done before anything is written. A
        store failure answers 100001 and leaves the connection unauthenticated, so the client
        may send `auth` again (within the deadline) once Redis is back."""
        async with asyncio.timeout(self.settings.auth_timeout):
            while True:
                data = await conn.ws.recv()
                re: Any = None
                try:
                    frame = self._decode(data, conn)
                    re = ops.reply_id(frame)
                    request = ops.parse_request(frame)
                    if request.op != "auth":
                        raise RoomError(ErrorCode.UNAUTHENTICATED, "the first op must be auth")
                    raw = request.args if isinstance(request.args, dict) else {}
                    key, token = raw.get("key"), raw.get("token")
                    if not isinstance(key, str) or not isinstance(token, str):
                        raise RoomError(ErrorCode.UNAUTHENTICATED, "auth needs 'key' and 'token'")
                    caller = self.auth.verify(key, token)
                    # Good credentials: any other argument error is 100002 (docs/protocol.md §7).
                    args = ops.validate_args(ops.OPS["auth"], request.args)
                    self._claim_user(caller)
                except RoomError as exc:
                    conn.error(re, exc)
                    if exc.code in (ErrorCode.MALFORMED_FRAME, ErrorCode.INVALID_PARAMETER):
                        continue  # still unauthenticated; the deadline keeps running
                    log.warning(
                        "refused auth from %s: %s (%s)",
                        _address(conn.ws),
                        exc.message,
                        exc.code.reason,
                    )
                    return None
                try:
                    result, resumed = await self._welcome(conn, caller, args.resume or {})
                except Exception as exc:
                    if not caller.server:
                        self.fanout.detach(caller.app, caller.user, conn)
                        self._release_user(caller)
                    conn.floor.clear()
                    conn.opening = []
                    conn.error(re, _internal(exc))
                    continue
                conn.reply(re, result)
                for framed in resumed:
                    conn.write(framed)
                conn.open()
                return caller

    async def _welcome(
        self, conn: Connection, caller: Caller, resume: dict[str, int]
    ) -> tuple[dict[str, Any], list[bytes]]:
        """The auth result, and the frames of the resumed rooms (written after it)."""
        rooms: list[str] = []
        resumed: list[bytes] = []
        if not caller.server:
            await self.store.register_user(caller.app, caller.user)
            # Subscribe before reading the room list: a room added in between still arrives.
            await self.fanout.attach(caller.app, caller.user, conn, ())
            listed = await self.store.user_rooms(caller.app, caller.user)
            rooms = [room["id"] for room in listed]
            # A connection starts after each room's current seq: a node whose feed still lags
            # (pub/sub trails the log) must not hand it changes from before it connected.
            conn.floor.update((room["id"], room["seq"]) for room in listed)
            await asyncio.gather(*(self.fanout.follow(caller.app, r) for r in rooms))
            budget = self.settings.resume_max_total
            for room, last_seq in resume.items():
                budget -= await self._replay(conn, caller, room, last_seq, budget, resumed)
        result = {
            "user": caller.user,
            "rooms": rooms,
            "server": {"version": __version__, "node": self.settings.node_id},
        }
        return result, resumed

    async def _replay(
        self,
        conn: Connection,
        caller: Caller,
        room: str,
        last_seq: int,
        budget: int,
        out: list[bytes],
    ) -> int:
        """Resume one room into `out`: every message after `last_seq`, in order, before any
        live one; or `resync` when they cannot all be replayed (the history no longer reaches
        back, the client is ahead of the room, or the replay would pass the resume caps).
        A non-member always gets `resync 0`, whatever the room's seq: it learns nothing of the
        room. Returns the number of messages replayed."""
        limit = max(0, min(self.settings.resume_max_messages, budget))
        try:
            current, is_member, raws = await self.store.replay(
                caller.app, room, user=caller.user, after_seq=last_seq, limit=limit
            )
        except RoomError as exc:
            if exc.code is not ErrorCode.ROOM_NOT_FOUND:
                raise
            out.append(_framed_resync(room, 0, conn.encoding))
            return 0
        # Live messages up to `current` are in the replay or covered by the resync.
        conn.floor[room] = current
        if not is_member:
            out.append(_framed_resync(room, 0, conn.encoding))
            return 0
        messages = [Message(raw) for raw in raws]
        gapless = (
            last_seq <= current
            and len(messages) == current - last_seq
            and (not messages or messages[0].seq == last_seq + 1)
        )
        if not gapless:
            out.append(_framed_resync(room, current, conn.encoding))
            return 0
        out.extend(m.frame(conn.encoding) for m in visible_to(caller.user, True, messages))
        return len(messages)

    def _decode(self, data: bytes | str, conn: Connection) -> dict[str, Any]:
        return codec.decode(data, conn.encoding, max_bytes=self.settings.max_frame_bytes)

    async def _serve(self, conn: Connection) -> None:
        garbage = 0
        async for data in conn.ws:
            re: Any = None
            try:
                frame = self._decode(data, conn)
                garbage = 0
                re = ops.reply_id(frame)
                request = ops.parse_request(frame)
                if request.op == "auth":
                    raise RoomError(ErrorCode.INVALID_PARAMETER, "already authenticated")
                spec = ops.lookup(request.op)
                if spec.mutating:  # admission is decided here, before the op is queued (§8)
                    await self._admit(conn, conn.caller)
            except Exception as exc:
                if not isinstance(exc, RoomError):
                    conn.error(re, _internal(exc))  # e.g. Redis away during the app ceiling
                    continue
                conn.error(re, exc)
                if exc.code is ErrorCode.MALFORMED_FRAME:
                    garbage += 1
                    if garbage >= GARBAGE_LIMIT:
                        await conn.close(CloseCode.GARBAGE, "too many malformed frames")
                        return
                continue
            await conn.inflight.acquire()
            task = asyncio.create_task(self._execute(conn, re, spec, request.args))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def _execute(self, conn: Connection, re: Any, spec: ops.OpSpec, raw_args: Any) -> None:
        caller = conn.caller
        assert caller is not None
        try:
            args = ops.validate_args(spec, raw_args)
            result = await self._handlers[spec.name](caller, args)
        except RoomError as exc:
            conn.error(re, exc)
        except Exception as exc:
            conn.error(re, _internal(exc))
        else:
            conn.reply(re, result)
        finally:
            conn.inflight.release()

    async def _admit(self, conn: Connection, caller: Caller | None) -> None:
        """The connection's limit (in memory), then the user's and the app's, shared by all
        nodes through Redis (§8); a limit of 0 is off. Server tokens have only the app's."""
        assert caller is not None
        if conn.rate is not None:
            wait_ms = conn.rate.admit()
            if wait_ms:
                raise _rate_limited(wait_ms, "this connection")
        ceiling = self.settings.ceiling(caller.app)
        user_ceiling = 0 if caller.server else self.settings.user_rate_limit
        if ceiling <= 0 and user_ceiling <= 0:
            return
        try:
            wait_ms = await self.store.admit(
                caller.app, ceiling, self.settings.node_id, caller.user, user_ceiling
            )
        except BaseException:
            if conn.rate is not None:
                conn.rate.refund()
            raise
        if wait_ms:
            if conn.rate is not None:
                conn.rate.refund()
            if wait_ms < 0:
                raise _rate_limited(-wait_ms, f"user '{caller.user}' ({user_ceiling}/s)")
            raise _rate_limited(wait_ms, f"app '{caller.app}' ({ceiling}/s)")


def _resync_frame(room: str, seq: int, encoding: Encoding) -> bytes:
    return codec.encode({"event": "resync", "room": room, "seq": seq}, encoding)


def _framed_resync(room: str, seq: int, encoding: Encoding) -> bytes:
    return wsframe.frame(_resync_frame(room, seq, encoding), text=encoding is Encoding.JSON)


def _rate_limited(wait_ms: int, who: str) -> RoomError:
    return RoomError(
        ErrorCode.RATE_LIMITED,
        f"rate limit of {who} reached; retry in {wait_ms} ms",
        retry_after_ms=wait_ms,
    )


def _address(ws: ServerConnection) -> str:
    peer = ws.remote_address
    return str(peer[0]) if isinstance(peer, tuple) else str(peer)


def _who(caller: Caller | None) -> str:
    if caller is None:
        return "none"
    return f"{caller.app}/{caller.user}" + (" (server)" if caller.server else "")


def _internal(exc: Exception) -> RoomError:
    """100001 for a failure that is not the client's: an outage (WARNING, safe to retry), or
    a bug (ERROR with the traceback, or the failing script's name)."""
    if is_unavailable(exc):
        log.warning("store unavailable: %r", exc)
        return RoomError(ErrorCode.INTERNAL, "store unavailable; safe to retry")
    if isinstance(exc, ScriptError):
        log.error("internal error in Redis script %s: %s", exc.script, exc.__cause__)
    else:
        log.exception("unexpected failure", exc_info=exc)
    return RoomError(ErrorCode.INTERNAL, "internal error")
