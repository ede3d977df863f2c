"""The `http` scenario's load side: keep-alive HTTP/1.1 connections to a node's server API
(`POST /api/v1/{op}`, docs/http.md) and a send plan over them, driven by the worker's `http`
commands (`Worker.cmd_http`).

The client is a raw `asyncio.Protocol`, like wsclient.py, for the same reason: the load
generator shares the machine's cores with the hub, so it must cost next to nothing. Each
connection has its request head prebuilt (app key, server token), writes one request at a
time (no pipelining, as HTTP clients do) and reads only the status line, Content-Length and
the body of each reply (the server API never answers chunked).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from time import monotonic
from typing import Any, cast

import orjson

Reply = Callable[[int, bytes, float], None]  # status, body, receive time


async def drive_load(
    *,
    rate: float | None,
    duration: float,
    drain_timeout: float,
    state: dict[str, Any],
    sent: list[float],
    all_replied: asyncio.Future[None],
    progress: Callable[[dict[str, Any]], None],
    start: Callable[[], None],
    paced_send: Callable[[], bool],
) -> None:
    """The load loop of both load sides (WebSocket and HTTP): closed (`start` fills every
    connection, each reply sends the next) or paced at `rate`/s (`paced_send` sends one, or
    returns False when nothing may be sent: that request is shed), for `duration`; then stop
    and wait up to `drain_timeout` for the replies still owed. `state` holds outstanding,
    replies, shed and stop, shared with the reply handlers."""
    started = monotonic()
    last_report = started
    if rate is None:
        start()
        while monotonic() - started < duration:
            await asyncio.sleep(0.05)
            if monotonic() - last_report > 0.5:
                last_report = monotonic()
                elapsed = last_report - started
                progress({"sent": len(sent), "replies": state["replies"], "elapsed": elapsed})
    else:
        while True:
            now = monotonic()
            elapsed = now - started
            if elapsed >= duration:
                break
            due = int(elapsed * rate) + 1
            while len(sent) + state["shed"] < due:
                if not paced_send():
                    state["shed"] += 1
            if now - last_report > 0.5:
                last_report = now
                progress({"sent": len(sent), "replies": state["replies"], "elapsed": elapsed})
            await asyncio.sleep(0.001)
    state["stop"] = True
    if state["outstanding"] == 0 and not all_replied.done():
        all_replied.set_result(None)
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(all_replied, drain_timeout)


class HttpConnection(asyncio.Protocol):
    """One keep-alive connection; each complete reply goes to `on_reply`."""

    def __init__(self, on_reply: Reply) -> None:
        self.on_reply = on_reply
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass of it

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).lower()
            at = head.find(b"\r\ncontent-length:")
            if at < 0:
                raise RuntimeError(f"a reply without Content-Length: {head[:200]!r}")
            line_end = head.find(b"\r\n", at + 2)
            length = int(head[at + 17 : line_end if line_end > 0 else len(head)])
            total = end + 4 + length
            if len(buf) < total:
                return
            body = bytes(buf[end + 4 : total])
            del buf[:total]
            self.on_reply(int(head[9:12]), body, monotonic())


class HttpLoad:
    """The connections of one load process to one node's server API, and the send plans."""

    def __init__(self, progress: Callable[[dict[str, Any]], None]) -> None:
        self.progress = progress
        self.conns: list[HttpConnection] = []
        self.head = b""
        self.address = ("", 0)
        self.handlers: list[Reply] = []

    async def connect(self, host: str, port: int, key: str, token: str, count: int) -> int:
        """`count` keep-alive connections; the requests authenticate with `token`."""
        self.address = (host, port)
        self.head = (
            f"POST {{path}} HTTP/1.1\r\nhost: {host}:{port}\r\nx-roomhub-key: {key}\r\n"
            f"authorization: Bearer {token}\r\ncontent-type: application/json\r\n"
            "content-length: "
        ).encode()
        self.conns = [await self._open(c) for c in range(count)]
        self.handlers = [lambda *_: None] * len(self.conns)
        return len(self.conns)

    async def _open(self, c: int) -> HttpConnection:
        conn = HttpConnection(self._dispatch(c))
        await asyncio.get_running_loop().create_connection(lambda: conn, *self.address)
        return conn

    async def reopen(self) -> int:
        """Open again the connections the server closed (uvicorn closes one idle for 5 s,
        as between two runs), as a client's pool does; returns how many."""
        closed = [c for c, conn in enumerate(self.conns) if conn.closed]
        for c in closed:
            self.conns[c] = await self._open(c)
        return len(closed)

    def _dispatch(self, c: int) -> Reply:
        def handle(status: int, body: bytes, t: float) -> None:
            self.handlers[c](status, body, t)

        return handle

    async def send(
        self,
        rooms: list[tuple[str, list[str]]],
        duration: float,
        rate: float | None = None,
        base: int = 0,
        prop: str = "score",
        drain_timeout: float = 15.0,
    ) -> dict[str, Any]:
        """member.update ops (reply "ack", one small custom prop) round-robin over `rooms`
        and their members, the args and the records of `Worker.cmd_send`, over this
        process's connections, one request in flight on each.

        rate None: closed loop, every connection sends again as soon as its reply is in.
        rate R: open loop, R requests/s paced on a 1 ms tick, each on an idle connection;
        one that finds none is not sent (counted as `shed`)."""
        conns = self.conns
        if not conns or any(conn.closed for conn in conns):
            raise RuntimeError("HTTP connections closed: reopen them first")
        path_head = self.head.replace(b"{path}", b"/api/v1/member.update")
        dumps = orjson.dumps
        loop = asyncio.get_running_loop()
        n_rooms = len(rooms)
        room_ids = [r for r, _ in rooms]
        room_users = [u for _, u in rooms]
        sent_t: list[float] = []
        reply_t: list[float] = []
        room_of: list[int] = []
        result: list[int] = []  # seq if 200, else -HTTP status
        statuses: dict[str, int] = {}
        current = [-1] * len(conns)  # the request in flight on each connection
        idle = deque(range(len(conns)))  # taken in turn: none idles long enough to be closed
        state = {"outstanding": 0, "replies": 0, "stop": False, "shed": 0}
        all_replied = loop.create_future()

        def send_one(c: int) -> None:
            i = len(sent_t)
            r = i % n_rooms
            users = room_users[r]
            body = dumps(
                {
                    "room": room_ids[r],
                    "user": users[(i // n_rooms) % len(users)],
                    "properties": {prop: base + i},
                    "reply": "ack",
                }
            )
            room_of.append(r)
            reply_t.append(0.0)
            result.append(0)
            current[c] = i
            sent_t.append(monotonic())
            transport = conns[c].transport
            assert transport is not None
            transport.write(b"%s%d\r\n\r\n%s" % (path_head, len(body), body))
            state["outstanding"] += 1

        def on_reply(c: int) -> Reply:
            def handle(status: int, body: bytes, t: float) -> None:
                i = current[c]
                if i < 0:
                    return
                current[c] = -1
                reply_t[i] = t
                statuses[str(status)] = statuses.get(str(status), 0) + 1
                result[i] = int(orjson.loads(body)["result"]["seq"]) if status == 200 else -status
                state["outstanding"] -= 1
                state["replies"] += 1
                if rate is None and not state["stop"]:
                    send_one(c)
                    return
                idle.append(c)
                if state["stop"] and state["outstanding"] == 0 and not all_replied.done():
                    all_replied.set_result(None)

            return handle

        self.handlers = [on_reply(c) for c in range(len(conns))]

        def start() -> None:
            idle.clear()
            for c in range(len(conns)):
                send_one(c)

        def paced_send() -> bool:
            if not idle:
                return False
            send_one(idle.popleft())
            return True

        try:
            await drive_load(
                rate=rate,
                duration=duration,
                drain_timeout=drain_timeout,
                state=state,
                sent=sent_t,
                all_replied=all_replied,
                progress=self.progress,
                start=start,
                paced_send=paced_send,
            )
        finally:
            self.handlers = [lambda *_: None] * len(self.conns)
        return {
            "sent_t": sent_t,
            "reply_t": reply_t,
            "room_of": room_of,
            "result": result,
            "statuses": statuses,
            "shed": state["shed"],
            "unanswered": state["outstanding"],
            "closed": sum(1 for conn in conns if conn.closed),
        }

    async def close(self) -> None:
        for conn in self.conns:
            if conn.transport is not None:
                conn.transport.close()
        self.conns = []
        await asyncio.sleep(0)
