"""The role rules of PROTOCOL.md §5, case by case, as users see them.

Rank: owner 3 > admin 2 > member 1 > guest 0. The expected outcome of each case is written
here from the spec (not taken from the server's rule table): a matrix of operator role x
target x property for member.update and member.remove, then the rules one by one with the
system messages they emit (assignAdmin forced to notify, revokeAdmin, setRole, and a role
change with another property giving two messages with consecutive seqs).

Each test runs on every store of the `hub` fixture, and the encoding alternates with the
store, so every test runs with both JSON and msgpack.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ..spec import RANK
from ..support import Open, RawClient, member, probe, update_args

pytestmark = pytest.mark.timeout(30)


# Room "r": one user per role, two of each but the owner; "out" is a known non-member and
# "inv" has a pending invitation.
ROLE_OF = {
    "own": "owner",
    "adm": "admin",
    "adm2": "admin",
    "mem": "member",
    "mem2": "member",
    "gst": "guest",
    "gst2": "guest",
}
USER_FOR = {"owner": "own", "admin": "adm", "member": "mem", "guest": "gst"}
SECOND = {"adm": "adm2", "mem": "mem2", "gst": "gst2"}


# --- helpers ---------------------------------------------------------------------------------


@pytest.fixture
async def srv(open_as: Open) -> RawClient:
    """The app's backend; without `operator` it is not permission-checked, so it sets up."""
    backend = await open_as("backend", server=True)
    await asyncio.gather(
        *(
            backend.call("user.upsert", {"id": user})
            for user in [*ROLE_OF, "out", "inv", "new", "new2"]
        )
    )
    await backend.call(
        "room.create", {"room": "r", "owner": "own", "members": [u for u in ROLE_OF if u != "own"]}
    )
    for user, role in ROLE_OF.items():
        if role in ("admin", "guest"):
            await backend.call("member.update", update_args("r", user, {"role": role}))
    await backend.call(
        "member.add", {"room": "r", "invitees": ["inv"], "invitation_required": True}
    )
    return backend


async def last_messages(client: RawClient, room: str, count: int) -> list[dict[str, Any]]:
    seq = (await client.call("room.get", {"room": room}))["seq"]
    page = await client.call("room.history", {"room": room, "after_seq": max(0, seq - count)})
    return page["messages"]  # type: ignore[no-any-return]


async def room_of(srv: RawClient, room: str = "r") -> dict[str, Any]:
    return await srv.call("room.get", {"room": room})  # type: ignore[no-any-return]


async def next_in(client: RawClient, room: str) -> dict[str, Any]:
    """The client's next system message of `room` (others' rooms are skipped)."""
    while True:
        got = await client.event()
        if got["room"] == room:
            return got


async def settle(client: RawClient, room: str, seq: int) -> None:
    """Consume the client's events of `room` up to `seq`."""
    while True:
        got = await client.event()
        if got["room"] == room and got["seq"] >= seq:
            return


async def nothing_emitted(srv: RawClient, *watchers: RawClient) -> None:
    """A probe change must be each watcher's next event of room r."""
    await probe(srv, "r", "own", *watchers, skip_other_rooms=True)


def role_message(old: str, new: str) -> str:
    if new == "admin":
        return "assignAdmin"
    if old == "admin":
        return "revokeAdmin"
    return "setRole"


# --- the matrix --------------------------------------------------------------------------------


def may_update(op_role: str, target_role: str, on_self: bool, prop: str, value: Any) -> bool:
    """§5 rules 1-5 for one property, from the spec."""
    if prop == "role":
        if on_self or target_role == "owner" or value == "owner":
            return False  # rule 3 (and exactly one owner)
        if value == "admin":
            return op_role == "owner"  # rule 1
        return op_role in ("owner", "admin") and RANK[op_role] > RANK[target_role]  # rule 2
    if prop == "level":
        return not on_self and RANK[op_role] > RANK[target_role]  # rule 5
    return on_self or RANK[op_role] > RANK[target_role]  # rule 4


