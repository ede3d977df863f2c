"""The resilience scenario's load side: the connections it holds in a load process, driven by
the worker's `res` commands (`Worker.cmd_res`): reconnecting members (`_Member`, a
`roomhub.clients.RoomClient`), a writer at a steady rate that retries what failed, and raw
connections for the stalled-client part (one that reads, one that never reads again).

The orchestrator side is `resilience.py` and `stall.py`; they compare what this side recorded
(same CLOCK_MONOTONIC in every process).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import struct
import termios
from collections import deque
from collections.abc import Callable
from time import monotonic
from typing import Any

import msgpack  # type: ignore[import-untyped]

from roomhub.clients import ConnectionLost, Resync, RoomClient, RoomError, State
from roomhub.protocol.models import SystemMessage
from roomhub.server.auth import mint_token

from .infra import HOST, settle
from .stats import summary_ms
from .wsclient import Session, open_session

LOST = -1  # outcome of an attempt whose connection dropped (ConnectionLost)
TIMEOUT = -2  # outcome of an attempt with no reply in time
RETRIED = (-100001, LOST, TIMEOUT)  # outcomes after which the writer retries the op
WRITER = "bench-res-writer"


class _Member:
    """A reconnecting member (`RoomClient`) and what it saw, through the client's public
    hooks: each system message as it comes off the wire (`on_event`: before the client's
    de-duplication by seq, so what a resume replay repeats), each state change with its time
    and, when it dropped, the close code (`on_state`, `lost`), each resync, and each message
    the app read from `messages()`."""

    def __init__(self, user: str) -> None:
        self.user = user
        self._client: RoomClient | None = None
        self.first_url = ""
        self.delivered: list[tuple[int, Any, float]] = []  # seq, score, time read
        self.wire: list[tuple[int, float]] = []  # seq, time read off the wire
        self.transitions: list[tuple[str, float, int | None]] = []
        self.resyncs: list[tuple[str, int, float]] = []
        self.task: asyncio.Task[None] | None = None

    @property
    def client(self) -> RoomClient:
        assert self._client is not None, "not connected yet"
        return self._client

    async def connect(self, urls: list[str], key: str, secret: str, room: str) -> None:
        self._client = await RoomClient.connect(
            urls,
            key=key,
            token=lambda: mint_token(secret, self.user),
            reconnect=True,
            on_event=self._event,
            on_state=self._state,
            on_resync=self._resync,
        )
        self.first_url = self.client.url
        self.task = asyncio.create_task(self._consume(self.client, room))

    def _event(self, event: SystemMessage | Resync) -> None:
        if isinstance(event, SystemMessage):
            self.wire.append((event.seq, monotonic()))

    def _state(self, state: State) -> None:
        lost = self._client.lost if self._client is not None else None
        self.transitions.append((state.value, monotonic(), None if lost is None else lost.code))

    def _resync(self, resync: Resync) -> None:
        self.resyncs.append((resync.room, resync.seq, monotonic()))

    async def _consume(self, client: RoomClient, room: str) -> None:
        async for message in client.messages():
            if message.room == room:
                score = message.changes.get("score") if message.type == "updateMember" else None
                self.delivered.append((message.seq, score, monotonic()))


def _queued(fd: int) -> int | None:
    """Bytes waiting in a socket's receive queue (FIONREAD)."""
    with contextlib.suppress(OSError):
        return int(struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0])
    return None


