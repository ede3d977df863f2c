"""The Store: rooms, users and history. `Store.run` runs a room script with its typed params
(store/scripts.py); each mutating op is one such script (server/lua/) that checks the rules,
writes the room's hashes, appends the system message to the room's stream and publishes it
— atomically, in one round trip.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import orjson
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from roomhub.protocol.errors import ErrorCode, RoomError

from . import lua
from .errors import ScriptError, is_unavailable
from .keys import (
    EPOCH_KEY,
    app_rooms_key,
    idempotency_keys,
    nonce_key,
    quota_key,
    rate_key,
    room_channel,
    room_keys,
    user_rate_key,
    user_rooms_key,
    users_key,
)
from .pipeline import _Pipeliner
from .presence import PresenceStore, register_scripts
from .pubsub import Subscriber
from .scripts import (
    FIELDS,
    SCRIPTS,
    RoomChange,
    RoomReplay,
    RoomScript,
    RoomSnapshot,
    profile_from_record,
    room_from_state,
)
from .servers import ClusterServers, OneServer, Servers, redis_version

log = logging.getLogger("roomhub.store")
T = TypeVar("T")
R = TypeVar("R")


# --- the store -----------------------------------------------------------------------------


def _bounded(method: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Hold one of the store's Redis slots for the call: ops beyond the pool size queue here
    instead of failing (redis-py's cluster client raises rather than waits for a connection)."""

    @functools.wraps(method)
    async def bounded(self: Store, *args: Any, **kwargs: Any) -> T:
        async with self._slots:
            return await method(self, *args, **kwargs)

    return bounded


