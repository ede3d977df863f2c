"""Auto-pipelining of the Lua scripts: one write and one read per event-loop turn."""

from __future__ import annotations

import asyncio
import collections
import logging
import math
from collections.abc import Callable
from typing import Any

from hiredis import pack_command
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..tasks import Background

log = logging.getLogger("roomhub.store")


Batch = list[tuple[Any, list[str], list[Any], asyncio.Future[Any]]]


class _Pipeliner:
    """Auto-pipelining: the Lua scripts that ops call in one event-loop turn travel to Redis
    as one pipeline — one write and one read for the lot instead of one each. Under load
    that is most of what a Redis round trip costs the hub.

    On a single Redis (real or embedded) the batches go over one `_ScriptLink`; on a cluster
    through redis-py's cluster pipeline, which routes each script to its slot's node."""

    def __init__(self, client: Any, timeout: float) -> None:
        self._client = client
        self._queue: Batch = []
        self._background = Background(log, "script batch")
        self._link = (
            None if isinstance(client, RedisCluster) else _ScriptLink(client, timeout, self._settle)
        )

    def submit(self, script: Any, keys: list[str], args: list[Any]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._queue:
            loop.call_soon(self._flush)
        self._queue.append((script, keys, args, future))
        return future

    def _flush(self) -> None:
        batch, self._queue = self._queue, []
        if not batch:  # closed meanwhile
            return
        self._background.spawn(self._link.send(batch) if self._link else self._send(batch))

    async def aclose(self) -> None:
        """Stop every batch before the client closes: one still running afterwards (its caller
        cancelled at shutdown) would open a connection nobody closes."""
        pending, self._queue = self._queue, []
        for *_, future in pending:
            if not future.done():
                future.set_exception(ConnectionError("the store is closed"))
        await self._background.close()
        if self._link is not None:
            await self._link.aclose()

    async def _send(self, batch: Batch) -> None:
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for script, keys, args, _ in batch:
                    pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
                results = await pipe.execute(raise_on_error=False)
        except BaseException as exc:
            _fail(batch, exc)
            if not isinstance(exc, Exception):
                raise
            return
        self._settle(batch, results)

    def _settle(self, batch: Batch, results: list[Any]) -> None:
        for (script, keys, args, future), result in zip(batch, results):
            if future.done():  # its caller went away: nothing to reload or deliver
                continue
            if isinstance(result, NoScriptError):  # a fresh Redis: load it, run it directly
                self._background.spawn(self._reload(script, keys, args, future))
            elif isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _reload(
        self, script: Any, keys: list[str], args: list[Any], future: asyncio.Future[Any]
    ) -> None:
        try:
            result = await script(keys=keys, args=args)
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(result)


def _fail(batch: Batch, exc: BaseException) -> None:
    for *_, future in batch:
        if not future.done():
            future.set_exception(exc)


class _ScriptLink:
    """One connection of the store's own to a single Redis, for the Lua scripts: batches are
    written back to back without waiting, and one reader task reads the replies in order.

    redis-py's pipeline costs more than Redis does here: a pool checkout that probes the
    socket, a task for the write and a timer for every reply read. This path keeps a timer
    per batch: a Redis that stops answering fails the waiting batches after `timeout` (and
    the connection is replaced), like a socket timeout would."""

    def __init__(
        self, client: Any, timeout: float, settle: Callable[[Batch, list[Any]], None]
    ) -> None:
        self._pool = client.connection_pool
        self._timeout = timeout
        self._settle = settle
        self._closing: set[asyncio.Task[None]] = set()
        self._conn: Any = None
        self._connecting: asyncio.Future[Any] | None = None
        self._sent: collections.deque[tuple[Batch, asyncio.TimerHandle]] = collections.deque()
        self._replies: list[Any] = []  # of the oldest batch in `_sent`
        self._reader: asyncio.Task[None] | None = None

    async def send(self, batch: Batch) -> None:
        try:
            conn = self._conn if self._conn is not None else await self._connect()
            # hiredis packs in C what redis-py's pack_commands does in Python
            payload = b"".join(
                [
                    pack_command(("EVALSHA", s.sha, len(keys), *keys, *args))
                    for s, keys, args, _ in batch
                ]
            )
        except BaseException as exc:
            _fail(batch, exc)
            if not isinstance(exc, Exception):
                raise
            return
        if conn is not self._conn:  # dropped while this batch waited for it to connect
            _fail(batch, RedisConnectionError("Redis connection lost"))
            return
        expiry = asyncio.get_running_loop().call_later(self._timeout, self._expire)
        self._sent.append((batch, expiry))  # before the write: the reply may come right after
        try:
            await conn.send_packed_command(payload, check_health=False)
        except BaseException as exc:
            self._drop(conn, exc)
            if not isinstance(exc, Exception):
                raise

    async def _connect(self) -> Any:
        """The link's connection; concurrent batches share one connect attempt."""
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open())
        connecting = self._connecting
        try:
            return await asyncio.shield(connecting)
        finally:
            if connecting.done() and self._connecting is connecting:
                self._connecting = None

    async def _open(self) -> Any:
        # No read timeout on the connection: the reader waits for replies as long as there
        # are none to wait for; the batches' timers bound the waits that matter.
        conn = self._pool.connection_class(
            **{**self._pool.connection_kwargs, "socket_timeout": None}
        )
        try:
            await conn.connect()
        except BaseException:
            await conn.disconnect(nowait=True)
            raise
        self._conn = conn
        self._reader = asyncio.ensure_future(self._read(conn))
        return conn

    async def _read(self, conn: Any) -> None:
        while True:
            try:
                reply = await conn.read_response(timeout=math.inf, disconnect_on_error=False)
            except RedisError as exc:
                if isinstance(exc, ResponseError):  # an error reply: that script's result
                    reply = exc
                else:
                    self._drop(conn, exc)
                    return
            except OSError as exc:
                self._drop(conn, RedisConnectionError(f"Redis connection lost: {exc!r}"))
                return
            if not self._sent:
                self._drop(conn, RedisConnectionError("a reply nobody asked for"))
                return
            batch, expiry = self._sent[0]
            replies = self._replies
            replies.append(reply)
            if len(replies) == len(batch):
                self._sent.popleft()
                self._replies = []
                expiry.cancel()
                self._settle(batch, replies)

    def _expire(self) -> None:
        # A batch is sent only on the current connection, and its timer is cancelled when its
        # replies are in or that connection is dropped: if it fires, the batch still waits on
        # the current connection.
        if self._conn is not None:
            log.warning("Redis did not answer in %.1f s; reconnecting", self._timeout)
            self._drop(self._conn, RedisTimeoutError(f"no reply from Redis in {self._timeout} s"))

    def _drop(self, conn: Any, exc: BaseException) -> None:
        """The connection is unusable: fail every batch waiting on it, start afresh."""
        if self._conn is not conn:
            return
        self._conn = None
        sent, self._sent, self._replies = self._sent, collections.deque(), []
        for batch, expiry in sent:
            expiry.cancel()
            _fail(batch, exc)
        reader, self._reader = self._reader, None
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
        closing = asyncio.ensure_future(conn.disconnect(nowait=True))
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
            await asyncio.wait([self._connecting])
        conn, reader = self._conn, self._reader
        if conn is not None:
            self._drop(conn, RedisConnectionError("the store is closed"))
        waits = [*self._closing, *([reader] if reader is not None else [])]
        if waits:
            await asyncio.wait(waits)
