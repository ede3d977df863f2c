"""The Python reference client (roomhub.clients) against real hubs, and against a scripted
fake server where the behaviour under test cannot be provoked from a real one on demand
(a connection lost mid-call, resync events, rate-limit replies, very large rooms)."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.typing import Subprotocol

from roomhub.clients import ConnectionLost, Resync, RoomClient, RoomError
from roomhub.protocol.codec import SUBPROTOCOLS, Encoding, decode, encode
from roomhub.protocol.errors import ErrorCode
from roomhub.protocol.models import Ack, HistoryPage, Room, SystemMessage, User
from roomhub.server.hub import Hub

from ..conftest import HubFactory, ws_url
from ..support import APP, token

Opener = Callable[..., Any]


@pytest.fixture(params=["msgpack", "json"])
def encoding(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def open_as(hub: Hub, encoding: str) -> Opener:
    """open_as("alice") / open_as("app", server=True): a RoomClient context manager on `hub`."""

    def opener(user: str, *, server: bool = False, **options: Any) -> Any:
        return RoomClient.connect(
            ws_url(hub), key=APP, token=token(user, server=server), encoding=encoding, **options
        )

    return opener


@pytest.fixture
async def backend(open_as: Opener) -> AsyncIterator[RoomClient]:
    """A server-token client that has registered bob, carol and dave (alice registers herself
    by connecting)."""
    async with open_as("app", server=True) as client:
        for user in ("bob", "carol", "dave"):
            await client.upsert_user(user, nickname=user.title())
        yield client


async def messages_until(
    client: RoomClient, seq: int, room: str | None = None, timeout: float = 3
) -> list[SystemMessage]:
    """System messages up to and including `seq` (of `room`, when given)."""
    got: list[SystemMessage] = []
    async with asyncio.timeout(timeout):
        async for message in client.messages():
            got.append(message)
            if message.seq >= seq and (room is None or message.room == room):
                return got
    raise AssertionError(f"connection closed after {got}")


async def no_message(client: RoomClient, wait: float = 0.2) -> None:
    with pytest.raises(TimeoutError):
        message = await client.next_message(timeout=wait)
        pytest.fail(f"unexpected message {message}")


# --- connecting ---------------------------------------------------------------------------


async def test_connect_exposes_the_auth_result(open_as: Opener, encoding: str) -> None:
    async with open_as("alice") as alice:
        assert alice.encoding is Encoding(f"roomhub.v1.{encoding}")
        assert alice.user == "alice" and alice.rooms == []
        assert alice.welcome is not None and alice.welcome.server.version
        await alice.create_room("r1")
    async with open_as("alice") as alice:
        assert alice.rooms == ["r1"]


async def test_connect_can_be_awaited_and_closed_by_hand(open_as: Opener) -> None:
    alice = await open_as("alice")
    try:
        assert alice.user == "alice" and not alice.closed
    finally:
        await alice.close()
    assert alice.closed


async def test_refused_auth_raises_unauthenticated(hub: Hub, encoding: str) -> None:
    expired = token("alice", ttl=-60)
    for key, tok in ((APP, expired), ("no-such-app", token("alice")), (APP, "not-a-jwt")):
        with pytest.raises(RoomError) as caught:
            await RoomClient.connect(ws_url(hub), key=key, token=tok, encoding=encoding)
        assert caught.value.code is ErrorCode.UNAUTHENTICATED
        assert caught.value.reason == "UNAUTHENTICATED" and caught.value.message


def test_unknown_encoding_is_refused_before_connecting() -> None:
    with pytest.raises(ValueError, match="encoding"):
        RoomClient.connect("ws://127.0.0.1:1/ws", key=APP, token="t", encoding="xml")


# --- every op -----------------------------------------------------------------------------


async def test_create_get_and_list_rooms(open_as: Opener, backend: RoomClient) -> None:
    async with open_as("alice") as alice:
        room = await alice.create_room("r1", name="Demo", members=["bob"])
        assert isinstance(room, Room)
        assert (room.id, room.name, room.type, room.owner, room.seq) == (
            "r1",
            "Demo",
            "group",
            "alice",
            1,
        )
        assert [(m.id, m.role) for m in room.members] == [("alice", "owner"), ("bob", "member")]
        bob = room.member("bob")
        assert bob is not None and bob.nickname == "Bob" and bob.props == {} and bob.joined_ms > 0
        assert await alice.get_room("r1") == room

        generated = await alice.create_room(type="direct")
        assert len(generated.id) == 16 and generated.type == "direct" and generated.name == ""

        rooms = await alice.list_rooms()
        assert [r.id for r in rooms] == sorted(["r1", generated.id])
        assert all(r.members == [] for r in rooms)  # room.list omits members
        message = await alice.next_message(timeout=2)
        assert (message.type, message.targets, message.sender) == (
            "createRoom",
            ["alice", "bob"],
            "alice",
        )


async def test_invite_accept_and_decline(open_as: Opener, backend: RoomClient) -> None:
    async with open_as("alice") as alice, open_as("bob") as bob, open_as("carol") as carol:
        await alice.create_room("r1")
        room = await alice.add_members(
            "r1", ["bob", "carol"], invitation_required=True, system_message=True
        )
        assert sorted(i.user for i in room.invitations) == ["bob", "carol"]
        assert all(i.inviter == "alice" for i in room.invitations)
        assert [m.id for m in room.members] == ["alice"]
        invite = await bob.next_message(timeout=2)
        assert (invite.type, invite.seq, invite.notify) == ("inviteMember", 2, True)
        assert sorted(invite.targets) == ["bob", "carol"]

        accepted = await bob.accept("r1")
        assert [m.id for m in accepted.members] == ["alice", "bob"]
        assert [i.user for i in accepted.invitations] == ["carol"]
        assert await carol.decline("r1") is None

        seen = [m.type for m in await messages_until(alice, 4, "r1")]
        assert seen == ["createRoom", "inviteMember", "acceptInvitation", "declineInvitation"]
        final = await alice.get_room("r1")
        assert final.invitations == [] and final.seq == 4
        assert [m.id for m in final.members] == ["alice", "bob"]


async def test_add_members_directly(open_as: Opener, backend: RoomClient) -> None:
    async with open_as("alice") as alice, open_as("bob") as bob:
        await alice.create_room("r1")
        room = await alice.add_members("r1", ["bob", "carol"])
        assert [m.id for m in room.members] == ["alice", "bob", "carol"]
        message = await bob.next_message(timeout=2)
        assert (message.type, message.seq, message.notify) == ("addMember", 2, False)
        assert sorted(message.targets) == ["bob", "carol"]


async def test_update_member_properties(open_as: Opener, backend: RoomClient) -> None:
    async with open_as("alice") as alice, open_as("bob") as bob:
        await alice.create_room("r1", members=["bob"])
        room = await bob.update_member(
            "r1",
            "bob",
            {"nickname": "Bobby", "score": [1, 2.5]},
            system_message=True,
            notification_extension='{"k":1}',
        )
        member = room.member("bob")
        assert member is not None and member.nickname == "Bobby"
        assert member.props == {"score": [1, 2.5]}
        room = await alice.update_member("r1", "bob", {"role": "admin", "score": None})
        member = room.member("bob")
        assert member is not None and member.role == "admin" and member.props == {}

        got = await messages_until(bob, 4, "r1")
        assert [(m.seq, m.type) for m in got] == [
            (1, "createRoom"),
            (2, "updateMember"),
            (3, "assignAdmin"),
            (4, "updateMember"),
        ]
        assert got[1].changes == {"nickname": "Bobby", "score": [1, 2.5]}
        assert (got[1].notify, got[1].extension, got[1].sender) == (True, '{"k":1}', "bob")
        assert got[2].changes == {"role": "admin"} and got[2].notify is True
        assert got[3].changes == {"score": None} and got[3].extension is None


async def test_remove_member_and_leave(open_as: Opener, backend: RoomClient) -> None:
    async with open_as("alice") as alice, open_as("bob") as bob, open_as("carol") as carol:
        await alice.create_room("r1", members=["bob", "carol"])
        room = await alice.remove_member("r1", "bob")
        assert [m.id for m in room.members] == ["alice", "carol"]
        removed = (await messages_until(bob, 2, "r1"))[-1]
        assert (removed.type, removed.targets, removed.sender) == ("removeMember", ["bob"], "alice")
        assert await carol.leave("r1") is None
        left = (await messages_until(alice, 3, "r1"))[-1]
        assert (left.type, left.targets, left.sender) == ("leaveRoom", ["carol"], "carol")
        assert [m.id for m in (await alice.get_room("r1")).members] == ["alice"]
        await no_message(bob)  # no longer a member: carol's leave is not delivered to bob


async def test_history_pages(open_as: Opener, backend: RoomClient) -> None:
    async with open_as("alice") as alice:
        await alice.create_room("r1", members=["bob"])
        for level in range(1, 5):
            await alice.update_member("r1", "bob", {"level": level})
        page = await alice.history("r1", limit=2)
        assert isinstance(page, HistoryPage) and page.more is True
        assert [m.seq for m in page.messages] == [1, 2]
        page = await alice.history("r1", after_seq=page.messages[-1].seq, limit=2)
        assert [m.seq for m in page.messages] == [3, 4] and page.more is True
        page = await alice.history("r1", after_seq=4)
        assert [(m.seq, m.changes) for m in page.messages] == [(5, {"level": 4})]
        assert page.more is False
        assert (await alice.history("r1")).messages[0].type == "createRoom"


async def test_reply_ack_on_every_mutating_method(open_as: Opener, backend: RoomClient) -> None:
    async with open_as("alice") as alice, open_as("bob") as bob, open_as("carol") as carol:
        assert await alice.create_room("r1", reply="ack") == Ack(room="r1", seq=1)
        assert await alice.add_members(
            "r1", ["bob", "carol"], invitation_required=True, reply="ack"
        ) == Ack(room="r1", seq=2)
        assert await bob.accept("r1", reply="ack") == Ack(room="r1", seq=3)
        assert await carol.decline("r1", reply="ack") == Ack(room="r1", seq=4)
        assert await alice.update_member("r1", "bob", {"level": 3}, reply="ack") == Ack(
            room="r1", seq=5
        )
        # nothing changes: no message, the ack carries the room's current seq
        assert await alice.update_member("r1", "bob", {"level": 3}, reply="ack") == Ack(
            room="r1", seq=5
        )
        await alice.add_members("r1", ["carol", "dave"])
        assert await carol.leave("r1", reply="ack") == Ack(room="r1", seq=7)
        assert await alice.remove_member("r1", "dave", reply="ack") == Ack(room="r1", seq=8)


async def test_server_token_methods(open_as: Opener, backend: RoomClient) -> None:
    user = await backend.upsert_user("erin", nickname="Erin", avatar="https://a/e.png")
    assert user == User(id="erin", nickname="Erin", avatar="https://a/e.png")
    assert await backend.upsert_user("erin", avatar="https://a/e2.png") == User(
        id="erin", nickname="Erin", avatar="https://a/e2.png"
    )  # nickname kept

    room = await backend.create_room("r1", owner="erin", members=["bob"])
    assert room.owner == "erin"
    erin = room.member("erin")
    assert erin is not None and erin.nickname == "Erin" and erin.role == "owner"
    assert backend.user == "app" and backend.rooms == []

    async with open_as("bob") as bob:
        room = await backend.add_members("r1", ["carol"], operator="bob")
        assert sorted(m.id for m in room.members) == ["bob", "carol", "erin"]
        added = (await messages_until(bob, 2, "r1"))[-1]
        assert (added.type, added.sender) == ("addMember", "bob")

        await backend.update_member("r1", "carol", {"level": 7})  # unchecked, as @server
        updated = await bob.next_message(timeout=2)
        assert (updated.sender, updated.changes) == ("@server", {"level": 7})

        with pytest.raises(RoomError) as caught:  # checked as bob: a member cannot set levels
            await backend.update_member("r1", "carol", {"level": 8}, operator="bob")
        assert caught.value.code is ErrorCode.FORBIDDEN
        with pytest.raises(RoomError) as caught:
            await backend.get_room("r1", operator="dave")
        assert caught.value.code is ErrorCode.NOT_A_MEMBER

        assert [r.id for r in await backend.list_rooms(operator="bob")] == ["r1"]
        page = await backend.history("r1", operator="bob")
        assert [m.seq for m in page.messages] == [1, 2, 3]
        await backend.leave("r1", operator="carol")
        assert await backend.remove_member("r1", "bob") is not None
        assert (await bob.next_message(timeout=2)).type == "leaveRoom"

        with pytest.raises(RoomError) as caught:
            await bob.upsert_user("bob", nickname="Me")
        assert caught.value.code is ErrorCode.FORBIDDEN
        with pytest.raises(RoomError) as caught:
            await bob.create_room("r2", operator="carol")
        assert (caught.value.code, caught.value.field) == (ErrorCode.INVALID_PARAMETER, "operator")


async def test_invitation_answers_by_server_token(open_as: Opener, backend: RoomClient) -> None:
    await backend.create_room("r1", owner="bob")
    await backend.add_members("r1", ["carol", "dave"], invitation_required=True)
    room = await backend.accept("r1", operator="carol")
    assert sorted(m.id for m in room.members) == ["bob", "carol"]
    assert await backend.decline("r1", operator="dave") is None  # type: ignore[func-returns-value]
    with pytest.raises(RoomError) as caught:
        await backend.accept("r1")
    assert (caught.value.code, caught.value.field) == (ErrorCode.INVALID_PARAMETER, "operator")


# --- errors -------------------------------------------------------------------------------


async def test_room_error_carries_code_message_and_field(
    open_as: Opener, backend: RoomClient
) -> None:
    async with open_as("alice") as alice:
        with pytest.raises(RoomError) as caught:
            await alice.get_room("nope")
        error = caught.value
        assert (error.code, error.reason, error.field) == (
            ErrorCode.ROOM_NOT_FOUND,
            "ROOM_NOT_FOUND",
            None,
        )
        assert "nope" in error.message and str(error) == error.message

        await alice.create_room("r1", members=["bob"])
        with pytest.raises(RoomError) as caught:
            await alice.update_member("r1", "bob", {"level": -1})
        assert (caught.value.code, caught.value.field) == (
            ErrorCode.INVALID_PARAMETER,
            "properties.level",
        )
        with pytest.raises(RoomError) as caught:
            await alice.create_room("r1")
        assert caught.value.code is ErrorCode.ROOM_EXISTS
        with pytest.raises(RoomError) as caught:
            await alice.add_members("r1", ["ghost"])
        assert caught.value.code is ErrorCode.USER_NOT_FOUND
        with pytest.raises(RoomError) as caught:
            await alice.accept("r1")
        assert caught.value.code is ErrorCode.NO_INVITATION
        with pytest.raises(RoomError) as caught:
            await alice.leave("r1")  # the owner cannot leave
        assert caught.value.code is ErrorCode.FORBIDDEN
        with pytest.raises(RoomError) as caught:
            await alice.history("r1", limit=500)
        assert (caught.value.code, caught.value.field) == (ErrorCode.INVALID_PARAMETER, "limit")

        # failures change nothing and leave the connection usable
        assert (await alice.get_room("r1")).seq == 1
        assert [m.type for m in await messages_until(alice, 1)] == ["createRoom"]
        await no_message(alice)


# --- pipelining and messages --------------------------------------------------------------


async def test_pipelined_calls_on_one_connection(open_as: Opener, backend: RoomClient) -> None:
    async with open_as("alice") as alice:
        await alice.create_room("r1", members=["bob"])
        updates = [alice.update_member("r1", "bob", {f"p{i}": i}, reply="ack") for i in range(20)]
        reads = [alice.get_room("r1") for _ in range(20)]
        results = await asyncio.gather(
            *updates, *reads, alice.get_room("nope"), return_exceptions=True
        )
        acks, rooms, missing = results[:20], results[20:40], results[40]
        assert all(isinstance(a, Ack) and a.room == "r1" for a in acks)
        assert sorted(a.seq for a in acks if isinstance(a, Ack)) == list(range(2, 22))
        assert all(isinstance(r, Room) and r.id == "r1" for r in rooms)
        assert isinstance(missing, RoomError) and missing.code is ErrorCode.ROOM_NOT_FOUND

        got = await messages_until(alice, 21, "r1")
        assert [m.seq for m in got] == list(range(1, 22))
        member = (await alice.get_room("r1")).member("bob")
        assert member is not None and member.props == {f"p{i}": i for i in range(20)}


async def test_messages_iterate_in_seq_order_and_end_on_close(
    open_as: Opener, backend: RoomClient
) -> None:
    async with open_as("bob") as bob, open_as("alice") as alice:
        await alice.create_room("r1", members=["bob"])
        for n in range(1, 4):
            await alice.update_member("r1", "bob", {"level": n})
        collected: list[SystemMessage] = []
        async with asyncio.timeout(3):
            async for message in bob.messages():
                collected.append(message)
                if message.seq == 4:
                    await bob.close()  # messages() ends once the connection is closed
        assert [(m.seq, m.type) for m in collected] == [
            (1, "createRoom"),
            (2, "updateMember"),
            (3, "updateMember"),
            (4, "updateMember"),
        ]
        assert [m.changes for m in collected[1:]] == [{"level": n} for n in range(1, 4)]
        assert [m async for m in bob.messages()] == []  # and stays ended


async def test_messages_from_many_rooms_keep_per_room_seq_order(
    open_as: Opener, backend: RoomClient
) -> None:
    async with open_as("bob") as bob, open_as("alice") as alice:
        for room in ("r1", "r2"):
            await alice.create_room(room, members=["bob"])
        await asyncio.gather(
            *(
                alice.update_member(r, "bob", {"level": n}, reply="ack")
                for n in range(1, 6)
                for r in ("r1", "r2")
            )
        )
        got: list[SystemMessage] = []
        async with asyncio.timeout(3):
            async for message in bob.messages():
                got.append(message)
                if len(got) == 12:
                    break
        for room in ("r1", "r2"):
            assert [m.seq for m in got if m.room == room] == list(range(1, 7))


async def test_next_message_times_out(open_as: Opener) -> None:
    async with open_as("alice") as alice:
        with pytest.raises(TimeoutError):
            await alice.next_message(timeout=0.1)


# --- connection loss ----------------------------------------------------------------------


async def test_server_closing_the_connection_ends_messages_and_fails_calls(
    hub: Hub, open_as: Opener
) -> None:
    async with open_as("alice") as alice:
        await alice.create_room("r1")
        assert hub.server is not None
        for connection in hub.server.connections:
            await connection.close(4000, "bye")
        async with asyncio.timeout(2):
            async for _ in alice.messages():  # createRoom, if it came before the close
                pass
        assert alice.closed
        with pytest.raises(ConnectionLost) as caught:
            await alice.get_room("r1")
        assert (caught.value.code, caught.value.reason) == (4000, "bye")
        assert isinstance(caught.value, ConnectionError)
        with pytest.raises(ConnectionLost):
            await alice.next_message(timeout=1)


async def test_calls_after_close_raise_connection_lost(open_as: Opener) -> None:
    async with open_as("alice") as alice:
        pass
    with pytest.raises(ConnectionLost, match="closed by the client"):
        await alice.create_room("r1")
    with pytest.raises(ConnectionLost):
        await alice.next_message()


# --- against a scripted server ------------------------------------------------------------

Script = Callable[[ServerConnection, Encoding, dict[str, Any]], Any]


class FakeHub:
    """A scripted WebSocket server: welcomes any auth, records every request, and answers
    with `script(ws, encoding, frame)` (an async function that sends whatever it likes)."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[dict[str, Any]] = []
        self.url = ""

    async def handle(self, ws: ServerConnection) -> None:
        encoding = Encoding(ws.subprotocol or Encoding.MSGPACK.value)
        async for data in ws:
            frame = decode(data, encoding)
            self.requests.append(frame)
            if frame["op"] == "auth":
                await send(
                    ws,
                    encoding,
                    {
                        "re": frame["id"],
                        "ok": True,
                        "result": {
                            "user": "alice",
                            "rooms": [],
                            "server": {"version": "0", "node": "fake"},
                        },
                    },
                )
            else:
                await self.script(ws, encoding, frame)


