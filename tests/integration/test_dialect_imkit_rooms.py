"""The IMKIT dialect's room creation, listing and invitation endpoints, its refusals of what
roomhub does not have, its rate-limit rendering, and the system messages a member on another
node hears (server/dialects/imkit.py, docs/dialects.md §4). Request bodies are the IMKIT
docs' examples where they give one, sent as raw bytes."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from roomhub.server.hub import Hub

from ..conftest import HubFactory
from ..support import APP, RawClient, RedisProcess, ws_url
from .test_dialect_imkit import API, API_KEY, CLIENT_KEYS, assert_error, ok, user_headers

DIALECTS = {APP: {"imkit": {"api_key": API_KEY}}}
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
# IMKIT docs: Room-Create.md (POST /rooms/, IM-API-KEY)
CREATE = (
    b'{"name": "Martena", "cover": "http://loremflickr.com/240/240/style?Kelly", '
    b'"roomType": "direct", "roomTags": ["demo", "foo", "bar"], '
    b'"members": ["demo-team", "guest-123"]}'
)
# create-a-room.md (POST /rooms/createAndJoin): the group and the direct examples
JOIN_GROUP = (
    b'{"_id": "demo-room", "invitationRequired": true, "systemMessage": true, '
    b'"invitee": ["ccc", "bbb"], "roomType": "group"}'
)
JOIN_DIRECT = b'{"systemMessage": true, "invitee": ["ccc"], "roomType": "direct"}'
# Room-Add-member-(Legacy).md
LEGACY_ADD = b'{"invitationRequired": true, "systemMessage": true}'
# list-rooms.md's query
LIST_QUERY = "skip=0&limit=20&sort=-lastMessage&updatedAfter=2020-10-15T03:28:54Z"
USERS = ("aaa", "bbb", "ccc", "ddd", "eee", "fff", "demo-team", "guest-123", "watcher")


@pytest.fixture
async def imkit_hub(start_hub: HubFactory) -> Hub:
    return await start_hub(dialects=DIALECTS)


@pytest.fixture
async def http(imkit_hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(imkit_hub) as client:
        await add_users(client)
        yield client


def client_of(hub: Hub) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{hub.http_port}")


async def add_users(http: httpx.AsyncClient) -> None:
    """Every user of these tests, made through IMKIT's own POST /admin/clients."""
    for user in USERS:
        ok(
            await http.post(
                "/admin/clients", json={"_id": user, "nickname": user.upper()}, headers=API
            )
        )


def as_client(user: str) -> dict[str, str]:
    """IM-API-KEY with IM-CLIENT-ID: the platform key acting about one user."""
    return {**API, "IM-CLIENT-ID": user}


def member_ids(room: dict[str, Any]) -> set[str]:
    return {m["id"] for m in room["members"]}


async def exists(http: httpx.AsyncClient, room: str) -> bool:
    return ok(await http.get(f"/rooms/{room}/exists", headers=user_headers("aaa")))["exists"]  # type: ignore[no-any-return]


def error_code(reply: httpx.Response, status: int) -> tuple[str, str | None]:
    body = assert_error(reply, status)
    return body["error"]["code"], body["error"].get("field")


async def test_create_room_with_the_api_key(http: httpx.AsyncClient) -> None:
    room = ok(await http.post("/rooms/", content=CREATE, headers=API))
    assert (room["name"], room["roomType"], room["owner"]) == ("Martena", "direct", "demo-team")
    assert member_ids(room) == {"demo-team", "guest-123"}
    assert (room["cover"], room["roomTags"]) == (
        "http://loremflickr.com/240/240/style?Kelly",
        ["demo", "foo", "bar"],
    )
    assert room["_id"] == room["id"] and await exists(http, room["id"])
    again = ok(await http.get(f"/rooms/{room['id']}", headers=user_headers("guest-123")))
    assert again["roomTags"] == ["demo", "foo", "bar"]
    # without the trailing slash too, with an explicit owner and id
    body = {"_id": "r-owned", "owner": "aaa", "members": ["bbb"], "botMode": False}
    assert ok(await http.post("/rooms", json=body, headers=API))["owner"] == "aaa"
    # a user token owns what it creates
    mine = ok(await http.post("/rooms/", json={"_id": "r-mine"}, headers=user_headers("ccc")))
    assert (mine["owner"], member_ids(mine)) == ("ccc", {"ccc"})


