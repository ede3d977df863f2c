"""The `resilience` scenario: what clients see when Redis or a hub node restarts, and what a
client that stops reading costs the hub. Real processes on loopback, like the rest of the bench.

1. **Redis restart.** A redis-server of its own with AOF (`appendfsync everysec`), 2 hub nodes,
   one room whose members (`roomhub.clients.RoomClient`, reconnecting) alternate over the
   nodes, and a writer sending `member.update` (reply "ack") at a steady rate, retrying an op
   that fails with 100001 (or whose connection drops) at its next tick. Mid-run Redis gets
   SIGTERM (a clean shutdown) and is started again on the same port and data dir.
2. **Node restart.** 2 nodes on the bench's Redis; every member has both URLs (its own node
   first); the writer is on the node that stays up. Mid-run the other node gets SIGTERM (it
   closes its clients with 1001), and is started again on its port once it has exited.
3. **Stalled client.** 1 node; a room with a reading member and a member whose connection
   never reads again after `auth` (a raw WebSocket whose transport stops reading); a closed
   loop of member.update ops. The hub's RSS is sampled from /proc meanwhile; the hub's log
   tells when it dropped the slow consumer (4008), its open file descriptors when it let the
   connection go (SLOW_CONSUMER_GRACE later).

Every op carries a fresh value (`score`), so each acknowledged op is found in the room's
history (`room.history`, read at the end) by its value, and each member's received messages
are compared with that history: every acknowledged op must be there exactly once, and every
member must have received each history message exactly once, in order.

The load side (`LoadSide`) runs in load processes (worker.py's `res` command): the members in
one, the writer in another; the orchestrator side (`run`) only starts and stops processes,
reads /proc and the hub logs, and compares the records (same CLOCK_MONOTONIC everywhere).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import socket
import struct
import subprocess
import termios
from collections import deque
from collections.abc import Callable
from time import monotonic
from typing import TYPE_CHECKING, Any, cast

import msgpack  # type: ignore[import-untyped]

from roomhub.clients import ConnectionLost, RoomClient, RoomError
from roomhub.protocol.models import SystemMessage

from . import infra
from .stats import summary_ms
from .worker import mint
from .wsclient import Session, open_session

if TYPE_CHECKING:
    from .scenarios import Bench, LoadProcess

HOST = "127.0.0.1"  # loopback only
LOST = -1  # outcome of an attempt whose connection dropped (ConnectionLost)
TIMEOUT = -2  # outcome of an attempt with no reply in time
RETRIED = (-100001, LOST, TIMEOUT)  # outcomes after which the writer retries the op
WRITER = "bench-res-writer"
SLOW_CONSUMER_LOG = b"closing slow consumer"
DEFAULT_SEND_BUFFER_LIMIT = 4 * 1024 * 1024  # ROOMHUB_SEND_BUFFER_LIMIT's default


# --- the load side ------------------------------------------------------------------------------


class RecordingClient(RoomClient):
    """A RoomClient that also notes each system message as it comes off the wire, before the
    client's de-duplication by seq (what a resume replay repeats), and each state change with
    its time and, when it drops, the close code."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.wire: list[tuple[int, float]] = []
        self.transitions: list[tuple[str, float, int | None]] = []

    def _notify(self, state: Any) -> None:
        lost = self._lost
        self.transitions.append((state.value, monotonic(), None if lost is None else lost.code))
        super()._notify(state)

    def _deliver(self, message: SystemMessage) -> None:
        self.wire.append((message.seq, monotonic()))
        super()._deliver(message)


class _Member:
    def __init__(self, user: str, client: RecordingClient, room: str) -> None:
        self.user = user
        self.client = client
        self.first_url = client.url
        self.delivered: list[tuple[int, Any, float]] = []  # seq, score, time read
        self.resyncs: list[tuple[str, int, float]] = []
        self.task = asyncio.create_task(self._consume(room))

    async def _consume(self, room: str) -> None:
        async for message in self.client.messages():
            if message.room == room:
                score = message.changes.get("score") if message.type == "updateMember" else None
                self.delivered.append((message.seq, score, monotonic()))


