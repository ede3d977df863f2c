"""The ops of docs/protocol.md §5 on top of the store: who is acting, pre-checks that need data
outside the room's slot (users), and the per-user room index around each room script."""

from __future__ import annotations

import base64
import functools
import hashlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from roomhub.protocol import limits, models, ops
from roomhub.protocol.errors import ErrorCode, RoomError, invalid
from roomhub.protocol.roles import SERVER

from .delivery.fanout import Fanout
from .delivery.inbox import Inbox
from .settings import Settings
from .store import Store
from .store.scripts import (
    Dismissed,
    Idempotency,
    InvitationAnswer,
    InvitationCancel,
    MemberAdd,
    MemberRemove,
    MemberUpdate,
    OpOutcome,
    RoomCreate,
    RoomDismiss,
    RoomGet,
    RoomHistory,
    RoomMembers,
    RoomTransfer,
    RoomUpdate,
)


@dataclass(frozen=True)
class Caller:
    """Who sent a request: an app's user, or the app's backend with a server token."""

    app: str
    user: str
    server: bool = False


class Acting(NamedTuple):
    """Who an op is performed as: `operator` None means an unchecked server call. Unpacked
    (`*who`) after the room, it is a room script's sender and operator."""

    sender: str
    operator: str | None


def acting(caller: Caller, args: models.OpArgs) -> Acting:
    if args.operator is not None:
        if not caller.server:
            raise invalid("operator", "only server tokens may pass operator")
        return Acting(args.operator, args.operator)
    if caller.server:
        return Acting(SERVER, None)
    return Acting(caller.user, caller.user)


def acting_user(caller: Caller, args: models.OpArgs, op: str) -> str:
    """The user an op is about when it can only be done as somebody (accept, leave, list)."""
    who = acting(caller, args)
    if who.operator is None:
        raise invalid("operator", f"{op} with a server token needs 'operator' (the user)")
    return who.operator


def _result(outcome: OpOutcome, room: str, reply: str, empty: bool = False) -> dict[str, Any]:
    if reply == "ack":
        return {"room": room, "seq": outcome.seq}
    if empty:
        return {}
    assert outcome.room is not None
    return outcome.room


Handler = Callable[..., Awaitable[dict[str, Any]]]  # (caller, args), and a stream op's conn


