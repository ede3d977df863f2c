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

Reconnecting
------------

`RoomClient.connect(urls, key=KEY, token=get_token, reconnect=True)` keeps the client alive
across dropped connections, node restarts (close 1001) and node moves::

    async def get_token() -> str:      # or a plain function, or a fixed string
        return await my_backend.mint_token("alice")

    client = await RoomClient.connect(["ws://hub-a:8765/ws", "ws://hub-b:8765/ws"], key=KEY,
                                      token=get_token, reconnect=True, backoff=(0.1, 5.0),
                                      on_state=print, on_resync=schedule_reread)
    async for message in client.messages():  # ends only after close() or a final failure
        apply(message)                        # each message once, in seq order per room

- **First connection**: each URL is tried once, in order; if none works, `connect` raises the
  last error (OSError, a handshake error, or RoomError, e.g. UNAUTHENTICATED for a bad key or
  token), so a misconfiguration fails at once. Only after the first successful `auth` does the
  client reconnect on its own.
- **When the connection drops** for any reason other than `close()`, the state turns
  RECONNECTING and the client retries, rotating through the URLs (the first retry goes to the
  URL after the one that dropped). Before each attempt it waits a random time in
  `[0, min(cap, base * 2**n))` (exponential backoff with full jitter, `backoff=(base, cap)`,
  n = failed attempts so far); n goes back to 0 after every successful `auth`. A callable
  `token` is called (and awaited if it returns an awaitable) before every attempt, so an
  expired token is replaced.
- **Resume**: every `auth` carries `resume` = the last seq delivered to you in every room the
  client knows, so the server replays what you missed, in order, before anything live. Known
  rooms are those of the auth result, of `connect(resume=...)`, and of every delivered system
  message; a room is forgotten after a `removeMember`, `leaveRoom` or `declineInvitation`
  naming this user, and after a `resync` with seq 0 (the room is gone for you). A room of the
  first auth result for which no message has been delivered yet resumes from its seq at
  connect time (one `room.list` right after that `auth`); a room created by this client
  resumes from 0 until its `createRoom` arrives. Reply seqs (`Room.seq`, `Ack.seq`) never
  move the resume point: a message is only ever skipped because it was delivered.
- **Exactly once, in order**: system messages are de-duplicated by seq per room before they are
  queued, so a replay that overlaps what you already got is invisible; `messages()` and
  `next_message()` simply continue across reconnects. `last_seqs` shows the resume points.
- **resync** (`on_resync`): the server's `resync` events still reach `on_resync`; afterwards the
  room's last seq *is* the resync's seq (later messages with a greater seq are delivered, lower
  ones dropped). The client also calls `on_resync(Resync(room, seq))` itself for a room that
  appears in a reconnect's auth result without being known (you were added or invited while
  disconnected, so its earlier messages cannot be replayed): re-read it.
- **Calls while disconnected** fail at once with ConnectionLost; they are never queued.
- **Exactly-once changes** (`idempotency=True`, the default): every mutating op carries a fresh
  `idempotency_key` (docs/protocol.md §5.1). A mutating call in flight when the connection drops
  is sent again, with the same key, once a reconnect is OPEN (with `reconnect=True`), and one
  answered 100001 "store unavailable" is sent again up to `store_retries` times with a short
  backoff: the server applies it at most once and answers the first outcome. With
  `idempotency=False`, or without `reconnect`, such a call fails with ConnectionLost (or the
  RoomError): the op may or may not have been applied; re-read the room once OPEN again
  (`await client.wait_open()`). Reads in flight fail with ConnectionLost; just call again.
