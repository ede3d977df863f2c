"""Delivery of system messages to this node's connections, in seq order per room.

Every message reaches the node through Redis pub/sub (even on a single node: one code
path): on the room's channel, and on the inbox channel of each newcomer, whose node may not
follow the room yet. Per room the node keeps a `RoomFeed`: the seq it has delivered up to
and the room's member ids. A message that skips seqs is held back while the gap is read
from the room's log, so members always see 1, 2, 3 … with no gap and no repeat.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Protocol

import orjson

from roomhub.protocol.codec import Encoding, event_frame_from_json

from . import wsframe
from .store import Store, room_channel, user_inbox
from .tasks import Background

log = logging.getLogger("roomhub.fanout")

ADDS = frozenset({"createRoom", "addMember", "acceptInvitation"})
REMOVES = frozenset({"removeMember", "leaveRoom"})


class Recipient(Protocol):
    def deliver(self, message: Message) -> None: ...

    def resync(self, room: str, seq: int) -> None: ...


class Message:
    """One published system message, parsed once, framed once per encoding."""

    __slots__ = ("_frames", "raw", "room", "seq", "targets", "type")

    def __init__(self, raw: bytes) -> None:
        body = orjson.loads(raw)
        self.raw = raw
        self.room: str = body["room"]
        self.seq: int = body["seq"]
        self.type: str = body["type"]
        self.targets: list[str] = body["targets"]
        self._frames: dict[Encoding, bytes] = {}

    def frame(self, encoding: Encoding) -> bytes:
        """The complete WebSocket frame of this event for `encoding`, built once."""
        data = self._frames.get(encoding)
        if data is None:
            payload = event_frame_from_json(self.raw, encoding)
            data = self._frames[encoding] = wsframe.frame(payload, text=encoding is Encoding.JSON)
        return data


def visible_to(user: str, is_member_now: bool, messages: list[Message]) -> list[Message]:
    """The messages `user` may see: those sent while a member, and those about them.

    Walks back from the present, undoing membership changes, so a room the user left
    replays up to (and including) their leaving, and nothing after it.
    """
    member = is_member_now
    seen: list[Message] = []
    for message in reversed(messages):
        about_user = user in message.targets
        if member or about_user:
            seen.append(message)
        if about_user and message.type in ADDS:
            member = False
        elif about_user and message.type in REMOVES:
            member = True
    seen.reverse()
    return seen


class RoomFeed:
    __slots__ = ("_built_at", "_conns", "app", "busy", "last_seq", "members", "pending", "room")

    def __init__(self, app: str, room: str) -> None:
        self.app = app
        self.room = room
        self.last_seq = 0
        self.members: set[str] = set()
        self.pending: dict[int, Message] = {}
        self.busy = True  # until the first snapshot is read; messages wait in `pending`
        self._conns: list[Recipient] = []  # this node's connections of members, cached
        self._built_at = -1  # the Fanout.generation the cache was built at

    def member_conns(
        self, local: dict[tuple[str, str], set[Recipient]], generation: int
    ) -> list[Recipient]:
        """Connections on this node of the room's members; rebuilt only after a change."""
        if self._built_at != generation:
            app, members = self.app, self.members
            if len(members) <= len(local):
                users = [u for u in members if (app, u) in local]
            else:
                users = [u for (a, u) in local if a == app and u in members]
            self._conns = [conn for user in users for conn in local[(app, user)]]
            self._built_at = generation
        return self._conns

    def forget_conns(self) -> None:
        self._built_at = -1


