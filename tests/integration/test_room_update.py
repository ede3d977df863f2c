"""room.update and room.members (docs/protocol.md §5.14, §5.15) from outside: who may, the
custom props' rules and limits, updateRoom carrying only what changed (and nothing for no
change) to every member on every node, idempotency keys; member pages in id order, their
bounds and who may read them, a member joining between pages; both over the server API.

Each test on the `hub` fixture runs on every store, and the encoding alternates with it."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from roomhub.clients import RoomClient
from roomhub.protocol.models import Ack, MemberPage, Room
from roomhub.server.hub import Hub

from ..support import (
    APP,
    Open,
    RawClient,
    alternating,
    authenticated,
    probe,
    token,
    update_args,
    ws_url,
)

pytestmark = pytest.mark.timeout(60)

SERVER = "@server"
# Room "r": one user per role; "out" is a known non-member, "inv" has a pending invitation.
ROLE_OF = {"own": "owner", "adm": "admin", "mem": "member", "gst": "guest"}


async def setup(srv: RawClient, room: str = "r") -> None:
    await asyncio.gather(
        *(srv.call("user.upsert", {"id": user}) for user in [*ROLE_OF, "out", "inv"])
    )
    members = [user for user in ROLE_OF if user != "own"]
    await srv.call("room.create", {"room": room, "owner": "own", "members": members})
    await srv.call("member.update", update_args(room, "adm", {"role": "admin"}))
    await srv.call("member.update", update_args(room, "gst", {"role": "guest"}))
    await srv.call("member.add", {"room": room, "invitees": ["inv"], "invitation_required": True})


async def seq_of(srv: RawClient, room: str = "r") -> int:
    return int((await srv.call("room.get", {"room": room}))["seq"])


async def next_of(client: RawClient, room: str = "r") -> dict[str, Any]:
    """The client's next system message of `room` (earlier ones of other rooms skipped)."""
    while True:
        message = await client.event()
        if message["room"] == room:
            return message


async def settle(client: RawClient, seq: int, room: str = "r") -> None:
    await client.events_until(seq, room)


def update_room(room: str = "r", **args: Any) -> dict[str, Any]:
    return {"room": room, **args}


# --- room.update: who may, and what everyone sees ------------------------------------------


async def test_the_owner_updates_and_every_member_hears_it(open_as: Open, srv: RawClient) -> None:
    await setup(srv)
    clients = {user: await open_as(user) for user in [*ROLE_OF, "out", "inv"]}
    seq = await seq_of(srv)
    custom = {"topic": "launch", "limits": {"n": [1, 2.5, None, True]}, "emoji": "火🚀"}
    room = await clients["own"].call("room.update", update_room(name="Launch", custom=custom))
    assert (room["name"], room["custom"], room["seq"]) == ("Launch", custom, seq + 1)
    assert {m["id"] for m in room["members"]} == set(ROLE_OF)

    for user in ROLE_OF:  # connected after the setup: this is their first event
        message = await next_of(clients[user])
        assert message == {
            "room": "r",
            "seq": seq + 1,
            "type": "updateRoom",
            "sender": "own",
            "targets": [],
            "changes": {"name": "Launch", "custom": custom},
            "notify": True,
            "extension": None,
            "time_ms": message["time_ms"],
        }, user
    # an invitee receives only what names them (updateRoom names nobody); an outsider nothing
    await clients["out"].no_event(0.1)
    await clients["inv"].no_event(0)

    # every read of the room shows it: room.get (members, invitees, server), room.list, history
    for client in (clients["mem"], clients["inv"], srv):
        got = await client.call("room.get", {"room": "r"})
        assert (got["name"], got["custom"]) == ("Launch", custom)
    listed = await clients["gst"].call("room.list")
    assert [(r["id"], r["name"], r["custom"]) for r in listed["rooms"]] == [("r", "Launch", custom)]
    page = await srv.call("room.history", {"room": "r", "after_seq": seq})
    assert [m["type"] for m in page["messages"]] == ["updateRoom"]


