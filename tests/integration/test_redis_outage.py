"""Redis going away and coming back: ops fail fast with 100001 and change nothing; hubs
reconnect and resubscribe without a restart; members see every message once, in order;
a Redis that came back empty is detected and clients are told to resync."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from roomhub.server.hub import Hub

from ..conftest import HubFactory
from ..support import RawClient, RedisProcess, setup_room, update_args, ws_url


@pytest.fixture
def persistent_redis() -> Iterator[RedisProcess]:
    with RedisProcess(persistent=True) as server:
        yield server


@pytest.fixture
def volatile_redis() -> Iterator[RedisProcess]:
    with RedisProcess() as server:
        yield server


def _update(n: int) -> dict[str, Any]:
    return update_args("r", "owner", {"n": n}, reply="ack")


async def _until_ok(client: RawClient, n: int, timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        reply = await client.request("member.update", _update(n))
        if reply["ok"] or time.monotonic() > deadline:
            return reply
        await asyncio.sleep(0.1)


async def test_outage_fails_fast_then_heals_without_restart(
    persistent_redis: RedisProcess, start_hub: HubFactory
) -> None:
    hub = await start_hub(redis=persistent_redis.url)
    await setup_room(ws_url(hub), "r", "owner", ["alice"])
    async with RawClient.connect(ws_url(hub)) as owner, RawClient.connect(ws_url(hub)) as alice:
        await owner.auth("owner")
        await alice.auth("alice")
        before = (await owner.call("member.update", _update(1)))["seq"]
        await alice.events_until(before)

        persistent_redis.stop()  # clean shutdown: the AOF holds every acknowledged change
        started = time.monotonic()
        error = await owner.fail("member.update", _update(2), timeout=10)
        assert error["code"] == 100001 and error["reason"] == "INTERNAL"
        assert time.monotonic() - started < 8  # failed, not hung until the client gave up

        persistent_redis.start()
        reply = await _until_ok(owner, 3)
        assert reply["ok"], reply
        after = reply["result"]["seq"]
        assert after == before + 1  # the failed op during the outage changed nothing
        seen = await alice.events_until(after)
        assert [m["seq"] for m in seen] == [after]


async def test_messages_published_while_pubsub_was_away_are_healed_from_history(
    redis_url: str, two_hubs: tuple[Hub, Hub]
) -> None:
    writer_node, reader_node = two_hubs
    await setup_room(ws_url(writer_node), "r", "owner", ["alice"])
    async with (
        RawClient.connect(ws_url(writer_node)) as owner,
        RawClient.connect(ws_url(reader_node)) as alice,
    ):
        await owner.auth("owner")
        await alice.auth("alice")
        first = (await owner.call("member.update", _update(0)))["seq"]
        await alice.events_until(first)
        redis.Redis.from_url(redis_url).client_kill_filter(_type="pubsub")
        acks = [(await owner.call("member.update", _update(n)))["seq"] for n in range(1, 6)]
        seen = await alice.events_until(acks[-1], timeout=15)
        assert [m["seq"] for m in seen] == acks


async def test_redis_that_came_back_empty_makes_clients_resync(
    volatile_redis: RedisProcess, start_hub: HubFactory
) -> None:
    hub = await start_hub(redis=volatile_redis.url)
    await setup_room(ws_url(hub), "r", "owner", ["alice"])
    async with RawClient.connect(ws_url(hub)) as alice:
        welcome = await alice.auth("alice")
        assert welcome["rooms"] == ["r"]
        volatile_redis.stop()
        volatile_redis.start()  # no persistence: every room is gone
        frame = await asyncio.wait_for(alice.events.get(), 15)
        assert frame["event"] == "resync" and frame["room"] == "r"
        error = await alice.fail("room.get", {"room": "r"})
        assert error["code"] == 100004


async def test_a_redis_that_stops_answering_fails_ops_in_time_then_serves_again(
    volatile_redis: RedisProcess, start_hub: HubFactory
) -> None:
    """A hung Redis (SIGSTOP: the socket stays open, nothing answers) is not a closed one:
    ops fail with 100001 after the store's timeout instead of hanging, and serve again
    once it answers. The stalled op was already in Redis's socket, so it may still land
    when Redis resumes: members then see it once, and the client's retry changes nothing."""
    hub = await start_hub(redis=volatile_redis.url, redis_timeout=1.0)
    await setup_room(ws_url(hub), "r", "owner", ["alice"])
    async with RawClient.connect(ws_url(hub)) as owner, RawClient.connect(ws_url(hub)) as alice:
        await owner.auth("owner")
        await alice.auth("alice")
        before = (await owner.call("member.update", _update(1)))["seq"]
        await alice.events_until(before)

        os.kill(volatile_redis.proc.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            error = await owner.fail("member.update", _update(2), timeout=10)
            waited = time.monotonic() - started
        finally:
            os.kill(volatile_redis.proc.pid, signal.SIGCONT)
        assert error["code"] == 100001 and error["reason"] == "INTERNAL"
        assert 0.9 < waited < 6  # the store's timeout, not the client's patience

        reply = await _until_ok(owner, 2)  # the client retries the same change
        assert reply["ok"], reply
        after = reply["result"]["seq"]
        assert after == before + 1  # applied once: during the stall or by the retry
        seen = await alice.events_until(after)
        assert [(m["seq"], m["changes"]) for m in seen] == [(after, {"n": 2})]


async def test_a_user_added_while_pubsub_was_away_is_told_to_reread_the_room(
    volatile_redis: RedisProcess, start_hub: HubFactory
) -> None:
    """The inbox message that makes a node follow a room a connected user just joined can be
    published while the node's pub/sub connection is away (here: it cannot log in again).
    Back on Redis, the node must find that room and tell the user to re-read it, then
    deliver its messages live."""
    hub = await start_hub(redis=volatile_redis.url)
    admin = redis.Redis(port=volatile_redis.port)
    async with RawClient.connect(ws_url(hub)) as owner, RawClient.connect(ws_url(hub)) as alice:
        await owner.auth("owner")
        welcome = await alice.auth("alice")
        assert welcome["rooms"] == []

        admin.config_set("requirepass", "away")  # new connections cannot log in ...
        admin.client_kill_filter(_type="pubsub")  # ... so the pub/sub one stays away
        try:
            created = await owner.call(
                "room.create", {"room": "r2", "members": ["alice"], "reply": "ack"}
            )
            await asyncio.sleep(0.5)  # the createRoom went to alice's inbox: nobody heard it
            assert alice.events.empty()
        finally:
            admin.config_set("requirepass", "")
        admin.close()

        frame = await asyncio.wait_for(alice.events.get(), 10)
        assert frame == {"event": "resync", "room": "r2", "seq": created["seq"]}
        args = update_args("r2", "owner", {"n": 1}, reply="ack")
        update = await owner.call("member.update", args)
        seen = await alice.events_until(update["seq"])
        assert [m["seq"] for m in seen] == [update["seq"]]
