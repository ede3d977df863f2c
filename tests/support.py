"""Test helpers: a real redis-server, in-process hub nodes on free ports, a raw WS client.

The raw client speaks the wire protocol with a plain WebSocket and plain msgpack/JSON, the
way any client author would, so the tests check the contract from outside.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any

import msgpack
import redis
import websockets

from roomhub.bench.infra import (
    RedisServer,
    free_port,
    redis_server_binary,
    redis_server_version_of,
)
from roomhub.server.auth import mint_token

APP = "testapp"
SECRET = "test-secret-that-is-long-enough-for-hs256"


def token(user: str, *, server: bool = False, ttl: float = 600, secret: str = SECRET) -> str:
    """A token for `user` of the test app (server.auth.mint_token with the tests' defaults)."""
    return mint_token(secret, user, server=server, ttl=ttl)


def ws_url(hub: Any, path: str = "/ws") -> str:
    """The WebSocket URL of a hub started in this process."""
    return f"ws://127.0.0.1:{hub.port}{path}"


@functools.cache
def redis_server_version() -> tuple[int, ...]:
    """The version of the redis-server the tests run."""
    return redis_server_version_of(redis_server_binary())


class RedisProcess(RedisServer):
    """The bench's RedisServer, started and ready on return; `persistent`: AOF everysec.
    `stop` keeps the data, so `start` brings the same dataset back (a restart)."""

    def __init__(self, *extra: str, persistent: bool = False) -> None:
        port = free_port(with_cluster_bus="--cluster-enabled" in extra)
        super().__init__(*extra, appendonly=persistent, port=port)

    def start(self) -> None:
        super().start()
        self.wait_ready()

    def flush(self) -> None:
        with redis.Redis(port=self.port) as client:
            client.flushall()

    def stop(self, keep_data: bool = True) -> None:
        super().stop(keep_data=keep_data)

    def __enter__(self) -> RedisProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def serve_process(redis_url: str, port: int, *flags: str) -> Iterator[subprocess.Popen[bytes]]:
    """A real `python -m roomhub.server serve` node on `port`, rate limits off (more `flags`
    after those); killed at the end if it is still running."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "roomhub.server",
            "serve",
            "--port",
            str(port),
            "--http-port",
            "0",
            "--redis",
            redis_url,
            "--app",
            f"{APP}={SECRET}",
            "--rate-limit",
            "0",
            "--conn-rate-limit",
            "0",
            *flags,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


async def wait_ready(url: str, timeout: float = 20) -> None:
    """Wait until a WebSocket connection to `url` opens."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            async with websockets.connect(url):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


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
    """A local Redis Cluster of `masters` redis-server processes, each with `replicas`
    replicas, built with CLUSTER ADDSLOTS/MEET/REPLICATE so it needs nothing but the
    redis-server binary. `node_timeout` (ms) is how long a node may be unreachable before
    it counts as failed (and a replica takes over)."""

    SLOTS = 16384

    def __init__(self, masters: int = 3, replicas: int = 0, node_timeout: int = 15000) -> None:
        # The default 15 s: no false failure detection when the test machine is busy.
        self.nodes = [
            RedisProcess(
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                str(node_timeout),
                "--repl-diskless-sync-delay",  # a new replica syncs at once, not after 5 s
                "0",
            )
            for _ in range(masters * (1 + replicas))
        ]
        try:
            self._build(masters, replicas)
        except BaseException:
            self.stop()
            raise
        self.url = "redis+cluster://" + ",".join(
            f"127.0.0.1:{n.port}" for n in self.nodes[:masters]
        )

    def _build(self, masters: int, replicas: int) -> None:
        clients = [redis.Redis(port=node.port) for node in self.nodes]
        try:
            step = self.SLOTS // masters
            for index, client in enumerate(clients[:masters]):
                first = index * step
                last = self.SLOTS - 1 if index == masters - 1 else first + step - 1
                client.execute_command("CLUSTER", "ADDSLOTS", *range(first, last + 1))
            for client in clients[1:]:
                client.execute_command("CLUSTER", "MEET", "127.0.0.1", self.nodes[0].port)
            ids = [client.execute_command("CLUSTER", "MYID").decode() for client in clients]
            self._wait(clients, lambda c: len(self.view(c)) == len(clients))
            for index, client in enumerate(clients[masters:]):
                client.execute_command("CLUSTER", "REPLICATE", ids[index % masters])
            self._wait(
                clients, lambda c: b"cluster_state:ok" in c.execute_command("CLUSTER", "INFO")
            )
            for client in clients[masters:]:
                self._wait(
                    [client],
                    lambda c: c.info("replication").get("master_link_status") == "up",
                )
        finally:
            for client in clients:
                client.close()

    @staticmethod
    def _wait(clients: list[redis.Redis], ready: Callable[[redis.Redis], bool]) -> None:
        deadline = time.monotonic() + 20
        while not all(ready(client) for client in clients):
            if time.monotonic() > deadline:
                raise RuntimeError("the local Redis Cluster did not come up")
            time.sleep(0.05)

    @staticmethod
    def view(client: redis.Redis) -> dict[int, tuple[str, list[str]]]:
        """CLUSTER NODES as this node sees it: port -> (role flags, slot ranges)."""
        nodes = {}
        for line in client.execute_command("CLUSTER", "NODES").decode().splitlines():
            fields = line.split()
            port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
            nodes[port] = (fields[2], fields[8:])
        return nodes

    def master_of(self, key: str) -> RedisProcess:
        """The live master that owns `key`'s slot, as the live nodes see it."""
        live = [node for node in self.nodes if node.proc.poll() is None]
        with redis.Redis(port=live[0].port) as client:
            slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
            for port, (flags, ranges) in self.view(client).items():
                if "master" not in flags or "fail" in flags:
                    continue
                for spec in ranges:
                    low, _, high = spec.partition("-")
                    if low.isdigit() and int(low) <= slot <= int(high or low):
                        return next(node for node in self.nodes if node.port == port)
        raise LookupError(f"no live master owns the slot of {key!r}")

    def flush(self) -> None:
        for node in self.nodes:
            if node.proc.poll() is None:
                with contextlib.suppress(redis.ReadOnlyError):  # a replica follows its master
                    node.flush()

    def stop(self) -> None:
        for node in self.nodes:
            if node.proc.poll() is None:
                node.stop()
            else:
                node.proc.wait()

    def __enter__(self) -> RedisClusterProcesses:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


Open = Callable[..., Awaitable[RawClient]]  # open_as(user, *, server=False, encoding=None)


@contextlib.asynccontextmanager
async def authenticated(*specs: tuple[Any, str, str, bool]) -> AsyncIterator[list[RawClient]]:
    """Open and authenticate connections: (hub or URL, user, encoding, server) each."""
    async with contextlib.AsyncExitStack() as stack:
        opened = []
        for where, user, encoding, server in specs:
            url = where if isinstance(where, str) else ws_url(where)
            client = await stack.enter_async_context(RawClient.connect(url, encoding))
            await client.auth(user, server=server)
            opened.append(client)
        yield opened


def alternating(*specs: tuple[Any, str, bool]) -> list[tuple[Any, str, str, bool]]:
    """(hub or URL, user, server) specs for `authenticated`, msgpack and JSON in turn."""
    return [
        (where, user, "json" if index % 2 else "msgpack", server)
        for index, (where, user, server) in enumerate(specs)
    ]


@contextlib.asynccontextmanager
async def connect_backend(url: str) -> AsyncIterator[RawClient]:
    """A server-token connection (the app's backend, not permission-checked)."""
    async with RawClient.connect(url) as client:
        await client.auth("backend", server=True)
        yield client


async def create_room(
    backend: RawClient, room: str, owner: str, members: Sequence[str]
) -> dict[str, Any]:
    """Make the owner and the members known users, then create `room` with them."""
    for user in (owner, *members):
        await backend.call("user.upsert", {"id": user})
    return await backend.call(  # type: ignore[no-any-return]
        "room.create", {"room": room, "owner": owner, "members": list(members)}
    )


async def setup_room(url: str, room: str, owner: str, members: Sequence[str]) -> None:
    """create_room over a backend connection of its own, closed afterwards."""
    async with connect_backend(url) as backend:
        await create_room(backend, room, owner, members)


def update_args(room: str, user: str, properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The args of a member.update of `user` in `room`."""
    return {"room": room, "user": user, "properties": properties, **extra}


def member(room: dict[str, Any], user: str) -> dict[str, Any]:
    """The Member `user` of a Room (it must be there)."""
    return next(m for m in room["members"] if m["id"] == user)


_probes = itertools.count(1)


async def probe(
    srv: RawClient, room: str, user: str, *watchers: RawClient, skip_other_rooms: bool = False
) -> int:
    """A server-side change whose event must be the very next one each watcher gets (of
    `room`, with skip_other_rooms): proves nothing else was delivered before it. Its seq."""
    value = next(_probes)
    ack = await srv.call("member.update", update_args(room, user, {"_probe": value}, reply="ack"))
    for watcher in watchers:
        got = await watcher.event()
        while skip_other_rooms and got["room"] != room:
            got = await watcher.event()
        assert (got["room"], got["seq"], got["changes"]) == (room, ack["seq"], {"_probe": value}), (
            f"expected the probe first, got {got}"
        )
    return int(ack["seq"])
