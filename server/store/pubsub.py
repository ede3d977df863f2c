"""The node's pub/sub connections: classic on one Redis, sharded per master on a cluster."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from roomhub.protocol.backoff import ExponentialBackoff

from ..tasks import Background
from .keys import is_shard_channel
from .servers import Servers

log = logging.getLogger("roomhub.store")


# Live delivery resumes at most this long after Redis is back (ops resume at once).
RECONNECT_BACKOFF_MAX = 0.25

# What a Redis (or a cluster with no master for a slot yet) that is away raises; redis-py's
# cluster errors are not RedisErrors.
_AWAY = (RedisError, RedisClusterException, OSError)


class _Link:
    """One pub/sub connection to one Redis node, read by a task of its own.

    `channels` is what the connection must be subscribed to. Every (re)connect subscribes all
    of them again; once Redis has confirmed the ones that may have missed messages (all, after
    a lost connection; those moved here from another node), `on_reconnect` lets the node read
    the gap from the room logs. A sharded link holds the shard channels of one master; the
    classic link holds everything else (everything, in classic mode) on any node.
    """

    def __init__(self, subscriber: Subscriber, node: str | None, sharded: bool) -> None:
        self._subscriber = subscriber
        self.node = node
        self.sharded = sharded
        self.channels: set[bytes] = set()
        self.conn: Any = None  # while connected: commands may be sent on it
        self.probe_seen = asyncio.Event()
        self.probe_missed = False  # the last probe did not come back (readiness)
        self.closed = False
        self._sub = "SSUBSCRIBE" if sharded else "SUBSCRIBE"
        self._unsub = "SUNSUBSCRIBE" if sharded else "UNSUBSCRIBE"
        self._unsubscribing: dict[bytes, int] = {}  # our own unsubscribes not yet confirmed
        self._healing: set[bytes] = set()  # subscribed again, not yet confirmed
        self._heal_due = False
        self._was_connected = False
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"roomhub-pubsub-{self.node}")

    # what the connection should hold ---------------------------------------------------------

    def claim(self, channels: Iterable[bytes], heal: bool = False) -> None:
        """Make the channels this link's; `heal`: they may have missed messages meanwhile."""
        self.channels.update(channels)
        if heal:
            self._healing.update(channels)
            self._heal_due = True

    async def send_subscribe(self, channels: list[bytes]) -> None:
        """Subscribe now if connected (else the next connection does), those still claimed."""
        await self._send(self._sub, [c for c in channels if c in self.channels])

    def release(self, channels: Iterable[bytes]) -> None:
        """No longer this link's (without telling Redis)."""
        for channel in channels:
            self.channels.discard(channel)
            self._healing.discard(channel)
        self._maybe_healed()

    async def drop(self, channels: list[bytes]) -> None:
        """Unsubscribe: no longer wanted."""
        self.release(channels)
        if self.conn is not None:
            for channel in channels:
                self._unsubscribing[channel] = self._unsubscribing.get(channel, 0) + 1
            await self._send(self._unsub, channels)

    async def ping(self) -> bool:
        """Ask for a pong on this connection (the liveness probe of a sharded link)."""
        return await self._send("PING", [])

    async def _send(self, command: str, channels: list[bytes]) -> bool:
        conn = self.conn
        # Checked and written without a pause in between: a connection that just dropped is
        # never reopened from here (the reader reconnects, and subscribes what is claimed).
        if conn is None or not conn.is_connected or (command != "PING" and not channels):
            return False
        if command == "PING":
            packed = conn.pack_command(command)
        elif self.sharded:  # one slot per SSUBSCRIBE: one command per channel
            packed = conn.pack_commands([(command, channel) for channel in channels])
        else:
            packed = conn.pack_commands(
                [(command, *channels[i : i + 1000]) for i in range(0, len(channels), 1000)]
            )
        try:
            await conn.send_packed_command(packed, check_health=False)
        except _AWAY:
            return False  # the reader sees the connection drop and starts over
        return True

    # the connection ------------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = ExponentialBackoff(0.1, RECONNECT_BACKOFF_MAX, jitter=False)
        while not self.closed:
            try:
                conn = await self._connect()
            except Exception as exc:
                if not (backoff.failures or self._was_connected):
                    log.warning("pub/sub connection to %s failed: %r; retrying", self.node, exc)
            else:
                backoff.reset()
                try:
                    await self._serve(conn)
                except ResponseError as exc:  # e.g. MOVED: a slot map older than the cluster's
                    log.warning("pub/sub on %s refused: %s; re-subscribing", self.node, exc)
                except _AWAY as exc:
                    log.warning("pub/sub connection lost (%s): %r; reconnecting", self.node, exc)
                except Exception:  # a bug: the connection starts over rather than stay dead
                    log.exception("pub/sub connection to %s failed; reconnecting", self.node)
                finally:
                    self.conn = None
                    await conn.disconnect(nowait=True)
            if self.closed:
                return
            await asyncio.sleep(backoff.next_delay())
            if self.sharded:
                await self._subscriber.reroute()  # the slots may have a new master
                if not self.channels:
                    self._subscriber.retire(self)
                    return
            else:
                await self._subscriber.refresh()

    async def _connect(self) -> Any:
        servers = self._subscriber.servers
        nodes = [self.node] if self.sharded and self.node else servers.classic_nodes(self.node)
        error: Exception = ConnectionError("no Redis node to connect to")
        for node in nodes:
            conn = servers.connection(node)
            try:
                await conn.connect()
            except BaseException as exc:
                await conn.disconnect(nowait=True)
                if not isinstance(exc, _AWAY):
                    raise
                error = exc
                continue
            self.node = node
            return conn
        raise error

    async def _serve(self, conn: Any) -> None:
        self.conn = conn
        self.probe_missed = False  # a new connection has missed no probe yet
        self._unsubscribing.clear()
        channels = list(self.channels)
        if self._was_connected:
            log.warning("pub/sub connection is back (%s); healing from the logs", self.node)
            self._healing.update(channels)
            self._heal_due = True
        self._was_connected = True
        await self._send(self._sub, channels)
        self._maybe_healed()
        read = conn.read_response
        on_message = self._subscriber.on_message
        probe = self._subscriber.probe_channel
        control = self._control
        while True:
            # A blocking read: it returns at once, without a pause, while replies that
            # arrived together are still buffered.
            reply = await read(disconnect_on_error=False)
            if (
                type(reply) is list
                and (reply[0] == b"smessage" or reply[0] == b"message")
                and reply[1] != probe
            ):
                try:
                    on_message(reply[1], reply[2])
                except Exception:
                    log.exception("failed to handle a published message")
            else:
                control(reply)

    def _control(self, reply: Any) -> None:
        """Everything but a room or inbox message: confirmations, probes, dropped channels."""
        kind = reply[0] if isinstance(reply, list) else b"pong"  # b"PONG" when not subscribed
        if kind == b"message" or kind == b"pong":  # the probe channel's message, or a PING's
            self.probe_seen.set()
        elif kind == b"ssubscribe" or kind == b"subscribe":
            channel = reply[1]
            self._subscriber.confirmed(channel)
            if channel in self._healing:
                self._healing.discard(channel)
                self._maybe_healed()
        elif kind == b"sunsubscribe" or kind == b"unsubscribe":
            channel = reply[1]
            ours = self._unsubscribing.get(channel, 0)
            if ours > 1:
                self._unsubscribing[channel] = ours - 1
            elif ours:
                del self._unsubscribing[channel]
            elif channel in self.channels:
                # Unasked: the channel's slot moved to another master, which now owns it.
                log.info("shard channel %r moved away from %s; following it", channel, self.node)
                self.release([channel])
                self._subscriber.reroute_soon()

    def _maybe_healed(self) -> None:
        if self._heal_due and not self._healing:
            self._heal_due = False
            self._subscriber.on_reconnect()


