"""The delivery rules as plain calls: no event loop, no Redis. Each race that real traffic
produces only sometimes is written here as the sequence of calls it comes down to."""

from __future__ import annotations

import ast
import struct
from pathlib import Path
from typing import Any

import orjson
import pytest

from roomhub.protocol.codec import Encoding
from roomhub.server import delivery
from roomhub.server.delivery import (
    Drained,
    Inbox,
    Locals,
    Message,
    ResumePlan,
    RoomFeed,
    visible_to,
)
from roomhub.server.delivery.message import members_before, newer_room


def msg(seq: int, kind: str = "updateMember", targets: tuple[str, ...] = ("bob",)) -> Message:
    body = {"room": "r", "seq": seq, "type": kind, "targets": list(targets), "changes": {}}
    return Message(orjson.dumps(body))


def unframe(framed: bytes) -> Any:
    """The JSON payload of one unmasked server frame."""
    size = framed[1]
    start = 2
    if size == 126:
        (size,) = struct.unpack("!H", framed[2:4])
        start = 4
    assert len(framed) == start + size
    return orjson.loads(framed[start:])


class Client(Inbox):
    """An inbox that records what it is written: seqs of system messages, ("resync", room,
    seq) for a resync."""

    __slots__ = ("seen",)

    def __init__(self) -> None:
        super().__init__(Encoding.JSON)
        self.seen: list[Any] = []

    def write(self, framed: bytes) -> None:
        self.seen.append(event(framed))


def event(framed: bytes) -> Any:
    frame = unframe(framed)
    if frame["event"] == "resync":
        return ("resync", frame["room"], frame["seq"])
    return frame["message"]["seq"]


# the walk-back ------------------------------------------------------------------------------------


def test_a_user_who_left_sees_the_room_up_to_their_leaving_and_nothing_after() -> None:
    log = [
        msg(1, "createRoom", ("alice",)),
        msg(2, "addMember", ("bob",)),
        msg(3, "updateMember", ("alice",)),
        msg(4, "leaveRoom", ("bob",)),
        msg(5, "updateMember", ("alice",)),
    ]
    assert [m.seq for m in visible_to("bob", False, log)] == [2, 3, 4]
    assert [m.seq for m in visible_to("alice", True, log)] == [1, 2, 3, 4, 5]
    assert visible_to("carol", False, log) == []


def test_members_before_undoes_adds_and_removes_newest_first() -> None:
    log = [msg(4, "addMember", ("carol",)), msg(5, "removeMember", ("bob",))]
    assert members_before({"alice", "carol"}, log) == {"alice", "bob"}


# one connection: the opening buffer and floors ----------------------------------------------------


def test_events_wait_for_the_auth_reply_and_the_replay_comes_first() -> None:
    client = Client()
    client.deliver(msg(7))
    client.resync("other", 3)
    assert client.seen == []  # the auth reply is written here
    client.open([msg(5).frame(Encoding.JSON), msg(6).frame(Encoding.JSON)])
    assert client.seen == [5, 6, 7, ("resync", "other", 3)]
    client.deliver(msg(8))
    assert client.seen[-1] == 8


def test_live_messages_up_to_the_floor_are_dropped_once_then_all_pass() -> None:
    """The node's feed lags the log: it still delivers seqs the replay already wrote."""
    client = Client()
    client.start_after([("r", 6)])
    client.open()
    for seq in (5, 6, 7, 8):
        client.deliver(msg(seq))
    assert client.seen == [7, 8]
    assert client.floor == {}  # caught up: no look-up on later deliveries


def test_a_failed_opening_forgets_floors_and_waiting_events() -> None:
    client = Client()
    client.start_after([("r", 9)])
    client.deliver(msg(10))
    client.reset()
    client.open()
    client.deliver(msg(3))
    assert client.seen == [3]


def test_a_watched_room_waits_for_its_reply_then_the_replay_then_what_is_newer() -> None:
    client = Client()
    client.open()
    client.hold("r")
    for seq in (4, 5, 6):  # live while the watch reads the room (at seq 5) and its log
        client.deliver(msg(seq))
    client.resync("r", 5)
    client.deliver(Message(orjson.dumps({**orjson.loads(msg(9).raw), "room": "other"})))
    assert client.seen == [9]  # other rooms are not held
    client.ready("r", 5, [msg(3).frame(Encoding.JSON), msg(4).frame(Encoding.JSON)])
    client.release("r")  # the reply is written: the replay, then what waited after seq 5
    assert client.seen == [9, 3, 4, 6, ("resync", "r", 5)]
    client.deliver(msg(7))
    assert client.seen[-1] == 7 and client.floor == {} and client.held == {}