async def test_create_room_refusals_leave_no_room(http: httpx.AsyncClient) -> None:
    refusals = [
        ({"_id": "x1", "owner": "aaa", "webhook": "hook"}, API, 400, "NOT_SUPPORTED", "webhook"),
        ({"_id": "x1", "owner": "aaa", "opening": 1}, API, 400, "NOT_SUPPORTED", "opening"),
        (
            {"_id": "x1", "owner": "aaa", "cover": "c" * 1100},
            API,
            400,
            "INVALID_PARAMETER",
            "cover",
        ),
        ({"_id": "x 1", "owner": "aaa"}, API, 400, "INVALID_PARAMETER", "_id"),
        (
            {"_id": "x1", "roomType": "custom", "owner": "aaa"},
            API,
            400,
            "INVALID_PARAMETER",
            "roomType",
        ),
        ({"_id": "x1"}, API, 400, "INVALID_PARAMETER", "owner"),
        ({"_id": "x1", "owner": "bbb"}, user_headers("aaa"), 400, "INVALID_PARAMETER", "owner"),
        ({"_id": "x1", "owner": "nobody"}, API, 404, "USER_NOT_FOUND", None),
    ]
    for body, headers, status, code, field in refusals:
        reply = await http.post("/rooms/", json=body, headers=headers)
        assert error_code(reply, status) == (code, field), body
    assert not await exists(http, "x1")
    ok(await http.post("/rooms/", json={"_id": "x1", "owner": "aaa"}, headers=API))
    taken = await http.post("/rooms/", json={"_id": "x1", "owner": "bbb"}, headers=API)
    assert error_code(taken, 409) == ("ROOM_EXISTS", None)


async def test_create_and_join(http: httpx.AsyncClient) -> None:
    group = ok(
        await http.post("/rooms/createAndJoin", content=JOIN_GROUP, headers=user_headers("aaa"))
    )
    assert (group["_id"], group["owner"], member_ids(group)) == ("demo-room", "aaa", {"aaa"})
    pending = ok(await http.get("/rooms/demo-room/invitations", headers=user_headers("aaa")))
    assert pending["totalCount"] == 2
    assert {i["invitee"]["id"] for i in pending["data"]} == {"bbb", "ccc"}
    direct = ok(
        await http.post("/rooms/createAndJoin", content=JOIN_DIRECT, headers=user_headers("aaa"))
    )
    assert (direct["roomType"], member_ids(direct)) == ("direct", {"aaa", "ccc"})
    # a direct room never invites; the platform key creates as the IM-CLIENT-ID user
    body = {"_id": "d2", "roomType": "direct", "invitee": "bbb", "invitationRequired": True}
    d2 = ok(await http.post("/rooms/createAndJoin", json=body, headers=as_client("ddd")))
    assert (d2["owner"], member_ids(d2)) == ("ddd", {"ddd", "bbb"})
    # an invitee that does not exist: the new room is gone again (its props with it)
    body = {"_id": "g2", "invitee": ["bbb", "nobody"], "invitationRequired": True, "cover": "c"}
    missing = await http.post("/rooms/createAndJoin", json=body, headers=user_headers("aaa"))
    assert error_code(missing, 404) == ("USER_NOT_FOUND", None)
    assert not await exists(http, "g2")
    taken = await http.post("/rooms/createAndJoin", content=JOIN_GROUP, headers=user_headers("bbb"))
    assert error_code(taken, 409) == ("ROOM_EXISTS", None)
    anonymous = await http.post("/rooms/createAndJoin", json={"_id": "g3"}, headers=API)
    assert error_code(anonymous, 400) == ("INVALID_PARAMETER", "IM-CLIENT-ID")
    wrong = await http.post(
        "/rooms/createAndJoin", json={"invitee": 7}, headers=user_headers("aaa")
    )
    assert error_code(wrong, 400) == ("INVALID_PARAMETER", "invitee")


async def test_exists(http: httpx.AsyncClient) -> None:
    ok(await http.post("/rooms/", json={"_id": "here", "owner": "aaa"}, headers=API))
    assert await exists(http, "here") and not await exists(http, "gone")
    assert ok(await http.get("/rooms/here/exists", headers=API)) == {"exists": True}
    assert error_code(await http.get("/rooms/here/exists"), 401) == ("INVALID_TOKEN", None)
    assert (
        error_code(await http.get("/rooms/no%20way/exists", headers=API), 400)[0]
        == "INVALID_PARAMETER"
    )


