"""Room custom props (room.update `custom`) follow member.update's custom prop rules through the
same code; room.update and room.members args; how the store decodes a room's props and a
member page; room_members.lua's byte order, with the native sort and with the sort by bytes."""

from __future__ import annotations

import re
from typing import Any

import fakeredis
import orjson
import pytest

from roomhub.protocol import limits, models
from roomhub.protocol.errors import ErrorCode, RoomError
from roomhub.protocol.ops import lookup, validate_args
from roomhub.server.store import lua
from roomhub.server.store.scripts import RoomMembers, room_from_state


def _field(call: Any, *args: Any) -> str | None:
    with pytest.raises(RoomError) as info:
        call(*args)
    assert info.value.code is ErrorCode.INVALID_PARAMETER
    return info.value.field


VALUES: list[Any] = [0, -1.5, 2**53, "é🚀", True, None, [], {}, {"b": [1, {"a": None}], "a": 2}]


@pytest.mark.parametrize("value", VALUES)
def test_room_props_are_encoded_as_member_props_are(value: Any) -> None:
    (room,) = models.room_custom_changes({"k": value})
    (member,) = models.property_changes({"k": value})
    assert room == member
    if value is not None:
        assert room.value_json == orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


@pytest.mark.parametrize(
    "custom,field",
    [
        ({"1a": 1}, "custom.1a"),
        ({"a b": 1}, "custom.a b"),
        ({"a" * 65: 1}, "custom." + "a" * 65),
        ({"ok": "x" * (limits.PROP_VALUE_MAX_BYTES - 1)}, "custom.ok"),
        ({"ok": float("nan")}, "custom.ok"),
        ({"ok": {"x": [float("inf")]}}, "custom.ok.x.0"),
        ({"ok": b"bytes"}, "custom.ok"),
    ],
)
def test_bad_room_props_name_their_path(custom: dict[str, Any], field: str) -> None:
    assert _field(models.room_custom_changes, custom) == field
    # and the member props path refuses the same value or name
    member = {f"p_{name}" if name[:1].isalpha() else name: v for name, v in custom.items()}
    assert _field(models.property_changes, member) is not None


def test_room_prop_names_are_not_member_field_names() -> None:
    """`id`, `props`, `joined_ms` are Member fields; a room's props are a map of their own."""
    changes = models.room_custom_changes({"id": 1, "props": 2, "nickname": 3, "a" * 64: 4})
    assert [c.name for c in changes] == ["id", "props", "nickname", "a" * 64]
    assert all(not c.builtin for c in changes)


def test_the_largest_value() -> None:
    (change,) = models.room_custom_changes({"k": "x" * (limits.PROP_VALUE_MAX_BYTES - 2)})
    assert change.value_json is not None
    assert len(change.value_json) == limits.PROP_VALUE_MAX_BYTES


def test_limits() -> None:
    assert (limits.ROOM_PROPS_MAX, limits.MEMBERS_LIMIT_MAX, limits.MEMBERS_LIMIT_DEFAULT) == (
        32,
        500,
        100,
    )


@pytest.mark.parametrize(
    "args,field",
    [
        ({}, "args"),
        ({"name": None}, "args"),
        ({"custom": {}}, "custom"),
        ({"custom": {f"p{i}": i for i in range(33)}}, "custom"),
        ({"custom": {1: 1}}, "custom"),
        ({"name": "x" * 129}, "name"),
    ],
)
def test_room_update_args(args: dict[str, Any], field: str) -> None:
    assert _field(validate_args, lookup("room.update"), {"room": "r", **args}) == field


def test_room_update_args_accepted() -> None:
    spec = lookup("room.update")
    parsed = validate_args(spec, {"room": "r", "custom": {f"p{i}": None for i in range(32)}})
    assert parsed.name is None and len(parsed.custom) == 32
    assert validate_args(spec, {"room": "r", "name": ""}).name == ""