def may_remove(op_role: str, target_role: str, on_self: bool) -> bool:
    return not on_self and op_role in ("owner", "admin") and RANK[op_role] > RANK[target_role]


PROPERTY_CASES: list[tuple[str, Any]] = [
    ("role", "admin"),
    ("role", "member"),
    ("role", "guest"),
    ("role", "owner"),
    ("nickname", "Nick"),
    ("avatar", "https://a/x.png"),
    ("custom_info", "info"),
    ("extension", "ext"),
    ("score", 42),
    ("level", 5),
]


OP_ROLES = ["owner", "admin", "member", "guest"]


def targets_for(op_user: str) -> list[tuple[str, str, bool]]:
    """(target, its role, on self): the operator themself, then another user of each role."""
    others = [SECOND.get(u, u) if u == op_user else u for u in USER_FOR.values()]
    targets = [op_user, *(u for u in others if u != op_user)]
    return [(target, ROLE_OF[target], target == op_user) for target in targets]


async def unexpected(
    srv: RawClient, case: str, reply: dict[str, Any], before: dict[str, Any], allowed: bool
) -> list[str] | None:
    """What is wrong with the reply to a matrix case. None: it succeeded as allowed, and the
    caller checks the rest; a forbidden case must fail with 100006 and leave the room as it was."""
    if allowed:
        return None if reply["ok"] else [f"{case}: expected success, got {reply['error']}"]
    if reply["ok"] or reply["error"]["code"] != 100006:
        return [f"{case}: expected 100006, got {reply}"]
    problems = []
    if reply["error"]["reason"] != "FORBIDDEN":
        problems.append(f"{case}: reason {reply['error']['reason']}")
    if await room_of(srv) != before:
        problems.append(f"{case}: failed but changed the room")
    return problems


def current(m: dict[str, Any], prop: str) -> Any:
    """A property's value on a Member: a built-in field, or a custom prop (None if unset)."""
    return m[prop] if prop in m else m["props"].get(prop)


@pytest.mark.parametrize("op_role", OP_ROLES)
async def test_member_update_matrix(open_as: Open, srv: RawClient, op_role: str) -> None:
    op_user = USER_FOR[op_role]
    operator = await open_as(op_user)
    wrong: list[str] = []
    for target, target_role, on_self in targets_for(op_user):
        for prop, value in PROPERTY_CASES:
            case = f"{op_role} sets {prop}={value!r} on {'self' if on_self else target_role}"
            allowed = may_update(op_role, target_role, on_self, prop, value)
            before = await room_of(srv)
            reply = await operator.request("member.update", update_args("r", target, {prop: value}))
            problems = await unexpected(srv, case, reply, before, allowed)
            if problems is not None:
                wrong += problems
                continue
            after = reply["result"]
            old = current(member(before, target), prop)
            if current(member(after, target), prop) != value:
                wrong.append(f"{case}: value not applied: {member(after, target)}")
            if old == value:
                if after["seq"] != before["seq"]:
                    wrong.append(f"{case}: a no-op emitted a message")
                continue
            if after["seq"] != before["seq"] + 1:
                wrong.append(f"{case}: seq {before['seq']} -> {after['seq']}, expected +1")
            (msg,) = await last_messages(srv, "r", 1)
            mtype = role_message(old, value) if prop == "role" else "updateMember"
            expected_msg = (mtype, op_user, [target], {prop: value}, mtype == "assignAdmin")
            got_msg = (msg["type"], msg["sender"], msg["targets"], msg["changes"], msg["notify"])
            if got_msg != expected_msg:
                wrong.append(f"{case}: message {got_msg}, expected {expected_msg}")
            # put it back (the server is not permission-checked)
            await srv.call("member.update", update_args("r", target, {prop: old}))
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("op_role", OP_ROLES)
async def test_member_remove_matrix(open_as: Open, srv: RawClient, op_role: str) -> None:
    op_user = USER_FOR[op_role]
    operator = await open_as(op_user)
    wrong: list[str] = []
    for target, target_role, on_self in targets_for(op_user):
        case = f"{op_role} removes {'self' if on_self else target_role}"
        allowed = may_remove(op_role, target_role, on_self)
        before = await room_of(srv)
        reply = await operator.request("member.remove", {"room": "r", "user": target})
        problems = await unexpected(srv, case, reply, before, allowed)
        if problems is not None:
            wrong += problems
            continue
        if target in {m["id"] for m in reply["result"]["members"]}:
            wrong.append(f"{case}: still a member")
        (msg,) = await last_messages(srv, "r", 1)
        if (msg["type"], msg["sender"], msg["targets"]) != ("removeMember", op_user, [target]):
            wrong.append(f"{case}: message {msg}")
        await srv.call("member.add", {"room": "r", "invitees": [target]})
        if target_role != "member":
            await srv.call("member.update", update_args("r", target, {"role": target_role}))
    assert not wrong, "\n".join(wrong)