async def test_list_my_rooms(http: httpx.AsyncClient) -> None:
    for room, name in (("r-b", "Beta"), ("r-a", "Gamma"), ("r-c", "Alpha")):
        ok(
            await http.post(
                "/rooms/", json={"_id": room, "name": name, "owner": "aaa"}, headers=API
            )
        )
        await asyncio.sleep(0.002)  # distinct created times
    ok(await http.post("/rooms/", json={"_id": "r-x", "owner": "bbb"}, headers=API))
    invite = {"invitees": ["aaa"], "invitationRequired": True}
    ok(await http.post("/rooms/r-x/members", json=invite, headers=user_headers("bbb")))
    headers = {**user_headers("aaa"), "IM-CLIENT-ID": "aaa"}
    listed = ok(await http.get(f"/rooms?{LIST_QUERY}", headers=headers))
    assert listed["totalCount"] == 3  # not r-x: only invited
    assert [r["_id"] for r in listed["data"]] == ["r-a", "r-b", "r-c"]
    first = listed["data"][0]
    assert "members" not in first and (first["owner"], first["roomType"]) == ("aaa", "group")

    async def ids(query: str, headers: dict[str, str] = headers) -> list[str]:
        return [r["_id"] for r in ok(await http.get(f"/rooms?{query}", headers=headers))["data"]]

    assert await ids("sort=-createdTime") == ["r-c", "r-a", "r-b"]
    assert await ids("sort=name") == ["r-c", "r-b", "r-a"]
    assert await ids("sort=-createdTime&skip=1&limit=1") == ["r-a"]
    assert await ids("skip=2&limit=0") == ["r-c"]
    assert await ids("updatedAfter=1602732534000", as_client("bbb")) == ["r-x"]
    for query, field in (
        ("skip=-1", "skip"),
        ("limit=x", "limit"),
        ("updatedAfter=later", "updatedAfter"),
    ):
        assert error_code(await http.get(f"/rooms?{query}", headers=headers), 400) == (
            "INVALID_PARAMETER",
            field,
        )
    assert error_code(await http.get("/rooms", headers=API), 400)[1] == "IM-CLIENT-ID"


async def test_invitations_list_decline_and_cancel(http: httpx.AsyncClient) -> None:
    for room in ("demo-room", "other"):
        ok(
            await http.post(
                "/rooms/", json={"_id": room, "owner": "aaa", "members": ["bbb"]}, headers=API
            )
        )
    invite = {"invitees": ["ccc", "ddd", "eee"], "invitationRequired": True}
    ok(await http.post("/rooms/demo-room/members", json=invite, headers=user_headers("aaa")))
    legacy = await http.post(
        "/rooms/other/members/ccc", content=LEGACY_ADD, headers=user_headers("bbb")
    )
    assert member_ids(ok(legacy)) == {"aaa", "bbb"}  # invited
    # ccc's pending invitations, each with its room and inviter
    mine = ok(await http.get("/rooms/invitations", headers=user_headers("ccc")))
    assert mine["totalCount"] == 2
    by_room = {i["room"]["_id"]: i for i in mine["data"]}
    assert set(by_room) == {"demo-room", "other"}
    assert by_room["other"]["inviter"]["id"] == "bbb"
    assert set(by_room["other"]["inviter"]) == CLIENT_KEYS
    assert ISO.match(by_room["other"]["createdAt"]) and "members" not in by_room["other"]["room"]
    assert ok(await http.get("/rooms/invitations", headers=as_client("ddd")))["totalCount"] == 1
    # the room's pending invitations
    room = ok(await http.get("/rooms/demo-room/invitations", headers=user_headers("bbb")))
    assert room["totalCount"] == 3
    entry = room["data"][0]
    assert set(entry) == {"invitee", "inviter", "createdAt", "updatedAt"}
    assert (entry["inviter"]["id"], entry["inviter"]["nickname"]) == ("aaa", "AAA")
    outsider = await http.get("/rooms/demo-room/invitations", headers=user_headers("fff"))
    assert error_code(outsider, 403) == ("NOT_ROOM_MEMBER", None)
    # ccc declines demo-room: what remains to ccc is other's
    declined = ok(await http.delete("/rooms/demo-room/invitations", headers=user_headers("ccc")))
    assert [i["room"]["_id"] for i in declined["data"]] == ["other"]
    again = await http.delete("/rooms/demo-room/invitations", headers=user_headers("ccc"))
    assert error_code(again, 409)[0] == "NO_INVITATION"
    # the inviter cancels ddd (IMKIT's path has a trailing slash), the deprecated form eee;
    # a plain member may not (roomhub's rule)
    body = b'{"invitees":["ddd"]}'
    path = "/rooms/demo-room/delete/invitations/"
    refused = await http.post(path, content=body, headers=user_headers("bbb"))
    assert error_code(refused, 403)[0] == "INSUFFICIENT_PERMISSIONS"
    cancelled = ok(await http.post(path, content=body, headers=user_headers("aaa")))
    assert [i["invitee"]["id"] for i in cancelled["data"]] == ["eee"]
    last = ok(await http.delete("/rooms/demo-room/invitations/eee", headers=user_headers("aaa")))
    assert last == {"totalCount": 0, "data": []}
    stranger = await http.delete("/rooms/other/invitations/ccc", headers=user_headers("fff"))
    assert error_code(stranger, 403)[0] == "NOT_ROOM_MEMBER"
    # the platform key accepts for the IM-CLIENT-ID user
    joined = ok(await http.post("/rooms/other/join", headers=as_client("ccc")))
    assert member_ids(joined) == {"aaa", "bbb", "ccc"}
    assert ok(await http.get("/rooms/invitations", headers=user_headers("ccc")))["totalCount"] == 0


