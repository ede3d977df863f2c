"""Assembles a hub node from settings: the Redis client (real or embedded), store, hub."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisClusterException, RedisError

from .http import HttpSide, ListenError
from .hub import Hub
from .logs import redact_url
from .settings import Settings
from .store import Store

log = logging.getLogger("roomhub")


CLUSTER_SCHEME = "redis+cluster://"
# The oldest redis-py whose asyncio RedisCluster the cluster tests pass on: older ones lack
# publish() and NodesManager.move_slot(), and 7.x warns from inside its own connects.
CLUSTER_MIN_REDIS_PY = (8, 0)


def cluster_nodes(url: str) -> list[tuple[str, int]]:
    """`redis+cluster://host:port,host:port` -> [(host, port), ...] (the startup nodes)."""
    nodes = []
    for part in url.removeprefix(CLUSTER_SCHEME).split("/")[0].split(","):
        host, _, port = part.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"cluster node must be host:port, got {part!r} in {url!r}")
        nodes.append((host, int(port)))
    return nodes


def check_redis_url(url: str) -> None:
    """Refuse a Redis URL that cannot work, with a message naming it (before any connect)."""
    if url.startswith(CLUSTER_SCHEME):
        cluster_nodes(url)
        installed = redis.__version__
        if tuple(int(part) for part in installed.split(".")[:2]) < CLUSTER_MIN_REDIS_PY:
            raise ValueError(
                f"a Redis Cluster needs redis-py >= {'.'.join(map(str, CLUSTER_MIN_REDIS_PY))} "
                f"(installed: {installed}); pip install 'redis[hiredis]>=8,<9'"
            )
        return
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        got = f"{parts.scheme}://..." if parts.scheme else repr(url)
        raise ValueError(
            f"--redis must be redis://HOST:PORT/DB, rediss://..., unix://PATH or "
            f"{CLUSTER_SCHEME}HOST:PORT,..., got {got}"
        )
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise ValueError("--redis has a port that is not a number") from None


async def wait_for_redis(store: Store, wait: float) -> None:
    """PING until Redis answers, retrying with a short backoff for up to `wait` seconds
    (0 = one try): a node started alongside its Redis need not fail."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    delay = 0.05
    while True:
        try:
            await store.ping()
            return
        except Exception:
            if loop.time() + delay > deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


def _cluster_client(settings: Settings) -> Any:
    """Commands go to the master owning each room's slot. Pub/sub connections are opened by
    the store from this client's map of the cluster (see store.Subscriber)."""
    from redis.asyncio.cluster import ClusterNode, RedisCluster

    assert settings.redis is not None
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in cluster_nodes(settings.redis)],
        socket_timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_timeout,
        max_connections=settings.redis_pool_size,
    )


def _clients(settings: Settings) -> tuple[aioredis.Redis, aioredis.Redis | None]:
    """(command client, pub/sub client or None to use the command client's servers).
    Embedded: both on one in-process fakeredis server."""
    if settings.redis is not None and settings.redis.startswith(CLUSTER_SCHEME):
        return _cluster_client(settings), None
    if settings.redis is None:
        import fakeredis

        server = fakeredis.FakeServer()
        # In-process "connections" are cheap; the pool only needs to outnumber in-flight ops.
        fake = fakeredis.FakeAsyncRedis(server=server, max_connections=100_000)
        return fake, fakeredis.FakeAsyncRedis(server=server)
    # Fail fast when Redis is away (the client gets 100001 and may retry): one quick retry
    # covers a pooled connection that died with a Redis restart, no long backoff.
    # Ops beyond the pool size wait for a free connection (up to redis_timeout) instead of
    # failing at once.
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis,
        max_connections=settings.redis_pool_size,
        timeout=settings.redis_timeout,
        socket_timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_timeout,
        retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), retries=1),
    )
    commands = aioredis.Redis.from_pool(pool)  # owns the pool: closed with the client
    # Pub/sub reads block between messages: no socket timeout on that connection.
    pubsub = aioredis.from_url(settings.redis, socket_connect_timeout=settings.redis_timeout)
    return commands, pubsub


def build_store(settings: Settings) -> Store:
    if settings.min_replicas and settings.redis is None:
        raise ValueError("--min-replicas needs --redis: the embedded store has no replicas")
    commands, pubsub = _clients(settings)
    return Store(
        commands,
        history_max=settings.history_max,
        max_room_members=settings.max_room_members,
        concurrency=settings.redis_pool_size,
        make_pubsub_client=(lambda: pubsub) if pubsub is not None else None,
        timeout=settings.redis_timeout,
        min_replicas=settings.min_replicas,
        min_replicas_timeout=settings.min_replicas_timeout,
        idempotency_keys_per_room=settings.idempotency_keys_per_room,
    )


@contextlib.asynccontextmanager
async def running_hub(settings: Settings) -> AsyncIterator[Hub]:
    """A started hub node; stopped (connections closed with 1001) on exit."""
    if settings.redis is not None:
        check_redis_url(settings.redis)
    store = build_store(settings)
    try:
        await wait_for_redis(store, settings.redis_wait)
        await store.choose_pubsub()
    except BaseException:
        await store.close()
        raise
    hub = Hub(settings, store)
    http = HttpSide(hub)
    try:
        await hub.start()
        await http.start()
        hub.http = http
    except BaseException:
        await hub.stop()
        await store.close()
        raise
    try:
        yield hub
    finally:
        http.draining = True  # /readyz: 503 while the connections drain
        await hub.stop()
        await http.stop()
        await store.close()


class StartupError(Exception):
    """The node could not start: one line an operator can act on (the CLI exits 2)."""


def _startup_message(settings: Settings, exc: BaseException) -> str:
    if isinstance(exc, ValueError):
        return str(exc)
    if isinstance(exc, ListenError):
        return f"cannot listen on {exc.where}: {exc.strerror}"
    if isinstance(exc, (RedisError, RedisClusterException)) or (
        isinstance(exc, OSError) and settings.redis is not None and not _is_bind(exc)
    ):
        waited = f" after waiting {settings.redis_wait:g}s" if settings.redis_wait else ""
        url = redact_url(settings.redis or "?")
        return f"Redis at {url} unreachable{waited}: {exc} (see --redis-wait)"
    if isinstance(exc, OSError):
        return f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


def _is_bind(exc: OSError) -> bool:
    import errno

    return exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES)


async def serve_forever(settings: Settings, ready: asyncio.Event | None = None) -> None:
    stack = contextlib.AsyncExitStack()
    try:
        hub = await stack.enter_async_context(running_hub(settings))
    except (ValueError, OSError, RedisError, RedisClusterException) as exc:
        raise StartupError(_startup_message(settings, exc)) from None
    async with stack:
        log.info(
            "roomhub node %s listening on ws://%s:%d/ws", settings.node_id, settings.host, hub.port
        )
        assert hub.http is not None
        log.info("HTTP side (health, readiness, metrics, server API /api/v1) on %s", hub.http.url)
        if ready is not None:
            ready.set()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("shutting down")
