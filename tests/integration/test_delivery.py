"""Delivery of system messages as clients see it (PROTOCOL.md §3 "Every change produces a
system message"): who receives what, in which order, on one node and across two nodes.

Every test watches plain WebSocket connections: each connection must see the room's messages
with seq 1, 2, 3 … (from the point it may see them), no gap, no repeat, and nothing it may not
see. Waits are bounded: events_until/no_event/request all time out.
"""

from __future__ import annotations

import asyncio
from typing import Any

from roomhub.server.hub import Hub

from ..support import RawClient, authenticated, member, update_args

Message = dict[str, Any]


async def register(backend: RawClient, *users: str) -> None:
    """Make users known (so they can be added) without connecting them."""
    for user in users:
        await backend.call("user.upsert", {"id": user, "nickname": user.capitalize()})


def seqs(messages: list[Message]) -> list[int]:
    return [m["seq"] for m in messages]


async def receive(client: RawClient, room: str, upto: int, timeout: float = 10) -> list[Message]:
    """Every message of `room` this connection receives up to seq `upto` (other rooms: none)."""
    got = await client.events_until(upto, room=room, timeout=timeout)
    assert all(m["room"] == room for m in got), got
    return got


def assert_run(messages: list[Message], first: int, last: int) -> None:
    """seq first..last, each exactly once, in order."""
    assert seqs(messages) == list(range(first, last + 1)), seqs(messages)


# --- one node, both stores ------------------------------------------------------------------


async def test_every_connection_of_every_member_and_each_target_sees_each_change(
    hub: Hub,
) -> None:
    async with authenticated(
        (hub, "alice", "msgpack", False),
        (hub, "alice", "json", False),
        (hub, "bob", "json", False),
        (hub, "bob", "msgpack", False),
        (hub, "carol", "msgpack", False),
        (hub, "dave", "json", False),
        (hub, "erin", "msgpack", False),
        (hub, "mallory", "json", False),
    ) as (alice1, alice2, bob1, bob2, carol, dave, erin, mallory):
        # 1 createRoom: alice owns it, bob, dave and erin are members from the start
        room = await alice1.call("room.create", {"room": "r", "members": ["bob", "dave", "erin"]})
        assert room["seq"] == 1
        # 2 updateMember by the owner
        await alice1.call("member.update", update_args("r", "bob", {"nickname": "Bobby"}))
        # 3 inviteMember: carol is invited, not a member
        await alice2.call(
            "member.add", {"room": "r", "invitees": ["carol"], "invitation_required": True}
        )
        # 4 removeMember: dave
        await alice1.call("member.remove", {"room": "r", "user": "dave"})
        # 5 leaveRoom: erin leaves
        assert await erin.call("room.leave", {"room": "r"}) == {}
        # 6 assignAdmin: bob
        await alice1.call("member.update", update_args("r", "bob", {"role": "admin"}))
        # 7 acceptInvitation: carol joins
        await carol.call("invitation.accept", {"room": "r"})
        # 8 updateMember by bob (now admin) on carol
        last = await bob2.call("member.update", update_args("r", "carol", {"custom_info": "hi"}))
        assert last["seq"] == 8

        everyone = {}
        for name, client in (
            ("alice1", alice1),
            ("alice2", alice2),
            ("bob1", bob1),
            ("bob2", bob2),
        ):
            everyone[name] = await receive(client, "r", 8)
            assert_run(everyone[name], 1, 8)
        types = [m["type"] for m in everyone["alice1"]]
        assert types == [
            "createRoom",
            "updateMember",
            "inviteMember",
            "removeMember",
            "leaveRoom",
            "assignAdmin",
            "acceptInvitation",
            "updateMember",
        ]
        # every connection got the very same messages, whatever its encoding
        for name, got in everyone.items():
            assert got == everyone["alice1"], name

        # dave: everything up to his removal, then nothing
        dave_got = await receive(dave, "r", 4)
        assert dave_got == everyone["alice1"][:4]
        assert dave_got[-1]["type"] == "removeMember" and dave_got[-1]["targets"] == ["dave"]
        # erin: everything up to her leaving, then nothing
        erin_got = await receive(erin, "r", 5)
        assert erin_got == everyone["alice1"][:5]
        assert erin_got[-1]["type"] == "leaveRoom" and erin_got[-1]["targets"] == ["erin"]
        # carol: her invitation, then from her acceptance on
        carol_got = await receive(carol, "r", 8)
        assert seqs(carol_got) == [3, 7, 8]
        assert carol_got == [everyone["alice1"][i - 1] for i in (3, 7, 8)]
        for client in (alice1, alice2, bob1, bob2, carol, dave, erin, mallory):
            await client.no_event(0.2)
        # mallory never was a member or a target: she got nothing at all
        assert not [f for f in mallory.frames if "event" in f]


