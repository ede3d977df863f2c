"""The client's connect options, defined (and documented) once.

`RoomClient.connect(url, key=..., token=..., **options)` builds a `ClientOptions` from its
keywords (any it does not know go to websockets' `connect`); `RoomClient.connect(url, opts)`
takes a ready one, e.g. shared by many clients. It is checked when it is built, so a
misconfiguration fails at the call, before any connection is attempted.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from roomhub.protocol.backoff import ExponentialBackoff
from roomhub.protocol.codec import Encoding
from roomhub.protocol.models import PresenceEvent, SystemMessage

from .backoff import Backoff
from .resume import Resync
from .state import State

__all__ = ["ClientOptions", "Event", "TokenSource"]

TokenSource: TypeAlias = str | Callable[[], str | Awaitable[str]]
# What `on_event` sees: every event as it comes off the wire, before de-duplication.
Event: TypeAlias = SystemMessage | Resync

_ENCODINGS = {
    "msgpack": Encoding.MSGPACK,
    "json": Encoding.JSON,
    Encoding.MSGPACK.value: Encoding.MSGPACK,
    Encoding.JSON.value: Encoding.JSON,
}


@dataclass(frozen=True, kw_only=True)
class ClientOptions:
    """How a RoomClient connects, authenticates and recovers.

    - `key`: the app key; `token`: a JWT, or a function (sync or async) returning a fresh
      one, called before every connection attempt.
    - `encoding`: "msgpack" (default) or "json" (or an `Encoding`).
    - `resume`: room id -> the last seq seen (sent with the first `auth`; the client keeps it
      up to date from then on).
    - `reconnect`: reconnect on its own after a drop, with `backoff` = `(base, cap)` seconds
      or a `Backoff` (shared by whoever is given it; a tuple gives each client its own); see
      `roomhub.clients.client` ("Reconnecting").
    - `on_resync(Resync)`: called from the reader task for each `resync` (must not block).
    - `on_state(State)`: called on every state change (must not block).
    - `presence`: ask for presence events (members of your rooms coming online and going
      offline); each goes to `on_presence(PresenceEvent)`, called from the reader task (must
      not block). `RoomClient.presence(room)` reads who is online now.
    - `on_event(SystemMessage | Resync)`: called from the reader task with every system and
      resync event as it comes off the wire, before de-duplication by seq (so a resume
      replay's repeats are seen too): for observing, tracing, measuring (must not block).
    - `max_size` bounds incoming frames (None: no bound, as a large Room is legitimately big);
      `ws_options` go to websockets' `connect` (compression is off: the hub does not
      negotiate deflate).
    - `idempotency`: send an idempotency key with every mutating op and send it again after
      a lost reply or "store unavailable" (`store_retries` times), so each is applied exactly
      once; False sends none and never re-sends.
    """

    key: str
    token: TokenSource
    encoding: Encoding | str = "msgpack"
    resume: Mapping[str, int] | None = None
    reconnect: bool = False
    backoff: tuple[float, float] | Backoff = (0.1, 5.0)
    on_resync: Callable[[Resync], Any] | None = None
    on_state: Callable[[State], Any] | None = None
    on_event: Callable[[Event], Any] | None = None
    presence: bool = False
    on_presence: Callable[[PresenceEvent], Any] | None = None
    max_size: int | None = None
    idempotency: bool = True
    store_retries: int = 3
    ws_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        encoding = self.encoding
        chosen = encoding if isinstance(encoding, Encoding) else _ENCODINGS.get(encoding)
        if chosen is None:
            raise ValueError(f"encoding must be 'msgpack' or 'json', not {encoding!r}")
        if not isinstance(self.token, str) and not callable(self.token):
            raise TypeError("token must be a string or a function returning one")
        if not isinstance(self.backoff, Backoff):
            ExponentialBackoff(*self.backoff)  # checks the bounds now, not at the first drop
        set_ = object.__setattr__  # (frozen: normalised once, here)
        set_(self, "encoding", chosen)
        if self.resume is not None:
            set_(self, "resume", dict(self.resume))
        set_(self, "ws_options", {"compression": None, **self.ws_options})

    @classmethod
    def build(cls, options: ClientOptions | None, keywords: dict[str, Any]) -> ClientOptions:
        """`options` (if given) with `keywords` applied; keywords that are not options go to
        websockets (`ws_options`), as `connect(url, open_timeout=5, ...)` always allowed."""
        fields = {f.name for f in dataclasses.fields(cls)}
        ws_options = {name: keywords.pop(name) for name in list(keywords) if name not in fields}
        if ws_options:
            base = options.ws_options if options is not None else {}
            keywords["ws_options"] = {**base, **keywords.get("ws_options", {}), **ws_options}
        if options is None:
            return cls(**keywords)
        return dataclasses.replace(options, **keywords) if keywords else options

    @property
    def wire_encoding(self) -> Encoding:
        """`encoding` as the `Encoding` it was normalised to."""
        assert isinstance(self.encoding, Encoding)
        return self.encoding

    def new_backoff(self) -> Backoff:
        """The backoff of one client: the given `Backoff`, or a fresh one for `(base, cap)`."""
        if isinstance(self.backoff, Backoff):
            return self.backoff
        return Backoff(*self.backoff)

    async def fresh_token(self) -> str:
        """The token for the next attempt: a fixed one, or what the token function gives."""
        token = self.token
        if isinstance(token, str):
            return token
        value = token()
        if inspect.isawaitable(value):
            value = await value
        if not isinstance(value, str):
            raise TypeError(f"the token function returned {type(value).__name__}, not str")
        return value