@pytest.mark.parametrize("limit", [0, 501, -1, "5", 2.0, True])
def test_room_members_limit(limit: Any) -> None:
    spec = lookup("room.members")
    assert _field(validate_args, spec, {"room": "r", "limit": limit}) == "limit"


def test_room_members_defaults() -> None:
    parsed = validate_args(lookup("room.members"), {"room": "r"})
    assert (parsed.after, parsed.limit) == (None, limits.MEMBERS_LIMIT_DEFAULT)
    assert validate_args(lookup("room.members"), {"room": "r", "limit": 500}).limit == 500


def _meta(**fields: str) -> list[bytes]:
    return [item.encode() for pair in fields.items() for item in pair]


def test_room_from_state_decodes_custom() -> None:
    stored = orjson.dumps({"a": "1", "b": '{"x":[null,2.5]}', "c": '"s"'}).decode()
    room = room_from_state("r", _meta(name="n", owner="o", seq="3", custom=stored), None, [])
    assert room["custom"] == {"a": 1, "b": {"x": [None, 2.5]}, "c": "s"}
    assert room_from_state("r", _meta(name="n"), [], [])["custom"] == {}
    models.Room.model_validate({**room, "created_ms": 0})


def test_a_member_page_from_the_script_reply() -> None:
    record = orjson.dumps({"role": "admin", "props": {"k": "[1]"}, "level": 2, "joined_ms": 5})
    call = RoomMembers("r", limit=2)
    page = call.parse([0, b"", 7, [b"bob"], [record], b"bob"])
    assert page["next"] == "bob"
    (bob,) = page["members"]
    assert (bob["id"], bob["role"], bob["props"], bob["level"]) == ("bob", "admin", {"k": [1]}, 2)
    assert call.parse([0, b"", 7, [], [], b""]) == {"members": [], "next": None}
    models.MemberPage.model_validate(page)


# --- room_members.lua's order ----------------------------------------------------------------

MEMBERS_LUA = lua.room_script("room_members", False)


def test_the_collation_probes_are_in_byte_order_and_catch_other_collations() -> None:
    (listed,) = re.findall(r"local PROBES = \{(.*)\}", MEMBERS_LUA)
    probes = re.findall(r"'([^']*)'", listed)
    assert probes == sorted(probes, key=str.encode)
    assert set("".join(probes)) >= set("-.:@_") | {"0", "9", "A", "Z", "a", "z"}
    # what a case-blind or a punctuation-blind collation would make of them
    for key in (str.lower, lambda s: re.sub(r"[-.:@_]", "", s) or s):
        assert sorted(probes, key=key) != probes


@pytest.mark.parametrize("native", [True, False])
def test_members_come_in_byte_order_with_either_sort(native: bool) -> None:
    source = (
        MEMBERS_LUA
        if native
        else MEMBERS_LUA.replace("local native = true", "local native = false")
    )
    assert native or source != MEMBERS_LUA
    redis = fakeredis.FakeRedis()
    ids = ["own", "Zed", "a-b", "a.b", "a0", "aB", "ab", "b:1", "b_1", "_x", "@y", "9"]
    redis.hset("meta", mapping={"seq": 1})
    record = orjson.dumps({"role": "member", "props": {}, "joined_ms": 1})
    redis.hset("members", mapping={user: record for user in ids})
    script = redis.register_script(source)

    def page(after: str | None, limit: int) -> dict[str, Any]:
        params = {"room": "r", "limit": limit, **({"after": after} if after else {})}
        reply = script(keys=["meta", "members", "invites", "log"], args=[orjson.dumps(params)])
        return RoomMembers("r", after=after, limit=limit).parse(reply)

    listed, after = [], None
    while True:
        got = page(after, 5)
        listed += [m["id"] for m in got["members"]]
        after = got["next"]
        if after is None:
            break
    assert listed == sorted(ids, key=str.encode)
    assert [m["id"] for m in page("a1", 2)["members"]] == ["aB", "ab"]
    assert page("zz", 2) == {"members": [], "next": None}
