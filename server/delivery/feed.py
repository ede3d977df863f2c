"""Per room, in seq order, to this node's connections: the rules of the live feed.

Pure: no asyncio, no Redis. The I/O part (delivery/fanout.py) subscribes, reads snapshots
and logs, and calls these with what it read; each call says what to do next. A message that
skips seqs is held back while the gap is read from the room's log, so members see 1, 2, 3 …
with no gap and no repeat.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence

from .inbox import Inbox
from .message import ADDS, DISMISS, REMOVES, Message, members_before

Key = tuple[str, str]  # (app, user)


class Locals:
    """This node's connections per (app, user). `generation` changes whenever they do, so
    feeds rebuild their cached recipients."""

    __slots__ = ("conns", "generation", "watchers")

    def __init__(self) -> None:
        self.conns: dict[Key, set[Inbox]] = {}
        self.generation = 0
        # (app, room) -> the connections watching the room (room.watch): written every
        # message of it, members or not.
        self.watchers: dict[Key, set[Inbox]] = {}

    def claim(self, app: str, user: str) -> bool:
        """Note the user as connected here; True the first time (subscribe their inbox)."""
        if (app, user) in self.conns:
            return False
        self.conns[(app, user)] = set()
        return True

    def add(self, app: str, user: str, conn: Inbox) -> None:
        """`conn` gets the user's messages from now on. Only after the user's inbox is
        subscribed: a message delivered meanwhile rebuilt the feeds' caches without `conn`,
        and bumping `generation` earlier would leave those caches current."""
        self.conns.setdefault((app, user), set()).add(conn)
        self.generation += 1

    def discard(self, app: str, user: str, conn: Inbox) -> bool:
        """True when that was the user's last connection here (release their inbox)."""
        conns = self.conns.get((app, user))
        if conns is None:
            return False
        conns.discard(conn)
        self.generation += 1
        if conns:
            return False
        del self.conns[(app, user)]
        return True

    def connected(self, app: str, users: Iterable[str]) -> list[str]:
        return [user for user in users if (app, user) in self.conns]

    def has_any(self, app: str, users: set[str]) -> bool:
        if len(users) <= len(self.conns):
            return any((app, user) in self.conns for user in users)
        return any(a == app and u in users for (a, u) in self.conns)

    def wanted(self, feed: RoomFeed) -> bool:
        """Whether anybody here still needs the room's feed: a watcher, or a member."""
        return (feed.app, feed.room) in self.watchers or self.has_any(feed.app, feed.members)

    def resync(self, app: str, room: str, seq: int, users: Iterable[str]) -> None:
        """Tell the users' connections, and the room's watchers, to re-read the room, which
        is at `seq`."""
        for user in users:
            for conn in self.conns.get((app, user), ()):
                conn.resync(room, seq)
        for conn in self.watchers.get((app, room), ()):
            conn.resync(room, seq)


class Drained(enum.Enum):
    EMPTY = "empty"  # every message delivered: forget the feed unless a local member needs it
    HELD = "held"  # messages wait for a snapshot or a heal already under way
    GAP = "gap"  # a seq is missing: read it from the log (`gap_end`), then `fill`
    ENDED = "ended"  # the room's dismissRoom is delivered: the room is gone, forget the feed


