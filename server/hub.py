"""The WebSocket endpoint: first-frame auth, then the request loop (admission, dispatch).

The handshake is in handshake.py, the socket write path in connection.py, what a connection
is written of the system messages in delivery/.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from roomhub.protocol import codec, ops
from roomhub.protocol.errors import CloseCode, ErrorCode, RoomError, invalid

from . import __version__
from .auth import Authenticator
from .connection import Connection, Flusher, close_code, connection_class, send_buffers
from .delivery import ResumePlan
from .delivery.fanout import Fanout
from .delivery.inbox import Inbox
from .handshake import (
    SUBPROTOCOLS,
    OpenCounts,
    RequestCheck,
    address,
    encoding_of,
    select_subprotocol,
)
from .metrics import UNKNOWN_OP, Metrics
from .presence import Presence
from .ratelimit import SlidingWindow
from .service import Caller, Service
from .settings import Settings
from .store import ScriptError, Store, is_unavailable

log = logging.getLogger("roomhub.hub")

GARBAGE_LIMIT = 16  # consecutive undecodable frames before close 4400


class Hub:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        # None with --metrics false: nothing is counted.
        self.metrics = Metrics(self._sample) if settings.metrics else None
        # None with --presence false: nobody's presence is tracked here.
        self.presence = (
            Presence(store.presence, settings.node_id, settings.presence_heartbeat, self.metrics)
            if settings.presence
            else None
        )
        self.fanout = Fanout(
            store,
            settings.node_id,
            settings.pubsub_probe_interval,
            metrics=self.metrics,
            presence=self.presence,
        )
        self.service = Service(store, settings, self.fanout)
        self.auth = Authenticator(settings.apps)
        self.server: Server | None = None
        # The node's http.HttpSide (not imported: it imports this module), set by
        # node.running_hub once it listens.
        self.http: Any = None
        self._flusher = Flusher(self.metrics)
        self._inflight: set[asyncio.Task[None]] = set()  # referenced so they are never GC'd
        self._check_request = RequestCheck(settings)
        self._per_user = OpenCounts()  # open user connections on this node, per (app, user)
        self._handlers = {name: self.service.handler(name) for name in ops.OPS if name != "auth"}

    async def start(self) -> Server:
        await self.fanout.start()
        if self.presence is not None:
            await self.presence.start()
        origins: Any = None
        if self.settings.allowed_origins:
            origins = [*self.settings.allowed_origins, None]  # None: non-browser clients
        self.server = await serve(
            self.handle,
            self.settings.host,
            self.settings.port,
            subprotocols=SUBPROTOCOLS,
            select_subprotocol=select_subprotocol,
            process_request=self._check_request,
            origins=origins,
            max_size=self.settings.max_frame_bytes,
            compression=None,
            ping_interval=self.settings.ping_interval,
            ping_timeout=self.settings.ping_timeout,
            server_header=f"roomhub/{__version__}",
            create_connection=connection_class(self.settings.send_buffer_limit),
            reuse_port=self.settings.reuse_port,  # worker processes share the port
        )
        return self.server

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    @property
    def http_port(self) -> int:
        """The bound port of the HTTP side (health, readiness, metrics, the server API)."""
        assert self.http is not None
        return int(self.http.port)

    def _sample(self, metrics: Metrics) -> None:
        """At scrape time: what is read rather than counted."""
        total, largest = send_buffers(self.server.connections if self.server else ())
        metrics.send_buffer_bytes.set(total)
        metrics.send_buffer_max_bytes.set(largest)
        if self.presence is not None:
            metrics.presence_users.set(len(self.presence.written))
            metrics.presence_pending.set(self.presence.pending)

    async def stop(self, drain_timeout: float = 10.0) -> None:
        """Stop accepting, close clients with 1001 (they reconnect elsewhere), and let the
        ops already running finish, so every op a client sent is either applied and
        acknowledged, or not applied."""
        if self.server is not None:
            self.server.close(close_connections=True)
            await self.server.wait_closed()
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=drain_timeout)
        if self.presence is not None:
            await self.presence.close()
        await self.fanout.close()

    # connection lifecycle -------------------------------------------------------------------

    async def handle(self, ws: ServerConnection) -> None:
        conn = Connection(ws, encoding_of(ws), self.settings, self._flusher)
        peer = address(ws)
        log.info("connection from %s opened (%s)", peer, conn.encoding.value)
        caller: Caller | None = None
        metrics = self.metrics
        encoding = conn.encoding.name.lower()  # msgpack or json
        if metrics is not None:
            metrics.connections_opened.labels(encoding).inc()
            metrics.connections_open.labels(encoding, "unauthenticated").inc()
        try:
            try:
                caller = await self._authenticate(conn)
            except TimeoutError:
                if metrics is not None:
                    metrics.auth_failures.labels("timeout").inc()
                await conn.close(CloseCode.UNAUTHENTICATED, "auth deadline passed")
                return
            if caller is None:
                await conn.close(CloseCode.UNAUTHENTICATED, "not authenticated")
                return
            conn.caller = caller
            if metrics is not None:
                metrics.connections_open.labels(encoding, "unauthenticated").dec()
                metrics.connections_open.labels(encoding, _kind(caller)).inc()
            if not caller.server and self.settings.conn_rate_limit > 0:
                conn.rate = SlidingWindow(self.settings.conn_rate_limit)
            await self._serve(conn)
        except ConnectionClosed:
            pass
        finally:
            if caller is not None and not caller.server:
                self.fanout.detach(caller.app, caller.user, conn)
                self._release_user(caller)
            elif caller is not None and conn.watching:
                self.fanout.unwatch_all(caller.app, conn)
            if conn.presence:
                assert caller is not None
                self.fanout.drop_presence(caller.app, conn)
            if metrics is not None:
                kind = "unauthenticated" if conn.caller is None else _kind(conn.caller)
                metrics.connections_open.labels(encoding, kind).dec()
                metrics.connections_closed.labels(str(close_code(ws))).inc()
            log.info(
                "connection from %s closed (user %s, code %s)",
                peer,
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
                    if args.presence and self.presence is None:
                        raise invalid("presence", "presence is off on this hub (--presence)")
                    self._claim_user(caller)
                except RoomError as exc:
                    conn.error(re, exc)
                    if exc.code in (ErrorCode.MALFORMED_FRAME, ErrorCode.INVALID_PARAMETER):
                        continue  # still unauthenticated; the deadline keeps running
                    if self.metrics is not None:
                        self.metrics.auth_failures.labels(exc.code.reason).inc()
                    log.warning(
                        "refused auth from %s: %s (%s)",
                        address(conn.ws),
                        exc.message,
                        exc.code.reason,
                    )
                    return None
                try:
                    if args.presence:
                        await self.fanout.want_presence(caller.app, conn)
                    result, replay = await self._welcome(conn, caller, args.resume or {})
                except Exception as exc:
                    self._undo_welcome(conn, caller)
                    conn.error(re, self.internal(exc))
                    continue
                except BaseException:  # the auth deadline passed meanwhile: nothing may stay
                    self._undo_welcome(conn, caller)
                    raise
                conn.reply(re, result)
                conn.open(replay)
                return caller

    def _undo_welcome(self, conn: Connection, caller: Caller) -> None:
        """A welcome that failed or ran out of time: the connection holds nothing (no local
        delivery, no per-user count, no presence), so it may authenticate again."""
        if not caller.server:
            self.fanout.detach(caller.app, caller.user, conn)
            self._release_user(caller)
        self.fanout.drop_presence(caller.app, conn)
        conn.presence = False
        conn.reset()

    async def _welcome(
        self, conn: Connection, caller: Caller, resume: dict[str, int]
    ) -> tuple[dict[str, Any], list[bytes]]:
        """The auth result, and the frames of the resumed rooms (written after it)."""
        rooms: list[str] = []
        replay: list[bytes] = []
        if not caller.server:  # a server token's `resume` is ignored (§9.1)
            await self.store.register_user(caller.app, caller.user)
            settings = self.settings
            plan = ResumePlan(
                caller.user, conn.encoding, settings.resume_max_messages, settings.resume_max_total
            )
            rooms = await self.fanout.welcome(caller.app, caller.user, conn, resume, plan)
            replay = plan.frames
        result = {
            "user": caller.user,
            "rooms": rooms,
            "server": {"version": __version__, "node": self.settings.node_id},
        }
        return result, replay

    def _decode(self, data: bytes | str, conn: Connection) -> dict[str, Any]:
        return codec.decode(data, conn.encoding, max_bytes=self.settings.max_frame_bytes)

    async def _serve(self, conn: Connection) -> None:
        garbage = 0
        metrics = self.metrics
        started = 0.0
        async for data in conn.ws:
            re: Any = None
            op = UNKNOWN_OP
            if metrics is not None:
                started = time.perf_counter()
            try:
                frame = self._decode(data, conn)
                garbage = 0
                re = ops.reply_id(frame)
                request = ops.parse_request(frame)
                if request.op == "auth":
                    op = "auth"
                    raise RoomError(ErrorCode.INVALID_PARAMETER, "already authenticated")
                spec = ops.lookup(request.op)
                op = spec.name
                if spec.mutating:  # admission is decided here, before the op is queued (§8)
                    assert conn.caller is not None
                    await self.admit(conn.caller, conn.rate)
            except Exception as exc:
                # Not a RoomError: e.g. Redis away during the app ceiling.
                error = exc if isinstance(exc, RoomError) else self.internal(exc)
                conn.error(re, error)
                if metrics is not None:
                    metrics.op_done(op, error.code, started)
                if error.code is ErrorCode.MALFORMED_FRAME:
                    garbage += 1
                    if garbage >= GARBAGE_LIMIT:
                        await conn.close(CloseCode.GARBAGE, "too many malformed frames")
                        return
                continue
            await conn.inflight.acquire()
            task = asyncio.create_task(self._execute(conn, re, spec, request.args, started))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def _execute(
        self, conn: Connection, re: Any, spec: ops.OpSpec, raw_args: Any, started: float
    ) -> None:
        caller = conn.caller
        assert caller is not None
        try:
            result = await self.call(caller, spec, raw_args, started, conn)
        except RoomError as exc:
            conn.error(re, exc)
        else:
            conn.reply(re, result)
            if spec.stream:
                self._started(conn, caller, raw_args["room"])
        finally:
            conn.inflight.release()

    def _started(self, conn: Connection, caller: Caller, room: str) -> None:
        """A room.watch's reply is written: its replay and live messages follow. A watch
        that ended after its connection closed is undone (the close's cleanup ran first)."""
        if conn.ws.state is not State.OPEN:
            self.fanout.unwatch(caller.app, room, conn)
            return
        conn.release(room)

    async def run(
        self,
        caller: Caller,
        spec: ops.OpSpec,
        raw_args: Any,
        started: float,
        stream: Inbox | None = None,
    ) -> dict[str, Any]:
        """Admit (a mutating op) and `call` one op for a door with no connection of its own
        (the server API, the dialects): every failure a counted RoomError. `stream`: what a
        room.watch over HTTP writes to (server/sse.py)."""
        if spec.mutating:
            try:
                await self.admit(caller)
            except Exception as exc:  # not a RoomError: e.g. Redis away during the ceiling
                error = exc if isinstance(exc, RoomError) else self.internal(exc)
                self.count(spec.name, error.code, started)
                raise error from None
        return await self.call(caller, spec, raw_args, started, stream)

    def count(self, op: str, code: ErrorCode, started: float) -> None:
        """A request of `op` that failed before its op ran (auth, admission, framing)."""
        if self.metrics is not None:
            self.metrics.op_done(op, code, started)

    async def call(
        self,
        caller: Caller,
        spec: ops.OpSpec,
        raw_args: Any,
        started: float,
        conn: Inbox | None = None,
    ) -> dict[str, Any]:
        """Validate and run one admitted op, counted: the one way in for both doors (the
        WebSocket and the HTTP API). Every failure comes out as a RoomError. `conn`: the
        caller's connection, which a stream op (room.watch) starts or stops writing to."""
        code: ErrorCode | None = None
        try:
            args = ops.validate_args(spec, raw_args)
            if spec.stream:
                if conn is None:
                    raise RoomError(ErrorCode.UNKNOWN_OP, f"{spec.name} needs a connection")
                return await self._handlers[spec.name](caller, args, conn)
            return await self._handlers[spec.name](caller, args)
        except RoomError as exc:
            code = exc.code
            raise
        except Exception as exc:
            error = self.internal(exc)
            code = error.code
            raise error from None
        finally:
            metrics = self.metrics
            if metrics is not None:
                metrics.op_done(spec.name, code, started)
                if code is None and spec.emits:
                    metrics.messages_published.inc()

    def internal(self, exc: Exception) -> RoomError:
        """The 100001 a client gets for `exc`, counted and logged (see _internal)."""
        if self.metrics is not None:
            kind = "unavailable" if is_unavailable(exc) else "script"
            if kind == "unavailable" or isinstance(exc, ScriptError):
                self.metrics.redis_errors.labels(kind).inc()
        return _internal(exc)

    async def admit(self, caller: Caller, rate: SlidingWindow | None = None) -> None:
        """Admit one mutating op, or raise 100009: the connection's limit (`rate`, in memory),
        then the user's and the app's, shared by all nodes and both doors through Redis (§8);
        a limit of 0 is off. Server tokens have only the app's."""
        if rate is not None:
            wait_ms = rate.admit()
            if wait_ms:
                self._count_limit("connection")
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
            if rate is not None:
                rate.refund()
            raise
        if wait_ms:
            if rate is not None:
                rate.refund()
            if wait_ms < 0:
                self._count_limit("user")
                raise _rate_limited(-wait_ms, f"user '{caller.user}' ({user_ceiling}/s)")
            self._count_limit("app")
            raise _rate_limited(wait_ms, f"app '{caller.app}' ({ceiling}/s)")

    def _count_limit(self, limit: str) -> None:
        if self.metrics is not None:
            self.metrics.limits[limit].inc()


def _rate_limited(wait_ms: int, who: str) -> RoomError:
    return RoomError(
        ErrorCode.RATE_LIMITED,
        f"rate limit of {who} reached; retry in {wait_ms} ms",
        retry_after_ms=wait_ms,
    )


def _kind(caller: Caller) -> str:
    return "server" if caller.server else "user"


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
