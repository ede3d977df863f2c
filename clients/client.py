"""The asyncio reference client of the roomhub wire protocol v1.

Example: a backend with a server token registers the users, alice creates a room and adds bob,
bob sets his in-room nickname, and both see every change as a system message::

    import asyncio
    from roomhub.clients import RoomClient

    URL, KEY = "ws://127.0.0.1:8765/ws", "myapp"

    async def main(server_token: str, alice_token: str, bob_token: str) -> None:
        async with RoomClient.connect(URL, key=KEY, token=server_token) as backend:
            await backend.upsert_user("alice", nickname="Alice")
            await backend.upsert_user("bob", nickname="Bob")
        async with (RoomClient.connect(URL, key=KEY, token=alice_token) as alice,
                    RoomClient.connect(URL, key=KEY, token=bob_token) as bob):
            room = await alice.create_room("demo", name="Demo")
            await alice.add_members(room.id, ["bob"], system_message=True)
            await bob.update_member(room.id, "bob", {"nickname": "Bobby"}, system_message=True)
            for client in (alice, bob):
                async for message in client.messages():  # in seq order per room
                    print(client.user, message.seq, message.type, message.targets, message.changes)
                    if message.type == "updateMember":
                        break

    asyncio.run(main(...))  # tokens: HS256 JWTs signed with the app's secret (PROTOCOL.md §7)

One connection carries any number of concurrent calls: each request gets an id, a reader task
matches replies by `re`, and system events are queued for `messages()` / `next_message()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, TypeVar, overload

import msgpack
from pydantic import BaseModel
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from roomhub.protocol.codec import Encoding, decode, encode
from roomhub.protocol.errors import ErrorCode, RoomError
from roomhub.protocol.models import Ack, AuthResult, HistoryPage, Room, SystemMessage, User

log = logging.getLogger("roomhub.client")

__all__ = ["ConnectionLost", "Resync", "RoomClient", "RoomError"]

Reply = Literal["room", "ack"]
M = TypeVar("M", bound=BaseModel)

_ENCODINGS = {
    "msgpack": Encoding.MSGPACK,
    "json": Encoding.JSON,
    Encoding.MSGPACK.value: Encoding.MSGPACK,
    Encoding.JSON.value: Encoding.JSON,
}


class ConnectionLost(ConnectionError):
    """The connection closed (by either side) before a reply arrived, or was used after close.

    Deliberately not a RoomError: the server may or may not have applied the op, so it is not
    "safe to retry" like INTERNAL; re-read the room (or pass `reply="ack"` and compare seqs)
    after reconnecting. `code`/`reason` are the WebSocket close code and reason when known
    (e.g. 4401 unauthenticated, 4008 slow consumer, 1001 server going away).
    """

    def __init__(self, message: str, *, code: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason

    def fresh(self) -> ConnectionLost:
        """A new instance per raise, so tracebacks of unrelated calls do not pile up."""
        return ConnectionLost(str(self), code=self.code, reason=self.reason)


@dataclass(frozen=True)
class Resync:
    """`{"event": "resync", "room", "seq"}`: the server cannot promise gap-free delivery of
    `room` (a `resume` beyond its capped history, a message a node could not recover, or a
    Redis that lost its data), so your copy may be stale: re-read it with `get_room` (100004 or
    100005 there: the room is gone for you), then apply only messages with seq > `Room.seq`.
    The callback runs when the event arrives, so messages queued earlier may still be unread.
    """

    room: str
    seq: int


class _Closed:
    """Queue sentinel: the connection is gone and nothing more will arrive."""


_CLOSED = _Closed()


class _Connect:
    """What `RoomClient.connect` returns: `async with` it (closes on exit) or `await` it."""

    def __init__(self, opener: Callable[[], Any]) -> None:
        self._opener = opener
        self._client: RoomClient | None = None

    def __await__(self) -> Generator[Any, None, RoomClient]:
        return self._opener().__await__()  # type: ignore[no-any-return]

    async def __aenter__(self) -> RoomClient:
        self._client = await self._opener()
        return self._client

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._client is not None:
            await self._client.close()


def _decode(data: bytes | str, encoding: Encoding) -> dict[str, Any]:
    """Decode a server frame.

    JSON goes through the shared codec. msgpack does not: the codec's decoder caps (1,024 items
    per container, 4,096 containers per frame) guard the *server* against hostile requests,
    but a legitimate Room reply may list up to 10,000 members. The server is trusted here.
    """
    if encoding is Encoding.JSON:
        return decode(data, encoding)
    if not isinstance(data, bytes):
        raise TypeError("msgpack connection received a text frame")
    frame = msgpack.unpackb(data, raw=False, strict_map_key=False)
    if not isinstance(frame, dict):
        raise TypeError(f"frame is not a map: {type(frame).__name__}")
    return frame


_KNOWN_CODES = frozenset(int(code) for code in ErrorCode)


def _error(error: Any) -> RoomError:
    """The wire error as a RoomError. A code this client does not know (a newer server)
    becomes INTERNAL, with the original code kept in the message for whoever debugs it."""
    if not isinstance(error, dict):
        return RoomError(ErrorCode.INTERNAL, f"malformed error reply: {error!r}")
    code = error.get("code")
    if type(code) is int and code in _KNOWN_CODES:
        return RoomError.from_wire(error)
    return RoomError(ErrorCode.INTERNAL, f"[{code}] {error.get('message', '')}",
                     field=error.get("field"), retry_after_ms=error.get("retry_after_ms"))


def _args(**kwargs: Any) -> dict[str, Any]:
    """Only the arguments that are set: None means "not given" and is never put on the wire."""
    return {name: value for name, value in kwargs.items() if value is not None}


class RoomClient:
    """One authenticated roomhub connection.

    Calls may run concurrently (pipelined) on one connection; replies may arrive in any order.
    Failed ops raise `RoomError` with the wire `code`, `message`, `field`, `retry_after_ms`.
    If the connection closes, every pending and later call raises `ConnectionLost`, and
    `messages()` ends after yielding what had already arrived.

    System messages are buffered in an **unbounded** queue until read. Bounding it would mean
    either stalling the reader (and with it every reply, deadlocking a caller that awaits a
    call before draining messages) or dropping messages (breaking the gap-free seq). A client
    that never reads them grows without limit; the server's slow-consumer close (4008) only
    protects the server. Read them, or ignore them on a connection used only for calls.
    """

    def __init__(self, ws: ClientConnection, encoding: Encoding,
                 on_resync: Callable[[Resync], Any] | None = None) -> None:
        self._ws = ws
        self.encoding = encoding
        self._on_resync = on_resync
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._events: asyncio.Queue[SystemMessage | _Closed] = asyncio.Queue()
        self._lost: ConnectionLost | None = None
        self._closing = False
        self.welcome: AuthResult | None = None
        self._reader = asyncio.create_task(self._read(), name="roomhub-client-reader")

    # connecting --------------------------------------------------------------------------

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        key: str,
        token: str,
        encoding: str | Encoding = "msgpack",
        resume: Mapping[str, int] | None = None,
        on_resync: Callable[[Resync], Any] | None = None,
        max_size: int | None = None,
        **ws_options: Any,
    ) -> _Connect:
        """Open a connection to `ws://HOST:PORT/ws` and authenticate.

        `async with RoomClient.connect(...) as client:` closes it on exit; `await` it to manage
        `close()` yourself. A refused auth raises RoomError(UNAUTHENTICATED). `resume` maps
        room id to the last seq seen; `on_resync` is called from the reader task for each
        `resync` event (so it must not block). `max_size` bounds incoming frames (None: no
        bound, as a large Room is legitimately big); other options go to websockets.
        """
        chosen = encoding if isinstance(encoding, Encoding) else _ENCODINGS.get(encoding)
        if chosen is None:
            raise ValueError(f"encoding must be 'msgpack' or 'json', not {encoding!r}")
        ws_options.setdefault("compression", None)  # the hub does not negotiate deflate

        async def open_client() -> RoomClient:
            ws = await ws_connect(url, subprotocols=[Subprotocol(chosen.value)],
                                  max_size=max_size, **ws_options)
            client = cls(ws, chosen, on_resync)
            try:
                result = await client._call("auth", _args(
                    key=key, token=token, resume=dict(resume) if resume is not None else None))
                client.welcome = AuthResult.model_validate(result)
            except BaseException:
                await client.close()
                raise
            return client

        return _Connect(open_client)

    @property
    def user(self) -> str:
        """The authenticated user id (the token's `sub`)."""
        assert self.welcome is not None
        return self.welcome.user

    @property
    def rooms(self) -> list[str]:
        """Room ids the user was in or invited to at auth time (not kept up to date)."""
        assert self.welcome is not None
        return self.welcome.rooms

    @property
    def closed(self) -> bool:
        return self._lost is not None

    async def close(self) -> None:
        """Close the connection (idempotent); pending and later calls fail with
        ConnectionLost, and messages() ends once what already arrived has been read."""
        self._closing = True
        await self._ws.close()
        if asyncio.current_task() is not self._reader:  # e.g. close() from on_resync
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    # the wire ----------------------------------------------------------------------------

    async def _read(self) -> None:
        try:
            async for data in self._ws:
                self._dispatch(_decode(data, self.encoding))
        except ConnectionClosed:
            pass
        except Exception as exc:  # a frame we cannot understand: fail loudly, not silently
            log.exception("roomhub: protocol error, closing")
            await self._ws.close(1002, "client could not read a frame")
            self._finish(ConnectionLost(f"protocol error: {exc!r}", code=1002))
            return
        code, reason = self._ws.close_code, self._ws.close_reason or ""
        if self._closing:
            text = "connection closed by the client"
        else:
            text = f"connection closed by the server (code {code}{': ' if reason else ''}{reason})"
        self._finish(ConnectionLost(text, code=code, reason=reason))

    def _finish(self, lost: ConnectionLost) -> None:
        self._lost = lost
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(lost.fresh())
        self._events.put_nowait(_CLOSED)

    def _dispatch(self, frame: dict[str, Any]) -> None:
        event = frame.get("event")
        if event == "system":
            self._events.put_nowait(SystemMessage.model_validate(frame["message"]))
        elif event == "resync":
            resync = Resync(room=frame["room"], seq=frame["seq"])
            if self._on_resync is not None:
                try:
                    self._on_resync(resync)
                except Exception:  # the app's bug must not take the connection down
                    log.exception("roomhub: on_resync callback failed")
            else:
                log.warning("roomhub: %s: re-read the room (no on_resync callback)", resync)
        elif event is not None:
            log.debug("roomhub: ignoring unknown event %r", event)
        else:
            future = self._pending.pop(frame.get("re"), None)  # type: ignore[arg-type]
            if future is None:
                log.warning("roomhub: reply matches no pending call: %r", frame)
            elif not future.done():
                future.set_result(frame)

    async def _call(self, op: str, args: dict[str, Any]) -> Any:
        """Send one request and wait for its reply; the result, or raise RoomError."""
        if self._lost is not None:
            raise self._lost.fresh()
        request_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        frame: dict[str, Any] = {"id": request_id, "op": op}
        if args:
            frame["args"] = args
        try:
            try:
                await self._ws.send(encode(frame, self.encoding),
                                    text=self.encoding is Encoding.JSON)
            except ConnectionClosed:
                pass  # the reader fails the future with the close code and reason
            reply = await future
        finally:
            self._pending.pop(request_id, None)  # cancelled: a late reply is dropped
        if reply.get("ok") is True:
            return reply.get("result")
        raise _error(reply.get("error"))

    async def _model(self, model: type[M], op: str, args: dict[str, Any]) -> M:
        return model.model_validate(await self._call(op, args))

    async def _mutate(self, op: str, args: dict[str, Any], reply: Reply) -> Room | Ack:
        if reply == "ack":
            return await self._model(Ack, op, {**args, "reply": "ack"})
        return await self._model(Room, op, args)

    # system messages ---------------------------------------------------------------------

    async def next_message(self, timeout: float | None = None) -> SystemMessage:
        """The next system message in arrival order (seq order per room).

        Raises TimeoutError after `timeout` seconds, ConnectionLost once the connection is
        closed and every message that arrived before has been read.
        """
        async with asyncio.timeout(timeout):
            item = await self._events.get()
        if isinstance(item, _Closed):
            self._events.put_nowait(item)  # stays closed for every later reader
            assert self._lost is not None
            raise self._lost.fresh()
        return item

    async def messages(self) -> AsyncIterator[SystemMessage]:
        """Iterate system messages as they arrive; ends when the connection closes.

        Meant for one consumer: two iterators on one client split the messages between them.
        """
        while True:
            try:
                yield await self.next_message()
            except ConnectionLost:
                return

    # operations --------------------------------------------------------------------------

    async def upsert_user(self, id: str, nickname: str | None = None,
                          avatar: str | None = None, *, operator: str | None = None) -> User:
        """Create or update a user's profile (server tokens). Fields not given keep their
        value. No `reply`: the server ignores it for user.upsert, the result is the user."""
        return await self._model(User, "user.upsert", _args(
            id=id, nickname=nickname, avatar=avatar, operator=operator))

    @overload
    async def create_room(self, room: str | None = ..., name: str = ..., type: str = ...,
                          members: Iterable[str] = ..., owner: str | None = ..., *,
                          reply: Literal["room"] = ..., operator: str | None = ...) -> Room: ...
    @overload
    async def create_room(self, room: str | None = ..., name: str = ..., type: str = ...,
                          members: Iterable[str] = ..., owner: str | None = ..., *,
                          reply: Literal["ack"], operator: str | None = ...) -> Ack: ...
    async def create_room(self, room: str | None = None, name: str = "", type: str = "group",
                          members: Iterable[str] = (), owner: str | None = None, *,
                          reply: Reply = "room", operator: str | None = None) -> Room | Ack:
        """Create a room (id generated when `room` is None). `owner` is for server tokens
        only; a user owns the rooms they create. `members` join directly, without invitation."""
        return await self._mutate("room.create", _args(
            room=room, name=name or None, type=None if type == "group" else type,
            members=list(members) or None, owner=owner, operator=operator), reply)

    async def get_room(self, room: str, *, operator: str | None = None) -> Room:
        """The complete room, with members and pending invitations."""
        return await self._model(Room, "room.get", _args(room=room, operator=operator))

    async def list_rooms(self, *, operator: str | None = None) -> list[Room]:
        """The caller's rooms (member or invited), sorted by id, without `members`. A server
        token must name the user as `operator`."""
        result = await self._call("room.list", _args(operator=operator))
        return [Room.model_validate(room) for room in result["rooms"]]

    @overload
    async def add_members(self, room: str, invitees: Iterable[str],
                          invitation_required: bool = ..., system_message: bool = ..., *,
                          reply: Literal["room"] = ..., operator: str | None = ...) -> Room: ...
    @overload
    async def add_members(self, room: str, invitees: Iterable[str],
                          invitation_required: bool = ..., system_message: bool = ..., *,
                          reply: Literal["ack"], operator: str | None = ...) -> Ack: ...
    async def add_members(self, room: str, invitees: Iterable[str],
                          invitation_required: bool = False, system_message: bool = False, *,
                          reply: Reply = "room", operator: str | None = None) -> Room | Ack:
        """Add 1-100 users directly, or invite them (`invitation_required=True`);
        `system_message` marks the message `notify` (shown in the room's timeline)."""
        return await self._mutate("member.add", _args(
            room=room, invitees=list(invitees), invitation_required=invitation_required or None,
            system_message=system_message or None, operator=operator), reply)

    @overload
    async def accept(self, room: str, *, reply: Literal["room"] = ...,
                     operator: str | None = ...) -> Room: ...
    @overload
    async def accept(self, room: str, *, reply: Literal["ack"],
                     operator: str | None = ...) -> Ack: ...
    async def accept(self, room: str, *, reply: Reply = "room",
                     operator: str | None = None) -> Room | Ack:
        """Accept a pending invitation and become a member."""
        return await self._mutate("invitation.accept", _args(room=room, operator=operator), reply)

    @overload
    async def decline(self, room: str, *, reply: Literal["room"] = ...,
                      operator: str | None = ...) -> None: ...
    @overload
    async def decline(self, room: str, *, reply: Literal["ack"],
                      operator: str | None = ...) -> Ack: ...
    async def decline(self, room: str, *, reply: Reply = "room",
                      operator: str | None = None) -> Ack | None:
        """Decline a pending invitation (the server replies `{}`: nothing to return)."""
        return await self._empty("invitation.decline", _args(room=room, operator=operator), reply)

    @overload
    async def update_member(self, room: str, user: str, properties: Mapping[str, Any],
                            system_message: bool = ...,
                            notification_extension: str | None = ..., *,
                            reply: Literal["room"] = ..., operator: str | None = ...) -> Room: ...
    @overload
    async def update_member(self, room: str, user: str, properties: Mapping[str, Any],
                            system_message: bool = ...,
                            notification_extension: str | None = ..., *,
                            reply: Literal["ack"], operator: str | None = ...) -> Ack: ...
    async def update_member(self, room: str, user: str, properties: Mapping[str, Any],
                            system_message: bool = False,
                            notification_extension: str | None = None, *,
                            reply: Reply = "room", operator: str | None = None) -> Room | Ack:
        """Set built-in member fields (role, nickname, avatar, level, custom_info, extension)
        and custom props; a custom prop set to None is removed (None is sent as null here:
        it is a value, not a missing argument)."""
        return await self._mutate("member.update", _args(
            room=room, user=user, properties=dict(properties),
            system_message=system_message or None,
            notification_extension=notification_extension, operator=operator), reply)

    @overload
    async def remove_member(self, room: str, user: str, *, reply: Literal["room"] = ...,
                            operator: str | None = ...) -> Room: ...
    @overload
    async def remove_member(self, room: str, user: str, *, reply: Literal["ack"],
                            operator: str | None = ...) -> Ack: ...
    async def remove_member(self, room: str, user: str, *, reply: Reply = "room",
                            operator: str | None = None) -> Room | Ack:
        """Remove a member of lower rank (owner, admin, or a server token)."""
        return await self._mutate("member.remove", _args(
            room=room, user=user, operator=operator), reply)

    @overload
    async def leave(self, room: str, *, reply: Literal["room"] = ...,
                    operator: str | None = ...) -> None: ...
    @overload
    async def leave(self, room: str, *, reply: Literal["ack"],
                    operator: str | None = ...) -> Ack: ...
    async def leave(self, room: str, *, reply: Reply = "room",
                    operator: str | None = None) -> Ack | None:
        """Leave a room (any member but the owner); the server replies `{}`."""
        return await self._empty("room.leave", _args(room=room, operator=operator), reply)

    async def _empty(self, op: str, args: dict[str, Any], reply: Reply) -> Ack | None:
        if reply == "ack":
            return await self._model(Ack, op, {**args, "reply": "ack"})
        await self._call(op, args)
        return None

    async def history(self, room: str, after_seq: int = 0, limit: int = 50, *,
                      operator: str | None = None) -> HistoryPage:
        """System messages with seq > `after_seq`, ascending, at most `limit` (1-200);
        page on with the last message's seq while `more` is true."""
        return await self._model(HistoryPage, "room.history", _args(
            room=room, after_seq=after_seq or None, limit=None if limit == 50 else limit,
            operator=operator))
