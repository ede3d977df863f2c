"""The NetEase Yunxin IM v2 dialect (docs/dialects.md §6, study ../shared/seeds/vendor-http.md
§3): NetEase's chat-room paths under `/im/v2` and `/nimserver/im/v2` (the server SDKs' default
base), its CheckSum headers, and its `{"code", "msg", "data"}` envelope, HTTP 200 always (the
SDKs throw on any other status and replay on 502), each request mapped onto ops of the table
through `base.run_op`.

Auth: `AppKey` names the app (`[apps.X.netease]`), `CheckSum = sha1(AppSecret + Nonce +
CurTime)`, CurTime within 5 minutes of the node's clock, and a Nonce used once in that window
on every node (claimed in Redis only after the CheckSum matched, so nobody can burn another's
nonces). The requests act as the app's server (`base.server_caller`); `operator_account_id`
becomes the op's `operator`, absent or "" the room's owner (read first)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from roomhub.protocol import models, ops, roles
from roomhub.protocol.errors import ErrorCode, RoomError, invalid
from roomhub.protocol.limits import (
    ID_PATTERN,
    MEMBERS_LIMIT_MAX,
    NOTIFICATION_EXTENSION_MAX_CHARS,
    RESERVED_USER_PREFIX,
)

from ..credentials import DialectKeys
from .base import Caller, read_body, run_op, server_caller

if TYPE_CHECKING:
    from ..hub import Hub

DIALECT = "netease"
JSON = "application/json; charset=utf-8"
PREFIXES = ("", "/nimserver")  # the docs' host, and the server SDKs' endpoint base
WINDOW_S = 300  # |now - CurTime| at most this (NetEase: a CheckSum is valid 5 minutes)
NONCE_MAX = 128
# A nonce is kept until its CurTime leaves the window, plus this for the nodes' clock skew.
NONCE_MARGIN_S = 60
TRACE_HEADER = "x-custom-traceid"
ANY_METHOD = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
INT64_MAX = 2**63 - 1
# A NetEase-made room's id: exact in a double (JavaScript) and never a short number.
ROOM_ID_MIN, ROOM_ID_END = 10**9, 2**53
CREATE_ATTEMPTS = 5  # fresh ids tried when one is in use (100003)
ROLE_OF = {0: "member", 2: "admin", 3: "guest"}  # member_role -> roomhub role
NETEASE_ROLE = {"owner": 1, "admin": 2, "member": 0, "guest": 3}
# Member fields -> roomhub's builtin member properties.
PROFILE = {"room_nick": "nickname", "room_avatar": "avatar", "extension": "extension"}
# Chat-room fields kept as roomhub room custom props of the same name.
ROOM_PROPS = ("announcement", "live_url", "extension")
# The NetEase code of each roomhub code (study §3.3): HTTP 200 always, the code in the body.
CODES: dict[ErrorCode, int] = {
    ErrorCode.INTERNAL: 500,
    ErrorCode.INVALID_PARAMETER: 414,
    ErrorCode.ROOM_EXISTS: 417,
    ErrorCode.ROOM_NOT_FOUND: 404,
    ErrorCode.NOT_A_MEMBER: 404,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.USER_NOT_FOUND: 404,
    ErrorCode.NO_INVITATION: 404,
    ErrorCode.RATE_LIMITED: 416,
    ErrorCode.UNAUTHENTICATED: 414,
    ErrorCode.UNKNOWN_OP: 403,
    ErrorCode.ROOM_FULL: 419,
    ErrorCode.MALFORMED_FRAME: 414,
}
# roomhub's field of a 100002 -> the NetEase field the caller sent.
FIELDS = {
    "room": "room_id",
    "user": "account_id",
    "operator": "operator_account_id",
    "owner": "creator",
    "name": "room_name",
    "properties.role": "member_role",
    "properties.nickname": "room_nick",
    "properties.avatar": "room_avatar",
    "properties.level": "member_level",
    "properties.extension": "extension",
    "custom.announcement": "announcement",
    "custom.live_url": "live_url",
    "custom.extension": "extension",
}
UNAPPLIED = (
    " (a change may have been applied: repeat the call with the same X-custom-traceid to"
    " apply it at most once)"
)


# --- CheckSum ------------------------------------------------------------------------------


def checksum(app_secret: str, nonce: str, cur_time: str) -> str:
    """sha1(AppSecret + Nonce + CurTime) in lowercase hex (study §3.2). The header values are
    hashed as the bytes they came in (Starlette decodes headers as latin-1)."""
    data = app_secret.encode() + nonce.encode("latin-1", "replace") + cur_time.encode("latin-1")
    return hashlib.sha1(data).hexdigest()


def checksum_matches(app_secret: str, nonce: str, cur_time: str, given: str) -> bool:
    """The CheckSum header against the expected one, in constant time; hex in either case."""
    expected = checksum(app_secret, nonce, cur_time).encode()
    return hmac.compare_digest(expected, given.lower().encode("utf-8", "replace"))


def window_error(cur_time: str, now: float) -> str | None:
    """Why CurTime is refused at `now` (None: it is within 5 minutes, either way)."""
    if not (cur_time.isascii() and cur_time.isdigit()) or len(cur_time) > 12:
        hint = " (seconds, not milliseconds)" if cur_time.isdigit() and len(cur_time) > 12 else ""
        return f"CurTime must be the current Unix time in seconds{hint}"
    if abs(now - int(cur_time)) > WINDOW_S:
        return (
            f"CurTime is more than {WINDOW_S} s from the server's time: a CheckSum is valid"
            " 5 minutes (check the calling server's clock)"
        )
    return None


def nonce_ttl_ms(cur_time: int, now: float) -> int:
    """How long a nonce is kept: until its CurTime leaves the window, plus the skew margin."""
    return int((cur_time + WINDOW_S + NONCE_MARGIN_S - now) * 1000)


# --- the envelope --------------------------------------------------------------------------


def envelope(data: Any, code: int = 200, msg: str = "success", status: int = 200) -> Response:
    body = {"code": code, "msg": msg, "data": data}
    return Response(orjson.dumps(body), status, media_type=JSON)


def error_response(error: RoomError) -> Response:
    """The error in NetEase's envelope, HTTP 200: `code` from CODES, `msg` roomhub's message,
    `data` roomhub's code (and the NetEase field at fault, the wait of a 416)."""
    code = CODES.get(error.code, 500)
    message = error.message + (UNAPPLIED if error.code is ErrorCode.INTERNAL else "")
    data: dict[str, Any] = {"roomhub_code": int(error.code)}
    if error.field is not None:
        data["field"] = FIELDS.get(error.field, error.field)
    if error.retry_after_ms is not None:
        data["retry_after_ms"] = error.retry_after_ms
    return envelope(data, code, message)


