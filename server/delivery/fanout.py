"""The I/O of delivery: subscribes, reads snapshots and logs, and hands them to the rules.

Every message reaches the node through Redis pub/sub (even on a single node: one code
path): on the room's channel, and on the inbox channel of each newcomer, whose node may not
follow the room yet. What to do with it is decided by `RoomFeed` (feed.py); this module
only waits for Redis.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson

from roomhub.protocol.codec import Encoding
from roomhub.protocol.errors import ErrorCode, RoomError

from ..store import Store, is_unavailable, room_channel, user_inbox
from ..store.keys import presence_channel
from ..tasks import Background
from .feed import Drained, Locals, RoomFeed
from .inbox import Inbox
from .message import Message, newer_room, presence_frame, resync_frame
from .resume import ResumePlan

log = logging.getLogger("roomhub.fanout")

HEAL_RETRY = 0.5  # seconds before a gap whose log could not be read is tried again
ENDED_KEPT = 1024  # rooms whose dismissRoom went out, remembered to drop its other copies
_GAP, _EMPTY, _ENDED = Drained.GAP, Drained.EMPTY, Drained.ENDED  # read once per message


class Fanout:
    """This node's side of delivery: one pub/sub subscriber, a `RoomFeed` per room followed,
    the local connections (`Locals`) they deliver to."""

    def __init__(
        self,
        store: Store,
        node: str,
        probe_interval: float = 5.0,
        metrics: Any = None,
        presence: Any = None,
    ) -> None:
        self.store = store
        self.metrics = metrics  # server.metrics.Metrics, or None: nothing counted
        # server.presence.Presence, told of each user's first and last connection here.
        self.presence = presence
        # app -> this node's connections that asked for presence events, and the channels
        # of those apps (subscribed while there is one).
        self._presence_conns: dict[str, set[Inbox]] = {}
        self._presence_channels: dict[bytes, str] = {}
        self.epoch = ""
        self.feeds: dict[tuple[str, str], RoomFeed] = {}
        self.local = Locals()
        self._channels: dict[bytes, str] = {}  # subscribed channel -> its app
        # (app, room) -> the dismissRoom that ended its feed: late copies of the old room's
        # messages (on an invitee's inbox, or the room's channel) must not follow it again.
        # Cleared when the room is followed again (created anew).
        self._ended: dict[tuple[str, str], Message] = {}
        self._background = Background(log, "fan-out task")
        self.subscriber = store.subscriber(
            self.on_published, self._on_reconnect, node, probe_interval
        )

    async def start(self) -> None:
        self.epoch = await self.store.epoch()
        self.subscriber.start()

    async def close(self) -> None:
        """Stop the feeds' tasks and wait for them, so none touches the store after it closes."""
        await self._background.close(timeout=3)
        await self.subscriber.close()

    # connections --------------------------------------------------------------------------

    async def welcome(
        self, app: str, user: str, conn: Inbox, resume: dict[str, int], plan: ResumePlan
    ) -> list[str]:
        """Start delivering the user's rooms to `conn` (held until `conn.open`), and read
        the `resume` replay into `plan`. Returns the user's room ids."""
        # Subscribe before reading the room list: a room added in between still arrives.
        await self.attach(app, user, conn)
        listed = await self.store.user_rooms(app, user)
        rooms = [room["id"] for room in listed]
        # A connection starts after each room's current seq: a node whose feed still lags
        # (pub/sub trails the log) must not hand it changes from before it connected.
        conn.start_after((room["id"], room["seq"]) for room in listed)
        await asyncio.gather(*(self.follow(app, room) for room in rooms))
        for room, last_seq in resume.items():
            try:
                current, is_member, raws = await self.store.replay(
                    app, room, user=user, after_seq=last_seq, limit=plan.limit
                )
            except RoomError as exc:
                if exc.code is not ErrorCode.ROOM_NOT_FOUND:
                    raise
                plan.missing(room)
                continue
            plan.room(room, last_seq, current, is_member, raws)
        conn.start_after(plan.floors.items())
        return rooms

    async def attach(self, app: str, user: str, conn: Inbox) -> None:
        """Start delivering to `conn` every message of the user's rooms (and its inbox)."""
        if self.local.claim(app, user):
            channel = user_inbox(app, user)
            self._channels[channel.encode()] = app
            if self.presence is not None:
                self.presence.connected(app, user)
            await self.subscriber.subscribe(channel)
        self.local.add(app, user, conn)

    def detach(self, app: str, user: str, conn: Inbox) -> None:
        if not self.local.discard(app, user, conn):
            return
        if self.presence is not None:
            self.presence.disconnected(app, user)
        self._release(user_inbox(app, user))
        for feed in [f for f in self.feeds.values() if f.app == app and user in f.members]:
            if not self.local.wanted(feed):
                self._forget(feed)

    # presence events ----------------------------------------------------------------------

    async def want_presence(self, app: str, conn: Inbox) -> None:
        """`conn` gets the presence events of the members of its rooms (and of the rooms it
        watches) from now on."""
        conn.presence = True
        conns = self._presence_conns.setdefault(app, set())
        conns.add(conn)
        if len(conns) == 1:
            channel = presence_channel(app)
            self._presence_channels[channel.encode()] = app
            await self.subscriber.subscribe(channel)

    def drop_presence(self, app: str, conn: Inbox) -> None:
        conns = self._presence_conns.get(app)
        if conns is None or conn not in conns:
            return
        conns.discard(conn)
        if not conns:
            del self._presence_conns[app]
            channel = presence_channel(app)
            self._presence_channels.pop(channel.encode(), None)
            self._background.spawn(self._unsubscribe_presence(channel))

    async def _unsubscribe_presence(self, channel: str) -> None:
        if channel.encode() not in self._presence_channels:
            await self.subscriber.unsubscribe(channel)

    def _on_presence(self, app: str, data: bytes) -> None:
        """A user of `app` came online or went offline: an event per room of theirs followed
        here, to the connections there that asked for presence events (but the user's own:
        whether the first of them hears of its own arrival would be a race)."""
        change = orjson.loads(data)
        user = change["user"]
        own = self.local.conns.get((app, user), ())  # nobody is told of themselves
        for feed in [f for f in self.feeds.values() if f.app == app and user in f.members]:
            frames: dict[Encoding, bytes] = {}
            targets = [c for c in feed.member_conns(self.local) if c.presence and c not in own]
            targets += [c for c in self.local.watchers.get((app, feed.room), ()) if c.presence]
            for conn in targets:
                framed = frames.get(conn.encoding)
                if framed is None:
                    framed = frames[conn.encoding] = presence_frame(
                        feed.room, change, conn.encoding
                    )
                conn.notify(framed)

    # watchers (room.watch) --------------------------------------------------------------------

    async def watch(
        self,
        app: str,
        room: str,
        conn: Inbox,
        read: Callable[[], Awaitable[dict[str, Any]]],
        after_seq: int | None,
        limit: int,
    ) -> dict[str, Any]:
        """Start writing every message of the room to `conn`; returns the room as `read`
        reads it. Live messages wait in `conn` until the caller, having written the reply,
        `release`s the room: then the replay from `after_seq` (or a `resync` when more than
        `limit` messages, or ones the log no longer has, are missing) and the live ones
        follow it, in order."""
        if room in conn.watching:
            return await read()  # watched already: the feed goes on as it was
        key = (app, room)
        conn.hold(room)
        self.local.watchers.setdefault(key, set()).add(conn)
        conn.watching.add(room)
        try:
            await self.follow(app, room)
            snapshot = await read()
            seq = snapshot["seq"]
            replay: list[bytes] = []
            if after_seq is not None and after_seq != seq:
                replay = await self._replay(app, room, after_seq, seq, limit, conn)
        except BaseException:
            self.unwatch(app, room, conn)
            raise
        conn.ready(room, seq, replay)
        return snapshot

    async def _replay(
        self, app: str, room: str, after_seq: int, seq: int, limit: int, conn: Inbox
    ) -> list[bytes]:
        """The frames of the room's messages after `after_seq` up to `seq`, or a `resync`."""
        encoding = conn.encoding
        if after_seq < seq <= after_seq + limit:
            raws = await self.store.log_range(app, room, after_seq, seq)
            messages = [Message(raw) for raw in raws]
            if len(messages) == seq - after_seq and messages[0].seq == after_seq + 1:
                return [message.frame(encoding) for message in messages]
        return [resync_frame(room, seq, encoding)]

    def unwatch(self, app: str, room: str, conn: Inbox) -> None:
        """`conn` no longer gets the room's messages (nothing waiting for it is written)."""
        conn.drop(room)
        conn.watching.discard(room)
        key = (app, room)
        watchers = self.local.watchers.get(key)
        if watchers is None or conn not in watchers:
            return
        watchers.discard(conn)
        if not watchers:
            del self.local.watchers[key]
            feed = self.feeds.get(key)
            if feed is not None and not feed.busy and not self.local.wanted(feed):
                self._forget(feed)

    def unwatch_all(self, app: str, conn: Inbox) -> None:
        """A closed connection's watches end."""
        for room in list(conn.watching):
            self.unwatch(app, room, conn)

    def _watch_ended(self, app: str, room: str) -> None:
        """The room is gone (its dismissRoom, or `resync 0`, was written): its watches end."""
        for conn in self.local.watchers.pop((app, room), ()):
            conn.watching.discard(room)

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
        feed = self.feeds[key] = RoomFeed(app, room, first)
        if self._ended:
            self._ended.pop(key, None)
        channel = room_channel(app, room)
        self._channels[channel.encode()] = app
        try:
            await self.subscriber.subscribe(channel)
            snapshot = await self.store.snapshot(app, room)
            if snapshot is None:  # no such room (any more): nothing to follow
                self._gone(feed, resync)
                return
            seq, members = snapshot
            log_after = feed.rewind_from(seq)
            replay: list[Message] = []
            if log_after is not None:
                replay = [
                    Message(raw) for raw in await self.store.log_range(app, room, log_after, seq)
                ]
            feed.begin(seq, members, replay)
            if resync:
                self.local.resync(app, room, feed.last_seq, {*resync, *feed.members})
        except Exception:
            log.exception("could not follow room %s/%s", app, room)
            self._forget(feed)
            raise
        self._drain(feed)

    def _gone(self, feed: RoomFeed, resync: Iterable[str] = ()) -> None:
        """The room no longer exists: dismissed, or Redis lost it. Its dismissRoom, if it
        reached the feed, goes out (with what was pending before it) and ends the feed;
        otherwise whoever was to hear of the room here is told it is gone (`resync 0`)."""
        told = {*resync, *(feed.first.targets if feed.first is not None else ())}
        if feed.gone():
            self._drain(feed)
            return
        self.local.resync(feed.app, feed.room, 0, told)
        self._watch_ended(feed.app, feed.room)
        self._forget(feed)

    def _end(self, feed: RoomFeed) -> None:
        """The feed delivered the room's dismissRoom: forget it, and drop that message's
        other copies (pub/sub brings one per channel it was published on)."""
        ended = self._ended
        assert feed.end is not None
        ended[(feed.app, feed.room)] = feed.end
        while len(ended) > ENDED_KEPT:
            del ended[next(iter(ended))]
        self._watch_ended(feed.app, feed.room)
        self._forget(feed)

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

    def on_published(self, channel: bytes, data: bytes) -> None:
        """A message on a room's channel or a user's inbox: into the room's feed (or a
        presence change, on an app's presence channel)."""
        app = self._channels.get(channel)
        if app is None:
            presence_app = self._presence_channels.get(channel)
            if presence_app is not None:
                self._on_presence(presence_app, data)
            return
        if self.metrics is not None:
            self.metrics.messages_received.inc()
        message = Message(data)
        key = (app, message.room)
        feed = self.feeds.get(key)
        if feed is None:
            end = self._ended.get(key) if self._ended else None
            if end is not None and not newer_room(end, message):
                return  # a late copy of a message of the room that ended here
            self._background.spawn(self.follow(app, message.room, first=message))
        elif feed.offer(message):
            self._drain(feed)

    def _offer(self, feed: RoomFeed, message: Message) -> None:
        if feed.offer(message):
            self._drain(feed)

    def _drain(self, feed: RoomFeed) -> None:
        before = feed.last_seq
        outcome = feed.drain(self.local)
        if self.metrics is not None and feed.last_seq > before:
            self.metrics.messages_delivered.inc(feed.last_seq - before)
        if outcome is _GAP:
            self._background.spawn(self._heal(feed, feed.gap_end()))
        elif outcome is _ENDED:
            self._end(feed)
        elif outcome is _EMPTY and not self.local.wanted(feed):
            self._forget(feed)

    async def _heal(self, feed: RoomFeed, upto: int | None = None) -> None:
        """Read the messages pub/sub skipped (after last_seq, before `upto`) from the log.

        If the log no longer holds them, the feed starts over from a fresh snapshot and its
        local members are told to `resync`."""
        if self.metrics is not None:
            self.metrics.heals.inc()
        try:
            raws = await self.store.log_range(
                feed.app, feed.room, feed.last_seq, None if upto is None else upto - 1
            )
        except Exception as exc:
            log.warning("room %s/%s: cannot read the log yet (%r)", feed.app, feed.room, exc)
            if self.metrics is not None and is_unavailable(exc):
                self.metrics.redis_errors.labels("unavailable").inc()
            await asyncio.sleep(HEAL_RETRY)
            feed.busy = False
            self._drain(feed)
            return
        if upto is None and not raws and not feed.pending and await self._vanished(feed):
            return
        if not feed.fill(Message(raw) for raw in raws):
            log.warning(
                "room %s/%s: log no longer holds seq %d; resyncing its members",
                feed.app,
                feed.room,
                feed.last_seq + 1,
            )
            self._restart(feed)
            return
        self._drain(feed)

    async def _vanished(self, feed: RoomFeed) -> bool:
        """Nothing new in the log after a pub/sub reconnect: unchanged, or dismissed (and
        perhaps created again) while pub/sub was away, its dismissRoom missed. True when the
        feed is done with: gone (`resync 0` to its local members) or started over."""
        try:
            snapshot = await self.store.snapshot(feed.app, feed.room)
        except Exception as exc:  # the heal goes on as if the room were there
            log.warning("room %s/%s: cannot read its snapshot yet (%r)", feed.app, feed.room, exc)
            return False
        if snapshot is not None and snapshot[0] >= feed.last_seq:
            return False
        if self.feeds.get((feed.app, feed.room)) is not feed:
            return True  # forgotten meanwhile
        if snapshot is None:
            members = self.local.connected(feed.app, feed.members)
            self.local.resync(feed.app, feed.room, 0, members)
            self._watch_ended(feed.app, feed.room)
            self._forget(feed)
        else:
            self._restart(feed)  # a new room of the same id, behind the feed
        return True

    def _restart(self, feed: RoomFeed) -> None:
        if self.metrics is not None:
            self.metrics.resyncs.inc()
        self._forget(feed)
        resync = self.local.connected(feed.app, feed.members)
        self._background.spawn(self.follow(feed.app, feed.room, resync=resync))

    def _on_reconnect(self) -> None:
        if self.metrics is not None:
            self.metrics.pubsub_reconnects.inc()
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
            elif feed.start_heal():
                self._background.spawn(self._heal(feed))
        if not lost:
            await self._follow_rooms_joined_meanwhile()

    async def _follow_rooms_joined_meanwhile(self) -> None:
        """A connected user added to (or invited into) a room while pub/sub was away missed
        the inbox message that would have made this node follow the room: follow it now, and
        tell that user's connections to re-read it (`resync`), since they missed its start."""
        for app, user in list(self.local.conns):
            try:
                rooms = await self.store.user_rooms(app, user)
            except Exception as exc:
                log.warning("cannot list the rooms of %s/%s yet (%r)", app, user, exc)
                continue
            for room in rooms:
                if (app, room["id"]) not in self.feeds:
                    self._background.spawn(self.follow(app, room["id"], resync=[user]))
