"""The server API (docs/http.md) against real hubs: every op of the table over HTTP with the
WebSocket's results and errors, the status table, auth, idempotency keys, delivery of HTTP
changes to WebSocket members on two nodes, and the app ceiling shared by both doors."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from roomhub.protocol.errors import HTTP_STATUS, ErrorCode
from roomhub.protocol.ops import OPS

from ..conftest import HubFactory
from ..support import (
    APP,
    SECRET,
    RawClient,
    RedisProcess,
    connect_backend,
    create_room,
    token,
    update_args,
    ws_url,
)
from .test_http import scrape, value

SERVER = token("backend", server=True)


def api(hub: Any) -> str:
    return f"http://127.0.0.1:{hub.http_port}/api/v1"


def headers(bearer: str | None = SERVER, key: str | None = APP, **extra: str) -> dict[str, str]:
    result = dict(extra)
    if bearer is not None:
        result["Authorization"] = f"Bearer {bearer}"
    if key is not None:
        result["X-Roomhub-Key"] = key
    return result


class Api:
    """An HTTP client of one hub's server API (keep-alive, like a backend's)."""

    def __init__(self, hub: Any, client: httpx.AsyncClient) -> None:
        self.base = api(hub)
        self.client = client

    async def post(
        self, op: str, args: Any = None, *, bearer: str | None = SERVER, **extra: str
    ) -> httpx.Response:
        return await self.client.post(
            f"{self.base}/{op}",
            json=args if args is not None else {},
            headers=headers(bearer, **extra),
        )

    async def call(self, op: str, args: Any = None, **kw: Any) -> Any:
        reply = await self.post(op, args, **kw)
        assert reply.status_code == 200, reply.text
        assert reply.headers["content-type"] == "application/json"
        return reply.json()["result"]

    async def fail(self, op: str, args: Any = None, **kw: Any) -> tuple[int, dict[str, Any]]:
        reply = await self.post(op, args, **kw)
        assert reply.status_code != 200, reply.text
        body = reply.json()
        assert set(body) == {"error"}
        return reply.status_code, body["error"]


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


def _stable(value: Any) -> Any:
    """A result with its times blanked: they differ between two runs of the same ops."""
    if isinstance(value, dict):
        return {k: "*" if k.endswith("_ms") else _stable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def _script(room: str) -> list[tuple[str, dict[str, Any], str | None]]:
    """Ops in order (args, and the operator they act as) covering every op but auth, with
    successes and failures."""
    return [
        ("user.upsert", {"id": "alice", "nickname": "Alice"}, None),
        ("user.upsert", {"id": "bob"}, None),
        ("user.upsert", {"id": "carol"}, None),
        ("user.upsert", {"id": "dave"}, None),
        ("room.create", {"room": room, "owner": "alice", "members": ["bob"], "name": "n"}, None),
        ("room.create", {"room": room, "owner": "alice"}, None),  # 100003
        ("room.get", {"room": room}, None),
        ("room.get", {"room": "missing"}, None),  # 100004
        ("room.get", {"room": room, "presence": True}, "bob"),
        ("room.presence", {"room": room}, "alice"),
        ("room.presence", {"room": room}, "carol"),  # 100005
        ("app.rooms", {"prefix": room, "limit": 5}, None),
        ("app.rooms", {"limit": 0}, None),  # 100002
        ("member.add", {"room": room, "invitees": ["carol"], "invitation_required": True}, None),
        ("invitation.decline", {"room": room}, "carol"),
        ("member.add", {"room": room, "invitees": ["carol"], "invitation_required": True}, None),
        ("invitation.accept", {"room": room}, "carol"),
        ("invitation.accept", {"room": room}, "carol"),  # 100008
        ("member.update", update_args(room, "bob", {"role": "admin"}), "alice"),
        ("member.update", update_args(room, "alice", {"role": "member"}), "bob"),  # 100006
        ("member.update", update_args(room, "bob", {"x": [1, {"y": None}]}), None),
        ("member.update", update_args(room, "bob", {"nickname": 5}), None),  # 100002
        ("member.update", update_args(room, "zed", {"x": 1}), None),  # 100007
        ("member.remove", {"room": room, "user": "carol"}, "bob"),
        ("room.leave", {"room": room}, "bob"),
        ("room.list", {}, "alice"),
        ("room.history", {"room": room, "after_seq": 1, "limit": 3}, None),
        ("room.history", {"room": room}, "carol"),  # 100005: removed
        ("member.update", {"room": room, "user": "alice", "properties": {}}, None),  # 100002
        ("room.update", {"room": room, "name": "N", "custom": {"topic": "t"}}, "alice"),
        ("room.update", {"room": room, "name": "x"}, "carol"),  # 100005: removed
        ("member.add", {"room": room, "invitees": ["bob", "carol"]}, None),
        ("room.members", {"room": room, "limit": 2}, "bob"),
        ("room.members", {"room": room, "after": "bob", "limit": 2}, None),
        ("room.transfer", {"room": room, "to": "bob"}, "carol"),  # 100006
        ("room.transfer", {"room": room, "to": "bob"}, "alice"),
        ("member.add", {"room": room, "invitees": ["dave"], "invitation_required": True}, None),
        ("invitation.cancel", {"room": room, "invitees": ["dave"]}, "bob"),
        ("invitation.cancel", {"room": room, "invitees": ["dave"]}, "bob"),  # 100008
        ("room.dismiss", {"room": room}, "alice"),  # 100006: an admin now
        ("room.dismiss", {"room": room}, "bob"),
        ("room.get", {"room": room}, None),  # 100004: dismissed
    ]


def _as(args: dict[str, Any], operator: str | None) -> dict[str, Any]:
    return {**args, "operator": operator} if operator else args


async def test_every_op_answers_over_http_exactly_what_the_websocket_answers(
    start_hub: HubFactory, http: httpx.AsyncClient
) -> None:
    # Two nodes on stores of their own, so both runs start from nothing.
    ws_node, http_node = await start_hub(), await start_hub()
    client = Api(http_node, http)
    over_ws, over_http = [], []
    async with connect_backend(ws_url(ws_node)) as backend:
        for op, args, operator in _script("r"):
            reply = await backend.request(op, _as(args, operator))
            over_ws.append(reply["result"] if reply["ok"] else {"error": reply["error"]})
    for op, args, operator in _script("r"):
        reply = await client.post(op, _as(args, operator))
        body = reply.json()
        if "error" in body:
            assert reply.status_code == HTTP_STATUS[ErrorCode(body["error"]["code"])], body
        else:
            assert reply.status_code == 200
        over_http.append(body.get("result", body))
    assert _stable(over_http) == _stable(over_ws)
    codes = [r["error"]["code"] for r in over_http if "error" in r]
    assert codes == [
        *(100003, 100004, 100005, 100002, 100008, 100006, 100002, 100007, 100005, 100002),
        *(100005, 100006, 100008, 100006, 100004),
    ]
    # Every op but auth was run, so every op has a route generated from the table; the stream
    # ops (room.watch: a stream of events over HTTP) are test_watch.py's.
    streams = {name for name, spec in OPS.items() if spec.stream}
    assert {op for op, _, _ in _script("x")} == set(OPS) - {"auth"} - streams


async def test_each_error_code_has_its_status_and_the_statuses_of_the_table(
    start_hub: HubFactory, http: httpx.AsyncClient
) -> None:
    limited = Api(await start_hub(rate_limit=1), http)
    hub = await start_hub(max_room_members=2)
    client = Api(hub, http)
    seen: dict[int, int] = {}

    async def expect(
        status: int, code: int, op: str, args: Any = None, on: Api = client, **kw: Any
    ) -> None:
        got_status, error = await on.fail(op, args, **kw)
        assert (got_status, error["code"]) == (status, code), error
        assert error["reason"] == ErrorCode(code).reason and error["message"]
        seen[code] = got_status

    await limited.call("user.upsert", {"id": "alice"})  # the app's one admission this second
    await expect(429, 100009, "user.upsert", {"id": "bob"}, on=limited)
    for user in ("alice", "bob", "carol"):
        await client.call("user.upsert", {"id": user})
    await client.call("room.create", {"room": "r", "owner": "alice", "members": ["bob"]})
    await expect(400, 100002, "room.get", {"room": "r", "nope": 1})
    malformed = await http.post(f"{api(hub)}/room.get", content=b"{", headers=headers())
    seen[malformed.json()["error"]["code"]] = malformed.status_code
    await expect(409, 100003, "room.create", {"room": "r", "owner": "alice"})
    await expect(404, 100004, "room.get", {"room": "none"})
    await expect(403, 100005, "room.get", {"room": "r", "operator": "carol"})
    await expect(403, 100006, "user.upsert", {"id": "x"}, bearer=token("alice"))
    await expect(404, 100007, "member.add", {"room": "r", "invitees": ["zed"]})
    await expect(409, 100008, "invitation.accept", {"room": "r", "operator": "carol"})
    await expect(401, 100010, "room.get", {"room": "r"}, bearer=token("a", secret="w" * 32))
    await expect(404, 100011, "room.nope", {})
    await expect(409, 100012, "member.add", {"room": "r", "invitees": ["carol"]})
    assert seen == {code: HTTP_STATUS[ErrorCode(code)] for code in seen}
    assert set(seen) | {100001} == {int(code) for code in ErrorCode}  # 100001: the outage test


async def test_auth_missing_bad_and_who_a_token_acts_as(
    start_hub: HubFactory, http: httpx.AsyncClient
) -> None:
    hub = await start_hub()
    client = Api(hub, http)
    async with connect_backend(ws_url(hub)) as backend:
        await create_room(backend, "r", "alice", ["bob"])
    bad = {
        "no header": {"bearer": None},
        "no key": {"key": None},
        "unknown key": {"key": "other-app"},
        "wrong secret": {"bearer": token("backend", server=True, secret="x" * 32)},
        "expired": {"bearer": token("backend", server=True, ttl=-10)},
        "not a jwt": {"bearer": "a.b.c"},
    }
    for case, kw in bad.items():
        reply = await client.client.post(
            f"{client.base}/room.get",
            json={"room": "r"},
            headers=headers(kw.get("bearer", SERVER), kw.get("key", APP)),
        )
        assert reply.status_code == 401, case
        assert reply.json()["error"]["code"] == 100010, case
        assert reply.headers["www-authenticate"].startswith("Bearer"), case
    basic = await client.client.post(
        f"{client.base}/room.get",
        json={"room": "r"},
        headers={"Authorization": "Basic eDp5", "X-Roomhub-Key": APP},
    )
    assert basic.status_code == 401
    # A user token acts as that user: alice (owner) may, bob (member) may not.
    assert (await client.call("room.get", {"room": "r"}, bearer=token("bob")))["id"] == "r"
    status, error = await client.fail(
        "member.update", update_args("r", "alice", {"nickname": "x"}), bearer=token("bob")
    )
    assert (status, error["code"]) == (403, 100006)
    status, error = await client.fail(
        "room.get", {"room": "r", "operator": "alice"}, bearer=token("bob")
    )
    assert (status, error["code"], error["field"]) == (400, 100002, "operator")
    # A server token may act as a member with `operator`, checked as that member.
    status, error = await client.fail(
        "member.update", {**update_args("r", "alice", {"level": 3}), "operator": "bob"}
    )
    assert (status, error["code"]) == (403, 100006)


async def test_malformed_and_oversized_bodies(
    start_hub: HubFactory, http: httpx.AsyncClient
) -> None:
    hub = await start_hub(max_frame_bytes=4096)
    base = api(hub)
    cases = {
        b"{not json": (400, 100013),
        b"\xff\xfe": (400, 100013),
        b"[1, 2]": (400, 100002),
        b'"room"': (400, 100002),
        b"{}": (400, 100002),  # room.get needs `room`
        b"": (400, 100002),
        b"\r\n": (400, 100013),  # whitespace alone is not an empty body: not JSON
        b"[" * 2000 + b"]" * 2000: (400, 100013),  # deeper than the decoder allows
        b'{"room": "' + b"x" * 5000 + b'"}': (413, 100013),
    }
    for body, (status, code) in cases.items():
        reply = await http.post(f"{base}/room.get", content=body, headers=headers())
        assert (reply.status_code, reply.json()["error"]["code"]) == (status, code), body[:20]

    # Chunked, with no Content-Length: still cut off at the limit.
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    reply = await http.post(f"{base}/room.get", content=chunks(), headers=headers())
    assert reply.status_code == 413
    # A bad body outranks a bad token (§7's precedence), as on the WebSocket.
    reply = await http.post(f"{base}/room.get", content=b"{", headers=headers(bearer="x"))
    assert reply.json()["error"]["code"] == 100013
    # Nothing broke: the node answers the next request.
    assert (await http.get(f"http://127.0.0.1:{hub.http_port}/healthz")).status_code == 200


async def test_a_retried_post_with_an_idempotency_key_is_applied_once(
    start_hub: HubFactory, http: httpx.AsyncClient
) -> None:
    hub = await start_hub()
    client = Api(hub, http)
    async with connect_backend(ws_url(hub)) as backend:
        await create_room(backend, "r", "alice", ["bob"])
        async with RawClient.connect(ws_url(hub)) as bob:
            await bob.auth("bob")
            args = update_args("r", "bob", {"level": 7}, operator=None)
            args.pop("operator")
            first = await client.call("member.update", args, **{"Idempotency-Key": "k-1"})
            again = await client.call("member.update", args, **{"Idempotency-Key": "k-1"})
            assert first["seq"] == again["seq"] == 2
            assert (await bob.event())["seq"] == 2
            await bob.no_event()
            # The same key with other args, or a header that contradicts the body: 100002.
            other = update_args("r", "bob", {"level": 8})
            status, error = await client.fail("member.update", other, **{"Idempotency-Key": "k-1"})
            assert (status, error["field"]) == (400, "idempotency_key")
            status, error = await client.fail(
                "member.update", {**other, "idempotency_key": "k-2"}, **{"Idempotency-Key": "k-3"}
            )
            assert (status, error["field"]) == (400, "idempotency_key")
            # Reads take no key.
            status, error = await client.fail("room.get", {"room": "r"}, **{"Idempotency-Key": "k"})
            assert (status, error["field"]) == (400, "idempotency_key")
            # A room.create retried without a room id makes one room, the same id.
            made = [
                await client.call(
                    "room.create", {"owner": "alice"}, **{"Idempotency-Key": "create-1"}
                )
                for _ in range(2)
            ]
            assert made[0]["id"] == made[1]["id"]


async def test_an_http_change_reaches_websocket_members_on_two_nodes(
    two_hubs: tuple[Any, Any], http: httpx.AsyncClient
) -> None:
    node_a, node_b = two_hubs
    async with connect_backend(ws_url(node_a)) as backend:
        await create_room(backend, "r", "alice", ["bob", "carol"])
    async with (
        RawClient.connect(ws_url(node_a), "json") as alice,
        RawClient.connect(ws_url(node_b)) as bob,
    ):
        await alice.auth("alice")
        await bob.auth("bob")
        for i, node in enumerate((node_a, node_b, node_a)):
            await Api(node, http).call("member.update", update_args("r", "carol", {"n": i}))
        for member in (alice, bob):
            got = await member.events_until(4, room="r")
            assert [(m["seq"], m["type"], m["changes"]) for m in got] == [
                (2, "updateMember", {"n": 0}),
                (3, "updateMember", {"n": 1}),
                (4, "updateMember", {"n": 2}),
            ]
            await member.no_event()


async def test_the_app_ceiling_is_shared_by_websocket_and_http_across_nodes(
    redis_url: str, start_hub: HubFactory, http: httpx.AsyncClient
) -> None:
    setup = await start_hub(redis=redis_url)
    async with connect_backend(ws_url(setup)) as backend:
        await create_room(backend, "r", "alice", ["bob"])
    node_a = await start_hub(redis=redis_url, rate_limit=200)
    node_b = await start_hub(redis=redis_url, rate_limit=200)
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    async with (
        connect_backend(ws_url(node_a)) as ws_a,
        connect_backend(ws_url(node_b)) as ws_b,
        httpx.AsyncClient(timeout=10, limits=limits) as pool,
    ):
        api_a, api_b = Api(node_a, pool), Api(node_b, pool)

        def update(i: int) -> dict[str, Any]:
            return update_args("r", "bob", {"n": i}, reply="ack")

        async def over_ws(client: RawClient, i: int) -> tuple[bool, int | None]:
            reply = await client.request("member.update", update(i))
            return reply["ok"], None if reply["ok"] else reply["error"]["code"]

        async def over_http(client: Api, i: int) -> tuple[bool, int | None]:
            reply = await client.post("member.update", update(i))
            if reply.status_code == 200:
                return True, None
            assert reply.status_code == 429 and int(reply.headers["retry-after"]) >= 1
            return False, reply.json()["error"]["code"]

        doors = [
            *(over_ws(ws_a, i) for i in range(0, 75)),
            *(over_ws(ws_b, i) for i in range(75, 150)),
            *(over_http(api_a, i) for i in range(150, 225)),
            *(over_http(api_b, i) for i in range(225, 300)),
        ]
        outcomes = await asyncio.gather(*doors)
        admitted = [ok for ok, _ in outcomes if ok]
        assert len(admitted) == 200, len(admitted)
        assert {code for ok, code in outcomes if not ok} == {100009}
        # Both doors got some of the 200 (neither starved the other).
        assert any(ok for ok, _ in outcomes[:150]) and any(ok for ok, _ in outcomes[150:])
        await asyncio.sleep(1.05)
        page = await ws_a.call("room.history", {"room": "r", "after_seq": 1, "limit": 200})
        assert [m["seq"] for m in page["messages"]] == list(range(2, 202))


async def test_a_redis_outage_is_503_and_the_node_serves_again_after(
    start_hub: HubFactory, http: httpx.AsyncClient
) -> None:
    with RedisProcess() as own_redis:
        hub = await start_hub(redis=own_redis.url, redis_timeout=0.5)
        client = Api(hub, http)
        await client.call("user.upsert", {"id": "alice"})
        os.kill(own_redis.proc.pid, signal.SIGSTOP)
        try:
            status, error = await client.fail("user.upsert", {"id": "bob"})
            assert (status, error["code"]) == (503, 100001)
            assert "safe to retry" in error["message"]
        finally:
            os.kill(own_redis.proc.pid, signal.SIGCONT)
        assert (await client.call("user.upsert", {"id": "bob"}))["id"] == "bob"


async def test_http_ops_are_counted_like_websocket_ops(
    start_hub: HubFactory, http: httpx.AsyncClient
) -> None:
    hub = await start_hub()
    client = Api(hub, http)
    await client.call("user.upsert", {"id": "alice"})
    await client.fail("room.get", {"room": "nope"})
    await client.fail("room.get", {"room": "nope"}, bearer=None)
    samples = await scrape(hub)
    assert value(samples, "roomhub_ops_total", op="user.upsert", code="ok") == 1
    assert value(samples, "roomhub_ops_total", op="room.get", code="100004") == 1
    assert value(samples, "roomhub_ops_total", op="room.get", code="100010") == 1


async def test_the_openapi_document_and_the_docs_page(
    start_hub: HubFactory, http: httpx.AsyncClient
) -> None:
    hub = await start_hub()
    reply = await http.get(f"{api(hub)}/openapi.json")
    assert reply.status_code == 200
    document = reply.json()
    assert document["openapi"] == "3.1.0"
    paths = document["paths"]
    # room.unwatch is the WebSocket's only: over HTTP a watch ends with its stream
    assert set(paths) == {f"/api/v1/{name}" for name in OPS if name not in ("auth", "room.unwatch")}
    schemas = document["components"]["schemas"]
    for name, spec in OPS.items():
        if name in ("auth", "room.unwatch"):
            continue
        post = paths[f"/api/v1/{name}"]["post"]
        assert post["requestBody"]["content"]["application/json"]["schema"] == {
            "$ref": f"#/components/schemas/{spec.args.__name__}"
        }
        assert spec.args.__name__ in schemas and spec.result.__name__ in schemas
        documented = {int(status) for status in post["responses"]}
        assert set(HTTP_STATUS.values()) | {200, 413} == documented
        assert ("parameters" in post) == spec.mutating  # Idempotency-Key
    assert schemas["MemberUpdateArgs"]["additionalProperties"] is False
    page = await http.get(f"{api(hub)}/docs")
    assert page.status_code == 200 and "swagger-ui" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    script = await http.get(f"{api(hub)}/docs.js")
    assert "/api/v1/openapi.json" in script.text
    assert (await http.get(f"{api(hub)}/room.get")).status_code == 405
    assert SECRET not in reply.text
