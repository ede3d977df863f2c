"""A reader that pauses for seconds while 1,000 messages flow gets all of them, in order,
when it reads again — and the others were served meanwhile without waiting for it."""

from __future__ import annotations

import asyncio
from typing import Any

import msgpack
import websockets

from ..support import APP, RawClient, connect_backend, create_room, token, update_args, ws_url


async def test_paused_reader_catches_up_in_order(hub: Any) -> None:
    url = ws_url(hub)
    async with connect_backend(url) as backend:
        await create_room(backend, "r", "owner", ["sleepy", "awake"])
        # max_queue=1: once it stops reading, websockets stops reading the socket too, so the
        # backlog builds up in the kernel and the hub's send buffer, as with a stalled app.
        async with (
            websockets.connect(url, subprotocols=["roomhub.v1.msgpack"], max_queue=1) as sleepy,
            RawClient.connect(url) as awake,
        ):
            await sleepy.send(
                msgpack.packb(
                    {"id": 1, "op": "auth", "args": {"key": APP, "token": token("sleepy")}}
                )
            )
            assert msgpack.unpackb(await sleepy.recv())["ok"]
            await awake.auth("awake")

            acks = await asyncio.gather(
                *(
                    backend.call("member.update", update_args("r", "owner", {"n": n}, reply="ack"))
                    for n in range(1000)
                )
            )
            last = max(ack["seq"] for ack in acks)
            # The one who reads got everything while the other slept.
            assert [m["seq"] for m in await awake.events_until(last)] == list(range(2, last + 1))
            await asyncio.sleep(2)  # still asleep

            seqs = []
            while len(seqs) < last - 1:
                frame = msgpack.unpackb(await asyncio.wait_for(sleepy.recv(), 10))
                seqs.append(frame["message"]["seq"])
            assert seqs == list(range(2, last + 1))
