"""RoomClient(reconnect=True): it reconnects on its own (backoff with full jitter, URL rotation,
fresh tokens), resumes every room it knows from the last seq it delivered, de-duplicates by
seq, and exposes its state. Against real hubs restarted mid-traffic (in-process, and a real
`roomhub serve` process SIGTERMed), and against a scripted server where the wire exchange
itself is under test."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import websockets
from websockets.asyncio.server import ServerConnection, serve
from websockets.typing import Subprotocol

from roomhub.clients import Backoff, ConnectionLost, Resync, RoomClient, RoomError, State
from roomhub.protocol.codec import SUBPROTOCOLS, Encoding, decode, encode
from roomhub.protocol.errors import ErrorCode
from roomhub.protocol.models import SystemMessage
from roomhub.server.hub import Hub
from roomhub.server.node import running_hub
from roomhub.server.settings import Settings

from ..conftest import HubFactory, ws_url
from ..support import APP, SECRET, free_port, serve_process, token, wait_ready

OTHER_SECRET = "another-test-secret-that-is-long-enough-for-hs256"
FAST = (0.02, 0.3)  # backoff (base, cap) seconds: quick retries while a node is down


@contextlib.asynccontextmanager
async def node(redis_url: str, port: int, secret: str = SECRET) -> AsyncIterator[Hub]:
    """An in-process hub node on a fixed port (so it can be restarted at the same URL)."""
    settings = Settings(
        port=port,
        http_port=0,
        apps={APP: secret},
        redis=redis_url,
        rate_limit=0,
        conn_rate_limit=0,
    )
    async with running_hub(settings) as hub:
        yield hub


async def until(condition: Callable[[], bool], timeout: float = 5) -> None:
    """Poll `condition` (state and collected messages change in the client's own tasks)."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


class Writer:
    """Keeps changing room `r` (and, once, room `quiet`) through another node."""

    def __init__(self, client: RoomClient) -> None:
        self.client = client
        self.acked: list[int] = []
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            ack = await self.client.update_member("r", "owner", {"n": n}, reply="ack")
            self.acked.append(ack.seq)
            n += 1
            await asyncio.sleep(0.003)

    async def stop(self) -> int:
        """Stop writing; the seq of the last change."""
        self._stop.set()
        await asyncio.wait_for(self._task, 5)
        return self.acked[-1]


async def setup_rooms(url: str) -> None:
    async with RoomClient.connect(url, key=APP, token=token("app", server=True)) as backend:
        for user in ("owner", "alice"):
            await backend.upsert_user(user)
        await backend.create_room("r", owner="owner", members=["alice"])
        await backend.create_room("quiet", owner="owner", members=["alice"])


async def full_history(client: RoomClient, room: str) -> list[SystemMessage]:
    page = await client.history(room, limit=200)
    messages = list(page.messages)
    while page.more:
        page = await client.history(room, after_seq=messages[-1].seq, limit=200)
        messages += page.messages
    return messages


class Collector:
    """The app: reads every message the client delivers."""

    def __init__(self, client: RoomClient) -> None:
        self.seen: list[SystemMessage] = []
        self._task = asyncio.create_task(self._run(client))

    async def _run(self, client: RoomClient) -> None:
        async for message in client.messages():
            self.seen.append(message)

    def seqs(self, room: str) -> list[int]:
        return [m.seq for m in self.seen if m.room == room]

    async def until(self, room: str, seq: int, timeout: float = 10) -> None:
        await until(lambda: seq in self.seqs(room), timeout)

    async def ended(self) -> None:
        await asyncio.wait_for(self._task, 5)


async def check_exactly_once(app: Collector, owner: RoomClient, last: int) -> None:
    """The app saw room r's history, from its first message on, exactly once and in order,
    and quiet's change made while it was away."""
    await app.until("r", last)
    await app.until("quiet", 2)
    history = await full_history(owner, "r")
    assert [m.seq for m in history] == list(range(1, last + 1))
    seen = [m for m in app.seen if m.room == "r"]
    first = seen[0].seq
    assert seen == history[first - 1 :]  # same messages, each once, in seq order
    assert [m for m in app.seen if m.room == "quiet"] == (await full_history(owner, "quiet"))[1:]


# --- a hub node restarted mid-traffic ---------------------------------------------------------


async def test_in_process_hub_restart_every_message_once_in_order(
    redis_url: str, start_hub: HubFactory
) -> None:
    hub_b = await start_hub(redis=redis_url)
    await setup_rooms(ws_url(hub_b))
    port = free_port()
    url_a = f"ws://127.0.0.1:{port}/ws"
    states: list[State] = []
    async with contextlib.AsyncExitStack() as stack:
        node_a = contextlib.AsyncExitStack()
        stack.push_async_callback(node_a.aclose)
        await node_a.enter_async_context(node(redis_url, port))
        alice = await stack.enter_async_context(
            RoomClient.connect(
                url_a,
                key=APP,
                token=token("alice"),
                reconnect=True,
                backoff=FAST,
                on_state=states.append,
            )
        )
        owner = await stack.enter_async_context(
            RoomClient.connect(ws_url(hub_b), key=APP, token=token("owner"))
        )
        assert alice.last_seqs == {"r": 1, "quiet": 1}  # their seqs at connect time
        app = Collector(alice)
        writer = Writer(owner)
        await until(lambda: len(app.seqs("r")) >= 20)

        await node_a.aclose()  # hub A stops: alice is closed with 1001
        await until(lambda: alice.state is State.RECONNECTING)
        with pytest.raises(ConnectionLost) as caught:  # calls fail fast, never queued
            await alice.get_room("r")
        assert caught.value.code == 1001
        await owner.update_member("quiet", "owner", {"n": 1})  # quiet: resumed from seq 1
        await asyncio.sleep(0.3)  # changes go on through hub B; alice's attempts are refused

        await stack.enter_async_context(node(redis_url, port))  # hub A again, same port
        await alice.wait_open(timeout=10)
        await asyncio.sleep(0.2)  # and go on a little after the reconnect
        last = await writer.stop()
        await check_exactly_once(app, owner, last)
        assert (await alice.get_room("r")).seq == last  # calls work again
        await alice.close()
    assert states == [State.CONNECTING, State.OPEN, State.RECONNECTING, State.OPEN, State.CLOSED]


async def test_serve_process_sigterm_and_restart_every_message_once_in_order(
    redis_url: str, start_hub: HubFactory
) -> None:
    hub_b = await start_hub(redis=redis_url)
    await setup_rooms(ws_url(hub_b))
    port = free_port()
    url_a = f"ws://127.0.0.1:{port}/ws"
    with serve_process(redis_url, port) as first:
        await wait_ready(url_a)
        async with (
            RoomClient.connect(
                url_a, key=APP, token=token("alice"), encoding="json", reconnect=True, backoff=FAST
            ) as alice,
            RoomClient.connect(ws_url(hub_b), key=APP, token=token("owner")) as owner,
        ):
            app = Collector(alice)
            writer = Writer(owner)
            await until(lambda: len(app.seqs("r")) >= 20)
            first.send_signal(signal.SIGTERM)
            await until(lambda: alice.state is State.RECONNECTING, timeout=10)
            assert await asyncio.to_thread(first.wait, 10) == 0  # a clean exit
            await owner.update_member("quiet", "owner", {"n": 1})
            with serve_process(redis_url, port):  # the same node, restarted
                await alice.wait_open(timeout=15)
                await asyncio.sleep(0.2)
                last = await writer.stop()
                await check_exactly_once(app, owner, last)


# --- connection state -----------------------------------------------------------------------


async def test_state_transitions_wait_open_and_fail_fast_calls(redis_url: str) -> None:
    port = free_port()
    url = f"ws://127.0.0.1:{port}/ws"
    states: list[State] = []
    async with contextlib.AsyncExitStack() as stack:
        node_a = contextlib.AsyncExitStack()
        stack.push_async_callback(node_a.aclose)
        await node_a.enter_async_context(node(redis_url, port))
        alice = await RoomClient.connect(
            url, key=APP, token=token("alice"), reconnect=True, backoff=FAST, on_state=states.append
        )
        stack.push_async_callback(alice.close)
        assert alice.state is State.OPEN and states == [State.CONNECTING, State.OPEN]
        await alice.wait_open(timeout=1)  # at once when open
        await alice.create_room("mine")
        assert (await alice.next_message(timeout=2)).type == "createRoom"

        await node_a.aclose()
        await until(lambda: alice.state is State.RECONNECTING)
        assert not alice.closed
        with pytest.raises(TimeoutError):
            await alice.wait_open(timeout=0.2)
        with pytest.raises(ConnectionLost, match="reconnecting"):
            await alice.list_rooms()
        with pytest.raises(TimeoutError):  # messages() does not end at a drop
            await alice.next_message(timeout=0.1)

        await stack.enter_async_context(node(redis_url, port))
        await alice.wait_open(timeout=10)
        assert [r.id for r in await alice.list_rooms()] == ["mine"]
        assert alice.rooms == ["mine"] and alice.last_seqs == {"mine": 1}
        await alice.close()
        assert alice.state is State.CLOSED and alice.closed
        with pytest.raises(ConnectionLost, match="closed by the client"):
            await alice.wait_open()
        with pytest.raises(ConnectionLost):
            await alice.list_rooms()
        assert [m async for m in alice.messages()] == []  # ended, nothing replayed twice
    assert states == [State.CONNECTING, State.OPEN, State.RECONNECTING, State.OPEN, State.CLOSED]


# --- 4401 -------------------------------------------------------------------------------------


async def test_4401_stops_a_fixed_token_but_a_token_function_retries(redis_url: str) -> None:
    """The node comes back with another app secret: a fixed token is refused (100010, close
    4401) and the client gives up; a token function is called again and recovers."""
    port = free_port()
    url = f"ws://127.0.0.1:{port}/ws"
    calls = 0
    restarted = False
    handed: list[str] = []  # the secrets of the tokens handed out once the node is back

    async def fresh_token() -> str:  # the first one after the restart: still the old secret
        nonlocal calls
        calls += 1
        if not restarted:
            return token("bob")
        handed.append(OTHER_SECRET if handed else SECRET)
        return token("bob", secret=handed[-1])

    async with contextlib.AsyncExitStack() as stack:
        node_a = contextlib.AsyncExitStack()
        stack.push_async_callback(node_a.aclose)
        await node_a.enter_async_context(node(redis_url, port))
        alice = await stack.enter_async_context(
            RoomClient.connect(url, key=APP, token=token("alice"), reconnect=True, backoff=FAST)
        )
        bob = await stack.enter_async_context(
            RoomClient.connect(url, key=APP, token=fresh_token, reconnect=True, backoff=FAST)
        )
        assert calls == 1

        await node_a.aclose()
        await until(lambda: bob.state is State.RECONNECTING)
        await stack.enter_async_context(node(redis_url, port, secret=OTHER_SECRET))
        restarted = True
        async with asyncio.timeout(10):
            assert [m async for m in alice.messages()] == []  # ends: alice gave up
        assert alice.state is State.CLOSED
        with pytest.raises(ConnectionLost) as caught:
            await alice.wait_open()
        assert caught.value.code == 4401 and "reconnect refused" in str(caught.value)

        await bob.wait_open(timeout=10)
        assert handed == [SECRET, OTHER_SECRET]  # refused once (100010, 4401), then fresh
        assert (await bob.list_rooms()) == []


# --- backoff ----------------------------------------------------------------------------------


def test_backoff_is_exponential_with_full_jitter_and_capped() -> None:
    top = Backoff(0.1, 5.0, random=lambda: 1.0)  # the ceiling itself
    assert [round(top.next_delay(), 6) for _ in range(9)] == [
        0.1,
        0.2,
        0.4,
        0.8,
        1.6,
        3.2,
        5.0,
        5.0,
        5.0,
    ]
    top.reset()
    assert top.next_delay() == pytest.approx(0.1)
    assert Backoff(0.1, 5.0, random=lambda: 0.0).next_delay() == 0.0
    half = Backoff(0.5, 2.0, random=lambda: 0.5)
    assert [half.next_delay() for _ in range(4)] == [0.25, 0.5, 1.0, 1.0]
    import random as stdlib_random

    rng = stdlib_random.Random(7)
    jittered = Backoff(0.1, 5.0, random=rng.random)
    delays = [jittered.next_delay() for _ in range(200)]
    assert all(0 <= d < min(5.0, 0.1 * 2**i) for i, d in enumerate(delays))
    assert len({round(d, 9) for d in delays}) == 200  # jittered, not a fixed schedule
    assert Backoff(0.1, 5.0).ceiling(10_000) == 5.0  # no overflow however long it retries
    for base, cap in ((0, 1), (-1, 1), (2, 1)):
        with pytest.raises(ValueError):
            Backoff(base, cap)


# --- against a scripted server ----------------------------------------------------------------

Script = Callable[[int, ServerConnection, Encoding, dict[str, Any]], Awaitable[None]]


class FakeNode:
    """A scripted hub: `script(connection_number, ws, encoding, frame)` answers every frame;
    the auth args of each connection are recorded."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.auths: list[dict[str, Any]] = []
        self.url = ""

    async def handle(self, ws: ServerConnection) -> None:
        number = len(self.auths)
        encoding = Encoding(ws.subprotocol or Encoding.MSGPACK.value)
        with contextlib.suppress(websockets.ConnectionClosed):
            async for data in ws:
                frame = decode(data, encoding)
                if frame["op"] == "auth":
                    self.auths.append(frame.get("args", {}))
                await self.script(number, ws, encoding, frame)


@contextlib.asynccontextmanager
async def fake_node(script: Script) -> AsyncIterator[FakeNode]:
    fake = FakeNode(script)
    async with serve(
        fake.handle, "127.0.0.1", 0, subprotocols=[Subprotocol(p) for p in SUBPROTOCOLS]
    ) as server:
        fake.url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/ws"
        yield fake


async def send(ws: ServerConnection, encoding: Encoding, frame: dict[str, Any]) -> None:
    await ws.send(encode(frame, encoding), text=encoding is Encoding.JSON)


def welcome(frame: dict[str, Any], rooms: list[str]) -> dict[str, Any]:
    return {
        "re": frame["id"],
        "ok": True,
        "result": {"user": "alice", "rooms": rooms, "server": {"version": "0", "node": "fake"}},
    }


def system(
    room: str, seq: int, type: str = "updateMember", targets: tuple[str, ...] = ("bob",)
) -> dict[str, Any]:
    return {
        "event": "system",
        "message": {
            "room": room,
            "seq": seq,
            "type": type,
            "sender": "owner",
            "targets": list(targets),
            "changes": {},
            "notify": False,
            "extension": None,
            "time_ms": 1,
        },
    }


def listed(frame: dict[str, Any], seqs: dict[str, int]) -> dict[str, Any]:
    return {
        "re": frame["id"],
        "ok": True,
        "result": {
            "rooms": [
                {"id": room, "owner": "owner", "created_ms": 1, "seq": seq}
                for room, seq in seqs.items()
            ]
        },
    }


async def test_resume_dedup_forget_and_new_rooms_on_the_wire() -> None:
    async def script(
        number: int, ws: ServerConnection, enc: Encoding, frame: dict[str, Any]
    ) -> None:
        op = frame["op"]
        if number == 0 and op == "auth":
            await send(ws, enc, welcome(frame, ["gone", "r1", "r2"]))
        elif number == 0 and op == "room.list":
            await send(ws, enc, listed(frame, {"gone": 3, "r1": 5, "r2": 7}))
        elif number == 0 and op == "room.create":  # acknowledged; its createRoom not yet seen
            ack = {"room": "mine", "seq": 1}
            await send(ws, enc, {"re": frame["id"], "ok": True, "result": ack})
        elif number == 0 and op == "room.get":  # the test's cue: live messages, then a drop
            for message in (
                system("r1", 6),
                system("r1", 7),
                system("gone", 4, "removeMember", ("alice",)),
            ):
                await send(ws, enc, message)
            await ws.close(1001, "going away")
        elif number == 1 and op == "auth":
            await send(ws, enc, welcome(frame, ["new", "r1", "r2"]))
            for message in (
                system("r1", 6),
                system("r1", 7),
                system("r1", 8),  # overlaps
                system("r2", 8),
            ):
                await send(ws, enc, message)
        elif number == 1 and op == "room.list":
            await send(ws, enc, listed(frame, {"new": 4, "r1": 8, "r2": 8}))
        elif number == 1 and op == "room.get":
            for message in (system("new", 4), system("new", 5), system("r2", 8)):
                await send(ws, enc, message)
            await send(
                ws,
                enc,
                {
                    "re": frame["id"],
                    "ok": False,
                    "error": {"code": 100004, "reason": "ROOM_NOT_FOUND", "message": "no"},
                },
            )

    resyncs: list[Resync] = []
    async with fake_node(script) as fake:
        async with RoomClient.connect(
            fake.url,
            key=APP,
            token="t",
            reconnect=True,
            backoff=FAST,
            on_resync=resyncs.append,
            resume={"r1": 5},
        ) as client:
            assert client.last_seqs == {"gone": 3, "r1": 5, "r2": 7}
            await client.create_room("mine", reply="ack")
            assert client.last_seqs["mine"] == 0  # its own new room: resumed from the start
            with pytest.raises(ConnectionLost) as caught:  # in flight at the drop
                await client.get_room("x")
            assert caught.value.code == 1001
            await client.wait_open(timeout=5)
            with pytest.raises(RoomError) as missing:
                await client.get_room("x")
            assert missing.value.code is ErrorCode.ROOM_NOT_FOUND
            got = [
                (m.room, m.seq) for m in [await client.next_message(timeout=2) for _ in range(6)]
            ]
            assert client.last_seqs == {"r1": 8, "r2": 8, "new": 5, "mine": 0}
    assert fake.auths[0] == {"key": APP, "token": "t", "resume": {"r1": 5}}
    # "gone" is forgotten after alice's removeMember; r2 resumes from its seq at connect time
    assert fake.auths[1] == {"key": APP, "token": "t", "resume": {"r1": 7, "r2": 7, "mine": 0}}
    assert got == [("r1", 6), ("r1", 7), ("gone", 4), ("r1", 8), ("r2", 8), ("new", 5)]
    assert resyncs == [Resync(room="new", seq=4)]  # joined while away: re-read it


async def test_urls_rotate_and_the_backoff_resets_after_each_auth() -> None:
    """Two URLs, the first dead: the first connection skips it, and every reconnect after a
    drop tries it first (it follows the node that dropped) and falls back to the live one.
    The live node drops every connection right after auth: each reconnect succeeds on the
    second attempt, so the waits restart from `base` every time."""
    waits: list[float] = []
    enough = asyncio.Event()

    async def fake_sleep(delay: float) -> None:
        waits.append(delay)
        if len(waits) >= 8:
            enough.set()
            await asyncio.Event().wait()  # parked until close() cancels it
        await asyncio.sleep(0)

    async def flapping(
        number: int, ws: ServerConnection, enc: Encoding, frame: dict[str, Any]
    ) -> None:
        if frame["op"] == "auth":
            await send(ws, enc, welcome(frame, []))
            if number > 0:
                await asyncio.sleep(0.05)  # (after the client has taken the welcome)
                await ws.close(1001, "going away")
        elif frame["op"] == "room.get":
            await ws.close(1001, "going away")

    dead = f"ws://127.0.0.1:{free_port()}/ws"
    states: list[State] = []
    async with fake_node(flapping) as fake:
        client = await RoomClient.connect(
            [dead, fake.url],
            key=APP,
            token="t",
            reconnect=True,
            on_state=states.append,
            backoff=Backoff(1.0, 64.0, random=lambda: 1.0, sleep=fake_sleep),
        )
        assert client.url == fake.url and len(fake.auths) == 1
        with pytest.raises(ConnectionLost):
            await client.get_room("x")
        await asyncio.wait_for(enough.wait(), 5)
        await client.close()
    assert waits == [1.0, 2.0] * 4  # dead (1 s), live (2 s), auth: reset to the base
    assert states[:3] == [State.CONNECTING, State.OPEN, State.RECONNECTING]
    assert states[-1] is State.CLOSED and client.closed
    assert [m async for m in client.messages()] == []


async def test_close_while_reconnecting_stops_retrying() -> None:
    attempts: list[float] = []

    async def sleep_forever_after_three(delay: float) -> None:
        attempts.append(delay)
        await asyncio.sleep(0 if len(attempts) < 3 else 3600)

    async def drop_on_get(
        number: int, ws: ServerConnection, enc: Encoding, frame: dict[str, Any]
    ) -> None:
        if frame["op"] == "auth" and number == 0:
            await send(ws, enc, welcome(frame, []))
        elif frame["op"] == "auth":
            await send(
                ws,
                enc,
                {
                    "re": frame["id"],
                    "ok": False,
                    "error": {"code": 100001, "reason": "INTERNAL", "message": "redis away"},
                },
            )
            await ws.close(4401, "not authenticated")
        elif frame["op"] == "room.get":
            await ws.close(1011, "keepalive ping timeout")

    async with fake_node(drop_on_get) as fake:
        client = await RoomClient.connect(
            fake.url,
            key=APP,
            token="t",
            reconnect=True,
            backoff=Backoff(0.1, 1.0, sleep=sleep_forever_after_three),
        )
        with pytest.raises(ConnectionLost):
            await client.get_room("x")
        await until(lambda: len(attempts) == 3)
        assert len(fake.auths) == 3  # INTERNAL at auth (then 4401): retried, not final
        assert client.state is State.RECONNECTING
        await asyncio.wait_for(client.close(), 2)
        assert client.state is State.CLOSED
        await asyncio.sleep(0.05)
        assert len(fake.auths) == 3


async def test_the_first_connection_is_not_retried(redis_url: str) -> None:
    dead = f"ws://127.0.0.1:{free_port()}/ws"
    states: list[State] = []
    with pytest.raises(OSError):
        await RoomClient.connect(
            [dead, dead], key=APP, token="t", reconnect=True, on_state=states.append
        )
    assert states == [State.CONNECTING, State.CLOSED]
    async with node(redis_url, free_port()) as hub:
        calls: list[int] = []

        def bad_token() -> str:
            calls.append(1)
            return "not-a-jwt"

        with pytest.raises(RoomError) as caught:
            await RoomClient.connect(
                [ws_url(hub), ws_url(hub)], key=APP, token=bad_token, reconnect=True
            )
        assert caught.value.code is ErrorCode.UNAUTHENTICATED
        assert calls == [1]  # a refused auth is not tried on the next node


async def test_more_rooms_than_an_auth_frame_holds_get_resyncs() -> None:
    """`resume` holds at most 1,024 rooms (the server's map cap): the most recently active
    rooms are resumed, the others get a `resync` (nothing was replayed for them)."""
    rooms = [f"room-{i:04}" for i in range(1100)]

    async def script(
        number: int, ws: ServerConnection, enc: Encoding, frame: dict[str, Any]
    ) -> None:
        if frame["op"] == "auth":
            await send(ws, enc, welcome(frame, rooms[1:]))
        elif frame["op"] == "room.list":  # room-0000 is gone
            await send(ws, enc, listed(frame, {room: 1 for room in rooms[1:]}))
        elif frame["op"] == "room.get":
            await send(ws, enc, system("room-0001", 2))
            await ws.close(1001, "going away")

    resyncs: list[Resync] = []
    async with fake_node(script) as fake:  # (it decodes with the server's codec and caps)
        async with RoomClient.connect(
            fake.url,
            key=APP,
            token="t",
            reconnect=True,
            backoff=FAST,
            on_resync=resyncs.append,
            resume=dict.fromkeys(rooms, 1),
        ) as client:
            assert list(fake.auths[0]["resume"]) == rooms[76:]  # the last 1,024
            assert resyncs == [Resync(room=room, seq=1) for room in rooms[1:76]]
            assert "room-0000" not in client.last_seqs and len(client.last_seqs) == 1099
            resyncs.clear()
            with pytest.raises(ConnectionLost):
                await client.get_room("x")  # room-0001 gets a message: now the most recent
            await client.wait_open(timeout=5)
            assert (await client.next_message(timeout=1)).room == "room-0001"
    resumed = list(fake.auths[1]["resume"])
    assert len(resumed) == 1024 and resumed[-1] == "room-0001"
    assert resyncs == [Resync(room=room, seq=1) for room in rooms[2:77]]
