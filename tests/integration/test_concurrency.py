"""Many clients changing one room at once (PROTOCOL.md §2 pipelining, §3 seq, §5 atomic rules).

What a client must be able to rely on under load: every request gets exactly one reply, every
real change gets its own seq (1..N, no gap, no repeat), every member connection sees all of
them in order, nothing is lost, and the room ends up as its last messages say. Run on both
stores (`hub`) and on two nodes sharing one Redis (`two_hubs`).

The app's rate ceiling (§8, 200/s by default) may reject part of a burst with 100009 and a
`retry_after_ms`; the clients here do what the spec asks of them and retry after that delay.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from roomhub.server.hub import Hub

from ..support import RawClient, alternating, authenticated, ws_url

Message = dict[str, Any]
DEADLINE = 30.0  # seconds any one scenario may take, retries included


async def send(
    client: RawClient, op: str, args: dict[str, Any], deadline: float, stats: dict[str, int]
) -> dict[str, Any]:
    """One request; on 100009 wait `retry_after_ms` and send it again. The final reply."""
    while True:
        reply = await client.request(op, args, timeout=max(1.0, deadline - time.monotonic()))
        error = reply.get("error") or {}
        if reply["ok"] or error.get("code") != 100009:
            return reply
        stats["rate_limited"] = stats.get("rate_limited", 0) + 1
        assert isinstance(error.get("retry_after_ms"), int), error
        assert time.monotonic() < deadline, "still rate-limited at the deadline"
        await asyncio.sleep(error["retry_after_ms"] / 1000)


async def pipeline(
    client: RawClient,
    calls: list[tuple[str, dict[str, Any]]],
    deadline: float,
    stats: dict[str, int],
) -> list[dict[str, Any]]:
    """All `calls` sent back to back without waiting; replies in call order."""
    return list(
        await asyncio.gather(*(send(client, op, args, deadline, stats) for op, args in calls))
    )


def assert_gapless(messages: list[Message], first: int, last: int) -> None:
    got = [m["seq"] for m in messages]
    assert got == list(range(first, last + 1)), got


async def many_updaters(urls: list[str], clients: int = 20, per_client: int = 25) -> None:
    users = [f"u{i:02d}" for i in range(clients)]
    deadline = time.monotonic() + DEADLINE
    stats: dict[str, int] = {}
    specs = [(urls[i % len(urls)], user, False) for i, user in enumerate(users)]
    specs += [(urls[-1], "backend1", True), (urls[0], "backend2", True)]
    async with authenticated(*alternating(*specs)) as opened:
        members, backends = opened[:clients], opened[clients:]
        # everybody is connected before the room exists: each starts from the createRoom
        await backends[0].call(
            "room.create",
            {"room": "crowd", "owner": users[0], "members": users[1:], "reply": "ack"},
        )

        expected_real = 0
        plans: list[tuple[RawClient, list[tuple[str, dict[str, Any]]], list[bool]]] = []
        for user, client in zip(users, members):
            calls, real = [], []
            for k in range(per_client):
                if k % 5 == 4:  # a value it already has: acknowledged, no message
                    properties: dict[str, Any] = {"custom_info": ""}
                else:
                    properties = {"n": k}
                calls.append(
                    (
                        "member.update",
                        {"room": "crowd", "user": user, "reply": "ack", "properties": properties},
                    )
                )
                real.append(k % 5 != 4)
            plans.append((client, calls, real))
            expected_real += sum(real)
        # two backends fight over one property of u00: every value is new, so every call counts
        for j, backend in enumerate(backends):
            calls = [
                (
                    "member.update",
                    {
                        "room": "crowd",
                        "user": users[0],
                        "reply": "ack",
                        "properties": {"shared": f"b{j}-{k}"},
                    },
                )
                for k in range(per_client)
            ]
            plans.append((backend, calls, [True] * per_client))
            expected_real += per_client

        results = await asyncio.gather(
            *(pipeline(client, calls, deadline, stats) for client, calls, _ in plans)
        )
        last = 1 + expected_real

        # every op acknowledged exactly once, each real change with its own seq
        change_seqs = []
        for (_, calls, real), replies in zip(plans, results):
            assert len(replies) == len(calls)
            for reply, is_real in zip(replies, real):
                assert reply["ok"] is True, reply
                assert reply["result"]["room"] == "crowd"
                if is_real:
                    change_seqs.append(reply["result"]["seq"])
                else:
                    assert 1 <= reply["result"]["seq"] <= last
        assert sorted(change_seqs) == list(range(2, last + 1))
        for client, _, _ in plans:  # no request answered twice
            answered = [frame["re"] for frame in client.frames if "re" in frame]
            assert len(answered) == len(set(answered))

        # every member connection: 1..last, in order, nothing twice, identical content
        seen = await members[0].events_until(last, room="crowd", timeout=20)
        assert_gapless(seen, 1, last)
        for client in members[1:]:
            got = await client.events_until(last, room="crowd", timeout=20)
            assert got == seen
        await asyncio.sleep(0.2)
        for client in members:
            assert client.events.empty()

        # no update lost: every value each client set is in the messages, once
        updates = [m for m in seen if m["type"] == "updateMember"]
        assert len(updates) == expected_real
        for user in users:
            values = [
                m["changes"]["n"] for m in updates if m["targets"] == [user] and "n" in m["changes"]
            ]
            assert sorted(values) == [k for k in range(per_client) if k % 5 != 4], user
        shared = [m["changes"]["shared"] for m in updates if "shared" in m["changes"]]
        assert sorted(shared) == sorted(f"b{j}-{k}" for j in range(2) for k in range(per_client))

        # the room is what the last message per property says
        room = await backends[1].call("room.get", {"room": "crowd"})
        assert room["seq"] == last
        final: dict[str, dict[str, Any]] = {user: {} for user in users}
        for m in updates:
            final[m["targets"][0]].update(m["changes"])
        for entry in room["members"]:
            assert entry["props"] == final[entry["id"]], entry["id"]
            assert entry["custom_info"] == ""

        # and the history holds the same messages
        history: list[Message] = []
        after = 0
        for _ in range(10):
            page = await backends[0].call(
                "room.history", {"room": "crowd", "after_seq": after, "limit": 200}
            )
            history += page["messages"]
            if not page["more"]:
                break
            after = page["messages"][-1]["seq"]
        assert history == seen


async def concurrent_adds(urls: list[str]) -> None:
    adders = [f"a{i}" for i in range(10)]
    newcomers = [[f"n{i}x{k}" for k in range(5)] for i in range(10)]
    deadline = time.monotonic() + DEADLINE
    stats: dict[str, int] = {}
    specs = [(urls[i % len(urls)], user, False) for i, user in enumerate(adders)]
    specs += [(urls[-1], "backend", True)]
    # a few newcomers are connected and watch for their addMember
    specs += [(urls[i % len(urls)], newcomers[i][0], False) for i in range(0, 10, 3)]
    async with authenticated(*alternating(*specs)) as opened:
        clients, backend, watchers = opened[:10], opened[10], opened[11:]
        for group in newcomers:
            for user in group:
                await backend.call("user.upsert", {"id": user})
        await backend.call("user.upsert", {"id": "zed"})
        await clients[0].call("room.create", {"room": "party", "members": adders[1:]})

        jobs = []
        for client, group in zip(clients, newcomers):
            # one add per user, one add of the whole group again (rule 8: nothing new), and
            # everybody adds zed at the same moment: exactly one of them brings zed in
            calls = [
                ("member.add", {"room": "party", "invitees": [user], "reply": "ack"})
                for user in group
            ]
            calls.append(("member.add", {"room": "party", "invitees": group, "reply": "ack"}))
            calls.append(("member.add", {"room": "party", "invitees": ["zed"], "reply": "ack"}))
            jobs.append(pipeline(client, calls, deadline, stats))
        results = await asyncio.gather(*jobs)
        assert all(r["ok"] for replies in results for r in replies), results

        added = {user for group in newcomers for user in group} | {"zed"}
        room = await backend.call("room.get", {"room": "party"})
        # a group add may bring in several users at once, so fewer messages than users
        last = room["seq"]
        assert 1 < last <= 1 + len(added)
        ids = [m["id"] for m in room["members"]]
        assert len(ids) == len(set(ids))
        assert set(ids) == set(adders) | added
        assert all(m["role"] == "member" for m in room["members"] if m["id"] in added)

        messages = await clients[-1].events_until(last, room="party", timeout=20)
        assert_gapless(messages, 1, last)
        for client in clients[:-1]:
            assert await client.events_until(last, room="party", timeout=20) == messages
        adds = messages[1:]
        assert all(m["type"] == "addMember" for m in adds)
        # each user brought in by exactly one message, whoever won the race
        assert sorted(t for m in adds for t in m["targets"]) == sorted(added)
        # each newcomer who was connected saw its own addMember and everything after it
        for watcher in watchers:
            user = watcher.frames[0]["result"]["user"]
            first = next(m["seq"] for m in adds if user in m["targets"])
            assert_gapless(await watcher.events_until(last, room="party", timeout=20), first, last)


async def test_many_pipelined_updaters_on_one_room(hub: Hub) -> None:
    await many_updaters([ws_url(hub)])


async def test_many_pipelined_updaters_on_two_nodes(two_hubs: tuple[Hub, Hub]) -> None:
    await many_updaters([ws_url(h) for h in two_hubs])


async def test_concurrent_adds_of_disjoint_users_all_land(hub: Hub) -> None:
    await concurrent_adds([ws_url(hub)])


async def test_concurrent_adds_on_two_nodes(two_hubs: tuple[Hub, Hub]) -> None:
    await concurrent_adds([ws_url(h) for h in two_hubs])
