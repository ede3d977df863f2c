"""The operations of docs/protocol.md §5: their argument models and how requests are framed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from . import models
from .errors import ErrorCode, RoomError, invalid


@dataclass(frozen=True)
class OpSpec:
    name: str
    args: type[BaseModel]
    mutating: bool  # counts against the rate limit (§8) and emits system messages
    server_only: bool = False


OPS: dict[str, OpSpec] = {
    spec.name: spec
    for spec in (
        OpSpec("auth", models.AuthArgs, mutating=False),
        OpSpec("user.upsert", models.UserUpsertArgs, mutating=True, server_only=True),
        OpSpec("room.create", models.RoomCreateArgs, mutating=True),
        OpSpec("room.get", models.RoomArgs, mutating=False),
        OpSpec("room.list", models.RoomListArgs, mutating=False),
        OpSpec("member.add", models.MemberAddArgs, mutating=True),
        OpSpec("invitation.accept", models.RoomMutationArgs, mutating=True),
        OpSpec("invitation.decline", models.RoomMutationArgs, mutating=True),
        OpSpec("member.update", models.MemberUpdateArgs, mutating=True),
        OpSpec("member.remove", models.MemberTargetArgs, mutating=True),
        OpSpec("room.leave", models.RoomMutationArgs, mutating=True),
        OpSpec("room.history", models.RoomHistoryArgs, mutating=False),
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