def test_a_failed_or_undone_watch_writes_nothing_of_what_waited() -> None:
    client = Client()
    client.open()
    client.hold("r")
    client.deliver(msg(2))
    client.release("r")  # never ready: the watch failed
    client.hold("s")
    client.ready("s", 1, [msg(1).frame(Encoding.JSON)])
    client.drop("s")  # unwatched before the reply went out
    client.release("s")
    assert client.seen == [] and client.floor == {} and client.held == {}
    client.deliver(msg(3))
    assert client.seen == [3]


# the replay plan of a resume ----------------------------------------------------------------------


def raws(*seqs: int) -> list[bytes]:
    return [msg(seq).raw for seq in seqs]


def replay_plan(max_messages: int = 100, max_total: int = 1000) -> ResumePlan:
    return ResumePlan("bob", Encoding.JSON, max_messages, max_total)


def test_a_member_gets_every_missed_message_in_order() -> None:
    plan = replay_plan()
    plan.room("r", 3, 6, True, raws(4, 5, 6))
    assert [event(f) for f in plan.frames] == [4, 5, 6]
    assert plan.floors == {"r": 6}


def test_a_non_member_gets_resync_0_whatever_the_room_seq() -> None:
    plan = replay_plan()
    plan.room("r", 3, 6, False, [])
    assert [event(f) for f in plan.frames] == [("resync", "r", 0)]
    assert plan.floors == {"r": 6}


def test_a_room_that_does_not_exist_gets_resync_0() -> None:
    plan = replay_plan()
    plan.missing("gone")
    assert [event(f) for f in plan.frames] == [("resync", "gone", 0)]
    assert plan.floors == {}


@pytest.mark.parametrize(
    ("last_seq", "current", "seqs"),
    [
        (9, 6, ()),  # ahead of the room (Redis came back empty)
        (1, 6, (4, 5, 6)),  # the log no longer reaches back to 2
        (1, 6, ()),  # more than the cap would follow: the store sent none
    ],
)
def test_what_cannot_be_replayed_whole_is_a_resync_at_the_current_seq(
    last_seq: int, current: int, seqs: tuple[int, ...]
) -> None:
    plan = replay_plan()
    plan.room("r", last_seq, current, True, raws(*seqs))
    assert [event(f) for f in plan.frames] == [("resync", "r", current)]


def test_the_caps_shrink_with_each_room_replayed() -> None:
    plan = replay_plan(max_messages=3, max_total=5)
    assert plan.limit == 3
    plan.room("a", 0, 3, True, raws(1, 2, 3))
    assert plan.limit == 2
    plan.room("b", 0, 2, True, raws(1, 2))
    assert plan.limit == 0
    plan.room("c", 4, 6, True, [])
    assert event(plan.frames[-1]) == ("resync", "c", 6)


# a room's feed ------------------------------------------------------------------------------------


def live_feed(members: set[str], seq: int = 0) -> RoomFeed:
    feed = RoomFeed("app", "r")
    feed.begin(seq, members)
    return feed


def connect(local: Locals, user: str) -> Client:
    client = Client()
    client.open()
    local.claim("app", user)
    local.add("app", user, client)
    return client


def test_messages_wait_for_the_snapshot_then_go_out_in_order() -> None:
    local = Locals()
    bob = connect(local, "bob")
    feed = RoomFeed("app", "r")
    assert feed.offer(msg(3)) is False  # busy: no snapshot yet
    assert feed.offer(msg(2)) is False
    feed.begin(1, {"bob"})
    assert feed.drain(local) is Drained.EMPTY
    assert bob.seen == [2, 3]
    assert feed.offer(msg(3)) is False  # a repeat is ignored
    assert bob.seen == [2, 3]


