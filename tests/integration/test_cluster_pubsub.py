"""Live delivery on a Redis Cluster: sharded pub/sub where the servers have it (7.0+), classic
pub/sub otherwise, and hubs that follow their subscriptions when the cluster changes under
them — pub/sub connections cut, a slot moved to another master, a master killed and replaced
by its replica — without a restart, losing and repeating nothing.

Which mode a hub must choose follows from the redis-server the suite runs (the newest
installed: roomhub.bench.infra.redis_server_binary), so each test checks the one the
machine offers and asserts it was the one chosen.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis

from roomhub.server.hub import Hub

from ..conftest import HubFactory
from ..support import (
    APP,
    RawClient,
    RedisClusterProcesses,
    RedisProcess,
    authenticated,
    redis_server_version,
    setup_room,
    update_args,
    ws_url,
)

SHARDED = redis_server_version() >= (7, 0)
MODE = "sharded" if SHARDED else "classic"
ROOM = "r"
CHANNEL = f"rh:{{{APP}:{ROOM}}}:events"
META_KEY = f"rh:{{{APP}:{ROOM}}}:meta"

Message = dict[str, Any]


def _numsub(node: RedisProcess, channel: str, *, shard: bool) -> int:
    """Subscribers of `channel` on this node (PUBSUB SHARDNUMSUB / NUMSUB)."""
    with redis.Redis(port=node.port) as client:
        reply = client.execute_command("PUBSUB", "SHARDNUMSUB" if shard else "NUMSUB", channel)
    return int(reply[1])


def _probe_channel(hub: Hub) -> str:
    return f"rh:node:{hub.settings.node_id}:probe"


def _live(cluster: RedisClusterProcesses) -> list[RedisProcess]:
    return [node for node in cluster.nodes if node.proc.poll() is None]


def _assert_subscriptions(cluster: RedisClusterProcesses, owner: RedisProcess, hubs: int) -> None:
    """Sharded: each hub holds the room's channel on the master of its slot, and only there;
    no classic subscription of it anywhere. Classic: the hubs' subscriptions are classic."""
    live = _live(cluster)
    if SHARDED:
        assert _numsub(owner, CHANNEL, shard=True) == hubs
        assert [_numsub(n, CHANNEL, shard=True) for n in live if n is not owner] == [0] * (
            len(live) - 1
        )
    assert sum(_numsub(n, CHANNEL, shard=False) for n in live) == (0 if SHARDED else hubs)


def _check_run(name: str, got: list[Message], acked: dict[int, int]) -> None:
    """Every message once, in seq order, no gap; each acknowledged op there with its value."""
    assert got, f"{name} got nothing"
    seqs = [m["seq"] for m in got]
    assert seqs == list(range(seqs[0], seqs[-1] + 1)), f"{name}: {seqs}"
    values = {m["seq"]: m["changes"].get("n") for m in got}
    missing = {seq: n for seq, n in acked.items() if values.get(seq) != n}
    assert not missing, f"{name} lacks acknowledged ops (seq: value) {missing}"


async def _collect(client: RawClient, last: int, timeout: float = 30) -> list[Message]:
    """The messages of ROOM after the room's creation, up to seq `last`."""
    got = await client.events_until(last, room=ROOM, timeout=timeout)
    return [m for m in got if m["room"] == ROOM and m["type"] == "updateMember"]


def _update(n: int) -> dict[str, Any]:
    return update_args(ROOM, "owner", {"n": n}, reply="ack")


async def _write(client: RawClient, n: int, deadline: float) -> dict[str, Any]:
    """member.update {"n": n}, retried while the store is unavailable (100001)."""
    while True:
        reply = await client.request("member.update", _update(n), timeout=15)
        if reply["ok"] or reply["error"]["code"] != 100001 or time.monotonic() > deadline:
            assert reply["ok"], reply
            return reply["result"]  # type: ignore[no-any-return]
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def _members(
    first: Hub, second: Hub
) -> AsyncIterator[tuple[RawClient, RawClient, RawClient, RawClient]]:
    """owner and alice on the first hub, bob and carol on the second: all in ROOM."""
    await setup_room(ws_url(first), ROOM, "owner", ["alice", "bob", "carol"])
    async with authenticated(
        (first, "owner", "msgpack", False),
        (first, "alice", "json", False),
        (second, "bob", "msgpack", False),
        (second, "carol", "json", False),
    ) as (owner, alice, bob, carol):
        yield owner, alice, bob, carol


# --- the mode, and delivery by it --------------------------------------------------------


