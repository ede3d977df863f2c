"""The NetEase Yunxin IM v2 dialect (server/dialects/netease.py, docs/dialects.md §6) on real
hubs over HTTP: the study's seed request (§3.7) sent verbatim but for host and credentials,
every CheckSum refusal, each endpoint's success and errors, the envelope (HTTP 200 always),
the traceid retry, and the system messages a WebSocket member on another node hears."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from roomhub.server.hub import Hub

from ..conftest import HubFactory
from ..support import APP, RawClient, RedisProcess, connect_backend, ws_url

APP_KEY = "ne-appkey-0001"
APP_SECRET = "ne-app-secret-0123456789abcdef"
DIALECTS = {APP: {"netease": {"app_key": APP_KEY, "app_secret": APP_SECRET}}}
ROOM = "1602801663"
OK = b'{"code":200,"msg":"success","data":{}}'
# study §3.7, the body bytes exactly as the doc generator prints them
SEED = b"""{
    "room_id": 1602801663,
    "operator_account_id": "yx1",
    "member_role": 0,
    "room_nick": "ygy test",
    "room_avatar": "http://www.baidu.com",
    "notification_enabled": false,
    "notification_extension": "string",
    "member_level": 0,
    "antispam_business_id": "",
    "extension": "string",
    "need_antispam": "true"
}"""


def signed(
    *,
    key: str = APP_KEY,
    secret: str = APP_SECRET,
    cur_time: str | None = None,
    nonce: str | None = None,
    trace: str | None = None,
) -> dict[str, str]:
    """The seed curl's headers, filled as the SDK fills them (a uuid nonce, now in seconds)."""
    nonce = nonce if nonce is not None else uuid.uuid4().hex
    cur_time = cur_time if cur_time is not None else str(int(time.time()))
    headers = {
        "AppKey": key,
        "Nonce": nonce,
        "CurTime": cur_time,
        "CheckSum": hashlib.sha1((secret + nonce + cur_time).encode()).hexdigest(),
        "Content-Type": "application/json",
    }
    if trace is not None:
        headers["X-custom-traceid"] = trace
    return headers


def client(hub: Hub) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{hub.http_port}")


@pytest.fixture
async def ne_hub(start_hub: HubFactory) -> Hub:
    return await start_hub(dialects=DIALECTS)


