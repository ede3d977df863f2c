"""Tables copied from PROTOCOL.md, shared by the unit and the integration tests.

They are written here from the spec, not imported from roomhub, so that the tests check the
code against the document.
"""

from __future__ import annotations

from typing import Any

# §6: error code -> reason, verbatim.
ERROR_REASONS = {
    100001: "INTERNAL",
    100002: "INVALID_PARAMETER",
    100003: "ROOM_EXISTS",
    100004: "ROOM_NOT_FOUND",
    100005: "NOT_A_MEMBER",
    100006: "FORBIDDEN",
    100007: "USER_NOT_FOUND",
    100008: "NO_INVITATION",
    100009: "RATE_LIMITED",
    100010: "UNAUTHENTICATED",
    100011: "UNKNOWN_OP",
    100012: "ROOM_FULL",
    100013: "MALFORMED_FRAME",
}

# §3: the fields of a Member, a Room and a SystemMessage, every one always present.
MEMBER_FIELDS = {
    "id",
    "role",
    "nickname",
    "avatar",
    "level",
    "custom_info",
    "extension",
    "props",
    "joined_ms",
}
# "Every Member field is always present: unset strings are "", level is 0, props is {}."
MEMBER_DEFAULTS = {
    "nickname": "",
    "avatar": "",
    "level": 0,
    "custom_info": "",
    "extension": "",
    "props": {},
}
ROOM_FIELDS = {
    "id",
    "name",
    "type",
    "owner",
    "created_ms",
    "seq",
    "members",
    "invitations",
    "custom",
}
MESSAGE_FIELDS = {
    "room",
    "seq",
    "type",
    "sender",
    "targets",
    "changes",
    "notify",
    "extension",
    "time_ms",
}

# §5: the rank of each role.
RANK = {"owner": 3, "admin": 2, "member": 1, "guest": 0}

# §4: the minimal valid args of every op, exactly its required ones (values from §2's example).
MINIMAL_ARGS: dict[str, dict[str, Any]] = {
    "auth": {"key": "app-key", "token": "a.b.c"},
    "user.upsert": {"id": "alice"},
    "room.create": {},
    "room.get": {"room": "demo-room"},
    "room.list": {},
    "member.add": {"room": "demo-room", "invitees": ["ccc", "bbb"]},
    "invitation.accept": {"room": "demo-room"},
    "invitation.decline": {"room": "demo-room"},
    "member.update": {"room": "demo-room", "user": "bob", "properties": {"nickname": "Bob"}},
    "member.remove": {"room": "demo-room", "user": "bob"},
    "room.leave": {"room": "demo-room"},
    "room.history": {"room": "demo-room"},
    "room.update": {"room": "demo-room", "name": "Demo"},  # name or custom
    "room.members": {"room": "demo-room"},
    "room.dismiss": {"room": "demo-room"},
    "room.transfer": {"room": "demo-room", "to": "bob"},
    "invitation.cancel": {"room": "demo-room", "invitees": ["dave"]},
    "room.watch": {"room": "demo-room"},
    "room.unwatch": {"room": "demo-room"},
    "app.rooms": {},
    "room.presence": {"room": "demo-room"},
}
