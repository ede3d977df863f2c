"""The delivery hot path alone, in-process: one room's feed writing every message to 1,000 local
member connections (RoomFeed.drain -> Inbox.deliver -> a write that only counts). No sockets, no
Redis: what a change to the delivery rules costs, compared back to back between two trees
(docs/performance.md). `python -m roomhub.bench.deliverypath`"""

from __future__ import annotations

import time

import orjson

from roomhub.protocol.codec import Encoding
from roomhub.server.delivery.feed import Locals, RoomFeed
from roomhub.server.delivery.inbox import Inbox
from roomhub.server.delivery.message import Message

MEMBERS = 1000
MESSAGES = 2000
ROUNDS = 5


class Counted(Inbox):
    """A connection whose writes are only counted."""

    __slots__ = ("written",)

    def __init__(self) -> None:
        super().__init__(Encoding.JSON)
        self.opening = None  # authenticated
        self.written = 0

    def write(self, framed: bytes) -> None:
        self.written += 1


def deliveries_per_second() -> float:
    """The best of ROUNDS runs of MESSAGES messages to MEMBERS connections."""
    local = Locals()
    members = [f"u{i}" for i in range(MEMBERS)]
    for user in members:
        local.claim("app", user)
        local.add("app", user, Counted())
    feed = RoomFeed("app", "room")
    feed.begin(1, set(members))
    raws = [
        orjson.dumps(
            {
                "room": "room",
                "seq": seq,
                "type": "updateMember",
                "targets": ["u1"],
                "changes": {"n": seq},
                "sender": "u1",
                "notify": True,
                "time_ms": 0,
            }
        )
        for seq in range(2, MESSAGES + 2)
    ]
    best = float("inf")
    for _ in range(ROUNDS):
        messages = [Message(raw) for raw in raws]  # framed afresh each round, as live
        feed.last_seq = 1
        started = time.perf_counter()
        for message in messages:
            feed.pending[message.seq] = message
            feed.drain(local)
        best = min(best, time.perf_counter() - started)
    return MESSAGES * MEMBERS / best


if __name__ == "__main__":
    print(f"{deliveries_per_second() / 1e6:.2f} M deliveries/s (best of {ROUNDS})")