class Store:
    """Typed access to rooms, users and history for one Redis (or the embedded fakeredis)."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        history_max: int,
        max_room_members: int,
        concurrency: int = 64,
        make_pubsub_client: Callable[[], aioredis.Redis] | None = None,
        timeout: float = 5.0,
        idempotency_keys_per_room: int = 10_000,
        min_replicas: int = 0,
        min_replicas_timeout: float = 1.0,
    ) -> None:
        self.redis = client
        self.idempotency_keys_per_room = idempotency_keys_per_room
        self._slots = asyncio.Semaphore(concurrency)
        self.history_max = history_max
        self.max_room_members = max_room_members
        self._pubsub_client = make_pubsub_client() if make_pubsub_client else client
        self._timeout = timeout
        # A cluster's startup nodes in the order given (redis-py reorders its own copy): the
        # classic pub/sub connection tries them first.
        self._cluster_nodes: list[str] | None = (
            list(client.nodes_manager.startup_nodes) if isinstance(client, RedisCluster) else None
        )
        self._sharded = False  # set by choose_pubsub()
        self._scripts = {
            kind.script: client.register_script(lua.room_script(kind.script, kind.change))
            for kind in SCRIPTS
        }
        self._upsert = client.register_script(lua.script("user_upsert"))
        self._rate = client.register_script(lua.source("rate_limit"))
        presence_scripts = register_scripts(client)
        # Changes wait for `min_replicas` replicas; reads and the rate window need not (a
        # rate window lost in a failover only lets a few more ops through).
        self._batcher = _Pipeliner(
            client,
            timeout,
            min_replicas=min_replicas,
            replica_timeout=min_replicas_timeout,
            unreplicated=[
                self._rate,
                *presence_scripts.values(),
                *(self._scripts[kind.script] for kind in SCRIPTS if not kind.change),
            ],
        )
        self._admissions = 0
        self.presence = PresenceStore(client, self._batcher, presence_scripts)

    async def close(self) -> None:
        await self._batcher.aclose()
        await self.redis.aclose()
        if self._pubsub_client is not self.redis:
            await self._pubsub_client.aclose()

    async def ping(self) -> None:
        await self.redis.ping()

    async def choose_pubsub(self) -> str:
        """Pick how room messages travel, once at startup: sharded pub/sub (SPUBLISH to the
        room's slot, SSUBSCRIBE on its master) on a Redis Cluster whose masters all run 7.0 or
        newer, so a message crosses only its own shard; classic pub/sub otherwise. Every node
        on one cluster picks the same, which they must: the two kinds do not see each other."""
        if self._cluster_nodes is not None:
            replies = await self.redis.info("server", target_nodes=RedisCluster.PRIMARIES)
            infos = replies.values() if "redis_version" not in replies else [replies]
            versions = [redis_version(str(info.get("redis_version", ""))) for info in infos]
            self._sharded = bool(versions) and min(versions) >= (7, 0)
            self.presence.sharded = self._sharded
            oldest = ".".join(map(str, min(versions, default=())))
            log.info("Redis Cluster %s: %s pub/sub", oldest or "?", self.pubsub_mode)
        return self.pubsub_mode

    @property
    def pubsub_mode(self) -> str:
        """How room messages travel: "sharded", or "classic" (a single Redis, the embedded
        store, or a cluster with a master older than 7.0)."""
        return "sharded" if self._sharded else "classic"

    @_bounded
    async def admit(self, app: str, ceiling: int, node: str, user: str, user_ceiling: int) -> int:
        """0 if `user` of `app` may run one more mutating op now, else ms until they may:
        positive for the app's ceiling, negative for the user's own limit (§8)."""
        self._admissions += 1
        member = f"{node}:{self._admissions}"
        keys = [rate_key(app), user_rate_key(app, user)]
        return int(await self._batcher.submit(self._rate, keys, [ceiling, member, user_ceiling]))

    # users ---------------------------------------------------------------------------------

    @_bounded
    async def register_user(self, app: str, user: str) -> None:
        await self._batcher.submit(self._upsert, [users_key(app)], [user, "{}", "1"])

    @_bounded
    async def upsert_user(self, app: str, user: str, profile: dict[str, str]) -> dict[str, str]:
        args = [user, orjson.dumps(profile), "0"]
        raw = await self._batcher.submit(self._upsert, [users_key(app)], args)
        return profile_from_record(user, orjson.loads(raw))

    @_bounded
    async def profiles(self, app: str, users: list[str]) -> dict[str, dict[str, str]]:
        """The Users among `users` (id, nickname, avatar); unknown ones are absent."""
        if not users:
            return {}
        raws = await self.redis.hmget(users_key(app), users)
        return {
            user: profile_from_record(user, orjson.loads(raw))
            for user, raw in zip(users, raws)
            if raw is not None
        }

    @_bounded
    async def user_known(self, app: str, user: str) -> bool:
        return bool(await self.redis.hexists(users_key(app), user))

    # vendor nonces (docs/dialects.md) ---------------------------------------------------------

    @_bounded
    async def claim_nonce(self, app: str, vendor: str, nonce: str, ttl_ms: int) -> bool:
        """True the first time `nonce` of `app`'s `vendor` requests is claimed within `ttl_ms`,
        on any node (SET NX PX), False for a replay. Kept by digest: a nonce is any string."""
        digest = hashlib.sha256(nonce.encode("utf-8", "surrogateescape")).hexdigest()[:32]
        key = nonce_key(app, vendor, digest)
        return bool(await self.redis.set(key, b"1", nx=True, px=max(1, ttl_ms)))

    # per-user quotas (fixed hourly windows) ---------------------------------------------------

    @_bounded
    async def quota_used(self, app: str, user: str, what: str) -> tuple[int, int]:
        """(count this hour, ms until the hour ends) of `what` done by `user`."""
        hour, into = divmod(int(time.time() * 1000), 3_600_000)
        used = await self.redis.get(quota_key(app, user, what, hour))
        return int(used or 0), 3_600_000 - into

    @_bounded
    async def quota_count(self, app: str, user: str, what: str) -> None:
        key = quota_key(app, user, what, int(time.time() * 1000) // 3_600_000)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.incr(key)
            pipe.expire(key, 3600)
            await pipe.execute()

    # per-user room index (a superset of the truth; rooms are checked before use) -------------

    @_bounded
    async def index_rooms(
        self, app: str, users: Iterable[str], room: str, *, created: bool = False
    ) -> None:
        """`room` into the users' indexes, and into the app's when it is being `created`."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for user in users:
                pipe.sadd(user_rooms_key(app, user), room)
            if created:
                pipe.zadd(app_rooms_key(app), {room: 0})
            await pipe.execute()

    @_bounded
    async def unindex_room(self, app: str, user: str, room: str) -> None:
        await self.redis.srem(user_rooms_key(app, user), room)

    @_bounded
    async def unindex_users(
        self, app: str, users: Iterable[str], room: str, *, dismissed: bool = False
    ) -> None:
        """`room` out of every one of `users`' indexes, and out of the app's when it was
        `dismissed`, in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for user in users:
                pipe.srem(user_rooms_key(app, user), room)
            if dismissed:
                pipe.zrem(app_rooms_key(app), room)
            await pipe.execute()

    @_bounded
    async def app_rooms(
        self, app: str, after: str | None, prefix: str, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of the app's rooms by id (after `after`, ids starting with `prefix`), as
        Rooms without members, and the `after` of the next page. The index is a superset
        (a room enters it before its script runs): entries of no room are dropped here."""
        low = f"[{prefix}" if prefix else "-"
        if after is not None and (not prefix or after >= prefix):
            low = f"({after}"
        high = b"[" + prefix.encode() + b"\xff" if prefix else b"+"  # ids are ASCII
        key = app_rooms_key(app)
        found = await self.redis.zrangebylex(key, low, high, start=0, num=limit + 1)
        candidates = [room.decode() for room in found[:limit]]
        if not candidates:
            return [], None
        rooms, stale = await self._rooms_without_members(app, candidates)
        if stale:
            await self.redis.zrem(key, *stale)
        return rooms, candidates[-1] if len(found) > limit else None

    async def _rooms_without_members(
        self, app: str, candidates: list[str], user: str | None = None
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """The candidates of an index as Rooms without members, in one round trip, and the
        stale ones: no such room, or (`user` given) one the user is neither in nor invited to."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for room in candidates:
                meta, members, invites, _ = room_keys(app, room)
                pipe.hgetall(meta)
                if user is not None:
                    pipe.hexists(members, user)
                pipe.hgetall(invites)
            replies = iter(await pipe.execute())
        rooms, stale = [], []
        for room in candidates:
            meta = next(replies)
            is_member = next(replies) if user is not None else True
            invites = next(replies)
            if not meta or not (is_member or user is None or user.encode() in invites):
                stale.append(room)
                continue
            flat_meta = [x for kv in meta.items() for x in kv]
            flat_invites = [x for kv in invites.items() for x in kv]
            rooms.append(room_from_state(room, flat_meta, None, flat_invites))
        return rooms, stale

    @_bounded
    async def user_rooms(self, app: str, user: str) -> list[dict[str, Any]]:
        """Rooms the user is a member of or invited to, as Rooms without members."""
        candidates = sorted(
            r.decode() for r in await self.redis.smembers(user_rooms_key(app, user))
        )
        if not candidates:
            return []
        rooms, stale = await self._rooms_without_members(app, candidates, user)
        if stale:
            await self.redis.srem(user_rooms_key(app, user), *stale)
        return rooms

    # rooms ---------------------------------------------------------------------------------

    async def run(self, app: str, call: RoomScript[R]) -> R:
        """Run a room script with its params: the one way the store runs an op on a room. A
        script's error reply is raised as a RoomError."""
        keys, params = self.encode(app, call)
        async with self._slots:
            reply = await self._submit(call.script, keys, params)
        return call.parse(reply)

    def encode(self, app: str, call: RoomScript[Any]) -> tuple[list[str], bytes]:
        """The script's KEYS and its one ARGV: the params' fields that are not None, and for
        a change what every change needs (how to log and publish, its idempotency key)."""
        params = {n: value for n in FIELDS[type(call)] if (value := getattr(call, n)) is not None}
        keys = room_keys(app, call.room)
        if isinstance(call, RoomChange):
            params["history_max"] = self.history_max
            params["max_members"] = self.max_room_members
            params["room_channel"] = room_channel(app, call.room)
            params["user_channel_prefix"] = f"rh:{{{app}:"
            params["user_channel_suffix"] = "}:inbox"
            if self._sharded:
                params["room_publish"] = "SPUBLISH"  # the room's channel is in the room's slot
            idem = call.idem
            if idem is not None:
                params["idem"] = {
                    "id": f"{idem.caller}|{idem.key}",
                    "fp": idem.fingerprint,
                    "cap": self.idempotency_keys_per_room,
                }
            keys += idempotency_keys(app, call.room)
        return keys, orjson.dumps(params)

    async def _submit(self, script: str, keys: list[str], params: bytes) -> list[Any]:
        try:
            reply = await self._batcher.submit(self._scripts[script], keys, [params])
        except ResponseError as exc:
            if is_unavailable(exc):
                raise
            raise ScriptError(script, exc) from exc
        try:
            code = int(reply[0])
            if code != 0:
                message = reply[1].decode() if isinstance(reply[1], bytes) else str(reply[1])
                field = reply[2].decode() if len(reply) > 2 and reply[2] else None
        except (TypeError, ValueError, IndexError, AttributeError) as exc:
            raise ScriptError(script, exc) from exc
        if code != 0:
            # abs: outcomes recorded (for idempotency keys) by versions that sent the target's
            # 100005 negated
            raise RoomError(abs(code), message, field=field)
        return reply  # type: ignore[no-any-return]

    async def replay(
        self, app: str, room: str, *, user: str, after_seq: int, limit: int
    ) -> tuple[int, bool, list[bytes]]:
        """See RoomReplay: what a resume of `room` from `after_seq` may deliver."""
        return await self.run(app, RoomReplay(room=room, user=user, after=after_seq, limit=limit))

    @_bounded
    async def log_range(
        self,
        app: str,
        room: str,
        after_seq: int,
        upto_seq: int | None = None,
        count: int | None = None,
    ) -> list[bytes]:
        """Raw log entries after `after_seq` (for the hub's gap healing; no permission check)."""
        end = f"{upto_seq}-0" if upto_seq is not None else "+"
        entries = await self.redis.xrange(
            room_keys(app, room)[3], f"({after_seq}-0", end, count=count
        )
        return [fields[b"m"] for _, fields in entries]

    async def snapshot(self, app: str, room: str) -> tuple[int, set[str]] | None:
        """The room's seq and member ids, read together; None if the room does not exist."""
        try:
            return await self.run(app, RoomSnapshot(room=room))
        except RoomError as exc:
            if exc.code is ErrorCode.ROOM_NOT_FOUND:
                return None
            raise

    def subscriber(
        self,
        on_message: Callable[[bytes, bytes], None],
        on_reconnect: Callable[[], None],
        node: str,
        probe_interval: float = 5.0,
    ) -> Subscriber:
        servers: Servers = (
            ClusterServers(self.redis, self._cluster_nodes)
            if self._cluster_nodes is not None
            else OneServer(self._pubsub_client)
        )
        return Subscriber(
            servers,
            self.redis.publish,
            on_message,
            on_reconnect,
            f"rh:node:{node}:probe",
            probe_interval,
            sharded=self._sharded,
            timeout=self._timeout,
        )

    @_bounded
    async def epoch(self) -> str:
        """An id of this Redis dataset, made on first use: a new one means the data was lost."""
        await self.redis.set(EPOCH_KEY, secrets.token_hex(8), nx=True)
        value = await self.redis.get(EPOCH_KEY)
        return value.decode() if value else ""
