"""Frozen pydantic models of the wire objects (docs/protocol.md §2–§5).

Request args are strict (no "0" for an int, no bytes for a string), reject unknown
arguments, and count sizes in UTF-8 bytes. Reply and event models are what the Python
client parses; the hub builds its outgoing dicts directly and never re-validates them.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    model_validator,
)
from pydantic.json_schema import WithJsonSchema

from . import limits
from .codec import to_json_value
from .errors import RoomError, invalid
from .roles import Role


def _max_bytes(limit: int) -> AfterValidator:
    def check(value: str) -> str:
        if limits.utf8_len(value) > limit:
            raise ValueError(f"must be at most {limit} bytes of UTF-8")
        return value

    return AfterValidator(check)


def _schema(limit: int | None = None, pattern: str | None = None) -> WithJsonSchema:
    """The OpenAPI document's view of a checked string (the checks above stay the truth): the
    pattern, or the byte limit as maxLength, a bound every accepted value meets (one character
    is at least one byte)."""
    schema: dict[str, Any] = {"type": "string"}
    if pattern is not None:
        schema["pattern"] = f"^{pattern}$"
    if limit is not None:
        schema |= {"maxLength": limit, "description": f"at most {limit} bytes of UTF-8"}
    return WithJsonSchema(schema)


def _check_id(value: str) -> str:
    if not limits.ID_PATTERN.fullmatch(value):
        raise ValueError("must be 1-64 characters of [A-Za-z0-9_.@:-]")
    return value


def _check_prefix(value: str) -> str:
    if value and not limits.ID_PATTERN.fullmatch(value):
        raise ValueError("must be empty or 1-64 characters of [A-Za-z0-9_.@:-]")
    return value


def _check_user_id(value: str) -> str:
    if value.startswith(limits.RESERVED_USER_PREFIX):
        raise ValueError("user ids starting with '@' are reserved (e.g. '@server')")
    return value


def _check_idempotency_key(value: str) -> str:
    if not limits.IDEMPOTENCY_KEY_PATTERN.fullmatch(value):
        raise ValueError("must be 1-64 characters of [A-Za-z0-9_.:-]")
    return value


# A user id is an id that does not start with the reserved '@'.
USER_ID_PATTERN = f"[A-Za-z0-9_.:-][A-Za-z0-9_.@:-]{{0,{limits.ID_MAX_BYTES - 1}}}"
Id = Annotated[StrictStr, AfterValidator(_check_id), _schema(pattern=limits.ID_PATTERN.pattern)]
ID_PREFIX_PATTERN = f"[A-Za-z0-9_.@:-]{{0,{limits.ID_MAX_BYTES}}}"
UserId = Annotated[
    StrictStr,
    AfterValidator(_check_id),
    AfterValidator(_check_user_id),
    _schema(pattern=USER_ID_PATTERN),
]
IdempotencyKey = Annotated[
    StrictStr,
    AfterValidator(_check_idempotency_key),
    _schema(pattern=limits.IDEMPOTENCY_KEY_PATTERN.pattern),
]
Seq = Annotated[StrictInt, Field(ge=0, le=limits.SEQ_MAX)]
RoomName = Annotated[
    StrictStr, _max_bytes(limits.ROOM_NAME_MAX_BYTES), _schema(limits.ROOM_NAME_MAX_BYTES)
]
Nickname = Annotated[
    StrictStr, _max_bytes(limits.NICKNAME_MAX_BYTES), _schema(limits.NICKNAME_MAX_BYTES)
]
Avatar = Annotated[StrictStr, _max_bytes(limits.AVATAR_MAX_BYTES), _schema(limits.AVATAR_MAX_BYTES)]
CustomInfo = Annotated[
    StrictStr, _max_bytes(limits.CUSTOM_INFO_MAX_BYTES), _schema(limits.CUSTOM_INFO_MAX_BYTES)
]
Extension = Annotated[
    StrictStr, _max_bytes(limits.EXTENSION_MAX_BYTES), _schema(limits.EXTENSION_MAX_BYTES)
]
Level = Annotated[StrictInt, Field(ge=0, le=limits.LEVEL_MAX)]
RoleName = Role
ReplyShape = Literal["room", "ack"]
RoomType = Literal["group", "direct"]


class _Args(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class OpArgs(_Args):
    """Every op but auth: server tokens may act as `operator` (NetEase's operator_account_id)."""

    operator: UserId | None = None


class MutatingArgs(OpArgs):
    reply: ReplyShape = "room"
    # A retry with the same key returns the first outcome and changes nothing (§5.1).
    idempotency_key: IdempotencyKey | None = None


class AuthArgs(_Args):
    key: StrictStr
    token: StrictStr
    resume: dict[Id, Seq] | None = None
    # presence events of the members of the connection's rooms (an opt-in addition to v1)
    presence: StrictBool = False


class UserUpsertArgs(MutatingArgs):
    id: UserId
    nickname: Nickname | None = None
    avatar: Avatar | None = None


def _room_custom(removals: bool) -> Any:
    """A room's custom props as a request names them: 1-32, names and values checked by
    room_custom_changes (the rules of a member's custom props); the schema hints at it, and
    at whether null (a removal) may be given."""
    schema: dict[str, Any] = {"propertyNames": {"pattern": f"^{limits.PROP_NAME_PATTERN.pattern}$"}}
    if not removals:
        schema["additionalProperties"] = {"not": {"type": "null"}}
    return Annotated[
        dict[StrictStr, Any],
        Field(min_length=1, max_length=limits.ROOM_PROPS_MAX, json_schema_extra=schema),
    ]


RoomCustom = _room_custom(removals=True)
NewRoomCustom = _room_custom(removals=False)


class RoomCreateArgs(MutatingArgs):
    room: Id | None = None
    name: RoomName = ""
    type: RoomType = "group"
    members: Annotated[list[UserId], Field(max_length=limits.INITIAL_MEMBERS_MAX)] = []
    owner: UserId | None = None
    # the room's first custom props, set in the same atomic step (no null: nothing to remove)
    custom: NewRoomCustom | None = None


class RoomArgs(OpArgs):
    room: Id


class RoomGetArgs(RoomArgs):
    # each member with `online` (presence); an addition to v1
    presence: StrictBool = False


class RoomListArgs(OpArgs):
    pass


class MemberAddArgs(MutatingArgs):
    room: Id
    invitees: Annotated[
        list[UserId], Field(min_length=limits.INVITEES_MIN, max_length=limits.INVITEES_MAX)
    ]
    invitation_required: StrictBool = False
    system_message: StrictBool = False


class RoomMutationArgs(MutatingArgs):
    """invitation.accept, invitation.decline, room.leave."""

    room: Id


class MemberTargetArgs(MutatingArgs):
    room: Id
    user: UserId


class MemberUpdateArgs(MutatingArgs):
    room: Id
    user: UserId
    properties: Annotated[
        dict[StrictStr, Any],
        Field(min_length=1, max_length=limits.PROPERTIES_PER_UPDATE),
    ]
    system_message: StrictBool = False
    notification_extension: (
        Annotated[StrictStr, Field(max_length=limits.NOTIFICATION_EXTENSION_MAX_CHARS)] | None
    ) = None


class RoomUpdateArgs(MutatingArgs):
    # The OpenAPI document's view of the check below: a name or custom props, not null.
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": [name], "properties": {name: {"type": kind}}}
                for name, kind in (("name", "string"), ("custom", "object"))
            ]
        }
    )

    room: Id
    name: RoomName | None = None
    # values checked by room_custom_changes (as member.update's custom props); null removes
    custom: RoomCustom | None = None

    @model_validator(mode="after")
    def _something_to_update(self) -> RoomUpdateArgs:
        if self.name is None and self.custom is None:
            raise ValueError("room.update needs name or custom")
        return self