async def send(ws: ServerConnection, encoding: Encoding, frame: dict[str, Any]) -> None:
    await ws.send(encode(frame, encoding), text=encoding is Encoding.JSON)


@contextlib.asynccontextmanager
async def fake_hub(script: Script) -> AsyncIterator[FakeHub]:
    fake = FakeHub(script)
    async with serve(
        fake.handle, "127.0.0.1", 0, subprotocols=[Subprotocol(p) for p in SUBPROTOCOLS]
    ) as server:
        port = server.sockets[0].getsockname()[1]
        fake.url = f"ws://127.0.0.1:{port}/ws"
        yield fake


def room_dict(room: str = "r1", members: int = 1) -> dict[str, Any]:
    return {
        "id": room,
        "name": "",
        "type": "group",
        "owner": "m0",
        "created_ms": 1,
        "seq": 1,
        "members": [
            {
                "id": f"m{i}",
                "role": "owner" if i == 0 else "member",
                "nickname": "",
                "avatar": "",
                "level": 0,
                "custom_info": "",
                "extension": "",
                "props": {"i": i},
                "joined_ms": 1,
            }
            for i in range(members)
        ],
        "invitations": [],
    }


async def test_pending_calls_fail_when_the_connection_drops(encoding: str) -> None:
    async def close_on_second(ws: ServerConnection, enc: Encoding, frame: dict[str, Any]) -> None:
        if frame["op"] == "room.list":
            await ws.close(1011, "node crashed")

    async with fake_hub(close_on_second) as fake:
        async with RoomClient.connect(fake.url, key=APP, token="t", encoding=encoding) as client:
            first = asyncio.create_task(client.get_room("r1"))  # never answered
            await asyncio.sleep(0.05)
            with pytest.raises(ConnectionLost) as caught:
                await client.list_rooms()
            assert (caught.value.code, caught.value.reason) == (1011, "node crashed")
            with pytest.raises(ConnectionLost):
                await first
            assert [m async for m in client.messages()] == []


