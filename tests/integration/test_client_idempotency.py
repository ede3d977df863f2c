"""The Python client's exactly-once changes (issue 8 §2): a key on every mutating op, sent
again with the same key after a lost reply."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from roomhub.clients import ConnectionLost, RoomClient
from roomhub.clients.client import Backoff
from roomhub.server.node import running_hub
from roomhub.server.settings import Settings

from ..conftest import HubFactory
from ..support import APP, SECRET, free_port, setup_room, token, ws_url

FAST = Backoff(0.05, 0.2)


def _node(redis_url: str, port: int) -> contextlib.AbstractAsyncContextManager[object]:
    settings = Settings(
        port=port,
        http_port=0,
        apps={APP: SECRET},
        redis=redis_url,
        rate_limit=0,
        conn_rate_limit=0,
        user_rate_limit=0,
    )
    return running_hub(settings)


@pytest.mark.parametrize("idempotency", [True, False])
async def test_changes_in_flight_across_a_hub_stop_are_applied_once(
    redis_url: str, start_hub: HubFactory, idempotency: bool
) -> None:
    """Hub A stops with changes in flight: it closes its clients (1001), then lets the ops it
    was running finish, so their replies are lost although they were applied. The client
    sends them again on hub B with the same keys: each change is in the room exactly once."""
    hub_b = await start_hub(redis=redis_url)
    await setup_room(ws_url(hub_b), "r", "owner", ["alice"])
    port = free_port()
    url_a = f"ws://127.0.0.1:{port}/ws"
    async with contextlib.AsyncExitStack() as stack:
        node_a = contextlib.AsyncExitStack()
        stack.push_async_callback(node_a.aclose)
        await node_a.enter_async_context(_node(redis_url, port))
        owner = await stack.enter_async_context(
            RoomClient.connect(
                [url_a, ws_url(hub_b)],
                key=APP,
                token=token("owner"),
                reconnect=True,
                backoff=FAST,
                idempotency=idempotency,
            )
        )
        base = (await owner.get_room("r")).seq
        calls = [
            asyncio.ensure_future(owner.update_member("r", "alice", {f"p{n}": n}, reply="ack"))
            for n in range(20)
        ]
        await asyncio.sleep(0)  # sent, not yet answered
        await node_a.aclose()
        results = await asyncio.gather(*calls, return_exceptions=True)
        await owner.wait_open(timeout=10)
        room = await owner.get_room("r")
        props = room.member("alice").props if room.member("alice") else {}
        lost = [r for r in results if isinstance(r, ConnectionLost)]
        if idempotency:
            assert not lost and all(not isinstance(r, Exception) for r in results), results
            assert props == {f"p{n}": n for n in range(20)}
            assert room.seq == base + 20  # each change once: no repeat, no loss
        else:
            # without keys a lost reply is the caller's problem: it is reported, never re-sent
            assert lost  # the scenario does lose replies
            assert all(isinstance(r, ConnectionLost) for r in results if isinstance(r, Exception))
            assert room.seq == base + len(props)


async def test_the_key_makes_a_repeat_harmless(redis_url: str, start_hub: HubFactory) -> None:
    hub = await start_hub(redis=redis_url)
    await setup_room(ws_url(hub), "r", "owner", ["alice"])
    async with RoomClient.connect(ws_url(hub), key=APP, token=token("owner")) as owner:
        args = {"room": "r", "user": "alice", "properties": {"x": 1}, "reply": "ack"}
        first = await owner._exactly_once("member.update", {**args, "idempotency_key": "k1"})
        again = await owner._exactly_once("member.update", {**args, "idempotency_key": "k1"})
        assert first == again
        assert (await owner.get_room("r")).seq == first["seq"]