class RoomTransferArgs(MutatingArgs):
    room: Id
    to: UserId  # a member: the new owner


class InvitationCancelArgs(MutatingArgs):
    room: Id
    invitees: Annotated[
        list[UserId], Field(min_length=limits.INVITEES_MIN, max_length=limits.INVITEES_MAX)
    ]


class RoomMembersArgs(OpArgs):
    room: Id
    after: Id | None = None  # a member id: the page starts after it
    limit: Annotated[StrictInt, Field(ge=1, le=limits.MEMBERS_LIMIT_MAX)] = (
        limits.MEMBERS_LIMIT_DEFAULT
    )


class RoomWatchArgs(_Args):
    """room.watch: the room's system messages to this connection; after `after_seq` if given
    (replayed from the history first), else after the room's seq in the reply."""

    room: Id
    after_seq: Seq | None = None


class RoomUnwatchArgs(_Args):
    room: Id


class AppRoomsArgs(_Args):
    """app.rooms: every room of the app by id; `prefix` keeps the ids that start with it."""

    after: Id | None = None  # a room id: the page starts after it
    prefix: Annotated[
        StrictStr, AfterValidator(_check_prefix), _schema(pattern=ID_PREFIX_PATTERN)
    ] = ""
    limit: Annotated[StrictInt, Field(ge=1, le=limits.ROOMS_LIMIT_MAX)] = limits.ROOMS_LIMIT_DEFAULT