async def test_messages_that_arrived_before_a_close_are_still_read(encoding: str) -> None:
    async def event_then_close(ws: ServerConnection, enc: Encoding, frame: dict[str, Any]) -> None:
        for seq in (1, 2):
            await send(
                ws,
                enc,
                {
                    "event": "system",
                    "message": {
                        "room": "r1",
                        "seq": seq,
                        "type": "addMember",
                        "sender": "a",
                        "targets": ["b"],
                        "changes": {},
                        "notify": False,
                        "extension": None,
                        "time_ms": 1,
                    },
                },
            )
        await ws.close(1001, "going away")

    async with fake_hub(event_then_close) as fake:
        async with RoomClient.connect(fake.url, key=APP, token="t", encoding=encoding) as client:
            with pytest.raises(ConnectionLost) as caught:
                await client.get_room("r1")
            assert caught.value.code == 1001
            assert [m.seq async for m in client.messages()] == [1, 2]


async def test_replies_are_matched_by_id_whatever_their_order(encoding: str) -> None:
    held: list[dict[str, Any]] = []

    async def answer_in_reverse(ws: ServerConnection, enc: Encoding, frame: dict[str, Any]) -> None:
        held.append(frame)
        if len(held) == 3:
            for request in reversed(held):
                room = request["args"]["room"]
                await send(ws, enc, {"re": request["id"], "ok": True, "result": room_dict(room)})

    async with fake_hub(answer_in_reverse) as fake:
        async with RoomClient.connect(fake.url, key=APP, token="t", encoding=encoding) as client:
            rooms = await asyncio.gather(*(client.get_room(r) for r in ("a", "b", "c")))
            assert [r.id for r in rooms] == ["a", "b", "c"]


