"""Presence (docs/protocol.md §5.21): who is online across nodes, the events, dead nodes.

Real hubs on a real redis-server (and on each store for the contract), real sockets; the
dead-node tests kill or freeze a real `roomhub serve` process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import redis.asyncio as aioredis

from roomhub.clients import RoomClient
from roomhub.protocol.errors import ErrorCode
from roomhub.protocol.models import PresenceEvent, RoomPresence

from ..conftest import HubFactory
from ..support import (
    APP,
    RawClient,
    connect_backend,
    create_room,
    free_port,
    serve_process,
    token,
    wait_ready,
    ws_url,
)
from .test_http import scrape, value

HEARTBEAT = 0.5  # seconds: the dead-node tests' nodes beat fast, so reaping takes ~1.5 s


@contextlib.asynccontextmanager
async def user(hub: Any, name: str, *, presence: bool = False) -> AsyncIterator[RawClient]:
    async with RawClient.connect(ws_url(hub)) as client:
        args: dict[str, Any] = {"key": APP, "token": token(name)}
        if presence:
            args["presence"] = True
        await client.call("auth", args)
        yield client


async def presence_event(client: RawClient, timeout: float = 5) -> dict[str, Any]:
    """The next presence event (system messages in between are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        frame = await asyncio.wait_for(client.events.get(), max(0.01, deadline - time.monotonic()))
        if frame["event"] == "presence":
            return frame


async def no_presence_event(client: RawClient, wait: float = 0.5) -> None:
    await asyncio.sleep(wait)
    while not client.events.empty():
        frame = client.events.get_nowait()
        assert frame["event"] != "presence", frame


async def settled(*hubs: Any) -> None:
    """Until each hub has written what it holds (presence is written behind the sockets)."""
    for hub in hubs:
        await asyncio.wait_for(hub.presence.settled(), 5)


async def online(client: RawClient, room: str) -> list[str]:
    result = await client.call("room.presence", {"room": room})
    assert result["count"] == len(result["online"])
    return result["online"]  # type: ignore[no-any-return]


def is_change(event: dict[str, Any], room: str, who: str, now_online: bool) -> bool:
    return (event["room"], event["user"], event["online"]) == (room, who, now_online)


async def test_online_and_offline_across_two_nodes(two_hubs: tuple[Any, Any]) -> None:
    hub_a, hub_b = two_hubs
    async with connect_backend(ws_url(hub_a)) as backend:
        await create_room(backend, "r", "alice", ["bob", "carol"])
        await create_room(backend, "other", "alice", ["dave"])
        async with user(hub_b, "bob", presence=True) as bob, user(hub_b, "dave") as dave:
            await settled(hub_b)
            assert await online(bob, "r") == ["bob"]
            async with user(hub_a, "alice"):
                event = await presence_event(bob)
                assert is_change(event, "r", "alice", True), event
                assert abs(event["time_ms"] - time.time() * 1000) < 60_000
                await settled(hub_a)
                assert await online(bob, "r") == ["alice", "bob"]
                assert await online(dave, "other") == ["alice", "dave"]  # not a presence conn
                room = await bob.call("room.get", {"room": "r", "presence": True})
                flags = {member["id"]: member["online"] for member in room["members"]}
                assert flags == {"alice": True, "bob": True, "carol": False}
                plain = await bob.call("room.get", {"room": "r"})
                assert all("online" not in member for member in plain["members"])
                # a second connection, on the other node: still online, no event
                async with user(hub_b, "alice"):
                    await settled(hub_b)
                    await no_presence_event(bob)
                await settled(hub_b)
                await no_presence_event(bob)  # alice_1 is still open
                assert await online(bob, "r") == ["alice", "bob"]
            event = await presence_event(bob)
            assert is_change(event, "r", "alice", False), event
            await settled(hub_a)
            assert await online(bob, "r") == ["bob"]
            assert await online(dave, "other") == ["dave"]
            await no_presence_event(dave, 0.1)  # dave did not ask for events


async def test_every_room_of_the_user_gets_its_event(start_hub: HubFactory, redis_url: str) -> None:
    hub = await start_hub(redis=redis_url)
    async with connect_backend(ws_url(hub)) as backend:
        for room in ("r1", "r2", "r3"):
            await create_room(backend, room, "alice", ["bob"])
        await create_room(backend, "not-bobs", "alice", ["carol"])
        async with user(hub, "bob", presence=True) as bob:
            async with user(hub, "alice"):
                events = [await presence_event(bob) for _ in range(3)]
                assert sorted(e["room"] for e in events) == ["r1", "r2", "r3"]
                assert all(e["user"] == "alice" and e["online"] for e in events)
                await no_presence_event(bob)  # nothing for not-bobs
            events = [await presence_event(bob) for _ in range(3)]
            assert sorted(e["room"] for e in events) == ["r1", "r2", "r3"]
            assert not any(e["online"] for e in events)


async def test_presence_contract_on_each_store(hub: Any) -> None:
    async with connect_backend(ws_url(hub)) as backend:
        await create_room(backend, "r", "alice", ["bob"])
        async with user(hub, "bob", presence=True) as bob:
            async with user(hub, "alice"):
                assert is_change(await presence_event(bob), "r", "alice", True)
                await settled(hub)
                assert await online(backend, "r") == ["alice", "bob"]  # a server token
                outsider = await _fail_as(hub, "mallory", "room.presence", {"room": "r"})
                assert outsider["code"] == ErrorCode.NOT_A_MEMBER
                missing = await bob.fail("room.presence", {"room": "nope"})
                assert missing["code"] == ErrorCode.ROOM_NOT_FOUND
                bad = await bob.fail("room.presence", {"room": "r", "presence": True})
                assert (bad["code"], bad["field"]) == (ErrorCode.INVALID_PARAMETER, "presence")
            event = await presence_event(bob)
            assert is_change(event, "r", "alice", False), event
            await settled(hub)
            assert await online(backend, "r") == ["bob"]


async def _fail_as(hub: Any, name: str, op: str, args: dict[str, Any]) -> dict[str, Any]:
    async with user(hub, name) as client:
        return await client.fail(op, args)


async def test_a_watching_server_token_gets_the_rooms_presence(start_hub: HubFactory) -> None:
    hub = await start_hub()  # the embedded store
    async with connect_backend(ws_url(hub)) as backend:
        await create_room(backend, "r", "alice", ["bob"])
        async with RawClient.connect(ws_url(hub)) as console:
            await console.call(
                "auth", {"key": APP, "token": token("console", server=True), "presence": True}
            )
            await console.call("room.watch", {"room": "r"})
            async with user(hub, "bob"):
                event = await presence_event(console)
                assert is_change(event, "r", "bob", True), event
            assert is_change(await presence_event(console), "r", "bob", False)


async def test_presence_over_http(start_hub: HubFactory) -> None:
    hub = await start_hub()
    async with connect_backend(ws_url(hub)) as backend:
        await create_room(backend, "r", "alice", ["bob"])
        async with user(hub, "alice"), httpx.AsyncClient() as http:
            await settled(hub)
            reply = await http.post(
                f"http://127.0.0.1:{hub.http_port}/api/v1/room.presence",
                json={"room": "r"},
                headers={
                    "X-Roomhub-Key": APP,
                    "Authorization": f"Bearer {token('backend', server=True)}",
                },
            )
            assert reply.status_code == 200, reply.text
            assert reply.json() == {"result": {"online": ["alice"], "count": 1}}


async def test_a_node_stopped_cleanly_takes_its_users_offline(
    start_hub: HubFactory, redis_url: str
) -> None:
    hub_a = await start_hub(redis=redis_url)
    hub_b = await start_hub(redis=redis_url)
    async with connect_backend(ws_url(hub_a)) as backend:
        await create_room(backend, "r", "alice", ["bob"])
        async with user(hub_a, "bob", presence=True) as bob:
            async with user(hub_b, "alice"):
                assert is_change(await presence_event(bob), "r", "alice", True)
                await hub_b.stop()
                assert is_change(await presence_event(bob), "r", "alice", False)
                assert await online(bob, "r") == ["bob"]
    redis = aioredis.from_url(redis_url)
    try:
        live = {member.decode() for member in await redis.zrange("rh:{presence}:nodes", 0, -1)}
        assert hub_b.presence.instance not in live
        assert hub_a.presence.instance in live
    finally:
        await redis.aclose()


@contextlib.asynccontextmanager
async def node_process(redis_url: str) -> AsyncIterator[tuple[Any, str]]:
    """A real `roomhub serve` node beating every HEARTBEAT seconds: (process, ws url)."""
    port = free_port()
    with serve_process(redis_url, port, "--presence-heartbeat", str(HEARTBEAT)) as proc:
        url = f"ws://127.0.0.1:{port}/ws"
        await wait_ready(url)
        yield proc, url


async def test_a_killed_node_s_users_go_offline_within_three_heartbeats(
    start_hub: HubFactory, redis_url: str
) -> None:
    hub = await start_hub(redis=redis_url, presence_heartbeat=HEARTBEAT)
    async with connect_backend(ws_url(hub)) as backend, node_process(redis_url) as (proc, url):
        await create_room(backend, "r", "alice", ["bob", "carol"])
        async with user(hub, "bob", presence=True) as bob:
            async with RawClient.connect(url) as alice, RawClient.connect(url) as carol:
                await alice.auth("alice")
                await carol.auth("carol")
                came = {(await presence_event(bob))["user"] for _ in range(2)}
                assert came == {"alice", "carol"}
                os.kill(proc.pid, signal.SIGKILL)
                killed = time.monotonic()
                gone = [await presence_event(bob, timeout=3 * HEARTBEAT + 5) for _ in range(2)]
                took = time.monotonic() - killed
                assert {e["user"] for e in gone} == {"alice", "carol"}
                assert not any(e["online"] for e in gone)
                # the bound, with room for a loaded machine: a reaper that never ran fails
                assert took < 3 * HEARTBEAT + 4, took
                assert await online(bob, "r") == ["bob"]
                samples = await scrape(hub)  # the hub was the reaper: the only other node
                assert value(samples, "roomhub_presence_reaped_nodes_total") == 1
                assert value(samples, "roomhub_presence_changes_total", change="offline") == 2
                assert value(samples, "roomhub_presence_users") == 1  # bob


async def test_a_frozen_node_is_reaped_then_registers_its_users_again(
    start_hub: HubFactory, redis_url: str
) -> None:
    hub = await start_hub(redis=redis_url, presence_heartbeat=HEARTBEAT)
    async with connect_backend(ws_url(hub)) as backend, node_process(redis_url) as (proc, url):
        await create_room(backend, "r", "alice", ["bob"])
        async with user(hub, "bob", presence=True) as bob, RawClient.connect(url) as alice:
            await alice.auth("alice")
            assert is_change(await presence_event(bob), "r", "alice", True)
            os.kill(proc.pid, signal.SIGSTOP)  # alive, but silent: its deadline passes
            try:
                assert is_change(await presence_event(bob, 10), "r", "alice", False)
            finally:
                os.kill(proc.pid, signal.SIGCONT)
            # its next beat finds it reaped: it registers alice again, under a new instance
            assert is_change(await presence_event(bob, 10), "r", "alice", True)
            assert await online(bob, "r") == ["alice", "bob"]
            assert (await alice.call("room.get", {"room": "r"}))["id"] == "r"  # still served


async def test_with_presence_off_nothing_is_tracked_and_the_ops_say_so(
    start_hub: HubFactory,
) -> None:
    hub = await start_hub(presence=False)
    assert hub.presence is None
    async with connect_backend(ws_url(hub)) as backend:
        await create_room(backend, "r", "alice", ["bob"])
        async with RawClient.connect(ws_url(hub)) as bob:
            refused = await bob.fail("auth", {"key": APP, "token": token("bob"), "presence": True})
            assert (refused["code"], refused["field"]) == (ErrorCode.INVALID_PARAMETER, "presence")
            await bob.auth("bob")  # the connection stays open for a corrected auth
            off = await bob.fail("room.presence", {"room": "r"})
            assert off["code"] == ErrorCode.UNKNOWN_OP
            assert "presence is off" in off["message"]
            off = await bob.fail("room.get", {"room": "r", "presence": True})
            assert off["code"] == ErrorCode.UNKNOWN_OP
            assert (await bob.call("room.get", {"room": "r"}))["id"] == "r"


async def test_the_python_client_reads_presence_and_gets_its_events(
    two_hubs: tuple[Any, Any],
) -> None:
    hub_a, hub_b = two_hubs
    events: asyncio.Queue[PresenceEvent] = asyncio.Queue()
    async with connect_backend(ws_url(hub_a)) as backend:
        await create_room(backend, "r", "alice", ["bob"])
    bob = RoomClient.connect(
        ws_url(hub_b), key=APP, token=token("bob"), presence=True, on_presence=events.put_nowait
    )
    async with bob as client:
        async with RoomClient.connect(ws_url(hub_a), key=APP, token=token("alice")):
            event = await asyncio.wait_for(events.get(), 5)
            assert event == PresenceEvent(
                room="r", user="alice", online=True, time_ms=event.time_ms
            )
            await settled(hub_a, hub_b)
            assert await client.presence("r") == RoomPresence(online=["alice", "bob"], count=2)
            room = await client.get_room("r", presence=True)
            assert {m.id: m.online for m in room.members} == {"alice": True, "bob": True}
            assert all(m.online is None for m in (await client.get_room("r")).members)
        event = await asyncio.wait_for(events.get(), 5)
        assert isinstance(event, PresenceEvent)
        assert (event.room, event.user, event.online) == ("r", "alice", False)


async def test_an_auth_whose_deadline_passes_during_its_welcome_leaves_nothing_behind(
    start_hub: HubFactory, redis_url: str
) -> None:
    hub = await start_hub(redis=redis_url, auth_timeout=0.5, max_connections_per_user=1)
    admin = aioredis.from_url(redis_url)
    try:
        async with RawClient.connect(ws_url(hub)) as alice:
            await admin.execute_command("CLIENT", "PAUSE", "1500", "WRITE")  # welcome stalls
            request = asyncio.ensure_future(
                alice.request("auth", {"key": APP, "token": token("alice")})
            )
            code, _ = await alice.closed(timeout=5)
            assert code == 4401  # the deadline passed while the hub registered alice
            request.cancel()
        await admin.execute_command("CLIENT", "UNPAUSE")
        # nothing of that connection stays: no local delivery, no per-user count, not online
        assert (APP, "alice") not in hub.fanout.local.conns
        await settled(hub)
        assert not hub.presence.wanted and not hub.presence.written
        async with user(hub, "alice"):  # her one connection allowed was given back
            pass
        async with user(hub, "bob") as bob:
            async with connect_backend(ws_url(hub)) as backend:
                await create_room(backend, "r", "bob", ["alice"])
            assert await online(bob, "r") == ["bob"]
    finally:
        await admin.execute_command("CLIENT", "UNPAUSE")
        await admin.aclose()
