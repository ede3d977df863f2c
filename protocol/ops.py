"""The operations of docs/protocol.md §5 — one table, `OPS` — and how requests are framed.

Pure: handlers and scripts are named here and resolved by the server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from . import models
from .errors import ErrorCode, RoomError, invalid


@dataclass(frozen=True)
class OpSpec:
    """One op, defined once: the WebSocket dispatch, the server-only check, the clients'
    method names and the docs are derived from it or checked against it (tests)."""

    name: str
    args: type[BaseModel]
    result: type[BaseModel]  # with reply "room" (the default); "ack" answers models.Ack
    mutating: bool  # counts against the rate limit (§8), takes reply and idempotency_key
    # The Service method that runs it (resolved by the service); None: the hub's own (auth).
    handler: str | None
    script: str | None = None  # the Lua script under server/lua/ it runs, if any
    server_only: bool = False  # user tokens get 100006 (after 100002 for `operator`)
    client_method: str | None = None  # the RoomClient method that sends it
    emits: tuple[str, ...] = ()  # the system message kinds it may emit (§4.4)


OPS: dict[str, OpSpec] = {
    spec.name: spec
    for spec in (
        OpSpec("auth", models.AuthArgs, models.AuthResult, mutating=False, handler=None),
        OpSpec(
            "user.upsert",
            models.UserUpsertArgs,
            models.User,
            mutating=True,
            handler="user_upsert",
            script="user_upsert",
            server_only=True,
            client_method="upsert_user",
        ),
        OpSpec(
            "room.create",
            models.RoomCreateArgs,
            models.Room,
            mutating=True,
            handler="room_create",
            script="room_create",
            client_method="create_room",
            emits=get_args(models.RoomCreateKind),
        ),
        OpSpec(
            "room.get",
            models.RoomArgs,
            models.Room,
            mutating=False,
            handler="room_get",
            script="room_read",
            client_method="get_room",
        ),
        OpSpec(
            "room.list",
            models.RoomListArgs,
            models.RoomList,
            mutating=False,
            handler="room_list",
            client_method="list_rooms",
        ),
        OpSpec(
            "member.add",
            models.MemberAddArgs,
            models.Room,
            mutating=True,
            handler="member_add",
            script="member_add",
            client_method="add_members",
            emits=get_args(models.MemberAddKind),
        ),
        OpSpec(
            "invitation.accept",
            models.RoomMutationArgs,
            models.Room,
            mutating=True,
            handler="invitation_accept",
            script="invitation_answer",
            client_method="accept",
            emits=get_args(models.InvitationAcceptKind),
        ),
        OpSpec(
            "invitation.decline",
            models.RoomMutationArgs,
            models.Empty,
            mutating=True,
            handler="invitation_decline",
            script="invitation_answer",
            client_method="decline",
            emits=get_args(models.InvitationDeclineKind),
        ),
        OpSpec(
            "member.update",
            models.MemberUpdateArgs,
            models.Room,
            mutating=True,
            handler="member_update",
            script="member_update",
            client_method="update_member",
            emits=get_args(models.MemberUpdateKind),
        ),
        OpSpec(
            "member.remove",
            models.MemberTargetArgs,
            models.Room,
            mutating=True,
            handler="member_remove",
            script="member_remove",
            client_method="remove_member",
            emits=get_args(models.MemberRemoveKind),
        ),
        OpSpec(
            "room.leave",
            models.RoomMutationArgs,
            models.Empty,
            mutating=True,
            handler="room_leave",
            script="member_remove",
            client_method="leave",
            emits=get_args(models.RoomLeaveKind),
        ),
        OpSpec(
            "room.history",
            models.RoomHistoryArgs,
            models.HistoryPage,
            mutating=False,
            handler="room_history",
            script="room_read",
            client_method="history",
        ),
    )
}


@dataclass(frozen=True)
class Request:
    id: int | str | None
    op: str
    args: dict[str, Any]


def reply_id(frame: dict[str, Any]) -> int | str | None:
    """The `re` for a reply to this frame: its id if it is a valid one, else null."""
    request_id = frame.get("id")
    if isinstance(request_id, int | str) and not isinstance(request_id, bool):
        return request_id
    return None


def parse_request(frame: dict[str, Any]) -> Request:
    """Split a decoded frame into id, op and raw args (validated later, per op)."""
    request_id = reply_id(frame)
    if request_id is None and frame.get("id") is not None:
        raise RoomError(ErrorCode.MALFORMED_FRAME, "id must be an integer or a string")
    op = frame.get("op")
    if op is None:
        raise RoomError(ErrorCode.MALFORMED_FRAME, "frame has no 'op'")
    if not isinstance(op, str):
        raise RoomError(ErrorCode.MALFORMED_FRAME, "'op' must be a string")
    args = frame.get("args", {})
    if args is None:
        args = {}
    return Request(request_id, op, args)


def lookup(op: str) -> OpSpec:
    spec = OPS.get(op)
    if spec is None:
        raise RoomError(ErrorCode.UNKNOWN_OP, f"unknown op '{op}'")
    return spec


def validate_args(spec: OpSpec, args: Any) -> Any:
    """Validate args against the op's model, or raise 100002 naming the argument at fault."""
    if not isinstance(args, dict):
        raise invalid("args", "args must be a map")
    try:
        return spec.args.model_validate(args)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = list(first["loc"])
        if "[key]" in loc:  # a bad map key: name the map, not pydantic's marker
            loc = loc[: loc.index("[key]") - 1]
        field = ".".join(str(part) for part in loc) or "args"
        if first["type"] == "extra_forbidden":
            message = f"{spec.name} takes no argument '{field}'"
        elif first["type"] == "missing":
            message = f"{field} is required"
        else:
            message = f"{field}: {first['msg'].removeprefix('Value error, ')}"
        raise invalid(field, message) from None