async def test_pipelined_burst_reaches_every_connection_gapless(hub: Hub) -> None:
    async with authenticated(
        (hub, "alice", "msgpack", False),
        (hub, "alice", "json", False),
        (hub, "bob", "json", False),
        (hub, "backend", "msgpack", True),
    ) as (alice1, alice2, bob, backend):
        await alice1.call("room.create", {"room": "burst", "members": ["bob"]})
        count = 40
        replies = await asyncio.gather(
            *(
                alice1.request(
                    "member.update",
                    {"room": "burst", "user": "alice", "reply": "ack", "properties": {"score": i}},
                )
                for i in range(count)
            )
        )
        assert all(r["ok"] for r in replies), [r for r in replies if not r["ok"]]
        assert sorted(r["result"]["seq"] for r in replies) == list(range(2, count + 2))
        for client in (alice1, alice2, bob):
            got = await receive(client, "burst", count + 1)
            assert_run(got, 1, count + 1)
            await client.no_event(0.2)
        # the message applied last is what the room holds
        room = await backend.call("room.get", {"room": "burst"})
        final = got[-1]["changes"]["score"]
        assert room["seq"] == count + 1
        assert member(room, "alice")["props"] == {"score": final}


async def test_member_who_connects_after_being_added_receives_later_messages(hub: Hub) -> None:
    async with authenticated((hub, "alice", "msgpack", False), (hub, "backend", "json", True)) as (
        alice,
        backend,
    ):
        await register(backend, "bob")
        await alice.call("room.create", {"room": "r", "members": ["bob"]})
        async with authenticated((hub, "bob", "json", False)) as (bob,):
            welcome = bob.frames[0]["result"]
            assert welcome["rooms"] == ["r"]
            await alice.call("member.update", update_args("r", "bob", {"level": 3}))
            got = await receive(bob, "r", 2)
            assert seqs(got) == [2] and got[0]["type"] == "updateMember"
            assert got[0]["changes"] == {"level": 3}
            await bob.call("member.update", update_args("r", "bob", {"nickname": "B"}))
            assert seqs(await receive(bob, "r", 3)) == [3]
            assert seqs(await receive(alice, "r", 3)) == [1, 2, 3]


async def test_user_connected_before_being_added_receives_from_the_add_on(hub: Hub) -> None:
    async with authenticated(
        (hub, "alice", "msgpack", False),
        (hub, "bob", "json", False),
        (hub, "carol", "msgpack", False),
    ) as (alice, bob, carol):
        assert bob.frames[0]["result"]["rooms"] == []
        await alice.call("room.create", {"room": "r"})
        await alice.call("member.update", update_args("r", "alice", {"nickname": "Al"}))
        await bob.no_event(0.2)
        # added directly: bob's first message is the addMember, then every later one
        await alice.call("member.add", {"room": "r", "invitees": ["bob"]})
        await alice.call("member.update", update_args("r", "bob", {"custom_info": "new"}))
        got = await receive(bob, "r", 4)
        assert seqs(got) == [3, 4]
        assert got[0]["type"] == "addMember" and got[0]["targets"] == ["bob"]
        # invited: carol gets the invitation, and after accepting every later message
        await alice.call(
            "member.add", {"room": "r", "invitees": ["carol"], "invitation_required": True}
        )
        invite = await receive(carol, "r", 5)
        assert seqs(invite) == [5] and invite[0]["type"] == "inviteMember"
        await carol.call("invitation.accept", {"room": "r"})
        await bob.call("member.update", update_args("r", "bob", {"nickname": "Bobby"}))
        assert seqs(await receive(carol, "r", 7)) == [6, 7]
        assert seqs(await receive(bob, "r", 7)) == [5, 6, 7]
        assert seqs(await receive(alice, "r", 7)) == list(range(1, 8))
        for client in (alice, bob, carol):
            await client.no_event(0.2)


