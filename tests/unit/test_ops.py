"""Operations (PROTOCOL.md §4), request framing (§2, decisions.md) and error codes (§6)."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest
from pydantic import ValidationError

from roomhub.protocol.errors import PRECEDENCE, ErrorCode, RoomError, invalid
from roomhub.protocol.ops import OPS, Request, lookup, parse_request, validate_args

from ..spec import ERROR_REASONS, MINIMAL_ARGS

# --- the op table ------------------------------------------------------------------------

# op -> (required args, optional args), from PROTOCOL.md §4 plus `operator` (any op but auth)
# and `reply` (every mutating op; user.upsert accepts and ignores it).
MUTATING = {"reply", "operator", "idempotency_key"}
OP_ARGS: dict[str, tuple[set[str], set[str]]] = {
    "auth": ({"key", "token"}, {"resume", "presence"}),
    "user.upsert": ({"id"}, {"nickname", "avatar"} | MUTATING),
    "room.create": (set(), {"room", "name", "type", "members", "owner", "custom"} | MUTATING),
    "room.get": ({"room"}, {"operator", "presence"}),
    "room.list": (set(), {"operator"}),
    "member.add": (
        {"room", "invitees"},
        {"invitation_required", "system_message"} | MUTATING,
    ),
    "invitation.accept": ({"room"}, MUTATING),
    "invitation.decline": ({"room"}, MUTATING),
    "member.update": (
        {"room", "user", "properties"},
        {"system_message", "notification_extension"} | MUTATING,
    ),
    "member.remove": ({"room", "user"}, MUTATING),
    "room.leave": ({"room"}, MUTATING),
    "room.history": ({"room"}, {"after_seq", "limit", "operator"}),
    "room.dismiss": ({"room"}, MUTATING),
    "room.update": ({"room"}, {"name", "custom"} | MUTATING),
    "room.members": ({"room"}, {"after", "limit", "operator"}),
    "room.transfer": ({"room", "to"}, MUTATING),
    "invitation.cancel": ({"room", "invitees"}, MUTATING),
    # additive ops of the server side: they act as nobody, so they take no `operator`
    "room.watch": ({"room"}, {"after_seq"}),
    "room.unwatch": ({"room"}, set()),
    "app.rooms": (set(), {"after", "prefix", "limit"}),
    # presence (an addition): who of the room's members is online
    "room.presence": ({"room"}, {"operator"}),
}

# Every op but these reads is rate limited (§8).
READ_ONLY = {
    *("auth", "room.get", "room.list", "room.history", "room.members"),
    *("room.watch", "room.unwatch", "app.rooms", "room.presence"),
}


def _invalid(op: str, args: Any) -> RoomError:
    with pytest.raises(RoomError) as info:
        validate_args(lookup(op), args)
    error = info.value
    assert error.code == ErrorCode.INVALID_PARAMETER
    assert error.field is not None
    wire = error.to_wire()
    assert wire["code"] == 100002 and wire["reason"] == "INVALID_PARAMETER"
    assert wire["field"] == error.field
    return error


def test_every_op_of_the_protocol_is_defined() -> None:
    assert set(OPS) == set(OP_ARGS)
    for name, spec in OPS.items():
        assert spec.name == name
        assert lookup(name) is spec


@pytest.mark.parametrize("op", sorted(OP_ARGS))
def test_op_args_match_the_protocol(op: str) -> None:
    required, optional = OP_ARGS[op]
    fields = OPS[op].args.model_fields
    assert set(fields) == required | optional
    assert {name for name, f in fields.items() if f.is_required()} == required


@pytest.mark.parametrize("op", sorted(OP_ARGS))
def test_mutating_flag(op: str) -> None:
    assert OPS[op].mutating is (op not in READ_ONLY)
    assert OPS[op].server_only is (op in ("user.upsert", "room.watch", "room.unwatch", "app.rooms"))


@pytest.mark.parametrize("op", sorted(MINIMAL_ARGS))
def test_minimal_valid_args(op: str) -> None:
    parsed = validate_args(lookup(op), MINIMAL_ARGS[op])
    for name, value in MINIMAL_ARGS[op].items():
        assert getattr(parsed, name) == value


@pytest.mark.parametrize("op", sorted(MINIMAL_ARGS))
@pytest.mark.parametrize("unknown", ["bogus", "Room", "invitee", "operator_account_id"])
def test_unknown_arg_is_named(op: str, unknown: str) -> None:
    error = _invalid(op, {**MINIMAL_ARGS[op], unknown: 1})
    assert error.field == unknown
    assert repr(unknown) in error.message


def test_operator_is_not_an_auth_arg() -> None:
    assert _invalid("auth", {**MINIMAL_ARGS["auth"], "operator": "alice"}).field == "operator"


@pytest.mark.parametrize(
    "op,name", [(op, name) for op in sorted(OP_ARGS) for name in sorted(OP_ARGS[op][0])]
)
def test_missing_required_arg(op: str, name: str) -> None:
    args = dict(MINIMAL_ARGS[op])
    del args[name]
    error = _invalid(op, args)
    assert error.field == name
    assert "required" in error.message


@pytest.mark.parametrize("op", sorted(MINIMAL_ARGS))
@pytest.mark.parametrize("args", [[], "room", 1, b"{}", True], ids=repr)
def test_args_not_a_map(op: str, args: Any) -> None:
    assert _invalid(op, args).field == "args"


def test_defaults() -> None:
    add = validate_args(lookup("member.add"), MINIMAL_ARGS["member.add"])
    assert (add.invitation_required, add.system_message, add.reply, add.operator) == (
        False,
        False,
        "room",
        None,
    )
    create = validate_args(lookup("room.create"), {})
    assert (create.room, create.name, create.type, create.members, create.owner) == (
        None,
        "",
        "group",
        [],
        None,
    )
    history = validate_args(lookup("room.history"), MINIMAL_ARGS["room.history"])
    assert (history.after_seq, history.limit) == (0, 50)
    update = validate_args(lookup("member.update"), MINIMAL_ARGS["member.update"])
    assert (update.system_message, update.notification_extension) == (False, None)


def test_validated_args_are_frozen() -> None:
    parsed = validate_args(lookup("room.get"), {"room": "r"})
    with pytest.raises(ValidationError):
        parsed.room = "other"  # type: ignore[misc]


# --- request framing ---------------------------------------------------------------------


@pytest.mark.parametrize("request_id", [0, 7, -1, 2**40, "", "abc", "x" * 100])
def test_parse_request_ids(request_id: int | str) -> None:
    request = parse_request({"id": request_id, "op": "room.get", "args": {"room": "r"}})
    assert request == Request(request_id, "room.get", {"room": "r"})


def test_parse_request_without_id() -> None:
    assert parse_request({"op": "room.list"}) == Request(None, "room.list", {})


@pytest.mark.parametrize("request_id", [True, False, 1.0, 1.5, [1], {"a": 1}, b"7"], ids=repr)
def test_parse_request_bad_id(request_id: Any) -> None:
    with pytest.raises(RoomError) as info:
        parse_request({"id": request_id, "op": "room.list"})
    assert info.value.code == ErrorCode.MALFORMED_FRAME


@pytest.mark.parametrize(
    "frame",
    [{}, {"id": 1}, {"id": 1, "op": None}, {"id": 1, "args": {}}, {"OP": "room.list"}],
    ids=repr,
)
def test_parse_request_missing_op(frame: dict[str, Any]) -> None:
    with pytest.raises(RoomError) as info:
        parse_request(frame)
    assert info.value.code == ErrorCode.MALFORMED_FRAME


@pytest.mark.parametrize("op", [1, True, b"room.list", ["room.list"], {"op": 1}], ids=repr)
def test_parse_request_non_string_op(op: Any) -> None:
    with pytest.raises(RoomError) as info:
        parse_request({"id": 1, "op": op})
    assert info.value.code == ErrorCode.MALFORMED_FRAME


def test_parse_request_args_none_is_omitted() -> None:
    assert parse_request({"id": 1, "op": "room.list", "args": None}).args == {}
    assert parse_request({"id": 1, "op": "room.list"}).args == {}


def test_parse_request_passes_bad_args_to_validation() -> None:
    request = parse_request({"id": 1, "op": "room.get", "args": [1]})
    assert request.args == [1]
    assert _invalid("room.get", request.args).field == "args"


def test_parse_request_does_not_check_the_op_name() -> None:
    assert parse_request({"op": "no.such.op"}).op == "no.such.op"


@pytest.mark.parametrize("op", ["no.such.op", "", "Room.Get", "room.get ", "room", "ROOM.LIST"])
def test_lookup_unknown_op(op: str) -> None:
    with pytest.raises(RoomError) as info:
        lookup(op)
    assert info.value.code == ErrorCode.UNKNOWN_OP == 100011
    assert info.value.reason == "UNKNOWN_OP"


# --- error codes -------------------------------------------------------------------------

# "the first in this order wins: 100013, 100010, 100011, 100009, 100002, 100004/100007, 100005,
# 100006, 100003/100012/100008"
PRECEDENCE_GROUPS = [
    {100013},
    {100010},
    {100011},
    {100009},
    {100002},
    {100004, 100007},
    {100005},
    {100006},
    {100003, 100012, 100008},
]


def test_error_codes_match_the_protocol() -> None:
    assert {int(code): code.reason for code in ErrorCode} == ERROR_REASONS
    for value, reason in ERROR_REASONS.items():
        assert ErrorCode(value).reason == reason
        assert ErrorCode[reason] == value


def test_precedence_matches_the_protocol() -> None:
    assert len(PRECEDENCE) == len(set(PRECEDENCE)) == len(ERROR_REASONS) - 1  # all but INTERNAL
    position = {int(code): i for i, code in enumerate(PRECEDENCE)}
    flat = [code for group in PRECEDENCE_GROUPS for code in group]
    assert set(position) == set(flat)
    for earlier, later in pairwise(PRECEDENCE_GROUPS):
        assert max(position[c] for c in earlier) < min(position[c] for c in later)


def test_room_error_to_wire_minimal() -> None:
    error = RoomError(ErrorCode.ROOM_NOT_FOUND, "room 'x' does not exist")
    assert error.to_wire() == {
        "code": 100004,
        "reason": "ROOM_NOT_FOUND",
        "message": "room 'x' does not exist",
    }
    assert type(error.to_wire()["code"]) is int
    assert str(error) == "room 'x' does not exist"


def test_room_error_to_wire_full() -> None:
    invalid_error = invalid("invitees.3", "bad id")
    assert invalid_error.to_wire() == {
        "code": 100002,
        "reason": "INVALID_PARAMETER",
        "message": "bad id",
        "field": "invitees.3",
    }
    limited = RoomError(100009, "slow down", retry_after_ms=250)
    assert limited.code is ErrorCode.RATE_LIMITED
    assert limited.to_wire() == {
        "code": 100009,
        "reason": "RATE_LIMITED",
        "message": "slow down",
        "retry_after_ms": 250,
    }
    assert RoomError(100009, "now", retry_after_ms=0).to_wire()["retry_after_ms"] == 0


@pytest.mark.parametrize(
    "error",
    [
        RoomError(ErrorCode.FORBIDDEN, "no"),
        RoomError(ErrorCode.INVALID_PARAMETER, "bad", field="properties.nickname"),
        RoomError(ErrorCode.RATE_LIMITED, "later", retry_after_ms=17),
        RoomError(ErrorCode.MALFORMED_FRAME, ""),
    ],
    ids=repr,
)
def test_room_error_wire_round_trip(error: RoomError) -> None:
    back = RoomError.from_wire(error.to_wire())
    assert (back.code, back.message, back.field, back.retry_after_ms) == (
        error.code,
        error.message,
        error.field,
        error.retry_after_ms,
    )
    assert back.to_wire() == error.to_wire()


def test_room_error_from_sparse_wire() -> None:
    error = RoomError.from_wire({})
    assert error.code is ErrorCode.INTERNAL
    assert error.message == ""
    assert (error.field, error.retry_after_ms) == (None, None)


def test_room_error_rejects_unknown_codes() -> None:
    with pytest.raises(ValueError):
        RoomError(99, "not a roomhub code")