async def test_only_arguments_that_are_set_are_sent() -> None:
    async def reply_room(ws: ServerConnection, enc: Encoding, frame: dict[str, Any]) -> None:
        ack = frame.get("args", {}).get("reply") == "ack"
        result = {"room": "r1", "seq": 1} if ack else room_dict()
        await send(ws, enc, {"re": frame["id"], "ok": True, "result": result})

    async with fake_hub(reply_room) as fake:
        async with RoomClient.connect(fake.url, key="k", token="t") as client:
            await client.create_room()
            await client.create_room(
                "r1", name="N", type="direct", members=["b"], owner="o", operator="x"
            )
            await client.add_members("r1", ["b"])
            await client.update_member("r1", "b", {"gone": None})
            await client.remove_member("r1", "b", reply="ack")
        # every mutating op carries a fresh idempotency key (issue 8); the rest is as given
        keys = [f["args"].pop("idempotency_key") for f in fake.requests[1:]]
        assert len(set(keys)) == len(keys) and all(re.fullmatch(r"[0-9a-f]{32}", k) for k in keys)
        for f in fake.requests:
            if f.get("args") == {}:
                del f["args"]
        sent = [(f["op"], f.get("args")) for f in fake.requests]
        assert sent == [
            ("auth", {"key": "k", "token": "t"}),
            ("room.create", None),
            (
                "room.create",
                {
                    "room": "r1",
                    "name": "N",
                    "type": "direct",
                    "members": ["b"],
                    "owner": "o",
                    "operator": "x",
                },
            ),
            ("member.add", {"room": "r1", "invitees": ["b"]}),
            ("member.update", {"room": "r1", "user": "b", "properties": {"gone": None}}),
            ("member.remove", {"room": "r1", "user": "b", "reply": "ack"}),
        ]
        assert len({f["id"] for f in fake.requests}) == len(fake.requests)


