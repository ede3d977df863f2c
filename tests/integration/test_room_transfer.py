"""room.transfer and invitation.cancel on a real hub (docs/protocol.md §5.16, §5.17)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ..support import Open, RawClient, update_args, ws_url

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def room(srv: RawClient) -> RawClient:
    """Room "r": own (owner), adm (admin), mem, mem2, gst (guest); out is a known outsider."""
    for user in ["own", "adm", "mem", "mem2", "gst", "out", "inv", "inv2"]:
        await srv.call("user.upsert", {"id": user})
    await srv.call(
        "room.create", {"room": "r", "owner": "own", "members": ["adm", "mem", "mem2", "gst"]}
    )
    await srv.call("member.update", update_args("r", "adm", {"role": "admin"}))
    await srv.call("member.update", update_args("r", "gst", {"role": "guest"}))
    return srv


def roles(state: dict[str, Any]) -> dict[str, str]:
    return {m["id"]: m["role"] for m in state["members"]}


async def test_the_owner_transfers_and_roles_follow(room: RawClient, open_as: Open) -> None:
    own, mem = await open_as("own"), await open_as("mem")
    state = await own.call("room.transfer", {"room": "r", "to": "mem"})
    assert state["owner"] == "mem"
    assert roles(state)["own"] == "admin" and roles(state)["mem"] == "owner"
    assert list(roles(state).values()).count("owner") == 1
    got = await mem.event()
    while got["type"] != "transferOwner":
        got = await mem.event()
    assert got["targets"] == ["mem", "own"]
    assert got["changes"] == {"owner": "mem", "previous_owner": "own"}
    # the new owner may assign admins, the old one no longer
    await mem.call("member.update", update_args("r", "mem2", {"role": "admin"}))
    refused = await own.fail("member.update", update_args("r", "gst", {"role": "admin"}))
    assert refused["code"] == 100006


async def test_server_transfers_with_and_without_operator(room: RawClient) -> None:
    state = await room.call("room.transfer", {"room": "r", "to": "adm"})
    assert state["owner"] == "adm" and roles(state)["own"] == "admin"
    state = await room.call("room.transfer", {"room": "r", "to": "own", "operator": "adm"})
    assert state["owner"] == "own" and roles(state)["adm"] == "admin"
    refused = await room.fail("room.transfer", {"room": "r", "to": "mem", "operator": "adm"})
    assert refused["code"] == 100006


async def test_transfer_refusals_and_the_no_op(room: RawClient, open_as: Open) -> None:
    adm, mem, own = await open_as("adm"), await open_as("mem"), await open_as("own")
    assert (await adm.fail("room.transfer", {"room": "r", "to": "mem"}))["code"] == 100006
    assert (await mem.fail("room.transfer", {"room": "r", "to": "mem2"}))["code"] == 100006
    assert (await own.fail("room.transfer", {"room": "r", "to": "out"}))["code"] == 100005
    assert (await own.fail("room.transfer", {"room": "r", "to": "nobody"}))["code"] == 100007
    before = await room.call("room.get", {"room": "r"})
    after = await own.call("room.transfer", {"room": "r", "to": "own"})
    assert after["seq"] == before["seq"] and after["owner"] == "own"


async def test_concurrent_transfers_and_role_changes_keep_one_owner(room: RawClient) -> None:
    for _ in range(20):
        await asyncio.gather(
            room.request("room.transfer", {"room": "r", "to": "adm"}),
            room.request("member.update", update_args("r", "adm", {"role": "member"})),
            room.request("room.transfer", {"room": "r", "to": "mem"}),
            room.request("member.update", update_args("r", "adm", {"role": "admin"})),
        )
        state = await room.call("room.get", {"room": "r"})
        owners = [m["id"] for m in state["members"] if m["role"] == "owner"]
        assert owners == [state["owner"]]
    page = await room.call("room.history", {"room": "r", "limit": 200})
    seqs = [m["seq"] for m in page["messages"]]
    assert seqs == list(range(1, len(seqs) + 1))


async def test_cancel_rules_atomicity_and_the_invitee(room: RawClient, open_as: Open) -> None:
    mem, mem2, adm, gst = [await open_as(u) for u in ["mem", "mem2", "adm", "gst"]]
    inv = await open_as("inv")
    await mem.call("member.add", {"room": "r", "invitees": ["inv"], "invitation_required": True})
    await room.call("member.add", {"room": "r", "invitees": ["inv2"], "invitation_required": True})
    assert (await mem2.fail("invitation.cancel", {"room": "r", "invitees": ["inv"]}))[
        "code"
    ] == 100006
    assert (await gst.fail("invitation.cancel", {"room": "r", "invitees": ["inv"]}))[
        "code"
    ] == 100006
    before = await room.call("room.get", {"room": "r"})
    missing = await adm.fail("invitation.cancel", {"room": "r", "invitees": ["inv2", "out"]})
    assert missing["code"] == 100008
    assert await room.call("room.get", {"room": "r"}) == before  # nothing changed
    state = await mem.call("invitation.cancel", {"room": "r", "invitees": ["inv"]})
    assert [i["user"] for i in state["invitations"]] == ["inv2"]
    got = await inv.event()
    while got["type"] != "cancelInvitation":
        got = await inv.event()
    assert got["targets"] == ["inv"] and got["sender"] == "mem"
    assert (await inv.fail("invitation.accept", {"room": "r"}))["code"] == 100008
    assert (await inv.call("room.list"))["rooms"] == []
    state = await adm.call("invitation.cancel", {"room": "r", "invitees": ["inv2"]})
    assert state["invitations"] == []


async def test_transfer_races_on_two_nodes_keep_one_owner(two_hubs: Any) -> None:
    """Transfers to B and to C racing B's demotion and promotion, from both nodes: exactly
    one owner after every round, seqs gapless, every message to a member on each node."""
    a, b = two_hubs
    async with (
        RawClient.connect(ws_url(a)) as s1,
        RawClient.connect(ws_url(b)) as s2,
        RawClient.connect(ws_url(a)) as w1,
        RawClient.connect(ws_url(b)) as w2,
    ):
        await s1.auth("backend", server=True)
        await s2.auth("backend", server=True)
        for user in ["A", "B", "C", "W"]:
            await s1.call("user.upsert", {"id": user})
        await s1.call("room.create", {"room": "race", "owner": "A", "members": ["B", "C", "W"]})
        await w1.auth("W")
        await w2.auth("W")
        for _ in range(25):
            await asyncio.gather(
                s1.request("room.transfer", {"room": "race", "to": "B"}),
                s2.request("member.update", update_args("race", "B", {"role": "member"})),
                s2.request("room.transfer", {"room": "race", "to": "C"}),
                s1.request("member.update", update_args("race", "B", {"role": "admin"})),
            )
            state = await s1.call("room.get", {"room": "race"})
            owners = [m["id"] for m in state["members"] if m["role"] == "owner"]
            assert owners == [state["owner"]]
        seq = state["seq"]
        page = await s1.call("room.history", {"room": "race", "limit": 200})
        assert [m["seq"] for m in page["messages"]] == list(range(1, seq + 1))
        for watcher in (w1, w2):
            got = []
            while not got or got[-1] < seq:
                got.append((await watcher.event())["seq"])
            assert got == list(range(2, seq + 1)) or got == list(range(1, seq + 1))


async def test_owner_and_server_cancel_and_members_on_both_nodes_hear_it(two_hubs: Any) -> None:
    """The owner, the server unchecked and the server as a member cancel; each cancel is one
    cancelInvitation seen by a member on the other node and by the invitee, with an ack reply."""
    a, b = two_hubs
    async with (
        RawClient.connect(ws_url(a)) as srv,
        RawClient.connect(ws_url(a)) as own,
        RawClient.connect(ws_url(b), "json") as mem,
        RawClient.connect(ws_url(b)) as inv,
    ):
        await srv.auth("backend", server=True)
        for user in ["own", "mem", "inv"]:
            await srv.call("user.upsert", {"id": user})
        await srv.call("room.create", {"room": "c", "owner": "own", "members": ["mem"]})
        await own.auth("own")
        await mem.auth("mem")
        await inv.auth("inv")
        invite = {"room": "c", "invitees": ["inv"], "invitation_required": True}
        cancels = [
            (own, {}),
            (srv, {}),
            (srv, {"operator": "mem"}),  # mem invited: checked as mem, their own invitation
        ]
        for canceller, extra in cancels:
            await mem.call("member.add", invite)
            ack = await canceller.call(
                "invitation.cancel", {"room": "c", "invitees": ["inv"], "reply": "ack", **extra}
            )
            assert set(ack) == {"room", "seq"} and ack["room"] == "c"
            for watcher in (mem, inv):
                got = await watcher.events_until(ack["seq"], room="c")
                assert [m["type"] for m in got[-2:]] == ["inviteMember", "cancelInvitation"]
                assert got[-1]["targets"] == ["inv"]
        assert (await srv.call("room.get", {"room": "c"}))["invitations"] == []
        # As another member, who did not send the invitation: refused, checked as that member.
        await srv.call("user.upsert", {"id": "mem2"})
        await srv.call("member.add", {"room": "c", "invitees": ["mem2"]})
        await mem.call("member.add", invite)
        refused = await srv.fail(
            "invitation.cancel", {"room": "c", "invitees": ["inv"], "operator": "mem2"}
        )
        assert refused["code"] == 100006
        assert [i["user"] for i in (await srv.call("room.get", {"room": "c"}))["invitations"]] == [
            "inv"
        ]
