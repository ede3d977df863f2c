"""The ops of docs/protocol.md §5 as RoomClient methods: arguments in, typed results out.

Each method only shapes arguments (None is "not given") and picks the result model; sending,
idempotency keys and retries are `Session._call`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal, Protocol, TypeVar, overload

from pydantic import BaseModel

from roomhub.protocol.models import (
    Ack,
    HistoryPage,
    MemberPage,
    Room,
    RoomPage,
    RoomPresence,
    User,
)

from .session import Session
from .wire import args as _args

__all__ = ["Reply", "RoomOps"]

Reply = Literal["room", "ack"]
M = TypeVar("M", bound=BaseModel)
R_co = TypeVar("R_co", covariant=True)


class _OneRoomOp(Protocol[R_co]):
    """How `accept`, `decline` and `leave` are called: `reply="ack"` gives an Ack instead of
    `R_co` (the Room, or None where the server replies `{}`). One signature for the three,
    not two overload stubs each."""

    @overload
    async def __call__(
        self, room: str, *, reply: Literal["room"] = ..., operator: str | None = ...
    ) -> R_co: ...
    @overload
    async def __call__(
        self, room: str, *, reply: Literal["ack"], operator: str | None = ...
    ) -> Ack: ...


def _one_room_op(name: str, op: str, doc: str, *, empty: bool) -> Any:
    """The method `name` for `op` on one room; `empty`: the server replies `{}` (None)."""

    async def method(
        self: RoomOps, room: str, *, reply: Reply = "room", operator: str | None = None
    ) -> Room | Ack | None:
        args = _args(room=room, operator=operator)
        if empty:
            return await self._empty(op, args, reply)
        return await self._mutate(op, args, reply)

    method.__name__ = name
    method.__qualname__ = f"RoomOps.{name}"
    method.__doc__ = doc
    return method


class RoomOps(Session):
    """The ops on top of a session: one method per op (user tokens and server tokens; a server
    token names the acting user as `operator` where the op needs one)."""

    async def _model(self, model: type[M], op: str, args: dict[str, Any]) -> M:
        return model.model_validate(await self._call(op, args))

    async def _mutate(self, op: str, args: dict[str, Any], reply: Reply) -> Room | Ack:
        if reply == "ack":
            return await self._model(Ack, op, {**args, "reply": "ack"})
        return await self._model(Room, op, args)

    async def _empty(self, op: str, args: dict[str, Any], reply: Reply) -> Ack | None:
        if reply == "ack":
            return await self._model(Ack, op, {**args, "reply": "ack"})
        await self._call(op, args)
        return None

    # the ops ------------------------------------------------------------------------------

    async def upsert_user(
        self,
        id: str,
        nickname: str | None = None,
        avatar: str | None = None,
        *,
        operator: str | None = None,
    ) -> User:
        """Create or update a user's profile (server tokens). Fields not given keep their
        value. No `reply`: the server ignores it for user.upsert, the result is the user."""
        return await self._model(
            User, "user.upsert", _args(id=id, nickname=nickname, avatar=avatar, operator=operator)
        )

    @overload
    async def create_room(
        self,
        room: str | None = ...,
        name: str = ...,
        type: str = ...,
        members: Iterable[str] = ...,
        owner: str | None = ...,
        *,
        custom: Mapping[str, Any] | None = ...,
        reply: Literal["room"] = ...,
        operator: str | None = ...,
    ) -> Room: ...
    @overload
    async def create_room(
        self,
        room: str | None = ...,
        name: str = ...,
        type: str = ...,
        members: Iterable[str] = ...,
        owner: str | None = ...,
        *,
        custom: Mapping[str, Any] | None = ...,
        reply: Literal["ack"],
        operator: str | None = ...,
    ) -> Ack: ...
    async def create_room(
        self,
        room: str | None = None,
        name: str = "",
        type: str = "group",
        members: Iterable[str] = (),
        owner: str | None = None,
        *,
        custom: Mapping[str, Any] | None = None,
        reply: Reply = "room",
        operator: str | None = None,
    ) -> Room | Ack:
        """Create a room (id generated when `room` is None). `owner` is for server tokens
        only; a user owns the rooms they create. `members` join directly, without invitation.
        `custom`: the room's first custom properties, set in the same atomic step."""
        created = await self._mutate(
            "room.create",
            _args(
                room=room,
                name=name or None,
                type=None if type == "group" else type,
                members=list(members) or None,
                owner=owner,
                custom=None if custom is None else dict(custom),
                operator=operator,
            ),
            reply,
        )
        if owner is None and operator is None:  # a user's own room: resume it from its start
            room_id = created.room if isinstance(created, Ack) else created.id
            self._resume.created(room_id)
        return created

    async def get_room(
        self, room: str, *, operator: str | None = None, presence: bool = False
    ) -> Room:
        """The complete room, with members and pending invitations; `presence`: each member
        with `online` set."""
        args = _args(room=room, operator=operator, presence=presence or None)
        return await self._model(Room, "room.get", args)

    async def presence(self, room: str, *, operator: str | None = None) -> RoomPresence:
        """The room's members online now (a connection open on any node), by id."""
        return await self._model(RoomPresence, "room.presence", _args(room=room, operator=operator))

    async def list_rooms(self, *, operator: str | None = None) -> list[Room]:
        """The caller's rooms (member or invited), sorted by id, without `members`. A server
        token must name the user as `operator`."""
        result = await self._call("room.list", _args(operator=operator))
        return [Room.model_validate(room) for room in result["rooms"]]

    @overload
    async def add_members(
        self,
        room: str,
        invitees: Iterable[str],
        invitation_required: bool = ...,
        system_message: bool = ...,
        *,
        reply: Literal["room"] = ...,
        operator: str | None = ...,
    ) -> Room: ...
    @overload
    async def add_members(
        self,
        room: str,
        invitees: Iterable[str],
        invitation_required: bool = ...,
        system_message: bool = ...,
        *,
        reply: Literal["ack"],
        operator: str | None = ...,
    ) -> Ack: ...
    async def add_members(
        self,
        room: str,
        invitees: Iterable[str],
        invitation_required: bool = False,
        system_message: bool = False,
        *,
        reply: Reply = "room",
        operator: str | None = None,
    ) -> Room | Ack:
        """Add 1-100 users directly, or invite them (`invitation_required=True`);
        `system_message` marks the message `notify` (shown in the room's timeline)."""
        return await self._mutate(
            "member.add",
            _args(
                room=room,
                invitees=list(invitees),
                invitation_required=invitation_required or None,
                system_message=system_message or None,
                operator=operator,
            ),
            reply,
        )

    accept: _OneRoomOp[Room] = _one_room_op(
        "accept",
        "invitation.accept",
        "Accept a pending invitation and become a member.",
        empty=False,
    )
    decline: _OneRoomOp[None] = _one_room_op(
        "decline",
        "invitation.decline",
        "Decline a pending invitation (the server replies `{}`: nothing to return).",
        empty=True,
    )

    @overload
    async def update_member(
        self,
        room: str,
        user: str,
        properties: Mapping[str, Any],
        system_message: bool = ...,
        notification_extension: str | None = ...,
        *,
        reply: Literal["room"] = ...,
        operator: str | None = ...,
    ) -> Room: ...
    @overload
    async def update_member(
        self,
        room: str,
        user: str,
        properties: Mapping[str, Any],
        system_message: bool = ...,
        notification_extension: str | None = ...,
        *,
        reply: Literal["ack"],
        operator: str | None = ...,
    ) -> Ack: ...
    async def update_member(
        self,
        room: str,
        user: str,
        properties: Mapping[str, Any],
        system_message: bool = False,
        notification_extension: str | None = None,
        *,
        reply: Reply = "room",
        operator: str | None = None,
    ) -> Room | Ack:
        """Set built-in member fields (role, nickname, avatar, level, custom_info, extension)
        and custom props; a custom prop set to None is removed (None is sent as null here:
        it is a value, not a missing argument)."""
        return await self._mutate(
            "member.update",
            _args(
                room=room,
                user=user,
                properties=dict(properties),
                system_message=system_message or None,
                notification_extension=notification_extension,
                operator=operator,
            ),
            reply,
        )

    @overload
    async def remove_member(
        self, room: str, user: str, *, reply: Literal["room"] = ..., operator: str | None = ...
    ) -> Room: ...
    @overload
    async def remove_member(
        self, room: str, user: str, *, reply: Literal["ack"], operator: str | None = ...
    ) -> Ack: ...
    async def remove_member(
        self, room: str, user: str, *, reply: Reply = "room", operator: str | None = None
    ) -> Room | Ack:
        """Remove a member of lower rank (owner, admin, or a server token)."""
        return await self._mutate(
            "member.remove", _args(room=room, user=user, operator=operator), reply
        )

    leave: _OneRoomOp[None] = _one_room_op(
        "leave",
        "room.leave",
        "Leave a room (any member but the owner); the server replies `{}`.",
        empty=True,
    )

    dismiss_room: _OneRoomOp[None] = _one_room_op(
        "dismiss_room",
        "room.dismiss",
        "Dismiss a room (its owner, or a server token): every member gets `dismissRoom`, then "
        "the room is gone (100004 from then on); the server replies `{}`.",
        empty=True,
    )

    @overload
    async def update_room(
        self,
        room: str,
        *,
        name: str | None = ...,
        custom: Mapping[str, Any] | None = ...,
        reply: Literal["room"] = ...,
        operator: str | None = ...,
    ) -> Room: ...
    @overload
    async def update_room(
        self,
        room: str,
        *,
        name: str | None = ...,
        custom: Mapping[str, Any] | None = ...,
        reply: Literal["ack"],
        operator: str | None = ...,
    ) -> Ack: ...
    async def update_room(
        self,
        room: str,
        *,
        name: str | None = None,
        custom: Mapping[str, Any] | None = None,
        reply: Reply = "room",
        operator: str | None = None,
    ) -> Room | Ack:
        """Rename the room and/or set its custom properties (owner, admin, or a server token);
        a property set to None is removed. One of `name` and `custom` is needed."""
        return await self._mutate(
            "room.update",
            _args(
                room=room,
                name=name,
                custom=None if custom is None else dict(custom),
                operator=operator,
            ),
            reply,
        )

    @overload
    async def transfer_room(
        self, room: str, to: str, *, reply: Literal["room"] = ..., operator: str | None = ...
    ) -> Room: ...
    @overload
    async def transfer_room(
        self, room: str, to: str, *, reply: Literal["ack"], operator: str | None = ...
    ) -> Ack: ...
    async def transfer_room(
        self, room: str, to: str, *, reply: Reply = "room", operator: str | None = None
    ) -> Room | Ack:
        """Make the member `to` the owner (the owner, or a server token); the old owner
        becomes an admin."""
        return await self._mutate(
            "room.transfer", _args(room=room, to=to, operator=operator), reply
        )

    @overload
    async def cancel_invitations(
        self,
        room: str,
        invitees: Iterable[str],
        *,
        reply: Literal["room"] = ...,
        operator: str | None = ...,
    ) -> Room: ...
    @overload
    async def cancel_invitations(
        self,
        room: str,
        invitees: Iterable[str],
        *,
        reply: Literal["ack"],
        operator: str | None = ...,
    ) -> Ack: ...
    async def cancel_invitations(
        self,
        room: str,
        invitees: Iterable[str],
        *,
        reply: Reply = "room",
        operator: str | None = None,
    ) -> Room | Ack:
        """Cancel 1-100 pending invitations (owner and admins any, a member their own)."""
        return await self._mutate(
            "invitation.cancel",
            _args(room=room, invitees=list(invitees), operator=operator),
            reply,
        )

    async def list_members(
        self,
        room: str,
        *,
        after: str | None = None,
        limit: int | None = None,
        operator: str | None = None,
    ) -> MemberPage:
        """One page of the room's members in id order (members, or a server token); page on
        with `after=page.next` until it is None."""
        return await self._model(
            MemberPage,
            "room.members",
            _args(room=room, after=after, limit=limit, operator=operator),
        )

    async def history(
        self, room: str, after_seq: int = 0, limit: int = 50, *, operator: str | None = None
    ) -> HistoryPage:
        """System messages with seq > `after_seq`, ascending, at most `limit` (1-200);
        page on with the last message's seq while `more` is true."""
        return await self._model(
            HistoryPage,
            "room.history",
            _args(
                room=room,
                after_seq=after_seq or None,
                limit=None if limit == 50 else limit,
                operator=operator,
            ),
        )

    # following rooms from the server side (server tokens) --------------------------------

    async def watch_room(self, room: str, after_seq: int | None = None) -> Room:
        """Follow the room without being a member: the Room now; then every message of it
        arrives as a member's would (`next_message`, `on_event`), after `after_seq` if given
        (replayed first), else after the Room's seq. A reconnect watches it again from the
        last message delivered. Ends with the room's dismissRoom."""
        state = await self._model(Room, "room.watch", _args(room=room, after_seq=after_seq))
        self._watched(room, state.seq if after_seq is None else after_seq)
        return state

    async def unwatch_room(self, room: str) -> None:
        """Stop following the room (no message of it after this returns)."""
        await self._call("room.unwatch", {"room": room})
        self._unwatched(room)

    async def app_rooms(
        self, *, after: str | None = None, prefix: str | None = None, limit: int | None = None
    ) -> RoomPage:
        """One page of the app's rooms in id order (server tokens), without their members;
        page on with `after=page.next` until it is None."""
        return await self._model(
            RoomPage, "app.rooms", _args(after=after, prefix=prefix or None, limit=limit)
        )