- **State**: `client.state` is a `State` (CONNECTING, OPEN, RECONNECTING, CLOSED);
  `on_state(state)` is called on every change (from the client's tasks: it must not block).
- **Giving up**: the client stops (state CLOSED, `messages()` ends, calls raise ConnectionLost)
  after `close()`; when a reconnect's `auth` is refused as UNAUTHENTICATED (or the server closes
  with 4401) and `token` is a fixed string (a callable token keeps being retried: it may
  produce a fresh one); when the server rejects the `auth` arguments themselves; and when the
  client cannot read a frame (close 1002: a replay would only repeat it).
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import itertools
import logging
import random
import secrets
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, TypeAlias, TypeVar, overload

import msgpack
from pydantic import BaseModel
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from roomhub.protocol.backoff import ExponentialBackoff
from roomhub.protocol.codec import Encoding, decode, encode
from roomhub.protocol.errors import CloseCode, ErrorCode, RoomError
from roomhub.protocol.models import Ack, AuthResult, HistoryPage, Room, SystemMessage, User
from roomhub.protocol.ops import OPS

log = logging.getLogger("roomhub.client")

# Ops that change state: sent with an idempotency key, and retried after a lost reply.
_MUTATING = frozenset(name for name, spec in OPS.items() if spec.mutating)

__all__ = ["Backoff", "ConnectionLost", "Resync", "RoomClient", "RoomError", "State"]

Reply = Literal["room", "ack"]
M = TypeVar("M", bound=BaseModel)
TokenSource: TypeAlias = str | Callable[[], str | Awaitable[str]]

_ENCODINGS = {
    "msgpack": Encoding.MSGPACK,
    "json": Encoding.JSON,
    Encoding.MSGPACK.value: Encoding.MSGPACK,
    Encoding.JSON.value: Encoding.JSON,
}

# `auth` must decode on the server: a map holds at most 1,024 entries and a frame at most
# 64 KiB (docs/protocol.md §1.2), so a resume map beyond either is cut (most recent rooms kept).
MAX_RESUME_ROOMS = 1024
MAX_RESUME_BYTES = 48 * 1024
# A refused reconnect `auth` with one of these codes is retried; any other code is final.
_RETRYABLE_AUTH_ERRORS = frozenset({ErrorCode.INTERNAL, ErrorCode.RATE_LIMITED})
# System messages after which the user is no longer in the room (when they name the user).
_GONE = frozenset({"removeMember", "leaveRoom", "declineInvitation"})


class ConnectionLost(ConnectionError):
    """The connection closed (by either side) before a reply arrived, or a call was made while
    the client was not connected (RECONNECTING, or CLOSED after close()).

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
    A reconnecting client also sends one itself for a room that appeared while it was away.
    """

    room: str
    seq: int


class State(enum.Enum):
    """A RoomClient's connection state (`client.state`, `on_state`)."""

    CONNECTING = "connecting"  # the first connection is being opened
    OPEN = "open"  # authenticated: calls go out
    RECONNECTING = "reconnecting"  # dropped; retrying with backoff (calls fail at once)
    CLOSED = "closed"  # final: close() was called, or the client gave up