# --- rules 1-3: roles and their messages ---------------------------------------------------------


async def test_only_the_owner_assigns_admin_and_it_is_always_notified(
    open_as: Open, srv: RawClient
) -> None:
    own = await open_as("own")
    mem = await open_as("mem")
    adm = await open_as("adm")
    seq = (await room_of(srv))["seq"]

    err = await adm.fail("member.update", update_args("r", "mem", {"role": "admin"}))
    assert (err["code"], err["reason"]) == (100006, "FORBIDDEN") and err["message"]
    err = await srv.fail(
        "member.update",
        {"room": "r", "user": "mem", "operator": "adm", "properties": {"role": "admin"}},
    )
    assert err["code"] == 100006, "a server call with operator is checked as that user"
    assert (await room_of(srv))["seq"] == seq

    room = await own.call(
        "member.update",
        {"room": "r", "user": "mem", "system_message": False, "properties": {"role": "admin"}},
    )
    assert member(room, "mem")["role"] == "admin" and room["seq"] == seq + 1
    for client in (own, mem, adm):
        got = await next_in(client, "r")
        assert got == {
            "room": "r",
            "seq": seq + 1,
            "type": "assignAdmin",
            "sender": "own",
            "targets": ["mem"],
            "changes": {"role": "admin"},
            "notify": True,
            "extension": None,
            "time_ms": got["time_ms"],
        }
    # a guest straight to admin is assignAdmin too
    await own.call("member.update", update_args("r", "gst", {"role": "admin"}))
    got = await next_in(own, "r")
    assert (got["type"], got["changes"], got["notify"]) == ("assignAdmin", {"role": "admin"}, True)


async def test_revoke_admin_and_set_role_messages(open_as: Open, srv: RawClient) -> None:
    own = await open_as("own")
    adm = await open_as("adm")
    seq = (await room_of(srv))["seq"]

    await own.call("member.update", update_args("r", "adm2", {"role": "member"}))
    got = await next_in(adm, "r")
    assert (
        got["seq"],
        got["type"],
        got["sender"],
        got["targets"],
        got["changes"],
        got["notify"],
    ) == (seq + 1, "revokeAdmin", "own", ["adm2"], {"role": "member"}, False)

    await own.call(
        "member.update",
        {
            "room": "r",
            "user": "adm",
            "properties": {"role": "guest"},
            "system_message": True,
            "notification_extension": '{"k":1}',
        },
    )
    got = await next_in(adm, "r")
    assert (got["type"], got["changes"], got["notify"], got["extension"]) == (
        "revokeAdmin",
        {"role": "guest"},
        True,
        '{"k":1}',
    ), "admin -> guest is revokeAdmin"

    # member <-> guest is setRole, also when an admin does it
    await srv.call("member.update", update_args("r", "adm2", {"role": "admin"}))
    adm2 = await open_as("adm2")
    await adm2.call("member.update", update_args("r", "mem", {"role": "guest"}))
    await adm2.call(
        "member.update", update_args("r", "gst", {"role": "member"}, system_message=True)
    )
    types = [
        (m["type"], m["sender"], m["targets"], m["changes"], m["notify"])
        for m in await last_messages(srv, "r", 2)
    ]
    assert types == [
        ("setRole", "adm2", ["mem"], {"role": "guest"}, False),
        ("setRole", "adm2", ["gst"], {"role": "member"}, True),
    ]


async def test_role_and_another_property_emit_two_messages_in_a_row(
    open_as: Open, srv: RawClient
) -> None:
    own = await open_as("own")
    mem = await open_as("mem")
    seq = (await room_of(srv))["seq"]
    ack = await own.call(
        "member.update",
        {
            "room": "r",
            "user": "mem",
            "reply": "ack",
            "system_message": True,
            "notification_extension": "x",
            "properties": {"nickname": "Promoted", "role": "admin", "score": 1},
        },
    )
    assert ack == {"room": "r", "seq": seq + 2}
    for client in (own, mem):
        first, second = await next_in(client, "r"), await next_in(client, "r")
        assert (
            first["seq"],
            first["type"],
            first["changes"],
            first["notify"],
            first["extension"],
        ) == (seq + 1, "assignAdmin", {"role": "admin"}, True, "x")
        assert (
            second["seq"],
            second["type"],
            second["changes"],
            second["notify"],
            second["extension"],
        ) == (seq + 2, "updateMember", {"nickname": "Promoted", "score": 1}, True, "x")
        assert first["targets"] == second["targets"] == ["mem"]
        assert first["sender"] == second["sender"] == "own"

    # role unchanged: only updateMember; other properties unchanged: only the role message
    await own.call("member.update", update_args("r", "mem", {"role": "admin", "nickname": "Again"}))
    got = await next_in(own, "r")
    assert (got["seq"], got["type"], got["changes"]) == (
        seq + 3,
        "updateMember",
        {"nickname": "Again"},
    )
    await own.call("member.update", update_args("r", "mem", {"role": "guest", "nickname": "Again"}))
    got = await next_in(own, "r")
    assert (got["seq"], got["type"], got["changes"], got["notify"]) == (
        seq + 4,
        "revokeAdmin",
        {"role": "guest"},
        False,
    )
    await settle(mem, "r", seq + 4)
    await nothing_emitted(srv, own, mem)


async def test_nobody_changes_the_owners_role_or_their_own(open_as: Open, srv: RawClient) -> None:
    own = await open_as("own")
    adm = await open_as("adm")
    mem = await open_as("mem")
    before = await room_of(srv)
    cases = [
        (own, "own", "admin"),
        (own, "own", "owner"),
        (own, "own", "member"),
        (adm, "adm", "member"),
        (adm, "adm", "guest"),
        (adm, "adm", "admin"),
        (mem, "mem", "guest"),
        (adm, "own", "member"),
        (own, "mem", "owner"),  # exactly one owner: nobody is made owner
        (srv, "own", "admin"),
        (srv, "mem", "owner"),  # not even an unchecked server call
    ]
    for client, target, role in cases:
        err = await client.fail("member.update", update_args("r", target, {"role": role}))
        assert err["code"] == 100006, (target, role, err)
    assert await room_of(srv) == before
    await nothing_emitted(srv, own)


# --- rules 4-5: profile fields and level ---------------------------------------------------------


async def test_profile_fields_by_self_or_a_higher_rank(open_as: Open, srv: RawClient) -> None:
    gst = await open_as("gst")
    mem = await open_as("mem")
    adm = await open_as("adm")
    props = {
        "nickname": "G",
        "avatar": "https://g",
        "custom_info": "c",
        "extension": "e",
        "mood": "ok",
    }
    room = await gst.call("member.update", update_args("r", "gst", props))
    assert member(room, "gst")["nickname"] == "G" and member(room, "gst")["props"] == {"mood": "ok"}
    for name, value in props.items():
        err = await mem.fail("member.update", update_args("r", "mem2", {name: value}))
        assert err["code"] == 100006, ("member on member", name)
        err = await adm.fail("member.update", update_args("r", "own", {name: value}))
        assert err["code"] == 100006, ("admin on owner", name)
    room = await mem.call("member.update", update_args("r", "gst", {"nickname": "By member"}))
    assert member(room, "gst")["nickname"] == "By member"
    room = await adm.call("member.update", update_args("r", "mem", {"mood": None, "nickname": "M"}))
    assert member(room, "mem")["nickname"] == "M"