async def test_who_may_update_the_room(open_as: Open, srv: RawClient) -> None:
    await setup(srv)
    seq = await seq_of(srv)
    adm = await open_as("adm")
    room = await adm.call("room.update", update_room(name="by admin", reply="ack"))
    assert room == {"room": "r", "seq": seq + 1}
    for user, code in (("mem", 100006), ("gst", 100006), ("out", 100005), ("inv", 100005)):
        client = await open_as(user)
        error = await client.fail("room.update", update_room(name="no", custom={"x": 1}))
        assert error["code"] == code, user
    # a server token with `operator` is checked as that user; without, unchecked
    assert (await srv.fail("room.update", update_room(name="no", operator="mem")))["code"] == 100006
    assert (await srv.fail("room.update", update_room(name="no", operator="out")))["code"] == 100005
    assert (await srv.fail("room.update", update_room("nope", name="no")))["code"] == 100004
    assert await seq_of(srv) == seq + 1, "a refused update changes nothing"

    own = await open_as("own")
    await srv.call("room.update", update_room(custom={"by": "adm"}, operator="adm"))
    await srv.call("room.update", update_room(custom={"by": "server"}))
    history = (await srv.call("room.history", {"room": "r", "after_seq": seq}))["messages"]
    assert [(m["sender"], m["changes"]) for m in history] == [
        ("adm", {"name": "by admin"}),
        ("adm", {"custom": {"by": "adm"}}),
        (SERVER, {"custom": {"by": "server"}}),
    ]
    final = await own.call("room.get", {"room": "r"})
    assert (final["name"], final["custom"], final["seq"]) == ("by admin", {"by": "server"}, seq + 3)


async def test_custom_props_set_remove_and_only_what_changed(open_as: Open, srv: RawClient) -> None:
    await setup(srv)
    own = await open_as("own")
    mem = await open_as("mem")
    await own.call("room.update", update_room(custom={"a": 1, "b": [1, 2], "c": {"d": "e"}}))
    seq = await seq_of(srv)
    await settle(mem, seq)
    # a: same value, b: removed, c: changed, new: added, gone: removing what is not there
    changes = {"a": 1, "b": None, "c": {"d": "f"}, "new": 0.5, "gone": None}
    room = await own.call("room.update", update_room(name="", custom=changes))
    assert room["custom"] == {"a": 1, "c": {"d": "f"}, "new": 0.5}
    message = await next_of(mem)
    assert (message["seq"], message["changes"]) == (
        seq + 1,
        {"custom": {"b": None, "c": {"d": "f"}, "new": 0.5}},
    ), "the name was already '' and a was already 1"

    # removing every prop leaves `custom` {}
    room = await own.call("room.update", update_room(custom={"a": None, "c": None, "new": None}))
    assert room["custom"] == {}
    message = await next_of(mem)
    assert message["changes"] == {"custom": {"a": None, "c": None, "new": None}}
    assert (await srv.call("room.get", {"room": "r"}))["custom"] == {}


async def test_an_update_that_changes_nothing_emits_nothing(open_as: Open, srv: RawClient) -> None:
    await setup(srv)
    own = await open_as("own")
    mem = await open_as("mem")
    await own.call("room.update", update_room(name="N", custom={"k": [1, {"x": None}]}))
    seq = await seq_of(srv)
    await settle(mem, seq)
    for args in (
        {"name": "N"},
        {"custom": {"k": [1, {"x": None}]}},
        {"custom": {"absent": None}},
        {"name": "N", "custom": {"k": [1, {"x": None}], "absent": None}},
    ):
        room = await own.call("room.update", update_room(**args))
        assert (room["seq"], room["name"], room["custom"]) == (seq, "N", {"k": [1, {"x": None}]})
        ack = await own.call("room.update", update_room(**args, reply="ack"))
        assert ack == {"room": "r", "seq": seq}, "no change: the room's current seq"
    # the next event is a probe's: nothing was emitted, no seq taken
    assert await probe(srv, "r", "own", mem) == seq + 1


async def test_name_only_and_custom_only(open_as: Open, srv: RawClient) -> None:
    await setup(srv)
    own = await open_as("own")
    await own.call("room.update", update_room(custom={"keep": True}))
    room = await own.call("room.update", update_room(name="Só o nome"))
    assert (room["name"], room["custom"]) == ("Só o nome", {"keep": True})
    room = await own.call("room.update", update_room(custom={"more": "x"}))
    assert (room["name"], room["custom"]) == ("Só o nome", {"keep": True, "more": "x"})


