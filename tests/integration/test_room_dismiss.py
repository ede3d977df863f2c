"""room.dismiss (docs/protocol.md §5.13) from outside: who may, what every member and invitee
on every node receives, that the room is gone afterwards (100004, room.list, auth rooms), that
its id starts clean, retries, a dismiss racing member.add on another node, and resume."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
import redis

from roomhub.clients import RoomClient
from roomhub.clients.resume import Resync
from roomhub.server.hub import Hub

from ..support import APP, Open, RawClient, authenticated, token, update_args, ws_url

pytestmark = pytest.mark.timeout(60)

Message = dict[str, Any]


async def users(srv: RawClient, *ids: str) -> None:
    for user in ids:
        await srv.call("user.upsert", {"id": user})


async def dismiss_of(client: RawClient, room: str = "r", timeout: float = 10) -> Message:
    """The dismissRoom of `room` this connection receives (other messages before it skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        message = await client.event(max(0.01, deadline - time.monotonic()))
        if message["room"] == room and message["type"] == "dismissRoom":
            return message


async def listed(client: RawClient, **args: Any) -> list[str]:
    return [room["id"] for room in (await client.call("room.list", args))["rooms"]]


def assert_gone_feed(*hubs: Hub, room: str = "r") -> None:
    """No node still follows the room: its feed ended with the dismiss."""
    for hub in hubs:
        assert (APP, room) not in hub.fanout.feeds


async def wait_gone_feed(*hubs: Hub, room: str = "r", timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while any((APP, room) in hub.fanout.feeds for hub in hubs):
        assert time.monotonic() < deadline, "a node still follows the dismissed room"
        await asyncio.sleep(0.02)


# --- who may, and what everyone sees ---------------------------------------------------------


async def test_the_owner_dismisses_and_every_member_and_invitee_hears_it(
    hub: Hub, open_as: Open, srv: RawClient, caplog: pytest.LogCaptureFixture
) -> None:
    await users(srv, "alice", "bob", "carol", "dave", "mallory")
    alice = await open_as("alice")
    bob = await open_as("bob")
    carol1 = await open_as("carol", encoding="json")
    carol2 = await open_as("carol", encoding="msgpack")
    dave = await open_as("dave")
    mallory = await open_as("mallory")
    await alice.call("room.create", {"room": "r", "members": ["carol", "bob"]})
    await alice.call("member.add", {"room": "r", "invitees": ["dave"], "invitation_required": True})
    assert await alice.call("room.dismiss", {"room": "r"}) == {}

    seen = [await dismiss_of(client) for client in (alice, bob, carol1, carol2, dave)]
    assert all(message == seen[0] for message in seen)
    message = seen[0]
    assert message["seq"] == 3
    assert message["targets"] == ["alice", "bob", "carol"]  # every member, sorted
    assert message["changes"] == {"invitees": ["dave"]}
    assert (message["sender"], message["notify"], message["extension"]) == ("alice", True, None)
    await mallory.no_event(0.2)
    for client in (alice, bob, carol1, carol2, dave):
        await client.no_event(0.1)

    # the room is gone, for everyone and every op
    for client, op, args in (
        (alice, "room.get", {"room": "r"}),
        (srv, "room.get", {"room": "r"}),
        (alice, "member.add", {"room": "r", "invitees": ["mallory"]}),
        (bob, "room.history", {"room": "r"}),
        (srv, "room.history", {"room": "r"}),
        (dave, "invitation.accept", {"room": "r"}),
        (alice, "room.dismiss", {"room": "r"}),
        (srv, "member.update", update_args("r", "bob", {"level": 1})),
    ):
        assert (await client.fail(op, args))["code"] == 100004, op
    for client in (alice, bob, carol1, dave):
        assert "r" not in await listed(client)
    assert "r" not in await listed(srv, operator="dave")
    again = await open_as("bob")
    assert again.frames[0]["result"]["rooms"] == []
    await wait_gone_feed(hub)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.records


async def test_only_the_owner_may_dismiss(open_as: Open, srv: RawClient) -> None:
    await users(srv, "alice", "bob", "carol", "erin", "mallory")
    alice = await open_as("alice")
    await alice.call("room.create", {"room": "r", "members": ["bob", "carol", "erin"]})
    await alice.call("member.update", update_args("r", "bob", {"role": "admin"}))
    await alice.call("member.update", update_args("r", "erin", {"role": "guest"}))
    for user in ("bob", "carol", "erin"):  # admin, member, guest
        client = await open_as(user)
        assert (await client.fail("room.dismiss", {"room": "r"}))["code"] == 100006, user
    mallory = await open_as("mallory")
    assert (await mallory.fail("room.dismiss", {"room": "r"}))["code"] == 100005
    assert (await alice.fail("room.dismiss", {"room": "nope"}))["code"] == 100004
    # server with operator: checked as that user
    refused = await srv.fail("room.dismiss", {"room": "r", "operator": "bob"})
    assert refused["code"] == 100006
    assert (await srv.call("room.get", {"room": "r"}))["seq"] == 3  # nothing changed
    assert (await alice.call("room.history", {"room": "r"}))["messages"][-1]["seq"] == 3
    ack = await srv.call("room.dismiss", {"room": "r", "operator": "alice", "reply": "ack"})
    assert ack == {"room": "r", "seq": 4}
    message = await dismiss_of(alice)
    assert (message["seq"], message["sender"]) == (4, "alice")


async def test_a_server_token_dismisses_unchecked(open_as: Open, srv: RawClient) -> None:
    await users(srv, "alice", "bob")
    await srv.call("room.create", {"room": "r", "owner": "alice", "members": ["bob"]})
    bob = await open_as("bob")
    ack = await srv.call("room.dismiss", {"room": "r", "reply": "ack"})
    assert ack == {"room": "r", "seq": 2}
    message = await dismiss_of(bob)
    assert (message["seq"], message["sender"], message["targets"]) == (
        2,
        "@server",
        ["alice", "bob"],
    )
    assert message["changes"] == {"invitees": []}
    assert (await srv.fail("room.get", {"room": "r"}))["code"] == 100004


async def test_every_member_on_both_nodes_receives_it(two_hubs: tuple[Hub, Hub]) -> None:
    node_a, node_b = two_hubs
    specs = [
        (node_a, "backend", "msgpack", True),
        (node_a, "alice", "json", False),
        (node_b, "alice", "msgpack", False),
        (node_a, "bob", "msgpack", False),
        (node_b, "carol", "json", False),
        (node_b, "dave", "msgpack", False),  # an invitee, on a node that follows no room of his
        (node_b, "mallory", "json", False),
    ]
    async with authenticated(*specs) as (backend, alice_a, alice_b, bob, carol, dave, mallory):
        await users(backend, "alice", "bob", "carol", "dave", "mallory")
        await backend.call(
            "room.create", {"room": "r", "owner": "alice", "members": ["bob", "carol"]}
        )
        await backend.call(
            "member.add", {"room": "r", "invitees": ["dave"], "invitation_required": True}
        )
        for client in (alice_a, alice_b, bob, carol):
            assert [m["seq"] for m in await client.events_until(2, room="r")] == [1, 2]
        assert (await dave.event())["type"] == "inviteMember"
        await alice_b.call("room.dismiss", {"room": "r"})
        seen = [await dismiss_of(client) for client in (alice_a, alice_b, bob, carol, dave)]
        assert all(m == seen[0] for m in seen) and seen[0]["seq"] == 3
        await mallory.no_event(0.2)
        await wait_gone_feed(node_a, node_b)


# --- afterwards: the id starts clean; retries --------------------------------------------------


async def test_the_same_id_starts_clean_and_a_retry_answers_the_first_outcome(
    hub: Hub, open_as: Open, srv: RawClient
) -> None:
    await users(srv, "alice", "bob", "carol")
    alice = await open_as("alice")
    bob = await open_as("bob")
    carol = await open_as("carol")
    await alice.call("room.create", {"room": "r", "members": ["bob"]})
    for n in range(3):
        await alice.call("member.update", update_args("r", "bob", {"n": n}))
    dismiss = {"room": "r", "idempotency_key": "dismiss-1"}
    assert await alice.call("room.dismiss", dismiss) == {}
    assert (await dismiss_of(bob))["seq"] == 5
    await dismiss_of(alice)
    # a repeat with the key: the recorded success, not 100004; and nothing emitted
    assert await alice.call("room.dismiss", dismiss) == {}
    assert await alice.call("room.dismiss", {**dismiss, "reply": "ack"}) == {"room": "r", "seq": 5}
    await wait_gone_feed(hub)

    # a new room of the same id: seq 1, an empty history, new members only
    created = await carol.call("room.create", {"room": "r", "members": ["alice"]})
    assert created["seq"] == 1
    assert {m["id"]: m["role"] for m in created["members"]} == {"carol": "owner", "alice": "member"}
    assert created["invitations"] == []
    await carol.call("member.update", update_args("r", "alice", {"fresh": True}))
    for client in (alice, carol):
        got = await client.events_until(2, room="r")
        assert [(m["seq"], m["type"]) for m in got] == [(1, "createRoom"), (2, "updateMember")]
    page = await srv.call("room.history", {"room": "r"})
    assert [m["seq"] for m in page["messages"]] == [1, 2]
    assert (await bob.fail("room.get", {"room": "r"}))["code"] == 100005
    await bob.no_event(0.2)  # the old member hears nothing of the new room
    assert "r" not in await listed(bob)
    # the old dismiss repeated now: still its first outcome; the new room stays
    assert await alice.call("room.dismiss", {**dismiss, "reply": "ack"}) == {"room": "r", "seq": 5}
    assert (await srv.call("room.get", {"room": "r"}))["seq"] == 2
    await alice.no_event(0.2)


# --- a dismiss racing adds on another node ------------------------------------------------------


async def test_a_dismiss_racing_adds_on_another_node(two_hubs: tuple[Hub, Hub]) -> None:
    """Every add either failed 100004 or its users are in dismissRoom's targets; every
    connected member, newcomers included, saw the dismiss; nothing follows the room after."""
    node_a, node_b = two_hubs
    newcomers = [f"n{i:02d}" for i in range(40)]
    watched = newcomers[::4]  # connected, half on each node
    specs = [
        (node_a, "backend", "msgpack", True),
        (node_b, "adder1", "json", True),
        (node_b, "adder2", "msgpack", True),
        (node_a, "owner", "json", False),
        (node_b, "m1", "msgpack", False),
        *((node_a if i % 2 else node_b, user, "json", False) for i, user in enumerate(watched)),
    ]
    async with authenticated(*specs) as opened:
        backend, adder1, adder2, owner, m1, *watchers = opened
        await users(backend, "owner", "m1", *newcomers)
        await backend.call("room.create", {"room": "r", "owner": "owner", "members": ["m1"]})
        await owner.events_until(1, room="r")

        answered = asyncio.Event()
        replies: dict[str, dict[str, Any]] = {}

        async def adds(client: RawClient, group: list[str]) -> None:
            for user in group:  # one after another, so the dismiss falls among them
                replies[user] = await client.request(
                    "member.add", {"room": "r", "invitees": [user], "reply": "ack"}
                )
                if len(replies) >= 6:
                    answered.set()

        adders = [
            asyncio.create_task(adds(adder1, newcomers[0::2])),
            asyncio.create_task(adds(adder2, newcomers[1::2])),
        ]
        await answered.wait()
        dismissed = await owner.call("room.dismiss", {"room": "r", "reply": "ack"})
        await asyncio.gather(*adders)

        end = await dismiss_of(owner, timeout=15)
        assert end["seq"] == dismissed["seq"]
        targets = set(end["targets"])
        landed = 0
        for user in newcomers:
            reply = replies[user]
            if reply["ok"]:
                landed += 1
                assert user in targets, (user, reply)
                assert reply["result"]["seq"] < end["seq"]
            else:
                assert reply["error"]["code"] == 100004, reply
                assert user not in targets
        assert targets == {"owner", "m1"} | {u for u, r in replies.items() if r["ok"]}
        assert end["seq"] == 2 + landed  # one addMember per add that landed, then the end
        assert landed >= 6  # those answered before the dismiss was sent
        assert await dismiss_of(m1, timeout=15) == end
        for user, watcher in zip(watched, watchers):
            if user in targets:
                assert await dismiss_of(watcher, timeout=15) == end, user
            else:
                await watcher.no_event(0.05)
        for user, watcher in zip(watched, watchers):
            assert "r" not in await listed(watcher), user
        await wait_gone_feed(node_a, node_b)


# --- resume ------------------------------------------------------------------------------------


async def test_a_member_offline_during_the_dismiss_learns_on_resume(
    hub: Hub, open_as: Open, srv: RawClient
) -> None:
    await users(srv, "alice", "bob")
    await srv.call("room.create", {"room": "r", "owner": "alice", "members": ["bob"]})
    await srv.call("member.update", update_args("r", "bob", {"n": 1}))
    await srv.call("room.dismiss", {"room": "r"})
    bob = await open_as("bob")  # any auth: the room is no longer his
    assert bob.frames[0]["result"]["rooms"] == []
    async with RawClient.connect(ws_url(hub), bob.encoding) as again:
        welcome = await again.call("auth", {"key": APP, "token": token("bob"), "resume": {"r": 2}})
        assert welcome["rooms"] == []
        frame = await asyncio.wait_for(again.events.get(), 5)
        assert frame == {"event": "resync", "room": "r", "seq": 0}
        assert (await again.fail("room.get", {"room": "r"}))["code"] == 100004
        await again.no_event(0.2)


async def test_the_python_client_drops_a_dismissed_room(hub: Hub, srv: RawClient) -> None:
    await users(srv, "alice", "bob")
    await srv.call("room.create", {"room": "r", "owner": "alice", "members": ["bob"]})
    await srv.call("room.create", {"room": "s", "owner": "alice", "members": ["bob"]})
    url = ws_url(hub)
    # connected during the dismiss: dismissRoom arrives, the room has no resume point after it
    async with RoomClient.connect(url, key=APP, token=token("alice"), reconnect=True) as alice:
        await alice.dismiss_room("s")
        message = await alice.next_message(5)
        assert (message.room, message.type) == ("s", "dismissRoom")
        assert "s" not in alice.last_seqs and "r" in alice.last_seqs
    # offline during the dismiss: its resume point answers resync 0, and the room is dropped
    resyncs: list[Resync] = []
    async with RoomClient.connect(url, key=APP, token=token("bob"), reconnect=True) as bob:
        last = bob.last_seqs
    assert last == {"r": 1}
    await srv.call("room.dismiss", {"room": "r"})
    async with RoomClient.connect(
        url, key=APP, token=token("bob"), resume=last, on_resync=resyncs.append, reconnect=True
    ) as bob:
        deadline = time.monotonic() + 5
        while not resyncs:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        assert resyncs == [Resync(room="r", seq=0)]
        assert bob.last_seqs == {}
        assert bob.rooms == []


async def test_a_dismiss_missed_while_pubsub_was_away_ends_the_room_for_its_members(
    redis_url: str, two_hubs: tuple[Hub, Hub]
) -> None:
    """The node heals from the log after a pub/sub reconnect; a dismissed room has none, so
    the node checks the room is still there: if not, its members get `resync 0`."""
    writer, reader = two_hubs
    async with authenticated(
        (writer, "backend", "msgpack", True), (reader, "alice", "json", False)
    ) as (backend, alice):
        await users(backend, "owner", "alice")
        await backend.call("room.create", {"room": "r", "owner": "owner", "members": ["alice"]})
        await alice.events_until(1, room="r")
        redis.Redis.from_url(redis_url).client_kill_filter(_type="pubsub")
        await backend.call("room.dismiss", {"room": "r"})
        frame = await asyncio.wait_for(alice.events.get(), 15)
        if frame["event"] == "system":  # pub/sub was back in time: the message itself
            assert frame["message"]["type"] == "dismissRoom"
        else:
            assert frame == {"event": "resync", "room": "r", "seq": 0}
        assert (await alice.fail("room.get", {"room": "r"}))["code"] == 100004
        await wait_gone_feed(writer, reader)
        await alice.no_event(0.3)
