"""Limits a client can run into (PROTOCOL.md §1, §3; docs/decisions.md): slow consumers,
hostile frames, oversized values counted in UTF-8 bytes, the Origin allow-list.

Each limit is checked as the client meets it, and so is the hub's health afterwards: the other
clients keep being served, the rejected change left nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgpack
import pytest
import websockets

from roomhub.server.hub import Hub

from ..support import APP, RawClient, member, token, update_args, ws_url

HubFactory = Callable[..., Any]
SLOW_LIMIT = 64 * 1024  # the smallest send buffer limit the settings allow


async def send_retrying(
    client: RawClient, op: str, args: dict[str, Any], deadline: float
) -> dict[str, Any]:
    """A request that must succeed; 100009 (the app's ceiling) is waited out and retried."""
    while True:
        reply = await client.request(op, args, timeout=10)
        if reply["ok"]:
            return reply["result"]  # type: ignore[no-any-return]
        assert reply["error"]["code"] == 100009, reply
        assert time.monotonic() < deadline, reply
        await asyncio.sleep(reply["error"]["retry_after_ms"] / 1000)


# --- slow consumers --------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def stalled_client(hub: Hub, user: str) -> AsyncIterator[Any]:
    """A msgpack connection that authenticates, then reads nothing until told to.

    Its socket has a tiny receive buffer and the client queues at most one frame, so once it
    stops reading, the hub's writes back up into the hub's own buffer.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", hub.port))
    sock.setblocking(False)
    ws = await websockets.connect(
        ws_url(hub),
        sock=sock,
        max_queue=1,
        max_size=None,
        subprotocols=["roomhub.v1.msgpack"],  # type: ignore[list-item]
        ping_interval=None,
        close_timeout=1,
    )
    try:
        await ws.send(
            msgpack.packb({"id": 1, "op": "auth", "args": {"key": APP, "token": token(user)}})
        )
        reply = msgpack.unpackb(await asyncio.wait_for(ws.recv(), 5))
        assert reply["ok"] is True, reply
        yield ws
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), 2)
        sock.close()


async def read_until_closed(ws: Any, timeout: float) -> tuple[int, float]:
    """Resume reading: (system events received, seconds until the connection ended)."""
    events = 0
    started = time.monotonic()
    async with asyncio.timeout(timeout):
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                frame = msgpack.unpackb(await ws.recv())
                if frame.get("event") == "system":
                    events += 1
    return events, time.monotonic() - started


@contextlib.asynccontextmanager
async def flood(hub: Hub) -> AsyncIterator[tuple[Any, RawClient, RawClient, int]]:
    """bob (reads normally) and slow (stops reading) are members; the backend pushes ~6 MB of
    system messages through the room. Yields (slow ws, bob, backend, last seq)."""
    async with (
        RawClient.connect(ws_url(hub)) as backend,
        RawClient.connect(ws_url(hub), "json") as bob,
    ):
        await backend.auth("backend", server=True)
        await bob.auth("bob")
        async with stalled_client(hub, "slow") as slow:
            deadline = time.monotonic() + 30
            await send_retrying(
                backend,
                "room.create",
                {"room": "busy", "owner": "bob", "members": ["slow"], "reply": "ack"},
                deadline,
            )
            changes = 200
            batch = 20
            for start in range(0, changes, batch):
                await asyncio.gather(
                    *(
                        send_retrying(
                            backend,
                            "member.update",
                            {
                                "room": "busy",
                                "user": "slow",
                                "reply": "ack",
                                # 32 props of ~1000 bytes: each message is ~32 KB
                                "properties": {f"p{k}": f"{i:04d}" + "x" * 996 for k in range(32)},
                            },
                            deadline,
                        )
                        for i in range(start, start + batch)
                    )
                )
            yield slow, bob, backend, 1 + changes


@pytest.fixture
async def slow_hub(redis_url: str, start_hub: HubFactory) -> Hub:
    """A hub on a real Redis with the smallest send buffer limit."""
    return await start_hub(redis=redis_url, send_buffer_limit=SLOW_LIMIT)


async def test_slow_consumer_is_dropped_and_the_others_keep_being_served(slow_hub: Hub) -> None:
    async with flood(slow_hub) as (slow, bob, backend, last):
        # bob got every message, in order, while the slow client sat there
        got = await bob.events_until(last, room="busy", timeout=30)
        assert [m["seq"] for m in got] == list(range(1, last + 1))
        # the slow client: when it reads again it finds the connection ended, short of the
        # messages it missed, and promptly (its backlog was cut, not kept for it)
        events, took = await read_until_closed(slow, timeout=15)
        assert events < last, "the slow client was served everything: it was never dropped"
        assert took < 10
        # the hub keeps serving: the backend's ops, bob's events, a brand-new connection
        room = await backend.call(
            "member.update", update_args("busy", "bob", {"nickname": "still here"})
        )
        assert room["seq"] == last + 1
        assert (await bob.event())["seq"] == last + 1
        async with RawClient.connect(ws_url(slow_hub)) as fresh:
            await fresh.auth("slow")
            assert (await fresh.call("room.get", {"room": "busy"}))["seq"] == last + 1


async def test_slow_consumer_is_told_4008_when_it_reads_again(slow_hub: Hub) -> None:
    async with flood(slow_hub) as (slow, _bob, _backend, _last):
        _events, took = await read_until_closed(slow, timeout=15)
        assert took < 10
        assert slow.close_code == 4008, (slow.close_code, slow.close_reason)


# --- hostile and oversized frames ------------------------------------------------------------


def hostile_msgpack_frames() -> dict[str, bytes]:
    """Frames of at most 64 KiB that try to make the decoder allocate or recurse a lot."""
    limit = 64 * 1024
    empty_maps = b"\x80" * limit  # 65536 top-level empty maps
    nested_maps = b"\x81\xa1a" * ((limit - 1) // 3) + b"\x80"  # {"a": {"a": … {}}}
    nested_arrays = b"\x91" * (limit - 1) + b"\x80"  # [[[[…{}…]]]]
    count = limit - 64
    # {"id": 1, "op": "room.get", "args": [{}, {}, … 65k empty maps]}
    wide = (
        b"\x83"
        + msgpack.packb("id")
        + msgpack.packb(1)
        + msgpack.packb("op")
        + msgpack.packb("room.get")
        + msgpack.packb("args")
        + b"\xdd"
        + struct.pack(">I", count)
        + b"\x80" * count
    )
    wide = wide[:limit]
    # many arrays, each under the per-container cap, adding up to thousands of maps
    budget = msgpack.packb(
        {"id": 2, "op": "room.get", "args": {"room": "r", "x": [[{}] * 1000 for _ in range(40)]}}
    )
    huge_map = b"\xdf\xff\xff\xff\xff" + b"\x80" * (limit - 5)  # claims 2^32-1 pairs
    huge_str = b"\xdb\xff\xff\xff\xff" + b"a" * 1000  # claims a 4 GiB string
    frames = {
        "empty_maps": empty_maps,
        "nested_maps": nested_maps,
        "nested_arrays": nested_arrays,
        "wide_array": wide,
        "container_budget": budget,
        "huge_map_header": huge_map,
        "huge_str_header": huge_str,
    }
    for name, frame in frames.items():
        assert len(frame) <= limit, name
    return frames


async def test_hostile_msgpack_frames_get_100013_and_the_hub_carries_on(hub: Hub) -> None:
    async with (
        RawClient.connect(ws_url(hub)) as attacker,
        RawClient.connect(ws_url(hub), "json") as bystander,
    ):
        await attacker.auth("attacker")
        await bystander.auth("bystander")
        await bystander.call("room.create", {"room": "calm"})
        for name, frame in hostile_msgpack_frames().items():
            started = time.monotonic()
            await attacker.send_raw(frame)
            error = await attacker.next_unmatched(timeout=5)
            assert error["re"] is None and error["ok"] is False, (name, error)
            assert (error["error"]["code"], error["error"]["reason"]) == (
                100013,
                "MALFORMED_FRAME",
            ), name
            assert time.monotonic() - started < 2, name
            # the connection stays open and usable, and so does everyone else's
            assert (await attacker.call("room.list")) == {"rooms": []}
            assert (await bystander.call("room.get", {"room": "calm"}))["seq"] == 1
        # a hostile frame that decodes to a map is judged on its content: a bad arg, not a crash
        error = await attacker.fail("room.get", {"room": "calm", "x": [{}] * 100})
        assert error["code"] == 100002 and error["field"] == "x"
        # the same junk after auth, 16 times in a row: the hub gives up on the connection
        for _ in range(16):
            await attacker.send_raw(b"\x80" * 1024)
        code, _reason = await attacker.closed(timeout=10)
        assert code == 4400
        assert (await bystander.call("room.get", {"room": "calm"}))["seq"] == 1


async def test_frame_over_the_size_limit_closes_with_1009(hub: Hub) -> None:
    async with RawClient.connect(ws_url(hub)) as big, RawClient.connect(ws_url(hub)) as other:
        await big.auth("big")
        await other.auth("other")
        frame = msgpack.packb({"id": 1, "op": "room.get", "args": {"room": "x" * 70_000}})
        assert len(frame) > 64 * 1024
        await big.send_raw(frame)
        code, _reason = await big.closed(timeout=10)
        assert code == 1009
        assert await other.call("room.list") == {"rooms": []}


async def test_oversized_values_counted_in_utf8_bytes_are_rejected_and_nothing_is_written(
    hub: Hub,
) -> None:
    async with (
        RawClient.connect(ws_url(hub)) as alice,
        RawClient.connect(ws_url(hub), "json") as bob,
        RawClient.connect(ws_url(hub)) as backend,
    ):
        await alice.auth("alice")
        await bob.auth("bob")
        await backend.auth("backend", server=True)
        await backend.call("user.upsert", {"id": "bob", "nickname": "Bob"})
        await alice.call(
            "room.create",
            {
                "room": "r",
                "name": "名" * 42 + "ab",  # 128 bytes
                "members": ["bob"],
            },
        )
        # exactly at each limit, in bytes, is accepted
        at_limit = {
            "nickname": "😀" * 8,
            "custom_info": "é" * 30,
            "extension": "中" * 682 + "ab",
            "avatar": "https://a.example/" + "é" * 503,
            "score": "é" * 500,
        }
        assert [len(v.encode()) for v in at_limit.values()] == [32, 60, 2048, 1024, 1000]
        room = await alice.call("member.update", update_args("r", "bob", at_limit))
        bob_now = member(room, "bob")
        assert {k: bob_now[k] for k in ("nickname", "custom_info", "extension", "avatar")} == {
            k: at_limit[k] for k in ("nickname", "custom_info", "extension", "avatar")
        }
        assert bob_now["props"] == {"score": at_limit["score"]}
        for client in (alice, bob):
            await client.events_until(2)
        before = await alice.call("room.get", {"room": "r"})

        def bobs(properties: dict[str, Any]) -> dict[str, Any]:
            return update_args("r", "bob", properties)

        # one byte (or character) over, though far fewer characters than bytes: 100002
        over: list[tuple[RawClient, str, dict[str, Any], str]] = [
            (alice, "member.update", bobs({"nickname": "😀" * 8 + "a"}), "properties.nickname"),
            (bob, "member.update", bobs({"nickname": "😀" * 9}), "properties.nickname"),
            (alice, "member.update", bobs({"custom_info": "é" * 31}), "properties.custom_info"),
            (alice, "member.update", bobs({"extension": "中" * 683}), "properties.extension"),
            (alice, "member.update", bobs({"avatar": "é" * 513}), "properties.avatar"),
            # a custom value of 520 characters whose encoding is 1042 bytes
            (alice, "member.update", bobs({"score": "é" * 520}), "properties.score"),
            # the valid part of a call is not written either
            (
                alice,
                "member.update",
                bobs({"level": 9, "nickname": "名" * 11}),
                "properties.nickname",
            ),
            (alice, "member.update", bobs({f"p{i}": i for i in range(33)}), "properties"),
            (alice, "room.create", {"room": "r2", "name": "名" * 43}, "name"),
            (alice, "room.create", {"room": "é" * 10}, "room"),
            (alice, "room.create", {"room": "x" * 65}, "room"),
            (backend, "user.upsert", {"id": "bob", "nickname": "名" * 11}, "nickname"),
            (backend, "user.upsert", {"id": "bob", "avatar": "é" * 513}, "avatar"),
            (
                backend,
                "member.update",
                update_args("r", "bob", {"n": 1}, notification_extension="é" * 2049),
                "notification_extension",
            ),
        ]
        for client, op, args, field in over:
            error = await client.fail(op, args)
            assert (error["code"], error["reason"]) == (100002, "INVALID_PARAMETER"), (op, args)
            assert error["field"] == field, (field, error)
        # 32 custom props at most per member, counted after the update
        await alice.call(
            "member.update",
            {"room": "r", "user": "alice", "properties": {f"p{i}": i for i in range(32)}},
        )
        for client in (alice, bob):
            await client.events_until(3)
        full = await alice.call("room.get", {"room": "r"})
        error = await alice.fail("member.update", update_args("r", "alice", {"one_more": 1}))
        assert error["code"] == 100002 and error["field"] == "properties"

        # nothing was written, nothing was announced
        after = await alice.call("room.get", {"room": "r"})
        assert after == full
        assert {k: v for k, v in after.items() if k not in ("seq", "members")} == {
            k: v for k, v in before.items() if k not in ("seq", "members")
        }
        assert member(after, "bob") == member(before, "bob")
        for client in (alice, bob):
            await client.no_event(0.2)
        assert (await alice.call("room.history", {"room": "r"}))["messages"][-1]["seq"] == 3
        error = await alice.fail("room.get", {"room": "r2"})
        assert error["code"] == 100004
        # bob's profile kept its nickname: a new room starts from it
        r3 = await backend.call("room.create", {"room": "r3", "owner": "alice", "members": ["bob"]})
        assert member(r3, "bob")["nickname"] == "Bob"


# --- Origin allow-list -----------------------------------------------------------------------


async def test_origin_allow_list(start_hub: HubFactory) -> None:
    hub = await start_hub(allowed_origins=["https://app.example"])
    async with RawClient.connect(ws_url(hub), origin="https://app.example") as browser:
        assert (await browser.auth("alice"))["user"] == "alice"
    async with RawClient.connect(ws_url(hub)) as backend_process:  # no Origin: not a browser
        assert (await backend_process.auth("backend", server=True))["user"] == "backend"
    for origin in ("https://evil.example", "http://app.example", "https://app.example:8443"):
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with RawClient.connect(ws_url(hub), origin=origin):
                pass
        assert refused.value.response.status_code == 403, origin
    # the refusals did not disturb the hub
    async with RawClient.connect(ws_url(hub), "json", origin="https://app.example") as again:
        assert (await again.auth("alice"))["rooms"] == []
