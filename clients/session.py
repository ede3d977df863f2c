"""One client's connection over time: the reader, pending calls, the state and the reconnect
supervisor. What to resume and which messages are new is `resume.ResumeState`'s (pure); the
ops are `ops.RoomOps`' (built on `_call`); this module is the I/O between them.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from roomhub.protocol.backoff import ExponentialBackoff
from roomhub.protocol.codec import Encoding, encode
from roomhub.protocol.errors import CloseCode, ErrorCode, RoomError
from roomhub.protocol.models import AuthResult, PresenceEvent, SystemMessage
from roomhub.protocol.ops import OPS

from .options import ClientOptions
from .resume import ResumeState, Resync, fit_resume
from .state import ConnectionLost, State
from .wire import args, decode_frame, wire_error

log = logging.getLogger("roomhub.client")

__all__ = ["Session"]

# Ops that change state: sent with an idempotency key, and retried after a lost reply.
_MUTATING = frozenset(name for name, spec in OPS.items() if spec.mutating)
# A refused reconnect `auth` with one of these codes is retried; any other code is final.
_RETRYABLE_AUTH_ERRORS = frozenset({ErrorCode.INTERNAL, ErrorCode.RATE_LIMITED})
# RFC 6455's normal closure, the code of close() by this client; not a CloseCode, which lists
# what the server sends.
_NORMAL_CLOSURE = 1000


class _Closed:
    """Queue sentinel: the client is closed and nothing more will arrive."""


_CLOSED = _Closed()


class Session:
    """One authenticated connection at a time, optionally reconnecting (see RoomClient)."""

    def __init__(
        self, urls: Sequence[str], options: ClientOptions | None = None, /, **keywords: Any
    ) -> None:
        """Use `RoomClient.connect`; this only sets the client up, without connecting.
        `options` or the keywords of `ClientOptions` (not both needed)."""
        if not urls:
            raise ValueError("at least one URL is needed")
        options = ClientOptions.build(options, keywords)
        self.urls = list(urls)
        self.options = options
        self.encoding: Encoding = options.wire_encoding
        self._reconnect = options.reconnect
        self._idempotency = options.idempotency
        self._backoff = options.new_backoff()
        self._on_resync = options.on_resync
        self._on_state = options.on_state
        self._on_event = options.on_event
        self._url_index = 0
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._auth_id: int | None = None
        self._events: asyncio.Queue[SystemMessage | _Closed] = asyncio.Queue()
        self._state = State.CONNECTING
        self._changed = asyncio.Event()
        self._lost: ConnectionLost | None = None
        self._closing = False
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._resume = ResumeState(options.resume)
        self._watching: set[str] = set()  # rooms followed with room.watch (server tokens)
        self.welcome: AuthResult | None = None

    # connecting --------------------------------------------------------------------------

    async def _start(self) -> None:
        """The first connection: each URL once, in order; the last error is raised."""
        self._notify(State.CONNECTING)
        error: Exception | None = None
        for index in range(len(self.urls)):
            self._url_index = index
            try:
                await self._open(self.urls[index], first=True, resume=self.options.resume)
            except RoomError as exc:
                error = exc
                if exc.code not in _RETRYABLE_AUTH_ERRORS:
                    break  # a bad key or token is bad on every node
            except Exception as exc:  # unreachable, handshake refused, bad URL: the next one
                error = exc
            except BaseException:
                self._finish(ConnectionLost("connect was cancelled"))
                raise
            else:
                if self._reconnect:
                    self._supervisor = asyncio.create_task(
                        self._supervise(), name="roomhub-client-reconnect"
                    )
                return
        assert error is not None
        self._finish(ConnectionLost(f"could not connect: {error!r}"))
        raise error

    async def _open(
        self, url: str, *, first: bool, resume: Mapping[str, int] | None = None
    ) -> None:
        """Connect to `url`, authenticate (resuming `resume` on the first connection, every
        known room after), catch up; then the state is OPEN. Raises (and leaves nothing
        open) when any step fails."""
        if not first:
            resume = self.last_seqs or None
        resume, left_out = fit_resume(resume)
        token = await self.options.fresh_token()
        ws = await ws_connect(
            url,
            subprotocols=[Subprotocol(self.encoding.value)],
            max_size=self.options.max_size,
            **self.options.ws_options,
        )
        self._ws = ws
        reader = asyncio.create_task(self._read(ws), name="roomhub-client-reader")
        self._reader = reader
        try:
            request = self._request(
                "auth",
                args(
                    key=self.options.key,
                    token=token,
                    resume=resume,
                    presence=self.options.presence or None,
                ),
                auth=True,
            )
            welcome = AuthResult.model_validate(await request)
            await self._adopt(welcome, first=first, left_out=left_out)
            if not first:
                await self._rewatch()
            if reader.done() or self._closing:  # (close() from a callback meanwhile)
                raise ConnectionLost("connection closed while opening")
        except BaseException:
            await ws.close()
            await asyncio.wait({reader})
            raise
        self.welcome = welcome
        self._lost = None
        self._backoff.reset()
        self._notify(State.OPEN)

    async def _adopt(self, welcome: AuthResult, *, first: bool, left_out: list[str]) -> None:
        """Track the rooms of an auth result (`ResumeState.adopt`): with `reconnect`, the ones
        with no resume point, and known rooms that did not fit in `resume` (`left_out`)."""
        untracked = self._resume.untracked(welcome.rooms) if self._reconnect else []
        if not untracked and not left_out:
            return
        listed = await self._request("room.list", {})
        seqs = {room["id"]: room["seq"] for room in listed["rooms"]}
        for resync in self._resume.adopt(seqs, untracked, left_out, first=first):
            self._resynced(resync)

    def _watched(self, room: str, seq: int) -> None:
        """A room.watch answered the room at `seq`: its messages after it follow."""
        self._watching.add(room)
        if not self._resume.knows(room):
            self._resume.floors[room] = seq

    def _unwatched(self, room: str) -> None:
        self._watching.discard(room)
        self._resume.forget(room)

    async def _rewatch(self) -> None:
        """Watches do not outlive a connection: watch each room again after the last seq
        delivered. A room that ended meanwhile (dismissRoom delivered, or 100004) is dropped."""
        for room in list(self._watching):
            after = self._resume.last_seqs.get(room)
            if after is None:
                self._watching.discard(room)  # it ended: its dismissRoom was delivered
                continue
            try:
                await self._request("room.watch", args(room=room, after_seq=after))
            except RoomError as exc:
                if exc.code is not ErrorCode.ROOM_NOT_FOUND:
                    raise
                self._unwatched(room)
                self._resynced(Resync(room=room, seq=0))

    async def _supervise(self) -> None:
        """With `reconnect`: after each drop, retry with backoff until OPEN again, or give up."""
        while True:
            assert self._reader is not None
            await asyncio.wait({self._reader})  # (not `await reader`: cancelling us must not
            if self._state is not State.RECONNECTING:  # cancel the reader)
                return
            final = await self._reconnect_loop()
            if final is not None:
                self._finish(final)
                return

    async def _reconnect_loop(self) -> ConnectionLost | None:
        """None once OPEN again; the reason to stop otherwise."""
        self._url_index += 1  # the node that dropped us may be going away: try the next first
        while not self._closing:  # (close() from a callback runs in this task: no cancel)
            await self._backoff.wait()
            url = self.urls[self._url_index % len(self.urls)]
            try:
                await self._open(url, first=False)
                return None
            except RoomError as exc:
                if exc.code is ErrorCode.UNAUTHENTICATED and isinstance(self.options.token, str):
                    return ConnectionLost(
                        f"reconnect refused: {exc.message}",
                        code=CloseCode.UNAUTHENTICATED,
                        reason=exc.message,
                    )
                if (
                    exc.code not in _RETRYABLE_AUTH_ERRORS
                    and exc.code is not ErrorCode.UNAUTHENTICATED
                ):
                    return ConnectionLost(f"reconnect refused: {exc}")
                log.warning("roomhub: reconnect to %s refused: %s; retrying", url, exc)
            except Exception as exc:  # unreachable, refused, a token function failing, ...
                log.info("roomhub: reconnect to %s failed: %r; retrying", url, exc)
            self._url_index += 1
        return ConnectionLost("connection closed by the client", code=_NORMAL_CLOSURE)

    # state -------------------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    @property
    def lost(self) -> ConnectionLost | None:
        """Why the last connection ended (its close `code` and `reason`); None while OPEN.
        Already set when `on_state` hears RECONNECTING or CLOSED."""
        return self._lost

    def _notify(self, state: State) -> None:
        self._state = state
        self._changed.set()
        self._changed = asyncio.Event()
        if self._on_state is not None:
            try:
                self._on_state(state)
            except Exception:  # the app's bug must not take the client down
                log.exception("roomhub: on_state callback failed")

    async def wait_open(self, timeout: float | None = None) -> None:
        """Return once the client is OPEN (at once if it is). Raises ConnectionLost if it is
        or becomes CLOSED, TimeoutError after `timeout` seconds."""
        async with asyncio.timeout(timeout):
            while self._state is not State.OPEN:
                if self._state is State.CLOSED:
                    assert self._lost is not None
                    raise self._lost.fresh()
                await self._changed.wait()

    @property
    def url(self) -> str:
        """The URL of the current (or last) connection."""
        return self.urls[self._url_index % len(self.urls)]

    @property
    def user(self) -> str:
        """The authenticated user id (the token's `sub`)."""
        assert self.welcome is not None
        return self.welcome.user

    @property
    def rooms(self) -> list[str]:
        """Room ids the user was in or invited to at the last auth (not kept up to date)."""
        assert self.welcome is not None
        return self.welcome.rooms

    @property
    def last_seqs(self) -> dict[str, int]:
        """Room id -> the seq a reconnect resumes from (the last message delivered, or the
        room's seq at connect time when none was): a copy."""
        return self._resume.last_seqs

    @property
    def closed(self) -> bool:
        """CLOSED: after close(), or once the client gave up (or, without `reconnect`, the
        connection closed)."""
        return self._state is State.CLOSED

    async def close(self) -> None:
        """Close the client (idempotent) and stop reconnecting; pending and later calls fail
        with ConnectionLost, and messages() ends once what already arrived has been read."""
        if self._state is State.CLOSED:
            return
        self._closing = True
        current = asyncio.current_task()
        supervisor = self._supervisor
        if supervisor is not None and supervisor is not current and not supervisor.done():
            supervisor.cancel()  # stops a backoff wait or a half-open attempt
            await asyncio.wait({supervisor})
        ws, reader = self._ws, self._reader
        if ws is not None:
            await ws.close()
        if reader is not None and reader is not current:
            await asyncio.wait({reader})  # it finishes the client after its last frame
        elif reader is current and self._state is State.OPEN:
            return  # close() from on_resync: the reader finishes after its last frame
        self._finish(ConnectionLost("connection closed by the client", code=_NORMAL_CLOSURE))

    # the wire ----------------------------------------------------------------------------

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for data in ws:
                self._dispatch(decode_frame(data, self.encoding))
        except ConnectionClosed:
            pass
        except Exception as exc:  # a frame we cannot understand: fail loudly, not silently
            log.exception("roomhub: protocol error, closing")
            await ws.close(CloseCode.PROTOCOL_ERROR, "client could not read a frame")
            # Final even with `reconnect`: a replay would bring the same frame again.
            self._ended(
                ws,
                ConnectionLost(f"protocol error: {exc!r}", code=CloseCode.PROTOCOL_ERROR),
                final=True,
            )
            return
        code, reason = ws.close_code, ws.close_reason or ""
        if self._closing:
            text = "connection closed by the client"
        else:
            text = f"connection closed by the server (code {code}{': ' if reason else ''}{reason})"
        self._ended(ws, ConnectionLost(text, code=code, reason=reason), final=False)

    def _ended(self, ws: ClientConnection, lost: ConnectionLost, *, final: bool) -> None:
        """A connection's reader is done: fail its calls; if it was the open connection,
        either finish the client or (with `reconnect`) hand over to the supervisor."""
        if self._ws is not ws or self._state is not State.OPEN:
            self._fail_pending(lost)  # an attempt that failed: the reconnect loop decides
            return
        fixed_token = isinstance(self.options.token, str)
        if (
            final
            or self._closing
            or not self._reconnect
            or (lost.code == CloseCode.UNAUTHENTICATED and fixed_token)
        ):
            self._finish(lost)
            return
        self._lost = ConnectionLost(f"{lost}; reconnecting", code=lost.code, reason=lost.reason)
        self._fail_pending(lost)
        self._notify(State.RECONNECTING)

    def _fail_pending(self, lost: ConnectionLost) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(lost.fresh())

    def _finish(self, lost: ConnectionLost) -> None:
        if self._state is State.CLOSED:
            return
        self._lost = lost
        self._fail_pending(lost)
        self._events.put_nowait(_CLOSED)
        self._notify(State.CLOSED)

    def _dispatch(self, frame: dict[str, Any]) -> None:
        event = frame.get("event")
        if event == "system":
            message = SystemMessage.model_validate(frame["message"])
            if self._on_event is not None:
                self._observe(message)
            self._deliver(message)
        elif event == "resync":
            resync = Resync(room=frame["room"], seq=frame["seq"])
            if self._on_event is not None:
                self._observe(resync)
            self._resynced(resync)
        elif event == "presence":
            self._presence(PresenceEvent.model_validate(frame))
        elif event is not None:
            log.debug("roomhub: ignoring unknown event %r", event)
        else:
            re = frame.get("re")
            future = self._pending.pop(re, None)  # type: ignore[arg-type]
            if future is None:
                log.warning("roomhub: reply matches no pending call: %r", frame)
                return
            if re == self._auth_id and frame.get("ok") is True:
                # Known before the replayed messages that follow the auth reply are read.
                self._resume.user = frame["result"]["user"]
            if not future.done():
                future.set_result(frame)

    def _observe(self, event: SystemMessage | Resync) -> None:
        assert self._on_event is not None
        try:
            self._on_event(event)
        except Exception:  # the app's bug must not take the connection down
            log.exception("roomhub: on_event callback failed")

    def _presence(self, event: PresenceEvent) -> None:
        on_presence = self.options.on_presence
        if on_presence is None:
            return
        try:
            on_presence(event)
        except Exception:  # the app's bug must not take the connection down
            log.exception("roomhub: on_presence callback failed")

    def _deliver(self, message: SystemMessage) -> None:
        """Queue a system message unless it was delivered before (by seq, per room)."""
        if self._resume.accept(message):
            self._events.put_nowait(message)

    def _resynced(self, resync: Resync) -> None:
        self._resume.resync(resync)
        if self._on_resync is not None:
            try:
                self._on_resync(resync)
            except Exception:  # the app's bug must not take the connection down
                log.exception("roomhub: on_resync callback failed")
        else:
            log.warning("roomhub: %s: re-read the room (no on_resync callback)", resync)

    # calls -------------------------------------------------------------------------------

    async def _call(self, op: str, args: dict[str, Any]) -> Any:
        """Send one request on the open connection and wait for its reply; the result, or
        raise RoomError. Not connected: ConnectionLost at once (never queued)."""
        if self._state is not State.OPEN:
            raise (self._lost or ConnectionLost("not connected")).fresh()
        if not self._idempotency or op not in _MUTATING:
            return await self._request(op, args)
        return await self._exactly_once(op, {"idempotency_key": secrets.token_hex(16), **args})

    async def _exactly_once(self, op: str, args: dict[str, Any]) -> Any:
        """A mutating call with its idempotency key: sent again with the same key after a lost
        reply (the connection dropped while it was in flight) once a reconnect is OPEN, or
        after "store unavailable"; the server applies it at most once."""
        store_backoff = ExponentialBackoff(0.1, math.inf, jitter=False)  # 0.1, 0.2, 0.4 … s
        while True:
            try:
                return await self._request(op, args)
            except ConnectionLost:
                if not self._reconnect or self._closing or self._state is State.CLOSED:
                    raise
                await self.wait_open()  # ConnectionLost if the client gives up meanwhile
            except RoomError as exc:
                unavailable = exc.code is ErrorCode.INTERNAL and "unavailable" in exc.message
                if not unavailable or store_backoff.failures >= self.options.store_retries:
                    raise
                await asyncio.sleep(store_backoff.next_delay())
                if self._state is not State.OPEN:
                    if not self._reconnect or self._closing:
                        raise
                    await self.wait_open()

    async def _request(self, op: str, args: dict[str, Any], *, auth: bool = False) -> Any:
        ws = self._ws
        assert ws is not None
        request_id = next(self._ids)
        if auth:
            self._auth_id = request_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        frame: dict[str, Any] = {"id": request_id, "op": op}
        if args:
            frame["args"] = args
        try:
            try:
                await ws.send(encode(frame, self.encoding), text=self.encoding is Encoding.JSON)
            except ConnectionClosed:
                pass  # the reader fails the future with the close code and reason
            reply = await future
        finally:
            self._pending.pop(request_id, None)  # cancelled: a late reply is dropped
        if reply.get("ok") is True:
            return reply.get("result")
        raise wire_error(reply.get("error"))

    # system messages ---------------------------------------------------------------------

    async def next_message(self, timeout: float | None = None) -> SystemMessage:
        """The next system message in arrival order (seq order per room, each seq once).

        Raises TimeoutError after `timeout` seconds, ConnectionLost once the client is closed
        and every message that arrived before has been read. With `reconnect`, a dropped
        connection does not end it: it waits for the messages of the next one.
        """
        async with asyncio.timeout(timeout):
            item = await self._events.get()
        if isinstance(item, _Closed):
            self._events.put_nowait(item)  # stays closed for every later reader
            assert self._lost is not None
            raise self._lost.fresh()
        return item

    async def messages(self) -> AsyncIterator[SystemMessage]:
        """Iterate system messages as they arrive; ends when the client is closed (with
        `reconnect`: not at a drop, only after close() or when it gives up).

        Meant for one consumer: two iterators on one client split the messages between them.
        """
        while True:
            try:
                yield await self.next_message()
            except ConnectionLost:
                return