async def test_legacy_add_member(http: httpx.AsyncClient) -> None:
    ok(await http.post("/rooms/", json={"_id": "demo-room", "owner": "aaa"}, headers=API))
    added = ok(await http.post("/rooms/demo-room/members/bbb", headers=user_headers("aaa")))
    assert member_ids(added) == {"aaa", "bbb"}
    invited = ok(await http.post("/rooms/demo-room/members/ccc", content=LEGACY_ADD, headers=API))
    assert member_ids(invited) == {"aaa", "bbb"}
    unknown = await http.post("/rooms/demo-room/members/nobody", headers=user_headers("aaa"))
    assert error_code(unknown, 404)[0] == "USER_NOT_FOUND"
    outsider = await http.post("/rooms/demo-room/members/ddd", headers=user_headers("eee"))
    assert error_code(outsider, 403)[0] == "NOT_ROOM_MEMBER"


async def test_unsupported_and_unknown_paths_answer_in_the_envelope(
    http: httpx.AsyncClient,
) -> None:
    ok(await http.post("/rooms/", json={"_id": "demo-room", "owner": "aaa"}, headers=API))
    unsupported = [
        ("POST", "/blockStatus/room/demo-room/bbb", user_headers("aaa")),
        ("DELETE", "/blockStatus/room/demo-room/bbb", user_headers("aaa")),
        ("POST", "/admin/clients/bbb/mute/demo-room", API),
        ("DELETE", "/admin/clients/bbb/mute/demo-room", API),
        ("PUT", "/admin/clients/bbb/token", API),
        ("DELETE", "/admin/clients/bbb/token", API),
    ]
    for method, path, headers in unsupported:
        reply = await http.request(method, path, headers=headers)
        assert error_code(reply, 400) == ("NOT_SUPPORTED", None), path
        assert error_code(await http.request(method, path), 401)[0] == "INVALID_TOKEN"
    bind = {"_id": "bbb", "token": "f7b6d364", "expirationDate": 1}
    assert (
        error_code(await http.post("/admin/clients", json=bind, headers=API), 400)[0]
        == "NOT_SUPPORTED"
    )
    managers = await http.put("/rooms/demo-room", json={"managers": ["bbb"]}, headers=API)
    assert error_code(managers, 400) == ("NOT_SUPPORTED", "managers")
    for method, path in (("PATCH", "/rooms/demo-room"), ("GET", "/rooms/demo-room/nothing")):
        reply = await http.request(method, path, headers=API)
        assert error_code(reply, 404)[0] == "UNKNOWN_OP"