async def test_room_events_travel_by_sharded_pubsub_where_the_cluster_has_it(
    redis_cluster_processes: RedisClusterProcesses, redis_cluster_url: str, start_hub: HubFactory
) -> None:
    first = await start_hub(redis=redis_cluster_url)
    second = await start_hub(redis=redis_cluster_url)
    assert (first.store.pubsub_mode, second.store.pubsub_mode) == (MODE, MODE)
    cluster = redis_cluster_processes
    async with _members(first, second) as (owner, alice, bob, carol):
        _assert_subscriptions(cluster, cluster.master_of(META_KEY), hubs=2)
        replies = await asyncio.gather(
            *(owner.call("member.update", _update(n)) for n in range(40))  # pipelined
        )
        acked = {int(reply["seq"]): n for n, reply in enumerate(replies)}
        for name, client in (("alice", alice), ("bob", bob), ("carol", carol)):
            _check_run(name, await _collect(client, max(acked)), acked)
            await client.no_event(0.2)  # and nothing twice

        # A newcomer on the second hub: told through the inbox (classic even in sharded
        # mode), then the room's own channel carries on.
        async with authenticated((second, "dave", "msgpack", False)) as (dave,):
            add = await owner.call(
                "member.add", {"room": ROOM, "invitees": ["dave"], "reply": "ack"}
            )
            after = await owner.call("member.update", _update(99))
            got = await dave.events_until(after["seq"], room=ROOM)
            assert [(m["seq"], m["type"]) for m in got] == [
                (add["seq"], "addMember"),
                (after["seq"], "updateMember"),
            ]


async def test_cut_pubsub_connections_resubscribe_and_heal_from_the_logs(
    redis_cluster_processes: RedisClusterProcesses, redis_cluster_url: str, start_hub: HubFactory
) -> None:
    """The changes made right after the cut likely go out before the hubs are subscribed
    again, and nothing comes after them: only the healing on reconnect delivers them."""
    first = await start_hub(redis=redis_cluster_url)
    second = await start_hub(redis=redis_cluster_url)
    cluster = redis_cluster_processes
    async with _members(first, second) as (owner, alice, bob, carol):
        acked: dict[int, int] = {}
        deadline = time.monotonic() + 60
        for n in range(10):
            acked[int((await _write(owner, n, deadline))["seq"])] = n
        for node in cluster.nodes:  # every pub/sub connection of both hubs, classic and sharded
            with redis.Redis(port=node.port) as client:
                client.client_kill_filter(_type="pubsub")
        for n in range(10, 20):
            acked[int((await _write(owner, n, deadline))["seq"])] = n
        for name, client in (("alice", alice), ("bob", bob), ("carol", carol)):
            _check_run(name, await _collect(client, max(acked)), acked)
            await client.no_event(0.2)
        _assert_subscriptions(cluster, cluster.master_of(META_KEY), hubs=2)


# --- the cluster changing under the hubs --------------------------------------------------


@pytest.fixture
def own_cluster() -> Iterator[RedisClusterProcesses]:
    """A 3-master cluster of the test's own, to rearrange."""
    with RedisClusterProcesses(masters=3) as cluster:
        yield cluster


def _move_slot(cluster: RedisClusterProcesses, key: str, target: RedisProcess) -> None:
    """Move `key`'s slot, with its keys, to `target` (as redis-cli --cluster reshard does)."""
    source = cluster.master_of(key)
    with redis.Redis(port=source.port) as src, redis.Redis(port=target.port) as dst:
        slot = int(src.execute_command("CLUSTER", "KEYSLOT", key))
        src_id = src.execute_command("CLUSTER", "MYID").decode()
        dst_id = dst.execute_command("CLUSTER", "MYID").decode()
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
        while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
            src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
        for node in (target, source, *(n for n in cluster.nodes if n not in (target, source))):
            with redis.Redis(port=node.port) as client:
                client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)


async def test_a_room_whose_slot_moves_is_followed_to_its_new_master(
    own_cluster: RedisClusterProcesses, start_hub: HubFactory
) -> None:
    # No probe in the test's time: the hubs must act on the SUNSUBSCRIBE Redis sends them.
    first = await start_hub(redis=own_cluster.url, pubsub_probe_interval=300)
    second = await start_hub(redis=own_cluster.url, pubsub_probe_interval=300)
    assert (first.store.pubsub_mode, second.store.pubsub_mode) == (MODE, MODE)
    async with _members(first, second) as (owner, alice, bob, carol):
        source = own_cluster.master_of(META_KEY)
        _assert_subscriptions(own_cluster, source, hubs=2)
        acked: dict[int, int] = {}
        deadline = time.monotonic() + 60
        for n in range(10):
            acked[int((await _write(owner, n, deadline))["seq"])] = n
        # The source drops the hubs' shard subscriptions of the slot (an unasked SUNSUBSCRIBE):
        # they must subscribe again on the new master.
        target = next(n for n in own_cluster.nodes if n is not source)
        _move_slot(own_cluster, META_KEY, target)
        assert own_cluster.master_of(META_KEY) is target
        for n in range(10, 20):
            acked[int((await _write(owner, n, deadline))["seq"])] = n
        for name, client in (("alice", alice), ("bob", bob), ("carol", carol)):
            _check_run(name, await _collect(client, max(acked)), acked)
            await client.no_event(0.2)
        _assert_subscriptions(own_cluster, target, hubs=2)


