"""The cost of --min-replicas: ack latency (p50/p99) and ops/s of member.update with
min_replicas 0 and then 1, back to back, on one redis-server primary with one replica.

    python -m roomhub.bench.replicas [--seconds 5] [--senders 8] [--in-flight 4]

One in-process hub node; each sender is a WebSocket client with `in-flight` ops in closed
loops. The figures are for comparing the two settings on one machine, not absolute."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import orjson
import websockets

from roomhub.server.auth import mint_token
from roomhub.server.node import running_hub
from roomhub.server.settings import Settings

from .infra import RedisServer

APP, SECRET = "bench", "bench-secret-that-is-long-enough-for-hs256"


def _token(user: str, server: bool = False) -> str:
    return mint_token(SECRET, user, server=server)


async def _call(ws: websockets.ClientConnection, rid: int, op: str, args: dict) -> dict:
    await ws.send(orjson.dumps({"id": rid, "op": op, "args": args}).decode())
    while True:
        frame = orjson.loads(await ws.recv())
        if frame.get("re") == rid:
            return frame


async def _run(url: str, min_replicas: int, seconds: float, senders: int, in_flight: int) -> dict:
    settings = Settings(
        port=0, apps={APP: SECRET}, redis=url, rate_limit=0, conn_rate_limit=0, user_rate_limit=0,
        min_replicas=min_replicas,
    )  # fmt: skip
    latencies: list[float] = []
    async with running_hub(settings) as hub:
        ws_url = f"ws://127.0.0.1:{hub.port}/ws"
        sub = ["roomhub.v1.json"]
        async with websockets.connect(ws_url, subprotocols=sub) as backend:  # type: ignore[list-item]
            await _call(backend, 1, "auth", {"key": APP, "token": _token("backend", True)})
            for i in range(senders):
                await _call(backend, 2 + 2 * i, "user.upsert", {"id": f"u{i}"})
                room = {"room": f"r{min_replicas}-{i}", "owner": f"u{i}", "members": []}
                await _call(backend, 3 + 2 * i, "room.create", room)
        stop = time.monotonic() + seconds

        async def sender(i: int) -> None:
            async with websockets.connect(ws_url, subprotocols=sub) as ws:  # type: ignore[list-item]
                await _call(ws, 0, "auth", {"key": APP, "token": _token(f"u{i}")})
                waiting: dict[int, float] = {}
                ids = iter(range(1, 10**9))
                args = {"room": f"r{min_replicas}-{i}", "user": f"u{i}", "reply": "ack"}

                async def send() -> None:
                    rid = next(ids)
                    waiting[rid] = time.perf_counter()
                    frame = {
                        "id": rid,
                        "op": "member.update",
                        "args": {**args, "properties": {"n": rid}},
                    }
                    await ws.send(orjson.dumps(frame).decode())

                for _ in range(in_flight):
                    await send()
                while waiting:
                    frame = orjson.loads(await ws.recv())
                    sent = waiting.pop(frame.get("re"), None)
                    if sent is None:
                        continue
                    assert frame["ok"], frame
                    latencies.append(time.perf_counter() - sent)
                    if time.monotonic() < stop:
                        await send()

        began = time.monotonic()
        await asyncio.gather(*(sender(i) for i in range(senders)))
        elapsed = time.monotonic() - began
    latencies.sort()
    return {
        "min_replicas": min_replicas,
        "ops": len(latencies),
        "ops_per_s": round(len(latencies) / elapsed),
        "ack_p50_ms": round(statistics.median(latencies) * 1000, 2),
        "ack_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
    }


def _wait_in_sync(port: int) -> None:
    import redis

    with redis.Redis(port=port) as client:
        while client.info("replication").get("master_link_status") != "up":
            time.sleep(0.05)


async def main(args: argparse.Namespace) -> None:
    primary = RedisServer("--repl-diskless-sync-delay", "0")
    replica = RedisServer("--replicaof", "127.0.0.1", str(primary.port))
    try:
        for server in (primary, replica):
            await server.ready()
        await asyncio.to_thread(_wait_in_sync, replica.port)
        for n in (0, 1):
            print(
                orjson.dumps(
                    await _run(primary.url, n, args.seconds, args.senders, args.in_flight)
                ).decode()
            )
    finally:
        replica.stop()
        primary.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--in-flight", type=int, default=4)
    asyncio.run(main(parser.parse_args()))