async def test_room_create_sets_the_first_custom_props_atomically(
    open_as: Open, srv: RawClient
) -> None:
    """room.create `custom` (issue 13): the room is born with its props, readable by a member
    at once, and later updates work on them; a bad one creates no room."""
    await srv.call("user.upsert", {"id": "own"})
    for custom, field in (
        ({"gone": None}, "custom.gone"),  # nothing to remove on a new room
        ({"1abc": 1}, "custom.1abc"),
        ({"big": "x" * 1023}, "custom.big"),
        ({f"p{i}": i for i in range(33)}, "custom"),
        ({}, "custom"),
    ):
        args = {"room": "born", "owner": "own", "custom": custom}
        error = await srv.fail("room.create", args)
        assert (error["code"], error["field"]) == (100002, field), custom
        assert (await srv.fail("room.get", {"room": "born"}))["code"] == 100004  # no room
    created = await srv.call(
        "room.create",
        {"room": "born", "owner": "own", "custom": {"cover": "c.png", "tags": ["a", 1]}},
    )
    assert created["custom"] == {"cover": "c.png", "tags": ["a", 1]}
    own = await open_as("own")
    assert (await own.call("room.get", {"room": "born"}))["custom"] == created["custom"]
    listed = await own.call("room.list", {})
    assert [r["custom"] for r in listed["rooms"] if r["id"] == "born"] == [created["custom"]]
    room = await own.call("room.update", update_room("born", custom={"cover": None, "n": 2}))
    assert room["custom"] == {"tags": ["a", 1], "n": 2}


# --- room.update: arguments and limits -----------------------------------------------------


async def test_room_update_arguments_are_checked(open_as: Open, srv: RawClient) -> None:
    await setup(srv)
    own = await open_as("own")
    seq = await seq_of(srv)
    long_name = "n" * 64 + "x"
    for args, field in (
        ({}, "args"),
        ({"name": None, "custom": None}, "args"),
        ({"custom": {}}, "custom"),
        ({"custom": {f"p{i}": i for i in range(33)}}, "custom"),
        ({"name": "é" * 65}, "name"),  # 130 bytes
        ({"name": 5}, "name"),
        ({"custom": {"1abc": 1}}, "custom.1abc"),
        ({"custom": {"a b": 1}}, "custom.a b"),
        ({"custom": {"": 1}}, "custom."),
        ({"custom": {long_name: 1}}, f"custom.{long_name}"),
        ({"custom": {"big": "x" * 1023}}, "custom.big"),  # 1025 bytes of JSON with the quotes
        ({"custom": {"deep": _nested(33)}}, "custom.deep" + ".0" * 33),  # the too deep item
        ({"custom": {"k": 1}, "bogus": 1}, "bogus"),
    ):
        error = await own.fail("room.update", update_room(**args))
        assert (error["code"], error["field"]) == (100002, field), args
    # exactly at the limits
    room = await own.call(
        "room.update",
        update_room(name="é" * 64, custom={"big": "x" * 1022, "deep": _nested(32), "a" * 64: 1}),
    )
    assert room["custom"]["big"] == "x" * 1022 and room["custom"]["deep"] == _nested(32)
    assert room["seq"] == seq + 1


async def test_non_finite_numbers_are_refused(open_as: Open, srv: RawClient) -> None:
    await setup(srv)
    own = await open_as("own", encoding="msgpack")  # JSON cannot even carry them
    for value, field in (
        (float("nan"), "custom.v"),
        (float("inf"), "custom.v"),
        ([1, float("-inf")], "custom.v.1"),
    ):
        error = await own.fail("room.update", update_room(custom={"v": value}))
        assert (error["code"], error["field"]) == (100002, field)


async def test_a_value_json_cannot_carry_is_refused_with_a_key_too(
    open_as: Open, srv: RawClient
) -> None:
    await setup(srv)
    own = await open_as("own", encoding="msgpack")  # bin: msgpack only
    for key in (None, "k-bin"):
        args = update_room(custom={"v": b"x"}, **({"idempotency_key": key} if key else {}))
        error = await own.fail("room.update", args)
        assert (error["code"], error["field"]) == (100002, "custom.v"), key
        error = await own.fail(
            "member.update",
            update_args("r", "own", {"v": b"x"}, **({"idempotency_key": key} if key else {})),
        )
        assert (error["code"], error["field"]) == (100002, "properties.v"), key


