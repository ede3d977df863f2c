"""The Tencent Room Engine dialect (docs/dialects.md §5, study ../shared/seeds/vendor-http.md
§2): `POST /v4/room_engine_http_srv/{command}`, authenticated by the query's `sdkappid`,
`identifier` (one of the app's admins) and `usersig` (TLSSigAPIv2, server/dialects/usersig.py),
each command mapped onto ops of the table through `base.run_op` as the app's server, and every
answer in Tencent's `{"ActionStatus", "ErrorCode", "ErrorInfo", "RequestId"}` envelope with
HTTP 200, as the vendor answers (its SDK-less backends read ErrorCode, not the status)."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from roomhub.protocol import ops
from roomhub.protocol.errors import ErrorCode, RoomError
from roomhub.protocol.limits import utf8_len

from ..credentials import DialectKeys
from . import usersig
from .base import Caller, TooLarge, read_body, request_id, run_op, server_caller

if TYPE_CHECKING:
    from ..hub import Hub

log = logging.getLogger("roomhub.tencent")
DIALECT = "tencent"
JSON = "application/json; charset=utf-8"
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]  # all answered in the envelope

# Tencent's REST codes for what the dialect itself refuses (study §2.2, §2.3)
HTTP_PARSE = 60002  # not a POST; a body over the cap
JSON_PARSE = 60003
NO_ACCOUNT = 60004  # no identifier
NO_SIGNATURE = 60005  # no usersig
BAD_SDKAPPID = 60006
BAD_RESOURCE = 60009  # no such command
NOT_ADMIN = 60010
NO_SDKAPPID = 60012
DISABLED = 60017  # a Room Engine command roomhub does not serve
UNKNOWN_SDKAPPID = 70020

# roomhub code -> Tencent code (study §2.3): the Room Engine's own 100001-100006 are roomhub's
TENCENT_CODES: dict[ErrorCode, int] = {
    ErrorCode.INTERNAL: 100001,
    ErrorCode.INVALID_PARAMETER: 100002,
    ErrorCode.ROOM_EXISTS: 100003,
    ErrorCode.ROOM_NOT_FOUND: 100004,
    ErrorCode.NOT_A_MEMBER: 100005,
    ErrorCode.FORBIDDEN: 100006,
    ErrorCode.USER_NOT_FOUND: 70107,  # "account not imported"
    ErrorCode.NO_INVITATION: 100002,
    ErrorCode.RATE_LIMITED: 60007,
    ErrorCode.UNAUTHENTICATED: usersig.SIG_MISMATCH,
    ErrorCode.UNKNOWN_OP: BAD_RESOURCE,
    ErrorCode.ROOM_FULL: 100002,  # no better code known
    ErrorCode.MALFORMED_FRAME: JSON_PARSE,
}

# Room Engine commands roomhub has no op for (seats, marks, bans): 60017, listed in the docs
UNSUPPORTED: dict[str, frozenset[str]] = {
    "room_engine_http_srv": frozenset(
        {"mark_room_member", "ban_room_member", "unban_room_member", "get_banned_member_list"}
    ),
    "room_engine_http_mic": frozenset(
        {"get_seat_list", "pick_user_on_seat", "kick_user_off_seat", "lock_seat"}
    ),
}

ROLES_IN = {"Admin": "admin", "Member": "member"}  # update_room_member_info's Role
# roomhub role -> member list Role; a guest has no Tencent role and shows as a Member
ROLES_OUT = {"owner": "Owner", "admin": "Admin", "member": "Member", "guest": "Member"}
ROOM_TYPES = ("Conference", "Live")
SEAT_MODES = ("FreeToTake", "ApplyToTake")
ROOM_NAME_MAX_BYTES = 100
ROOM_CUSTOM_INFO_MAX_BYTES = 500
KICK_MAX = 20
REASON_MAX_BYTES = 1000
MEMBER_PAGE_DEFAULT = 50
SDKAPPID_TEXT = re.compile(r"[0-9]{1,19}")


def _flag(value: Any) -> bool:
    return isinstance(value, bool)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53


def _text(limit: int) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, str) and utf8_len(value) <= limit


def _one_of(*choices: str) -> Callable[[Any], bool]:
    return lambda value: value in choices


# RoomInfo fields roomhub has no notion of, kept as room custom props of the same name (so
# get_room_info reads them back; the client SDKs enforce them, roomhub does not), with the
# value check each must pass and the value get_room_info shows when unset (None: computed).
ROOM_PROPS: dict[str, tuple[Callable[[Any], bool], Any]] = {
    "RoomType": (_one_of(*ROOM_TYPES), "Conference"),
    "MaxMemberCount": (_count, None),
    "MaxSeatCount": (_count, 0),
    "IsVideoDisabled": (_flag, False),
    "IsAudioDisabled": (_flag, False),
    "IsMessageDisabled": (_flag, False),
    "IsScreenSharingDisabled": (_flag, False),
    "IsCloudRecordingDisabled": (_flag, False),
    "CustomInfo": (_text(ROOM_CUSTOM_INFO_MAX_BYTES), ""),
    "ScheduleStartTime": (_count, 0),
    "ScheduleEndTime": (_count, 0),
    "IsSeatEnabled": (_flag, False),
    "TakeSeatMode": (_one_of(*SEAT_MODES), "FreeToTake"),
}
CREATE_PROPS = tuple(ROOM_PROPS)
UPDATE_PROPS = (
    "MaxMemberCount",
    "IsVideoDisabled",
    "IsAudioDisabled",
    "IsMessageDisabled",
    "IsScreenSharingDisabled",
    "IsCloudRecordingDisabled",
    "CustomInfo",
    "TakeSeatMode",
)


class Fail(Exception):
    """A refusal with a Tencent code of its own (auth, framing, unsupported commands)."""

    def __init__(self, code: int, info: str) -> None:
        super().__init__(info)
        self.code = code
        self.info = info


def envelope(
    request_id: str, code: int = 0, info: str = "", response: dict[str, Any] | None = None
) -> Response:
    """Tencent's reply: always HTTP 200, the outcome in ActionStatus / ErrorCode."""
    body: dict[str, Any] = {
        "ActionStatus": "OK" if code == 0 else "FAIL",
        "ErrorCode": code,
        "ErrorInfo": info,
        "RequestId": request_id,
    }
    if response is not None:
        body["Response"] = response
    return Response(orjson.dumps(body), 200, media_type=JSON)


