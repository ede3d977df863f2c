"""The IMKIT dialect (server/dialects/imkit.py, docs/dialects.md §4) on a real hub: the seed
requests of the study (§1.7) sent verbatim but for host and credentials, the envelope of its
errors, and the system messages WebSocket members hear."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from roomhub.server.hub import Hub

from ..conftest import HubFactory
from ..support import APP, RawClient, connect_backend, create_room, token, ws_url

API_KEY = "K"
CLIENT_KEYS = {"_id", "id", "nickname", "avatarUrl", "isRobot", "lastLoginTimeMS"}
SEED_ROLE = b'{"property": "role", "value": "admin"}'
SEED_ADD = b'{"invitees": ["ccc", "bbb"], "invitationRequired": true, "systemMessage": true}'
SEED_ADD_DIRECT = (
    b'{"invitees": ["ccc", "bbb"], "invitationRequired": false, "systemMessage": true}'
)


def user_headers(user: str, *, legacy: bool = False) -> dict[str, str]:
    """The seed curl's headers, with an app key and a user token of the test app."""
    return {
        "IM-CLIENT-KEY": APP,
        "Authorization" if legacy else "IM-Authorization": token(user),
        "Content-Type": "application/json; charset=utf-8",
    }


API = {"IM-API-KEY": API_KEY, "Content-Type": "application/json; charset=utf-8"}


@pytest.fixture
async def imkit_hub(start_hub: HubFactory) -> Hub:
    return await start_hub(dialects={APP: {"imkit": {"api_key": API_KEY}}})


@pytest.fixture
async def http(imkit_hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    base = f"http://127.0.0.1:{imkit_hub.http_port}"
    async with httpx.AsyncClient(base_url=base) as client:
        yield client


async def demo_room(hub: Hub) -> None:
    """demo-room: owner aaa, member user-001; bbb and ccc known users."""
    async with connect_backend(ws_url(hub)) as backend:
        await create_room(backend, "demo-room", "aaa", ["user-001"])
        for user in ("bbb", "ccc"):
            await backend.call("user.upsert", {"id": user, "nickname": user.upper()})


def ok(reply: httpx.Response) -> dict[str, Any]:
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["RC"], body["RM"]) == (0, "OK"), body
    return body["result"]  # type: ignore[no-any-return]


def assert_room(result: dict[str, Any], members: set[str]) -> None:
    assert result["_id"] == result["id"] == "demo-room"
    assert {m["id"] for m in result["members"]} == members
    for member in result["members"]:
        assert set(member) == CLIENT_KEYS
        assert member["_id"] == member["id"]
        assert (member["isRobot"], member["lastLoginTimeMS"]) == (False, 0)
    assert {p["client"] for p in result["memberProperties"]} == members
    assert isinstance(result["createdTimeMS"], int) and result["status"] == 1


def assert_error(reply: httpx.Response, status: int, rm: str | None = None) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert body["RC"] == status and "result" not in body
    if rm is not None:
        assert body["RM"] == rm
    return body  # type: ignore[no-any-return]


async def test_seed_update_member_property_verbatim(
    imkit_hub: Hub, http: httpx.AsyncClient
) -> None:
    await demo_room(imkit_hub)
    async with RawClient.connect(ws_url(imkit_hub), "json") as ws:
        await ws.auth("user-001")
        reply = await http.put(
            "/rooms/demo-room/member/user-001", content=SEED_ROLE, headers=user_headers("aaa")
        )
        result = ok(reply)
        assert_room(result, {"aaa", "user-001"})
        assert (result["owner"], result["managers"], result["roomType"]) == (
            "aaa",
            ["user-001"],
            "group",
        )
        message = await ws.event()
        assert (message["type"], message["targets"], message["notify"]) == (
            "assignAdmin",
            ["user-001"],
            True,
        )
        assert message["sender"] == "aaa"
        # the seed's second form (axios: a JSON body): a custom property, back in
        # memberProperties; the legacy Authorization header works too
        score = await http.put(
            "/rooms/demo-room/member/user-001",
            json={"property": "score", "value": 100},
            headers=user_headers("aaa", legacy=True),
        )
        props = {p["client"]: p for p in ok(score)["memberProperties"]}
        assert props["user-001"] == {
            "client": "user-001",
            "role": "admin",
            "level": 0,
            "score": 100,
        }
        assert (await ws.event())["changes"] == {"score": 100}
        # nickname and avatarUrl are roomhub's builtins
        nick = await http.put(
            "/rooms/demo-room/member/user-001",
            json={"property": "avatarUrl", "value": "http://example.com/avatar.jpg"},
            headers=user_headers("user-001"),
        )
        shown = next(m for m in ok(nick)["members"] if m["id"] == "user-001")
        assert shown["avatarUrl"] == "http://example.com/avatar.jpg"


async def test_seed_add_members_verbatim_invites(imkit_hub: Hub, http: httpx.AsyncClient) -> None:
    await demo_room(imkit_hub)
    async with RawClient.connect(ws_url(imkit_hub), "json") as ws:
        await ws.auth("user-001")
        reply = await http.post(
            "/rooms/demo-room/members", content=SEED_ADD, headers=user_headers("aaa")
        )
        assert_room(ok(reply), {"aaa", "user-001"})  # invited, not yet members
        message = await ws.event()
        assert (message["type"], sorted(message["targets"])) == ("inviteMember", ["bbb", "ccc"])
        # ccc accepts: POST /rooms/{id}/join with an empty body (an old doc's form post)
        joined = await http.post(
            "/rooms/demo-room/join",
            headers={**user_headers("ccc"), "Content-Type": "application/x-www-form-urlencoded"},
        )
        assert_room(ok(joined), {"aaa", "user-001", "ccc"})
        assert (await ws.event())["type"] == "acceptInvitation"


