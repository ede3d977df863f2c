"""PROTOCOL.md §8 against a real Redis: the app ceiling holds across nodes, rejected ops
change nothing, the per-connection limit binds user connections only."""

from __future__ import annotations

import asyncio
from typing import Any

from ..conftest import HubFactory
from ..support import RawClient, setup_room, update_args, ws_url


async def _burst(client: RawClient, count: int, start: int = 0) -> list[dict[str, Any]]:
    return await asyncio.gather(
        *(
            client.request(
                "member.update", update_args("r", "alice", {"n": start + i}, reply="ack")
            )
            for i in range(count)
        )
    )


async def test_app_ceiling_is_shared_by_two_nodes(redis_url: str, start_hub: HubFactory) -> None:
    await setup_room(ws_url(await start_hub(redis=redis_url)), "r", "alice", ["bob"])
    node_a = await start_hub(redis=redis_url, rate_limit=6)
    node_b = await start_hub(redis=redis_url, rate_limit=6)
    async with RawClient.connect(ws_url(node_a)) as a, RawClient.connect(ws_url(node_b)) as b:
        await a.auth("backend", server=True)
        await b.auth("backend", server=True)
        replies = await asyncio.gather(_burst(a, 6), _burst(b, 6, start=100))
        flat = [r for batch in replies for r in batch]
        admitted = [r for r in flat if r["ok"]]
        rejected = [r for r in flat if not r["ok"]]
        assert len(admitted) == 6  # 6 per second for the app, not 6 per node
        assert len(rejected) == 6
        for reply in rejected:
            error = reply["error"]
            assert error["code"] == 100009 and error["reason"] == "RATE_LIMITED"
            assert 0 < error["retry_after_ms"] <= 1000
        # Rejected ops changed nothing: the history holds exactly the admitted changes.
        await asyncio.sleep(max(r["error"]["retry_after_ms"] for r in rejected) / 1000)
        page = await a.call("room.history", {"room": "r"})
        assert [m["seq"] for m in page["messages"]] == list(range(1, 8))
        # Reads are not limited.
        assert (await a.request("room.get", {"room": "r"}))["ok"]
        # After the wait, the app is admitted again.
        assert (await _burst(a, 1, start=500))[0]["ok"]


async def test_per_connection_limit_binds_user_connections_only(
    redis_url: str, start_hub: HubFactory
) -> None:
    hub = await start_hub(redis=redis_url, rate_limit=0, conn_rate_limit=3)
    await setup_room(ws_url(hub), "r", "alice", ["bob"])
    async with RawClient.connect(ws_url(hub)) as alice, RawClient.connect(ws_url(hub)) as server:
        await alice.auth("alice")
        await server.auth("backend", server=True)
        mine = await _burst(alice, 5)
        assert [r["ok"] for r in mine].count(True) == 3
        assert {r["error"]["code"] for r in mine if not r["ok"]} == {100009}
        theirs = await _burst(server, 5, start=50)
        assert all(r["ok"] for r in theirs)  # server connections: app ceiling only


async def test_rate_limit_comes_before_argument_errors(
    redis_url: str, start_hub: HubFactory
) -> None:
    hub = await start_hub(redis=redis_url, rate_limit=1)
    await setup_room(ws_url(await start_hub(redis=redis_url)), "r", "alice", ["bob"])
    async with RawClient.connect(ws_url(hub)) as alice:
        await alice.auth("alice")
        await alice.call("member.update", {"room": "r", "user": "alice", "properties": {"x": 1}})
        error = await alice.fail("member.update", {"room": "r", "bogus": 1})
        assert error["code"] == 100009  # §6: 100009 precedes 100002