async def test_level_only_by_a_higher_rank(open_as: Open, srv: RawClient) -> None:
    own = await open_as("own")
    adm = await open_as("adm")
    mem = await open_as("mem")
    before = await room_of(srv)
    for client, target in (
        (mem, "mem"),
        (own, "own"),
        (adm, "adm"),
        (adm, "adm2"),
        (mem, "mem2"),
        (adm, "own"),
    ):
        err = await client.fail("member.update", update_args("r", target, {"level": 9}))
        assert err["code"] == 100006, (target, err)
    # all or nothing: a member's own nickname with their level fails as a whole
    err = await mem.fail("member.update", update_args("r", "mem", {"nickname": "Me", "level": 9}))
    assert err["code"] == 100006
    assert await room_of(srv) == before
    room = await adm.call("member.update", update_args("r", "mem", {"level": 9}))
    assert member(room, "mem")["level"] == 9
    room = await mem.call("member.update", update_args("r", "gst", {"level": 1}))
    assert member(room, "gst")["level"] == 1
    room = await own.call("member.update", update_args("r", "adm", {"level": 2}))
    assert member(room, "adm")["level"] == 2


# --- rule 6: invitations and direct rooms ------------------------------------------------------


async def test_guests_cannot_invite(open_as: Open, srv: RawClient) -> None:
    gst = await open_as("gst")
    mem = await open_as("mem")
    own = await open_as("own")
    before = await room_of(srv)
    for invitation in (False, True):
        err = await gst.fail(
            "member.add", {"room": "r", "invitees": ["out"], "invitation_required": invitation}
        )
        assert (err["code"], err["reason"]) == (100006, "FORBIDDEN")
    err = await srv.fail("member.add", {"room": "r", "invitees": ["out"], "operator": "gst"})
    assert err["code"] == 100006
    assert await room_of(srv) == before
    await nothing_emitted(srv, own)
    # member, admin and owner may
    room = await mem.call(
        "member.add", {"room": "r", "invitees": ["out"], "invitation_required": True}
    )
    assert [i["user"] for i in room["invitations"]] == ["inv", "out"]
    assert {i["user"]: i["inviter"] for i in room["invitations"]}["out"] == "mem"
    room = await own.call("member.add", {"room": "r", "invitees": ["new"]})
    assert member(room, "new")["role"] == "member"


async def test_direct_room_holds_two_and_ignores_invitation_required(
    open_as: Open, srv: RawClient
) -> None:
    own = await open_as("own")
    out = await open_as("out")
    await own.call("room.create", {"room": "dm", "type": "direct"})
    room = await own.call(
        "member.add",
        {"room": "dm", "invitees": ["out"], "invitation_required": True, "system_message": True},
    )
    assert room["invitations"] == [], "invitation_required is ignored in a direct room"
    assert member(room, "out")["role"] == "member" and room["seq"] == 2
    got = await next_in(out, "dm")
    assert (got["type"], got["targets"], got["notify"]) == ("addMember", ["out"], True)

    for args in (
        {"invitees": ["new"]},
        {"invitees": ["new"], "invitation_required": True},
        {"invitees": ["out", "new"]},
    ):
        err = await own.fail("member.add", {"room": "dm", **args})
        assert (err["code"], err["reason"]) == (100012, "ROOM_FULL"), args
    err = await own.fail(
        "room.create", {"room": "dm2", "type": "direct", "members": ["out", "new"]}
    )
    assert err["code"] == 100012
    assert (await own.fail("room.get", {"room": "dm2"}))["code"] == 100004
    # re-adding a member of a full direct room is not an error (rule 8)
    room = await own.call("member.add", {"room": "dm", "invitees": ["out"]})
    assert room["seq"] == 2 and len(room["members"]) == 2
    # after one leaves there is room again
    await out.call("room.leave", {"room": "dm"})
    room = await own.call("member.add", {"room": "dm", "invitees": ["new"]})
    assert {m["id"] for m in room["members"]} == {"own", "new"}