async def _add_then_pipeline(
    operator: RawClient, room: str, newcomer: str, owner: str, extra: int
) -> tuple[int, int]:
    """member.add `newcomer` with `extra` changes (on the owner) pipelined right behind it, then
    `extra` changes on the newcomer sent the moment the add is acknowledged.

    Returns (seq of the addMember message, seq of the last message).
    """
    add = asyncio.ensure_future(
        operator.request("member.add", {"room": room, "invitees": [newcomer], "reply": "ack"})
    )
    await asyncio.sleep(0)  # the add is on the wire first

    def changes_on(user: str) -> list[asyncio.Future[dict[str, Any]]]:
        return [
            asyncio.ensure_future(
                operator.request("member.update", update_args(room, user, {"step": i}, reply="ack"))
            )
            for i in range(extra)
        ]

    behind = changes_on(owner)
    added = await add
    assert added["ok"], added
    after = changes_on(newcomer)
    replies = await asyncio.gather(*behind, *after)
    assert all(r["ok"] for r in replies), [r for r in replies if not r["ok"]]
    acks = sorted([added["result"]["seq"], *(r["result"]["seq"] for r in replies)])
    assert acks == list(range(acks[0], acks[0] + 2 * extra + 1)), acks
    return added["result"]["seq"], acks[-1]


async def test_changes_pipelined_right_after_an_add_reach_the_newcomer(hub: Hub) -> None:
    async with authenticated(
        (hub, "backend", "msgpack", True),
        (hub, "alice", "msgpack", False),
        (hub, "bob", "json", False),
        (hub, "bob", "msgpack", False),
    ) as (backend, alice, bob1, bob2):
        # the backend (a server token, no room feed) and the owner's own connection operate
        for round_, operator in enumerate([backend, alice] * 3):
            room = f"pipe{round_}"
            if operator is backend:
                await backend.call("room.create", {"room": room, "owner": "alice"})
            else:
                await alice.call("room.create", {"room": room})
            added, last = await _add_then_pipeline(operator, room, "bob", "alice", extra=8)
            assert last == 1 + 1 + 2 * 8
            for bob in (bob1, bob2):
                got = await receive(bob, room, last)
                assert_run(got, added, last)
                assert got[0]["type"] == "addMember" and got[0]["targets"] == ["bob"]
            assert_run(await receive(alice, room, last), 1, last)
        for client in (alice, bob1, bob2):
            await client.no_event(0.2)


async def test_a_change_that_changes_nothing_emits_no_message(hub: Hub) -> None:
    async with authenticated(
        (hub, "alice", "msgpack", False),
        (hub, "bob", "json", False),
        (hub, "carol", "msgpack", False),
    ) as (alice, bob, carol):
        await alice.call("room.create", {"room": "r", "members": ["bob"]})
        await alice.call(
            "member.add", {"room": "r", "invitees": ["carol"], "invitation_required": True}
        )
        await alice.call(
            "member.update",
            {
                "room": "r",
                "user": "bob",
                "properties": {
                    "nickname": "B",
                    "level": 2,
                    "custom_info": "c",
                    "extension": "e",
                    "avatar": "https://a.example/b.png",
                    "score": 5,
                    "tags": ["x", {"y": 1}],
                },
            },
        )
        for client in (alice, bob):
            assert seqs(await receive(client, "r", 3)) == [1, 2, 3]
        assert seqs(await receive(carol, "r", 2)) == [2]
        before = await alice.call("room.get", {"room": "r"})

        same = [
            {"nickname": "B"},
            {"level": 2},
            {"custom_info": "c"},
            {"extension": "e"},
            {"avatar": "https://a.example/b.png"},
            {"score": 5},
            {"tags": ["x", {"y": 1}]},
            {"role": "member"},
            {"absent_prop": None},
            {"nickname": "B", "score": 5, "role": "member"},
        ]
        for properties in same:
            room = await alice.call("member.update", update_args("r", "bob", properties))
            assert room == before, properties
            ack = await alice.call(
                "member.update",
                {"room": "r", "user": "bob", "reply": "ack", "properties": properties},
            )
            assert ack == {"room": "r", "seq": 3}
        # adding a member again, inviting an invitee again
        assert await alice.call("member.add", {"room": "r", "invitees": ["bob"]}) == before
        assert (
            await alice.call(
                "member.add", {"room": "r", "invitees": ["carol"], "invitation_required": True}
            )
            == before
        )
        # a user setting their own nickname to what it is
        assert await bob.call("member.update", update_args("r", "bob", {"nickname": "B"})) == before
        for client in (alice, bob, carol):
            await client.no_event(0.3)
        history = await alice.call("room.history", {"room": "r"})
        assert seqs(history["messages"]) == [1, 2, 3]
        # a partial no-op reports only what really changed
        await alice.call("member.update", update_args("r", "bob", {"nickname": "B", "level": 7}))
        message = (await receive(bob, "r", 4))[-1]
        assert message["type"] == "updateMember" and message["changes"] == {"level": 7}


