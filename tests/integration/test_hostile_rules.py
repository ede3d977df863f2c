"""Hostile clients within the rules (issue 9): what an outsider may learn, reserved ids,
integer bounds, one reply per request, resume from ahead, the per-user limit and the
connection caps. Each case reproduced an attack that worked before."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import websockets

from ..conftest import HubFactory
from ..support import APP, RawClient, setup_room, token, update_args, ws_url


@pytest.fixture
async def room_hub(start_hub: HubFactory) -> Any:
    hub = await start_hub()
    await setup_room(ws_url(hub), "r", "owner", ["alice", "bob"])
    async with RawClient.connect(ws_url(hub)) as backend:
        await backend.auth("backend", server=True)
        await backend.call("user.upsert", {"id": "mallory"})
        # alice is near the props cap: a count check before the permission check would show
        await backend.call(
            "member.update", update_args("r", "alice", {f"p{n}": n for n in range(31)})
        )
    return hub


async def test_an_outsider_gets_the_same_answer_whatever_the_target(room_hub: Any) -> None:
    async with RawClient.connect(ws_url(room_hub)) as mallory:
        await mallory.auth("mallory")
        answers = []
        for target in ("alice", "stranger-who-exists-not", "mallory"):
            for op, args in (
                ("member.update", update_args("r", target, {"level": 1})),
                ("member.update", update_args("r", target, {f"q{n}": n for n in range(2)})),
                ("member.remove", {"room": "r", "user": target}),
            ):
                error = await mallory.fail(op, args)
                if target.startswith("stranger"):
                    assert error["code"] == 100007  # no user at all: says nothing of the room
                    continue
                answers.append((error["code"], error["message"], error.get("field")))
        assert set(answers) == {(100005, "operator 'mallory' is not a member of the room", None)}


async def test_an_outsiders_resume_is_resync_zero_whatever_the_seq(room_hub: Any) -> None:
    for seq in (0, 1, 1000):
        async with RawClient.connect(ws_url(room_hub)) as mallory:
            args = {"key": APP, "token": token("mallory"), "resume": {"r": seq}}
            await mallory.call("auth", args)
            frame = await asyncio.wait_for(mallory.events.get(), 5)
            assert frame == {"event": "resync", "room": "r", "seq": 0}


async def test_a_resume_ahead_of_the_room_gets_resync_then_live_events(room_hub: Any) -> None:
    url = ws_url(room_hub)
    async with RawClient.connect(url) as alice, RawClient.connect(url) as owner:
        await owner.auth("owner")
        current = (await owner.call("room.get", {"room": "r"}))["seq"]
        await alice.call(
            "auth", {"key": APP, "token": token("alice"), "resume": {"r": current + 1000}}
        )
        frame = await asyncio.wait_for(alice.events.get(), 5)
        assert frame == {"event": "resync", "room": "r", "seq": current}
        ack = await owner.call("member.update", update_args("r", "owner", {"n": 1}, reply="ack"))
        seen = await alice.events_until(ack["seq"])
        assert [m["seq"] for m in seen] == [current + 1]


async def test_at_ids_are_reserved_for_roomhub(room_hub: Any) -> None:
    async with RawClient.connect(ws_url(room_hub)) as backend:
        await backend.auth("backend", server=True)
        error = await backend.fail("user.upsert", {"id": "@server"})
        assert (error["code"], error["field"]) == (100002, "id")
    async with RawClient.connect(ws_url(room_hub)) as fake:
        reply = await fake.request("auth", {"key": APP, "token": token("@server")})
        assert reply["error"]["code"] == 100010


async def test_user_upsert_with_a_user_token_and_operator_is_100002(room_hub: Any) -> None:
    async with RawClient.connect(ws_url(room_hub)) as alice:
        await alice.auth("alice")
        error = await alice.fail("user.upsert", {"id": "alice", "operator": "alice"})
        assert (error["code"], error["field"]) == (100002, "operator")


@pytest.mark.parametrize("huge", [2**53, 2**63 - 1, 2**64 - 1])
async def test_huge_integers_are_100002_with_exactly_one_reply(room_hub: Any, huge: int) -> None:
    async with RawClient.connect(ws_url(room_hub)) as alice:
        auth = await alice.request(
            "auth", {"key": APP, "token": token("alice"), "resume": {"r": huge}}
        )
        assert (auth["ok"], auth["error"]["field"]) == (False, "resume.r")
        await alice.auth("alice")  # still open, not authenticated by the bad one
        error = await alice.fail("room.history", {"room": "r", "after_seq": huge})
        assert (error["code"], error["field"]) == (100002, "after_seq")
        await asyncio.sleep(0.3)  # a second reply to any of them would have arrived by now
        assert alice.events.empty()
        assert (await alice.call("room.get", {"room": "r"}))["id"] == "r"


async def test_one_user_cannot_take_the_apps_ceiling(start_hub: HubFactory) -> None:
    hub = await start_hub(rate_limit=40, user_rate_limit=10)
    await setup_room(ws_url(hub), "r", "owner", ["alice", "bob"])
    url = ws_url(hub)
    async with (
        RawClient.connect(url) as a1,
        RawClient.connect(url) as a2,
        RawClient.connect(url) as bob,
    ):
        await a1.auth("alice")
        await a2.auth("alice")
        await bob.auth("bob")
        flood = [
            client.request("member.update", update_args("r", "alice", {"n": n}, reply="ack"))
            for n in range(20)
            for client in (a1, a2)
        ]
        replies = await asyncio.gather(*flood)
        admitted = [r for r in replies if r["ok"]]
        limited = [r for r in replies if not r["ok"]]
        assert len(admitted) <= 10 + 2  # the user's 10/s across both connections (+ window edge)
        assert {r["error"]["code"] for r in limited} == {100009}
        assert "user 'alice'" in limited[0]["error"]["message"]
        bobs = await asyncio.gather(
            *(
                bob.request("member.update", update_args("r", "bob", {"n": n}, reply="ack"))
                for n in range(10)
            )
        )
        assert all(r["ok"] for r in bobs), bobs  # the app still had room for bob


async def test_connections_per_user_and_per_address_are_capped(start_hub: HubFactory) -> None:
    hub = await start_hub(max_connections_per_user=2, max_connections_per_ip=4)
    url = ws_url(hub)
    async with RawClient.connect(url) as c1, RawClient.connect(url) as c2:
        await c1.auth("alice")
        await c2.auth("alice")
        async with RawClient.connect(url) as c3:
            reply = await c3.request("auth", {"key": APP, "token": token("alice")})
            assert reply["error"]["code"] == 100009
        async with RawClient.connect(url) as c4, RawClient.connect(url) as c5:
            await c4.auth("bob")  # another user is not affected
            await c5.auth("carol")
            with pytest.raises(websockets.InvalidStatus) as refused:
                async with websockets.connect(url):
                    pass
            assert refused.value.response.status_code == 429
    # closed connections are released
    async with RawClient.connect(url) as again:
        await again.auth("alice")


async def test_rooms_per_hour_quota(start_hub: HubFactory) -> None:
    hub = await start_hub(rooms_per_hour=3)
    async with RawClient.connect(ws_url(hub)) as alice, RawClient.connect(ws_url(hub)) as srv:
        await alice.auth("alice")
        await srv.auth("backend", server=True)
        for n in range(3):
            await alice.call("room.create", {"room": f"a{n}"})
        error = await alice.fail("room.create", {"room": "a3"})
        assert error["code"] == 100009 and 0 < error["retry_after_ms"] <= 3_600_000
        await srv.call("room.create", {"room": "s1", "owner": "alice"})  # the backend is not bound


async def test_pending_invitation_caps(start_hub: HubFactory) -> None:
    hub = await start_hub(max_pending_invitations=5, max_pending_invitations_per_inviter=2)
    url = ws_url(hub)
    await setup_room(url, "r", "owner", ["alice"])
    async with RawClient.connect(url) as owner, RawClient.connect(url) as srv:
        await owner.auth("owner")
        await srv.auth("backend", server=True)
        for n in range(8):
            await srv.call("user.upsert", {"id": f"u{n}"})
        await owner.call("member.update", update_args("r", "alice", {"role": "admin"}))
        invite = {"room": "r", "invitation_required": True}
        await owner.call("member.add", {**invite, "invitees": ["u0", "u1"]})
        error = await owner.fail("member.add", {**invite, "invitees": ["u2"]})
        assert error["code"] == 100012 and "inviter" in error["message"]
        async with RawClient.connect(url) as alice:
            await alice.auth("alice")
            await alice.call("member.add", {**invite, "invitees": ["u2", "u3"]})
        await srv.call("member.add", {**invite, "invitees": ["u4"]})  # unchecked: 5 pending
        error = await srv.fail("member.add", {**invite, "invitees": ["u5"], "operator": "owner"})
        assert error["code"] == 100012 and "5 pending" in error["message"]
        room = await owner.call("room.get", {"room": "r"})
        assert len(room["invitations"]) == 5


async def test_consent_mode_users_invite_the_backend_adds(start_hub: HubFactory) -> None:
    hub = await start_hub(member_consent="invite")
    url = ws_url(hub)
    await setup_room(url, "r", "owner", [])  # the backend may add directly
    async with RawClient.connect(url) as owner, RawClient.connect(url) as srv:
        await owner.auth("owner")
        await srv.auth("backend", server=True)
        await srv.call("user.upsert", {"id": "bob"})
        error = await owner.fail("member.add", {"room": "r", "invitees": ["bob"]})
        assert error["code"] == 100006 and "invitations" in error["message"]
        error = await owner.fail("room.create", {"room": "r2", "members": ["bob"]})
        assert error["code"] == 100006
        await owner.call(
            "member.add", {"room": "r", "invitees": ["bob"], "invitation_required": True}
        )
        await srv.call("member.add", {"room": "r", "invitees": ["bob"], "operator": "owner"})
