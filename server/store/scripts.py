"""The room scripts' params, each written once: a dataclass per script whose fields are the
script's `P.*` (serialised by `Store.run`; a None field is left out, so Lua sees nil), and
how its reply becomes a result.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

import orjson

from roomhub.protocol import models

R = TypeVar("R")

# --- turning script replies into wire objects ----------------------------------------------

# A stored member's fields in wire order, with the defaults of what a record may lack.
_MEMBER = {"id": "", "role": "", **models.MEMBER_DEFAULTS}


def _pairs(flat: list[bytes]) -> Iterable[tuple[bytes, bytes]]:
    it = iter(flat)
    return zip(it, it)


def profile_from_record(user: str, stored: dict[str, str]) -> dict[str, str]:
    """A User (id, nickname, avatar) from the users hash's JSON record."""
    return {"id": user} | {name: stored.get(name, d) for name, d in models.PROFILE_DEFAULTS.items()}


def member_from_record(user: str, record: bytes) -> dict[str, Any]:
    member = {**_MEMBER, **orjson.loads(record), "id": user}
    props = member["props"] or {}  # an empty Lua table may come back as []
    member["props"] = {name: orjson.loads(value) for name, value in props.items()}
    member["level"] = int(member["level"])
    member["joined_ms"] = int(member["joined_ms"])
    return member


def room_from_state(
    room: str, meta: list[bytes], members: list[bytes] | None, invites: list[bytes]
) -> dict[str, Any]:
    fields = {k.decode(): v.decode() for k, v in _pairs(meta)}
    invitations = []
    for user, raw in _pairs(invites):
        invite = orjson.loads(raw)
        invitations.append(
            {"user": user.decode(), "inviter": invite["inviter"], "time_ms": int(invite["time_ms"])}
        )
    invitations.sort(key=lambda i: (i["time_ms"], i["user"]))
    result: dict[str, Any] = {
        "id": room,
        "name": fields.get("name", ""),
        "type": fields.get("type", "group"),
        "owner": fields.get("owner", ""),
        "created_ms": int(fields.get("created_ms", 0)),
        "seq": int(fields.get("seq", 0)),
    }
    if members is not None:
        listed = [member_from_record(u.decode(), rec) for u, rec in _pairs(members)]
        listed.sort(key=lambda m: (m["joined_ms"], m["id"]))
        result["members"] = listed
    result["invitations"] = invitations
    # room.update's props: name -> the value's canonical JSON, as a member's props
    custom = orjson.loads(fields["custom"]) if "custom" in fields else {}
    result["custom"] = {name: orjson.loads(value) for name, value in (custom or {}).items()}
    return result


@dataclass(frozen=True)
class OpOutcome:
    seq: int
    room: dict[str, Any] | None  # the complete Room when asked for with reply="room"


# --- the scripts ---------------------------------------------------------------------------


@dataclass(slots=True)
class RoomScript(Generic[R]):
    """One run of the room script `script` on `room`; `reply` "room" adds the room's state.
    Subclasses add their params as keyword-only fields."""

    script: ClassVar[str]
    change: ClassVar[bool] = False  # writes: idempotency keys, replicas waited for
    room: str
    reply: str = field(default="ack", kw_only=True)

    def parse(self, reply: list[Any]) -> R:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Idempotency:
    """A mutating op's idempotency key: who sent it, the key, a fingerprint of the op and its
    arguments (the same key with other ones is 100002)."""

    caller: str
    key: str
    fingerprint: str


@dataclass(slots=True)
class RoomChange(RoomScript[OpOutcome]):
    """A mutating op's script: performed as `sender`, checked as `operator` (None: an
    unchecked server call). Positional: room, sender, operator. With `idem`, its outcome is
    recorded for retries (_idempotency.lua)."""

    change: ClassVar[bool] = True
    sender: str
    operator: str | None = None
    idem: Idempotency | None = field(default=None, kw_only=True)

    def parse(self, reply: list[Any]) -> OpOutcome:
        state = room_from_state(self.room, reply[3], reply[4], reply[5]) if len(reply) > 3 else None
        return OpOutcome(int(reply[2]), state)


@dataclass(slots=True, kw_only=True)
class RoomCreate(RoomChange):
    script: ClassVar[str] = "room_create"
    owner: str
    name: str
    type: str
    members: list[dict[str, str]]  # profiles, owner first
    custom: list[dict[str, str]]  # the first room custom props: {name, json}


@dataclass(slots=True, kw_only=True)
class MemberAdd(RoomChange):
    script: ClassVar[str] = "member_add"
    invitees: list[dict[str, str]]  # profiles
    invitation: bool
    notify: bool
    max_invites: int = 0
    max_invites_per_inviter: int = 0


