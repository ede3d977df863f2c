"""The one place that talks to Redis: room scripts, users, history, and pub/sub.

Every mutating op is one Lua script (server/lua/) that checks the rules, writes the room's
hashes, appends the system message to the room's stream and publishes it — atomically, in
one round trip. All keys of a room share the hash tag {app:room}, so a room lives in one
Redis Cluster slot. The embedded store is the same code over an in-process fakeredis.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import math
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol, TypeVar

import orjson
import redis.asyncio as aioredis
from hiredis import pack_command
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisClusterException, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from roomhub.protocol import roles
from roomhub.protocol.errors import ErrorCode, RoomError

log = logging.getLogger("roomhub.store")
T = TypeVar("T")

EPOCH_KEY = "rh:epoch"
TARGET_NOT_MEMBER = -100005  # from the scripts: the caller decides 100007 vs 100005
MEMBER_FIELDS = ("role", "nickname", "avatar", "level", "custom_info", "extension")


def room_tag(app: str, room: str) -> str:
    return f"{{{app}:{room}}}"


def room_keys(app: str, room: str) -> list[str]:
    tag = room_tag(app, room)
    return [f"rh:{tag}:meta", f"rh:{tag}:members", f"rh:{tag}:invites", f"rh:{tag}:log"]


def room_channel(app: str, room: str) -> str:
    return f"rh:{room_tag(app, room)}:events"


def user_inbox(app: str, user: str) -> str:
    return f"rh:{{{app}:{user}}}:inbox"


def user_rooms_key(app: str, user: str) -> str:
    return f"rh:{{{app}:{user}}}:rooms"


def rate_key(app: str) -> str:
    return f"rh:{{{app}}}:rate"


def users_key(app: str) -> str:
    return f"rh:{{{app}}}:users"


def _load_lua(name: str) -> str:
    return resources.files("roomhub.server").joinpath("lua", name).read_text("utf-8")


def _room_script(name: str) -> str:
    prelude = _load_lua("_prelude.lua").replace("__POLICY__", roles.rules_json().decode())
    return prelude + "\n" + _load_lua(name)


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
        self._tasks: set[asyncio.Task[None]] = set()
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
        self._spawn(self._link.send(batch) if self._link else self._send(batch))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Stop every batch before the client closes: one still running afterwards (its caller
        cancelled at shutdown) would open a connection nobody closes."""
        pending, self._queue = self._queue, []
        for *_, future in pending:
            if not future.done():
                future.set_exception(ConnectionError("the store is closed"))
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
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
                self._spawn(self._reload(script, keys, args, future))
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
        expiry = asyncio.get_running_loop().call_later(self._timeout, self._expire, batch)
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

    def _expire(self, batch: Batch) -> None:
        if any(entry[0] is batch for entry in self._sent) and self._conn is not None:
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
    ) -> None:
        self.redis = client
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
        self._batcher = _Pipeliner(client, timeout)
        self._upsert = client.register_script(_load_lua("user_upsert.lua"))
        self._rate = client.register_script(_load_lua("rate_limit.lua"))
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
            versions = [_version(str(info.get("redis_version", ""))) for info in infos]
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
    async def admit(self, app: str, ceiling: int, node: str) -> int:
        """0 if the app may run one more mutating op now, else ms until it may (§8)."""
        self._admissions += 1
        member = f"{node}:{self._admissions}"
        return int(await self._batcher.submit(self._rate, [rate_key(app)], [ceiling, member]))

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
        return orjson.dumps(params)

    async def _run(self, script: str, app: str, room: str, params: bytes) -> list[Any]:
        reply = await self._batcher.submit(self._scripts[script], room_keys(app, room), [params])
        code = int(reply[0])
        if code != 0:
            message = reply[1].decode() if isinstance(reply[1], bytes) else str(reply[1])
            field = reply[2].decode() if len(reply) > 2 and reply[2] else None
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
        self, app: str, room: str, *, user: str, after_seq: int
    ) -> tuple[int, bool, list[bytes]]:
        """(current seq, user is a member now, stored messages with seq > after_seq)."""
        params = self._params(app, room, "", None, "ack", user=user, after=after_seq)
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
        servers: _Servers = (
            _ClusterServers(self.redis, self._cluster_nodes)
            if self._cluster_nodes is not None
            else _OneServer(self._pubsub_client)
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


# --- pub/sub -------------------------------------------------------------------------------


def is_room_channel(channel: bytes) -> bool:
    """A room's events channel: it carries the room's hash tag, so it can be a shard channel."""
    return channel.endswith(b"}:events")


def _version(text: str) -> tuple[int, ...]:
    """The numbers of a version: "7.0.15" -> (7, 0, 15); () if there are none."""
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


# Pub/sub connections: no read timeout (they wait for messages as long as none come), and
# RESP2, where a published message is a plain reply the reader gets as it is (RESP3 turns it
# into a push that redis-py routes through a handler first).
_PUBSUB_OPTIONS = {"socket_timeout": None, "protocol": 2}

# What a Redis (or a cluster with no master for a slot yet) that is away raises; redis-py's
# cluster errors are not RedisErrors.
_AWAY = (RedisError, RedisClusterException, OSError)


class _Servers(Protocol):
    """Where pub/sub connections go: named Redis nodes, and which one owns a shard channel."""

    async def refresh(self) -> None: ...

    def classic_nodes(self, current: str | None) -> list[str]: ...

    def owner(self, channel: bytes) -> str: ...

    def connection(self, node: str) -> Any: ...


class _OneServer:
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


class _ClusterServers:
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
        self.closed = False
        self._sub, self._unsub = (
            ("SSUBSCRIBE", "SUNSUBSCRIBE") if sharded else ("SUBSCRIBE", "UNSUBSCRIBE")
        )
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
        failures = 0
        while not self.closed:
            if failures:
                await asyncio.sleep(min(0.05 * 2**failures, 1.0))
                if self.sharded:
                    await self._subscriber.reroute()  # the slots may have a new master
                    if not self.channels:
                        self._subscriber.retire(self)
                        return
                else:
                    await self._subscriber.refresh()
                if self.closed:
                    return
            try:
                conn = await self._connect()
            except Exception as exc:
                if failures == 0:
                    log.warning("pub/sub connection to %s failed: %r; retrying", self.node, exc)
                failures += 1
                continue
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
            failures = 1

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
        servers: _Servers,
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
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def mode(self) -> str:
        return "sharded" if self.sharded else "classic"

    def start(self) -> None:
        self._classic.start()
        self._spawn(self._probe())

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
            if self.sharded and is_room_channel(channel):
                link = self._home.pop(channel, None)
                if link is None:
                    continue
            else:
                link = self._classic
            placed.setdefault(link, []).append(channel)
        for link, channels in placed.items():
            await link.drop(channels)

    def _place(self, channel: bytes) -> _Link:
        if not (self.sharded and is_room_channel(channel)):
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
        self._spawn(self.reroute())

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
            except _AWAY:
                pass  # Redis itself is away: the reader reconnects when it returns
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
            except TimeoutError:
                if link.conn is conn:
                    log.warning(
                        "pub/sub connection stopped delivering (%s); reconnecting it", link.node
                    )
                    await conn.disconnect(nowait=True)
        if self.sharded and self._misrouted():
            self.reroute_soon()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("pub/sub task failed", exc_info=task.exception())

    async def close(self) -> None:
        links = [self._classic, *self._shards.values()]
        for link in links:
            link.closed = True
        tasks = [*(link.task for link in links if link.task is not None), *self._tasks]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=3)
