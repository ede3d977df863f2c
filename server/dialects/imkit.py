"""The IMKIT dialect (docs/dialects.md §4, study ../shared/seeds/vendor-http.md §1): IMKIT's
room and member paths at the root of the HTTP port, its headers, and its `{"RC", "RM",
"result"}` envelope, each request mapped onto ops of the table through `base.run_op`.

Auth: `IM-CLIENT-KEY` (the app key) with `IM-Authorization` (or the legacy `Authorization`) =
a roomhub user JWT acts as that user; `IM-API-KEY` = the app's `[apps.X.imkit] api_key` acts
as the app's server (`base.server_caller`), and as the `IM-CLIENT-ID` user (`operator`) where
a call is about "me". Errors: HTTP status = RC, from HTTP_STATUS; what roomhub has no op for
answers NOT_SUPPORTED (400)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from roomhub.protocol.errors import ErrorCode, RoomError, invalid

from ..api import http_status, retry_after
from ..auth import mint_token
from ..credentials import DialectKeys
from .base import Caller, read_body, run_op, server_caller

if TYPE_CHECKING:
    from ..hub import Hub

log = logging.getLogger("roomhub.imkit")
Handler = Callable[[Request, Caller], Awaitable[Any]]  # an endpoint, given who acts

DIALECT = "imkit"
JSON = "application/json; charset=utf-8"
# IMKIT's error.code names where its docs give one; other codes show roomhub's reason.
ERROR_NAMES: dict[ErrorCode, str] = {
    ErrorCode.UNAUTHENTICATED: "INVALID_TOKEN",
    ErrorCode.FORBIDDEN: "INSUFFICIENT_PERMISSIONS",
    ErrorCode.NOT_A_MEMBER: "NOT_ROOM_MEMBER",
    ErrorCode.ROOM_NOT_FOUND: "ROOM_NOT_FOUND",
    ErrorCode.RATE_LIMITED: "RATE_LIMIT_EXCEEDED",
}
ROLES = ("admin", "member")  # IMKIT's member roles (roomhub's guest has no IMKIT name)
# PUT /rooms/{id}/member/{client}: IMKIT property -> roomhub builtin (level only if an int)
BUILTINS = {"nickname": "nickname", "avatarUrl": "avatar"}
# PUT /rooms/{id}: IMKIT room fields kept as roomhub room custom props of the same name
ROOM_PROPS = ("cover", "description", "roomTags", "extParams")
TOKEN_TTL = 7 * 24 * 3600  # issueAccessToken: IMKIT's default TOKEN_EXPIRATION_DAYS
# POST /rooms/ and /rooms/createAndJoin: the body fields each takes (others: NOT_SUPPORTED)
CREATE_FIELDS = frozenset(
    {"_id", "name", "roomType", "systemMessage", "webhook", "botMode", *ROOM_PROPS}
)
# room fields roomhub has no counterpart for: accepted only when unset (null, "", false)
NO_COUNTERPART = ("webhook", "botMode")
# roomhub arg -> IMKIT field, for the `field` of a creation's errors (custom.X -> X)
CREATE_NAMES = {"room": "_id", "type": "roomType"}
# GET /rooms `sort` keys that map (others, e.g. lastMessage, are ignored)
SORT_KEYS = {"createdTime": "created_ms", "name": "name", "_id": "id", "id": "id"}
# How long the later ops of one request wait out the ceiling (its window is a second)
FOLLOW_UP_WAIT_S = 2.5


class NotSupported(RoomError):
    """A feature roomhub does not have: HTTP 400, `error.code` NOT_SUPPORTED (a request
    error IMKIT's SDKs surface as such, and no client retries)."""

    def __init__(self, what: str, field: str | None = None) -> None:
        message = f"{what} is not supported by roomhub"
        super().__init__(ErrorCode.INVALID_PARAMETER, message, field=field)


def envelope(result: Any) -> Response:
    return Response(orjson.dumps({"RC": 0, "RM": "OK", "result": result}), 200, media_type=JSON)


def error_response(error: RoomError) -> Response:
    """The error in IMKIT's envelope: RC = the HTTP status (413 for a too-large body)."""
    status = http_status(error)
    message = "Unauthorized" if error.code is ErrorCode.UNAUTHENTICATED else error.message
    detail: dict[str, Any] = {
        "code": "NOT_SUPPORTED"
        if isinstance(error, NotSupported)
        else ERROR_NAMES.get(error.code, error.code.reason),
        "message": error.message,
        "roomhubCode": int(error.code),
    }
    if error.field is not None:
        detail["field"] = error.field
    headers: dict[str, str] = {}
    retry = retry_after(error)
    if retry is not None:
        detail["retryAfter"] = retry
        headers["retry-after"] = str(retry)
    body = {"RC": status, "RM": message, "error": detail}
    return Response(orjson.dumps(body), status, headers, JSON)


def render_room(room: dict[str, Any]) -> dict[str, Any]:
    """A roomhub Room as IMKIT's Room (study §1.4, inferred mapping). A room of room.list
    has no members: then neither `members`, `managers` nor `memberProperties`."""
    custom = room.get("custom", {})
    rendered: dict[str, Any] = {
        "_id": room["id"],
        "id": room["id"],
        "name": room.get("name", ""),
        "roomType": room.get("type", "group"),
        "owner": room["owner"],
        "status": 1,
        "createdTimeMS": room["created_ms"],
    }
    if "members" in room:
        members = room["members"]
        rendered["managers"] = [m["id"] for m in members if m["role"] == "admin"]
        rendered["members"] = [render_client(m) for m in members]
        rendered["memberProperties"] = [
            {"client": m["id"], "role": m["role"], "level": m.get("level", 0), **m.get("props", {})}
            for m in members
        ]
    for name in ROOM_PROPS:
        if name in custom:
            rendered[name] = custom[name]
    return rendered


def render_client(user: dict[str, Any]) -> dict[str, Any]:
    """A roomhub Member or User as IMKIT's Client (no login time in roomhub: 0)."""
    return {
        "_id": user["id"],
        "id": user["id"],
        "nickname": user.get("nickname", ""),
        "avatarUrl": user.get("avatar", ""),
        "isRobot": False,
        "lastLoginTimeMS": 0,
    }


def _iso(ms: int) -> str:
    """A roomhub time (ms) as IMKIT's createdAt/updatedAt: ISO 8601, UTC, milliseconds."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _invitation(invitation: dict[str, Any], known: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The parts of IMKIT's Invitation every list has: the inviter (a Client: a member's
    profile when known, else just the id) and the times (roomhub keeps one: issued)."""
    at = _iso(invitation["time_ms"])
    inviter = known.get(invitation["inviter"], {"id": invitation["inviter"]})
    return {"inviter": render_client(inviter), "createdAt": at, "updatedAt": at}


def render_room_invitations(room: dict[str, Any]) -> dict[str, Any]:
    """A Room's pending invitations as IMKIT lists a room's: {totalCount, data: [{invitee,
    inviter, createdAt, updatedAt}]} (an invitee's profile is not readable: its id only)."""
    known = {m["id"]: m for m in room.get("members", [])}
    data = [
        {"invitee": render_client({"id": i["user"]}), **_invitation(i, known)}
        for i in room.get("invitations", [])
    ]
    return {"totalCount": len(data), "data": data}


def render_my_invitations(rooms: list[dict[str, Any]], user: str) -> dict[str, Any]:
    """`user`'s pending invitations among room.list's rooms, as IMKIT lists a client's:
    {totalCount, data: [{inviter, room, createdAt, updatedAt}]}, by room id."""
    data = [
        {**_invitation(i, {}), "room": render_room(room)}
        for room in rooms
        for i in room.get("invitations", [])
        if i["user"] == user
    ]
    return {"totalCount": len(data), "data": data}


def _invited(room: dict[str, Any], user: str) -> bool:
    return any(i["user"] == user for i in room.get("invitations", []))


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid("body", "the body must be a JSON object")
    return body


def _ids(body: dict[str, Any], field: str) -> list[str]:
    value = body.get(field)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise invalid(field, f"{field} must be a non-empty array of ids")
    return value


def _room_props(body: dict[str, Any]) -> dict[str, Any]:
    """The IMKIT room fields kept as roomhub room custom props."""
    return {name: body[name] for name in ROOM_PROPS if name in body}


def _invitees(body: dict[str, Any]) -> list[str]:
    """createAndJoin's `invitee`: an id or an array of ids (absent: none)."""
    value = body.get("invitee")
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid("invitee", "invitee must be an id or an array of ids")
    return list(dict.fromkeys(value))


def _flag(body: dict[str, Any], field: str) -> bool:
    value = body.get(field, False)
    if not isinstance(value, bool):
        raise invalid(field, f"{field} must be true or false")
    return value


def _count(query: Any, field: str) -> int:
    """A non-negative integer query parameter (absent: 0)."""
    value = query.get(field, "0")
    if not value.isascii() or not value.isdigit():
        raise invalid(field, f"{field} must be a non-negative integer")
    return int(value)


def _check_instant(value: str) -> None:
    """`updatedAfter`: ms since the epoch or ISO 8601, as IMKIT takes it."""
    if value.isascii() and value.isdigit():
        return
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise invalid(
            "updatedAfter", "updatedAfter must be ISO 8601 or ms since the epoch"
        ) from None


def _vendor_field(error: RoomError, names: dict[str, str]) -> RoomError:
    """The error with its `field` in IMKIT's names: `custom.X` -> X, roomhub arg -> field."""
    if error.field is not None:
        head, dot, rest = error.field.partition(".")
        if head == "custom" and rest:
            error.field = rest
        elif head in names:
            error.field = names[head] + dot + rest
    return error


# IMKIT endpoints roomhub has no op for (docs/dialects.md §4): path, methods, what
UNSUPPORTED: list[tuple[str, tuple[str, ...], str]] = [
    ("/blockStatus/room/{room}/{client}", ("POST", "DELETE"), "blocking a member in a room"),
    ("/admin/clients/{client}/mute/{room}", ("POST", "DELETE"), "muting a room for a client"),
    ("/admin/clients/{client}/token", ("PUT", "DELETE"), "binding or revoking a client token"),
]
# Where IMKIT's paths live: anything else under them answers 404 in the envelope
PREFIXES = ("/rooms", "/admin/clients", "/blockStatus")
ANY_METHOD = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _refuse(what: str) -> Handler:
    """The handler of an unsupported endpoint (after auth: 401 first)."""

    async def refuse(request: Request, caller: Caller) -> Any:
        raise NotSupported(what[0].upper() + what[1:])

    refuse.__name__ = "unsupported"
    return refuse


class Imkit:
    """The IMKIT routes of one hub node."""

    def __init__(self, hub: Hub, keys: DialectKeys) -> None:
        self.hub = hub
        self.keys = keys

    def routes(self) -> list[BaseRoute]:
        """Each path with and without a trailing slash (IMKIT's server does not tell them
        apart). Order matters within a method: `/rooms/invitations` before `/rooms/{room}`.
        Last, any other method or path under IMKIT's prefixes: 404 in the envelope."""
        table: list[tuple[str, str, Handler]] = [
            ("/rooms/", "POST", self.create_room),
            ("/rooms/", "GET", self.list_rooms),
            ("/rooms/createAndJoin", "POST", self.create_and_join),
            ("/rooms/invitations", "GET", self.my_invitations),
            ("/rooms/{room}/member/{client}", "PUT", self.update_member),
            ("/rooms/{room}/members", "POST", self.add_members),
            ("/rooms/{room}/members/{invitee}", "POST", self.add_member),
            ("/rooms/{room}/join", "POST", self.join),
            ("/rooms/{room}/delete/members", "POST", self.delete_members),
            ("/rooms/{room}/invitations", "GET", self.room_invitations),
            ("/rooms/{room}/invitations", "DELETE", self.decline),
            ("/rooms/{room}/delete/invitations", "POST", self.cancel_invitations),
            ("/rooms/{room}/invitations/{invitee}", "DELETE", self.cancel_invitation),
            ("/rooms/{room}/exists", "GET", self.exists),
            ("/rooms/{room}", "GET", self.get_room),
            ("/rooms/{room}", "PUT", self.update_room),
            ("/rooms/{room}", "DELETE", self.delete_room),
            ("/admin/clients", "POST", self.upsert_client),
        ]
        for path, methods, what in UNSUPPORTED:
            table += [(path, method, _refuse(what)) for method in methods]
        routes: list[BaseRoute] = []
        for path, method, handler in table:
            bare = path.rstrip("/")
            endpoint = self._endpoint(handler)
            routes += [Route(p, endpoint, methods=[method]) for p in (bare, bare + "/")]
        for prefix in PREFIXES:
            routes += [
                Route(path, self._unknown, methods=ANY_METHOD)
                for path in (prefix, f"{prefix}/{{rest:path}}")
            ]
        return routes

    async def _unknown(self, request: Request) -> Response:
        what = f"{request.method} {request.url.path}"
        return error_response(RoomError(ErrorCode.UNKNOWN_OP, f"no IMKIT endpoint {what}"))

    def _endpoint(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                caller = self.caller(request)
                return envelope(await handler(request, caller))
            except RoomError as exc:
                return error_response(exc)
            except Exception as exc:  # not expected: run_op raises only RoomError
                return error_response(self.hub.internal(exc))

        endpoint.__name__ = f"imkit_{handler.__name__}"
        return endpoint

    def caller(self, request: Request) -> Caller:
        """Who the request acts as (study §1.2): the platform key, else key + user token."""
        headers = request.headers
        api_key = headers.get("im-api-key") or headers.get("api_key")
        if api_key:
            app = self.keys.by_imkit_api_key(api_key)
            if app is None:
                raise RoomError(ErrorCode.UNAUTHENTICATED, "invalid IM-API-KEY")
            return server_caller(app, DIALECT)
        client_key = headers.get("im-client-key") or headers.get("client_key")
        token = headers.get("im-authorization") or headers.get("authorization")
        if not client_key or not token:
            raise RoomError(
                ErrorCode.UNAUTHENTICATED,
                "requests need IM-CLIENT-KEY and IM-Authorization, or IM-API-KEY",
            )
        if self.keys.imkit(client_key) is None:
            raise RoomError(ErrorCode.UNAUTHENTICATED, "invalid IM-CLIENT-KEY")
        scheme, _, rest = token.partition(" ")
        if scheme.lower() == "bearer" and rest.strip():
            token = rest
        return self.hub.auth.verify(client_key, token.strip())

    async def _room(self, caller: Caller, op: str, args: dict[str, Any]) -> dict[str, Any]:
        return render_room(await run_op(self.hub, caller, op, args))

    def _me(self, request: Request, caller: Caller) -> tuple[str, dict[str, Any]]:
        """Whom a call about "me" (join, decline, my rooms, my invitations, createAndJoin) is
        about, and the args that say so: the token's user; with IM-API-KEY the user named by
        IM-CLIENT-ID, passed as `operator` (so rule-checked as that user)."""
        if not caller.server:
            return caller.user, {}
        user = request.headers.get("im-client-id")
        if not user:
            raise invalid("IM-CLIENT-ID", "with IM-API-KEY this call needs IM-CLIENT-ID (the user)")
        return user, {"operator": user}

    async def _soon(self, caller: Caller, op: str, args: dict[str, Any]) -> dict[str, Any]:
        """run_op for a later op of a request whose first op already changed something: a
        100009 is waited out (the ceiling's window is a second) up to FOLLOW_UP_WAIT_S, so
        the ceiling does not cut the request in half."""
        deadline = time.monotonic() + FOLLOW_UP_WAIT_S
        while True:
            try:
                return await run_op(self.hub, caller, op, args)
            except RoomError as exc:
                wait = (exc.retry_after_ms or 0) / 1000
                if exc.code is not ErrorCode.RATE_LIMITED or time.monotonic() + wait > deadline:
                    raise
                await asyncio.sleep(wait)

    async def _create(
        self,
        caller: Caller,
        args: dict[str, Any],
        props: dict[str, Any],
        add: dict[str, Any] | None = None,
        names: dict[str, str] = CREATE_NAMES,
    ) -> dict[str, Any]:
        """room.create, with the room fields kept as custom props (one atomic op), then for
        createAndJoin's invitations a member.add: if that fails, the new room is dismissed
        again, so a failed request leaves no room behind (unless Redis is gone for that too:
        logged)."""
        try:
            room = await run_op(self.hub, caller, "room.create", {**args, "custom": props or None})
        except RoomError as exc:
            raise _vendor_field(exc, names) from None
        if add is None:
            return render_room(room)
        try:
            room = await self._soon(caller, "member.add", {"room": room["id"], **add})
        except RoomError as exc:
            await self._undo_create(caller.app, room["id"])
            raise _vendor_field(exc, names) from None
        return render_room(room)

    async def _undo_create(self, app: str, room: str) -> None:
        try:
            await self._soon(server_caller(app, DIALECT), "room.dismiss", {"room": room})
        except RoomError as exc:
            log.warning("imkit: room %s kept after its creation request failed: %s", room, exc)

    def _create_args(self, body: dict[str, Any], fields: frozenset[str]) -> dict[str, Any]:
        """room.create's args from IMKIT's room fields; a field roomhub has no counterpart
        for is refused unless unset, an unknown one refused."""
        unknown = sorted(set(body) - fields)
        if unknown:
            raise NotSupported(f"'{unknown[0]}'", field=unknown[0])
        for name in NO_COUNTERPART:
            if body.get(name):
                raise NotSupported(f"'{name}'", field=name)
        args: dict[str, Any] = {}
        for field, arg in (("_id", "room"), ("name", "name"), ("roomType", "type")):
            if field in body:
                args[arg] = body[field]
        return args

    async def _my_invitations(
        self, caller: Caller, user: str, extra: dict[str, Any]
    ) -> dict[str, Any]:
        rooms = (await run_op(self.hub, caller, "room.list", extra))["rooms"]
        return render_my_invitations(rooms, user)

    # --- endpoints ------------------------------------------------------------------------

    async def update_member(self, request: Request, caller: Caller) -> Any:
        """PUT /rooms/{id}/member/{client} {property, value} -> member.update."""
        body = _object(await read_body(self.hub, request))
        name, value = body.get("property"), body.get("value")
        if not isinstance(name, str) or not name:
            raise invalid("property", "property must be a non-empty string")
        if "value" not in body:
            raise invalid("value", "value is required")
        notify = False
        if name == "role":
            if value not in ROLES:
                raise invalid("value", "`value` is not a valid role value (admin or member)")
            notify = True  # role=admin always emits assignAdmin
        elif name in BUILTINS:
            name = BUILTINS[name]
        # level is roomhub's builtin (an integer; anything else is its 100002); any other
        # name is a custom prop
        params = request.path_params
        args = {
            "room": params["room"],
            "user": params["client"],
            "properties": {name: value},
            "system_message": notify,
        }
        return await self._room(caller, "member.update", args)

    async def add_members(self, request: Request, caller: Caller) -> Any:
        """POST /rooms/{id}/members {invitees, invitationRequired, systemMessage} -> member.add
        (invitationRequired has no effect on direct rooms)."""
        body = _object(await read_body(self.hub, request))
        return await self._add(caller, request.path_params["room"], _ids(body, "invitees"), body)

    async def add_member(self, request: Request, caller: Caller) -> Any:
        """POST /rooms/{id}/members/{invitee} {invitationRequired, systemMessage}: the
        legacy form of add members, for one id."""
        body = _object(await read_body(self.hub, request))
        params = request.path_params
        return await self._add(caller, params["room"], [params["invitee"]], body)

    async def _add(
        self, caller: Caller, room: str, invitees: list[str], body: dict[str, Any]
    ) -> dict[str, Any]:
        args: dict[str, Any] = {"room": room, "invitees": invitees}
        if "invitationRequired" in body:
            args["invitation_required"] = body["invitationRequired"]
        if "systemMessage" in body:
            args["system_message"] = body["systemMessage"]
        if args.get("invitation_required") is True:
            reader = server_caller(caller.app, DIALECT)  # only the type is used
            seen = await run_op(self.hub, reader, "room.get", {"room": room})
            if seen.get("type") == "direct":
                args["invitation_required"] = False
        return await self._room(caller, "member.add", args)

    async def create_room(self, request: Request, caller: Caller) -> Any:
        """POST /rooms/ -> room.create: `members` added directly. With IM-API-KEY the owner is
        `owner`, else the first of `members`; with a user token the caller owns it."""
        body = _object(await read_body(self.hub, request))
        args = self._create_args(body, CREATE_FIELDS | {"members", "owner"})
        members = body.get("members")
        if "members" in body:
            args["members"] = members
        owner = body.get("owner")
        if caller.server and owner is None and isinstance(members, list) and members:
            owner = members[0]
        if caller.server and owner is None:
            raise invalid("owner", "with IM-API-KEY a room needs owner (or members)")
        if owner is not None and owner != caller.user:
            args["owner"] = owner  # with a user token roomhub refuses it: the caller owns
        return await self._create(caller, args, _room_props(body))

    async def create_and_join(self, request: Request, caller: Caller) -> Any:
        """POST /rooms/createAndJoin -> room.create with the caller (IM-API-KEY: the
        IM-CLIENT-ID user) as owner; `invitee` added directly, or invited by a member.add
        when a group room says invitationRequired (a direct room never invites)."""
        body = _object(await read_body(self.hub, request))
        fields = CREATE_FIELDS | {"invitee", "invitationRequired"}
        args = self._create_args(body, fields)
        user, extra = self._me(request, caller)
        if caller.server:
            args |= {"owner": user, **extra}  # the sender is that user too
        invitees = [i for i in _invitees(body) if i != user]
        invite = _flag(body, "invitationRequired") and args.get("type") != "direct"
        add = None
        if invite and invitees:
            notify = _flag(body, "systemMessage")
            add = {"invitees": invitees, "invitation_required": True, "system_message": notify}
            add |= extra
        elif invitees:
            args["members"] = invitees
        names = CREATE_NAMES | {"members": "invitee", "invitees": "invitee"}
        return await self._create(caller, args, _room_props(body), add, names)

    async def exists(self, request: Request, caller: Caller) -> Any:
        """GET /rooms/{id}/exists -> room.get as the app's server: 100004 is false."""
        reader = server_caller(caller.app, DIALECT)
        try:
            await run_op(self.hub, reader, "room.get", {"room": request.path_params["room"]})
        except RoomError as exc:
            if exc.code is ErrorCode.ROOM_NOT_FOUND:
                return {"exists": False}
            raise
        return {"exists": True}

    async def list_rooms(self, request: Request, caller: Caller) -> Any:
        """GET /rooms -> room.list: the rooms the user is a member of (not those only
        invited to, as IMKIT lists), `sort` by the keys that map, then `skip` and `limit`
        (0: all). `updatedAfter` is checked, not applied (roomhub keeps no room update
        time: every room is returned, a superset); `pref`, `sortUnreadFirst`, `q` ignored."""
        user, extra = self._me(request, caller)
        query = request.query_params
        skip, limit = _count(query, "skip"), _count(query, "limit")
        if "updatedAfter" in query:
            _check_instant(query["updatedAfter"])
        rooms = (await run_op(self.hub, caller, "room.list", extra))["rooms"]
        joined = [room for room in rooms if not _invited(room, user)]
        for key in reversed(query.get("sort", "").split()):
            field = SORT_KEYS.get(key.lstrip("-"))
            if field is not None:
                joined.sort(key=lambda room: room[field], reverse=key.startswith("-"))
        page = joined[skip : skip + limit] if limit else joined[skip:]
        return {"totalCount": len(joined), "data": [render_room(room) for room in page]}

    async def my_invitations(self, request: Request, caller: Caller) -> Any:
        """GET /rooms/invitations -> room.list (it holds the rooms the user is invited to,
        each with its invitations): the user's own."""
        user, extra = self._me(request, caller)
        return await self._my_invitations(caller, user, extra)

    async def room_invitations(self, request: Request, caller: Caller) -> Any:
        """GET /rooms/{id}/invitations -> room.get's invitations."""
        room = await run_op(self.hub, caller, "room.get", {"room": request.path_params["room"]})
        return render_room_invitations(room)

    async def decline(self, request: Request, caller: Caller) -> Any:
        """DELETE /rooms/{id}/invitations -> invitation.decline; the reply is the user's
        remaining invitations (room.list), as IMKIT's."""
        user, extra = self._me(request, caller)
        args = {"room": request.path_params["room"], **extra}
        await run_op(self.hub, caller, "invitation.decline", args)
        return await self._my_invitations(caller, user, extra)

    async def cancel_invitations(self, request: Request, caller: Caller) -> Any:
        """POST /rooms/{id}/delete/invitations {invitees} -> invitation.cancel; the reply is
        the room's remaining invitations."""
        body = _object(await read_body(self.hub, request))
        return await self._cancel(caller, request.path_params["room"], _ids(body, "invitees"))

    async def cancel_invitation(self, request: Request, caller: Caller) -> Any:
        """DELETE /rooms/{id}/invitations/{invitee}: the deprecated cancel, for one id."""
        params = request.path_params
        return await self._cancel(caller, params["room"], [params["invitee"]])

    async def _cancel(self, caller: Caller, room: str, invitees: list[str]) -> dict[str, Any]:
        args = {"room": room, "invitees": invitees}
        return render_room_invitations(await run_op(self.hub, caller, "invitation.cancel", args))

    async def get_room(self, request: Request, caller: Caller) -> Any:
        """GET /rooms/{id} -> room.get."""
        return await self._room(caller, "room.get", {"room": request.path_params["room"]})

    async def join(self, request: Request, caller: Caller) -> Any:
        """POST /rooms/{id}/join -> invitation.accept (the body, if any, is not read)."""
        _, extra = self._me(request, caller)
        args = {"room": request.path_params["room"], **extra}
        return await self._room(caller, "invitation.accept", args)

    async def delete_members(self, request: Request, caller: Caller) -> Any:
        """POST /rooms/{id}/delete/members {members} -> member.remove per id, room.leave for
        the caller's own id (last). Not atomic across the list: a failure stops it there."""
        body = _object(await read_body(self.hub, request))
        room = request.path_params["room"]
        members = list(dict.fromkeys(_ids(body, "members")))
        own = not caller.server and caller.user in members
        result: dict[str, Any] | None = None
        for user in members:
            if own and user == caller.user:
                continue
            result = await run_op(self.hub, caller, "member.remove", {"room": room, "user": user})
        if own:
            await run_op(self.hub, caller, "room.leave", {"room": room})
            reader = server_caller(caller.app, DIALECT)  # no longer a member: read as the server
            result = await run_op(self.hub, reader, "room.get", {"room": room})
        assert result is not None
        return render_room(result)

    async def update_room(self, request: Request, caller: Caller) -> Any:
        """PUT /rooms/{id} -> room.update: name, and cover/description/roomTags/extParams kept
        as room custom props; owner, managers and the rest are not supported."""
        body = _object(await read_body(self.hub, request))
        args: dict[str, Any] = {"room": request.path_params["room"]}
        unsupported = sorted(set(body) - {"name", *ROOM_PROPS})
        if unsupported:
            raise NotSupported(f"'{unsupported[0]}'", field=unsupported[0])
        if "name" in body:
            args["name"] = body["name"]
        custom = _room_props(body)
        if custom:
            args["custom"] = custom
        return await self._room(caller, "room.update", args)

    async def delete_room(self, request: Request, caller: Caller) -> Any:
        """DELETE /rooms/{id} -> room.dismiss; IMKIT's reply {"n": 1, "ok": 1}."""
        await run_op(self.hub, caller, "room.dismiss", {"room": request.path_params["room"]})
        return {"n": 1, "ok": 1}

    async def upsert_client(self, request: Request, caller: Caller) -> Any:
        """POST /admin/clients {_id, nickname, avatarUrl, issueAccessToken} -> user.upsert
        (IM-API-KEY only); issueAccessToken mints a roomhub user token."""
        if not caller.server:
            raise RoomError(ErrorCode.FORBIDDEN, "POST /admin/clients needs IM-API-KEY")
        body = _object(await read_body(self.hub, request))
        if "token" in body or "expirationDate" in body:
            raise NotSupported("Binding a token (use issueAccessToken)", field="token")
        args: dict[str, Any] = {"id": body.get("_id")}
        if "nickname" in body:
            args["nickname"] = body["nickname"]
        if "avatarUrl" in body:
            args["avatar"] = body["avatarUrl"]
        client = render_client(await run_op(self.hub, caller, "user.upsert", args))
        if body.get("issueAccessToken") is True:
            expires = int(time.time()) + TOKEN_TTL
            secret = self.hub.settings.apps[caller.app]
            client["token"] = mint_token(secret, client["id"], ttl=TOKEN_TTL)
            client["expirationDate"] = expires * 1000
        return client


def routes(hub: Hub, keys: DialectKeys) -> list[BaseRoute]:
    """The IMKIT routes (ROUTERS of server/dialects/__init__.py)."""
    return Imkit(hub, keys).routes()