@dataclass(slots=True, kw_only=True)
class InvitationAnswer(RoomChange):
    script: ClassVar[str] = "invitation_answer"
    user: str
    accept: bool
    profile: dict[str, str]


@dataclass(slots=True, kw_only=True)
class MemberUpdate(RoomChange):
    script: ClassVar[str] = "member_update"
    user: str
    changes: list[dict[str, Any]]  # {name, builtin, json?}
    notify: bool
    extension_json: str | None = None


@dataclass(slots=True, kw_only=True)
class MemberRemove(RoomChange):
    script: ClassVar[str] = "member_remove"
    user: str
    leave: bool


@dataclass(slots=True, kw_only=True)
class RoomUpdate(RoomChange):
    script: ClassVar[str] = "room_update"
    name: str | None = None
    custom: list[dict[str, str]] | None = None  # {name, json?}: json absent removes it


@dataclass(slots=True, kw_only=True)
class RoomTransfer(RoomChange):
    script: ClassVar[str] = "room_transfer"
    user: str  # the new owner


@dataclass(slots=True, kw_only=True)
class InvitationCancel(RoomChange):
    script: ClassVar[str] = "invitation_cancel"
    invitees: list[str]


@dataclass(frozen=True)
class Dismissed(OpOutcome):
    """room.dismiss's outcome: who was a member or invited (their room indexes to clean);
    empty for a repeat answered from its idempotency record."""

    users: list[str] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class RoomDismiss(RoomChange):
    script: ClassVar[str] = "room_dismiss"

    def parse(self, reply: list[Any]) -> Dismissed:
        users: list[str] = []
        if len(reply) > 5 and reply[3] == b"dismissed":
            users = [user.decode() for user in (*reply[4], *reply[5])]
        return Dismissed(int(reply[2]), None, users)


@dataclass(slots=True, kw_only=True)
class RoomGet(RoomScript[dict[str, Any]]):
    script: ClassVar[str] = "room_read"
    reply: str = field(default="room", kw_only=True)
    viewer: str | None = None  # None: the server

    def parse(self, reply: list[Any]) -> dict[str, Any]:
        return room_from_state(self.room, reply[3], reply[4], reply[5])


@dataclass(slots=True, kw_only=True)
class RoomMembers(RoomScript[dict[str, Any]]):
    """A MemberPage: members after `after` in id order, read with the viewer's right."""

    script: ClassVar[str] = "room_members"
    viewer: str | None = None  # None: the server
    after: str | None = None
    limit: int

    def parse(self, reply: list[Any]) -> dict[str, Any]:
        members = [
            member_from_record(user.decode(), record) for user, record in zip(reply[3], reply[4])
        ]
        return {"members": members, "next": reply[5].decode() or None}


@dataclass(slots=True, kw_only=True)
class RoomHistory(RoomScript[tuple[list[bytes], bool]]):
    """System messages (as stored JSON) with seq > after_seq, and whether more follow."""

    script: ClassVar[str] = "room_read"
    viewer: str | None = None
    after_seq: int
    limit: int

    def parse(self, reply: list[Any]) -> tuple[list[bytes], bool]:
        entries = [fields[1] for _, fields in reply[3]]
        return entries[: self.limit], len(entries) > self.limit


@dataclass(slots=True, kw_only=True)
class RoomReplay(RoomScript[tuple[int, bool, list[bytes]]]):
    """(current seq, user is a member now, stored messages with seq > after): none for a
    non-member, or when more than `limit` would follow."""

    script: ClassVar[str] = "room_replay"
    user: str
    after: int
    limit: int

    def parse(self, reply: list[Any]) -> tuple[int, bool, list[bytes]]:
        return int(reply[2]), bool(reply[3]), [fields[1] for _, fields in reply[4]]


@dataclass(slots=True, kw_only=True)
class RoomSnapshot(RoomScript[tuple[int, set[str]]]):
    """The room's seq and member ids, read together."""

    script: ClassVar[str] = "room_snapshot"

    def parse(self, reply: list[Any]) -> tuple[int, set[str]]:
        return int(reply[2]), {user.decode() for user in reply[3]}


SCRIPTS: tuple[type[RoomScript[Any]], ...] = (
    RoomCreate,
    MemberAdd,
    InvitationAnswer,
    MemberUpdate,
    MemberRemove,
    RoomDismiss,
    RoomUpdate,
    RoomTransfer,
    InvitationCancel,
    RoomGet,
    RoomMembers,
    RoomHistory,
    RoomReplay,
    RoomSnapshot,
)
# Each params class's fields sent as they are, for serialising without dataclasses.asdict's
# deep copy (`idem` goes in the shape _idempotency.lua reads).
FIELDS: dict[type[RoomScript[Any]], tuple[str, ...]] = {
    kind: tuple(f.name for f in dataclasses.fields(kind) if f.name != "idem") for kind in SCRIPTS
}