async def _replaced(cluster: RedisClusterProcesses, dead: RedisProcess) -> RedisProcess:
    """The master that took over `dead`'s slots, once the cluster has promoted it."""
    deadline = time.monotonic() + 30
    while True:
        with contextlib.suppress(LookupError, redis.RedisError):
            master = await asyncio.to_thread(cluster.master_of, META_KEY)
            if master is not dead:
                return master
        assert time.monotonic() < deadline, "no replica took over"
        await asyncio.sleep(0.1)


def _add_replica(cluster: RedisClusterProcesses, master: RedisProcess) -> None:
    """A fresh node that joins the cluster as a replica of `master` and syncs: a failed
    master's successor has none left, and with min_replicas=1 no change is acknowledged
    until it does. (A fresh node, not the killed master restarted: that one would claim
    its old slots, empty, until the cluster tells it otherwise.)"""
    node = RedisProcess(*cluster.nodes[0].extra)
    cluster.nodes.append(node)  # stopped with the cluster
    with redis.Redis(port=node.port) as client, redis.Redis(port=master.port) as owner:
        client.execute_command("CLUSTER", "MEET", "127.0.0.1", master.port)
        master_id = owner.execute_command("CLUSTER", "MYID").decode()
        deadline = time.monotonic() + 20
        while True:
            try:
                client.execute_command("CLUSTER", "REPLICATE", master_id)
                break
            except redis.ResponseError:  # it does not know the master yet
                assert time.monotonic() < deadline, "the new node did not meet the cluster"
                time.sleep(0.05)
        while client.info("replication").get("master_link_status") != "up":
            assert time.monotonic() < deadline, "the new replica did not sync"
            time.sleep(0.05)


WRITERS = 4


async def test_a_killed_master_is_replaced_and_no_acknowledged_change_is_lost(
    start_hub: HubFactory,
) -> None:
    """SIGKILL the master that holds the room and every pub/sub connection of both hubs, in
    the middle of several concurrent streams of changes. Its replica takes over (after the
    1.5 s node timeout); the hubs must move their connections there, resubscribe and heal
    from the room's log.

    Redis replication is asynchronous (docs/operations.md §6): a master may acknowledge a
    write it has not passed on yet, and a crash then loses it. So the hubs run with
    min_replicas=1: an op is acknowledged only once WAIT says the replica has its write, and
    every acknowledged change must be on the successor. Writes fail with 100001 (retried
    here) from the kill until a new replica of the successor has synced."""
    with RedisClusterProcesses(masters=3, replicas=1, node_timeout=1500) as cluster:
        victim = cluster.master_of(META_KEY)
        others = [node for node in cluster.nodes[:3] if node is not victim]
        # The victim first: the hubs' classic connections go to the first startup node.
        url = "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in (victim, *others))
        durable = {"min_replicas": 1, "min_replicas_timeout": 1.0}
        first = await start_hub(redis=url, pubsub_probe_interval=1.0, **durable)
        second = await start_hub(redis=url, pubsub_probe_interval=1.0, **durable)
        assert (first.store.pubsub_mode, second.store.pubsub_mode) == (MODE, MODE)
        async with _members(first, second) as (owner, alice, bob, carol):
            _assert_subscriptions(cluster, victim, hubs=2)
            for hub in (first, second):
                assert _numsub(victim, _probe_channel(hub), shard=False) == 1

            acked: dict[int, int] = {}
            values = itertools.count()
            started, replaced, done = asyncio.Event(), asyncio.Event(), asyncio.Event()
            after = 0

            async def write() -> None:
                nonlocal after
                deadline = time.monotonic() + 60
                while not done.is_set():
                    n = next(values)
                    acked[int((await _write(owner, n, deadline))["seq"])] = n
                    if len(acked) >= 20:
                        started.set()
                    if replaced.is_set():
                        after += 1
                        if after >= 20:
                            done.set()

            writers = asyncio.gather(*(write() for _ in range(WRITERS)))
            try:
                await asyncio.wait_for(started.wait(), 30)
                victim.proc.kill()
                victim.proc.wait()
                successor = await _replaced(cluster, victim)
                await asyncio.to_thread(_add_replica, cluster, successor)
                replaced.set()
                await asyncio.wait_for(asyncio.shield(writers), 60)
            finally:
                writers.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writers
            for name, client in (("alice", alice), ("bob", bob), ("carol", carol)):
                _check_run(name, await _collect(client, max(acked)), acked)
                await client.no_event(0.2)
            _assert_subscriptions(cluster, successor, hubs=2)
            for hub in (first, second):  # each classic connection moved to a live node
                probes = [_numsub(n, _probe_channel(hub), shard=False) for n in _live(cluster)]
                assert sum(probes) == 1, probes
