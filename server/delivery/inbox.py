"""What one connection is written of the system messages: floors and the opening buffer.

Pure: `Inbox` decides, the subclass that owns the socket (server/connection.py) writes. It is
a base class rather than a member so a delivery costs one call more than the write itself,
as before: the hub delivers each message to every member's connection.
"""

from __future__ import annotations

from collections.abc import Iterable

from roomhub.protocol.codec import Encoding

from .message import Message, resync_frame

HELD = -1  # a room's `floor` while its watch reply is on its way (seqs are never negative)


class Inbox:
    """Until `open()`, messages wait (the client sees its auth reply first, and replayed
    messages before live ones); after it, a room's messages up to its floor are dropped."""

    __slots__ = ("_ready", "encoding", "floor", "held", "opening", "presence", "watching")

    def __init__(self, encoding: Encoding) -> None:
        self.encoding = encoding
        # Events that arrived before the auth reply (and any resume replay) was written: a
        # Message, a (room, seq) resync, or a framed presence event.
        self.opening: list[Message | tuple[str, int] | bytes] | None = []
        # Per room, the seq this connection has been written (or told of) up to. This node's
        # feed may still be behind it (pub/sub lags the log): live messages up to it go.
        self.floor: dict[str, int] = {}
        # Rooms being started by room.watch: their events wait until the reply (and any
        # replay) is written, as the opening buffer does for auth.
        self.held: dict[str, list[Message | int]] = {}
        self.watching: set[str] = set()  # rooms this connection watches (server tokens)
        self.presence = False  # asked for presence events (auth `presence: true`)
        self._ready: dict[str, tuple[int, list[bytes]]] = {}  # held rooms, read: (seq, replay)

    def write(self, framed: bytes) -> None:
        """Write one framed WebSocket frame (the subclass owns the socket)."""
        raise NotImplementedError

    def deliver(self, message: Message) -> None:
        if self.opening is not None:
            self.opening.append(message)
            return
        if self.floor:
            floor = self.floor.get(message.room)
            if floor is not None:
                if floor == HELD:
                    self.held[message.room].append(message)
                    return
                if message.seq <= floor:
                    return
                del self.floor[message.room]  # the feed caught up: in order from here on
        self.write(message.frame(self.encoding))

    def resync(self, room: str, seq: int) -> None:
        if self.opening is not None:
            self.opening.append((room, seq))
            return
        if self.held:
            waiting = self.held.get(room)
            if waiting is not None:
                waiting.append(seq)
                return
        self.write(resync_frame(room, seq, self.encoding))

    def notify(self, framed: bytes) -> None:
        """An event outside any room's seq order (presence): written as it comes, after the
        auth reply."""
        if self.opening is not None:
            self.opening.append(framed)
            return
        self.write(framed)

    def hold(self, room: str) -> None:
        """The room's events wait (`release` writes them): its watch reply is on its way.
        Marked in `floor`, which a delivery reads anyway: no cost to the rooms not held."""
        self.held[room] = []
        self.floor[room] = HELD

    def ready(self, room: str, seq: int, replay: list[bytes]) -> None:
        """The held room was read at `seq`: `release` writes `replay`, then what waited."""
        self._ready[room] = (seq, replay)

    def drop(self, room: str) -> None:
        """The room is no longer watched: what waited for its reply is not written."""
        self.held.pop(room, None)
        self._ready.pop(room, None)
        if self.floor.get(room) == HELD:
            del self.floor[room]

    def release(self, room: str) -> None:
        """The watch reply is written: write the replay, then what waited after the room's
        seq, then live. A room that never got `ready` (its watch failed): what waited is
        dropped."""
        waiting = self.held.pop(room, [])
        prepared = self._ready.pop(room, None)
        if prepared is None:
            if self.floor.get(room) == HELD:
                del self.floor[room]
            return
        seq, replay = prepared
        for framed in replay:
            self.write(framed)
        self.floor[room] = seq  # a lagging feed's messages up to `seq` are in the reply
        for item in waiting:
            if isinstance(item, Message):
                self.deliver(item)
            else:
                self.resync(room, item)

    def start_after(self, seqs: Iterable[tuple[str, int]]) -> None:
        """Start each room after its seq: a node whose feed lags must not hand this
        connection changes from before it connected (or before its replay)."""
        self.floor.update(seqs)

    def open(self, replayed: Iterable[bytes] = ()) -> None:
        """The auth reply is written: write the replay, then what arrived meanwhile, then live."""
        for framed in replayed:
            self.write(framed)
        waiting, self.opening = self.opening or [], None
        for item in waiting:
            if isinstance(item, Message):
                self.deliver(item)
            elif isinstance(item, bytes):
                self.write(item)
            else:
                self.resync(*item)

    def reset(self) -> None:
        """The opening failed (the client may send `auth` again): forget floors and events."""
        self.floor.clear()
        self.held.clear()
        self._ready.clear()
        self.opening = []