def render_error(error: RoomError, fields: dict[str, str]) -> tuple[int, str]:
    """A roomhub error as (ErrorCode, ErrorInfo): the code from TENCENT_CODES (a body over
    the cap: 60002), the message roomhub gave with the field at fault named as the command's
    body names it (`room` -> `RoomId`)."""
    if isinstance(error, TooLarge):
        return HTTP_PARSE, error.message
    message = error.message
    field = error.field
    if field is not None:
        shown = fields.get(field)
        if shown is None and field.startswith("custom."):
            shown = "RoomInfo." + field.removeprefix("custom.")
        if shown is not None:
            for prefix in (f"{field}: ", f"{field.rsplit('.', 1)[-1]}: "):
                if message.startswith(prefix):
                    message = message.removeprefix(prefix)
                    break
            message = f"{shown}: {message}"
    return TENCENT_CODES[error.code], message


@dataclass(frozen=True)
class Call:
    """One authenticated command: the server caller it acts as, the admin who signed it."""

    caller: Caller
    identifier: str
    body: dict[str, Any]


def bad(message: str) -> RoomError:
    """A Tencent field rule the op table does not know: 100002, the message naming the field
    as the body does."""
    return RoomError(ErrorCode.INVALID_PARAMETER, message)


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad(f"{path} must be an object")
    return value


def _required(body: dict[str, Any], name: str, path: str) -> Any:
    if name not in body:
        raise bad(f"{path} is required")
    return body[name]


def _string(body: dict[str, Any], name: str, path: str) -> str:
    """A required field whose op arg is optional (null would mean something else there)."""
    value = _required(body, name, path)
    if not isinstance(value, str):
        raise bad(f"{path} must be a string")
    return value


