"""The Store: rooms, users and history, each mutating op one Lua script (server/lua/) that
checks the rules, writes the room's hashes, appends the system message to the room's
stream and publishes it — atomically, in one round trip.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any, TypeVar

import orjson
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from roomhub.protocol import limits, roles
from roomhub.protocol.errors import ErrorCode, RoomError

from .errors import ScriptError, is_unavailable
from .keys import (
    EPOCH_KEY,
    idempotency_keys,
    quota_key,
    rate_key,
    room_channel,
    room_keys,
    user_rate_key,
    user_rooms_key,
    users_key,
)
from .pipeline import _Pipeliner
from .pubsub import ClusterServers, OneServer, Servers, Subscriber, redis_version

log = logging.getLogger("roomhub.store")
T = TypeVar("T")

TARGET_NOT_MEMBER = -100005  # from the scripts: the caller decides 100007 vs 100005
MEMBER_FIELDS = ("role", "nickname", "avatar", "level", "custom_info", "extension")


def _load_lua(name: str) -> str:
    return resources.files("roomhub.server").joinpath("lua", name).read_text("utf-8")


MUTATING_SCRIPTS = frozenset(
    {"room_create", "member_add", "invitation_answer", "member_update", "member_remove"}
)


def _room_script(name: str) -> str:
    prelude = _load_lua("_prelude.lua").replace("__POLICY__", roles.rules_json().decode())
    if name.removesuffix(".lua") not in MUTATING_SCRIPTS:
        return prelude + "\n" + _load_lua(name)
    # The op's body becomes a function, so its outcome can be recorded for retries.
    body = "local function body()\n" + _load_lua(name) + "\nend\n"
    return prelude + "\n" + body + _load_lua("_idempotency.lua")


@dataclass(frozen=True)
class Idempotency:
    """The idempotency key of the op being run: who sent it, the key, a fingerprint of the
    op and its arguments."""

    caller: str
    key: str
    fingerprint: str


# Set by the service around one mutating op; read only when that op's room script is sent.
IDEMPOTENCY: contextvars.ContextVar[Idempotency | None] = contextvars.ContextVar(
    "roomhub_idempotency", default=None
)


# --- turning script replies into wire objects ----------------------------------------------


def _pairs(flat: list[bytes]) -> Iterable[tuple[bytes, bytes]]:
    it = iter(flat)
    return zip(it, it)


def member_from_record(user: str, record: bytes) -> dict[str, Any]:
    stored = orjson.loads(record)
    props = stored.get("props") or {}  # an empty Lua table may come back as []
    return {
        "id": user,
        "role": stored["role"],
        "nickname": stored.get("nickname", ""),
        "avatar": stored.get("avatar", ""),
        "level": int(stored.get("level", 0)),
        "custom_info": stored.get("custom_info", ""),
        "extension": stored.get("extension", ""),
        "props": {name: orjson.loads(value) for name, value in props.items()},
        "joined_ms": int(stored.get("joined_ms", 0)),
    }


def room_from_state(
    room: str, meta: list[bytes], members: list[bytes] | None, invites: list[bytes]
) -> dict[str, Any]:
    fields = {k.decode(): v.decode() for k, v in _pairs(meta)}
    invitations = []
    for user, raw in _pairs(invites):
        invite = orjson.loads(raw)
        invitations.append(
            {"user": user.decode(), "inviter": invite["inviter"], "time_ms": int(invite["time_ms"])}
        )
    invitations.sort(key=lambda i: (i["time_ms"], i["user"]))
    result: dict[str, Any] = {
        "id": room,
        "name": fields.get("name", ""),
        "type": fields.get("type", "group"),
        "owner": fields.get("owner", ""),
        "created_ms": int(fields.get("created_ms", 0)),
        "seq": int(fields.get("seq", 0)),
    }
    if members is not None:
        listed = [member_from_record(u.decode(), rec) for u, rec in _pairs(members)]
        listed.sort(key=lambda m: (m["joined_ms"], m["id"]))
        result["members"] = listed
    result["invitations"] = invitations
    return result


@dataclass(frozen=True)
class OpOutcome:
    seq: int
    room: dict[str, Any] | None  # the complete Room when asked for with reply="room"


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
            name: client.register_script(_room_script(f"{name}.lua"))
            for name in (
                "room_create",
                "member_add",
                "invitation_answer",
                "member_update",
                "member_remove",
                "room_read",
                "room_replay",
                "room_snapshot",
            )
        }
        self._upsert = client.register_script(_load_lua("user_upsert.lua"))
        self._rate = client.register_script(_load_lua("rate_limit.lua"))
        # Changes wait for `min_replicas` replicas; reads and the rate window need not (a
        # rate window lost in a failover only lets a few more ops through).
        self._batcher = _Pipeliner(
            client,
            timeout,
            min_replicas=min_replicas,
            replica_timeout=min_replicas_timeout,
            unreplicated=[
                self._rate,
                *(self._scripts[name] for name in ("room_read", "room_replay", "room_snapshot")),
            ],
        )
        self._admissions = 0

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
        stored = orjson.loads(raw)
        return {
            "id": user,
            "nickname": stored.get("nickname", ""),
            "avatar": stored.get("avatar", ""),
        }

    @_bounded
    async def profiles(self, app: str, users: list[str]) -> dict[str, dict[str, str]]:
        """Known users among `users`, with their profiles; unknown ones are absent."""
        if not users:
            return {}
        raws = await self.redis.hmget(users_key(app), users)
        return {user: orjson.loads(raw) for user, raw in zip(users, raws) if raw is not None}

    @_bounded
    async def user_known(self, app: str, user: str) -> bool:
        return bool(await self.redis.hexists(users_key(app), user))

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
    async def index_rooms(self, app: str, users: Iterable[str], room: str) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for user in users:
                pipe.sadd(user_rooms_key(app, user), room)
            await pipe.execute()

    @_bounded
    async def unindex_room(self, app: str, user: str, room: str) -> None:
        await self.redis.srem(user_rooms_key(app, user), room)

    @_bounded
    async def user_rooms(self, app: str, user: str) -> list[dict[str, Any]]:
        """Rooms the user is a member of or invited to, as Rooms without members."""
        candidates = sorted(
            r.decode() for r in await self.redis.smembers(user_rooms_key(app, user))
        )
        if not candidates:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for room in candidates:
                meta, members, invites, _ = room_keys(app, room)
                pipe.hgetall(meta)
                pipe.hexists(members, user)
                pipe.hgetall(invites)
            replies = await pipe.execute()
        rooms, stale = [], []
        for index, room in enumerate(candidates):
            meta, is_member, invites = replies[3 * index : 3 * index + 3]
            if not meta or not (is_member or user.encode() in invites):
                stale.append(room)
                continue
            flat_meta = [x for kv in meta.items() for x in kv]
            flat_invites = [x for kv in invites.items() for x in kv]
            rooms.append(room_from_state(room, flat_meta, None, flat_invites))
        if stale:
            await self.redis.srem(user_rooms_key(app, user), *stale)
        return rooms

    # rooms ---------------------------------------------------------------------------------

    def _params(
        self, app: str, room: str, sender: str, operator: str | None, reply: str, **extra: Any
    ) -> bytes:
        params = {
            "room": room,
            "sender": sender,
            "reply": reply,
            "history_max": self.history_max,
            "max_members": self.max_room_members,
            "room_channel": room_channel(app, room),
            "user_channel_prefix": f"rh:{{{app}:",
            "user_channel_suffix": "}:inbox",
            **extra,
        }
        if self._sharded:
            params["room_publish"] = "SPUBLISH"  # the room's channel is in the room's slot
        if operator is not None:
            params["operator"] = operator
        idem = IDEMPOTENCY.get()
        if idem is not None:
            params["idem"] = {
                "id": f"{idem.caller}|{idem.key}",
                "fp": idem.fingerprint,
                "ttl_ms": limits.IDEMPOTENCY_TTL_MS,
                "cap": self.idempotency_keys_per_room,
            }
        return orjson.dumps(params)

    async def _run(self, script: str, app: str, room: str, params: bytes) -> list[Any]:
        keys = room_keys(app, room)
        if script in MUTATING_SCRIPTS:
            keys += idempotency_keys(app, room)
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
            raise RoomError(code, message, field=field) if code > 0 else TargetNotMember(message)
        return reply  # type: ignore[no-any-return]

    def _outcome(self, room: str, reply: list[Any]) -> OpOutcome:
        state = room_from_state(room, reply[3], reply[4], reply[5]) if len(reply) > 3 else None
        return OpOutcome(int(reply[2]), state)

    @_bounded
    async def create_room(
        self,
        app: str,
        room: str,
        *,
        sender: str,
        owner: str,
        name: str,
        room_type: str,
        members: list[dict[str, str]],
        reply: str,
    ) -> OpOutcome:
        params = self._params(
            app, room, sender, None, reply, owner=owner, name=name, type=room_type, members=members
        )
        return self._outcome(room, await self._run("room_create", app, room, params))

    @_bounded
    async def add_members(
        self,
        app: str,
        room: str,
        *,
        sender: str,
        operator: str | None,
        invitees: list[dict[str, str]],
        invitation: bool,
        notify: bool,
        reply: str,
        max_invites: int = 0,
        max_invites_per_inviter: int = 0,
    ) -> OpOutcome:
        params = self._params(
            app,
            room,
            sender,
            operator,
            reply,
            invitees=invitees,
            invitation=invitation,
            notify=notify,
            max_invites=max_invites,
            max_invites_per_inviter=max_invites_per_inviter,
        )
        return self._outcome(room, await self._run("member_add", app, room, params))

    @_bounded
    async def answer_invitation(
        self, app: str, room: str, *, user: str, accept: bool, profile: dict[str, str], reply: str
    ) -> OpOutcome:
        params = self._params(
            app, room, user, None, reply, user=user, accept=accept, profile=profile
        )
        return self._outcome(room, await self._run("invitation_answer", app, room, params))

    @_bounded
    async def update_member(
        self,
        app: str,
        room: str,
        *,
        sender: str,
        operator: str | None,
        user: str,
        changes: list[dict[str, Any]],
        notify: bool,
        extension_json: str | None,
        max_props: int,
        reply: str,
    ) -> OpOutcome:
        extra: dict[str, Any] = {
            "user": user,
            "changes": changes,
            "notify": notify,
            "max_props": max_props,
        }
        if extension_json is not None:
            extra["extension_json"] = extension_json
        params = self._params(app, room, sender, operator, reply, **extra)
        return self._outcome(room, await self._run("member_update", app, room, params))

    @_bounded
    async def remove_member(
        self,
        app: str,
        room: str,
        *,
        sender: str,
        operator: str | None,
        user: str,
        leave: bool,
        reply: str,
    ) -> OpOutcome:
        params = self._params(app, room, sender, operator, reply, user=user, leave=leave)
        return self._outcome(room, await self._run("member_remove", app, room, params))

    @_bounded
    async def get_room(self, app: str, room: str, *, viewer: str | None) -> dict[str, Any]:
        extra: dict[str, Any] = {"invitees_may": True}
        if viewer is not None:
            extra["viewer"] = viewer
        params = self._params(app, room, "", None, "room", **extra)
        outcome = self._outcome(room, await self._run("room_read", app, room, params))
        assert outcome.room is not None
        return outcome.room

    @_bounded
    async def history(
        self, app: str, room: str, *, viewer: str | None, after_seq: int, limit: int
    ) -> tuple[list[bytes], bool]:
        """System messages (as stored JSON) with seq > after_seq, and whether more follow."""
        extra: dict[str, Any] = {"history": {"after": after_seq, "limit": limit}}
        if viewer is not None:
            extra["viewer"] = viewer
        params = self._params(app, room, "", None, "ack", **extra)
        reply = await self._run("room_read", app, room, params)
        entries = [fields[1] for _, fields in reply[3]]
        return entries[:limit], len(entries) > limit

    @_bounded
    async def replay(
        self, app: str, room: str, *, user: str, after_seq: int, limit: int
    ) -> tuple[int, bool, list[bytes]]:
        """(current seq, user is a member now, stored messages with seq > after_seq): none
        for a non-member, or when more than `limit` would follow."""
        params = self._params(app, room, "", None, "ack", user=user, after=after_seq, limit=limit)
        reply = await self._run("room_replay", app, room, params)
        return int(reply[2]), bool(reply[3]), [fields[1] for _, fields in reply[4]]

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

    @_bounded
    async def snapshot(self, app: str, room: str) -> tuple[int, set[str]] | None:
        """The room's seq and member ids, read together; None if the room does not exist."""
        params = self._params(app, room, "", None, "ack")
        try:
            reply = await self._run("room_snapshot", app, room, params)
        except RoomError as exc:
            if exc.code is ErrorCode.ROOM_NOT_FOUND:
                return None
            raise
        return int(reply[2]), {user.decode() for user in reply[3]}

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


class TargetNotMember(RoomError):
    """The op's target is not a member; the caller tells an unknown user (100007) apart."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.NOT_A_MEMBER, message)