def test_a_gap_is_held_back_and_healed_from_the_log() -> None:
    local = Locals()
    bob = connect(local, "bob")
    feed = live_feed({"bob"})
    assert feed.offer(msg(1))
    feed.drain(local)
    assert feed.offer(msg(4))
    assert feed.drain(local) is Drained.GAP
    assert feed.busy and feed.gap_end() == 4
    assert feed.offer(msg(5)) is False  # held while the log is read
    assert feed.fill([msg(2), msg(3)])
    assert feed.drain(local) is Drained.EMPTY
    assert bob.seen == [1, 2, 3, 4, 5]


def test_a_gap_the_log_no_longer_holds_restarts_the_feed() -> None:
    local = Locals()
    feed = live_feed({"bob"}, seq=10)
    feed.offer(msg(14))
    assert feed.drain(local) is Drained.GAP
    assert feed.fill([msg(13)]) is False
    assert feed.busy  # until the I/O part replaces it with a fresh feed


def test_after_a_reconnect_one_heal_at_a_time() -> None:
    feed = live_feed({"bob"}, seq=3)
    assert feed.start_heal()
    assert not feed.start_heal()
    assert feed.fill([])
    assert feed.start_heal()


def test_stale_messages_left_from_before_the_snapshot_are_dropped() -> None:
    local = Locals()
    bob = connect(local, "bob")
    feed = RoomFeed("app", "r")
    feed.offer(msg(2))
    feed.begin(5, {"bob"})
    assert feed.drain(local) is Drained.HELD
    assert feed.pending == {} and not feed.busy
    assert bob.seen == []


def test_a_feed_woken_by_an_inbox_message_replays_it_from_the_log() -> None:
    """The snapshot is read after the newcomer's add (seq 4) and one more change (seq 5):
    rewound to 3 and replayed, so the newcomer sees the add and what followed."""
    local = Locals()
    carol = connect(local, "carol")
    feed = RoomFeed("app", "r", first=msg(4, "addMember", ("carol",)))
    assert feed.rewind_from(5) == 3
    log = [msg(4, "addMember", ("carol",)), msg(5, "updateMember", ("bob",))]
    feed.begin(5, {"bob", "carol"}, log)
    assert (feed.last_seq, feed.members) == (3, {"bob"})
    assert feed.drain(local) is Drained.EMPTY
    assert carol.seen == [4, 5]
    assert feed.members == {"bob", "carol"}


def test_targets_who_are_not_members_get_the_message_about_them_only() -> None:
    local = Locals()
    bob, dave = connect(local, "bob"), connect(local, "dave")
    feed = live_feed({"alice", "bob"})
    feed.offer(msg(1, "inviteMember", ("dave",)))
    feed.offer(msg(2, "removeMember", ("bob",)))
    feed.offer(msg(3, "updateMember", ("alice",)))
    feed.drain(local)
    assert dave.seen == [1]
    assert bob.seen == [1, 2]
    assert feed.members == {"alice"}


def test_a_connection_attached_while_the_room_is_live_gets_every_later_message() -> None:
    """A message fanned out while a newcomer's inbox SUBSCRIBE is in flight must not leave
    the room's cached recipients without the newcomer (the resilience bench caught that
    once: a client resuming on another node missed live messages). The I/O part claims the
    user, awaits the SUBSCRIBE, then adds the connection."""
    local = Locals()
    bob = connect(local, "bob")
    feed = live_feed({"alice", "bob"})
    alice = Client()
    alice.open()
    assert local.claim("app", "alice")  # alice's inbox SUBSCRIBE is on its way ...
    feed.offer(msg(1))
    feed.drain(local)  # ... when a message of her room goes out: the cache is built
    local.add("app", "alice", alice)  # the SUBSCRIBE is confirmed
    feed.offer(msg(2))
    feed.drain(local)
    assert bob.seen == [1, 2]
    assert alice.seen == [2]


def test_the_last_connection_of_a_user_releases_their_inbox() -> None:
    local = Locals()
    one, two = connect(local, "bob"), connect(local, "bob")
    assert not local.claim("app", "bob")
    assert not local.discard("app", "bob", one)
    assert local.has_any("app", {"bob"})
    assert local.discard("app", "bob", two)
    assert not local.has_any("app", {"bob"})
    assert not local.discard("app", "bob", two)