def _room_props(info: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """The RoomInfo fields of `names` present in `info`, checked, as room custom props."""
    props: dict[str, Any] = {}
    for name in names:
        if name in info:
            check, _ = ROOM_PROPS[name]
            if not check(info[name]):
                raise bad(f"RoomInfo.{name}: not a valid value")
            props[name] = info[name]
    if props.get("RoomType") == "Conference":
        del props["RoomType"]  # the default: nothing to keep
    return props


def _room_name(info: dict[str, Any]) -> Any:
    name = info["RoomName"]
    if isinstance(name, str) and utf8_len(name) > ROOM_NAME_MAX_BYTES:
        raise bad(f"RoomInfo.RoomName: must be at most {ROOM_NAME_MAX_BYTES} bytes")
    return name  # other types: roomhub's 100002


def render_room(room: dict[str, Any], max_members: int) -> dict[str, Any]:
    """A roomhub Room as get_room_info's RoomInfo: the Tencent fields kept as custom props
    (a prop of that name with a value the field cannot have shows the default), CreateTime
    in seconds, MemberCount the members (not the pending invitations)."""
    custom = room.get("custom", {})
    fields: dict[str, Any] = {}
    for name, (check, default) in ROOM_PROPS.items():
        value = custom.get(name)
        fields[name] = value if value is not None and check(value) else default
    if fields["MaxMemberCount"] is None:
        fields["MaxMemberCount"] = max_members
    return {
        "RoomId": room["id"],
        "RoomName": room.get("name", ""),
        "RoomType": fields.pop("RoomType"),
        "Owner_Account": room["owner"],
        **fields,
        "RoomStatus": "Running",
        "CreateTime": room["created_ms"] // 1000,
        "MemberCount": len(room.get("members", [])),
    }


def render_member(member: dict[str, Any]) -> dict[str, Any]:
    """A roomhub Member as get_room_member_list's (roomhub has no marks)."""
    return {
        "Member_Account": member["id"],
        "NameCard": member.get("nickname", ""),
        "Role": ROLES_OUT[member["role"]],
        "Marks": [],
        "CustomInfo": member.get("custom_info", ""),
    }


Handler = Callable[[Call], Awaitable[dict[str, Any] | None]]


class Tencent:
    """The Room Engine routes of one hub node."""

    def __init__(self, hub: Hub, keys: DialectKeys) -> None:
        self.hub = hub
        self.keys = keys
        # command -> (handler, roomhub arg -> the body's field, for ErrorInfo)
        self.commands: dict[str, tuple[Handler, dict[str, str]]] = {
            "create_room": (
                self.create_room,
                {
                    "room": "RoomInfo.RoomId",
                    "name": "RoomInfo.RoomName",
                    "owner": "RoomInfo.Owner_Account",
                    "custom": "RoomInfo",
                    "invitees": "ScheduleInviteeList_Account",
                },
            ),
            "destroy_room": (self.destroy_room, {"room": "RoomId"}),
            "update_room_info": (
                self.update_room_info,
                {"room": "RoomInfo.RoomId", "name": "RoomInfo.RoomName", "custom": "RoomInfo"},
            ),
            "get_room_info": (self.get_room_info, {"room": "RoomId"}),
            "get_room_member_list": (
                self.get_room_member_list,
                {"room": "RoomId", "after": "Next", "limit": "Count"},
            ),
            "update_room_member_info": (
                self.update_room_member_info,
                {
                    "room": "RoomId",
                    "user": "MemberInfo.Member_Account",
                    "properties": "MemberInfo",
                    "properties.nickname": "MemberInfo.NameCard",
                    "properties.role": "MemberInfo.Role",
                    "properties.custom_info": "MemberInfo.CustomInfo",
                },
            ),
            "change_room_owner": (
                self.change_room_owner,
                {"room": "RoomId", "to": "NewOwner_Account", "operator": "From_Account"},
            ),
            "kick_user_out": (
                self.kick_user_out,
                {"room": "RoomId", "user": "MemberList_Account"},
            ),
        }

    def routes(self) -> list[BaseRoute]:
        return [
            Route(f"/v4/{service}/{{command:path}}", self._endpoint(service), methods=METHODS)
            for service in UNSUPPORTED
        ]

    def _endpoint(self, service: str) -> Callable[[Request], Awaitable[Response]]:
        served = self.commands if service == "room_engine_http_srv" else {}

        async def endpoint(request: Request) -> Response:
            rid = f"Id-{request_id()}"
            fields: dict[str, str] = {}
            try:
                if request.method != "POST":
                    raise Fail(HTTP_PARSE, "Room Engine REST calls are POST requests")
                caller, identifier = self.authenticate(request.query_params)
                command = request.path_params["command"]
                if command not in served:
                    if command in UNSUPPORTED[service]:
                        raise Fail(DISABLED, f"{command} is not supported by roomhub")
                    raise Fail(BAD_RESOURCE, f"unknown command {service}/{command}")
                handler, fields = served[command]
                body = await self.body(request)
                response = await handler(Call(caller, identifier, body))
                return envelope(rid, response=response)
            except Fail as exc:
                return envelope(rid, exc.code, exc.info)
            except RoomError as exc:
                return envelope(rid, *render_error(exc, fields))
            except Exception as exc:  # not expected: run_op raises only RoomError
                return envelope(rid, *render_error(self.hub.internal(exc), fields))

        endpoint.__name__ = f"tencent_{service}"
        return endpoint

    def authenticate(self, query: QueryParams) -> tuple[Caller, str]:
        """The app's server caller and the admin identifier, from the query (study §2.1):
        the app by `sdkappid`, the UserSig verified with its SecretKey for `identifier`,
        which must be one of its admins. `random` and `contenttype` are not checked."""
        raw = query.get("sdkappid")
        if not raw:
            raise Fail(NO_SDKAPPID, "REST calls need the sdkappid in the URL")
        if not SDKAPPID_TEXT.fullmatch(raw):
            raise Fail(BAD_SDKAPPID, "sdkappid must be an integer")
        sdkappid = int(raw)
        found = self.keys.by_sdkappid(sdkappid)
        if found is None:
            raise Fail(UNKNOWN_SDKAPPID, f"SDKAppID {sdkappid} not found")
        app, creds = found
        identifier = query.get("identifier")
        if not identifier:
            raise Fail(NO_ACCOUNT, "REST calls need the identifier (an App admin) in the URL")
        sig = query.get("usersig")
        if not sig:
            raise Fail(NO_SIGNATURE, "REST calls need the usersig in the URL")
        try:
            usersig.verify(
                sig,
                sdkappid=sdkappid,
                identifier=identifier,
                secret_key=creds.secret_key,
                now=int(time.time()),
            )
        except usersig.UserSigError as exc:
            raise Fail(exc.code, exc.message) from None
        if identifier not in creds.admins:
            raise Fail(NOT_ADMIN, f"'{identifier}' is not an App administrator")
        return server_caller(app, DIALECT), identifier

    async def body(self, request: Request) -> dict[str, Any]:
        """The JSON object body. Tencent wants `{}` at least: an empty body is 60003."""
        headers = request.headers
        length = headers.get("content-length")
        if length == "0" or (length is None and "transfer-encoding" not in headers):
            raise Fail(JSON_PARSE, "the body must be a JSON object ({} at least)")
        try:
            body = await read_body(self.hub, request)
        except TooLarge:
            raise
        except RoomError as exc:  # not JSON
            raise Fail(JSON_PARSE, exc.message) from None
        if not isinstance(body, dict):
            raise Fail(JSON_PARSE, "the body must be a JSON object")
        return body

    async def _run(self, call: Call, op: str, args: dict[str, Any]) -> dict[str, Any]:
        return await run_op(self.hub, call.caller, op, args)

    # --- commands ---------------------------------------------------------------------------

    async def create_room(self, call: Call) -> None:
        """room.create (RoomId, RoomName default RoomId, Owner_Account default the calling
        admin, who must be a roomhub user like any owner), the other RoomInfo fields as the
        room's first custom props in the same op; ScheduleInviteeList_Account as invitations
        (member.add), one more op after the create. If that fails, the room is dismissed again
        (not admitted: it undoes an admitted op) and the error answered, so a refused
        create_room leaves no room."""
        info = _object(_required(call.body, "RoomInfo", "RoomInfo"), "RoomInfo")
        room = _string(info, "RoomId", "RoomInfo.RoomId")  # null: roomhub would pick an id
        args: dict[str, Any] = {
            "room": room,
            "name": _room_name(info) if "RoomName" in info else room,
            "owner": info.get("Owner_Account", call.identifier),
            "reply": "ack",
        }
        props = _room_props(info, CREATE_PROPS)
        if props:
            args["custom"] = props
        invitees = call.body.get("ScheduleInviteeList_Account")
        invite: dict[str, Any] | None = None
        if invitees not in (None, []):  # none to invite: no op
            invite = {"room": room, "invitees": invitees, "invitation_required": True}
            invite["reply"] = "ack"
            ops.validate_args(ops.lookup("member.add"), invite)  # checked before the create
        await self._run(call, "room.create", args)
        if invite is not None:
            try:
                await self._run(call, "member.add", invite)
            except RoomError:
                await self._undo_create(call, room)
                raise
        return None

    async def _undo_create(self, call: Call, room: str) -> None:
        try:
            await self.hub.call(
                call.caller, ops.lookup("room.dismiss"), {"room": room}, time.perf_counter()
            )
        except RoomError as exc:  # the original error is the answer
            log.warning("tencent: room %s kept after its create_room failed: %s", room, exc)

    async def destroy_room(self, call: Call) -> None:
        """room.dismiss."""
        room = _required(call.body, "RoomId", "RoomId")
        await self._run(call, "room.dismiss", {"room": room, "reply": "ack"})
        return None

    async def update_room_info(self, call: Call) -> None:
        """room.update: RoomName the name (at most 100 bytes), the other fields room custom
        props (CustomInfo at most 500 bytes)."""
        info = _object(_required(call.body, "RoomInfo", "RoomInfo"), "RoomInfo")
        args: dict[str, Any] = {
            "room": _required(info, "RoomId", "RoomInfo.RoomId"),
            "reply": "ack",
        }
        if "RoomName" in info:
            args["name"] = _room_name(info)
        props = _room_props(info, UPDATE_PROPS)
        if props:
            args["custom"] = props
        if "name" not in args and not props:
            raise bad("RoomInfo has no field to update")
        await self._run(call, "room.update", args)
        return None

    async def get_room_info(self, call: Call) -> dict[str, Any]:
        """room.get -> Response.RoomInfo."""
        room = await self._run(call, "room.get", {"room": _required(call.body, "RoomId", "RoomId")})
        return {"RoomInfo": render_room(room, self.hub.settings.max_room_members)}

    async def get_room_member_list(self, call: Call) -> dict[str, Any]:
        """room.members: Count (default 50) members ordered by id after Next (an opaque cursor:
        the last member id of the previous page; "" the first page, and the end)."""
        body = call.body
        args: dict[str, Any] = {
            "room": _required(body, "RoomId", "RoomId"),
            "limit": body.get("Count", MEMBER_PAGE_DEFAULT),
        }
        after = body.get("Next", "")
        if after != "":
            args["after"] = after
        page = await self._run(call, "room.members", args)
        return {
            "Next": page["next"] or "",
            "MemberList": [render_member(m) for m in page["members"]],
        }

    async def update_room_member_info(self, call: Call) -> None:
        """member.update: NameCard the nickname, Role (Admin or Member) the role, CustomInfo
        the custom_info; roomhub's limits are Tencent's (32 and 60 bytes)."""
        body = call.body
        member = _object(_required(body, "MemberInfo", "MemberInfo"), "MemberInfo")
        properties: dict[str, Any] = {}
        if "NameCard" in member:
            properties["nickname"] = member["NameCard"]
        if "Role" in member:
            role = member["Role"]
            if role not in ROLES_IN:
                raise bad("MemberInfo.Role must be Admin or Member")
            properties["role"] = ROLES_IN[role]
        if "CustomInfo" in member:
            properties["custom_info"] = member["CustomInfo"]
        args = {
            "room": _required(body, "RoomId", "RoomId"),
            "user": _required(member, "Member_Account", "MemberInfo.Member_Account"),
            "properties": properties,
            "reply": "ack",
        }
        await self._run(call, "member.update", args)
        return None

    async def change_room_owner(self, call: Call) -> None:
        """room.transfer as From_Account (the operator: the transfer rule checks, in the same
        script, that they are the owner: 100006, or a member at all: 100005); the old owner
        becomes an admin."""
        body = call.body
        args = {
            "room": _required(body, "RoomId", "RoomId"),
            "to": _required(body, "NewOwner_Account", "NewOwner_Account"),
            # null: an unchecked server call, which would skip the owner check
            "operator": _string(body, "From_Account", "From_Account"),
            "reply": "ack",
        }
        await self._run(call, "room.transfer", args)
        return None

    async def kick_user_out(self, call: Call) -> None:
        """member.remove per account, in order (1 to 20; Reason required, at most 1000 bytes,
        not carried: roomhub's removeMember has no text). Not atomic: the first failure stops
        the list, the accounts before it stay removed."""
        body = call.body
        room = _required(body, "RoomId", "RoomId")
        accounts = _required(body, "MemberList_Account", "MemberList_Account")
        if (
            not isinstance(accounts, list)
            or not 1 <= len(accounts) <= KICK_MAX
            or not all(isinstance(account, str) for account in accounts)
        ):
            raise bad(f"MemberList_Account must list 1 to {KICK_MAX} accounts")
        reason = _required(body, "Reason", "Reason")
        if not isinstance(reason, str) or utf8_len(reason) > REASON_MAX_BYTES:
            raise bad(f"Reason must be a string of at most {REASON_MAX_BYTES} bytes")
        for account in dict.fromkeys(accounts):
            await self._run(call, "member.remove", {"room": room, "user": account, "reply": "ack"})
        return None


def routes(hub: Hub, keys: DialectKeys) -> list[BaseRoute]:
    """The Tencent Room Engine routes (ROUTERS of server/dialects/__init__.py)."""
    return Tencent(hub, keys).routes()
