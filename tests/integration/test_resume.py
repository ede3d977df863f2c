"""Resume (PROTOCOL.md §4): replay what a client missed, in order, before any live event of
the room, with no gap and no duplicate — also while the room keeps changing."""

from __future__ import annotations

import asyncio
from typing import Any

from roomhub.server.hub import Hub

from ..conftest import HubFactory
from ..support import APP, RawClient, setup_room, token, update_args, ws_url


async def _update(client: RawClient, user: str, value: Any) -> int:
    ack = await client.call("member.update", update_args("r", user, {"score": value}, reply="ack"))
    return int(ack["seq"])


async def test_resume_replays_missed_messages_then_continues_live(hub: Any) -> None:
    url = ws_url(hub)
    await setup_room(url, "r", "owner", ["alice"])
    async with RawClient.connect(url) as owner:
        await owner.auth("owner")
        async with RawClient.connect(url) as alice:
            await alice.auth("alice")
            last = await _update(owner, "owner", 1)
            seen = await alice.events_until(last)
            assert seen[-1]["seq"] == last
        missed = [await _update(owner, "owner", n) for n in (2, 3, 4)]
        async with RawClient.connect(url) as alice:
            welcome = await alice.call(
                "auth", {"key": APP, "token": token("alice"), "resume": {"r": last}}
            )
            assert welcome["rooms"] == ["r"]
            replayed = await alice.events_until(missed[-1])
            assert [m["seq"] for m in replayed] == missed
            assert [m["changes"]["score"] for m in replayed] == [2, 3, 4]
            live = await _update(owner, "owner", 5)
            assert [m["seq"] for m in await alice.events_until(live)] == [live]
            await alice.no_event(0.2)


async def test_resume_of_a_room_left_is_resync_zero(hub: Any) -> None:
    """A non-member learns nothing of the room from a resume, not even its seq, and the node
    reads none of its history: `resync 0`, and re-reading the room answers 100005."""
    url = ws_url(hub)
    await setup_room(url, "r", "owner", ["alice"])
    async with RawClient.connect(url) as owner:
        await owner.auth("owner")
        before = await _update(owner, "owner", 1)
        await _update(owner, "owner", 2)
        removed = await owner.call("member.remove", {"room": "r", "user": "alice", "reply": "ack"})
        await _update(owner, "owner", 3)  # after the removal: not alice's to see
        async with RawClient.connect(url) as alice:
            await alice.call("auth", {"key": APP, "token": token("alice"), "resume": {"r": before}})
            frame = await asyncio.wait_for(alice.events.get(), 5)
            assert frame == {"event": "resync", "room": "r", "seq": 0}
            assert removed["seq"] > before
            assert (await alice.fail("room.get", {"room": "r"}))["code"] == 100005
            await alice.no_event(0.3)


async def test_resync_when_history_no_longer_reaches_back(
    redis_url: str, start_hub: HubFactory
) -> None:
    hub = await start_hub(redis=redis_url, history_max=5)
    url = ws_url(hub)
    await setup_room(url, "r", "owner", ["alice"])
    async with RawClient.connect(url) as owner:
        await owner.auth("owner")
        last = 0
        for n in range(10):
            last = await _update(owner, "owner", n)
        async with RawClient.connect(url) as alice:
            await alice.call("auth", {"key": APP, "token": token("alice"), "resume": {"r": 1}})
            frame = await asyncio.wait_for(alice.events.get(), 5)
            assert frame == {"event": "resync", "room": "r", "seq": last}
            page = await alice.call("room.history", {"room": "r"})
            assert [m["seq"] for m in page["messages"]] == list(range(last - 4, last + 1))


async def test_resume_races_live_traffic_without_gap_or_duplicate(
    two_hubs: tuple[Hub, Hub],
) -> None:
    """A writer keeps changing the room on another node while alice resumes."""
    node_a, node_b = two_hubs
    await setup_room(ws_url(node_a), "r", "owner", ["alice"])
    async with RawClient.connect(ws_url(node_a)) as owner:
        await owner.auth("owner")
        first = await _update(owner, "owner", 0)
        stop = asyncio.Event()

        async def write() -> int:
            n, last = 1, first
            while not stop.is_set():
                last = await _update(owner, "owner", n)
                n += 1
            return last

        writer = asyncio.create_task(write())
        await asyncio.sleep(0.2)
        async with RawClient.connect(ws_url(node_b)) as alice:
            await alice.call("auth", {"key": APP, "token": token("alice"), "resume": {"r": first}})
            await asyncio.sleep(0.3)
            stop.set()
            last = await writer
            seen = await alice.events_until(last, timeout=10)
            assert [m["seq"] for m in seen] == list(range(first + 1, last + 1))
            await alice.no_event(0.2)