class RoomHistoryArgs(OpArgs):
    room: Id
    after_seq: Seq = 0
    limit: Annotated[StrictInt, Field(ge=1, le=limits.HISTORY_LIMIT_MAX)] = (
        limits.HISTORY_LIMIT_DEFAULT
    )


# --- member.update properties -------------------------------------------------------------

BUILTIN_PROPERTIES: dict[str, Any] = {
    "role": RoleName,
    "nickname": Nickname,
    "avatar": Avatar,
    "level": Level,
    "custom_info": CustomInfo,
    "extension": Extension,
}
# Member fields that are not settable and so may not be custom prop names either.
RESERVED_NAMES = frozenset({"id", "props", "joined_ms"})


class PropertyChange(BaseModel):
    """One validated entry of member.update `properties`.

    `value_json` is the canonical JSON of the new value (None = remove a custom prop), which
    the store compares and stores as is, so values round-trip exactly.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    builtin: bool
    value: Any
    value_json: bytes | None


def _builtin_validators() -> dict[str, Any]:
    from pydantic import TypeAdapter

    return {
        name: TypeAdapter(kind, config=ConfigDict(strict=True))
        for name, kind in BUILTIN_PROPERTIES.items()
    }


_BUILTIN_ADAPTERS = _builtin_validators()


def _json_finite(value: Any, path: str, depth: int = 0) -> None:
    """Reject what JSON cannot carry faithfully, and nesting past MAX_NESTING."""
    if depth > limits.MAX_NESTING:
        raise invalid(path, f"value nests deeper than {limits.MAX_NESTING} levels")
    if isinstance(value, float) and not math.isfinite(value):
        raise invalid(path, "numbers must be finite")
    if isinstance(value, dict):
        for key, item in value.items():
            _json_finite(item, f"{path}.{key}", depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _json_finite(item, f"{path}.{index}", depth + 1)


def property_changes(properties: dict[str, Any]) -> list[PropertyChange]:
    """Validate member.update properties; raise RoomError naming `properties.<name>`."""
    from pydantic import ValidationError

    changes: list[PropertyChange] = []
    for name, value in properties.items():
        path = f"properties.{name}"
        adapter = _BUILTIN_ADAPTERS.get(name)
        if adapter is not None:
            if value is None:
                raise invalid(path, f"{name} cannot be removed (null is only for custom props)")
            try:
                value = adapter.validate_python(value)
            except ValidationError as exc:
                detail = exc.errors()[0]["msg"].removeprefix("Value error, ")
                raise invalid(path, f"{name}: {detail}") from None
            changes.append(
                PropertyChange(
                    name=name, builtin=True, value=value, value_json=to_json_value(value)
                )
            )
            continue
        if name in RESERVED_NAMES:
            raise invalid(path, f"'{name}' is a Member field and cannot be set")
        changes.append(custom_change(path, name, value))
    return changes


def custom_change(path: str, name: str, value: Any) -> PropertyChange:
    """One custom property, a member's or a room's (the same rules for both): its name, and
    its value as canonical JSON (None removes it); a RoomError names `path`."""
    if not limits.PROP_NAME_PATTERN.fullmatch(name):
        raise invalid(path, "custom property names match [A-Za-z_][A-Za-z0-9_.-]{0,63}")
    if value is None:
        return PropertyChange(name=name, builtin=False, value=None, value_json=None)
    _json_finite(value, path)
    try:
        encoded = to_json_value(value)
    except (TypeError, ValueError) as exc:
        raise invalid(path, f"value is not representable in JSON: {exc}") from None
    if len(encoded) > limits.PROP_VALUE_MAX_BYTES:
        raise invalid(path, f"value must encode to at most {limits.PROP_VALUE_MAX_BYTES} bytes")
    return PropertyChange(name=name, builtin=False, value=value, value_json=encoded)


def room_custom_changes(custom: dict[str, Any], removals: bool = True) -> list[PropertyChange]:
    """Validate room.update's (or, with removals=False, room.create's: null is refused)
    `custom`; raise RoomError naming `custom.<name>`."""
    changes = [custom_change(f"custom.{name}", name, value) for name, value in custom.items()]
    if not removals:
        for change in changes:
            if change.value_json is None:
                raise invalid(f"custom.{change.name}", "a new room has no property to remove")
    return changes


# --- objects in replies and events --------------------------------------------------------


class _Object(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Member(_Object):
    id: str
    role: RoleName
    nickname: str = ""
    avatar: str = ""
    level: int = 0
    custom_info: str = ""
    extension: str = ""
    props: dict[str, Any] = {}
    joined_ms: int = 0
    online: bool | None = None  # room.get with `presence: true` only


# What a member starts with besides role and profile; the store and the Lua scripts take their
# defaults from here.
MEMBER_DEFAULTS: dict[str, Any] = {
    name: field.default
    for name, field in Member.model_fields.items()
    if not field.is_required() and name != "online"  # read, never stored
}


class Invitation(_Object):
    user: str
    inviter: str
    time_ms: int


class Room(_Object):
    id: str
    name: str = ""
    type: RoomType = "group"
    owner: str
    created_ms: int
    seq: int
    members: list[Member] = []
    invitations: list[Invitation] = []
    custom: dict[str, Any] = {}  # room properties (room.update), decoded JSON values

    def member(self, user: str) -> Member | None:
        return next((m for m in self.members if m.id == user), None)


# System message kinds (§4.4), grouped by the op that emits them: each alias is named after
# the op's method (protocol/ops.py), e.g. UpdateMemberKind for member.update.
CreateRoomKind = Literal["createRoom"]
AddMembersKind = Literal["addMember", "inviteMember"]
AcceptKind = Literal["acceptInvitation"]
DeclineKind = Literal["declineInvitation"]
UpdateMemberKind = Literal["assignAdmin", "revokeAdmin", "setRole", "updateMember"]
RemoveMemberKind = Literal["removeMember"]
LeaveKind = Literal["leaveRoom"]
DismissRoomKind = Literal["dismissRoom"]
UpdateRoomKind = Literal["updateRoom"]
TransferOwnerKind = Literal["transferOwner"]
CancelInvitationKind = Literal["cancelInvitation"]
SystemMessageType = Literal[
    CreateRoomKind,
    AddMembersKind,
    AcceptKind,
    DeclineKind,
    UpdateMemberKind,
    RemoveMemberKind,
    LeaveKind,
    DismissRoomKind,
    UpdateRoomKind,
    TransferOwnerKind,
    CancelInvitationKind,
]
MESSAGE_KINDS: tuple[str, ...] = get_args(SystemMessageType)


class SystemMessage(_Object):
    room: str
    seq: int
    type: SystemMessageType
    sender: str
    targets: list[str]
    changes: dict[str, Any] = {}
    notify: bool
    extension: str | None = None
    time_ms: int


class PresenceEvent(_Object):
    """`{"event": "presence", ...}` (auth `presence: true`): a member of `room` came online
    (their first connection on any node) or went offline (their last one closed, or its node
    died). Not part of the room's history; in order per user."""

    room: str
    user: str
    online: bool
    time_ms: int


