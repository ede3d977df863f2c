"""Fixtures: one real redis-server for the session, hubs started per test on free ports."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from roomhub.server.hub import Hub
from roomhub.server.node import running_hub
from roomhub.server.settings import Settings

from .support import APP, SECRET, RawClient, RedisClusterProcesses, RedisProcess, ws_url


@pytest.fixture(scope="session")
def redis_process() -> Iterator[RedisProcess]:
    with RedisProcess() as server:
        yield server


@pytest.fixture
def redis_url(redis_process: RedisProcess) -> str:
    redis_process.flush()
    return redis_process.url


@pytest.fixture(scope="session")
def redis_cluster_processes() -> Iterator[RedisClusterProcesses]:
    with RedisClusterProcesses(masters=3) as cluster:
        yield cluster


@pytest.fixture
def redis_cluster_url(redis_cluster_processes: RedisClusterProcesses) -> str:
    """A local 3-master Redis Cluster, emptied, as a redis+cluster:// URL."""
    redis_cluster_processes.flush()
    return redis_cluster_processes.url


HubFactory = Callable[..., Any]


@pytest.fixture
async def start_hub() -> AsyncIterator[HubFactory]:
    """start_hub(redis=URL|None, **settings) -> a running Hub; all stopped at test end.

    Rate limits and the rooms-per-hour quota are off unless a test sets them: the contract
    tests send bursts, and the limits have tests of their own.
    """
    async with contextlib.AsyncExitStack() as stack:

        async def start(redis: str | None = None, **overrides: Any) -> Hub:
            options: dict[str, Any] = {
                "port": 0,
                "http_port": 0,
                "apps": {APP: SECRET},
                "redis": redis,
                "rate_limit": 0,
                "conn_rate_limit": 0,
                "user_rate_limit": 0,
                "rooms_per_hour": 0,
            }
            options.update(overrides)
            return await stack.enter_async_context(running_hub(Settings(**options)))

        yield start


STORES = {"redis": "redis_url", "cluster": "redis_cluster_url", "embedded": None}


@pytest.fixture(params=list(STORES))
async def hub(request: pytest.FixtureRequest, start_hub: HubFactory) -> Hub:
    """One hub node: on a real redis-server, on a 3-master Redis Cluster, on the embedded
    store — the same contract on each."""
    fixture = STORES[request.param]
    return await start_hub(redis=request.getfixturevalue(fixture) if fixture else None)


@pytest.fixture
async def two_hubs(redis_url: str, start_hub: HubFactory) -> tuple[Hub, Hub]:
    """Two hub nodes sharing one real Redis."""
    return await start_hub(redis=redis_url), await start_hub(redis=redis_url)


@pytest.fixture
def connect(hub: Hub) -> Callable[..., Any]:
    """connect(encoding="msgpack") -> async context manager of a RawClient on `hub`."""

    def open_client(encoding: str = "msgpack", on: Hub | None = None) -> Any:
        return RawClient.connect(ws_url(on or hub), encoding)

    return open_client
