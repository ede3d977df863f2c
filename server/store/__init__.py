"""The one place that talks to Redis: room scripts, users, history, and pub/sub.

Modules: `keys` (names), `lua` (the scripts as Redis gets them), `scripts` (each room
script's typed params and reply), `rooms` (the Store, whose `run` runs a room script),
`pipeline` (scripts batched per loop turn), `pubsub` (the node's subscriptions).

Every mutating op is one Lua script (server/lua/) that checks the rules, writes the room's
hashes, appends the system message to the room's stream and publishes it — atomically, in
one round trip. All keys of a room share the hash tag {app:room}, so a room lives in one
Redis Cluster slot. The embedded store is the same code over an in-process fakeredis.
"""

from . import scripts
from .errors import ScriptError, StoreUnavailable, is_unavailable
from .keys import room_channel, user_inbox
from .rooms import Store

__all__ = [
    "ScriptError",
    "StoreUnavailable",
    "Store",
    "is_unavailable",
    "room_channel",
    "scripts",
    "user_inbox",
]
