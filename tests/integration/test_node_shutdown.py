"""SIGTERM on a hub node (a real `roomhub serve` process) while clients are busy: clients are
closed with 1001 and reconnect to the other node; every acknowledged op is in the history
exactly once, and every member saw every message exactly once, in order."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import subprocess
import warnings
from collections.abc import Iterator
from typing import Any

import redis
import websockets

from roomhub.server.node import build_store
from roomhub.server.settings import Settings
from roomhub.server.store.scripts import RoomHistory

from ..support import (
    APP,
    SECRET,
    RawClient,
    RedisProcess,
    free_port,
    serve_process,
    setup_room,
    token,
    update_args,
    wait_ready,
)


@contextlib.contextmanager
def serve(redis_url: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A `roomhub serve` node on a free port: (process, its WebSocket URL)."""
    port = free_port()
    with serve_process(redis_url, port) as proc:
        yield proc, f"ws://127.0.0.1:{port}/ws"


def _update(n: int) -> dict[str, Any]:
    return update_args("r", "owner", {"n": n}, reply="ack")


async def test_sigterm_loses_no_acknowledged_op(redis_url: str) -> None:
    with serve(redis_url) as (node_a, url_a), serve(redis_url) as (_node_b, url_b):
        await asyncio.gather(wait_ready(url_a), wait_ready(url_b))
        await setup_room(url_b, "r", "owner", ["alice", "bob"])

        acked: list[int] = []
        seen_bob: list[int] = []
        async with (
            RawClient.connect(url_a) as writer,
            RawClient.connect(url_a) as bob,
            RawClient.connect(url_b) as alice,
        ):
            await writer.auth("owner")
            await bob.auth("bob")
            await alice.auth("alice")

            async def write(client: RawClient, start: int, count: int) -> None:
                for n in range(start, start + count):
                    try:
                        reply = await client.request("member.update", _update(n), timeout=5)
                        while _rate_limited(reply):
                            # The owner's per-user budget is shared by both nodes: node A's
                            # writes may have spent it. Wait as told and write the same again.
                            await asyncio.sleep(reply["error"]["retry_after_ms"] / 1000)
                            reply = await client.request("member.update", _update(n), timeout=5)
                    except (websockets.ConnectionClosed, TimeoutError):
                        return  # unacknowledged: it may or may not have been applied
                    if reply["ok"]:
                        acked.append(reply["result"]["seq"])

            writing = asyncio.create_task(write(writer, 0, 10_000))
            await asyncio.sleep(0.5)
            node_a.send_signal(signal.SIGTERM)
            code, _ = await bob.closed(timeout=15)
            assert code == 1001  # going away: reconnect elsewhere
            await asyncio.wait_for(writing, 15)
            assert node_a.wait(15) == 0  # a clean exit
            assert len(acked) > 10

            seen_bob = [m["seq"] for m in _system(bob.frames)]
            # The writer and bob reconnect to node B and resume from their last seq.
            async with RawClient.connect(url_b) as writer2, RawClient.connect(url_b) as bob2:
                await writer2.auth("owner")
                await bob2.call(
                    "auth",
                    {
                        "key": APP,
                        "token": token("bob"),
                        "resume": {"r": seen_bob[-1] if seen_bob else 1},
                    },
                )
                acked_on_a = len(acked)
                await write(writer2, 20_000, 20)
                assert len(acked) == acked_on_a + 20  # node B acknowledged all its writes
                last = acked[-1]
                seen_bob += [m["seq"] for m in await bob2.events_until(last)]
                seen_alice = [m["seq"] for m in await alice.events_until(last)]
                page = await writer2.call(
                    "room.history", {"room": "r", "after_seq": 1, "limit": 200}
                )
                history: list[int] = [m["seq"] for m in page["messages"]]
                while page["more"]:
                    page = await writer2.call(
                        "room.history", {"room": "r", "after_seq": history[-1], "limit": 200}
                    )
                    history += [m["seq"] for m in page["messages"]]

        assert history == list(range(2, last + 1))  # gapless, no repeats
        assert set(acked) <= set(history)  # every acknowledged op is there
        assert len(set(acked)) == len(acked)  # each exactly once
        assert seen_alice == history  # alice (never moved): every message once, in order
        assert seen_bob == history  # bob (moved nodes, resumed): the same


def _rate_limited(reply: dict[str, Any]) -> bool:
    return not reply["ok"] and reply["error"]["code"] == 100009


def _system(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f["message"] for f in frames if f.get("event") == "system" and f["message"]["seq"] > 1]


# --- a hub's store closed with a batch in flight -----------------------------------------


async def test_a_store_closed_with_a_read_in_flight_leaves_no_connection_open() -> None:
    """A batch whose caller went away at shutdown must not outlive the store: on a fresh
    Redis (NOSCRIPT) it used to reload its script on a new connection nobody closed."""
    server = RedisProcess()  # a script cache of its own: the session's is left warm

    async def trial() -> None:
        with redis.Redis(port=server.port) as sync:
            sync.script_flush()  # as on a fresh or restarted Redis
        store = build_store(Settings(port=0, apps={APP: SECRET}, redis=server.url))
        await store.ping()
        read = asyncio.ensure_future(store.run(APP, RoomHistory(room="r", after_seq=0, limit=10)))
        for _ in range(3):  # the batch is on its way to Redis ...
            await asyncio.sleep(0)
        read.cancel()  # ... when its caller goes away, as at a hub's shutdown
        await store.close()
        await asyncio.sleep(0.05)  # (the orphaned batch finishes)

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            for _ in range(5):
                await trial()
            gc.collect()  # collected here, under catch_warnings: nothing leaks into later tests
    finally:
        server.stop()
    leaked = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaked == []
