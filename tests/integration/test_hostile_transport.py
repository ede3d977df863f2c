"""Hostile clients at the transport level (issue 9 items 1-2): a ping flood that never reads
is dropped with the hub's buffer for it bounded, and a dead reader whose backlog sits below
the send buffer limit is dropped by the keepalive; other clients keep being served."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from typing import Any

import msgpack

from roomhub.bench.wsclient import OP_BINARY, OP_PING, encode_frame, parse_frames

from ..support import APP, RawClient, connect_backend, create_room, token, update_args, ws_url

LIMIT = 256 * 1024


async def raw_open(hub: Any) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, Any]:
    """A handshaken raw socket with a tiny receive buffer; returns (reader, writer, hub side)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", hub.port))
    sock.setblocking(False)
    local = sock.getsockname()
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{hub.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    server_side = next(c for c in hub.server.connections if c.remote_address[:2] == local)
    return reader, writer, server_side


async def raw_auth(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, user: str) -> None:
    frame = {"id": 1, "op": "auth", "args": {"key": APP, "token": token(user)}}
    writer.write(encode_frame(OP_BINARY, msgpack.packb(frame)))
    data = b""
    while True:
        data += await asyncio.wait_for(reader.read(4096), 5)
        frames, _ = parse_frames(data)
        if frames:
            assert msgpack.unpackb(frames[0][2])["ok"] is True
            return


async def ping_flood(writer: asyncio.StreamWriter, server_side: Any, budget: int) -> int:
    """Send 125-byte pings without reading, up to `budget` bytes; returns the largest send
    backlog seen on the hub's side. Stops when the hub drops the connection."""
    batch = encode_frame(OP_PING, b"p" * 125) * 512
    sent = peak = 0
    try:
        while sent < budget and not server_side.connection_lost_waiter.done():
            writer.write(batch)
            await writer.drain()
            sent += len(batch)
            if not server_side.transport.is_closing():
                peak = max(peak, server_side.transport.get_write_buffer_size())
    except (ConnectionError, OSError):
        pass
    await asyncio.wait_for(asyncio.shield(server_side.connection_lost_waiter), 10)
    return peak


async def test_ping_flood_before_auth_is_dropped_with_bounded_buffer(start_hub: Any) -> None:
    hub = await start_hub(send_buffer_limit=LIMIT)
    reader, writer, server_side = await raw_open(hub)
    peak = await ping_flood(writer, server_side, 64 * 1024 * 1024)
    assert peak <= LIMIT + 512 * 1024, peak
    writer.close()
    async with RawClient.connect(ws_url(hub)) as other:  # the hub still serves
        await other.auth("other")


async def test_ping_flood_after_auth_is_dropped_with_bounded_buffer(start_hub: Any) -> None:
    hub = await start_hub(send_buffer_limit=LIMIT)
    reader, writer, server_side = await raw_open(hub)
    await raw_auth(reader, writer, "flooder")
    peak = await ping_flood(writer, server_side, 64 * 1024 * 1024)
    assert peak <= LIMIT + 512 * 1024, peak
    writer.close()


async def test_dead_reader_below_the_limit_is_dropped_by_keepalive(start_hub: Any) -> None:
    hub = await start_hub(send_buffer_limit=64 * 1024 * 1024, ping_interval=0.5, ping_timeout=0.5)
    url = ws_url(hub)
    async with connect_backend(url) as backend, RawClient.connect(url, "json") as bob:
        await bob.auth("bob")
        await create_room(backend, "r", "bob", ["dead"])
        reader, writer, server_side = await raw_open(hub)
        await raw_auth(reader, writer, "dead")
        big = {f"p{k}": "x" * 1000 for k in range(32)}
        for _ in range(10):  # ~10 MB: past the kernel buffers, far below the limit
            acks = await asyncio.gather(
                *(backend.call("member.update", update_args("r", "dead", big)) for _ in range(30))
            )
        last = max(a["seq"] for a in acks)
        assert server_side.transport.get_write_buffer_size() < 64 * 1024 * 1024
        # dropped by the keepalive (ping_interval + ping_timeout = 1 s; generous slack)
        await asyncio.wait_for(asyncio.shield(server_side.connection_lost_waiter), 10)
        got = await bob.events_until(last, room="r", timeout=30)
        assert got[-1]["seq"] == last
        room = await backend.call("member.update", update_args("r", "bob", {"n": 1}))
        assert (await bob.event())["seq"] == room["seq"]
        writer.close()
