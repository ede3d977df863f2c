"""Every error of PROTOCOL.md §6 (but 100009, rate limits) as a client sees it.

Each failure is checked for its code, its `reason` string, a useful `message`, `field` for
100002, and that it changed nothing: the room (room.get) and its history are as before, the
next event a member gets is the next real change, and the connection still answers. The
precedence order of §6 is checked case by case. Connection-level rules of §1 (auth deadline,
op before auth, undecodable frames, frame size, garbage, handshake refusals) are here too.

Each test runs on every store of the `hub` fixture, and the encoding alternates with the
store, so every test runs with both JSON and msgpack.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Any

import msgpack
import pytest
import redis
import websockets

from ..spec import ERROR_REASONS
from ..support import APP, Open, RawClient, member, probe, token, update_args, ws_url

pytestmark = pytest.mark.timeout(30)

ENCODINGS = ("msgpack", "json")  # by the hub param's index: the other pairing than test_ops


# --- helpers ---------------------------------------------------------------------------------


@dataclass
class World:
    """Room r1: alice owner, bob member, gus guest; dave invited; erin known, not a member."""

    srv: RawClient
    alice: RawClient
    bob: RawClient
    gus: RawClient
    dave: RawClient
    erin: RawClient


@pytest.fixture
async def w(open_as: Open, srv: RawClient) -> World:
    alice, bob, gus, dave, erin = [
        await open_as(u) for u in ("alice", "bob", "gus", "dave", "erin")
    ]
    await alice.call("room.create", {"room": "r1", "members": ["bob", "gus"], "name": "One"})
    await srv.call("member.update", update_args("r1", "gus", {"role": "guest"}))
    await alice.call(
        "member.add", {"room": "r1", "invitees": ["dave"], "invitation_required": True}
    )
    await alice.events_until(3, "r1")
    return World(srv, alice, bob, gus, dave, erin)


async def state(srv: RawClient, room: str) -> Any:
    """What a reader sees of a room: the Room and its history (or the error if it is gone)."""
    got = await srv.request("room.get", {"room": room})
    if not got["ok"]:
        return got["error"]["code"]
    page = await srv.call("room.history", {"room": room, "limit": 200})
    return got["result"], page


async def alive(client: RawClient) -> None:
    """The connection still answers requests."""
    reply = await client.request("room.get", {"room": "__alive__"})
    assert reply["ok"] is False and reply["error"]["code"] == 100004, reply


async def barrier(srv: RawClient, watcher: RawClient) -> None:
    """A real change; it must be the watcher's very next event of r1 (a failed op emitted
    nothing)."""
    await probe(srv, "r1", "alice", watcher, skip_other_rooms=True)


def check_error(
    err: dict[str, Any], code: int, field: str | None = None, mentions: tuple[str, ...] = ()
) -> None:
    assert err["code"] == code, err
    assert err["reason"] == ERROR_REASONS[code], err
    assert isinstance(err["message"], str) and len(err["message"]) >= 8, err
    for word in mentions:
        assert word.lower() in err["message"].lower(), (word, err)
    if code == 100002:
        assert err.get("field") == field, err
    assert "retry_after_ms" not in err


async def expect(
    w: World,
    actor: RawClient,
    op: str,
    args: Any,
    code: int,
    field: str | None = None,
    *,
    mentions: tuple[str, ...] = (),
    rooms: tuple[str, ...] = (),
) -> dict[str, Any]:
    """`op` fails with `code`; r1 (and `rooms`) are unchanged, nothing was emitted, and the
    connection still works."""
    watched = ("r1", *rooms)
    before = [await state(w.srv, room) for room in watched]
    err = await actor.fail(op, args)
    check_error(err, code, field, mentions)
    assert [await state(w.srv, room) for room in watched] == before, f"{op} {args} changed state"
    await barrier(w.srv, w.alice)
    await alive(actor)
    return err


def frames_for(enc: str) -> dict[str, bytes | str]:
    """Frames that do not decode to a map, in the connection's encoding."""
    if enc == "json":
        return {
            "not json": '{"id": 1, "op": ',
            "list": "[1, 2]",
            "string": '"room.get"',
            "number": "42",
            "null": "null",
            "binary frame": msgpack.packb({"id": 1, "op": "x"}),
        }
    return {
        "not msgpack": b"\xc1\x00",
        "truncated": b"\x82\xa2id",
        "list": msgpack.packb([1, 2]),
        "string": msgpack.packb("room.get"),
        "number": msgpack.packb(42),
        "nil": msgpack.packb(None),
        "text frame": json.dumps({"id": 1, "op": "room.list"}),
    }


async def expect_closed(client: RawClient, code: int, timeout: float = 5) -> None:
    got, _ = await client.closed(timeout)
    assert got == code, f"expected close {code}, got {got}"


# --- handshake -------------------------------------------------------------------------------


