"""Auto-pipelining of the Lua scripts: one write and one read per event-loop turn and Redis
master; with `min_replicas`, a batch's changes are acknowledged only once replicated."""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from hiredis import pack_command
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import (
    AskError,
    MovedError,
    NoScriptError,
    RedisClusterException,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..tasks import Background
from .errors import StoreUnavailable, is_unavailable

log = logging.getLogger("roomhub.store")

_ASKING = pack_command(("ASKING",))
_HOPS = 2  # redirections one call may follow (a moved slot, then a migrating one)


@dataclass(slots=True, eq=False)
class _Call:
    """One script run waiting for its reply. `full`: Redis lacks the script, send its body
    (EVAL); `node`: the master an ASK redirected it to, for a slot being migrated."""

    script: Any
    keys: list[str]
    args: list[Any]
    future: asyncio.Future[Any]
    full: bool = False
    node: str | None = None
    hops: int = 0

    def command(self) -> bytes:
        # hiredis packs in C what redis-py's pack_commands does in Python
        script = ("EVAL", self.script.script) if self.full else ("EVALSHA", self.script.sha)
        packed: bytes = pack_command((*script, len(self.keys), *self.keys, *self.args))
        return _ASKING + packed if self.node is not None else packed


Batch = list[_Call]


class _Pipeliner:
    """Auto-pipelining: the Lua scripts that ops call in one event-loop turn travel to Redis
    as one pipeline — one write and one read for the lot instead of one each. Under load
    that is most of what a Redis round trip costs the hub.

    A single Redis (real or embedded) gets the batches over one `_ScriptLink`; a cluster
    over one link per master, each batch split by the master that owns each call's slot.
    A MOVED or ASK reply sends that call on to the master named (the script did not run);
    a master that fails its link has the slot map re-read.

    With `min_replicas` N >= 1 a batch is followed by `WAIT N timeout` on its link's
    connection (WAIT counts the writes of the connection that calls it), and a call is
    acknowledged only once N replicas have the batch; otherwise it fails as unavailable
    (it may have been applied: retrying with its idempotency key is safe). The scripts in
    `unreplicated` (reads, the rate window) need no WAIT and are never failed for it."""

    def __init__(
        self,
        client: Any,
        timeout: float,
        *,
        min_replicas: int = 0,
        replica_timeout: float = 1.0,
        unreplicated: Iterable[Any] = (),
    ) -> None:
        self._client = client
        self._timeout = timeout
        self._replicas = min_replicas
        self._replica_timeout = replica_timeout
        self._unreplicated = frozenset(script.sha for script in unreplicated)
        self._queue: Batch = []
        self._closed = False
        self._background = Background(log, "script batch")
        self._cluster = isinstance(client, RedisCluster)
        self._links: dict[str, _ScriptLink] = {}
        self._refreshing: asyncio.Task[None] | None = None
        self._link: _ScriptLink | None = None
        if not self._cluster:
            pool = client.connection_pool
            self._link = self._new_link(
                lambda: pool.connection_class(**{**pool.connection_kwargs, "socket_timeout": None}),
                on_drop=None,
            )

    def _new_link(
        self, connect: Callable[[], Any], on_drop: Callable[[], None] | None
    ) -> _ScriptLink:
        return _ScriptLink(
            connect,
            self._timeout,
            self._settle,
            replicas=self._replicas,
            replica_timeout=self._replica_timeout,
            on_drop=on_drop,
        )

    def submit(self, script: Any, keys: list[str], args: list[Any]) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._enqueue(_Call(script, keys, args, future))
        return future

    def _enqueue(self, call: _Call) -> None:
        if self._closed:
            call.future.set_exception(RedisConnectionError("the store is closed"))
            return
        if not self._queue:
            asyncio.get_running_loop().call_soon(self._flush)
        self._queue.append(call)

    def _flush(self) -> None:
        batch, self._queue = self._queue, []
        if not batch:  # closed meanwhile
            return
        if self._link is not None:
            self._background.spawn(self._link.send(batch, self._needs_wait(batch)))
            return
        by_master: dict[str, Batch] = {}
        slots = self._client.nodes_manager
        for call in batch:
            name = call.node
            if name is None:
                try:
                    name = slots.get_node_from_slot(key_slot(call.keys[0].encode())).name
                except RedisClusterException as exc:  # no master for the slot (yet)
                    call.future.set_exception(exc)
                    self._refresh()
                    continue
            by_master.setdefault(name, []).append(call)
        for name, calls in by_master.items():
            link = self._links.get(name)
            if link is None:
                link = self._links[name] = self._new_link(
                    functools.partial(self._master_connection, name), on_drop=self._refresh
                )
            self._background.spawn(link.send(calls, self._needs_wait(calls)))

    def _needs_wait(self, batch: Batch) -> bool:
        return self._replicas > 0 and any(
            call.script.sha not in self._unreplicated for call in batch
        )

    def _master_connection(self, name: str) -> Any:
        """A new connection to the cluster node `name` ("host:port"), as the client makes
        them, without a read timeout (see `_ScriptLink._open`)."""
        known = self._client.get_node(node_name=name)
        template = known or self._client.get_nodes()[0]
        kwargs = {**template.connection_kwargs, "socket_timeout": None}
        if known is None:  # no longer in the map: still reachable by its address
            host, _, port = name.rpartition(":")
            kwargs.update(host=host, port=int(port))
        return template.connection_class(**kwargs)

    def _settle(self, batch: Batch, results: list[Any], replicas: Any) -> None:
        """Deliver a batch's replies; `replicas`: WAIT's reply, None if none was asked."""
        short: StoreUnavailable | None = None
        if replicas is not None and not (isinstance(replicas, int) and replicas >= self._replicas):
            got = f"{replicas} of" if isinstance(replicas, int) else f"none ({replicas}) of"
            short = StoreUnavailable(
                f"the change reached {got} the {self._replicas} replicas asked for "
                f"in {self._replica_timeout} s"
            )
        for call, result in zip(batch, results):
            future = call.future
            if future.done():  # its caller went away: nothing to redirect or deliver
                continue
            if isinstance(result, ResponseError):
                if not self._redirect(call, result):
                    future.set_exception(result)
            elif short is not None and call.script.sha not in self._unreplicated:
                future.set_exception(short)
            else:
                future.set_result(result)

    def _redirect(self, call: _Call, error: ResponseError) -> bool:
        """Send `call` again where its error reply says it may succeed (the script did not
        run); False if it fails with that error."""
        if isinstance(error, NoScriptError) and not call.full:  # a fresh Redis
            call.full = True
            self._enqueue(call)
            return True
        if not self._cluster:
            return False
        if isinstance(error, AskError) and call.hops < _HOPS:
            call.hops += 1
            if isinstance(error, MovedError):  # the slot has a new master: learn it, go there
                call.node = None
                self._background.spawn(self._moved(call, error))
            else:  # the slot is migrating and the keys are on the target already
                call.node = f"{error.host}:{error.port}"
                self._enqueue(call)
            return True
        if is_unavailable(error):  # e.g. CLUSTERDOWN, TRYAGAIN, READONLY
            self._refresh()
        return False

    async def _moved(self, call: _Call, error: MovedError) -> None:
        try:
            await self._client.nodes_manager.move_slot(error)
        except (KeyError, RedisError, RedisClusterException) as exc:
            if not call.future.done():
                call.future.set_exception(StoreUnavailable(f"slot map out of date: {exc!r}"))
            self._refresh()
            return
        self._enqueue(call)

    def _refresh(self) -> None:
        """Re-read the cluster's slot map (once at a time): a master failed, a replica took
        over, or slots moved."""
        if self._closed or (self._refreshing is not None and not self._refreshing.done()):
            return
        self._refreshing = self._background.spawn(self._read_slot_map())

    async def _read_slot_map(self) -> None:
        manager = self._client.nodes_manager
        try:
            await manager.initialize()
        except (RedisError, RedisClusterException, OSError) as exc:
            log.warning("could not re-read the Redis Cluster's slot map: %r", exc)
            return
        for name in [name for name in self._links if name not in manager.nodes_cache]:
            self._background.spawn(self._links.pop(name).aclose())

    async def aclose(self) -> None:
        """Stop every batch before the client closes: one still running afterwards (its caller
        cancelled at shutdown) would open a connection nobody closes."""
        self._closed = True
        pending, self._queue = self._queue, []
        _fail(pending, RedisConnectionError("the store is closed"))
        await self._background.close()
        links = [*self._links.values(), *([self._link] if self._link else [])]
        self._links = {}
        if links:
            await asyncio.gather(*(link.aclose() for link in links))


def _fail(batch: Batch, exc: BaseException) -> None:
    for call in batch:
        if not call.future.done():
            call.future.set_exception(exc)


@dataclass(slots=True, eq=False)
class _Sent:
    """A batch written to the link's connection, waiting for its `expected` replies."""

    batch: Batch
    expected: int
    wait: bool
    expiry: asyncio.TimerHandle


class _ScriptLink:
    """One connection of the store's own to one Redis (a single server, or a cluster
    master), for the Lua scripts: batches are written back to back without waiting, and one
    reader task reads the replies in order.

    redis-py's pipeline costs more than Redis does here: a pool checkout that probes the
    socket, a task for the write and a timer for every reply read. This path keeps a timer
    per batch: a Redis that stops answering fails the waiting batches after `timeout` (plus
    `replica_timeout` for a batch followed by WAIT) and the connection is replaced, like a
    socket timeout would."""

    def __init__(
        self,
        connect: Callable[[], Any],
        timeout: float,
        settle: Callable[[Batch, list[Any], Any], None],
        *,
        replicas: int = 0,
        replica_timeout: float = 1.0,
        on_drop: Callable[[], None] | None = None,
    ) -> None:
        self._new_connection = connect
        self._timeout = timeout
        self._settle = settle
        self._on_drop = on_drop
        self._replica_timeout = replica_timeout
        # WAIT 0 ms would block for ever
        wait = ("WAIT", replicas, max(1, round(replica_timeout * 1000)))
        self._wait = pack_command(wait)  # type: ignore[arg-type]  # the stub types a 1-tuple
        self._closing: set[asyncio.Task[None]] = set()
        self._conn: Any = None
        self._connecting: asyncio.Future[Any] | None = None
        self._sent: collections.deque[_Sent] = collections.deque()
        self._replies: list[Any] = []  # of the oldest batch in `_sent`
        self._reader: asyncio.Task[None] | None = None

    async def send(self, batch: Batch, wait: bool = False) -> None:
        try:
            conn = self._conn if self._conn is not None else await self._connect()
            commands = [call.command() for call in batch]
            if wait:
                commands.append(self._wait)
            payload = b"".join(commands)
        except BaseException as exc:
            _fail(batch, exc)
            if isinstance(exc, RedisError | OSError) and self._on_drop is not None:
                self._on_drop()
            if not isinstance(exc, Exception):
                raise
            return
        if conn is not self._conn:  # dropped while this batch waited for it to connect
            _fail(batch, RedisConnectionError("Redis connection lost"))
            return
        # One reply per command: an ASKING's, the script's, and WAIT's
        expected = len(batch) + sum(call.node is not None for call in batch) + wait
        delay = self._timeout + (self._replica_timeout if wait else 0.0)
        expiry = asyncio.get_running_loop().call_later(delay, self._expire)
        self._sent.append(_Sent(batch, expected, wait, expiry))  # before the write
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
        conn = self._new_connection()
        try:
            # The handshake (HELLO, CLIENT SETINFO) reads with no timeout either: a hung Redis
            # accepts the TCP connection and never answers it.
            async with asyncio.timeout(self._timeout):
                await conn.connect()
        except TimeoutError:
            await conn.disconnect(nowait=True)
            raise RedisTimeoutError(f"no answer from Redis in {self._timeout} s") from None
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
                if isinstance(exc, ResponseError):  # an error reply: that command's result
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
            sent = self._sent[0]
            replies = self._replies
            replies.append(reply)
            if len(replies) == sent.expected:
                self._sent.popleft()
                self._replies = []
                sent.expiry.cancel()
                self._deliver(sent, replies)

    def _deliver(self, sent: _Sent, replies: list[Any]) -> None:
        batch = sent.batch
        if len(replies) == len(batch):  # no ASKING, no WAIT: the common case
            self._settle(batch, replies, None)
            return
        results = []
        it = iter(replies)
        for call in batch:
            if call.node is not None:
                next(it)  # ASKING's +OK
            results.append(next(it))
        self._settle(batch, results, next(it) if sent.wait else None)

    def _expire(self) -> None:
        # A batch is sent only on the current connection, and its timer is cancelled when its
        # replies are in or that connection is dropped: if it fires, the batch still waits on
        # the current connection.
        if self._conn is not None:
            log.warning("Redis did not answer in %.1f s; reconnecting", self._timeout)
            self._drop(self._conn, RedisTimeoutError(f"no reply from Redis in {self._timeout} s"))

    def _drop(self, conn: Any, exc: BaseException, closing: bool = False) -> None:
        """The connection is unusable: fail every batch waiting on it, start afresh."""
        if self._conn is not conn:
            return
        self._conn = None
        sent, self._sent, self._replies = self._sent, collections.deque(), []
        for waiting in sent:
            waiting.expiry.cancel()
            _fail(waiting.batch, exc)
        reader, self._reader = self._reader, None
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
        disconnect = asyncio.ensure_future(conn.disconnect(nowait=True))
        self._closing.add(disconnect)
        disconnect.add_done_callback(self._closing.discard)
        if not closing and self._on_drop is not None:
            self._on_drop()

    async def aclose(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
            await asyncio.wait([self._connecting])
        conn, reader = self._conn, self._reader
        if conn is not None:
            self._drop(conn, RedisConnectionError("the store is closed"), closing=True)
        waits = [*self._closing, *([reader] if reader is not None else [])]
        if waits:
            await asyncio.wait(waits)
