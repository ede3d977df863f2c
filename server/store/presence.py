"""Presence in Redis: which node instances hold each user, which instances are alive.

A user is online while their online set (`rh:{app:user}:online`) names at least one node
instance; its first entry in and last entry out publish the change on the app's presence
channel, in the same script (presence_change.lua; on a sharded cluster, by the node right
after it). Each instance lists the users it registered (`rh:{presence:<instance>}:users`)
and renews its deadline by heartbeat (presence_beat.lua); an instance past its deadline died
without closing, and the node that claims it takes its users out (`reap`). Soft state: none
of it waits for replicas.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import orjson

from . import lua
from .keys import (
    PRESENCE_NODES_KEY,
    PRESENCE_REAPING_KEY,
    node_users_key,
    presence_channel,
    user_online_key,
)

User = tuple[str, str]  # (app, user)
REAP_BATCH = 256  # users of a dead instance taken out per round trip


def _entry(app: str, user: str) -> bytes:
    return orjson.dumps([app, user])


def register_scripts(client: Any) -> dict[str, Any]:
    return {
        name: client.register_script(lua.source(f"presence_{name}")) for name in ("change", "beat")
    }


class PresenceStore:
    """The presence keys, through the store's client and its script batcher."""

    def __init__(self, client: Any, batcher: Any, scripts: dict[str, Any]) -> None:
        self.redis = client
        self.batcher = batcher
        self.scripts = scripts
        self.sharded = False  # the app's presence channel is a shard channel (choose_pubsub)

    async def join(self, instance: str, users: Iterable[User]) -> list[User]:
        """Register `users` as held by `instance`; the ones that came online (first anywhere).
        The instance's list first: a node that dies after it is reaped of them all."""
        users = list(users)
        if not users:
            return []
        await self.redis.sadd(node_users_key(instance), *(_entry(a, u) for a, u in users))
        return await self._each(True, instance, users)

    async def leave(self, instance: str, users: Iterable[User]) -> list[User]:
        """`instance` holds `users` no more; the ones that went offline (last anywhere)."""
        users = list(users)
        if not users:
            return []
        went = await self._each(False, instance, users)
        await self.redis.srem(node_users_key(instance), *(_entry(a, u) for a, u in users))
        return went

    async def _each(self, joining: bool, instance: str, users: list[User]) -> list[User]:
        """Join or leave for each user; the ones whose presence changed. The
        script publishes each change, unless the app's channel is a shard channel (not in the
        user's slot): then it is published here, in the order the scripts ran."""
        script = self.scripts["change"]
        publish = "" if self.sharded else "PUBLISH"
        replies = await asyncio.gather(
            *(
                self.batcher.submit(
                    script,
                    [user_online_key(app, user)],
                    [instance, presence_channel(app), user, publish, "1" if joining else "0"],
                )
                for app, user in users
            )
        )
        changed = [(pair, int(at)) for pair, at in zip(users, replies) if int(at)]
        if self.sharded:
            for (app, user), at in changed:
                change = {"user": user, "online": joining, "time_ms": at}
                await self.redis.spublish(presence_channel(app), orjson.dumps(change))
        return [pair for pair, _ in changed]

    async def beat(
        self, instance: str, ttl_ms: int, first: bool, claims: int
    ) -> tuple[bool, list[str]]:
        """Renew `instance`'s deadline (registering it on its `first` beat). Returns whether
        it was still alive, and the dead instances this node now reaps."""
        reply = await self.batcher.submit(
            self.scripts["beat"],
            [PRESENCE_NODES_KEY, PRESENCE_REAPING_KEY],
            [instance, ttl_ms, "1" if first else "0", claims],
        )
        return bool(int(reply[0])), [item.decode() for item in reply[1:]]

    async def reap(self, instance: str) -> tuple[int, int]:
        """Take a dead instance's users out (offline events for those it held last), then
        forget it. Idempotent: a reaper that dies midway is replaced by another. Returns how
        many users it held, and how many of them went offline."""
        key = node_users_key(instance)
        taken = went = 0
        while True:
            raws = await self.redis.srandmember(key, REAP_BATCH)
            if not raws:
                break
            users = [tuple(orjson.loads(raw)) for raw in raws]
            went += len(await self._each(False, instance, users))  # type: ignore[arg-type]
            await self.redis.srem(key, *raws)
            taken += len(raws)
        await self.redis.zrem(PRESENCE_REAPING_KEY, instance)
        return taken, went

    async def forget(self, instance: str) -> None:
        """A node stopping cleanly: its instance is no longer alive (its users left already)."""
        await self.redis.zrem(PRESENCE_NODES_KEY, instance)
        await self.redis.delete(node_users_key(instance))

    async def online(self, app: str, users: list[str]) -> list[str]:
        """The ones of `users` online now (held by some node), in the order given."""
        if not users:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for user in users:
                pipe.exists(user_online_key(app, user))
            found = await pipe.execute()
        return [user for user, present in zip(users, found) if present]