class Fanout:
    def __init__(self, store: Store, node: str, probe_interval: float = 5.0) -> None:
        self.store = store
        self.epoch = ""
        self.feeds: dict[tuple[str, str], RoomFeed] = {}
        self.local: dict[tuple[str, str], set[Recipient]] = {}  # (app, user) -> connections
        self.generation = 0  # bumped whenever `local` changes: feeds rebuild their caches
        self._channels: dict[bytes, tuple[str, str | None]] = {}  # channel -> (app, room|None)
        self._background = Background(log, "fan-out task")
        self.subscriber = store.subscriber(
            self._on_published, self._on_reconnect, node, probe_interval
        )

    async def start(self) -> None:
        self.epoch = await self.store.epoch()
        self.subscriber.start()

    async def close(self) -> None:
        """Stop the feeds' tasks and wait for them, so none touches the store after it closes."""
        await self._background.close(timeout=3)
        await self.subscriber.close()

    # connections --------------------------------------------------------------------------

    async def attach(self, app: str, user: str, conn: Recipient, rooms: Iterable[str]) -> None:
        """Start delivering to `conn` every message of the user's rooms (and its inbox)."""
        conns = self.local.get((app, user))
        if conns is None:
            conns = self.local[(app, user)] = set()
            channel = user_inbox(app, user)
            self._channels[channel.encode()] = (app, None)
            await self.subscriber.subscribe(channel)
        conns.add(conn)
        # Only now: a message delivered during the SUBSCRIBE above rebuilt the feeds' cached
        # recipients without `conn`; bumping before the await would leave that cache current.
        self.generation += 1
        await asyncio.gather(*(self.follow(app, room) for room in rooms))

    def detach(self, app: str, user: str, conn: Recipient) -> None:
        key = (app, user)
        conns = self.local.get(key)
        if conns is None:
            return
        conns.discard(conn)
        self.generation += 1
        if conns:
            return
        del self.local[key]
        self._release(user_inbox(app, user))
        for feed in [f for f in self.feeds.values() if f.app == app and user in f.members]:
            if not self._has_local_member(feed):
                self._forget(feed)

    # feeds ----------------------------------------------------------------------------------

    async def follow(
        self, app: str, room: str, first: Message | None = None, resync: Iterable[str] = ()
    ) -> None:
        """Track a room: subscribe, then read its seq and members (so nothing falls between).

        `resync`: users (besides the members) whose connections lost track of the room and
        are told to re-read it, before any message after the new snapshot."""
        key = (app, room)
        feed = self.feeds.get(key)
        if feed is not None:
            if first is not None:
                self._offer(feed, first)
            return
        feed = self.feeds[key] = RoomFeed(app, room)
        if first is not None:
            feed.pending[first.seq] = first
        channel = room_channel(app, room)
        self._channels[channel.encode()] = (app, room)
        try:
            await self.subscriber.subscribe(channel)
            snapshot = await self.store.snapshot(app, room)
            if snapshot is None:  # no such room (any more): nothing to follow
                self._tell_resync(app, room, 0, resync)
                self._forget(feed)
                return
            seq, members = snapshot
            if first is not None and first.seq <= seq:
                # Woken by an inbox message: rewind the snapshot to just before it and replay
                # from there, so the newcomer gets that message and every one after it.
                raws = await self.store.log_range(app, room, first.seq - 1, seq)
                replay = [Message(raw) for raw in raws]
                if replay and replay[0].seq == first.seq:
                    for message in reversed(replay):
                        if message.type in ADDS:
                            members.difference_update(message.targets)
                        elif message.type in REMOVES:
                            members.update(message.targets)
                    seq = first.seq - 1
                    for message in replay:
                        feed.pending.setdefault(message.seq, message)
            feed.last_seq, feed.members = seq, members
            if resync:
                self._tell_resync(app, room, seq, {*resync, *members})
        except Exception:
            log.exception("could not follow room %s/%s", app, room)
            self._forget(feed)
            raise
        feed.busy = False
        self._drain(feed)

    def _tell_resync(self, app: str, room: str, seq: int, users: Iterable[str]) -> None:
        for user in users:
            for conn in self.local.get((app, user), ()):
                conn.resync(room, seq)

    def _forget(self, feed: RoomFeed) -> None:
        if self.feeds.get((feed.app, feed.room)) is feed:
            del self.feeds[(feed.app, feed.room)]
            self._release(room_channel(feed.app, feed.room))

    def _release(self, channel: str) -> None:
        """Unsubscribe, unless the channel is wanted again by the time the command goes out."""
        self._channels.pop(channel.encode(), None)

        async def unsubscribe() -> None:
            if channel.encode() not in self._channels:
                await self.subscriber.unsubscribe(channel)

        self._background.spawn(unsubscribe())

    def _has_local_member(self, feed: RoomFeed) -> bool:
        if len(feed.members) <= len(self.local):
            return any((feed.app, user) in self.local for user in feed.members)
        return any(a == feed.app and u in feed.members for (a, u) in self.local)

    def _on_published(self, channel: bytes, data: bytes) -> None:
        route = self._channels.get(channel)
        if route is None:
            return
        app, _ = route
        message = Message(data)
        feed = self.feeds.get((app, message.room))
        if feed is None:
            self._background.spawn(self.follow(app, message.room, first=message))
        else:
            self._offer(feed, message)

    def _offer(self, feed: RoomFeed, message: Message) -> None:
        if message.seq <= feed.last_seq:
            return
        feed.pending[message.seq] = message
        if not feed.busy:
            self._drain(feed)

    def _drain(self, feed: RoomFeed) -> None:
        while feed.pending:
            message = feed.pending.pop(feed.last_seq + 1, None)
            if message is None:
                stale = [seq for seq in feed.pending if seq <= feed.last_seq]
                for seq in stale:
                    del feed.pending[seq]
                if feed.pending:
                    feed.busy = True
                    self._background.spawn(self._heal(feed, min(feed.pending)))
                return
            self._deliver(feed, message)
            feed.last_seq = message.seq
        if not self._has_local_member(feed):
            self._forget(feed)

    async def _heal(self, feed: RoomFeed, upto: int | None = None) -> None:
        """Read the messages pub/sub skipped (after last_seq, before `upto`) from the log.

        If the log no longer holds them, the feed starts over from a fresh snapshot and its
        local members are told to `resync`."""
        try:
            raws = await self.store.log_range(
                feed.app, feed.room, feed.last_seq, None if upto is None else upto - 1
            )
        except Exception as exc:
            log.warning("room %s/%s: cannot read the log yet (%r)", feed.app, feed.room, exc)
            await asyncio.sleep(0.5)
            feed.busy = False
            self._drain(feed)
            return
        for raw in raws:
            message = Message(raw)
            if message.seq > feed.last_seq:
                feed.pending.setdefault(message.seq, message)
        if feed.pending and feed.last_seq + 1 not in feed.pending:
            log.warning(
                "room %s/%s: log no longer holds seq %d; resyncing its members",
                feed.app,
                feed.room,
                feed.last_seq + 1,
            )
            self._restart(feed)
            return
        feed.busy = False
        self._drain(feed)

    def _restart(self, feed: RoomFeed) -> None:
        self._forget(feed)
        self._background.spawn(
            self.follow(
                feed.app,
                feed.room,
                resync=[user for user in feed.members if (feed.app, user) in self.local],
            )
        )

    def _on_reconnect(self) -> None:
        self._background.spawn(self._recover())

    async def _recover(self) -> None:
        """Back on Redis: catch every feed up from its log, or resync all if data was lost."""
        epoch = await self.store.epoch()
        lost = epoch != self.epoch
        self.epoch = epoch
        if lost:
            log.error("Redis lost its data (new epoch): every client must re-read its rooms")
        for feed in list(self.feeds.values()):
            if lost:
                self._restart(feed)
            elif not feed.busy:
                feed.busy = True
                self._background.spawn(self._heal(feed))
        if not lost:
            await self._follow_rooms_joined_meanwhile()

    async def _follow_rooms_joined_meanwhile(self) -> None:
        """A connected user added to (or invited into) a room while pub/sub was away missed
        the inbox message that would have made this node follow the room: follow it now, and
        tell that user's connections to re-read it (`resync`), since they missed its start."""
        for app, user in list(self.local):
            try:
                rooms = await self.store.user_rooms(app, user)
            except Exception as exc:
                log.warning("cannot list the rooms of %s/%s yet (%r)", app, user, exc)
                continue
            for room in rooms:
                if (app, room["id"]) not in self.feeds:
                    self._background.spawn(self.follow(app, room["id"], resync=[user]))

    def _deliver(self, feed: RoomFeed, message: Message) -> None:
        """Write the message to every local connection of a member, and of its targets."""
        changes_members = message.type in ADDS or message.type in REMOVES
        if message.type in ADDS:
            feed.members.update(message.targets)
            feed.forget_conns()
        local = self.local
        for conn in feed.member_conns(local, self.generation):
            conn.deliver(message)
        for user in message.targets:  # targets that are not members (invitees, the removed)
            if user not in feed.members:
                for conn in local.get((feed.app, user), ()):
                    conn.deliver(message)
        if message.type in REMOVES:
            feed.members.difference_update(message.targets)
        if changes_members:
            feed.forget_conns()
