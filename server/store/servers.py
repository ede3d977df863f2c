"""Where the node's pub/sub connections go: a single Redis (or the embedded fakeredis), or
the masters of a Redis Cluster, as the command client maps it."""

from __future__ import annotations

import re
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.crc import key_slot


def redis_version(text: str) -> tuple[int, ...]:
    """The numbers of a version: "7.0.15" -> (7, 0, 15); () if there are none."""
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


# Pub/sub connections: no read timeout (they wait for messages as long as none come), and
# RESP2, where a published message is a plain reply the reader gets as it is (RESP3 turns it
# into a push that redis-py routes through a handler first).
_PUBSUB_OPTIONS = {"socket_timeout": None, "protocol": 2}


class Servers(Protocol):
    """Where pub/sub connections go: named Redis nodes, and which one owns a shard channel."""

    async def refresh(self) -> None: ...

    def classic_nodes(self, current: str | None) -> list[str]: ...

    def owner(self, channel: bytes) -> str: ...

    def connection(self, node: str) -> Any: ...


class OneServer:
    """A single Redis, or the embedded fakeredis: every connection goes to it."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._pool = client.connection_pool

    async def refresh(self) -> None:
        """Nothing to learn: there is one server."""

    def classic_nodes(self, current: str | None) -> list[str]:
        return ["redis"]

    def owner(self, channel: bytes) -> str:
        return "redis"

    def connection(self, node: str) -> Any:
        return self._pool.connection_class(**{**self._pool.connection_kwargs, **_PUBSUB_OPTIONS})


class ClusterServers:
    """A Redis Cluster, as the command client maps it (slot -> master)."""

    def __init__(self, cluster: Any, startup: list[str]) -> None:
        self._cluster = cluster
        self._startup = startup

    async def refresh(self) -> None:
        """Re-read the slot map: a node failed, a replica took over, or a slot moved."""
        await self._cluster.nodes_manager.initialize()

    def classic_nodes(self, current: str | None) -> list[str]:
        """Any node will do (a cluster forwards every PUBLISH to all its nodes): the current
        one, then the startup nodes in the order given, then every other known node."""
        known = [node.name for node in self._cluster.get_nodes()]
        first = [current] if current else []
        return list(dict.fromkeys([*first, *self._startup, *known]))

    def owner(self, channel: bytes) -> str:
        return str(self._cluster.nodes_manager.get_node_from_slot(key_slot(channel)).name)

    def connection(self, node: str) -> Any:
        known = self._cluster.get_node(node_name=node)
        template = known or self._cluster.get_nodes()[0]
        kwargs = {**template.connection_kwargs, **_PUBSUB_OPTIONS}
        if known is None:  # no longer in the map: still reachable by its address
            host, _, port = node.rpartition(":")
            kwargs.update(host=host, port=int(port))
        return template.connection_class(**kwargs)