async def test_live_messages_equal_the_room_history(hub: Hub) -> None:
    async with authenticated(
        (hub, "alice", "json", False),
        (hub, "bob", "msgpack", False),
        (hub, "carol", "json", False),
        (hub, "backend", "msgpack", True),
    ) as (alice, bob, carol, backend):
        await alice.call("room.create", {"room": "h", "name": "History", "members": ["bob"]})
        await alice.call(
            "member.add",
            {
                "room": "h",
                "invitees": ["carol"],
                "invitation_required": True,
                "system_message": True,
            },
        )
        await carol.call("invitation.accept", {"room": "h"})
        await alice.call(
            "member.update",
            {
                "room": "h",
                "user": "bob",
                "system_message": True,
                "notification_extension": '{"k": "v"}',
                "properties": {
                    "role": "admin",
                    "nickname": "Bob ✓",
                    "loc": {"lat": 1.5, "tags": []},
                },
            },
        )
        await bob.call("member.update", update_args("h", "carol", {"role": "guest"}))
        await alice.call("member.update", update_args("h", "bob", {"loc": None}))
        await alice.call("member.remove", {"room": "h", "user": "carol"})
        for i in range(6):
            await bob.call("member.update", update_args("h", "bob", {"n": i}))
        last = (await alice.call("room.get", {"room": "h"}))["seq"]
        assert last == 14

        live_alice = await receive(alice, "h", last)
        live_bob = await receive(bob, "h", last)
        assert_run(live_alice, 1, last)
        assert live_bob == live_alice
        whole = await alice.call("room.history", {"room": "h"})
        assert whole["more"] is False
        assert whole["messages"] == live_alice
        # paging on with the last message's seq gives the same messages
        paged: list[Message] = []
        after = 0
        for _ in range(10):
            page = await backend.call("room.history", {"room": "h", "after_seq": after, "limit": 4})
            paged += page["messages"]
            if not page["more"]:
                break
            after = page["messages"][-1]["seq"]
        assert paged == live_alice
        tail = await bob.call("room.history", {"room": "h", "after_seq": 12})
        assert tail == {"messages": live_alice[12:], "more": False}
        # what the messages say, as a client reads them
        by_seq = {m["seq"]: m for m in live_alice}
        assert by_seq[2]["type"] == "inviteMember" and by_seq[2]["notify"] is True
        assert by_seq[4]["type"] == "assignAdmin" and by_seq[4]["changes"] == {"role": "admin"}
        assert by_seq[4]["extension"] == '{"k": "v"}'
        assert by_seq[5]["type"] == "updateMember"
        assert by_seq[5]["changes"] == {"nickname": "Bob ✓", "loc": {"lat": 1.5, "tags": []}}
        assert by_seq[6]["type"] == "setRole" and by_seq[6]["sender"] == "bob"
        assert by_seq[7]["changes"] == {"loc": None}
        assert by_seq[8]["type"] == "removeMember"


# --- two nodes on one Redis -------------------------------------------------------------------


async def test_members_on_two_nodes_each_receive_each_message_once_in_order(
    two_hubs: tuple[Hub, Hub],
) -> None:
    a, b = two_hubs
    async with authenticated(
        (a, "alice", "msgpack", False),
        (b, "alice", "json", False),
        (b, "bob", "msgpack", False),
        (a, "carol", "json", False),
        (b, "carol", "msgpack", False),
        (a, "mallory", "msgpack", False),
        (b, "mallory", "json", False),
    ) as (alice_a, alice_b, bob_b, carol_a, carol_b, mallory_a, mallory_b):
        await alice_a.call("room.create", {"room": "x", "members": ["bob", "carol"]})
        count = 30
        # operators on both nodes, pipelined: (client, target, property) in turn
        operators = [(alice_b, "bob", "a"), (bob_b, "bob", "b"), (carol_a, "carol", "c")]
        requests = []
        for i in range(count):
            client, user, prop = operators[i % 3]
            requests.append(
                client.request("member.update", update_args("x", user, {prop: i}, reply="ack"))
            )
        replies = await asyncio.gather(*requests)
        assert all(r["ok"] for r in replies), [r for r in replies if not r["ok"]]
        last = count + 1
        seen = {}
        for name, client in (
            ("alice_a", alice_a),
            ("alice_b", alice_b),
            ("bob_b", bob_b),
            ("carol_a", carol_a),
            ("carol_b", carol_b),
        ):
            seen[name] = await receive(client, "x", last)
            assert_run(seen[name], 1, last)
            assert seen[name] == seen["alice_a"], name
        for client in (alice_a, alice_b, bob_b, carol_a, carol_b, mallory_a, mallory_b):
            await client.no_event(0.3)
        for mallory in (mallory_a, mallory_b):
            assert not [f for f in mallory.frames if "event" in f]
        history = await bob_b.call("room.history", {"room": "x", "limit": 200})
        assert history["messages"] == seen["alice_a"]