def test_resync_reaches_every_connection_of_the_users_named() -> None:
    local = Locals()
    one, two, carol = connect(local, "bob"), connect(local, "bob"), connect(local, "carol")
    local.resync("app", "r", 7, {"bob", "nobody"})
    assert one.seen == two.seen == [("resync", "r", 7)]
    assert carol.seen == []


# a dismissed room ------------------------------------------------------------------------------


def dismiss(seq: int, members: tuple[str, ...], invitees: tuple[str, ...] = ()) -> Message:
    body = {
        "room": "r",
        "seq": seq,
        "type": "dismissRoom",
        "targets": list(members),
        "changes": {"invitees": list(invitees)},
    }
    return Message(orjson.dumps(body))


def test_a_dismiss_reaches_members_and_invitees_then_ends_the_feed() -> None:
    local = Locals()
    bob, dave, mallory = connect(local, "bob"), connect(local, "dave"), connect(local, "mallory")
    feed = live_feed({"alice", "bob"})
    feed.offer(msg(1))
    feed.offer(dismiss(2, ("alice", "bob"), ("dave",)))
    assert feed.drain(local) is Drained.ENDED
    assert bob.seen == [1, 2]
    assert dave.seen == [2]  # an invitee: only the end of its invitation
    assert mallory.seen == []
    assert feed.members == set() and feed.pending == {}


def test_a_dismiss_is_a_removal_of_its_targets_in_the_walk_back() -> None:
    log = [msg(1, "createRoom", ("alice", "bob")), msg(2), dismiss(3, ("alice", "bob"))]
    assert [m.seq for m in visible_to("bob", False, log)] == [1, 2, 3]
    assert members_before(set(), log[1:]) == {"alice", "bob"}


def test_a_gap_before_a_dismiss_is_skipped_the_log_went_with_the_room() -> None:
    local = Locals()
    bob = connect(local, "bob")
    feed = live_feed({"bob"}, seq=3)
    feed.offer(msg(5))
    feed.offer(dismiss(7, ("bob",)))
    assert feed.drain(local) is Drained.GAP
    assert feed.fill([]) is True  # no restart: nothing can be read, and nothing need be
    assert feed.drain(local) is Drained.ENDED
    assert bob.seen == [5, 7]


def test_a_snapshot_of_a_dismissed_room_delivers_the_dismiss_that_woke_the_feed() -> None:
    local = Locals()
    dave = connect(local, "dave")
    feed = RoomFeed("app", "r", first=dismiss(9, ("alice",), ("dave",)))
    assert feed.gone() is True
    assert feed.drain(local) is Drained.ENDED
    assert dave.seen == [9]


def test_after_a_dismiss_late_copies_are_told_from_a_room_created_since() -> None:
    def at(seq: int, kind: str, time_ms: int) -> Message:
        body = {"room": "r", "seq": seq, "type": kind, "targets": ["bob"], "time_ms": time_ms}
        return Message(orjson.dumps({**body, "changes": {}}))

    end = Message(
        orjson.dumps(
            {"room": "r", "seq": 5, "type": "dismissRoom", "targets": ["bob"], "time_ms": 100}
        )
    )
    assert not newer_room(end, at(3, "inviteMember", 99))  # an old copy, late
    assert not newer_room(end, at(5, "dismissRoom", 100))  # the end's own other copy
    assert not newer_room(end, at(4, "updateMember", 100))  # the same millisecond, before it
    assert newer_room(end, at(1, "createRoom", 100))  # created again within the millisecond
    assert newer_room(end, at(2, "addMember", 101))


def test_a_snapshot_of_a_room_that_is_gone_without_its_dismiss_delivers_nothing() -> None:
    feed = RoomFeed("app", "r", first=msg(4, "addMember", ("carol",)))
    assert feed.gone() is False
    assert feed.pending == {} and feed.first is None


# the rules stay pure -----------------------------------------------------------------------------


@pytest.mark.parametrize("module", ["message", "inbox", "resume", "feed", "__init__"])
def test_the_rules_import_no_io(module: str) -> None:
    """The rules are plain code: no event loop, no Redis, no sockets (only fanout.py waits)."""
    source = Path(delivery.__file__).with_name(f"{module}.py").read_text()
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or ""))
    io = {"asyncio", "redis", "websockets", ".fanout", "..store", "..tasks"}
    assert not {name for name in imported if name.split(".")[0] in io or name in io}
