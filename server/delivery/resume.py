"""The replay plan of an `auth` with `resume` (docs/protocol.md §9.1), room by room.

Pure: the caller reads each room's log (`Store.replay`, asking for at most `limit` messages)
and hands the outcome here; `frames` is what the connection is written after the auth reply,
`floors` where its live messages start.
"""

from __future__ import annotations

from roomhub.protocol.codec import Encoding

from .message import Message, resync_frame, visible_to


class ResumePlan:
    """Every message after the client's seq, in order, before any live one; or `resync`
    when they cannot all be replayed: the history no longer reaches back, the client is
    ahead of the room, or the replay would pass the resume caps. A non-member, or a room
    that does not exist, gets `resync 0` whatever the seq: it learns nothing of the room."""

    __slots__ = ("_budget", "_max_messages", "encoding", "floors", "frames", "user")

    def __init__(self, user: str, encoding: Encoding, max_messages: int, max_total: int) -> None:
        self.user = user
        self.encoding = encoding
        self._max_messages = max_messages
        self._budget = max_total  # messages the rest of the resume may still replay
        self.frames: list[bytes] = []
        self.floors: dict[str, int] = {}

    @property
    def limit(self) -> int:
        """The most messages the next room may replay (a longer gap is a resync)."""
        return max(0, min(self._max_messages, self._budget))

    def missing(self, room: str) -> None:
        """The room does not exist."""
        self.frames.append(resync_frame(room, 0, self.encoding))

    def room(
        self, room: str, last_seq: int, current: int, is_member: bool, raws: list[bytes]
    ) -> None:
        """The room is at `current`; `raws`: its messages after `last_seq` (none if more than
        `limit` follow, or for a non-member)."""
        # Live messages up to `current` are in the replay or covered by the resync.
        self.floors[room] = current
        if not is_member:
            self.frames.append(resync_frame(room, 0, self.encoding))
            return
        messages = [Message(raw) for raw in raws]
        gapless = (
            last_seq <= current
            and len(messages) == current - last_seq
            and (not messages or messages[0].seq == last_seq + 1)
        )
        if not gapless:
            self.frames.append(resync_frame(room, current, self.encoding))
            return
        encoding = self.encoding
        self.frames.extend(m.frame(encoding) for m in visible_to(self.user, True, messages))
        self._budget -= len(messages)
