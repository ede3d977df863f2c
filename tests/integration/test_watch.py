"""room.watch / room.unwatch and app.rooms on a real hub (docs/protocol.md §5.18–§5.20): a
server-token connection follows a room live without being a member, and lists every room."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import httpx
import pytest

from roomhub.clients import RoomClient

from ..conftest import HubFactory
from ..support import (
    APP,
    Open,
    RawClient,
    connect_backend,
    free_port,
    token,
    update_args,
    ws_url,
)
from .test_client_reconnect import FAST, Collector, Writer, node, setup_rooms, until

pytestmark = pytest.mark.timeout(60)


async def _room(srv: RawClient, room: str = "r", members: tuple[str, ...] = ("bob",)) -> None:
    for user in ["own", "bob", "carol", "dave"]:
        await srv.call("user.upsert", {"id": user})
    await srv.call("room.create", {"room": room, "owner": "own", "members": list(members)})


def _system(frames: list[dict[str, Any]], room: str = "r") -> list[dict[str, Any]]:
    return [
        f["message"] for f in frames if f.get("event") == "system" and f["message"]["room"] == room
    ]


async def test_a_watcher_gets_every_message_of_the_room_in_order(
    srv: RawClient, open_as: Open
) -> None:
    await _room(srv)
    watcher = await open_as("console", server=True)
    state = await watcher.call("room.watch", {"room": "r"})
    assert state["id"] == "r" and state["seq"] == 1 and state["owner"] == "own"
    assert {m["id"] for m in state["members"]} == {"own", "bob"}
    own = await open_as("own")
    # an invitation (only the invitee and the inviter are targets), a role change, a removal
    await own.call("member.add", {"room": "r", "invitees": ["carol"], "invitation_required": True})
    await own.call("member.update", update_args("r", "bob", {"role": "admin"}))
    await own.call("member.remove", {"room": "r", "user": "bob"})
    got = await watcher.events_until(4)
    assert [m["seq"] for m in got] == [2, 3, 4]
    assert [m["type"] for m in got] == ["inviteMember", "assignAdmin", "removeMember"]
    # unwatched: nothing more arrives
    assert await watcher.call("room.unwatch", {"room": "r"}) == {}
    await own.call("member.add", {"room": "r", "invitees": ["dave"]})
    await watcher.no_event()
    assert await watcher.call("room.unwatch", {"room": "r"}) == {}  # not watching: the same


async def test_watch_resumes_after_a_seq_with_no_gap_and_no_repeat(
    srv: RawClient, open_as: Open
) -> None:
    await _room(srv)
    own = await open_as("own")
    for n in range(5):
        await own.call("member.update", update_args("r", "bob", {"n": n}, reply="ack"))
    watcher = await open_as("console", server=True)
    state = await watcher.call("room.watch", {"room": "r", "after_seq": 3})
    assert state["seq"] == 6
    await own.call("member.update", update_args("r", "bob", {"n": 9}, reply="ack"))
    got = await watcher.events_until(7)
    assert [m["seq"] for m in got] == [4, 5, 6, 7]  # replayed, then live
    # the reply came first, then the replay
    kinds = [("reply" if "re" in f else f["event"]) for f in watcher.frames]
    assert kinds[-5:] == ["reply", "system", "system", "system", "system"]


async def test_watch_after_a_seq_the_room_has_not_reached_is_a_resync(
    srv: RawClient, open_as: Open
) -> None:
    await _room(srv)
    watcher = await open_as("console", server=True)
    state = await watcher.call("room.watch", {"room": "r", "after_seq": 40})
    frame = await asyncio.wait_for(watcher.events.get(), 5)
    assert frame == {"event": "resync", "room": "r", "seq": state["seq"]}


async def test_watching_twice_changes_nothing_and_dismiss_ends_the_watch(
    srv: RawClient, open_as: Open
) -> None:
    await _room(srv)
    watcher = await open_as("console", server=True)
    await watcher.call("room.watch", {"room": "r"})
    again = await watcher.call("room.watch", {"room": "r", "after_seq": 0})
    assert again["seq"] == 1
    await watcher.no_event()  # no replay of seq 1: the watch went on as it was
    await srv.call("room.dismiss", {"room": "r"})
    (dismissed,) = await watcher.events_until(2)
    assert dismissed["type"] == "dismissRoom"
    # a new room of the same id is not followed: the watch ended with the old one
    await srv.call("room.create", {"room": "r", "owner": "own"})
    await watcher.no_event()


async def test_watch_refusals(srv: RawClient, open_as: Open) -> None:
    await _room(srv)
    own = await open_as("own")
    assert (await own.fail("room.watch", {"room": "r"}))["code"] == 100006
    assert (await own.fail("room.unwatch", {"room": "r"}))["code"] == 100006
    assert (await own.fail("app.rooms", {}))["code"] == 100006
    missing = await srv.fail("room.watch", {"room": "nope"})
    assert missing["code"] == 100004
    bad = await srv.fail("room.watch", {"room": "r", "after_seq": -1})
    assert bad["code"] == 100002 and bad["field"] == "after_seq"
    bad = await srv.fail("room.watch", {"room": "r", "operator": "own"})
    assert bad["code"] == 100002 and bad["field"] == "operator"


async def test_a_watcher_on_another_node_sees_the_changes(two_hubs: Any) -> None:
    one, two = two_hubs
    async with (
        RawClient.connect(ws_url(one)) as srv,
        RawClient.connect(ws_url(two), "json") as watcher,
    ):
        await srv.auth("backend", server=True)
        await watcher.auth("console", server=True)
        await _room(srv)
        await watcher.call("room.watch", {"room": "r"})
        for n in range(20):
            await srv.call("member.update", update_args("r", "bob", {"n": n}, reply="ack"))
        got = await watcher.events_until(21)
        assert [m["seq"] for m in got] == list(range(2, 22))


async def test_app_rooms_pages_every_room_by_id(srv: RawClient) -> None:
    await _room(srv, "a-1")
    for room in ["a-2", "a-3", "b-1", "c-1"]:
        await srv.call("room.create", {"room": room, "owner": "own", "name": room.upper()})
    first = await srv.call("app.rooms", {"limit": 2})
    assert [r["id"] for r in first["rooms"]] == ["a-1", "a-2"] and first["next"] == "a-2"
    assert first["rooms"][1]["name"] == "A-2" and "members" not in first["rooms"][1]
    rest = await srv.call("app.rooms", {"after": first["next"], "limit": 10})
    assert [r["id"] for r in rest["rooms"]] == ["a-3", "b-1", "c-1"] and rest["next"] is None
    found = await srv.call("app.rooms", {"prefix": "a-", "after": "a-1"})
    assert [r["id"] for r in found["rooms"]] == ["a-2", "a-3"] and found["next"] is None
    assert (await srv.call("app.rooms", {"prefix": "zz"})) == {"rooms": [], "next": None}
    await srv.call("room.dismiss", {"room": "b-1"})
    listed = await srv.call("app.rooms", {})
    assert [r["id"] for r in listed["rooms"]] == ["a-1", "a-2", "a-3", "c-1"]
    bad = await srv.fail("app.rooms", {"limit": 501})
    assert bad["code"] == 100002 and bad["field"] == "limit"
    bad = await srv.fail("app.rooms", {"prefix": "a b"})
    assert bad["code"] == 100002 and bad["field"] == "prefix"


# --- room.watch over HTTP: Server-Sent Events ---------------------------------------------


def _sse(text: str) -> list[dict[str, Any]]:
    """The events of a text/event-stream body: {event, id, data (decoded JSON)}."""
    events = []
    for block in text.split("\n\n"):
        fields: dict[str, Any] = {}
        for line in block.splitlines():
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = json.loads(value) if name == "data" else value
        if fields:
            events.append(fields)
    return events


async def _read_sse(response: httpx.Response, until_seq: int) -> list[dict[str, Any]]:
    text = ""
    async for chunk in response.aiter_text():
        text += chunk
        events = _sse(text) if text.endswith("\n\n") else []
        if any(e.get("id") == str(until_seq) for e in events):
            return events
    return _sse(text)


async def test_room_watch_over_http_is_a_stream_of_server_sent_events(
    start_hub: HubFactory,
) -> None:
    hub = await start_hub()
    base = f"http://127.0.0.1:{hub.http_port}/api/v1"
    headers = {"Authorization": f"Bearer {token('backend', server=True)}", "X-Roomhub-Key": APP}
    async with httpx.AsyncClient(timeout=10) as http, connect_backend(ws_url(hub)) as srv:
        await _room(srv)
        async with http.stream(
            "POST", f"{base}/room.watch", json={"room": "r"}, headers=headers
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            await srv.call("member.update", update_args("r", "bob", {"role": "admin"}))
            await srv.call("room.dismiss", {"room": "r"})
            events = _sse("".join([chunk async for chunk in response.aiter_text()]))
        # the stream ended by itself after dismissRoom
        assert events[0]["event"] == "room" and events[0]["data"]["seq"] == 1
        assert [(e["event"], e["id"]) for e in events[1:]] == [("system", "2"), ("system", "3")]
        assert events[1]["data"]["message"]["type"] == "assignAdmin"
        assert events[2]["data"] == {"event": "system", "message": events[2]["data"]["message"]}
        assert events[2]["data"]["message"]["type"] == "dismissRoom"
        # errors are the server API's: a missing room is 404 with the error object
        missing = await http.post(f"{base}/room.watch", json={"room": "r"}, headers=headers)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == 100004
        user = {**headers, "Authorization": f"Bearer {token('own')}"}
        refused = await http.post(f"{base}/room.watch", json={"room": "r"}, headers=user)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == 100006
        unwatch = await http.post(f"{base}/room.unwatch", json={"room": "r"}, headers=headers)
        assert unwatch.json()["error"]["code"] == 100011


async def test_an_http_watch_resumes_from_last_event_id(start_hub: HubFactory) -> None:
    hub = await start_hub()
    base = f"http://127.0.0.1:{hub.http_port}/api/v1"
    headers = {"Authorization": f"Bearer {token('backend', server=True)}", "X-Roomhub-Key": APP}
    async with httpx.AsyncClient(timeout=10) as http, connect_backend(ws_url(hub)) as srv:
        await _room(srv)
        for n in range(4):
            await srv.call("member.update", update_args("r", "bob", {"n": n}, reply="ack"))
        resumed = {**headers, "Last-Event-ID": "3"}
        async with http.stream(
            "POST", f"{base}/room.watch", json={"room": "r"}, headers=resumed
        ) as response:
            await srv.call("member.update", update_args("r", "bob", {"n": 9}, reply="ack"))
            events = await _read_sse(response, 6)
        assert [e.get("id") for e in events] == [None, "4", "5", "6"]  # the room, then 4..6
        # the closed stream is no longer a watcher: the room's feed is not kept for it
        await asyncio.sleep(0.2)
        assert ("testapp", "r") not in hub.fanout.local.watchers
        bad = await http.post(
            f"{base}/room.watch", json={"room": "r"}, headers={**headers, "Last-Event-ID": "x"}
        )
        assert bad.status_code == 400 and bad.json()["error"]["field"] == "after_seq"


# --- the Python client ------------------------------------------------------------------------


async def test_the_python_client_watches_again_after_a_hub_restart(
    redis_url: str, start_hub: HubFactory
) -> None:
    """A console's client on hub A, which restarts on its port while changes go on through
    hub B: every message of the room arrives once, in order, and the app's rooms are listed."""
    hub_b = await start_hub(redis=redis_url)
    await setup_rooms(ws_url(hub_b))
    port = free_port()
    async with contextlib.AsyncExitStack() as stack:
        node_a = contextlib.AsyncExitStack()
        stack.push_async_callback(node_a.aclose)
        await node_a.enter_async_context(node(redis_url, port))
        console = await stack.enter_async_context(
            RoomClient.connect(
                f"ws://127.0.0.1:{port}/ws",
                key=APP,
                token=token("console", server=True),
                reconnect=True,
                backoff=FAST,
            )
        )
        owner = await stack.enter_async_context(
            RoomClient.connect(ws_url(hub_b), key=APP, token=token("owner"))
        )
        page = await console.app_rooms(limit=1)
        assert [r.id for r in page.rooms] == ["quiet"] and page.next == "quiet"
        assert [r.id for r in (await console.app_rooms(after=page.next)).rooms] == ["r"]
        state = await console.watch_room("r")
        assert state.seq == 1 and {m.id for m in state.members} == {"owner", "alice"}
        app = Collector(console)
        writer = Writer(owner)
        await until(lambda: len(app.seqs("r")) >= 10)
        await node_a.aclose()  # the console's node stops; changes go on through hub B
        await asyncio.sleep(0.3)
        await stack.enter_async_context(node(redis_url, port))
        await console.wait_open(timeout=10)
        await asyncio.sleep(0.2)
        last = await writer.stop()
        await until(lambda: app.seqs("r")[-1:] == [last], timeout=10)
        assert app.seqs("r") == list(range(2, last + 1))  # no gap, no repeat
        await console.unwatch_room("r")
        await owner.update_member("r", "owner", {"n": -1})
        await asyncio.sleep(0.3)
        assert app.seqs("r")[-1] == last  # unwatched: nothing more
        assert not [m for m in app.seen if m.room == "quiet"]  # never watched
