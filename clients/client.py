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
The options are `ClientOptions` (roomhub.clients.options), passed to `connect` as keywords or
as one object: `RoomClient.connect(url, options)`.

Where things live: `session` (reader, pending calls, state, the reconnect supervisor),
`resume` (pure: resume points, de-duplication, resync), `ops` (the op methods), `options`,
`backoff` (the shared `roomhub.protocol.backoff` policy plus an async wait), `wire` (frames
and error replies), `state` (State, ConnectionLost). This module assembles RoomClient.

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
  naming this user, after a `dismissRoom` (whoever it names), and after a `resync` with seq 0
  (the room is gone for you). A room of the first auth result for which no message has been
  delivered yet resumes from its seq at connect time (one `room.list` right after that
  `auth`); a room created by this client resumes from 0 until its `createRoom` arrives. Reply
  seqs (`Room.seq`, `Ack.seq`) never move the resume point: a message is only ever skipped
  because it was delivered.
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

from collections.abc import Awaitable, Callable, Generator, Sequence
from types import TracebackType
from typing import Any

from roomhub.protocol.errors import RoomError

from .backoff import Backoff
from .ops import RoomOps
from .options import ClientOptions
from .resume import Resync
from .state import ConnectionLost, State

__all__ = [
    "Backoff",
    "ClientOptions",
    "ConnectionLost",
    "Resync",
    "RoomClient",
    "RoomError",
    "State",
]


class _Connect:
    """What `RoomClient.connect` returns: `async with` it (closes on exit) or `await` it."""

    def __init__(self, opener: Callable[[], Awaitable[RoomClient]]) -> None:
        self._opener = opener
        self._client: RoomClient | None = None

    def __await__(self) -> Generator[Any, None, RoomClient]:
        return self._opener().__await__()

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


class RoomClient(RoomOps):
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

    @classmethod
    def connect(
        cls, url: str | Sequence[str], options: ClientOptions | None = None, /, **keywords: Any
    ) -> _Connect:
        """Open a connection to `ws://HOST:PORT/ws` (`url`: one URL, or several hub nodes
        tried in turn) and authenticate.

        `async with RoomClient.connect(...) as client:` closes it on exit; `await` it to manage
        `close()` yourself. A refused auth raises RoomError(UNAUTHENTICATED). The keywords are
        the fields of `ClientOptions` (documented there), applied over `options` if given;
        any other keyword goes to websockets' `connect`.
        """
        urls = [url] if isinstance(url, str) else list(url)
        if not urls:
            raise ValueError("connect needs at least one URL")
        chosen = ClientOptions.build(options, keywords)

        async def open_client() -> RoomClient:
            client = cls(urls, chosen)
            await client._start()
            return client

        return _Connect(open_client)