# --- fields --------------------------------------------------------------------------------


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid("body", "the body must be a JSON object")
    return body


def room_id(value: Any, field: str = "room_id") -> str:
    """A NetEase room_id (a positive int64 in JSON) as roomhub's room id, its decimal."""
    if type(value) is not int or not 0 < value <= INT64_MAX:
        raise invalid(field, f"{field} must be a positive integer (int64)")
    return str(value)


def room_id_text(text: str | None, field: str = "room_id") -> str:
    """A room_id in a path or query (decimal digits, canonical) as roomhub's room id."""
    if text is None or text == "":
        raise invalid(field, f"{field} is required")
    if not (text.isascii() and text.isdigit()) or text[0] == "0" or int(text) > INT64_MAX:
        raise invalid(field, f"{field} must be a positive integer (int64)")
    return text


def account(value: Any, field: str) -> str:
    """An account id that is a roomhub user id (unchanged), else 414 naming the field."""
    if (
        not isinstance(value, str)
        or not ID_PATTERN.fullmatch(value)
        or value.startswith(RESERVED_USER_PREFIX)
    ):
        raise invalid(
            field, f"{field} must be 1-64 characters of [A-Za-z0-9_.@:-], not starting with '@'"
        )
    return value


def operator_account(body: dict[str, Any]) -> str | None:
    """operator_account_id: absent, null or "" (the Go SDK always sends it) mean none."""
    value = body.get("operator_account_id")
    if value is None or value == "":
        return None
    return account(value, "operator_account_id")