async def handshake_status(hub: Any, path: str = "/ws", protocols: str | None = None) -> int:
    """Send a WebSocket upgrade request over plain TCP; the HTTP status of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
    try:
        request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{hub.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        )
        if protocols is not None:
            request += f"Sec-WebSocket-Protocol: {protocols}\r\n"
        writer.write((request + "\r\n").encode())
        status_line = await asyncio.wait_for(reader.readline(), 5)
        return int(status_line.split()[1])
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def test_unknown_subprotocol_only_offer_is_refused_with_http_400(hub: Any) -> None:
    assert await handshake_status(hub, protocols="roomhub.v2.msgpack, chat") == 400
    assert await handshake_status(hub, protocols="roomhub.v1.JSON") == 400
    # one of ours among unknown ones is accepted, and so is no offer at all
    assert await handshake_status(hub, protocols="chat, roomhub.v1.json") == 101
    assert await handshake_status(hub) == 101
    async with websockets.connect(ws_url(hub), subprotocols=["chat", "roomhub.v1.json"]) as ws:
        assert ws.subprotocol == "roomhub.v1.json"


async def test_wrong_path_is_404(hub: Any) -> None:
    for path in ("/", "/nope", "/ws/extra", "/WS"):
        assert await handshake_status(hub, path, "roomhub.v1.json") == 404, path
    assert await handshake_status(hub, "/ws?client=x", "roomhub.v1.json") == 101


# --- auth and the first frame -----------------------------------------------------------------


@pytest.mark.parametrize("enc", ["json", "msgpack"])
async def test_auth_deadline_closes_4401(start_hub: Any, enc: str) -> None:
    hub = await start_hub(auth_timeout=0.5)

    async def silent() -> None:
        async with RawClient.connect(ws_url(hub), enc) as client:
            await expect_closed(client, 4401, timeout=5)

    async def noisy() -> None:
        # undecodable frames are answered but do not extend the deadline
        async with RawClient.connect(ws_url(hub), enc) as client:
            await client.send_raw(next(iter(frames_for(enc).values())))
            check_error((await client.next_unmatched())["error"], 100013)
            await expect_closed(client, 4401, timeout=5)

    async def prompt() -> None:
        # a client that authenticates in time stays
        async with RawClient.connect(ws_url(hub), enc) as client:
            await client.auth("alice")
            await asyncio.sleep(0.7)
            await alive(client)

    await asyncio.gather(silent(), noisy(), prompt())


async def test_op_before_auth_is_100010_then_close_4401(connect: Any, enc: str) -> None:
    for op, args in (
        ("room.list", {}),
        ("room.create", {"room": "r1"}),
        ("room.create", {"name": 5}),  # 100010 outranks 100002
        ("no.such.op", {}),  # 100010 outranks 100011
    ):
        async with connect(enc) as client:
            err = await client.fail(op, args)
            check_error(err, 100010)
            await expect_closed(client, 4401)


async def test_malformed_frame_before_auth_is_100013_and_keeps_the_connection(
    connect: Any, enc: str
) -> None:
    async with connect(enc) as client:
        for frame in frames_for(enc).values():
            await client.send_raw(frame)
            reply = await client.next_unmatched()
            assert reply["re"] is None and reply["ok"] is False
            check_error(reply["error"], 100013)
        # a map without op outranks "not authenticated" (100013 before 100010)
        await client.send_raw(client.encode({"id": 9, "args": {}}))
        reply = await client.next_unmatched()
        assert reply["re"] == 9, reply
        check_error(reply["error"], 100013)
        welcome = await client.auth("alice")
        assert welcome["user"] == "alice"


def _auth_cases() -> list[Any]:
    good = token("alice")
    return [
        pytest.param({"key": "no-such-app", "token": good}, id="unknown key"),
        pytest.param(
            {
                "key": APP,
                "token": token("alice", secret="another-secret-that-is-long-enough-for-hs256"),
            },
            id="wrong secret",
        ),
        pytest.param({"key": APP, "token": token("alice", ttl=-60)}, id="expired"),
        pytest.param({"key": APP, "token": "not.a.jwt"}, id="garbage token"),
        pytest.param({"key": APP, "token": token("bad user!")}, id="bad sub"),
        pytest.param({"key": APP}, id="missing token"),
        pytest.param({"token": good}, id="missing key"),
        pytest.param({"key": APP, "token": 12345}, id="token not a string"),
        pytest.param(None, id="no args"),
    ]


async def test_failed_auth_is_100010_then_close_4401(connect: Any, enc: str) -> None:
    for case in _auth_cases():
        async with connect(enc) as client:
            err = await client.fail("auth", case.values[0])
            assert err["code"] == 100010, (case.id, err)
            check_error(err, 100010)
            await expect_closed(client, 4401)


@pytest.mark.parametrize("extra, field", [({"tokn": "x"}, "tokn"), ({"resume": "all"}, "resume")])
async def test_auth_argument_errors_with_a_valid_token_are_100002(
    connect: Any, enc: str, extra: dict[str, Any], field: str
) -> None:
    async with connect(enc) as client:
        err = await client.fail("auth", {"key": APP, "token": token("alice"), **extra})
        check_error(err, 100002, field)
        # nothing was authenticated by it; a correct auth still works
        assert (await client.auth("alice"))["user"] == "alice"


async def test_second_auth_is_100002_and_changes_nothing(w: World, connect: Any, enc: str) -> None:
    err = await expect(w, w.bob, "auth", {"key": APP, "token": token("erin")}, 100002, None)
    assert "auth" in err["message"].lower()
    # still bob
    assert [r["id"] for r in (await w.bob.call("room.list"))["rooms"]] == ["r1"]


# --- frames -------------------------------------------------------------------------------------


async def test_undecodable_or_non_map_frames_are_100013_with_re_null(w: World, enc: str) -> None:
    for name, frame in frames_for(enc).items():
        await w.bob.send_raw(frame)
        reply = await w.bob.next_unmatched()
        assert reply["re"] is None and reply["ok"] is False, (name, reply)
        check_error(reply["error"], 100013)
        await alive(w.bob)
    await barrier(w.srv, w.alice)


async def test_bad_id_or_op_is_100013(w: World) -> None:
    for frame, re in (
        ({"id": 5, "args": {"room": "r1"}}, 5),  # no op
        ({"id": 6, "op": None}, 6),  # op null
        ({"id": 7, "op": 3}, 7),  # op not a string
        ({"id": True, "op": "room.list"}, None),  # id a bool
        ({"id": 1.5, "op": "room.list"}, None),  # id a float
        ({"id": [1], "op": "room.list"}, None),  # id a list
        ({"op": ["room.list"]}, None),
    ):
        await w.bob.send_raw(w.bob.encode(frame))
        reply = await w.bob.next_unmatched()
        assert reply["ok"] is False and reply["re"] == re, (frame, reply)
        check_error(reply["error"], 100013)
        await alive(w.bob)
    await barrier(w.srv, w.alice)


async def test_frame_over_64_kib_closes_1009(w: World) -> None:
    # just under the limit: an ordinary (argument) error
    big_name = "n" * (60 * 1024)
    err = await w.alice.fail("room.create", {"room": "big", "name": big_name})
    check_error(err, 100002, "name")
    # over it: the connection is closed with 1009, and nothing happened
    frame = w.bob.encode({"id": 1, "op": "room.create", "args": {"name": "n" * (65 * 1024)}})
    await w.bob.send_raw(frame)
    await expect_closed(w.bob, 1009)
    assert [r["id"] for r in (await w.alice.call("room.list"))["rooms"]] == ["r1"]
    await barrier(w.srv, w.alice)


async def test_frame_over_64_kib_before_auth_closes_1009(connect: Any, enc: str) -> None:
    async with connect(enc) as client:
        await client.send_raw(
            client.encode({"id": 1, "op": "auth", "args": {"key": APP, "token": "t" * (65 * 1024)}})
        )
        await expect_closed(client, 1009)


async def test_16_undecodable_frames_in_a_row_close_4400(w: World, enc: str) -> None:
    garbage = next(iter(frames_for(enc).values()))
    for _ in range(15):
        await w.bob.send_raw(garbage)
    for _ in range(15):
        check_error((await w.bob.next_unmatched())["error"], 100013)
    await alive(w.bob)  # a good frame resets the count
    for _ in range(15):
        await w.bob.send_raw(garbage)
    await alive(w.bob)
    for _ in range(16):
        await w.bob.send_raw(garbage)
    await expect_closed(w.bob, 4400)


# --- ops and arguments -------------------------------------------------------------------------


async def test_unknown_op_is_100011(w: World) -> None:
    for op in ("room.delete", "", "ROOM.GET", "room.get ", "member.kick"):
        await expect(w, w.bob, op, {"room": "r1"}, 100011, mentions=(op.strip() or "op",))
        # 100011 outranks 100002
        await expect(w, w.bob, op, ["not", "a", "map"], 100011)


async def test_args_must_be_a_map(w: World) -> None:
    for args in (["r1"], "r1", 5, True):
        await expect(w, w.bob, "room.get", args, 100002, "args")
        await expect(w, w.alice, "member.add", args, 100002, "args")
    # args null or absent: the same as {}
    assert (await w.bob.call("room.list", None)) == await w.bob.call("room.list", {})
    await w.bob.send_raw(w.bob.encode({"id": "null-args", "op": "room.list", "args": None}))
    reply = await w.bob.next_unmatched()
    assert reply["re"] == "null-args" and reply["ok"] is True, reply


UNKNOWN_ARG_CASES = [
    ("room.create", {"room": "new"}),
    ("room.get", {"room": "r1"}),
    ("room.list", {}),
    ("member.add", {"room": "r1", "invitees": ["erin"]}),
    ("invitation.accept", {"room": "r1"}),
    ("invitation.decline", {"room": "r1"}),
    ("member.update", update_args("r1", "bob", {"nickname": "x"})),
    ("member.remove", {"room": "r1", "user": "bob"}),
    ("room.leave", {"room": "r1"}),
    ("room.history", {"room": "r1"}),
]


async def test_an_unknown_argument_is_named_in_field(w: World) -> None:
    for op, args in UNKNOWN_ARG_CASES:
        actor = w.dave if op.startswith("invitation") else w.alice if op != "room.leave" else w.bob
        await expect(
            w, actor, op, {**args, "bogus": 1}, 100002, "bogus", mentions=("bogus",), rooms=("new",)
        )
    await expect(w, w.srv, "user.upsert", {"id": "zed", "nick": "Z"}, 100002, "nick")
    # a typo in an optional argument never passes silently
    await expect(
        w,
        w.alice,
        "member.add",
        {"room": "r1", "invitees": ["erin"], "invitation_requried": True},
        100002,
        "invitation_requried",
    )
    await expect(w, w.alice, "room.history", {"room": "r1", "afterSeq": 1}, 100002, "afterSeq")
    # an argument of another op is unknown here
    await expect(w, w.bob, "room.get", {"room": "r1", "reply": "ack"}, 100002, "reply")
    await expect(w, w.bob, "room.list", {"room": "r1"}, 100002, "room")


async def test_a_misspelt_required_argument(w: World) -> None:
    err = await w.alice.fail("member.add", {"room": "r1", "invitee": ["erin"]})
    check_error(err, 100002, err.get("field"))
    assert err["field"] in ("invitee", "invitees")


MISSING_CASES = [
    ("room.get", {}, "room"),
    ("room.history", {}, "room"),
    ("member.add", {"room": "r1"}, "invitees"),
    ("member.add", {"invitees": ["erin"]}, "room"),
    ("member.update", {"room": "r1", "user": "bob"}, "properties"),
    ("member.update", {"room": "r1", "properties": {"nickname": "x"}}, "user"),
    ("member.remove", {"room": "r1"}, "user"),
    ("room.leave", {}, "room"),
    ("invitation.accept", {}, "room"),
]


async def test_missing_required_arguments(w: World) -> None:
    for op, args, field in MISSING_CASES:
        await expect(w, w.alice, op, args, 100002, field, mentions=(field,))
    await expect(w, w.srv, "user.upsert", {"nickname": "x"}, 100002, "id")
    await expect(w, w.alice, "room.get", None, 100002, "room")  # args omitted altogether


WRONG_TYPE_CASES = [
    ("room.get", {"room": 5}, "room"),
    ("room.get", {"room": None}, "room"),
    ("room.create", {"room": "new", "name": 5}, "name"),
    ("room.create", {"room": "new", "type": "channel"}, "type"),
    ("room.create", {"room": "new", "members": "bob"}, "members"),
    ("room.create", {"room": "new", "members": ["bob", 7]}, "members.1"),
    ("room.create", {"room": "new", "reply": "full"}, "reply"),
    ("member.add", {"room": "r1", "invitees": "erin"}, "invitees"),
    ("member.add", {"room": "r1", "invitees": ["erin", 5]}, "invitees.1"),
    (
        "member.add",
        {"room": "r1", "invitees": ["erin"], "invitation_required": "yes"},
        "invitation_required",
    ),
    ("member.add", {"room": "r1", "invitees": ["erin"], "system_message": 1}, "system_message"),
    (
        "member.update",
        {"room": "r1", "user": "bob", "properties": [["nickname", "x"]]},
        "properties",
    ),
    (
        "member.update",
        update_args("r1", "bob", {"level": "3"}),
        "properties.level",
    ),
    (
        "member.update",
        update_args("r1", "bob", {"level": True}),
        "properties.level",
    ),
    (
        "member.update",
        update_args("r1", "bob", {"level": 2.5}),
        "properties.level",
    ),
    (
        "member.update",
        update_args("r1", "bob", {"nickname": 5}),
        "properties.nickname",
    ),
    (
        "member.update",
        update_args("r1", "bob", {"role": "superuser"}),
        "properties.role",
    ),
    (
        "member.update",
        update_args("r1", "bob", {"nickname": "x"}, notification_extension=5),
        "notification_extension",
    ),
    ("member.update", {"room": "r1", "user": 5, "properties": {"nickname": "x"}}, "user"),
    ("room.history", {"room": "r1", "after_seq": "1"}, "after_seq"),
    ("room.history", {"room": "r1", "limit": 1.5}, "limit"),
    ("room.history", {"room": "r1", "limit": False}, "limit"),
]


async def test_wrong_argument_types(w: World) -> None:
    for op, args, field in WRONG_TYPE_CASES:
        await expect(w, w.alice, op, args, 100002, field, rooms=("new",))


def _limit_cases() -> list[tuple[str, dict[str, Any], str]]:
    def update(props: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return update_args("r1", "bob", props, **extra)

    return [
        ("room.get", {"room": "r" * 65}, "room"),
        ("room.get", {"room": ""}, "room"),
        ("room.get", {"room": "has space"}, "room"),
        ("room.get", {"room": "slash/no"}, "room"),
        ("room.create", {"room": "new", "name": "€" * 43}, "name"),  # 43 chars, 129 bytes
        ("room.create", {"room": "new", "members": ["ok", "not ok"]}, "members.1"),
        ("member.add", {"room": "r1", "invitees": []}, "invitees"),
        ("member.add", {"room": "r1", "invitees": [f"u{n}" for n in range(101)]}, "invitees"),
        ("member.update", update({"nickname": "é" * 16 + "x"}), "properties.nickname"),  # 33 B
        ("member.update", update({"avatar": "a" * 1025}), "properties.avatar"),
        ("member.update", update({"custom_info": "ü" * 30 + "x"}), "properties.custom_info"),
        ("member.update", update({"extension": "e" * 2049}), "properties.extension"),
        ("member.update", update({"level": -1}), "properties.level"),
        ("member.update", update({"level": 2**31}), "properties.level"),
        ("member.update", update({"nickname": None}), "properties.nickname"),
        ("member.update", update({"role": None}), "properties.role"),
        ("member.update", update({"id": "x"}), "properties.id"),
        ("member.update", update({"props": {}}), "properties.props"),
        ("member.update", update({"joined_ms": 1}), "properties.joined_ms"),
        ("member.update", update({"1st": 1}), "properties.1st"),
        ("member.update", update({"has space": 1}), "properties.has space"),
        ("member.update", update({"p" * 65: 1}), "properties." + "p" * 65),
        ("member.update", update({"blob": "x" * 1030}), "properties.blob"),  # > 1024 B encoded
        ("member.update", update({f"p{n}": n for n in range(33)}), "properties"),
        ("member.update", update({}), "properties"),
        (
            "member.update",
            update({"nickname": "x"}, notification_extension="n" * 2049),
            "notification_extension",
        ),
        ("room.history", {"room": "r1", "limit": 0}, "limit"),
        ("room.history", {"room": "r1", "limit": 201}, "limit"),
        ("room.history", {"room": "r1", "after_seq": -1}, "after_seq"),
    ]


async def test_size_and_format_limits(w: World) -> None:
    for op, args, field in _limit_cases():
        await expect(w, w.alice, op, args, 100002, field, rooms=("new",))
    await expect(w, w.srv, "user.upsert", {"id": "zed", "nickname": "é" * 17}, 100002, "nickname")
    await expect(w, w.srv, "user.upsert", {"id": "zed", "avatar": "a" * 1025}, 100002, "avatar")
    await expect(w, w.srv, "user.upsert", {"id": "bad id"}, 100002, "id")


async def test_limits_are_inclusive_and_counted_in_bytes(w: World) -> None:
    room = await w.alice.call("room.create", {"room": "edge", "name": "€" * 42 + "ab"})  # 128 B
    assert len(room["name"].encode()) == 128
    room = await w.alice.call(
        "member.update",
        {
            "room": "r1",
            "user": "bob",
            "properties": {
                "nickname": "é" * 16,
                "custom_info": "ü" * 30,
                "extension": "e" * 2048,
                "avatar": "a" * 1024,
                "blob": "x" * 1000,
                "p" * 64: 1,
            },
            "notification_extension": "€" * 2048,
        },
    )  # 2048 characters, 6144 bytes
    bob = member(room, "bob")
    assert bob["nickname"] == "é" * 16 and bob["props"]["blob"] == "x" * 1000
    history = await w.alice.call("room.history", {"room": "r1", "after_seq": room["seq"] - 1})
    assert history["messages"][0]["extension"] == "€" * 2048


async def test_operator_rules(w: World) -> None:
    # operator is only for server tokens
    await expect(w, w.bob, "room.get", {"room": "r1", "operator": "alice"}, 100002, "operator")
    # (and with a server token it must be a valid id)
    for actor, operator in ((w.bob, "alice"), (w.srv, "not valid")):
        args = {"room": "r1", "invitees": ["erin"], "operator": operator}
        await expect(w, actor, "member.add", args, 100002, "operator")
    # ops about a user need the operator with a server token
    for op in ("invitation.accept", "invitation.decline", "room.leave"):
        await expect(w, w.srv, op, {"room": "r1"}, 100002, "operator", mentions=("operator",))
    await expect(w, w.srv, "room.list", {}, 100002, "operator")
    # room.create: owner is required for server tokens and invalid for users
    await expect(w, w.srv, "room.create", {"room": "new"}, 100002, "owner", rooms=("new",))
    await expect(
        w,
        w.alice,
        "room.create",
        {"room": "new", "owner": "alice"},
        100002,
        "owner",
        rooms=("new",),
    )


# --- 100001 ---------------------------------------------------------------------------------------


async def test_internal_error_is_100001_and_the_connection_survives(
    start_hub: Any, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    hub = await start_hub(redis=redis_url)
    async with RawClient.connect(ws_url(hub), "json") as alice:
        await alice.auth("alice")
        await alice.call("room.create", {"room": "broken"})
        await alice.call("room.create", {"room": "fine"})
        # Break the room's data behind the server's back: its keys become plain strings.
        store = redis.Redis.from_url(redis_url)
        try:
            keys = [
                k
                for k in store.scan_iter(match="*broken*")
                if b"inbox" not in k and b"rooms" not in k
            ]
            assert keys
            for key in keys:
                store.delete(key)
                store.set(key, "garbage")
        finally:
            store.close()
        with caplog.at_level(logging.ERROR, logger="roomhub.hub"):
            err = await alice.fail("room.get", {"room": "broken"})
            check_error(err, 100001)
            # A script error is a bug, not an outage: no "safe to retry", the script is named.
            assert err["message"] == "internal error"
            err = await alice.fail("member.update", update_args("broken", "alice", {"x": 1}))
            check_error(err, 100001)
        logged = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert any("room_read" in line for line in logged), logged
        assert any("member_update" in line for line in logged), logged
        assert (await alice.call("room.get", {"room": "fine"}))["seq"] == 1
        await alive(alice)


# --- 100003 / 100004 ----------------------------------------------------------------------------


async def test_room_exists_is_100003(w: World) -> None:
    await expect(
        w, w.bob, "room.create", {"room": "r1", "name": "Mine now"}, 100003, mentions=("r1",)
    )
    await expect(w, w.srv, "room.create", {"room": "r1", "owner": "erin"}, 100003)
    await expect(
        w, w.erin, "room.create", {"room": "r1", "members": ["erin"], "type": "direct"}, 100003
    )


ROOM_OPS = [
    ("room.get", {}),
    ("room.history", {}),
    ("member.add", {"invitees": ["erin"]}),
    ("member.update", {"user": "bob", "properties": {"nickname": "x"}}),
    ("member.remove", {"user": "bob"}),
    ("invitation.accept", {}),
    ("invitation.decline", {}),
    ("room.leave", {}),
]


async def test_room_not_found_is_100004(w: World) -> None:
    for op, args in ROOM_OPS:
        for actor in (w.alice, w.erin):
            await expect(
                w, actor, op, {"room": "nope", **args}, 100004, mentions=("nope",), rooms=("nope",)
            )
        server_args = {"room": "nope", **args}
        if op in ("invitation.accept", "invitation.decline", "room.leave"):
            server_args["operator"] = "alice"
        await expect(w, w.srv, op, server_args, 100004, rooms=("nope",))


# --- 100005 ----------------------------------------------------------------------------------


async def test_not_a_member_is_100005(w: World) -> None:
    e, d, a = w.erin, w.dave, w.alice
    # the operator is not a member
    await expect(w, e, "room.get", {"room": "r1"}, 100005)
    await expect(w, e, "room.history", {"room": "r1"}, 100005)
    await expect(w, e, "member.add", {"room": "r1", "invitees": ["erin"]}, 100005)
    await expect(w, e, "member.update", update_args("r1", "bob", {"nickname": "x"}), 100005)
    await expect(w, e, "member.remove", {"room": "r1", "user": "gus"}, 100005)
    await expect(w, e, "room.leave", {"room": "r1"}, 100005)
    # an invitee may read the room but not its history, nor act in it
    await expect(w, d, "room.history", {"room": "r1"}, 100005)
    await expect(w, d, "member.add", {"room": "r1", "invitees": ["erin"]}, 100005)
    await expect(w, d, "room.leave", {"room": "r1"}, 100005)
    await expect(w, d, "member.update", update_args("r1", "dave", {"nickname": "x"}), 100005)
    # the target is a known user who is not a member (an invitee is not a member either)
    for target in ("erin", "dave"):
        await expect(w, a, "member.update", update_args("r1", target, {"nickname": "x"}), 100005)
        await expect(w, a, "member.remove", {"room": "r1", "user": target}, 100005)
    # server calls with an operator who is not a member
    await expect(w, w.srv, "room.get", {"room": "r1", "operator": "erin"}, 100005)
    await expect(
        w, w.srv, "member.remove", {"room": "r1", "user": "gus", "operator": "erin"}, 100005
    )


# --- 100006 ----------------------------------------------------------------------------------


async def test_forbidden_is_100006(w: World) -> None:
    await expect(w, w.gus, "member.add", {"room": "r1", "invitees": ["erin"]}, 100006)
    await expect(
        w,
        w.gus,
        "member.add",
        {"room": "r1", "invitees": ["erin"], "invitation_required": True},
        100006,
    )
    await expect(w, w.bob, "member.remove", {"room": "r1", "user": "gus"}, 100006)
    await expect(w, w.bob, "member.update", update_args("r1", "bob", {"level": 5}), 100006)
    await expect(w, w.bob, "member.update", update_args("r1", "bob", {"role": "admin"}), 100006)
    await expect(w, w.alice, "room.leave", {"room": "r1"}, 100006)
    await expect(w, w.alice, "member.remove", {"room": "r1", "user": "alice"}, 100006)
    await expect(w, w.bob, "user.upsert", {"id": "bob", "nickname": "B"}, 100006)
    # nobody makes an owner or changes the owner's role, not even the server
    await expect(w, w.srv, "member.update", update_args("r1", "bob", {"role": "owner"}), 100006)
    await expect(w, w.srv, "member.update", update_args("r1", "alice", {"role": "admin"}), 100006)
    await expect(w, w.srv, "member.remove", {"room": "r1", "user": "alice"}, 100006)


async def test_a_forbidden_property_fails_the_whole_update(w: World) -> None:
    # bob may set his own nickname but not his level: nothing is applied
    await expect(
        w, w.bob, "member.update", update_args("r1", "bob", {"nickname": "B", "level": 1}), 100006
    )


# --- 100007 ----------------------------------------------------------------------------------


async def test_user_not_found_is_100007(w: World) -> None:
    await expect(
        w, w.alice, "member.add", {"room": "r1", "invitees": ["ghost"]}, 100007, mentions=("ghost",)
    )
    # one unknown invitee fails the whole call: erin is not added either
    await expect(w, w.alice, "member.add", {"room": "r1", "invitees": ["erin", "ghost"]}, 100007)
    await expect(
        w,
        w.alice,
        "member.add",
        {"room": "r1", "invitees": ["ghost"], "invitation_required": True},
        100007,
    )
    await expect(w, w.alice, "member.update", update_args("r1", "ghost", {"nickname": "x"}), 100007)
    await expect(w, w.alice, "member.remove", {"room": "r1", "user": "ghost"}, 100007)
    await expect(
        w,
        w.alice,
        "room.create",
        {"room": "new", "members": ["bob", "ghost"]},
        100007,
        rooms=("new",),
    )
    await expect(w, w.srv, "room.create", {"room": "new", "owner": "ghost"}, 100007, rooms=("new",))
    assert [r["id"] for r in (await w.bob.call("room.list"))["rooms"]] == ["r1"]


# --- 100008 ----------------------------------------------------------------------------------


async def test_no_invitation_is_100008(w: World) -> None:
    for op in ("invitation.accept", "invitation.decline"):
        await expect(w, w.erin, op, {"room": "r1"}, 100008)
        await expect(w, w.bob, op, {"room": "r1"}, 100008)  # already a member
        await expect(w, w.srv, op, {"room": "r1", "operator": "erin"}, 100008)
    # after declining, the invitation is gone
    await w.dave.call("invitation.decline", {"room": "r1"})
    await w.alice.event()
    await expect(w, w.dave, "invitation.accept", {"room": "r1"}, 100008)


# --- 100012 ----------------------------------------------------------------------------------


async def test_room_full_is_100012(w: World) -> None:
    await w.alice.call("room.create", {"room": "dm", "type": "direct", "members": ["bob"]})
    for args in (
        {"invitees": ["erin"]},
        {"invitees": ["erin"], "invitation_required": True},
        {"invitees": ["bob", "erin"]},
    ):
        await expect(w, w.alice, "member.add", {"room": "dm", **args}, 100012, rooms=("dm",))
    await expect(
        w, w.srv, "member.add", {"room": "dm", "invitees": ["erin"]}, 100012, rooms=("dm",)
    )
    await expect(
        w,
        w.alice,
        "room.create",
        {"room": "dm3", "type": "direct", "members": ["bob", "gus"]},
        100012,
        rooms=("dm3",),
    )


async def test_member_cap_is_100012(start_hub: Any) -> None:
    hub = await start_hub(max_room_members=3)
    async with contextlib.AsyncExitStack() as stack:
        clients = {}
        for user in ("alice", "bob", "carol", "dave", "erin"):
            clients[user] = await stack.enter_async_context(RawClient.connect(ws_url(hub), "json"))
            await clients[user].auth(user)
        alice = clients["alice"]
        await alice.call("room.create", {"room": "r", "members": ["bob"]})
        await alice.call(
            "member.add", {"room": "r", "invitees": ["carol", "dave"], "invitation_required": True}
        )
        before = await alice.call("room.get", {"room": "r"})
        check_error(
            await alice.fail("member.add", {"room": "r", "invitees": ["erin", "carol"]}), 100012
        )
        check_error(
            await alice.fail("room.create", {"room": "s", "members": ["bob", "carol", "dave"]}),
            100012,
        )
        await clients["carol"].call("invitation.accept", {"room": "r"})
        full = await alice.call("room.get", {"room": "r"})
        assert full["seq"] == before["seq"] + 1 and len(full["members"]) == 3
        check_error(await clients["dave"].fail("invitation.accept", {"room": "r"}), 100012)
        assert await alice.call("room.get", {"room": "r"}) == full
        assert (await alice.fail("room.get", {"room": "s"}))["code"] == 100004
        await alive(clients["dave"])


# --- precedence (§6) ------------------------------------------------------------------------------


async def test_precedence_invalid_parameter_first(w: World) -> None:
    nick33 = {"nickname": "n" * 33}
    # a malformed argument is 100002 whoever sends it and whatever else is wrong
    await expect(
        w, w.erin, "member.update", update_args("r1", "bob", nick33), 100002, "properties.nickname"
    )  # not 100005
    await expect(
        w, w.gus, "member.update", update_args("r1", "alice", nick33), 100002, "properties.nickname"
    )  # not 100006
    await expect(
        w, w.gus, "member.add", {"room": "r1", "invitees": []}, 100002, "invitees"
    )  # not 100006
    await expect(
        w,
        w.erin,
        "member.add",
        {"room": "nope", "invitees": ["ghost", "bad id"]},
        100002,
        "invitees.1",
        rooms=("nope",),
    )  # not 100004/7
    await expect(w, w.bob, "user.upsert", {"id": "bad id"}, 100002, "id")  # not 100006
    await expect(
        w, w.alice, "room.create", {"room": "r1", "name": "x" * 129}, 100002, "name"
    )  # not 100003
    await expect(w, w.bob, "room.get", {"room": "r1", "operator": "alice"}, 100002, "operator")
    await expect(
        w, w.erin, "invitation.accept", {"room": "nope", "x": 1}, 100002, "x", rooms=("nope",)
    )  # not 100004


async def test_precedence_of_the_custom_props_cap(w: World) -> None:
    """Over 32 custom props is an argument error for members: it outranks 100006."""
    await w.srv.call("member.update", update_args("r1", "bob", {f"p{n}": n for n in range(31)}))
    await w.alice.event()
    two_more = update_args("r1", "bob", {"q1": 1, "q2": 2})
    await expect(w, w.bob, "member.update", two_more, 100002, "properties")  # self: allowed
    await expect(w, w.gus, "member.update", two_more, 100002, "properties")  # not 100006
    # An outsider learns nothing of a member's props: not a member (issue 9), not 100002.
    await expect(w, w.erin, "member.update", two_more, 100005)
    # removing one while adding one stays within the cap, and 32 is allowed
    await w.bob.call("member.update", update_args("r1", "bob", {"p0": None, "q1": 1}))
    room = await w.bob.call("member.update", update_args("r1", "bob", {"q2": 2}))
    assert len(member(room, "bob")["props"]) == 32


async def test_precedence_among_state_errors(w: World) -> None:
    # 100004 before 100005/100006/100007
    await expect(
        w, w.erin, "member.remove", {"room": "nope", "user": "alice"}, 100004, rooms=("nope",)
    )
    await expect(w, w.gus, "invitation.accept", {"room": "nope"}, 100004, rooms=("nope",))
    # unknown invitee (100007) beats not-a-member (100005) and forbidden (100006)
    await expect(w, w.erin, "member.add", {"room": "r1", "invitees": ["ghost"]}, 100007)
    await expect(w, w.gus, "member.add", {"room": "r1", "invitees": ["ghost"]}, 100007)
    await expect(w, w.erin, "member.update", update_args("r1", "ghost", {"level": 1}), 100007)
    await expect(w, w.gus, "member.remove", {"room": "r1", "user": "ghost"}, 100007)
    # 100007 before 100003
    await expect(w, w.alice, "room.create", {"room": "r1", "members": ["ghost"]}, 100007)
    # not-a-member (100005) beats forbidden (100006)
    await expect(w, w.erin, "member.remove", {"room": "r1", "user": "alice"}, 100005)
    await expect(w, w.erin, "member.update", update_args("r1", "alice", {"role": "guest"}), 100005)
    await expect(w, w.gus, "member.update", update_args("r1", "erin", {"level": 1}), 100005)
    # forbidden (100006) beats room full (100012); not-a-member beats it too
    await w.alice.call("room.create", {"room": "dm", "type": "direct", "members": ["gus"]})
    await w.alice.call("member.update", update_args("dm", "gus", {"role": "guest"}))
    await expect(
        w, w.gus, "member.add", {"room": "dm", "invitees": ["erin"]}, 100006, rooms=("dm",)
    )
    await expect(
        w, w.erin, "member.add", {"room": "dm", "invitees": ["bob"]}, 100005, rooms=("dm",)
    )