class RoomFeed:
    """One room as this node delivers it: the seq delivered up to, the member ids, the
    messages waiting for their turn. `busy` until the first snapshot is read, and while a
    gap is healed: messages wait in `pending` meanwhile. `ending`: the room was dismissed and
    its log deleted with it, so what is missing before its dismissRoom can never be read:
    what is pending goes out in order, holes skipped."""

    __slots__ = (
        "_built_at",
        "_conns",
        "app",
        "busy",
        "end",
        "ending",
        "first",
        "last_seq",
        "members",
        "pending",
        "room",
    )

    def __init__(self, app: str, room: str, first: Message | None = None) -> None:
        self.app = app
        self.room = room
        self.last_seq = 0
        self.members: set[str] = set()
        self.pending: dict[int, Message] = {}
        self.busy = True
        self.ending = False
        self.end: Message | None = None  # its dismissRoom, once delivered
        # The inbox message that made the node follow the room, if one did.
        self.first = first
        if first is not None:
            self.pending[first.seq] = first
        self._conns: list[Inbox] = []  # this node's connections of members, cached
        self._built_at = -1  # the Locals.generation the cache was built at

    # the snapshot ---------------------------------------------------------------------------

    def rewind_from(self, seq: int) -> int | None:
        """The snapshot is at `seq`. If the message that woke the feed is in it already, the
        seq to read the log after (up to `seq`), so that its newcomer gets that message and
        every one after it; else None."""
        first = self.first
        if first is not None and first.seq <= seq:
            return first.seq - 1
        return None

    def begin(self, seq: int, members: set[str], log: Sequence[Message] = ()) -> None:
        """Start from the snapshot (`seq`, `members`); `log`: what `rewind_from` asked for.
        The snapshot is rewound to just before the first message, if the log still has it."""
        first = self.first
        if log and first is not None and log[0].seq == first.seq:
            members = members_before(members, log)
            seq = first.seq - 1
            for message in log:
                self.pending.setdefault(message.seq, message)
        self.last_seq, self.members = seq, members
        self.first = None
        self.busy = False

    # live messages --------------------------------------------------------------------------

    def offer(self, message: Message) -> bool:
        """A message from pub/sub. True when the caller should `drain` now."""
        if message.seq <= self.last_seq:
            return False
        self.pending[message.seq] = message
        return not self.busy

    def drain(self, local: Locals) -> Drained:
        """Deliver every message that is next in order to the local connections it is for."""
        pending = self.pending
        while pending:
            message = pending.pop(self.last_seq + 1, None)
            if message is None:
                for seq in [seq for seq in pending if seq <= self.last_seq]:
                    del pending[seq]
                if pending and self.ending:
                    self.last_seq = min(pending) - 1
                    continue
                if pending:
                    self.busy = True
                    return Drained.GAP
                return Drained.HELD
            self.deliver(message, local)
            self.last_seq = message.seq
            if message.type == DISMISS:
                pending.clear()
                self.end = message
                return Drained.ENDED
        return Drained.EMPTY

    def deliver(self, message: Message, local: Locals) -> None:
        """Write the message to every local connection of a member, and of its targets."""
        kind = message.type
        if kind in ADDS:
            self.members.update(message.targets)
            self._built_at = -1
        members = self.members
        for conn in self.member_conns(local):
            conn.deliver(message)
        conns = local.conns
        for user in message.targets:  # targets that are not members (invitees, the removed)
            if user not in members:
                for conn in conns.get((self.app, user), ()):
                    conn.deliver(message)
        for user in message.invitees:  # a dismissRoom's: their invitation is gone too
            if user not in members:
                for conn in conns.get((self.app, user), ()):
                    conn.deliver(message)
        if local.watchers:
            for conn in local.watchers.get((self.app, self.room), ()):
                conn.deliver(message)
        if kind in REMOVES:
            members.difference_update(message.targets)
            self._built_at = -1

    def member_conns(self, local: Locals) -> list[Inbox]:
        """Connections on this node of the room's members; rebuilt only after a change."""
        if self._built_at != local.generation:
            app, members, conns = self.app, self.members, local.conns
            if len(members) <= len(conns):
                users = [u for u in members if (app, u) in conns]
            else:
                users = [u for (a, u) in conns if a == app and u in members]
            self._conns = [conn for user in users for conn in conns[(app, user)]]
            self._built_at = local.generation
        return self._conns

    # gaps -----------------------------------------------------------------------------------

    def gap_end(self) -> int:
        """The first seq after the gap (the log is read before it)."""
        return min(self.pending)

    def start_heal(self) -> bool:
        """Pub/sub may have missed messages (it reconnected): True when the caller should read
        the log after `last_seq` now; False if a snapshot or a heal is under way already."""
        if self.busy:
            return False
        self.busy = True
        return True

    def fill(self, log: Iterable[Message]) -> bool:
        """The log after `last_seq`, read for a gap. False when it no longer holds the next
        seq: the feed must start over from a fresh snapshot and resync its local members —
        unless the room's dismissRoom is pending: then the room is gone with its log, and
        `drain` skips the holes."""
        for message in log:
            if message.seq > self.last_seq:
                self.pending.setdefault(message.seq, message)
        if self.pending and self.last_seq + 1 not in self.pending and not self._ends():
            return False
        self.busy = False
        return True

    def gone(self) -> bool:
        """The room no longer exists (its snapshot found nothing). True when its dismissRoom
        is pending: `drain` then delivers what is pending, that last, and ends the feed.
        False: nothing of it can be delivered any more; forget the feed."""
        self.first = None
        if not self._ends():
            self.pending.clear()
            return False
        self.busy = False
        return True

    def _ends(self) -> bool:
        """Whether the room's dismissRoom is pending (then holes before it are skipped: the
        log went with the room)."""
        if any(message.type == DISMISS for message in self.pending.values()):
            self.ending = True
        return self.ending