@pytest.fixture
async def http(ne_hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    async with client(ne_hub) as http:
        yield http


async def seed_room(hub: Hub, members: tuple[str, ...] = ()) -> None:
    """Room 1602801663 created by yx1 (with `members`); yx1..yx4 known users."""
    async with connect_backend(ws_url(hub)) as backend:
        for user in ("yx1", "yx2", "yx3", "yx4"):
            await backend.call("user.upsert", {"id": user})
        await backend.call("room.create", {"room": ROOM, "owner": "yx1", "members": list(members)})


def body(reply: httpx.Response) -> dict[str, Any]:
    assert reply.status_code == 200, reply.text
    return reply.json()  # type: ignore[no-any-return]


def ok(reply: httpx.Response) -> Any:
    got = body(reply)
    assert (got["code"], got["msg"]) == (200, "success"), got
    return got["data"]


def refused(reply: httpx.Response, code: int, words: str = "") -> dict[str, Any]:
    got = body(reply)
    assert got["code"] == code, got
    assert words in got["msg"], got
    return got


async def members(http: httpx.AsyncClient, *ids: str) -> dict[str, dict[str, Any]]:
    path = f"/im/v2/room_members/{ROOM}/actions/batch"
    data = ok(await http.get(path, params={"account_ids": ",".join(ids)}, headers=signed()))
    return {m["account_id"]: m for m in data["success_list"]}


async def test_seed_set_member_role_verbatim(ne_hub: Hub, http: httpx.AsyncClient) -> None:
    await seed_room(ne_hub)
    async with RawClient.connect(ws_url(ne_hub), "json") as ws:
        await ws.auth("yx1")
        reply = await http.post(
            "/im/v2/room_members/yx2", content=SEED, headers=signed(trace=str(uuid.uuid4()))
        )
        assert (reply.status_code, reply.content) == (200, OK)
        added, updated = await ws.event(), await ws.event()
        assert (added["type"], added["targets"], added["sender"]) == ("addMember", ["yx2"], "yx1")
        assert (updated["type"], updated["extension"], updated["notify"]) == (
            "updateMember",
            "string",
            False,
        )
        assert updated["changes"] == {
            "nickname": "ygy test",
            "avatar": "http://www.baidu.com",
            "extension": "string",
        }
    got = (await members(http, "yx2"))["yx2"]
    assert {k: got[k] for k in got if k != "enter_time"} == {
        "account_id": "yx2",
        "room_nick": "ygy test",
        "room_avatar": "http://www.baidu.com",
        "extension": "string",
        "member_role": 0,
        "member_level": 0,
    }
    # the same under /nimserver (the SDKs' base), member_level as a string, operator "" (the
    # Go SDK always sends it): the owner acts
    for level in (b'"0"', b'"7"'):
        variant = SEED.replace(b'"yx1"', b'""').replace(
            b'"member_level": 0', b'"member_level": ' + level
        )
        reply = await http.post(
            "/nimserver/im/v2/room_members/yx3", content=variant, headers=signed()
        )
        assert (reply.status_code, reply.content) == (200, OK)
        got = (await members(http, "yx3"))["yx3"]
        assert (got["member_role"], got["member_level"], got["room_nick"]) == (
            0,
            int(level.strip(b'"')),
            "ygy test",
        )


async def test_roles_are_roomhubs_rules(ne_hub: Hub, http: httpx.AsyncClient) -> None:
    await seed_room(ne_hub, ("yx2", "yx3"))
    path = "/im/v2/room_members/yx3"

    def role(value: int, operator: str, **more: Any) -> dict[str, Any]:
        return {"room_id": int(ROOM), "operator_account_id": operator, "member_role": value, **more}

    # only the creator grants admin: a member may not, neither on a member nor on a stranger
    refused(await http.post(path, json=role(2, "yx2"), headers=signed()), 403)
    stranger = await http.post("/im/v2/room_members/yx4", json=role(0, "yx2"), headers=signed())
    refused(stranger, 403, "not allowed to set 'role'")
    assert set(await members(http, "yx2", "yx3", "yx4")) == {"yx2", "yx3"}  # yx4 not added
    ok(await http.post(path, json=role(2, "yx1"), headers=signed()))
    assert (await members(http, "yx3"))["yx3"]["member_role"] == 2
    # an admin sets guests (3) and members (0) below them, not other admins; not the creator
    ok(await http.post("/im/v2/room_members/yx2", json=role(3, "yx3"), headers=signed()))
    assert (await members(http, "yx2"))["yx2"]["member_role"] == 3
    refused(await http.post("/im/v2/room_members/yx1", json=role(0, ""), headers=signed()), 403)
    for bad in ({"member_role": 1}, {"member_role": "0"}, {"member_role": True}, {}):
        body_ = {"room_id": int(ROOM), "member_role": 0, **bad}
        if not bad:
            del body_["member_role"]
        refused(await http.post(path, json=body_, headers=signed()), 414, "member_role")
    for bad_room in ("1602801663", 1.5, True, 0, -1, 2**63):
        got = refused(
            await http.post(path, json=role(0, "yx1", room_id=bad_room), headers=signed()), 414
        )
        assert got["data"]["field"] == "room_id"
    missing = await http.post(path, json=role(0, "yx1", room_id=1), headers=signed())
    refused(missing, 404)
    bad_level = await http.post(path, json=role(3, "yx1", member_level=-1), headers=signed())
    assert refused(bad_level, 414)["data"]["field"] == "member_level"
    for account in ("@server", "a b", "x" * 65):
        bad_account = await http.post(
            f"/im/v2/room_members/{account}", json=role(0, "yx1"), headers=signed()
        )
        assert refused(bad_account, 414)["data"]["field"] == "account_id"
    unknown = await http.post("/im/v2/room_members/nobody", json=role(0, "yx1"), headers=signed())
    refused(unknown, 404, "does not exist")


async def test_notification_extension_limit_and_no_half_applied_request(
    ne_hub: Hub, http: httpx.AsyncClient
) -> None:
    await seed_room(ne_hub)
    long = orjson.loads(SEED) | {"notification_extension": "x" * 2049}
    got = refused(await http.post("/im/v2/room_members/yx2", json=long, headers=signed()), 414)
    assert got["data"]["field"] == "notification_extension"
    assert await members(http, "yx2") == {}  # not added either
    exact = orjson.loads(SEED) | {"notification_extension": "中" * 2048}  # characters, not bytes
    ok(await http.post("/im/v2/room_members/yx2", json=exact, headers=signed()))


async def test_auth_refusals_are_414_in_the_envelope(ne_hub: Hub, http: httpx.AsyncClient) -> None:
    await seed_room(ne_hub)
    path = f"/im/v2/chatrooms/{ROOM}"
    now = int(time.time())
    no_checksum = signed()
    del no_checksum["CheckSum"]
    tampered = signed()
    tampered["CheckSum"] = "0" * 40
    cases = {
        "no headers": ({}, "missing header AppKey, Nonce, CurTime, CheckSum"),
        "no CheckSum": (no_checksum, "missing header CheckSum"),
        "bad CheckSum": (tampered, "CheckSum verification failed"),
        "wrong secret": (signed(secret="other-secret"), "CheckSum verification failed"),
        "unknown AppKey": (signed(key="other-app"), "unknown AppKey"),
        "stale CurTime": (signed(cur_time=str(now - 301)), "more than 300 s"),
        "future CurTime": (signed(cur_time=str(now + 301)), "more than 300 s"),
        "CurTime in ms": (signed(cur_time=str(now * 1000)), "not milliseconds"),
        "long Nonce": (signed(nonce="n" * 129), "Nonce is longer than 128"),
    }
    for name, (headers, words) in cases.items():
        got = refused(await http.get(path, headers=headers), 414, words)
        assert APP_SECRET not in got["msg"] and "0" * 40 not in got["msg"], name
    # a refused CheckSum did not burn its nonce: the genuine request with it still passes
    genuine = signed(nonce="shared-nonce")
    forged = {**genuine, "CheckSum": "f" * 40}
    refused(await http.get(path, headers=forged), 414)
    assert ok(await http.get(path, headers=genuine))["room_id"] == int(ROOM)
    refused(await http.get(path, headers=genuine), 414, "Nonce already used")
    # either hex case; the window's edges pass
    upper = signed()
    upper["CheckSum"] = upper["CheckSum"].upper()
    ok(await http.get(path, headers=upper))
    ok(await http.get(path, headers=signed(cur_time=str(now - 290))))
    ok(await http.get(path, headers=signed(cur_time=str(now + 290))))


async def test_a_nonce_is_used_once_across_nodes(redis_url: str, start_hub: HubFactory) -> None:
    first = await start_hub(redis=redis_url, dialects=DIALECTS)
    second = await start_hub(redis=redis_url, dialects=DIALECTS)
    await seed_room(first)
    headers = signed()
    async with client(first) as a, client(second) as b:
        path = f"/im/v2/chatrooms/{ROOM}"
        ok(await a.get(path, headers=headers))
        refused(await b.get(path, headers=headers), 414, "Nonce already used")
        refused(await a.get(path, headers=headers), 414, "Nonce already used")
        ok(await b.get(path, headers=signed()))


async def test_chat_rooms_create_get_update(ne_hub: Hub, http: httpx.AsyncClient) -> None:
    await seed_room(ne_hub)
    create = {
        "creator": "yx2",
        "room_name": "live",
        "announcement": "hello",
        "live_url": "rtmp://x",
        "queue_level": 1,
        "in_out_notification": True,
        "antispam_configuration": {"enabled": False},
    }
    data = ok(await http.post("/im/v2/chatrooms", json=create, headers=signed()))
    room = data["room_id"]
    assert isinstance(room, int) and 10**9 <= room < 2**53
    assert data == {
        "room_id": room,
        "valid": True,
        "creator": "yx2",
        "room_name": "live",
        "announcement": "hello",
        "live_url": "rtmp://x",
        "extension": "",
        "chat_banned": False,
        "queue_level": 0,
    }
    assert ok(await http.get(f"/nimserver/im/v2/chatrooms/{room}", headers=signed())) == data
    update = {"room_name": "live 2", "extension": "{}", "notification_enabled": True}
    reply = await http.patch(f"/im/v2/chatrooms/{room}", json=update, headers=signed())
    assert reply.content == OK
    got = ok(await http.get(f"/im/v2/chatrooms/{room}", headers=signed()))
    assert (got["room_name"], got["extension"], got["announcement"]) == ("live 2", "{}", "hello")
    # errors: no creator, an unknown one, too long a name or announcement; no such room; a
    # member (not staff) as the operator of an update
    refused(await http.post("/im/v2/chatrooms", json={"room_name": "x"}, headers=signed()), 414)
    unknown = {"creator": "nobody", "room_name": "x"}
    refused(await http.post("/im/v2/chatrooms", json=unknown, headers=signed()), 404)
    long_name = {"creator": "yx1", "room_name": "n" * 129}
    assert (
        refused(await http.post("/im/v2/chatrooms", json=long_name, headers=signed()), 414)["data"][
            "field"
        ]
        == "room_name"
    )
    long_text = {"creator": "yx1", "room_name": "x", "announcement": "a" * 2000}
    assert (
        refused(await http.post("/im/v2/chatrooms", json=long_text, headers=signed()), 414)["data"][
            "field"
        ]
        == "announcement"
    )
    refused(await http.get("/im/v2/chatrooms/999", headers=signed()), 404)
    refused(await http.get("/im/v2/chatrooms/0999", headers=signed()), 414)
    ok(
        await http.post(
            "/im/v2/room_members/yx3",
            json={"room_id": room, "member_role": 0},
            headers=signed(),
        )
    )
    as_member = {"room_name": "mine", "operator_account_id": "yx3"}
    refused(await http.patch(f"/im/v2/chatrooms/{room}", json=as_member, headers=signed()), 403)
    too_long = {"room_name": "y", "notification_extension": "x" * 2049}
    refused(await http.patch(f"/im/v2/chatrooms/{room}", json=too_long, headers=signed()), 414)


async def test_members_update_list_batch_kick(ne_hub: Hub, http: httpx.AsyncClient) -> None:
    await seed_room(ne_hub, ("yx2", "yx3"))
    patch = {"room_id": int(ROOM), "room_nick": "Two", "persistence": True, "extension": "e"}
    data = ok(await http.patch("/im/v2/room_members/yx2", json=patch, headers=signed()))
    assert data == {
        "room_id": int(ROOM),
        "account_id": "yx2",
        "room_nick": "Two",
        "room_avatar": "",
        "extension": "e",
        "member_role": 0,
    }
    refused(
        await http.patch("/im/v2/room_members/yx2", json={"room_id": int(ROOM)}, headers=signed()),
        414,
        "nothing to update",
    )
    outsider = {"room_id": int(ROOM), "room_nick": "Four"}
    refused(await http.patch("/im/v2/room_members/yx4", json=outsider, headers=signed()), 404)
    # a member may not rename another (roomhub's profile rule)
    other = {"room_id": int(ROOM), "room_nick": "X", "operator_account_id": "yx3"}
    refused(await http.patch("/im/v2/room_members/yx2", json=other, headers=signed()), 403)
    # list_members: every member, or those of the roles asked
    path = f"/im/v2/chatrooms/{ROOM}/actions/list_members"
    items = ok(await http.get(path, headers=signed()))["items"]
    assert [(m["account_id"], m["member_role"]) for m in items] == [
        ("yx1", 1),
        ("yx2", 0),
        ("yx3", 0),
    ]
    assert items[1]["room_nick"] == "Two" and items[1]["chat_banned"] is False
    owner = ok(await http.get(path, params={"member_roles": "1,2"}, headers=signed()))
    assert [m["account_id"] for m in owner["items"]] == ["yx1"]
    refused(await http.get(path, params={"member_roles": "a"}, headers=signed()), 414)
    refused(await http.get("/im/v2/chatrooms/77/actions/list_members", headers=signed()), 404)
    # batch: success_list and failed_list
    batch = f"/im/v2/room_members/{ROOM}/actions/batch"
    got = ok(await http.get(batch, params={"account_ids": "yx2,yx4,@x"}, headers=signed()))
    assert [m["account_id"] for m in got["success_list"]] == ["yx2"]
    assert [(f["account_id"], f["error_code"]) for f in got["failed_list"]] == [
        ("yx4", 404),
        ("@x", 414),
    ]
    refused(await http.get(batch, headers=signed()), 414, "account_ids")
    # kick: by the owner (operator absent), room_id in the body or the query
    kick = "/im/v2.1/room_members/{}/actions/kicked"
    body_ = {"room_id": int(ROOM), "operator_account_id": "", "notification_extension": "{}"}
    assert (await http.patch(kick.format("yx2"), json=body_, headers=signed())).content == OK
    assert set(await members(http, "yx2", "yx3")) == {"yx3"}
    refused(await http.patch(kick.format("yx2"), json=body_, headers=signed()), 404)
    as_member = {"room_id": int(ROOM), "operator_account_id": "yx3"}
    refused(await http.patch(kick.format("yx1"), json=as_member, headers=signed()), 403)
    by_query = await http.patch(
        "/nimserver" + kick.format("yx3"), params={"room_id": ROOM}, headers=signed()
    )
    assert by_query.content == OK
    assert await members(http, "yx3") == {}


async def test_envelope_for_everything_else(ne_hub: Hub, http: httpx.AsyncClient) -> None:
    await seed_room(ne_hub)
    for prefix in ("", "/nimserver"):
        probe = await http.get(f"{prefix}/health/liveness.action")
        assert (probe.status_code, probe.content) == (200, OK)
    unsupported = [
        ("PATCH", "/im/v2/room_members/yx2/actions/chat_banned"),
        ("PATCH", "/im/v2/room_members/yx2/actions/temp_chat_banned"),
        ("PATCH", "/im/v2/room_members/yx2/actions/blocked"),
        ("PATCH", "/im/v2/room_members/yx2/actions/tags"),
        ("POST", "/im/v2/room_members/actions/virtual_members"),
        ("GET", f"/im/v2/chatrooms/{ROOM}/actions/list_online_members"),
        ("PATCH", f"/im/v2/chatrooms/{ROOM}/actions/update_status"),
        ("GET", f"/im/v2/chatrooms/{ROOM}/actions/address"),
        ("DELETE", f"/im/v2/chatrooms/{ROOM}"),
        ("POST", "/nimserver/chatroom/setMemberRole.action"),
        ("GET", "/im/v3/whatever"),
    ]
    for method, path in unsupported:
        reply = await http.request(method, path, headers=signed())
        refused(reply, 403, f"{method} {path} is not supported by roomhub")
    refused(await http.request("PATCH", unsupported[0][1]), 414)  # auth comes first
    not_json = await http.post("/im/v2/room_members/yx2", content=b"{", headers=signed())
    refused(not_json, 414, "not JSON")
    array = await http.post("/im/v2/room_members/yx2", content=b"[]", headers=signed())
    refused(array, 414, "JSON object")
    huge = await http.post(
        "/im/v2/room_members/yx2",
        content=b" " * (ne_hub.settings.max_frame_bytes + 1),
        headers=signed(),
    )
    refused(huge, 414, "exceeds")


async def test_rate_limit_is_416(start_hub: HubFactory) -> None:
    hub = await start_hub(dialects=DIALECTS, rate_limit=5)  # the setup: 5 ops
    await seed_room(hub)
    await asyncio.sleep(1.05)  # the setup's ops out of the one-second window
    async with client(hub) as http:
        got = None
        for index in range(7):
            create = {"creator": "yx1", "room_name": f"r{index}"}
            reply = body(await http.post("/im/v2/chatrooms", json=create, headers=signed()))
            if reply["code"] != 200:
                got = reply
                break
        assert got is not None and got["code"] == 416, got
        assert got["data"]["roomhub_code"] == 100009 and got["data"]["retry_after_ms"] > 0


async def test_a_redis_outage_is_500_and_the_probe_503(start_hub: HubFactory) -> None:
    with RedisProcess() as own:
        hub = await start_hub(
            redis=own.url, redis_timeout=0.5, pubsub_probe_interval=0.2, dialects=DIALECTS
        )
        await seed_room(hub)
        async with client(hub) as http:
            path = f"/im/v2/chatrooms/{ROOM}"
            ok(await http.get(path, headers=signed()))
            os.kill(own.proc.pid, signal.SIGSTOP)  # hung: the sockets stay open
            try:
                got = refused(await http.get(path, headers=signed()), 500, "store unavailable")
                assert "same X-custom-traceid" in got["msg"]
                kick = {"room_id": int(ROOM)}
                reply = await http.patch(
                    "/im/v2.1/room_members/yx2/actions/kicked", json=kick, headers=signed()
                )
                refused(reply, 500)
                for _ in range(50):
                    probe = await http.get("/nimserver/health/liveness.action")
                    if probe.status_code == 503:
                        break
                    await asyncio.sleep(0.1)
                assert probe.status_code == 503 and probe.json()["code"] == 503
            finally:
                os.kill(own.proc.pid, signal.SIGCONT)
            ok(await http.get(path, headers=signed()))


async def test_a_traceid_retry_is_applied_once(ne_hub: Hub, http: httpx.AsyncClient) -> None:
    await seed_room(ne_hub)
    trace = str(uuid.uuid4())
    for _ in range(2):  # the SDK's retry: same traceid and body, a fresh nonce
        reply = await http.post(
            "/im/v2/room_members/yx2", content=SEED, headers=signed(trace=trace)
        )
        assert reply.content == OK
    async with connect_backend(ws_url(ne_hub)) as backend:
        room = await backend.call("room.get", {"room": ROOM})
        assert room["seq"] == 3  # createRoom, addMember, updateMember: once
        kick = "/im/v2.1/room_members/yx2/actions/kicked"
        body_ = {"room_id": int(ROOM)}
        for _ in range(2):  # the retry answers the first outcome, not "not a member"
            assert (await http.patch(kick, json=body_, headers=signed(trace=trace))).content == OK
        assert (await backend.call("room.get", {"room": ROOM}))["seq"] == 4
        # the same traceid on another call (or other args) is just that call
        reply = await http.post("/im/v2/room_members/yx2", content=SEED, headers=signed(trace="t"))
        assert reply.content == OK
        again = orjson.loads(SEED) | {"room_nick": "other"}
        reply = await http.post("/im/v2/room_members/yx2", json=again, headers=signed(trace="t"))
        assert reply.content == OK
        assert (await backend.call("room.get", {"room": ROOM}))["seq"] == 7
        created = [
            ok(
                await http.post(
                    "/im/v2/chatrooms",
                    json={"creator": "yx1", "room_name": "once", "announcement": "a"},
                    headers=signed(trace="create-1"),
                )
            )["room_id"]
            for _ in range(2)
        ]
        assert created[0] == created[1]
        seq = (await backend.call("room.get", {"room": str(created[0])}))["seq"]
        assert seq == 1  # createRoom, with the announcement: once


async def test_a_member_on_another_node_hears_each_change(
    redis_url: str, start_hub: HubFactory
) -> None:
    first = await start_hub(redis=redis_url, dialects=DIALECTS)
    second = await start_hub(redis=redis_url, dialects=DIALECTS)
    await seed_room(first)
    async with client(first) as http, RawClient.connect(ws_url(second), "msgpack") as ws:
        await ws.auth("yx1")
        made = {"creator": "yx1", "room_name": "live", "announcement": "hi"}
        room = ok(await http.post("/im/v2/chatrooms", json=made, headers=signed()))["room_id"]
        steps: list[tuple[str, str, dict[str, Any]]] = [
            (
                "POST",
                "/im/v2/room_members/yx2",
                {"room_id": room, "member_role": 2, "room_nick": "Two"},
            ),
            ("PATCH", "/im/v2/room_members/yx2", {"room_id": room, "extension": "x"}),
            ("PATCH", f"/im/v2/chatrooms/{room}", {"room_name": "live 2"}),
            ("POST", "/im/v2/room_members/yx2", {"room_id": room, "member_role": 3}),
            ("PATCH", "/im/v2.1/room_members/yx2/actions/kicked", {"room_id": room}),
        ]
        for method, path, sent in steps:
            reply = await http.request(method, path, json=sent, headers=signed())
            assert body(reply)["code"] == 200, reply.text
        heard = await ws.events_until(8, str(room))
    assert [(m["room"], m["seq"], m["type"]) for m in heard] == [
        (str(room), 1, "createRoom"),
        (str(room), 2, "addMember"),
        (str(room), 3, "assignAdmin"),
        (str(room), 4, "updateMember"),
        (str(room), 5, "updateMember"),
        (str(room), 6, "updateRoom"),
        (str(room), 7, "revokeAdmin"),
        (str(room), 8, "removeMember"),
    ]
    assert {m["sender"] for m in heard} == {"yx1", "yx2"}  # the owner, yx2 on their own info