class Service:
    """The ops' handlers, each the method the op table (protocol/ops.py) names, dispatched
    from the table."""

    def __init__(self, store: Store, settings: Settings, fanout: Fanout | None = None) -> None:
        self.store = store
        self.settings = settings
        self.fanout = fanout  # the node's delivery, for room.watch (None: no connections)
        self._handlers = {
            spec.name: self._dispatch(spec) for spec in ops.OPS.values() if spec.method
        }

    def handler(self, op: str) -> Handler:
        """`run(caller, validated args) -> result` for the op (auth is the hub's own)."""
        return self._handlers[op]

    def _dispatch(self, spec: ops.OpSpec) -> Handler:
        """The method the table names, behind what the table says: the server-only check,
        and for a change its idempotency key, handed to it (`idem`) for its room script."""
        assert spec.method is not None
        method = getattr(self, spec.method)
        if spec.server_only:
            method = _server_only(spec.name, method)
        if not spec.mutating:
            return method  # type: ignore[no-any-return]
        op = spec.name

        async def run(caller: Caller, args: Any) -> dict[str, Any]:
            key = args.idempotency_key
            if key is None:
                return await method(caller, args, None)  # type: ignore[no-any-return]
            idem = Idempotency(caller_id(caller), key, fingerprint(op, args))
            return await method(caller, args, idem)  # type: ignore[no-any-return]

        return run

    def _require_presence(self) -> None:
        if not self.settings.presence:
            raise RoomError(ErrorCode.UNKNOWN_OP, "presence is off on this hub (--presence)")

    def _require_consent(self, caller: Caller, what: str) -> None:
        """With member_consent "invite", users invite; only the backend adds directly."""
        if self.settings.member_consent == "invite" and not caller.server:
            raise RoomError(
                ErrorCode.FORBIDDEN, f"this app requires invitations: users cannot {what}"
            )

    async def _known(self, app: str, users: list[str]) -> list[dict[str, str]]:
        """Profiles of `users` in order, or 100007 naming the first unknown one."""
        profiles = await self.store.profiles(app, users)
        for user in users:
            if user not in profiles:
                raise RoomError(ErrorCode.USER_NOT_FOUND, f"user '{user}' does not exist")
        return [profiles[u] for u in users]

    async def _on_target(
        self, app: str, call: MemberUpdate | MemberRemove | RoomTransfer
    ) -> OpOutcome:
        """Run an op on the member `call.user`. 100005 (the target's or the operator's)
        becomes 100007 if the target is no user at all: that outranks it (docs/protocol.md
        §7) and says nothing about the room."""
        try:
            return await self.store.run(app, call)
        except RoomError as exc:
            if exc.code is ErrorCode.NOT_A_MEMBER and not await self.store.user_known(
                app, call.user
            ):
                raise RoomError(
                    ErrorCode.USER_NOT_FOUND, f"user '{call.user}' does not exist"
                ) from None
            raise

    async def upsert_user(
        self, caller: Caller, args: models.UserUpsertArgs, idem: Idempotency | None
    ) -> dict[str, Any]:
        profile = {
            k: v for k, v in (("nickname", args.nickname), ("avatar", args.avatar)) if v is not None
        }
        return await self.store.upsert_user(caller.app, args.id, profile)

    async def create_room(
        self, caller: Caller, args: models.RoomCreateArgs, idem: Idempotency | None
    ) -> dict[str, Any]:
        who = acting(caller, args)
        if caller.server:
            if args.owner is None:
                raise invalid("owner", "owner is required with a server token")
            owner = args.owner
        else:
            if args.owner is not None:
                raise invalid("owner", "owner is only for server tokens: the caller owns the room")
            owner = caller.user
        if args.room is not None:
            room = args.room
        elif args.idempotency_key is not None:
            room = derived_room_id(caller, args.idempotency_key)
        else:
            room = secrets.token_urlsafe(12)
        custom = []
        if args.custom is not None:
            custom = _custom_params(models.room_custom_changes(args.custom, removals=False))
        members = list(dict.fromkeys([owner, *args.members]))
        if len(members) > 1:
            self._require_consent(caller, "create a room with members (invite them)")
        profiles = await self._known(caller.app, members)
        quota = 0 if caller.server else self.settings.rooms_per_hour
        if quota:
            used, ends_in_ms = await self.store.quota_used(caller.app, caller.user, "rooms")
            if used >= quota:
                raise RoomError(
                    ErrorCode.RATE_LIMITED,
                    f"user '{caller.user}' may create {quota} rooms per hour",
                    retry_after_ms=ends_in_ms,
                )
        await self.store.index_rooms(caller.app, members, room, created=True)
        call = RoomCreate(
            room,
            who.sender,
            owner=owner,
            name=args.name,
            type=args.type,
            members=profiles,
            custom=custom,
            reply=args.reply,
            idem=idem,
        )
        outcome = await self.store.run(caller.app, call)
        if quota:
            await self.store.quota_count(caller.app, caller.user, "rooms")
        return _result(outcome, room, args.reply)

    async def get_room(self, caller: Caller, args: models.RoomGetArgs) -> dict[str, Any]:
        if args.presence:
            self._require_presence()
        call = RoomGet(args.room, viewer=acting(caller, args).operator)
        room: dict[str, Any] = await self.store.run(caller.app, call)
        if args.presence:
            ids = [member["id"] for member in room["members"]]
            online = set(await self.store.presence.online(caller.app, ids))
            for member in room["members"]:
                member["online"] = member["id"] in online
        return room

    async def presence(self, caller: Caller, args: models.RoomArgs) -> dict[str, Any]:
        """The members online now: the room as room.get reads it (the same permission
        check), then their presence."""
        self._require_presence()
        call = RoomGet(args.room, viewer=acting(caller, args).operator)
        room = await self.store.run(caller.app, call)
        ids = sorted(member["id"] for member in room["members"])
        online = await self.store.presence.online(caller.app, ids)
        return {"online": online, "count": len(online)}

    async def list_rooms(self, caller: Caller, args: models.RoomListArgs) -> dict[str, Any]:
        user = acting_user(caller, args, "room.list")
        return {"rooms": await self.store.user_rooms(caller.app, user)}

    async def add_members(
        self, caller: Caller, args: models.MemberAddArgs, idem: Idempotency | None
    ) -> dict[str, Any]:
        who = acting(caller, args)
        if not args.invitation_required:
            self._require_consent(caller, "add members directly")
        invitees = list(dict.fromkeys(args.invitees))
        profiles = await self._known(caller.app, invitees)
        await self.store.index_rooms(caller.app, invitees, args.room)
        call = MemberAdd(
            args.room,
            *who,
            invitees=profiles,
            invitation=args.invitation_required,
            notify=args.system_message,
            max_invites=self.settings.max_pending_invitations,
            max_invites_per_inviter=self.settings.max_pending_invitations_per_inviter,
            reply=args.reply,
            idem=idem,
        )
        return _result(await self.store.run(caller.app, call), args.room, args.reply)

    async def _answer(
        self,
        caller: Caller,
        args: models.RoomMutationArgs,
        idem: Idempotency | None,
        accept: bool,
    ) -> dict[str, Any]:
        op = "invitation.accept" if accept else "invitation.decline"
        user = acting_user(caller, args, op)
        profile = (await self._known(caller.app, [user]))[0] if accept else {}
        call = InvitationAnswer(
            args.room,
            user,
            user=user,
            accept=accept,
            profile=profile,
            reply=args.reply if accept else "ack",
            idem=idem,
        )
        outcome = await self.store.run(caller.app, call)
        if not accept:
            await self.store.unindex_room(caller.app, user, args.room)
        return _result(outcome, args.room, args.reply, empty=not accept)

    async def accept(
        self, caller: Caller, args: models.RoomMutationArgs, idem: Idempotency | None
    ) -> dict[str, Any]:
        return await self._answer(caller, args, idem, accept=True)

    async def decline(
        self, caller: Caller, args: models.RoomMutationArgs, idem: Idempotency | None
    ) -> dict[str, Any]:
        return await self._answer(caller, args, idem, accept=False)

    async def update_member(
        self, caller: Caller, args: models.MemberUpdateArgs, idem: Idempotency | None
    ) -> dict[str, Any]:
        who = acting(caller, args)
        changes = []
        for change in models.property_changes(args.properties):
            entry: dict[str, Any] = {"name": change.name, "builtin": change.builtin}
            if change.value_json is not None:
                entry["json"] = change.value_json.decode()
            changes.append(entry)
        extension = args.notification_extension
        call = MemberUpdate(
            args.room,
            *who,
            user=args.user,
            changes=changes,
            notify=args.system_message,
            extension_json=None if extension is None else orjson.dumps(extension).decode(),
            reply=args.reply,
            idem=idem,
        )
        return _result(await self._on_target(caller.app, call), args.room, args.reply)

    async def remove_member(
        self, caller: Caller, args: models.MemberTargetArgs, idem: Idempotency | None
    ) -> dict[str, Any]:
        who = acting(caller, args)
        call = MemberRemove(
            args.room, *who, user=args.user, leave=False, reply=args.reply, idem=idem
        )
        outcome = await self._on_target(caller.app, call)
        await self.store.unindex_room(caller.app, args.user, args.room)
        return _result(outcome, args.room, args.reply)

    async def leave(
        self, caller: Caller, args: models.RoomMutationArgs, idem: Idempotency | None
    ) -> dict[str, Any]:
        user = acting_user(caller, args, "room.leave")
        call = MemberRemove(args.room, user, user, user=user, leave=True, idem=idem)
        outcome = await self.store.run(caller.app, call)
        await self.store.unindex_room(caller.app, user, args.room)
        return _result(outcome, args.room, args.reply, empty=True)

    async def dismiss_room(
        self, caller: Caller, args: models.RoomMutationArgs, idem: Idempotency | None
    ) -> dict[str, Any]:
        """The room is gone once its script ran (its dismissRoom published, its keys deleted);
        then it leaves the indexes of everyone it listed. A room.list meanwhile skips it: the
        index is a superset, checked against the room."""
        who = acting(caller, args)
        call = RoomDismiss(args.room, *who, reply="ack", idem=idem)
        outcome = await self.store.run(caller.app, call)
        if isinstance(outcome, Dismissed):
            await self.store.unindex_users(caller.app, outcome.users, args.room, dismissed=True)
        return _result(outcome, args.room, args.reply, empty=True)

    async def update_room(
        self, caller: Caller, args: models.RoomUpdateArgs, idem: Idempotency | None
    ) -> dict[str, Any]:
        who = acting(caller, args)
        custom = None
        if args.custom is not None:
            custom = _custom_params(models.room_custom_changes(args.custom))
        call = RoomUpdate(
            args.room, *who, name=args.name, custom=custom, reply=args.reply, idem=idem
        )
        return _result(await self.store.run(caller.app, call), args.room, args.reply)

    async def transfer_room(
        self, caller: Caller, args: models.RoomTransferArgs, idem: Idempotency | None
    ) -> dict[str, Any]:
        who = acting(caller, args)
        call = RoomTransfer(args.room, *who, user=args.to, reply=args.reply, idem=idem)
        return _result(await self._on_target(caller.app, call), args.room, args.reply)

    async def cancel_invitations(
        self, caller: Caller, args: models.InvitationCancelArgs, idem: Idempotency | None
    ) -> dict[str, Any]:
        """The invitations go in the script; the invitees' index entries after it (a
        superset meanwhile, checked by room.list)."""
        who = acting(caller, args)
        invitees = list(dict.fromkeys(args.invitees))
        call = InvitationCancel(args.room, *who, invitees=invitees, reply=args.reply, idem=idem)
        outcome = await self.store.run(caller.app, call)
        await self.store.unindex_users(caller.app, invitees, args.room)
        return _result(outcome, args.room, args.reply)

    async def list_members(self, caller: Caller, args: models.RoomMembersArgs) -> dict[str, Any]:
        call = RoomMembers(
            args.room, viewer=acting(caller, args).operator, after=args.after, limit=args.limit
        )
        return await self.store.run(caller.app, call)

    async def history(self, caller: Caller, args: models.RoomHistoryArgs) -> dict[str, Any]:
        call = RoomHistory(
            args.room,
            viewer=acting(caller, args).operator,
            after_seq=args.after_seq,
            limit=args.limit,
        )
        entries, more = await self.store.run(caller.app, call)
        return {"messages": [orjson.loads(raw) for raw in entries], "more": more}

    # following a room from the server side -----------------------------------------------

    async def watch_room(
        self, caller: Caller, args: models.RoomWatchArgs, conn: Inbox
    ) -> dict[str, Any]:
        """The room now (as room.get to the server); its messages follow on `conn`."""
        assert self.fanout is not None
        if len(conn.watching) >= limits.WATCHES_PER_CONNECTION_MAX and (
            args.room not in conn.watching
        ):
            raise invalid(
                "room",
                f"a connection watches at most {limits.WATCHES_PER_CONNECTION_MAX} rooms",
            )
        return await self.fanout.watch(
            caller.app,
            args.room,
            conn,
            functools.partial(self.store.run, caller.app, RoomGet(args.room)),
            args.after_seq,
            self.settings.resume_max_messages,
        )

    async def unwatch_room(
        self, caller: Caller, args: models.RoomUnwatchArgs, conn: Inbox
    ) -> dict[str, Any]:
        assert self.fanout is not None
        self.fanout.unwatch(caller.app, args.room, conn)
        return {}

    async def app_rooms(self, caller: Caller, args: models.AppRoomsArgs) -> dict[str, Any]:
        rooms, after = await self.store.app_rooms(caller.app, args.after, args.prefix, args.limit)
        return {"rooms": rooms, "next": after}


