"""The four vendor scenarios roomhub is modelled on (../shared/seeds), end to end over the wire.

Each test walks one vendor document's example through roomhub's own ops (PROTOCOL.md), the
way a developer porting from that vendor would: the same call, the same outcome, the same
errors, as the client sees them in replies and system messages.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from typing import Any

from roomhub.server.hub import Hub

from ..spec import MEMBER_FIELDS, ROOM_FIELDS
from ..support import RawClient, alternating, authenticated, member


def clients(hub: Hub, *specs: tuple[str, bool]) -> AbstractAsyncContextManager[list[RawClient]]:
    """Authenticated connections to `hub`: (user, server) each; msgpack and JSON alternate."""
    return authenticated(*alternating(*((hub, user, server) for user, server in specs)))


def assert_complete_room(room: dict[str, Any]) -> None:
    """The complete Room of PROTOCOL.md §3: every field, every Member field."""
    assert set(room) == ROOM_FIELDS, room
    for m in room["members"]:
        assert set(m) == MEMBER_FIELDS, m


async def settle(backend: RawClient, room_id: str, *watchers: RawClient) -> dict[str, Any]:
    """Let delivery finish, forget what the watchers got so far; the room as it is now."""
    await asyncio.sleep(0.2)
    for watcher in watchers:
        while not watcher.events.empty():
            watcher.events.get_nowait()
    return await backend.call("room.get", {"room": room_id})  # type: ignore[no-any-return]


async def assert_unchanged(
    backend: RawClient, room_id: str, before: dict[str, Any], *watchers: RawClient
) -> None:
    """A failed op changed nothing and emitted nothing."""
    assert await backend.call("room.get", {"room": room_id}) == before
    for watcher in watchers:
        await watcher.no_event(0.2)


async def last(client: RawClient, seq: int, room: str | None = None) -> dict[str, Any]:
    """The message with seq `seq`, skipping the earlier ones still queued."""
    message = (await client.events_until(seq, room=room))[-1]
    assert message["seq"] == seq, message
    return message


# --- 000 IMKIT: Update Member Property -------------------------------------------------------


async def test_imkit_update_member_property(hub: Hub) -> None:
    async with clients(hub, ("backend", True), ("owner-1", False), ("user-001", False)) as (
        backend,
        owner,
        user,
    ):
        await backend.call(
            "user.upsert",
            {"id": "user-001", "nickname": "User 001", "avatar": "http://example.com/avatar.jpg"},
        )
        await backend.call(
            "room.create",
            {"room": "demo-room", "name": "Demo", "owner": "owner-1", "members": ["user-001"]},
        )
        for client in (owner, user):
            assert (await client.event())["type"] == "createRoom"

        # Example 1: {"property": "role", "value": "admin"} -> assignAdmin, complete room
        room = await backend.call(
            "member.update",
            {"room": "demo-room", "user": "user-001", "properties": {"role": "admin"}},
        )
        assert_complete_room(room)
        assert room["id"] == "demo-room" and room["name"] == "Demo" and room["type"] == "group"
        assert room["owner"] == "owner-1" and room["seq"] == 2
        assert member(room, "user-001")["role"] == "admin"
        assert member(room, "user-001")["nickname"] == "User 001"
        assert member(room, "user-001")["avatar"] == "http://example.com/avatar.jpg"
        assert member(room, "owner-1")["role"] == "owner"
        for client in (owner, user):
            message = await client.event()
            assert message["type"] == "assignAdmin" and message["seq"] == 2
            assert message["targets"] == ["user-001"] and message["changes"] == {"role": "admin"}
            assert message["sender"] == "@server"
            # role=admin always emits a visible notice, even without system_message
            assert message["notify"] is True

        # Example 2: {"property": "score", "value": 100} -> a custom property
        room = await backend.call(
            "member.update", {"room": "demo-room", "user": "user-001", "properties": {"score": 100}}
        )
        assert_complete_room(room)
        assert member(room, "user-001")["props"] == {"score": 100}
        assert room["seq"] == 3
        for client in (owner, user):
            message = await client.event()
            assert message["type"] == "updateMember" and message["changes"] == {"score": 100}
            assert message["notify"] is False and message["targets"] == ["user-001"]

        # "level" and "location" from the use cases: level is the built-in, location custom
        room = await backend.call(
            "member.update",
            {
                "room": "demo-room",
                "user": "user-001",
                "properties": {"level": 5, "location": {"city": "Taipei", "lat": 25.03}},
            },
        )
        m = member(room, "user-001")
        assert m["level"] == 5
        assert m["props"] == {"score": 100, "location": {"city": "Taipei", "lat": 25.03}}
        message = await user.event()
        assert message["changes"] == {"level": 5, "location": {"city": "Taipei", "lat": 25.03}}

        # the member can also do it from a client token (their own custom field)
        room = await user.call(
            "member.update", {"room": "demo-room", "user": "user-001", "properties": {"score": 101}}
        )
        assert member(room, "user-001")["props"]["score"] == 101
        assert (await last(owner, 5))["sender"] == "user-001"

        # error cases: the room or the member does not exist
        before = await settle(backend, "demo-room", owner, user)
        error = await backend.fail(
            "member.update", {"room": "nope", "user": "user-001", "properties": {"score": 1}}
        )
        assert (error["code"], error["reason"]) == (100004, "ROOM_NOT_FOUND")
        error = await backend.fail(
            "member.update", {"room": "demo-room", "user": "ghost", "properties": {"score": 1}}
        )
        assert (error["code"], error["reason"]) == (100007, "USER_NOT_FOUND")
        await backend.call("user.upsert", {"id": "outsider"})
        error = await backend.fail(
            "member.update", {"room": "demo-room", "user": "outsider", "properties": {"score": 1}}
        )
        assert (error["code"], error["reason"]) == (100005, "NOT_A_MEMBER")
        await assert_unchanged(backend, "demo-room", before, owner, user)


# --- 001 Tencent: update_room_member_info ----------------------------------------------------


async def test_tencent_update_room_member_info(hub: Hub) -> None:
    async with clients(
        hub, ("admin", True), ("owner", False), ("user4", False), ("user5", False)
    ) as (backend, owner, user4, user5):
        await backend.call(
            "room.create", {"room": "room-test", "owner": "owner", "members": ["user4", "user5"]}
        )
        for client in (owner, user4, user5):
            await client.event()

        # the sample request: NameCard, Role Admin, CustomInfo in one call
        room = await backend.call(
            "member.update",
            {
                "room": "room-test",
                "user": "user4",
                "properties": {"nickname": "jack", "role": "admin", "custom_info": "custom info"},
            },
        )
        m = member(room, "user4")
        assert (m["nickname"], m["role"], m["custom_info"]) == ("jack", "admin", "custom info")
        assert room["seq"] == 3
        role_msg, update_msg = await user5.events_until(3)
        assert role_msg["type"] == "assignAdmin" and role_msg["changes"] == {"role": "admin"}
        assert update_msg["type"] == "updateMember"
        assert update_msg["changes"] == {"nickname": "jack", "custom_info": "custom info"}
        assert (role_msg["seq"], update_msg["seq"]) == (2, 3)

        # Role Member takes admin back
        room = await backend.call(
            "member.update",
            {"room": "room-test", "user": "user4", "properties": {"role": "member"}},
        )
        assert member(room, "user4")["role"] == "member"
        assert (await last(user4, 4))["type"] == "revokeAdmin"

        # NameCard <= 32 bytes of UTF-8, CustomInfo <= 60 bytes: at the limit is fine ...
        name32 = "名" * 10 + "ab"  # 10 * 3 + 2 = 32 bytes
        info60 = "é" * 30  # 60 bytes
        room = await backend.call(
            "member.update",
            {
                "room": "room-test",
                "user": "user4",
                "properties": {"nickname": name32, "custom_info": info60},
            },
        )
        assert member(room, "user4")["nickname"] == name32
        assert member(room, "user4")["custom_info"] == info60
        await last(user4, 5)
        # ... one byte over is 100002 naming the property, though far fewer characters
        before = await settle(backend, "room-test", owner, user4, user5)
        for properties, field in (
            ({"nickname": "名" * 11}, "properties.nickname"),
            ({"nickname": "x" * 33}, "properties.nickname"),
            ({"custom_info": "é" * 30 + "x"}, "properties.custom_info"),
            ({"custom_info": "x" * 61}, "properties.custom_info"),
        ):
            error = await backend.fail(
                "member.update", {"room": "room-test", "user": "user4", "properties": properties}
            )
            assert (error["code"], error["reason"]) == (100002, "INVALID_PARAMETER")
            assert error["field"] == field
        # Role is Admin/Member (and our guest/owner); anything else is invalid
        error = await backend.fail(
            "member.update",
            {"room": "room-test", "user": "user4", "properties": {"role": "Superuser"}},
        )
        assert error["code"] == 100002 and error["field"] == "properties.role"
        # an argument the op does not define is named
        error = await backend.fail(
            "member.update",
            {
                "room": "room-test",
                "user": "user4",
                "properties": {"nickname": "x"},
                "NameCard": "jack",
            },
        )
        assert error["code"] == 100002 and error["field"] == "NameCard"
        # 100004: the room does not exist
        error = await backend.fail(
            "member.update", {"room": "destroyed", "user": "user4", "properties": {"nickname": "x"}}
        )
        assert (error["code"], error["reason"]) == (100004, "ROOM_NOT_FOUND")
        # 100005: non-room members (as target, and as operator)
        await backend.call("user.upsert", {"id": "stranger"})
        error = await backend.fail(
            "member.update",
            {"room": "room-test", "user": "stranger", "properties": {"nickname": "x"}},
        )
        assert (error["code"], error["reason"]) == (100005, "NOT_A_MEMBER")
        error = await backend.fail(
            "member.update",
            {
                "room": "room-test",
                "user": "user4",
                "operator": "stranger",
                "properties": {"nickname": "x"},
            },
        )
        assert error["code"] == 100005
        # 100006: insufficient permission (a member on another member; on their own role)
        error = await user5.fail(
            "member.update", {"room": "room-test", "user": "user4", "properties": {"nickname": "x"}}
        )
        assert (error["code"], error["reason"]) == (100006, "FORBIDDEN")
        error = await user5.fail(
            "member.update", {"room": "room-test", "user": "user5", "properties": {"role": "admin"}}
        )
        assert error["code"] == 100006
        # precedence: a malformed argument is reported as such whoever sends it
        error = await user5.fail(
            "member.update",
            {"room": "room-test", "user": "user4", "properties": {"nickname": "x" * 40}},
        )
        assert error["code"] == 100002
        # the error is in the reply body, the connection carries on
        await assert_unchanged(backend, "room-test", before, owner, user4, user5)
        assert (await user5.call("room.get", {"room": "room-test"}))["seq"] == 5


# --- 002 IMKIT: Add a Member -----------------------------------------------------------------


async def test_imkit_add_member(hub: Hub) -> None:
    async with clients(
        hub, ("aaa", False), ("bbb", False), ("ccc", False), ("backend", True), ("ddd", False)
    ) as (aaa, bbb, ccc, backend, ddd):
        await backend.call(
            "user.upsert",
            {"id": "ccc", "nickname": "CCC", "avatar": "https://example.com/avatar.jpg"},
        )
        await aaa.call("room.create", {"room": "demo-room", "name": "Demo"})
        await aaa.event()

        # Example 1: invitees must accept; systemMessage -> a notice in the timeline
        room = await aaa.call(
            "member.add",
            {
                "room": "demo-room",
                "invitees": ["ccc", "bbb"],
                "invitation_required": True,
                "system_message": True,
            },
        )
        assert_complete_room(room)
        assert [m["id"] for m in room["members"]] == ["aaa"]
        assert {i["user"] for i in room["invitations"]} == {"ccc", "bbb"}
        assert all(i["inviter"] == "aaa" for i in room["invitations"])
        for client in (aaa, bbb, ccc):
            message = await last(client, 2, "demo-room")
            assert message["type"] == "inviteMember" and message["notify"] is True
            assert message["targets"] == ["ccc", "bbb"] and message["sender"] == "aaa"
        await ddd.no_event(0.1)
        # invitees see the room (auth rooms / room.list / room.get) before accepting
        listed = await ccc.call("room.list")
        assert [r["id"] for r in listed["rooms"]] == ["demo-room"]
        assert (await ccc.call("room.get", {"room": "demo-room"}))["seq"] == 2

        # ccc accepts and joins with the profile's nickname and avatar; bbb declines
        room = await ccc.call("invitation.accept", {"room": "demo-room"})
        assert_complete_room(room)
        joined = member(room, "ccc")
        assert joined["role"] == "member"
        assert (joined["nickname"], joined["avatar"]) == ("CCC", "https://example.com/avatar.jpg")
        assert [i["user"] for i in room["invitations"]] == ["bbb"]
        assert await bbb.call("invitation.decline", {"room": "demo-room"}) == {}
        accepted, declined = (await aaa.events_until(4))[-2:]
        assert accepted["type"] == "acceptInvitation" and accepted["targets"] == ["ccc"]
        assert declined["type"] == "declineInvitation" and declined["targets"] == ["bbb"]
        error = await bbb.fail("invitation.accept", {"room": "demo-room"})
        assert error["code"] == 100008

        # Example 2: added directly (no confirmation), with and without the notice
        room = await aaa.call(
            "member.add",
            {
                "room": "demo-room",
                "invitees": ["bbb"],
                "invitation_required": False,
                "system_message": True,
            },
        )
        assert {m["id"] for m in room["members"]} == {"aaa", "ccc", "bbb"}
        assert room["invitations"] == []
        # bbb, not a member, got the decline (its target) and the add, not ccc's accept
        got = await bbb.events_until(5, room="demo-room")
        assert [(m["seq"], m["type"]) for m in got] == [(4, "declineInvitation"), (5, "addMember")]
        message = got[-1]
        assert message["notify"] is True
        room = await ccc.call("member.add", {"room": "demo-room", "invitees": ["ddd"]})
        message = await last(ddd, 6, "demo-room")
        assert message["type"] == "addMember" and message["notify"] is False
        assert message["targets"] == ["ddd"] and message["sender"] == "ccc"
        assert member(room, "ddd")["role"] == "member"

        # a non-existent invitee is an error, and nobody is added
        await backend.call("user.upsert", {"id": "eee"})
        before = await settle(backend, "demo-room", aaa, bbb, ccc, ddd)
        error = await aaa.fail("member.add", {"room": "demo-room", "invitees": ["eee", "zzz"]})
        assert (error["code"], error["reason"]) == (100007, "USER_NOT_FOUND")
        assert "zzz" in error["message"]
        error = await aaa.fail("member.add", {"room": "nope", "invitees": ["eee"]})
        assert error["code"] == 100004
        for bad in ([], ["bad id!"]):
            error = await aaa.fail("member.add", {"room": "demo-room", "invitees": bad})
            assert error["code"] == 100002 and error["field"].startswith("invitees")
        await assert_unchanged(backend, "demo-room", before, aaa, bbb, ccc, ddd)

        # one-on-one rooms: invitationRequired has no effect, the invitee is added directly
        await aaa.call("room.create", {"room": "dm", "type": "direct"})
        room = await aaa.call(
            "member.add", {"room": "dm", "invitees": ["bbb"], "invitation_required": True}
        )
        assert room["type"] == "direct"
        assert {m["id"] for m in room["members"]} == {"aaa", "bbb"}
        assert room["invitations"] == []
        message = await last(bbb, 2, "dm")
        assert message["type"] == "addMember"
        error = await aaa.fail("member.add", {"room": "dm", "invitees": ["ccc"]})
        assert (error["code"], error["reason"]) == (100012, "ROOM_FULL")


# --- 003 NetEase: set chat-room member role --------------------------------------------------


async def test_netease_set_member_role(hub: Hub) -> None:
    async with clients(
        hub, ("backend", True), ("yx1", False), ("yx2", False), ("yx3", False), ("yx4", False)
    ) as (backend, creator, yx2, yx3, yx4):
        await backend.call(
            "room.create", {"room": "1602801663", "owner": "yx1", "members": ["yx2", "yx3", "yx4"]}
        )
        for client in (creator, yx2, yx3, yx4):
            await client.event()

        def args(target: str, operator: str | None = None, **extra: Any) -> dict[str, Any]:
            call = {"room": "1602801663", "user": target, **extra}
            if operator is not None:
                call["operator"] = operator
            return call

        # member_role 2 (admin): only the creator may grant it
        error = await backend.fail(
            "member.update", args("yx3", "yx2", properties={"role": "admin"})
        )
        assert (error["code"], error["reason"]) == (100006, "FORBIDDEN")
        room = await backend.call("member.update", args("yx2", "yx1", properties={"role": "admin"}))
        assert member(room, "yx2")["role"] == "admin"
        message = await last(yx3, 2)
        assert message["type"] == "assignAdmin" and message["sender"] == "yx1"
        # now an admin: still may not grant admin
        error = await backend.fail(
            "member.update", args("yx3", "yx2", properties={"role": "admin"})
        )
        assert error["code"] == 100006

        # member_role 3 (guest) and 0 (member): creator or admin, on a lower rank
        room = await backend.call("member.update", args("yx3", "yx2", properties={"role": "guest"}))
        assert member(room, "yx3")["role"] == "guest"
        message = await last(yx3, 3)
        assert (message["type"], message["sender"]) == ("setRole", "yx2")
        assert message["changes"] == {"role": "guest"} and message["notify"] is False
        room = await backend.call(
            "member.update", args("yx3", "yx1", properties={"role": "member"})
        )
        assert member(room, "yx3")["role"] == "member"
        assert (await last(yx3, 4))["type"] == "setRole"
        # a member may set nobody's role; an admin not another admin's nor the creator's
        error = await backend.fail(
            "member.update", args("yx4", "yx3", properties={"role": "guest"})
        )
        assert error["code"] == 100006
        error = await backend.fail(
            "member.update", args("yx1", "yx2", properties={"role": "member"})
        )
        assert error["code"] == 100006
        # the same rules hold for a user's own connection (operator = themself)
        error = await yx3.fail("member.update", args("yx4", properties={"role": "guest"}))
        assert error["code"] == 100006
        # operator_account_id must be a member
        await backend.call("user.upsert", {"id": "nobody"})
        error = await backend.fail(
            "member.update", args("yx4", "nobody", properties={"role": "guest"})
        )
        assert error["code"] == 100005
        # without operator the server call is not permission-checked: sender "@server"
        await backend.call("member.update", args("yx4", properties={"role": "guest"}))
        message = await last(yx4, 5)
        assert (message["type"], message["sender"]) == ("setRole", "@server")

        # room_nick / room_avatar / member_level / extension in one call, with the notice
        room = await backend.call(
            "member.update",
            args(
                "yx3",
                "yx1",
                properties={
                    "role": "member",
                    "nickname": "ygy test",
                    "avatar": "http://www.baidu.com",
                    "level": 0,
                    "extension": "string",
                },
                system_message=True,
                notification_extension="string",
            ),
        )
        m = member(room, "yx3")
        assert (m["nickname"], m["avatar"], m["level"], m["extension"]) == (
            "ygy test",
            "http://www.baidu.com",
            0,
            "string",
        )
        # role already member and level already 0: only the other three changed
        message = await last(yx3, 6)
        assert message["type"] == "updateMember" and message["sender"] == "yx1"
        assert message["changes"] == {
            "nickname": "ygy test",
            "avatar": "http://www.baidu.com",
            "extension": "string",
        }
        assert message["notify"] is True and message["extension"] == "string"
        await yx3.no_event(0.1)

        # notification_enabled + notification_extension (JSON, <= 2048 characters)
        extension = '{"reason": "' + "字" * 2030 + '"}'
        assert len(extension) <= 2048 < len(extension.encode())
        await backend.call(
            "member.update",
            args(
                "yx3",
                "yx1",
                properties={"level": 7},
                system_message=True,
                notification_extension=extension,
            ),
        )
        message = await last(yx3, 7)
        assert message["extension"] == extension and message["changes"] == {"level": 7}
        before = await settle(backend, "1602801663", creator, yx2, yx3, yx4)
        error = await backend.fail(
            "member.update",
            args("yx3", "yx1", properties={"level": 8}, notification_extension="x" * 2049),
        )
        assert error["code"] == 100002 and error["field"] == "notification_extension"
        # member_level: a member cannot raise their own; level is 0 .. 2^31-1
        error = await yx3.fail("member.update", args("yx3", properties={"level": 99}))
        assert error["code"] == 100006
        for bad in (-1, 2**31, "3", 1.5):
            error = await backend.fail("member.update", args("yx3", properties={"level": bad}))
            assert error["code"] == 100002 and error["field"] == "properties.level"
        # nickname/extension/custom props by the member themself are fine
        await assert_unchanged(backend, "1602801663", before, creator, yx2, yx3, yx4)
        room = await yx3.call("member.update", args("yx3", properties={"nickname": "me"}))
        assert member(room, "yx3")["nickname"] == "me"
        # a guest cannot invite
        error = await yx4.fail("member.add", {"room": "1602801663", "invitees": ["nobody"]})
        assert error["code"] == 100006