def member_level(value: Any) -> int | None:
    """member_level: a number (the SDKs, the seed's example) or a numeric string (the seed's
    table); roomhub checks its range."""
    if value is None:
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    if type(value) is not int:
        raise invalid("member_level", "member_level must be an integer or a numeric string")
    return value


def notification_extension(body: dict[str, Any]) -> None:
    """The NetEase rule where no op carries it (kick, update chat room): ≤ 2048 characters."""
    value = body.get("notification_extension")
    if value is None:
        return
    if not isinstance(value, str) or len(value) > NOTIFICATION_EXTENSION_MAX_CHARS:
        raise invalid(
            "notification_extension",
            f"notification_extension must be a string of at most"
            f" {NOTIFICATION_EXTENSION_MAX_CHARS} characters",
        )


def flag(body: dict[str, Any], field: str) -> bool | None:
    value = body.get(field)
    if value is not None and not isinstance(value, bool):
        raise invalid(field, f"{field} must be true or false")
    return value


def profile(body: dict[str, Any]) -> dict[str, Any]:
    """room_nick / room_avatar / extension as roomhub member properties (roomhub checks them)."""
    return {name: body[field] for field, name in PROFILE.items() if body.get(field) is not None}


def room_custom(body: dict[str, Any]) -> dict[str, Any]:
    """announcement / live_url / extension as room custom props, checked by roomhub's own
    rules (protocol.models.custom_change) before any op runs."""
    custom: dict[str, Any] = {}
    for name in ROOM_PROPS:
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise invalid(name, f"{name} must be a string")
        models.custom_change(name, name, value)
        custom[name] = value
    return custom


def member_roles(text: str | None) -> set[int] | None:
    """member_roles of list_members: "0,2" (or "[0,2]"); absent or empty: every role."""
    if text is None or not text.strip("[] "):
        return None
    wanted: set[int] = set()
    for part in text.strip("[] ").split(","):
        part = part.strip()
        if not (part.isascii() and part.isdigit()):
            raise invalid("member_roles", "member_roles must be role numbers, e.g. 0,2")
        wanted.add(int(part))
    return wanted


def render_member(member: dict[str, Any], full: bool = False) -> dict[str, Any]:
    """A roomhub Member as NetEase's MemberInfo (batch) or ChatroomMemberInfo (full). roomhub
    has no bans (false) and no cluster-wide presence (is_online absent)."""
    rendered: dict[str, Any] = {
        "account_id": member["id"],
        "room_nick": member.get("nickname", ""),
        "room_avatar": member.get("avatar", ""),
        "extension": member.get("extension", ""),
        "member_role": NETEASE_ROLE[member["role"]],
        "member_level": member.get("level", 0),
        "enter_time": member.get("joined_ms", 0),
    }
    if full:
        rendered |= {"blocked": False, "chat_banned": False, "temp_chat_banned": False}
    return rendered


def _text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def render_room(room: dict[str, Any]) -> dict[str, Any]:
    """A roomhub Room as NetEase's chat-room info: `creator` is the current owner."""
    custom = room.get("custom", {})
    return {
        "room_id": int(room["id"]),
        "valid": True,
        "creator": room["owner"],
        "room_name": room.get("name", ""),
        **{name: _text(custom.get(name, "")) for name in ROOM_PROPS},
        "chat_banned": False,
        "queue_level": 0,
    }


