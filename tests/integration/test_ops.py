"""Every op of PROTOCOL.md §4 from outside, with a plain WebSocket client.

Result shapes are checked exactly as §3 describes them: every Member field present with its
default, the Room's fields, SystemMessages as events and in history, `reply: "ack"` on every
mutating op, room.list / auth rooms, history paging, user.upsert feeding new members'
nickname/avatar, and server tokens with and without `operator`.

Each test runs on every store of the `hub` fixture, and the encoding alternates with the
store, so every test runs with both JSON and msgpack.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import msgpack
import pytest
import websockets

from ..spec import MEMBER_FIELDS, MESSAGE_FIELDS, ROOM_FIELDS
from ..support import APP, Open, RawClient, probe, token

pytestmark = pytest.mark.timeout(30)

SERVER = "@server"


# --- helpers ---------------------------------------------------------------------------------


def now_ms() -> int:
    return int(time.time() * 1000)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_member(member: dict[str, Any]) -> None:
    assert set(member) == MEMBER_FIELDS, member
    assert isinstance(member["id"], str)
    assert member["role"] in ("owner", "admin", "member", "guest")
    for name in ("nickname", "avatar", "custom_info", "extension"):
        assert isinstance(member[name], str), (name, member)
    assert is_int(member["level"]) and 0 <= member["level"] <= 2**31 - 1
    assert isinstance(member["props"], dict)
    assert is_int(member["joined_ms"]) and abs(member["joined_ms"] - now_ms()) < 60_000


def fresh_member(
    user: str, role: str, joined_ms: int, nickname: str = "", avatar: str = ""
) -> dict[str, Any]:
    """A new member exactly as §3 says it must look: every field, defaults for unset ones."""
    return {
        "id": user,
        "role": role,
        "nickname": nickname,
        "avatar": avatar,
        "level": 0,
        "custom_info": "",
        "extension": "",
        "props": {},
        "joined_ms": joined_ms,
    }


def check_room(room: dict[str, Any], *, members: bool = True) -> None:
    assert set(room) == (ROOM_FIELDS if members else ROOM_FIELDS - {"members"}), room
    assert isinstance(room["id"], str) and isinstance(room["name"], str)
    assert room["type"] in ("group", "direct")
    assert isinstance(room["owner"], str)
    assert is_int(room["created_ms"]) and abs(room["created_ms"] - now_ms()) < 60_000
    assert is_int(room["seq"]) and room["seq"] >= 1
    if members:
        for member in room["members"]:
            check_member(member)
        assert len({m["id"] for m in room["members"]}) == len(room["members"])
        owners = [m["id"] for m in room["members"] if m["role"] == "owner"]
        assert owners == [room["owner"]], "exactly one owner, the room's owner"
    for invitation in room["invitations"]:
        assert set(invitation) == {"user", "inviter", "time_ms"}, invitation
        assert is_int(invitation["time_ms"])


def check_message(message: dict[str, Any]) -> None:
    assert set(message) == MESSAGE_FIELDS, message
    assert is_int(message["seq"]) and message["seq"] >= 1
    assert isinstance(message["targets"], list) and isinstance(message["changes"], dict)
    assert isinstance(message["notify"], bool)
    assert message["extension"] is None or isinstance(message["extension"], str)
    assert is_int(message["time_ms"]) and abs(message["time_ms"] - now_ms()) < 60_000


def message(
    room: str,
    seq: int,
    mtype: str,
    sender: str,
    targets: list[str],
    got: dict[str, Any],
    *,
    changes: dict[str, Any] | None = None,
    notify: bool = True,
    extension: str | None = None,
) -> dict[str, Any]:
    """The expected SystemMessage (time_ms taken from `got`, after checking its type)."""
    check_message(got)
    return {
        "room": room,
        "seq": seq,
        "type": mtype,
        "sender": sender,
        "targets": targets,
        "changes": changes or {},
        "notify": notify,
        "extension": extension,
        "time_ms": got["time_ms"],
    }


def by_id(room: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["id"]: m for m in room["members"]}


def sorted_targets(msg: dict[str, Any]) -> dict[str, Any]:
    return {**msg, "targets": sorted(msg["targets"])}


async def history(client: RawClient, room: str, **args: Any) -> list[dict[str, Any]]:
    page = await client.call("room.history", {"room": room, "limit": 200, **args})
    return page["messages"]  # type: ignore[no-any-return]


# --- connection and auth -----------------------------------------------------------------------


async def test_auth_result_shape_for_user_and_server_tokens(connect: Any, enc: str) -> None:
    async with connect(enc) as alice:
        welcome = await alice.auth("alice")
    assert set(welcome) == {"user", "rooms", "server"}
    assert welcome["user"] == "alice" and welcome["rooms"] == []
    assert set(welcome["server"]) == {"version", "node"}
    assert all(isinstance(v, str) and v for v in welcome["server"].values())
    async with connect(enc) as backend:
        welcome = await backend.auth("backend", server=True)
    assert welcome["user"] == "backend" and welcome["rooms"] == []


async def test_no_subprotocol_offered_speaks_msgpack(hub: Any) -> None:
    async with websockets.connect(f"ws://127.0.0.1:{hub.port}/ws") as ws:
        assert ws.subprotocol is None
        await ws.send(
            msgpack.packb({"id": 1, "op": "auth", "args": {"key": APP, "token": token("alice")}})
        )
        data = await asyncio.wait_for(ws.recv(), 5)
        assert isinstance(data, bytes), "msgpack replies come in binary frames"
        reply = msgpack.unpackb(data)
        assert reply["re"] == 1 and reply["ok"] is True and reply["result"]["user"] == "alice"


async def test_json_connection_gets_text_frames_and_echoes_string_ids(connect: Any) -> None:
    async with connect("json") as alice:
        await alice.send_raw(
            json.dumps({"id": "first", "op": "auth", "args": {"key": APP, "token": token("alice")}})
        )
        reply = await alice.next_unmatched()  # RawClient.decode asserts a text frame
        assert reply == {"re": "first", "ok": True, "result": reply["result"]}


async def test_auth_rooms_and_room_list_cover_member_and_invited_rooms(
    open_as: Open, connect: Any, enc: str
) -> None:
    alice = await open_as("alice")
    bob = await open_as("bob")
    await alice.call("room.create", {"room": "b-room", "members": ["bob"], "name": "B"})
    await alice.call("room.create", {"room": "a-room"})
    await alice.call(
        "member.add", {"room": "a-room", "invitees": ["bob"], "invitation_required": True}
    )
    await alice.call("room.create", {"room": "c-room"})

    async with connect(enc) as bob_again:
        welcome = await bob_again.auth("bob")
    assert welcome["rooms"] == ["a-room", "b-room"], "member or invited, sorted by id"

    listed = await bob.call("room.list")
    assert set(listed) == {"rooms"}
    assert [r["id"] for r in listed["rooms"]] == ["a-room", "b-room"]
    for room in listed["rooms"]:
        check_room(room, members=False)
        full = await bob.call("room.get", {"room": room["id"]})
        del full["members"]
        assert room == full, "room.list gives the Room without its members"
    assert listed["rooms"][0]["invitations"] == [
        {
            "user": "bob",
            "inviter": "alice",
            "time_ms": listed["rooms"][0]["invitations"][0]["time_ms"],
        }
    ]
    assert [r["id"] for r in (await alice.call("room.list", {}))["rooms"]] == [
        "a-room",
        "b-room",
        "c-room",
    ]
    carol = await open_as("carol")
    assert await carol.call("room.list") == {"rooms": []}


async def test_pipelined_requests_are_each_answered_exactly_once(open_as: Open) -> None:
    alice = await open_as("alice")
    await alice.call("room.create", {"room": "r1"})
    ids: list[Any] = []
    for n in range(10):
        for request_id, op, args in (
            (f"get-{n}", "room.get", {"room": "r1"}),
            (
                1000 + n,
                "member.update",
                {"room": "r1", "user": "alice", "properties": {f"p{n}": n}, "reply": "ack"},
            ),
        ):
            ids.append(request_id)
            await alice.send_raw(alice.encode({"id": request_id, "op": op, "args": args}))
    replies = [await alice.next_unmatched() for _ in ids]
    assert sorted(map(str, (r["re"] for r in replies))) == sorted(map(str, ids))
    assert all(r["ok"] for r in replies)
    seqs = sorted(r["result"]["seq"] for r in replies if isinstance(r["re"], int))
    assert seqs == list(range(2, 12)), "each update emitted exactly one message"
    await asyncio.sleep(0.1)
    assert not alice._unmatched, "no reply twice"


async def test_request_ids_are_echoed_exactly(open_as: Open) -> None:
    alice = await open_as("alice")
    for request_id in (0, -1, 2**53 + 1, 2**62, "", "ü-id ✓", "7"):
        await alice.send_raw(alice.encode({"id": request_id, "op": "room.list"}))
        reply = await alice.next_unmatched()
        assert reply == {"re": request_id, "ok": True, "result": {"rooms": []}}, reply


# --- room.create / room.get ------------------------------------------------------------------


async def test_room_create_by_user_replies_complete_room(open_as: Open) -> None:
    alice = await open_as("alice")
    before = now_ms()
    room = await alice.call("room.create", {"room": "r1", "name": "Demo"})
    check_room(room)
    joined = room["members"][0]["joined_ms"]
    assert room == {
        "id": "r1",
        "name": "Demo",
        "type": "group",
        "owner": "alice",
        "created_ms": room["created_ms"],
        "seq": 1,
        "members": [fresh_member("alice", "owner", joined)],
        "invitations": [],
        "custom": {},
    }
    assert before - 1000 <= room["created_ms"] <= now_ms() + 1000

    got = await alice.event()
    assert got == message("r1", 1, "createRoom", "alice", ["alice"], got)
    assert await alice.call("room.get", {"room": "r1"}) == room
    assert await alice.call("room.history", {"room": "r1"}) == {"messages": [got], "more": False}


async def test_room_create_without_args_generates_an_id(open_as: Open) -> None:
    alice = await open_as("alice")
    first = await alice.call("room.create")
    second = await alice.call("room.create", {})
    for room in (first, second):
        check_room(room)
        assert re.fullmatch(r"[A-Za-z0-9_-]{16}", room["id"]), room["id"]
        assert (room["name"], room["type"], room["owner"]) == ("", "group", "alice")
    assert first["id"] != second["id"]
    ack = await alice.call("room.create", {"reply": "ack"})
    assert set(ack) == {"room", "seq"} and ack["seq"] == 1
    assert (await alice.call("room.get", {"room": ack["room"]}))["id"] == ack["room"]


async def test_room_create_members_start_from_their_profiles(open_as: Open, srv: RawClient) -> None:
    await srv.call("user.upsert", {"id": "bob", "nickname": "Bobby", "avatar": "https://x/b.png"})
    alice = await open_as("alice")
    carol = await open_as("carol")
    room = await alice.call(
        "room.create", {"room": "r1", "members": ["bob", "carol", "alice", "bob"]}
    )
    check_room(room)
    members = by_id(room)
    assert set(members) == {"alice", "bob", "carol"}, "owner and duplicates counted once"
    assert members["bob"] == fresh_member(
        "bob", "member", members["bob"]["joined_ms"], "Bobby", "https://x/b.png"
    )
    assert members["carol"] == fresh_member("carol", "member", members["carol"]["joined_ms"])
    assert members["alice"]["role"] == "owner"
    for client in (alice, carol):
        got = await client.event()
        assert sorted_targets(got) == message(
            "r1", 1, "createRoom", "alice", ["alice", "bob", "carol"], got
        )


async def test_room_create_direct(open_as: Open) -> None:
    alice = await open_as("alice")
    bob = await open_as("bob")
    room = await alice.call("room.create", {"room": "d1", "type": "direct", "members": ["bob"]})
    check_room(room)
    assert room["type"] == "direct" and set(by_id(room)) == {"alice", "bob"}
    got = await bob.event()
    assert sorted_targets(got) == message("d1", 1, "createRoom", "alice", ["alice", "bob"], got)


async def test_room_create_with_server_token(open_as: Open, srv: RawClient) -> None:
    alice = await open_as("alice")
    await open_as("bob")
    room = await srv.call(
        "room.create", {"room": "r1", "owner": "alice", "members": ["bob"], "name": "From backend"}
    )
    check_room(room)
    assert room["owner"] == "alice" and by_id(room)["alice"]["role"] == "owner"
    assert by_id(room)["bob"]["role"] == "member"
    got = await alice.event()
    assert sorted_targets(got) == message("r1", 1, "createRoom", SERVER, ["alice", "bob"], got)

    await srv.call("room.create", {"room": "r2", "owner": "alice", "operator": "bob"})
    got = await alice.event()
    assert got == message("r2", 1, "createRoom", "bob", ["alice"], got), (
        "sender is the operator arg"
    )


async def test_room_get_by_member_invitee_and_server(open_as: Open, srv: RawClient) -> None:
    alice = await open_as("alice")
    bob = await open_as("bob")
    carol = await open_as("carol")
    await alice.call("room.create", {"room": "r1", "members": ["bob"]})
    room = await alice.call(
        "member.add", {"room": "r1", "invitees": ["carol"], "invitation_required": True}
    )
    for reader in (alice, bob, carol, srv):
        assert await reader.call("room.get", {"room": "r1"}) == room
    assert await srv.call("room.get", {"room": "r1", "operator": "carol"}) == room


# --- member.add / invitations ------------------------------------------------------------------


async def test_member_add_without_invitation(open_as: Open, srv: RawClient) -> None:
    await srv.call("user.upsert", {"id": "carol", "nickname": "Caro", "avatar": "https://c"})
    alice = await open_as("alice")
    bob = await open_as("bob")
    await alice.call("room.create", {"room": "r1"})
    await alice.event()

    room = await alice.call(
        "member.add", {"room": "r1", "invitees": ["bob", "carol"], "system_message": True}
    )
    check_room(room)
    members = by_id(room)
    assert members["bob"] == fresh_member("bob", "member", members["bob"]["joined_ms"])
    assert members["carol"] == fresh_member(
        "carol", "member", members["carol"]["joined_ms"], "Caro", "https://c"
    )
    assert room["seq"] == 2 and room["invitations"] == []
    for client in (alice, bob):
        got = await client.event()
        assert sorted_targets(got) == message(
            "r1", 2, "addMember", "alice", ["bob", "carol"], got, notify=True
        )

    await open_as("dave")
    room = await bob.call("member.add", {"room": "r1", "invitees": ["dave"]})
    assert by_id(room)["dave"]["role"] == "member"
    got = await alice.event()
    assert got == message("r1", 3, "addMember", "bob", ["dave"], got, notify=False)


async def test_member_add_with_invitation_then_accept(open_as: Open, srv: RawClient) -> None:
    alice = await open_as("alice")
    bob = await open_as("bob")
    await alice.call("room.create", {"room": "r1"})
    await alice.event()

    before = now_ms()
    room = await alice.call(
        "member.add", {"room": "r1", "invitees": ["bob"], "invitation_required": True}
    )
    check_room(room)
    assert set(by_id(room)) == {"alice"}
    assert room["invitations"] == [
        {"user": "bob", "inviter": "alice", "time_ms": room["invitations"][0]["time_ms"]}
    ]
    assert before - 1000 <= room["invitations"][0]["time_ms"] <= now_ms() + 1000
    for client in (alice, bob):
        got = await client.event()
        assert got == message("r1", 2, "inviteMember", "alice", ["bob"], got, notify=False)
    # an invitee is not a member yet: the room's other changes do not reach them
    await probe(srv, "r1", "alice", alice)
    await bob.no_event(0.1)

    # The profile at the moment bob becomes a member is the one that counts.
    await srv.call("user.upsert", {"id": "bob", "nickname": "Bobby", "avatar": "https://b"})
    room = await bob.call("invitation.accept", {"room": "r1"})
    check_room(room)
    assert room["invitations"] == [] and room["seq"] == 4
    bob_member = by_id(room)["bob"]
    assert bob_member == fresh_member(
        "bob", "member", bob_member["joined_ms"], "Bobby", "https://b"
    )
    for client in (alice, bob):
        got = await client.event()
        assert got == message("r1", 4, "acceptInvitation", "bob", ["bob"], got, notify=True)


async def test_invitation_decline(open_as: Open) -> None:
    alice = await open_as("alice")
    bob = await open_as("bob")
    await alice.call("room.create", {"room": "r1"})
    await alice.call(
        "member.add",
        {"room": "r1", "invitees": ["bob"], "invitation_required": True, "system_message": True},
    )
    await alice.events_until(2, "r1")
    got = await bob.event()
    assert got == message("r1", 2, "inviteMember", "alice", ["bob"], got, notify=True)

    assert await bob.call("invitation.decline", {"room": "r1"}) == {}
    for client in (alice, bob):
        got = await client.event()
        assert got == message("r1", 3, "declineInvitation", "bob", ["bob"], got, notify=True)
    room = await alice.call("room.get", {"room": "r1"})
    assert room["invitations"] == [] and set(by_id(room)) == {"alice"} and room["seq"] == 3
    assert await bob.call("room.list") == {"rooms": []}


async def test_add_replaces_a_pending_invitation_with_membership(open_as: Open) -> None:
    alice = await open_as("alice")
    await open_as("bob")
    await alice.call("room.create", {"room": "r1"})
    await alice.call("member.add", {"room": "r1", "invitees": ["bob"], "invitation_required": True})
    again = await alice.call(
        "member.add", {"room": "r1", "invitees": ["bob"], "invitation_required": True}
    )
    assert again["seq"] == 2 and len(again["invitations"]) == 1, "already invited: skipped"
    room = await alice.call("member.add", {"room": "r1", "invitees": ["bob"]})
    assert room["invitations"] == [] and by_id(room)["bob"]["role"] == "member"
    assert room["seq"] == 3


# --- member.update -------------------------------------------------------------------------------


async def test_member_update_builtin_and_custom_properties(open_as: Open) -> None:
    alice = await open_as("alice")
    bob = await open_as("bob")
    await alice.call("room.create", {"room": "r1", "members": ["bob"]})
    await alice.event()
    await bob.event()

    props = {
        "nickname": "Bob",
        "avatar": "https://a/b.png",
        "level": 7,
        "custom_info": "ci",
        "extension": "ext",
        "score": 12,
        "location": {"x": 1.5, "tags": ["a", None]},
    }
    room = await alice.call(
        "member.update",
        {
            "room": "r1",
            "user": "bob",
            "properties": props,
            "system_message": True,
            "notification_extension": "note",
        },
    )
    check_room(room)
    bob_member = by_id(room)["bob"]
    assert bob_member == {
        "id": "bob",
        "role": "member",
        "nickname": "Bob",
        "avatar": "https://a/b.png",
        "level": 7,
        "custom_info": "ci",
        "extension": "ext",
        "props": {"score": 12, "location": {"x": 1.5, "tags": ["a", None]}},
        "joined_ms": bob_member["joined_ms"],
    }
    for client in (alice, bob):
        got = await client.event()
        assert got == message(
            "r1",
            2,
            "updateMember",
            "alice",
            ["bob"],
            got,
            changes=props,
            notify=True,
            extension="note",
        )

    # Only what really changes is in `changes`; a null removes a custom prop.
    room = await bob.call(
        "member.update",
        {
            "room": "r1",
            "user": "bob",
            "properties": {"nickname": "Bob", "score": 13, "location": None},
        },
    )
    assert by_id(room)["bob"]["props"] == {"score": 13}
    got = await alice.event()
    assert got == message(
        "r1",
        3,
        "updateMember",
        "bob",
        ["bob"],
        got,
        changes={"score": 13, "location": None},
        notify=False,
    )

    assert by_id(room)["bob"]["joined_ms"] == bob_member["joined_ms"], "updates keep joined_ms"

    # Nothing changes: no message, seq unchanged (map values compare by content).
    await bob.call(
        "member.update",
        {"room": "r1", "user": "bob", "properties": {"where": {"x": 1, "y": [2, 3]}}},
    )
    await alice.event()
    for properties in (
        {"location": None},
        {"nickname": "Bob", "level": 7, "score": 13},
        {"where": {"y": [2, 3], "x": 1}},
    ):
        room = await alice.call(
            "member.update", {"room": "r1", "user": "bob", "properties": properties}
        )
        assert room["seq"] == 4
    assert [m["seq"] for m in await history(alice, "r1")] == [1, 2, 3, 4]


async def test_member_update_values_round_trip(open_as: Open, srv: RawClient) -> None:
    alice = await open_as("alice")
    await alice.call("room.create", {"room": "r1"})
    values = {
        "i": -5,
        "big": 2**53,
        "f": 0.25,
        "s": "héllo ✓",
        "t": True,
        "l": [1, "x", {}],
        "m": {"nested": {"deep": [None]}},
        "e": "",
        "empty": {},
    }
    room = await alice.call("member.update", {"room": "r1", "user": "alice", "properties": values})
    assert by_id(room)["alice"]["props"] == values
    got = (await history(alice, "r1"))[-1]
    assert got["changes"] == values
    # level at its bounds (a server call: the owner may not set their own level, rule 5)
    for level in (2**31 - 1, 0, 1):
        room = await srv.call(
            "member.update", {"room": "r1", "user": "alice", "properties": {"level": level}}
        )
        assert by_id(room)["alice"]["level"] == level
    assert by_id(room)["alice"]["props"] == values


# --- member.remove / room.leave -----------------------------------------------------------------


async def test_member_remove(open_as: Open, srv: RawClient) -> None:
    alice = await open_as("alice")
    bob = await open_as("bob")
    await alice.call("room.create", {"room": "r1", "members": ["bob"]})
    await alice.event()
    await bob.event()

    room = await alice.call("member.remove", {"room": "r1", "user": "bob"})
    check_room(room)
    assert set(by_id(room)) == {"alice"} and room["seq"] == 2
    for client in (alice, bob):
        got = await client.event()
        assert got == message("r1", 2, "removeMember", "alice", ["bob"], got, notify=True)
    assert (await bob.fail("room.get", {"room": "r1"}))["code"] == 100005
    assert await bob.call("room.list") == {"rooms": []}
    # bob no longer hears the room
    await probe(srv, "r1", "alice", alice)
    await bob.no_event(0.1)


async def test_room_leave(open_as: Open, srv: RawClient) -> None:
    alice = await open_as("alice")
    bob = await open_as("bob")
    await alice.call("room.create", {"room": "r1", "members": ["bob"]})
    await alice.event()
    await bob.event()

    assert await bob.call("room.leave", {"room": "r1"}) == {}
    for client in (alice, bob):
        got = await client.event()
        assert got == message("r1", 2, "leaveRoom", "bob", ["bob"], got, notify=True)
    room = await alice.call("room.get", {"room": "r1"})
    assert set(by_id(room)) == {"alice"} and room["seq"] == 2
    assert await bob.call("room.list") == {"rooms": []}
    await probe(srv, "r1", "alice", alice)
    await bob.no_event(0.1)


# --- room.history ---------------------------------------------------------------------------------


async def test_room_history_paging(open_as: Open, srv: RawClient) -> None:
    alice = await open_as("alice")
    await alice.call("room.create", {"room": "r1"})
    for n in range(5):
        await alice.call("member.update", {"room": "r1", "user": "alice", "properties": {"n": n}})
    live = await alice.events_until(6, "r1")
    assert [m["seq"] for m in live] == [1, 2, 3, 4, 5, 6]

    pages = []
    after = 0
    while True:
        page = await alice.call("room.history", {"room": "r1", "after_seq": after, "limit": 2})
        assert set(page) == {"messages", "more"}
        pages.append(([m["seq"] for m in page["messages"]], page["more"]))
        if not page["more"]:
            break
        after = page["messages"][-1]["seq"]
    assert pages == [([1, 2], True), ([3, 4], True), ([5, 6], False)]

    whole = await alice.call("room.history", {"room": "r1"})
    assert whole == {"messages": live, "more": False}, "history holds exactly what was delivered"
    for msg in whole["messages"]:
        check_message(msg)
    for after_seq in (6, 100):
        assert await alice.call("room.history", {"room": "r1", "after_seq": after_seq}) == {
            "messages": [],
            "more": False,
        }
    assert (await alice.call("room.history", {"room": "r1", "after_seq": 3, "limit": 200})) == {
        "messages": live[3:],
        "more": False,
    }

    # A later member and the server see the whole retained history too.
    bob = await open_as("bob")
    await alice.call("member.add", {"room": "r1", "invitees": ["bob"]})
    assert [m["seq"] for m in await history(bob, "r1")] == list(range(1, 8))
    assert [m["seq"] for m in await history(srv, "r1")] == list(range(1, 8))


async def test_room_history_default_limit_is_50(open_as: Open) -> None:
    alice = await open_as("alice")
    await alice.call("room.create", {"room": "r1"})
    await asyncio.gather(
        *(
            alice.call(
                "member.update",
                {"room": "r1", "user": "alice", "properties": {"n": n}, "reply": "ack"},
            )
            for n in range(54)
        )
    )
    live = await alice.events_until(55, "r1")
    assert [m["seq"] for m in live] == list(range(1, 56)), "delivered in seq order, no gap"
    page = await alice.call("room.history", {"room": "r1"})
    assert [m["seq"] for m in page["messages"]] == list(range(1, 51)) and page["more"] is True
    page = await alice.call("room.history", {"room": "r1", "after_seq": 50})
    assert [m["seq"] for m in page["messages"]] == list(range(51, 56)) and page["more"] is False
    page = await alice.call("room.history", {"room": "r1", "limit": 200})
    assert len(page["messages"]) == 55 and page["more"] is False
    page = await alice.call("room.history", {"room": "r1", "limit": 1, "after_seq": 54})
    assert [m["seq"] for m in page["messages"]] == [55] and page["more"] is False


# --- reply = "ack" ------------------------------------------------------------------------------


async def test_reply_ack_on_every_mutating_op(open_as: Open, srv: RawClient) -> None:
    alice = await open_as("alice")
    await open_as("bob")
    carol = await open_as("carol")
    dave = await open_as("dave")

    def ack(seq: int) -> dict[str, Any]:
        return {"room": "r1", "seq": seq}

    steps: list[tuple[RawClient, str, dict[str, Any], int]] = [
        (alice, "room.create", {"room": "r1"}, 1),
        (alice, "member.add", {"room": "r1", "invitees": ["bob"]}, 2),
        (
            alice,
            "member.add",
            {"room": "r1", "invitees": ["carol"], "invitation_required": True},
            3,
        ),
        (alice, "member.add", {"room": "r1", "invitees": ["dave"], "invitation_required": True}, 4),
        (carol, "invitation.accept", {"room": "r1"}, 5),
        (dave, "invitation.decline", {"room": "r1"}, 6),
        # role and nickname: two messages, the ack names the last one
        (
            alice,
            "member.update",
            {"room": "r1", "user": "bob", "properties": {"role": "guest", "nickname": "B"}},
            8,
        ),
        # nothing changes / nobody new: the room's current seq
        (alice, "member.update", {"room": "r1", "user": "bob", "properties": {"nickname": "B"}}, 8),
        (alice, "member.add", {"room": "r1", "invitees": ["bob", "carol"]}, 8),
        (alice, "member.remove", {"room": "r1", "user": "bob"}, 9),
        (carol, "room.leave", {"room": "r1"}, 10),
        (srv, "member.add", {"room": "r1", "invitees": ["bob"]}, 11),
    ]
    for client, op, args, seq in steps:
        assert await client.call(op, {**args, "reply": "ack"}) == ack(seq), (op, args)
    assert [m["type"] for m in await history(alice, "r1")] == [
        "createRoom",
        "addMember",
        "inviteMember",
        "inviteMember",
        "acceptInvitation",
        "declineInvitation",
        "setRole",
        "updateMember",
        "removeMember",
        "leaveRoom",
        "addMember",
    ]
    # reply = "room" is the default and gives the complete Room
    room = await alice.call(
        "member.update", {"room": "r1", "user": "bob", "properties": {"level": 1}, "reply": "room"}
    )
    check_room(room)
    assert room == await alice.call("room.get", {"room": "r1"})
    # user.upsert accepts and ignores reply
    assert await srv.call("user.upsert", {"id": "zed", "nickname": "Z", "reply": "ack"}) == {
        "id": "zed",
        "nickname": "Z",
        "avatar": "",
    }


# --- user.upsert and profiles -----------------------


async def test_user_upsert(open_as: Open, srv: RawClient) -> None:
    assert await srv.call(
        "user.upsert", {"id": "zed", "nickname": "Zed", "avatar": "https://z"}
    ) == {"id": "zed", "nickname": "Zed", "avatar": "https://z"}
    assert await srv.call("user.upsert", {"id": "zed", "avatar": "https://z2"}) == {
        "id": "zed",
        "nickname": "Zed",
        "avatar": "https://z2",
    }, "fields not given keep their value"
    assert await srv.call("user.upsert", {"id": "zed", "nickname": ""}) == {
        "id": "zed",
        "nickname": "",
        "avatar": "https://z2",
    }
    assert await srv.call("user.upsert", {"id": "nobody.yet@x:1"}) == {
        "id": "nobody.yet@x:1",
        "nickname": "",
        "avatar": "",
    }

    # An upserted user is known: they can be added without ever connecting.
    alice = await open_as("alice")
    room = await alice.call("room.create", {"room": "r1", "members": ["zed", "nobody.yet@x:1"]})
    assert by_id(room)["zed"]["avatar"] == "https://z2"


async def test_profiles_feed_new_members_only(
    open_as: Open, srv: RawClient, connect: Any, enc: str
) -> None:
    await srv.call("user.upsert", {"id": "yan", "nickname": "Yan", "avatar": "https://y"})
    # yan's first auth registers them but must not wipe the profile
    async with connect(enc) as yan:
        await yan.auth("yan")
    alice = await open_as("alice")
    room = await alice.call("room.create", {"room": "r1"})
    room = await alice.call("member.add", {"room": "r1", "invitees": ["yan"]})
    yan_member = by_id(room)["yan"]
    assert (yan_member["nickname"], yan_member["avatar"]) == ("Yan", "https://y")

    # A later profile change does not rewrite an existing member (it would be a change
    # without a system message); the next time yan joins, the new profile is used.
    await srv.call("user.upsert", {"id": "yan", "nickname": "Yannick", "avatar": "https://y2"})
    room = await alice.call("room.get", {"room": "r1"})
    assert by_id(room)["yan"]["nickname"] == "Yan" and room["seq"] == 2
    await alice.call("member.remove", {"room": "r1", "user": "yan"})
    room = await alice.call("member.add", {"room": "r1", "invitees": ["yan"]})
    assert (by_id(room)["yan"]["nickname"], by_id(room)["yan"]["avatar"]) == (
        "Yannick",
        "https://y2",
    )


# --- server tokens -------------------------------------------------------------------------------


async def test_server_token_without_operator_is_not_permission_checked(
    open_as: Open, srv: RawClient
) -> None:
    alice = await open_as("alice")
    await open_as("bob")
    await open_as("carol")
    await srv.call("room.create", {"room": "r1", "owner": "alice", "members": ["bob"]})
    await alice.event()

    room = await srv.call("member.add", {"room": "r1", "invitees": ["carol"]})
    assert "carol" in by_id(room)
    got = await alice.event()
    assert got == message("r1", 2, "addMember", SERVER, ["carol"], got, notify=False)

    room = await srv.call(
        "member.update",
        {"room": "r1", "user": "alice", "properties": {"nickname": "Boss", "level": 9}},
    )
    assert (by_id(room)["alice"]["nickname"], by_id(room)["alice"]["level"]) == ("Boss", 9)
    got = await alice.event()
    assert got == message(
        "r1",
        3,
        "updateMember",
        SERVER,
        ["alice"],
        got,
        changes={"nickname": "Boss", "level": 9},
        notify=False,
    )

    room = await srv.call(
        "member.update", {"room": "r1", "user": "bob", "properties": {"role": "admin"}}
    )
    assert by_id(room)["bob"]["role"] == "admin"
    got = await alice.event()
    assert got == message(
        "r1", 4, "assignAdmin", SERVER, ["bob"], got, changes={"role": "admin"}, notify=True
    )

    room = await srv.call("member.remove", {"room": "r1", "user": "bob"})
    assert set(by_id(room)) == {"alice", "carol"}
    got = await alice.event()
    assert got == message("r1", 5, "removeMember", SERVER, ["bob"], got, notify=True)
    assert [m["seq"] for m in await history(srv, "r1")] == [1, 2, 3, 4, 5]
    assert (await srv.call("room.get", {"room": "r1"}))["seq"] == 5


async def test_server_token_with_operator_acts_as_that_user(open_as: Open, srv: RawClient) -> None:
    alice = await open_as("alice")
    for user in ("bob", "carol", "dave", "erin", "frank"):
        await srv.call("user.upsert", {"id": user})
    await srv.call("room.create", {"room": "r1", "owner": "alice", "members": ["bob", "carol"]})
    await srv.call(
        "member.update", {"room": "r1", "user": "carol", "properties": {"role": "guest"}}
    )
    await alice.events_until(2, "r1")

    await srv.call("member.add", {"room": "r1", "invitees": ["dave"], "operator": "bob"})
    got = await alice.event()
    assert got == message("r1", 3, "addMember", "bob", ["dave"], got, notify=False)

    # checked as the operator: a guest cannot invite, a non-member is not a member,
    # a member cannot raise their own level
    assert (
        await srv.fail("member.add", {"room": "r1", "invitees": ["erin"], "operator": "carol"})
    )["code"] == 100006
    assert (await srv.fail("member.add", {"room": "r1", "invitees": ["erin"], "operator": "erin"}))[
        "code"
    ] == 100005
    assert (
        await srv.fail(
            "member.update",
            {"room": "r1", "user": "bob", "operator": "bob", "properties": {"level": 3}},
        )
    )["code"] == 100006
    assert (await srv.fail("room.get", {"room": "r1", "operator": "erin"}))["code"] == 100005
    assert (await srv.fail("room.history", {"room": "r1", "operator": "erin"}))["code"] == 100005

    room = await srv.call(
        "member.update",
        {"room": "r1", "user": "bob", "operator": "alice", "properties": {"level": 3}},
    )
    assert by_id(room)["bob"]["level"] == 3
    got = await alice.event()
    assert got == message(
        "r1", 4, "updateMember", "alice", ["bob"], got, changes={"level": 3}, notify=False
    )

    assert [r["id"] for r in (await srv.call("room.list", {"operator": "bob"}))["rooms"]] == ["r1"]
    assert (await srv.call("room.get", {"room": "r1", "operator": "bob"}))["seq"] == 4
    assert len(await history(srv, "r1", operator="bob")) == 4

    # invitation.accept / decline and room.leave on behalf of a user
    room = await srv.call(
        "member.add", {"room": "r1", "invitees": ["erin", "frank"], "invitation_required": True}
    )
    assert sorted((i["user"], i["inviter"]) for i in room["invitations"]) == [
        ("erin", SERVER),
        ("frank", SERVER),
    ]
    room = await srv.call("invitation.accept", {"room": "r1", "operator": "erin"})
    assert "erin" in by_id(room)
    assert await srv.call("invitation.decline", {"room": "r1", "operator": "frank"}) == {}
    assert await srv.call("room.leave", {"room": "r1", "operator": "erin"}) == {}
    msgs = await alice.events_until(8, "r1")
    assert [(m["type"], m["sender"], m["targets"]) for m in msgs] == [
        ("inviteMember", SERVER, ["erin", "frank"]),
        ("acceptInvitation", "erin", ["erin"]),
        ("declineInvitation", "frank", ["frank"]),
        ("leaveRoom", "erin", ["erin"]),
    ]


# --- delivery ------------------------------------------------------------------------------------


async def test_every_connection_of_a_member_gets_each_message(open_as: Open) -> None:
    alice_json = await open_as("alice", encoding="json")
    alice_msgpack = await open_as("alice", encoding="msgpack")
    bob = await open_as("bob")
    await bob.call("room.create", {"room": "r1", "members": ["alice"]})
    await bob.call(
        "member.update", {"room": "r1", "user": "alice", "properties": {"level": 2, "mood": "ok"}}
    )
    from_json = await alice_json.events_until(2, "r1")
    from_msgpack = await alice_msgpack.events_until(2, "r1")
    assert from_json == from_msgpack == await history(bob, "r1")


async def test_auth_resume_replays_missed_messages_before_live_ones(
    open_as: Open, srv: RawClient, connect: Any, enc: str
) -> None:
    alice = await open_as("alice")
    await alice.call("room.create", {"room": "r1"})
    for n in range(3):
        await srv.call("member.update", {"room": "r1", "user": "alice", "properties": {"n": n}})
    expected = await history(srv, "r1")
    async with connect(enc) as again:
        await again.call("auth", {"key": APP, "token": token("alice"), "resume": {"r1": 1}})
        await srv.call("member.update", {"room": "r1", "user": "alice", "properties": {"n": 9}})
        got = await again.events_until(5, "r1", timeout=3)
    assert got[:3] == expected[1:], "replayed in order, after the seq the client saw"
    assert [m["seq"] for m in got] == [2, 3, 4, 5]


async def test_ids_with_every_allowed_character(open_as: Open, srv: RawClient) -> None:
    odd = "u:1@a.b-c_D"
    them = await open_as(odd)
    alice = await open_as("alice")
    room_id = "team:42@x.y-z_Q"
    room = await alice.call("room.create", {"room": room_id, "members": [odd], "name": "Ünïcødé ✓"})
    assert room["id"] == room_id and room["name"] == "Ünïcødé ✓" and odd in by_id(room)
    got = await them.event()
    assert got["room"] == room_id and odd in got["targets"]
    await alice.call("member.update", {"room": room_id, "user": odd, "properties": {"level": 1}})
    got = await them.event()
    assert (got["seq"], got["targets"], got["changes"]) == (2, [odd], {"level": 1})
    assert [r["id"] for r in (await them.call("room.list"))["rooms"]] == [room_id]
    assert len(await history(srv, room_id)) == 2


async def test_member_add_takes_up_to_100_invitees(open_as: Open, srv: RawClient) -> None:
    users = [f"user{n:03d}" for n in range(100)]
    await asyncio.gather(*(srv.call("user.upsert", {"id": u}) for u in users))
    alice = await open_as("alice")
    await alice.call("room.create", {"room": "big"})
    room = await alice.call("member.add", {"room": "big", "invitees": users})
    assert len(room["members"]) == 101 and room["seq"] == 2
    for m in room["members"]:
        check_member(m)
    (_, added) = await alice.events_until(2, "big")
    assert sorted(added["targets"]) == users, "one message with every added user"
    # a user named twice is added once
    await srv.call("user.upsert", {"id": "twice"})
    room = await alice.call("member.add", {"room": "big", "invitees": ["twice", "twice"]})
    assert len(room["members"]) == 102
    assert (await alice.event())["targets"] == ["twice"]