async def test_rate_limit_is_429_with_retry_after(start_hub: HubFactory) -> None:
    hub = await start_hub(rate_limit=1, dialects=DIALECTS)
    async with client_of(hub) as http:
        for user in ("aaa", "bbb"):
            ok(await http.post("/admin/clients", json={"_id": user}, headers=API))
            await asyncio.sleep(1.05)
        # two ops (room.create with the cover, then member.add for the invitation) in one
        # request: the second waits out the ceiling rather than leaving half a request done
        body = {"_id": "limited", "cover": "http://c", "invitee": "bbb", "invitationRequired": True}
        room = ok(await http.post("/rooms/createAndJoin", json=body, headers=user_headers("aaa")))
        assert room["cover"] == "http://c"
        invited = ok(await http.get("/rooms/limited/invitations", headers=API))
        assert [i["invitee"]["_id"] for i in invited["data"]] == ["bbb"]
        # two at once: at most one fits the ceiling's second
        puts = [http.put("/rooms/limited", json={"name": n}, headers=API) for n in "NM"]
        refused = max(await asyncio.gather(*puts), key=lambda reply: reply.status_code)
        body = assert_error(refused, 429)
        retry = int(refused.headers["retry-after"])
        assert (
            body["error"]["code"] == "RATE_LIMIT_EXCEEDED"
            and body["error"]["retryAfter"] == retry >= 1
        )
        assert body["error"]["roomhubCode"] == 100009


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    with RedisProcess() as server:
        yield server


async def test_a_hung_redis_is_503_in_the_envelope(
    own_redis: RedisProcess, start_hub: HubFactory
) -> None:
    hub = await start_hub(redis=own_redis.url, redis_timeout=0.5, dialects=DIALECTS)
    async with client_of(hub) as http:
        ok(await http.post("/admin/clients", json={"_id": "aaa"}, headers=API))
        os.kill(own_redis.proc.pid, signal.SIGSTOP)  # hung: the sockets stay open
        try:
            body = {"_id": "r", "invitee": "aaa", "cover": "c"}
            replies = [
                await http.post("/rooms/createAndJoin", json=body, headers=as_client("aaa")),
                await http.get("/rooms/r/exists", headers=API),
            ]
        finally:
            os.kill(own_redis.proc.pid, signal.SIGCONT)
        for reply in replies:
            error = assert_error(reply, 503)["error"]
            assert (error["code"], error["roomhubCode"]) == ("INTERNAL", 100001)


async def test_a_member_on_another_node_hears_every_change(
    redis_url: str, start_hub: HubFactory
) -> None:
    node_a = await start_hub(redis=redis_url, dialects=DIALECTS)
    node_b = await start_hub(redis=redis_url)
    async with client_of(node_a) as http, RawClient.connect(ws_url(node_b), "json") as ws:
        await add_users(http)
        await ws.auth("watcher")
        aaa = user_headers("aaa")
        room = "/rooms/two-node"
        body = {"_id": "two-node", "cover": "c", "invitee": ["watcher", "bbb"]}
        steps: list[tuple[str, str, dict[str, str], Any]] = [
            ("POST", "/rooms/createAndJoin", aaa, body),
            ("POST", f"{room}/members", API, {"invitees": ["ccc"]}),
            ("PUT", f"{room}/member/bbb", aaa, {"property": "role", "value": "admin"}),
            ("PUT", f"{room}/member/bbb", aaa, {"property": "score", "value": 7}),
            ("POST", f"{room}/members/ddd", aaa, {"invitationRequired": True}),
            ("POST", f"{room}/join", user_headers("ddd"), None),
            (
                "POST",
                f"{room}/members",
                aaa,
                {"invitees": ["eee", "fff"], "invitationRequired": True},
            ),
            ("DELETE", f"{room}/invitations", user_headers("eee"), None),
            ("POST", f"{room}/delete/invitations", aaa, {"invitees": ["fff"]}),
            ("POST", f"{room}/delete/members", aaa, {"members": ["ccc"]}),
            ("PUT", room, aaa, {"name": "Renamed"}),
            ("DELETE", room, aaa, None),
        ]
        for method, path, headers, payload in steps:
            ok(await http.request(method, path, headers=headers, json=payload))
        heard = await ws.events_until(12, "two-node")
    assert [(m["seq"], m["type"]) for m in heard] == list(
        enumerate(
            [
                "createRoom",
                "addMember",
                "assignAdmin",
                "updateMember",
                "inviteMember",
                "acceptInvitation",
                "inviteMember",
                "declineInvitation",
                "cancelInvitation",
                "removeMember",
                "updateRoom",
                "dismissRoom",
            ],
            start=1,
        )
    )