def preflight(op: str, args: dict[str, Any]) -> None:
    """roomhub's own validation of a later op's args (the op table's model, and member.update's
    properties), run before the first op of a request changes anything."""
    checked = ops.validate_args(ops.lookup(op), args)
    if op == "member.update":
        models.property_changes(checked.properties)


@dataclass(frozen=True)
class Call:
    """One authenticated request: its app's server caller, path and query, JSON body, and the
    idempotency base derived from its X-custom-traceid (None without one)."""

    caller: Caller
    where: str  # "METHOD /path"
    params: dict[str, str]
    query: dict[str, str]
    body: dict[str, Any]
    trace: str | None

    def key(self, op: str) -> str | None:
        """The idempotency key of one of the request's ops (a request may run several)."""
        return None if self.trace is None else f"{self.trace}:{op}"  # at most 57 characters


def trace_base(trace: str, method: str, path: str, query: str, body: Any) -> str:
    """The idempotency base of a call: its traceid with the call itself (method, path without
    the /nimserver prefix, query, canonical body), so an SDK retry of the call finds its first
    outcome while a traceid reused for another call is just another call."""
    for prefix in PREFIXES:
        if prefix and path.startswith(prefix + "/"):
            path = path[len(prefix) :]
    canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    digest = hashlib.sha256(f"{trace}\n{method} {path}?{query}\n".encode() + canonical)
    return f"ne:{digest.hexdigest()[:40]}"


Handler = Callable[[Call], Awaitable[Any]]