class User(_Object):
    id: str
    nickname: str = ""
    avatar: str = ""


# A new user's profile (user.upsert keeps what it is not given).
PROFILE_DEFAULTS: dict[str, str] = {
    name: field.default for name, field in User.model_fields.items() if not field.is_required()
}


class ServerInfo(_Object):
    version: str
    node: str


class AuthResult(_Object):
    user: str
    rooms: list[str]
    server: ServerInfo


class Ack(_Object):
    room: str
    seq: int


class HistoryPage(_Object):
    messages: list[SystemMessage]
    more: bool


class MemberPage(_Object):
    """room.members: members ordered by id; `next` is the `after` of the next page (None on
    the last)."""

    members: list[Member]
    next: str | None


class RoomPresence(_Object):
    """room.presence: the members online now (a connection open on some node), by id."""

    online: list[str]
    count: int


class RoomList(_Object):
    rooms: list[Room]


class RoomPage(_Object):
    """app.rooms: rooms ordered by id, without their members (as in room.list); `next` is the
    `after` of the next page (None on the last)."""

    rooms: list[Room]
    next: str | None


class Empty(_Object):
    """The result of invitation.decline, room.leave and room.dismiss with the default reply."""


__all__ = [
    "Ack",
    "AuthArgs",
    "AuthResult",
    "Empty",
    "HistoryPage",
    "Invitation",
    "Member",
    "MEMBER_DEFAULTS",
    "PROFILE_DEFAULTS",
    "MESSAGE_KINDS",
    "AppRoomsArgs",
    "MemberAddArgs",
    "MemberPage",
    "MemberTargetArgs",
    "MemberUpdateArgs",
    "MutatingArgs",
    "OpArgs",
    "PropertyChange",
    "Room",
    "RoomArgs",
    "RoomGetArgs",
    "RoomCreateArgs",
    "RoomError",
    "RoomHistoryArgs",
    "RoomList",
    "RoomListArgs",
    "RoomMembersArgs",
    "RoomMutationArgs",
    "RoomPage",
    "RoomPresence",
    "PresenceEvent",
    "RoomUnwatchArgs",
    "RoomWatchArgs",
    "RoomUpdateArgs",
    "ServerInfo",
    "SystemMessage",
    "User",
    "UserUpsertArgs",
    "custom_change",
    "property_changes",
    "room_custom_changes",
]
