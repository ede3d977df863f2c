"""Argument models (strict types, ids, UTF-8 byte sizes, counts), member.update properties, and
the reply/event objects (PROTOCOL.md §2-§4)."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from roomhub.protocol import limits
from roomhub.protocol.errors import ErrorCode, RoomError
from roomhub.protocol.models import (
    Member,
    PropertyChange,
    Room,
    SystemMessage,
    property_changes,
)
from roomhub.protocol.ops import lookup, validate_args

from ..spec import MEMBER_DEFAULTS, MINIMAL_ARGS

E = "é"  # 2 bytes of UTF-8
SMILE = "\U0001f600"  # 4 bytes of UTF-8


def ok(op: str, **args: Any) -> Any:
    return validate_args(lookup(op), {**MINIMAL_ARGS[op], **args})


def bad(op: str, **args: Any) -> str:
    """Validate, expect 100002, return the field it names."""
    with pytest.raises(RoomError) as info:
        validate_args(lookup(op), {**MINIMAL_ARGS[op], **args})
    assert info.value.code == ErrorCode.INVALID_PARAMETER
    assert info.value.field is not None
    return info.value.field


# --- ids ---------------------------------------------------------------------------------

GOOD_IDS = ["a", "A", "0", "x" * 64, "user_1.name@host:8080-x", "-", ".", "::"]
# '@...' is reserved for roomhub's own senders: a room may be named so, a user may not.
RESERVED_USER_IDS = ["@server", "@", "@alice"]
BAD_IDS = [
    "",
    "x" * 65,
    "a b",
    "a/b",
    "a\n",
    "\na",
    "a\t",
    E,
    "ａ",
    "a#b",
    "a,b",
    "{a}",
    "a*",
    "a\x00",
    "٣",  # an Arabic-Indic digit: \d would take it, [0-9] must not
]

# every arg that is a user or room id: (op, arg)
ID_ARGS: list[tuple[str, str]] = [
    ("user.upsert", "id"),
    ("room.create", "room"),
    ("room.create", "owner"),
    ("room.get", "room"),
    ("member.add", "room"),
    ("member.update", "room"),
    ("member.update", "user"),
    ("member.remove", "room"),
    ("member.remove", "user"),
    ("invitation.accept", "room"),
    ("invitation.decline", "room"),
    ("room.leave", "room"),
    ("room.history", "room"),
    ("room.list", "operator"),
    ("member.add", "operator"),
    ("room.history", "operator"),
]


@pytest.mark.parametrize("op,arg", ID_ARGS)
@pytest.mark.parametrize("value", GOOD_IDS)
def test_good_ids(op: str, arg: str, value: str) -> None:
    assert getattr(ok(op, **{arg: value}), arg) == value


ROOM_ID_ARGS = [(op, arg) for op, arg in ID_ARGS if arg == "room"]
USER_ID_ARGS = [(op, arg) for op, arg in ID_ARGS if arg != "room"]


@pytest.mark.parametrize("op,arg", ROOM_ID_ARGS)
@pytest.mark.parametrize("value", RESERVED_USER_IDS)
def test_rooms_may_start_with_at(op: str, arg: str, value: str) -> None:
    assert getattr(ok(op, **{arg: value}), arg) == value


@pytest.mark.parametrize("op,arg", USER_ID_ARGS)
@pytest.mark.parametrize("value", RESERVED_USER_IDS)
def test_user_ids_starting_with_at_are_reserved(op: str, arg: str, value: str) -> None:
    assert bad(op, **{arg: value}) == arg


def test_reserved_ids_in_user_lists_name_the_index() -> None:
    assert bad("member.add", invitees=["a", "@server"]) == "invitees.1"
    assert bad("room.create", members=["@server"]) == "members.0"


@pytest.mark.parametrize("op", ["room.history"])
def test_seqs_are_bounded_to_exact_doubles(op: str) -> None:
    assert ok(op, after_seq=2**53 - 1).after_seq == 2**53 - 1
    assert bad(op, after_seq=2**53) == "after_seq"
    assert bad(op, after_seq=2**63 - 1) == "after_seq"
    assert ok("auth", resume={"r": 2**53 - 1}).resume == {"r": 2**53 - 1}
    assert bad("auth", resume={"r": 2**63 - 1}) == "resume.r"
    assert bad("auth", resume={"r": 2**64}) == "resume.r"


def test_id_lists_name_the_index() -> None:
    assert bad("member.add", invitees=["a", "b", "c", "not ok"]) == "invitees.3"
    assert bad("member.add", invitees=["a", 7]) == "invitees.1"
    assert bad("room.create", members=["a", "b", ""]) == "members.2"
    assert ok("member.add", invitees=GOOD_IDS).invitees == GOOD_IDS


def test_resume_keys_are_room_ids_and_values_seqs() -> None:
    assert ok("auth", resume={"r1": 0, "r2": 5}).resume == {"r1": 0, "r2": 5}
    assert ok("auth", resume=None).resume is None
    assert bad("auth", resume={"r": -1}) == "resume.r"
    assert bad("auth", resume={"r": "1"}) == "resume.r"
    assert bad("auth", resume={"r": True}) == "resume.r"
    assert bad("auth", resume=[["r", 1]]) == "resume"


@pytest.mark.parametrize(
    "op,args,field",
    [
        ("auth", {"resume": {"bad key": 1}}, "resume"),
        ("member.update", {"properties": {b"k": 1}}, "properties"),
    ],
    ids=["resume", "properties"],
)
def test_dict_key_errors_are_dotted_paths(op: str, args: dict[str, Any], field: str) -> None:
    assert bad(op, **args) == field


# --- strict types ------------------------------------------------------------------------

NOT_STR = [b"room", 1, 1.5, True, ["r"], {"r": 1}]
STR_ARGS = [
    ("auth", "key"),
    ("auth", "token"),
    ("user.upsert", "id"),
    ("user.upsert", "nickname"),
    ("user.upsert", "avatar"),
    ("room.create", "name"),
    ("room.create", "room"),
    ("room.create", "owner"),
    ("room.get", "room"),
    ("member.update", "user"),
    ("member.update", "notification_extension"),
    ("member.remove", "user"),
    ("room.list", "operator"),
]


NOT_INT = ["0", "5", True, False, 1.0, 1.5, None, b"1", [1]]
INT_ARGS = [("room.history", "after_seq"), ("room.history", "limit")]
NOT_BOOL = [1, 0, "true", "false", None, 1.0]
BOOL_ARGS = [
    ("member.add", "invitation_required"),
    ("member.add", "system_message"),
    ("member.update", "system_message"),
]


def every_value_for_every_arg(args: list[tuple[str, str]], values: list[Any]) -> list[Any]:
    return [
        pytest.param(op, arg, value, id=f"{op}.{arg}={value!r}")
        for op, arg in args
        for value in values
    ]


BAD_VALUES = [
    *every_value_for_every_arg(ID_ARGS, BAD_IDS),
    *every_value_for_every_arg(STR_ARGS, NOT_STR),
    *every_value_for_every_arg(INT_ARGS, NOT_INT),
    *every_value_for_every_arg(BOOL_ARGS, NOT_BOOL),
]


@pytest.mark.parametrize("op,arg,value", BAD_VALUES)
def test_a_bad_value_names_its_arg(op: str, arg: str, value: Any) -> None:
    """Ids outside the id format, and strings, ints and bools strictly typed: 100002."""
    assert bad(op, **{arg: value}) == arg


@pytest.mark.parametrize("op,arg", BOOL_ARGS)
def test_bools(op: str, arg: str) -> None:
    assert getattr(ok(op, **{arg: True}), arg) is True
    assert getattr(ok(op, **{arg: False}), arg) is False


@pytest.mark.parametrize("value", ["a", ("a",), {"a": 1}, None, b"a"], ids=repr)
def test_lists_are_strict(value: Any) -> None:
    assert bad("member.add", invitees=value) == "invitees"


@pytest.mark.parametrize("value", ["ack", "room"])
def test_reply_shapes(value: str) -> None:
    assert ok("member.add", reply=value).reply == value


@pytest.mark.parametrize("value", ["Room", "ACK", "full", "", None, 1])
def test_bad_reply_shape(value: Any) -> None:
    assert bad("member.remove", reply=value) == "reply"


def test_room_type() -> None:
    assert ok("room.create", type="direct").type == "direct"
    for value in ["Group", "private", "", 1, None]:
        assert bad("room.create", type=value) == "type"


def test_null_optional_args_are_omitted() -> None:
    assert ok("member.add", operator=None).operator is None
    assert ok("room.create", room=None, owner=None).room is None
    assert ok("member.update", notification_extension=None).notification_extension is None


# --- sizes, in UTF-8 bytes ---------------------------------------------------------------

# (op, arg, limit in bytes)
BYTE_LIMITS = [
    ("user.upsert", "nickname", 32),
    ("user.upsert", "avatar", 1024),
    ("room.create", "name", 128),
]


@pytest.mark.parametrize("op,arg,limit", BYTE_LIMITS)
@pytest.mark.parametrize("char", ["a", E, SMILE], ids=["1-byte", "2-byte", "4-byte"])
def test_byte_limits_of_args(op: str, arg: str, limit: int, char: str) -> None:
    width = len(char.encode())
    fits = char * (limit // width)
    assert getattr(ok(op, **{arg: fits}), arg) == fits
    assert bad(op, **{arg: fits + char}) == arg
    assert bad(op, **{arg: "a" * (limit + 1)}) == arg


def test_nickname_counts_bytes_not_characters() -> None:
    assert ok("user.upsert", nickname=E * 16).nickname == E * 16  # 32 bytes
    assert bad("user.upsert", nickname=E * 17) == "nickname"  # 17 characters, 34 bytes


def test_room_name_counts_bytes() -> None:
    assert ok("room.create", name=E * 64).name == E * 64
    assert bad("room.create", name=E * 65) == "name"


def test_notification_extension_counts_characters() -> None:
    assert ok("member.update", notification_extension=E * 2048).notification_extension == E * 2048
    assert ok("member.update", notification_extension="").notification_extension == ""
    assert bad("member.update", notification_extension=E * 2049) == "notification_extension"
    assert bad("member.update", notification_extension="a" * 2049) == "notification_extension"


def test_invitee_count() -> None:
    assert bad("member.add", invitees=[]) == "invitees"
    assert len(ok("member.add", invitees=[f"u{i}" for i in range(100)]).invitees) == 100
    assert bad("member.add", invitees=[f"u{i}" for i in range(101)]) == "invitees"
    assert ok("member.add", invitees=["a", "a"]).invitees == [
        "a",
        "a",
    ]  # duplicates pass; the store counts them once


def test_properties_count() -> None:
    assert bad("member.update", properties={}) == "properties"
    props = {f"p{i}": i for i in range(32)}
    assert ok("member.update", properties=props).properties == props
    assert bad("member.update", properties={f"p{i}": i for i in range(33)}) == "properties"
    for value in [[], [["a", 1]], "a", None]:
        assert bad("member.update", properties=value) == "properties"


def test_history_limit_and_after_seq() -> None:
    assert ok("room.history", limit=1).limit == 1
    assert ok("room.history", limit=200).limit == 200
    assert bad("room.history", limit=0) == "limit"
    assert bad("room.history", limit=201) == "limit"
    assert bad("room.history", limit=-1) == "limit"
    assert ok("room.history", after_seq=0).after_seq == 0
    assert ok("room.history", after_seq=2**53 - 1).after_seq == 2**53 - 1
    assert bad("room.history", after_seq=-1) == "after_seq"


# --- member.update properties ------------------------------------------------------------


def one(name: str, value: Any) -> PropertyChange:
    [change] = property_changes({name: value})
    assert change.name == name
    return change


def rejected(properties: dict[str, Any]) -> str:
    with pytest.raises(RoomError) as info:
        property_changes(properties)
    assert info.value.code == ErrorCode.INVALID_PARAMETER
    assert info.value.field is not None
    return info.value.field


# (name, byte limit) of the string built-ins
BUILTIN_STRINGS = [("nickname", 32), ("avatar", 1024), ("custom_info", 60), ("extension", 2048)]


@pytest.mark.parametrize("name,limit", BUILTIN_STRINGS)
@pytest.mark.parametrize("char", ["a", E, SMILE], ids=["1-byte", "2-byte", "4-byte"])
def test_builtin_string_byte_limits(name: str, limit: int, char: str) -> None:
    width = len(char.encode())
    fits = char * (limit // width)
    change = one(name, fits)
    assert change.builtin is True
    assert change.value == fits
    assert change.value_json == orjson.dumps(fits)
    assert rejected({name: fits + char}) == f"properties.{name}"
    assert one(name, "").value == ""


def test_named_byte_limits() -> None:
    assert one("nickname", E * 16).value == E * 16
    assert rejected({"nickname": E * 17}) == "properties.nickname"
    assert one("custom_info", "a" * 60).value == "a" * 60
    assert rejected({"custom_info": "a" * 61}) == "properties.custom_info"
    assert one("custom_info", E * 30).value == E * 30
    assert rejected({"custom_info": E * 31}) == "properties.custom_info"
    assert one("extension", E * 1024).value == E * 1024
    assert rejected({"extension": E * 1025}) == "properties.extension"
    assert one("avatar", E * 512).value == E * 512
    assert rejected({"avatar": E * 513}) == "properties.avatar"


@pytest.mark.parametrize("name", ["nickname", "avatar", "custom_info", "extension", "role"])
@pytest.mark.parametrize("value", [b"x", 1, True, 1.5, ["x"], {"x": 1}], ids=repr)
def test_builtin_strings_are_strict(name: str, value: Any) -> None:
    assert rejected({name: value}) == f"properties.{name}"


@pytest.mark.parametrize("role", ["owner", "admin", "member", "guest"])
def test_role_values(role: str) -> None:
    change = one("role", role)
    assert (change.builtin, change.value, change.value_json) == (True, role, f'"{role}"'.encode())


@pytest.mark.parametrize("role", ["Owner", "ADMIN", "server", "", "moderator"])
def test_bad_role_values(role: str) -> None:
    assert rejected({"role": role}) == "properties.role"


def test_level_values() -> None:
    assert one("level", 0).value == 0
    top = one("level", 2**31 - 1)
    assert (top.value, top.value_json) == (2**31 - 1, b"2147483647")
    for value in [-1, 2**31, "0", "5", True, False, 1.0, 2.5, b"1", [1]]:
        assert rejected({"level": value}) == "properties.level", value


@pytest.mark.parametrize(
    "name", ["role", "nickname", "avatar", "level", "custom_info", "extension"]
)
def test_null_is_invalid_for_builtins(name: str) -> None:
    assert rejected({name: None}) == f"properties.{name}"


@pytest.mark.parametrize("name", ["id", "props", "joined_ms"])
@pytest.mark.parametrize("value", [1, "x", None])
def test_reserved_member_field_names(name: str, value: Any) -> None:
    assert rejected({name: value}) == f"properties.{name}"


GOOD_PROP_NAMES = ["score", "_", "_x", "a" * 64, "A.b-c_9", "location.city", "Id", "Props", "x-"]
BAD_PROP_NAMES = ["", "9lives", ".a", "-a", "a b", "a" * 65, "é", "a/b", "a:b", "a@b", "a\n"]


@pytest.mark.parametrize("name", GOOD_PROP_NAMES)
def test_custom_prop_names(name: str) -> None:
    change = one(name, 1)
    assert (change.builtin, change.value, change.value_json) == (False, 1, b"1")


@pytest.mark.parametrize("name", BAD_PROP_NAMES, ids=repr)
def test_bad_custom_prop_names(name: str) -> None:
    assert rejected({name: 1}) == f"properties.{name}"


def test_null_removes_a_custom_prop() -> None:
    change = one("score", None)
    assert (change.builtin, change.value, change.value_json) == (False, None, None)


@pytest.mark.parametrize(
    "value",
    [
        0,
        -5,
        2**63 - 1,
        1.5,
        "text",
        True,
        False,
        [],
        {},
        [1, "a", None, {"b": [2.5]}],
        {"nested": {"deep": [None, True]}},
    ],
    ids=repr,
)
def test_custom_prop_values(value: Any) -> None:
    change = one("score", value)
    assert change.builtin is False
    assert change.value == value
    assert orjson.loads(change.value_json) == value


def test_custom_prop_value_json_is_canonical() -> None:
    change = one("loc", {"z": 1, "a": {"y": [1, {"q": 0, "b": 1}], "b": None}})
    assert change.value_json == b'{"a":{"b":null,"y":[1,{"b":1,"q":0}]},"z":1}'
    assert one("loc", {"a": 1, "b": 2}).value_json == one("loc", {"b": 2, "a": 1}).value_json


def test_custom_prop_value_size() -> None:
    assert len(one("p", "a" * 1022).value_json) == 1024  # quotes included
    assert rejected({"p": "a" * 1023}) == "properties.p"
    assert len(one("p", E * 511).value_json) == 1024  # counted in UTF-8 bytes
    assert rejected({"p": E * 512}) == "properties.p"
    assert one("p", ["x" * 100] * 9).value_json  # 9 * 102 + 8 + 2 = 928
    assert rejected({"p": ["x" * 100] * 10}) == "properties.p"  # 1029


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_non_finite_floats_are_rejected(value: float) -> None:
    assert rejected({"p": value}) == "properties.p"
    assert rejected({"p": [1, value]}) == "properties.p.1"
    assert rejected({"p": {"a": {"b": value}}}) == "properties.p.a.b"


@pytest.mark.parametrize(
    "value", [b"bytes", [b"x"], {"a": b"x"}, {1: "int key"}, 2**64, -(2**63) - 1], ids=repr
)
def test_non_json_values_are_rejected(value: Any) -> None:
    assert rejected({"p": value}) == "properties.p"


def test_several_properties_in_order() -> None:
    changes = property_changes({"role": "admin", "score": 3, "nickname": "N", "gone": None})
    assert [(c.name, c.builtin) for c in changes] == [
        ("role", True),
        ("score", False),
        ("nickname", True),
        ("gone", False),
    ]


def test_first_bad_property_is_named() -> None:
    assert rejected({"nickname": "ok", "level": -1, "9bad": 1}) == "properties.level"


def test_property_change_is_frozen() -> None:
    change = one("score", 1)
    with pytest.raises(ValidationError):
        change.value = 2  # type: ignore[misc]


# --- objects in replies and events -------------------------------------------------------


def test_member_defaults() -> None:
    member = Member.model_validate({"id": "a", "role": "guest"})
    assert member.model_dump() == {
        "id": "a",
        "role": "guest",
        **MEMBER_DEFAULTS,
        "joined_ms": 0,
        "online": None,  # set only by room.get with `presence: true`
    }


def test_room_parses_a_reply() -> None:
    wire = {
        "id": "demo-room",
        "name": "Demo",
        "type": "group",
        "owner": "aaa",
        "created_ms": 1,
        "seq": 3,
        "future_field": "ignored",
        "members": [
            {
                **MEMBER_DEFAULTS,
                "id": "aaa",
                "role": "owner",
                "nickname": "A",
                "level": 1,
                "props": {"score": 3},
                "joined_ms": 1,
            },
            {**MEMBER_DEFAULTS, "id": "bbb", "role": "member", "joined_ms": 2},
        ],
        "invitations": [{"user": "ccc", "inviter": "aaa", "time_ms": 5}],
    }
    room = Room.model_validate(wire)
    owner = room.member("aaa")
    assert owner is not None and owner.props == {"score": 3}
    assert room.member("ccc") is None
    assert room.invitations[0].user == "ccc"
    # the room list: a Room without members
    listed = Room.model_validate({k: v for k, v in wire.items() if k != "members"})
    assert listed.members == []


def test_system_message_parses_an_event() -> None:
    message = SystemMessage.model_validate(
        orjson.loads(
            b'{"room":"r","seq":4,"type":"updateMember","sender":"@server","targets":["b"],'
            b'"changes":{"score":5,"gone":null},"notify":false,"extension":null,"time_ms":9}'
        )
    )
    assert message.changes == {"score": 5, "gone": None}
    assert message.extension is None
    for bad_type in ["update", "UpdateMember", ""]:
        with pytest.raises(ValidationError):
            SystemMessage.model_validate({**message.model_dump(), "type": bad_type})


@pytest.mark.parametrize(
    "mtype",
    [
        "createRoom",
        "addMember",
        "inviteMember",
        "acceptInvitation",
        "declineInvitation",
        "assignAdmin",
        "revokeAdmin",
        "setRole",
        "updateMember",
        "removeMember",
        "leaveRoom",
    ],
)
def test_every_system_message_type(mtype: str) -> None:
    message = SystemMessage.model_validate(
        {
            "room": "r",
            "seq": 1,
            "type": mtype,
            "sender": "a",
            "targets": [],
            "notify": True,
            "time_ms": 0,
        }
    )
    assert message.type == mtype


def test_limits_constants_match_the_protocol() -> None:
    assert limits.NICKNAME_MAX_BYTES == 32
    assert limits.AVATAR_MAX_BYTES == 1024
    assert limits.CUSTOM_INFO_MAX_BYTES == 60
    assert limits.EXTENSION_MAX_BYTES == 2048
    assert limits.ROOM_NAME_MAX_BYTES == 128
    assert limits.NOTIFICATION_EXTENSION_MAX_CHARS == 2048
    assert limits.PROP_VALUE_MAX_BYTES == 1024
    assert limits.PROPS_PER_MEMBER == 32
    assert limits.PROPERTIES_PER_UPDATE == 32
    assert limits.LEVEL_MAX == 2**31 - 1
    assert (limits.INVITEES_MIN, limits.INVITEES_MAX) == (1, 100)
    assert (limits.HISTORY_LIMIT_MAX, limits.HISTORY_LIMIT_DEFAULT) == (200, 50)
    assert limits.DEFAULT_MAX_FRAME_BYTES == 64 * 1024
    assert limits.utf8_len(E * 3 + SMILE + "a") == 11