async def test_two_nodes_targets_newcomers_and_leavers(two_hubs: tuple[Hub, Hub]) -> None:
    a, b = two_hubs
    async with authenticated(
        (a, "alice", "msgpack", False),
        (b, "bob", "json", False),
        (b, "bob", "msgpack", False),
        (b, "carol", "json", False),
        (a, "dave", "msgpack", False),
        (b, "backend", "msgpack", True),
    ) as (alice, bob1, bob2, carol, dave, backend):
        await alice.call("room.create", {"room": "y", "members": ["dave"]})
        # bob (only on node B) is added by alice (node A) with changes right behind the add
        added, last = await _add_then_pipeline(alice, "y", "bob", "alice", extra=10)
        assert last == 22
        for bob in (bob1, bob2):
            got = await receive(bob, "y", last)
            assert_run(got, added, last)
            assert got[0]["type"] == "addMember"
        # carol (node B) is invited by the backend (node B), accepts
        await backend.call(
            "member.add", {"room": "y", "invitees": ["carol"], "invitation_required": True}
        )
        await carol.call("invitation.accept", {"room": "y"})
        # dave (node A) is removed by bob (node B) after bob became admin
        await alice.call("member.update", update_args("y", "bob", {"role": "admin"}))
        await bob2.call("member.remove", {"room": "y", "user": "dave"})
        await carol.call("room.leave", {"room": "y"})
        await alice.call("member.update", update_args("y", "bob", {"nickname": "after"}))
        # 23 invite, 24 accept, 25 assignAdmin, 26 removeMember, 27 leaveRoom, 28 update
        final = 28
        everything = await receive(alice, "y", final)
        assert_run(everything, 1, final)
        for bob in (bob1, bob2):
            assert await receive(bob, "y", final) == everything[22:]
        carol_got = await receive(carol, "y", 27)
        assert seqs(carol_got) == [23, 24, 25, 26, 27]
        assert carol_got[-1]["type"] == "leaveRoom"
        dave_got = await receive(dave, "y", 26)
        assert dave_got == everything[:26]
        assert dave_got[-1]["type"] == "removeMember" and dave_got[-1]["targets"] == ["dave"]
        for client in (alice, bob1, bob2, carol, dave):
            await client.no_event(0.3)


async def test_removed_then_added_again_receives_nothing_in_between(
    two_hubs: tuple[Hub, Hub],
) -> None:
    a, b = two_hubs
    async with authenticated((a, "alice", "msgpack", False), (b, "dave", "json", False)) as (
        alice,
        dave,
    ):
        await alice.call("room.create", {"room": "z", "members": ["dave"]})  # 1
        await alice.call("member.update", update_args("z", "dave", {"k": 0}))  # 2
        await alice.call("member.remove", {"room": "z", "user": "dave"})  # 3
        for i in range(3):  # 4, 5, 6: dave is out
            await alice.call("member.update", update_args("z", "alice", {"k": i}))
        assert seqs(await receive(dave, "z", 3)) == [1, 2, 3]
        await dave.no_event(0.2)
        # back in, with changes pipelined around the add: 7 .. 13, the add among them
        added, last = await _add_then_pipeline(alice, "z", "dave", "alice", extra=3)
        assert 7 <= added < last == 13
        got = await receive(dave, "z", last)
        assert_run(got, added, last)
        assert got[0]["type"] == "addMember"
        # dave leaves, is invited again: the invitation, then from his acceptance on
        await dave.call("room.leave", {"room": "z"})  # 14
        await alice.call("member.update", update_args("z", "alice", {"k": 99}))  # 15
        await alice.call(
            "member.add", {"room": "z", "invitees": ["dave"], "invitation_required": True}
        )  # 16
        await alice.call("member.update", update_args("z", "alice", {"k": 100}))  # 17
        await dave.call("invitation.accept", {"room": "z"})  # 18
        await alice.call("member.update", update_args("z", "dave", {"k": 101}))  # 19
        assert seqs(await receive(dave, "z", 19)) == [14, 16, 18, 19]
        assert_run(await receive(alice, "z", 19), 1, 19)
        for client in (alice, dave):
            await client.no_event(0.2)
