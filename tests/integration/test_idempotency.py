"""Retries with an idempotency key are exactly-once (issue 8 §2): the first outcome is
returned again, nothing changes, nothing is emitted; on every store."""

from __future__ import annotations

from typing import Any

from ..support import RawClient, setup_room, update_args, ws_url


async def _twice(client: RawClient, op: str, args: dict[str, Any]) -> tuple[Any, Any]:
    first = await client.request(op, args)
    second = await client.request(op, args)
    return first, second


async def test_every_mutating_op_repeated_with_its_key_is_applied_once(hub: Any) -> None:
    url = ws_url(hub)
    await setup_room(url, "r", "owner", ["alice", "bob"])
    async with RawClient.connect(url) as owner, RawClient.connect(url) as carol:
        await owner.auth("owner")
        await carol.auth("carol")
        base = (await owner.call("room.get", {"room": "r"}))["seq"]
        steps = [
            (
                owner,
                "member.add",
                {"room": "r", "invitees": ["carol"], "invitation_required": True},
            ),
            (carol, "invitation.accept", {"room": "r"}),
            (owner, "member.update", update_args("r", "bob", {"role": "admin"})),
            (owner, "member.remove", {"room": "r", "user": "bob"}),
            (carol, "room.leave", {"room": "r"}),
        ]
        for n, (client, op, args) in enumerate(steps):
            keyed = {**args, "reply": "ack", "idempotency_key": f"step-{n}"}
            first, second = await _twice(client, op, keyed)
            assert first["ok"], first
            assert second == {**first, "re": second["re"]}, (op, first, second)
        room = await owner.call("room.get", {"room": "r"})
        # one system message per step (leave: acks only), none for the repeats
        assert room["seq"] == base + len(steps)
        assert {m["id"] for m in room["members"]} == {"owner", "alice"}


async def test_room_create_without_an_id_is_one_room(hub: Any) -> None:
    async with RawClient.connect(ws_url(hub)) as alice:
        await alice.auth("alice")
        args = {"name": "once", "idempotency_key": "create-1"}
        first, second = await _twice(alice, "room.create", args)
        assert first["ok"] and second["ok"], (first, second)
        assert first["result"]["id"] == second["result"]["id"]
        listed = await alice.call("room.list", {})
        assert [r["name"] for r in listed["rooms"]] == ["once"]


async def test_the_first_error_is_the_answer_again(hub: Any) -> None:
    url = ws_url(hub)
    await setup_room(url, "r", "owner", ["alice"])
    async with RawClient.connect(url) as alice, RawClient.connect(url) as owner:
        await alice.auth("alice")
        await owner.auth("owner")
        args = update_args("r", "owner", {"level": 3}, idempotency_key="k1")
        first = await alice.fail("member.update", args)
        assert first["code"] == 100006
        await owner.call("member.update", update_args("r", "alice", {"role": "admin"}))
        # alice may now set levels of members, but not the owner's: a repeat is the old answer
        assert await alice.fail("member.update", args) == first


async def test_a_key_reused_for_other_arguments_is_100002(hub: Any) -> None:
    url = ws_url(hub)
    await setup_room(url, "r", "owner", ["alice"])
    async with RawClient.connect(url) as owner, RawClient.connect(url) as alice:
        await owner.auth("owner")
        await alice.auth("alice")
        await owner.call("member.update", update_args("r", "alice", {"n": 1}, idempotency_key="k"))
        error = await owner.fail(
            "member.update", update_args("r", "alice", {"n": 2}, idempotency_key="k")
        )
        assert (error["code"], error["field"]) == (100002, "idempotency_key")
        # another caller's same key is another key
        await alice.call("member.update", update_args("r", "alice", {"n": 3}, idempotency_key="k"))
        room = await owner.call("room.get", {"room": "r"})
        assert next(m for m in room["members"] if m["id"] == "alice")["props"] == {"n": 3}


async def test_bad_keys_are_100002(hub: Any) -> None:
    async with RawClient.connect(ws_url(hub)) as alice:
        await alice.auth("alice")
        for key in ("", "x" * 65, "a b", "ключ", 7):
            error = await alice.fail("room.create", {"idempotency_key": key})
            assert (error["code"], error["field"]) == (100002, "idempotency_key")


async def test_outcomes_kept_per_room_are_capped(start_hub: Any) -> None:
    hub = await start_hub(idempotency_keys_per_room=3)
    url = ws_url(hub)
    await setup_room(url, "r", "owner", ["alice"])
    async with RawClient.connect(url) as owner:
        await owner.auth("owner")
        for n in range(5):
            await owner.call(
                "member.update", update_args("r", "owner", {"n": n}, idempotency_key=f"k{n}")
            )
        seq = (await owner.call("room.get", {"room": "r"}))["seq"]
        # k4 is still known: the repeat changes nothing
        again = update_args("r", "owner", {"n": 4}, idempotency_key="k4", reply="ack")
        assert (await owner.call("member.update", again))["seq"] == seq
        # k0 was aged out by the cap: the same op is applied again (here: no change, same seq)
        old = update_args("r", "owner", {"n": 0}, idempotency_key="k0", reply="ack")
        assert (await owner.call("member.update", old))["seq"] == seq + 1