async def test_seed_add_members_verbatim_direct(imkit_hub: Hub, http: httpx.AsyncClient) -> None:
    await demo_room(imkit_hub)
    async with RawClient.connect(ws_url(imkit_hub), "json") as ws:
        await ws.auth("user-001")
        reply = await http.post(
            "/rooms/demo-room/members", content=SEED_ADD_DIRECT, headers=user_headers("aaa")
        )
        result = ok(reply)
        assert_room(result, {"aaa", "user-001", "bbb", "ccc"})
        assert {m["id"]: m["nickname"] for m in result["members"]}["ccc"] == "CCC"
        message = await ws.event()
        assert (message["type"], sorted(message["targets"])) == ("addMember", ["bbb", "ccc"])
        assert message["notify"] is True


async def test_auth_failures_are_401_in_the_envelope(
    imkit_hub: Hub, http: httpx.AsyncClient
) -> None:
    await demo_room(imkit_hub)
    path = "/rooms/demo-room"
    cases = [
        {},
        {"IM-CLIENT-KEY": APP},
        {"IM-Authorization": token("aaa")},
        {"IM-CLIENT-KEY": "other-app", "IM-Authorization": token("aaa")},
        {"IM-CLIENT-KEY": APP, "IM-Authorization": "not-a-jwt"},
        {"IM-CLIENT-KEY": APP, "IM-Authorization": token("aaa", secret="x" * 40)},
        {"IM-API-KEY": "wrong"},
    ]
    for headers in cases:
        reply = await http.get(path, headers=headers)
        body = assert_error(reply, 401, "Unauthorized")
        assert body["error"]["code"] == "INVALID_TOKEN", headers
    assert_room(ok(await http.get(path, headers=user_headers("aaa"))), {"aaa", "user-001"})
    assert_room(ok(await http.get(path, headers=API)), {"aaa", "user-001"})


async def test_forbidden_and_missing_in_the_envelope(
    imkit_hub: Hub, http: httpx.AsyncClient
) -> None:
    await demo_room(imkit_hub)
    # a member may not make anyone admin (only the owner may)
    refused = await http.put(
        "/rooms/demo-room/member/aaa", content=SEED_ROLE, headers=user_headers("user-001")
    )
    assert assert_error(refused, 403)["error"]["code"] == "INSUFFICIENT_PERMISSIONS"
    missing = await http.get("/rooms/no-such-room", headers=user_headers("aaa"))
    assert assert_error(missing, 404)["error"]["code"] == "ROOM_NOT_FOUND"
    bad_role = await http.put(
        "/rooms/demo-room/member/user-001",
        json={"property": "role", "value": "guest"},
        headers=user_headers("aaa"),
    )
    assert_error(bad_role, 400)
    outsider = await http.get("/rooms/demo-room", headers=user_headers("bbb"))
    assert assert_error(outsider, 403)["error"]["code"] == "NOT_ROOM_MEMBER"


async def test_admin_clients_update_remove_leave_and_delete(
    imkit_hub: Hub, http: httpx.AsyncClient
) -> None:
    await demo_room(imkit_hub)
    created = await http.post(
        "/admin/clients",
        json={
            "_id": "ddd",
            "nickname": "DDD",
            "avatarUrl": "http://a/d.png",
            "issueAccessToken": True,
        },
        headers=API,
    )
    client = ok(created)
    assert {k: client[k] for k in CLIENT_KEYS} == {
        "_id": "ddd",
        "id": "ddd",
        "nickname": "DDD",
        "avatarUrl": "http://a/d.png",
        "isRobot": False,
        "lastLoginTimeMS": 0,
    }
    as_user = await http.post("/admin/clients", json={"_id": "eee"}, headers=user_headers("aaa"))
    assert_error(as_user, 403)
    # the issued token is a user token of the app
    add = await http.post(
        "/rooms/demo-room/members", json={"invitees": ["ddd", "bbb"]}, headers=API
    )
    assert_room(ok(add), {"aaa", "user-001", "ddd", "bbb"})
    ddd = {"IM-CLIENT-KEY": APP, "IM-Authorization": client["token"]}
    assert_room(
        ok(await http.get("/rooms/demo-room", headers=ddd)), {"aaa", "user-001", "ddd", "bbb"}
    )
    renamed = await http.put(
        "/rooms/demo-room", json={"name": "Demo", "cover": "http://c"}, headers=user_headers("aaa")
    )
    assert (ok(renamed)["name"], ok(renamed)["cover"]) == ("Demo", "http://c")
    async with RawClient.connect(ws_url(imkit_hub), "json") as ws:
        await ws.auth("aaa")
        # the owner removes bbb; ddd leaves (its own id)
        removed = await http.post(
            "/rooms/demo-room/delete/members",
            json={"members": ["bbb"]},
            headers=user_headers("aaa"),
        )
        assert_room(ok(removed), {"aaa", "user-001", "ddd"})
        assert (await ws.event())["type"] == "removeMember"
        left = await http.post(
            "/rooms/demo-room/delete/members", json={"members": ["ddd"]}, headers=ddd
        )
        assert_room(ok(left), {"aaa", "user-001"})
        assert (await ws.event())["type"] == "leaveRoom"
        not_owner = await http.delete("/rooms/demo-room", headers=user_headers("user-001"))
        assert_error(not_owner, 403)
        deleted = await http.delete("/rooms/demo-room", headers=user_headers("aaa"))
        assert ok(deleted) == {"n": 1, "ok": 1}
        assert (await ws.event())["type"] == "dismissRoom"
    assert_error(await http.get("/rooms/demo-room", headers=API), 404)
