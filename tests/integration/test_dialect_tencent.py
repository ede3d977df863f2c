"""The Tencent Room Engine dialect (server/dialects/tencent.py, docs/dialects.md §5) on a real
hub over real HTTP: the study's seed request (§2.6) sent verbatim but for the sdkappid and the
usersig, UserSigs minted by the vendor's own library (TLSSigAPIv2) and refused in each way the
study lists, every command's success and errors in the envelope (HTTP 200 always), the rate
limit and a Redis outage, and a WebSocket member on a second node hearing each change."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import types
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import TLSSigAPIv2

from roomhub.server.hub import Hub

from ..conftest import HubFactory
from ..support import APP, RawClient, RedisProcess, connect_backend, create_room, ws_url

SDKAPPID = 1400000001
KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
OTHER_KEY = "f" * 64
TENCENT = {"sdkappid": SDKAPPID, "secret_key": KEY, "admins": ["admin", "administrator"]}
DIALECTS = {APP: {"tencent": TENCENT}}
ENVELOPE = {"ActionStatus", "ErrorCode", "ErrorInfo", "RequestId"}
# study §2.6: the seed's URL (host, sdkappid and usersig substituted) and body, byte for byte
SEED_QUERY = (
    "sdkappid={sdkappid}&identifier=admin&usersig={usersig}&random=99999999&contenttype=json"
)
SEED_BODY = b"""{
"RoomId":"room-test",
"MemberInfo":{
"Member_Account": "user4",
"NameCard": "jack",
"Role": "Admin",
"CustomInfo": "custom info"
}
}"""
# the study's curl form of the same request (-d, one line)
SEED_CURL_BODY = (
    b'{"RoomId":"room-test","MemberInfo":{"Member_Account": "user4","NameCard": "jack",'
    b'"Role": "Admin","CustomInfo": "custom info"}}'
)


def usersig(
    identifier: str = "admin",
    *,
    sdkappid: int = SDKAPPID,
    key: str = KEY,
    at: float | None = None,
    expire: int = 86400,
    monkeypatch: pytest.MonkeyPatch | None = None,
) -> str:
    """A UserSig from the vendor's library; `at`: minted as if then (its module's clock)."""
    if at is not None:
        assert monkeypatch is not None
        monkeypatch.setattr(TLSSigAPIv2, "time", types.SimpleNamespace(time=lambda: at))
    return TLSSigAPIv2.TLSSigAPIv2(sdkappid, key).gen_sig(identifier, expire)  # type: ignore[no-any-return]


def path(command: str, service: str = "room_engine_http_srv", **query: Any) -> str:
    params = {
        "sdkappid": SDKAPPID,
        "identifier": "admin",
        "usersig": usersig(),
        "random": 99999999,
        "contenttype": "json",
    }
    params.update(query)
    shown = "&".join(f"{k}={v}" for k, v in params.items() if v is not None)
    return f"/v4/{service}/{command}?{shown}"


def envelope(reply: httpx.Response, code: int = 0) -> dict[str, Any]:
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    body = reply.json()
    assert ENVELOPE <= set(body) <= ENVELOPE | {"Response"}, body
    assert body["ErrorCode"] == code, body
    assert body["ActionStatus"] == ("OK" if code == 0 else "FAIL")
    assert isinstance(body["RequestId"], str) and body["RequestId"]
    if code:
        assert body["ErrorInfo"] and "Response" not in body
    else:
        assert body["ErrorInfo"] == ""
    return body  # type: ignore[no-any-return]


class Tencent:
    """The Room Engine REST calls of a backend, as JSON bodies."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def send(self, command: str, body: Any, code: int = 0, **query: Any) -> dict[str, Any]:
        reply = await self.http.post(path(command, **query), json=body)
        return envelope(reply, code)

    async def ok(self, command: str, body: Any) -> dict[str, Any]:
        result = await self.send(command, body)
        return result.get("Response", {})  # type: ignore[no-any-return]

    async def fails(self, command: str, body: Any, code: int) -> str:
        return (await self.send(command, body, code))["ErrorInfo"]  # type: ignore[no-any-return]

    async def members(self, room: str, **extra: Any) -> list[dict[str, Any]]:
        return (await self.ok("get_room_member_list", {"RoomId": room, **extra}))["MemberList"]  # type: ignore[no-any-return]