def _tcp_state(fd: int) -> int | None:
    """The kernel's TCP state of a socket (1 ESTABLISHED, 7 CLOSE, 8 CLOSE_WAIT, ...)."""
    with contextlib.suppress(OSError, AttributeError):
        sock = socket.socket(fileno=os.dup(fd))
        try:
            return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
        finally:
            sock.close()
    return None


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
            member: _Member | None = None

            def resynced(resync: Any) -> None:
                if member is not None:
                    member.resyncs.append((resync.room, resync.seq, monotonic()))

            client = await RecordingClient.connect(
                urls,
                key=key,
                token=lambda: mint(secret, user, False),
                reconnect=True,
                on_resync=resynced,
            )
            member = _Member(user, cast(RecordingClient, client), room)
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
        await asyncio.gather(*(m.task for m in members), return_exceptions=True)
        return [
            {
                "user": m.user,
                "first_url": m.first_url,
                "last_url": m.client.url,
                "delivered": m.delivered,
                "wire": m.client.wire,
                "transitions": m.client.transitions,
                "resyncs": m.resyncs,
            }
            for m in members
        ]

    # the writer (RoomClient, server token) ------------------------------------------------

    async def writer_connect(self, urls: list[str], key: str, secret: str) -> str:
        self.writer = await RoomClient.connect(
            urls, key=key, token=lambda: mint(secret, WRITER, True), reconnect=True
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

        self.reader = await open_session(HOST, port, key, mint(secret, user, False), on_event)

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

        self.stalled = await open_session(HOST, port, key, mint(secret, user, False), on_event)
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
        session = await open_session(HOST, port, key, mint(secret, WRITER, True))
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
        tcp_state = _tcp_state(fd) if fd >= 0 else None
        transport.resume_reading()
        deadline = monotonic() + wait
        seen, quiet_since = -1, monotonic()
        while monotonic() < deadline and not client.closed.done():
            got = sum(1 for s in self.stalled_seqs if s > after_seq)
            if got >= expect:
                break
            if got != seen:
                seen, quiet_since = got, monotonic()
            elif monotonic() - quiet_since > 1.0:
                break
            await asyncio.sleep(0.02)
        seqs = [s for s in self.stalled_seqs if s > after_seq]
        closed_by_hub = client.closed.done()
        client.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(client.closed), 2)
        return {
            "kernel_queued_bytes": queued,
            "tcp_state": tcp_state,
            "received": len(seqs),
            "in_order": seqs == sorted(set(seqs)),
            "first_seq": seqs[0] if seqs else None,
            "last_seq": seqs[-1] if seqs else None,
            "close_code": client.close_code,
            "closed_by_hub": closed_by_hub,
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


# --- the orchestrator side -----------------------------------------------------------------------


def verify(
    attempts: dict[str, Any],
    history: list[tuple[int, str, Any]],
    members: list[dict[str, Any]],
    start_seq: int,
) -> dict[str, Any]:
    """Compare the writer's attempts, the room's history after `start_seq`, and what each
    member received (pure: the test suite runs it on made-up records)."""
    values, results = attempts["value"], attempts["result"]
    acked = {values[i]: r for i, r in enumerate(results) if r > 0}
    failed = [i for i, r in enumerate(results) if r <= 0]
    hist = [h for h in history if h[0] > start_seq]
    hist_seqs = [seq for seq, _, _ in hist]
    last = hist_seqs[-1] if hist_seqs else start_seq
    seqs_of: dict[Any, list[int]] = {}
    for seq, kind, score in hist:
        if kind == "updateMember":
            seqs_of.setdefault(score, []).append(seq)
    known = set(values)
    acked_seqs = sorted(acked.values())
    expected = set(range(start_seq + 1, last + 1))
    per_member = []
    for m in members:
        seqs = [s for s, _, _ in m["delivered"] if s > start_seq]
        unique = set(seqs)
        wire = [s for s, _ in m["wire"] if s > start_seq]
        per_member.append(
            {
                "user": m["user"],
                "received": len(seqs),
                "duplicates": len(seqs) - len(unique),
                "gaps": len(expected - unique),
                "not_in_history": len(unique - set(hist_seqs)),
                "in_order": all(a < b for a, b in zip(seqs, seqs[1:])),
                # the client drops what it already has; these came twice over the wire
                "wire_duplicates_dropped_by_client": len(wire) - len(set(wire)),
                "equals_history": seqs == hist_seqs,
                "equals_acknowledged": seqs == acked_seqs,
                "resyncs": len(m["resyncs"]),
            }
        )
    out = {
        "attempts": len(results),
        "acknowledged": len(acked),
        "failed": len(failed),
        "failed_by_code": _codes(results[i] for i in failed),
        "history_messages": len(hist),
        "history_gapless": hist_seqs == list(range(start_seq + 1, last + 1)),
        "acknowledged_in_history_once": sum(1 for v, s in acked.items() if seqs_of.get(v) == [s]),
        "acknowledged_missing_from_history": sum(1 for v in acked if v not in seqs_of),
        "acknowledged_repeated_in_history": sum(1 for v in acked if len(seqs_of.get(v, ())) > 1),
        "failed_but_in_history": sum(1 for i in failed if values[i] in seqs_of),
        "failed_but_in_history_codes": _codes(results[i] for i in failed if values[i] in seqs_of),
        "history_not_from_writer": sum(
            1 for _, kind, score in hist if kind != "updateMember" or score not in known
        ),
        "failed_but_in_history_attempts": [i for i in failed if values[i] in seqs_of],
        "per_member": per_member,
    }
    out["every_ack_in_history_exactly_once"] = out["acknowledged_in_history_once"] == len(acked)
    out["every_member_got_history_exactly_once_in_order"] = bool(members) and all(
        m["equals_history"] for m in per_member
    )
    out["members_missing_messages"] = sum(1 for m in per_member if m["gaps"])
    out["delivered_equals_acknowledged"] = bool(members) and all(
        m["equals_acknowledged"] for m in per_member
    )
    return out


def _codes(outcomes: Any) -> dict[str, int]:
    names = {LOST: "connection_lost", TIMEOUT: "timeout"}
    counts: dict[str, int] = {}
    for r in outcomes:
        name = names.get(r, str(-r))
        counts[name] = counts.get(name, 0) + 1
    return counts


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def _url(hub: infra.HubProcess) -> str:
    return f"ws://{HOST}:{hub.port}/ws"


async def _exited(proc: subprocess.Popen[bytes], timeout: float = 15) -> float:
    """Wait for a process to exit (SIGKILL after `timeout`); the time it was seen gone."""
    deadline = monotonic() + timeout
    while proc.poll() is None:
        if monotonic() > deadline:
            proc.kill()
            proc.wait()
            break
        await asyncio.sleep(0.005)
    return monotonic()


class Resilience:
    """The orchestrator side; `run` does the three parts with two load processes."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.plan = bench.plan
        self.progress = bench.progress
        self.members_proc: LoadProcess
        self.writer_proc: LoadProcess
        self.run_no = 0

    async def run(self) -> dict[str, Any]:
        self.members_proc, self.writer_proc = self.bench.spawn(2, "load-res-")
        out = {
            "redis_restart": await self.redis_restart(),
            "node_restart": await self.node_restart(),
            "stalled_client": {
                "runs": [await self.stalled(limit, pad) for limit, pad in self.plan.stall_runs]
            },
        }
        await self.bench.teardown()
        return out

    async def res(self, proc: LoadProcess, action: str, **args: Any) -> Any:
        return await proc.call("res", action=action, **args)

    # shared by the two restart parts --------------------------------------------------------

    async def setup_room(
        self, hubs: list[infra.HubProcess], label: str, members: int, writer_hub: int
    ) -> tuple[str, list[str], int]:
        """A room whose members alternate over the hubs (each with every URL, its own hub's
        first), all connected; the writer connected to `hubs[writer_hub]`."""
        bench = self.bench
        self.run_no += 1
        layout = bench.layout(f"{label}{self.run_no}", 1, members, nodes=len(hubs))
        await bench.populate(hubs[0], layout)
        room, users = layout.rooms[0]
        urls = [_url(h) for h in hubs]
        specs = [(u, urls[i % len(urls) :] + urls[: i % len(urls)]) for i, u in enumerate(users)]
        self.progress.update(f"connecting {members} members", force=True)
        await self.res(
            self.members_proc,
            "members_connect",
            members=specs,
            key=bench.app,
            secret=bench.secret,
            room=room,
        )
        await self.res(
            self.writer_proc,
            "writer_connect",
            urls=[urls[writer_hub]],
            key=bench.app,
            secret=bench.secret,
        )
        start_seq = await self.res(self.writer_proc, "room_seq", room=room)
        return room, users, start_seq

    def start_writing(
        self, room: str, users: list[str], duration: float, base: int
    ) -> asyncio.Task[Any]:
        def sending(info: dict[str, Any]) -> None:
            self.progress.update(
                f"{info['elapsed']:.1f}/{duration:.0f}s sent {info['sent']} acked "
                f"{info['acked']} failed {info['failed']}"
            )

        return asyncio.create_task(
            self.writer_proc.call(
                "res",
                on_progress=sending,
                action="write",
                room=room,
                targets=users,
                rate=self.plan.res_rate,
                duration=duration,
                base=base,
            )
        )

    async def finish(
        self, room: str, start_seq: int, attempts: dict[str, Any]
    ) -> tuple[list[tuple[int, str, Any]], list[dict[str, Any]], dict[str, Any]]:
        """Wait until every member got the room's last message (or res_drain s), then the
        history, the members' records and the comparison."""
        final_seq = await self.res(self.writer_proc, "room_seq", room=room)
        deadline = monotonic() + self.plan.res_drain
        while monotonic() < deadline:
            status = await self.res(self.members_proc, "members_status")
            behind = [u for u, s in status.items() if s["last_seq"] < final_seq]
            if not behind:
                break
            self.progress.update(f"waiting for {len(behind)} members to reach seq {final_seq}")
            await asyncio.sleep(0.05)
        history = await self.res(self.writer_proc, "history", room=room, after_seq=start_seq)
        members = await self.res(self.members_proc, "members_collect")
        await self.res(self.writer_proc, "writer_close")
        return history, members, verify(attempts, history, members, start_seq)

    # 1. Redis restart -----------------------------------------------------------------------

    async def redis_restart(self) -> dict[str, Any]:
        plan, bench = self.plan, self.bench
        self.progress.phase("resilience: Redis restart: setup")
        redis = infra.RedisServer(appendonly=True)
        hubs: list[infra.HubProcess] = []
        try:
            await redis.ready()
            hubs = await bench.start_hubs(2, redis_url=redis.url)
            room, users, start_seq = await self.setup_room(hubs, "rr", plan.res_members, 0)
            duration = plan.res_warm + plan.res_outage + plan.res_after
            self.progress.phase(
                f"resilience: Redis restart: {plan.res_rate:.0f} ops/s for {duration:.0f}s, "
                f"Redis stopped at {plan.res_warm:.0f}s for {plan.res_outage:.1f}s"
            )
            writing = self.start_writing(room, users, duration, base=10**9)
            await asyncio.sleep(plan.res_warm)
            t_stop = monotonic()
            redis.proc.terminate()  # SIGTERM: a clean shutdown (the AOF is written and synced)
            t_exit = await _exited(redis.proc)
            await asyncio.sleep(max(0.0, t_stop + plan.res_outage - monotonic()))
            t_start = monotonic()
            redis.start()
            await redis.ready()
            t_up = monotonic()
            attempts = await writing
            self.progress.update("checking the history", force=True)
            history, members, check = await self.finish(room, start_seq, attempts)
        finally:
            await bench.stop_hubs(hubs)
            redis.stop()
        sent_t, reply_t, result = attempts["sent_t"], attempts["reply_t"], attempts["result"]
        ok = [i for i, r in enumerate(result) if r > 0]
        failed = [i for i, r in enumerate(result) if r <= 0]
        acks_after = [reply_t[i] for i in ok if reply_t[i] >= t_up]
        fail_t = [reply_t[i] for i in failed]
        first_msgs = []
        for m in members:
            after = [t for _, _, t in m["delivered"] if t >= t_up]
            first_msgs.append(min(after) - t_up if after else None)
        out = {
            "nodes": 2,
            "members": len(users),
            "rate_per_s": plan.res_rate,
            "duration_s": round(attempts["ended"] - attempts["started"], 3),
            "redis_persistence": "appendonly yes, appendfsync everysec",
            "redis_stopped_after_s": round(t_stop - attempts["started"], 3),
            "redis_shutdown_s": round(t_exit - t_stop, 3),
            "redis_down_s": round(t_up - t_stop, 3),
            "redis_restart_to_ready_s": round(t_up - t_start, 3),
            "ops": attempts["ops"],
            "ops_unfinished": attempts["unfinished_ops"],
            "shed": attempts["shed"],
            **{k: check.pop(k) for k in ("attempts", "acknowledged", "failed", "failed_by_code")},
            "acks_while_redis_down": sum(1 for i in ok if t_stop <= reply_t[i] < t_up),
            "failure_window_s": round(max(fail_t) - min(fail_t), 3) if fail_t else 0.0,
            "first_failure_after_stop_ms": _ms(min(fail_t) - t_stop) if fail_t else None,
            "last_ack_before_stop_ms": _ms(
                t_stop - max((reply_t[i] for i in ok if reply_t[i] < t_stop), default=t_stop)
            ),
            "first_ack_after_redis_back_ms": _ms(min(acks_after) - t_up) if acks_after else None,
            "ack_latency_ms": summary_ms(reply_t[i] - sent_t[i] for i in ok),
            "first_message_after_redis_back_ms": summary_ms(t for t in first_msgs if t is not None),
            # ops that failed but were applied: when they were sent and failed, from the SIGTERM
            "failed_but_applied": [
                {
                    "code": _codes([result[i]]).popitem()[0],
                    "sent_ms_after_stop": _ms(sent_t[i] - t_stop),
                    "failed_ms_after_stop": _ms(reply_t[i] - t_stop),
                }
                for i in check.pop("failed_but_in_history_attempts")
            ],
            **check,
        }
        self.progress.done(
            f"Redis down {out['redis_down_s']:.2f}s; {out['acknowledged']} acked, "
            f"{out['failed']} failed {out['failed_by_code']}; first ack "
            f"{out['first_ack_after_redis_back_ms']} ms after Redis was back; every ack in "
            f"history once: {out['every_ack_in_history_exactly_once']}; members got exactly "
            f"the history: {out['every_member_got_history_exactly_once_in_order']}"
        )
        return out

    # 2. node restart ------------------------------------------------------------------------

    async def node_restart(self) -> dict[str, Any]:
        plan, bench = self.plan, self.bench
        self.progress.phase("resilience: node restart: setup")
        hubs = await bench.start_hubs(2)
        victim, survivor = hubs
        room, users, start_seq = await self.setup_room(hubs, "nr", plan.node_members, 1)
        duration = plan.node_warm + plan.node_after
        self.progress.phase(
            f"resilience: node restart: {plan.res_rate:.0f} ops/s for {duration:.0f}s, "
            f"SIGTERM to one of 2 nodes at {plan.node_warm:.0f}s"
        )
        writing = self.start_writing(room, users, duration, base=2 * 10**9)
        await asyncio.sleep(plan.node_warm)
        t_kill = monotonic()
        victim.proc.send_signal(signal.SIGTERM)
        t_exit = await _exited(victim.proc)
        victim.stop()
        (restarted,) = await bench.start_hubs(1, ports=[victim.port])
        t_ready = monotonic()
        attempts = await writing
        self.progress.update("checking the history", force=True)
        history, members, check = await self.finish(room, start_seq, attempts)
        await bench.stop_hubs([victim, survivor, restarted])

        sent_t = attempts["sent_t"]
        sent_at = dict(zip(attempts["value"], sent_t))
        moved = []
        for m in members:
            if m["first_url"] != _url(victim):
                continue
            drops = [(t, c) for s, t, c in m["transitions"] if s == "reconnecting" and t >= t_kill]
            close = drops[0] if drops else None
            if close is None:  # never dropped (or not seen): nothing to time
                moved.append(
                    {
                        "user": m["user"],
                        "closed": False,
                        "close_code": None,
                        "closed_after_sigterm_ms": None,
                        "open_again_ms": None,
                        "first_live_message_ms": None,
                        "reconnected_to": m["last_url"],
                    }
                )
                continue
            t_close, code = close
            t_open = next((t for s, t, _ in m["transitions"] if s == "open" and t > t_close), None)
            live = None
            if t_open is not None:
                # the first message of an op sent after the client was OPEN again: live, not
                # replayed (the replay was read before the auth reply)
                live = next(
                    (
                        t
                        for _, score, t in m["delivered"]
                        if t >= t_open and sent_at.get(score, 0.0) >= t_open
                    ),
                    None,
                )
            moved.append(
                {
                    "user": m["user"],
                    "closed": True,
                    "close_code": code,
                    "closed_after_sigterm_ms": _ms(t_close - t_kill),
                    "open_again_ms": _ms(None if t_open is None else t_open - t_close),
                    "first_live_message_ms": _ms(None if live is None else live - t_close),
                    "reconnected_to": m["last_url"],
                }
            )
        reopen = [c["open_again_ms"] for c in moved if c.get("open_again_ms") is not None]
        first_live = [
            c["first_live_message_ms"] for c in moved if c.get("first_live_message_ms") is not None
        ]
        out = {
            "nodes": 2,
            "members": len(users),
            "members_on_restarted_node": len(moved),
            "rate_per_s": plan.res_rate,
            "duration_s": round(attempts["ended"] - attempts["started"], 3),
            "writer_on": "the node that stays up",
            "node_stopped_after_s": round(t_kill - attempts["started"], 3),
            "node_shutdown_s": round(t_exit - t_kill, 3),
            "node_down_s": round(t_ready - t_kill, 3),
            "ops": attempts["ops"],
            "ops_unfinished": attempts["unfinished_ops"],
            "shed": attempts["shed"],
            **{k: check.pop(k) for k in ("attempts", "acknowledged", "failed", "failed_by_code")},
            "ack_latency_ms": summary_ms(
                attempts["reply_t"][i] - sent_t[i]
                for i, r in enumerate(attempts["result"])
                if r > 0
            ),
            "clients_closed": sum(1 for c in moved if c["closed"]),
            "close_codes": sorted({c["close_code"] for c in moved if c["closed"]}, key=str),
            "resume_open_ms": summary_ms(v / 1000 for v in reopen),
            "resume_first_live_message_ms": summary_ms(v / 1000 for v in first_live),
            "clients_without_live_message": sum(
                1 for c in moved if c.get("first_live_message_ms") is None
            ),
            "clients": moved,
            **check,
        }
        del out["failed_but_in_history_attempts"]
        self.progress.done(
            f"{out['clients_closed']} clients closed ({out['close_codes']}), OPEN again p50/max "
            f"{out['resume_open_ms']['p50']}/{out['resume_open_ms']['max']} ms, first live "
            f"message {out['resume_first_live_message_ms']['p50']}/"
            f"{out['resume_first_live_message_ms']['max']} ms; {out['acknowledged']} acked; "
            f"members got exactly the acked: {out['delivered_equals_acknowledged']}"
        )
        return out

    # 3. stalled client ----------------------------------------------------------------------

    async def stalled(self, limit: int, pad: int) -> dict[str, Any]:
        """One stalled-client run: a hub with send buffer `limit` (0: its default), ops
        carrying `pad` extra bytes (0: the bench's usual small op)."""
        size = limit or DEFAULT_SEND_BUFFER_LIMIT
        name = (
            f"send buffer limit {size // 1024} KiB{'' if limit else ' (default)'}, "
            f"{'+' + str(pad) + ' B' if pad else 'small'} messages"
        )
        self.progress.phase(f"resilience: stalled client, {name}: setup")
        env = {"ROOMHUB_SEND_BUFFER_LIMIT": str(limit)} if limit else None
        (hub,) = await self.bench.start_hubs(1, env=env)
        try:
            out = await self._stalled(hub, name, pad)
        finally:
            await self.bench.stop_hubs([hub])
        return {"send_buffer_limit_bytes": size, "send_buffer_limit_is_default": not limit, **out}

    async def _stalled(self, hub: infra.HubProcess, name: str, pad: int) -> dict[str, Any]:
        plan, bench = self.plan, self.bench
        self.run_no += 1
        layout = bench.layout(f"st{self.run_no}", 1, 2)
        await bench.populate(hub, layout)
        room, (reader, stalled) = layout.rooms[0]
        who = {"port": hub.port, "key": bench.app, "secret": bench.secret}
        await self.res(self.members_proc, "reader_connect", user=reader, **who)
        loop_args = {
            **who,
            "room": room,
            "targets": [reader, stalled],
            "window": plan.stall_window,
            "pad": pad,
        }
        # warm the hub up (code paths, pools, allocator) before the baseline
        warm = await self.res(
            self.writer_proc, "closed_loop", count=plan.stall_warmup, base=0, **loop_args
        )
        if min(warm["result"]) <= 0:
            raise RuntimeError(
                f"the warm-up ops failed: {_codes(r for r in warm['result'] if r <= 0)}"
            )
        start_seq = max(warm["result"])  # the room's seq before the measured ops
        await asyncio.sleep(0.5)
        port = await self.res(self.members_proc, "stalled_connect", user=stalled, **who)
        await asyncio.sleep(0.2)
        fds_before = _fds(hub.pid)
        rss_before = hub.rss()

        rss: list[int] = [rss_before]
        kernel: list[int] = [0]  # the hub's socket send queue to the stalled client
        acked = {"n": 0}
        seen: dict[str, Any] = {"drop_t": None, "acked_at_drop": None, "release_t": None}
        stop, released = asyncio.Event(), asyncio.Event()

        async def watch() -> None:
            offset = hub.log_path.stat().st_size
            while not stop.is_set():
                with contextlib.suppress(OSError):
                    rss.append(hub.rss())
                queues = tcp_queues(hub.port, port)
                if queues is not None:
                    kernel.append(queues[0])
                if seen["drop_t"] is None:
                    if _logged(hub.log_path, offset, SLOW_CONSUMER_LOG):
                        seen["drop_t"], seen["acked_at_drop"] = monotonic(), acked["n"]
                elif seen["release_t"] is None and _fds(hub.pid) < fds_before:
                    seen["release_t"] = monotonic()
                    released.set()
                await asyncio.sleep(0.02)

        def sending(info: dict[str, Any]) -> None:
            acked["n"] = info["acked"]
            self.progress.update(f"{info['elapsed']:.1f}s acked {info['acked']}/{plan.stall_ops}")

        self.progress.phase(f"resilience: stalled client, {name}: {plan.stall_ops} ops")
        watcher = asyncio.create_task(watch())
        t0 = monotonic()
        try:
            run = await self.writer_proc.call(
                "res",
                on_progress=sending,
                action="closed_loop",
                count=plan.stall_ops,
                base=10**6,
                **loop_args,
            )
            ok = sum(1 for r in run["result"] if r > 0)
            deadline = monotonic() + plan.drain_timeout
            while monotonic() < deadline:
                got = (await self.res(self.members_proc, "reader_status"))["count"]
                if got >= plan.stall_warmup + ok:
                    break
                await asyncio.sleep(0.05)
            rss_end = hub.rss()
            kernel_end = (tcp_queues(hub.port, port) or (0, 0))[0]
            if seen["drop_t"] is not None:  # the hub lets go of it SLOW_CONSUMER_GRACE later
                wait = seen["drop_t"] + plan.stall_release_wait - monotonic()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(released.wait(), max(0.0, wait))
            await asyncio.sleep(1.0)
            rss_after = hub.rss()
            still_open = _fds(hub.pid) >= fds_before
        finally:
            stop.set()
            await watcher
        got_stalled = await self.res(
            self.members_proc, "stall_collect", after_seq=start_seq, expect=ok, wait=5.0
        )
        status = await self.res(self.members_proc, "reader_status")
        reader_seqs = await self.res(self.members_proc, "reader_collect")
        reader_seqs = [s for s in reader_seqs if s > start_seq]
        acked_seqs = sorted(r for r in run["result"] if r > 0)
        drop_t, release_t = seen["drop_t"], seen["release_t"]
        out = {
            "ops": plan.stall_ops,
            "window": plan.stall_window,
            "pad_bytes": pad,
            "message_bytes": status["mean_bytes"],
            "message_bytes_total": round(status["mean_bytes"] * ok),
            "acknowledged": ok,
            "errors": _codes(r for r in run["result"] if r <= 0),
            "elapsed_s": round(run["elapsed_s"], 3),
            "ops_per_s": round(ok / run["elapsed_s"], 1) if run["elapsed_s"] > 0 else None,
            "ack_latency_ms": run["ack_latency_ms"],
            "hub_rss_before_bytes": rss_before,
            "hub_rss_peak_bytes": max(rss),
            "hub_rss_end_of_ops_bytes": rss_end,
            "hub_rss_after_bytes": rss_after,
            "hub_rss_growth_peak_bytes": max(rss) - rss_before,
            "hub_kernel_send_queue_peak_bytes": max(kernel),
            "hub_kernel_send_queue_end_of_ops_bytes": kernel_end,
            "rss_samples": len(rss),
            "stalled_dropped": drop_t is not None,
            "stalled_dropped_after_s": None if drop_t is None else round(drop_t - t0, 3),
            "stalled_dropped_after_acked_ops": seen["acked_at_drop"],
            "stalled_released_after_drop_s": None
            if release_t is None or drop_t is None
            else round(release_t - drop_t, 3),
            "stalled_connection_open_at_end": still_open,
            "stalled_kernel_queued_bytes": got_stalled["kernel_queued_bytes"],
            "stalled_received_when_reading_again": got_stalled["received"],
            "stalled_received_in_order": got_stalled["in_order"],
            "stalled_close_code": got_stalled["close_code"],
            "reader_received": len(reader_seqs),
            "reader_in_order": all(a < b for a, b in zip(reader_seqs, reader_seqs[1:])),
            "reader_got_every_ack_in_order": reader_seqs == acked_seqs
            and acked_seqs == list(range(start_seq + 1, start_seq + ok + 1)),
        }
        dropped = "no" if drop_t is None else f"yes (4008) after {seen['acked_at_drop']} ops"
        self.progress.done(
            f"hub RSS {rss_before / 2**20:.1f} -> peak {max(rss) / 2**20:.1f} -> after "
            f"{rss_after / 2**20:.1f} MiB, kernel send queue peak {max(kernel) / 2**20:.1f} MiB; "
            f"stalled client dropped: {dropped}; reader got {len(reader_seqs)}/{ok} in order: "
            f"{out['reader_got_every_ack_in_order']}"
        )
        return out


def tcp_queues(local_port: int, remote_port: int) -> tuple[int, int] | None:
    """(send queue, receive queue) in bytes of the loopback TCP socket local_port ->
    remote_port, from /proc/net/tcp: what the kernel holds for that connection (memory that
    is not in any process's RSS)."""
    local, remote = f"0100007F:{local_port:04X}", f"0100007F:{remote_port:04X}"
    with contextlib.suppress(OSError), open("/proc/net/tcp") as table:
        for line in table:
            fields = line.split()
            if len(fields) > 4 and fields[1] == local and fields[2] == remote:
                tx, rx = fields[4].split(":")
                return int(tx, 16), int(rx, 16)
    return None


def _logged(path: Any, offset: int, needle: bytes) -> bool:
    """Whether a log file has `needle` after `offset`."""
    with contextlib.suppress(OSError), open(path, "rb") as log:
        log.seek(offset)
        return needle in log.read()
    return False


def _fds(pid: int) -> int:
    """Open file descriptors of a process (its client connections among them)."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0