def _server_only(op: str, method: Any) -> Any:
    async def checked(caller: Caller, args: Any, *rest: Any) -> dict[str, Any]:
        if not caller.server:
            if isinstance(args, models.OpArgs):
                acting(caller, args)  # `operator` on a user token: 100002 before 100006 (§7)
            raise RoomError(ErrorCode.FORBIDDEN, f"{op} needs a server token")
        return await method(caller, args, *rest)  # type: ignore[no-any-return]

    return checked


def caller_id(caller: Caller) -> str:
    return ("s:" if caller.server else "u:") + caller.user


def fingerprint(op: str, args: Any) -> str:
    """Of the op and its arguments (not the key): the same key with other ones is 100002."""
    dumped = args.model_dump(exclude={"idempotency_key", "reply"})  # reply: only the shape
    # default: a value JSON cannot carry (msgpack bin in a custom prop) is the op's own 100002
    # once the args are checked, not an internal error here
    digest = hashlib.sha256(orjson.dumps([op, dumped], option=orjson.OPT_SORT_KEYS, default=repr))
    return digest.hexdigest()[:32]


def derived_room_id(caller: Caller, key: str) -> str:
    """room.create without a room id but with a key: the same id on every retry."""
    digest = hashlib.sha256(f"{caller_id(caller)}|{key}".encode()).digest()
    return base64.urlsafe_b64encode(digest[:12]).decode()


def _custom_params(changes: list[models.PropertyChange]) -> list[dict[str, str]]:
    """Room custom props as the Lua scripts take them: {name, json}, no json = removed."""
    params = []
    for change in changes:
        entry = {"name": change.name}
        if change.value_json is not None:
            entry["json"] = change.value_json.decode()
        params.append(entry)
    return params
