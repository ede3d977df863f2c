"""What a reconnect resumes from, and which system messages are new: plain state, no I/O.

Kept apart from the session so the exactly-once rules (de-duplication by seq per room, rooms
forgotten, resync points, the resume map that fits an `auth` frame) can be tested with plain
calls, without a server or an event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from roomhub.protocol.models import SystemMessage

log = logging.getLogger("roomhub.client")

__all__ = ["MAX_RESUME_BYTES", "MAX_RESUME_ROOMS", "ResumeState", "Resync", "fit_resume"]

# `auth` must decode on the server: a map holds at most 1,024 entries and a frame at most
# 64 KiB (docs/protocol.md §1.2), so a resume map beyond either is cut (most recent rooms kept).
MAX_RESUME_ROOMS = 1024
MAX_RESUME_BYTES = 48 * 1024
# System messages after which the user is no longer in the room (when they name the user).
GONE = frozenset({"removeMember", "leaveRoom", "declineInvitation", "cancelInvitation"})
# System messages after which the room is gone for everybody (whoever they name).
ENDS = frozenset({"dismissRoom"})


@dataclass(frozen=True)
class Resync:
    """`{"event": "resync", "room", "seq"}`: the server cannot promise gap-free delivery of
    `room` (a `resume` beyond its capped history, a message a node could not recover, or a
    Redis that lost its data), so your copy may be stale: re-read it with `get_room` (100004 or
    100005 there: the room is gone for you), then apply only messages with seq > `Room.seq`.
    The callback runs when the event arrives, so messages queued earlier may still be unread.
    A reconnecting client also sends one itself for a room that appeared while it was away.
    """

    room: str
    seq: int


def fit_resume(resume: Mapping[str, int] | None) -> tuple[dict[str, int] | None, list[str]]:
    """(the resume map to send, the rooms left out): the most recently active rooms (last in
    `resume`) that fit the server's map and frame limits."""
    if resume is None:
        return None, []
    rooms = list(resume)
    kept: list[str] = []
    size = 0
    for room in reversed(rooms):
        size += len(room.encode()) + 12  # key, value and framing, generously
        if len(kept) == MAX_RESUME_ROOMS or size > MAX_RESUME_BYTES:
            break
        kept.append(room)
    if len(kept) == len(rooms):
        return dict(resume), []
    chosen = set(kept)
    log.warning("roomhub: resuming %d of %d rooms (the auth frame's limits)", len(kept), len(rooms))
    return {r: resume[r] for r in rooms if r in chosen}, [r for r in rooms if r not in chosen]


class ResumeState:
    """Per room, the seq of the last message delivered (`seqs`, ordered by recent activity) or,
    until one is, the room's seq at connect time (`floors`); `user` names whose removal makes
    a room forgotten. The session feeds it every event and asks it what to resume."""

    __slots__ = ("seqs", "floors", "user")

    def __init__(self, resume: Mapping[str, int] | None = None) -> None:
        self.seqs: dict[str, int] = dict(resume or {})  # room -> last seq delivered
        self.floors: dict[str, int] = {}  # room -> its seq at connect, until a message arrives
        self.user: str | None = None

    @property
    def last_seqs(self) -> dict[str, int]:
        """Room id -> the seq a reconnect resumes from: a copy."""
        return {**self.floors, **self.seqs}

    def knows(self, room: str) -> bool:
        return room in self.seqs or room in self.floors

    def accept(self, message: SystemMessage) -> bool:
        """Whether `message` is new (then it is recorded as delivered); False for a seq
        already delivered, as a replay overlapping live messages repeats them."""
        room = message.room
        seqs = self.seqs
        last = seqs.get(room)
        if last is not None:
            if message.seq <= last:
                log.debug("roomhub: dropping %s #%d: already delivered", room, message.seq)
                return False
            if message.seq != last + 1:
                log.warning("roomhub: %s jumped from #%d to #%d", room, last, message.seq)
            del seqs[room]  # re-inserted last: the dict is ordered by recent activity
        seqs[room] = message.seq
        self.floors.pop(room, None)
        if (message.type in GONE and self.user in message.targets) or message.type in ENDS:
            self.forget(room)  # not ours any more: nothing to resume
        return True

    def forget(self, room: str) -> None:
        self.seqs.pop(room, None)
        self.floors.pop(room, None)

    def resync(self, resync: Resync) -> None:
        """The room's last seq *is* the resync's seq from now on; seq 0: it is gone for us
        (or restarted empty: 1, 2 … follow)."""
        self.floors.pop(resync.room, None)
        if resync.seq == 0:
            self.forget(resync.room)
        else:
            self.seqs[resync.room] = resync.seq

    def created(self, room: str) -> None:
        """A room this user created: resume it from its start, unless its createRoom already
        arrived (the reply can come after the message)."""
        if room not in self.seqs:
            self.floors.setdefault(room, 0)

    def untracked(self, rooms: Iterable[str]) -> list[str]:
        """The rooms of an auth result that have no resume point."""
        return [room for room in rooms if not self.knows(room)]

    def adopt(
        self,
        listed: Mapping[str, int],
        untracked: Iterable[str],
        left_out: Iterable[str],
        *,
        first: bool,
    ) -> list[Resync]:
        """Give resume points to the `untracked` rooms of an auth result and to the known rooms
        `left_out` of its resume map, from `listed` (room -> seq, a `room.list` after the
        auth). Returns the resyncs the caller must apply (`resync`) and announce, in order.

        On the first connection an untracked room resumes from its current seq; on a reconnect
        it is new to the client (joined while away) and gets a resync. A left-out room had
        nothing replayed: a resync too, or forgotten if it is no longer listed.
        """
        resyncs: list[Resync] = []
        for room in untracked:
            if room not in listed:
                continue  # gone since the auth: its removal message, if any, says so
            if first:
                self.floors[room] = listed[room]
            elif room not in self.seqs:  # (a live message may have arrived meanwhile)
                resyncs.append(Resync(room=room, seq=listed[room]))
        for room in left_out:
            if room in listed:
                resyncs.append(Resync(room=room, seq=listed[room]))
            else:
                self.forget(room)  # not ours any more
        return resyncs
