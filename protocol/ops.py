"""The operations of docs/protocol.md §5 — one table, `OPS` — and how requests are framed.

Pure: handlers and scripts are named here and resolved by the server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from . import models
from .errors import ErrorCode, RoomError, invalid
from .models import (
    AcceptKind,
    AddMembersKind,
    AppRoomsArgs,
    AuthArgs,
    AuthResult,
    CancelInvitationKind,
    CreateRoomKind,
    DeclineKind,
    DismissRoomKind,
    Empty,
    HistoryPage,
    InvitationCancelArgs,
    LeaveKind,
    MemberAddArgs,
    MemberPage,
    MemberTargetArgs,
    MemberUpdateArgs,
    RemoveMemberKind,
    Room,
    RoomArgs,
    RoomCreateArgs,
    RoomGetArgs,
    RoomHistoryArgs,
    RoomList,
    RoomListArgs,
    RoomMembersArgs,
    RoomMutationArgs,
    RoomPage,
    RoomPresence,
    RoomTransferArgs,
    RoomUnwatchArgs,
    RoomUpdateArgs,
    RoomWatchArgs,
    TransferOwnerKind,
    UpdateMemberKind,
    UpdateRoomKind,
    User,
    UserUpsertArgs,
)


@dataclass(frozen=True)
class OpSpec:
    """One op, defined once: the WebSocket dispatch, the server-only check and the clients'
    method names are derived from it; the docs and the Lua scripts are checked against it."""

    name: str
    args: type[BaseModel]
    result: type[BaseModel]  # with reply "room" (the default); "ack" answers models.Ack
    # The name of its handler on the Service and of its call on RoomClient; None for auth,
    # which the hub handles and the client sends on connecting.
    method: str | None
    script: str | None  # the Lua script under server/lua/ it runs, if any
    emits: tuple[str, ...]  # the system message kinds it may emit (§4.4)
    server_only: bool  # user tokens get 100006 (after 100002 for `operator`)
    # Counts against the rate limits (§8), takes `reply` and `idempotency_key`: its args
    # are MutatingArgs (an attribute, not a property: the hub reads it on every request).
    mutating: bool
    # Starts or stops the room's messages to the caller's own connection (room.watch,
    # room.unwatch): its handler is given the connection, which writes the reply first.
    stream: bool = False


def op(
    name: str,
    args: type[BaseModel],
    result: type[BaseModel],
    method: str | None,
    script: str | None = None,
    kinds: Any = None,
    *,
    server_only: bool = False,
    stream: bool = False,
) -> OpSpec:
    """A row of the table; `kinds`: a Literal of the message kinds it emits."""
    emits = get_args(kinds) if kinds is not None else ()
    mutating = issubclass(args, models.MutatingArgs)
    return OpSpec(name, args, result, method, script, emits, server_only, mutating, stream)


def _by_name(*specs: OpSpec) -> dict[str, OpSpec]:
    return {spec.name: spec for spec in specs}


# name, args, result, method, Lua script, the kinds it emits
OPS: dict[str, OpSpec] = _by_name(
    op("auth", AuthArgs, AuthResult, None),
    op("user.upsert", UserUpsertArgs, User, "upsert_user", "user_upsert", server_only=True),
    op("room.create", RoomCreateArgs, Room, "create_room", "room_create", CreateRoomKind),
    op("room.get", RoomGetArgs, Room, "get_room", "room_read"),
    op("room.list", RoomListArgs, RoomList, "list_rooms"),
    op("member.add", MemberAddArgs, Room, "add_members", "member_add", AddMembersKind),
    op("invitation.accept", RoomMutationArgs, Room, "accept", "invitation_answer", AcceptKind),
    op("invitation.decline", RoomMutationArgs, Empty, "decline", "invitation_answer", DeclineKind),
    op("member.update", MemberUpdateArgs, Room, "update_member", "member_update", UpdateMemberKind),
    op("member.remove", MemberTargetArgs, Room, "remove_member", "member_remove", RemoveMemberKind),
    op("room.leave", RoomMutationArgs, Empty, "leave", "member_remove", LeaveKind),
    op("room.history", RoomHistoryArgs, HistoryPage, "history", "room_read"),
    op("room.update", RoomUpdateArgs, Room, "update_room", "room_update", UpdateRoomKind),
    op("room.members", RoomMembersArgs, MemberPage, "list_members", "room_members"),
    op(
        "room.transfer", RoomTransferArgs, Room, "transfer_room", "room_transfer", TransferOwnerKind
    ),
    op(
        "invitation.cancel",
        InvitationCancelArgs,
        Room,
        "cancel_invitations",
        "invitation_cancel",
        CancelInvitationKind,
    ),
    op("room.dismiss", RoomMutationArgs, Empty, "dismiss_room", "room_dismiss", DismissRoomKind),
    # A server token follows a room live without being a member (the console, a backend).
    op("room.watch", RoomWatchArgs, Room, "watch_room", "room_read", server_only=True, stream=True),
    op("room.unwatch", RoomUnwatchArgs, Empty, "unwatch_room", server_only=True, stream=True),
    op("app.rooms", AppRoomsArgs, RoomPage, "app_rooms", server_only=True),
    op("room.presence", RoomArgs, RoomPresence, "presence", "room_read"),
)


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
