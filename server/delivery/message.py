"""A system message as the node delivers it, and what membership changes imply for who sees it.

Pure: no asyncio, no Redis. A message is parsed once and framed once per encoding; every
connection of that encoding is written the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from roomhub.protocol import codec
from roomhub.protocol.codec import Encoding

from .. import wsframe

ADDS = frozenset({"createRoom", "addMember", "acceptInvitation"})
# dismissRoom removes every member (its targets), and is the room's last message.
DISMISS = "dismissRoom"
REMOVES = frozenset({"removeMember", "leaveRoom", DISMISS})


_NOBODY: list[str] = []  # shared, never changed


class Message:
    """One published system message, parsed once, framed once per encoding."""

    __slots__ = ("_frames", "invitees", "raw", "room", "seq", "targets", "type")

    def __init__(self, raw: bytes) -> None:
        body = orjson.loads(raw)
        self.raw = raw
        self.room: str = body["room"]
        self.seq: int = body["seq"]
        self.type: str = body["type"]
        self.targets: list[str] = body["targets"]
        # Who else is written it: a dismissRoom's pending invitees (not members, not targets).
        self.invitees: list[str] = (
            (body.get("changes") or {}).get("invitees", []) if self.type == DISMISS else _NOBODY
        )
        self._frames: dict[Encoding, bytes] = {}

    def frame(self, encoding: Encoding) -> bytes:
        """The complete WebSocket frame of this event for `encoding`, built once."""
        data = self._frames.get(encoding)
        if data is None:
            payload = codec.event_frame_from_json(self.raw, encoding)
            data = self._frames[encoding] = wsframe.frame(payload, text=encoding is Encoding.JSON)
        return data


def newer_room(end: Message, message: Message) -> bool:
    """After the dismissRoom `end` was delivered, is `message` of a room created since under
    the same id (True), or a late copy of one of the old room's own (False)? Copies come on
    several channels (a room's, its newcomers' inboxes), not always in order; both rooms' seqs
    start from 1, but their Redis clock times do not overlap (the same slot, the same master),
    and a new room's first message is createRoom."""
    ended, sent = orjson.loads(end.raw)["time_ms"], orjson.loads(message.raw)["time_ms"]
    if sent != ended:
        return bool(sent > ended)
    return message.seq > end.seq or message.type == "createRoom"


def resync_frame(room: str, seq: int, encoding: Encoding) -> bytes:
    """The framed `resync` event: re-read `room`, whose state is at `seq` (§9.2)."""
    payload = codec.encode({"event": "resync", "room": room, "seq": seq}, encoding)
    return wsframe.frame(payload, text=encoding is Encoding.JSON)


def presence_frame(room: str, change: dict[str, Any], encoding: Encoding) -> bytes:
    """The framed `presence` event of one room: `change` (user, online, time_ms) as the
    app's presence channel carried it."""
    event = {"event": "presence", "room": room, **change}
    return wsframe.frame(codec.encode(event, encoding), text=encoding is Encoding.JSON)


def walk_back(members: set[str], messages: Sequence[Message]) -> Iterator[Message]:
    """The messages newest first, undoing each one's membership change on `members` (in place)
    once it has been yielded: while a message is looked at, `members` holds the members just
    after it; once exhausted, the members from before the first message."""
    for message in reversed(messages):
        yield message
        if message.type in ADDS:
            members.difference_update(message.targets)
        elif message.type in REMOVES:
            members.update(message.targets)


def members_before(members: set[str], messages: Sequence[Message]) -> set[str]:
    """The members before `messages`, from the members after them (`members` is changed)."""
    for _ in walk_back(members, messages):
        pass
    return members


def visible_to(user: str, is_member_now: bool, messages: Sequence[Message]) -> list[Message]:
    """The messages `user` may see: those sent while a member, and those about them.

    A room the user left replays up to (and including) their leaving, and nothing after it.
    """
    member = {user} if is_member_now else set()
    seen = [m for m in walk_back(member, messages) if user in member or user in m.targets]
    seen.reverse()
    return seen
