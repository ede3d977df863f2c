"""Size limits of docs/protocol.md §1.2 and §4, in UTF-8 bytes (never characters)."""

from __future__ import annotations

import re

ID_MAX_BYTES = 64  # ids are ASCII: as many characters
ID_PATTERN = re.compile(rf"[A-Za-z0-9_.@:-]{{1,{ID_MAX_BYTES}}}")
PROP_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
# Ids starting with '@' are reserved for roomhub's own senders (`@server`): never a user's.
RESERVED_USER_PREFIX = "@"
IDEMPOTENCY_KEY_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
# App keys go inside Redis hash tags `{app:room}`; no ':' so the tag is unambiguous.
APP_KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")

ROOM_NAME_MAX_BYTES = 128
NICKNAME_MAX_BYTES = 32
AVATAR_MAX_BYTES = 1024
CUSTOM_INFO_MAX_BYTES = 60
EXTENSION_MAX_BYTES = 2048
NOTIFICATION_EXTENSION_MAX_CHARS = 2048
PROP_VALUE_MAX_BYTES = 1024
PROPS_PER_MEMBER = 32
PROPERTIES_PER_UPDATE = 32
ROOM_PROPS_MAX = 32  # a room's custom props (room.update), also the most one call may name
MEMBERS_LIMIT_MAX = 500
MEMBERS_LIMIT_DEFAULT = 100
LEVEL_MAX = 2**31 - 1
INVITEES_MIN = 1
INVITEES_MAX = 100
INITIAL_MEMBERS_MAX = 100
HISTORY_LIMIT_MAX = 200
ROOMS_LIMIT_MAX = 500  # app.rooms
ROOMS_LIMIT_DEFAULT = 100
WATCHES_PER_CONNECTION_MAX = 1000  # room.watch: rooms one connection may watch at once
HISTORY_LIMIT_DEFAULT = 50
DIRECT_ROOM_MAX_MEMBERS = 2
# The largest seq a request may name: exact in a double (Redis Lua numbers, JavaScript).
SEQ_MAX = 2**53 - 1
# How long a mutating op's outcome is kept for a retry with the same idempotency key.
IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000

DEFAULT_MAX_FRAME_BYTES = 64 * 1024
# Decoder caps: a request never needs more than this, so anything larger is hostile.
MAX_CONTAINERS_PER_FRAME = 4096
# A custom prop value is at most 1024 bytes of JSON, so no legitimate array holds more than
# 511 items; maps (e.g. `resume`, one entry per room) may hold up to 1024 entries. msgpack
# pre-allocates an array's declared length, so this cap also bounds the transient memory of a
# hostile frame of nested array headers (about 4 MiB at msgpack's own depth limit).
MAX_ARRAY_LEN = 512
MAX_MAP_LEN = 1024
# Custom prop values are the only place a request may nest freely.
MAX_NESTING = 32


def utf8_len(value: str) -> int:
    return len(value.encode("utf-8", "surrogatepass"))