async def test_rate_limited_error_carries_retry_after() -> None:
    async def limit(ws: ServerConnection, enc: Encoding, frame: dict[str, Any]) -> None:
        await send(
            ws,
            enc,
            {
                "re": frame["id"],
                "ok": False,
                "error": {
                    "code": 100009,
                    "reason": "RATE_LIMITED",
                    "message": "slow down",
                    "retry_after_ms": 250,
                },
            },
        )

    async with fake_hub(limit) as fake:
        async with RoomClient.connect(fake.url, key="k", token="t") as client:
            with pytest.raises(RoomError) as caught:
                await client.update_member("r1", "b", {"level": 1})
    assert caught.value.code is ErrorCode.RATE_LIMITED
    assert (caught.value.retry_after_ms, caught.value.message) == (250, "slow down")


async def test_an_unknown_error_code_becomes_internal() -> None:
    async def future_error(ws: ServerConnection, enc: Encoding, frame: dict[str, Any]) -> None:
        await send(
            ws,
            enc,
            {
                "re": frame["id"],
                "ok": False,
                "error": {"code": 199999, "reason": "NEW", "message": "from v2", "field": "room"},
            },
        )

    async with fake_hub(future_error) as fake:
        async with RoomClient.connect(fake.url, key="k", token="t") as client:
            with pytest.raises(RoomError) as caught:
                await client.get_room("r1")
    assert (caught.value.code, caught.value.field) == (ErrorCode.INTERNAL, "room")
    assert "199999" in caught.value.message and "from v2" in caught.value.message


