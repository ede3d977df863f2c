"""Redis key and channel names. Every key of a room carries the hash tag {app:room}, so a
room lives in one Redis Cluster slot, and so does its events channel (a shard channel).
"""

from __future__ import annotations

EPOCH_KEY = "rh:epoch"


def room_tag(app: str, room: str) -> str:
    return f"{{{app}:{room}}}"


def room_keys(app: str, room: str) -> list[str]:
    tag = room_tag(app, room)
    return [f"rh:{tag}:meta", f"rh:{tag}:members", f"rh:{tag}:invites", f"rh:{tag}:log"]


def idempotency_keys(app: str, room: str) -> list[str]:
    """The outcomes of ops sent with an idempotency key, in the room's slot: a hash and the
    sorted set that ages them out."""
    tag = room_tag(app, room)
    return [f"rh:{tag}:idem", f"rh:{tag}:idem:t"]


def room_channel(app: str, room: str) -> str:
    return f"rh:{room_tag(app, room)}:events"


def user_inbox(app: str, user: str) -> str:
    return f"rh:{{{app}:{user}}}:inbox"


def user_rooms_key(app: str, user: str) -> str:
    return f"rh:{{{app}:{user}}}:rooms"


def app_rooms_key(app: str) -> str:
    """Every room of the app, by id (a sorted set of score 0, read by lex range)."""
    return f"rh:{{{app}}}:rooms"


def rate_key(app: str) -> str:
    return f"rh:{{{app}}}:rate"


def user_rate_key(app: str, user: str) -> str:
    """In the app's slot (not the user's), so one script checks both windows atomically."""
    return f"rh:{{{app}}}:rate:user:{user}"


def quota_key(app: str, user: str, what: str, hour: int) -> str:
    return f"rh:{{{app}:{user}}}:quota:{what}:{hour}"


def users_key(app: str) -> str:
    return f"rh:{{{app}}}:users"


def nonce_key(app: str, vendor: str, digest: str) -> str:
    """A vendor request's nonce seen (NetEase's `Nonce`, by its digest), in the app's slot."""
    return f"rh:{{{app}}}:nonce:{vendor}:{digest}"


def user_online_key(app: str, user: str) -> str:
    """The node instances holding a connection of the user (presence), in the user's slot."""
    return f"rh:{{{app}:{user}}}:online"


def presence_channel(app: str) -> str:
    """The app's presence changes: published by the presence scripts (classic pub/sub), or
    by the node after them (a shard channel in the app's slot, on a sharded cluster)."""
    return f"rh:{{{app}}}:presence"


# The live node instances and those being reaped (presence), under one hash tag.
PRESENCE_NODES_KEY = "rh:{presence}:nodes"
PRESENCE_REAPING_KEY = "rh:{presence}:reaping"


def node_users_key(instance: str) -> str:
    """The (app, user) pairs a node instance registered online: what a reaper takes back."""
    return f"rh:{{presence:{instance}}}:users"


def is_shard_channel(channel: bytes) -> bool:
    """A room's events channel or an app's presence channel: it carries its key's hash tag,
    so it can be a shard channel."""
    return channel.endswith((b"}:events", b"}:presence"))