# --- rule 7: non-members ----------------------------------------------------------------------


async def test_an_operator_or_target_who_is_not_a_member_is_100005(
    open_as: Open, srv: RawClient
) -> None:
    own = await open_as("own")
    out = await open_as("out")
    inv = await open_as("inv")
    before = await room_of(srv)
    failures = [
        (out, "member.add", {"invitees": ["new"]}),
        (out, "member.update", {"user": "mem", "properties": {"nickname": "x"}}),
        (out, "member.update", {"user": "out", "properties": {"nickname": "x"}}),
        (out, "member.remove", {"user": "gst"}),
        (inv, "member.add", {"invitees": ["new"]}),
        (inv, "member.update", {"user": "inv", "properties": {"nickname": "x"}}),
        (own, "member.update", {"user": "out", "properties": {"nickname": "x"}}),
        (own, "member.update", {"user": "inv", "properties": {"role": "guest"}}),
        (own, "member.remove", {"user": "out"}),
        (own, "member.remove", {"user": "inv"}),
        (srv, "member.update", {"user": "mem", "properties": {"level": 1}, "operator": "out"}),
        (srv, "member.update", {"user": "out", "properties": {"level": 1}}),
    ]
    for client, op, args in failures:
        err = await client.fail(op, {"room": "r", **args})
        assert (err["code"], err["reason"]) == (100005, "NOT_A_MEMBER"), (op, args, err)
        assert err["message"]
    assert await room_of(srv) == before
    await nothing_emitted(srv, own)


# --- rule 8: re-adding --------------------------------------------------------------------------


async def test_re_adding_a_member_emits_nothing(open_as: Open, srv: RawClient) -> None:
    own = await open_as("own")
    mem = await open_as("mem")
    before = await room_of(srv)
    room = await own.call("member.add", {"room": "r", "invitees": ["mem", "gst", "own"]})
    assert room == before, "nobody new: the unchanged room"
    ack = await own.call(
        "member.add",
        {
            "room": "r",
            "invitees": ["mem"],
            "reply": "ack",
            "invitation_required": True,
            "system_message": True,
        },
    )
    assert ack == {"room": "r", "seq": before["seq"]}
    assert await room_of(srv) == before, "a member is never (re)invited"
    await nothing_emitted(srv, own, mem)

    # a mix: only the new user is a target, roles of existing members are untouched
    room = await own.call("member.add", {"room": "r", "invitees": ["adm", "new", "gst"]})
    got = await next_in(mem, "r")
    assert (got["type"], got["targets"]) == ("addMember", ["new"])
    assert (member(room, "adm")["role"], member(room, "gst")["role"]) == ("admin", "guest")
    assert member(room, "adm")["joined_ms"] == member(before, "adm")["joined_ms"]


# --- remove and leave -------------------------------------------------------------------------


async def test_leave_is_for_every_member_but_the_owner(open_as: Open, srv: RawClient) -> None:
    own = await open_as("own")
    err = await own.fail("room.leave", {"room": "r"})
    assert (err["code"], err["reason"]) == (100006, "FORBIDDEN")
    for user in ("adm", "mem", "gst"):
        client = await open_as(user)
        assert await client.call("room.leave", {"room": "r"}) == {}
        got = await next_in(own, "r")
        assert (got["type"], got["sender"], got["targets"]) == ("leaveRoom", user, [user])
    room = await room_of(srv)
    assert {m["id"] for m in room["members"]} == {"own", "adm2", "mem2", "gst2"}