def _nested(depth: int) -> Any:
    """A value nested `depth` levels below the property."""
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


async def test_a_room_holds_at_most_32_custom_props(open_as: Open, srv: RawClient) -> None:
    await setup(srv)
    own = await open_as("own")
    out = await open_as("out")
    await own.call("room.update", update_room(custom={f"p{i}": i for i in range(32)}))
    seq = await seq_of(srv)
    error = await own.fail("room.update", update_room(custom={"p32": 32}))
    assert (error["code"], error["field"]) == (100002, "custom")
    # an outsider learns nothing of the room, not even that it is full
    assert (await out.fail("room.update", update_room(custom={"p32": 32})))["code"] == 100005
    # changing values, or removing one while adding one, stays within the cap
    await own.call("room.update", update_room(custom={"p0": "changed", "p1": None, "p32": 32}))
    room = await own.call("room.get", {"room": "r"})
    assert len(room["custom"]) == 32 and room["custom"]["p0"] == "changed"
    assert "p1" not in room["custom"] and room["seq"] == seq + 1
    # the server token is held to the cap too: it is a size limit, not a role rule
    error = await srv.fail("room.update", update_room(custom={"p33": 1}))
    assert (error["code"], error["field"]) == (100002, "custom")


# --- room.update: delivery across nodes, idempotency ----------------------------------------


async def test_update_room_reaches_every_member_on_both_nodes(two_hubs: tuple[Hub, Hub]) -> None:
    a, b = two_hubs
    specs = alternating(
        (a, "backend", True),
        (a, "own", False),
        (b, "adm", False),
        (a, "mem", False),
        (b, "gst", False),
        (b, "own", False),
    )
    async with authenticated(*specs) as (srv, own_a, adm_b, mem_a, gst_b, own_b):
        await setup(srv)
        seq = await seq_of(srv)
        ack = await adm_b.call(
            "room.update", update_room(name="two nodes", custom={"x": 1}, reply="ack")
        )
        assert ack == {"room": "r", "seq": seq + 1}
        for client in (own_a, adm_b, mem_a, gst_b, own_b):
            await settle(client, seq)
            message = await next_of(client)
            assert (message["seq"], message["type"], message["sender"], message["changes"]) == (
                seq + 1,
                "updateRoom",
                "adm",
                {"name": "two nodes", "custom": {"x": 1}},
            )


async def test_a_retry_with_the_idempotency_key_returns_the_first_outcome(
    open_as: Open, srv: RawClient
) -> None:
    await setup(srv)
    own = await open_as("own")
    mem = await open_as("mem")
    seq = await seq_of(srv)
    args = update_room(name="once", custom={"n": 1}, idempotency_key="k-1")
    first = await own.call("room.update", {**args, "reply": "ack"})
    assert first == {"room": "r", "seq": seq + 1}
    assert await own.call("room.update", {**args, "reply": "ack"}) == first
    again = await own.call("room.update", args)  # the room as it is now
    assert (again["seq"], again["name"], again["custom"]) == (seq + 1, "once", {"n": 1})
    assert (await next_of(mem))["seq"] == seq + 1
    error = await own.fail("room.update", {**args, "name": "other"})
    assert (error["code"], error["field"]) == (100002, "idempotency_key")
    # a refusal is an outcome too: retried after the rules would allow it, still refused
    refused = await mem.fail("room.update", update_room(name="mine", idempotency_key="k-2"))
    assert refused["code"] == 100006
    await srv.call("member.update", update_args("r", "mem", {"role": "admin"}))
    again_refused = await mem.fail("room.update", update_room(name="mine", idempotency_key="k-2"))
    assert again_refused["code"] == 100006
    assert (await srv.call("room.get", {"room": "r"}))["name"] == "once"
    await settle(mem, seq + 2)  # the assignAdmin
    assert await probe(srv, "r", "own", mem) == seq + 3


# --- room.members --------------------------------------------------------------------------

# Ids whose byte order differs from a case-insensitive or punctuation-blind collation.
IDS = ["Zed", "a-b", "a.b", "a0", "aB", "ab", "b:1", "b_1", "own"]


async def members_room(srv: RawClient, ids: list[str] = IDS, room: str = "m") -> None:
    await asyncio.gather(*(srv.call("user.upsert", {"id": user}) for user in ids))
    others = [user for user in ids if user != "own"]
    await srv.call("room.create", {"room": room, "owner": "own", "members": others})


