"""`min_replicas`: a change is acknowledged only once a replica has it (Redis WAIT after each
batch, on the connection that carried it); a replica that does not confirm in time makes
the op fail with 100001 ("store unavailable; safe to retry"), never drop the connection.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator

import pytest
import redis

from roomhub.server.node import build_store
from roomhub.server.settings import Settings

from ..conftest import HubFactory
from ..support import APP, SECRET, RedisProcess, authenticated, setup_room, update_args, ws_url

ROOM = "r"
META_KEY = f"rh:{{{APP}:{ROOM}}}:meta"


class Replicated:
    """A master and one replica of it, in sync."""

    def __init__(self) -> None:
        self.master = RedisProcess("--repl-diskless-sync-delay", "0")
        try:
            self.replica = RedisProcess("--replicaof", "127.0.0.1", str(self.master.port))
        except BaseException:
            self.master.stop(keep_data=False)
            raise
        self.stopped = False

    def wait_in_sync(self) -> None:
        deadline = time.monotonic() + 20
        with redis.Redis(port=self.replica.port) as client:
            while client.info("replication").get("master_link_status") != "up":
                assert time.monotonic() < deadline, "the replica did not sync"
                time.sleep(0.05)
        while not self.caught_up():  # and the master counts it
            assert time.monotonic() < deadline, "the master does not see the replica"
            time.sleep(0.05)

    def pause_replica(self) -> None:
        os.kill(self.replica.proc.pid, signal.SIGSTOP)
        self.stopped = True

    def resume_replica(self) -> None:
        os.kill(self.replica.proc.pid, signal.SIGCONT)
        self.stopped = False

    def caught_up(self) -> bool:
        """The replica has confirmed everything the master wrote (REPLCONF ACK)."""
        with redis.Redis(port=self.master.port) as client:
            info = client.info("replication")
        replica = info.get("slave0")
        return (
            isinstance(replica, dict)
            and replica.get("state") == "online"
            and replica["offset"] == info["master_repl_offset"]
        )

    def replica_seq(self) -> int:
        with redis.Redis(port=self.replica.port) as client:
            return int(client.hget(META_KEY, "seq") or 0)

    def master_blocked_clients(self) -> int:
        with redis.Redis(port=self.master.port) as client:
            return int(client.info("clients")["blocked_clients"])

    def stop(self) -> None:
        if self.stopped:
            self.resume_replica()
        self.replica.stop(keep_data=False)
        self.master.stop(keep_data=False)


@pytest.fixture
def replicated() -> Iterator[Replicated]:
    pair = Replicated()
    try:
        pair.wait_in_sync()
        yield pair
    finally:
        pair.stop()


async def _wait_until(check: object, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):  # type: ignore[arg-type]
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("encoding", ["msgpack", "json"])
async def test_an_ack_waits_for_the_replica(
    replicated: Replicated, start_hub: HubFactory, encoding: str
) -> None:
    hub = await start_hub(redis=replicated.master.url, min_replicas=1, min_replicas_timeout=10.0)
    await setup_room(ws_url(hub), ROOM, "owner", ["alice"])
    async with authenticated((hub, "owner", encoding, False)) as (owner,):
        ack = await owner.call("member.update", update_args(ROOM, "owner", {"n": 1}, reply="ack"))
        assert replicated.replica_seq() == ack["seq"]  # there before the ack came

        replicated.pause_replica()
        pending = asyncio.ensure_future(
            owner.request("member.update", update_args(ROOM, "owner", {"n": 2}, reply="ack"))
        )
        # The change is on the master and its WAIT blocks there: no ack without the replica.
        await _wait_until(lambda: replicated.master_blocked_clients() >= 1, "no WAIT blocked")
        assert not pending.done()
        replicated.resume_replica()
        reply = await pending
        assert reply["ok"], reply
        assert replicated.replica_seq() == reply["result"]["seq"] == ack["seq"] + 1


@pytest.mark.parametrize("encoding", ["msgpack", "json"])
async def test_without_the_replica_changes_fail_as_unavailable_and_the_connection_stays(
    replicated: Replicated, start_hub: HubFactory, encoding: str
) -> None:
    hub = await start_hub(redis=replicated.master.url, min_replicas=1, min_replicas_timeout=1.0)
    await setup_room(ws_url(hub), ROOM, "owner", ["alice"])
    async with authenticated((hub, "owner", encoding, False), (hub, "alice", encoding, False)) as (
        owner,
        alice,
    ):
        before = await owner.call("member.update", update_args(ROOM, "owner", {"n": 0}))
        replicated.pause_replica()
        for n in (1, 2):  # one after the other on the same connection
            error = await owner.fail("member.update", update_args(ROOM, "owner", {"n": n}))
            assert error["code"] == 100001, error
        # Reads wait for no replica.
        room = await alice.call("room.get", {"room": ROOM})
        assert room["id"] == ROOM

        replicated.resume_replica()
        # Not a timing assertion: once caught up, the next change's WAIT can be answered.
        await _wait_until(replicated.caught_up, "the replica did not catch up")
        after = await owner.call("member.update", update_args(ROOM, "owner", {"n": 3}, reply="ack"))
        assert after["seq"] > before["seq"]
        assert replicated.replica_seq() == after["seq"]
        assert owner.ws.close_code is None and alice.ws.close_code is None


def test_the_embedded_store_refuses_min_replicas() -> None:
    """It has no replicas: every change would fail."""
    settings = Settings(port=0, apps={APP: SECRET}, redis=None, min_replicas=1)
    with pytest.raises(ValueError, match="min-replicas"):
        build_store(settings)