@pytest.fixture
async def hub(start_hub: HubFactory) -> Hub:
    return await start_hub(dialects=DIALECTS)


@pytest.fixture
async def http(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{hub.http_port}") as client:
        yield client


@pytest.fixture
def tencent(http: httpx.AsyncClient) -> Tencent:
    return Tencent(http)


async def seed_room(hub: Hub, *, guests: tuple[str, ...] = ()) -> None:
    """room-test: owner owner1, members user4, user5 (and `guests` as guests); user6 and the
    admins known users, not members."""
    async with connect_backend(ws_url(hub)) as backend:
        await create_room(backend, "room-test", "owner1", ["user4", "user5", *guests])
        for user in ("user6", "admin", "administrator"):
            await backend.call("user.upsert", {"id": user})
        for guest in guests:
            args = {"room": "room-test", "user": guest, "properties": {"role": "guest"}}
            await backend.call("member.update", args)


# --- the seed request ------------------------------------------------------------------------


async def test_seed_update_room_member_info_verbatim(
    hub: Hub, http: httpx.AsyncClient, tencent: Tencent
) -> None:
    await seed_room(hub)
    query = SEED_QUERY.format(sdkappid=SDKAPPID, usersig=usersig("admin"))
    async with RawClient.connect(ws_url(hub), "json") as ws:
        await ws.auth("user4")
        reply = await http.post(
            f"/v4/room_engine_http_srv/update_room_member_info?{query}",
            content=SEED_BODY,
            headers={"Content-Type": "application/json"},
        )
        body = envelope(reply)
        assert set(body) == ENVELOPE and body["ErrorInfo"] == ""
        events = [await ws.event(), await ws.event()]
    assert {e["type"] for e in events} == {"assignAdmin", "updateMember"}
    assert all(e["targets"] == ["user4"] and e["sender"] == "@server" for e in events)
    listed = {m["Member_Account"]: m for m in await tencent.members("room-test")}
    assert listed["user4"] == {
        "Member_Account": "user4",
        "NameCard": "jack",
        "Role": "Admin",
        "Marks": [],
        "CustomInfo": "custom info",
    }
    # the curl form of the study (a one-line -d body): the same answer, nothing changes
    again = await http.post(
        f"/v4/room_engine_http_srv/update_room_member_info?{query}",
        content=SEED_CURL_BODY,
        headers={"Content-Type": "application/json"},
    )
    envelope(again)


async def test_seed_negative_cases(hub: Hub, tencent: Tencent) -> None:
    await seed_room(hub)

    def member(**info: Any) -> dict[str, Any]:
        return {"RoomId": "room-test", "MemberInfo": {"Member_Account": "user4", **info}}

    unknown_room = {**member(NameCard="jack"), "RoomId": "no-such-room"}
    assert "room" in await tencent.fails("update_room_member_info", unknown_room, 100004)
    outsider = {"RoomId": "room-test", "MemberInfo": {"Member_Account": "user6", "NameCard": "x"}}
    await tencent.fails("update_room_member_info", outsider, 100005)
    info = await tencent.fails("update_room_member_info", member(NameCard="j" * 33), 100002)
    assert info.startswith("MemberInfo.NameCard: ") and "32 bytes" in info
    info = await tencent.fails("update_room_member_info", member(CustomInfo="c" * 61), 100002)
    assert info.startswith("MemberInfo.CustomInfo: ") and "60 bytes" in info
    # the limits are bytes: 11 three-byte characters are 33 bytes
    await tencent.fails("update_room_member_info", member(NameCard="杰" * 11), 100002)
    await tencent.ok("update_room_member_info", member(NameCard="杰" * 10, CustomInfo="c" * 60))
    # Role: Admin or Member only (the owner changes by change_room_owner)
    for role in ("Owner", "RoomOwner", "admin", "Guest", 1):
        await tencent.fails("update_room_member_info", member(Role=role), 100002)
    owner = {"RoomId": "room-test", "MemberInfo": {"Member_Account": "owner1", "Role": "Member"}}
    await tencent.fails("update_room_member_info", owner, 100006)
    await tencent.fails("update_room_member_info", {"RoomId": "room-test"}, 100002)
    await tencent.fails("update_room_member_info", member(), 100002)  # nothing to change
    bad_id = {"RoomId": "room test", "MemberInfo": {"Member_Account": "user4", "NameCard": "x"}}
    assert (await tencent.fails("update_room_member_info", bad_id, 100002)).startswith("RoomId: ")
    # a bad UserSig: a 70xxx code, still HTTP 200 (the seed's own usersig=xxx)
    await tencent.send("update_room_member_info", member(NameCard="x"), 70003, usersig="xxx")
    listed = {m["Member_Account"]: m for m in await tencent.members("room-test")}
    assert listed["user4"]["NameCard"] == "杰" * 10


# --- authentication ---------------------------------------------------------------------------


async def test_usersig_refusals(
    hub: Hub, tencent: Tencent, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed_room(hub)
    body = {"RoomId": "room-test"}
    now = time.time()
    expired = usersig(at=now - 7200, expire=3600, monkeypatch=monkeypatch)
    cases: list[tuple[dict[str, Any], int]] = [
        ({"sdkappid": None}, 60012),
        ({"sdkappid": ""}, 60012),
        ({"sdkappid": "14000x"}, 60006),
        ({"sdkappid": "-1"}, 60006),
        ({"sdkappid": 1400000999}, 70020),
        ({"identifier": None}, 60004),
        ({"usersig": None}, 60005),
        ({"usersig": expired}, 70001),
        ({"usersig": "xxx"}, 70003),
        ({"usersig": usersig()[:-12]}, 70003),  # truncated
        ({"usersig": usersig(key=OTHER_KEY)}, 70009),  # another app's key
        ({"usersig": usersig("administrator")}, 70013),  # made for another admin
        ({"usersig": usersig(sdkappid=1400000002, key=OTHER_KEY)}, 70014),
        ({"identifier": "user4", "usersig": usersig("user4")}, 60010),  # valid, not an admin
    ]
    for query, code in cases:
        reply = await tencent.send("get_room_info", body, code, **query)
        assert query.get("usersig") is None or str(query["usersig"]) not in reply["ErrorInfo"]
    # both admins, each with its own UserSig, a freshly minted one at the default lifetime
    await tencent.ok("get_room_info", body)
    monkeypatch.undo()
    fresh = TLSSigAPIv2.TLSSigAPIv2(SDKAPPID, KEY).gen_sig("administrator")
    await tencent.send("get_room_info", body, identifier="administrator", usersig=fresh)


async def test_framing_and_commands_not_served(
    hub: Hub, http: httpx.AsyncClient, tencent: Tencent
) -> None:
    await seed_room(hub)
    target = path("get_room_info")
    envelope(await http.get(target), 60002)
    envelope(await http.post(target), 60003)  # no body: Tencent wants {} at least
    envelope(await http.post(target, content=b""), 60003)
    envelope(await http.post(target, content=b'{"RoomId": '), 60003)
    envelope(await http.post(target, content=b'["room-test"]'), 60003)
    too_large = b'{"RoomId": "' + b"x" * hub.settings.max_frame_bytes + b'"}'
    envelope(await http.post(target, content=too_large), 60002)
    # {} is a body: the command's own field rule answers
    assert "RoomId is required" in await tencent.fails("get_room_info", {}, 100002)
    for command in ("no_such_command", "create_room/x", "get_room_info2"):
        await tencent.fails(command, {}, 60009)
    unsupported = ("mark_room_member", "ban_room_member", "unban_room_member")
    for command in (*unsupported, "get_banned_member_list"):
        info = await tencent.fails(command, {"RoomId": "room-test"}, 60017)
        assert "not supported" in info
    for command in ("get_seat_list", "pick_user_on_seat", "kick_user_off_seat", "lock_seat"):
        reply = await http.post(path(command, "room_engine_http_mic"), json={"RoomId": "x"})
        envelope(reply, 60017)
    envelope(await http.post(path("create_room", "room_engine_http_mic"), json={}), 60009)
    # an unauthenticated call learns nothing about the commands
    envelope(await http.post(path("mark_room_member", usersig="xxx"), json={}), 70003)
    # other paths are not the dialect's
    assert (await http.post("/v4/im_open_login_svc/account_import", json={})).status_code == 404


# --- the commands -----------------------------------------------------------------------------


async def test_create_get_update_destroy_room(hub: Hub, tencent: Tencent) -> None:
    await seed_room(hub)
    info = {
        "RoomId": "conf-1",
        "RoomName": "Weekly sync",
        "RoomType": "Conference",
        "Owner_Account": "owner1",
        "MaxMemberCount": 300,
        "IsVideoDisabled": True,
        "CustomInfo": "k" * 500,
        "TakeSeatMode": "ApplyToTake",
    }
    async with RawClient.connect(ws_url(hub), "json") as ws:
        await ws.auth("owner1")
        assert await tencent.ok("create_room", {"RoomInfo": info}) == {}
        created = await ws.event()  # one op: the RoomInfo props come with the room
        assert (created["type"], created["seq"]) == ("createRoom", 1)
    shown = (await tencent.ok("get_room_info", {"RoomId": "conf-1"}))["RoomInfo"]
    assert shown["CreateTime"] <= time.time() + 1 and shown["CreateTime"] > time.time() - 60
    assert shown == {
        "RoomId": "conf-1",
        "RoomName": "Weekly sync",
        "RoomType": "Conference",
        "Owner_Account": "owner1",
        "MaxMemberCount": 300,
        "MaxSeatCount": 0,
        "IsVideoDisabled": True,
        "IsAudioDisabled": False,
        "IsMessageDisabled": False,
        "IsScreenSharingDisabled": False,
        "IsCloudRecordingDisabled": False,
        "CustomInfo": "k" * 500,
        "ScheduleStartTime": 0,
        "ScheduleEndTime": 0,
        "IsSeatEnabled": False,
        "TakeSeatMode": "ApplyToTake",
        "RoomStatus": "Running",
        "CreateTime": shown["CreateTime"],
        "MemberCount": 1,
    }
    # the minimal form: RoomName defaults to RoomId, the owner to the calling admin
    minimal_create = {
        "RoomInfo": {"RoomId": "conf-2", "RoomType": "Conference"},
        "ScheduleInviteeList_Account": [],
    }
    await tencent.ok("create_room", minimal_create)
    minimal = (await tencent.ok("get_room_info", {"RoomId": "conf-2"}))["RoomInfo"]
    assert (minimal["RoomName"], minimal["Owner_Account"]) == ("conf-2", "admin")
    assert minimal["MaxMemberCount"] == hub.settings.max_room_members
    assert (minimal["CustomInfo"], minimal["MemberCount"]) == ("", 1)
    # create errors
    await tencent.fails("create_room", {"RoomInfo": {"RoomId": "conf-1"}}, 100003)
    unknown_owner = {"RoomId": "conf-3", "Owner_Account": "nobody"}
    await tencent.fails("create_room", {"RoomInfo": unknown_owner}, 70107)
    async with RawClient.connect(ws_url(hub), "json") as ws:
        await ws.auth("admin")  # the default owner: refused before any room is made
        for bad in (
            {"RoomName": "x"},
            {"RoomId": None},
            {"RoomId": "conf 3"},
            {"RoomId": "conf-3", "RoomType": "Webinar"},
            {"RoomId": "conf-3", "CustomInfo": "k" * 501},
            {"RoomId": "conf-3", "CustomInfo": "\x01" * 200},  # 200 bytes, 1202 as JSON: > 1 KiB
            {"RoomId": "conf-3", "RoomName": "n" * 101},
            {"RoomId": "conf-3", "IsVideoDisabled": "yes"},
            {"RoomId": "conf-3", "MaxMemberCount": -1},
        ):
            await tencent.fails("create_room", {"RoomInfo": bad}, 100002)
        await ws.no_event()
    await tencent.fails("create_room", {"RoomId": "conf-3"}, 100002)  # no RoomInfo
    await tencent.fails("get_room_info", {"RoomId": "conf-3"}, 100004)
    # update_room_info
    change = {"RoomId": "conf-1", "RoomName": "Daily", "CustomInfo": "", "IsAudioDisabled": True}
    await tencent.ok("update_room_info", {"RoomInfo": change})
    shown = (await tencent.ok("get_room_info", {"RoomId": "conf-1"}))["RoomInfo"]
    assert (shown["RoomName"], shown["CustomInfo"], shown["IsAudioDisabled"]) == ("Daily", "", True)
    assert shown["IsVideoDisabled"] is True  # untouched
    for bad in (
        {"RoomId": "conf-1"},  # nothing to update
        {"RoomId": "conf-1", "CustomInfo": "k" * 501},
        {"RoomId": "conf-1", "RoomName": "n" * 101},
        {"RoomId": "conf-1", "TakeSeatMode": "Anyone"},
    ):
        await tencent.fails("update_room_info", {"RoomInfo": bad}, 100002)
    update_missing = {"RoomInfo": {"RoomId": "conf-9", "RoomName": "x"}}
    await tencent.fails("update_room_info", update_missing, 100004)
    # destroy_room
    await tencent.ok("destroy_room", {"RoomId": "conf-1"})
    await tencent.fails("destroy_room", {"RoomId": "conf-1"}, 100004)
    await tencent.fails("get_room_info", {"RoomId": "conf-1"}, 100004)
    await tencent.fails("destroy_room", {}, 100002)


async def test_create_room_with_invitees_and_its_undo(hub: Hub, tencent: Tencent) -> None:
    await seed_room(hub)
    body: dict[str, Any] = {
        "RoomInfo": {"RoomId": "sched-1", "Owner_Account": "owner1", "CustomInfo": "agenda"},
        "ScheduleInviteeList_Account": ["user4", "user5"],
    }
    async with RawClient.connect(ws_url(hub), "json") as ws:
        await ws.auth("user4")
        await tencent.ok("create_room", body)
        invited = await ws.event()
        assert (invited["type"], invited["room"]) == ("inviteMember", "sched-1")
        async with connect_backend(ws_url(hub)) as backend:
            room = await backend.call("room.get", {"room": "sched-1"})
        assert [i["user"] for i in room["invitations"]] == ["user4", "user5"]
        assert room["custom"] == {"CustomInfo": "agenda"}
        listed = await tencent.members("sched-1")  # invited, not members yet
        assert [m["Member_Account"] for m in listed] == ["owner1"]
        # an invitee who is no roomhub user: 70107, and no room is left behind
        body["RoomInfo"]["RoomId"] = "sched-2"
        body["ScheduleInviteeList_Account"] = ["user4", "nobody"]
        await tencent.fails("create_room", body, 70107)
        await tencent.fails("get_room_info", {"RoomId": "sched-2"}, 100004)
        # an invitee list of the wrong shape is refused before the room is made
        body["ScheduleInviteeList_Account"] = "user4"
        await tencent.fails("create_room", body, 100002)
        await tencent.fails("get_room_info", {"RoomId": "sched-2"}, 100004)
        await ws.no_event()  # user4 heard of no room but sched-1


async def test_get_room_member_list_pages_and_roles(hub: Hub, tencent: Tencent) -> None:
    await seed_room(hub, guests=("guest1",))
    promote = {"RoomId": "room-test", "MemberInfo": {"Member_Account": "user5", "Role": "Admin"}}
    await tencent.ok("update_room_member_info", promote)
    everyone = await tencent.members("room-test")
    assert [(m["Member_Account"], m["Role"]) for m in everyone] == [
        ("guest1", "Member"),  # roomhub's guest has no Tencent role
        ("owner1", "Owner"),
        ("user4", "Member"),
        ("user5", "Admin"),
    ]
    pages, cursor = [], ""
    while True:
        page = await tencent.ok(
            "get_room_member_list", {"RoomId": "room-test", "Count": 3, "Next": cursor}
        )
        pages.append([m["Member_Account"] for m in page["MemberList"]])
        cursor = page["Next"]
        if not cursor:
            break
    assert pages == [["guest1", "owner1", "user4"], ["user5"]]
    first = await tencent.ok("get_room_member_list", {"RoomId": "room-test", "Count": 1})
    assert first["Next"] == "guest1"
    for bad in ({"Count": 0}, {"Count": "3"}, {"Next": 5}, {"Count": 501}):
        info = await tencent.fails("get_room_member_list", {"RoomId": "room-test", **bad}, 100002)
        assert info.startswith(("Count: ", "Next: "))
    await tencent.fails("get_room_member_list", {"RoomId": "nope"}, 100004)


async def test_change_room_owner(hub: Hub, tencent: Tencent) -> None:
    await seed_room(hub)

    def transfer(source: str, to: str) -> dict[str, str]:
        return {"RoomId": "room-test", "From_Account": source, "NewOwner_Account": to}

    await tencent.fails("change_room_owner", transfer("user4", "user5"), 100006)  # not the owner
    await tencent.fails("change_room_owner", transfer("user6", "user5"), 100005)  # not a member
    await tencent.fails("change_room_owner", transfer("owner1", "user6"), 100005)
    await tencent.fails("change_room_owner", {"RoomId": "room-test", "From_Account": "x"}, 100002)
    info = await tencent.fails("change_room_owner", transfer(None, "user5"), 100002)  # type: ignore[arg-type]
    assert info == "From_Account must be a string"
    missing = {**transfer("owner1", "user4"), "RoomId": "gone"}
    await tencent.fails("change_room_owner", missing, 100004)
    await tencent.ok("change_room_owner", transfer("owner1", "user4"))
    roles = {m["Member_Account"]: m["Role"] for m in await tencent.members("room-test")}
    assert roles == {"owner1": "Admin", "user4": "Owner", "user5": "Member"}
    info = (await tencent.ok("get_room_info", {"RoomId": "room-test"}))["RoomInfo"]
    assert info["Owner_Account"] == "user4"


async def test_kick_user_out(hub: Hub, tencent: Tencent) -> None:
    await seed_room(hub, guests=("guest1", "guest2"))

    def kick(*accounts: Any, reason: Any = "spam") -> dict[str, Any]:
        return {"RoomId": "room-test", "MemberList_Account": list(accounts), "Reason": reason}

    async with RawClient.connect(ws_url(hub), "json") as ws:
        await ws.auth("user5")
        await tencent.ok("kick_user_out", kick("guest1", "guest2", "guest1"))
        removed = [await ws.event(), await ws.event()]
        assert [(e["type"], e["targets"]) for e in removed] == [
            ("removeMember", ["guest1"]),
            ("removeMember", ["guest2"]),
        ]
        for bad in (
            kick(),
            kick(*[f"u{i}" for i in range(21)]),
            kick("user4", reason=None),
            kick("user4", reason="r" * 1001),
            kick("user4", 5),
            {"RoomId": "room-test", "MemberList_Account": ["user4"]},  # no Reason
        ):
            await tencent.fails("kick_user_out", bad, 100002)
        await tencent.fails("kick_user_out", kick("owner1"), 100006)
        # not atomic: user4 goes, then user6 (no member) stops the list; user5 stays
        await tencent.fails("kick_user_out", kick("user4", "user6", "user5"), 100005)
        assert (await ws.event())["targets"] == ["user4"]
    members = [m["Member_Account"] for m in await tencent.members("room-test")]
    assert members == ["owner1", "user5"]
    await tencent.ok("kick_user_out", kick("user5", reason="r" * 1000))
    await tencent.fails("kick_user_out", {**kick("user5"), "RoomId": "nope"}, 100004)


# --- the limits and the store -----------------------------------------------------------------


async def test_rate_limit_is_60007_and_create_room_leaves_nothing(
    redis_url: str, start_hub: HubFactory
) -> None:
    """The app's ceiling is shared through Redis; a node without one sets the room up."""
    setup = await start_hub(redis=redis_url)
    limited = await start_hub(redis=redis_url, rate_limit=1, dialects=DIALECTS)
    await seed_room(setup)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{limited.http_port}") as http:
        tencent = Tencent(http)
        # the create is admitted, its invitations (a second op) are not: undone, 60007
        create = {
            "RoomInfo": {"RoomId": "conf-1", "Owner_Account": "owner1", "CustomInfo": "c"},
            "ScheduleInviteeList_Account": ["user4"],
        }
        info = await tencent.fails("create_room", create, 60007)
        assert "rate limit" in info
        await tencent.fails("get_room_info", {"RoomId": "conf-1"}, 100004)  # reads: not limited
        # two at once: at least one meets the 1/s ceiling however slow the machine
        change = {"RoomInfo": {"RoomId": "room-test", "RoomName": "x"}}
        replies = await asyncio.gather(
            *(http.post(path("update_room_info"), json=change) for _ in range(2))
        )
        assert 60007 in {reply.json()["ErrorCode"] for reply in replies}
        assert all(reply.status_code == 200 for reply in replies)


async def test_redis_outage_is_100001_with_http_200(start_hub: HubFactory) -> None:
    with RedisProcess() as own:
        hub = await start_hub(redis=own.url, redis_timeout=1.0, dialects=DIALECTS)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{hub.http_port}") as http:
            tencent = Tencent(http)
            await tencent.fails("get_room_info", {"RoomId": "room-test"}, 100004)
            os.kill(own.proc.pid, signal.SIGSTOP)
            try:
                await tencent.fails("get_room_info", {"RoomId": "room-test"}, 100001)
                await tencent.fails("destroy_room", {"RoomId": "room-test"}, 100001)
            finally:
                os.kill(own.proc.pid, signal.SIGCONT)


# --- a member on another node -----------------------------------------------------------------


async def test_member_on_another_node_hears_every_change_in_order(
    redis_url: str, start_hub: HubFactory
) -> None:
    node_a = await start_hub(redis=redis_url, dialects=DIALECTS)
    node_b = await start_hub(redis=redis_url)
    await seed_room(node_a)
    async with (
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{node_a.http_port}") as http,
        RawClient.connect(ws_url(node_b), "json") as ws,
    ):
        tencent = Tencent(http)
        await ws.auth("user5")
        room = "room-test"
        await tencent.ok("update_room_info", {"RoomInfo": {"RoomId": room, "RoomName": "R"}})
        member = {"Member_Account": "user4", "Role": "Admin"}
        await tencent.ok("update_room_member_info", {"RoomId": room, "MemberInfo": member})
        member = {"Member_Account": "user4", "NameCard": "jack"}
        await tencent.ok("update_room_member_info", {"RoomId": room, "MemberInfo": member})
        transfer = {"RoomId": room, "From_Account": "owner1", "NewOwner_Account": "user4"}
        await tencent.ok("change_room_owner", transfer)
        kick = {"RoomId": room, "MemberList_Account": ["owner1"], "Reason": "bye"}
        await tencent.ok("kick_user_out", kick)
        await tencent.ok("destroy_room", {"RoomId": room})
        heard = [await ws.event() for _ in range(6)]
    assert [(e["type"], e["targets"]) for e in heard] == [
        ("updateRoom", []),
        ("assignAdmin", ["user4"]),
        ("updateMember", ["user4"]),
        ("transferOwner", ["user4", "owner1"]),
        ("removeMember", ["owner1"]),
        ("dismissRoom", heard[5]["targets"]),
    ]
    seqs = [e["seq"] for e in heard]
    assert seqs == list(range(seqs[0], seqs[0] + 6)) and seqs[0] == 2  # createRoom was 1
    assert sorted(heard[5]["targets"]) == ["user4", "user5"]
    # the server acts, but for the transfer, made as From_Account (the operator)
    assert [e["sender"] for e in heard] == ["@server"] * 3 + ["owner1"] + ["@server"] * 2