class Backoff(ExponentialBackoff):
    """The shared policy of `roomhub.protocol.backoff` (the n-th wait since the last `reset()`
    is uniform in `[0, min(cap, base * 2**n))`) plus the client's async `wait()`.

    `random` (returning a float in [0, 1)) and `sleep` are replaceable, for tests. One instance
    per client: it counts that client's attempts.
    """

    def __init__(
        self,
        base: float = 0.1,
        cap: float = 5.0,
        *,
        random: Callable[[], float] = random.random,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        super().__init__(base, cap, random=random)
        self.sleep = sleep

    @property
    def attempt(self) -> int:
        """Failed attempts since the last reset() (the policy's `failures`)."""
        return self.failures

    @attempt.setter
    def attempt(self, value: int) -> None:
        self.failures = value

    async def wait(self) -> None:
        await self.sleep(self.next_delay())


class _Closed:
    """Queue sentinel: the client is closed and nothing more will arrive."""


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

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
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
    return RoomError(
        ErrorCode.INTERNAL,
        f"[{code}] {error.get('message', '')}",
        field=error.get("field"),
        retry_after_ms=error.get("retry_after_ms"),
    )


def _fit_resume(resume: Mapping[str, int] | None) -> tuple[dict[str, int] | None, list[str]]:
    """(the resume map to send, the rooms left out): the most recently active rooms (last in
    `resume`) that fit the server's map and frame limits."""
    if resume is None:
        return None, []
    rooms = list(resume)
    kept: list[str] = []
    size = 0
    for room in reversed(rooms):
        size += len(room.encode()) + 12  # key, value and framing, generously
        if len(kept) == MAX_RESUME_ROOMS or size > MAX_RESUME_BYTES:
            break
        kept.append(room)
    if len(kept) == len(rooms):
        return dict(resume), []
    chosen = set(kept)
    log.warning("roomhub: resuming %d of %d rooms (the auth frame's limits)", len(kept), len(rooms))
    return {r: resume[r] for r in rooms if r in chosen}, [r for r in rooms if r not in chosen]


def _args(**kwargs: Any) -> dict[str, Any]:
    """Only the arguments that are set: None means "not given" and is never put on the wire."""
    return {name: value for name, value in kwargs.items() if value is not None}


class RoomClient:
    """A roomhub client: one authenticated connection at a time, optionally reconnecting.

    Calls may run concurrently (pipelined) on one connection; replies may arrive in any order.
    Failed ops raise `RoomError` with the wire `code`, `message`, `field`, `retry_after_ms`.
    Without `reconnect`, when the connection closes every pending and later call raises
    `ConnectionLost`, and `messages()` ends after yielding what had already arrived. With
    `reconnect=True` see the module docstring ("Reconnecting").

    System messages are buffered in an **unbounded** queue until read. Bounding it would mean
    either stalling the reader (and with it every reply, deadlocking a caller that awaits a
    call before draining messages) or dropping messages (breaking the gap-free seq). A client
    that never reads them grows without limit; the server's slow-consumer close (4008) only
    protects the server. Read them, or ignore them on a connection used only for calls.
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        key: str,
        token: TokenSource,
        encoding: Encoding,
        reconnect: bool = False,
        backoff: Backoff | None = None,
        on_resync: Callable[[Resync], Any] | None = None,
        on_state: Callable[[State], Any] | None = None,
        max_size: int | None = None,
        ws_options: Mapping[str, Any] | None = None,
        idempotency: bool = True,
        store_retries: int = 3,
    ) -> None:
        """Use `RoomClient.connect`; this only sets the client up, without connecting."""
        if not urls:
            raise ValueError("at least one URL is needed")
        self.urls = list(urls)
        self.encoding = encoding
        self._key = key
        self._token = token
        self._reconnect = reconnect
        self._idempotency = idempotency
        self._store_retries = store_retries
        self._backoff = backoff or Backoff()
        self._on_resync = on_resync
        self._on_state = on_state
        self._max_size = max_size
        self._ws_options = dict(ws_options or {})
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
        self._user: str | None = None
        self._seqs: dict[str, int] = {}  # room -> seq of the last message delivered
        self._floors: dict[str, int] = {}  # room -> its seq at connect, until a message arrives
        self.welcome: AuthResult | None = None

    # connecting --------------------------------------------------------------------------

    @classmethod
    def connect(
        cls,
        url: str | Sequence[str],
        *,
        key: str,
        token: TokenSource,
        encoding: str | Encoding = "msgpack",
        resume: Mapping[str, int] | None = None,
        on_resync: Callable[[Resync], Any] | None = None,
        reconnect: bool = False,
        backoff: tuple[float, float] | Backoff = (0.1, 5.0),
        on_state: Callable[[State], Any] | None = None,
        max_size: int | None = None,
        idempotency: bool = True,
        store_retries: int = 3,
        **ws_options: Any,
    ) -> _Connect:
        """Open a connection to `ws://HOST:PORT/ws` and authenticate.

        `async with RoomClient.connect(...) as client:` closes it on exit; `await` it to manage
        `close()` yourself. A refused auth raises RoomError(UNAUTHENTICATED).

        - `url`: one URL, or several (hub nodes) tried in turn.
        - `token`: a JWT, or a function (sync or async) returning a fresh one, called before
          every connection attempt.
        - `resume`: room id -> the last seq seen (sent with the first `auth`; the client keeps
          it up to date from then on).
        - `on_resync`: called from the reader task for each `resync` (must not block).
        - `reconnect`: reconnect on its own after a drop, with `backoff` = `(base, cap)`
          seconds or a `Backoff`; see the module docstring.
        - `on_state`: called with the new `State` on every change (must not block).
        - `max_size` bounds incoming frames (None: no bound, as a large Room is legitimately
          big); other options go to websockets' `connect`.
        - `idempotency`: send an idempotency key with every mutating op and send it again
          after a lost reply or "store unavailable" (`store_retries` times), so each is
          applied exactly once; False sends none and never re-sends.
        """
        chosen = encoding if isinstance(encoding, Encoding) else _ENCODINGS.get(encoding)
        if chosen is None:
            raise ValueError(f"encoding must be 'msgpack' or 'json', not {encoding!r}")
        urls = [url] if isinstance(url, str) else list(url)
        if not urls:
            raise ValueError("connect needs at least one URL")
        if not isinstance(token, str) and not callable(token):
            raise TypeError("token must be a string or a function returning one")
        strategy = backoff if isinstance(backoff, Backoff) else Backoff(*backoff)
        ws_options.setdefault("compression", None)  # the hub does not negotiate deflate
        first_resume = dict(resume) if resume is not None else None

        async def open_client() -> RoomClient:
            client = cls(
                urls,
                key=key,
                token=token,
                encoding=chosen,
                reconnect=reconnect,
                backoff=strategy,
                on_resync=on_resync,
                on_state=on_state,
                max_size=max_size,
                ws_options=ws_options,
                idempotency=idempotency,
                store_retries=store_retries,
            )
            await client._start(first_resume)
            return client

        return _Connect(open_client)

    async def _start(self, resume: dict[str, int] | None) -> None:
        """The first connection: each URL once, in order; the last error is raised."""
        self._notify(State.CONNECTING)
        self._seqs.update(resume or {})
        error: Exception | None = None
        for index in range(len(self.urls)):
            self._url_index = index
            try:
                await self._open(self.urls[index], first=True, resume=resume)
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
        resume, left_out = _fit_resume(resume)
        token = await self._fresh_token()
        ws = await ws_connect(
            url,
            subprotocols=[Subprotocol(self.encoding.value)],
            max_size=self._max_size,
            **self._ws_options,
        )
        self._ws = ws
        reader = asyncio.create_task(self._read(ws), name="roomhub-client-reader")
        self._reader = reader
        try:
            request = self._request(
                "auth", _args(key=self._key, token=token, resume=resume), auth=True
            )
            welcome = AuthResult.model_validate(await request)
            await self._adopt(welcome, first=first, left_out=left_out)
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
        """Track the rooms of an auth result. With `reconnect`, rooms with no resume point get
        one: on the first connection their current seq; on a reconnect they are new to the
        client (joined while away) and get a `resync`. So do known rooms that did not fit
        in `resume` (`left_out`): nothing was replayed for them."""
        untracked: list[str] = []
        if self._reconnect:
            untracked = [r for r in welcome.rooms if r not in self._seqs and r not in self._floors]
        if not untracked and not left_out:
            return
        listed = await self._request("room.list", {})
        seqs = {room["id"]: room["seq"] for room in listed["rooms"]}
        for room in untracked:
            if room not in seqs:
                continue  # gone since the auth: its removal message, if any, says so
            if first:
                self._floors[room] = seqs[room]
            elif room not in self._seqs:  # (a live message may have arrived meanwhile)
                self._resynced(Resync(room=room, seq=seqs[room]))
        for room in left_out:
            if room in seqs:
                self._resynced(Resync(room=room, seq=seqs[room]))
            else:
                self._forget(room)  # not ours any more

    async def _fresh_token(self) -> str:
        token = self._token
        if isinstance(token, str):
            return token
        value = token()
        if inspect.isawaitable(value):
            value = await value
        if not isinstance(value, str):
            raise TypeError(f"the token function returned {type(value).__name__}, not str")
        return value

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
                if exc.code is ErrorCode.UNAUTHENTICATED and isinstance(self._token, str):
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
        return ConnectionLost("connection closed by the client", code=1000)

    # state -------------------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

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
        return {**self._floors, **self._seqs}

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
        self._finish(ConnectionLost("connection closed by the client", code=1000))

    # the wire ----------------------------------------------------------------------------

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for data in ws:
                self._dispatch(_decode(data, self.encoding))
        except ConnectionClosed:
            pass
        except Exception as exc:  # a frame we cannot understand: fail loudly, not silently
            log.exception("roomhub: protocol error, closing")
            await ws.close(CloseCode.PROTOCOL_ERROR, "client could not read a frame")
            # Final even with `reconnect`: a replay would bring the same frame again.
            self._ended(ws, ConnectionLost(f"protocol error: {exc!r}", code=1002), final=True)
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
        fixed_token = isinstance(self._token, str)
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
            self._deliver(SystemMessage.model_validate(frame["message"]))
        elif event == "resync":
            self._resynced(Resync(room=frame["room"], seq=frame["seq"]))
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
                self._user = frame["result"]["user"]
            if not future.done():
                future.set_result(frame)

    def _deliver(self, message: SystemMessage) -> None:
        """Queue a system message unless it was delivered before (by seq, per room)."""
        room = message.room
        last = self._seqs.get(room)
        if last is not None:
            if message.seq <= last:
                log.debug("roomhub: dropping %s #%d: already delivered", room, message.seq)
                return
            if message.seq != last + 1:
                log.warning("roomhub: %s jumped from #%d to #%d", room, last, message.seq)
        if last is not None:
            del self._seqs[room]  # re-inserted last: the dict is ordered by recent activity
        self._seqs[room] = message.seq
        self._floors.pop(room, None)
        self._events.put_nowait(message)
        if message.type in _GONE and self._user in message.targets:
            self._forget(room)  # not ours any more: nothing to resume

    def _forget(self, room: str) -> None:
        self._seqs.pop(room, None)
        self._floors.pop(room, None)

    def _resynced(self, resync: Resync) -> None:
        self._floors.pop(resync.room, None)
        if resync.seq == 0:
            self._forget(resync.room)  # gone for us (or restarted empty: 1, 2 … follow)
        else:
            self._seqs[resync.room] = resync.seq
        if self._on_resync is not None:
            try:
                self._on_resync(resync)
            except Exception:  # the app's bug must not take the connection down
                log.exception("roomhub: on_resync callback failed")
        else:
            log.warning("roomhub: %s: re-read the room (no on_resync callback)", resync)

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
        store_failures = 0
        while True:
            try:
                return await self._request(op, args)
            except ConnectionLost:
                if not self._reconnect or self._closing or self._state is State.CLOSED:
                    raise
                await self.wait_open()  # ConnectionLost if the client gives up meanwhile
            except RoomError as exc:
                unavailable = exc.code is ErrorCode.INTERNAL and "unavailable" in exc.message
                if not unavailable or store_failures >= self._store_retries:
                    raise
                await asyncio.sleep(0.1 * 2**store_failures)
                store_failures += 1
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
        raise _error(reply.get("error"))

    async def _model(self, model: type[M], op: str, args: dict[str, Any]) -> M:
        return model.model_validate(await self._call(op, args))

    async def _mutate(self, op: str, args: dict[str, Any], reply: Reply) -> Room | Ack:
        if reply == "ack":
            return await self._model(Ack, op, {**args, "reply": "ack"})
        return await self._model(Room, op, args)

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

    # operations --------------------------------------------------------------------------

    async def upsert_user(
        self,
        id: str,
        nickname: str | None = None,
        avatar: str | None = None,
        *,
        operator: str | None = None,
    ) -> User:
        """Create or update a user's profile (server tokens). Fields not given keep their
        value. No `reply`: the server ignores it for user.upsert, the result is the user."""
        return await self._model(
            User, "user.upsert", _args(id=id, nickname=nickname, avatar=avatar, operator=operator)
        )

    @overload
    async def create_room(
        self,
        room: str | None = ...,
        name: str = ...,
        type: str = ...,
        members: Iterable[str] = ...,
        owner: str | None = ...,
        *,
        reply: Literal["room"] = ...,
        operator: str | None = ...,
    ) -> Room: ...
    @overload
    async def create_room(
        self,
        room: str | None = ...,
        name: str = ...,
        type: str = ...,
        members: Iterable[str] = ...,
        owner: str | None = ...,
        *,
        reply: Literal["ack"],
        operator: str | None = ...,
    ) -> Ack: ...
    async def create_room(
        self,
        room: str | None = None,
        name: str = "",
        type: str = "group",
        members: Iterable[str] = (),
        owner: str | None = None,
        *,
        reply: Reply = "room",
        operator: str | None = None,
    ) -> Room | Ack:
        """Create a room (id generated when `room` is None). `owner` is for server tokens
        only; a user owns the rooms they create. `members` join directly, without invitation."""
        created = await self._mutate(
            "room.create",
            _args(
                room=room,
                name=name or None,
                type=None if type == "group" else type,
                members=list(members) or None,
                owner=owner,
                operator=operator,
            ),
            reply,
        )
        if owner is None and operator is None:  # a user's own room: resume it from its start
            room_id = created.room if isinstance(created, Ack) else created.id
            if room_id not in self._seqs:  # (unless its createRoom already arrived)
                self._floors.setdefault(room_id, 0)
        return created

    async def get_room(self, room: str, *, operator: str | None = None) -> Room:
        """The complete room, with members and pending invitations."""
        return await self._model(Room, "room.get", _args(room=room, operator=operator))

    async def list_rooms(self, *, operator: str | None = None) -> list[Room]:
        """The caller's rooms (member or invited), sorted by id, without `members`. A server
        token must name the user as `operator`."""
        result = await self._call("room.list", _args(operator=operator))
        return [Room.model_validate(room) for room in result["rooms"]]

    @overload
    async def add_members(
        self,
        room: str,
        invitees: Iterable[str],
        invitation_required: bool = ...,
        system_message: bool = ...,
        *,
        reply: Literal["room"] = ...,
        operator: str | None = ...,
    ) -> Room: ...
    @overload
    async def add_members(
        self,
        room: str,
        invitees: Iterable[str],
        invitation_required: bool = ...,
        system_message: bool = ...,
        *,
        reply: Literal["ack"],
        operator: str | None = ...,
    ) -> Ack: ...
    async def add_members(
        self,
        room: str,
        invitees: Iterable[str],
        invitation_required: bool = False,
        system_message: bool = False,
        *,
        reply: Reply = "room",
        operator: str | None = None,
    ) -> Room | Ack:
        """Add 1-100 users directly, or invite them (`invitation_required=True`);
        `system_message` marks the message `notify` (shown in the room's timeline)."""
        return await self._mutate(
            "member.add",
            _args(
                room=room,
                invitees=list(invitees),
                invitation_required=invitation_required or None,
                system_message=system_message or None,
                operator=operator,
            ),
            reply,
        )

    @overload
    async def accept(
        self, room: str, *, reply: Literal["room"] = ..., operator: str | None = ...
    ) -> Room: ...
    @overload
    async def accept(
        self, room: str, *, reply: Literal["ack"], operator: str | None = ...
    ) -> Ack: ...
    async def accept(
        self, room: str, *, reply: Reply = "room", operator: str | None = None
    ) -> Room | Ack:
        """Accept a pending invitation and become a member."""
        return await self._mutate("invitation.accept", _args(room=room, operator=operator), reply)

    @overload
    async def decline(
        self, room: str, *, reply: Literal["room"] = ..., operator: str | None = ...
    ) -> None: ...
    @overload
    async def decline(
        self, room: str, *, reply: Literal["ack"], operator: str | None = ...
    ) -> Ack: ...
    async def decline(
        self, room: str, *, reply: Reply = "room", operator: str | None = None
    ) -> Ack | None:
        """Decline a pending invitation (the server replies `{}`: nothing to return)."""
        return await self._empty("invitation.decline", _args(room=room, operator=operator), reply)

    @overload
    async def update_member(
        self,
        room: str,
        user: str,
        properties: Mapping[str, Any],
        system_message: bool = ...,
        notification_extension: str | None = ...,
        *,
        reply: Literal["room"] = ...,
        operator: str | None = ...,
    ) -> Room: ...
    @overload
    async def update_member(
        self,
        room: str,
        user: str,
        properties: Mapping[str, Any],
        system_message: bool = ...,
        notification_extension: str | None = ...,
        *,
        reply: Literal["ack"],
        operator: str | None = ...,
    ) -> Ack: ...
    async def update_member(
        self,
        room: str,
        user: str,
        properties: Mapping[str, Any],
        system_message: bool = False,
        notification_extension: str | None = None,
        *,
        reply: Reply = "room",
        operator: str | None = None,
    ) -> Room | Ack:
        """Set built-in member fields (role, nickname, avatar, level, custom_info, extension)
        and custom props; a custom prop set to None is removed (None is sent as null here:
        it is a value, not a missing argument)."""
        return await self._mutate(
            "member.update",
            _args(
                room=room,
                user=user,
                properties=dict(properties),
                system_message=system_message or None,
                notification_extension=notification_extension,
                operator=operator,
            ),
            reply,
        )

    @overload
    async def remove_member(
        self, room: str, user: str, *, reply: Literal["room"] = ..., operator: str | None = ...
    ) -> Room: ...
    @overload
    async def remove_member(
        self, room: str, user: str, *, reply: Literal["ack"], operator: str | None = ...
    ) -> Ack: ...
    async def remove_member(
        self, room: str, user: str, *, reply: Reply = "room", operator: str | None = None
    ) -> Room | Ack:
        """Remove a member of lower rank (owner, admin, or a server token)."""
        return await self._mutate(
            "member.remove", _args(room=room, user=user, operator=operator), reply
        )

    @overload
    async def leave(
        self, room: str, *, reply: Literal["room"] = ..., operator: str | None = ...
    ) -> None: ...
    @overload
    async def leave(
        self, room: str, *, reply: Literal["ack"], operator: str | None = ...
    ) -> Ack: ...
    async def leave(
        self, room: str, *, reply: Reply = "room", operator: str | None = None
    ) -> Ack | None:
        """Leave a room (any member but the owner); the server replies `{}`."""
        return await self._empty("room.leave", _args(room=room, operator=operator), reply)

    async def _empty(self, op: str, args: dict[str, Any], reply: Reply) -> Ack | None:
        if reply == "ack":
            return await self._model(Ack, op, {**args, "reply": "ack"})
        await self._call(op, args)
        return None

    async def history(
        self, room: str, after_seq: int = 0, limit: int = 50, *, operator: str | None = None
    ) -> HistoryPage:
        """System messages with seq > `after_seq`, ascending, at most `limit` (1-200);
        page on with the last message's seq while `more` is true."""
        return await self._model(
            HistoryPage,
            "room.history",
            _args(
                room=room,
                after_seq=after_seq or None,
                limit=None if limit == 50 else limit,
                operator=operator,
            ),
        )
