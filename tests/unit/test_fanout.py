"""Fanout's bookkeeping, with the Redis side replaced by a stand-in whose SUBSCRIBE waits until
the test lets it finish: the interleavings that real traffic produces only sometimes."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from roomhub.server.fanout import Fanout, Message, RoomFeed


class GatedSubscriber:
    """A subscriber whose SUBSCRIBE is confirmed only when `gate` is set."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.subscribed: list[str] = []

    async def subscribe(self, *channels: str) -> None:
        await self.gate.wait()
        self.subscribed.extend(channels)

    async def unsubscribe(self, *channels: str) -> None:
        """Nothing to undo."""


class StandInStore:
    def __init__(self) -> None:
        self.subscriber_made = GatedSubscriber()

    def subscriber(self, *_: Any, **__: Any) -> GatedSubscriber:
        return self.subscriber_made


class Recorder:
    def __init__(self) -> None:
        self.seqs: list[int] = []

    def deliver(self, message: Message) -> None:
        self.seqs.append(message.seq)

    def resync(self, room: str, seq: int) -> None:
        raise AssertionError(f"unexpected resync of {room} at {seq}")


def update(seq: int) -> Message:
    body = {"room": "r", "seq": seq, "type": "updateMember", "targets": ["bob"], "changes": {}}
    return Message(orjson.dumps(body))


async def test_a_connection_attached_while_the_room_is_live_gets_every_later_message() -> None:
    """A message fanned out while a newcomer's inbox SUBSCRIBE is in flight must not leave the
    room's cached recipients without the newcomer (the resilience bench caught that once:
    a client resuming on another node missed live messages)."""
    fanout = Fanout(StandInStore(), "node")  # type: ignore[arg-type]
    feed = fanout.feeds[("app", "r")] = RoomFeed("app", "r")
    feed.members = {"alice", "bob"}
    feed.busy = False
    bob, alice = Recorder(), Recorder()
    fanout.local[("app", "bob")] = {bob}  # bob is already connected here

    attaching = asyncio.ensure_future(fanout.attach("app", "alice", alice, ()))
    await asyncio.sleep(0)  # alice's inbox SUBSCRIBE is on its way ...
    fanout._offer(feed, update(1))  # ... when a message of her room goes out
    fanout.subscriber.gate.set()
    await attaching
    fanout._offer(feed, update(2))

    assert bob.seqs == [1, 2]
    assert alice.seqs == [2]  # attached after seq 1 was sent; gets everything from then on
