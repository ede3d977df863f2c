"""This node's side of presence: tell Redis which users it holds, and reap dead nodes.

The node keeps what it wants Redis to show (`wanted`: the users with a connection here) and
what Redis shows (`written`); one task makes the second follow the first, in order, so a
failed write (Redis away) is retried rather than lost, and nothing is written twice at once.
A heartbeat renews this node's deadline and claims nodes whose deadline passed: they died
without closing (SIGKILL, power loss), and this node takes their users out (offline events).
The events themselves travel on the app's presence channel (delivery/fanout.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Any

from .store.presence import PresenceStore, User
from .tasks import Background

log = logging.getLogger("roomhub.presence")

BATCH = 512  # users registered (or unregistered) per round of writes
CLAIMS_PER_BEAT = 16  # dead nodes one heartbeat claims at most
RETRY_MAX = 5.0  # seconds between tries while Redis is away, at most


class Presence:
    """Which users this node holds, kept in Redis under a node instance id that is new on
    every start (so a restarted node never inherits entries its dead self left behind)."""

    def __init__(
        self, store: PresenceStore, node: str, heartbeat: float, metrics: Any = None
    ) -> None:
        self.store = store
        self.metrics = metrics  # server.metrics.Metrics, or None: nothing counted
        self.node = node
        self.heartbeat = heartbeat
        self.instance = _instance(node)
        self.wanted: set[User] = set()
        self.written: set[User] = set()
        self._dirty: set[User] = set()
        self._renew = False  # this instance was reaped: register everyone anew
        self._closing = False
        self._stop = asyncio.Event()  # the heartbeat ends (not cancelled: see close)
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._background = Background(log, "presence task")
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def ttl_ms(self) -> int:
        """How long an instance stays alive without a beat: two beats, so one late beat is
        not a death; reapers check on every beat, hence the bound of three beats."""
        return max(1, int(self.heartbeat * 2000))

    async def start(self) -> None:
        """Register this instance (its first beat), then keep beating and syncing."""
        await self._beat(first=True)
        self._tasks = [
            asyncio.create_task(self._sync_loop()),
            asyncio.create_task(self._beat_loop()),
        ]

    async def close(self, timeout: float = 3.0) -> None:
        """Take this node's users out (they went offline here) and forget the instance.

        The loops are told to finish rather than cancelled: redis-py may swallow a
        cancellation that lands inside a command, and a write half done is left to run out."""
        self._closing = True
        self._stop.set()
        self._wake.set()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout)
        await self._background.close(timeout=timeout)
        try:
            async with asyncio.timeout(timeout):
                await self.store.leave(self.instance, sorted(self.written))
                await self.store.forget(self.instance)
        except Exception as exc:  # others reap this instance once its deadline passes
            log.warning("could not take this node's users offline (%r); others reap them", exc)

    # what the node holds ----------------------------------------------------------------

    def connected(self, app: str, user: str) -> None:
        """The user's first connection on this node opened."""
        self._mark((app, user), True)

    def disconnected(self, app: str, user: str) -> None:
        """The user's last connection on this node closed."""
        self._mark((app, user), False)

    def _mark(self, key: User, held: bool) -> None:
        if held:
            self.wanted.add(key)
        else:
            self.wanted.discard(key)
        self._dirty.add(key)
        self._idle.clear()
        self._wake.set()

    @property
    def pending(self) -> int:
        """Changes not written to Redis yet."""
        return len(self._dirty)

    async def settled(self) -> None:
        """Until Redis shows what this node holds (tests, and a clean stop)."""
        await self._idle.wait()

    async def _sync_loop(self) -> None:
        delay = 0.05
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            if self._closing:
                return  # close() takes everyone out
            try:
                await self._sync()
                delay = 0.05
                if not self._dirty and not self._renew:
                    self._idle.set()
            except Exception as exc:
                log.warning("presence not written yet (%r); retrying in %.2f s", exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
                delay = min(delay * 2, RETRY_MAX)
                self._wake.set()

    async def _sync(self) -> None:
        if self._renew:
            self._renew = False
            old, self.instance = self.instance, _instance(self.node)
            log.warning(
                "presence: instance %s was reaped; registering anew as %s", old, self.instance
            )
            self.written.clear()
            self._dirty.update(self.wanted)
            await self._beat(first=True)
        while self._dirty:
            batch = [self._dirty.pop() for _ in range(min(BATCH, len(self._dirty)))]
            joins = [key for key in batch if key in self.wanted and key not in self.written]
            leaves = [key for key in batch if key not in self.wanted and key in self.written]
            try:
                if joins:
                    came = await self.store.join(self.instance, joins)
                    self.written.update(joins)
                    self._count("online", len(came))
                if leaves:
                    went = await self.store.leave(self.instance, leaves)
                    self.written.difference_update(leaves)
                    self._count("offline", len(went))
            except BaseException:
                self._dirty.update(batch)  # written again (both scripts are idempotent)
                raise

    # heartbeat and reaping ----------------------------------------------------------------

    async def _beat_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.heartbeat)
            if self._closing:
                return
            try:
                await self._beat(first=False)
            except Exception as exc:
                log.warning("presence heartbeat failed (%r)", exc)

    async def _beat(self, first: bool) -> None:
        alive, dead = await self.store.beat(self.instance, self.ttl_ms, first, CLAIMS_PER_BEAT)
        if not alive:
            self._renew = True
            self._idle.clear()
            self._wake.set()
        for instance in dead:
            self._background.spawn(self._reap(instance))

    def _count(self, change: str, users: int) -> None:
        if self.metrics is not None and users:
            self.metrics.presence_changes.labels(change).inc(users)

    async def _reap(self, instance: str) -> None:
        taken, went = await self.store.reap(instance)
        self._count("offline", went)
        if self.metrics is not None:
            self.metrics.presence_reaped.inc()
        log.warning("presence: node instance %s died; took its %d users offline", instance, taken)


def _instance(node: str) -> str:
    return f"{node}.{secrets.token_hex(4)}"