async def pages(client: RawClient, room: str, limit: int, **args: Any) -> list[dict[str, Any]]:
    """Every page of room.members, following `next` until it is null."""
    got: list[dict[str, Any]] = []
    after = None
    while True:
        cursor = {} if after is None else {"after": after}
        page = await client.call("room.members", {"room": room, "limit": limit, **args, **cursor})
        assert set(page) == {"members", "next"}
        got.append(page)
        if page["next"] is None:
            return got
        assert page["next"] == page["members"][-1]["id"]
        after = page["next"]


async def test_members_page_in_id_order_across_three_pages(open_as: Open, srv: RawClient) -> None:
    await members_room(srv)
    own = await open_as("own")
    read = await pages(own, "m", 4)
    assert [len(page["members"]) for page in read] == [4, 4, 1]
    assert [page["next"] for page in read] == ["a0", "b_1", None]
    listed = [member for page in read for member in page["members"]]
    assert [m["id"] for m in listed] == sorted(IDS, key=str.encode), "byte order"
    room = await own.call("room.get", {"room": "m"})
    assert sorted(listed, key=lambda m: m["id"]) == sorted(room["members"], key=lambda m: m["id"])
    # a last page that is exactly full has no next
    assert [page["next"] for page in await pages(own, "m", 3)] == ["a.b", "ab", None]
    whole = await own.call("room.members", {"room": "m"})
    assert whole == {"members": listed, "next": None}
    # `after` need not be a member
    page = await own.call("room.members", {"room": "m", "after": "a1", "limit": 2})
    assert ([m["id"] for m in page["members"]], page["next"]) == (["aB", "ab"], "ab")
    assert await own.call("room.members", {"room": "m", "after": "zzz"}) == {
        "members": [],
        "next": None,
    }


async def test_members_limit_bounds_and_default(open_as: Open, srv: RawClient) -> None:
    ids = ["own", *(f"u{i:03}" for i in range(104))]
    await asyncio.gather(*(srv.call("user.upsert", {"id": user}) for user in ids))
    await srv.call("room.create", {"room": "big", "owner": "own", "members": ids[1:100]})
    await srv.call("member.add", {"room": "big", "invitees": ids[100:]})
    own = await open_as("own")
    for limit in (0, -1, 501, "10", 1.5, True):
        error = await own.fail("room.members", {"room": "big", "limit": limit})
        assert (error["code"], error["field"]) == (100002, "limit"), limit
    for after in ("", "a b", 5):
        error = await own.fail("room.members", {"room": "big", "after": after})
        assert (error["code"], error["field"]) == (100002, "after"), after
    default = await own.call("room.members", {"room": "big"})
    assert len(default["members"]) == 100 and default["next"] == "u098"
    assert [m["id"] for m in default["members"][:2]] == ["own", "u000"]
    rest = await own.call("room.members", {"room": "big", "after": default["next"]})
    assert [m["id"] for m in rest["members"]] == ["u099", "u100", "u101", "u102", "u103"]
    assert rest["next"] is None
    everything = await own.call("room.members", {"room": "big", "limit": 500})
    assert [m["id"] for m in everything["members"]] == sorted(ids, key=str.encode)
    assert everything["next"] is None
    assert len((await own.call("room.members", {"room": "big", "limit": 1}))["members"]) == 1


async def test_who_may_read_the_members(open_as: Open, srv: RawClient) -> None:
    await setup(srv)
    for user in ("own", "adm", "mem", "gst"):
        client = await open_as(user)
        page = await client.call("room.members", {"room": "r"})
        assert [m["id"] for m in page["members"]] == ["adm", "gst", "mem", "own"], user
    for user in ("out", "inv"):
        client = await open_as(user)
        assert (await client.fail("room.members", {"room": "r"}))["code"] == 100005, user
    page = await srv.call("room.members", {"room": "r", "limit": 1})
    assert ([m["id"] for m in page["members"]], page["next"]) == (["adm"], "adm")
    assert (await srv.call("room.members", {"room": "r", "operator": "gst"}))["next"] is None
    for operator in ("inv", "out"):
        error = await srv.fail("room.members", {"room": "r", "operator": operator})
        assert error["code"] == 100005, operator
    assert (await srv.fail("room.members", {"room": "nope"}))["code"] == 100004
    mem = await open_as("mem")
    error = await mem.fail("room.members", {"room": "r", "reply": "ack"})
    assert (error["code"], error["field"]) == (100002, "reply"), "a read takes no reply"
    member = next(m for m in page["members"] if m["id"] == "adm")
    assert member == next(
        m for m in (await srv.call("room.get", {"room": "r"}))["members"] if m["id"] == "adm"
    )