class LoadSide:
    """The resilience scenario's connections in one load process, driven by `res` commands."""

    def __init__(self, progress: Callable[[dict[str, Any]], None]) -> None:
        self.progress = progress
        self.members: list[_Member] = []
        self.writer: RoomClient | None = None
        self.reader: Session | None = None
        self.reader_seqs: list[int] = []
        self.reader_bytes = [0]
        self.stalled: Session | None = None
        self.stalled_seqs: list[int] = []

    # members (RoomClient, reconnecting) ---------------------------------------------------

    async def members_connect(
        self, members: list[tuple[str, list[str]]], key: str, secret: str, room: str
    ) -> dict[str, str]:
        """Connect each (user, urls) with `RoomClient.connect(urls, reconnect=True)`."""

        async def one(user: str, urls: list[str]) -> _Member:
            member = _Member(user)
            await member.connect(urls, key, secret, room)
            return member

        self.members = list(await asyncio.gather(*(one(u, urls) for u, urls in members)))
        return {m.user: m.first_url for m in self.members}

    async def members_status(self) -> dict[str, Any]:
        return {
            m.user: {
                "state": m.client.state.value,
                "last_seq": m.delivered[-1][0] if m.delivered else 0,
            }
            for m in self.members
        }

    async def members_collect(self) -> list[dict[str, Any]]:
        """Close the members; what each received and went through."""
        members, self.members = self.members, []
        await asyncio.gather(*(m.client.close() for m in members))
        await asyncio.gather(*(m.task for m in members if m.task), return_exceptions=True)
        return [
            {
                "user": m.user,
                "first_url": m.first_url,
                "last_url": m.client.url,
                "delivered": m.delivered,
                "wire": m.wire,
                "transitions": m.transitions,
                "resyncs": m.resyncs,
            }
            for m in members
        ]

    # the writer (RoomClient, server token) ------------------------------------------------

    async def writer_connect(self, urls: list[str], key: str, secret: str) -> str:
        self.writer = await RoomClient.connect(
            urls, key=key, token=lambda: mint_token(secret, WRITER, server=True), reconnect=True
        )
        return self.writer.url

    async def room_seq(self, room: str) -> int:
        assert self.writer is not None
        return (await self.writer.get_room(room)).seq

    async def write(
        self,
        room: str,
        targets: list[str],
        rate: float,
        duration: float,
        base: int,
        cap: int = 1000,
        timeout: float = 15.0,
    ) -> dict[str, Any]:
        """member.update (reply "ack") at `rate` per second for `duration` s, one attempt per
        tick. An op that failed with 100001, lost its connection or timed out is retried (a new
        attempt with a fresh value) at the next tick, before any new op. Beyond `cap` attempts
        in flight a tick is skipped (`shed`)."""
        client = self.writer
        assert client is not None
        op_of: list[int] = []
        value_of: list[int] = []
        sent_t: list[float] = []
        reply_t: list[float] = []
        result: list[int] = []  # seq when acknowledged, else -code, LOST or TIMEOUT
        retry: deque[int] = deque()
        tasks: set[asyncio.Task[None]] = set()
        state = {"ops": 0, "shed": 0, "acked": 0, "failed": 0}

        async def attempt(i: int, op: int) -> None:
            try:
                ack = await asyncio.wait_for(
                    client.update_member(
                        room, targets[op % len(targets)], {"score": value_of[i]}, reply="ack"
                    ),
                    timeout,
                )
                result[i] = ack.seq
                state["acked"] += 1
            except RoomError as exc:
                result[i] = -int(exc.code)
            except ConnectionLost:
                result[i] = LOST
            except TimeoutError:
                result[i] = TIMEOUT
            reply_t[i] = monotonic()
            if result[i] < 0:
                state["failed"] += 1
                if result[i] in RETRIED:
                    retry.append(op)

        started = monotonic()
        last_report = started
        ticks = 0
        while True:
            now = monotonic()
            if now - started >= duration:
                break
            while ticks < int((now - started) * rate) + 1:
                ticks += 1
                if len(tasks) >= cap:
                    state["shed"] += 1
                    continue
                if retry:
                    op = retry.popleft()
                else:
                    op = state["ops"]
                    state["ops"] += 1
                i = len(op_of)
                op_of.append(op)
                value_of.append(base + i)
                sent_t.append(monotonic())
                reply_t.append(0.0)
                result.append(0)
                task = asyncio.create_task(attempt(i, op))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if now - last_report > 0.25:
                last_report = now
                self.progress({"elapsed": now - started, "sent": len(op_of), **state})
            await asyncio.sleep(0.002)
        ended = monotonic()
        if tasks:
            await asyncio.wait(set(tasks))
        return {
            "op": op_of,
            "value": value_of,
            "sent_t": sent_t,
            "reply_t": reply_t,
            "result": result,
            "ops": state["ops"],
            "shed": state["shed"],
            "unfinished_ops": len(set(retry)),  # failed last, no tick left to retry them
            "started": started,
            "ended": ended,
        }

    async def history(self, room: str, after_seq: int) -> list[tuple[int, str, Any]]:
        """The room's history after `after_seq`: (seq, type, score) of each message."""
        assert self.writer is not None
        out: list[tuple[int, str, Any]] = []
        while True:
            page = await self.writer.history(room, after_seq=after_seq, limit=200)
            out.extend((m.seq, m.type, m.changes.get("score")) for m in page.messages)
            if not page.more or not page.messages:
                return out
            after_seq = page.messages[-1].seq

    async def writer_close(self) -> None:
        writer, self.writer = self.writer, None
        if writer is not None:
            await writer.close()

    # the stalled client (raw WebSocket connections) ---------------------------------------

    async def reader_connect(self, port: int, key: str, secret: str, user: str) -> None:
        seqs = self.reader_seqs = []
        size = self.reader_bytes = [0]

        def on_event(frame: dict[str, Any], _t: float) -> None:
            if frame.get("event") == "system":
                seqs.append(frame["message"]["seq"])
                if len(seqs) <= 100:  # the payload's size, give or take, of the first ones
                    size[0] += len(msgpack.packb(frame))

        self.reader = await open_session(HOST, port, key, mint_token(secret, user), on_event)

    async def reader_status(self) -> dict[str, Any]:
        count = len(self.reader_seqs)
        sized = min(count, 100)
        return {"count": count, "mean_bytes": round(self.reader_bytes[0] / sized) if sized else 0}

    async def stalled_connect(self, port: int, key: str, secret: str, user: str) -> int:
        """Authenticate, then never read again: the transport stops reading from the socket,
        so the kernel's buffers fill and the hub's send buffer for it grows."""
        seqs = self.stalled_seqs = []

        def on_event(frame: dict[str, Any], _t: float) -> None:
            if frame.get("event") == "system":
                seqs.append(frame["message"]["seq"])

        self.stalled = await open_session(HOST, port, key, mint_token(secret, user), on_event)
        transport = self.stalled.client.transport
        assert transport is not None
        transport.pause_reading()
        return int(transport.get_extra_info("sockname")[1])

    async def closed_loop(
        self,
        port: int,
        key: str,
        secret: str,
        room: str,
        targets: list[str],
        count: int,
        window: int,
        base: int,
        pad: int = 0,
    ) -> dict[str, Any]:
        """`count` member.update ops (reply "ack"), `window` in flight, on a server-token
        connection of its own; the acknowledged seq (or -code) and latency of each. With
        `pad`, each op also sets a `note` of about `pad` bytes (bigger messages)."""
        session = await open_session(HOST, port, key, mint_token(secret, WRITER, server=True))
        result = [0] * count
        latency: list[float] = []
        state = {"next": 0, "acked": 0}
        started = last = monotonic()

        async def lane() -> None:
            nonlocal last
            while state["next"] < count:
                i = state["next"]
                state["next"] += 1
                args = {
                    "room": room,
                    "user": targets[i % len(targets)],
                    "properties": {"score": base + i},
                    "reply": "ack",
                }
                if pad:
                    args["properties"] = {"score": base + i, "note": f"{i:08d}".ljust(pad, "x")}
                t0 = monotonic()
                reply = await session.request("member.update", args)
                latency.append(monotonic() - t0)
                if reply.get("ok"):
                    result[i] = int(reply["result"]["seq"])
                    state["acked"] += 1
                else:
                    result[i] = -int(reply["error"]["code"])
                if monotonic() - last > 0.1:
                    last = monotonic()
                    self.progress({"acked": state["acked"], "elapsed": last - started})

        try:
            await asyncio.gather(*(lane() for _ in range(window)))
        finally:
            session.client.close()
        return {
            "result": result,
            "elapsed_s": monotonic() - started,
            "ack_latency_ms": summary_ms(latency),
        }

    async def stall_collect(self, after_seq: int, expect: int, wait: float) -> dict[str, Any]:
        """The stalled connection's state, then let it read again: what it had been sent, up
        to `expect` messages after `after_seq` or until it is closed (at most `wait` s)."""
        stalled, self.stalled = self.stalled, None
        assert stalled is not None
        client = stalled.client
        transport = client.transport
        assert transport is not None
        sock = transport.get_extra_info("socket")
        fd = sock.fileno() if sock is not None else -1
        queued = _queued(fd) if fd >= 0 else None
        transport.resume_reading()

        async def count() -> int:
            return sum(1 for s in self.stalled_seqs if s > after_seq)

        await settle(count, expect, timeout=wait, quiet=1.0, poll=0.02, stop=client.closed.done)
        seqs = [s for s in self.stalled_seqs if s > after_seq]
        client.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(client.closed), 2)
        return {
            "kernel_queued_bytes": queued,
            "received": len(seqs),
            "in_order": seqs == sorted(set(seqs)),
            "close_code": client.close_code,
        }

    async def reader_collect(self) -> list[int]:
        reader, self.reader = self.reader, None
        if reader is not None:
            reader.client.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(reader.client.closed), 2)
        seqs, self.reader_seqs = self.reader_seqs, []
        return seqs

    async def close(self) -> None:
        await self.members_collect()
        await self.writer_close()
        for session in (self.reader, self.stalled):
            if session is not None:
                session.client.close()
        self.reader = self.stalled = None