async def test_an_unreadable_frame_closes_the_connection_loudly(encoding: str) -> None:
    async def garbage(ws: ServerConnection, enc: Encoding, frame: dict[str, Any]) -> None:
        await send(ws, enc, {"event": "system", "message": {"room": "r1", "seq": "one"}})

    async with fake_hub(garbage) as fake:
        async with RoomClient.connect(fake.url, key="k", token="t", encoding=encoding) as client:
            with pytest.raises(ConnectionLost, match="protocol error") as caught:
                await client.get_room("r1")
            assert caught.value.code == 1002 and client.closed
            assert [m async for m in client.messages()] == []


async def test_a_cancelled_call_does_not_disturb_the_next(encoding: str) -> None:
    async def slow_first(ws: ServerConnection, enc: Encoding, frame: dict[str, Any]) -> None:
        if frame["args"]["room"] == "slow":
            await asyncio.sleep(0.3)
        room = frame["args"]["room"]
        await send(ws, enc, {"re": frame["id"], "ok": True, "result": room_dict(room)})

    async with fake_hub(slow_first) as fake:
        async with RoomClient.connect(fake.url, key="k", token="t", encoding=encoding) as client:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(client.get_room("slow"), 0.05)
            assert (await client.get_room("fast")).id == "fast"
            await asyncio.sleep(0.4)  # the late reply to the cancelled call is dropped
            assert (await client.get_room("again")).id == "again"


async def test_resync_events_reach_the_callback_and_unknown_events_are_ignored() -> None:
    async def events(ws: ServerConnection, enc: Encoding, frame: dict[str, Any]) -> None:
        message = {
            "room": "r1",
            "seq": 9,
            "type": "leaveRoom",
            "sender": "b",
            "targets": ["b"],
            "changes": {},
            "notify": True,
            "extension": None,
            "time_ms": 1,
        }
        await send(ws, enc, {"event": "resync", "room": "r1", "seq": 8})
        await send(ws, enc, {"event": "from-the-future", "x": 1})
        await send(ws, enc, {"event": "system", "message": message})
        await send(ws, enc, {"re": frame["id"], "ok": True, "result": {}})

    resyncs: list[Resync] = []
    async with (
        fake_hub(events) as fake,
        RoomClient.connect(fake.url, key="k", token="t", on_resync=resyncs.append) as client,
    ):
        assert await client.leave("r1") is None  # type: ignore[func-returns-value]
        message = await client.next_message(timeout=2)
    assert resyncs == [Resync(room="r1", seq=8)]
    assert (message.room, message.seq, message.type) == ("r1", 9, "leaveRoom")


async def test_a_room_with_thousands_of_members_decodes(encoding: str) -> None:
    async def big(ws: ServerConnection, enc: Encoding, frame: dict[str, Any]) -> None:
        await send(ws, enc, {"re": frame["id"], "ok": True, "result": room_dict(members=3000)})

    async with fake_hub(big) as fake:
        async with RoomClient.connect(fake.url, key="k", token="t", encoding=encoding) as client:
            room = await client.get_room("r1")
    assert len(room.members) == 3000 and room.members[-1].props == {"i": 2999}


# --- resume (PROTOCOL.md §4) --------------------------------------------------------------


async def test_resume_replays_missed_messages(open_as: Opener, backend: RoomClient) -> None:
    async with open_as("alice") as alice:
        await alice.create_room("r1", members=["bob"])
        for level in (1, 2):
            await alice.update_member("r1", "bob", {"level": level})
    async with open_as("alice", resume={"r1": 1}) as alice:
        replayed = await messages_until(alice, 3, "r1", timeout=2)
        assert [m.seq for m in replayed] == [2, 3]


async def test_resume_beyond_the_history_cap_sends_resync(
    start_hub: HubFactory, encoding: str
) -> None:
    hub = await start_hub(history_max=2)
    resyncs: list[Resync] = []

    def connect(user: str, **options: Any) -> Any:
        return RoomClient.connect(
            ws_url(hub), key=APP, token=token(user), encoding=encoding, **options
        )

    async with connect("bob"):
        pass
    async with connect("alice") as alice:
        await alice.create_room("r1", members=["bob"])
        for level in (1, 2, 3, 4):
            await alice.update_member("r1", "bob", {"level": level})
    arrived = asyncio.Event()

    def on_resync(resync: Resync) -> None:
        resyncs.append(resync)
        arrived.set()

    async with connect("alice", resume={"r1": 1, "gone": 3}, on_resync=on_resync):
        async with asyncio.timeout(2):
            while len(resyncs) < 2:
                await arrived.wait()
                arrived.clear()
    assert sorted(resyncs, key=lambda r: r.room) == [
        Resync(room="gone", seq=0),
        Resync(room="r1", seq=5),
    ]