class Netease:
    """The NetEase Yunxin IM v2 routes of one hub node."""

    def __init__(self, hub: Hub, keys: DialectKeys) -> None:
        self.hub = hub
        self.keys = keys

    def routes(self) -> list[BaseRoute]:
        table: list[tuple[str, str, Handler]] = [
            ("POST", "/im/v2/chatrooms", self.create_room),
            ("GET", "/im/v2/chatrooms/{room_id}", self.get_room),
            ("PATCH", "/im/v2/chatrooms/{room_id}", self.update_room),
            ("GET", "/im/v2/chatrooms/{room_id}/actions/list_members", self.list_members),
            ("POST", "/im/v2/room_members/{account_id}", self.set_role),
            ("PATCH", "/im/v2/room_members/{account_id}", self.update_member),
            ("GET", "/im/v2/room_members/{room_id}/actions/batch", self.batch_members),
            ("PATCH", "/im/v2.1/room_members/{account_id}/actions/kicked", self.kick),
        ]
        routes: list[BaseRoute] = []
        for prefix in PREFIXES:
            routes.append(Route(f"{prefix}/health/liveness.action", self.liveness, methods=["GET"]))
            routes += [
                Route(prefix + path, self._endpoint(handler), methods=[method])
                for method, path, handler in table
            ]
        # Anything else under NetEase's paths: its own "invalid operation" in the envelope.
        for rest in ("/im/{rest:path}", "/nimserver/{rest:path}"):
            routes.append(Route(rest, self._endpoint(self.unsupported), methods=ANY_METHOD))
        return routes

    def _endpoint(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                call = await self.authenticate(request)
                return envelope(await handler(call))
            except RoomError as exc:
                return error_response(exc)
            except Exception as exc:  # not expected: run_op raises only RoomError
                return error_response(self.hub.internal(exc))

        endpoint.__name__ = f"netease_{handler.__name__}"
        return endpoint

    async def authenticate(self, request: Request) -> Call:
        """The request's app from its CheckSum headers (study §3.2), then its body. Every
        refusal is 414; the nonce is claimed only once the CheckSum matched."""
        headers = request.headers
        values = {
            name: headers.get(name, "") for name in ("AppKey", "Nonce", "CurTime", "CheckSum")
        }
        missing = [name for name, value in values.items() if not value]
        if missing:
            raise RoomError(
                ErrorCode.UNAUTHENTICATED,
                f"missing header {', '.join(missing)}: requests need AppKey, Nonce, CurTime"
                " and CheckSum",
            )
        found = self.keys.by_netease_app_key(values["AppKey"])
        if found is None:
            raise RoomError(ErrorCode.UNAUTHENTICATED, "unknown AppKey")
        app, creds = found
        nonce, cur_time = values["Nonce"], values["CurTime"]
        if len(nonce) > NONCE_MAX:
            raise RoomError(ErrorCode.UNAUTHENTICATED, f"Nonce is longer than {NONCE_MAX}")
        if not checksum_matches(creds.app_secret, nonce, cur_time, values["CheckSum"]):
            raise RoomError(
                ErrorCode.UNAUTHENTICATED,
                "CheckSum verification failed: sha1(AppSecret + Nonce + CurTime) does not match",
            )
        now = time.time()
        stale = window_error(cur_time, now)
        if stale is not None:
            raise RoomError(ErrorCode.UNAUTHENTICATED, stale)
        ttl_ms = nonce_ttl_ms(int(cur_time), now)
        if not await self.hub.store.claim_nonce(app, DIALECT, nonce, ttl_ms):
            raise RoomError(
                ErrorCode.UNAUTHENTICATED,
                "Nonce already used: each request needs a fresh Nonce",
            )
        body = _object(await read_body(self.hub, request))
        trace = headers.get(TRACE_HEADER)
        return Call(
            caller=server_caller(app, DIALECT),
            where=f"{request.method} {request.url.path}",
            params=dict(request.path_params),
            query=dict(request.query_params),
            body=body,
            trace=trace_base(trace, request.method, request.url.path, request.url.query, body)
            if trace
            else None,
        )

    async def liveness(self, request: Request) -> Response:
        """GET /health/liveness.action, the SDKs' endpoint probe (HTTP 200 = usable): 503 while
        this node's pub/sub link to Redis is down, so the SDK fails over to another endpoint."""
        unready = self.hub.fanout.subscriber.unready()
        if unready is not None:
            return envelope({}, 503, f"not ready: {unready}", status=503)
        return envelope({})

    async def _read(self, call: Call, room: str) -> dict[str, Any]:
        """The room as the server reads it (to find its owner and members)."""
        return await run_op(self.hub, call.caller, "room.get", {"room": room})

    async def _operator(self, call: Call, room: dict[str, Any]) -> str:
        """operator_account_id, else the room's owner (NetEase's default, the creator)."""
        return operator_account(call.body) or str(room["owner"])

    async def _run(self, call: Call, op: str, args: dict[str, Any]) -> dict[str, Any]:
        key = call.key(op)
        if key is not None and ops.lookup(op).mutating:
            args = {**args, "idempotency_key": key}
        return await run_op(self.hub, call.caller, op, args)

    # --- chat rooms ----------------------------------------------------------------------------

    def _new_room_id(self, call: Call, attempt: int) -> str:
        """A fresh room id in [10^9, 2^53): random, or from the traceid's idempotency base
        (so a retried create finds the room its first attempt made)."""
        span = ROOM_ID_END - ROOM_ID_MIN
        if call.trace is None:
            return str(ROOM_ID_MIN + secrets.randbelow(span))
        digest = hashlib.sha256(f"{call.trace}:{attempt}".encode()).digest()
        return str(ROOM_ID_MIN + int.from_bytes(digest[:8], "big") % span)

    async def create_room(self, call: Call) -> Any:
        """POST /im/v2/chatrooms -> room.create (creator the owner, a new numeric id,
        announcement / live_url / extension as the room's first custom props): one op."""
        body = call.body
        creator = account(body.get("creator"), "creator")
        name = body.get("room_name")
        if not isinstance(name, str) or not name:
            raise invalid("room_name", "room_name is required (a non-empty string)")
        custom = room_custom(body)
        args: dict[str, Any] = {"name": name, "owner": creator, "operator": creator}
        if custom:
            args["custom"] = custom
        args["reply"] = "ack"
        preflight("room.create", {**args, "room": "1"})
        for attempt in range(CREATE_ATTEMPTS):
            room = self._new_room_id(call, attempt)
            try:
                await self._run(call, "room.create", {**args, "room": room})
                break
            except RoomError as exc:
                if exc.code is not ErrorCode.ROOM_EXISTS or attempt == CREATE_ATTEMPTS - 1:
                    raise
        return render_room({"id": room, "owner": creator, "name": name, "custom": custom})

    async def get_room(self, call: Call) -> Any:
        """GET /im/v2/chatrooms/{room_id} -> room.get (online counts: not known, absent)."""
        room = room_id_text(call.params["room_id"])
        return render_room(await self._read(call, room))

    async def update_room(self, call: Call) -> Any:
        """PATCH /im/v2/chatrooms/{room_id} -> room.update (room_name, and the room custom
        props); notification_enabled / _extension are accepted (roomhub's updateRoom is
        always notified and carries no extension), queue_level ignored."""
        body = call.body
        room = room_id_text(call.params["room_id"])
        notification_extension(body)
        flag(body, "notification_enabled")
        args: dict[str, Any] = {"room": room, "reply": "ack"}
        name = body.get("room_name")
        if name is not None:
            args["name"] = name
        custom = room_custom(body)
        if custom:
            args["custom"] = custom
        seen = await self._read(call, room)
        if "name" in args or custom:
            args["operator"] = await self._operator(call, seen)
            await self._run(call, "room.update", args)
        return {}

    async def list_members(self, call: Call) -> Any:
        """GET …/actions/list_members -> room.members, every page, filtered by member_roles."""
        room = room_id_text(call.params["room_id"])
        wanted = member_roles(call.query.get("member_roles"))
        items: list[dict[str, Any]] = []
        args: dict[str, Any] = {"room": room, "limit": MEMBERS_LIMIT_MAX}
        while True:
            page = await run_op(self.hub, call.caller, "room.members", args)
            items += [
                render_member(m, full=True)
                for m in page["members"]
                if wanted is None or NETEASE_ROLE[m["role"]] in wanted
            ]
            if page["next"] is None:
                return {"items": items}
            args["after"] = page["next"]

    # --- members -------------------------------------------------------------------------------

    async def set_role(self, call: Call) -> Any:
        """POST /im/v2/room_members/{account_id} (the seed) -> member.update {role, profile,
        level}; a user who is not a member is added first (member.add, no invitation), once
        roomhub's own checks of the update (its args, and its role rules for the operator's
        role just read) say the update would pass, so no request half-applies."""
        body = call.body
        user = account(call.params["account_id"], "account_id")
        room = room_id(body.get("room_id"))
        role = body.get("member_role")
        if type(role) is not int or role not in ROLE_OF:
            raise invalid("member_role", "member_role must be 0 (member), 2 (admin) or 3 (guest)")
        properties: dict[str, Any] = {"role": ROLE_OF[role], **profile(body)}
        level = member_level(body.get("member_level"))
        if level is not None:
            properties["level"] = level
        # need_antispam, antispam_business_id (the seed) and antispam_configuration (the
        # SDKs) are accepted and ignored: roomhub has no anti-spam
        seen = await self._read(call, room)
        operator = await self._operator(call, seen)
        update: dict[str, Any] = {
            "room": room,
            "user": user,
            "operator": operator,
            "properties": properties,
            "reply": "ack",
        }
        notify = flag(body, "notification_enabled")
        if notify is not None:
            update["system_message"] = notify
        if body.get("notification_extension") is not None:
            update["notification_extension"] = body["notification_extension"]
        ranks = {m["id"]: m["role"] for m in seen["members"]}
        if user not in ranks:
            preflight("member.update", update)
            operator_role = ranks.get(operator)  # not a member: member.add answers 100005
            if operator_role is not None:
                for name, value in properties.items():
                    action = roles.action_for_property(name, value)
                    if not roles.check(action, operator_role, "member", on_self=operator == user):
                        raise RoomError(
                            ErrorCode.FORBIDDEN,
                            f"not allowed to set '{name}' of '{user}' as {operator_role}",
                        )
            add = {
                "room": room,
                "invitees": [user],
                "operator": operator,
                "system_message": bool(notify),
                "reply": "ack",
            }
            await self._run(call, "member.add", add)
        await self._run(call, "member.update", update)
        return {}

    async def update_member(self, call: Call) -> Any:
        """PATCH /im/v2/room_members/{account_id} -> member.update of room_nick / room_avatar /
        extension, as the member themself unless operator_account_id names someone
        (`persistence` ignored: roomhub members are always kept)."""
        body = call.body
        user = account(call.params["account_id"], "account_id")
        room = room_id(body.get("room_id"))
        properties = profile(body)
        if not properties:
            raise invalid(
                "room_nick", "nothing to update: give room_nick, room_avatar or extension"
            )
        args: dict[str, Any] = {
            "room": room,
            "user": user,
            "operator": operator_account(body) or user,
            "properties": properties,
        }
        notify = flag(body, "notification_enabled")
        if notify is not None:
            args["system_message"] = notify
        if body.get("notification_extension") is not None:
            args["notification_extension"] = body["notification_extension"]
        result = await self._run(call, "member.update", args)
        member = next(m for m in result["members"] if m["id"] == user)
        shown = render_member(member)
        return {
            "room_id": int(room),
            **{
                k: shown[k]
                for k in ("account_id", "room_nick", "room_avatar", "extension", "member_role")
            },
        }

    async def batch_members(self, call: Call) -> Any:
        """GET /im/v2/room_members/{room_id}/actions/batch?account_ids=a,b -> room.get, the
        named members in success_list, the others in failed_list."""
        room = room_id_text(call.params["room_id"])
        named = [a.strip() for a in call.query.get("account_ids", "").split(",") if a.strip()]
        if not named:
            raise invalid("account_ids", "account_ids is required (comma-separated)")
        members = {m["id"]: m for m in (await self._read(call, room))["members"]}
        success, failed = [], []
        for name in dict.fromkeys(named):
            if name in members:
                success.append(render_member(members[name]))
            elif ID_PATTERN.fullmatch(name) and not name.startswith(RESERVED_USER_PREFIX):
                failed.append({"account_id": name, "error_code": 404, "error_msg": "not a member"})
            else:
                failed.append(
                    {"account_id": name, "error_code": 414, "error_msg": "invalid account id"}
                )
        return {"success_list": success, "failed_list": failed}

    async def kick(self, call: Call) -> Any:
        """PATCH /im/v2.1/room_members/{account_id}/actions/kicked {room_id,
        operator_account_id, notification_extension} -> member.remove (room_id also taken
        from the query; notification_extension accepted: removeMember carries none)."""
        body = call.body
        user = account(call.params["account_id"], "account_id")
        if body.get("room_id") is not None:
            room = room_id(body["room_id"])
        else:
            room = room_id_text(call.query.get("room_id"))
        notification_extension(body)
        seen = await self._read(call, room)
        args = {
            "room": room,
            "user": user,
            "operator": await self._operator(call, seen),
            "reply": "ack",
        }
        await self._run(call, "member.remove", args)
        return {}

    async def unsupported(self, call: Call) -> Any:
        """A NetEase path roomhub does not serve (bans, blocks, tags, virtual members, queues,
        online lists, room status, V9 `.action` calls, …): 403, NetEase's invalid operation."""
        raise RoomError(
            ErrorCode.UNKNOWN_OP,
            f"{call.where} is not supported by roomhub (docs/dialects.md §6 lists the NetEase"
            " APIs it serves)",
        )


def routes(hub: Hub, keys: DialectKeys) -> list[BaseRoute]:
    """The NetEase Yunxin IM v2 routes (ROUTERS of server/dialects/__init__.py)."""
    return Netease(hub, keys).routes()
