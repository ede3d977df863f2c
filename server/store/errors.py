"""Which store failures are an outage (safe to retry, WARNING) and which are a bug (ERROR).

A Redis that is away, hung, loading, failing over or moving slots answers nothing useful for
a while and then serves again: the client is told "store unavailable; safe to retry". A Lua
script that raises or replies in a shape the store does not expect is a defect in roomhub:
retrying cannot help, so it is logged loudly with the script's name.
"""

from __future__ import annotations

import asyncio

from redis.exceptions import (
    AskError,
    BusyLoadingError,
    ClusterDownError,
    ReadOnlyError,
    RedisClusterException,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

# Replies that mean "ask again later / elsewhere", not "your script is wrong": a loading
# Redis, a replica answering after a failover, a slot moving or without a master.
_ROUTING = (AskError, TryAgainError, ClusterDownError, ReadOnlyError, BusyLoadingError)
_UNAVAILABLE = (
    RedisConnectionError,
    RedisTimeoutError,
    RedisClusterException,
    OSError,
    asyncio.TimeoutError,
    *_ROUTING,
)


class StoreUnavailable(RedisConnectionError):
    """Redis did not do what the op needed in time (e.g. too few replicas acknowledged a
    write): the op may or may not have been applied, and retrying it with its idempotency
    key is safe."""


class ScriptError(Exception):
    """A room script failed or replied in an unexpected shape: a bug, not an outage."""

    def __init__(self, script: str, cause: BaseException) -> None:
        super().__init__(f"script {script}: {cause!r}")
        self.script = script


def is_unavailable(exc: BaseException) -> bool:
    """Connection, timeout and cluster-routing failures: the store is away for now."""
    return isinstance(exc, _UNAVAILABLE)
