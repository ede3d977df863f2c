"""The IMKIT dialect (docs/dialects.md §4, study ../shared/seeds/vendor-http.md §1): IMKIT's
room and member paths at the root of the HTTP port, its headers, and its `{"RC", "RM",
"result"}` envelope, each request mapped onto ops of the table through `base.run_op`.

Auth: `IM-CLIENT-KEY` (the app key) with `IM-Authorization` (or the legacy `Authorization`) =
a roomhub user JWT acts as that user; `IM-API-KEY` = the app's `[apps.X.imkit] api_key` acts
as the app's server (`base.server_caller`). Errors: HTTP status = RC, from HTTP_STATUS."""

from __future__ import annotations

import time
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
    from collections.abc import Awaitable, Callable

    from ..hub import Hub

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


def envelope(result: Any) -> Response:
    return Response(orjson.dumps({"RC": 0, "RM": "OK", "result": result}), 200, media_type=JSON)


def error_response(error: RoomError) -> Response:
    """The error in IMKIT's envelope: RC = the HTTP status (413 for a too-large body)."""
    status = http_status(error)
    message = "Unauthorized" if error.code is ErrorCode.UNAUTHENTICATED else error.message
    detail: dict[str, Any] = {
        "code": ERROR_NAMES.get(error.code, error.code.reason),
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
    """A roomhub Room as IMKIT's Room (study §1.4, inferred mapping)."""
    members = room.get("members", [])
    custom = room.get("custom", {})
    rendered: dict[str, Any] = {
        "_id": room["id"],
        "id": room["id"],
        "name": room.get("name", ""),
        "roomType": room.get("type", "group"),
        "owner": room["owner"],
        "managers": [m["id"] for m in members if m["role"] == "admin"],
        "members": [render_client(m) for m in members],
        "memberProperties": [
            {"client": m["id"], "role": m["role"], "level": m.get("level", 0), **m.get("props", {})}
            for m in members
        ],
        "status": 1,
        "createdTimeMS": room["created_ms"],
    }
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


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid("body", "the body must be a JSON object")
    return body


def _ids(body: dict[str, Any], field: str) -> list[str]:
    value = body.get(field)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise invalid(field, f"{field} must be a non-empty array of ids")
    return value


class Imkit:
    """The IMKIT routes of one hub node."""

    def __init__(self, hub: Hub, keys: DialectKeys) -> None:
        self.hub = hub
        self.keys = keys

    def routes(self) -> list[BaseRoute]:
        table: list[tuple[str, str, Callable[[Request, Caller], Awaitable[Any]]]] = [
            ("/rooms/{room}/member/{client}", "PUT", self.update_member),
            ("/rooms/{room}/members", "POST", self.add_members),
            ("/rooms/{room}/join", "POST", self.join),
            ("/rooms/{room}/delete/members", "POST", self.delete_members),
            ("/rooms/{room}", "GET", self.get_room),
            ("/rooms/{room}", "PUT", self.update_room),
            ("/rooms/{room}", "DELETE", self.delete_room),
            ("/admin/clients", "POST", self.upsert_client),
        ]
        return [Route(path, self._endpoint(handler), methods=[m]) for path, m, handler in table]

    def _endpoint(
        self, handler: Callable[[Request, Caller], Awaitable[Any]]
    ) -> Callable[[Request], Awaitable[Response]]:
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
        room = request.path_params["room"]
        args: dict[str, Any] = {"room": room, "invitees": _ids(body, "invitees")}
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

    async def get_room(self, request: Request, caller: Caller) -> Any:
        """GET /rooms/{id} -> room.get."""
        return await self._room(caller, "room.get", {"room": request.path_params["room"]})

    async def join(self, request: Request, caller: Caller) -> Any:
        """POST /rooms/{id}/join -> invitation.accept (the body, if any, is not read)."""
        return await self._room(caller, "invitation.accept", {"room": request.path_params["room"]})

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
            raise invalid(unsupported[0], f"'{unsupported[0]}' is not supported by roomhub")
        if "name" in body:
            args["name"] = body["name"]
        custom = {name: body[name] for name in ROOM_PROPS if name in body}
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
            raise invalid("token", "binding a token is not supported: use issueAccessToken")
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