async def test_a_member_joining_between_pages_appears_once_or_not_at_all(
    open_as: Open, srv: RawClient
) -> None:
    await members_room(srv, ["own", "b", "d", "f", "h"])
    await asyncio.gather(*(srv.call("user.upsert", {"id": user}) for user in ("a", "e", "z")))
    own = await open_as("own")
    first = await own.call("room.members", {"room": "m", "limit": 2})
    assert ([m["id"] for m in first["members"]], first["next"]) == (["b", "d"], "d")
    # "a" joins before the cursor (never listed now), "e" and "z" after it (listed once)
    await srv.call("member.add", {"room": "m", "invitees": ["a", "e", "z"]})
    await srv.call("member.remove", {"room": "m", "user": "f"})  # leaves before being read
    ids = [m["id"] for m in first["members"]]
    after = first["next"]
    while after is not None:
        page = await own.call("room.members", {"room": "m", "after": after, "limit": 2})
        ids += [m["id"] for m in page["members"]]
        after = page["next"]
    assert ids == ["b", "d", "e", "h", "own", "z"]
    assert len(ids) == len(set(ids))


# --- the Python client -------------------------------------------------------------------------


async def test_the_client_methods(hub: Hub, srv: RawClient, enc: str) -> None:
    await setup(srv)
    url = ws_url(hub)
    async with RoomClient.connect(url, key=APP, token=token("own"), encoding=enc) as own:
        room = await own.update_room("r", name="py", custom={"k": [1], "gone": None})
        assert isinstance(room, Room) and (room.name, room.custom) == ("py", {"k": [1]})
        ack = await own.update_room("r", custom={"k": None}, reply="ack")
        assert isinstance(ack, Ack) and ack.seq == room.seq + 1
        page = await own.list_members("r", limit=3)
        assert isinstance(page, MemberPage)
        assert ([m.id for m in page.members], page.next) == (["adm", "gst", "mem"], "mem")
        rest = await own.list_members("r", after=page.next)
        assert ([m.id for m in rest.members], rest.next) == (["own"], None)
    async with RoomClient.connect(
        url, key=APP, token=token("backend", server=True), encoding=enc
    ) as backend:
        room = await backend.update_room("r", name="by adm", operator="adm")
        assert room.name == "by adm" and room.custom == {}
        page = await backend.list_members("r", operator="mem")
        assert len(page.members) == 4 and page.next is None


# --- over HTTP -------------------------------------------------------------------------------


async def test_both_ops_over_the_server_api(hub: Hub, open_as: Open, srv: RawClient) -> None:
    await setup(srv)
    mem = await open_as("mem")
    seq = await seq_of(srv)
    headers = {"Authorization": f"Bearer {token('backend', server=True)}", "X-Roomhub-Key": APP}
    base = f"http://127.0.0.1:{hub.http_port}/api/v1"
    async with httpx.AsyncClient(headers=headers) as http:
        reply = await http.post(f"{base}/room.update", json=update_room(custom={"via": "http"}))
        assert reply.status_code == 200, reply.text
        assert reply.json()["result"]["custom"] == {"via": "http"}
        refused = await http.post(f"{base}/room.update", json=update_room(name="x", operator="mem"))
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, 100006)
        page = await http.post(f"{base}/room.members", json={"room": "r", "limit": 2})
        assert page.status_code == 200, page.text
        assert page.json()["result"]["next"] == "gst"
        bad = await http.post(f"{base}/room.members", json={"room": "r", "limit": 501})
        assert (bad.status_code, bad.json()["error"]["field"]) == (400, "limit")
    message = await next_of(mem)
    assert (message["seq"], message["type"], message["sender"], message["changes"]) == (
        seq + 1,
        "updateRoom",
        SERVER,
        {"custom": {"via": "http"}},
    )