class Subscriber:
    """The node's pub/sub: `subscribe` returns once Redis confirmed it, messages go to
    `on_message(channel, data)`.

    Classic mode: one connection for every channel. Sharded mode (a Redis Cluster ≥ 7.0):
    room channels are shard channels, each subscribed on the master that owns its slot (one
    connection per such master); the inboxes and the probe stay on one classic connection.
    A connection that drops is opened again — on another node if its node is gone, after
    re-reading the cluster's slot map — and resubscribed, then `on_reconnect` lets the node
    read from the logs whatever was published meanwhile. A probe every `probe_interval`
    seconds (a message on the node's own channel; a PING on sharded connections) catches a
    connection that is up but silently stopped delivering: it is dropped and reopened.
    """

    def __init__(
        self,
        servers: Servers,
        publish: Callable[[bytes, bytes], Awaitable[Any]],
        on_message: Callable[[bytes, bytes], None],
        on_reconnect: Callable[[], None],
        probe_channel: str,
        probe_interval: float,
        *,
        sharded: bool = False,
        timeout: float = 5.0,
    ) -> None:
        self.servers = servers
        self._publish = publish
        self.on_message = on_message
        self.on_reconnect = on_reconnect
        self.probe_channel = probe_channel.encode()
        self._probe_interval = probe_interval
        self.sharded = sharded
        self._timeout = timeout
        self._classic = _Link(self, None, sharded=False)
        self._classic.claim([self.probe_channel])
        self._shards: dict[str, _Link] = {}  # master -> its sharded link
        self._home: dict[bytes, _Link] = {}  # shard channel -> the link holding it
        self._waiters: dict[bytes, list[asyncio.Future[None]]] = {}
        self._reroute_lock = asyncio.Lock()
        self._background = Background(log, "pub/sub task")

    def start(self) -> None:
        self._classic.start()
        self._background.spawn(self._probe())

    async def subscribe(self, *names: str) -> None:
        loop = asyncio.get_running_loop()
        waits: list[tuple[bytes, asyncio.Future[None]]] = []
        placed: dict[_Link, list[bytes]] = {}
        for name in names:
            channel = name.encode()
            placed.setdefault(self._place(channel), []).append(channel)
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.setdefault(channel, []).append(future)
            waits.append((channel, future))
        for link, channels in placed.items():
            link.claim(channels)
        for link, channels in placed.items():
            await link.send_subscribe(channels)
        try:
            await asyncio.wait_for(asyncio.gather(*(f for _, f in waits)), self._timeout)
        except TimeoutError:
            for channel, future in waits:
                pending = self._waiters.get(channel, [])
                if future in pending:
                    pending.remove(future)
                if not pending:
                    self._waiters.pop(channel, None)
            raise RedisTimeoutError("Redis did not confirm a subscription in time") from None

    async def unsubscribe(self, *names: str) -> None:
        placed: dict[_Link, list[bytes]] = {}
        for name in names:
            channel = name.encode()
            if self.sharded and is_shard_channel(channel):
                link = self._home.pop(channel, None)
                if link is None:
                    continue
            else:
                link = self._classic
            placed.setdefault(link, []).append(channel)
        for link, channels in placed.items():
            await link.drop(channels)

    def _place(self, channel: bytes) -> _Link:
        if not (self.sharded and is_shard_channel(channel)):
            return self._classic
        link = self._home.get(channel)
        if link is None or link.closed:
            try:
                node = self.servers.owner(channel)
            except RedisClusterException as exc:  # the slot has no master right now
                raise RedisConnectionError(f"cannot subscribe {channel!r}: {exc}") from exc
            link = self._home[channel] = self._shard_link(node)
        return link

    def _shard_link(self, node: str) -> _Link:
        link = self._shards.get(node)
        if link is None:
            link = self._shards[node] = _Link(self, node, sharded=True)
            link.start()
        return link

    def retire(self, link: _Link) -> None:
        """A sharded link left with no channel after its node went away: it ends."""
        link.closed = True
        if self._shards.get(link.node or "") is link:
            del self._shards[link.node or ""]

    def confirmed(self, channel: bytes) -> None:
        for future in self._waiters.pop(channel, ()):
            if not future.done():
                future.set_result(None)

    async def refresh(self) -> None:
        try:
            await self.servers.refresh()
        except _AWAY as exc:  # no node answers yet: the old map will do
            log.debug("cannot refresh the cluster's slot map: %r", exc)

    async def reroute(self) -> None:
        """Re-read the slot map and put every shard channel on its slot's current master;
        each one that moves is subscribed there and healed from the logs."""
        async with self._reroute_lock:
            await self.refresh()
            moved: dict[_Link, list[bytes]] = {}
            for channel, link in list(self._home.items()):
                try:
                    node = self.servers.owner(channel)
                except _AWAY:
                    continue  # the slot has no master right now: a later pass places it
                if link.closed or node != link.node or channel not in link.channels:
                    # No SUNSUBSCRIBE to the old node: it is gone, or it gave the slot away
                    # and dropped the subscription itself.
                    link.release([channel])
                    target = self._home[channel] = self._shard_link(node)
                    target.claim([channel], heal=True)
                    moved.setdefault(target, []).append(channel)
            for target, channels in moved.items():
                log.info("%d room channel(s) now followed on %s", len(channels), target.node)
                await target.send_subscribe(channels)

    def reroute_soon(self) -> None:
        self._background.spawn(self.reroute())

    def _misrouted(self) -> bool:
        """Whether a shard channel sits on a link other than its master's, as the command
        client's slot map says (it learns of moves from the MOVED replies of commands)."""
        for channel, link in self._home.items():
            try:
                if link.closed or self.servers.owner(channel) != link.node:
                    return True
            except _AWAY:
                return True
        return False

    async def _probe(self) -> None:
        while True:
            await asyncio.sleep(self._probe_interval)
            try:
                await self._probe_once()
            except Exception:  # a bug: log it, and keep probing
                log.exception("pub/sub probe failed")

    async def _probe_once(self) -> None:
        probed: list[tuple[_Link, Any]] = []
        classic = self._classic
        if classic.conn is not None:
            classic.probe_seen.clear()
            try:
                await self._publish(self.probe_channel, b"probe")
                probed.append((classic, classic.conn))
            except _AWAY:  # Redis itself is away: the reader reconnects when it returns
                classic.probe_missed = True
        for link in list(self._shards.values()):
            conn = link.conn
            link.probe_seen.clear()
            if conn is not None and await link.ping():
                probed.append((link, conn))
        deadline = asyncio.get_running_loop().time() + self._probe_interval
        for link, conn in probed:
            remaining = max(0.0, deadline - asyncio.get_running_loop().time())
            try:
                await asyncio.wait_for(link.probe_seen.wait(), remaining)
                link.probe_missed = False
            except TimeoutError:
                link.probe_missed = True
                if link.conn is conn:
                    log.warning(
                        "pub/sub connection stopped delivering (%s); reconnecting it", link.node
                    )
                    await conn.disconnect(nowait=True)
        if self.sharded and self._misrouted():
            self.reroute_soon()

    def unready(self) -> str | None:
        """Why pub/sub cannot deliver now (a connection down, or its last probe missed)."""
        for link in [self._classic, *self._shards.values()]:
            if link.conn is None or not link.conn.is_connected:
                return f"pub/sub connection to {link.node or 'Redis'} is down"
            if link.probe_missed:
                return f"pub/sub connection to {link.node} missed its last probe"
        return None

    async def close(self) -> None:
        links = [self._classic, *self._shards.values()]
        for link in links:
            link.closed = True
        await self._background.close(
            *(link.task for link in links if link.task is not None), timeout=3
        )
